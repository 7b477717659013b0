package main

import "testing"

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
