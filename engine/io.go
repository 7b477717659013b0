package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	runc "github.com/containerd/go-runc"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cais-platform/cais/engine/jsonlog"
	"github.com/cais-platform/cais/engine/monitor"
	"github.com/cais-platform/cais/engine/mux"
	"github.com/cais-platform/cais/errdefs"
)

// Stream is a client's side of an attach or exec: what it sends (its
// stdin; reading it ends when the client half-closes or goes) and where
// its output goes. Output is framed (package mux) unless the process has
// a terminal, when it is the terminal's raw bytes.
type Stream struct {
	In  io.Reader
	Out io.Writer
	// CloseIn, if set, is called when the process's stdin has ended, so
	// a client waiting for that can stop sending.
	CloseIn func()
}

// AttachOptions say which streams to attach.
type AttachOptions struct {
	Stdin, Stdout, Stderr bool
}

// Attach connects a client to a container's stdio until the container
// stops or the client goes. A client attaching to a container not started
// yet waits for the start, and sees all of its output.
func (e *Engine) Attach(ctx context.Context, ref string, opts AttachOptions, s Stream) error {
	c, err := e.lookup(ref)
	if err != nil {
		return err
	}
	e.mu.Lock()
	c.attaching++
	e.mu.Unlock()
	registered := true
	done := func() {
		if registered {
			e.mu.Lock()
			c.attaching--
			e.notify(c)
			e.mu.Unlock()
			registered = false
		}
	}
	defer done()
	// Wait for the monitor of a container being started.
	for {
		e.mu.Lock()
		up, st, ch, removed := c.monitorUp, c.State, c.changed, c.removed
		e.mu.Unlock()
		if removed {
			return nil
		}
		if up {
			break
		}
		if st.Status != Created && !st.Running() && st.Status != Restarting {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
	mc, _, err := monitor.Dial(ctx, e.dir(c.ID), monitor.Request{Op: "attach", Stdin: opts.Stdin, Stdout: opts.Stdout, Stderr: opts.Stderr})
	done()
	if err != nil {
		// The container ended in between.
		return nil
	}
	defer mc.Close()
	e.mu.Lock()
	tty := c.Config.Tty
	e.mu.Unlock()
	// A client without stdin may half-close at once (the docker CLI
	// does): only a failed write to it says it has gone.
	if opts.Stdin && s.In != nil {
		go func() {
			io.Copy(mc, s.In)
			mc.CloseWrite()
		}()
	}
	outDone := make(chan error, 1)
	go func() { outDone <- copyFrames(s.Out, mc, tty) }()
	select {
	case err := <-outDone:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// copyFrames copies a monitor's output frames to a client: as frames
// (stdout, stderr) or, for a terminal, raw. It returns the exit frame's
// payload, if any, through exit.
func copyFrames(out io.Writer, r io.Reader, tty bool) error {
	_, err := copyFramesExit(out, r, tty)
	return err
}

func copyFramesExit(out io.Writer, r io.Reader, tty bool) ([]byte, error) {
	w := mux.NewWriter(out)
	var buf, exit []byte
	for {
		stream, p, err := mux.ReadFrame(r, buf)
		if err == io.EOF {
			return exit, nil
		}
		if err != nil {
			return exit, nil // the monitor went: the stream ends
		}
		buf = p
		switch stream {
		case mux.Stdout, mux.Stderr:
			if tty {
				_, err = out.Write(p)
			} else {
				err = w.WriteFrame(stream, p)
			}
			if err != nil {
				return exit, err
			}
		case mux.Exit:
			exit = append([]byte(nil), p...)
		}
	}
}

// Resize sets the size of a container's terminal.
func (e *Engine) Resize(ctx context.Context, ref string, h, w uint16) error {
	c, err := e.lookup(ref)
	if err != nil {
		return err
	}
	e.mu.Lock()
	running := c.State.Status == Running
	e.mu.Unlock()
	if !running {
		return fmt.Errorf("Container %s is not running: %w", c.ID, errdefs.ErrState)
	}
	_, err = monitor.Call(ctx, e.dir(c.ID), monitor.Request{Op: "resize", Height: h, Width: w})
	return err
}

// LogsOptions select log entries.
type LogsOptions struct {
	Stdout, Stderr bool
	Follow         bool
	// Tail is how many of the last lines to show; negative for all.
	Tail         int
	Since, Until time.Time
}

// Logs calls fn with the container's log entries, then, with Follow, with
// new ones as they come until the container stops or ctx ends.
func (e *Engine) Logs(ctx context.Context, ref string, opts LogsOptions, fn func(jsonlog.Entry) error) error {
	c, err := e.lookup(ref)
	if err != nil {
		return err
	}
	keep := func(en jsonlog.Entry) bool {
		if en.Stream == "stdout" && !opts.Stdout || en.Stream == "stderr" && !opts.Stderr {
			return false
		}
		if !opts.Since.IsZero() && en.Time.Before(opts.Since) {
			return false
		}
		if !opts.Until.IsZero() && en.Time.After(opts.Until) {
			return false
		}
		return true
	}
	f, err := os.Open(c.LogPath)
	if errors.Is(err, os.ErrNotExist) {
		if !opts.Follow {
			return nil
		}
	} else if err != nil {
		return err
	}
	var off int64
	if f != nil {
		entries, n, err := jsonlog.Tail(f, opts.Tail, keep)
		f.Close()
		if err != nil {
			return err
		}
		for _, en := range entries {
			if err := fn(en); err != nil {
				return err
			}
		}
		off = n
	}
	if !opts.Follow {
		return nil
	}
	for {
		e.mu.Lock()
		st, ch, removed := c.State, c.changed, c.removed
		e.mu.Unlock()
		if f, err := os.Open(c.LogPath); err == nil {
			if _, err := f.Seek(off, io.SeekStart); err == nil {
				n, err := jsonlog.Read(f, func(en jsonlog.Entry) error {
					if !keep(en) {
						return nil
					}
					return fn(en)
				})
				off += n
				if err != nil {
					f.Close()
					return err
				}
			}
			f.Close()
		}
		if removed || !st.Running() && st.Status != Created {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ch:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ExecConfig is docker exec's request (Docker's JSON names).
type ExecConfig struct {
	User         string   `json:"User"`
	Privileged   bool     `json:"Privileged"`
	Tty          bool     `json:"Tty"`
	AttachStdin  bool     `json:"AttachStdin"`
	AttachStdout bool     `json:"AttachStdout"`
	AttachStderr bool     `json:"AttachStderr"`
	Env          []string `json:"Env"`
	Cmd          []string `json:"Cmd"`
	WorkingDir   string   `json:"WorkingDir"`
	// ConsoleSize is the terminal's initial height and width (from the
	// create request, or the start request's).
	ConsoleSize [2]uint `json:"ConsoleSize"`
}

// Exec is a process run in a running container.
type Exec struct {
	ID          string
	ContainerID string
	Config      ExecConfig
	Running     bool
	ExitCode    *int
	Pid         int
	started     bool
}

// ExecCreate records a process to run in a container.
func (e *Engine) ExecCreate(ctx context.Context, ref string, cfg ExecConfig) (string, error) {
	c, err := e.lookup(ref)
	if err != nil {
		return "", err
	}
	if len(cfg.Cmd) == 0 {
		return "", fmt.Errorf("No exec command specified: %w", errdefs.ErrInvalid)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if c.State.Status != Running {
		return "", fmt.Errorf("container %s is not running: %w", c.ID, errdefs.ErrState)
	}
	id := newID()
	e.execs[id] = &Exec{ID: id, ContainerID: c.ID, Config: cfg}
	return id, nil
}

// ExecInspect returns a copy of an exec.
func (e *Engine) ExecInspect(id string) (Exec, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.execs[id]
	if !ok {
		return Exec{}, fmt.Errorf("No such exec instance: %s: %w", id, errdefs.ErrNotFound)
	}
	return *x, nil
}

// ExecStart runs an exec's process, streaming its I/O through s until it
// ends (in the background, with detach).
func (e *Engine) ExecStart(ctx context.Context, id string, detach bool, consoleSize [2]uint, s Stream) error {
	e.mu.Lock()
	x, ok := e.execs[id]
	if !ok {
		e.mu.Unlock()
		return fmt.Errorf("No such exec instance: %s: %w", id, errdefs.ErrNotFound)
	}
	if x.started {
		e.mu.Unlock()
		return fmt.Errorf("exec instance %s has already been started: %w", id, errdefs.ErrState)
	}
	x.started = true
	if consoleSize[0] > 0 && consoleSize[1] > 0 {
		x.Config.ConsoleSize = consoleSize
	}
	cfg := x.Config
	c := e.containers[x.ContainerID]
	var running bool
	if c != nil {
		running = c.State.Status == Running
	}
	e.mu.Unlock()
	if !running {
		return fmt.Errorf("container %s is not running: %w", x.ContainerID, errdefs.ErrState)
	}
	dir := e.dir(c.ID)
	var spec specs.Spec
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err == nil {
		err = json.Unmarshal(b, &spec)
	}
	if err != nil || spec.Process == nil {
		return fmt.Errorf("read the container's spec: %v", err)
	}
	user := spec.Process.User
	if cfg.User != "" {
		if user, err = resolveUserInRoot(filepath.Join(dir, "rootfs"), cfg.User); err != nil {
			return err
		}
	}
	proc := processSpec(spec.Process, cfg, user)
	req := monitor.Request{Op: "exec", Exec: id, Process: proc, Stdin: cfg.AttachStdin && !detach, Stdout: true, Stderr: true}
	mc, rep, err := monitor.Dial(ctx, dir, req)
	if err != nil {
		code := 126
		e.mu.Lock()
		x.ExitCode = &code
		e.mu.Unlock()
		return fmt.Errorf("OCI runtime exec failed: %w", err)
	}
	e.mu.Lock()
	x.Running, x.Pid = true, rep.Pid
	snap := c.snapshot()
	e.mu.Unlock()
	e.publishContainer(snap, "exec_start: "+strings.Join(cfg.Cmd, " "), map[string]string{"execID": id})
	finish := func(exit []byte) {
		var st monitor.ExitStatus
		code := 137
		if json.Unmarshal(exit, &st) == nil && exit != nil {
			code = st.Code
		}
		e.mu.Lock()
		x.Running, x.ExitCode = false, &code
		e.mu.Unlock()
		e.publishContainer(snap, "exec_die", map[string]string{"execID": id, "exitCode": strconv.Itoa(code)})
	}
	if detach {
		go func() {
			defer mc.Close()
			exit, _ := copyFramesExit(io.Discard, mc, cfg.Tty)
			finish(exit)
		}()
		return nil
	}
	defer mc.Close()
	var inDone sync.WaitGroup
	if s.In != nil {
		inDone.Add(1)
		go func() {
			defer inDone.Done()
			if req.Stdin {
				io.Copy(mc, s.In)
				mc.CloseWrite()
			} else {
				io.Copy(io.Discard, s.In)
			}
		}()
	}
	exit, err := copyFramesExit(s.Out, mc, cfg.Tty)
	finish(exit)
	return err
}

// ExecResize sets the size of an exec's terminal.
func (e *Engine) ExecResize(ctx context.Context, id string, h, w uint16) error {
	x, err := e.ExecInspect(id)
	if err != nil {
		return err
	}
	_, err = monitor.Call(ctx, e.dir(x.ContainerID), monitor.Request{Op: "resize", Exec: id, Height: h, Width: w})
	return err
}

// Top lists a running container's processes.
func (e *Engine) Top(ctx context.Context, ref, psArgs string) (*runc.TopResults, error) {
	c, err := e.lookup(ref)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	running := c.State.Status == Running
	e.mu.Unlock()
	if !running {
		return nil, fmt.Errorf("container %s is not running: %w", c.ID, errdefs.ErrState)
	}
	if psArgs == "" {
		psArgs = "-ef"
	}
	return e.rt.Top(ctx, c.ID, psArgs)
}

// Stats reads a running container's cgroup statistics (nil when it is
// not running).
func (e *Engine) Stats(ctx context.Context, ref string) (*runc.Stats, Container, error) {
	c, err := e.lookup(ref)
	if err != nil {
		return nil, Container{}, err
	}
	e.mu.Lock()
	snap := c.snapshot()
	e.mu.Unlock()
	if snap.State.Status != Running {
		return nil, snap, nil
	}
	st, err := e.rt.Stats(ctx, c.ID)
	return st, snap, err
}
