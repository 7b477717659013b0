package distribute

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func TestEvenCoversSpaceOnce(t *testing.T) {
	for n := 1; n <= 64; n++ {
		l := Even(n, 1)
		if a := l.Check(0); !a.OK() {
			t.Fatalf("Even(%d): %+v %+v", n, a, l.Ranges)
		}
		for _, h := range []uint32{0, 1, 1 << 31, 1<<32 - 1, 12345678} {
			i, ok := l.Locate(h)
			if !ok || !l.Ranges[i].Contains(h) {
				t.Fatalf("Even(%d).Locate(%d) = %d %v", n, h, i, ok)
			}
			for j, r := range l.Ranges {
				if j != i && r.Contains(h) {
					t.Fatalf("Even(%d): %d in two ranges", n, h)
				}
			}
		}
	}
}

// Names spread evenly: with 2 and 3 subvolumes no subvolume gets more than
// 3% over its share of 100,000 names.
func TestHashSpreadsNames(t *testing.T) {
	for _, n := range []int{2, 3, 7} {
		l := Even(n, 1)
		counts := make([]int, n)
		const names = 100000
		for i := range names {
			s, ok := l.Locate(Hash(fmt.Sprintf("distvol-file%d.txt", i)))
			if !ok {
				t.Fatal("name not located")
			}
			counts[s]++
		}
		share := names / n
		for s, c := range counts {
			if c > share*103/100 || c < share*97/100 {
				t.Errorf("%d subvolumes: subvolume %d got %d names, share %d", n, s, c, share)
			}
		}
	}
	if Hash("a") == Hash("b") || Hash("x") != Hash("x") {
		t.Fatal("Hash is not a function of the name")
	}
}

func TestWeighted(t *testing.T) {
	l := Weighted([]uint64{100, 300, 0, 100}, 2)
	if a := l.Check(0); !a.OK() {
		t.Fatalf("anomaly %+v in %+v", a, l.Ranges)
	}
	if !l.Ranges[2].Empty {
		t.Fatal("zero weight got a range")
	}
	size := func(r Range) uint64 { return uint64(r.Stop) - uint64(r.Start) + 1 }
	if s0, s1 := size(l.Ranges[0]), size(l.Ranges[1]); s1 < 3*s0-4 || s1 > 3*s0+4 {
		t.Fatalf("sizes %d and %d are not 1:3", s0, s1)
	}
	// Huge weights (bytes of free space) do not overflow.
	l = Weighted([]uint64{1 << 62, 1 << 62}, 1)
	if a := l.Check(0); !a.OK() || l.Ranges[0].Stop != 1<<31-1 {
		t.Fatalf("huge weights: %+v %+v", a, l.Ranges)
	}
	if a := Weighted([]uint64{0, 0}, 1).Check(0); !a.OK() {
		t.Fatal("all-zero weights should fall back to an even split")
	}
}

func TestCheckFindsHolesAndOverlaps(t *testing.T) {
	cases := []struct {
		ranges []Range
		want   Anomaly
	}{
		{[]Range{{Start: 0, Stop: 99}, {Start: 100, Stop: 1<<32 - 1}}, Anomaly{}},
		{[]Range{{Start: 0, Stop: 99}, {Start: 101, Stop: 1<<32 - 1}}, Anomaly{Holes: 1}},
		{[]Range{{Start: 0, Stop: 100}, {Start: 100, Stop: 1<<32 - 1}}, Anomaly{Overlaps: 1}},
		{[]Range{{Start: 1, Stop: 1<<32 - 1}}, Anomaly{Holes: 1}},
		{[]Range{{Start: 0, Stop: 5}}, Anomaly{Holes: 1}},
		{[]Range{{Empty: true}}, Anomaly{Holes: 1}},
	}
	for _, c := range cases {
		if got := (Layout{Ranges: c.ranges}).Check(0); got != c.want {
			t.Errorf("Check(%+v) = %+v, want %+v", c.ranges, got, c.want)
		}
	}
}

func TestRecordRoundTripAndAssemble(t *testing.T) {
	l := Even(3, 7)
	l.Ranges[1] = Range{Empty: true}
	var recs []*Record
	for i := range l.Ranges {
		r, err := DecodeRange(l.EncodeRange(i))
		if err != nil {
			t.Fatal(err)
		}
		if r.Generation != 7 || r.Count != 3 || r.Range != l.Ranges[i] {
			t.Fatalf("record %d: %+v, want %+v", i, r, l.Ranges[i])
		}
		recs = append(recs, &r)
	}
	got, a := Assemble(recs)
	if got.Generation != 7 || a.Missing != 0 || a.Holes != 1 {
		t.Fatalf("assembled %+v, anomaly %+v", got, a)
	}
	// A missing record and a stale generation both count as missing.
	full := Even(3, 8)
	r0, _ := DecodeRange(full.EncodeRange(0))
	r2, _ := DecodeRange(full.EncodeRange(2))
	stale, _ := DecodeRange(Even(3, 7).EncodeRange(1))
	got, a = Assemble([]*Record{&r0, &stale, &r2})
	if a.Missing != 1 || got.Generation != 8 || !got.Ranges[1].Empty {
		t.Fatalf("stale: %+v %+v", got, a)
	}
	_, a = Assemble([]*Record{&r0, nil, &r2})
	if a.Missing != 1 || a.OK() {
		t.Fatalf("nil record: %+v", a)
	}
}

func TestDecodeRangeRefusals(t *testing.T) {
	good := Even(2, 1).EncodeRange(0)
	bad := map[string][]byte{
		"short":      good[:17],
		"long":       append(bytes.Clone(good), 0),
		"version":    append([]byte{2}, good[1:]...),
		"flags":      append([]byte{1, 0x80}, good[2:]...),
		"start>stop": append(bytes.Clone(good[:10]), 0, 0, 0, 9, 0, 0, 0, 1),
	}
	for name, b := range bad {
		if _, err := DecodeRange(b); !errors.Is(err, ErrLayout) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func FuzzDecodeRange(f *testing.F) {
	f.Add(Even(2, 1).EncodeRange(1))
	f.Add([]byte{1, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRange(b)
		if err != nil {
			if !errors.Is(err, ErrLayout) {
				t.Fatalf("error %v does not wrap ErrLayout", err)
			}
			return
		}
		l := Layout{Generation: r.Generation, Ranges: make([]Range, 1)}
		l.Ranges[0] = r.Range
		enc := l.EncodeRange(0)
		r2, err := DecodeRange(enc)
		if err != nil || r2.Range != r.Range || r2.Generation != r.Generation {
			t.Fatalf("round trip: %+v -> %+v, %v", r, r2, err)
		}
	})
}
