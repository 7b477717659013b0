// Package distribute is the elastic-hashing layer of a cais volume: files
// are spread over subvolumes (bricks, or replica, stripe or disperse sets)
// by the hash of their name, with no metadata server.
//
// Each directory's 32-bit hash space is split among the subvolumes; each
// subvolume's copy of the directory records, in the extended attribute
// LayoutXattr, the one range it owns. A client reads the ranges from every
// subvolume when it looks a directory up, assembles the directory's Layout,
// and from then on sends a name to the one subvolume whose range holds the
// name's hash. Directories exist on every subvolume; a listing merges them.
//
// This file is the pure part: hashing, splitting, encoding and checking
// layouts. It does no I/O.
package distribute

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"sort"

	"github.com/cespare/xxhash/v2"
)

// LayoutXattr holds a subvolume's range of a directory's hash space.
const LayoutXattr = "trusted.cais.dht"

// ErrLayout is returned for an undecodable layout record.
var ErrLayout = errors.New("malformed layout record")

// Hash is the position of a file name in its directory's hash space.
func Hash(name string) uint32 {
	h := xxhash.Sum64String(name)
	return uint32(h>>32) ^ uint32(h)
}

// Range is an inclusive range of the hash space. A subvolume with no range
// (it holds no new files, e.g. while being removed) has Empty set.
type Range struct {
	Start, Stop uint32
	Empty       bool
}

// Contains reports whether h falls in the range.
func (r Range) Contains(h uint32) bool { return !r.Empty && h >= r.Start && h <= r.Stop }

// Layout is a directory's split of the hash space, one range per
// subvolume, indexed like the volume's subvolumes. Generation grows each
// time the directory is re-laid out (after add-brick and rebalance).
type Layout struct {
	Generation uint32
	Ranges     []Range
}

// Even splits the hash space into n equal ranges, in subvolume order.
func Even(n int, generation uint32) Layout {
	l := Layout{Generation: generation, Ranges: make([]Range, n)}
	if n == 0 {
		return l
	}
	step := uint64(1<<32) / uint64(n)
	for i := range n {
		start := uint64(i) * step
		stop := start + step - 1
		if i == n-1 {
			stop = 1<<32 - 1
		}
		l.Ranges[i] = Range{Start: uint32(start), Stop: uint32(stop)}
	}
	return l
}

// Weighted splits the hash space in proportion to weights (for instance
// the free space of each subvolume); a zero weight gets no range.
func Weighted(weights []uint64, generation uint32) Layout {
	l := Layout{Generation: generation, Ranges: make([]Range, len(weights))}
	var total uint64
	for _, w := range weights {
		total += w
	}
	if total == 0 {
		return Even(len(weights), generation)
	}
	var start uint64
	last := -1
	for i, w := range weights {
		if w > 0 {
			last = i
		}
	}
	for i, w := range weights {
		if w == 0 {
			l.Ranges[i] = Range{Empty: true}
			continue
		}
		// w/total of 2^32, computed in 128 bits.
		hi, lo := bits.Mul64(w, 1<<32)
		size, _ := bits.Div64(hi, lo, total)
		stop := start + size - 1
		if i == last || stop > 1<<32-1 {
			stop = 1<<32 - 1
		}
		if size == 0 {
			l.Ranges[i] = Range{Empty: true}
			continue
		}
		l.Ranges[i] = Range{Start: uint32(start), Stop: uint32(stop)}
		start = stop + 1
	}
	return l
}

// Locate returns the subvolume whose range holds h.
func (l Layout) Locate(h uint32) (int, bool) {
	for i, r := range l.Ranges {
		if r.Contains(h) {
			return i, true
		}
	}
	return -1, false
}

// Anomaly describes what is wrong with an assembled layout.
type Anomaly struct {
	Holes    int // parts of the space no subvolume owns
	Overlaps int // parts owned twice
	Missing  int // subvolumes that returned no range at all
}

// OK reports a layout that covers the space exactly once.
func (a Anomaly) OK() bool { return a.Holes == 0 && a.Overlaps == 0 && a.Missing == 0 }

// Check finds holes and overlaps in a layout. missing counts subvolumes
// whose record was absent (a directory created while they were down).
func (l Layout) Check(missing int) Anomaly {
	a := Anomaly{Missing: missing}
	var rs []Range
	for _, r := range l.Ranges {
		if !r.Empty {
			rs = append(rs, r)
		}
	}
	if len(rs) == 0 {
		a.Holes = 1
		return a
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].Start < rs[j].Start })
	if rs[0].Start != 0 {
		a.Holes++
	}
	for i := 1; i < len(rs); i++ {
		prevStop := uint64(rs[i-1].Stop)
		switch {
		case uint64(rs[i].Start) > prevStop+1:
			a.Holes++
		case uint64(rs[i].Start) <= prevStop:
			a.Overlaps++
		}
	}
	maxStop := uint32(0)
	for _, r := range rs {
		maxStop = max(maxStop, r.Stop)
	}
	if maxStop != 1<<32-1 {
		a.Holes++
	}
	return a
}

// record layout (big-endian), 18 bytes:
//
//	uint8  version (1)
//	uint8  flags (bit 0: empty range)
//	uint32 generation
//	uint32 subvolume count
//	uint32 start
//	uint32 stop
const (
	recordVersion = 1
	recordLen     = 18
)

// EncodeRange encodes subvolume i's record of a layout.
func (l Layout) EncodeRange(i int) []byte {
	r := l.Ranges[i]
	b := make([]byte, 0, recordLen)
	flags := byte(0)
	if r.Empty {
		flags |= 1
	}
	b = append(b, recordVersion, flags)
	b = binary.BigEndian.AppendUint32(b, l.Generation)
	b = binary.BigEndian.AppendUint32(b, uint32(len(l.Ranges)))
	b = binary.BigEndian.AppendUint32(b, r.Start)
	b = binary.BigEndian.AppendUint32(b, r.Stop)
	return b
}

// Record is one decoded layout record.
type Record struct {
	Generation uint32
	Count      uint32
	Range      Range
}

// DecodeRange decodes a record written by EncodeRange.
func DecodeRange(b []byte) (Record, error) {
	if len(b) != recordLen {
		return Record{}, fmt.Errorf("%w: %d bytes, want %d", ErrLayout, len(b), recordLen)
	}
	if b[0] != recordVersion {
		return Record{}, fmt.Errorf("%w: version %d", ErrLayout, b[0])
	}
	if b[1]&^1 != 0 {
		return Record{}, fmt.Errorf("%w: unknown flags %#x", ErrLayout, b[1])
	}
	rec := Record{
		Generation: binary.BigEndian.Uint32(b[2:6]),
		Count:      binary.BigEndian.Uint32(b[6:10]),
		Range:      Range{Start: binary.BigEndian.Uint32(b[10:14]), Stop: binary.BigEndian.Uint32(b[14:18]), Empty: b[1]&1 != 0},
	}
	if !rec.Range.Empty && rec.Range.Start > rec.Range.Stop {
		return Record{}, fmt.Errorf("%w: start %d after stop %d", ErrLayout, rec.Range.Start, rec.Range.Stop)
	}
	if rec.Range.Empty {
		rec.Range.Start, rec.Range.Stop = 0, 0
	}
	return rec, nil
}

// Assemble builds a directory's layout from the records its subvolumes
// returned; a nil entry is a subvolume without a record. The generation is
// the newest seen; records of an older generation count as missing, so the
// caller heals them.
func Assemble(records []*Record) (Layout, Anomaly) {
	l := Layout{Ranges: make([]Range, len(records))}
	for _, r := range records {
		if r != nil && r.Generation > l.Generation {
			l.Generation = r.Generation
		}
	}
	missing := 0
	for i, r := range records {
		if r == nil || r.Generation != l.Generation || int(r.Count) != len(records) {
			l.Ranges[i] = Range{Empty: true}
			missing++
			continue
		}
		l.Ranges[i] = r.Range
	}
	return l, l.Check(missing)
}
