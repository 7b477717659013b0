package brick

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
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

	"golang.org/x/sys/unix"
)

// Spec names a brick this node should serve.
type Spec struct {
	Volume   string
	VolumeID string
	BrickID  string
	Path     string
}

// Status is a brick process's state as the supervisor sees it.
type Status struct {
	Port int
	// Socket is the brick's local socket (SocketPath), when it answers
	// there.
	Socket string
	PID    int
	Online bool
	Err    string
}

// SupervisorConfig wires a Supervisor.
type SupervisorConfig struct {
	Log *slog.Logger
	// Command returns the command that serves a brick on a port.
	Command func(s Spec, port int) *exec.Cmd
	// Exe is the executable Command runs; running bricks of another
	// executable are replaced rather than adopted.
	Exe string
	// Addr is the IP bricks listen on; ports are taken from PortBase up.
	Addr     string
	PortBase int
	// RunDir holds one state file per brick, so a restarted daemon adopts
	// the bricks that kept running; LogDir holds their logs.
	RunDir string
	LogDir string
	// ClientTLS is used for health checks.
	ClientTLS *tls.Config
	// OnChange is called after every change of a brick's status, and after
	// a brick stops being served; Status has the new state.
	OnChange func()
}

// Supervisor runs one server process per brick, restarts those that die,
// and stops them when their volume stops. Bricks run in their own session:
// they outlive a daemon restart and are adopted again, so the data path
// does not stop when the management daemon does.
type Supervisor struct {
	cfg SupervisorConfig
	mu  sync.Mutex
	run map[string]*proc
	// ports are reserved by brick ID while a brick is launched or runs, so
	// two bricks starting at once never pick the same one.
	portMu sync.Mutex
	ports  map[string]int
}

type proc struct {
	spec   Spec
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	status Status
	kick   chan struct{}
}

// stateFile is what a running brick leaves in RunDir.
type stateFile struct {
	PID       int    `json:"pid"`
	Port      int    `json:"port"`
	StartTime uint64 `json:"startTime"`
	Volume    string `json:"volume"`
	VolumeID  string `json:"volumeID"`
	Path      string `json:"path"`
}

// NewSupervisor returns a supervisor with nothing running.
func NewSupervisor(cfg SupervisorConfig) *Supervisor {
	return &Supervisor{cfg: cfg, run: map[string]*proc{}, ports: map[string]int{}}
}

// Ensure makes the set of served bricks exactly want: it starts (or adopts)
// the missing ones and stops the others.
func (s *Supervisor) Ensure(ctx context.Context, want []Spec) {
	wanted := map[string]Spec{}
	for _, sp := range want {
		wanted[sp.BrickID] = sp
	}
	s.mu.Lock()
	var stop []*proc
	for id, p := range s.run {
		if sp, ok := wanted[id]; !ok || sp != p.spec {
			stop = append(stop, p)
			delete(s.run, id)
		}
	}
	for id, sp := range wanted {
		if _, ok := s.run[id]; !ok {
			pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
			p := &proc{spec: sp, cancel: cancel, done: make(chan struct{}), kick: make(chan struct{}, 1)}
			s.run[id] = p
			go s.loop(pctx, p)
		}
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range stop {
		wg.Add(1)
		go func() { defer wg.Done(); s.stop(p) }()
	}
	wg.Wait()
}

// Kick asks for an immediate restart of a brick that is down (volume start
// force).
func (s *Supervisor) Kick(brickID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.run[brickID]; ok {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
}

// Served is a brick being served and its current status.
type Served struct {
	Spec   Spec
	Status Status
}

// Status returns every served brick with its current status, by brick ID.
func (s *Supervisor) Status() map[string]Served {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]Served{}
	for id, p := range s.run {
		p.mu.Lock()
		out[id] = Served{Spec: p.spec, Status: p.status}
		p.mu.Unlock()
	}
	return out
}

// Detach forgets every brick without stopping it, for a daemon shutdown:
// the bricks keep serving and the next daemon adopts them.
func (s *Supervisor) Detach() {
	s.mu.Lock()
	ps := s.run
	s.run = map[string]*proc{}
	s.mu.Unlock()
	for _, p := range ps {
		p.cancel()
		<-p.done
	}
}

func (s *Supervisor) stop(p *proc) {
	p.cancel()
	<-p.done
	st := s.readState(p.spec.BrickID)
	if st != nil && s.alive(st) {
		terminate(st.PID)
	}
	os.Remove(s.statePath(p.spec.BrickID))
	s.portMu.Lock()
	delete(s.ports, p.spec.BrickID)
	s.portMu.Unlock()
	s.cfg.OnChange()
	s.cfg.Log.Info("brick stopped", "volume", p.spec.Volume, "path", p.spec.Path)
}

func terminate(pid int) {
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 50; i++ {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

func (s *Supervisor) set(p *proc, st Status) {
	p.mu.Lock()
	changed := p.status != st
	p.status = st
	p.mu.Unlock()
	if changed {
		s.cfg.OnChange()
	}
}

// loop keeps one brick running until ctx ends.
func (s *Supervisor) loop(ctx context.Context, p *proc) {
	defer close(p.done)
	log := s.cfg.Log.With("volume", p.spec.Volume, "brick", p.spec.Path)
	backoff := time.Second
	for ctx.Err() == nil {
		st := s.readState(p.spec.BrickID)
		var exited <-chan string
		if st != nil && s.alive(st) && !s.sameBinary(st.PID) {
			// A brick from another build of caisd (an upgrade): replace it,
			// so the data path runs the code the daemon was built with.
			log.Info("restarting brick that runs another caisd binary", "pid", st.PID)
			terminate(st.PID)
			st = nil
		}
		if st != nil && s.alive(st) && st.VolumeID == p.spec.VolumeID && st.Path == p.spec.Path {
			log.Info("adopted running brick", "pid", st.PID, "port", st.Port)
			s.portMu.Lock()
			s.ports[p.spec.BrickID] = st.Port
			s.portMu.Unlock()
			exited = watchPID(ctx, st.PID)
		} else {
			var err error
			st, exited, err = s.launch(ctx, p.spec)
			if err != nil {
				log.Error("brick failed to start", "err", err)
				s.set(p, Status{Err: err.Error()})
				if !s.sleep(ctx, p, backoff) {
					return
				}
				backoff = min(backoff*2, 30*time.Second)
				continue
			}
			log.Info("brick started", "pid", st.PID, "port", st.Port)
		}
		s.set(p, Status{Port: st.Port, PID: st.PID})
		why := s.watch(ctx, p, st, exited)
		if ctx.Err() != nil {
			return
		}
		log.Warn("brick exited; restarting", "pid", st.PID, "reason", why)
		s.set(p, Status{Err: "brick process exited: " + why})
		if !s.sleep(ctx, p, backoff) {
			return
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// watch health-checks a running brick until it exits or ctx ends.
func (s *Supervisor) watch(ctx context.Context, p *proc, st *stateFile, exited <-chan string) string {
	addr := net.JoinHostPort(s.cfg.Addr, strconv.Itoa(st.Port))
	t := time.NewTimer(0)
	defer t.Stop()
	interval := 200 * time.Millisecond
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return ""
		case why := <-exited:
			return why
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, err := Ping(pctx, addr, s.cfg.ClientTLS)
		cancel()
		if err == nil {
			failures = 0
			interval = 5 * time.Second
			s.set(p, Status{Port: st.Port, Socket: s.localSocket(ctx, p.spec), PID: st.PID, Online: true})
		} else if ctx.Err() == nil {
			s.cfg.Log.Debug("brick health check failed", "brick", p.spec.Path, "err", err)
			failures++
			if failures >= 3 && interval > time.Second {
				s.set(p, Status{Port: st.Port, PID: st.PID, Err: err.Error()})
			}
		}
		t.Reset(interval)
	}
}

// localSocket is the brick's local socket if it serves sp there, or "".
func (s *Supervisor) localSocket(ctx context.Context, sp Spec) string {
	path := SocketPath(s.cfg.RunDir, sp.BrickID)
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	c, err := DialLocal(ctx, path, sp.VolumeID, sp.BrickID)
	if err != nil {
		return ""
	}
	c.Close()
	return path
}

func (s *Supervisor) sleep(ctx context.Context, p *proc, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-p.kick:
		return true
	case <-time.After(d):
		return true
	}
}

// launch starts a brick process on a free port.
func (s *Supervisor) launch(ctx context.Context, sp Spec) (*stateFile, <-chan string, error) {
	port, err := s.freePort(sp.BrickID)
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(s.cfg.LogDir, 0o755); err != nil {
		return nil, nil, err
	}
	logPath := filepath.Join(s.cfg.LogDir, "brick-"+sp.Volume+"-"+sp.BrickID+".log")
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("open brick log: %w", err)
	}
	defer lf.Close()
	cmd := s.cfg.Command(sp, port)
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = ProcessEnv(cmd.Env)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start brick process: %w", err)
	}
	st := &stateFile{PID: cmd.Process.Pid, Port: port, StartTime: startTime(cmd.Process.Pid), Volume: sp.Volume, VolumeID: sp.VolumeID, Path: sp.Path}
	if err := s.writeState(sp.BrickID, st); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, nil, err
	}
	exited := make(chan string, 1)
	go func() {
		err := cmd.Wait()
		why := "exited"
		if err != nil {
			why = err.Error()
		}
		if tail := lastLine(logPath); tail != "" {
			why += ": " + tail
		}
		exited <- why
	}()
	return st, exited, nil
}

func (s *Supervisor) freePort(brickID string) (int, error) {
	s.portMu.Lock()
	defer s.portMu.Unlock()
	used := map[int]bool{}
	for id, p := range s.ports {
		if id != brickID {
			used[p] = true
		}
	}
	entries, _ := os.ReadDir(s.cfg.RunDir)
	for _, e := range entries {
		id := strings.TrimSuffix(e.Name(), ".json")
		if id == brickID {
			continue
		}
		if st := s.readState(id); st != nil {
			used[st.Port] = true
		}
	}
	for port := s.cfg.PortBase; port < s.cfg.PortBase+2000 && port < 65536; port++ {
		if used[port] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(s.cfg.Addr, strconv.Itoa(port)))
		if err != nil {
			continue
		}
		ln.Close()
		s.ports[brickID] = port
		return port, nil
	}
	return 0, fmt.Errorf("no free brick port on %s from %d", s.cfg.Addr, s.cfg.PortBase)
}

func (s *Supervisor) statePath(id string) string { return stateFilePath(s.cfg.RunDir, id) }

// stateFilePath is the file in runDir that describes the running brick id
// (its pid and port); ShareCPUs counts them.
func stateFilePath(runDir, id string) string { return filepath.Join(runDir, id+".json") }

func (s *Supervisor) readState(id string) *stateFile {
	b, err := os.ReadFile(s.statePath(id))
	if err != nil {
		return nil
	}
	var st stateFile
	if json.Unmarshal(b, &st) != nil || st.PID <= 0 {
		return nil
	}
	return &st
}

func (s *Supervisor) writeState(id string, st *stateFile) error {
	if err := os.MkdirAll(s.cfg.RunDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", s.cfg.RunDir, err)
	}
	b, _ := json.Marshal(st)
	tmp := s.statePath(id) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write brick state: %w", err)
	}
	return os.Rename(tmp, s.statePath(id))
}

// alive reports whether the state file's process still runs (and is the
// same process, not a reused PID).
func (s *Supervisor) alive(st *stateFile) bool {
	if syscall.Kill(st.PID, 0) != nil {
		return false
	}
	return startTime(st.PID) == st.StartTime
}

// sameBinary reports whether pid runs the executable the supervisor
// starts bricks with (a replaced file shows as "PATH (deleted)").
func (s *Supervisor) sameBinary(pid int) bool {
	if s.cfg.Exe == "" {
		return true
	}
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	return err == nil && exe == s.cfg.Exe
}

// startTime reads a process's start time from /proc/PID/stat.
func startTime(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name may hold spaces; fields resume after the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0
	}
	if f[0] == "Z" {
		return 0
	}
	n, _ := strconv.ParseUint(f[19], 10, 64)
	return n
}

// watchPID reports when a process that is not our child exits.
func watchPID(ctx context.Context, pid int) <-chan string {
	ch := make(chan string, 1)
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		ch <- "cannot watch adopted process: " + err.Error()
		return ch
	}
	go func() {
		defer unix.Close(fd)
		for ctx.Err() == nil {
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, err := unix.Poll(fds, 500)
			if err != nil && !errors.Is(err, unix.EINTR) {
				ch <- "poll: " + err.Error()
				return
			}
			if n > 0 {
				ch <- "adopted process exited"
				return
			}
		}
	}()
	return ch
}

func lastLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	l := lines[len(lines)-1]
	if len(l) > 300 {
		l = l[len(l)-300:]
	}
	return l
}
