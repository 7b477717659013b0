package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// metric is one figure of the table.
type metric struct {
	key, name, unit string
	// goal is the cais/GlusterFS ratio issue 3 asks for.
	goal float64
	// throughput figures are also compared with the local disk (goal 0.70).
	throughput bool
}

var metrics = []metric{
	{key: "write", name: "seq write", unit: "MiB/s", goal: 1.5, throughput: true},
	{key: "read", name: "seq read, cold", unit: "MiB/s", goal: 1.5, throughput: true},
	{key: "create", name: "4K create+write", unit: "files/s", goal: 3},
	{key: "stat", name: "4K stat", unit: "files/s", goal: 3},
	{key: "read4k", name: "4K open+read", unit: "files/s", goal: 2},
	{key: "unlink", name: "4K unlink", unit: "files/s", goal: 3},
	{key: "lscold", name: "ls -l, cold", unit: "entries/s", goal: 2},
	{key: "lswarm", name: "ls -l, again", unit: "entries/s", goal: 2},
	{key: "mkdir", name: "mkdir", unit: "dirs/s", goal: 3},
	{key: "rmdir", name: "rmdir", unit: "dirs/s", goal: 3},
}

// diskGoal is the fraction of the local disk's throughput issue 3 asks for.
const diskGoal = 0.70

// workloads runs the measured operations in a directory of any target.
// Every phase is single-threaded, as one application would run it.
type workloads struct {
	sizeMiB int // sequential file
	files   int // 4 KiB files
	entries int // ls -l directory
	dirs    int // mkdir/rmdir
	// noDrop: drop_caches was refused; cold reads use O_DIRECT instead.
	noDrop bool
	// warm: bytes of memory written once after the drops before the
	// sequential workloads (coldWarm, warm.go); 0 for none.
	warm int64
	buf  []byte // 1 MiB of random bytes, page aligned
}

func newWorkloads() *workloads {
	raw := make([]byte, 1<<20+4096)
	off := int(4096 - uintptr(unsafe.Pointer(&raw[0]))%4096)
	w := &workloads{buf: raw[off : off+1<<20]}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < len(w.buf); i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			w.buf[i+j] = byte(v >> (8 * j))
		}
	}
	return w
}

// group is a set of metrics measured by one pass.
type group struct {
	key     string
	metrics []string
	run     func(w *workloads, ctx context.Context, dir string) (map[string]float64, error)
}

var groups = []group{
	{"seq", []string{"write", "read"}, (*workloads).seq},
	{"small", []string{"create", "stat", "read4k", "unlink"}, (*workloads).small},
	{"ls", []string{"lscold", "lswarm"}, (*workloads).ls},
	{"dirs", []string{"mkdir", "rmdir"}, (*workloads).mkdirs},
}

func rate(n int, start time.Time) float64 { return float64(n) / time.Since(start).Seconds() }

// cold makes the next access miss every cache on this machine.
func (w *workloads) cold() error {
	if w.noDrop {
		return nil
	}
	return dropCaches()
}

// coldWarm is cold, then writes once to w.warm bytes of memory
// (warm.go), before a sequential write or read: what those move through
// the page cache is measured against the disk's. The small workloads
// get no warming: the host takes back the memory it frees a couple of
// seconds later, on a CPU they would share.
func (w *workloads) coldWarm() error {
	if err := w.cold(); err != nil || w.noDrop || w.warm == 0 {
		return err
	}
	return warmMemory(w.warm)
}

// seq writes one file of sizeMiB in 1 MiB writes and fsyncs it (the
// figure includes the fsync and close), drops the caches, and reads it
// back in 1 MiB reads.
func (w *workloads) seq(ctx context.Context, dir string) (map[string]float64, error) {
	path := filepath.Join(dir, "seq")
	start := time.Now()
	if err := w.writeFile(ctx, path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY); err != nil {
		return nil, err
	}
	res := map[string]float64{"write": rate(w.sizeMiB, start)}
	defer os.Remove(path)
	if err := w.coldWarm(); err != nil {
		return nil, err
	}
	start = time.Now()
	flags := os.O_RDONLY
	if w.noDrop {
		flags |= syscall.O_DIRECT
	}
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var n int64
	for {
		m, err := f.Read(w.buf)
		n += int64(m)
		if errors.Is(err, io.EOF) || (err == nil && m == 0) {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if n != int64(w.sizeMiB)<<20 {
		return nil, fmt.Errorf("read %d bytes back, wrote %d", n, int64(w.sizeMiB)<<20)
	}
	res["read"] = float64(n) / (1 << 20) / time.Since(start).Seconds()
	return res, nil
}

// small creates files 4 KiB files (create, write, close), then stats,
// reads and unlinks them, each phase over all files in turn. Caches are
// left as the previous phase left them, as an application sees them.
func (w *workloads) small(ctx context.Context, dir string) (map[string]float64, error) {
	d := filepath.Join(dir, "small")
	if err := os.Mkdir(d, 0o755); err != nil {
		return nil, err
	}
	names := make([]string, w.files)
	for i := range names {
		names[i] = filepath.Join(d, fmt.Sprintf("f%06d", i))
	}
	data := w.buf[:4096]
	res := map[string]float64{}
	start := time.Now()
	for _, p := range names {
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, err
		}
		if _, err := f.Write(data); err != nil {
			f.Close()
			return nil, err
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
	}
	res["create"] = rate(len(names), start)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	start = time.Now()
	for _, p := range names {
		if fi, err := os.Lstat(p); err != nil {
			return nil, err
		} else if fi.Size() != 4096 {
			return nil, fmt.Errorf("%s: size %d after a 4096-byte write", p, fi.Size())
		}
	}
	res["stat"] = rate(len(names), start)
	rb := make([]byte, 8192)
	start = time.Now()
	for _, p := range names {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		n, err := io.ReadFull(f, rb)
		f.Close()
		if n != 4096 || (err != nil && !errors.Is(err, io.ErrUnexpectedEOF)) {
			return nil, fmt.Errorf("%s: read %d bytes: %v", p, n, err)
		}
	}
	res["read4k"] = rate(len(names), start)
	start = time.Now()
	for _, p := range names {
		if err := syscall.Unlink(p); err != nil {
			return nil, fmt.Errorf("unlink %s: %w", p, err)
		}
	}
	res["unlink"] = rate(len(names), start)
	return res, os.Remove(d)
}

// ls fills a directory with entries empty files (8 at a time, not timed),
// drops the caches and times ls -l of it, then times it once more.
func (w *workloads) ls(ctx context.Context, dir string) (map[string]float64, error) {
	d := filepath.Join(dir, "ls")
	if err := os.Mkdir(d, 0o755); err != nil {
		return nil, err
	}
	if err := parallel(w.entries, 8, func(i int) error {
		fd, err := syscall.Open(filepath.Join(d, fmt.Sprintf("entry-%06d", i)), syscall.O_CREAT|syscall.O_WRONLY|syscall.O_CLOEXEC, 0o644)
		if err != nil {
			return err
		}
		return syscall.Close(fd)
	}); err != nil {
		return nil, err
	}
	if err := w.cold(); err != nil {
		return nil, err
	}
	res := map[string]float64{}
	for _, key := range []string{"lscold", "lswarm"} {
		start := time.Now()
		n, err := lsl(ctx, d)
		if err != nil {
			return nil, err
		}
		res[key] = rate(n, start)
		if n != w.entries {
			return nil, fmt.Errorf("ls -l %s: %d entries, made %d", d, n, w.entries)
		}
	}
	// The directory stays: the bricks are removed whole at the end, and
	// removing it through the mount would only add time.
	return res, nil
}

// lsl runs ls -l on d and counts the entries it lists.
func lsl(ctx context.Context, d string) (int, error) {
	cmd := exec.CommandContext(ctx, "ls", "-l", "--color=never", d)
	cmd.Env = []string{"LC_ALL=C", "PATH=/usr/bin:/bin"}
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("ls -l %s: %w", d, err)
	}
	n := -1 // the "total" line
	for _, c := range out {
		if c == '\n' {
			n++
		}
	}
	return n, nil
}

// mkdirs makes dirs directories in one parent, then removes them.
func (w *workloads) mkdirs(ctx context.Context, dir string) (map[string]float64, error) {
	d := filepath.Join(dir, "dirs")
	if err := os.Mkdir(d, 0o755); err != nil {
		return nil, err
	}
	names := make([]string, w.dirs)
	for i := range names {
		names[i] = filepath.Join(d, fmt.Sprintf("d%06d", i))
	}
	res := map[string]float64{}
	start := time.Now()
	for _, p := range names {
		if err := syscall.Mkdir(p, 0o755); err != nil {
			return nil, fmt.Errorf("mkdir %s: %w", p, err)
		}
	}
	res["mkdir"] = rate(len(names), start)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	start = time.Now()
	for _, p := range names {
		if err := syscall.Rmdir(p); err != nil {
			return nil, fmt.Errorf("rmdir %s: %w", p, err)
		}
	}
	res["rmdir"] = rate(len(names), start)
	return res, os.Remove(d)
}

// parallel runs f(0..n-1) on workers goroutines and returns the first error.
func parallel(n, workers int, f func(i int) error) error {
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

// copiesKey is the metric of the disk's sequential write of n copies.
func copiesKey(n int) string { return fmt.Sprintf("write%d", n) }

// seqCopies is the floor under a replicated volume's sequential write on
// this machine, where every brick of a set is on the one disk: n files
// of sizeMiB written at once, as a set's n copies are, each in 1 MiB
// writes and fsynced. Each count is measured through the page cache and
// with O_DIRECT (how a cais mount writes a local copy's big writes), and
// the better is kept: the rate one file of n copies can be written at,
// in MiB/s of the file.
func (w *workloads) seqCopies(ctx context.Context, dir string, counts []int) (map[string]float64, error) {
	res := map[string]float64{}
	for _, n := range counts {
		for _, direct := range []bool{false, true} {
			if err := w.coldWarm(); err != nil {
				return nil, err
			}
			r, err := w.writeCopies(ctx, dir, n, direct)
			if err != nil {
				return nil, fmt.Errorf("%d copies: %w", n, err)
			}
			res[copiesKey(n)] = max(res[copiesKey(n)], r)
		}
	}
	return res, nil
}

func (w *workloads) writeCopies(ctx context.Context, dir string, n int, direct bool) (float64, error) {
	flags := os.O_CREATE | os.O_TRUNC | os.O_WRONLY
	if direct {
		flags |= syscall.O_DIRECT
	}
	paths := make([]string, n)
	for i := range paths {
		paths[i] = filepath.Join(dir, fmt.Sprintf("copy%d", i))
	}
	defer func() {
		for _, p := range paths {
			os.Remove(p)
		}
	}()
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i, p := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = w.writeFile(ctx, p, flags)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	return rate(w.sizeMiB, start), nil
}

// writeFile writes sizeMiB of w.buf to path in 1 MiB writes and fsyncs it.
func (w *workloads) writeFile(ctx context.Context, path string, flags int) error {
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return err
	}
	for i := 0; i < w.sizeMiB; i++ {
		if _, err := f.Write(w.buf); err != nil {
			f.Close()
			return err
		}
		if i%64 == 0 && ctx.Err() != nil {
			f.Close()
			return ctx.Err()
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
