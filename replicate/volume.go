package replicate

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cais-platform/cais/fop"
	"github.com/cais-platform/cais/pathcache"
)

// Brick is what the layer needs of each brick of the set.
type Brick interface {
	fop.Volume
	fop.Bookkeeper
	fop.FileAttrer
	fop.FileXattrer
	fop.Locker
}

// Options configure a replica set.
type Options struct {
	// Arbiters is how many of the set's last bricks are arbiters (0 or 1).
	Arbiters int
	// QuorumCount, when above zero, replaces the "auto" quorum by a fixed
	// number of bricks.
	QuorumCount int
	// QuorumNone lets writes go on with any brick up (cluster.quorum-type
	// none): split-brain becomes possible.
	QuorumNone bool
	Log        *slog.Logger
	// ProbeInterval is how often a brick that went down is tried again.
	ProbeInterval time.Duration
	// OnHealNeeded, if set, is called (without blocking) with a path whose
	// copies differ, so a healer can see to it.
	OnHealNeeded func(path string)
	// ChooseLocal makes a handle read from a good copy on this machine
	// when there is one (cluster.choose-local; a Brick tells with a
	// Local method). Only the data: lookups keep answering from the
	// set's first good copy, so a file's times do not move between
	// copies.
	ChooseLocal bool
	// ReadPolicy picks the good copy a file's data is read from
	// (cluster.read-hash-mode); the zero value reads the first.
	ReadPolicy ReadPolicy
	// PID is the mount's process ID, for ReadHashGFIDPID; 0 means this
	// process's.
	PID int
}

// Volume mirrors a file system over a replica set of bricks.
type Volume struct {
	kids []*child
	opts Options
	log  *slog.Logger

	stop     chan struct{}
	stopOnce sync.Once

	mu      sync.Mutex
	handles map[uint64]*handle
	last    uint64
	dirKid  map[string]int // the brick a directory listing is read from
	recent  *pathcache.Cache[view]
}

var (
	_ fop.Volume        = (*Volume)(nil)
	_ fop.ReleaseAttrer = (*Volume)(nil)
	_ fop.FinalAttrs    = (*Volume)(nil)
)

// FinalAttrs reports that entry calls' reports of their directory's
// attributes are final (fop.FinalAttrs): the layer changes a directory's
// changelog only when a brick missed the call, and then reports nothing.
// Writes' are not: the changelog is cleared at release (ReleaseAttr).
func (v *Volume) FinalAttrs() fop.Final { return fop.FinalEntries }

type child struct {
	b       Brick
	arbiter bool
	up      atomic.Bool
	probing atomic.Bool
	reads   readLoad
}

// New returns a replicate layer over bricks (2 to 64).
func New(bricks []Brick, opts Options) *Volume {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.ProbeInterval == 0 {
		opts.ProbeInterval = time.Second
	}
	if opts.PID == 0 {
		opts.PID = os.Getpid()
	}
	v := &Volume{opts: opts, log: opts.Log, stop: make(chan struct{}), handles: map[uint64]*handle{}, dirKid: map[string]int{}, recent: pathcache.New[view](recentTTL, 65536)}
	for i, b := range bricks {
		c := &child{b: b, arbiter: i >= len(bricks)-opts.Arbiters}
		c.up.Store(true)
		v.kids = append(v.kids, c)
	}
	return v
}

// Close stops the layer's background probes.
func (v *Volume) Close() { v.stopOnce.Do(func() { close(v.stop) }) }

// Up reports which bricks the layer believes are up.
func (v *Volume) Up() []bool {
	out := make([]bool, len(v.kids))
	for i, c := range v.kids {
		out[i] = c.up.Load()
	}
	return out
}

// Bricks returns the set's bricks.
func (v *Volume) Bricks() []Brick {
	out := make([]Brick, len(v.kids))
	for i, c := range v.kids {
		out[i] = c.b
	}
	return out
}

func isTransport(err error) bool {
	return errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ETIMEDOUT) ||
		errors.Is(err, syscall.EPIPE)
}

// failed notes a brick's transport failure: it is down until a probe
// reaches it again.
func (v *Volume) failed(i int, err error) {
	c := v.kids[i]
	if c.up.Swap(false) {
		v.log.Warn("replicate: brick down", "brick", i, "err", err)
		v.forgetViews()
	}
	if !c.probing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer c.probing.Store(false)
		t := time.NewTicker(v.opts.ProbeInterval)
		defer t.Stop()
		for {
			select {
			case <-v.stop:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := c.b.Statfs(ctx)
			cancel()
			if err == nil {
				c.up.Store(true)
				v.forgetViews()
				v.log.Info("replicate: brick up", "brick", i)
				return
			}
		}
	}()
}

func (v *Volume) upSet() []int {
	var out []int
	for i, c := range v.kids {
		if c.up.Load() {
			out = append(out, i)
		}
	}
	return out
}

func (v *Volume) quorum(idx []int) bool {
	if v.opts.QuorumNone {
		return len(idx) > 0
	}
	up := make([]bool, len(v.kids))
	for _, i := range idx {
		up[i] = true
	}
	return Quorum(len(v.kids), up, v.opts.QuorumCount)
}

// fanout runs fn on the bricks in idx at once; a transport failure marks
// the brick down.
func (v *Volume) fanout(idx []int, fn func(i int, b Brick) error) []error {
	errs := make([]error, len(v.kids))
	if len(idx) == 1 {
		i := idx[0]
		errs[i] = fn(i, v.kids[i].b)
	} else {
		var g fop.Group
		for _, i := range idx {
			g.Go(func() { errs[i] = fn(i, v.kids[i].b) })
		}
		g.Wait()
	}
	for _, i := range idx {
		if errs[i] != nil && isTransport(errs[i]) {
			v.failed(i, errs[i])
		}
	}
	return errs
}

// outcome sorts a fan-out's results: the bricks that did the change, and
// the error to return when none did.
func (v *Volume) outcome(idx []int, errs []error) (ok []int, err error) {
	var opErr error
	for _, i := range idx {
		switch e := errs[i]; {
		case e == nil:
			ok = append(ok, i)
		case !isTransport(e) && opErr == nil:
			opErr = e
		}
	}
	if len(ok) == 0 {
		if opErr != nil {
			return nil, opErr
		}
		return nil, syscall.ENOTCONN
	}
	return ok, nil
}

// missing lists the bricks not in ok.
func (v *Volume) missing(ok []int) []int {
	in := make([]bool, len(v.kids))
	for _, i := range ok {
		in[i] = true
	}
	var out []int
	for i := range v.kids {
		if !in[i] {
			out = append(out, i)
		}
	}
	return out
}

// blame records on the bricks in ok that the bricks in missed did not
// see a change of kind k to p.
func (v *Volume) blame(ctx context.Context, p string, k Kind, ok, missed []int) {
	if len(missed) == 0 || len(ok) == 0 {
		return
	}
	d := PendingDelta(len(v.kids), k, 1, missed)
	errs := v.fanout(ok, func(_ int, b Brick) error {
		_, err := b.Xattrop(ctx, &fop.XattropReq{Path: p, Delta: d})
		return err
	})
	for _, i := range ok {
		if errs[i] != nil {
			v.log.Warn("replicate: cannot record a missed change", "path", p, "brick", i, "kind", k, "err", errs[i])
		}
	}
}

// blameHandle records, through the handle's open files on the bricks in
// ok, that the bricks in missed did not see a change of kind k (by
// handle: the file may have been renamed since it was opened).
func (v *Volume) blameHandle(ctx context.Context, h *handle, k Kind, ok, missed []int) {
	if len(missed) == 0 || len(ok) == 0 {
		return
	}
	d := PendingDelta(len(v.kids), k, 1, missed)
	errs := v.fanout(ok, func(i int, b Brick) error {
		_, err := b.Xattrop(ctx, h.xattrop(i, d, fop.LockNone))
		return err
	})
	for _, i := range ok {
		if errs[i] != nil {
			v.log.Warn("replicate: cannot record a missed change", "path", h.name(), "brick", i, "kind", k, "err", errs[i])
		}
	}
}

// change runs a change of kind k on every brick that is up, under quorum,
// and records on the bricks that did it which bricks did not. recordOn
// are the paths whose changelogs record it (the parent directories for
// entry changes, the file for the others).
func (v *Volume) change(ctx context.Context, k Kind, recordOn []string, fn func(i int, b Brick) error) ([]int, error) {
	up := v.upSet()
	if !v.quorum(up) {
		return nil, syscall.ENOTCONN
	}
	errs := v.fanout(up, fn)
	ok, err := v.outcome(up, errs)
	if err != nil {
		return nil, err
	}
	if missed := v.missing(ok); len(missed) > 0 {
		for _, p := range recordOn {
			v.blame(ctx, p, k, ok, missed)
		}
		v.healNeeded(recordOn...)
	}
	if !v.quorum(ok) {
		return ok, syscall.ENOTCONN
	}
	return ok, nil
}

// entryChange is change for an entry call in directory dir. The bricks'
// reports of the directory's attributes after it (fop.ParentAttrs) are
// passed on from the brick a lookup reads from, when every brick did
// the call: otherwise the changelog records the miss, which changes the
// directory after the call.
func (v *Volume) entryChange(ctx context.Context, dir string, fn func(ctx context.Context, i int, b Brick) error) ([]int, error) {
	ctxs, done := fop.ParentCopies(ctx, len(v.kids))
	ok, err := v.change(ctx, Entry, []string{dir}, func(i int, b Brick) error { return fn(ctxs[i], i, b) })
	if len(ok) == 0 {
		done(-1, false)
	} else {
		done(v.dataKid(ok), err == nil && len(ok) == len(v.kids))
	}
	return ok, err
}

func (v *Volume) healNeeded(paths ...string) {
	if v.opts.OnHealNeeded == nil {
		return
	}
	for _, p := range paths {
		v.opts.OnHealNeeded(p)
	}
}

func parent(p string) string {
	d := path.Dir("/" + p)
	return d[1:]
}

// dataKid prefers a data brick among ok for replies that carry a file's
// size.
func (v *Volume) dataKid(ok []int) int {
	for _, i := range ok {
		if !v.kids[i].arbiter {
			return i
		}
	}
	return ok[0]
}

// states looks p up on every brick that is up.
func (v *Volume) states(ctx context.Context, p string) ([]State, []fop.Entry, error) {
	up := v.upSet()
	if len(up) == 0 {
		return nil, nil, syscall.ENOTCONN
	}
	entries := make([]fop.Entry, len(v.kids))
	errs := v.fanout(up, func(i int, b Brick) error {
		var err error
		entries[i], err = b.Lookup(ctx, p)
		return err
	})
	states := make([]State, len(v.kids))
	var firstErr error
	answered := false
	for i := range v.kids {
		states[i].Arbiter = v.kids[i].arbiter
		e := errs[i]
		if !v.kids[i].up.Load() || (e != nil && isTransport(e)) {
			continue
		}
		states[i].Up = true
		answered = true
		if e != nil {
			if firstErr == nil && !errors.Is(e, syscall.ENOENT) {
				firstErr = e
			}
			continue
		}
		states[i].Exists = true
		states[i].Attr = entries[i].Attr
		cl, err := fop.DecodeChangelog(entries[i].Changelog)
		if err == nil {
			states[i].Changelog = cl
		}
	}
	if !answered {
		return nil, nil, syscall.ENOTCONN
	}
	if firstErr != nil {
		return states, entries, firstErr
	}
	return states, entries, nil
}

// view is what a lookup concludes about a file.
type view struct {
	entry      fop.Entry
	readable   []int // bricks to read data (files) or names (directories) from
	splitBrain bool
}

func (v *Volume) view(ctx context.Context, p string) (view, error) {
	states, entries, err := v.states(ctx, p)
	if err != nil {
		return view{}, err
	}
	var exists []int
	for i, s := range states {
		if s.Exists {
			exists = append(exists, i)
		}
	}
	if len(exists) == 0 {
		return view{}, syscall.ENOENT
	}
	// A copy without an identity is being made by its brick (the GFID is
	// set right after the entry appears): it is not there yet.
	if withID := withGFID(states, exists); len(withID) > 0 && len(withID) < len(exists) {
		for _, i := range exists {
			if states[i].Attr.GFID.IsZero() {
				states[i].Exists = false
			}
		}
		exists = withID
	}
	for _, i := range exists[1:] {
		a, b := states[exists[0]].Attr, states[i].Attr
		if a.GFID != b.GFID || a.Mode&syscall.S_IFMT != b.Mode&syscall.S_IFMT {
			v.log.Error("replicate: the copies of a name are different files (entry split-brain)", "path", p,
				"gfid", a.GFID.String(), "other", b.GFID.String())
			return view{}, syscall.EIO
		}
	}
	heal := len(exists) < countUp(states)
	k := Data
	isDir := states[exists[0]].Attr.Mode&syscall.S_IFMT == syscall.S_IFDIR
	if isDir {
		k = Entry
	}
	d := Decide(states, k)
	m := Decide(states, Metadata)
	heal = heal || d.Needed() || m.Needed()
	var out view
	out.splitBrain = d.SplitBrain
	// Read from good copies; an arbiter's only when nothing else is left
	// (it has names and metadata, never data or file sizes).
	for _, i := range d.Sources {
		if !v.kids[i].arbiter {
			out.readable = append(out.readable, i)
		}
	}
	if len(out.readable) == 0 && k != Data {
		out.readable = d.Sources
	}
	if heal {
		v.healNeeded(p)
	}
	if len(out.readable) > 0 {
		out.entry = entries[out.readable[0]]
	} else {
		out.entry = entries[v.dataKid(exists)]
	}
	return out, nil
}

func withGFID(states []State, idx []int) []int {
	var out []int
	for _, i := range idx {
		if !states[i].Attr.GFID.IsZero() {
			out = append(out, i)
		}
	}
	return out
}

func countUp(states []State) int {
	n := 0
	for _, s := range states {
		if s.Up {
			n++
		}
	}
	return n
}

func (v *Volume) Lookup(ctx context.Context, p string) (fop.Entry, error) {
	w, err := v.view(ctx, p)
	if err != nil {
		return fop.Entry{}, err
	}
	v.rememberView(p, w)
	w.entry.Changelog = nil
	return w.entry, nil
}

// recentTTL is how long a lookup's conclusion (which copies are good)
// serves an open that follows it; any brick going down or coming back
// drops them all.
const recentTTL = time.Second

func (v *Volume) rememberView(p string, w view) { v.recent.Put(p, w) }

func (v *Volume) forgetView(p string) { v.recent.Forget(p) }

func (v *Volume) forgetViews() { v.recent.Clear() }

// recentView is the view of a lookup made just before, or a new one.
func (v *Volume) recentView(ctx context.Context, p string) (view, error) {
	// One open per lookup: later ones look again.
	if w, ok := v.recent.Take(p); ok {
		return w, nil
	}
	return v.view(ctx, p)
}

func (v *Volume) Getattr(ctx context.Context, p string) (fop.Attr, error) {
	w, err := v.view(ctx, p)
	return w.entry.Attr, err
}

func isDirMode(m uint32) bool { return m&syscall.S_IFMT == syscall.S_IFDIR }

func (v *Volume) Setattr(ctx context.Context, req *fop.SetattrReq) (fop.Attr, error) {
	k := Metadata
	if req.Valid&fop.SetSize != 0 {
		k = Data
		// A truncation is a data change: under the writers' lock, marked
		// dirty while it runs.
		locked, err := v.change(ctx, Data, nil, func(_ int, b Brick) error {
			_, err := b.Xattrop(ctx, &fop.XattropReq{Path: req.Path, Delta: DirtyDelta(len(v.kids), Data, 1), Lock: fop.LockShared})
			return err
		})
		if err != nil && len(locked) == 0 {
			return fop.Attr{}, err
		}
		defer v.fanout(locked, func(_ int, b Brick) error {
			_, err := b.Xattrop(context.WithoutCancel(ctx), &fop.XattropReq{Path: req.Path, Delta: DirtyDelta(len(v.kids), Data, -1), Lock: fop.Unlock})
			return err
		})
	}
	if k == Metadata {
		unlock, err := v.metaLock(ctx, req.Path, v.upSet(), nil)
		if err != nil {
			return fop.Attr{}, err
		}
		defer unlock()
	}
	attrs := make([]fop.Attr, len(v.kids))
	ok, err := v.change(ctx, k, []string{req.Path}, func(i int, b Brick) error {
		var err error
		attrs[i], err = b.Setattr(ctx, req)
		return err
	})
	if len(ok) == 0 {
		return fop.Attr{}, err
	}
	return attrs[v.dataKid(ok)], err
}

// create runs an entry change that makes p, and returns the new entry's
// attributes.
func (v *Volume) create(ctx context.Context, p string, fn func(ctx context.Context, b Brick) (fop.Attr, error)) (fop.Attr, error) {
	attrs := make([]fop.Attr, len(v.kids))
	ok, err := v.entryChange(ctx, parent(p), func(ctx context.Context, i int, b Brick) error {
		var err error
		attrs[i], err = fn(ctx, b)
		return err
	})
	if len(ok) == 0 {
		return fop.Attr{}, err
	}
	return attrs[v.dataKid(ok)], err
}

func (v *Volume) Mkdir(ctx context.Context, req *fop.CreateReq) (fop.Attr, error) {
	return v.create(ctx, req.Path, func(ctx context.Context, b Brick) (fop.Attr, error) { return b.Mkdir(ctx, req) })
}

func (v *Volume) Mknod(ctx context.Context, req *fop.CreateReq) (fop.Attr, error) {
	return v.create(ctx, req.Path, func(ctx context.Context, b Brick) (fop.Attr, error) { return b.Mknod(ctx, req) })
}

func (v *Volume) Symlink(ctx context.Context, req *fop.CreateReq) (fop.Attr, error) {
	return v.create(ctx, req.Path, func(ctx context.Context, b Brick) (fop.Attr, error) { return b.Symlink(ctx, req) })
}

func (v *Volume) Link(ctx context.Context, from, to string) (fop.Attr, error) {
	return v.create(ctx, to, func(ctx context.Context, b Brick) (fop.Attr, error) { return b.Link(ctx, from, to) })
}

func (v *Volume) Unlink(ctx context.Context, p string) error {
	v.forgetView(p)
	_, err := v.entryChange(ctx, parent(p), func(ctx context.Context, _ int, b Brick) error { return b.Unlink(ctx, p) })
	return err
}

func (v *Volume) Rmdir(ctx context.Context, p string) error {
	_, err := v.entryChange(ctx, parent(p), func(ctx context.Context, _ int, b Brick) error { return b.Rmdir(ctx, p) })
	v.mu.Lock()
	delete(v.dirKid, p)
	v.mu.Unlock()
	return err
}

func (v *Volume) Rename(ctx context.Context, from, to string, flags uint32) error {
	v.forgetView(from)
	v.forgetView(to)
	parents := []string{parent(from)}
	if pt := parent(to); pt != parents[0] {
		parents = append(parents, pt)
	}
	_, err := v.change(ctx, Entry, parents, func(_ int, b Brick) error { return b.Rename(ctx, from, to, flags) })
	if err == nil {
		// Files open under the old name are open under the new one (a
		// path under a renamed directory moves with it).
		v.mu.Lock()
		for _, h := range v.handles {
			h.mu.Lock()
			if h.path == from {
				h.path = to
			} else if strings.HasPrefix(h.path, from+"/") {
				h.path = to + h.path[len(from):]
			}
			h.mu.Unlock()
		}
		v.mu.Unlock()
	}
	return err
}

// handle is a file opened through the layer.
type handle struct {
	path  string
	write bool
	// kids maps a brick to its handle there; a brick that fails is
	// removed and blamed.
	mu   sync.Mutex
	kids map[int]uint64
	read int // the brick reads go to
	// attrKid is the copy a lookup answers from when the file is clean
	// (the first good one): an fstat answers from it too, so that a
	// stat and an fstat of an unchanged file agree to the nanosecond
	// (the copies' times differ by the moments each brick wrote). gfid
	// is the file's, when known.
	attrKid  int
	gfid     fop.GFID
	dirtied  bool
	dirtyErr error
	// busy counts the data changes in flight under the dirty mark
	// (writes after the first, truncations), which Settle waits for;
	// idle, made when first waited on, is signalled when it drops to 0.
	busy int
	idle *sync.Cond
}

// beginBusyLocked records a data change under the dirty mark, h.mu held.
func (h *handle) beginBusyLocked() { h.busy++ }

// endBusy records the end of one.
func (h *handle) endBusy() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.busy--
	if h.busy == 0 && h.idle != nil {
		h.idle.Broadcast()
	}
}

// waitIdleLocked waits, h.mu held, until no data change is in flight.
func (h *handle) waitIdleLocked() {
	for h.busy > 0 {
		if h.idle == nil {
			h.idle = sync.NewCond(&h.mu)
		}
		h.idle.Wait()
	}
}

func (v *Volume) addHandle(h *handle) uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.last++
	v.handles[v.last] = h
	return v.last
}

func (v *Volume) handle(id uint64) (*handle, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	h := v.handles[id]
	if h == nil {
		return nil, syscall.EBADF
	}
	return h, nil
}

// good returns the bricks the handle still writes to.
func (h *handle) good() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]int, 0, len(h.kids))
	for i := range h.kids {
		out = append(out, i)
	}
	sortInts(out)
	return out
}

func sortInts(a []int) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

// name is the handle's file's path now (renames through the layer move it).
func (h *handle) name() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.path
}

// xattrop is a changelog update of the handle's file on brick i: through
// its open file there when it has one, else by path.
func (h *handle) xattrop(i int, d []int32, lock uint8) *fop.XattropReq {
	h.mu.Lock()
	defer h.mu.Unlock()
	return &fop.XattropReq{Path: h.path, Delta: d, Lock: lock, Handle: h.kids[i]}
}

// kidHandle is the handle's number on brick i, 0 when it has none.
func (h *handle) kidHandle(i int) uint64 {
	k, _ := h.kid(i)
	return k
}

func (h *handle) kid(i int) (uint64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k, ok := h.kids[i]
	return k, ok
}

// drop removes failed bricks from the handle, and returns those it
// removed.
func (h *handle) drop(idx []int, errs []error) []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []int
	for _, i := range idx {
		if errs[i] != nil && isTransport(errs[i]) {
			if _, ok := h.kids[i]; ok {
				delete(h.kids, i)
				out = append(out, i)
			}
		}
	}
	return out
}

// Create makes a file, or opens the one the name holds (O_CREAT without
// O_EXCL). Its truncation of an existing file (O_TRUNC) is a data change:
// the bricks open the file without it, and the layer truncates through
// the new handle as an ftruncate does, under the writers' lock, with the
// dirty mark and the blame of the bricks that miss it. An entry change
// truncating every copy at once would not wait for a heal in progress,
// and would leave a brick that is down with the old data and nothing
// saying so.
func (v *Volume) Create(ctx context.Context, req *fop.CreateReq) (fop.OpenReply, error) {
	if req.Flags&syscall.O_TRUNC != 0 {
		r := *req
		r.Flags &^= syscall.O_TRUNC
		reply, err := v.create1(ctx, &r)
		if err != nil || reply.Attr.GFID == req.GFID {
			return reply, err // a new file is empty already
		}
		a, err := v.Fsetattr(ctx, reply.Handle, &fop.SetattrReq{Valid: fop.SetSize, Size: 0})
		if err != nil {
			_ = v.Release(context.WithoutCancel(ctx), reply.Handle)
			return fop.OpenReply{}, err
		}
		reply.Attr = a
		return reply, nil
	}
	return v.create1(ctx, req)
}

// create1 is Create without its truncation. Where every brick that is
// up can (fop.FeatCreateMark), the create takes the writers' lock and
// the dirty mark of the handle's first write with it, so that write, the
// only one of most new files, goes out as any later one: through the
// copies' descriptors on this machine (local I/O), with no round trip.
func (v *Volume) create1(ctx context.Context, req *fop.CreateReq) (fop.OpenReply, error) {
	up := v.upSet()
	marked := v.canMark(up)
	if marked {
		r := *req
		r.Mark = DirtyDelta(len(v.kids), Data, 1)
		if down := v.missing(up); len(down) > 0 {
			// As writeMark: the writes that follow skip these bricks.
			for k, n := range PendingDelta(len(v.kids), Data, 1, down) {
				r.Mark[k] += n
			}
			v.healNeeded(req.Path)
		}
		req = &r
	}
	replies := make([]fop.OpenReply, len(v.kids))
	ok, err := v.entryChange(ctx, parent(req.Path), func(ctx context.Context, i int, b Brick) error {
		var err error
		replies[i], err = b.Create(ctx, req)
		return err
	})
	if len(ok) == 0 {
		return fop.OpenReply{}, err
	}
	h := &handle{path: req.Path, write: true, kids: map[int]uint64{}, dirtied: marked}
	for _, i := range ok {
		h.kids[i] = replies[i].Handle
	}
	h.read = v.dataKid(ok)
	h.attrKid = h.read
	r := replies[h.read]
	if err != nil {
		if marked {
			// The release drops the lock and the mark.
			_ = v.Release(context.WithoutCancel(ctx), v.addHandle(h))
		} else {
			v.releaseKids(ctx, h)
		}
		return fop.OpenReply{}, err
	}
	if marked {
		var lost []int
		for _, i := range up {
			if !slices.Contains(ok, i) {
				lost = append(lost, i)
			}
		}
		if len(lost) > 0 {
			// Up, but the file was not made there: the mark did not
			// blame them.
			v.blameHandle(context.WithoutCancel(ctx), h, Data, ok, lost)
			v.healNeeded(req.Path)
		}
	}
	r.Handle = v.addHandle(h)
	return r, nil
}

// canMark reports whether every brick in idx takes a create's mark
// (fop.FeatCreateMark).
func (v *Volume) canMark(idx []int) bool {
	if len(idx) == 0 {
		return false
	}
	for _, i := range idx {
		m, ok := v.kids[i].b.(interface{ CanMark() bool })
		if !ok || !m.CanMark() {
			return false
		}
	}
	return true
}

func (v *Volume) Open(ctx context.Context, p string, flags uint32) (fop.OpenReply, error) {
	w, err := v.recentView(ctx, p)
	if err != nil {
		return fop.OpenReply{}, err
	}
	if w.splitBrain {
		v.log.Error("replicate: file is in split-brain; resolve with 'cais volume heal VOL split-brain'", "path", p)
		return fop.OpenReply{}, syscall.EIO
	}
	write := flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0
	h := &handle{path: p, write: write, kids: map[int]uint64{}, gfid: w.entry.Attr.GFID}
	if len(w.readable) > 0 {
		h.attrKid = w.readable[0]
	}
	if !write {
		if len(w.readable) == 0 {
			return fop.OpenReply{}, syscall.EIO
		}
		var lastErr error
		for _, i := range v.readOrder(w) {
			r, err := v.kids[i].b.Open(ctx, p, flags)
			if err != nil {
				lastErr = err
				if isTransport(err) {
					v.failed(i, err)
					continue
				}
				return fop.OpenReply{}, err
			}
			h.kids[i], h.read = r.Handle, i
			r.Handle = v.addHandle(h)
			return r, nil
		}
		return fop.OpenReply{}, lastErr
	}
	if flags&syscall.O_TRUNC != 0 {
		// Truncating is writing: take the writers' lock and mark the file
		// dirty first.
		if err := v.dirty(ctx, h, v.upSet()); err != nil {
			return fop.OpenReply{}, err
		}
	}
	replies := make([]fop.OpenReply, len(v.kids))
	ok, err := v.change(ctx, Data, []string{p}, func(i int, b Brick) error {
		var err error
		replies[i], err = b.Open(ctx, p, flags)
		return err
	})
	for _, i := range ok {
		h.kids[i] = replies[i].Handle
	}
	if len(ok) == 0 || err != nil {
		v.releaseKids(ctx, h)
		if err == nil {
			err = syscall.EIO
		}
		return fop.OpenReply{}, err
	}
	h.read = v.dataKid(ok)
	for _, i := range v.readOrder(w) {
		if _, has := h.kids[i]; has {
			h.read = i
			break
		}
	}
	r := replies[h.read]
	r.Handle = v.addHandle(h)
	return r, nil
}

// readOrder is the order a file's good copies are read from: the copy
// on this machine first when the set chooses local copies, then as the
// read policy says.
func (v *Volume) readOrder(w view) []int {
	return v.localFirst(readOrder(w.readable, v.opts.ReadPolicy, w.entry.Attr.GFID, v.opts.PID, v.readLoad))
}

// readLoad is a brick's reads in flight from this layer and their
// recent latency.
func (v *Volume) readLoad(i int) (int64, time.Duration) {
	l := &v.kids[i].reads
	return l.outstanding.Load(), l.recentLatency(time.Now())
}

// localFirst is idx with the bricks on this machine first, in order,
// when the set chooses local copies (Options.ChooseLocal).
func (v *Volume) localFirst(idx []int) []int {
	if !v.opts.ChooseLocal {
		return idx
	}
	var local, rest []int
	for _, i := range idx {
		if l, ok := v.kids[i].b.(interface{ Local() bool }); ok && !v.kids[i].arbiter && l.Local() {
			local = append(local, i)
		} else {
			rest = append(rest, i)
		}
	}
	if len(local) == 0 {
		return idx
	}
	return append(local, rest...)
}

// firstWrite is a handle's first write, with h.mu held: on data bricks
// the lock, the dirty mark and the data in one call, on an arbiter the
// lock and the mark. It returns the bricks lost on the way.
func (v *Volume) firstWrite(ctx context.Context, h *handle, off int64, data []byte) (fop.WriteReply, []int, error) {
	h.dirtied = true
	idx := make([]int, 0, len(h.kids))
	for i := range h.kids {
		idx = append(idx, i)
	}
	sortInts(idx)
	d := v.writeMark(h, idx)
	replies := make([]fop.WriteReply, len(v.kids))
	errs := v.fanout(idx, func(i int, b Brick) error {
		kh := h.kids[i]
		if v.kids[i].arbiter {
			_, err := b.Xattrop(ctx, &fop.XattropReq{Path: h.path, Delta: d, Lock: fop.LockShared, Handle: kh})
			return err
		}
		var err error
		replies[i], err = b.WriteDirty(ctx, &fop.WriteDirtyReq{Handle: kh, Offset: off, Path: h.path, Delta: d, Data: data})
		return err
	})
	var lost, wrote []int
	var opErr error
	for _, i := range idx {
		switch e := errs[i]; {
		case e == nil:
			if !v.kids[i].arbiter {
				wrote = append(wrote, i)
			}
		case isTransport(e):
			delete(h.kids, i)
			lost = append(lost, i)
		case opErr == nil:
			opErr = e
		}
	}
	if len(wrote) == 0 {
		if opErr == nil {
			opErr = syscall.ENOTCONN
		}
		// The bricks that took the lock and mark drop them at release.
		return fop.WriteReply{}, lost, opErr
	}
	return replies[wrote[0]], lost, nil
}

// writeMark is the changelog delta a handle's writers' lock comes with on
// the bricks in idx: the dirty mark, and the blame of every brick of the
// set outside idx. The bricks a handle lacks were blamed when it was
// opened, but a heal may have run between that open and the lock (no
// writer holds one then) and cleared the blame; without it again, the
// writes that follow would skip such a brick with nothing recording it.
func (v *Volume) writeMark(h *handle, idx []int) []int32 {
	d := DirtyDelta(len(v.kids), Data, 1)
	missed := v.missing(idx)
	if len(missed) == 0 {
		return d
	}
	for k, n := range PendingDelta(len(v.kids), Data, 1, missed) {
		d[k] += n
	}
	v.healNeeded(h.path)
	return d
}

// dirtyBusy is dirty on the handle's bricks, and records a data change
// under the mark (endBusy ends it): a Settle between the two would have
// cleared the mark, which is then taken again.
func (v *Volume) dirtyBusy(ctx context.Context, h *handle) error {
	for {
		if err := v.dirty(ctx, h, h.good()); err != nil {
			return err
		}
		h.mu.Lock()
		if h.dirtied {
			h.beginBusyLocked()
			h.mu.Unlock()
			return nil
		}
		h.mu.Unlock()
	}
}

var _ fop.Settler = (*Volume)(nil)

// Settle ends the handle's dirty mark and drops its writers' lock on the
// bricks, as a release does, once the writes in flight are done, when
// the file is closed (fop.Settler): the changelog update changes the
// copies' change time, which must not change after close returns. A
// write that comes later through the handle (another descriptor of the
// same open, a mapping's writeback) marks the file again, as a first
// write does. A brick that fails it keeps its mark (the heal looks at
// the file) and, if its connection went, the lock goes with its session.
//
// Each brick's barrier (Barrier) and changelog update go out together:
// one round trip.
func (v *Volume) Settle(ctx context.Context, id uint64) (fop.Attr, bool, error) {
	h, err := v.handle(id)
	if err != nil {
		return fop.Attr{}, false, nil
	}
	ctx = context.WithoutCancel(ctx)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.waitIdleLocked()
	unmark := h.dirtied && h.dirtyErr == nil
	idx := make([]int, 0, len(h.kids))
	for i := range h.kids {
		idx = append(idx, i)
	}
	if !unmark {
		v.fanout(idx, func(i int, b Brick) error {
			if br, ok := b.(fop.Barrierer); ok {
				_ = br.Barrier(ctx, h.kids[i])
			}
			return nil
		})
		return fop.Attr{}, false, nil
	}
	d := DirtyDelta(len(v.kids), Data, -1)
	replies := make([]fop.ReleaseReply, len(v.kids))
	errs := v.fanout(idx, func(i int, b Brick) error {
		kh := h.kids[i]
		var barrier chan struct{}
		if br, ok := b.(fop.Barrierer); ok {
			barrier = make(chan struct{})
			go func() {
				defer close(barrier)
				_ = br.Barrier(ctx, kh)
			}()
		}
		req := &fop.XattropReq{Path: h.path, Delta: d, Lock: fop.Unlock, Handle: kh}
		var err error
		if xa, ok := b.(attrXattroper); ok {
			replies[i], err = xa.XattropAttr(ctx, req)
		} else {
			replies[i].Counters, err = b.Xattrop(ctx, req)
		}
		if barrier != nil {
			<-barrier
		}
		return err
	})
	h.dirtied = false
	a, ok := v.cleared(h.kids, idx, replies, errs)
	return a, ok, nil
}

// attrXattroper is a Brick whose unlock by handle answers the file's
// attributes after it (fop.Client.XattropAttr).
type attrXattroper interface {
	XattropAttr(context.Context, *fop.XattropReq) (fop.ReleaseReply, error)
}

// dirty takes the writers' lock and marks the file dirty on the bricks in
// idx, once per handle.
func (v *Volume) dirty(ctx context.Context, h *handle, idx []int) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.dirtied {
		return h.dirtyErr
	}
	h.dirtied = true
	d := v.writeMark(h, idx)
	errs := v.fanout(idx, func(i int, b Brick) error {
		_, err := b.Xattrop(ctx, &fop.XattropReq{Path: h.path, Delta: d, Lock: fop.LockShared, Handle: h.kids[i]})
		return err
	})
	ok, err := v.outcome(idx, errs)
	if err == nil && !v.quorum(ok) {
		err = syscall.ENOTCONN
	}
	if err != nil {
		h.dirtyErr = err
		return err
	}
	for _, i := range idx {
		if errs[i] != nil {
			delete(h.kids, i)
		}
	}
	return nil
}

func (v *Volume) Read(ctx context.Context, id uint64, off int64, size uint32) ([]byte, error) {
	h, err := v.handle(id)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		h.mu.Lock()
		i := h.read
		kh, ok := h.kids[i]
		h.mu.Unlock()
		if ok {
			done := v.kids[i].reads.start()
			data, err := v.kids[i].b.Read(ctx, kh, off, size)
			done()
			if err == nil || !isTransport(err) || attempt > 0 {
				return data, err
			}
			v.failed(i, err)
		}
		// The brick reads went to is gone: read from another good copy.
		if err := v.reopenRead(ctx, h); err != nil {
			return nil, err
		}
	}
}

func (v *Volume) reopenRead(ctx context.Context, h *handle) error {
	w, err := v.view(ctx, h.name())
	if err != nil {
		return err
	}
	order := v.readOrder(w)
	for _, i := range order {
		if _, ok := h.kid(i); ok {
			h.mu.Lock()
			h.read = i
			h.mu.Unlock()
			return nil
		}
	}
	if h.write {
		// A write handle reads only where it writes.
		return syscall.EIO
	}
	for _, i := range order {
		r, err := v.kids[i].b.Open(ctx, h.name(), syscall.O_RDONLY)
		if err != nil {
			continue
		}
		h.mu.Lock()
		h.kids[i], h.read = r.Handle, i
		h.mu.Unlock()
		return nil
	}
	return syscall.ENOTCONN
}

func (v *Volume) Write(ctx context.Context, id uint64, off int64, data []byte) (fop.WriteReply, error) {
	h, err := v.handle(id)
	if err != nil {
		return fop.WriteReply{}, err
	}
	h.mu.Lock()
	if !h.dirtied {
		// The first write takes the lock and marks the file dirty in the
		// same round trip; later writes wait for it.
		r, lost, err := v.firstWrite(ctx, h, off, data)
		h.mu.Unlock()
		if len(lost) > 0 {
			v.blameHandle(context.WithoutCancel(ctx), h, Data, h.good(), lost)
			v.healNeeded(h.name())
		}
		if err == nil && !v.quorum(h.good()) {
			err = syscall.ENOTCONN
		}
		return r, err
	}
	dirtyErr := h.dirtyErr
	h.beginBusyLocked()
	h.mu.Unlock()
	defer h.endBusy()
	if dirtyErr != nil {
		return fop.WriteReply{}, dirtyErr
	}
	good := h.good()
	var targets []int
	for _, i := range good {
		if !v.kids[i].arbiter {
			targets = append(targets, i)
		}
	}
	replies := make([]fop.WriteReply, len(v.kids))
	errs := v.fanout(targets, func(i int, b Brick) error {
		kh, ok := h.kid(i)
		if !ok {
			return syscall.ENOTCONN
		}
		var err error
		replies[i], err = b.Write(ctx, kh, off, data)
		return err
	})
	ok, err := v.outcome(targets, errs)
	if lost := h.drop(targets, errs); len(lost) > 0 {
		// Record, on the bricks that took the write, that these did not:
		// the heal copies the file to them when they are back.
		v.blameHandle(context.WithoutCancel(ctx), h, Data, h.good(), lost)
		v.healNeeded(h.name())
	}
	if err != nil {
		return fop.WriteReply{}, err
	}
	if !v.quorum(h.good()) {
		return fop.WriteReply{}, syscall.ENOTCONN
	}
	return replies[ok[0]], nil
}

func (v *Volume) Fsync(ctx context.Context, id uint64, datasync bool) error {
	h, err := v.handle(id)
	if err != nil {
		return err
	}
	good := h.good()
	errs := v.fanout(good, func(i int, b Brick) error {
		kh, _ := h.kid(i)
		return b.Fsync(ctx, kh, datasync)
	})
	_, err = v.outcome(good, errs)
	if lost := h.drop(good, errs); len(lost) > 0 && h.write {
		v.blameHandle(context.WithoutCancel(ctx), h, Data, h.good(), lost)
	}
	return err
}

func (v *Volume) Release(ctx context.Context, id uint64) error {
	_, _, err := v.ReleaseAttr(ctx, id)
	return err
}

// ReleaseAttr releases the handle and, when it wrote and every brick it
// wrote to cleared its changelog, returns the file's attributes after
// that, as the brick reads go to has them (fop.ReleaseAttrer).
func (v *Volume) ReleaseAttr(ctx context.Context, id uint64) (fop.Attr, bool, error) {
	v.mu.Lock()
	h := v.handles[id]
	delete(v.handles, id)
	v.mu.Unlock()
	if h == nil {
		return fop.Attr{}, false, syscall.EBADF
	}
	ctx = context.WithoutCancel(ctx)
	// A handle that marked any brick dirty undoes it, even where the mark
	// failed (counters stop at zero, a lock not held is not dropped): no
	// lock may outlive the handle.
	h.mu.Lock()
	dirtied, dirtyErr := h.dirtied, h.dirtyErr
	kids := h.kids
	h.kids = map[int]uint64{}
	h.mu.Unlock()
	if !dirtied {
		idx := make([]int, 0, len(kids))
		for i := range kids {
			idx = append(idx, i)
		}
		v.fanout(idx, func(i int, b Brick) error { return b.Release(ctx, kids[i]) })
		return fop.Attr{}, false, nil
	}
	// The post-op and the release, in one round trip per brick.
	d := DirtyDelta(len(v.kids), Data, -1)
	idx := make([]int, 0, len(kids))
	for i := range kids {
		idx = append(idx, i)
	}
	replies := make([]fop.ReleaseReply, len(v.kids))
	errs := v.fanout(idx, func(i int, b Brick) error {
		var err error
		replies[i], err = b.XattropRelease(ctx, &fop.XattropReq{Path: h.name(), Delta: d, Lock: fop.Unlock, Handle: kids[i]})
		return err
	})
	if dirtyErr != nil {
		return fop.Attr{}, false, nil
	}
	a, ok := v.cleared(kids, idx, replies, errs)
	return a, ok, nil
}

// cleared is the file's attributes after the changelog updates that
// undid a handle's mark on the bricks in idx (kids: the handle's), when
// known: only when every brick of the set took every write and cleared
// its mark. Then every copy is good, and the next lookup, on any mount,
// answers with the first data copy's attributes (view). Its times may
// differ from the others' by the moments between the copies' writes; its
// size may not.
func (v *Volume) cleared(kids map[int]uint64, idx []int, replies []fop.ReleaseReply, errs []error) (fop.Attr, bool) {
	if len(idx) != len(v.kids) {
		return fop.Attr{}, false
	}
	for _, i := range idx {
		if errs[i] != nil || !replies[i].HasAttr || !changelogClear(replies[i].Counters) {
			return fop.Attr{}, false
		}
	}
	// Every brick took part (above): the first data brick is the first
	// good copy.
	first := -1
	for i, k := range v.kids {
		if !k.arbiter {
			first = i
			break
		}
	}
	if _, ok := kids[first]; !ok {
		return fop.Attr{}, false
	}
	a := replies[first].Attr
	for _, i := range idx {
		if b := replies[i].Attr; !v.kids[i].arbiter && b.Size != a.Size {
			return fop.Attr{}, false
		}
	}
	return a, true
}

// changelogClear reports whether a changelog records nothing: no change
// in flight, none missed.
func changelogClear(c []int32) bool {
	for _, n := range c {
		if n != 0 {
			return false
		}
	}
	return true
}

func (v *Volume) releaseKids(ctx context.Context, h *handle) {
	h.mu.Lock()
	kids := h.kids
	h.kids = map[int]uint64{}
	h.mu.Unlock()
	idx := make([]int, 0, len(kids))
	for i := range kids {
		idx = append(idx, i)
	}
	v.fanout(idx, func(i int, b Brick) error { return b.Release(ctx, kids[i]) })
}

func (v *Volume) Readlink(ctx context.Context, p string) (string, error) {
	var out string
	err := v.readOne(ctx, func(b Brick) error {
		var err error
		out, err = b.Readlink(ctx, p)
		return err
	})
	return out, err
}

// readOne asks the first brick that is up, then the next on a transport
// failure.
func (v *Volume) readOne(ctx context.Context, fn func(b Brick) error) error {
	err := error(syscall.ENOTCONN)
	for _, i := range v.upSet() {
		if v.kids[i].arbiter && len(v.kids) > 1 {
			continue
		}
		if err = fn(v.kids[i].b); err == nil || !isTransport(err) {
			return err
		}
		v.failed(i, err)
	}
	return err
}

func (v *Volume) Readdir(ctx context.Context, p string, pos fop.Pos, max uint32) (fop.ReaddirReply, error) {
	v.mu.Lock()
	i, known := v.dirKid[p]
	v.mu.Unlock()
	if pos.Cookie == 0 || !known || !v.kids[i].up.Load() {
		// A listing starts on a brick that has every name.
		w, err := v.view(ctx, p)
		if err != nil {
			return fop.ReaddirReply{}, err
		}
		if len(w.readable) == 0 {
			return fop.ReaddirReply{}, syscall.EIO
		}
		i = w.readable[0]
		if known && pos.Cookie != 0 {
			// Another brick's positions differ: a listing cut by a brick
			// going down starts again.
			return fop.ReaddirReply{}, syscall.EIO
		}
		v.mu.Lock()
		if len(v.dirKid) > 4096 {
			v.dirKid = map[string]int{}
		}
		v.dirKid[p] = i
		v.mu.Unlock()
	}
	r, err := v.kids[i].b.Readdir(ctx, p, fop.Pos{Cookie: pos.Cookie}, max)
	if err != nil && isTransport(err) {
		v.failed(i, err)
	}
	return r, err
}

func (v *Volume) Getxattr(ctx context.Context, p, name string) ([]byte, error) {
	var out []byte
	err := v.readOne(ctx, func(b Brick) error {
		var err error
		out, err = b.Getxattr(ctx, p, name)
		return err
	})
	return out, err
}

func (v *Volume) Listxattr(ctx context.Context, p string) ([]byte, error) {
	var out []byte
	err := v.readOne(ctx, func(b Brick) error {
		var err error
		out, err = b.Listxattr(ctx, p)
		return err
	})
	return out, err
}

func (v *Volume) Setxattr(ctx context.Context, p, name string, value []byte, flags uint32) error {
	unlock, err := v.metaLock(ctx, p, v.upSet(), nil)
	if err != nil {
		return err
	}
	defer unlock()
	_, err = v.change(ctx, Metadata, []string{p}, func(_ int, b Brick) error { return b.Setxattr(ctx, p, name, value, flags) })
	return err
}

func (v *Volume) Removexattr(ctx context.Context, p, name string) error {
	unlock, err := v.metaLock(ctx, p, v.upSet(), nil)
	if err != nil {
		return err
	}
	defer unlock()
	_, err = v.change(ctx, Metadata, []string{p}, func(_ int, b Brick) error { return b.Removexattr(ctx, p, name) })
	return err
}

// metaLock runs before a metadata change (mode, owner, times, extended
// attributes): it takes the metadata domain's shared lock on the file on
// the bricks in idx (fop.DomainMetadata: writers of the data hold the
// other domain's), with the metadata dirty mark. A metadata heal takes the
// exclusive lock and decides again under it, so it never copies a
// source's metadata while a change is half made (on some copies only):
// that change would be lost on the sink with a clean changelog. A client
// lost midway leaves the mark, which the heal sees. kid, when set, names
// the file on brick i by an open handle (the file may have no name
// left). The function returned drops the mark and the lock.
func (v *Volume) metaLock(ctx context.Context, p string, idx []int, kid func(i int) uint64) (func(), error) {
	if !v.quorum(idx) {
		return nil, syscall.ENOTCONN
	}
	n := len(v.kids)
	req := func(i int, lock uint8, delta int32) *fop.XattropReq {
		r := &fop.XattropReq{Path: p, Delta: DirtyDelta(n, Metadata, delta), Lock: lock, Domain: fop.DomainMetadata}
		if kid != nil {
			r.Handle = kid(i)
		}
		return r
	}
	errs := v.fanout(idx, func(i int, b Brick) error {
		_, err := b.Xattrop(ctx, req(i, fop.LockShared, 1))
		return err
	})
	ok, err := v.outcome(idx, errs)
	unlock := func() {
		c := context.WithoutCancel(ctx)
		v.fanout(ok, func(i int, b Brick) error {
			_, err := b.Xattrop(c, req(i, fop.Unlock, -1))
			return err
		})
	}
	if err == nil && !v.quorum(ok) {
		err = syscall.ENOTCONN
	}
	if err != nil {
		unlock()
		return nil, err
	}
	return unlock, nil
}

func (v *Volume) Statfs(ctx context.Context) (fop.Statfs, error) {
	var out fop.Statfs
	err := v.readOne(ctx, func(b Brick) error {
		var err error
		out, err = b.Statfs(ctx)
		return err
	})
	return out, err
}

var _ fop.FileAttrer = (*Volume)(nil)

// Fgetattr asks the copy a lookup answers from (handle.attrKid): by the
// handle when it is open there, else by the file's name when that still
// names it; failing that, the brick the handle reads from, then the
// others it has open.
func (v *Volume) Fgetattr(ctx context.Context, id uint64) (fop.Attr, error) {
	h, err := v.handle(id)
	if err != nil {
		return fop.Attr{}, err
	}
	h.mu.Lock()
	i, p := h.attrKid, h.path
	kh, open := h.kids[i]
	h.mu.Unlock()
	if b := v.kids[i].b; open {
		a, err := b.Fgetattr(ctx, kh)
		if err == nil || !isTransport(err) {
			return a, err
		}
		v.failed(i, err)
	} else if !h.gfid.IsZero() && v.kids[i].up.Load() {
		if a, err := b.Getattr(ctx, p); err == nil && a.GFID == h.gfid {
			return a, nil
		} else if err != nil && isTransport(err) {
			v.failed(i, err)
		}
	}
	var a fop.Attr
	err = v.readKid(ctx, h, func(b Brick, kh uint64) error {
		var err error
		a, err = b.Fgetattr(ctx, kh)
		return err
	})
	return a, err
}

// Fsetattr changes an open file's attributes on every brick the handle
// writes to (a truncation under the writers' lock, as writes); a handle
// opened for reading only changes them by the file's path.
func (v *Volume) Fsetattr(ctx context.Context, id uint64, req *fop.SetattrReq) (fop.Attr, error) {
	h, err := v.handle(id)
	if err != nil {
		return fop.Attr{}, err
	}
	if !h.write {
		r := *req
		r.Path = h.name()
		return v.Setattr(ctx, &r)
	}
	k := Metadata
	if req.Valid&fop.SetSize != 0 {
		k = Data
		if err := v.dirtyBusy(ctx, h); err != nil {
			return fop.Attr{}, err
		}
		defer h.endBusy()
	} else {
		unlock, err := v.metaLock(ctx, h.name(), h.good(), h.kidHandle)
		if err != nil {
			return fop.Attr{}, err
		}
		defer unlock()
	}
	good := h.good()
	attrs := make([]fop.Attr, len(v.kids))
	errs := v.fanout(good, func(i int, b Brick) error {
		kh, _ := h.kid(i)
		var err error
		attrs[i], err = b.Fsetattr(ctx, kh, req)
		return err
	})
	ok, err := v.outcome(good, errs)
	if lost := h.drop(good, errs); len(lost) > 0 {
		v.blameHandle(context.WithoutCancel(ctx), h, k, h.good(), lost)
		v.healNeeded(h.name())
	}
	if err != nil {
		return fop.Attr{}, err
	}
	// Bricks the handle had lost before the call missed the change too.
	if before := v.missing(good); len(before) > 0 {
		v.blameHandle(context.WithoutCancel(ctx), h, k, ok, before)
	}
	return attrs[v.dataKid(ok)], nil
}

var _ fop.FileXattrer = (*Volume)(nil)

// readKid runs fn on the brick the handle reads from, then on the other
// bricks it has open.
func (v *Volume) readKid(ctx context.Context, h *handle, fn func(b Brick, kh uint64) error) error {
	h.mu.Lock()
	order := []int{h.read}
	for i := range h.kids {
		if i != h.read && !v.kids[i].arbiter {
			order = append(order, i)
		}
	}
	h.mu.Unlock()
	err := error(syscall.ENOTCONN)
	for _, i := range order {
		kh, ok := h.kid(i)
		if !ok {
			continue
		}
		if err = fn(v.kids[i].b, kh); err == nil || !isTransport(err) {
			return err
		}
		v.failed(i, err)
	}
	return err
}

// fchange changes metadata through a handle on every brick it has open
// (the file may have no name left), blaming the bricks that miss it; a
// handle open on one brick only (for reading) changes it by path.
func (v *Volume) fchange(ctx context.Context, id uint64, byPath func(p string) error, fn func(b Brick, kh uint64) error) error {
	h, err := v.handle(id)
	if err != nil {
		return err
	}
	if !h.write {
		return byPath(h.name())
	}
	unlock, err := v.metaLock(ctx, h.name(), h.good(), h.kidHandle)
	if err != nil {
		return err
	}
	defer unlock()
	good := h.good()
	errs := v.fanout(good, func(i int, b Brick) error {
		kh, _ := h.kid(i)
		return fn(b, kh)
	})
	ok, err := v.outcome(good, errs)
	if lost := h.drop(good, errs); len(lost) > 0 {
		v.blameHandle(context.WithoutCancel(ctx), h, Metadata, h.good(), lost)
	}
	if err != nil {
		return err
	}
	if before := v.missing(good); len(before) > 0 {
		v.blameHandle(context.WithoutCancel(ctx), h, Metadata, ok, before)
	}
	return nil
}

func (v *Volume) Fgetxattr(ctx context.Context, id uint64, name string) ([]byte, error) {
	h, err := v.handle(id)
	if err != nil {
		return nil, err
	}
	var out []byte
	err = v.readKid(ctx, h, func(b Brick, kh uint64) error {
		var err error
		out, err = b.Fgetxattr(ctx, kh, name)
		return err
	})
	return out, err
}

func (v *Volume) Flistxattr(ctx context.Context, id uint64) ([]byte, error) {
	h, err := v.handle(id)
	if err != nil {
		return nil, err
	}
	var out []byte
	err = v.readKid(ctx, h, func(b Brick, kh uint64) error {
		var err error
		out, err = b.Flistxattr(ctx, kh)
		return err
	})
	return out, err
}

func (v *Volume) Fsetxattr(ctx context.Context, id uint64, name string, value []byte, flags uint32) error {
	return v.fchange(ctx, id,
		func(p string) error { return v.Setxattr(ctx, p, name, value, flags) },
		func(b Brick, kh uint64) error { return b.Fsetxattr(ctx, kh, name, value, flags) })
}

func (v *Volume) Fremovexattr(ctx context.Context, id uint64, name string) error {
	return v.fchange(ctx, id,
		func(p string) error { return v.Removexattr(ctx, p, name) },
		func(b Brick, kh uint64) error { return b.Fremovexattr(ctx, kh, name) })
}

var _ fop.LocalReader = (*Volume)(nil)

// ReadLocal reads from the copy reads of id go to, when that brick is up
// and on this machine (fop.LocalReader).
func (v *Volume) ReadLocal(ctx context.Context, id uint64, buf []byte, off int64) (int, bool) {
	lr, kh, ok := localKid[fop.LocalReader](v, id)
	if !ok {
		return 0, false
	}
	return lr.ReadLocal(ctx, kh, buf, off)
}

var _ fop.LocalFDReader = (*Volume)(nil)

// LocalReadFD is the descriptor of the copy ReadLocal reads from
// (fop.LocalFDReader).
func (v *Volume) LocalReadFD(ctx context.Context, id uint64, off int64, size int) (int, bool) {
	lr, kh, ok := localKid[fop.LocalFDReader](v, id)
	if !ok {
		return -1, false
	}
	return lr.LocalReadFD(ctx, kh, off, size)
}

// localKid is the brick reads of id go to, as an R, and its handle there,
// when that brick is up and not an arbiter.
func localKid[R any](v *Volume, id uint64) (r R, kh uint64, ok bool) {
	h, err := v.handle(id)
	if err != nil {
		return r, 0, false
	}
	h.mu.Lock()
	i := h.read
	kh, ok = h.kids[i]
	h.mu.Unlock()
	if !ok || v.kids[i].arbiter || !v.kids[i].up.Load() {
		return r, 0, false
	}
	r, ok = v.kids[i].b.(R)
	return r, kh, ok
}

var _ fop.Barrierer = (*Volume)(nil)

// Barrier waits for each brick of the handle that was written through a
// local descriptor to have told its other clients (fop.Barrierer). A
// brick that fails it is left to the writes' own notices.
func (v *Volume) Barrier(ctx context.Context, id uint64) error {
	h, err := v.handle(id)
	if err != nil {
		return nil
	}
	v.fanout(h.good(), func(i int, b Brick) error {
		kh, ok := h.kid(i)
		br, isB := b.(fop.Barrierer)
		if !ok || !isB {
			return nil
		}
		return br.Barrier(ctx, kh)
	})
	return nil
}
