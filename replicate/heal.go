package replicate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/cais-platform/cais/distribute"
	"github.com/cais-platform/cais/fop"
)

// Errors of Heal.
var (
	// ErrBusy: a writer has the file open; the heal waits for it to close.
	ErrBusy = errors.New("file is being written; healed once its writers close it")
	// ErrSplitBrain: no copy is free of blame.
	ErrSplitBrain = errors.New("split-brain: every copy is blamed by another; resolve with 'cais volume heal VOLUME split-brain'")
	// ErrBrickDown: a brick the file must be healed to is down.
	ErrBrickDown = errors.New("a brick that missed changes is down")
)

// Result says what a heal did.
type Result struct {
	Healed  []Kind // kinds healed
	Created int    // names created on sinks by entry heal
	Removed int    // names removed from sinks by entry heal
	Bytes   int64  // bytes copied by data heal
}

// healChunk is the copy unit of a data heal.
const healChunk = 1 << 20

// healOpts tune a heal.
type healOpts struct {
	// force makes brick force the source of every kind whatever the
	// changelogs say (split-brain resolution); -1 lets Decide choose.
	force int
	// noRecurse: an entry heal does not go on into the names it made.
	noRecurse bool
}

// Heal brings every brick of the set that is up in line with the good
// copy of p: its names (directories), metadata and data (files). It
// returns ErrBusy when writers hold the file, ErrSplitBrain when no copy
// can be chosen, ErrBrickDown when a blamed brick is down.
func (v *Volume) Heal(ctx context.Context, p string) (Result, error) {
	return v.heal(ctx, p, healOpts{force: -1})
}

// HealFrom resolves a split-brain of p by taking brick src as the good
// copy of everything.
func (v *Volume) HealFrom(ctx context.Context, p string, src int) (Result, error) {
	if src < 0 || src >= len(v.kids) {
		return Result{}, fmt.Errorf("no brick %d in the set", src)
	}
	return v.heal(ctx, p, healOpts{force: src})
}

// Split reports whether p is in split-brain for data or metadata (or, for
// a directory, entries), and the bricks' states.
func (v *Volume) Split(ctx context.Context, p string) (bool, []State, error) {
	states, _, err := v.states(ctx, p)
	if err != nil {
		return false, nil, err
	}
	for _, k := range []Kind{Data, Metadata, Entry} {
		if Decide(states, k).SplitBrain {
			return true, states, nil
		}
	}
	return false, states, nil
}

func (v *Volume) heal(ctx context.Context, p string, o healOpts) (Result, error) {
	var res Result
	states, _, err := v.states(ctx, p)
	if err != nil {
		return res, err
	}
	first := -1
	for i, s := range states {
		if s.Exists {
			first = i
			break
		}
	}
	if first < 0 {
		return res, nil // gone everywhere: its parent's entry heal saw to it
	}
	if p != "" && missingSomewhere(states) && !states[first].Attr.GFID.IsZero() {
		// A brick that is up lacks the name. Its directory's entry heal
		// decides when the directory blames a brick; when it blames none
		// (a create cut short on some bricks), the name is made where it
		// is missing, never removed where it is.
		pr, err := v.heal(ctx, parent(p), healOpts{force: -1, noRecurse: true})
		res.Created += pr.Created
		if err != nil && !errors.Is(err, ErrBusy) {
			return res, err
		}
		if states, _, err = v.states(ctx, p); err != nil {
			return res, err
		}
		if missingSomewhere(states) && !Decide(v.parentStates(ctx, p), Entry).Needed() {
			src := v.kids[first].b
			for i, st := range states {
				if st.Up && !st.Exists {
					if err := v.recreate(ctx, src, v.kids[i].b, p, states[first].Attr, v.kids[i].arbiter); err != nil && !errors.Is(err, syscall.EEXIST) {
						return res, fmt.Errorf("create %q on brick %d: %w", p, i, err)
					}
					res.Created++
				}
			}
			if states, _, err = v.states(ctx, p); err != nil {
				return res, err
			}
		}
	}
	isDir := isDirMode(states[first].Attr.Mode)
	kinds := []Kind{Metadata, Data}
	if isDir {
		kinds = []Kind{Entry, Metadata}
	}
	var blocked error
	for _, k := range kinds {
		if k == Data && states[first].Attr.Mode&syscall.S_IFMT != syscall.S_IFREG {
			continue
		}
		d := v.decide(states, k, o)
		if d.Blocked {
			blocked = ErrBrickDown
		}
		if d.SplitBrain {
			return res, fmt.Errorf("%s %s: %w", k, p, ErrSplitBrain)
		}
		if !d.Needed() {
			continue
		}
		switch k {
		case Entry:
			err = v.healEntry(ctx, p, states, d, &res, o)
		case Metadata:
			err = v.healMetadata(ctx, p, o)
		case Data:
			err = v.healData(ctx, p, &res, o)
		}
		if errors.Is(err, errNotNeeded) {
			continue // healed meanwhile, by another client or daemon
		}
		if err != nil {
			return res, fmt.Errorf("%s heal of %q: %w", k, p, err)
		}
		res.Healed = append(res.Healed, k)
		if states, _, err = v.states(ctx, p); err != nil {
			return res, err
		}
	}
	return res, blocked
}

func (v *Volume) decide(states []State, k Kind, o healOpts) Decision {
	if o.force < 0 {
		return Decide(states, k)
	}
	var d Decision
	if !states[o.force].Exists || !states[o.force].Up {
		d.SplitBrain = true
		return d
	}
	d.Sources = []int{o.force}
	for i, s := range states {
		if i != o.force && s.Up && s.Exists {
			d.Sinks = append(d.Sinks, i)
		}
	}
	d.Dirty = true
	return d
}

// errNotNeeded says a heal found, under its lock, nothing left to heal:
// another heal did it between the look and the lock.
var errNotNeeded = errors.New("nothing to heal")

// reset subtracts from each brick's changelog of kind k what the states
// showed: the sources' blame of the sinks and everyone's dirty count; the
// sinks' own counters (a sink's blame of others is void once healed).
func (v *Volume) reset(ctx context.Context, p string, k Kind, states []State, d Decision) error {
	n := len(v.kids)
	involved := append(append([]int(nil), d.Sources...), d.Sinks...)
	sink := make([]bool, n)
	for _, j := range d.Sinks {
		sink[j] = true
	}
	errs := v.fanout(involved, func(i int, b Brick) error {
		del := delta(n)
		cl := states[i].Changelog
		del[int(k)] = -cl.Dirty(k)
		for j := range n {
			if sink[i] || sink[j] {
				del[3*(1+j)+int(k)] = -cl.Pending(j, k)
			}
		}
		_, err := b.Xattrop(ctx, &fop.XattropReq{Path: p, Delta: del})
		return err
	})
	_, err := v.outcome(involved, errs)
	for _, i := range involved {
		if errs[i] != nil {
			return errs[i]
		}
	}
	return err
}

// lockAndDecide takes the heal's exclusive lock on every brick that is up
// (not only those the first decision involved: the decision is made
// again under the lock, and may name others) and decides kind k again
// under it: a writer, or a metadata change (metaLock), half done when the
// heal looked has finished by now. unlock is nil when there is nothing
// to heal; the lock is then dropped already.
func (v *Volume) lockAndDecide(ctx context.Context, p string, k Kind, o healOpts) (unlock func(), states []State, d Decision, err error) {
	domain := fop.DomainData
	if k == Metadata {
		domain = fop.DomainMetadata
	}
	unlock, err = v.lockAll(ctx, p, v.upSet(), domain)
	if err != nil {
		return nil, nil, d, err
	}
	if states, _, err = v.states(ctx, p); err != nil {
		unlock()
		return nil, nil, d, err
	}
	d = v.decide(states, k, o)
	if d.SplitBrain {
		unlock()
		return nil, nil, d, ErrSplitBrain
	}
	if !d.Needed() {
		unlock()
		return nil, nil, d, errNotNeeded
	}
	if len(d.Sources) == 0 {
		// Needed, but no copy to heal from (the only usable copy an
		// arbiter's, say): nothing to do until a data copy is back.
		unlock()
		return nil, nil, d, ErrBrickDown
	}
	return unlock, states, d, nil
}

func (v *Volume) healMetadata(ctx context.Context, p string, o healOpts) error {
	unlock, states, d, err := v.lockAndDecide(ctx, p, Metadata, o)
	if unlock == nil {
		return err
	}
	defer unlock()
	src := d.Sources[0]
	a := states[src].Attr
	b := v.kids[src].b
	// Extended attributes of the source, as a client sees them.
	names, err := b.Listxattr(ctx, p)
	if err != nil {
		return err
	}
	want := map[string][]byte{}
	for _, name := range bytes.Split(bytes.TrimRight(names, "\x00"), []byte{0}) {
		if len(name) == 0 {
			continue
		}
		val, err := b.Getxattr(ctx, p, string(name))
		if err != nil {
			continue
		}
		want[string(name)] = val
	}
	isLink := a.Mode&syscall.S_IFMT == syscall.S_IFLNK
	for _, j := range d.Sinks {
		s := v.kids[j].b
		req := &fop.SetattrReq{Path: p, Valid: fop.SetUID | fop.SetGID | fop.SetAtime | fop.SetMtime, UID: a.UID, GID: a.GID, Atime: a.Atime, Mtime: a.Mtime}
		if !isLink {
			req.Valid |= fop.SetMode
			req.Mode = a.Mode & 0o7777
		}
		if _, err := s.Setattr(ctx, req); err != nil {
			return err
		}
		if isLink {
			continue
		}
		have, err := s.Listxattr(ctx, p)
		if err != nil {
			return err
		}
		for _, name := range bytes.Split(bytes.TrimRight(have, "\x00"), []byte{0}) {
			if _, keep := want[string(name)]; len(name) > 0 && !keep {
				if err := s.Removexattr(ctx, p, string(name)); err != nil && !errors.Is(err, syscall.ENODATA) {
					return err
				}
			}
		}
		for name, val := range want {
			if err := s.Setxattr(ctx, p, name, val, 0); err != nil {
				return err
			}
		}
	}
	return v.reset(ctx, p, Metadata, states, d)
}

// lockAll takes the heal's exclusive lock of a domain on the bricks in
// idx; ErrBusy when a change holds one (a writer, for the data domain: a
// file open for writing heals its data once closed; a metadata change
// in progress, for the metadata domain).
func (v *Volume) lockAll(ctx context.Context, p string, idx []int, domain uint8) (func(), error) {
	var held []int
	unlock := func() {
		c := context.WithoutCancel(ctx)
		v.fanout(held, func(_ int, b Brick) error {
			return b.Inodelk(c, &fop.InodelkReq{Path: p, Mode: fop.Unlock, Which: fop.LockExclusive, Domain: domain})
		})
	}
	for _, i := range idx {
		err := v.kids[i].b.Inodelk(ctx, &fop.InodelkReq{Path: p, Mode: fop.LockExclusive, Domain: domain})
		if err != nil {
			unlock()
			if errors.Is(err, syscall.EAGAIN) {
				return nil, ErrBusy
			}
			return nil, err
		}
		held = append(held, i)
	}
	return unlock, nil
}

func (v *Volume) healData(ctx context.Context, p string, res *Result, o healOpts) error {
	unlock, states, d, err := v.lockAndDecide(ctx, p, Data, o)
	if unlock == nil {
		return err
	}
	defer unlock()
	src := d.Sources[0]
	size := int64(states[src].Attr.Size)
	sb := v.kids[src].b
	sr, err := sb.Open(ctx, p, syscall.O_RDONLY)
	if err != nil {
		return err
	}
	defer sb.Release(context.WithoutCancel(ctx), sr.Handle)
	type sinkFile struct {
		b Brick
		h uint64
	}
	var sinks []sinkFile
	defer func() {
		for _, s := range sinks {
			_ = s.b.Release(context.WithoutCancel(ctx), s.h)
		}
	}()
	for _, j := range d.Sinks {
		b := v.kids[j].b
		if v.kids[j].arbiter {
			continue // an arbiter holds no data
		}
		// Truncated to nothing first, so holes of the source stay holes.
		r, err := b.Open(ctx, p, syscall.O_WRONLY|syscall.O_TRUNC)
		if err != nil {
			return err
		}
		sinks = append(sinks, sinkFile{b, r.Handle})
	}
	for off := int64(0); off < size && len(sinks) > 0; off += healChunk {
		data, err := sb.Read(ctx, sr.Handle, off, healChunk)
		if err != nil {
			return err
		}
		if len(data) == 0 {
			break
		}
		if isZero(data) {
			continue
		}
		for _, s := range sinks {
			if _, err := s.b.Write(ctx, s.h, off, data); err != nil {
				return err
			}
		}
		res.Bytes += int64(len(data))
	}
	a := states[src].Attr
	for _, j := range d.Sinks {
		if v.kids[j].arbiter {
			continue
		}
		if _, err := v.kids[j].b.Setattr(ctx, &fop.SetattrReq{Path: p, Valid: fop.SetSize | fop.SetAtime | fop.SetMtime,
			Size: uint64(size), Atime: a.Atime, Mtime: a.Mtime}); err != nil {
			return err
		}
	}
	for _, s := range sinks {
		if err := s.b.Fsync(ctx, s.h, true); err != nil {
			return err
		}
	}
	return v.reset(ctx, p, Data, states, d)
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// listAll reads a whole directory from one brick.
func listAll(ctx context.Context, b Brick, p string) (map[string]fop.Dirent, error) {
	out := map[string]fop.Dirent{}
	var pos fop.Pos
	for {
		r, err := b.Readdir(ctx, p, pos, 512)
		if err != nil {
			return nil, err
		}
		for _, e := range r.Entries {
			pos.Cookie = e.Cookie
			out[e.Name] = e
		}
		if r.EOF || len(r.Entries) == 0 {
			return out, nil
		}
	}
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// healEntry makes the sinks' names of directory p those of the source:
// names they lack are created (directories healed in turn, files healed
// for data), and, when the source blames them, names only they have are
// removed. With no blame (a change interrupted on every brick), names are
// only added, never removed.
func (v *Volume) healEntry(ctx context.Context, p string, states []State, d Decision, res *Result, o healOpts) error {
	if len(d.Sources) == 0 {
		return ErrBrickDown // no copy to heal from
	}
	src := d.Sources[0]
	sb := v.kids[src].b
	want, err := listAll(ctx, sb, p)
	if err != nil {
		return err
	}
	authoritative := !d.Dirty || o.force >= 0
	var recurse []string
	for _, j := range d.Sinks {
		b := v.kids[j].b
		have, err := listAll(ctx, b, p)
		if err != nil {
			return err
		}
		for name, e := range want {
			h, ok := have[name]
			if ok && h.Attr.GFID == e.Attr.GFID {
				continue
			}
			if e.Attr.GFID.IsZero() || (ok && h.Attr.GFID.IsZero()) {
				continue // being made right now: the next crawl sees it whole
			}
			cp := join(p, name)
			if ok {
				if !authoritative {
					continue // a different file under the name: left for an administrator
				}
				if err := removeAll(ctx, b, cp, isDirMode(h.Attr.Mode)); err != nil {
					return err
				}
				res.Removed++
			}
			if err := v.recreate(ctx, sb, b, cp, e.Attr, v.kids[j].arbiter); err != nil {
				return fmt.Errorf("create %q on brick %d: %w", cp, j, err)
			}
			res.Created++
			recurse = append(recurse, cp)
		}
		if authoritative {
			for name, h := range have {
				if _, ok := want[name]; ok || h.Attr.GFID.IsZero() {
					continue
				}
				if err := removeAll(ctx, b, join(p, name), isDirMode(h.Attr.Mode)); err != nil {
					return err
				}
				res.Removed++
			}
		}
	}
	if err := v.reset(ctx, p, Entry, states, d); err != nil {
		return err
	}
	if o.noRecurse {
		return nil
	}
	for _, cp := range recurse {
		if _, err := v.heal(ctx, cp, o); err != nil && !errors.Is(err, ErrBusy) {
			return err
		}
	}
	return nil
}

// missingSomewhere reports a name some bricks that are up have and some
// lack.
func missingSomewhere(states []State) bool {
	has, lacks := false, false
	for _, s := range states {
		switch {
		case s.Up && s.Exists:
			has = true
		case s.Up:
			lacks = true
		}
	}
	return has && lacks
}

// parentStates are the bricks' states of p's directory.
func (v *Volume) parentStates(ctx context.Context, p string) []State {
	states, _, _ := v.states(ctx, parent(p))
	return states
}

// recreate makes on sink the entry the source has at p, with its identity,
// and blames the sink on the source so the data and metadata heals that
// follow copy the rest.
func (v *Volume) recreate(ctx context.Context, src, sink Brick, p string, a fop.Attr, arbiter bool) error {
	req := &fop.CreateReq{Path: p, Mode: a.Mode, UID: a.UID, GID: a.GID, GFID: a.GFID, Rdev: a.Rdev}
	for _, name := range []string{distribute.LayoutXattr, distribute.LinkToXattr} {
		if val, err := src.Getxattr(ctx, p, name); err == nil {
			req.Xattrs = append(req.Xattrs, fop.Xattr{Name: name, Value: val})
		}
	}
	var err error
	switch a.Mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		_, err = sink.Mkdir(ctx, req)
	case syscall.S_IFLNK:
		if req.Target, err = src.Readlink(ctx, p); err == nil {
			_, err = sink.Symlink(ctx, req)
		}
	case syscall.S_IFREG:
		req.Mode = a.Mode
		_, err = sink.Mknod(ctx, req)
	default:
		_, err = sink.Mknod(ctx, req)
	}
	if err != nil {
		return err
	}
	if a.Mode&syscall.S_IFMT == syscall.S_IFREG && a.Size > 0 && !arbiter {
		idx := v.indexOf(sink)
		_, err = src.Xattrop(ctx, &fop.XattropReq{Path: p, Delta: PendingDelta(len(v.kids), Data, 1, []int{idx})})
	}
	return err
}

func (v *Volume) indexOf(b Brick) int {
	for i, c := range v.kids {
		if c.b == b {
			return i
		}
	}
	return -1
}

// removeAll removes p from one brick, a directory with its contents.
func removeAll(ctx context.Context, b Brick, p string, dir bool) error {
	if !dir {
		err := b.Unlink(ctx, p)
		if errors.Is(err, syscall.ENOENT) {
			return nil
		}
		return err
	}
	ents, err := listAll(ctx, b, p)
	if err != nil {
		return err
	}
	for name, e := range ents {
		if err := removeAll(ctx, b, join(p, name), isDirMode(e.Attr.Mode)); err != nil {
			return err
		}
	}
	err = b.Rmdir(ctx, p)
	if errors.Is(err, syscall.ENOENT) {
		return nil
	}
	return err
}

// Pending lists the files the bricks' indexes name, by GFID with their
// last known path, and which bricks name them.
func (v *Volume) Pending(ctx context.Context) (map[fop.GFID]string, [][]fop.IndexEntry, error) {
	all := map[fop.GFID]string{}
	per := make([][]fop.IndexEntry, len(v.kids))
	up := v.upSet()
	errs := v.fanout(up, func(i int, b Brick) error {
		var err error
		per[i], err = b.Index(ctx)
		return err
	})
	for _, i := range up {
		if errs[i] == nil {
			for _, e := range per[i] {
				all[e.GFID] = e.Path
			}
		}
	}
	if len(up) == 0 {
		return nil, nil, syscall.ENOTCONN
	}
	return all, per, nil
}

// HealTree heals p and everything under it, comparing the bricks' copies
// even where no changelog says they differ (a full heal): names a brick
// lacks are created there from a brick that has them (never removed), and
// files whose copies differ in size or modification time with no brick
// blamed are marked dirty, so the heal takes the biggest copy. visit is
// called for every path healed or failed.
func (v *Volume) HealTree(ctx context.Context, p string, visit func(p string, r Result, err error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	states, _, err := v.states(ctx, p)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return nil
		}
		return err
	}
	var usable []int
	for i, s := range states {
		if s.Up && s.Exists {
			usable = append(usable, i)
		}
	}
	if len(usable) == 0 {
		return nil
	}
	a := states[usable[0]].Attr
	if !isDirMode(a.Mode) {
		if a.Mode&syscall.S_IFMT == syscall.S_IFREG && !Decide(states, Data).Needed() && differ(states, usable) {
			v.fanout(usable, func(_ int, b Brick) error {
				_, err := b.Xattrop(ctx, &fop.XattropReq{Path: p, Delta: DirtyDelta(len(v.kids), Data, 1)})
				return err
			})
		}
		r, err := v.Heal(ctx, p)
		if len(r.Healed) > 0 || err != nil {
			visit(p, r, err)
		}
		return nil
	}
	r, err := v.Heal(ctx, p)
	if len(r.Healed) > 0 || err != nil {
		visit(p, r, err)
	}
	// Merge the bricks' listings: a name one brick has and another lacks
	// is created where it lacks.
	lists := map[int]map[string]fop.Dirent{}
	union := map[string]int{} // name -> a brick that has it
	for _, i := range usable {
		l, err := listAll(ctx, v.kids[i].b, p)
		if err != nil {
			return err
		}
		lists[i] = l
		for name := range l {
			if _, ok := union[name]; !ok {
				union[name] = i
			}
		}
	}
	for name, from := range union {
		cp := join(p, name)
		e := lists[from][name]
		if e.Attr.GFID.IsZero() {
			continue
		}
		created := false
		for _, i := range usable {
			if _, ok := lists[i][name]; ok {
				continue
			}
			if err := v.recreate(ctx, v.kids[from].b, v.kids[i].b, cp, e.Attr, v.kids[i].arbiter); err != nil {
				visit(cp, Result{}, err)
				continue
			}
			created = true
		}
		if created {
			visit(cp, Result{Healed: []Kind{Entry}, Created: 1}, nil)
		}
		if err := v.HealTree(ctx, cp, visit); err != nil {
			return err
		}
	}
	return nil
}

// differ reports whether the data copies of a file differ in size or
// modification time.
func differ(states []State, usable []int) bool {
	var first *fop.Attr
	for _, i := range usable {
		if states[i].Arbiter {
			continue
		}
		a := &states[i].Attr
		if first == nil {
			first = a
			continue
		}
		if a.Size != first.Size || a.Mtime != first.Mtime {
			return true
		}
	}
	return false
}
