package main

import (
	"fmt"
	"slices"
	"strings"
)

// layout is a volume's brick layout, built the same way on both systems.
type layout struct {
	key     string // flag value and volume-name suffix
	name    string // as printed in the table
	replica int    // 0: distribute only
	bricks  int
}

var allLayouts = []layout{
	{key: "dist", name: "distribute 2", bricks: 2},
	{key: "rep2", name: "replica 2", replica: 2, bricks: 2},
	{key: "rep3", name: "replica 3", replica: 3, bricks: 3},
}

// createArgs is the shared grammar of "volume create" (cais speaks
// gluster's): NAME [replica N] BRICK... force. Bricks live on the root
// file system, hence force.
func (l layout) createArgs(name string, bricks []string) []string {
	args := []string{"volume", "create", name}
	if l.replica > 0 {
		args = append(args, "replica", fmt.Sprint(l.replica))
	}
	return append(append(args, bricks...), "force")
}

func parseLayouts(s string) ([]layout, error) {
	var out []layout
	for _, k := range strings.Split(s, ",") {
		found := false
		for _, l := range allLayouts {
			if l.key == strings.TrimSpace(k) {
				out, found = append(out, l), true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown layout %q (want dist, rep2, rep3)", k)
		}
	}
	return out, nil
}

// replicaCounts are the layouts' replica counts above 1, each once, in
// increasing order.
func replicaCounts(ls []layout) []int {
	var n []int
	for _, l := range ls {
		if l.replica > 1 && !slices.Contains(n, l.replica) {
			n = append(n, l.replica)
		}
	}
	slices.Sort(n)
	return n
}
