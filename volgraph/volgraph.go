// Package volgraph builds a volume's client stack: one brick client per
// brick, a replicate layer over each replica set, the distribute layer
// over the sets, as the volume's layout says, and write-behind on top
// (performance.write-behind, on by default). The FUSE mount and the
// self-heal daemon both use it.
//
// Brick addresses change when a brick restarts on another port or its
// node's address is learnt anew: SetAddr updates them, and the next
// connection to that brick goes to the new address. A brick on the
// client's own machine is reached through its Unix socket (SetSocket,
// brick.DialLocal) while it answers there.
package volgraph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/cais-platform/cais/brick"
	"github.com/cais-platform/cais/distribute"
	"github.com/cais-platform/cais/fop"
	"github.com/cais-platform/cais/replicate"
	"github.com/cais-platform/cais/rpc"
	"github.com/cais-platform/cais/volume"
	"github.com/cais-platform/cais/writebehind"
)

// Config is what a graph is built from.
type Config struct {
	Volume volume.Volume
	// Addrs maps brick IDs to HOST:PORT; a brick without one (offline)
	// is unreachable until SetAddr gives it one.
	Addrs map[string]string
	// Sockets maps the IDs of bricks on this machine to their Unix
	// sockets (brick.SocketPath), tried before their addresses.
	Sockets map[string]string
	// NoLocalIO keeps reads and writes of the copies on bricks of this
	// machine on the bricks' protocol (fop.Client.NoLocalIO).
	NoLocalIO bool
	// Dial connects to a brick's address (TLS with the pool's
	// certificates).
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	Log  *slog.Logger
	// OnHealNeeded is passed to the replicate layers.
	OnHealNeeded func(set int, path string)
	// Upcalls, when set, subscribes every brick connection to the
	// bricks' cache invalidation events (see fop.Upcall) and receives
	// them. Its methods are called on a connection's reader: they must
	// not block.
	Upcalls Upcaller
}

// Upcaller takes the bricks' cache invalidation events: Upcall for each
// change another client made, Lost when events may have been missed (a
// brick connection was made again, or its queue overflowed).
type Upcaller interface {
	Upcall(u fop.Upcall)
	Lost()
}

// MaxRead is the largest read the pooled buffers hold (Graph.Buffers):
// a mount's largest.
const MaxRead = 1 << 20

// Graph is a built client stack.
type Graph struct {
	// Root is the top layer, what a mount serves.
	Root fop.Volume
	// Sets are the replicate layers, one per distribute subvolume, nil
	// for a volume without replication.
	Sets []*replicate.Volume
	// SetBricks are the volume's bricks per set, in layout order.
	SetBricks [][]volume.Brick
	// Buffers lends the buffers big replies are read into: a reader done
	// with the data a Read returned may give it back (Buffers.Put), and
	// the next read's data goes into the same memory.
	Buffers *rpc.BufPool

	wb  *writebehind.Volume // nil without write-behind
	log *slog.Logger

	mu      sync.Mutex
	addrs   map[string]string
	sockets map[string]string
	conns   []*rpc.Redialer
}

// Build makes the client stack of a volume.
func Build(cfg Config) (*Graph, error) {
	v := cfg.Volume
	if v.Layout.Stripe > 1 || v.Layout.Disperse > 0 {
		return nil, fmt.Errorf("volume %s is %s: striped and dispersed volumes cannot be mounted yet", v.Name, v.Layout.Type(len(v.Bricks)))
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	g := &Graph{addrs: map[string]string{}, sockets: map[string]string{}, Buffers: rpc.NewBufPool(MaxRead), log: cfg.Log}
	for id, a := range cfg.Addrs {
		g.addrs[id] = a
	}
	for id, s := range cfg.Sockets {
		g.sockets[id] = s
	}
	quorumNone, quorumCount := quorumOptions(&v)
	var subs []fop.Volume
	for si, set := range v.Layout.Sets(v.Bricks) {
		var kids []replicate.Brick
		for _, b := range set {
			id := b.ID
			log := cfg.Log.With("brick", b.Name())
			r := rpc.NewRedialer(b.Name(), func(ctx context.Context, _ string) (net.Conn, error) {
				if sock := g.Socket(id); sock != "" {
					c, err := brick.DialLocal(ctx, sock, v.ID, id)
					if err == nil {
						return c, nil
					}
					// A brick on another machine has no socket here, a
					// brick that died left one nobody answers on, and a
					// user other than root may not use it.
					lvl := slog.LevelWarn
					if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EACCES) {
						lvl = slog.LevelDebug
					}
					log.Log(ctx, lvl, "brick's local socket unusable; connecting over TCP", "socket", sock, "err", err)
				}
				addr := g.Addr(id)
				if addr == "" {
					return nil, fmt.Errorf("brick %s is offline: no port known", b.Name())
				}
				return cfg.Dial(ctx, addr)
			}, log)
			fc := fop.NewClient(r)
			fc.NoLocalIO = cfg.NoLocalIO
			if cfg.Upcalls != nil {
				r.Events = clientEvents(fc, upcallEvents(cfg.Upcalls))
			} else {
				// The volume has no cache invalidation: no mount keeps
				// what a close would have to wait for others to drop.
				fc.NoPeers = true
			}
			r.Hello = func(ctx context.Context, c *rpc.Client) error {
				f, err := fop.SayHello(ctx, c)
				fc.SetFeatures(f) // none when the brick does not know the hello
				return err
			}
			r.Pool = g.Buffers
			g.conns = append(g.conns, r)
			kids = append(kids, fc)
		}
		g.SetBricks = append(g.SetBricks, set)
		if len(kids) == 1 {
			g.Sets = append(g.Sets, nil)
			subs = append(subs, kids[0])
			continue
		}
		opts := replicate.Options{
			Arbiters:    v.Layout.Arbiter,
			QuorumNone:  quorumNone,
			QuorumCount: quorumCount,
			Log:         cfg.Log.With("set", si),
		}
		if cfg.OnHealNeeded != nil {
			opts.OnHealNeeded = func(p string) { cfg.OnHealNeeded(si, p) }
		}
		opts.ChooseLocal = v.BoolOption("cluster.choose-local", true)
		opts.ReadPolicy = replicate.ReadHashGFID
		if m, ok := v.Option("cluster.read-hash-mode"); ok {
			if n, err := strconv.Atoi(m); err == nil && n >= 0 && n <= int(replicate.ReadLeastLoad) {
				opts.ReadPolicy = replicate.ReadPolicy(n)
			}
		}
		r := replicate.New(kids, opts)
		g.Sets = append(g.Sets, r)
		subs = append(subs, r)
	}
	if len(subs) == 1 {
		g.Root = subs[0]
	} else {
		d := distribute.New(subs)
		d.Log = cfg.Log
		opt, _ := v.Option("cluster.lookup-optimize")
		d.LookupUnhashed = opt == "off" || opt == "false" || opt == "disable"
		g.Root = d
	}
	if v.BoolOption("performance.write-behind", true) {
		window := int64(writebehind.DefaultWindow)
		if w, ok := v.Option("performance.write-behind-window-size"); ok {
			if n, err := volume.ParseSize(w); err == nil && n > 0 {
				window = n
			}
		}
		wb := writebehind.New(g.Root, window)
		wb.Log = cfg.Log
		wb.FlushBehind = v.BoolOption("performance.flush-behind", false)
		g.Root, g.wb = wb, wb
	}
	return g, nil
}

// quorumOptions reads cluster.quorum-type and cluster.quorum-count: auto
// unless set otherwise.
func quorumOptions(v *volume.Volume) (none bool, count int) {
	t, _ := v.Option("cluster.quorum-type")
	switch t {
	case "none":
		return true, 0
	case "fixed":
		c, _ := v.Option("cluster.quorum-count")
		n, err := strconv.Atoi(c)
		if err == nil && n > 0 {
			return false, n
		}
	}
	return false, 0
}

// Addr is a brick's current address.
func (g *Graph) Addr(brickID string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.addrs[brickID]
}

// SetAddr changes a brick's address; it reports whether it changed.
func (g *Graph) SetAddr(brickID, addr string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.addrs[brickID] == addr {
		return false
	}
	g.addrs[brickID] = addr
	return true
}

// Socket is the Unix socket of a brick on this machine, or "".
func (g *Graph) Socket(brickID string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.sockets[brickID]
}

// SetSocket changes the Unix socket of a brick on this machine ("": none,
// connect to its address); it reports whether it changed. Connections
// made already stay as they are.
func (g *Graph) SetSocket(brickID, path string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.sockets[brickID] == path {
		return false
	}
	if path == "" {
		delete(g.sockets, brickID)
	} else {
		g.sockets[brickID] = path
	}
	return true
}

// closeTimeout bounds how long Close waits for writes answered early.
const closeTimeout = time.Minute

// Close waits for the writes write-behind answered early and releases
// the handles still open, then closes every brick connection and stops
// the layers' probes.
func (g *Graph) Close() {
	if g.wb != nil {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		if err := g.wb.Close(ctx); err != nil && g.log != nil {
			g.log.Error("volume graph: closing with writes not done", "err", err)
		}
		cancel()
	}
	for _, s := range g.Sets {
		if s != nil {
			s.Close()
		}
	}
	for _, c := range g.conns {
		_ = c.Close()
	}
}

// upcallEvents decodes a brick connection's events for u.
func upcallEvents(u Upcaller) func(op uint16, payload []byte) {
	return func(op uint16, payload []byte) {
		switch op {
		case rpc.OpEventsLost:
			u.Lost()
		case fop.OpUpcall:
			var m fop.Upcall
			if fop.Unmarshal(payload, &m) != nil {
				u.Lost() // a garbled event: trust nothing cached
				return
			}
			u.Upcall(m)
		}
	}
}

// clientEvents hands a brick connection's Peers events to its client
// (fop.Client.SetPeers) and the rest to next.
func clientEvents(fc *fop.Client, next func(op uint16, payload []byte)) func(op uint16, payload []byte) {
	return func(op uint16, payload []byte) {
		switch op {
		case fop.OpPeers:
			var p fop.Peers
			if fop.Unmarshal(payload, &p) != nil {
				fc.PeersUnknown()
				return
			}
			fc.SetPeers(p)
			return
		case rpc.OpEventsLost:
			fc.PeersUnknown()
		}
		next(op, payload)
	}
}

// CacheTimeout is how long a mount lets the kernel keep attributes and
// entries, and whether it takes the bricks' cache invalidation events:
// with features.cache-invalidation (on by default) performance.md-cache-timeout,
// 600 seconds unless set; without it the timeout, 1 second unless set.
func CacheTimeout(v *volume.Volume) (time.Duration, bool) {
	inval := v.BoolOption("features.cache-invalidation", true)
	secs := 1
	if inval {
		secs = 600
	}
	if o, ok := v.Option("performance.md-cache-timeout"); ok {
		if n, err := strconv.Atoi(o); err == nil && n >= 0 {
			secs = n
		}
	}
	return time.Duration(secs) * time.Second, inval
}
