package main

import (
	"fmt"
	"strings"
	"testing"
)

func TestGoalMet(t *testing.T) {
	for _, c := range []struct {
		c, g, dk, goal float64
		throughput     bool
		want           string
	}{
		{2000, 900, 0, 3, false, "no (3.0x GFS)"},
		{3000, 900, 0, 3, false, "yes (3.0x GFS)"},
		{755, 621, 1018, 1.5, true, "no (1.5x GFS)"},           // 74% of the disk
		{1121, 372, 1823, 1.5, true, "no (70% disk)"},          // 3.01x GlusterFS
		{162, 160, 1475, 1.5, true, "no (1.5x GFS, 70% disk)"}, // both
		{1500, 900, 2000, 1.5, true, "yes (1.5x GFS, 70% disk)"},
		{1500, 900, 0, 1.5, true, "yes (1.5x GFS)"}, // no disk figure
		{0, 900, 0, 3, false, "-"},
		{100, 0, 0, 3, false, "-"},
	} {
		if got := goalMet(c.c, c.g, c.dk, c.goal, c.throughput); got != c.want {
			t.Errorf("goalMet(%v, %v, %v, %v, %v) = %q, want %q", c.c, c.g, c.dk, c.goal, c.throughput, got, c.want)
		}
	}
}

func TestReplicaCounts(t *testing.T) {
	got := replicaCounts([]layout{allLayouts[2], allLayouts[0], allLayouts[1], allLayouts[2]})
	if fmt.Sprint(got) != "[2 3]" {
		t.Fatalf("replicaCounts = %v, want [2 3]", got)
	}
	if got := replicaCounts(allLayouts[:1]); len(got) != 0 {
		t.Fatalf("distribute only: %v, want none", got)
	}
}

// The seq write of a replicated layout is followed by the disk's write of
// as many copies, and cais's figure against it.
func TestCopiesRow(t *testing.T) {
	rp := &report{layouts: allLayouts, res: results{}, metrics: metrics[:1], runs: 1}
	rp.res.add("disk", map[string]float64{"write": 2000, "write2": 1200, "write3": 800})
	rp.res.add("cais/rep3", map[string]float64{"write": 700})
	rp.res.add("cais/rep2", map[string]float64{"write": 900})
	var b strings.Builder
	rp.write(&b)
	out := b.String()
	for _, want := range []string{"    3 copies", "0.88  (disk: 3 files", "    2 copies", "0.75  (disk: 2 files"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	if strings.Count(out, "copies") != 3 { // two rows and the legend
		t.Errorf("distribute got a copies row:\n%s", out)
	}
}
