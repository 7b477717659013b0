package replicate

import (
	"crypto/rand"
	"fmt"
	"slices"
	"syscall"
	"testing"

	"github.com/cais-platform/cais/fop"
)

func randomGFID(t *testing.T) fop.GFID {
	t.Helper()
	var g fop.GFID
	if _, err := rand.Read(g[:]); err != nil {
		t.Fatal(err)
	}
	return g
}

func TestReadOrder(t *testing.T) {
	g := randomGFID(t)
	if got := (ReadPolicy{}).order([]int{0, 1, 2}, 3, g); !slices.Equal(got, []int{0, 1, 2}) {
		t.Fatalf("mode 0: %v, want the set's order", got)
	}
	if got := (ReadPolicy{Local: []bool{false, false, true}}).order([]int{0, 1, 2}, 3, g); !slices.Equal(got, []int{2, 0, 1}) {
		t.Fatalf("local brick 2, mode 0: %v, want [2 0 1]", got)
	}
	// Spread: over many files each brick comes first about a third of
	// the time; one file always gets the same order; every order is a
	// permutation of the bricks given.
	first := map[int]int{}
	const files = 3000
	for range files {
		g := randomGFID(t)
		o := (ReadPolicy{Hash: true}).order([]int{0, 1, 2}, 3, g)
		if again := (ReadPolicy{Hash: true}).order([]int{0, 1, 2}, 3, g); !slices.Equal(o, again) {
			t.Fatalf("one GFID, two orders: %v %v", o, again)
		}
		if s := slices.Sorted(slices.Values(o)); !slices.Equal(s, []int{0, 1, 2}) {
			t.Fatalf("order %v is not a permutation of [0 1 2]", o)
		}
		first[o[0]]++
	}
	for i := range 3 {
		if first[i] < files/4 || first[i] > files*5/12 {
			t.Fatalf("brick %d read first for %d of %d files: %v", i, first[i], files, first)
		}
	}
	// Local bricks stay first whatever the hash says; the rest follow.
	for range 100 {
		o := (ReadPolicy{Hash: true, Local: []bool{false, true, true}}).order([]int{0, 1, 2}, 3, randomGFID(t))
		if o[2] != 0 {
			t.Fatalf("remote brick 0 not last: %v", o)
		}
	}
	// A brick down is not in idx and stays out.
	for range 100 {
		o := (ReadPolicy{Hash: true}).order([]int{0, 2}, 3, randomGFID(t))
		if s := slices.Sorted(slices.Values(o)); !slices.Equal(s, []int{0, 2}) {
			t.Fatalf("order of [0 2]: %v", o)
		}
	}
}

// Reads of different files go to different bricks of a set, or to the
// local one, on real bricks.
func TestReadsSpreadOverSet(t *testing.T) {
	readers := func(s *set) map[int]int {
		t.Helper()
		out := map[int]int{}
		for i := range 30 {
			p := fmt.Sprintf("f%d", i)
			h := create(t, s.v, p)
			write(t, s.v, h, 0, []byte(p))
			s.v.Release(ctx, h)
			r, err := s.v.Open(ctx, p, syscall.O_RDONLY)
			if err != nil {
				t.Fatal(err)
			}
			rh, _ := s.v.handle(r.Handle)
			out[rh.read]++
			if got, err := s.v.Read(ctx, r.Handle, 0, 100); err != nil || string(got) != p {
				t.Fatalf("read %s: %q %v", p, got, err)
			}
			s.v.Release(ctx, r.Handle)
		}
		return out
	}
	if got := readers(newSet(t, 3, Options{})); len(got) != 1 || got[0] != 30 {
		t.Fatalf("mode 0: files read from %v, want all from brick 0", got)
	}
	if got := readers(newSet(t, 3, Options{Read: ReadPolicy{Hash: true}})); len(got) < 2 {
		t.Fatalf("hashed reads of 30 files all from one brick: %v", got)
	}
	if got := readers(newSet(t, 3, Options{Read: ReadPolicy{Hash: true, Local: []bool{false, true, false}}})); len(got) != 1 || got[1] != 30 {
		t.Fatalf("with brick 1 local: files read from %v, want all from brick 1", got)
	}
}
