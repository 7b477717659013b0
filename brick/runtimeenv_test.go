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
			got := ProcessEnv(in)
			if !slices.Equal(got, c.out) {
				t.Errorf("ProcessEnv(%q) = %q, want %q", c.in, got, c.out)
			}
			if !slices.Equal(in, c.in) {
				t.Errorf("ProcessEnv changed its argument: %q", in)
			}
		})
	}
}
