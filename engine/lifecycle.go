package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cais-platform/cais/engine/monitor"
	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/image/store"
)

// CreateRequest is what docker create sends.
type CreateRequest struct {
	Name       string
	Config     Config
	HostConfig HostConfig
	// EndpointsConfig is NetworkingConfig.EndpointsConfig: the networks
	// to join, by name, with aliases and addresses.
	EndpointsConfig map[string]*EndpointSettings
}

// MergeImageConfig fills what the user left out of c from the image's
// config, as Docker does: a user entrypoint drops the image's cmd unless a
// cmd is given too; environment variables are the image's overridden by
// the user's.
func MergeImageConfig(c Config, img store.ContainerConfig) Config {
	if len(c.Entrypoint) == 1 && c.Entrypoint[0] == "" {
		c.Entrypoint = []string{} // --entrypoint "": none, not the image's
	} else if c.Entrypoint == nil {
		c.Entrypoint = img.Entrypoint
		if len(c.Cmd) == 0 {
			c.Cmd = img.Cmd
		}
	}
	env := append([]string(nil), img.Env...)
	for _, kv := range c.Env {
		k, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, old := range env {
			if ok, _, _ := strings.Cut(old, "="); ok == k {
				env[i], replaced = kv, true
			}
		}
		if !replaced {
			env = append(env, kv)
		}
	}
	c.Env = env
	if c.WorkingDir == "" {
		c.WorkingDir = img.WorkingDir
	}
	if c.User == "" {
		c.User = img.User
	}
	if c.StopSignal == "" {
		c.StopSignal = img.StopSignal
	}
	if len(img.Labels) > 0 {
		labels := map[string]string{}
		for k, v := range img.Labels {
			labels[k] = v
		}
		for k, v := range c.Labels {
			labels[k] = v
		}
		c.Labels = labels
	}
	if len(img.ExposedPorts) > 0 {
		ports := map[string]struct{}{}
		for p := range img.ExposedPorts {
			ports[p] = struct{}{}
		}
		for p := range c.ExposedPorts {
			ports[p] = struct{}{}
		}
		c.ExposedPorts = ports
	}
	if len(img.Volumes) > 0 {
		vols := map[string]struct{}{}
		for v := range img.Volumes {
			vols[v] = struct{}{}
		}
		for v := range c.Volumes {
			vols[v] = struct{}{}
		}
		c.Volumes = vols
	}
	return c
}

// ValidateRestartPolicy checks a restart policy.
func ValidateRestartPolicy(p RestartPolicy, autoRemove bool) error {
	switch p.Name {
	case "", "no":
		if p.MaximumRetryCount != 0 {
			return fmt.Errorf("invalid restart policy: maximum retry count can only be used with 'on-failure': %w", errdefs.ErrInvalid)
		}
	case "always", "unless-stopped":
		if p.MaximumRetryCount != 0 {
			return fmt.Errorf("invalid restart policy: maximum retry count can only be used with 'on-failure': %w", errdefs.ErrInvalid)
		}
		if autoRemove {
			return fmt.Errorf("can't create 'AutoRemove' container with restart policy: %w", errdefs.ErrInvalid)
		}
	case "on-failure":
		if p.MaximumRetryCount < 0 {
			return fmt.Errorf("invalid restart policy: maximum retry count cannot be negative: %w", errdefs.ErrInvalid)
		}
		if autoRemove {
			return fmt.Errorf("can't create 'AutoRemove' container with restart policy: %w", errdefs.ErrInvalid)
		}
	default:
		return fmt.Errorf("invalid restart policy: unknown policy '%s'; use one of 'no', 'always', 'on-failure', or 'unless-stopped': %w", p.Name, errdefs.ErrInvalid)
	}
	return nil
}

// Create makes a container from an image without starting it.
func (e *Engine) Create(ctx context.Context, req CreateRequest) (string, []string, error) {
	if req.Config.Image == "" {
		return "", nil, fmt.Errorf("config cannot be empty in order to create a container: %w", errdefs.ErrInvalid)
	}
	img, err := e.images.Find(req.Config.Image)
	if err != nil {
		if errors.Is(err, errdefs.ErrNotFound) {
			return "", nil, fmt.Errorf("No such image: %s: %w", imageDisplayName(req.Config.Image), errdefs.ErrNotFound)
		}
		return "", nil, err
	}
	_, m, err := e.images.Manifest(img.Target)
	if err != nil {
		return "", nil, err
	}
	icfg, err := e.images.Config(m)
	if err != nil {
		return "", nil, err
	}
	cfg := MergeImageConfig(req.Config, icfg.Config)
	if err := ValidateRestartPolicy(req.HostConfig.RestartPolicy, req.HostConfig.AutoRemove); err != nil {
		return "", nil, err
	}
	id := newID()
	// Check what the spec will refuse now, not at start.
	if _, err := Spec(SpecInput{ID: id, Config: cfg, Host: req.HostConfig, NoFile: e.host.noFile, SwapAccounting: e.host.swapAccounting, CapBounding: e.host.capBounding}); err != nil {
		return "", nil, err
	}
	var warnings []string
	if req.HostConfig.Memory > 0 && req.HostConfig.MemorySwap == 0 && !e.host.swapAccounting {
		warnings = append(warnings, "Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.")
	}
	args := Args(cfg)
	c := &container{Container: Container{
		ID: id, Created: time.Now().UTC(), Path: args[0], Args: args[1:],
		Config: cfg, HostConfig: req.HostConfig, Image: string(img.ID),
		State:   State{Status: Created},
		LogPath: filepath.Join(e.dir(id), id+"-json.log"),
	}, changed: make(chan struct{})}
	if c.HostConfig.NetworkMode == "" || c.HostConfig.NetworkMode == "default" {
		c.HostConfig.NetworkMode = "bridge"
	}
	if err := e.initNetworks(&c.Container, req.EndpointsConfig); err != nil {
		return "", nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	name := strings.TrimPrefix(req.Name, "/")
	if name == "" {
		name = e.randomName()
	} else if err := ValidateName(name); err != nil {
		return "", nil, err
	}
	if other, taken := e.names[name]; taken {
		return "", nil, fmt.Errorf("Conflict. The container name \"/%s\" is already in use by container \"%s\". You have to remove (or rename) that container to be able to reuse that name.: %w", name, other, errdefs.ErrExists)
	}
	c.Name = name
	// The volumes are made outside the lock (a driver may take a
	// while); the name is held meanwhile.
	e.names[name] = id
	e.mu.Unlock()
	mps, err := e.planMounts(ctx, id, cfg, req.HostConfig)
	e.mu.Lock()
	if err != nil {
		delete(e.names, name)
		return "", nil, err
	}
	c.MountPoints = mps
	if err := os.MkdirAll(e.dir(id), 0o700); err != nil {
		delete(e.names, name)
		return "", nil, err
	}
	if err := e.save(c); err != nil {
		delete(e.names, name)
		os.RemoveAll(e.dir(id))
		return "", nil, err
	}
	e.containers[id] = c
	e.publishContainer(c.snapshot(), "create", nil)
	return id, warnings, nil
}

func imageDisplayName(s string) string {
	if !strings.Contains(s, ":") && !strings.Contains(s, "@") {
		return s + ":latest"
	}
	return s
}

// Start starts a created or exited container. Starting a running one is
// ErrNotModified.
func (e *Engine) Start(ctx context.Context, ref string) error {
	c, err := e.lookup(ref)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	e.mu.Lock()
	st, removed := c.State, c.removed
	e.mu.Unlock()
	if removed {
		return fmt.Errorf("No such container: %s: %w", ref, errdefs.ErrNotFound)
	}
	if st.Running() {
		return ErrNotModified
	}
	e.setState(c, func(c *container) { c.State.StoppedByUser = false })
	return e.start(ctx, c)
}

// ErrNotModified: the container is in the state asked for already.
var ErrNotModified = errors.New("container already in that state")

// start runs c's process under a new monitor; c.op is held.
func (e *Engine) start(ctx context.Context, c *container) (err error) {
	snap := func() Container { e.mu.Lock(); defer e.mu.Unlock(); return c.snapshot() }()
	dir := e.dir(c.ID)
	rootfs := filepath.Join(dir, "rootfs")
	took := phases{last: time.Now()}
	defer func() {
		if err == nil {
			e.log.Debug("container started", append([]any{"container", c.ID}, took.attrs()...)...)
		}
		if err != nil {
			e.unmountVolumes(snap)
			syscall.Unmount(rootfs, syscall.MNT_DETACH)
			e.disconnectNetworks(c)
			if snap.HostConfig.AutoRemove {
				// docker run --rm waits for the removal even when the
				// start fails.
				go e.Remove(context.Background(), c.ID, RemoveOptions{Force: true, RemoveVolumes: true})
			}
			e.setState(c, func(c *container) {
				c.State.Status = Exited
				c.State.ExitCode = 128
				c.State.Error = err.Error()
				c.State.FinishedAt = time.Now().UTC()
				c.monitorUp = false
				c.exits++
			})
		}
	}()
	if err := e.mountRootfs(ctx, snap, dir); err != nil {
		return err
	}
	took.mark("rootfs")
	user, err := resolveUserInRoot(rootfs, snap.Config.User)
	if err != nil {
		return err
	}
	etc, err := e.writeEtcFiles(snap, dir)
	if err != nil {
		return err
	}
	took.mark("etc")
	netns, err := e.connectNetworks(ctx, c, snap)
	if err != nil {
		return err
	}
	took.mark("network")
	if err := e.writeNetworkEtc(c, etc); err != nil {
		return err
	}
	volSources, err := e.mountVolumes(ctx, snap, rootfs)
	if err != nil {
		return err
	}
	took.mark("volumes")
	devices, err := ResolveDevices(snap.HostConfig)
	if err != nil {
		return err
	}
	spec, err := Spec(SpecInput{ID: c.ID, Config: snap.Config, Host: snap.HostConfig, Rootfs: rootfs, User: user, EtcFiles: etc, NoFile: e.host.noFile, SwapAccounting: e.host.swapAccounting, VolumeSources: volSources, NetNSPath: netns,
		CapBounding: e.host.capBounding, Devices: devices})
	if err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(dir, "config.json"), spec); err != nil {
		return err
	}
	took.mark("spec")
	mcfg := monitor.Config{
		ID: c.ID, Dir: dir, Runc: e.opts.Runc, RuncRoot: e.runcDir, LogPath: snap.LogPath,
		Rootfs: rootfs, Tty: snap.Config.Tty, OpenStdin: snap.Config.OpenStdin, StdinOnce: snap.Config.StdinOnce,
	}
	if e.host.memoryCgroup != "" {
		mcfg.MemoryCgroup = filepath.Join(e.host.memoryCgroup, spec.Linux.CgroupsPath)
	}
	os.Remove(filepath.Join(dir, monitor.ExitName))
	if err := writeJSON(filepath.Join(dir, monitor.ConfigName), mcfg); err != nil {
		return err
	}
	if err := e.launchMonitor(dir); err != nil {
		return err
	}
	took.mark("monitor")
	// Let attach requests that came before the start connect, so they see
	// all the output.
	e.mu.Lock()
	c.monitorUp = true
	e.notify(c)
	e.mu.Unlock()
	deadline := time.Now().Add(2 * time.Second)
	for {
		e.mu.Lock()
		n, ch := c.attaching, c.changed
		e.mu.Unlock()
		if n == 0 || time.Now().After(deadline) {
			break
		}
		select {
		case <-ch:
		case <-time.After(50 * time.Millisecond):
		}
	}
	took.mark("attach")
	rep, err := monitor.Call(ctx, dir, monitor.Request{Op: "start"})
	e.ensureStandby()
	if err != nil {
		// The monitor cleans up after a container that never ran.
		e.runtimeCleanup(c.ID)
		return err
	}
	took.mark("runc-start")
	e.setState(c, func(c *container) {
		c.State = State{Status: Running, Pid: rep.Pid, StartedAt: time.Now().UTC()}
	})
	e.publishContainer(snap, "start", nil)
	e.watch(c, true)
	return nil
}

// runtimeCleanup stops a monitor whose container never started.
func (e *Engine) runtimeCleanup(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.rt.Kill(ctx, id, syscall.SIGKILL, true)
}

// launchMonitor hands the container in dir to the standby monitor, or to
// a new one when there is none, and waits until it is ready to start it.
func (e *Engine) launchMonitor(dir string) error {
	if sb := e.takeStandby(); sb != nil {
		assigned, err := sb.assign(dir)
		if assigned {
			return err
		}
		e.log.Debug("standby monitor gone; starting one", "err", err)
	}
	sb, err := e.spawnStandby()
	if err != nil {
		return err
	}
	assigned, err := sb.assign(dir)
	if !assigned {
		return fmt.Errorf("start the container's monitor: %w", err)
	}
	return err
}

// watch waits (in the background) for c's current run to end, then
// records its exit and applies the restart policy and auto-removal.
func (e *Engine) watch(c *container, fresh bool) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		dir := e.dir(c.ID)
		var st monitor.ExitStatus
		conn, rep, err := monitor.Dial(e.ctx, dir, monitor.Request{Op: "wait"})
		switch {
		case err == nil && rep.Exit != nil:
			conn.Close()
			st = *rep.Exit
		case e.ctx.Err() != nil:
			return // caisd stops; the monitor carries on
		default:
			// The monitor is gone: it wrote exit.json, or died.
			if x, rerr := monitor.ReadExit(dir); rerr == nil {
				st = x
			} else {
				st = monitor.ExitStatus{Code: 255, FinishedAt: time.Now().UTC(), Error: "the container's monitor is gone"}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				e.rt.Kill(ctx, c.ID, syscall.SIGKILL, true)
				e.rt.Delete(ctx, c.ID)
				cancel()
				syscall.Unmount(filepath.Join(dir, "rootfs"), syscall.MNT_DETACH)
			}
		}
		// The network goes before the exit is recorded: a start that
		// follows must not have its new namespace torn down.
		e.disconnectNetworks(c)
		var restart bool
		var delay time.Duration
		var ended Container
		e.setState(c, func(c *container) {
			c.State.Status = Exited
			c.State.Pid = 0
			c.State.ExitCode = st.Code
			c.State.OOMKilled = st.OOMKilled
			c.State.FinishedAt = st.FinishedAt
			c.State.Error = st.Error
			c.monitorUp = false
			c.exits++
			restart = shouldRestart(c.HostConfig.RestartPolicy, c.State, c.RestartCount)
			if restart {
				c.State.Status = Restarting
				c.RestartCount++
				delay = backoff(c.RestartCount)
			}
			ended = c.snapshot()
		})
		e.unmountVolumes(ended)
		if st.OOMKilled {
			e.publishContainer(ended, "oom", nil)
		}
		e.publishContainer(ended, "die", map[string]string{"exitCode": strconv.Itoa(st.Code)})
		if restart {
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				select {
				case <-e.ctx.Done():
					return
				case <-time.After(delay):
				}
				c.op.Lock()
				defer c.op.Unlock()
				e.mu.Lock()
				ok := c.State.Status == Restarting && !c.removed
				e.mu.Unlock()
				if ok {
					if err := e.start(e.ctx, c); err != nil {
						e.log.Warn("restart failed", "container", c.Name, "err", err)
					}
				}
			}()
			return
		}
		e.mu.Lock()
		auto := c.HostConfig.AutoRemove
		e.mu.Unlock()
		if auto {
			if err := e.Remove(context.Background(), c.ID, RemoveOptions{RemoveVolumes: true}); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
				e.log.Warn("auto-remove failed", "container", c.Name, "err", err)
			}
		}
	}()
}

// shouldRestart applies a restart policy to an exit.
func shouldRestart(p RestartPolicy, st State, count int) bool {
	if st.StoppedByUser {
		return false
	}
	switch p.Name {
	case "always", "unless-stopped":
		return true
	case "on-failure":
		return st.ExitCode != 0 && (p.MaximumRetryCount == 0 || count < p.MaximumRetryCount)
	}
	return false
}

// backoff is the delay before the n-th restart: 100ms doubling, at most a
// minute, as Docker's.
func backoff(n int) time.Duration {
	d := 100 * time.Millisecond
	for i := 1; i < n && d < time.Minute; i++ {
		d *= 2
	}
	if d > time.Minute {
		d = time.Minute
	}
	return d
}

// Kill sends a signal to a running container.
func (e *Engine) Kill(ctx context.Context, ref string, sig syscall.Signal) error {
	c, err := e.lookup(ref)
	if err != nil {
		return err
	}
	e.mu.Lock()
	running := c.State.Status == Running
	e.mu.Unlock()
	if !running {
		return fmt.Errorf("cannot kill container: %s: container %s is not running: %w", ref, c.ID, errdefs.ErrState)
	}
	if sig == 0 {
		sig = syscall.SIGKILL
	}
	if sig == syscall.SIGKILL || sig == syscall.SIGTERM || sig == syscall.SIGINT {
		e.setState(c, func(c *container) { c.State.StoppedByUser = true })
	}
	if err := e.rt.Kill(ctx, c.ID, sig, false); err != nil {
		return err
	}
	snap, _ := e.Get(c.ID)
	e.publishContainer(snap, "kill", map[string]string{"signal": strconv.Itoa(int(sig))})
	return nil
}

// Stop stops a container: its stop signal, then SIGKILL after timeout
// (default 10s; negative waits forever).
func (e *Engine) Stop(ctx context.Context, ref string, timeout *int, signal string) error {
	c, err := e.lookup(ref)
	if err != nil {
		return err
	}
	e.mu.Lock()
	st := c.State
	stopSignal := c.Config.StopSignal
	if c.Config.StopTimeout != nil && timeout == nil {
		timeout = c.Config.StopTimeout
	}
	e.mu.Unlock()
	if st.Status == Restarting {
		e.setState(c, func(c *container) { c.State.Status = Exited; c.State.StoppedByUser = true })
		return nil
	}
	if st.Status != Running {
		return ErrNotModified
	}
	if signal == "" {
		signal = stopSignal
	}
	sig := syscall.SIGTERM
	if signal != "" {
		if sig, err = ParseSignal(signal); err != nil {
			return err
		}
	}
	wait := 10 * time.Second
	if timeout != nil {
		wait = time.Duration(*timeout) * time.Second
	}
	e.setState(c, func(c *container) { c.State.StoppedByUser = true })
	snap, _ := e.Get(c.ID)
	e.publishContainer(snap, "kill", map[string]string{"signal": strconv.Itoa(int(sig))})
	if err := e.rt.Kill(ctx, c.ID, sig, false); err != nil {
		e.log.Debug("stop signal", "container", c.Name, "err", err)
	}
	stopped := func() error {
		if wait >= 0 {
			wctx, cancel := context.WithTimeout(ctx, wait)
			_, err := e.waitStopped(wctx, c)
			cancel()
			if err == nil {
				return nil
			}
			e.publishContainer(snap, "kill", map[string]string{"signal": strconv.Itoa(int(syscall.SIGKILL))})
			e.rt.Kill(ctx, c.ID, syscall.SIGKILL, true)
		}
		_, err := e.waitStopped(ctx, c)
		return err
	}()
	if stopped == nil {
		e.publishContainer(snap, "stop", nil)
	}
	return stopped
}

// waitStopped waits until c is not running.
func (e *Engine) waitStopped(ctx context.Context, c *container) (State, error) {
	for {
		e.mu.Lock()
		st, ch := c.State, c.changed
		e.mu.Unlock()
		if !st.Running() {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-ch:
		}
	}
}

// WaitCondition is what Wait waits for: "not-running" (default),
// "next-exit" or "removed".
type WaitCondition string

// Wait waits for a container to stop (or be removed) and returns its
// final state. ready, if not nil, is called once the wait is set up, so a
// client may start the container knowing no exit will be missed.
func (e *Engine) Wait(ctx context.Context, ref string, cond WaitCondition, ready func()) (State, error) {
	c, err := e.lookup(ref)
	if err != nil {
		return State{}, err
	}
	e.mu.Lock()
	exits := c.exits
	e.mu.Unlock()
	if ready != nil {
		ready()
	}
	for {
		e.mu.Lock()
		st, ch, removed, n := c.State, c.changed, c.removed, c.exits
		e.mu.Unlock()
		switch cond {
		case "removed":
			if removed {
				return st, nil
			}
		case "next-exit":
			if n > exits || removed {
				return st, nil
			}
		default:
			if !st.Running() || removed {
				return st, nil
			}
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-ch:
		}
	}
}

// RemoveOptions tune Remove.
type RemoveOptions struct {
	Force bool
	// RemoveVolumes removes the container's anonymous volumes (docker
	// rm -v).
	RemoveVolumes bool
}

// Remove deletes a container; a running one only with Force (it is
// killed).
func (e *Engine) Remove(ctx context.Context, ref string, opts RemoveOptions) error {
	c, err := e.lookup(ref)
	if err != nil {
		return err
	}
	e.mu.Lock()
	st := c.State
	e.mu.Unlock()
	if st.Running() {
		if !opts.Force {
			return fmt.Errorf("cannot remove container \"/%s\": container is %s: stop the container before removing or force remove: %w", c.Name, st.Status, errdefs.ErrState)
		}
		e.setState(c, func(c *container) { c.State.StoppedByUser = true })
		if st.Status == Running {
			e.rt.Kill(ctx, c.ID, syscall.SIGKILL, true)
			wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			_, err := e.waitStopped(wctx, c)
			cancel()
			if err != nil {
				return fmt.Errorf("cannot remove container \"/%s\": could not kill it: %w", c.Name, err)
			}
		}
	}
	c.op.Lock()
	defer c.op.Unlock()
	e.mu.Lock()
	if c.removed {
		e.mu.Unlock()
		return nil
	}
	if c.State.Status == Running {
		e.mu.Unlock()
		return fmt.Errorf("cannot remove container \"/%s\": container is running: %w", c.Name, errdefs.ErrState)
	}
	c.removed = true
	delete(e.containers, c.ID)
	if e.names[c.Name] == c.ID {
		delete(e.names, c.Name)
	}
	for id, x := range e.execs {
		if x.ContainerID == c.ID {
			delete(e.execs, id)
		}
	}
	e.notify(c)
	snap := c.snapshot()
	e.mu.Unlock()
	dir := e.dir(c.ID)
	syscall.Unmount(filepath.Join(dir, "rootfs"), syscall.MNT_DETACH)
	e.disconnectNetworks(c)
	dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	e.rt.Delete(dctx, c.ID)
	cancel()
	err = os.RemoveAll(dir)
	e.releaseVolumes(ctx, c.ID, snap.MountPoints, opts.RemoveVolumes)
	e.publishContainer(snap, "destroy", nil)
	return err
}

// ParseSignal parses "SIGTERM", "TERM", "term" or "15".
func ParseSignal(s string) (syscall.Signal, error) {
	if n, err := parseUint(s); err == nil {
		if n == 0 || n > 64 {
			return 0, fmt.Errorf("invalid signal: %s: %w", s, errdefs.ErrInvalid)
		}
		return syscall.Signal(n), nil
	}
	name := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	for sig, n := range signalNames {
		if n == name {
			return sig, nil
		}
	}
	return 0, fmt.Errorf("invalid signal: %s: %w", s, errdefs.ErrInvalid)
}

func parseUint(s string) (uint64, error) {
	var n uint64
	if s == "" {
		return 0, errors.New("empty")
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, errors.New("not a number")
		}
		n = n*10 + uint64(r-'0')
		if n > 1<<16 {
			return 0, errors.New("too big")
		}
	}
	return n, nil
}

var signalNames = map[syscall.Signal]string{
	syscall.SIGABRT: "ABRT", syscall.SIGALRM: "ALRM", syscall.SIGBUS: "BUS", syscall.SIGCHLD: "CHLD",
	syscall.SIGCONT: "CONT", syscall.SIGFPE: "FPE", syscall.SIGHUP: "HUP", syscall.SIGILL: "ILL",
	syscall.SIGINT: "INT", syscall.SIGIO: "IO", syscall.SIGKILL: "KILL", syscall.SIGPIPE: "PIPE",
	syscall.SIGPROF: "PROF", syscall.SIGPWR: "PWR", syscall.SIGQUIT: "QUIT", syscall.SIGSEGV: "SEGV",
	syscall.SIGSTKFLT: "STKFLT", syscall.SIGSTOP: "STOP", syscall.SIGSYS: "SYS", syscall.SIGTERM: "TERM",
	syscall.SIGTRAP: "TRAP", syscall.SIGTSTP: "TSTP", syscall.SIGTTIN: "TTIN", syscall.SIGTTOU: "TTOU",
	syscall.SIGURG: "URG", syscall.SIGUSR1: "USR1", syscall.SIGUSR2: "USR2", syscall.SIGVTALRM: "VTALRM",
	syscall.SIGWINCH: "WINCH", syscall.SIGXCPU: "XCPU", syscall.SIGXFSZ: "XFSZ",
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// processSpec is an exec's process: the container's user, environment
// and capabilities unless the exec says otherwise.
func processSpec(base *specs.Process, x ExecConfig, user specs.User) *specs.Process {
	p := *base
	p.Args = x.Cmd
	p.Terminal = x.Tty
	p.Env = append(append([]string(nil), base.Env...), x.Env...)
	if x.WorkingDir != "" {
		p.Cwd = x.WorkingDir
	}
	p.User = user
	if x.Privileged {
		caps, _ := Capabilities(true, nil, nil)
		if b := capBounding(); b != nil {
			// Only what caisd itself holds can be given.
			caps, _ = boundCapabilities(caps, b, nil)
		}
		p.Capabilities = &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}
	}
	p.ConsoleSize = nil
	if x.Tty && x.ConsoleSize[0] > 0 && x.ConsoleSize[1] > 0 {
		p.ConsoleSize = &specs.Box{Height: x.ConsoleSize[0], Width: x.ConsoleSize[1]}
	}
	return &p
}

// phases times the steps of a container's start, for the debug log.
type phases struct {
	last  time.Time
	steps []any
}

func (p *phases) mark(step string) {
	now := time.Now()
	p.steps = append(p.steps, step, now.Sub(p.last).Round(10*time.Microsecond))
	p.last = now
}

func (p *phases) attrs() []any { return p.steps }
