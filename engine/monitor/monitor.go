package monitor

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/console"
	runc "github.com/containerd/go-runc"
	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/engine/jsonlog"
	"github.com/cais-platform/cais/engine/mux"
)

// monitor is the running state of one monitor process.
type monitor struct {
	cfg  Config
	log  *slog.Logger
	runc *runc.Runc
	logw *jsonlog.Writer

	initPid int
	// run, for a container without a terminal: it is created and started
	// by one `runc run --detach` at the start request (one runc process
	// instead of create and start).
	run *runcRun
	// stdin is the container's stdin (a pipe, or the pty master).
	stdinMu sync.Mutex
	stdin   io.WriteCloser
	pty     console.Console

	mu      sync.Mutex
	clients map[*client]bool
	waiters []net.Conn
	exited  *ExitStatus
	execs   map[string]console.Console

	outputDone sync.WaitGroup
	done       chan struct{}
}

// runcRun is the start of a container without a terminal: one `runc run
// --detach` that creates and starts it.
type runcRun struct {
	pio  *pipeIO
	once sync.Once
	pid  int
	err  error
	// started is closed once the container runs, failed if runc could
	// not start it.
	started, failed chan struct{}
}

// client is an attached connection.
type client struct {
	conn           net.Conn
	w              *mux.Writer
	stdout, stderr bool
}

// Run is the monitor process: it creates the container, reports on sync
// (a pipe caisd reads: "ok" or an error), serves requests until the
// container has exited and been cleaned up, and returns.
func Run(ctx context.Context, log *slog.Logger, cfg Config, sync io.WriteCloser) error {
	m := &monitor{
		cfg: cfg, log: log,
		runc:    &runc.Runc{Command: cfg.Runc, Root: cfg.RuncRoot, Log: filepath.Join(cfg.Dir, "runc.log"), LogFormat: runc.JSON},
		clients: map[*client]bool{},
		execs:   map[string]console.Console{},
		done:    make(chan struct{}),
	}
	fail := func(err error) error {
		fmt.Fprintf(sync, "%v\n", err)
		sync.Close()
		return err
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fail(fmt.Errorf("become subreaper: %w", err))
	}
	lf, err := os.OpenFile(cfg.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fail(err)
	}
	defer lf.Close()
	m.logw = jsonlog.NewWriter(lf)
	os.Remove(SocketPath(cfg.Dir))
	var ln net.Listener
	err = withSocketPath(cfg.Dir, func(p string) (err error) {
		ln, err = net.Listen("unix", p)
		return err
	})
	if err != nil {
		return fail(err)
	}
	defer ln.Close()
	if cfg.Tty {
		err = m.create(ctx)
	} else {
		err = m.prepareRun()
	}
	if err != nil {
		m.cleanup(ctx)
		return fail(err)
	}
	fmt.Fprintln(sync, "ok")
	sync.Close()

	go m.serve(ln)
	status := m.wait()
	// Output ends when the last writer of the pipes (or the pty's slave)
	// is gone, which in a pid namespace is when init is.
	outDone := make(chan struct{})
	go func() { m.outputDone.Wait(); close(outDone) }()
	select {
	case <-outDone:
	case <-time.After(5 * time.Second):
		m.log.Warn("container output did not end after its exit")
	}
	status.OOMKilled = m.oomKilled()
	if err := m.cleanup(ctx); err != nil {
		status.Error = err.Error()
	}
	b, _ := json.Marshal(status)
	tmp := filepath.Join(cfg.Dir, ExitName+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err == nil {
		os.Rename(tmp, filepath.Join(cfg.Dir, ExitName))
	}
	m.mu.Lock()
	m.exited = &status
	waiters := m.waiters
	m.waiters = nil
	clients := m.clients
	m.clients = map[*client]bool{}
	m.mu.Unlock()
	for c := range clients {
		c.conn.Close()
	}
	rep, _ := json.Marshal(Reply{Exit: &status})
	for _, w := range waiters {
		w.SetWriteDeadline(time.Now().Add(2 * time.Second))
		w.Write(append(rep, '\n'))
		w.Close()
	}
	close(m.done)
	return nil
}

// create runs `runc create` with a terminal: runc sends the pty's master
// over a console socket.
func (m *monitor) create(ctx context.Context) error {
	opts := &runc.CreateOpts{PidFile: filepath.Join(m.cfg.Dir, InitPid)}
	sock, err := runc.NewTempConsoleSocket()
	if err != nil {
		return err
	}
	defer sock.Close()
	opts.ConsoleSocket = sock
	if err := m.runc.Create(ctx, m.cfg.ID, m.cfg.Dir, opts); err != nil {
		return fmt.Errorf("runc create failed: %s", runcError(err, m.runc.Log))
	}
	pty, err := sock.ReceiveMaster()
	if err != nil {
		return fmt.Errorf("receive the container's terminal: %w", err)
	}
	m.pty = pty
	m.stdin = pty
	m.copyOutput("stdout", pty, mux.Stdout)
	b, err := os.ReadFile(opts.PidFile)
	if err != nil {
		return err
	}
	m.initPid, err = strconv.Atoi(strings.TrimSpace(string(b)))
	return err
}

// prepareRun makes the pipes of a container without a terminal and
// starts copying its output; `runc run` comes with the start request.
func (m *monitor) prepareRun() error {
	pio, err := newPipeIO(m.cfg.OpenStdin, true, true)
	if err != nil {
		return err
	}
	m.run = &runcRun{pio: pio, started: make(chan struct{}), failed: make(chan struct{})}
	m.stdin = pio.stdinW
	m.copyOutput("stdout", pio.stdoutR, mux.Stdout)
	m.copyOutput("stderr", pio.stderrR, mux.Stderr)
	return nil
}

// start starts the container and returns its init's PID: `runc start`
// of the created container, or `runc run`, once, for one without a
// terminal.
func (m *monitor) start() (int, error) {
	if m.run == nil {
		if err := m.runc.Start(context.Background(), m.cfg.ID); err != nil {
			return 0, fmt.Errorf("runc start failed: %s", runcError(err, m.runc.Log))
		}
		return m.initPid, nil
	}
	r := m.run
	r.once.Do(m.runRunc)
	return r.pid, r.err
}

// runRunc runs `runc run --detach`: runc creates and starts the
// container and exits, leaving its init to this monitor, the subreaper.
// It sets the run's pid or err, then closes started or failed.
func (m *monitor) runRunc() {
	r := m.run
	pidFile := filepath.Join(m.cfg.Dir, InitPid)
	os.Remove(pidFile)
	_, err := m.runc.Run(context.Background(), m.cfg.ID, m.cfg.Dir, &runc.CreateOpts{IO: r.pio, PidFile: pidFile, Detach: true})
	// The child's ends of the pipes are the container's now: closing ours
	// lets the output end when the container's does.
	r.pio.closeChildEnds()
	if err == nil {
		var b []byte
		if b, err = os.ReadFile(pidFile); err == nil {
			m.initPid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		}
	}
	if err != nil {
		// runc's message starts with "runc run failed: ".
		r.err = errors.New(runcError(err, m.runc.Log))
		close(r.failed)
		return
	}
	r.pid = m.initPid
	close(r.started)
}

// runcError gives runc's own message: go-runc's error says only "exit
// status 1", the reason is in runc's log.
func runcError(err error, logPath string) string {
	b, rerr := os.ReadFile(logPath)
	if rerr != nil {
		return err.Error()
	}
	msg := ""
	for _, line := range bytes.Split(b, []byte("\n")) {
		var e struct{ Level, Msg string }
		if json.Unmarshal(line, &e) == nil && (e.Level == "error" || e.Level == "fatal") && e.Msg != "" {
			msg = e.Msg
		}
	}
	if msg == "" {
		return err.Error()
	}
	return msg
}

// copyOutput copies one output stream of the container to the log and
// the attached clients.
func (m *monitor) copyOutput(stream string, r io.Reader, id byte) {
	m.outputDone.Add(1)
	go func() {
		defer m.outputDone.Done()
		err := m.logw.Copy(stream, r, func(p []byte) { m.broadcast(id, p) })
		if err != nil && !errors.Is(err, syscall.EIO) && !errors.Is(err, os.ErrClosed) {
			m.log.Warn("copy container output", "stream", stream, "err", err)
		}
	}()
}

func (m *monitor) broadcast(id byte, p []byte) {
	m.mu.Lock()
	var cs []*client
	for c := range m.clients {
		if (id == mux.Stdout && c.stdout) || (id == mux.Stderr && c.stderr) {
			cs = append(cs, c)
		}
	}
	m.mu.Unlock()
	for _, c := range cs {
		c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := c.w.WriteFrame(id, p); err != nil {
			m.mu.Lock()
			delete(m.clients, c)
			m.mu.Unlock()
			c.conn.Close()
		}
	}
}

// wait waits for the container's init to exit.
func (m *monitor) wait() ExitStatus {
	if r := m.run; r != nil {
		select {
		case <-r.started:
		case <-r.failed:
			return ExitStatus{Code: 128, FinishedAt: time.Now().UTC(), Error: r.err.Error()}
		}
	}
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(m.initPid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return ExitStatus{Code: 255, FinishedAt: time.Now().UTC(), Error: "wait for the container: " + err.Error()}
		}
		break
	}
	st := ExitStatus{FinishedAt: time.Now().UTC()}
	switch {
	case ws.Exited():
		st.Code = ws.ExitStatus()
	case ws.Signaled():
		st.Code = 128 + int(ws.Signal())
	}
	return st
}

// oomKilled reports whether the memory cgroup killed a process for
// lack of memory (cgroup v1 counts them in memory.oom_control).
func (m *monitor) oomKilled() bool {
	if m.cfg.MemoryCgroup == "" {
		return false
	}
	b, err := os.ReadFile(filepath.Join(m.cfg.MemoryCgroup, "memory.oom_control"))
	if err != nil {
		return false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "oom_kill" && f[1] != "0" {
			return true
		}
	}
	return false
}

// cleanup deletes the runc container and unmounts the root file system.
func (m *monitor) cleanup(ctx context.Context) error {
	var errs []error
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	deleted := false
	if m.run != nil {
		err := deleteStopped(m.cfg.RuncRoot, m.cfg.ID)
		if err != nil {
			m.log.Debug("runc delete instead", "err", err)
		}
		deleted = err == nil
	}
	if !deleted {
		if err := m.runc.Delete(dctx, m.cfg.ID, &runc.DeleteOpts{Force: true}); err != nil {
			if _, serr := os.Stat(filepath.Join(m.cfg.RuncRoot, m.cfg.ID)); serr == nil {
				errs = append(errs, fmt.Errorf("runc delete: %w", err))
			}
		}
	}
	if m.cfg.Rootfs != "" {
		if err := unix.Unmount(m.cfg.Rootfs, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m.cfg.Rootfs, err))
		}
	}
	return errors.Join(errs...)
}

func (m *monitor) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go m.handle(c)
	}
}

func (m *monitor) reply(c net.Conn, r Reply) error {
	b, _ := json.Marshal(r)
	_, err := c.Write(append(b, '\n'))
	return err
}

func (m *monitor) handle(c net.Conn) {
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := br.ReadBytes('\n')
	c.SetReadDeadline(time.Time{})
	if err != nil {
		c.Close()
		return
	}
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		m.reply(c, Reply{Error: "bad request: " + err.Error()})
		c.Close()
		return
	}
	switch req.Op {
	case "start":
		pid, err := m.start()
		if err != nil {
			m.reply(c, Reply{Error: err.Error()})
		} else {
			m.reply(c, Reply{Pid: pid})
		}
		c.Close()
	case "wait":
		m.mu.Lock()
		if m.exited != nil {
			st := *m.exited
			m.mu.Unlock()
			m.reply(c, Reply{Exit: &st})
			c.Close()
			return
		}
		m.waiters = append(m.waiters, c)
		m.mu.Unlock()
	case "attach":
		m.attach(c, br, req)
	case "resize":
		var con console.Console
		if req.Exec != "" {
			m.mu.Lock()
			con = m.execs[req.Exec]
			m.mu.Unlock()
		} else {
			con = m.pty
		}
		if con == nil {
			m.reply(c, Reply{Error: "no terminal to resize"})
		} else if err := con.Resize(console.WinSize{Height: req.Height, Width: req.Width}); err != nil {
			m.reply(c, Reply{Error: err.Error()})
		} else {
			m.reply(c, Reply{})
		}
		c.Close()
	case "exec":
		m.exec(c, br, req)
	default:
		m.reply(c, Reply{Error: "unknown op " + req.Op})
		c.Close()
	}
}

// attach streams the container's output to c, and c's input to the
// container's stdin when asked.
func (m *monitor) attach(c net.Conn, br *bufio.Reader, req Request) {
	cl := &client{conn: c, w: mux.NewWriter(c), stdout: req.Stdout, stderr: req.Stderr}
	m.mu.Lock()
	if m.exited != nil {
		m.mu.Unlock()
		m.reply(c, Reply{})
		c.Close()
		return
	}
	m.clients[cl] = true
	m.mu.Unlock()
	if err := m.reply(c, Reply{}); err != nil {
		c.Close()
		return
	}
	if !req.Stdin {
		// Hold on until the client goes or the container ends.
		io.Copy(io.Discard, br)
		m.mu.Lock()
		delete(m.clients, cl)
		m.mu.Unlock()
		return
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := br.Read(buf)
		if n > 0 {
			m.stdinMu.Lock()
			if m.stdin != nil {
				m.stdin.Write(buf[:n])
			}
			m.stdinMu.Unlock()
		}
		if err != nil {
			break
		}
	}
	// The client's stdin has ended (it half-closed, or went). As Docker:
	// a container whose stdin is once-only (docker run -i, docker create
	// -i) and has no terminal gets its stdin closed, and the attach goes on
	// until the container ends; any other attach ends here, leaving the
	// container's stdin open for the next one.
	if m.cfg.StdinOnce && !m.cfg.Tty {
		m.stdinMu.Lock()
		if m.stdin != nil {
			m.stdin.Close()
			m.stdin = nil
		}
		m.stdinMu.Unlock()
		return
	}
	m.mu.Lock()
	_, still := m.clients[cl]
	delete(m.clients, cl)
	m.mu.Unlock()
	if still {
		c.Close()
	}
}

// exec runs a process in the container, streaming its I/O over c and
// ending with an Exit frame.
func (m *monitor) exec(c net.Conn, br *bufio.Reader, req Request) {
	defer c.Close()
	if req.Process == nil {
		m.reply(c, Reply{Error: "exec without a process"})
		return
	}
	w := mux.NewWriter(c)
	ctx := context.Background()
	code := 0
	var runErr error
	if req.Process.Terminal {
		sock, err := runc.NewTempConsoleSocket()
		if err != nil {
			m.reply(c, Reply{Error: err.Error()})
			return
		}
		defer sock.Close()
		pidFile := filepath.Join(m.cfg.Dir, "exec-"+req.Exec+".pid")
		defer os.Remove(pidFile)
		if err := m.runc.Exec(ctx, m.cfg.ID, *req.Process, &runc.ExecOpts{Detach: true, ConsoleSocket: sock, PidFile: pidFile}); err != nil {
			m.reply(c, Reply{Error: "runc exec failed: " + runcError(err, m.runc.Log)})
			return
		}
		pty, err := sock.ReceiveMaster()
		if err != nil {
			m.reply(c, Reply{Error: err.Error()})
			return
		}
		defer pty.Close()
		b, _ := os.ReadFile(pidFile)
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		m.mu.Lock()
		m.execs[req.Exec] = pty
		m.mu.Unlock()
		defer func() { m.mu.Lock(); delete(m.execs, req.Exec); m.mu.Unlock() }()
		m.reply(c, Reply{Pid: pid})
		if req.Stdin {
			go io.Copy(pty, br)
		}
		outDone := make(chan struct{})
		go func() { io.Copy(w.Stream(mux.Stdout), pty); close(outDone) }()
		var ws unix.WaitStatus
		for {
			_, err := unix.Wait4(pid, &ws, 0, nil)
			if err != unix.EINTR {
				runErr = err
				break
			}
		}
		select {
		case <-outDone:
		case <-time.After(2 * time.Second):
		}
		code = exitCode(ws)
	} else {
		pio, err := newPipeIO(req.Stdin, true, true)
		if err != nil {
			m.reply(c, Reply{Error: err.Error()})
			return
		}
		var outs sync.WaitGroup
		outs.Add(2)
		go func() { defer outs.Done(); io.Copy(w.Stream(mux.Stdout), pio.stdoutR) }()
		go func() { defer outs.Done(); io.Copy(w.Stream(mux.Stderr), pio.stderrR) }()
		started := make(chan int, 1)
		errc := make(chan error, 1)
		go func() {
			errc <- m.runc.Exec(ctx, m.cfg.ID, *req.Process, &runc.ExecOpts{IO: pio, Started: started})
		}()
		pid, ok := <-started
		if !ok {
			err := <-errc
			pio.closeAll()
			m.reply(c, Reply{Error: "runc exec: " + fmt.Sprint(err)})
			return
		}
		pio.closeChildEnds()
		m.reply(c, Reply{Pid: pid})
		if req.Stdin {
			go func() {
				io.Copy(pio.stdinW, br)
				pio.stdinW.Close()
			}()
		}
		err = <-errc
		outs.Wait()
		var ee *runc.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			code = ee.Status
		default:
			runErr = err
		}
	}
	st := ExitStatus{Code: code, FinishedAt: time.Now().UTC()}
	if runErr != nil {
		st.Code, st.Error = 126, runErr.Error()
	}
	b, _ := json.Marshal(st)
	w.WriteFrame(mux.Exit, b)
}

func exitCode(ws unix.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return 255
}

// pipeIO is a container's (or exec's) stdio as pipes: the child ends go
// to runc, the parent ends stay here.
type pipeIO struct {
	stdinR, stdinW   *os.File
	stdoutR, stdoutW *os.File
	stderrR, stderrW *os.File
}

var _ runc.IO = (*pipeIO)(nil)

func newPipeIO(stdin, stdout, stderr bool) (*pipeIO, error) {
	p := &pipeIO{}
	var err error
	if stdin {
		if p.stdinR, p.stdinW, err = os.Pipe(); err != nil {
			return nil, err
		}
	}
	if stdout {
		if p.stdoutR, p.stdoutW, err = os.Pipe(); err != nil {
			p.closeAll()
			return nil, err
		}
	}
	if stderr {
		if p.stderrR, p.stderrW, err = os.Pipe(); err != nil {
			p.closeAll()
			return nil, err
		}
	}
	return p, nil
}

func (p *pipeIO) Stdin() io.WriteCloser  { return p.stdinW }
func (p *pipeIO) Stdout() io.ReadCloser  { return p.stdoutR }
func (p *pipeIO) Stderr() io.ReadCloser  { return p.stderrR }
func (p *pipeIO) Close() error           { p.closeAll(); return nil }
func (p *pipeIO) CloseAfterStart() error { return nil }

// Set gives runc the child ends; without stdin the process reads
// /dev/null.
func (p *pipeIO) Set(cmd *exec.Cmd) {
	if p.stdinR != nil {
		cmd.Stdin = p.stdinR
	}
	if p.stdoutW != nil {
		cmd.Stdout = p.stdoutW
	}
	if p.stderrW != nil {
		cmd.Stderr = p.stderrW
	}
}

func (p *pipeIO) closeChildEnds() {
	for _, f := range []**os.File{&p.stdinR, &p.stdoutW, &p.stderrW} {
		if *f != nil {
			(*f).Close()
			*f = nil
		}
	}
}

func (p *pipeIO) closeAll() {
	p.closeChildEnds()
	for _, f := range []*os.File{p.stdinW, p.stdoutR, p.stderrR} {
		if f != nil {
			f.Close()
		}
	}
}

// deleteStopped removes what runc keeps of a container that has stopped:
// its cgroups and its state directory, as runc delete
// does for a stopped container, without the 20-30 ms of starting runc.
// It refuses what it does not expect (a cgroup outside /sys/fs/cgroup,
// Intel RDT groups, a cgroup that still holds processes), for runc
// delete to handle.
func deleteStopped(root, id string) error {
	dir := filepath.Join(root, id)
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return err
	}
	var st struct {
		CgroupPaths  map[string]string `json:"cgroup_paths"`
		IntelRdtPath string            `json:"intel_rdt_path"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("runc state of %s: %w", id, err)
	}
	if st.IntelRdtPath != "" {
		return errors.New("the container has an Intel RDT group")
	}
	for _, p := range st.CgroupPaths {
		if filepath.Clean(p) != p || !strings.HasPrefix(p, "/sys/fs/cgroup/") {
			return fmt.Errorf("unexpected cgroup path %q", p)
		}
	}
	for _, p := range st.CgroupPaths {
		if err := rmdirCgroup(p); err != nil {
			return err
		}
	}
	return os.RemoveAll(dir)
}

// rmdirCgroup removes an empty cgroup, waiting a little for the kernel to
// let go of its last exited tasks; a missing one is no error.
func rmdirCgroup(p string) error {
	for i := 0; ; i++ {
		err := unix.Rmdir(p)
		if err == nil || err == unix.ENOENT {
			return nil
		}
		if err != unix.EBUSY || i == 50 {
			return fmt.Errorf("remove cgroup %s: %w", p, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
