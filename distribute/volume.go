package distribute

import (
	"context"
	"errors"
	"log/slog"
	"path"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/cais-platform/cais/fop"
	"github.com/cais-platform/cais/pathcache"
)

// LinkToXattr marks a pointer entry: a zero-length file on the subvolume a
// name hashes to, naming the subvolume that holds the data. A rename whose
// new name hashes elsewhere leaves one instead of moving data.
const LinkToXattr = "trusted.cais.linkto"

// linkToMode is a pointer entry's mode: a regular file with only the
// sticky bit, as gluster's linkto files.
const linkToMode = syscall.S_IFREG | syscall.S_ISVTX

// handleShift packs the subvolume index into the top byte of a handle
// (brick handles are small counters).
const handleShift = 56

// Volume distributes files over subvolumes by the hash of their names.
type Volume struct {
	// LookupUnhashed makes a name missing on its hashed subvolume be
	// looked up on every subvolume (cluster.lookup-optimize off): needed
	// only while files created under an older layout have not been moved
	// (rebalance). Off, a missing name costs one lookup, not one per brick.
	LookupUnhashed bool
	// Log, if set, takes what the layer has to report (nil: nothing).
	Log *slog.Logger

	subs []fop.Volume
	mu   sync.Mutex
	// layouts caches directories' layouts by path; an error from a
	// subvolume that suggests the layout changed drops the entry.
	layouts map[string]Layout
	// recent maps files looked up lately to the subvolume holding them.
	recent *pathcache.Cache[int]
}

var _ fop.Volume = (*Volume)(nil)

// New returns a distribute layer over subs (at most 255).
func New(subs []fop.Volume) *Volume {
	return &Volume{subs: subs, layouts: map[string]Layout{}, recent: pathcache.New[int](recentTTL, 65536)}
}

func (v *Volume) log() *slog.Logger {
	if v.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return v.Log
}

func split(p string) (dir, name string) {
	d, n := path.Split(p)
	return path.Clean("/" + d)[1:], n
}

// layout returns a directory's layout, assembling (and healing) it from
// the subvolumes' records when it is not cached.
func (v *Volume) layout(ctx context.Context, dir string) (Layout, error) {
	v.mu.Lock()
	l, ok := v.layouts[dir]
	v.mu.Unlock()
	if ok {
		return l, nil
	}
	entries, errs := v.lookupAll(ctx, dir)
	records := make([]*Record, len(v.subs))
	var found *fop.Entry
	for i, e := range entries {
		if errs[i] != nil {
			continue
		}
		if found == nil {
			found = &entries[i]
		}
		if r, err := DecodeRange(e.Layout); err == nil {
			records[i] = &r
		}
	}
	if found == nil {
		return Layout{}, firstErr(errs)
	}
	l, anomaly := Assemble(records)
	if !anomaly.OK() {
		var err error
		if l, err = v.heal(ctx, dir, *found, entries, errs, l.Generation+1); err != nil {
			return Layout{}, err
		}
	}
	v.mu.Lock()
	v.layouts[dir] = l
	v.mu.Unlock()
	return l, nil
}

// heal gives a directory a fresh even layout: it creates the directory on
// subvolumes that lack it and writes every subvolume's record.
func (v *Volume) heal(ctx context.Context, dir string, found fop.Entry, entries []fop.Entry, errs []error, gen uint32) (Layout, error) {
	l := Even(len(v.subs), gen)
	failed := make([]error, len(v.subs))
	v.eachSub(-1, func(i int, sub fop.Volume) {
		if errs[i] != nil {
			a := found.Attr
			_, err := sub.Mkdir(ctx, &fop.CreateReq{Path: dir, Mode: a.Mode & 0o7777, UID: a.UID, GID: a.GID, GFID: a.GFID,
				Xattrs: []fop.Xattr{{Name: LayoutXattr, Value: l.EncodeRange(i)}}})
			if err != nil && !errors.Is(err, syscall.EEXIST) {
				failed[i] = err
			}
			return
		}
		failed[i] = sub.Setxattr(ctx, dir, LayoutXattr, l.EncodeRange(i), 0)
	})
	if err := firstErr(failed); err != nil {
		return Layout{}, err
	}
	return l, nil
}

func (v *Volume) forget(dir string) {
	v.mu.Lock()
	delete(v.layouts, dir)
	v.mu.Unlock()
}

// eachSub runs fn on every subvolume but skip (-1: none) at once, and
// returns when all are done.
func (v *Volume) eachSub(skip int, fn func(i int, sub fop.Volume)) {
	var g fop.Group
	for i, sub := range v.subs {
		if i == skip {
			continue
		}
		g.Go(func() { fn(i, sub) })
	}
	g.Wait()
}

func (v *Volume) lookupAll(ctx context.Context, p string) ([]fop.Entry, []error) {
	entries := make([]fop.Entry, len(v.subs))
	errs := make([]error, len(v.subs))
	v.eachSub(-1, func(i int, sub fop.Volume) { entries[i], errs[i] = sub.Lookup(ctx, p) })
	return entries, errs
}

func firstErr(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// hashed returns the subvolume a path's name hashes to.
func (v *Volume) hashed(ctx context.Context, p string) (int, error) {
	dir, name := split(p)
	l, err := v.layout(ctx, dir)
	if err != nil {
		return 0, err
	}
	i, ok := l.Locate(Hash(name))
	if !ok {
		v.forget(dir)
		return 0, syscall.EIO
	}
	return i, nil
}

// cached returns the subvolume that holds a file's data (following a
// pointer entry) and the file's entry there.
func (v *Volume) cached(ctx context.Context, p string) (int, fop.Entry, error) {
	if p == "" {
		e, err := v.subs[0].Lookup(ctx, p)
		return 0, e, err
	}
	h, err := v.hashed(ctx, p)
	if err != nil {
		return 0, fop.Entry{}, err
	}
	e, err := v.subs[h].Lookup(ctx, p)
	if err == nil && e.LinkTo != "" {
		t, perr := strconv.Atoi(e.LinkTo)
		if perr != nil || t < 0 || t >= len(v.subs) {
			return 0, fop.Entry{}, syscall.EIO
		}
		e, err = v.subs[t].Lookup(ctx, p)
		return t, e, err
	}
	if errors.Is(err, syscall.ENOENT) && v.LookupUnhashed {
		// The layout says where the name belongs; a name created under an
		// older layout may sit elsewhere until rebalance moves it.
		entries, errs := v.lookupAll(ctx, p)
		for i := range v.subs {
			if errs[i] == nil && entries[i].LinkTo == "" {
				return i, entries[i], nil
			}
		}
	}
	return h, e, err
}

func isDir(a fop.Attr) bool { return a.Mode&syscall.S_IFMT == syscall.S_IFDIR }

func (v *Volume) Lookup(ctx context.Context, p string) (fop.Entry, error) {
	i, e, err := v.cached(ctx, p)
	if err == nil && !isDir(e.Attr) {
		v.remember(p, i)
	}
	if err == nil && isDir(e.Attr) {
		e.Attr = v.dirAttr(ctx, p, i, e.Attr)
	}
	return e, err
}

func (v *Volume) Getattr(ctx context.Context, p string) (fop.Attr, error) {
	if a, ok := v.knownDirAttr(ctx, p); ok {
		return a, nil
	}
	i, e, err := v.cached(ctx, p)
	if err != nil {
		return fop.Attr{}, err
	}
	if isDir(e.Attr) {
		return v.dirAttr(ctx, p, i, e.Attr), nil
	}
	// The lookup on the subvolume holding the data returned its attributes.
	return e.Attr, nil
}

// recentTTL is how long the subvolume a name was found on is trusted
// without a new lookup, for reads of its extended attributes and opens
// (the kernel looks a name up right before).
const recentTTL = time.Second

func (v *Volume) remember(p string, sub int) { v.recent.Put(p, sub) }

// where returns the subvolume holding p's data, from a recent lookup when
// there is one.
func (v *Volume) where(ctx context.Context, p string) (int, bool, error) {
	if sub, ok := v.recent.Get(p); ok {
		return sub, true, nil
	}
	i, _, err := v.cached(ctx, p)
	return i, false, err
}

func (v *Volume) forgetRecent(p string) { v.recent.Forget(p) }

// onData runs a read of p's data subvolume, trusting a recent lookup and
// looking up again if the name moved meanwhile.
func onData[T any](ctx context.Context, v *Volume, p string, fn func(sub fop.Volume) (T, error)) (T, error) {
	i, fromCache, err := v.where(ctx, p)
	if err != nil {
		var zero T
		return zero, err
	}
	out, err := fn(v.subs[i])
	if fromCache && errors.Is(err, syscall.ENOENT) {
		v.forgetRecent(p)
		if i, _, err = v.cached(ctx, p); err != nil {
			return out, err
		}
		return fn(v.subs[i])
	}
	return out, err
}

// dirAttr completes the attributes a of directory p, read from subvolume
// i: an entry made or removed in a directory changes the times of only
// the copy on the subvolume that holds it, so the directory's times are
// the latest of all its copies'.
func (v *Volume) dirAttr(ctx context.Context, p string, i int, a fop.Attr) fop.Attr {
	if len(v.subs) == 1 {
		return a
	}
	var mu sync.Mutex
	v.eachSub(i, func(_ int, sub fop.Volume) {
		e, err := sub.Lookup(ctx, p)
		if err != nil || !isDir(e.Attr) {
			return
		}
		mu.Lock()
		a = MergeDirTimes(a, e.Attr)
		mu.Unlock()
	})
	return a
}

// knownDirAttr reads the attributes of p, a directory this client holds
// the layout of, from every subvolume at once: one round trip, where a
// lookup on the subvolume its name hashes to and then dirAttr's on the
// others take two. The kernel asks for them after every entry made or
// removed in the directory. It reports false when p is not known as a
// directory or is no longer one there; the caller looks it up anew.
func (v *Volume) knownDirAttr(ctx context.Context, p string) (fop.Attr, bool) {
	if len(v.subs) == 1 {
		return fop.Attr{}, false
	}
	v.mu.Lock()
	_, known := v.layouts[p]
	v.mu.Unlock()
	if !known {
		return fop.Attr{}, false
	}
	h := 0 // cached's choice for the root
	if p != "" {
		var err error
		if h, err = v.hashed(ctx, p); err != nil {
			return fop.Attr{}, false
		}
	}
	entries, errs := v.lookupAll(ctx, p)
	if errs[h] != nil || !isDir(entries[h].Attr) {
		return fop.Attr{}, false
	}
	a := entries[h].Attr
	for j, e := range entries {
		if j != h && errs[j] == nil && isDir(e.Attr) {
			a = MergeDirTimes(a, e.Attr)
		}
	}
	return a, true
}

// MergeDirTimes returns a with each of its times raised to b's where b's
// is later.
func MergeDirTimes(a, b fop.Attr) fop.Attr {
	a.Atime = max(a.Atime, b.Atime)
	a.Mtime = max(a.Mtime, b.Mtime)
	a.Ctime = max(a.Ctime, b.Ctime)
	return a
}

// parentSub is the context for an entry call on subvolume i for path p:
// a directory's size and link count are those of its copy on the
// subvolume its own name hashes to (dirAttr, knownDirAttr), the root's
// the first subvolume's (fop.ParentSub).
func (v *Volume) parentSub(ctx context.Context, i int, p string) context.Context {
	dir, _ := split(p)
	auth := 0
	if dir != "" {
		var err error
		if auth, err = v.hashed(ctx, dir); err != nil {
			auth = -1
		}
	}
	return fop.ParentSub(ctx, i, auth)
}

// emptyEverywhere fails with ENOTEMPTY when directory p holds an entry on
// any subvolume (a file lives on one subvolume only, so no single
// subvolume can tell).
func (v *Volume) emptyEverywhere(ctx context.Context, p string) error {
	return v.emptyOn(ctx, p, -1)
}

// emptyOn is emptyEverywhere on every subvolume but skip.
func (v *Volume) emptyOn(ctx context.Context, p string, skip int) error {
	errs := make([]error, len(v.subs))
	v.eachSub(skip, func(i int, sub fop.Volume) {
		r, err := sub.Readdir(ctx, p, fop.Pos{}, 1)
		switch {
		case err != nil && !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ENOTDIR):
			errs[i] = err
		case len(r.Entries) > 0:
			errs[i] = syscall.ENOTEMPTY
		}
	})
	// ENOTEMPTY first: it is the answer whatever else failed.
	for _, err := range errs {
		if errors.Is(err, syscall.ENOTEMPTY) {
			return err
		}
	}
	return firstErr(errs)
}

// onAll runs fn on a directory on every subvolume, the first (i ==
// first) before the others, and returns the first one's result with the
// latest times of all that succeeded (a directory's times are the latest
// of its copies': copies made a clock tick apart differ).
func (v *Volume) onAll(ctx context.Context, first int, fn func(i int, sub fop.Volume) (fop.Attr, error)) (fop.Attr, error) {
	a, err := fn(first, v.subs[first])
	if err != nil {
		return a, err
	}
	var mu sync.Mutex
	v.eachSub(first, func(i int, sub fop.Volume) {
		if b, err := fn(i, sub); err == nil {
			mu.Lock()
			a = MergeDirTimes(a, b)
			mu.Unlock()
		}
	})
	return a, nil
}

func (v *Volume) Setattr(ctx context.Context, req *fop.SetattrReq) (fop.Attr, error) {
	i, e, err := v.cached(ctx, req.Path)
	if err != nil {
		return fop.Attr{}, err
	}
	if !isDir(e.Attr) {
		return v.subs[i].Setattr(ctx, req)
	}
	return v.onAll(ctx, i, func(_ int, sub fop.Volume) (fop.Attr, error) { return sub.Setattr(ctx, req) })
}

func (v *Volume) Mkdir(ctx context.Context, req *fop.CreateReq) (fop.Attr, error) {
	h, err := v.hashed(ctx, req.Path)
	if err != nil {
		return fop.Attr{}, err
	}
	l := Even(len(v.subs), 1)
	return v.onAll(ctx, h, func(i int, sub fop.Volume) (fop.Attr, error) {
		r := *req
		r.Xattrs = append(append([]fop.Xattr(nil), req.Xattrs...), fop.Xattr{Name: LayoutXattr, Value: l.EncodeRange(i)})
		return sub.Mkdir(v.parentSub(ctx, i, req.Path), &r)
	})
}

func (v *Volume) onHashed(ctx context.Context, p string) (fop.Volume, int, error) {
	h, err := v.hashed(ctx, p)
	if err != nil {
		return nil, 0, err
	}
	return v.subs[h], h, nil
}

func (v *Volume) Mknod(ctx context.Context, req *fop.CreateReq) (fop.Attr, error) {
	sub, h, err := v.onHashed(ctx, req.Path)
	if err != nil {
		return fop.Attr{}, err
	}
	return sub.Mknod(v.parentSub(ctx, h, req.Path), req)
}

func (v *Volume) Symlink(ctx context.Context, req *fop.CreateReq) (fop.Attr, error) {
	sub, h, err := v.onHashed(ctx, req.Path)
	if err != nil {
		return fop.Attr{}, err
	}
	return sub.Symlink(v.parentSub(ctx, h, req.Path), req)
}

func (v *Volume) Create(ctx context.Context, req *fop.CreateReq) (fop.OpenReply, error) {
	sub, h, err := v.onHashed(ctx, req.Path)
	if err != nil {
		return fop.OpenReply{}, err
	}
	r, err := sub.Create(v.parentSub(ctx, h, req.Path), req)
	r.Handle |= uint64(h) << handleShift
	return r, err
}

func (v *Volume) Open(ctx context.Context, p string, flags uint32) (fop.OpenReply, error) {
	if r, ok := v.openHashed(ctx, p, flags); ok {
		return r, nil
	}
	i, fromCache, err := v.where(ctx, p)
	if err != nil {
		return fop.OpenReply{}, err
	}
	r, err := v.subs[i].Open(ctx, p, flags)
	if fromCache && errors.Is(err, syscall.ENOENT) {
		// Moved since the lookup: find it again.
		v.forgetRecent(p)
		if i, _, err = v.cached(ctx, p); err != nil {
			return fop.OpenReply{}, err
		}
		r, err = v.subs[i].Open(ctx, p, flags)
	}
	r.Handle |= uint64(i) << handleShift
	return r, err
}

// openHashed opens p on the subvolume its name hashes to without
// looking it up first: one round trip where a lookup and an open take
// two, when the kernel's long-lived entry cache made the lookup long ago.
// It reports false, having opened nothing, when the name is elsewhere or
// may be a pointer entry (the pointer's mode: a real file of that mode is
// opened by the lookup path), and the caller takes the lookup path.
func (v *Volume) openHashed(ctx context.Context, p string, flags uint32) (fop.OpenReply, bool) {
	if p == "" || flags&(syscall.O_CREAT|syscall.O_TRUNC) != 0 {
		return fop.OpenReply{}, false
	}
	if _, ok := v.recent.Get(p); ok {
		return fop.OpenReply{}, false // the lookup path knows where it is
	}
	i, err := v.hashed(ctx, p)
	if err != nil {
		return fop.OpenReply{}, false
	}
	r, err := v.subs[i].Open(ctx, p, flags)
	if err != nil {
		return fop.OpenReply{}, false
	}
	if r.Attr.Mode == linkToMode {
		_ = v.subs[i].Release(ctx, r.Handle)
		return fop.OpenReply{}, false
	}
	r.Handle |= uint64(i) << handleShift
	return r, true
}

func (v *Volume) sub(h uint64) (fop.Volume, uint64, error) {
	i := int(h >> handleShift)
	if i >= len(v.subs) {
		return nil, 0, syscall.EBADF
	}
	return v.subs[i], h & (1<<handleShift - 1), nil
}

func (v *Volume) Read(ctx context.Context, h uint64, off int64, size uint32) ([]byte, error) {
	sub, inner, err := v.sub(h)
	if err != nil {
		return nil, err
	}
	return sub.Read(ctx, inner, off, size)
}

func (v *Volume) Write(ctx context.Context, h uint64, off int64, data []byte) (fop.WriteReply, error) {
	sub, inner, err := v.sub(h)
	if err != nil {
		return fop.WriteReply{}, err
	}
	return sub.Write(ctx, inner, off, data)
}

func (v *Volume) Release(ctx context.Context, h uint64) error {
	sub, inner, err := v.sub(h)
	if err != nil {
		return err
	}
	return sub.Release(ctx, inner)
}

func (v *Volume) Fsync(ctx context.Context, h uint64, datasync bool) error {
	sub, inner, err := v.sub(h)
	if err != nil {
		return err
	}
	return sub.Fsync(ctx, inner, datasync)
}

func (v *Volume) Unlink(ctx context.Context, p string) error {
	v.forgetRecent(p)
	if done, err := v.unlinkHashed(ctx, p); done {
		return err
	}
	i, _, err := v.cached(ctx, p)
	if err != nil {
		return err
	}
	if err := v.subs[i].Unlink(v.parentSub(ctx, i, p), p); err != nil {
		return err
	}
	if h, err := v.hashed(ctx, p); err == nil && h != i {
		_ = v.subs[h].Unlink(v.parentSub(ctx, h, p), p) // the pointer entry
	}
	return nil
}

// unlinkHashed removes p where its name hashes to without looking it up
// first, when that subvolume can (fop.FileUnlinker): one round trip for a
// file that is where its name hashes, as most are; a pointer entry there
// leads to the file it points to. It reports false when the caller must
// take the lookup path: a subvolume without the call, or a name missing
// on its hashed subvolume while names may sit off their hash
// (LookupUnhashed).
func (v *Volume) unlinkHashed(ctx context.Context, p string) (bool, error) {
	h, err := v.hashed(ctx, p)
	if err != nil {
		return false, nil
	}
	fu, ok := v.subs[h].(fop.FileUnlinker)
	if !ok {
		return false, nil
	}
	link, err := fu.UnlinkFile(v.parentSub(ctx, h, p), p)
	switch {
	case errors.Is(err, syscall.ENOSYS), errors.Is(err, syscall.ENOENT) && v.LookupUnhashed:
		return false, nil
	case err != nil:
		return true, err
	case link == "":
		return true, nil
	}
	t, perr := strconv.Atoi(link)
	if perr != nil || t < 0 || t >= len(v.subs) {
		return true, syscall.EIO
	}
	if err := v.subs[t].Unlink(v.parentSub(ctx, t, p), p); err != nil {
		return true, err
	}
	_ = v.subs[h].Unlink(v.parentSub(ctx, h, p), p) // the pointer entry
	return true, nil
}

// Rmdir removes directory p in two round trips: first the copies but
// the hashed subvolume's are checked for emptiness, at once; then every
// copy is removed, at once, and the hashed copy's removal checks it. A
// copy that cannot be removed after the check (entries on the hashed
// copy, or another client's entry made meanwhile) keeps the directory:
// the copies that went are made again, so that lookups find it whole.
func (v *Volume) Rmdir(ctx context.Context, p string) error {
	h, err := v.hashed(ctx, p)
	if err != nil {
		return err
	}
	// Refuse before removing anything where another copy holds an entry:
	// a directory is empty only if it is empty on every subvolume.
	if err := v.emptyOn(ctx, p, h); err != nil {
		return err
	}
	errs := make([]error, len(v.subs))
	v.eachSub(-1, func(i int, sub fop.Volume) { errs[i] = sub.Rmdir(v.parentSub(ctx, i, p), p) })
	v.forget(p)
	if err := errs[h]; err != nil {
		// The directory stays: the copies that went are made again by
		// the layout's heal. Not when the hashed entry is no directory
		// (rmdir of a file) or is gone: then no copy went, or there is
		// no directory to heal.
		removed := false
		for i, e := range errs {
			removed = removed || (i != h && e == nil)
		}
		if removed && !errors.Is(err, syscall.ENOTDIR) && !errors.Is(err, syscall.ENOENT) {
			if _, lerr := v.layout(context.WithoutCancel(ctx), p); lerr != nil {
				v.log().Error("distribute: cannot heal a directory whose rmdir failed", "path", p, "err", lerr)
			}
		}
		return err
	}
	for i, err := range errs {
		if err == nil || errors.Is(err, syscall.ENOENT) {
			continue
		}
		v.restore(context.WithoutCancel(ctx), p, h, i)
		return err
	}
	return nil
}

// restore makes directory p again on subvolume h, from its copy on
// subvolume from, and heals its layout.
func (v *Volume) restore(ctx context.Context, p string, h, from int) {
	log := v.log().With("path", p)
	log.Warn("distribute: a directory's copy could not be removed after the others; the directory stays", "subvolume", from)
	e, err := v.subs[from].Lookup(ctx, p)
	if err != nil {
		log.Error("distribute: cannot read the directory to restore it", "subvolume", from, "err", err)
		return
	}
	a := e.Attr
	if !isDir(a) {
		log.Error("distribute: the name is no directory on another subvolume; not restored", "subvolume", from, "mode", a.Mode)
		return
	}
	if _, err := v.subs[h].Mkdir(ctx, &fop.CreateReq{Path: p, Mode: a.Mode, UID: a.UID, GID: a.GID, GFID: a.GFID}); err != nil {
		log.Error("distribute: cannot restore the directory's hashed copy", "subvolume", h, "err", err)
		return
	}
	if _, err := v.layout(ctx, p); err != nil {
		log.Error("distribute: cannot heal the restored directory's layout", "err", err)
	}
}

// linkTo leaves a pointer entry for p on subvolume at, naming target.
func (v *Volume) linkTo(ctx context.Context, at, target int, p string, a fop.Attr) error {
	_, err := v.subs[at].Mknod(v.parentSub(ctx, at, p), &fop.CreateReq{Path: p, Mode: linkToMode, UID: a.UID, GID: a.GID, GFID: a.GFID,
		Xattrs: []fop.Xattr{{Name: LinkToXattr, Value: []byte(strconv.Itoa(target))}}})
	return err
}

func (v *Volume) Rename(ctx context.Context, from, to string, flags uint32) error {
	v.forgetRecent(from)
	v.forgetRecent(to)
	src, e, err := v.cached(ctx, from)
	if err != nil {
		return err
	}
	if isDir(e.Attr) {
		hf, err := v.hashed(ctx, from)
		if err != nil {
			return err
		}
		// A directory replaces only an empty one: refuse before any
		// subvolume renames.
		if flags&unixRenameExchange == 0 {
			if err := v.emptyEverywhere(ctx, to); err != nil {
				return err
			}
		}
		_, err = v.onAll(ctx, hf, func(_ int, sub fop.Volume) (fop.Attr, error) {
			return fop.Attr{}, sub.Rename(ctx, from, to, flags)
		})
		v.forget(from)
		v.forget(to)
		return err
	}
	oldHashed, err := v.hashed(ctx, from)
	if err != nil {
		return err
	}
	newHashed, err := v.hashed(ctx, to)
	if err != nil {
		return err
	}
	// A file already at the destination on another subvolume is replaced:
	// remove it there, with its pointer entries.
	if dst, de, err := v.cached(ctx, to); err == nil && dst != src && !isDir(de.Attr) {
		if flags&unixRenameNoreplace != 0 {
			return syscall.EEXIST
		}
		if err := v.subs[dst].Unlink(ctx, to); err != nil {
			return err
		}
	}
	if err := v.subs[src].Rename(ctx, from, to, flags); err != nil {
		return err
	}
	if oldHashed != src {
		_ = v.subs[oldHashed].Unlink(ctx, from)
	}
	if newHashed != src {
		_ = v.subs[newHashed].Unlink(ctx, to)
		return v.linkTo(ctx, newHashed, src, to, e.Attr)
	}
	return nil
}

// unixRenameNoreplace and unixRenameExchange are RENAME_NOREPLACE and
// RENAME_EXCHANGE.
const (
	unixRenameNoreplace = 1
	unixRenameExchange  = 2
)

func (v *Volume) Link(ctx context.Context, from, to string) (fop.Attr, error) {
	src, _, err := v.cached(ctx, from)
	if err != nil {
		return fop.Attr{}, err
	}
	a, err := v.subs[src].Link(v.parentSub(ctx, src, to), from, to)
	if err != nil {
		return a, err
	}
	if h, err := v.hashed(ctx, to); err == nil && h != src {
		_ = v.linkTo(ctx, h, src, to, a)
	}
	return a, nil
}

func (v *Volume) Readlink(ctx context.Context, p string) (string, error) {
	i, _, err := v.cached(ctx, p)
	if err != nil {
		return "", err
	}
	return v.subs[i].Readlink(ctx, p)
}

// Readdir lists the first subvolume's entries, then the others' files
// (directories exist everywhere, pointer entries are not files); an
// entry's Sub says which subvolume its cookie belongs to.
func (v *Volume) Readdir(ctx context.Context, p string, pos fop.Pos, max uint32) (fop.ReaddirReply, error) {
	var out fop.ReaddirReply
	i, inner := int(pos.Sub), pos.Cookie
	for ; i < len(v.subs); i, inner = i+1, 0 {
		for {
			r, err := v.subs[i].Readdir(ctx, p, fop.Pos{Cookie: inner}, max)
			if err != nil {
				if errors.Is(err, syscall.ENOENT) && i > 0 {
					break // not healed there yet: no files of ours there
				}
				return out, err
			}
			for _, e := range r.Entries {
				inner = e.Cookie
				if e.LinkTo != "" || (i > 0 && isDir(e.Attr)) {
					continue
				}
				e.Sub = uint32(i)
				out.Entries = append(out.Entries, e)
				if !isDir(e.Attr) {
					// The listing is the kernel's lookup of these names
					// (readdirplus): reads of their extended attributes
					// that follow go straight to this brick.
					v.remember(path.Join(p, e.Name), i)
				}
			}
			if len(out.Entries) > 0 {
				if r.EOF {
					// Resume at the next subvolume's start.
					last := &out.Entries[len(out.Entries)-1]
					if i+1 < len(v.subs) {
						last.Sub, last.Cookie = uint32(i+1), 0
					} else {
						out.EOF = true
					}
				}
				return out, nil
			}
			if r.EOF || len(r.Entries) == 0 {
				break
			}
		}
	}
	out.EOF = true
	return out, nil
}

func (v *Volume) Getxattr(ctx context.Context, p, name string) ([]byte, error) {
	return onData(ctx, v, p, func(sub fop.Volume) ([]byte, error) { return sub.Getxattr(ctx, p, name) })
}

func (v *Volume) Setxattr(ctx context.Context, p, name string, value []byte, flags uint32) error {
	i, e, err := v.cached(ctx, p)
	if err != nil {
		return err
	}
	if !isDir(e.Attr) {
		return v.subs[i].Setxattr(ctx, p, name, value, flags)
	}
	_, err = v.onAll(ctx, i, func(_ int, sub fop.Volume) (fop.Attr, error) {
		return fop.Attr{}, sub.Setxattr(ctx, p, name, value, flags)
	})
	return err
}

func (v *Volume) Listxattr(ctx context.Context, p string) ([]byte, error) {
	return onData(ctx, v, p, func(sub fop.Volume) ([]byte, error) { return sub.Listxattr(ctx, p) })
}

func (v *Volume) Removexattr(ctx context.Context, p, name string) error {
	i, e, err := v.cached(ctx, p)
	if err != nil {
		return err
	}
	if !isDir(e.Attr) {
		return v.subs[i].Removexattr(ctx, p, name)
	}
	_, err = v.onAll(ctx, i, func(_ int, sub fop.Volume) (fop.Attr, error) {
		return fop.Attr{}, sub.Removexattr(ctx, p, name)
	})
	return err
}

// Statfs adds up the subvolumes' space.
func (v *Volume) Statfs(ctx context.Context) (fop.Statfs, error) {
	var out fop.Statfs
	for _, sub := range v.subs {
		s, err := sub.Statfs(ctx)
		if err != nil {
			return out, err
		}
		if out.Bsize == 0 {
			out.Bsize, out.NameLen = s.Bsize, s.NameLen
		}
		scale := func(n uint64) uint64 {
			if out.Bsize == 0 || s.Bsize == out.Bsize {
				return n
			}
			return n * uint64(s.Bsize) / uint64(out.Bsize)
		}
		out.Blocks += scale(s.Blocks)
		out.Bfree += scale(s.Bfree)
		out.Bavail += scale(s.Bavail)
		out.Files += s.Files
		out.Ffree += s.Ffree
	}
	return out, nil
}

var _ fop.LocalReader = (*Volume)(nil)

// ReadLocal passes the read to the subvolume that holds the file
// (fop.LocalReader).
func (v *Volume) ReadLocal(ctx context.Context, h uint64, buf []byte, off int64) (int, bool) {
	sv, sh, err := v.sub(h)
	if err != nil {
		return 0, false
	}
	lr, ok := sv.(fop.LocalReader)
	if !ok {
		return 0, false
	}
	return lr.ReadLocal(ctx, sh, buf, off)
}

var _ fop.LocalFDReader = (*Volume)(nil)

// LocalReadFD is the subvolume's that holds the file
// (fop.LocalFDReader).
func (v *Volume) LocalReadFD(ctx context.Context, h uint64, off int64, size int) (int, bool) {
	sv, sh, err := v.sub(h)
	if err != nil {
		return -1, false
	}
	lr, ok := sv.(fop.LocalFDReader)
	if !ok {
		return -1, false
	}
	return lr.LocalReadFD(ctx, sh, off, size)
}

var _ fop.Passthrougher = (*Volume)(nil)

// PassthroughFD is the subvolume's that opened h, when it can
// (fop.Passthrougher).
func (v *Volume) PassthroughFD(ctx context.Context, h uint64) (int, fop.GFID, bool) {
	sv, sh, err := v.sub(h)
	if err != nil {
		return -1, fop.GFID{}, false
	}
	pt, ok := sv.(fop.Passthrougher)
	if !ok {
		return -1, fop.GFID{}, false
	}
	return pt.PassthroughFD(ctx, sh)
}

// PassthroughWrote goes to the subvolume that opened h.
func (v *Volume) PassthroughWrote(ctx context.Context, h uint64, gfid fop.GFID, wait bool) error {
	if sv, sh, err := v.sub(h); err == nil {
		if pt, ok := sv.(fop.Passthrougher); ok {
			return pt.PassthroughWrote(ctx, sh, gfid, wait)
		}
	}
	return nil
}

var _ fop.Settler = (*Volume)(nil)

// Settle goes to the subvolume that opened h (fop.Settler).
func (v *Volume) Settle(ctx context.Context, h uint64) (fop.Attr, bool, error) {
	sv, sh, err := v.sub(h)
	if err != nil {
		return fop.Attr{}, false, nil
	}
	if s, ok := sv.(fop.Settler); ok {
		return s.Settle(ctx, sh)
	}
	if b, ok := sv.(fop.Barrierer); ok {
		return fop.Attr{}, false, b.Barrier(ctx, sh)
	}
	return fop.Attr{}, false, nil
}

var _ fop.Barrierer = (*Volume)(nil)

// Barrier goes to the subvolume that opened h (fop.Barrierer).
func (v *Volume) Barrier(ctx context.Context, h uint64) error {
	sv, sh, err := v.sub(h)
	if err != nil {
		return err
	}
	if b, ok := sv.(fop.Barrierer); ok {
		return b.Barrier(ctx, sh)
	}
	return nil
}
