package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/cais-platform/cais/api"
	"github.com/cais-platform/cais/brick"
	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/state"
	"github.com/cais-platform/cais/volume"
)

// nodeError is a failure on one node, reported with the node's name.
type nodeError struct {
	host  string
	phase string // "Staging" or "Commit"
	err   error
}

func (e *nodeError) Error() string {
	return fmt.Sprintf("%s failed on %s. Error: %s", e.phase, e.host, errdefs.Message(e.err))
}

func (e *nodeError) Unwrap() error { return e.err }

// onNodes runs fn for each node's share of bricks, in parallel, and
// collects the failures by node name.
func (d *Daemon) onNodes(ctx context.Context, m *member, peers map[string]state.Peer, groups map[string][]volume.Brick, phase string,
	fn func(ctx context.Context, p state.Peer, bricks []volume.Brick) error) []error {
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for node, bricks := range groups {
		p, ok := peers[node]
		if !ok {
			errs = append(errs, &nodeError{host: node, phase: phase, err: fmt.Errorf("node %s is no longer a pool member: %w", node, errdefs.ErrState)})
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx, p, bricks); err != nil {
				mu.Lock()
				errs = append(errs, &nodeError{host: p.Hostname, phase: phase, err: err})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errs
}

// stageOn asks one node (maybe this one) to stage bricks.
func (d *Daemon) stageOn(ctx context.Context, m *member, p state.Peer, req api.StageRequest) (api.StageResponse, error) {
	if p.UUID == d.uuid {
		return d.stageLocal(req)
	}
	var resp api.StageResponse
	pc := m.peerClient(p)
	defer pc.Close()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := pc.Do(sctx, http.MethodPost, "/v1/internal/stage", req, &resp)
	return resp, err
}

func (d *Daemon) stage(w http.ResponseWriter, r *http.Request, c caller) error {
	var req api.StageRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	resp, err := d.stageLocal(req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// stageLocal checks and prepares this node's bricks.
func (d *Daemon) stageLocal(req api.StageRequest) (api.StageResponse, error) {
	var resp api.StageResponse
	switch req.Op {
	case "create":
		resp.Created = map[string]string{}
		for i, b := range req.Bricks {
			res, err := brick.Prepare(b.Path, b.Name(), req.VolumeID, req.Force)
			if err != nil {
				for _, done := range req.Bricks[:i] {
					_ = brick.Release(done.Path, req.VolumeID, resp.Created[done.ID])
				}
				return api.StageResponse{}, err
			}
			if res.Created != "" {
				resp.Created[b.ID] = res.Created
			}
		}
	case "start":
		for _, b := range req.Bricks {
			if err := brick.Verify(b.Path, req.VolumeID); err != nil {
				return resp, fmt.Errorf("brick %s: %w", b.Name(), err)
			}
		}
	case "release":
		var errs []error
		for _, b := range req.Bricks {
			if err := brick.Release(b.Path, req.VolumeID, req.Created[b.ID]); err != nil {
				errs = append(errs, err)
			}
		}
		return resp, errors.Join(errs...)
	default:
		return resp, fmt.Errorf("unknown stage operation %q: %w", req.Op, errdefs.ErrInvalid)
	}
	return resp, nil
}

// peersAlive returns the members and which of them are alive (this node
// always is).
func (d *Daemon) peersAlive(ctx context.Context, m *member) ([]state.Peer, map[string]bool, error) {
	peers, err := m.store.Peers(ctx)
	if err != nil {
		return nil, nil, err
	}
	alive, err := m.store.Alive(ctx)
	if err != nil {
		return nil, nil, err
	}
	alive[d.uuid] = true
	return peers, alive, nil
}

func groupByNode(bricks []volume.Brick) map[string][]volume.Brick {
	out := map[string][]volume.Brick{}
	for _, b := range bricks {
		out[b.Node] = append(out[b.Node], b)
	}
	return out
}

func peerMap(peers []state.Peer) map[string]state.Peer {
	out := map[string]state.Peer{}
	for _, p := range peers {
		out[p.UUID] = p
	}
	return out
}

// lockVolume takes the pool-wide lock of one volume. The etcd lock is
// owned by the node's session, so requests on this node also queue on a
// local lock first.
func (d *Daemon) lockVolume(ctx context.Context, m *member, name string) (func(), error) {
	unlockLocal, err := d.locks.lock(ctx, name)
	if err != nil {
		return nil, err
	}
	sess, err := m.session(ctx)
	if err != nil {
		unlockLocal()
		return nil, err
	}
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	unlock, err := m.store.LockVolume(lctx, sess, name)
	if err != nil {
		unlockLocal()
		return nil, err
	}
	return func() { unlock(); unlockLocal() }, nil
}

// keyedLocks is a set of mutexes by name that a waiter can give up on.
type keyedLocks struct {
	mu    sync.Mutex
	locks map[string]chan struct{}
}

func (k *keyedLocks) lock(ctx context.Context, name string) (func(), error) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]chan struct{}{}
	}
	ch, ok := k.locks[name]
	if !ok {
		ch = make(chan struct{}, 1)
		k.locks[name] = ch
	}
	k.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("another operation on %s is in progress: %w", name, errdefs.ErrConflict)
	}
}

func (d *Daemon) postVolume(w http.ResponseWriter, r *http.Request, c caller) error {
	var req volume.CreateRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	// The CLI parsed the command line; parse its result again here so no
	// client can store what the grammar refuses.
	checked, err := volume.ParseCreateArgs(req.Args())
	if err != nil {
		return err
	}
	ctx := r.Context()
	m, _ := d.current()
	unlock, err := d.lockVolume(ctx, m, checked.Name)
	if err != nil {
		return err
	}
	defer unlock()

	if _, _, err := m.store.Volume(ctx, checked.Name); err == nil {
		return fmt.Errorf("Volume %s already exists: %w", checked.Name, errdefs.ErrExists)
	}
	peers, alive, err := d.peersAlive(ctx, m)
	if err != nil {
		return err
	}
	placed := make([]volume.PlacedBrick, 0, len(checked.Bricks))
	for _, b := range checked.Bricks {
		p, ok := findPeer(ctx, peers, b.Host)
		if !ok {
			return fmt.Errorf("Host %s is not in 'Peer in Cluster' state: %w", b.Host, errdefs.ErrInvalid)
		}
		if !alive[p.UUID] {
			return fmt.Errorf("Host %s not connected: %w", b.Host, errdefs.ErrUnavailable)
		}
		placed = append(placed, volume.PlacedBrick{BrickRef: b, Node: p.UUID})
	}
	existing, rev, err := m.store.Volumes(ctx)
	if err != nil {
		return err
	}
	if err := volume.CheckPlacement(checked.Layout, placed, existing, checked.Force); err != nil {
		return err
	}
	v := volume.New(checked, placed, uuid.NewString)
	v.Created = time.Now().UTC()

	groups := groupByNode(v.Bricks)
	pm := peerMap(peers)
	var cmu sync.Mutex
	created := map[string]map[string]string{}
	errs := d.onNodes(ctx, m, pm, groups, "Staging", func(ctx context.Context, p state.Peer, bricks []volume.Brick) error {
		resp, err := d.stageOn(ctx, m, p, api.StageRequest{Op: "create", VolumeID: v.ID, Bricks: bricks, Force: checked.Force})
		cmu.Lock()
		created[p.UUID] = resp.Created
		cmu.Unlock()
		return err
	})
	release := func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		d.onNodes(rctx, m, pm, groups, "Release", func(ctx context.Context, p state.Peer, bricks []volume.Brick) error {
			_, err := d.stageOn(ctx, m, p, api.StageRequest{Op: "release", VolumeID: v.ID, Bricks: bricks, Created: created[p.UUID]})
			return err
		})
	}
	if len(errs) > 0 {
		release()
		return errors.Join(errs...)
	}
	if err := m.store.CreateVolume(ctx, v, rev); err != nil {
		release()
		return err
	}
	d.log.Info("volume created", "volume", v.Name, "type", v.Layout.Type(len(v.Bricks)), "bricks", len(v.Bricks))
	writeJSON(w, http.StatusOK, api.CreateResponse{Volume: v, Warnings: checked.Warnings})
	return nil
}

func (d *Daemon) getVolumes(w http.ResponseWriter, r *http.Request, c caller) error {
	m, _ := d.current()
	vols, _, err := m.store.Volumes(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, vols)
	return nil
}

func (d *Daemon) getVolume(w http.ResponseWriter, r *http.Request, c caller) error {
	m, _ := d.current()
	v, _, err := m.store.Volume(r.Context(), r.PathValue("name"))
	if err != nil {
		return volumeMissing(r.PathValue("name"), err)
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func volumeMissing(name string, err error) error {
	if errors.Is(err, errdefs.ErrNotFound) {
		return fmt.Errorf("Volume %s does not exist: %w", name, errdefs.ErrNotFound)
	}
	return err
}

// volumeTxn runs one serialized read-modify-write of a volume.
func (d *Daemon) volumeTxn(ctx context.Context, name string, fn func(v *volume.Volume) error) (volume.Volume, error) {
	m, _ := d.current()
	unlock, err := d.lockVolume(ctx, m, name)
	if err != nil {
		return volume.Volume{}, err
	}
	defer unlock()
	v, rev, err := m.store.Volume(ctx, name)
	if err != nil {
		return v, volumeMissing(name, err)
	}
	if err := fn(&v); err != nil {
		return v, err
	}
	return v, m.store.UpdateVolume(ctx, v, rev)
}

func (d *Daemon) startVolume(w http.ResponseWriter, r *http.Request, c caller) error {
	name := r.PathValue("name")
	force := r.URL.Query().Get("force") != ""
	ctx := r.Context()
	m, _ := d.current()
	var warnings []string
	var down map[string]bool
	v, err := d.volumeTxn(ctx, name, func(v *volume.Volume) error {
		if v.Status == volume.Started && !force {
			return fmt.Errorf("Volume %s already started: %w", name, errdefs.ErrState)
		}
		peers, alive, err := d.peersAlive(ctx, m)
		if err != nil {
			return err
		}
		down = map[string]bool{}
		groups := groupByNode(v.Bricks)
		pm := peerMap(peers)
		for node := range groups {
			if !alive[node] {
				down[node] = true
				warnings = append(warnings, fmt.Sprintf("Host %s is not connected; its bricks start when it returns", pm[node].Hostname))
				delete(groups, node)
			}
		}
		errs := d.onNodes(ctx, m, pm, groups, "Staging", func(ctx context.Context, p state.Peer, bricks []volume.Brick) error {
			_, err := d.stageOn(ctx, m, p, api.StageRequest{Op: "start", VolumeID: v.ID, Bricks: bricks})
			return err
		})
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
		v.Status = volume.Started
		return nil
	})
	if err != nil {
		return err
	}
	if force {
		d.kickBricks(ctx, m, v)
	}
	warnings = append(warnings, d.waitBricks(ctx, m, v, down, true)...)
	writeJSON(w, http.StatusOK, api.OpResponse{Warnings: warnings})
	return nil
}

// kickBricks asks every node to restart its bricks of v that are down now.
func (d *Daemon) kickBricks(ctx context.Context, m *member, v volume.Volume) {
	peers, err := m.store.Peers(ctx)
	if err != nil {
		return
	}
	d.onNodes(ctx, m, peerMap(peers), groupByNode(v.Bricks), "Commit", func(ctx context.Context, p state.Peer, bricks []volume.Brick) error {
		ids := make([]string, 0, len(bricks))
		for _, b := range bricks {
			ids = append(ids, b.ID)
		}
		if p.UUID == d.uuid {
			for _, id := range ids {
				m.sup.Kick(id)
			}
			return nil
		}
		pc := m.peerClient(p)
		defer pc.Close()
		return pc.Do(ctx, http.MethodPost, "/v1/internal/kick", ids, nil)
	})
}

func (d *Daemon) kick(w http.ResponseWriter, r *http.Request, c caller) error {
	var ids []string
	if err := readJSON(r, &ids); err != nil {
		return err
	}
	m, _ := d.current()
	for _, id := range ids {
		m.sup.Kick(id)
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

// waitBricks waits until the bricks of v on connected nodes are online
// (online) or gone (!online), and returns a warning per brick that is not.
func (d *Daemon) waitBricks(ctx context.Context, m *member, v volume.Volume, down map[string]bool, online bool) []string {
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := m.store.BrickStatuses(ctx, v.Name)
		var pending []string
		for _, b := range v.Bricks {
			if down[b.Node] {
				continue
			}
			s, ok := st[b.ID]
			switch {
			case online && !(ok && s.Online):
				why := "did not come online"
				if ok && s.Error != "" {
					why += ": " + s.Error
				}
				pending = append(pending, fmt.Sprintf("Brick %s %s", b.Name(), why))
			case !online && ok:
				pending = append(pending, fmt.Sprintf("Brick %s is still running (pid %d)", b.Name(), s.PID))
			}
		}
		if err == nil && len(pending) == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if err != nil {
				return []string{err.Error()}
			}
			return pending
		}
		time.Sleep(150 * time.Millisecond)
	}
}

func (d *Daemon) stopVolume(w http.ResponseWriter, r *http.Request, c caller) error {
	name := r.PathValue("name")
	force := r.URL.Query().Get("force") != ""
	ctx := r.Context()
	m, _ := d.current()
	v, err := d.volumeTxn(ctx, name, func(v *volume.Volume) error {
		if v.Status != volume.Started && !force {
			return fmt.Errorf("Volume %s is not in the started state: %w", name, errdefs.ErrState)
		}
		v.Status = volume.Stopped
		return nil
	})
	if err != nil {
		return err
	}
	alive, _ := m.store.Alive(ctx)
	down := map[string]bool{}
	for _, b := range v.Bricks {
		if !alive[b.Node] && b.Node != d.uuid {
			down[b.Node] = true
		}
	}
	writeJSON(w, http.StatusOK, api.OpResponse{Warnings: d.waitBricks(ctx, m, v, down, false)})
	return nil
}

func (d *Daemon) deleteVolume(w http.ResponseWriter, r *http.Request, c caller) error {
	name := r.PathValue("name")
	ctx := r.Context()
	m, _ := d.current()
	unlock, err := d.lockVolume(ctx, m, name)
	if err != nil {
		return err
	}
	defer unlock()
	v, rev, err := m.store.Volume(ctx, name)
	if err != nil {
		return volumeMissing(name, err)
	}
	if v.Status == volume.Started {
		return fmt.Errorf("Volume %s has been started.Volume needs to be stopped before deletion.: %w", name, errdefs.ErrState)
	}
	if err := m.store.DeleteVolume(ctx, name, rev); err != nil {
		return err
	}
	// The volume is gone; unmark its bricks so the directories can be used
	// again. Their data stays. A node that is down keeps its mark, and a new
	// volume on that directory then needs 'force'.
	peers, _ := m.store.Peers(ctx)
	errs := d.onNodes(ctx, m, peerMap(peers), groupByNode(v.Bricks), "Commit", func(ctx context.Context, p state.Peer, bricks []volume.Brick) error {
		_, err := d.stageOn(ctx, m, p, api.StageRequest{Op: "release", VolumeID: v.ID, Bricks: bricks})
		return err
	})
	var warnings []string
	for _, e := range errs {
		warnings = append(warnings, e.Error())
	}
	d.log.Info("volume deleted", "volume", name)
	writeJSON(w, http.StatusOK, api.OpResponse{Warnings: warnings})
	return nil
}

func (d *Daemon) volumeStatus(w http.ResponseWriter, r *http.Request, c caller) error {
	name := r.PathValue("name")
	ctx := r.Context()
	m, _ := d.current()
	v, _, err := m.store.Volume(ctx, name)
	if err != nil {
		return volumeMissing(name, err)
	}
	if v.Status != volume.Started {
		return fmt.Errorf("Volume %s is not started: %w", name, errdefs.ErrState)
	}
	st, err := m.store.BrickStatuses(ctx, name)
	if err != nil {
		return err
	}
	alive, err := m.store.Alive(ctx)
	if err != nil {
		return err
	}
	out := api.VolumeStatus{Name: v.Name, Status: v.Status}
	for _, b := range v.Bricks {
		bs := api.BrickStatus{Brick: b}
		if s, ok := st[b.ID]; ok && (alive[b.Node] || b.Node == d.uuid) {
			bs.Port, bs.Socket, bs.PID, bs.Online, bs.Error = s.Port, s.Socket, s.PID, s.Online, s.Error
		}
		out.Bricks = append(out.Bricks, bs)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (d *Daemon) getOptions(w http.ResponseWriter, r *http.Request, c caller) error {
	name := r.PathValue("name")
	m, _ := d.current()
	v, _, err := m.store.Volume(r.Context(), name)
	if err != nil {
		return volumeMissing(name, err)
	}
	var out []api.OptionValue
	if key := r.URL.Query().Get("key"); key != "" {
		key = d.options.Resolve(key)
		val, set, err := d.options.Get(&v, key)
		if err != nil {
			return err
		}
		out = append(out, api.OptionValue{Key: key, Value: val, Reconfigured: set})
	} else {
		for _, key := range d.options.Keys() {
			val, set, _ := d.options.Get(&v, key)
			out = append(out, api.OptionValue{Key: key, Value: val, Reconfigured: set})
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (d *Daemon) setOption(w http.ResponseWriter, r *http.Request, c caller) error {
	var req api.SetOptionRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	key := d.options.Resolve(req.Key)
	val, err := d.options.Validate(key, req.Value)
	if err != nil {
		return err
	}
	_, err = d.volumeTxn(r.Context(), r.PathValue("name"), func(v *volume.Volume) error {
		return volume.CheckOptionFor(v, key, val)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.OpResponse{})
	return nil
}

func (d *Daemon) resetOptions(w http.ResponseWriter, r *http.Request, c caller) error {
	key := r.URL.Query().Get("key")
	if key != "" {
		key = d.options.Resolve(key)
		if _, ok := d.options.Spec(key); !ok && !strings.HasPrefix(key, "user.") {
			return fmt.Errorf("Option %s does not exist: %w", key, errdefs.ErrInvalid)
		}
	}
	_, err := d.volumeTxn(r.Context(), r.PathValue("name"), func(v *volume.Volume) error {
		if key == "" {
			v.Options = volume.DefaultReconfigured(v.Layout)
			return nil
		}
		v.ResetOption(key)
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.OpResponse{})
	return nil
}
