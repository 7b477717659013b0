package replicate

import "github.com/cais-platform/cais/fop"

// Kind is the kind of change a changelog counter counts.
type Kind int

// Kinds of change, in the order of a changelog triple.
const (
	Data Kind = iota
	Metadata
	Entry
)

func (k Kind) String() string {
	switch k {
	case Data:
		return "data"
	case Metadata:
		return "metadata"
	case Entry:
		return "entry"
	}
	return "unknown"
}

// Changelog is one brick's counters for one file.
type Changelog []int32

// Dirty is the count of changes of kind k in flight.
func (c Changelog) Dirty(k Kind) int32 { return c.at(0, k) }

// Pending is the count of changes of kind k that brick j missed.
func (c Changelog) Pending(j int, k Kind) int32 { return c.at(1+j, k) }

func (c Changelog) at(slot int, k Kind) int32 {
	i := 3*slot + int(k)
	if i < len(c) {
		return c[i]
	}
	return 0
}

// delta builds a changelog delta for a set of n bricks.
func delta(n int) []int32 { return make([]int32, 3*(n+1)) }

// DirtyDelta adds v to the dirty counter of kind k.
func DirtyDelta(n int, k Kind, v int32) []int32 {
	d := delta(n)
	d[int(k)] = v
	return d
}

// PendingDelta adds v to the pending counters of kind k for the bricks
// in blame.
func PendingDelta(n int, k Kind, v int32, blame []int) []int32 {
	d := delta(n)
	for _, j := range blame {
		d[3*(1+j)+int(k)] = v
	}
	return d
}

// State is what one brick says of a file.
type State struct {
	// Up is false when the brick did not answer.
	Up bool
	// Exists is false when the brick answered that the file is not there.
	Exists    bool
	Changelog Changelog
	Attr      fop.Attr
	// Arbiter bricks are never a source of data.
	Arbiter bool
}

// Decision is what to do about a file of one kind.
type Decision struct {
	// Sources are the bricks with a good copy (every usable copy when
	// nothing needs healing).
	Sources []int
	// Sinks are the bricks to heal from a source.
	Sinks []int
	// SplitBrain: no brick is free of blame, so no source can be chosen.
	SplitBrain bool
	// Dirty: a change was in flight on some brick with no brick blamed
	// (the writer stopped, or is still writing).
	Dirty bool
	// Blocked: a brick is blamed that is down now; heal waits for it.
	Blocked bool
}

// Needed reports whether the file needs any healing.
func (d Decision) Needed() bool { return len(d.Sinks) > 0 || d.SplitBrain || d.Dirty }

// Decide returns the decision for kind k from the bricks' states. Bricks
// that are down or lack the file are neither sources nor sinks (a missing
// file is healed by its directory's entry heal).
func Decide(states []State, k Kind) Decision {
	var d Decision
	n := len(states)
	usable := func(i int) bool {
		s := states[i]
		return s.Up && s.Exists
	}
	blamed := make([]bool, n)
	anyBlame := false
	for i := range n {
		if !usable(i) {
			continue
		}
		for j := range n {
			if j == i || states[i].Changelog.Pending(j, k) <= 0 {
				continue
			}
			if !states[j].Up {
				d.Blocked = true
				continue
			}
			if !states[j].Exists {
				continue
			}
			blamed[j] = true
			anyBlame = true
		}
		if states[i].Changelog.Dirty(k) > 0 {
			d.Dirty = true
		}
	}
	canSource := func(i int) bool { return usable(i) && !(k == Data && states[i].Arbiter) }
	for i := range n {
		if canSource(i) && !blamed[i] {
			d.Sources = append(d.Sources, i)
		}
	}
	if !anyBlame {
		if d.Sources == nil || !d.Dirty {
			return d
		}
		// Dirty with no blame: every copy may be the good one; pick one.
		src := pickDirtySource(states, d.Sources, k)
		for _, i := range d.Sources {
			if i != src && usable(i) {
				d.Sinks = append(d.Sinks, i)
			}
		}
		for i := range n {
			if usable(i) && !canSource(i) {
				d.Sinks = append(d.Sinks, i) // an arbiter's counters are reset too
			}
		}
		d.Sources = []int{src}
		return d
	}
	if len(d.Sources) == 0 {
		d.SplitBrain = true
		return d
	}
	d.Dirty = false
	for i := range n {
		if usable(i) && blamed[i] {
			d.Sinks = append(d.Sinks, i)
		}
	}
	return d
}

// pickDirtySource chooses among copies none of which is blamed: for data,
// the biggest (then the latest modified), as GlusterFS does; otherwise the
// latest changed; ties go to the first brick.
func pickDirtySource(states []State, cands []int, k Kind) int {
	best := cands[0]
	for _, i := range cands[1:] {
		a, b := states[i].Attr, states[best].Attr
		switch {
		case k == Data && a.Size != b.Size:
			if a.Size > b.Size {
				best = i
			}
		case a.Ctime > b.Ctime:
			best = i
		}
	}
	return best
}

// Quorum says whether the bricks in up (by index) may accept changes in a
// set of n bricks: more than half, or exactly half including the first
// (GlusterFS's "auto"); fixed > 0 asks for that many instead.
func Quorum(n int, up []bool, fixed int) bool {
	count := 0
	for _, u := range up {
		if u {
			count++
		}
	}
	if fixed > 0 {
		return count >= fixed
	}
	if 2*count > n {
		return true
	}
	return 2*count == n && len(up) > 0 && up[0]
}
