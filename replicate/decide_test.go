package replicate

import (
	"reflect"
	"testing"

	"github.com/cais-platform/cais/fop"
)

// cl builds a changelog for a set of n bricks: dirty data count, then
// pending data counts per brick.
func cl(n int, dirty int32, pending map[int]int32) Changelog {
	c := Changelog(delta(n))
	c[0] = dirty
	for j, v := range pending {
		c[3*(1+j)] = v
	}
	return c
}

func up(c Changelog) State { return State{Up: true, Exists: true, Changelog: c} }

func TestDecide(t *testing.T) {
	down := State{}
	cases := []struct {
		name   string
		states []State
		want   Decision
	}{
		{"clean", []State{up(nil), up(nil), up(nil)}, Decision{Sources: []int{0, 1, 2}}},
		{"one brick missed writes",
			[]State{up(cl(3, 0, map[int]int32{2: 3})), up(cl(3, 0, map[int]int32{2: 3})), up(nil)},
			Decision{Sources: []int{0, 1}, Sinks: []int{2}}},
		{"blamed brick still down",
			[]State{up(cl(3, 0, map[int]int32{2: 1})), up(cl(3, 0, map[int]int32{2: 1})), down},
			Decision{Sources: []int{0, 1}, Blocked: true}},
		{"blamed by one witness only",
			[]State{up(nil), up(cl(3, 0, map[int]int32{0: 1})), up(nil)},
			Decision{Sources: []int{1, 2}, Sinks: []int{0}}},
		{"split-brain: each blames the other",
			[]State{up(cl(2, 0, map[int]int32{1: 1})), up(cl(2, 0, map[int]int32{0: 1}))},
			Decision{SplitBrain: true}},
		{"a brick blaming itself is ignored",
			[]State{up(cl(2, 0, map[int]int32{0: 4})), up(nil)},
			Decision{Sources: []int{0, 1}}},
		{"dirty everywhere, no blame: pick the biggest",
			[]State{
				{Up: true, Exists: true, Changelog: cl(2, 1, nil), Attr: fop.Attr{Size: 10}},
				{Up: true, Exists: true, Changelog: cl(2, 1, nil), Attr: fop.Attr{Size: 20}},
			},
			Decision{Sources: []int{1}, Sinks: []int{0}, Dirty: true}},
		{"missing copy is neither source nor sink",
			[]State{up(cl(2, 0, map[int]int32{1: 1})), {Up: true}},
			Decision{Sources: []int{0}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Decide(tc.states, Data)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Decide = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// An arbiter is a witness: never a data source, but a source of names and
// metadata.
func TestDecideArbiter(t *testing.T) {
	arb := up(cl(3, 0, map[int]int32{0: 1, 1: 1}))
	arb.Arbiter = true
	states := []State{up(cl(3, 0, map[int]int32{1: 1})), up(cl(3, 0, map[int]int32{0: 1})), arb}
	if d := Decide(states, Data); !d.SplitBrain {
		t.Fatalf("data with only the arbiter unblamed: %+v, want split-brain", d)
	}
	states[2].Changelog = cl(3, 0, map[int]int32{1: 1})
	states[1].Changelog = nil
	d := Decide(states, Data)
	if !reflect.DeepEqual(d.Sources, []int{0}) || !reflect.DeepEqual(d.Sinks, []int{1}) {
		t.Fatalf("arbiter witness: %+v", d)
	}
}

// Property: over every changelog combination of a small set, a decision
// never names a brick both source and sink, never heals from a blamed
// brick, and only reports split-brain when every usable brick is blamed.
func TestDecideProperties(t *testing.T) {
	const n = 3
	for mask := 0; mask < 1<<(n*n); mask++ {
		states := make([]State, n)
		for i := range n {
			p := map[int]int32{}
			for j := range n {
				if mask&(1<<(i*n+j)) != 0 {
					p[j] = 1
				}
			}
			states[i] = up(cl(n, 0, p))
		}
		d := Decide(states, Data)
		blamed := make([]bool, n)
		for i := range n {
			for j := range n {
				if i != j && states[i].Changelog.Pending(j, Data) > 0 {
					blamed[j] = true
				}
			}
		}
		src := map[int]bool{}
		for _, s := range d.Sources {
			src[s] = true
			if blamed[s] {
				t.Fatalf("mask %b: blamed brick %d is a source: %+v", mask, s, d)
			}
		}
		for _, s := range d.Sinks {
			if src[s] {
				t.Fatalf("mask %b: brick %d both source and sink", mask, s)
			}
		}
		all := true
		for _, b := range blamed {
			all = all && b
		}
		if d.SplitBrain != all {
			t.Fatalf("mask %b: split-brain %v, every brick blamed %v", mask, d.SplitBrain, all)
		}
	}
}

func TestQuorum(t *testing.T) {
	cases := []struct {
		n     int
		up    []bool
		fixed int
		want  bool
	}{
		{3, []bool{true, true, false}, 0, true},
		{3, []bool{false, true, false}, 0, false},
		{2, []bool{true, false}, 0, true},  // exactly half, with the first
		{2, []bool{false, true}, 0, false}, // exactly half, without it
		{2, []bool{true, true}, 0, true},
		{4, []bool{false, true, true, false}, 0, false},
		{3, []bool{false, true, false}, 1, true},
	}
	for _, c := range cases {
		if got := Quorum(c.n, c.up, c.fixed); got != c.want {
			t.Errorf("Quorum(%d, %v, %d) = %v, want %v", c.n, c.up, c.fixed, got, c.want)
		}
	}
}
