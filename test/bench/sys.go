package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// run runs a command and returns its standard output; a failure carries
// what the command printed.
func run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "),
			err, strings.TrimSpace(errb.String()+" "+out.String()))
	}
	return out.String(), nil
}

// dropCaches writes back dirty pages and drops the page, dentry and inode
// caches, so the next read comes from the disk (and, on a network file
// system, over the wire).
func dropCaches() error {
	syscall.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0)
}

// mountFSType returns the file system type mounted at dir ("" if none).
func mountFSType(dir string) string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[4] != dir {
			continue
		}
		for i := 5; i < len(f)-1; i++ {
			if f[i] == "-" {
				return f[i+1]
			}
		}
	}
	return ""
}

// fsTypeOf is the type of the file system holding dir: that of the
// deepest mount point above it.
func fsTypeOf(dir string) string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "?"
	}
	best, typ := "", "?"
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || len(f[4]) < len(best) {
			continue
		}
		if dir == f[4] || strings.HasPrefix(dir, strings.TrimSuffix(f[4], "/")+"/") {
			for i := 5; i < len(f)-1; i++ {
				if f[i] == "-" {
					best, typ = f[4], f[i+1]+" on "+f[i+2]
				}
			}
		}
	}
	return typ
}

// mountsUnder lists the mount points at or below dir, deepest first.
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out = append(out, f[4])
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// waitMounted waits until a file system of type fstype is mounted at dir,
// or exited reports that the process serving it is gone.
func waitMounted(ctx context.Context, dir, fstype string, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if mountFSType(dir) == fstype {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear at %s within %s", fstype, dir, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return fmt.Errorf("the process serving %s exited before it was mounted", dir)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// unmount unmounts dir, lazily if it stays busy.
func unmount(dir string) error {
	var err error
	for i := 0; i < 5; i++ {
		if mountFSType(dir) == "" {
			return nil
		}
		if err = syscall.Unmount(dir, 0); err == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err2 := syscall.Unmount(dir, syscall.MNT_DETACH); err2 != nil {
		return fmt.Errorf("unmount %s: %w (lazy: %v)", dir, err, err2)
	}
	return nil
}

// daemon is a child process the bench started and stops.
type daemon struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
}

// startDaemon starts a long-running child with its output in logPath.
func startDaemon(name, logPath string, argv ...string) (*daemon, error) {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = lf, lf
	// Its own process group: a ^C on the bench reaches the bench only,
	// which then stops its children in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	d := &daemon{name: name, cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(d.exited)
	}()
	return d, nil
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

// stop sends SIGTERM and, after grace, SIGKILL.
func (d *daemon) stop(grace time.Duration) error {
	select {
	case <-d.exited:
		return nil
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		return nil
	case <-time.After(grace):
	}
	_ = d.cmd.Process.Kill()
	<-d.exited
	return fmt.Errorf("%s (pid %d) ignored SIGTERM for %s: killed", d.name, d.pid(), grace)
}

// waitExit waits for the daemon to end by itself (after an unmount).
func (d *daemon) waitExit(timeout time.Duration) bool {
	select {
	case <-d.exited:
		return true
	case <-time.After(timeout):
		return false
	}
}

// pidsMentioning lists the processes (other than this one) whose command
// line contains s: the bench names its work directory in every process it
// starts, so this finds what a crashed earlier run left behind.
func pidsMentioning(s string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if bytes.Contains(b, []byte(s)) {
			out = append(out, pid)
		}
	}
	return out
}

// killPIDs sends SIGTERM to each process, then SIGKILL to those left.
func killPIDs(pids []int) {
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGTERM)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, p := range pids {
		for syscall.Kill(p, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if syscall.Kill(p, 0) == nil {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	}
}

// copyFile copies an executable.
func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// loadAvg is the first field of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}
