package replicate

import (
	"hash/fnv"
	"sync/atomic"
	"time"

	"github.com/cais-platform/cais/fop"
)

// ReadPolicy is how a set picks, among a file's good copies, the one its
// data is read from (cluster.read-hash-mode, with GlusterFS's numbers).
// Only data: lookups and attributes keep coming from the set's first
// good copy, so a file's times do not move between copies. A copy on
// this machine comes first whatever the policy while
// Options.ChooseLocal is set.
type ReadPolicy int

const (
	// ReadFirst reads every file from the first good copy (0).
	ReadFirst ReadPolicy = iota
	// ReadHashGFID reads each file from the copy its GFID hashes to:
	// one file always from the same copy, files spread over the set (1,
	// the default).
	ReadHashGFID
	// ReadHashGFIDPID hashes the GFID with the mount's process ID, so
	// that mounts read one file from different copies (2).
	ReadHashGFIDPID
	// ReadLeastOutstanding reads from the copy with the fewest reads in
	// flight from this mount when the file is opened (3).
	ReadLeastOutstanding
	// ReadLeastLatency reads from the copy whose recent reads were the
	// quickest (4).
	ReadLeastLatency
	// ReadLeastLoad weighs latency by the reads in flight (5).
	ReadLeastLoad
)

// readLoad is what a mount knows of a brick's reads: the ones in flight
// and a moving average of their latency.
type readLoad struct {
	outstanding atomic.Int64
	latency     atomic.Int64 // nanoseconds, moving average; 0 before the first read
	sampled     atomic.Int64 // when the last read ended (Unix nanoseconds)
}

// latencyHalfLife is how fast a brick's latency estimate fades while no
// read goes to it: a brick the latency policies stopped choosing after a
// slow spell is tried again once its estimate fell under the others',
// and what that read takes is the estimate then.
const latencyHalfLife = 2 * time.Second

// recentLatency is the latency estimate at now: the moving average,
// halved for every latencyHalfLife since the last read ended.
func (l *readLoad) recentLatency(now time.Time) time.Duration {
	lat := l.latency.Load()
	if lat == 0 {
		return 0
	}
	if age := now.UnixNano() - l.sampled.Load(); age > 0 {
		halvings := age / int64(latencyHalfLife)
		if halvings >= 63 {
			return 0
		}
		lat >>= halvings
	}
	return time.Duration(lat)
}

// start counts a read in flight; the function it returns ends it.
func (l *readLoad) start() func() {
	l.outstanding.Add(1)
	t := time.Now()
	return func() {
		l.outstanding.Add(-1)
		now := time.Now()
		d := int64(now.Sub(t))
		// An average over about eight reads, of the estimate as it
		// faded since the last one; a lost update under a race only
		// shifts it.
		old := int64(l.recentLatency(now))
		if old == 0 {
			l.latency.Store(max(d, 1))
		} else {
			l.latency.Store(old + (d-old)/8)
		}
		l.sampled.Store(now.UnixNano())
	}
}

// readOrder orders good copies (brick indexes in set order) for reading
// a file's data: the copy to read from first, then the ones to fall
// back on. load reports a brick's reads in flight and their recent
// latency (the least-load policies). The result is a new slice.
func readOrder(good []int, p ReadPolicy, gfid fop.GFID, pid int, load func(i int) (int64, time.Duration)) []int {
	if len(good) < 2 {
		return append([]int(nil), good...)
	}
	first := 0
	switch p {
	case ReadHashGFID, ReadHashGFIDPID:
		h := fnv.New32a()
		h.Write(gfid[:])
		if p == ReadHashGFIDPID {
			h.Write([]byte{byte(pid), byte(pid >> 8), byte(pid >> 16), byte(pid >> 24)})
		}
		first = int(h.Sum32() % uint32(len(good)))
	case ReadLeastOutstanding, ReadLeastLatency, ReadLeastLoad:
		best := int64(-1)
		for k, i := range good {
			n, lat := load(i)
			var cost int64
			switch p {
			case ReadLeastOutstanding:
				cost = n
			case ReadLeastLatency:
				cost = int64(lat)
			default:
				cost = int64(lat) * (n + 1)
			}
			if best < 0 || cost < best {
				best, first = cost, k
			}
		}
	}
	// Rotate, so the fallbacks keep the set's order after the choice.
	out := make([]int, 0, len(good))
	out = append(out, good[first:]...)
	return append(out, good[:first]...)
}
