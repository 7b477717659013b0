package daemon

// The self-heal daemon: every few seconds each node reads the indexes of
// its own bricks of replicated volumes and heals the files they name,
// through a client stack of the volume (volgraph) with the node's
// certificate. `volume heal NAME [full]` asks for a crawl now; heal info
// reads the indexes of every brick; the statistics of each node's crawls
// live in etcd.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cais-platform/cais/api"
	"github.com/cais-platform/cais/brick"
	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/replicate"
	"github.com/cais-platform/cais/volgraph"
	"github.com/cais-platform/cais/volume"

	"github.com/cais-platform/cais/rpc"
)

// healInterval is how often a node crawls its bricks' indexes.
const healInterval = 3 * time.Second

// healer is a node's self-heal daemon.
type healer struct {
	kick chan healKick

	mu     sync.Mutex
	graphs map[string]*healGraph // by volume name
}

type healKick struct {
	volume string
	full   bool
}

type healGraph struct {
	key   string // volume ID and bricks: a change rebuilds the graph
	g     *volgraph.Graph
	stats api.HealStats
	// changed is set when stats should be published.
	changed bool
}

func newHealer() *healer {
	return &healer{kick: make(chan healKick, 16), graphs: map[string]*healGraph{}}
}

func graphKey(v volume.Volume) string {
	var b strings.Builder
	b.WriteString(v.ID)
	for _, br := range v.Bricks {
		b.WriteString("|" + br.ID)
	}
	for _, o := range v.Options {
		if strings.HasPrefix(o.Key, "cluster.quorum") {
			b.WriteString("|" + o.Key + "=" + o.Value)
		}
	}
	return b.String()
}

func replicated(v volume.Volume) bool {
	return v.Status == volume.Started && v.Layout.Replica > 1 && v.Layout.Stripe <= 1
}

// graph returns the client stack of a volume, built or refreshed with the
// bricks' current addresses.
func (d *Daemon) healGraph(ctx context.Context, m *member, v volume.Volume) (*healGraph, error) {
	h := m.healer
	addrs, err := d.brickAddrs(ctx, m, v.Name)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	hg := h.graphs[v.Name]
	if hg == nil || hg.key != graphKey(v) {
		if hg != nil {
			hg.g.Close()
		}
		dialer := &net.Dialer{Timeout: 5 * time.Second}
		// The node's own bricks are reached through their local sockets.
		socks := map[string]string{}
		for _, b := range v.BricksOn(d.uuid) {
			socks[b.ID] = brick.SocketPath(d.cfg.runDir(), b.ID)
		}
		g, err := volgraph.Build(volgraph.Config{Volume: v, Addrs: addrs, Sockets: socks, Log: d.log.With("component", "self-heal", "volume", v.Name),
			Dial: func(ctx context.Context, addr string) (net.Conn, error) {
				return rpc.DialTLS(ctx, dialer, addr, m.nodeTLS)
			}})
		if err != nil {
			return nil, err
		}
		hg = &healGraph{key: graphKey(v), g: g, stats: api.HealStats{Node: d.uuid, Hostname: d.cfg.Hostname}}
		h.graphs[v.Name] = hg
	}
	for id, a := range addrs {
		hg.g.SetAddr(id, a)
	}
	return hg, nil
}

// brickAddrs maps a volume's online bricks to HOST:PORT.
func (d *Daemon) brickAddrs(ctx context.Context, m *member, vol string) (map[string]string, error) {
	peers, err := m.store.Peers(ctx)
	if err != nil {
		return nil, err
	}
	nodes := map[string]string{}
	for _, p := range peers {
		nodes[p.UUID] = p.Addr
	}
	st, err := m.store.BrickStatuses(ctx, vol)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for id, s := range st {
		if s.Online && s.Port > 0 && nodes[s.Node] != "" {
			out[id] = net.JoinHostPort(nodes[s.Node], fmt.Sprint(s.Port))
		}
	}
	return out, nil
}

// healLoop runs the node's self-heal daemon until ctx ends.
func (d *Daemon) healLoop(ctx context.Context, m *member) {
	t := time.NewTicker(healInterval)
	defer t.Stop()
	defer m.healer.drop(nil)
	for {
		var k healKick
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case k = <-m.healer.kick:
		}
		// After a panic the volumes' clients go, and with their
		// connections the locks the crawl held on bricks; the next
		// crawl makes them again.
		recovering(d.log, "self-heal crawl", func() { d.healCrawl(ctx, m, k) }, func() { m.healer.drop(nil) })
	}
}

// recovering runs fn; a panic in it is logged with its stack, and then
// cleanup runs, instead of the node's daemon going down with it. For the
// node's background work, where one bug must not stop every volume and
// container the node serves.
func recovering(log *slog.Logger, what string, fn, cleanup func()) {
	defer func() {
		if r := recover(); r != nil {
			log.Error(what+" failed: a bug; it runs again later (please report this with the stack)", "panic", r, "stack", string(debug.Stack()))
			if cleanup != nil {
				cleanup()
			}
		}
	}()
	fn()
}

func (d *Daemon) healCrawl(ctx context.Context, m *member, k healKick) {
	vols, _, err := m.store.Volumes(ctx)
	if err != nil {
		return
	}
	keep := map[string]bool{}
	for _, v := range vols {
		if !replicated(v) {
			continue
		}
		if val, ok := v.Option("cluster.self-heal-daemon"); ok && (val == "off" || val == "disable" || val == "false") && k.volume != v.Name {
			continue
		}
		local := len(v.BricksOn(d.uuid)) > 0
		if !local && k.volume != v.Name {
			continue
		}
		keep[v.Name] = true
		hg, err := d.healGraph(ctx, m, v)
		if err != nil {
			d.log.Warn("self-heal: cannot build the volume's client", "volume", v.Name, "err", err)
			continue
		}
		d.healVolume(ctx, m, v, hg, k.volume == v.Name, k.volume == v.Name && k.full)
	}
	m.healer.drop(keep)
}

// record adds a crawl's counts to the volume's statistics; it returns
// them, and whether they are to be published.
func (h *healer) record(hg *healGraph, start time.Time, healed, split, failed int64, full bool) (bool, api.HealStats) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := &hg.stats
	st.Crawls++
	if healed+split+failed > 0 || full {
		st.Type = "INDEX"
		if full {
			st.Type = "FULL"
		}
		st.Start, st.End = start.UTC(), time.Now().UTC()
		st.Healed, st.SplitBrain, st.Failed = healed, split, failed
		st.Total += healed
		hg.changed = true
	}
	publish := hg.changed
	hg.changed = false
	return publish, *st
}

// drop closes the volumes' heal clients, but those keep names (all of
// them when keep is nil). Each leaves the map before it is closed, so a
// close that panics is not tried again.
func (h *healer) drop(keep map[string]bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for name, hg := range h.graphs {
		if !keep[name] {
			delete(h.graphs, name)
			hg.g.Close()
		}
	}
}

// healVolume crawls the indexes of the node's bricks of v (every brick's
// when all is set), or the whole volume when full is set.
func (d *Daemon) healVolume(ctx context.Context, m *member, v volume.Volume, hg *healGraph, all, full bool) {
	start := time.Now()
	var healed, split, failed int64
	visit := func(p string, r replicate.Result, err error) {
		switch {
		case err == nil:
			if len(r.Healed) > 0 {
				healed++
			}
		case errors.Is(err, replicate.ErrSplitBrain):
			split++
		case errors.Is(err, replicate.ErrBusy), errors.Is(err, replicate.ErrBrickDown):
		default:
			failed++
			d.log.Warn("self-heal: heal failed", "volume", v.Name, "path", p, "err", err)
		}
	}
	for si, set := range hg.g.Sets {
		if set == nil {
			continue
		}
		if full {
			if err := set.HealTree(ctx, "", visit); err != nil {
				d.log.Warn("self-heal: full crawl stopped", "volume", v.Name, "err", err)
			}
			continue
		}
		seen := map[string]bool{}
		for bi, b := range set.Bricks() {
			if !all && hg.g.SetBricks[si][bi].Node != d.uuid {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			entries, err := b.Index(cctx)
			cancel()
			if err != nil {
				continue
			}
			for _, e := range entries {
				if seen[e.Path] {
					continue
				}
				seen[e.Path] = true
				r, err := set.Heal(ctx, e.Path)
				visit(e.Path, r, err)
			}
		}
	}
	publish, snapshot := m.healer.record(hg, start, healed, split, failed, full)
	if publish {
		if healed > 0 {
			d.log.Info("self-heal: healed", "volume", v.Name, "entries", healed, "split-brain", split, "failed", failed)
		}
		m.sessMu.Lock()
		sess := m.sess
		m.sessMu.Unlock()
		if sess != nil {
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			if err := m.store.PutHealStats(pctx, sess.Lease(), v.Name, snapshot); err != nil {
				d.log.Warn("self-heal: cannot publish statistics", "volume", v.Name, "err", err)
			}
			cancel()
		}
	}
}

// healableVolume reads a started replicated volume, or says why not in
// gluster's words.
func (d *Daemon) healableVolume(ctx context.Context, m *member, name string) (volume.Volume, error) {
	v, _, err := m.store.Volume(ctx, name)
	if err != nil {
		return v, volumeMissing(name, err)
	}
	if v.Status != volume.Started {
		return v, fmt.Errorf("Volume %s is not started: %w", name, errdefs.ErrState)
	}
	if v.Layout.Replica <= 1 && v.Layout.Disperse == 0 {
		return v, fmt.Errorf("Volume %s is not of type replicate/disperse: %w", name, errdefs.ErrInvalid)
	}
	if !replicated(v) {
		return v, fmt.Errorf("Volume %s is %s: its heal arrives with the striped and dispersed data path: %w", name, v.Layout.Type(len(v.Bricks)), errdefs.ErrInvalid)
	}
	return v, nil
}

func (d *Daemon) postHeal(w http.ResponseWriter, r *http.Request, c caller) error {
	var req api.HealRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	m, _ := d.current()
	name := r.PathValue("name")
	if _, err := d.healableVolume(r.Context(), m, name); err != nil {
		return err
	}
	select {
	case m.healer.kick <- healKick{volume: name, full: req.Full}:
	default:
		return fmt.Errorf("a heal of this node is already queued; try again shortly: %w", errdefs.ErrState)
	}
	writeJSON(w, http.StatusOK, api.OpResponse{})
	return nil
}

func (d *Daemon) healInfo(w http.ResponseWriter, r *http.Request, c caller) error {
	ctx := r.Context()
	m, _ := d.current()
	name := r.PathValue("name")
	v, err := d.healableVolume(ctx, m, name)
	if err != nil {
		return err
	}
	hg, err := d.healGraph(ctx, m, v)
	if err != nil {
		return err
	}
	onlySplit := r.URL.Query().Get("split-brain") != ""
	out := api.HealInfo{Volume: name}
	for si, set := range hg.g.Sets {
		for bi, b := range set.Bricks() {
			hb := api.HealBrick{Brick: hg.g.SetBricks[si][bi].Name()}
			entries, err := b.Index(ctx)
			if err != nil {
				hb.Error = "Transport endpoint is not connected"
				if !unreachable(err) {
					hb.Error = err.Error()
				}
				out.Bricks = append(out.Bricks, hb)
				continue
			}
			hb.Connected = true
			hb.Entries = []api.HealEntry{}
			for _, e := range entries {
				he := api.HealEntry{Path: "/" + e.Path, GFID: e.GFID.String()}
				if len(entries) <= 1000 {
					he.SplitBrain, _, _ = set.Split(ctx, e.Path)
				}
				if onlySplit && !he.SplitBrain {
					continue
				}
				hb.Entries = append(hb.Entries, he)
			}
			out.Bricks = append(out.Bricks, hb)
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (d *Daemon) healStatistics(w http.ResponseWriter, r *http.Request, c caller) error {
	ctx := r.Context()
	m, _ := d.current()
	name := r.PathValue("name")
	if _, err := d.healableVolume(ctx, m, name); err != nil {
		return err
	}
	st, err := m.store.HealStats(ctx, name)
	if err != nil {
		return err
	}
	if st == nil {
		st = []api.HealStats{}
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (d *Daemon) postSplitBrain(w http.ResponseWriter, r *http.Request, c caller) error {
	var req api.SplitBrainRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	ctx := r.Context()
	m, _ := d.current()
	name := r.PathValue("name")
	v, err := d.healableVolume(ctx, m, name)
	if err != nil {
		return err
	}
	hg, err := d.healGraph(ctx, m, v)
	if err != nil {
		return err
	}
	file := strings.Trim(path.Clean("/"+req.File), "/")
	var out api.SplitBrainResponse
	switch req.Policy {
	case "bigger-file", "latest-mtime":
		if req.File == "" {
			return fmt.Errorf("split-brain %s needs a FILE: %w", req.Policy, errdefs.ErrInvalid)
		}
		set, states, err := findSplit(ctx, hg.g, file)
		if err != nil {
			return err
		}
		src := pickSource(states, req.Policy)
		if src < 0 {
			return fmt.Errorf("no copy of %s to take as the source: %w", req.File, errdefs.ErrState)
		}
		if _, err := set.HealFrom(ctx, file, src); err != nil {
			return err
		}
		out.Healed = append(out.Healed, "/"+file)
	case "source-brick":
		si, bi := -1, -1
		for i, bricks := range hg.g.SetBricks {
			for j, b := range bricks {
				if b.Name() == req.Brick {
					si, bi = i, j
				}
			}
		}
		if si < 0 {
			return fmt.Errorf("%s is not a brick of volume %s: %w", req.Brick, name, errdefs.ErrInvalid)
		}
		set := hg.g.Sets[si]
		var files []string
		if req.File != "" {
			files = []string{file}
		} else {
			pending, _, err := set.Pending(ctx)
			if err != nil {
				return err
			}
			for _, p := range pending {
				files = append(files, p)
			}
		}
		for _, f := range files {
			split, _, err := set.Split(ctx, f)
			if err != nil {
				return fmt.Errorf("lookup of /%s failed: %w", f, err)
			}
			if !split {
				if req.File != "" {
					return fmt.Errorf("/%s: File not in split-brain: %w", f, errdefs.ErrState)
				}
				continue
			}
			if _, err := set.HealFrom(ctx, f, bi); err != nil {
				return err
			}
			out.Healed = append(out.Healed, "/"+f)
		}
	default:
		return fmt.Errorf("unknown split-brain policy %q: use bigger-file, latest-mtime or source-brick: %w", req.Policy, errdefs.ErrInvalid)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// findSplit finds the replica set where file is in split-brain.
func findSplit(ctx context.Context, g *volgraph.Graph, file string) (*replicate.Volume, []replicate.State, error) {
	found := false
	for _, set := range g.Sets {
		split, states, err := set.Split(ctx, file)
		if err != nil {
			continue
		}
		found = true
		if split {
			return set, states, nil
		}
	}
	if !found {
		return nil, nil, fmt.Errorf("lookup of /%s failed: %w", file, errdefs.ErrNotFound)
	}
	return nil, nil, fmt.Errorf("/%s: File not in split-brain: %w", file, errdefs.ErrState)
}

// pickSource chooses a brick by size or modification time.
func pickSource(states []replicate.State, policy string) int {
	best := -1
	for i, s := range states {
		if !s.Up || !s.Exists || s.Arbiter {
			continue
		}
		if best < 0 {
			best = i
			continue
		}
		b := states[best].Attr
		if (policy == "bigger-file" && s.Attr.Size > b.Size) || (policy == "latest-mtime" && s.Attr.Mtime > b.Mtime) {
			best = i
		}
	}
	return best
}

// unreachable reports errors that mean a brick cannot be reached.
func unreachable(err error) bool {
	for _, e := range []error{syscall.ENOTCONN, syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ETIMEDOUT, syscall.EHOSTUNREACH} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
