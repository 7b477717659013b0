package replicate

import (
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/cais-platform/cais/fop"
)

func TestReadOrder(t *testing.T) {
	noLoad := func(int) (int64, time.Duration) { return 0, 0 }
	good := []int{0, 2, 3}
	if got := readOrder(good, ReadFirst, fop.NewGFID(), 1, noLoad); !slices.Equal(got, good) {
		t.Fatalf("first: %v, want %v", got, good)
	}
	if got := readOrder([]int{1}, ReadHashGFID, fop.NewGFID(), 1, noLoad); !slices.Equal(got, []int{1}) {
		t.Fatalf("one copy: %v", got)
	}
	if got := readOrder(nil, ReadLeastLoad, fop.NewGFID(), 1, noLoad); len(got) != 0 {
		t.Fatalf("no copy: %v", got)
	}
	// By GFID: one file always from the same copy, the others after it
	// in the set's order, files spread over every copy.
	counts := map[int]int{}
	for range 600 {
		g := fop.NewGFID()
		got := readOrder(good, ReadHashGFID, g, 1, noLoad)
		if again := readOrder(good, ReadHashGFID, g, 99, noLoad); !slices.Equal(got, again) {
			t.Fatalf("gfid %s: %v then %v (the PID must not count)", g, got, again)
		}
		k := slices.Index(good, got[0])
		if want := append(slices.Clone(good[k:]), good[:k]...); !slices.Equal(got, want) {
			t.Fatalf("gfid %s: %v, want the rotation %v", g, got, want)
		}
		counts[got[0]]++
	}
	for _, i := range good {
		if counts[i] < 120 || counts[i] > 280 {
			t.Fatalf("600 files over 3 copies: %v", counts)
		}
	}
	// GFID and PID: mounts read one file from different copies.
	g := fop.NewGFID()
	firsts := map[int]bool{}
	for pid := 1; pid <= 50; pid++ {
		firsts[readOrder(good, ReadHashGFIDPID, g, pid, noLoad)[0]] = true
	}
	if len(firsts) != len(good) {
		t.Fatalf("one file from 50 mounts reads from %v", firsts)
	}
	load := func(n []int64, lat []time.Duration) func(int) (int64, time.Duration) {
		return func(i int) (int64, time.Duration) { return n[i], lat[i] }
	}
	for _, c := range []struct {
		p    ReadPolicy
		n    []int64
		lat  []time.Duration
		want int
	}{
		{ReadLeastOutstanding, []int64{5, 0, 1, 3}, []time.Duration{1, 1, 1, 1}, 2},
		{ReadLeastOutstanding, []int64{0, 0, 0, 0}, []time.Duration{1, 1, 1, 1}, 0}, // a tie: set order
		{ReadLeastLatency, []int64{0, 0, 9, 0}, []time.Duration{9, 1, 2, 5}, 2},
		{ReadLeastLatency, []int64{0, 0, 0, 0}, []time.Duration{9, 1, 7, 5}, 3},
		{ReadLeastLoad, []int64{0, 0, 3, 0}, []time.Duration{9, 1, 2, 10}, 2}, // 2 × 4 reads beats 9 × 1
		{ReadLeastLoad, []int64{0, 0, 4, 0}, []time.Duration{9, 1, 2, 10}, 0}, // 2 × 5 does not
	} {
		got := readOrder(good, c.p, fop.NewGFID(), 1, load(c.n, c.lat))
		if got[0] != c.want || len(got) != len(good) {
			t.Fatalf("%d with %v in flight, latencies %v: %v, want %d first", c.p, c.n, c.lat, got, c.want)
		}
	}
}

func TestReadLoadAverage(t *testing.T) {
	var l readLoad
	done := l.start()
	if n := l.outstanding.Load(); n != 1 {
		t.Fatalf("in flight %d, want 1", n)
	}
	time.Sleep(2 * time.Millisecond)
	done()
	if n, lat := l.outstanding.Load(), time.Duration(l.latency.Load()); n != 0 || lat < 2*time.Millisecond {
		t.Fatalf("after one read: %d in flight, latency %v", n, lat)
	}
}

// A brick's latency estimate fades while no read goes to it, so a brick
// avoided after a slow spell is chosen again.
func TestReadLatencyFades(t *testing.T) {
	var slow, fast readLoad
	now := time.Now()
	slow.latency.Store(int64(80 * time.Millisecond))
	slow.sampled.Store(now.UnixNano())
	fast.latency.Store(int64(5 * time.Millisecond))
	fast.sampled.Store(now.UnixNano())
	loads := []*readLoad{&slow, &fast}
	order := func(at time.Time) int {
		return readOrder([]int{0, 1}, ReadLeastLatency, fop.NewGFID(), 1, func(i int) (int64, time.Duration) {
			return 0, loads[i].recentLatency(at)
		})[0]
	}
	if got := order(now); got != 1 {
		t.Fatalf("reads go to brick %d, want the fast one", got)
	}
	if got := slow.recentLatency(now.Add(3 * latencyHalfLife)); got != 10*time.Millisecond {
		t.Fatalf("after three half-lives: %v, want 10ms", got)
	}
	// The fast brick keeps being read (its estimate stays fresh); the
	// slow one's fades under it within five half-lives.
	later := now.Add(5 * latencyHalfLife)
	fast.sampled.Store(later.UnixNano())
	if got := order(later); got != 0 {
		t.Fatalf("after %v without reads the slow brick is still avoided (%v against %v)", 5*latencyHalfLife, slow.recentLatency(later), fast.recentLatency(later))
	}
	if got := slow.recentLatency(now.Add(100 * latencyHalfLife)); got != 0 {
		t.Fatalf("long after: %v, want 0", got)
	}
}

// With the default policy (by GFID) a set's files are read from all its
// copies, one file always from the same one; the first-copy policy reads
// them all from brick 0.
func TestReadsSpread(t *testing.T) {
	s := newSet(t, 3, Options{ReadPolicy: ReadHashGFID})
	const files = 24
	for i := range files {
		h := create(t, s.v, fmt.Sprintf("f%d", i))
		write(t, s.v, h, 0, []byte(fmt.Sprintf("file %d", i)))
		if err := s.v.Release(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	readFrom := func(v *Volume, i int, flags uint32) int {
		t.Helper()
		r, err := v.Open(ctx, fmt.Sprintf("f%d", i), flags)
		if err != nil {
			t.Fatal(err)
		}
		defer v.Release(ctx, r.Handle)
		got, err := v.Read(ctx, r.Handle, 0, 64)
		if want := fmt.Sprintf("file %d", i); err != nil || string(got) != want {
			t.Fatalf("read f%d: %q %v, want %q", i, got, err, want)
		}
		hd, err := v.handle(r.Handle)
		if err != nil {
			t.Fatal(err)
		}
		return hd.read
	}
	used := map[int]int{}
	for i := range files {
		b := readFrom(s.v, i, syscall.O_RDONLY)
		if again := readFrom(s.v, i, syscall.O_RDWR); again != b {
			t.Fatalf("f%d read from brick %d, then from %d", i, b, again)
		}
		used[b]++
	}
	if len(used) < 2 {
		t.Fatalf("%d files read from bricks %v: not spread", files, used)
	}
	var kids []Brick
	for _, k := range s.v.kids {
		kids = append(kids, k.b)
	}
	first := New(kids, Options{ReadPolicy: ReadFirst, ProbeInterval: 20 * time.Millisecond})
	t.Cleanup(first.Close)
	for i := range files {
		if b := readFrom(first, i, syscall.O_RDONLY); b != 0 {
			t.Fatalf("read-hash-mode 0: f%d read from brick %d", i, b)
		}
	}
	// A file whose copy is gone is read from another.
	var victim, brick int
	for i := range files {
		if b := readFrom(s.v, i, syscall.O_RDONLY); b != 0 {
			victim, brick = i, b
			break
		}
	}
	s.bricks[brick].stop()
	if b := readFrom(s.v, victim, syscall.O_RDONLY); b == brick {
		t.Fatalf("f%d still read from stopped brick %d", victim, brick)
	}
}
