package mount

import (
	"os"
	"runtime"
)

// SpareProcs gives the Go scheduler as many more processors (GOMAXPROCS)
// as go-fuse runs readers of /dev/fuse, unless GOMAXPROCS is set in the
// environment; call it once the server is made, which sizes its readers
// from GOMAXPROCS.
//
// go-fuse reads requests with blocking read(2) calls, up to one per
// processor (at least 2, at most 16). A goroutine in a system call keeps
// its processor, so with every reader waiting for the kernel no processor
// is idle: the runtime's monitor then takes one back every 20 µs and never
// slows down, and each request wakes threads to hand processors around.
// On a 2-CPU machine that was a fifth of a mount's CPU time. With a spare
// processor per reader the readers wait without holding the work up.
// Measured on 2 CPUs, 2,000 files created and written through a mount,
// alternating 3 times: distribute 957-978 -> 1,045-1,091 files/s with the
// mount's CPU time down from 1.36-1.39 s to 1.10-1.18 s.
//
// Where the runtime chose fewer processors than CPUs (a cgroup CPU limit
// or an affinity mask), nothing changes: more would only run into the
// limit. Setting GOMAXPROCS ends the runtime's own updates of it, which
// follow such limits.
func SpareProcs() {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	n := runtime.GOMAXPROCS(0)
	if n < runtime.NumCPU() {
		return
	}
	readers := min(max(n, 2), 16)
	runtime.GOMAXPROCS(n + readers)
}
