package replicate

import (
	"hash/fnv"
	"slices"

	"github.com/cais-platform/cais/fop"
)

// ReadPolicy chooses which good copy of a file a client reads, as
// GlusterFS's cluster.choose-local and cluster.read-hash-mode do.
type ReadPolicy struct {
	// Local marks the bricks on the client's own machine (by index in the
	// set): they are read first (choose-local).
	Local []bool
	// Hash spreads reads over the set: each file is read from the brick
	// its GFID picks among the preferred ones (read-hash-mode 1), so
	// different files go to different bricks and one file always to the
	// same. Without it the first brick is read (read-hash-mode 0).
	Hash bool
}

// order returns the bricks of idx (a set of n bricks) in the order a
// file with identity gfid is read from them: local bricks first, then the
// others; within each group from the brick the GFID picks onwards.
func (p ReadPolicy) order(idx []int, n int, gfid fop.GFID) []int {
	if len(idx) < 2 {
		return idx
	}
	start := 0
	if p.Hash && n > 0 {
		h := fnv.New32a()
		h.Write(gfid[:])
		start = int(h.Sum32() % uint32(n))
	}
	out := slices.Clone(idx)
	key := func(i int) int {
		k := (i - start + n) % n
		if i >= len(p.Local) || !p.Local[i] {
			k += n
		}
		return k
	}
	slices.SortStableFunc(out, func(a, b int) int { return key(a) - key(b) })
	return out
}
