package mount

import (
	"os"
	"runtime"
	"testing"
)

func TestSpareProcs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	if v, ok := os.LookupEnv("GOMAXPROCS"); ok {
		t.Cleanup(func() { os.Setenv("GOMAXPROCS", v) })
	} else {
		t.Cleanup(func() { os.Unsetenv("GOMAXPROCS") })
	}
	os.Unsetenv("GOMAXPROCS")
	// go-fuse runs max(procs, 2) readers, at most 16; below the CPU
	// count (a CPU limit) nothing changes.
	cpus := runtime.NumCPU()
	for _, c := range []struct{ procs, want int }{
		{cpus, cpus + min(max(cpus, 2), 16)},
		{cpus + 1, cpus + 1 + min(max(cpus+1, 2), 16)},
		{cpus + 30, cpus + 46},
	} {
		runtime.GOMAXPROCS(c.procs)
		SpareProcs()
		if got := runtime.GOMAXPROCS(0); got != c.want {
			t.Errorf("GOMAXPROCS %d: %d after SpareProcs, want %d", c.procs, got, c.want)
		}
	}
	if cpus > 1 {
		runtime.GOMAXPROCS(cpus - 1)
		SpareProcs()
		if got := runtime.GOMAXPROCS(0); got != cpus-1 {
			t.Errorf("GOMAXPROCS %d under %d CPUs: %d after SpareProcs, want it kept", cpus-1, cpus, got)
		}
	}
	// A GOMAXPROCS the user set stays.
	os.Setenv("GOMAXPROCS", "3")
	runtime.GOMAXPROCS(3)
	SpareProcs()
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Errorf("with GOMAXPROCS=3 in the environment: %d after SpareProcs", got)
	}
}
