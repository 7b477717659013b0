// Command engine measures the container engine (issue 4, point 7): the
// latency of `docker run --rm busybox true` through caisd against the
// floor, `runc run` of an equivalent bundle (the same busybox layer under
// an overlay, the same namespaces, capabilities, seccomp filter and cgroup
// limits, made by the same engine.Spec), side by side in one run; how long
// 50 containers started at once take until all run; and caisd's resident
// memory idle and with those 50 running. Runs with --network none show
// what the default bridge network adds (the floor gets a network
// namespace of its own with lo only, as --network none does). make bench-engine runs it:
//
//	make bench-engine                          # 20 runs each
//	make bench-engine BENCH_ENGINE_ARGS="-runs 50"
//	go run ./test/bench/engine -h
//
// It starts its own caisd (on -addr, ports 24170+, data in -dir, its
// default network on the bridge caisbench0), loads
// the busybox image from the host's static busybox, and removes
// everything it made at the end.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cais-platform/cais/engine"
)

type bench struct {
	bin, dir, addr string
	sock           string // caisd's Docker API socket
	keep           bool
	env            []string
	caisd          *exec.Cmd
}

func main() {
	var b bench
	runs := flag.Int("runs", 20, "containers run one after the other, through caisd and through runc each")
	conc := flag.Int("concurrent", 50, "containers started at once")
	out := flag.String("out", "", "also write the results to this file")
	flag.StringVar(&b.bin, "bin", "bin", "directory of caisd and cais")
	flag.StringVar(&b.dir, "dir", "/var/tmp/cais-bench-engine", "scratch directory (removed at the end)")
	flag.StringVar(&b.addr, "addr", "127.0.0.70", "caisd's address")
	flag.BoolVar(&b.keep, "keep", false, "keep the scratch directory (caisd's log and data) after a failure")
	flag.Parse()
	var res bytes.Buffer
	err := b.run(&res, *runs, *conc)
	b.stop(err != nil && b.keep)
	fmt.Print(res.String())
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-engine:", err)
		os.Exit(1)
	}
	if *out != "" {
		os.MkdirAll(filepath.Dir(*out), 0o755)
		if err := os.WriteFile(*out, res.Bytes(), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}

func (b *bench) run(res *bytes.Buffer, runs, conc int) error {
	var err error
	if b.bin, err = filepath.Abs(b.bin); err != nil {
		return err
	}
	b.cleanup()
	data := filepath.Join(b.dir, "caisd")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	if err := b.startCaisd(data); err != nil {
		return err
	}
	tar := filepath.Join(b.dir, "busybox.tar")
	if out, err := exec.Command(filepath.Join(b.bin, "caisd"), "busybox-image", "-o", tar).CombinedOutput(); err != nil {
		return fmt.Errorf("busybox image: %v: %s", err, out)
	}
	if _, err := b.docker("load", "-i", tar); err != nil {
		return err
	}
	// The first run unpacks the image's layer.
	if _, err := b.docker("run", "--rm", "busybox", "true"); err != nil {
		return err
	}
	layers, _ := filepath.Glob(filepath.Join(data, "engine/images/layers/sha256/*"))
	if len(layers) != 1 {
		return fmt.Errorf("want the busybox image's one unpacked layer, found %v", layers)
	}
	fl, err := newFloor(filepath.Join(b.dir, "floor"), layers[0])
	if err != nil {
		return err
	}

	// Latency: caisd and runc in turn, after one warm-up each.
	// The same with --network none shows what the default bridge
	// network's set-up and tear-down cost.
	// The same docker run against a stub daemon that answers at once is
	// the docker CLI's own cost: no daemon can go below runc plus that.
	stub, err := startStub(filepath.Join(b.dir, "stub.sock"))
	if err != nil {
		return err
	}
	defer stub.close()
	stubEnv := append(slices.Clone(b.env), "DOCKER_HOST=unix://"+stub.sock)
	var viaCaisd, viaNone, viaRunc, viaAPI, cliAlone, cliRun []time.Duration
	timed := func(f func() error) (time.Duration, error) {
		start := time.Now()
		err := f()
		return time.Since(start), err
	}
	for i := -1; i < runs; i++ {
		dc, err := timed(func() error { _, err := b.docker("run", "--rm", "busybox", "true"); return err })
		if err != nil {
			return err
		}
		dn, err := timed(func() error { _, err := b.docker("run", "--rm", "--network", "none", "busybox", "true"); return err })
		if err != nil {
			return err
		}
		dr, err := timed(func() error { return fl.run(fmt.Sprintf("bench-floor-%d", i+1)) })
		if err != nil {
			return err
		}
		da, err := timed(func() error { return b.apiRun(context.Background()) })
		if err != nil {
			return err
		}
		dv, err := timed(func() error { _, err := b.docker("version", "--format", "{{.Server.Version}}"); return err })
		if err != nil {
			return err
		}
		ds, err := timed(func() error { return dockerWith(stubEnv, "run", "--rm", "busybox", "true") })
		if err != nil {
			return err
		}
		if i >= 0 {
			viaCaisd, viaNone, viaRunc = append(viaCaisd, dc), append(viaNone, dn), append(viaRunc, dr)
			viaAPI, cliAlone, cliRun = append(viaAPI, da), append(cliAlone, dv), append(cliRun, ds)
		}
	}
	mr := median(viaRunc)
	fmt.Fprintf(res, "docker run --rm busybox true, %d runs each, in turn (median, min-max, ratio to runc):\n", runs)
	for _, l := range []struct {
		name string
		ds   []time.Duration
	}{{"through caisd", viaCaisd}, {"caisd, --network none", viaNone}, {"caisd's API, no CLI", viaAPI}, {"runc run (the floor)", viaRunc}, {"docker version (CLI)", cliAlone}, {"docker run, stub daemon", cliRun}} {
		m := median(l.ds)
		fmt.Fprintf(res, "  %-22s %7.1f ms  (%.1f-%.1f)  %5.2fx\n", l.name, ms(m), ms(slices.Min(l.ds)), ms(slices.Max(l.ds)), float64(m)/float64(mr))
	}
	fmt.Fprintf(res, "  (caisd's API, no CLI: the calls docker run makes, create, wait for removal, start, from Go;\n   docker version: the docker CLI's own cost, starting and one call to caisd;\n   stub daemon: docker run against a daemon that answers every call at once and runs nothing)\n")
	fmt.Fprintf(res, "  lower bound for any daemon that starts containers with runc, through this CLI: runc + stub = %.2fx runc\n",
		float64(mr+median(cliRun))/float64(mr))

	// Memory idle, then conc containers at once.
	idle := rss(b.caisd.Process.Pid)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, conc)
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := b.docker("run", "-d", "busybox", "sleep", "600"); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	all := time.Since(start)
	ps, err := b.docker("ps", "-q", "--filter", "status=running")
	if err != nil {
		return err
	}
	if n := len(strings.Fields(ps)); n != conc {
		return fmt.Errorf("%d containers running, want %d", n, conc)
	}
	busy := rss(b.caisd.Process.Pid)
	monRSS, monPSS, count := monitorsMemory(data)
	fmt.Fprintf(res, "%d containers started at once: all running after %.2f s\n", conc, all.Seconds())
	fmt.Fprintf(res, "caisd RSS: idle %.1f MiB, with %d running %.1f MiB; their %d monitors %.1f MiB RSS in all (%.2f MiB each), %.1f MiB PSS (%.2f MiB each: the binary's pages are shared)\n",
		mib(idle), conc, mib(busy), count, mib(monRSS), mib(monRSS)/float64(max(count, 1)), mib(monPSS), mib(monPSS)/float64(max(count, 1)))
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func mib(n int64) float64        { return float64(n) / (1 << 20) }

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (b *bench) startCaisd(data string) error {
	sock := filepath.Join(data, "docker.sock")
	b.sock = sock
	b.env = append(os.Environ(), "DOCKER_HOST=unix://"+sock, "DOCKER_CONFIG="+filepath.Join(b.dir, "docker-config"), "DOCKER_CLI_HINTS=false")
	exec.Command("ip", "addr", "add", b.addr+"/32", "dev", "lo").Run() // may be there already
	logf, err := os.Create(filepath.Join(b.dir, "caisd.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	b.caisd = exec.Command(filepath.Join(b.bin, "caisd"), "--addr", b.addr, "--data-dir", data, "--port", "24170",
		"--etcd-client-port", "24479", "--etcd-peer-port", "24480", "--brick-port-base", "51170", "--docker-socket", sock,
		"--bridge", "caisbench0")
	b.caisd.Stdout, b.caisd.Stderr = logf, logf
	if err := b.caisd.Start(); err != nil {
		return err
	}
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if _, err := b.docker("version"); err == nil {
			return nil
		}
	}
	return fmt.Errorf("caisd did not answer in 60s; see %s", logf.Name())
}

func (b *bench) docker(args ...string) (string, error) {
	return runDocker(b.env, args...)
}

// dockerWith runs the docker CLI with env, output discarded.
func dockerWith(env []string, args ...string) error {
	_, err := runDocker(env, args...)
	return err
}

func runDocker(env []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// stop removes the containers, stops caisd and removes the scratch
// directory unless keep.
func (b *bench) stop(keep bool) {
	if b.caisd != nil && b.caisd.Process != nil {
		if ids, err := b.docker("ps", "-aq"); err == nil && ids != "" {
			b.docker(append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
		}
		b.caisd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { b.caisd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			b.caisd.Process.Kill()
		}
	}
	exec.Command("ip", "link", "del", "caisbench0").Run()
	if keep {
		fmt.Fprintln(os.Stderr, "kept", b.dir)
		return
	}
	b.cleanup()
}

// cleanup unmounts what is mounted under the scratch directory and
// removes it.
func (b *bench) cleanup() {
	if m, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		var points []string
		for _, l := range strings.Split(string(m), "\n") {
			if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], b.dir+"/") {
				points = append(points, f[4])
			}
		}
		slices.Reverse(points)
		for _, p := range points {
			syscall.Unmount(p, syscall.MNT_DETACH)
		}
	}
	os.RemoveAll(b.dir)
}

// rss is a process's resident set in bytes.
func rss(pid int) int64 { return procKB(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:") }

// pss is a process's proportional set size in bytes.
func pss(pid int) int64 { return procKB(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:") }

// procKB reads the "KEY N kB" line of a /proc file, in bytes (0 if
// missing).
func procKB(file, key string) int64 {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// monitorsMemory sums the resident sets and the proportional sets (PSS:
// pages shared by several processes, such as the binary's, counted in
// shares) of the container monitors of the caisd whose data is in data,
// found by the monitor.pid each leaves in its container's directory.
func monitorsMemory(data string) (rssSum, pssSum int64, n int) {
	pids, _ := filepath.Glob(filepath.Join(data, "engine", "containers", "*", "monitor.pid"))
	for _, p := range pids {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || rss(pid) == 0 {
			continue
		}
		rssSum += rss(pid)
		pssSum += pss(pid)
		n++
	}
	return rssSum, pssSum, n
}

// floor runs containers with runc directly: the bundle caisd would make,
// minus what only a managed container needs (its network's veth, the
// monitor, the log).
type floor struct {
	dir, lower, runcRoot string
	bounding             []string
	nofile               engine.Rlimit
}

func newFloor(dir, lower string) (*floor, error) {
	f := &floor{dir: dir, lower: lower, runcRoot: filepath.Join(dir, "runc")}
	if err := os.MkdirAll(f.runcRoot, 0o700); err != nil {
		return nil, err
	}
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, err
	}
	if f.bounding, err = engine.ParseCapBnd(string(st)); err != nil {
		return nil, err
	}
	var rl syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	f.nofile = engine.Rlimit{Soft: rl.Cur, Hard: rl.Max}
	return f, nil
}

// run makes the bundle (overlay and config.json) and runs `runc run`.
func (f *floor) run(id string) error {
	b := filepath.Join(f.dir, id)
	rootfs, upper, work := filepath.Join(b, "rootfs"), filepath.Join(b, "upper"), filepath.Join(b, "work")
	for _, d := range []string{rootfs, upper, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := syscall.Mount("overlay", rootfs, "overlay", 0, "lowerdir="+f.lower+",upperdir="+upper+",workdir="+work); err != nil {
		return fmt.Errorf("mount overlay: %w", err)
	}
	defer os.RemoveAll(b)
	defer syscall.Unmount(rootfs, syscall.MNT_DETACH)
	spec, err := engine.Spec(engine.SpecInput{ID: id, Config: engine.Config{Cmd: []string{"true"}, Image: "busybox"},
		Host: engine.HostConfig{NetworkMode: "bridge"}, Rootfs: rootfs, NoFile: f.nofile, CapBounding: f.bounding})
	if err != nil {
		return err
	}
	spec.Linux.CgroupsPath = "/cais-bench/" + id
	j, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(b, "config.json"), j, 0o600); err != nil {
		return err
	}
	out, err := exec.Command("runc", "--root", f.runcRoot, "run", "--bundle", b, id).CombinedOutput()
	if err != nil {
		return fmt.Errorf("runc run: %v: %s", err, out)
	}
	return nil
}

// apiRun makes the Engine API calls of docker run --rm busybox true
// without the docker CLI: create (auto-remove), wait for the removal,
// start, and the end of the wait.
func (b *bench) apiRun(ctx context.Context) error {
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", b.sock)
	}}}
	call := func(path string, body any) (*http.Response, error) {
		var r io.Reader
		if body != nil {
			j, err := json.Marshal(body)
			if err != nil {
				return nil, err
			}
			r = bytes.NewReader(j)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://docker/v1.47"+path, r)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode/100 != 2 {
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return nil, fmt.Errorf("POST %s: %s: %s", path, resp.Status, msg)
		}
		return resp, nil
	}
	resp, err := call("/containers/create", map[string]any{"Image": "busybox", "Cmd": []string{"true"}, "HostConfig": map[string]any{"AutoRemove": true}})
	if err != nil {
		return err
	}
	var created struct{ Id string }
	err = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if err != nil {
		return err
	}
	wait, err := call("/containers/"+created.Id+"/wait?condition=removed", nil)
	if err != nil {
		return err
	}
	defer wait.Body.Close()
	resp, err = call("/containers/"+created.Id+"/start", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	var st struct{ StatusCode int }
	if err := json.NewDecoder(wait.Body).Decode(&st); err != nil {
		return fmt.Errorf("wait: %w", err)
	}
	if st.StatusCode != 0 {
		return fmt.Errorf("exit status %d", st.StatusCode)
	}
	return nil
}
