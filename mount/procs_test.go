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
	// go-fuse runs max(procs, 2) readers, at most 16.
	for _, c := range []struct{ procs, want int }{{1, 3}, {2, 4}, {3, 6}, {16, 32}, {40, 56}} {
		runtime.GOMAXPROCS(c.procs)
		SpareProcs()
		if got := runtime.GOMAXPROCS(0); got != c.want {
			t.Errorf("GOMAXPROCS %d: %d after SpareProcs, want %d", c.procs, got, c.want)
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
