// Package monitor is the small process that runs one container, as
// containerd's shim and conmon do. caisd starts it (caisd re-executing
// itself, detached in a session of its own) for each container start, or
// hands the container to one it started ahead of need (--standby); it
//
//   - holds the container's stdio: pipes, or for a terminal a pty that
//     `runc create` sends over a console socket, as the subreaper of the
//     processes runc leaves behind;
//   - writes the output to the container's json-file log and to attached
//     clients, and what clients send to the container's stdin;
//   - starts the container when caisd asks, so that a client attached
//     before the start misses nothing: `runc run --detach` for a
//     container without a terminal (create and start in one runc process),
//     `runc start` of the one created with a terminal;
//   - runs exec processes (`runc exec`), streaming their I/O;
//   - when init exits, reads whether the memory cgroup OOM-killed it,
//     deletes the runc container (its cgroups and state directly when
//     it was started by runc run, runc delete otherwise), unmounts its root file
//     system and writes exit.json, then tells the waiting clients and
//     exits.
//
// caisd talks to it over a unix socket in the container's directory, one
// request per connection: a JSON [Request] line, then a JSON [Reply] line,
// then (attach, exec) frames in package mux's format. A caisd that
// restarts finds its containers' monitors still running and reconnects;
// one whose monitor is gone reads exit.json.
package monitor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Files in a container's directory.
const (
	SocketName = "monitor.sock"
	ConfigName = "monitor.json"
	ExitName   = "exit.json"
	PidName    = "monitor.pid"
	InitPid    = "init.pid"
	LogName    = "monitor.log"
)

// Config is what a monitor runs; caisd writes it to monitor.json.
type Config struct {
	ID string `json:"id"`
	// Dir is the container's directory, and runc's bundle (config.json).
	Dir string `json:"dir"`
	// Runc is the runc binary, RuncRoot its state directory.
	Runc     string `json:"runc"`
	RuncRoot string `json:"runcRoot"`
	// LogPath is the json-file log.
	LogPath string `json:"logPath"`
	// Rootfs is unmounted when the container has exited.
	Rootfs string `json:"rootfs"`
	// MemoryCgroup is the container's memory cgroup directory (v1), read
	// for OOM kills.
	MemoryCgroup string `json:"memoryCgroup"`
	Tty          bool   `json:"tty"`
	OpenStdin    bool   `json:"openStdin"`
	StdinOnce    bool   `json:"stdinOnce"`
}

// Request is the first line a client sends.
type Request struct {
	// Op is "start", "attach", "wait", "resize" or "exec".
	Op string `json:"op"`
	// Streams to attach (attach, exec).
	Stdin  bool `json:"stdin,omitempty"`
	Stdout bool `json:"stdout,omitempty"`
	Stderr bool `json:"stderr,omitempty"`
	// Exec is the exec's ID (exec; resize of an exec's terminal).
	Exec string `json:"exec,omitempty"`
	// Process is what exec runs.
	Process *specs.Process `json:"process,omitempty"`
	// Height and Width are the terminal size (resize).
	Height uint16 `json:"h,omitempty"`
	Width  uint16 `json:"w,omitempty"`
}

// Reply is the monitor's answer line.
type Reply struct {
	Error string `json:"error,omitempty"`
	// Pid is the init's (start) or the exec process's (exec).
	Pid int `json:"pid,omitempty"`
	// Exit is set by wait.
	Exit *ExitStatus `json:"exit,omitempty"`
}

// ExitStatus is how a container or exec process ended.
type ExitStatus struct {
	Code       int       `json:"code"`
	OOMKilled  bool      `json:"oomKilled,omitempty"`
	FinishedAt time.Time `json:"finishedAt"`
	Error      string    `json:"error,omitempty"`
}

// ReadExit reads the exit.json of the container in dir.
func ReadExit(dir string) (ExitStatus, error) {
	var e ExitStatus
	b, err := os.ReadFile(filepath.Join(dir, ExitName))
	if err != nil {
		return e, err
	}
	err = json.Unmarshal(b, &e)
	return e, err
}

// Conn is a client connection to a monitor.
type Conn struct {
	net.Conn
	R *bufio.Reader
}

// Dial connects to the monitor of the container in dir and sends req; it
// returns the connection after reading the reply line.
func Dial(ctx context.Context, dir string, req Request) (*Conn, Reply, error) {
	var d net.Dialer
	var c net.Conn
	err := withSocketPath(dir, func(p string) (err error) {
		c, err = d.DialContext(ctx, "unix", p)
		return err
	})
	if err != nil {
		return nil, Reply{}, err
	}
	b, _ := json.Marshal(req)
	if _, err := c.Write(append(b, '\n')); err != nil {
		c.Close()
		return nil, Reply{}, err
	}
	conn := &Conn{Conn: c, R: bufio.NewReader(c)}
	var rep Reply
	// A wait's reply comes when the container exits: only the context
	// bounds it.
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	line, err := conn.R.ReadBytes('\n')
	stop()
	if err != nil {
		c.Close()
		if ctx.Err() != nil {
			return nil, Reply{}, ctx.Err()
		}
		return nil, Reply{}, fmt.Errorf("monitor: %w", err)
	}
	if err := json.Unmarshal(line, &rep); err != nil {
		c.Close()
		return nil, Reply{}, fmt.Errorf("monitor reply: %w", err)
	}
	if rep.Error != "" {
		c.Close()
		return nil, rep, errors.New(rep.Error)
	}
	return conn, rep, nil
}

// Call sends a request whose reply is all there is.
func Call(ctx context.Context, dir string, req Request) (Reply, error) {
	c, rep, err := Dial(ctx, dir, req)
	if err != nil {
		return rep, err
	}
	c.Close()
	return rep, nil
}

// Read reads the reply's stream.
func (c *Conn) Read(p []byte) (int, error) { return c.R.Read(p) }

// CloseWrite half-closes the connection: the end of the client's stdin.
func (c *Conn) CloseWrite() error {
	if uc, ok := c.Conn.(*net.UnixConn); ok {
		return uc.CloseWrite()
	}
	return nil
}

// withSocketPath calls f with a path of the socket in dir short enough
// for a unix socket address (108 bytes): through /proc/self/fd when the
// directory's own path is too long.
func withSocketPath(dir string, f func(string) error) error {
	p := SocketPath(dir)
	if len(p) < 100 {
		return f(p)
	}
	d, err := os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer d.Close()
	return f(fmt.Sprintf("/proc/self/fd/%d/%s", d.Fd(), SocketName))
}

// SocketPath is where the monitor of the container in dir listens.
func SocketPath(dir string) string { return filepath.Join(dir, SocketName) }

// Main is the monitor process's entry point (caisd monitor --dir DIR):
// it reads DIR/monitor.json and reports to caisd on file descriptor 3.
func Main(ctx context.Context, log *slog.Logger, dir string) error {
	sync := os.NewFile(3, "sync")
	b, err := os.ReadFile(filepath.Join(dir, ConfigName))
	if err != nil {
		fmt.Fprintln(sync, err)
		return err
	}
	var cfg Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		fmt.Fprintln(sync, err)
		return err
	}
	os.WriteFile(filepath.Join(dir, PidName), []byte(fmt.Sprint(os.Getpid())), 0o600)
	return Run(ctx, log.With("container", cfg.ID), cfg, sync)
}

// Standby is a monitor started ahead of need (caisd monitor --standby):
// it waits for the directory of the container it is to run, a line on
// file descriptor 4, then moves its output to that container's monitor
// log and goes on as [Main]. The end of file there (caisd took another,
// or went) ends it with nothing done.
func Standby(ctx context.Context, log *slog.Logger) error {
	ctl := os.NewFile(4, "control")
	line, err := bufio.NewReader(io.LimitReader(ctl, 4096)).ReadString('\n')
	ctl.Close()
	if err != nil {
		return nil
	}
	dir := strings.TrimSuffix(line, "\n")
	if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir {
		err := fmt.Errorf("monitor standby: %q is not a container directory", dir)
		fmt.Fprintln(os.NewFile(3, "sync"), err)
		return err
	}
	if f, err := os.OpenFile(filepath.Join(dir, LogName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err == nil {
		unix.Dup2(int(f.Fd()), 1)
		unix.Dup2(int(f.Fd()), 2)
		f.Close()
	}
	return Main(ctx, log, dir)
}
