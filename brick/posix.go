package brick

// The brick side of the data path: a session per client connection that
// serves the fop operations on the brick directory.
//
// Files are ordinary files under the brick root, in the volume's namespace:
// a client's path "a/b" is <brick>/a/b. No request may touch anything
// outside the brick. Every path is checked (relative, '/'-separated, no
// "..", "." or empty components, no NUL), its parent directory is resolved
// with openat2 beneath an O_PATH descriptor of the brick root refusing every
// symlink (a client's kernel resolves symlinks, the brick never does), and
// the final component is handled by the *at system calls, which do not
// follow it either. Extended attributes of the final component go through
// the *xattrat calls on the parent's descriptor (Linux 6.13), or where the
// kernel lacks them through /proc/self/fd/<parent>/<name> with the l*xattr
// calls; neither follows a final symlink.
//
// Each session (connection) opens the brick root once; handles are per
// session, numbered from 1 and never reused, and closed with it.
//
// Files and directories are opened only after checking, on an O_PATH
// descriptor of the very inode, that they are a regular file or a
// directory: a brick never opens a device node or a FIFO a client made
// (the client's kernel serves those itself), so a client cannot reach the
// brick host's devices through one.
//
// Readdir cookies are the kernel's directory offsets (getdents64 d_off):
// each call opens the directory, seeks to the cookie and reads on from
// there, so a listing costs O(entries) in total and no per-client state is
// kept between calls. ext4 (hashed directories: a 63-bit hash), xfs and
// tmpfs give offsets that stay valid while the directory changes.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/distribute"
	"github.com/cais-platform/cais/fop"
	"github.com/cais-platform/cais/readahead"
	"github.com/cais-platform/cais/rpc"
)

// Internal names.
const (
	// internalDir at the brick root holds the brick's own state; no
	// request may name it and the root's listing hides it.
	internalDir = ".cais"
	// linkToXattr marks a pointer entry left by a rename across subvolumes:
	// its value names the subvolume holding the data.
	linkToXattr = "trusted.cais.linkto"
)

// Limits.
const (
	maxRead           = 4 << 20 // bytes per read
	defaultReaddirMax = 256     // entries per readdir when the client sets none
	maxReaddirMax     = 1024    // entries per readdir at most
	readdirBudget     = 8 << 20 // encoded bytes per readdir reply, below the frame limit
	xattrSizeMax      = 64 << 10
	getdentsBuf       = 64 << 10
)

// resolveFlags keep a resolution beneath the brick root and refuse every
// symlink on the way.
const resolveFlags = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_SYMLINKS

// session serves one client connection.
type session struct {
	log  *slog.Logger
	ping func() (syscall.Errno, []byte)
	// features are the additions to replies the client asked for and
	// this brick sends (fop.OpHello).
	features atomic.Uint32
	// local: the client is on this machine (the brick's Unix socket).
	local bool
	// rootFD is an O_PATH descriptor of the brick root, or -1 when the
	// root could not be opened (every file operation then fails with
	// rootErr).
	rootFD  int
	rootErr syscall.Errno

	// sh is the state shared with the brick's other connections.
	sh *shared

	mu    sync.Mutex
	locks heldLocks // guarded by mu
	// byPath remembers the locks taken by path (guarded by mu): an
	// unlock by the same path releases the file locked, even when a
	// rename moved it or gave the name to another file meanwhile.
	byPath  map[string][]pathLock
	handles map[uint64]*handle
	last    uint64 // the last handle given out; handles are never reused
	closed  bool
}

// handle is an open file. Its lock is held shared by the calls using the
// descriptor and exclusively to close it, so a release never closes a
// descriptor under a read or write in flight (whose number could then be
// reused by another open).
type handle struct {
	mu     sync.RWMutex
	fd     int // -1 once closed
	append bool
	gfid   fop.GFID
	// ra asks the file into the page cache ahead of sequential reads.
	ra readahead.Tracker
}

// newSession opens the brick directory root for one connection. ping
// answers rpc.OpPing; nil means ENOSYS. The root gets fop.RootGFID if it
// has no GFID yet.
func newSession(root string, log *slog.Logger, ping func() (syscall.Errno, []byte)) *session {
	return newSessionShared(root, log, ping, newShared())
}

// newSessionShared is newSession for one of a brick server's connections,
// which share sh.
func newSessionShared(root string, log *slog.Logger, ping func() (syscall.Errno, []byte), sh *shared) *session {
	s := &session{log: log, ping: ping, rootFD: -1, handles: map[uint64]*handle{}, sh: sh}
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		log.Error("brick: cannot open the brick directory", "path", root, "err", err)
		s.rootErr = syscall.ESTALE
		return s
	}
	s.rootFD = fd
	p := procFD(fd)
	defer probeXattrAt(fd)
	var g [16]byte
	if n, err := unix.Getxattr(p, fop.GFIDXattr, g[:]); err != nil || n != len(g) {
		if errors.Is(err, unix.ENODATA) {
			if err := unix.Setxattr(p, fop.GFIDXattr, fop.RootGFID[:], unix.XATTR_CREATE); err != nil && !errors.Is(err, unix.EEXIST) {
				log.Error("brick: cannot set the root's GFID", "path", root, "err", err)
			}
		} else {
			log.Warn("brick: the root's GFID is unreadable", "path", root, "err", err, "size", n)
		}
	}
	return s
}

// Close closes the files the connection left open.
func (s *session) Close() {
	s.mu.Lock()
	hs := s.handles
	s.handles = nil
	s.closed = true
	locks := s.locks
	s.locks = nil
	byPath := s.byPath
	s.byPath = nil
	s.mu.Unlock()
	for _, h := range hs {
		h.close()
	}
	for _, pls := range byPath {
		for _, pl := range pls {
			pl.close()
		}
	}
	s.sh.upcalls.remove(s)
	s.releaseAll(locks)
	s.dropSessionLocks()
	if s.rootFD >= 0 {
		unix.Close(s.rootFD)
		s.rootFD = -1
		s.rootErr = syscall.ESTALE
	}
}

// Handle serves one call. A panic is logged and answered with EIO rather
// than taking the brick down.
func (s *session) Handle(ctx context.Context, op uint16, payload []byte) (status syscall.Errno, reply []byte) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("brick: panic serving a call", "op", op, "panic", r, "stack", string(debug.Stack()))
			status, reply = syscall.EIO, nil
		}
	}()
	var pa parentAttr
	pa.want = fop.EntryOp(op) && s.features.Load()&fop.FeatParentAttrs != 0
	status, reply = s.serve(ctx, op, payload, &pa)
	if mutates(op, status) {
		s.notify(op, payload)
	}
	if status == 0 && (op == fop.OpCreate || op == fop.OpOpen) && s.features.Load()&fop.FeatLocalFD != 0 {
		reply = s.appendLocalFD(reply)
	}
	if status == 0 && pa.ok {
		// Its GFID is not read: a mount knows the directory already.
		reply = fop.AppendParentAttr(reply, fop.AttrOf(&pa.st, fop.GFID{}))
	}
	return status, reply
}

// parentAttr takes, for a client that asked (fop.FeatParentAttrs), the
// attributes of the directory an entry call changed, after the call
// (fop.AppendParentAttr): from the descriptor the call resolved the
// entry through, when it closes it.
type parentAttr struct {
	want bool
	ok   bool
	st   unix.Stat_t
}

func (s *session) serve(ctx context.Context, op uint16, payload []byte, pa *parentAttr) (syscall.Errno, []byte) {
	if op == rpc.OpPing {
		if s.ping == nil {
			return syscall.ENOSYS, nil
		}
		return s.ping()
	}
	if op < fop.OpLookup {
		return syscall.ENOSYS, nil
	}
	if op == fop.OpHello {
		var req fop.Hello
		if fop.Unmarshal(payload, &req) != nil {
			return syscall.EINVAL, nil
		}
		f := req.Features & (fop.FeatParentAttrs | fop.FeatListingXattrs | fop.FeatReleaseAttrs | fop.FeatCreateMark)
		if s.local {
			f |= req.Features & fop.FeatLocalFD
		}
		s.features.Store(f)
		return 0, fop.Marshal(&fop.Hello{Features: f})
	}
	if s.rootFD < 0 {
		return s.rootErr, nil
	}
	switch op {
	case fop.OpLookup:
		return call(payload, s.lookup)
	case fop.OpGetattr:
		return call(payload, s.getattr)
	case fop.OpSetattr:
		return call(payload, s.setattr)
	case fop.OpMkdir:
		return call(payload, func(r *fop.CreateReq) (fop.Message, error) { return s.mkdir(r, pa) })
	case fop.OpMknod:
		return call(payload, func(r *fop.CreateReq) (fop.Message, error) { return s.mknod(r, pa) })
	case fop.OpSymlink:
		return call(payload, func(r *fop.CreateReq) (fop.Message, error) { return s.symlink(r, pa) })
	case fop.OpCreate:
		return call(payload, func(r *fop.CreateReq) (fop.Message, error) { return s.create(ctx, r, pa) })
	case fop.OpOpen:
		return call(payload, s.open)
	case fop.OpRead:
		var req fop.ReadReq
		if fop.Unmarshal(payload, &req) != nil {
			return syscall.EINVAL, nil
		}
		data, err := s.read(&req)
		if err != nil {
			return errnoOf(err), nil
		}
		return 0, data
	case fop.OpWrite:
		return call(payload, s.write)
	case fop.OpRelease:
		return call(payload, s.release)
	case fop.OpFsync:
		return call(payload, s.fsync)
	case fop.OpUnlink:
		return call(payload, func(r *fop.PathReq) (fop.Message, error) { return s.unlink(r, pa) })
	case fop.OpUnlinkFile:
		return call(payload, func(r *fop.PathReq) (fop.Message, error) { return s.unlinkFile(r, pa) })
	case fop.OpRmdir:
		return call(payload, func(r *fop.PathReq) (fop.Message, error) { return s.rmdir(r, pa) })
	case fop.OpRename:
		return call(payload, s.rename)
	case fop.OpLink:
		return call(payload, func(r *fop.RenameReq) (fop.Message, error) { return s.link(r, pa) })
	case fop.OpReadlink:
		return call(payload, s.readlink)
	case fop.OpReaddir:
		return call(payload, s.readdir)
	case fop.OpGetxattr:
		return call(payload, s.getxattr)
	case fop.OpSetxattr:
		return call(payload, s.setxattr)
	case fop.OpListxattr:
		return call(payload, s.listxattr)
	case fop.OpRemovexattr:
		return call(payload, s.removexattr)
	case fop.OpStatfs:
		return call(payload, s.statfs)
	case fop.OpXattrop:
		return s.xattropAttr(ctx, payload)
	case fop.OpInodelk:
		return call(payload, func(r *fop.InodelkReq) (fop.Message, error) { return s.inodelk(ctx, r) })
	case fop.OpIndex:
		return call(payload, s.indexList)
	case fop.OpWriteDirty:
		return call(payload, func(r *fop.WriteDirtyReq) (fop.Message, error) { return s.writeDirty(ctx, r) })
	case fop.OpXattropRelease:
		var r fop.XattropReq
		if fop.Unmarshal(payload, &r) != nil || r.Handle == 0 {
			return syscall.EINVAL, nil
		}
		return s.xattropRelease(ctx, &r)
	case fop.OpFgetattr:
		return call(payload, s.fgetattr)
	case fop.OpLocalFD:
		return call(payload, s.localFD)
	case fop.OpLocalWrote:
		return call(payload, s.localWrote)
	case fop.OpFsetattr:
		return call(payload, s.fsetattr)
	case fop.OpFgetxattr:
		return call(payload, s.fgetxattr)
	case fop.OpFsetxattr:
		return call(payload, s.fsetxattr)
	case fop.OpFlistxattr:
		return call(payload, s.flistxattr)
	case fop.OpFremovexattr:
		return call(payload, s.fremovexattr)
	case fop.OpGetlk:
		return call(payload, s.getlk)
	case fop.OpSetlk:
		return call(payload, s.setlk)
	}
	return syscall.ENOSYS, nil
}

// call decodes a request, serves it and encodes the reply; a request that
// does not decode gets EINVAL.
// xattropRelease applies an xattrop by handle and releases the handle,
// even when the xattrop fails; for a client that asked
// (fop.FeatReleaseAttrs), the reply ends with the file's attributes
// after the update.
func (s *session) xattropRelease(ctx context.Context, r *fop.XattropReq) (syscall.Errno, []byte) {
	out, err := s.xattrop(ctx, r)
	var a fop.Attr
	withAttr := err == nil && s.features.Load()&fop.FeatReleaseAttrs != 0 &&
		s.use(r.Handle, func(h *handle) error {
			var err error
			a, err = fdAttr(h.fd, h.gfid)
			return err
		}) == nil
	if _, rerr := s.release(&fop.HandleReq{Handle: r.Handle}); err == nil && rerr != nil {
		err = rerr
	}
	if err != nil {
		return errnoOf(err), nil
	}
	reply := fop.Marshal(out)
	if withAttr {
		reply = fop.AppendFileAttr(reply, a)
	}
	return 0, reply
}

// xattropAttr is OpXattrop: an unlock by handle, for a client that takes
// attributes (FeatReleaseAttrs), also answers the file's attributes
// after the changelog update (fop.Client.XattropAttr).
func (s *session) xattropAttr(ctx context.Context, payload []byte) (syscall.Errno, []byte) {
	var r fop.XattropReq
	if fop.Unmarshal(payload, &r) != nil {
		return syscall.EINVAL, nil
	}
	out, err := s.xattrop(ctx, &r)
	if err != nil {
		return errnoOf(err), nil
	}
	if out == nil {
		return 0, nil
	}
	reply := fop.Marshal(out)
	if r.Handle != 0 && r.Lock == fop.Unlock && s.features.Load()&fop.FeatReleaseAttrs != 0 {
		var a fop.Attr
		if s.use(r.Handle, func(h *handle) error {
			var err error
			a, err = fdAttr(h.fd, h.gfid)
			return err
		}) == nil {
			reply = fop.AppendFileAttr(reply, a)
		}
	}
	return 0, reply
}

func call[T any, PT interface {
	*T
	fop.Message
}](payload []byte, fn func(PT) (fop.Message, error)) (syscall.Errno, []byte) {
	req := PT(new(T))
	if fop.Unmarshal(payload, req) != nil {
		return syscall.EINVAL, nil
	}
	rep, err := fn(req)
	if err != nil {
		return errnoOf(err), nil
	}
	if rep == nil {
		return 0, nil
	}
	return 0, fop.Marshal(rep)
}

// errnoOf is the errno to answer for err.
func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) && e != 0 {
		return e
	}
	return syscall.EIO
}

// Paths.

// checkPath validates a request path and splits it at its last '/': dir is
// the parent's path ("" for the root) and name the final component, ""
// when p names the root itself.
func checkPath(p string) (dir, name string, err error) {
	if p == "" || p == "." {
		return "", "", nil
	}
	if p[0] == '/' || strings.IndexByte(p, 0) >= 0 {
		return "", "", unix.EINVAL
	}
	first := true
	for rest := p; ; {
		c, more, found := strings.Cut(rest, "/")
		if c == "" || c == "." || c == ".." {
			return "", "", unix.EINVAL
		}
		if first && c == internalDir {
			return "", "", unix.EACCES
		}
		first = false
		if !found {
			break
		}
		rest = more
	}
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i], p[i+1:], nil
	}
	return "", p, nil
}

// loc is an entry of the brick: a directory descriptor and a name in it,
// or the brick root itself (name "").
type loc struct {
	dir  int
	own  bool // dir was opened for this loc
	name string
	// after, when set, takes the directory's attributes as the call
	// closes the loc.
	after *parentAttr
}

// wantsParent reports whether the call still has to take its directory's
// attributes (l.after).
func (l loc) wantsParent() bool {
	a := l.after
	return a != nil && a.want && !a.ok && !l.isRoot()
}

func (l loc) close() {
	if l.wantsParent() {
		l.after.ok = unix.Fstat(l.dir, &l.after.st) == nil
	}
	if l.own {
		unix.Close(l.dir)
	}
}

func (l loc) isRoot() bool { return l.name == "" }

// resolve checks p and opens its parent directory beneath the brick root.
func (s *session) resolve(p string) (loc, error) {
	dir, name, err := checkPath(p)
	if err != nil {
		return loc{}, err
	}
	if dir == "" {
		return loc{dir: s.rootFD, name: name}, nil
	}
	fd, err := s.openBeneath(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return loc{}, err
	}
	return loc{dir: fd, own: true, name: name}, nil
}

// openBeneath opens p, a checked path relative to the brick root, refusing
// symlinks and anything outside the brick.
//
// A volume's path may be longer than PATH_MAX, which the kernel refuses in
// one call (ENAMETOOLONG) though a local file system serves it to a
// process whose working directory is deep enough: the brick walks such a
// path a directory at a time in parts under that length, each opened
// beneath the last (checkPath refused ".." already).
func (s *session) openBeneath(p string, flags int) (int, error) {
	dir, own := s.rootFD, false
	for len(p) >= maxPathPart {
		i := strings.LastIndexByte(p[:maxPathPart], '/')
		if i <= 0 {
			break // one name too long: openat2 refuses it
		}
		fd, err := openat2Beneath(dir, p[:i], unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC)
		if own {
			unix.Close(dir)
		}
		if err != nil {
			return -1, err
		}
		dir, own, p = fd, true, p[i+1:]
	}
	fd, err := openat2Beneath(dir, p, flags)
	if own {
		unix.Close(dir)
	}
	return fd, err
}

// maxPathPart is the longest path openBeneath gives the kernel at once
// (PATH_MAX, with its terminating NUL).
const maxPathPart = unix.PathMax

func openat2Beneath(dirFD int, p string, flags int) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags), Resolve: resolveFlags}
	for range 16 {
		fd, err := unix.Openat2(dirFD, p, &how)
		// EAGAIN: a concurrent rename made the kernel unsure the walk
		// stayed beneath the root; try again.
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		return fd, err
	}
	return -1, unix.EAGAIN
}

// procFD names a descriptor's file through /proc.
func procFD(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// path is a /proc path of the entry that reaches it without following
// any symlink but the descriptor's own magic link.
func (l loc) path() string {
	if l.isRoot() {
		return procFD(l.dir)
	}
	return procFD(l.dir) + "/" + l.name
}

func (l loc) stat(st *unix.Stat_t) error {
	if l.isRoot() {
		return unix.Fstatat(l.dir, "", st, unix.AT_EMPTY_PATH)
	}
	return unix.Fstatat(l.dir, l.name, st, unix.AT_SYMLINK_NOFOLLOW)
}

// Extended attributes of an entry are reached relative to its parent's
// descriptor by the *xattrat system calls (Linux 6.13) where the kernel
// has them, else through /proc/self/fd/<parent>/<name> with the l*xattr
// calls, which cost a walk of /proc more. Neither follows the final
// component. The root is "." relative to its own descriptor, or its
// descriptor's magic link, which only the non-l calls follow.

var (
	xattrAtOnce sync.Once
	xattrAt     atomic.Bool // the *xattrat calls work
)

// probeXattrAt finds out once whether the *xattrat calls work: they may
// be missing (ENOSYS) or refused by a seccomp filter (EPERM).
func probeXattrAt(rootFD int) {
	xattrAtOnce.Do(func() {
		if unsafe.Sizeof(uintptr(0)) != 8 {
			return // xattrArgs below has the kernel's layout on 64-bit machines only
		}
		var g fop.GFID
		_, err := getxattrat(rootFD, ".", fop.GFIDXattr, g[:])
		xattrAt.Store(err == nil || err == unix.ENODATA || err == unix.ERANGE)
	})
}

// xattrArgs is the kernel's struct xattr_args; Value is a pointer so that
// the buffer it points to is kept alive and moved with its stack.
type xattrArgs struct {
	Value *byte
	Size  uint32
	Flags uint32
}

func newXattrArgs(buf []byte, flags int) xattrArgs {
	a := xattrArgs{Size: uint32(len(buf)), Flags: uint32(flags)}
	if len(buf) > 0 {
		a.Value = &buf[0]
	}
	return a
}

func getxattrat(dirfd int, path, name string, buf []byte) (int, error) {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return 0, err
	}
	n, err := unix.BytePtrFromString(name)
	if err != nil {
		return 0, err
	}
	args := newXattrArgs(buf, 0)
	r, _, e := unix.Syscall6(unix.SYS_GETXATTRAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)), unix.AT_SYMLINK_NOFOLLOW,
		uintptr(unsafe.Pointer(n)), uintptr(unsafe.Pointer(&args)), unsafe.Sizeof(args))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func setxattrat(dirfd int, path, name string, value []byte, flags int) error {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return err
	}
	n, err := unix.BytePtrFromString(name)
	if err != nil {
		return err
	}
	args := newXattrArgs(value, flags)
	_, _, e := unix.Syscall6(unix.SYS_SETXATTRAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)), unix.AT_SYMLINK_NOFOLLOW,
		uintptr(unsafe.Pointer(n)), uintptr(unsafe.Pointer(&args)), unsafe.Sizeof(args))
	if e != 0 {
		return e
	}
	return nil
}

func listxattrat(dirfd int, path string, buf []byte) (int, error) {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return 0, err
	}
	var b unsafe.Pointer
	if len(buf) > 0 {
		b = unsafe.Pointer(&buf[0])
	}
	r, _, e := unix.Syscall6(unix.SYS_LISTXATTRAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)), unix.AT_SYMLINK_NOFOLLOW,
		uintptr(b), uintptr(len(buf)), 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func removexattrat(dirfd int, path, name string) error {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return err
	}
	n, err := unix.BytePtrFromString(name)
	if err != nil {
		return err
	}
	_, _, e := unix.Syscall6(unix.SYS_REMOVEXATTRAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)), unix.AT_SYMLINK_NOFOLLOW,
		uintptr(unsafe.Pointer(n)), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// atName names the entry relative to l.dir for the *at calls.
func (l loc) atName() string {
	if l.isRoot() {
		return "."
	}
	return l.name
}

func (l loc) getxattr(name string, buf []byte) (int, error) {
	switch {
	case xattrAt.Load():
		return getxattrat(l.dir, l.atName(), name, buf)
	case l.isRoot():
		return unix.Getxattr(l.path(), name, buf)
	}
	return unix.Lgetxattr(l.path(), name, buf)
}

func (l loc) setxattr(name string, value []byte, flags int) error {
	switch {
	case xattrAt.Load():
		return setxattrat(l.dir, l.atName(), name, value, flags)
	case l.isRoot():
		return unix.Setxattr(l.path(), name, value, flags)
	}
	return unix.Lsetxattr(l.path(), name, value, flags)
}

func (l loc) listxattr(buf []byte) (int, error) {
	switch {
	case xattrAt.Load():
		return listxattrat(l.dir, l.atName(), buf)
	case l.isRoot():
		return unix.Listxattr(l.path(), buf)
	}
	return unix.Llistxattr(l.path(), buf)
}

func (l loc) removexattr(name string) error {
	switch {
	case xattrAt.Load():
		return removexattrat(l.dir, l.atName(), name)
	case l.isRoot():
		return unix.Removexattr(l.path(), name)
	}
	return unix.Lremovexattr(l.path(), name)
}

func (l loc) chown(uid, gid int) error {
	if l.isRoot() {
		return unix.Fchownat(l.dir, "", uid, gid, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW)
	}
	return unix.Fchownat(l.dir, l.name, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
}

// noFchmodat2 is set once the kernel turns out not to have fchmodat2.
var noFchmodat2 atomic.Bool

// chmod sets the mode bits exactly; a symlink's cannot be changed
// (EOPNOTSUPP).
func (l loc) chmod(mode uint32) error {
	mode &= 0o7777
	if l.isRoot() {
		return unix.Fchmodat(unix.AT_FDCWD, l.path(), mode, 0)
	}
	if !noFchmodat2.Load() {
		err := fchmodat2(l.dir, l.name, mode, unix.AT_SYMLINK_NOFOLLOW)
		if err != unix.ENOSYS {
			return err
		}
		noFchmodat2.Store(true)
	}
	// Without fchmodat2: change the very inode an O_PATH descriptor
	// holds, after checking it is no symlink.
	fd, err := unix.Openat(l.dir, l.name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return unix.EOPNOTSUPP
	}
	return unix.Fchmodat(unix.AT_FDCWD, procFD(fd), mode, 0)
}

func fchmodat2(dirfd int, path string, mode uint32, flags int) error {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return err
	}
	_, _, e := unix.Syscall6(unix.SYS_FCHMODAT2, uintptr(dirfd), uintptr(unsafe.Pointer(p)), uintptr(mode), uintptr(flags), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

func (l loc) utimes(ts []unix.Timespec) error {
	if l.isRoot() {
		return unix.UtimesNanoAt(unix.AT_FDCWD, l.path(), ts, 0)
	}
	return unix.UtimesNanoAt(l.dir, l.name, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// Attributes.

// readGFID returns the entry's GFID, zero when it has none.
func (l loc) readGFID() fop.GFID {
	var g fop.GFID
	if n, err := l.getxattr(fop.GFIDXattr, g[:]); err != nil || n != len(g) {
		return fop.GFID{}
	}
	return g
}

func fdGFID(fd int) fop.GFID {
	var g fop.GFID
	if n, err := unix.Fgetxattr(fd, fop.GFIDXattr, g[:]); err != nil || n != len(g) {
		return fop.GFID{}
	}
	return g
}

// attr is the attributes a client sees of l (fop.AttrOf: the inode
// number is folded from the GFID, so it is the same on every replica).
func (l loc) attr() (fop.Attr, error) {
	var st unix.Stat_t
	if err := l.stat(&st); err != nil {
		return fop.Attr{}, err
	}
	return fop.AttrOf(&st, l.readGFID()), nil
}

func fdAttr(fd int, g fop.GFID) (fop.Attr, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fop.Attr{}, err
	}
	return fop.AttrOf(&st, g), nil
}

// xattrValue reads one extended attribute of any size.
func xattrValue(get func([]byte) (int, error)) ([]byte, error) {
	var small [256]byte
	n, err := get(small[:])
	if err == nil {
		return append([]byte{}, small[:n]...), nil
	}
	if err != unix.ERANGE {
		return nil, err
	}
	buf := make([]byte, xattrSizeMax)
	n, err = get(buf)
	if err != nil {
		return nil, err
	}
	return buf[:n:n], nil
}

// optionalXattr reads an extended attribute, nil when absent.
func optionalXattr(get func([]byte) (int, error)) ([]byte, error) {
	v, err := xattrValue(get)
	if err == unix.ENODATA {
		return nil, nil
	}
	return v, err
}

// Extended attribute names.

type xattrClass int

const (
	xattrClient      xattrClass = iota // user.*, security.*, system.posix_acl_*
	xattrManaged                       // trusted.cais.dht and .linkto, written by the client layers
	xattrInternal                      // other trusted.*: EPERM
	xattrUnsupported                   // other namespaces: EOPNOTSUPP
)

func classify(name string) xattrClass {
	switch {
	case strings.HasPrefix(name, "user."), strings.HasPrefix(name, "security."),
		name == "system.posix_acl_access", name == "system.posix_acl_default":
		return xattrClient
	case name == distribute.LayoutXattr, name == linkToXattr:
		return xattrManaged
	case strings.HasPrefix(name, "trusted."):
		return xattrInternal
	}
	return xattrUnsupported
}

// checkXattrName refuses names a client may not get, set or remove.
func checkXattrName(name string) error {
	if name == "" || strings.IndexByte(name, 0) >= 0 {
		return unix.EINVAL
	}
	switch classify(name) {
	case xattrClient, xattrManaged:
		return nil
	case xattrInternal:
		return unix.EPERM
	}
	return unix.EOPNOTSUPP
}

// Operations on names.

func (s *session) lookup(req *fop.PathReq) (fop.Message, error) {
	l, err := s.resolve(req.Path)
	if err != nil {
		return nil, err
	}
	defer l.close()
	var st unix.Stat_t
	if err := l.stat(&st); err != nil {
		return nil, err
	}
	e := &fop.Entry{Attr: fop.AttrOf(&st, l.readGFID())}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if e.Changelog, err = optionalXattr(func(b []byte) (int, error) { return l.getxattr(fop.ChangelogXattr, b) }); err != nil {
			return nil, err
		}
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		e.Layout, err = optionalXattr(func(b []byte) (int, error) { return l.getxattr(distribute.LayoutXattr, b) })
	} else {
		var v []byte
		v, err = optionalXattr(func(b []byte) (int, error) { return l.getxattr(linkToXattr, b) })
		e.LinkTo = string(v)
	}
	if err != nil {
		return nil, err
	}
	return e, nil
}

func (s *session) getattr(req *fop.PathReq) (fop.Message, error) {
	l, err := s.resolve(req.Path)
	if err != nil {
		return nil, err
	}
	defer l.close()
	a, err := l.attr()
	if err != nil {
		return nil, err
	}
	return &a, nil
}

func (s *session) setattr(req *fop.SetattrReq) (fop.Message, error) {
	l, err := s.resolve(req.Path)
	if err != nil {
		return nil, err
	}
	defer l.close()
	v := req.Valid
	// Ownership first, as changing it clears set-user-ID and
	// set-group-ID bits; then the size, then the mode, exactly as asked;
	// the times last, so that they win over the truncation's.
	if v&(fop.SetUID|fop.SetGID) != 0 {
		uid, gid := -1, -1
		if v&fop.SetUID != 0 {
			uid = int(req.UID)
		}
		if v&fop.SetGID != 0 {
			gid = int(req.GID)
		}
		if err := l.chown(uid, gid); err != nil {
			return nil, err
		}
	}
	if v&fop.SetSize != 0 {
		if req.Size > 1<<63-1 {
			return nil, unix.EINVAL
		}
		fd, _, err := s.openFile(l, unix.O_WRONLY, false)
		if err != nil {
			return nil, err
		}
		err = unix.Ftruncate(fd, int64(req.Size))
		unix.Close(fd)
		if err != nil {
			return nil, err
		}
	}
	if v&fop.SetMode != 0 {
		if err := l.chmod(req.Mode); err != nil {
			return nil, err
		}
	}
	if v&(fop.SetAtime|fop.SetMtime|fop.SetAtimeNow|fop.SetMtimeNow) != 0 {
		ts := []unix.Timespec{
			timespec(v&fop.SetAtime != 0, v&fop.SetAtimeNow != 0, req.Atime),
			timespec(v&fop.SetMtime != 0, v&fop.SetMtimeNow != 0, req.Mtime),
		}
		if err := l.utimes(ts); err != nil {
			return nil, err
		}
	}
	a, err := l.attr()
	if err != nil {
		return nil, err
	}
	return &a, nil
}

func timespec(set, now bool, t fop.Timespec) unix.Timespec {
	switch {
	case now:
		return unix.Timespec{Nsec: unix.UTIME_NOW}
	case set:
		return unix.NsecToTimespec(t)
	}
	return unix.Timespec{Nsec: unix.UTIME_OMIT}
}

// checkCreate refuses a create request's GFID and extended attributes
// before anything is made.
func checkCreate(req *fop.CreateReq) error {
	if req.GFID.IsZero() {
		return unix.EINVAL
	}
	for _, x := range req.Xattrs {
		if err := checkXattrName(x.Name); err != nil {
			return err
		}
	}
	return nil
}

// inheritGroup applies a set-group-ID parent directory's rule to a new
// entry, as a local file system does: the entry gets the directory's
// group instead of the caller's, and a new directory the set-group-ID bit
// too. The kernel applies the same rule to the entry the brick makes, but
// the brick then sets the caller's owner and mode, so it applies the rule
// to those.
func inheritGroup(l loc, req *fop.CreateReq) error {
	var st unix.Stat_t
	if err := unix.Fstat(l.dir, &st); err != nil {
		return err
	}
	if l.wantsParent() {
		// The entry is made: these are the directory's attributes
		// after the call.
		l.after.st, l.after.ok = st, true
	}
	if st.Mode&unix.S_ISGID != 0 {
		req.GID = st.Gid
		if req.Mode&unix.S_IFMT == unix.S_IFDIR {
			req.Mode |= unix.S_ISGID
		}
	}
	return nil
}

// modeAtCreate is the mode to make an entry with. An entry is made with
// no permission at all until its owner and mode are set, unless it is to
// be the brick's own, has no set-ID or sticky bit, and grants its group
// nothing it does not grant everyone: then it is made with its mode. The
// kernel gives it the brick's user and usually the group asked for; where
// it gives another group (a set-group-ID directory, which inheritGroup
// asks for then, or a brick file system mounted with grpid), that group
// gets nothing others do not have until the chown (finishEntry).
func (s *session) modeAtCreate(req *fop.CreateReq) uint32 {
	m := req.Mode & 0o7777
	if req.UID == s.sh.uid && req.GID == s.sh.gid && m&0o7000 == 0 && (m>>3)&^m&0o7 == 0 {
		return m
	}
	return 0
}

// newEntry is a new entry as finishEntry changes it: by path (loc) or by
// its open file (fdEntry).
type newEntry interface {
	chown(uid, gid int) error
	chmod(mode uint32) error
	setxattr(name string, value []byte, flags int) error
	stat(st *unix.Stat_t) error
}

type fdEntry int

func (f fdEntry) chown(uid, gid int) error { return unix.Fchown(int(f), uid, gid) }
func (f fdEntry) chmod(mode uint32) error  { return unix.Fchmod(int(f), mode&0o7777) }
func (f fdEntry) setxattr(name string, value []byte, flags int) error {
	return unix.Fsetxattr(int(f), name, value, flags)
}
func (f fdEntry) stat(st *unix.Stat_t) error { return unix.Fstat(int(f), st) }

// finishEntry gives a new entry the owner, mode, GFID and extended
// attributes asked for, and returns its attributes. chmod is false for
// symlinks; made is the mode it was made with (modeAtCreate).
func finishEntry(e newEntry, req *fop.CreateReq, chmod bool, made uint32) (unix.Stat_t, error) {
	var st unix.Stat_t
	if made == 0 {
		// Made bare. The mode is set after the ownership, which would
		// clear set-user-ID and set-group-ID bits, and regardless of
		// the umask.
		if err := e.chown(int(req.UID), int(req.GID)); err != nil {
			return st, err
		}
		if chmod {
			if err := e.chmod(req.Mode); err != nil {
				return st, err
			}
		}
		if err := e.setxattr(fop.GFIDXattr, req.GFID[:], 0); err != nil {
			return st, err
		}
	} else {
		// Made with its mode: the owner and mode are checked, and
		// set where the kernel gave others (the group) or the umask
		// or a default ACL took bits.
		if err := e.setxattr(fop.GFIDXattr, req.GFID[:], 0); err != nil {
			return st, err
		}
		if err := e.stat(&st); err != nil {
			return st, err
		}
		changed := false
		if st.Uid != req.UID || st.Gid != req.GID {
			if err := e.chown(int(req.UID), int(req.GID)); err != nil {
				return st, err
			}
			changed = true
		}
		if chmod && (changed || st.Mode&0o7777 != req.Mode&0o7777) {
			if err := e.chmod(req.Mode); err != nil {
				return st, err
			}
			changed = true
		}
		if !changed && len(req.Xattrs) == 0 {
			return st, nil
		}
	}
	for _, x := range req.Xattrs {
		if err := e.setxattr(x.Name, x.Value, 0); err != nil {
			return st, err
		}
	}
	err := e.stat(&st)
	return st, err
}

// finishCreate gives a new entry the owner, mode, GFID and extended
// attributes asked for and returns its attributes; on failure it removes
// the entry again. chmod is false for symlinks.
func (s *session) finishCreate(l loc, req *fop.CreateReq, chmod bool, made uint32, rmFlags int) (fop.Attr, error) {
	a, err := s.finishCreateSteps(l, req, chmod, made)
	if err != nil {
		if uerr := unix.Unlinkat(l.dir, l.name, rmFlags); uerr != nil {
			s.log.Warn("brick: cannot remove a half-made entry", "name", l.name, "err", uerr)
		}
		return fop.Attr{}, err
	}
	return a, nil
}

func (s *session) finishCreateSteps(l loc, req *fop.CreateReq, chmod bool, made uint32) (fop.Attr, error) {
	if err := inheritGroup(l, req); err != nil {
		return fop.Attr{}, err
	}
	st, err := finishEntry(l, req, chmod, made)
	if err != nil {
		return fop.Attr{}, err
	}
	return fop.AttrOf(&st, req.GFID), nil
}

func (s *session) mkdir(req *fop.CreateReq, pa *parentAttr) (fop.Message, error) {
	if err := checkCreate(req); err != nil {
		return nil, err
	}
	l, err := s.resolve(req.Path)
	if err != nil {
		return nil, err
	}
	l.after = pa
	defer l.close()
	if l.isRoot() {
		return nil, unix.EEXIST
	}
	made := s.modeAtCreate(req)
	if err := unix.Mkdirat(l.dir, l.name, made); err != nil {
		return nil, err
	}
	a, err := s.finishCreate(l, req, true, made, unix.AT_REMOVEDIR)
	if err != nil {
		return nil, err
	}
	return &a, nil
}

func (s *session) mknod(req *fop.CreateReq, pa *parentAttr) (fop.Message, error) {
	if err := checkCreate(req); err != nil {
		return nil, err
	}
	if req.Rdev > 1<<32-1 {
		return nil, unix.EINVAL
	}
	switch req.Mode & unix.S_IFMT {
	case 0, unix.S_IFREG, unix.S_IFIFO, unix.S_IFSOCK, unix.S_IFCHR, unix.S_IFBLK:
	default:
		return nil, unix.EINVAL
	}
	l, err := s.resolve(req.Path)
	if err != nil {
		return nil, err
	}
	l.after = pa
	defer l.close()
	if l.isRoot() {
		return nil, unix.EEXIST
	}
	made := s.modeAtCreate(req)
	if err := unix.Mknodat(l.dir, l.name, req.Mode&unix.S_IFMT|made, int(req.Rdev)); err != nil {
		return nil, err
	}
	a, err := s.finishCreate(l, req, true, made, 0)
	if err != nil {
		return nil, err
	}
	return &a, nil
}

func (s *session) symlink(req *fop.CreateReq, pa *parentAttr) (fop.Message, error) {
	if err := checkCreate(req); err != nil {
		return nil, err
	}
	l, err := s.resolve(req.Path)
	if err != nil {
		return nil, err
	}
	l.after = pa
	defer l.close()
	if l.isRoot() {
		return nil, unix.EEXIST
	}
	// The target is stored as it is: the brick never follows it.
	if err := unix.Symlinkat(req.Target, l.dir, l.name); err != nil {
		return nil, err
	}
	a, err := s.finishCreate(l, req, false, 0, 0)
	if err != nil {
		return nil, err
	}
	return &a, nil
}

func (s *session) unlink(req *fop.PathReq, pa *parentAttr) (fop.Message, error) {
	l, err := s.resolve(req.Path)
	if err != nil {
		return nil, err
	}
	l.after = pa
	defer l.close()
	if l.isRoot() {
		return nil, unix.EISDIR
	}
	return nil, unix.Unlinkat(l.dir, l.name, 0)
}

// unlinkFile is unlink, except that a pointer entry stays and its target
// is answered (fop.OpUnlinkFile).
func (s *session) unlinkFile(req *fop.PathReq, pa *parentAttr) (fop.Message, error) {
	l, err := s.resolve(req.Path)
	if err != nil {
		return nil, err
	}
	l.after = pa
	defer l.close()
	if l.isRoot() {
		return nil, unix.EISDIR
	}
	var st unix.Stat_t
	if err := unix.Fstatat(l.dir, l.name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, err
	}
	if st.Mode == unix.S_IFREG|unix.S_ISVTX {
		v, err := optionalXattr(func(b []byte) (int, error) { return l.getxattr(linkToXattr, b) })
		if err != nil {
			return nil, err
		}
		if len(v) > 0 {
			return &fop.Blob{Data: v}, nil
		}
	}
	return &fop.Blob{}, unix.Unlinkat(l.dir, l.name, 0)
}

func (s *session) rmdir(req *fop.PathReq, pa *parentAttr) (fop.Message, error) {
	l, err := s.resolve(req.Path)
	if err != nil {
		return nil, err
	}
	l.after = pa
	defer l.close()
	if l.isRoot() {
		return nil, unix.EBUSY
	}
	return nil, unix.Unlinkat(l.dir, l.name, unix.AT_REMOVEDIR)
}

func (s *session) rename(req *fop.RenameReq) (fop.Message, error) {
	if req.Flags&^(unix.RENAME_NOREPLACE|unix.RENAME_EXCHANGE) != 0 {
		return nil, unix.EINVAL
	}
	from, to, err := s.resolve2(req.From, req.To)
	if err != nil {
		return nil, err
	}
	defer from.close()
	defer to.close()
	if from.isRoot() || to.isRoot() {
		return nil, unix.EBUSY
	}
	return nil, unix.Renameat2(from.dir, from.name, to.dir, to.name, uint(req.Flags))
}

func (s *session) link(req *fop.RenameReq, pa *parentAttr) (fop.Message, error) {
	if req.Flags != 0 {
		return nil, unix.EINVAL
	}
	from, to, err := s.resolve2(req.From, req.To)
	if err != nil {
		return nil, err
	}
	to.after = pa
	defer from.close()
	defer to.close()
	if from.isRoot() {
		return nil, unix.EPERM
	}
	if to.isRoot() {
		return nil, unix.EEXIST
	}
	// No AT_SYMLINK_FOLLOW: a symlink is linked itself.
	if err := unix.Linkat(from.dir, from.name, to.dir, to.name, 0); err != nil {
		return nil, err
	}
	a, err := to.attr()
	if err != nil {
		return nil, err
	}
	return &a, nil
}

func (s *session) resolve2(a, b string) (loc, loc, error) {
	la, err := s.resolve(a)
	if err != nil {
		return loc{}, loc{}, err
	}
	lb, err := s.resolve(b)
	if err != nil {
		la.close()
		return loc{}, loc{}, err
	}
	return la, lb, nil
}

func (s *session) readlink(req *fop.PathReq) (fop.Message, error) {
	l, err := s.resolve(req.Path)
	if err != nil {
		return nil, err
	}
	defer l.close()
	if l.isRoot() {
		return nil, unix.EINVAL
	}
	for size := 256; ; size *= 4 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(l.dir, l.name, buf)
		if err != nil {
			return nil, err
		}
		if n < size {
			return &fop.Blob{Data: buf[:n]}, nil
		}
	}
}

func (s *session) statfs(req *fop.PathReq) (fop.Message, error) {
	if _, _, err := checkPath(req.Path); err != nil {
		return nil, err
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(s.rootFD, &st); err != nil {
		return nil, err
	}
	// Block counts are in fragment-size units.
	bsize := uint32(st.Frsize)
	if bsize == 0 {
		bsize = uint32(st.Bsize)
	}
	return &fop.Statfs{
		Blocks: st.Blocks, Bfree: st.Bfree, Bavail: st.Bavail,
		Files: st.Files, Ffree: st.Ffree,
		Bsize: bsize, NameLen: uint32(st.Namelen),
	}, nil
}

// Open files.

// openFlags keeps the open flags a client may ask for and adds the ones
// the brick always uses. O_DIRECT is dropped: buffers here are not
// aligned.
func openFlags(f uint32) (int, error) {
	const keep = unix.O_ACCMODE | unix.O_APPEND | unix.O_TRUNC | unix.O_SYNC | unix.O_DSYNC | unix.O_NOATIME | unix.O_DIRECTORY
	fl := int(f) & keep
	if fl&unix.O_ACCMODE == unix.O_ACCMODE {
		return 0, unix.EINVAL
	}
	return fl | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NOCTTY | unix.O_LARGEFILE, nil
}

// openFile opens an existing regular file, or with dirOK a directory for
// reading, with flags from openFlags. The type is checked on an O_PATH
// descriptor before the open proper, which reopens that very inode: no
// device node, FIFO or socket is ever opened, and no symlink followed.
func (s *session) openFile(l loc, flags int, dirOK bool) (int, unix.Stat_t, error) {
	var st unix.Stat_t
	p := l.dir
	if !l.isRoot() {
		var err error
		p, err = unix.Openat(l.dir, l.name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, st, err
		}
		defer unix.Close(p)
	}
	if err := unix.Fstat(p, &st); err != nil {
		return -1, st, err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		if flags&unix.O_DIRECTORY != 0 {
			return -1, st, unix.ENOTDIR
		}
	case unix.S_IFDIR:
		if !dirOK || flags&unix.O_ACCMODE != unix.O_RDONLY || flags&unix.O_TRUNC != 0 {
			return -1, st, unix.EISDIR
		}
	case unix.S_IFLNK:
		return -1, st, unix.ELOOP
	default:
		return -1, st, unix.EOPNOTSUPP
	}
	// The magic link is the one symlink followed: O_NOFOLLOW would refuse it.
	fd, err := unix.Open(procFD(p), flags&^unix.O_NOFOLLOW, 0)
	if err != nil {
		return -1, st, err
	}
	if flags&unix.O_TRUNC != 0 {
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return -1, st, err
		}
	}
	return fd, st, nil
}

func (s *session) open(req *fop.OpenReq) (fop.Message, error) {
	flags, err := openFlags(req.Flags)
	if err != nil {
		return nil, err
	}
	l, err := s.resolve(req.Path)
	if err != nil {
		return nil, err
	}
	defer l.close()
	fd, st, err := s.openFile(l, flags, true)
	if err != nil {
		return nil, err
	}
	g := fdGFID(fd)
	return s.addHandle(fd, flags, g, fop.AttrOf(&st, g))
}

func (s *session) create(ctx context.Context, req *fop.CreateReq, pa *parentAttr) (fop.Message, error) {
	if err := checkCreate(req); err != nil {
		return nil, err
	}
	if len(req.Mark)%3 != 0 {
		return nil, unix.EINVAL
	}
	flags, err := openFlags(req.Flags)
	if err != nil {
		return nil, err
	}
	flags &^= unix.O_DIRECTORY
	l, err := s.resolve(req.Path)
	if err != nil {
		return nil, err
	}
	l.after = pa
	defer l.close()
	if l.isRoot() {
		if req.Flags&unix.O_EXCL != 0 {
			return nil, unix.EEXIST
		}
		return nil, unix.EISDIR
	}
	made := s.modeAtCreate(req)
	// A file this call makes is opened for reading too when the caller
	// asked for writing only, and without access time updates: a client
	// on this machine that writes it through the descriptor (local I/O,
	// FUSE passthrough) can then read back what it wrote for its
	// kernel's cache without opening it again, and without the read
	// showing (the mount's reads are served from the kernel's cache
	// anyway). The access mode is only checked for a file that exists
	// already.
	newFlags := flags | unix.O_NOATIME
	if newFlags&unix.O_ACCMODE == unix.O_WRONLY {
		newFlags = newFlags&^unix.O_ACCMODE | unix.O_RDWR
	}
	for range 8 {
		fd, err := unix.Openat(l.dir, l.name, newFlags|unix.O_CREAT|unix.O_EXCL, made)
		if err == nil {
			err := inheritGroup(l, req)
			var a fop.Attr
			if err == nil {
				a, err = s.finishCreateFD(fd, req, made)
			}
			if err == nil && len(req.Mark) > 0 {
				err = s.markCreated(ctx, fd, req.GFID, req.Path, req.Mark)
			}
			if err != nil {
				unix.Close(fd)
				if uerr := unix.Unlinkat(l.dir, l.name, 0); uerr != nil {
					s.log.Warn("brick: cannot remove a half-made file", "name", l.name, "err", uerr)
				}
				return nil, err
			}
			return s.addHandle(fd, flags, req.GFID, a)
		}
		if err != unix.EEXIST || req.Flags&unix.O_EXCL != 0 {
			return nil, err
		}
		// It exists: open it as open(2) with O_CREAT would.
		fd, st, err := s.openFile(l, flags, false)
		if err == unix.ENOENT {
			continue // removed meanwhile: create it after all
		}
		if err != nil {
			return nil, err
		}
		g := fdGFID(fd)
		if len(req.Mark) > 0 {
			if err := s.markCreated(ctx, fd, g, req.Path, req.Mark); err != nil {
				unix.Close(fd)
				return nil, err
			}
		}
		return s.addHandle(fd, flags, g, fop.AttrOf(&st, g))
	}
	return nil, unix.EAGAIN
}

// markCreated adds a create's changelog mark (fop.FeatCreateMark) to the
// file open as fd, under the writers' lock the handle keeps until its
// OpXattropRelease or the connection's end, as OpWriteDirty does for a
// first write.
func (s *session) markCreated(ctx context.Context, fd int, g fop.GFID, p string, mark []int32) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	k := inodeKey{st.Dev, st.Ino}
	if err := s.lock(ctx, afrKey{k, fop.DomainData}, false, true); err != nil {
		return err
	}
	x := changelogFile{
		get:  func(b []byte) (int, error) { return unix.Fgetxattr(fd, fop.ChangelogXattr, b) },
		set:  func(v []byte) error { return unix.Fsetxattr(fd, fop.ChangelogXattr, v, 0) },
		del:  func() error { return unix.Fremovexattr(fd, fop.ChangelogXattr) },
		gfid: g,
	}
	if _, err := s.addChangelog(x, k, p, mark); err != nil {
		_ = s.unlock(afrKey{k, fop.DomainData}, false)
		return err
	}
	return nil
}

func (s *session) finishCreateFD(fd int, req *fop.CreateReq, made uint32) (fop.Attr, error) {
	st, err := finishEntry(fdEntry(fd), req, true, made)
	if err != nil {
		return fop.Attr{}, err
	}
	return fop.AttrOf(&st, req.GFID), nil
}

func (s *session) addHandle(fd, flags int, g fop.GFID, a fop.Attr) (fop.Message, error) {
	h := &handle{fd: fd, append: flags&unix.O_APPEND != 0, gfid: g}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		unix.Close(fd)
		return nil, unix.EBADF
	}
	s.last++
	id := s.last
	s.handles[id] = h
	s.mu.Unlock()
	return &fop.OpenReply{Handle: id, Attr: a}, nil
}

// use runs fn on an open handle's descriptor, holding it open meanwhile.
func (s *session) use(id uint64, fn func(h *handle) error) error {
	s.mu.Lock()
	h := s.handles[id]
	s.mu.Unlock()
	if h == nil {
		return unix.EBADF
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.fd < 0 {
		return unix.EBADF
	}
	return fn(h)
}

func (h *handle) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fd >= 0 {
		unix.Close(h.fd)
		h.fd = -1
	}
}

func (s *session) read(req *fop.ReadReq) ([]byte, error) {
	if req.Offset < 0 {
		return nil, unix.EINVAL
	}
	var data []byte
	err := s.use(req.Handle, func(h *handle) error {
		h.ra.Advise(h.fd, req.Offset, int64(min(int(req.Size), maxRead)))
		buf := s.readBuf(min(int(req.Size), maxRead))
		n := 0
		for n < len(buf) {
			m, err := unix.Pread(h.fd, buf[n:], req.Offset+int64(n))
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				if n > 0 {
					break
				}
				return err
			}
			if m == 0 {
				break
			}
			n += m
		}
		data = buf[:n]
		return nil
	})
	return data, err
}

// bufPool lends buffers of one size, and takes back only those: a
// buffer the brick copies into again is in memory already, where a new
// one is zeroed and then faulted in page by page, which on a virtual
// machine costs more than the copy itself.
type bufPool struct {
	size int
	p    sync.Pool
}

// get returns a buffer of n bytes (at most size), pooled.
func (b *bufPool) get(n int) []byte {
	if bp, ok := b.p.Get().(*[]byte); ok {
		return (*bp)[:n]
	}
	return make([]byte, n, b.size)
}

// put takes back a buffer get gave.
func (b *bufPool) put(buf []byte) {
	if cap(buf) == b.size {
		full := buf[:b.size]
		b.p.Put(&full)
	}
}

// readBuf returns a buffer of n bytes for a read's reply, a big one from
// the brick's pool.
func (s *session) readBuf(n int) []byte {
	if n < 64<<10 {
		return make([]byte, n)
	}
	return s.sh.readBufs.get(n)
}

// ReleaseReply takes a read reply's buffer back once the reply is sent
// (rpc.ReplyReleaser).
func (s *session) ReleaseReply(op uint16, reply []byte) {
	if op == fop.OpRead {
		s.sh.readBufs.put(reply)
	}
}

// frameBufCap is the size of the pooled frame buffers: a write of the
// mount's largest (1 MiB), with its header and request fields.
const frameBufCap = 1<<20 + 4096

// FrameBuf lends the connection's reader a buffer for a big call frame
// (rpc.PayloadPool).
func (s *session) FrameBuf(n int) []byte {
	if n > frameBufCap {
		return make([]byte, n)
	}
	return s.sh.frameBufs.get(n)
}

// ReleasePayload takes a frame back once its call is answered: a write's,
// whose data went to the file and nowhere else.
func (s *session) ReleasePayload(op uint16, frame []byte) {
	if op == fop.OpWrite {
		s.sh.frameBufs.put(frame)
	}
}

func (s *session) write(req *fop.WriteReq) (fop.Message, error) {
	if req.Offset < 0 {
		return nil, unix.EINVAL
	}
	var rep fop.WriteReply
	err := s.use(req.Handle, func(h *handle) error {
		var err error
		rep, err = writeAt(h, req.Offset, req.Data)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &rep, nil
}

// writeAt writes data at off (at the end for O_APPEND handles) and returns
// the file's attributes after it.
func writeAt(h *handle, off int64, data []byte) (fop.WriteReply, error) {
	n := 0
	for n < len(data) {
		var m int
		var err error
		if h.append {
			m, err = unix.Write(h.fd, data[n:])
		} else {
			m, err = unix.Pwrite(h.fd, data[n:], off+int64(n))
		}
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			if n > 0 {
				break
			}
			return fop.WriteReply{}, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	a, err := fdAttr(h.fd, h.gfid)
	if err != nil {
		return fop.WriteReply{}, err
	}
	return fop.WriteReply{Written: uint32(n), Attr: a}, nil
}

func (s *session) release(req *fop.HandleReq) (fop.Message, error) {
	s.mu.Lock()
	h := s.handles[req.Handle]
	delete(s.handles, req.Handle)
	s.mu.Unlock()
	if h == nil {
		return nil, unix.EBADF
	}
	h.close()
	s.dropHandleLocks(req.Handle)
	return nil, nil
}

func (s *session) fsync(req *fop.HandleReq) (fop.Message, error) {
	return nil, s.use(req.Handle, func(h *handle) error {
		if req.Flag {
			return unix.Fdatasync(h.fd)
		}
		return unix.Fsync(h.fd)
	})
}

// Directories.

var direntBufs = sync.Pool{New: func() any { b := make([]byte, getdentsBuf); return &b }}

func (s *session) readdir(req *fop.ReaddirReq) (fop.Message, error) {
	dir, name, err := checkPath(req.Path)
	if err != nil {
		return nil, err
	}
	if req.Cookie > 1<<63-1 {
		return nil, unix.EINVAL
	}
	root := name == ""
	var fd int
	if root {
		fd, err = unix.Openat(s.rootFD, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	} else {
		p := name
		if dir != "" {
			p = dir + "/" + name
		}
		fd, err = s.openBeneath(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC)
	}
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	if req.Cookie != 0 {
		if _, err := unix.Seek(fd, int64(req.Cookie), 0); err != nil {
			return nil, err
		}
	}
	max := int(req.Max)
	if max == 0 {
		max = defaultReaddirMax
	}
	max = min(max, maxReaddirMax)
	bp := direntBufs.Get().(*[]byte)
	defer direntBufs.Put(bp)
	buf := *bp
	var xbufArr [4096]byte // an entry's extended attribute names
	xbuf := xbufArr[:]
	rep := &fop.ReaddirReply{}
	size := 0
	for len(rep.Entries) < max && size < readdirBudget {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			rep.EOF = true
			break
		}
		// linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
		for off := 0; off+19 <= n && len(rep.Entries) < max && size < readdirBudget; {
			reclen := int(binary.NativeEndian.Uint16(buf[off+16:]))
			if reclen < 19 || off+reclen > n {
				return nil, unix.EIO
			}
			cookie := binary.NativeEndian.Uint64(buf[off+8:])
			nb := buf[off+19 : off+reclen]
			off += reclen
			if i := indexZero(nb); i >= 0 {
				nb = nb[:i]
			}
			if string(nb) == "." || string(nb) == ".." || (root && string(nb) == internalDir) {
				continue
			}
			ename := string(nb)
			var st unix.Stat_t
			if err := unix.Fstatat(fd, ename, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				if err == unix.ENOENT {
					continue // removed since it was listed
				}
				return nil, err
			}
			el := loc{dir: fd, name: ename}
			en := fop.Dirent{Name: ename, Cookie: cookie}
			// One listing of the entry's extended attribute names tells
			// which are there: the GFID and a pointer entry's target are read
			// only when they are, and the mount learns which of ls -l's
			// attributes the entry has.
			names, lerr := el.listxattr(xbuf)
			hasGFID, hasLinkTo := true, st.Mode&unix.S_IFMT != unix.S_IFDIR
			if lerr == nil {
				var has [len(fop.ListingXattrs)]bool
				hasGFID, hasLinkTo = false, false
				for _, x := range bytes.Split(xbuf[:names], []byte{0}) {
					switch string(x) {
					case fop.GFIDXattr:
						hasGFID = true
					case linkToXattr:
						hasLinkTo = st.Mode&unix.S_IFMT != unix.S_IFDIR
					}
					for i, n := range fop.ListingXattrs {
						has[i] = has[i] || string(x) == n
					}
				}
				if s.features.Load()&fop.FeatListingXattrs != 0 {
					en.Xattrs = fop.XattrsKnown
					for i := range has {
						if has[i] {
							en.Xattrs |= 1 << i
						}
					}
				}
			}
			var gfid fop.GFID
			if hasGFID {
				gfid = el.readGFID()
			}
			en.Attr = fop.AttrOf(&st, gfid)
			if hasLinkTo {
				v, err := optionalXattr(func(b []byte) (int, error) { return el.getxattr(linkToXattr, b) })
				if err == nil {
					en.LinkTo = string(v)
				}
			}
			rep.Entries = append(rep.Entries, en)
			size += 4 + len(en.Name) + 8 + attrSize + 4 + len(en.LinkTo)
		}
	}
	return rep, nil
}

// attrSize is the encoded size of a fop.Attr.
const attrSize = 16 + 8 + 4*4 + 8*3 + 4 + 8*3

func indexZero(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return -1
}

// Extended attributes.

func (s *session) getxattr(req *fop.XattrReq) (fop.Message, error) {
	if err := checkXattrName(req.Name); err != nil {
		return nil, err
	}
	l, err := s.resolve(req.Path)
	if err != nil {
		return nil, err
	}
	defer l.close()
	v, err := xattrValue(func(b []byte) (int, error) { return l.getxattr(req.Name, b) })
	if err != nil {
		return nil, err
	}
	return &fop.Blob{Data: v}, nil
}

func (s *session) setxattr(req *fop.XattrReq) (fop.Message, error) {
	if err := checkXattrName(req.Name); err != nil {
		return nil, err
	}
	if req.Flags&^(unix.XATTR_CREATE|unix.XATTR_REPLACE) != 0 {
		return nil, unix.EINVAL
	}
	l, err := s.resolve(req.Path)
	if err != nil {
		return nil, err
	}
	defer l.close()
	return nil, l.setxattr(req.Name, req.Value, int(req.Flags))
}

func (s *session) removexattr(req *fop.XattrReq) (fop.Message, error) {
	if err := checkXattrName(req.Name); err != nil {
		return nil, err
	}
	l, err := s.resolve(req.Path)
	if err != nil {
		return nil, err
	}
	defer l.close()
	return nil, l.removexattr(req.Name)
}

// listxattr lists the names a client may see: user.*, security.* and the
// POSIX ACLs. The brick's own trusted.* names are hidden, including the
// two the client layers read and write by name.
func (s *session) listxattr(req *fop.PathReq) (fop.Message, error) {
	l, err := s.resolve(req.Path)
	if err != nil {
		return nil, err
	}
	defer l.close()
	names, err := xattrValue(l.listxattr)
	if err != nil {
		return nil, err
	}
	out := names[:0]
	for rest := names; len(rest) > 0; {
		i := indexZero(rest)
		if i < 0 {
			i = len(rest)
		}
		name := rest[:i]
		if classify(string(name)) == xattrClient {
			out = append(out, name...)
			out = append(out, 0)
		}
		rest = rest[min(i+1, len(rest)):]
	}
	return &fop.Blob{Data: out}, nil
}

var _ rpc.Session = (*session)(nil)

var _ rpc.Inliner = (*session)(nil)

// Inline names the calls the connection's reader may serve itself
// (rpc.Inliner): quick ones on one name or handle, which wait for no
// other call. Not a create with a replication mark: it takes the file's
// writers' lock, which a heal by the same client may hold (an existing
// file), and the heal's unlock would wait behind it to be read.
func (s *session) Inline(op uint16, payload []byte) bool {
	switch op {
	case fop.OpLookup, fop.OpGetattr, fop.OpOpen, fop.OpRelease, fop.OpFgetattr,
		fop.OpUnlink, fop.OpUnlinkFile, fop.OpMkdir, fop.OpRmdir, fop.OpStatfs:
		return true
	case fop.OpCreate:
		var req fop.CreateReq
		return fop.Unmarshal(payload, &req) == nil && len(req.Mark) == 0
	}
	return false
}
