// Command bench measures cais against GlusterFS 10.3 on this machine, side
// by side in one run (issue 3, point 7). make bench runs it:
//
//	make bench                          # the full run, about 15 minutes
//	make bench BENCH_ARGS="-quick"      # small sizes, a couple of minutes
//	go run ./test/bench -h              # every flag
//
// It starts a two-node cais pool (caisd on 127.0.0.60 and .61, ports
// 24160+, bricks 51160+) and a glusterd of its own (on 127.0.0.69:24007,
// its state in the bench's directory, bricks on ports 49152-49251), makes
// the same volume on both for each layout (distribute over 2 bricks,
// replica 2, replica 3; every brick under -dir, on the same disk), mounts
// them (cais mount, mount -t glusterfs), mounts a go-fuse loopback of a
// local directory as the FUSE floor, and runs each workload on every
// target in turn, so that load from others on the machine falls on all of
// them alike. It prints the table and writes it under -out. Everything it
// starts is stopped and removed at the end, after a failure, and on ^C;
// a run also clears what a crashed earlier run left in -dir.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	// The bench re-executes itself as the loopback file system's server.
	if len(os.Args) == 4 && os.Args[1] == "loopback" {
		if err := serveLoopback(os.Args[2], os.Args[3]); err != nil {
			fmt.Fprintln(os.Stderr, "loopback:", err)
			os.Exit(1)
		}
		return
	}
	os.Exit(benchMain())
}

type config struct {
	dir, bin, out string
	layouts       []layout
	groups        []group
	systems       map[string]bool
	runs          int
	keep          bool
	fs            string // ext4: a file system of the bench's own; none
	perfDir       string
	transport     string
	warm          int64 // bytes written once after the drops before sequential workloads, on a reporting balloon
}

// target is one place the workloads run in.
type target struct {
	id  string // disk, floor, cais/<layout>, gluster/<layout>
	dir string // the mounted (or local) directory
	err error  // why it could not be set up
	pid int    // the FUSE server process, when the bench started it
}

func benchMain() int {
	w := newWorkloads()
	var cfg config
	var layoutsFlag, groupsFlag, systemsFlag string
	var quick bool
	flag.StringVar(&cfg.dir, "dir", "/var/tmp/cais-bench", "work directory: bricks, mounts, daemons' state (on the disk under test, not tmpfs); emptied first")
	flag.StringVar(&cfg.bin, "bin", "bin", "directory holding the cais and caisd binaries (make build)")
	flag.StringVar(&cfg.out, "out", "bench-results", "directory the table is written to")
	flag.StringVar(&layoutsFlag, "layouts", "dist,rep2,rep3", "volume layouts: dist (distribute over 2 bricks), rep2, rep3")
	flag.StringVar(&groupsFlag, "workloads", "seq,small,ls,dirs", "workloads: seq (sequential write/read), small (4 KiB files), ls (ls -l), dirs (mkdir/rmdir)")
	flag.StringVar(&systemsFlag, "systems", "cais,gluster,floor,disk", "what to measure: cais, gluster, floor (FUSE loopback), disk")
	flag.IntVar(&w.sizeMiB, "size", 1024, "sequential file size in MiB")
	flag.IntVar(&w.files, "files", 5000, "number of 4 KiB files")
	flag.IntVar(&w.entries, "entries", 10000, "entries of the ls -l directory")
	flag.IntVar(&w.dirs, "dirs", 2000, "directories made and removed")
	flag.IntVar(&cfg.runs, "runs", 1, "runs of every workload; the table shows the best")
	flag.BoolVar(&quick, "quick", false, "small sizes (-size 128 -files 1000 -entries 2000 -dirs 500) for a run of a few minutes")
	flag.StringVar(&cfg.perfDir, "perf", "", "record each workload on each cais and loopback mount process with perf into this directory (perf record -g; a perf report summary beside each)")
	flag.StringVar(&cfg.transport, "transport", "auto", "cais mount --transport: auto (the bricks, all on this machine, through their Unix sockets) or tcp (TLS over TCP, as to bricks on other machines)")
	flag.StringVar(&cfg.fs, "fs", "ext4", "the work directory's file system: ext4 (a new one with its journal, as a brick's disk, in an image file beside the directory, through a loop device) or none (the directory's own)")
	var warmGiB int
	flag.IntVar(&warmGiB, "warm-memory", 4, "GiB of memory written once after the cache drop before a sequential write or read, when the machine's balloon reports free pages to its hypervisor (warm.go); 0: never")
	flag.BoolVar(&cfg.keep, "keep", false, "leave the work directory's files (not the processes or mounts) for inspection")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if quick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for name, v := range map[string]int{"size": 128, "files": 1000, "entries": 2000, "dirs": 500} {
			if !set[name] {
				_ = flag.Set(name, fmt.Sprint(v))
			}
		}
	}
	if warmGiB < 0 {
		return usage(fmt.Errorf("-warm-memory %d: want 0 or more GiB", warmGiB))
	}
	cfg.warm = int64(warmGiB) << 30
	var err error
	if cfg.layouts, err = parseLayouts(layoutsFlag); err != nil {
		return usage(err)
	}
	if cfg.groups, err = parseGroups(groupsFlag); err != nil {
		return usage(err)
	}
	if cfg.fs != "ext4" && cfg.fs != "none" {
		return usage(fmt.Errorf("-fs %q: want ext4 or none", cfg.fs))
	}
	cfg.systems = map[string]bool{}
	for _, s := range strings.Split(systemsFlag, ",") {
		switch s {
		case "cais", "gluster", "floor", "disk":
			cfg.systems[s] = true
		default:
			return usage(fmt.Errorf("unknown system %q", s))
		}
	}
	if os.Geteuid() != 0 {
		return usage(fmt.Errorf("run as root: mounts, bricks' trusted.* attributes and drop_caches need it"))
	}
	if cfg.dir, err = filepath.Abs(cfg.dir); err != nil {
		return usage(err)
	}
	if cfg.bin, err = filepath.Abs(cfg.bin); err != nil {
		return usage(err)
	}

	cl := &cleanups{log: log}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sig
		log.Warn("interrupted: cleaning up", "signal", s)
		cancel()
		cl.run()
		os.Exit(130)
	}()
	defer cl.run()

	rp, err := bench(ctx, log, cl, &cfg, w)
	if err != nil {
		log.Error("bench", "err", err)
		return 1
	}
	var sb strings.Builder
	rp.write(&sb)
	fmt.Print("\n" + sb.String())
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		log.Error("results", "err", err)
		return 1
	}
	stamp := time.Now().Format("20060102-150405")
	for _, name := range []string{"bench-results.txt", "bench-" + stamp + ".txt"} {
		if err := os.WriteFile(filepath.Join(cfg.out, name), []byte(sb.String()), 0o644); err != nil {
			log.Error("results", "err", err)
			return 1
		}
	}
	log.Info("table written", "file", filepath.Join(cfg.out, "bench-results.txt"))
	return 0
}

func usage(err error) int {
	fmt.Fprintln(os.Stderr, "bench:", err)
	return 2
}

func parseGroups(s string) ([]group, error) {
	var out []group
	for _, k := range strings.Split(s, ",") {
		found := false
		for _, g := range groups {
			if g.key == k {
				out, found = append(out, g), true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown workload %q (want seq, small, ls, dirs)", k)
		}
	}
	return out, nil
}

// bench sets every target up, runs the workloads and returns the report.
// What it starts is pushed on cl, which the caller runs.
func bench(ctx context.Context, log *slog.Logger, cl *cleanups, cfg *config, w *workloads) (*report, error) {
	if err := clearStale(log, cfg.dir, true); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.dir, 0o755); err != nil {
		return nil, err
	}
	var notes []string
	if cfg.fs == "ext4" {
		// Copies of the sequential file in one run: the disk's and the
		// floor's, and each layout's for cais and for GlusterFS.
		copies := 2
		for _, l := range cfg.layouts {
			copies += 2 * max(l.replica, 1)
		}
		copies += slices.Max(append(replicaCounts(cfg.layouts), 0)) // the disk's copies
		note, err := brickFS(ctx, log, cl, cfg.dir, brickFSSize(w.sizeMiB, cfg.runs, copies), cfg.keep)
		if err != nil {
			return nil, fmt.Errorf("the bricks' file system: %w", err)
		}
		notes = append(notes, note)
	}
	// Pushed after the file system's, so it runs before: whatever a
	// failed step left.
	cl.push("clear "+cfg.dir, func() error { return clearStale(log, cfg.dir, !cfg.keep) })
	if err := dropCaches(); err != nil {
		w.noDrop = true
		notes = append(notes, fmt.Sprintf("drop_caches refused (%v): cold reads use O_DIRECT on the client; brick-side caches stay warm, and ls -l 'cold' is not cold.", err))
	} else {
		notes = append(notes, "Caches dropped (sync; echo 3 > /proc/sys/vm/drop_caches) before every target's workload, the sequential read and the first ls -l.")
		if dev, ok := freePageReporting(); ok && cfg.warm > 0 {
			w.warm = cfg.warm
			notes = append(notes, fmt.Sprintf("This machine's balloon (%s) reports free pages to its hypervisor, which unmaps them: after each drop before a sequential write or read the bench writes once to %d GiB of memory and frees it, so that no target's pages cost a host fault on first write (the disk column's reads are filled by DMA and never do; -warm-memory 0 to measure without).", dev, cfg.warm>>30))
		}
	}
	fsType := fsTypeOf(cfg.dir)
	start := time.Now()
	load0 := loadAvg()
	version := binaryVersion(ctx, cfg.bin)

	var targets []*target
	add := func(id, dir string) *target {
		t := &target{id: id, dir: dir}
		targets = append(targets, t)
		return t
	}
	mnt := filepath.Join(cfg.dir, "mnt")
	if cfg.systems["disk"] {
		t := add("disk", filepath.Join(cfg.dir, "disk"))
		t.err = os.MkdirAll(t.dir, 0o755)
	}
	if cfg.systems["floor"] {
		t := add("floor", filepath.Join(mnt, "floor"))
		t.pid, t.err = mountLoopback(ctx, cl, filepath.Join(cfg.dir, "floor-src"), t.dir, filepath.Join(cfg.dir, "loopback.log"))
	}
	var cais []*target
	var gl []*target
	for _, l := range cfg.layouts {
		if cfg.systems["cais"] {
			cais = append(cais, add("cais/"+l.key, filepath.Join(mnt, "cais-"+l.key)))
		}
		if cfg.systems["gluster"] {
			gl = append(gl, add("gluster/"+l.key, filepath.Join(mnt, "gluster-"+l.key)))
		}
	}
	if len(cais) > 0 {
		log.Info("starting the cais pool")
		setupCais(ctx, log, cl, cfg, cais)
	}
	if len(gl) > 0 {
		log.Info("starting glusterd")
		setupGluster(ctx, log, cl, cfg, gl)
	}

	rp := &report{layouts: cfg.layouts, res: results{}, errs: map[string]string{}, runs: cfg.runs}
	for _, t := range targets {
		if t.err != nil {
			log.Error("setup", "target", t.id, "err", t.err)
			rp.errs[t.id] = "setup: " + t.err.Error()
		}
	}
	for _, g := range cfg.groups {
		for _, k := range g.metrics {
			for _, m := range metrics {
				if m.key == k {
					rp.metrics = append(rp.metrics, m)
				}
			}
		}
		for r := 0; r < cfg.runs; r++ {
			for _, t := range targets {
				if t.err != nil {
					continue
				}
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				dir := filepath.Join(t.dir, fmt.Sprintf("run%d-%s", r+1, g.key))
				// Every target starts from the same state: what the
				// previous one left dirty is written, and the inodes it
				// freed leave the cache. ext4 without a journal (this
				// machine's) skips inodes freed in the last 5 seconds,
				// or 305 while their table block is dirty, when it
				// allocates one: cached, they would make whoever comes
				// next scan past them on every create.
				cold := w.cold
				if g.key == "seq" {
					cold = w.coldWarm
				}
				err := cold()
				if err == nil {
					// The mounts' FORGETs for the inodes dropped,
					// and the page faults of daemons whose code was
					// dropped, settle before the clock starts.
					time.Sleep(500 * time.Millisecond)
				}
				t0 := time.Now()
				if err == nil {
					err = os.Mkdir(dir, 0o755)
				}
				var m map[string]float64
				if err == nil {
					stopPerf := startPerf(log, cfg.perfDir, t, g.key, r+1)
					m, err = g.run(w, ctx, dir)
					stopPerf()
				}
				if err == nil && t.id == "disk" && g.key == "seq" {
					// The floor under replicated writes: every copy on
					// this one disk.
					var mc map[string]float64
					if mc, err = w.seqCopies(ctx, dir, replicaCounts(cfg.layouts)); err == nil {
						maps.Copy(m, mc)
					}
				}
				if err != nil {
					log.Error("workload", "target", t.id, "workload", g.key, "err", err)
					rp.errs[t.id+" "+g.key] = err.Error()
					continue
				}
				rp.res.add(t.id, m)
				args := []any{"target", t.id, "workload", g.key, "run", r + 1, "took", time.Since(t0).Round(time.Millisecond)}
				for _, k := range g.metrics {
					args = append(args, k, num(m[k]))
				}
				log.Info("measured", args...)
			}
		}
	}
	rp.header = []string{
		"cais make bench: " + time.Now().Format(time.RFC3339) + ", commit " + version,
		fmt.Sprintf("machine: %d CPUs, kernel %s, shared with other work: load average %s at start, %s at end (%s)",
			runtime.NumCPU(), kernel(), load0, loadAvg(), time.Since(start).Round(time.Second)),
		fmt.Sprintf("sizes: sequential %d MiB (1 MiB writes, fsync included; 1 MiB reads), %d files of 4 KiB, ls -l of %d entries, %d mkdir/rmdir; one thread",
			w.sizeMiB, w.files, w.entries, w.dirs),
		fmt.Sprintf("bricks and the disk column under %s (%s); cais: 2 caisd, bricks on both in turn, cais mount --transport %s; GlusterFS %s: one glusterd, default volume options, mount -t glusterfs",
			cfg.dir, strings.TrimSpace(fsType), cfg.transport, glusterVersion(ctx)),
	}
	rp.header = append(rp.header, notes...)
	return rp, nil
}

// setupCais starts the pool and one mounted volume per layout; a failure
// marks the targets it leaves without a mount.
func setupCais(ctx context.Context, log *slog.Logger, cl *cleanups, cfg *config, ts []*target) {
	binDir := filepath.Join(cfg.dir, "bin")
	// Copies: bin/ may be rebuilt by someone else during the run, and
	// caisd starts its bricks from its own executable.
	err := os.MkdirAll(binDir, 0o755)
	for _, b := range []string{"cais", "caisd"} {
		if err == nil {
			err = copyFile(filepath.Join(binDir, b), filepath.Join(cfg.bin, b))
		}
	}
	p := &caisPool{bin: binDir, dir: filepath.Join(cfg.dir, "cais"), transport: cfg.transport, log: log, cl: cl}
	if err == nil {
		err = os.MkdirAll(p.dir, 0o755)
	}
	if err == nil {
		err = p.start(ctx)
	}
	for i, t := range ts {
		if err != nil {
			t.err = err
			continue
		}
		var d *daemon
		if d, t.err = p.volume(ctx, cfg.layouts[i], filepath.Join(cfg.dir, "bricks"), t.dir); t.err == nil {
			t.pid = d.pid()
		}
	}
}

func setupGluster(ctx context.Context, log *slog.Logger, cl *cleanups, cfg *config, ts []*target) {
	g := &glusterd{dir: filepath.Join(cfg.dir, "glusterd"), log: log, cl: cl}
	err := os.MkdirAll(g.dir, 0o755)
	if err == nil {
		err = g.start(ctx)
	}
	for i, t := range ts {
		if err != nil {
			t.err = err
			continue
		}
		t.err = g.volume(ctx, cfg.layouts[i], filepath.Join(cfg.dir, "bricks"), t.dir)
	}
}

// mountLoopback serves src at mnt from a child copy of the bench.
func mountLoopback(ctx context.Context, cl *cleanups, src, mnt, logPath string) (int, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	for _, d := range []string{src, mnt} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return 0, err
		}
	}
	d, err := startDaemon("loopback", logPath, self, "loopback", src, mnt)
	if err != nil {
		return 0, err
	}
	cl.push("unmount "+mnt, func() error { return stopMount(mnt, d) })
	return d.pid(), waitMounted(ctx, mnt, "fuse.loopback", d.exited, 30*time.Second)
}

// clearStale unmounts what is mounted under dir and stops the processes
// that name it: what an earlier run, or a failed step of this one, left.
// With remove it then deletes dir, unless something is still mounted there.
func clearStale(log *slog.Logger, dir string, remove bool) error {
	for _, m := range mountsUnder(dir) {
		if err := unmount(m); err != nil {
			log.Warn("unmount", "mountpoint", m, "err", err)
		}
	}
	if pids := pidsMentioning(dir + "/"); len(pids) > 0 {
		log.Info("stopping processes left in "+dir, "pids", pids)
		killPIDs(pids)
	}
	if !remove {
		return nil
	}
	if left := mountsUnder(dir); len(left) > 0 {
		return fmt.Errorf("still mounted, not removing %s: %s", dir, strings.Join(left, " "))
	}
	return os.RemoveAll(dir)
}

// binaryVersion is the version the caisd measured was built as (make
// build stamps the commit, with -dirty for uncommitted changes), read
// before the run: the tree may change while it goes on. Without it, the
// tree's own description.
func binaryVersion(ctx context.Context, bin string) string {
	out, err := run(ctx, filepath.Join(bin, "caisd"), "--version")
	if v, ok := strings.CutPrefix(strings.TrimSpace(out), "caisd version "); err == nil && ok {
		return v
	}
	out, err = run(ctx, "git", "describe", "--always", "--dirty")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(out)
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

func glusterVersion(ctx context.Context) string {
	out, err := run(ctx, "glusterd", "--version")
	if err != nil {
		return "(not installed)"
	}
	return strings.TrimPrefix(strings.SplitN(out, "\n", 2)[0], "glusterfs ")
}
