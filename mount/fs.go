// Package mount presents a cais volume (any fop.Volume: a distribute layer
// over bricks, say) as a FUSE file system, through hanwen/go-fuse.
//
// Each FUSE node knows its path in the volume; go-fuse keeps the tree
// current across renames. Inode numbers come from the files' GFIDs, so
// hard links share one and every mount of a volume agrees on them.
//
// A node whose every name is gone (a file unlinked while open) has no
// path: calls on it go through one of its open handles, or fail with
// ESTALE, and never fall back to the empty path, which is the root's.
//
// The kernel interrupts a request when the calling thread gets any
// signal, including the SIGURG the Go runtime sends itself all the time.
// Operations are not cancelled by such interrupts: an interrupted call
// that already reached a brick may well have done its work there, and
// answering EINTR would make the caller believe otherwise (and fail in
// programs that do not retry on EINTR). A fatal signal still ends the
// waiting process; only the wait for a lock (Setlkw) is interruptible.
package mount

import (
	"bytes"
	"context"
	"errors"
	"path"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/cais-platform/cais/fop"
)

// node is one file, directory or other inode of the volume.
type node struct {
	fs.Inode
	vol   fop.Volume
	cache *Cache // nil when the mount takes no upcalls
	opts  *Options

	mu    sync.Mutex
	files map[*file]struct{} // open handles, by Create and Open

	locked atomic.Bool // a lock was ever taken on the file (locks.go)

	// size is the file's size in the attributes last seen (a lookup's,
	// a getattr's): big files are opened for reading in passthrough
	// (passthrough.go).
	size atomic.Uint64

	// priv is what the mount knows of the file's set-ID bits: privNone,
	// privSome or privUnknown (killpriv.go).
	priv atomic.Uint32

	last fop.Attr // the attributes last seen, guarded by mu

	// noXattr holds the extended attributes the bricks said the file
	// does not have (ENODATA), kept while the mount takes upcalls; ls -l
	// asks for two of them on every entry. Guarded by mu.
	noXattr map[string]struct{}

	// A directory this mount made knows every name in it while no other
	// client changed any directory (cache.go, listing): completeGen is
	// the Cache's generation it holds for, 0 for none; names are those
	// this mount made in it. Guarded by mu.
	completeGen uint64
	names       map[string]struct{}

	// inv counts what changed the file's attributes, or may have, that
	// fresh cannot account for: this mount's writes and attribute, name
	// and extended attribute changes, and other clients' changes
	// (upcalls). fresh holds the attributes a close learned from the
	// bricks' write replies (fop.AttrFlusher), good while inv is still
	// freshInv: the kernel's getattr after a close is answered with them,
	// without a round trip. Guarded by mu.
	inv      uint64
	fresh    fop.Attr
	freshInv uint64 // 0: no fresh attributes

	// baseInv is inv when last was read from the bricks (or learned),
	// if baseOK: a directory's entry call takes last, while inv is still
	// baseInv, as the directory's attributes before the call, and learns
	// from the bricks' reports (fop.ParentAttrs) the attributes it has
	// after, for the getattr the kernel sends next. Guarded by mu.
	baseInv uint64
	baseOK  bool

	// pt is set while the node's files are passed through to the kernel
	// (passthrough.go), until its last file closes. ptMaybe: go-fuse may
	// hold a backing file of the node, which it passes the node's opens
	// through on without asking (set when PassthroughFd hands go-fuse a
	// descriptor, cleared when go-fuse asks again). Guarded by mu.
	pt      *ptFile
	ptMaybe bool
}

// changed records a change of the file's attributes that fresh does not
// hold, and returns the new count.
func (n *node) changed() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.inv++
	n.freshInv = 0
	return n.inv
}

// openDeferred makes on the bricks the deferred opens of the node named
// name in directory n, before this mount removes or replaces the name:
// a file open for reading stays readable once its last name is gone, as
// on a local file system (the bricks keep what they hold open).
func (n *node) openDeferred(ctx context.Context, name string) {
	c := n.GetChild(name)
	if c == nil {
		return
	}
	cn, ok := c.Operations().(*node)
	if !ok {
		return
	}
	cn.mu.Lock()
	var open []*file
	for f := range cn.files {
		open = append(open, f)
	}
	cn.mu.Unlock()
	for _, f := range open {
		f.handle(ctx)
	}
}

// changedIn records a change of the node named name in directory n (a
// link, unlink or rename changes its link count or change time).
func (n *node) changedIn(name string) {
	if c := n.GetChild(name); c != nil {
		if cn, ok := c.Operations().(*node); ok {
			cn.changed()
		}
	}
}

// closedWith keeps a, the file's attributes after a close's flush, when
// nothing changed the file since the handle's last write (inv, 0 when it
// wrote nothing: not kept), and drops the kernel's in any case: the close
// may have changed them after the kernel last asked (a replicated file's
// changelog update at the close changes its change time), or the kernel
// holds them from before the writes (a create's, an fstat's).
func (n *node) closedWith(a fop.Attr, inv uint64) {
	if inv != 0 {
		n.learned(a, inv, 1) // the handle is still open
	}
	n.EmbeddedInode().NotifyContent(-1, 0) // the attributes only
}

// learned keeps a, the file's attributes after this mount's last write,
// when nothing changed the file since (inv is what changed returned for
// that write), learned by a handle's flush (open 1: the handle is still
// open) or its release (open 0).
func (n *node) learned(a fop.Attr, inv uint64, open int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	// With another handle open, its writes may still be on their way.
	if n.inv == inv && n.cache != nil && len(n.files) == open {
		n.size.Store(a.Size)
		n.fresh, n.freshInv = a, inv+1 // never 0
		n.inv++                        // freshInv names this state
	}
}

// freshAttr returns the attributes learned at the last close, if nothing
// changed the file since.
func (n *node) freshAttr() (fop.Attr, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.freshInv == 0 || n.freshInv != n.inv {
		return fop.Attr{}, false
	}
	return n.fresh, true
}

// rememberAt keeps a, read from the bricks by a call that began when the
// change count was inv: as the attributes last seen (for fstat of a
// directory that is gone), and to build on when nothing changed since.
func (n *node) rememberAt(a *fop.Attr, inv uint64) {
	n.size.Store(a.Size)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.last = *a
	if n.inv == inv {
		n.baseInv, n.baseOK = inv, true
	}
}

// changeCount returns the change count (node.changed).
func (n *node) changeCount() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.inv
}

// entryCall is an entry call in directory n: begin before it, end after.
type entryCall struct {
	n    *node
	ctx  context.Context
	pa   *fop.ParentAttrs
	base fop.Attr
	inv  uint64
	ok   bool
}

// beginEntry records that an entry call in directory n starts (the
// directory's attributes change) and returns the context to make it
// with, which gathers the bricks' reports of the directory's attributes
// after it.
func (n *node) beginEntry(ctx context.Context) *entryCall {
	c := &entryCall{n: n, ctx: ctx}
	n.mu.Lock()
	c.ok = n.cache != nil && n.opts.final&fop.FinalEntries != 0 && n.baseOK && n.baseInv == n.inv
	c.base = n.last
	n.inv++
	n.freshInv = 0
	c.inv = n.inv
	n.mu.Unlock()
	if c.ok {
		c.ctx, c.pa = fop.WithParentAttrs(ctx)
	}
	return c
}

// end learns the directory's attributes after a successful call, when
// nothing else changed it meanwhile (another entry call of this mount,
// an upcall).
func (c *entryCall) end(err error) {
	if !c.ok || err != nil {
		return
	}
	a, ok := c.pa.Merge(c.base)
	if !ok {
		return
	}
	n := c.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.inv != c.inv {
		return
	}
	n.inv++
	n.last, n.baseInv, n.baseOK = a, n.inv, true
	n.fresh, n.freshInv = a, n.inv
}

// Options are a mount's choices (mount -o).
type Options struct {
	// ACL passes POSIX ACLs (system.posix_acl_access and _default) to the
	// bricks, as GlusterFS's acl mount option: setfacl and getfacl work.
	// The kernel checks permissions against the mode bits only. Without
	// it, as on a GlusterFS mount without acl, they are not supported
	// (EOPNOTSUPP), and ls -l stops asking for them after one file.
	ACL bool
	// SELinux passes security.selinux labels to the bricks, as
	// GlusterFS's selinux mount option; without it they are not
	// supported.
	SELinux bool

	// KillPriv makes the mount clear set-user-ID and set-group-ID bits on
	// writes and truncations by callers without CAP_FSETID itself
	// (killpriv.go), so that the kernel need not ask for
	// security.capability before every write: mount with HandleKillPriv
	// in fuse.MountOptions.ExtraCapabilities. It needs upcalls, which
	// tell the mount of other clients' changes of a file's mode.
	KillPriv bool

	// Passthrough hands the kernel the files opened for writing whose
	// only copy is on a brick of this machine, to read and write them
	// itself (passthrough.go). It needs a kernel with FUSE passthrough
	// (6.9 and later) and root; without, files take the mount's path.
	Passthrough bool

	// ReleaseRead, when set, takes back the data a read of the volume
	// returned once the kernel has it (volgraph.Graph.Buffers' Put).
	ReleaseRead func([]byte)

	// final is set by Root: which of the volume's replies carry final
	// attributes (fop.FinalAttrs).
	final fop.Final

	// ptOff is set by Root, and then once go-fuse passes no file through
	// any more (passthrough.go): opens stop taking the bricks'
	// descriptors.
	ptOff *atomic.Bool
}

// passthroughOff reports whether go-fuse passes no file through any more.
func (o *Options) passthroughOff() bool { return o.ptOff != nil && o.ptOff.Load() }

// stopPassthrough records that go-fuse passes no file through any more.
func (o *Options) stopPassthrough() {
	if o.ptOff != nil {
		o.ptOff.Store(true)
	}
}

// unsupported answers EOPNOTSUPP for an extended attribute the options
// leave out.
func (o *Options) unsupported(name string) bool {
	switch name {
	case "system.posix_acl_access", "system.posix_acl_default":
		return !o.ACL
	case "security.selinux":
		return !o.SELinux
	}
	return false
}

// filterList drops from a listxattr answer (NUL-terminated names) the
// names the options leave out.
func (o *Options) filterList(v []byte) []byte {
	out := v[:0:0]
	for len(v) > 0 {
		i := bytes.IndexByte(v, 0)
		if i < 0 {
			return append(out, v...) // unterminated: as it came
		}
		if !o.unsupported(string(v[:i])) {
			out = append(out, v[:i+1]...)
		}
		v = v[i+1:]
	}
	return out
}

// Root returns the root node of a volume's file system.
func Root(vol fop.Volume, o Options) fs.InodeEmbedder {
	o.ptOff = new(atomic.Bool)
	return &node{vol: vol, opts: &o}
}

var (
	_ fs.NodeLookuper       = (*node)(nil)
	_ fs.NodeGetattrer      = (*node)(nil)
	_ fs.NodeSetattrer      = (*node)(nil)
	_ fs.NodeMkdirer        = (*node)(nil)
	_ fs.NodeMknoder        = (*node)(nil)
	_ fs.NodeCreater        = (*node)(nil)
	_ fs.NodeOpener         = (*node)(nil)
	_ fs.NodeOpendirHandler = (*node)(nil)
	_ fs.NodeUnlinker       = (*node)(nil)
	_ fs.NodeRmdirer        = (*node)(nil)
	_ fs.NodeRenamer        = (*node)(nil)
	_ fs.NodeSymlinker      = (*node)(nil)
	_ fs.NodeReadlinker     = (*node)(nil)
	_ fs.NodeLinker         = (*node)(nil)
	_ fs.NodeGetxattrer     = (*node)(nil)
	_ fs.NodeSetxattrer     = (*node)(nil)
	_ fs.NodeListxattrer    = (*node)(nil)
	_ fs.NodeRemovexattrer  = (*node)(nil)
	_ fs.NodeStatfser       = (*node)(nil)
)

// path returns the node's path in the volume, ESTALE when it has none
// left.
func (n *node) path() (string, syscall.Errno) {
	p := n.Path(nil)
	if p == "" && !n.IsRoot() {
		return "", syscall.ESTALE
	}
	return p, 0
}

func (n *node) child(name string) (string, syscall.Errno) {
	p, e := n.path()
	if e != 0 {
		return "", e
	}
	return path.Join(p, name), 0
}

// uninterrupted detaches an operation from the kernel's interrupts (see
// the package comment); the caller's credentials stay.
func uninterrupted(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// addFile and dropFile track the node's open handles.
func (n *node) addFile(f *file) {
	n.mu.Lock()
	if n.files == nil {
		n.files = map[*file]struct{}{}
	}
	n.files[f] = struct{}{}
	n.mu.Unlock()
}

func (n *node) dropFile(ctx context.Context, f *file) {
	n.mu.Lock()
	delete(n.files, f)
	var pt *ptFile
	if len(n.files) == 0 {
		pt, n.pt = n.pt, nil
	}
	n.mu.Unlock()
	if pt != nil {
		pt.end(ctx)
	}
}

// anyFile returns one of the node's open handles, nil when none.
func (n *node) anyFile() *file {
	n.mu.Lock()
	defer n.mu.Unlock()
	for f := range n.files {
		return f
	}
	return nil
}

func errno(err error) syscall.Errno { return fop.Errno(err) }

// fillAttr copies a brick's attributes into a FUSE reply.
func fillAttr(a *fop.Attr, out *fuse.Attr) {
	out.Ino = a.Ino
	out.Size = a.Size
	out.Blocks = a.Blocks
	out.Mode = a.Mode
	out.Nlink = a.Nlink
	out.Uid = a.UID
	out.Gid = a.GID
	out.Rdev = uint32(a.Rdev)
	out.Blksize = a.Blksize
	out.Atime, out.Atimensec = split(a.Atime)
	out.Mtime, out.Mtimensec = split(a.Mtime)
	out.Ctime, out.Ctimensec = split(a.Ctime)
}

func split(ns int64) (uint64, uint32) {
	s, n := ns/1e9, ns%1e9
	if n < 0 {
		s, n = s-1, n+1e9
	}
	return uint64(s), uint32(n)
}

func (n *node) newChild(ctx context.Context, a *fop.Attr, out *fuse.EntryOut) *fs.Inode {
	fillAttr(a, &out.Attr)
	made := &node{vol: n.vol, cache: n.cache, opts: n.opts, last: *a, baseOK: true}
	made.priv.Store(privOf(a.Mode))
	// A node the kernel knew already keeps what it knew of its set-ID
	// bits: an upcall since the call began may have made them unknown.
	in := n.NewInode(ctx, made, fs.StableAttr{Mode: a.Mode & syscall.S_IFMT, Ino: a.Ino})
	cn := in.Operations().(*node)
	cn.size.Store(a.Size)
	n.cache.remember(cn, a.Ino)
	return in
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	ctx = uninterrupted(ctx)
	if n.knownMissing(name) {
		return nil, syscall.ENOENT
	}
	p, e0 := n.child(name)
	if e0 != 0 {
		return nil, e0
	}
	e, err := n.vol.Lookup(ctx, p)
	if err != nil {
		return nil, errno(err)
	}
	return n.newChild(ctx, &e.Attr, out), 0
}

func (n *node) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	ctx = uninterrupted(ctx)
	inv := n.changeCount()
	// A read-only open not made on the bricks yet (open-behind) needs no
	// handle for attributes a close learned and nothing changed since:
	// the fstat after an open (cat, cp, Python's open) would otherwise
	// make the open on the bricks just for it.
	if ff, ok := f.(*file); ok {
		if _, opened := ff.openedHandle(); !opened {
			if a, ok := n.freshAttr(); ok {
				n.sawModeAt(a.Mode, inv)
				fillAttr(&a, &out.Attr)
				return 0
			}
		}
	}
	// An open file is asked by its handle: fstat must work after the last
	// name is gone.
	if fa, h, ok := n.fileAttrer(ctx, f); ok {
		a, err := fa.Fgetattr(ctx, h)
		if err == nil {
			n.size.Store(a.Size)
			n.sawModeAt(a.Mode, inv)
			fillAttr(&a, &out.Attr)
			return 0
		}
		if !errors.Is(err, syscall.ENOSYS) {
			return errno(err)
		}
	}
	// Not asked through a file of this mount's: go-fuse passes an open
	// directory's handle when the kernel gave none (for a directory it
	// never does), and an unlink in a directory that a process holds
	// open (rm -r, find -delete) must not send the kernel's permission
	// check to the bricks each time.
	if _, isFile := f.(*file); !isFile {
		if a, ok := n.freshAttr(); ok {
			n.sawModeAt(a.Mode, inv)
			fillAttr(&a, &out.Attr)
			return 0
		}
	}
	p, e := n.path()
	if e != 0 {
		// Gone without an open handle to ask: a removed directory that a
		// process still has open, say. Its last attributes, with no link.
		n.mu.Lock()
		a := n.last
		n.mu.Unlock()
		if a.Ino == 0 {
			return e
		}
		a.Nlink = 0
		fillAttr(&a, &out.Attr)
		return 0
	}
	inv = n.changeCount()
	a, err := n.vol.Getattr(ctx, p)
	if err != nil {
		return errno(err)
	}
	n.rememberAt(&a, inv)
	n.sawModeAt(a.Mode, inv)
	fillAttr(&a, &out.Attr)
	return 0
}

func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	ctx = uninterrupted(ctx)
	defer n.changed()
	inv := n.changeCount()
	req := fop.SetattrReq{}
	if m, ok := in.GetMode(); ok {
		req.Valid |= fop.SetMode
		req.Mode = m & 0o7777
	}
	if u, ok := in.GetUID(); ok {
		req.Valid |= fop.SetUID
		req.UID = u
	}
	if g, ok := in.GetGID(); ok {
		req.Valid |= fop.SetGID
		req.GID = g
	}
	if s, ok := in.GetSize(); ok {
		req.Valid |= fop.SetSize
		req.Size = s
	}
	if in.Valid&fuse.FATTR_ATIME != 0 {
		if in.Valid&fuse.FATTR_ATIME_NOW != 0 {
			req.Valid |= fop.SetAtimeNow
		} else {
			req.Valid |= fop.SetAtime
			req.Atime = int64(in.Atime)*1e9 + int64(in.Atimensec)
		}
	}
	if in.Valid&fuse.FATTR_MTIME != 0 {
		if in.Valid&fuse.FATTR_MTIME_NOW != 0 {
			req.Valid |= fop.SetMtimeNow
		} else {
			req.Valid |= fop.SetMtime
			req.Mtime = int64(in.Mtime)*1e9 + int64(in.Mtimensec)
		}
	}
	if e := n.killPrivSetattr(ctx, f, in, &req); e != 0 {
		return e
	}
	if fa, h, ok := n.fileAttrer(ctx, f); ok {
		a, err := fa.Fsetattr(ctx, h, &req)
		if err == nil {
			n.sawModeAt(a.Mode, inv)
			fillAttr(&a, &out.Attr)
			return 0
		}
		if !errors.Is(err, syscall.ENOSYS) {
			return errno(err)
		}
	}
	var e syscall.Errno
	if req.Path, e = n.path(); e != 0 {
		return e
	}
	a, err := n.vol.Setattr(ctx, &req)
	if err != nil {
		return errno(err)
	}
	n.sawModeAt(a.Mode, inv)
	fillAttr(&a, &out.Attr)
	return 0
}

// fileAttrer returns the volume's handle-based attribute operations and
// a handle of the node to use them on: f (go-fuse passes one of the
// node's handles to Getattr, and the kernel the caller's to Setattr for
// ftruncate), or when the node has no name left any of its handles (the
// kernel passes none for fchmod or fchown). Otherwise the path serves: a
// truncate(2) must not go through another process's read-only handle.
func (n *node) fileAttrer(ctx context.Context, f fs.FileHandle) (fop.FileAttrer, uint64, bool) {
	fa, ok := n.vol.(fop.FileAttrer)
	if !ok {
		return nil, 0, false
	}
	ff, ok := f.(*file)
	if !ok {
		if _, e := n.path(); e == 0 {
			return nil, 0, false
		}
		if ff = n.anyFile(); ff == nil {
			return nil, 0, false
		}
	}
	h, e := ff.handle(ctx)
	if e != 0 {
		return nil, 0, false
	}
	return fa, h, true
}

// createReq fills what every create carries: the caller as owner and a
// fresh GFID.
func createReq(ctx context.Context, p string, mode uint32) *fop.CreateReq {
	req := &fop.CreateReq{Path: p, Mode: mode, GFID: fop.NewGFID()}
	if c, ok := fuse.FromContext(ctx); ok {
		req.UID, req.GID = c.Uid, c.Gid
	}
	return req
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	ctx = uninterrupted(ctx)
	p, e := n.child(name)
	if e != 0 {
		return nil, e
	}
	n.adding(name)
	gen := n.cache.generation()
	ec := n.beginEntry(ctx)
	a, err := n.vol.Mkdir(ec.ctx, createReq(ctx, p, mode|syscall.S_IFDIR))
	ec.end(err)
	if err != nil {
		return nil, errno(err)
	}
	child := n.newChild(ctx, &a, out)
	child.Operations().(*node).madeEmpty(gen)
	return child, 0
}

func (n *node) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	ctx = uninterrupted(ctx)
	p, e := n.child(name)
	if e != 0 {
		return nil, e
	}
	n.adding(name)
	req := createReq(ctx, p, mode)
	req.Rdev = uint64(dev)
	ec := n.beginEntry(ctx)
	a, err := n.vol.Mknod(ec.ctx, req)
	ec.end(err)
	if err != nil {
		return nil, errno(err)
	}
	child := n.newChild(ctx, &a, out)
	if a.GFID == req.GFID {
		child.Operations().(*node).absent(capabilityXattr)
	}
	return child, 0
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	ctx = uninterrupted(ctx)
	p, e := n.child(name)
	if e != 0 {
		return nil, e
	}
	n.adding(name)
	req := createReq(ctx, p, syscall.S_IFLNK|0o777)
	req.Target = target
	ec := n.beginEntry(ctx)
	a, err := n.vol.Symlink(ec.ctx, req)
	ec.end(err)
	if err != nil {
		return nil, errno(err)
	}
	return n.newChild(ctx, &a, out), 0
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	ctx = uninterrupted(ctx)
	p, e := n.child(name)
	if e != 0 {
		return nil, nil, 0, e
	}
	n.adding(name)
	req := createReq(ctx, p, mode|syscall.S_IFREG)
	req.Flags = flags
	ec := n.beginEntry(ctx)
	r, err := n.vol.Create(ec.ctx, req)
	ec.end(err)
	if err != nil {
		return nil, nil, 0, errno(err)
	}
	child := n.newChild(ctx, &r.Attr, out)
	child.Operations().(*node).changed() // an existing file, truncated, say
	if r.Attr.GFID == req.GFID {
		// Made by this call (an O_CREAT of an existing name opens that
		// file, GFID and all): it has no file capabilities, which the
		// kernel asks about before the first write into it.
		child.Operations().(*node).absent(capabilityXattr)
	}
	fh := newFile(child.Operations().(*node), r.Handle, flags)
	if r.Attr.GFID != req.GFID && flags&syscall.O_TRUNC != 0 {
		// An existing file, truncated by the open: as a truncation.
		if e := fh.killPriv(ctx); e != 0 {
			fh.pass.Store(passNo) // go-fuse never sees it
			_ = fh.Release(ctx)
			return nil, nil, 0, e
		}
	}
	fh.takeFD(ctx)
	return child, fh, 0, 0
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	ctx = uninterrupted(ctx)
	p, e := n.path()
	if e != 0 {
		return nil, 0, e
	}
	if flags&syscall.O_TRUNC != 0 || flags&syscall.O_ACCMODE != syscall.O_RDONLY && n.opts.Passthrough {
		// A truncation changes the file; a descriptor the kernel may
		// write itself (passthrough.go) makes the attributes a close
		// learned unsafe to answer with from now on.
		defer n.changed()
	}
	if n.cache != nil && flags&syscall.O_ACCMODE == syscall.O_RDONLY && flags&(syscall.O_TRUNC|syscall.O_CREAT) == 0 && !n.readThrough() {
		// Made when a read misses the page cache (file.handle): the kernel
		// checked the permissions, and upcalls keep its pages right.
		return deferredFile(n, flags), fuse.FOPEN_KEEP_CACHE, 0
	}
	r, err := n.vol.Open(ctx, p, flags)
	if err != nil {
		return nil, 0, errno(err)
	}
	// The kernel keeps the file's pages across opens. A change made
	// through another mount drops them: at once through the bricks'
	// upcalls (cache.go), or, on a mount without them, when the kernel
	// refreshes the attributes and sees a new modification time or size
	// (AUTO_INVAL_DATA).
	fh := newFile(n, r.Handle, flags)
	fh.takeFD(ctx)
	return fh, fuse.FOPEN_KEEP_CACHE, 0
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	p, e := n.child(name)
	if e != 0 {
		return e
	}
	defer n.changedIn(name)
	n.openDeferred(ctx, name)
	ec := n.beginEntry(uninterrupted(ctx))
	err := n.vol.Unlink(ec.ctx, p)
	ec.end(err)
	return errno(err)
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	p, e := n.child(name)
	if e != 0 {
		return e
	}
	ec := n.beginEntry(uninterrupted(ctx))
	err := n.vol.Rmdir(ec.ctx, p)
	ec.end(err)
	return errno(err)
}

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	np, ok := newParent.(*node)
	if !ok {
		return syscall.EXDEV
	}
	from, e := n.child(name)
	if e != 0 {
		return e
	}
	to, e := np.child(newName)
	if e != 0 {
		return e
	}
	np.adding(newName)
	// The moved file's change time changes, and the replaced one's (or,
	// for an exchange, the other's) link count or change time.
	defer n.changedIn(name)
	defer np.changedIn(newName)
	np.openDeferred(ctx, newName) // the name it replaces
	// Both directories' attributes change; what they become is read anew.
	defer n.changed()
	defer np.changed()
	return errno(n.vol.Rename(uninterrupted(ctx), from, to, flags))
}

func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	ctx = uninterrupted(ctx)
	t, ok := target.(*node)
	if !ok {
		return nil, syscall.EXDEV
	}
	from, e := t.path()
	if e != 0 {
		return nil, e
	}
	to, e := n.child(name)
	if e != 0 {
		return nil, e
	}
	n.adding(name)
	defer t.changed() // its link count
	ec := n.beginEntry(ctx)
	a, err := n.vol.Link(ec.ctx, from, to)
	ec.end(err)
	if err != nil {
		return nil, errno(err)
	}
	return n.newChild(ctx, &a, out), 0
}

func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	p, e := n.path()
	if e != 0 {
		return nil, e
	}
	s, err := n.vol.Readlink(uninterrupted(ctx), p)
	if err != nil {
		return nil, errno(err)
	}
	return []byte(s), 0
}

// Extended attributes go by path, or for a file whose names are all
// gone through one of its open handles.

// orphanXattrer returns the volume's handle-based extended attribute
// calls and a handle of the node, when its names are gone (e, from path)
// and it has one open.
func (n *node) orphanXattrer(e syscall.Errno) (fop.FileXattrer, uint64, syscall.Errno) {
	fx, ok := n.vol.(fop.FileXattrer)
	f := n.anyFile()
	if !ok || f == nil {
		return nil, 0, e
	}
	h, e2 := f.handle(context.Background())
	if e2 != 0 {
		return nil, 0, e2
	}
	return fx, h, 0
}

func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	ctx = uninterrupted(ctx)
	var v []byte
	var err error
	if n.opts.unsupported(attr) {
		return 0, syscall.EOPNOTSUPP
	}
	if n.knownAbsent(attr) {
		return 0, syscall.ENODATA
	}
	if p, e := n.path(); e == 0 {
		v, err = n.vol.Getxattr(ctx, p, attr)
		if errors.Is(err, syscall.ENODATA) {
			n.absent(attr)
		}
	} else {
		fx, h, e := n.orphanXattrer(e)
		if e != 0 {
			return 0, e
		}
		v, err = fx.Fgetxattr(ctx, h, attr)
	}
	if err != nil {
		return 0, errno(err)
	}
	if len(dest) < len(v) {
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	ctx = uninterrupted(ctx)
	if n.opts.unsupported(attr) {
		return syscall.EOPNOTSUPP
	}
	defer n.forgetXattrs()
	p, e := n.path()
	if e == 0 {
		return errno(n.vol.Setxattr(ctx, p, attr, data, flags))
	}
	fx, h, e := n.orphanXattrer(e)
	if e != 0 {
		return e
	}
	return errno(fx.Fsetxattr(ctx, h, attr, data, flags))
}

func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	ctx = uninterrupted(ctx)
	if n.opts.unsupported(attr) {
		return syscall.EOPNOTSUPP
	}
	defer n.forgetXattrs()
	p, e := n.path()
	if e == 0 {
		return errno(n.vol.Removexattr(ctx, p, attr))
	}
	fx, h, e := n.orphanXattrer(e)
	if e != 0 {
		return e
	}
	return errno(fx.Fremovexattr(ctx, h, attr))
}

func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	ctx = uninterrupted(ctx)
	var v []byte
	var err error
	if p, e := n.path(); e == 0 {
		v, err = n.vol.Listxattr(ctx, p)
	} else {
		fx, h, e := n.orphanXattrer(e)
		if e != 0 {
			return 0, e
		}
		v, err = fx.Flistxattr(ctx, h)
	}
	if err != nil {
		return 0, errno(err)
	}
	v = n.opts.filterList(v)
	if len(dest) < len(v) {
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	s, err := n.vol.Statfs(uninterrupted(ctx))
	if err != nil {
		return errno(err)
	}
	out.Blocks, out.Bfree, out.Bavail = s.Blocks, s.Bfree, s.Bavail
	out.Files, out.Ffree = s.Files, s.Ffree
	out.Bsize, out.NameLen, out.Frsize = s.Bsize, s.NameLen, s.Bsize
	return 0
}

// OpendirHandle opens a directory for listing. A removed directory
// (the working directory of a process, say) lists empty, as it does on a
// local file system.
func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if _, e := n.path(); e != 0 {
		return &dirHandle{n: n, eof: true}, 0, 0
	}
	var flags0 uint32
	if n.cache != nil {
		// The kernel keeps listings (in the directory's page cache) across
		// opens: a second ls reads no brick. Its own creates and removals
		// reset the kept listing; another client's do through the bricks'
		// entry upcalls (Cache.apply's NotifyEntry), or, for any lost
		// upcall, a drop of everything (invalidateTree).
		flags0 = fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE
	}
	return &dirHandle{n: n, ctx: uninterrupted(ctx)}, flags0, 0
}

// dirHandle lists a directory in batches. The volume's listing carries
// each entry's attributes (readdirplus), so the kernel's READDIRPLUS gets
// them without a lookup per entry. Offsets count the entries returned; a
// seek lists again from the start up to the offset.
type dirHandle struct {
	n     *node
	ctx   context.Context
	batch []fop.Dirent
	pos   fop.Pos
	eof   bool
	off   uint64     // entries returned so far
	last  fop.Dirent // the entry returned last, for Lookup
}

var (
	_ fs.FileReaddirenter = (*dirHandle)(nil)
	_ fs.FileLookuper     = (*dirHandle)(nil)
	_ fs.FileSeekdirer    = (*dirHandle)(nil)
	_ fs.FileFsyncdirer   = (*dirHandle)(nil)
)

// Fsyncdir succeeds without asking the bricks, whose protocol has no
// directory sync yet: entry changes are as durable as the bricks' file
// systems make them on their own (ext4 and xfs commit them with their
// journal within seconds). Without it go-fuse answers ENOTSUP, which
// fails fsync(2) on a directory.
func (d *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno { return 0 }

// fill reads the next batch, at the directory's current path (it may
// have been renamed since it was opened); a directory removed meanwhile
// has nothing more to list.
func (d *dirHandle) fill() syscall.Errno {
	for len(d.batch) == 0 && !d.eof {
		p, e := d.n.path()
		if e != 0 {
			d.eof = true
			return 0
		}
		ctx, cancel := context.WithTimeout(d.ctx, time.Minute)
		r, err := d.n.vol.Readdir(ctx, p, d.pos, 512)
		cancel()
		if errors.Is(err, syscall.ENOENT) {
			d.eof = true
			return 0
		}
		if err != nil {
			return errno(err)
		}
		d.batch, d.eof = r.Entries, r.EOF
		if n := len(r.Entries); n > 0 {
			d.pos = r.Entries[n-1].Pos()
		}
	}
	return 0
}

func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	if e := d.fill(); e != 0 {
		return nil, e
	}
	if len(d.batch) == 0 {
		return nil, 0
	}
	d.last = d.batch[0]
	d.batch = d.batch[1:]
	d.off++
	return &fuse.DirEntry{Name: d.last.Name, Mode: d.last.Attr.Mode, Ino: d.last.Attr.Ino, Off: d.off}, 0
}

// Seekdir goes back to the start (rewinddir) or to any offset handed out
// before, by listing again.
func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if off == d.off {
		return 0
	}
	if d.ctx == nil {
		return 0 // a removed directory: nothing to list
	}
	d.batch, d.pos, d.eof, d.off = nil, fop.Pos{}, false, 0
	for d.off < off {
		de, e := d.Readdirent(ctx)
		if e != 0 {
			return e
		}
		if de == nil {
			break
		}
	}
	return 0
}

// Lookup answers READDIRPLUS for the entry Readdirent returned last,
// from the attributes the listing carried. Directories are looked up:
// their times are the latest of all their copies', which one brick's
// listing does not know.
func (d *dirHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if name != d.last.Name || d.last.Attr.Mode&syscall.S_IFMT == syscall.S_IFDIR || d.last.Attr.Ino == 0 {
		return d.n.Lookup(ctx, name, out)
	}
	c := d.n.GetChild(name)
	if c != nil && c.StableAttr().Ino == d.last.Attr.Ino {
		fillAttr(&d.last.Attr, &out.Attr)
	} else {
		c = d.n.newChild(ctx, &d.last.Attr, out)
	}
	if cn, ok := c.Operations().(*node); ok {
		cn.listed(d.last.Xattrs)
	}
	return c, 0
}

// file is an open file.
type file struct {
	n   *node
	vol fop.Volume

	// wrote is the node's change count (node.changed) at this handle's
	// last write, 0 before any.
	wrote atomic.Uint64

	// h is the volume's handle. A read-only open is made on the bricks
	// only when a call needs the handle (open-behind, as GlusterFS's): a
	// file whose pages the kernel keeps is read without asking them.
	// flags are the open's; mu guards h and opened.
	mu     sync.Mutex
	h      uint64
	flags  uint32
	opened bool

	// pass is what became of the open for passthrough (passthrough.go:
	// passUnknown and so on), pend the brick's descriptor it took for
	// go-fuse to ask for. Both change under the node's mu.
	pass atomic.Uint32
	pend *ptFile
}

func newFile(n *node, h uint64, flags uint32) *file {
	f := &file{n: n, vol: n.vol, h: h, flags: flags, opened: true}
	if !n.opts.Passthrough {
		f.pass.Store(passNo)
	}
	n.addFile(f)
	return f
}

// deferredFile is a read-only open of n not yet made on the bricks.
func deferredFile(n *node, flags uint32) *file {
	f := &file{n: n, vol: n.vol, flags: flags}
	if !n.opts.Passthrough {
		f.pass.Store(passNo)
	}
	n.addFile(f)
	return f
}

// handle returns the volume's handle, opening the file on the bricks
// first for a deferred open (at the node's current path: a rename since
// is followed; a file removed since is ESTALE, or ENOENT from the
// bricks, where a local file system would still read it).
func (f *file) handle(ctx context.Context) (uint64, syscall.Errno) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.opened {
		return f.h, 0
	}
	p, e := f.n.path()
	if e != 0 {
		return 0, e
	}
	r, err := f.vol.Open(uninterrupted(ctx), p, f.flags)
	if err != nil {
		return 0, errno(err)
	}
	f.h, f.opened = r.Handle, true
	return f.h, 0
}

// openedHandle returns the volume's handle if the bricks hold the file
// open for f (a deferred open may never have been made).
func (f *file) openedHandle() (uint64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.h, f.opened
}

var (
	_ fs.FileReader   = (*file)(nil)
	_ fs.FileWriter   = (*file)(nil)
	_ fs.FileFsyncer  = (*file)(nil)
	_ fs.FileReleaser = (*file)(nil)
	_ fs.FileFlusher  = (*file)(nil)
)

func (f *file) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	f.throughMount()
	h, e := f.handle(ctx)
	if e != 0 {
		return nil, e
	}
	// A copy on a brick of this machine is read directly: spliced from
	// its descriptor (fop.LocalFDReader, mount/splice.go) or read from it
	// (fop.LocalReader).
	if lr, ok := f.vol.(fop.LocalFDReader); ok && len(dest) <= MaxSplicedRead() {
		if fd, ok := lr.LocalReadFD(uninterrupted(ctx), h, off, len(dest)); ok {
			return &splicedRead{fd: fd, off: off, size: len(dest), slow: func() ([]byte, fuse.Status) {
				b, err := f.vol.Read(uninterrupted(ctx), h, off, uint32(len(dest)))
				return b, fuse.Status(errno(err))
			}}, 0
		}
	}
	if lr, ok := f.vol.(fop.LocalReader); ok {
		if n, ok := lr.ReadLocal(uninterrupted(ctx), h, dest, off); ok {
			return fuse.ReadResultData(dest[:n]), 0
		}
	}
	b, err := f.vol.Read(uninterrupted(ctx), h, off, uint32(len(dest)))
	if err != nil {
		return nil, errno(err)
	}
	if release := f.n.opts.ReleaseRead; release != nil {
		return &releasedResult{data: b, release: release}, 0
	}
	return fuse.ReadResultData(b), 0
}

// releasedResult is a read's data, given back (Options.ReleaseRead) once
// the kernel has it.
type releasedResult struct {
	data    []byte
	release func([]byte)
	done    atomic.Bool
}

func (r *releasedResult) Bytes([]byte) ([]byte, fuse.Status) { return r.data, fuse.OK }
func (r *releasedResult) Size() int                          { return len(r.data) }

func (r *releasedResult) Done() {
	if !r.done.Swap(true) {
		r.release(r.data)
	}
}

func (f *file) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	f.throughMount()
	if e := f.killPriv(ctx); e != 0 {
		return 0, e
	}
	f.wrote.Store(f.n.changed())
	h, e := f.handle(ctx)
	if e != 0 {
		return 0, e
	}
	r, err := f.vol.Write(uninterrupted(ctx), h, off, data)
	if err != nil {
		return 0, errno(err)
	}
	return r.Written, 0
}

func (f *file) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	h, e := f.handle(ctx)
	if e != 0 {
		return e
	}
	err := f.vol.Fsync(uninterrupted(ctx), h, flags&1 != 0)
	f.settle(true)
	if pt := f.n.passthrough(); pt != nil {
		pt.tell(uninterrupted(ctx), true)
	} else {
		f.mayHaveWritten(uninterrupted(ctx))
	}
	return errno(err)
}

func (f *file) Release(ctx context.Context) syscall.Errno {
	f.settle(true) // closes a descriptor go-fuse did not ask for
	f.n.dropFile(uninterrupted(ctx), f)
	h, opened := f.openedHandle()
	if !opened {
		return 0 // a deferred open never made
	}
	if ra, ok := f.vol.(fop.ReleaseAttrer); ok && f.n.cache != nil {
		if inv := f.wrote.Load(); inv != 0 {
			// The layers learn the attributes only now (replicate
			// clears its changelog at release): the getattr after a
			// close that comes after this is answered with them.
			a, known, err := ra.ReleaseAttr(uninterrupted(ctx), h)
			if err == nil && known {
				f.n.learned(a, inv, 0)
			}
			return errno(err)
		}
	}
	return errno(f.vol.Release(uninterrupted(ctx), h))
}
