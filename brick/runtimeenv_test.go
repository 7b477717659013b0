package brick

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
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

func TestBrickProcs(t *testing.T) {
	for _, c := range []struct{ cpus, bricks, want int }{
		{2, 7, 1}, {2, 1, 2}, {2, 2, 1}, {16, 4, 4}, {16, 3, 5}, {1, 1, 1}, {4, 0, 4},
	} {
		if got := BrickProcs(c.cpus, c.bricks); got != c.want {
			t.Errorf("BrickProcs(%d, %d) = %d, want %d", c.cpus, c.bricks, got, c.want)
		}
	}
}

// TestShareCPUs: a brick's processors follow the node's bricks as their
// state files come and go, its own counted before it is written.
func TestShareCPUs(t *testing.T) {
	dir := t.TempDir()
	write := func(id string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, id+".json"), []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set := make(chan int, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		shareCPUs(ctx, slog.New(slog.DiscardHandler), dir, "self", 8, 5*time.Millisecond, func(n int) { set <- n })
	}()
	next := func(want int) {
		t.Helper()
		select {
		case got := <-set:
			if got != want {
				t.Fatalf("GOMAXPROCS set to %d, want %d", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("GOMAXPROCS never set to %d", want)
		}
	}
	next(8) // alone, its own state file not written yet
	write("self")
	write("b")
	next(4)
	write("c")
	write("d")
	// A state file being written is not a brick.
	if err := os.WriteFile(filepath.Join(dir, "e.json.tmp"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	next(2)
	for _, id := range []string{"b", "c", "d"} {
		if err := os.Remove(filepath.Join(dir, id+".json")); err != nil {
			t.Fatal(err)
		}
	}
	// The removals may be seen one at a time: 3 and 2 bricks first.
	for got := 0; got != 8; {
		select {
		case got = <-set:
			if got != 4 && got != 8 {
				t.Fatalf("GOMAXPROCS set to %d on the way from 4 bricks to 1", got)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("GOMAXPROCS never set back to 8")
		}
	}
	select {
	case n := <-set:
		t.Fatalf("GOMAXPROCS set again to %d with nothing changed", n)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	<-done
}
