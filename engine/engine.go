package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cais-platform/cais/engine/events"
	"github.com/cais-platform/cais/engine/volumes"
	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/image/store"
	"github.com/cais-platform/cais/network"
)

// Options configure an Engine.
type Options struct {
	// Root holds the engine's state: containers/, runc/ (runc's state)
	// and images/ (the image store), unless Images is given.
	Root string
	// Images is the image store; default Root/images.
	Images *store.Store
	// Runtime runs containers; default runc (RuncRuntime) with Runc as its
	// binary.
	Runtime Runtime
	// Runc is the runc binary (default "runc" on PATH).
	Runc string
	// DefaultBridge is the Linux bridge of the default "bridge" network
	// (default cais0); networks live in Root/network.
	DefaultBridge string
	// Exe is the binary started as each container's monitor with the
	// arguments "monitor --dir DIR" (caisd itself).
	Exe string
	// VolumeDrivers are volume drivers beside "local" (caisd adds
	// "cais"); volumes live in Root/volumes.
	VolumeDrivers []volumes.Driver
	// Events is the event bus (docker events); default a new one.
	Events *events.Bus
	Log    *slog.Logger
}

// Engine runs containers from images. Its methods are safe for concurrent
// use.
type Engine struct {
	opts    Options
	log     *slog.Logger
	images  *store.Store
	rt      Runtime
	ctrDir  string
	runcDir string
	host    hostInfo
	vols    *volumes.Store
	events  *events.Bus
	net     *network.Manager
	spare   spare // the standby monitor

	mu         sync.Mutex
	containers map[string]*container
	names      map[string]string // name -> ID
	execs      map[string]*Exec

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Container is one container. Its exported fields are persisted in
// container.json; read them under the engine's lock or through Get, which
// returns a copy.
type Container struct {
	ID           string     `json:"Id"`
	Name         string     `json:"Name"`
	Created      time.Time  `json:"Created"`
	Path         string     `json:"Path"`
	Args         []string   `json:"Args"`
	Config       Config     `json:"Config"`
	HostConfig   HostConfig `json:"HostConfig"`
	Image        string     `json:"Image"` // the image ID, sha256:…
	State        State      `json:"State"`
	RestartCount int        `json:"RestartCount"`
	LogPath      string     `json:"LogPath"`
	// MountPoints are the container's resolved mounts (volumes with
	// their names), made at create.
	MountPoints []volumes.MountPoint `json:"MountPoints,omitempty"`
	// NetworkSettings are the container's networks and published ports.
	NetworkSettings NetworkSettings `json:"NetworkSettings"`
}

// container is a Container with the engine's bookkeeping.
type container struct {
	Container
	// changed is closed (and replaced) at every state change.
	changed chan struct{}
	// op serializes lifecycle operations.
	op sync.Mutex
	// attaching counts attach requests waiting for the monitor, which a
	// start lets connect before the process runs.
	attaching int
	// monitorUp says the monitor of the current run is listening.
	monitorUp bool
	removed   bool
	// exits counts the runs that ended since caisd started.
	exits int
}

// Open opens the engine's state and adopts containers whose monitors are
// still running (after a caisd restart).
func Open(opts Options) (*Engine, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Runc == "" {
		opts.Runc = "runc"
	}
	e := &Engine{
		opts:       opts,
		log:        opts.Log,
		ctrDir:     filepath.Join(opts.Root, "containers"),
		runcDir:    filepath.Join(opts.Root, "runc"),
		containers: map[string]*container{},
		names:      map[string]string{},
		execs:      map[string]*Exec{},
	}
	for _, d := range []string{e.ctrDir, e.runcDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	e.images = opts.Images
	if e.images == nil {
		s, err := store.Open(filepath.Join(opts.Root, "images"), store.Options{})
		if err != nil {
			return nil, err
		}
		e.images = s
	}
	e.rt = opts.Runtime
	if e.rt == nil {
		e.rt = NewRuncRuntime(opts.Runc, e.runcDir)
	}
	e.host = probeHost()
	e.events = opts.Events
	if e.events == nil {
		e.events = events.New()
	}
	vs, err := volumes.Open(volumes.Options{Root: volumesDir(opts.Root), Drivers: opts.VolumeDrivers, Log: opts.Log.With("component", "volumes"),
		Publish: func(action, name string, attrs map[string]string) {
			e.events.Publish(events.Volume, action, name, attrs)
		}})
	if err != nil {
		return nil, err
	}
	e.vols = vs
	nm, err := network.Open(network.Options{Dir: filepath.Join(opts.Root, "network"), DefaultBridge: opts.DefaultBridge, Log: opts.Log.With("component", "network")})
	if err != nil {
		return nil, fmt.Errorf("networks: %w", err)
	}
	e.net = nm
	e.ctx, e.cancel = context.WithCancel(context.Background())
	if err := e.load(); err != nil {
		return nil, err
	}
	e.restoreNetworks()
	return e, nil
}

// Images returns the image store.
func (e *Engine) Images() *store.Store { return e.images }

// Close stops watching containers; they keep running under their
// monitors.
func (e *Engine) Close() {
	e.closeStandby()
	e.cancel()
	e.wg.Wait()
	e.net.Close()
}

func (e *Engine) dir(id string) string { return filepath.Join(e.ctrDir, id) }

// Dir is the directory of the container id: its bundle, log and state.
func (e *Engine) Dir(id string) string { return e.dir(id) }

// load reads every container's state and reconnects to running ones.
func (e *Engine) load() error {
	ents, err := os.ReadDir(e.ctrDir)
	if err != nil {
		return err
	}
	for _, ent := range ents {
		b, err := os.ReadFile(filepath.Join(e.ctrDir, ent.Name(), "container.json"))
		if err != nil {
			continue
		}
		c := &container{}
		if err := json.Unmarshal(b, &c.Container); err != nil || c.ID != ent.Name() {
			e.log.Warn("skipping unreadable container state", "dir", ent.Name(), "err", err)
			continue
		}
		c.changed = make(chan struct{})
		e.containers[c.ID] = c
		e.names[c.Name] = c.ID
	}
	e.loadVolumes()
	for _, c := range e.containers {
		if c.State.Running() {
			c.monitorUp = true
			e.watch(c, false)
		}
	}
	return nil
}

// save persists c's state; call with e.mu held.
func (e *Engine) save(c *container) error {
	b, err := json.MarshalIndent(c.Container, "", "  ")
	if err != nil {
		return err
	}
	p := filepath.Join(e.dir(c.ID), "container.json")
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// notify wakes those waiting on c's state; call with e.mu held.
func (e *Engine) notify(c *container) {
	close(c.changed)
	c.changed = make(chan struct{})
}

// setState changes c's state, persists and notifies.
func (e *Engine) setState(c *container, f func(*container)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f(c)
	if !c.removed {
		if err := e.save(c); err != nil {
			e.log.Error("cannot save container state", "id", c.ID, "err", err)
		}
	}
	e.notify(c)
}

// lookup finds a container by full ID, name (with or without "/") or a
// unique ID prefix, as Docker does.
func (e *Engine) lookup(ref string) (*container, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lookupLocked(ref)
}

func (e *Engine) lookupLocked(ref string) (*container, error) {
	if ref == "" {
		return nil, fmt.Errorf("No such container: %s: %w", ref, errdefs.ErrNotFound)
	}
	if c, ok := e.containers[ref]; ok {
		return c, nil
	}
	if id, ok := e.names[strings.TrimPrefix(ref, "/")]; ok {
		return e.containers[id], nil
	}
	var found *container
	for id, c := range e.containers {
		if strings.HasPrefix(id, ref) {
			if found != nil {
				return nil, fmt.Errorf("multiple IDs found with provided prefix: %s: %w", ref, errdefs.ErrInvalid)
			}
			found = c
		}
	}
	if found == nil {
		return nil, fmt.Errorf("No such container: %s: %w", ref, errdefs.ErrNotFound)
	}
	return found, nil
}

// Get returns a copy of the container ref names.
func (e *Engine) Get(ref string) (Container, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.lookupLocked(ref)
	if err != nil {
		return Container{}, err
	}
	return c.snapshot(), nil
}

func (c *container) snapshot() Container { return c.Container }

// List returns copies of all containers, newest first.
func (e *Engine) List() []Container {
	e.mu.Lock()
	out := make([]Container, 0, len(e.containers))
	for _, c := range e.containers {
		out = append(out, c.snapshot())
	}
	e.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out
}

// ImageInUse reports the containers using an image ID.
func (e *Engine) ImageInUse(imageID string) []Container {
	var out []Container
	for _, c := range e.List() {
		if c.Image == imageID {
			out = append(out, c)
		}
	}
	return out
}

func newID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// Docker asks for two characters at least; cais takes one too ("x").
var validName = regexp.MustCompile(`^/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// ValidateName checks a container name as Docker does.
func ValidateName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed: %w", name, errdefs.ErrInvalid)
	}
	return nil
}

var (
	nameLeft  = []string{"admiring", "brave", "clever", "dreamy", "eager", "focused", "gallant", "happy", "jolly", "keen", "lucid", "modest", "nifty", "quirky", "serene", "tender", "upbeat", "vibrant", "wizardly", "zealous"}
	nameRight = []string{"turing", "hopper", "lovelace", "ritchie", "thompson", "torvalds", "knuth", "dijkstra", "liskov", "hamilton", "kernighan", "pike", "shannon", "curie", "noether", "babbage", "cerf", "lamport", "wirth", "backus"}
)

// randomName picks an unused name as Docker does ("brave_turing").
func (e *Engine) randomName() string {
	for i := 0; ; i++ {
		b := make([]byte, 3)
		rand.Read(b)
		n := nameLeft[int(b[0])%len(nameLeft)] + "_" + nameRight[int(b[1])%len(nameRight)]
		if i > 10 {
			n = fmt.Sprintf("%s%d", n, b[2])
		}
		if _, taken := e.names[n]; !taken {
			return n
		}
	}
}

var errNotRunning = errors.New("not running")
