package brick

import (
	"slices"
	"testing"
)

func TestProcessEnv(t *testing.T) {
	for _, c := range []struct {
		name    string
		in, out []string
	}{
		{"no GODEBUG", []string{"PATH=/bin"}, []string{"PATH=/bin", "GODEBUG=" + sysmonAwake}},
		{"empty GODEBUG", []string{"GODEBUG=", "A=b"}, []string{"GODEBUG=" + sysmonAwake, "A=b"}},
		{"other settings kept", []string{"GODEBUG=madvdontneed=1"}, []string{"GODEBUG=madvdontneed=1," + sysmonAwake}},
		{"schedtrace set by the user", []string{"GODEBUG=gctrace=1,schedtrace=0"}, []string{"GODEBUG=gctrace=1,schedtrace=0"}},
		{"the last GODEBUG counts", []string{"GODEBUG=schedtrace=5", "GODEBUG=gctrace=1"}, []string{"GODEBUG=schedtrace=5", "GODEBUG=gctrace=1," + sysmonAwake}},
		{"a name that only starts alike", []string{"GODEBUG=schedtracex=1"}, []string{"GODEBUG=schedtracex=1," + sysmonAwake}},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := slices.Clone(c.in)
			got := ProcessEnv(in, 0)
			if !slices.Equal(got, c.out) {
				t.Errorf("ProcessEnv(%q) = %q, want %q", c.in, got, c.out)
			}
			if !slices.Equal(in, c.in) {
				t.Errorf("ProcessEnv changed its argument: %q", in)
			}
		})
	}
}

// TestProcessEnvProcs: the processors are added unless the environment
// sets GOMAXPROCS (the user's choice, or none asked for).
func TestProcessEnvProcs(t *testing.T) {
	for _, c := range []struct {
		name  string
		in    []string
		procs int
		out   []string
	}{
		{"added", []string{"PATH=/bin"}, 3, []string{"PATH=/bin", "GOMAXPROCS=3", "GODEBUG=" + sysmonAwake}},
		{"set by the user", []string{"GOMAXPROCS=8"}, 1, []string{"GOMAXPROCS=8", "GODEBUG=" + sysmonAwake}},
		{"set empty by the user", []string{"GOMAXPROCS="}, 1, []string{"GOMAXPROCS=", "GODEBUG=" + sysmonAwake}},
		{"none asked for", []string{"PATH=/bin"}, 0, []string{"PATH=/bin", "GODEBUG=" + sysmonAwake}},
		{"a name that only starts alike", []string{"GOMAXPROCSX=2"}, 1, []string{"GOMAXPROCSX=2", "GOMAXPROCS=1", "GODEBUG=" + sysmonAwake}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := ProcessEnv(slices.Clone(c.in), c.procs); !slices.Equal(got, c.out) {
				t.Errorf("ProcessEnv(%q, %d) = %q, want %q", c.in, c.procs, got, c.out)
			}
		})
	}
}

func TestBrickProcs(t *testing.T) {
	for _, c := range []struct{ cpus, bricks, want int }{
		{2, 7, 1}, {2, 1, 2}, {2, 2, 1}, {16, 4, 4}, {16, 3, 5}, {1, 1, 1}, {4, 0, 4},
	} {
		if got := BrickProcs(c.cpus, c.bricks); got != c.want {
			t.Errorf("BrickProcs(%d, %d) = %d, want %d", c.cpus, c.bricks, got, c.want)
		}
	}
}
