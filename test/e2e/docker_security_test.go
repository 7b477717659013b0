package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/console"
)

// TestDockerSecurity: seccomp, privileged, capabilities, no-new-privileges,
// read-only root, devices; attach with piped stdin and terminal resize;
// malformed requests. All through the real docker CLI.
func TestDockerSecurity(t *testing.T) {
	d := startDocker(t)

	t.Run("seccomp", func(t *testing.T) {
		d.t = t
		// Docker's default profile: unshare(2) needs CAP_SYS_ADMIN.
		d.expect(0, ptr("2\n"), "", "run", "--rm", "busybox", "sh", "-c", "grep Seccomp: /proc/self/status | cut -f2")
		d.expect(1, ptr(""), "unshare(0x10000000): Operation not permitted", "run", "--rm", "busybox", "unshare", "-U", "true")
		// Unconfined: the same call works.
		d.expect(0, ptr("0\nok\n"), "", "run", "--rm", "--security-opt", "seccomp=unconfined", "busybox", "sh", "-c",
			"grep Seccomp: /proc/self/status | cut -f2; unshare -U true && echo ok")
		// A profile file (the CLI sends its content): mkdir fails with
		// EACCES, everything else is allowed.
		prof := filepath.Join(t.TempDir(), "profile.json")
		os.WriteFile(prof, []byte(`{"defaultAction": "SCMP_ACT_ALLOW",
			"syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}`), 0o644)
		d.expect(0, ptr("ok\n"), "can't create directory '/x': Permission denied", "run", "--rm", "--security-opt", "seccomp="+prof,
			"busybox", "sh", "-c", "mkdir /x; unshare -U true && echo ok")
		bad := filepath.Join(t.TempDir(), "bad.json")
		os.WriteFile(bad, []byte(`{"defaultAction": "SCMP_ACT_EXPLODE"}`), 0o644)
		d.expect(125, nil, `unknown default action "SCMP_ACT_EXPLODE"`, "run", "--rm", "--security-opt", "seccomp="+bad, "busybox", "true")
	})

	t.Run("privileged", func(t *testing.T) {
		d.t = t
		want, err := os.ReadFile("/proc/self/status")
		if err != nil {
			t.Fatal(err)
		}
		var bnd string
		for _, l := range strings.Split(string(want), "\n") {
			if v, ok := strings.CutPrefix(l, "CapBnd:"); ok {
				bnd = strings.TrimSpace(v)
			}
		}
		// Every capability caisd holds, no filter, host devices, /sys
		// writable, nothing masked, and mount works.
		r := d.run("run", "--rm", "--privileged", "busybox", "sh", "-c",
			"grep -E '^(CapEff|Seccomp):' /proc/self/status | cut -f2; test -c /dev/fuse && echo fuse; grep ' /sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1; "+
				"wc -c < /proc/timer_list | tr -d ' ' | grep -qv '^0$' && echo unmasked; mkdir /m && mount -t tmpfs tmpfs /m && echo mounted")
		if r.Code != 0 || r.Stdout != bnd+"\n0\nfuse\nrw\nunmasked\nmounted\n" {
			t.Errorf("run --privileged: %+v (want CapEff %s)", r, bnd)
		}
		d.must("run", "-d", "--name", "priv-exec", "busybox", "sleep", "100")
		d.expect(0, ptr(bnd+"\n"), "", "exec", "--privileged", "priv-exec", "sh", "-c", "grep CapEff: /proc/self/status | cut -f2")
		d.must("rm", "-f", "priv-exec")
	})

	t.Run("capabilities", func(t *testing.T) {
		d.t = t
		// NET_ADMIN is bit 12; with the default set chown works, without
		// any capability it fails.
		d.expect(0, ptr("0000000000001000\n"), "", "run", "--rm", "--cap-drop", "ALL", "--cap-add", "NET_ADMIN", "busybox", "sh", "-c", "grep CapEff: /proc/self/status | cut -f2")
		d.expect(1, nil, "Operation not permitted", "run", "--rm", "--cap-drop", "ALL", "busybox", "chown", "1:1", "/tmp")
		d.expect(0, ptr("ok\n"), "", "run", "--rm", "--cap-add", "SYS_ADMIN", "busybox", "sh", "-c", "mkdir /m && mount -t tmpfs tmpfs /m && echo ok")
		d.expect(125, nil, "unknown capability", "run", "--rm", "--cap-add", "NOPE", "busybox", "true")
	})

	t.Run("options", func(t *testing.T) {
		d.t = t
		d.expect(0, ptr("1\n"), "", "run", "--rm", "--security-opt", "no-new-privileges", "busybox", "sh", "-c", "grep NoNewPrivs: /proc/self/status | cut -f2")
		d.expect(0, ptr("0\n"), "", "run", "--rm", "busybox", "sh", "-c", "grep NoNewPrivs: /proc/self/status | cut -f2")
		d.expect(125, nil, `invalid --security-opt: "bogus=1"`, "run", "--rm", "--security-opt", "bogus=1", "busybox", "true")
		d.expect(1, nil, "Read-only file system", "run", "--rm", "--read-only", "busybox", "touch", "/x")
		d.expect(0, ptr(""), "", "run", "--rm", "--read-only", "--tmpfs", "/tmp", "busybox", "touch", "/tmp/x")
		if _, err := os.Stat("/dev/fuse"); err == nil {
			// A device with read-only permission in the device cgroup.
			d.expect(0, ptr("c 10, 229\n"), "", "run", "--rm", "--device", "/dev/fuse:/dev/f:r", "busybox", "sh", "-c", "ls -l /dev/f | awk '{print substr($1, 1, 1), $5, $6}'")
			d.expect(1, nil, "Operation not permitted", "run", "--rm", "--device", "/dev/fuse:/dev/f:r", "busybox", "sh", "-c", "echo > /dev/f")
		}
		d.expect(127, nil, `error gathering device information while adding custom device "/dev/nosuch"`, "run", "--rm", "--device", "/dev/nosuch", "busybox", "true")
	})

	t.Run("attach-stdin", func(t *testing.T) {
		d.t = t
		// docker run -i and start -ai: the input ends, the container's
		// stdin closes, the command ends, and so does the CLI.
		in := strings.Repeat("line\n", 20000)
		r := d.cmd(strings.NewReader(in), "run", "-i", "--rm", "busybox", "sh", "-c", "wc -l; echo done")
		if r.Code != 0 || r.Stdout != "20000\ndone\n" {
			t.Errorf("run -i with a pipe: %+v", r)
		}
		id := strings.TrimSpace(d.must("create", "-i", "busybox", "sh", "-c", "cat; echo after"))
		r = d.cmd(strings.NewReader("hi\n"), "start", "-ai", id)
		if r.Code != 0 || r.Stdout != "hi\nafter\n" {
			t.Errorf("start -ai: %+v", r)
		}
		// echo hi | docker attach: create -i makes stdin once-only.
		id = strings.TrimSpace(d.must("create", "-i", "busybox", "cat"))
		d.must("start", id)
		r = d.cmd(strings.NewReader("attached\n"), "attach", id)
		if r.Code != 0 || r.Stdout != "attached\n" {
			t.Errorf("echo attached | docker attach: %+v", r)
		}
		d.expect(0, ptr("exited 0\n"), "", "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", id)
		// A container run -di keeps its stdin open across attaches, as
		// Docker's: two attaches each give one line.
		id = strings.TrimSpace(d.must("run", "-di", "busybox", "sh", "-c", "read a; read b; echo $a $b"))
		done := make(chan dockerResult, 1)
		go func() { done <- d.cmd(strings.NewReader("one\n"), "attach", "--sig-proxy=false", id) }()
		time.Sleep(time.Second)
		r = d.cmd(strings.NewReader("two\n"), "attach", "--sig-proxy=false", id)
		if r.Code != 0 {
			t.Errorf("second attach: %+v", r)
		}
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Errorf("the first attach did not end when the container did")
		}
		d.expect(0, ptr("one two\n"), "", "logs", id)
		d.run("rm", "-f", id)
	})

	t.Run("tty-resize", func(t *testing.T) {
		d.t = t
		out := d.resizeRun(t, "run", "--rm", "-it", "busybox", "sh", "-c", "stty size; sleep 3; stty size")
		if !strings.Contains(out, "24 80") || !strings.Contains(out, "30 100") {
			t.Errorf("run -it, resized: %q", out)
		}
	})

	t.Run("bad-requests", func(t *testing.T) {
		d.t = t
		hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", d.socket)
		}}, Timeout: 30 * time.Second}
		post := func(body io.Reader) (int, string) {
			resp, err := hc.Post("http://docker/v1.51/containers/create", "application/json", body)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		if code, msg := post(strings.NewReader(`{"Image": "busybox", "Cmd": [`)); code != 400 || !strings.Contains(msg, "invalid JSON") {
			t.Errorf("bad JSON: %d %s", code, msg)
		}
		if code, msg := post(strings.NewReader(`{"Image": 5}`)); code != 400 || !strings.Contains(msg, "invalid JSON") {
			t.Errorf("wrong type: %d %s", code, msg)
		}
		huge := io.MultiReader(strings.NewReader(`{"Image": "busybox", "Env": ["`), io.LimitReader(zeros{}, 64<<20), strings.NewReader(`"]}`))
		if code, msg := post(huge); code != 400 || !strings.Contains(msg, "request body larger than") {
			t.Errorf("64 MiB body: %d %s", code, msg)
		}
		// caisd is still there.
		d.expect(0, ptr("alive\n"), "", "run", "--rm", "busybox", "echo", "alive")
	})
}

// zeros is an endless reader of '0'.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = '0'
	}
	return len(p), nil
}

// resizeRun runs docker in a terminal of 24x80 as the session's
// controlling terminal, resizes it to 30x100 (the kernel
// sends SIGWINCH; the CLI passes the size on) once the command has
// printed "24 80", and returns the output.
func (d *dockerNode) resizeRun(t *testing.T, args ...string) string {
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
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	var out bytes.Buffer
	var mu sync.Mutex
	var once sync.Once
	first := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := pty.Read(buf)
			mu.Lock()
			out.Write(buf[:n])
			seen := strings.Contains(out.String(), "24 80")
			mu.Unlock()
			if seen {
				once.Do(func() { close(first) })
			}
			if err != nil {
				return
			}
		}
	}()
	select {
	case <-first:
		// The CLI watches for SIGWINCH only once it has sent the first
		// size, after the start: a resize before that is not seen (by
		// Docker's daemon either). The container sleeps 3 s.
		time.Sleep(time.Second)
		if err := pty.Resize(console.WinSize{Height: 30, Width: 100}); err != nil {
			t.Error(err)
		}
	case <-done:
	}
	err = cmd.Wait()
	pty.Close()
	<-done
	if err != nil {
		t.Errorf("docker %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return fmt.Sprint(out.String())
}
