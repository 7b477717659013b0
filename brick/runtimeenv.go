package brick

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// sysmonAwake is the GODEBUG setting ProcessEnv adds: a scheduler trace
// every 2^31-1 ms (24.8 days), the longest the runtime takes.
const sysmonAwake = "schedtrace=2147483647"

// ProcessEnv returns env (a process environment, as os.Environ gives it)
// with the Go runtime setting a brick process runs best with: its monitor
// thread (sysmon) kept from its deep sleep.
//
// The runtime's monitor goes into a deep sleep whenever every processor is
// idle, and the first system call made after that wakes it; awake, it
// polls every 20 µs until everything is idle again. A brick goes idle
// between most of its calls, so each call paid a thread wakeup and a few
// 20 µs polls: on 2 CPUs, the monitor was 16-18% of a brick's profile.
// With a scheduler trace requested, the monitor never deep-sleeps; it backs
// off to a poll every 10 ms instead, and so stays out of the calls' way.
// The trace interval is the longest there is (24.8 days): on a machine up
// for longer than that, a brick writes one trace line to its log when it
// starts and one every 24.8 days after; on others, one once the machine
// has been up that long.
// Measured with 2,000 files created and written through a Distribute mount
// on 2 CPUs: 18,000 -> 9,700 context switches per brick and about a fifth
// less brick CPU time; an idle brick's monitor wakes 100 times a second.
//
// A GODEBUG that already sets schedtrace is left as it is (schedtrace=0
// turns this off).
func ProcessEnv(env []string) []string {
	out := make([]string, 0, len(env)+1)
	last := -1
	for _, kv := range env {
		if strings.HasPrefix(kv, "GODEBUG=") {
			last = len(out)
		}
		out = append(out, kv)
	}
	if last < 0 {
		return append(out, "GODEBUG="+sysmonAwake)
	}
	// The last GODEBUG is the one a process sees.
	val := strings.TrimPrefix(out[last], "GODEBUG=")
	for _, field := range strings.Split(val, ",") {
		if k, _, _ := strings.Cut(field, "="); k == "schedtrace" {
			return out
		}
	}
	if val == "" {
		out[last] = "GODEBUG=" + sysmonAwake
	} else {
		out[last] = "GODEBUG=" + val + "," + sysmonAwake
	}
	return out
}

// BrickProcs is how many processors (GOMAXPROCS) each of a node's bricks
// runs Go code on: the node's (cpus) shared among its bricks, at least
// one each. Blocking system calls (disk I/O) still run side by side on
// threads of their own.
//
// Each brick's runtime otherwise takes every CPU: on a node with as many
// bricks as CPUs or more, the bricks' schedulers wake threads for CPUs
// that the other bricks are using. A brick hands each call to a
// goroutine, and with a processor idle the runtime wakes a second thread
// to run it, which finds it gone and sleeps again; with one processor
// there is no second thread to wake. Measured on 2 CPUs with 7 bricks,
// 2,000 files created and written through a Distribute mount, alternating
// 3 times: 1,007-1,111 -> 1,054-1,407 files/s, context switches per brick
// 8,800-9,500 -> 4,000-4,300 and brick CPU time 0.34-0.48 -> 0.21-0.34 s;
// a 1 GiB sequential write and cold read were unchanged or faster
// (327-399 -> 375-400 MB/s, 763-846 -> 816-986 MB/s).
func BrickProcs(cpus, bricks int) int {
	if bricks < 1 {
		bricks = 1
	}
	return max(1, cpus/bricks)
}

// nodeBricks counts the bricks of the node: the state files the
// supervisor keeps in runDir (one per brick it runs), with this brick's
// own counted even before the supervisor has written it.
func nodeBricks(runDir, self string) int {
	names, _ := filepath.Glob(stateFilePath(runDir, "*"))
	n := len(names)
	if _, err := os.Stat(stateFilePath(runDir, self)); err != nil {
		n++
	}
	return n
}

// ShareCPUs keeps the brick's GOMAXPROCS at its share of the node's CPUs
// (BrickProcs) while the node's bricks come and go, counting them in the
// supervisor's runDir every interval until ctx ends. The node's CPUs are
// the GOMAXPROCS the process started with (the CPUs, or its CPU limit).
// A GOMAXPROCS in the environment is the user's choice: then it does
// nothing.
func ShareCPUs(ctx context.Context, log *slog.Logger, runDir, self string, interval time.Duration) {
	if os.Getenv("GOMAXPROCS") != "" || runDir == "" {
		return
	}
	shareCPUs(ctx, log, runDir, self, runtime.GOMAXPROCS(0), interval, func(n int) { runtime.GOMAXPROCS(n) })
}

func shareCPUs(ctx context.Context, log *slog.Logger, runDir, self string, cpus int, interval time.Duration, set func(int)) {
	cur := 0
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		bricks := nodeBricks(runDir, self)
		if n := BrickProcs(cpus, bricks); n != cur {
			set(n)
			log.Info("brick: Go processors set to its share of the node's CPUs", "procs", n, "cpus", cpus, "bricks", bricks)
			cur = n
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
