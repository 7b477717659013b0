package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// results holds every measured figure: target id → metric → one per run.
type results map[string]map[string][]float64

func (r results) add(target string, m map[string]float64) {
	if r[target] == nil {
		r[target] = map[string][]float64{}
	}
	for k, v := range m {
		r[target][k] = append(r[target][k], v)
	}
}

// best is the highest of the runs (0 when not measured): on a shared
// machine the best run is the one least disturbed by others.
func (r results) best(target, metric string) float64 {
	var b float64
	for _, v := range r[target][metric] {
		b = max(b, v)
	}
	return b
}

// spread is (max-min)/max over the runs, to show how noisy a figure was.
func (r results) spread(target, metric string) float64 {
	vs := r[target][metric]
	if len(vs) < 2 {
		return 0
	}
	lo, hi := vs[0], vs[0]
	for _, v := range vs {
		lo, hi = min(lo, v), max(hi, v)
	}
	if hi == 0 {
		return 0
	}
	return (hi - lo) / hi
}

// report is what the table is printed from.
type report struct {
	header  []string // lines above the table
	layouts []layout
	metrics []metric // those measured
	res     results
	errs    map[string]string // target id → why it has no figures
	runs    int
}

func num(v float64) string {
	switch {
	case v == 0:
		return "-"
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 100:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func ratio(a, b float64, suffix string) string {
	if a == 0 || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f%s", a/b, suffix)
}

func (rp *report) write(w io.Writer) {
	for _, h := range rp.header {
		fmt.Fprintln(w, h)
	}
	fmt.Fprintln(w)
	row := "%-17s %-9s %9s %9s %8s %5s %9s %7s %9s %7s  %s\n"
	fmt.Fprintf(w, row, "workload", "unit", "cais", "GlusterFS", "cais/GFS", "goal", "floor", "c/floor", "disk", "c/disk", "goal met")
	fmt.Fprintln(w, strings.Repeat("-", 114))
	for _, l := range rp.layouts {
		fmt.Fprintf(w, "%s (cais %s, GlusterFS %s)\n", l.name, "cais-bench-"+l.key, "gluster-bench-"+l.key)
		for _, m := range rp.metrics {
			c := rp.res.best("cais/"+l.key, m.key)
			g := rp.res.best("gluster/"+l.key, m.key)
			fl := rp.res.best("floor", m.key)
			dk := rp.res.best("disk", m.key)
			cdisk := "-"
			if m.throughput {
				cdisk = ratio(c, dk, "")
			}
			met := goalMet(c, g, dk, m.goal, m.throughput)
			fmt.Fprintf(w, row, "  "+m.name, m.unit, num(c), num(g), ratio(c, g, "x"),
				fmt.Sprintf("%.1fx", m.goal), num(fl), ratio(c, fl, ""), num(dk), cdisk, met)
			if m.key == "write" && l.replica > 1 {
				// The same write against the disk writing the set's
				// copies at once: the floor on one disk.
				dn := rp.res.best("disk", copiesKey(l.replica))
				if dn > 0 {
					fmt.Fprintf(w, row, fmt.Sprintf("    %d copies", l.replica), m.unit, num(c), "", "", "", "", "", num(dn), ratio(c, dn, ""),
						fmt.Sprintf("(disk: %d files written at once)", l.replica))
				}
			}
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "goal met: yes, with the goals; no, with the goals missed.")
	fmt.Fprintln(w, "cais/GFS: cais ÷ GlusterFS, same layout (above 1: cais is faster); goal: the ratio issue 3 asks for.")
	fmt.Fprintln(w, "floor: go-fuse loopback passthrough of a local directory (no network); c/floor: cais ÷ floor.")
	fmt.Fprintln(w, "disk: the workload run directly in a directory of the disk the bricks are on; c/disk: cais ÷ disk, for throughput.")
	fmt.Fprintln(w, "N copies: the disk writing N files at once (1 MiB writes and fsync, through the page cache or O_DIRECT, the better), as a replica N set on one disk must; its c/disk: cais ÷ that.")
	if rp.runs > 1 {
		fmt.Fprintf(w, "Each figure is the best of %d runs; spread (max-min)/max above 25%%:", rp.runs)
		var noisy []string
		for t, ms := range rp.res {
			for m := range ms {
				if s := rp.res.spread(t, m); s > 0.25 {
					noisy = append(noisy, fmt.Sprintf("%s %s %.0f%%", t, m, s*100))
				}
			}
		}
		sort.Strings(noisy)
		if len(noisy) == 0 {
			noisy = []string{"none"}
		}
		fmt.Fprintln(w, " "+strings.Join(noisy, "; "))
	}
	if len(rp.errs) > 0 {
		fmt.Fprintln(w, "\nNot measured:")
		var ids []string
		for id := range rp.errs {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			fmt.Fprintf(w, "  %s: %s\n", id, rp.errs[id])
		}
	}
}

// goalMet is a row's "goal met" cell: cais's figure c against
// GlusterFS's g (goal: the ratio asked for) and, for throughput, against
// the disk's dk (diskGoal): "yes (...)" with the goals, "no (...)" with
// only the goals missed, "-" when a figure is missing.
func goalMet(c, g, dk, goal float64, throughput bool) string {
	if c <= 0 || g <= 0 {
		return "-"
	}
	gfs := fmt.Sprintf("%.1fx GFS", goal)
	disk := fmt.Sprintf("%.0f%% disk", diskGoal*100)
	var goals, missed []string
	goals = append(goals, gfs)
	if c/g < goal {
		missed = append(missed, gfs)
	}
	if throughput && dk > 0 {
		goals = append(goals, disk)
		if c/dk < diskGoal {
			missed = append(missed, disk)
		}
	}
	if len(missed) == 0 {
		return "yes (" + strings.Join(goals, ", ") + ")"
	}
	return "no (" + strings.Join(missed, ", ") + ")"
}
