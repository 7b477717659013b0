package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/console"

	"github.com/cais-platform/cais/image/bootstrap"
	"github.com/cais-platform/cais/test/clustertest"
)

// dockerNode is a caisd with the busybox image loaded, driven by the
// real docker CLI.
type dockerNode struct {
	t      *testing.T
	n      *clustertest.Node
	env    []string
	socket string
}

type dockerResult struct {
	Stdout, Stderr string
	Code           int
}

func startDocker(t *testing.T) *dockerNode {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("the docker CLI is not installed")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc is not installed (make deps)")
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("busybox-static is not installed (make deps)")
	}
	c := clustertest.New(t)
	n := c.Start(clustertest.NodeOptions{})
	d := &dockerNode{t: t, n: n, socket: n.DockerSocket}
	d.env = append(os.Environ(), "DOCKER_HOST=unix://"+n.DockerSocket, "DOCKER_CONFIG="+filepath.Join(c.Dir(), "docker-config"), "DOCKER_BUILDKIT=0", "DOCKER_CLI_HINTS=false")
	tar := filepath.Join(c.Dir(), "busybox.tar")
	f, err := os.Create(tar)
	if err != nil {
		t.Fatal(err)
	}
	if err := bootstrap.BusyboxArchive(context.Background(), f, "/bin/busybox"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if out := d.must("load", "-i", tar); !strings.Contains(out, "Loaded image: busybox:latest") {
		t.Fatalf("docker load said %q", out)
	}
	t.Cleanup(func() {
		// Containers' monitors outlive caisd: stop them with it.
		r := d.run("ps", "-aq")
		for _, id := range strings.Fields(r.Stdout) {
			d.run("rm", "-f", id)
		}
	})
	return d
}

func (d *dockerNode) cmd(stdin io.Reader, args ...string) dockerResult {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = d.env
	cmd.Stdin = stdin
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	return dockerResult{Stdout: out.String(), Stderr: errOut.String(), Code: code}
}

func (d *dockerNode) run(args ...string) dockerResult { return d.cmd(nil, args...) }

func (d *dockerNode) must(args ...string) string {
	d.t.Helper()
	r := d.run(args...)
	if r.Code != 0 {
		d.t.Fatalf("docker %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// expect runs docker and checks its exit code, stdout (exactly, unless
// nil) and that stderr holds errPart.
func (d *dockerNode) expect(code int, stdout *string, errPart string, args ...string) dockerResult {
	d.t.Helper()
	r := d.run(args...)
	if r.Code != code || stdout != nil && r.Stdout != *stdout || !strings.Contains(r.Stderr, errPart) {
		d.t.Fatalf("docker %s: exit %d, stdout %q, stderr %q; want exit %d, stdout %v, stderr with %q",
			strings.Join(args, " "), r.Code, r.Stdout, r.Stderr, code, str(stdout), errPart)
	}
	return r
}

func str(p *string) string {
	if p == nil {
		return "(any)"
	}
	return *p
}

func ptr(s string) *string { return &s }

func TestDocker(t *testing.T) {
	d := startDocker(t)

	t.Run("version", func(t *testing.T) {
		d.t = t
		out := d.must("version", "--format", "{{.Server.APIVersion}} {{.Server.MinAPIVersion}} {{.Server.Os}}")
		if out != "1.51 1.24 linux\n" {
			t.Errorf("docker version: %q", out)
		}
		info := d.must("info", "--format", "{{.Driver}} {{.LoggingDriver}} {{.CgroupDriver}} {{.Images}}")
		if info != "overlay2 json-file cgroupfs 1\n" {
			t.Errorf("docker info: %q", info)
		}
		// Ping headers, and version-prefixed paths.
		hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", d.socket)
		}}}
		req, _ := http.NewRequest(http.MethodHead, "http://docker/_ping", nil)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Api-Version") != "1.51" || resp.Header.Get("Ostype") != "linux" || resp.Header.Get("Builder-Version") == "" {
			t.Errorf("HEAD /_ping: %d %v", resp.StatusCode, resp.Header)
		}
		resp, err = hc.Get("http://docker/v1.12/version")
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]string
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(body["message"], "client version 1.12 is too old") {
			t.Errorf("old version: %d %v", resp.StatusCode, body)
		}
	})

	t.Run("run", func(t *testing.T) {
		d.t = t
		d.expect(0, ptr("hi\n"), "", "run", "--rm", "busybox", "echo", "hi")
		r := d.expect(3, ptr("out\n"), "err\n", "run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
		_ = r
		// Environment, working directory, user, entrypoint, hostname.
		d.expect(0, ptr("v1 /tmp 65534:65534 box\n"), "", "run", "--rm", "-e", "V=v1", "-w", "/tmp", "-u", "nobody", "--hostname", "box",
			"--entrypoint", "sh", "busybox", "-c", `echo $V $(pwd) $(id -u):$(id -g) $(hostname)`)
		// stdin
		r = d.cmd(strings.NewReader("from stdin\n"), "run", "--rm", "-i", "busybox", "cat")
		if r.Code != 0 || r.Stdout != "from stdin\n" {
			t.Errorf("run -i: %+v", r)
		}
		// Isolation: own pid namespace, default capabilities, masked paths.
		d.expect(0, ptr("1\n"), "", "run", "--rm", "busybox", "sh", "-c", "echo $$")
		d.expect(0, ptr("00000000a80425fb\n"), "", "run", "--rm", "busybox", "sh", "-c", "grep CapEff /proc/self/status | cut -f2")
		d.expect(0, ptr("0\n"), "", "run", "--rm", "busybox", "sh", "-c", "wc -c < /proc/timer_list")
		d.expect(1, nil, "Read-only file system", "run", "--rm", "busybox", "sh", "-c", "echo 1 > /proc/sys/kernel/domainname")
		d.expect(0, ptr("eth0\nlo\n"), "", "run", "--rm", "busybox", "ls", "/sys/class/net")
		d.expect(0, ptr("lo\n"), "", "run", "--rm", "--network", "none", "busybox", "ls", "/sys/class/net")
		// A missing image, a bad name.
		d.expect(125, nil, "Unable to find image 'nosuch:latest' locally", "run", "--rm", "nosuch")
		d.expect(1, nil, "Invalid container name (-x)", "create", "--name", "-x", "busybox")
	})

	t.Run("lifecycle", func(t *testing.T) {
		d.t = t
		id := strings.TrimSpace(d.must("run", "-d", "--name", "x", "busybox", "sh", "-c", "echo started; exec sleep 100"))
		if len(id) != 64 {
			t.Fatalf("run -d printed %q", id)
		}
		ps := d.must("ps")
		if !strings.Contains(ps, id[:12]) || !strings.Contains(ps, "Up ") || !strings.Contains(ps, " x\n") {
			t.Errorf("docker ps:\n%s", ps)
		}
		clustertest.Eventually(t, 5*time.Second, func() error {
			if out := d.must("logs", "x"); out != "started\n" {
				return fmt.Errorf("logs %q", out)
			}
			return nil
		})
		if out := d.must("exec", "x", "ps"); !strings.Contains(out, "sleep 100") || !strings.Contains(out, "    1 root") {
			t.Errorf("exec ps:\n%s", out)
		}
		d.expect(4, ptr(""), "to-err", "exec", "x", "sh", "-c", "echo to-err >&2; exit 4")
		if out := d.must("top", "x"); !strings.Contains(out, "sleep 100") || !strings.Contains(out, "PID") {
			t.Errorf("top:\n%s", out)
		}
		if st := d.must("inspect", "-f", "{{.State.Status}} {{.State.Running}} {{.Name}} {{.Config.Image}}", "x"); st != "running true /x busybox\n" {
			t.Errorf("inspect: %q", st)
		}
		d.expect(1, nil, "container is running: stop the container before removing or force remove", "rm", "x")
		d.expect(1, nil, `The container name "/x" is already in use by container "`+id+`"`, "create", "--name", "x", "busybox")
		if out := d.must("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}"); out != "x 1\n" {
			t.Errorf("stats: %q", out)
		}
		start := time.Now()
		d.expect(0, ptr("x\n"), "", "stop", "-t", "1", "x")
		if time.Since(start) > 5*time.Second {
			t.Errorf("stop -t 1 took %v", time.Since(start))
		}
		if out := d.must("ps", "-a", "--format", "{{.Names}} {{.Status}}"); !strings.HasPrefix(out, "x Exited (137)") {
			t.Errorf("ps -a after stop: %q", out)
		}
		d.expect(0, ptr("137\n"), "", "wait", "x")
		d.expect(1, nil, "is not running", "kill", "x")
		d.expect(0, ptr("x\n"), "", "rm", "x")
		if out := d.must("ps", "-aq"); out != "" {
			t.Errorf("ps -aq after rm: %q", out)
		}
		d.expect(1, nil, "No such container: x", "rm", "x")
		d.expect(1, nil, "No such container: x", "logs", "x")
		d.expect(1, nil, "No such object: x", "inspect", "x")

		// create + start -a, and rm -f of a running container.
		d.must("create", "--name", "c2", "busybox", "echo", "created")
		d.expect(0, ptr("created\n"), "", "start", "-a", "c2")
		d.must("start", "c2")
		d.must("run", "-d", "--name", "c3", "busybox", "sleep", "100")
		d.expect(0, ptr("c3\n"), "", "rm", "-f", "c3")
		d.must("rm", "c2")
	})

	t.Run("logs", func(t *testing.T) {
		d.t = t
		d.must("run", "-d", "--name", "l", "busybox", "sh", "-c", "for i in 1 2 3; do echo line $i; sleep 0.3; done; echo bye >&2")
		r := d.run("logs", "-f", "l")
		if r.Code != 0 || r.Stdout != "line 1\nline 2\nline 3\n" || r.Stderr != "bye\n" {
			t.Errorf("logs -f: %+v", r)
		}
		d.expect(0, ptr("line 3\n"), "bye", "logs", "--tail", "2", "l")
		if out := d.must("logs", "-t", "--tail", "1", "l"); out != "" {
			t.Errorf("stdout of the last line (stderr): %q", out)
		}
		d.must("rm", "l")
	})

	t.Run("limits", func(t *testing.T) {
		d.t = t
		d.expect(0, ptr("50000 10 20971520\n"), "", "run", "--rm", "--cpus", "0.5", "--pids-limit", "10", "--memory", "20m", "busybox", "sh", "-c",
			"echo $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/pids/pids.max) $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)")
		d.expect(137, nil, "", "run", "--name", "oom", "--memory", "20m", "busybox", "dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1")
		if out := d.must("inspect", "-f", "{{.State.OOMKilled}} {{.State.ExitCode}}", "oom"); out != "true 137\n" {
			t.Errorf("OOM inspect: %q", out)
		}
		d.must("rm", "oom")
		// The pids limit holds.
		r := d.run("run", "--rm", "--pids-limit", "5", "busybox", "sh", "-c", "for i in 1 2 3 4 5 6 7 8; do sleep 5 & done; wait")
		if r.Code == 0 || !strings.Contains(r.Stderr, "fork") && !strings.Contains(r.Stderr, "Resource temporarily unavailable") {
			t.Errorf("pids limit: %+v", r)
		}
		// An rlimit above the host's hard limit is refused clearly.
		d.expect(125, nil, "above the host's hard limit", "run", "--rm", "--ulimit", "nofile=1:1073741824", "busybox", "true")
	})

	t.Run("binds", func(t *testing.T) {
		d.t = t
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "in"), []byte("host file\n"), 0o644)
		d.expect(0, ptr("host file\n"), "", "run", "--rm", "-v", dir+":/data", "busybox", "sh", "-c", "cat /data/in; echo out > /data/out")
		if b, _ := os.ReadFile(filepath.Join(dir, "out")); string(b) != "out\n" {
			t.Errorf("written through the bind: %q", b)
		}
		d.expect(1, nil, "Read-only file system", "run", "--rm", "-v", dir+":/data:ro", "busybox", "touch", "/data/x")
	})

	t.Run("tty", func(t *testing.T) {
		d.t = t
		d.must("run", "-d", "--name", "t", "busybox", "sleep", "100")
		out := d.ptyRun(t, "exec", "-it", "t", "sh", "-c", "tty; stty size")
		if !strings.Contains(out, "/dev/pts/0") || !strings.Contains(out, "24 80") {
			t.Errorf("exec -it: %q", out)
		}
		out = d.ptyRun(t, "run", "--rm", "-it", "busybox", "sh", "-c", "tty; stty size")
		if !strings.Contains(out, "/dev/pts/0") || !strings.Contains(out, "24 80") {
			t.Errorf("run -it: %q", out)
		}
		d.must("rm", "-f", "t")
	})

	t.Run("images", func(t *testing.T) {
		d.t = t
		d.must("tag", "busybox", "me/bb:1")
		out := d.must("images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}")
		if !strings.Contains(out, "busybox:latest 2.") || !strings.Contains(out, "me/bb:1 ") {
			t.Errorf("images:\n%s", out)
		}
		tar := filepath.Join(t.TempDir(), "bb.tar")
		d.must("save", "-o", tar, "me/bb:1")
		d.expect(0, ptr("Untagged: me/bb:1\n"), "", "rmi", "me/bb:1")
		d.expect(0, ptr("Loaded image: me/bb:1\n"), "", "load", "-i", tar)
		d.expect(0, ptr("/bin/busybox\n"), "", "run", "--rm", "me/bb:1", "which", "busybox")
		d.must("rmi", "me/bb:1")
		// import a tar of a root file system
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
		b, _ := os.ReadFile("/bin/busybox")
		os.WriteFile(filepath.Join(dir, "bin/busybox"), b, 0o755)
		tarCmd := exec.Command("tar", "-C", dir, "-cf", "-", ".")
		tarOut, err := tarCmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		r := d.cmd(bytes.NewReader(tarOut), "import", "-", "imported:v1")
		if r.Code != 0 || !strings.HasPrefix(r.Stdout, "sha256:") {
			t.Fatalf("import: %+v", r)
		}
		d.expect(0, ptr("imported\n"), "", "run", "--rm", "imported:v1", "/bin/busybox", "echo", "imported")
		d.expect(0, nil, "", "inspect", "-f", "{{.Id}}", "imported:v1")
		d.must("rmi", "imported:v1")
		// import --change sets the config, as in a Dockerfile.
		r = d.cmd(bytes.NewReader(tarOut), "import", "-c", `ENTRYPOINT ["/bin/busybox"]`, "-c", `CMD ["echo", "from-cmd"]`, "-c", "ENV A=1", "-", "imported:v2")
		if r.Code != 0 {
			t.Fatalf("import --change: %+v", r)
		}
		d.expect(0, ptr("from-cmd\n"), "", "run", "--rm", "imported:v2")
		d.expect(0, ptr("[A=1]\n"), "", "inspect", "-f", "{{.Config.Env}}", "imported:v2")
		d.must("rmi", "imported:v2")
		r = d.cmd(bytes.NewReader(tarOut), "import", "-c", "RUN true", "-", "imported:v3")
		if r.Code == 0 || !strings.Contains(r.Stderr, "RUN is not a valid change command") {
			t.Fatalf("import --change RUN: %+v", r)
		}
		d.expect(1, nil, "No such image: nosuch:latest", "rmi", "nosuch")
		// An image in use needs force.
		d.must("create", "--name", "user", "busybox")
		d.expect(1, nil, `conflict: unable to remove repository reference "busybox" (must force) - container`, "rmi", "busybox")
		d.must("rm", "user")
	})

	t.Run("restart-policy", func(t *testing.T) {
		d.t = t
		d.must("run", "-d", "--name", "rp", "--restart", "on-failure:2", "busybox", "sh", "-c", "echo run; exit 1")
		clustertest.Eventually(t, 10*time.Second, func() error {
			out := d.must("inspect", "-f", "{{.RestartCount}} {{.State.Status}}", "rp")
			if out != "2 exited\n" {
				return fmt.Errorf("inspect %q", out)
			}
			return nil
		})
		if out := d.must("logs", "rp"); out != "run\nrun\nrun\n" {
			t.Errorf("logs of 3 runs: %q", out)
		}
		d.must("rm", "rp")
	})

	t.Run("caisd-restart", func(t *testing.T) {
		d.t = t
		d.must("run", "-d", "--name", "survivor", "busybox", "sh", "-c", "while true; do echo tick; sleep 0.2; done")
		pid := strings.TrimSpace(d.must("inspect", "-f", "{{.State.Pid}}", "survivor"))
		d.n.Kill()
		d.n.Restart()
		if out := d.must("inspect", "-f", "{{.State.Status}} {{.State.Pid}}", "survivor"); out != "running "+pid+"\n" {
			t.Errorf("after a caisd restart: %q (pid was %s)", out, pid)
		}
		if out := d.must("logs", "--tail", "1", "survivor"); out != "tick\n" {
			t.Errorf("logs after restart: %q", out)
		}
		d.must("exec", "survivor", "true")
		d.must("stop", "-t", "1", "survivor")
		if out := d.must("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "survivor"); out != "exited 137\n" {
			t.Errorf("after stop: %q", out)
		}
		d.must("rm", "survivor")
	})
}

// ptyRun runs docker with a terminal of 24 rows and 80 columns and
// returns what it printed.
func (d *dockerNode) ptyRun(t *testing.T, args ...string) string {
	t.Helper()
	pty, slave, err := console.NewPty()
	if err != nil {
		t.Fatal(err)
	}
	defer pty.Close()
	if err := pty.Resize(console.WinSize{Height: 24, Width: 80}); err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(slave, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = d.env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s, s, s
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	var out bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&out, pty); close(done) }()
	err = cmd.Wait()
	pty.Close()
	<-done
	if err != nil {
		t.Errorf("docker %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}
