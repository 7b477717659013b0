package mount

import (
	"context"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/fop"
)

// FUSE passthrough (Options.Passthrough).
//
// A file opened for writing whose only copy sits on a brick of this
// machine (a distributed volume's file on a local brick) is handed to the
// kernel: go-fuse registers a descriptor of the brick's file
// (fop.Passthrougher) as the open file's backing file, and the kernel
// reads and writes it itself, as it would a local file. No WRITE or READ
// request reaches the mount; the data is copied once, into the brick
// file's pages, where it went through the mount four times.
//
// What the mount does instead:
//   - it takes the descriptor in Open or Create, which may wait for the
//     file's pending writes and the brick; go-fuse asks for it
//     afterwards under one mutex of the whole mount, where nothing is to
//     wait (file.takeFD, file.PassthroughFd);
//   - it only asks for passthrough when the file is not open otherwise on
//     this mount: the kernel refuses a passthrough open beside opens that
//     use its page cache, and gives every open of the file passthrough
//     while one is (go-fuse shares the backing file, also with an open
//     that comes while the last one's release is still under way: such
//     an open gets the node's passthrough state too, file.settle);
//   - writes by the kernel do not clear set-ID bits (the backing file is
//     written with the mount's credentials): files with such bits, and
//     files whose bits the mount does not know, are not passed through;
//   - the bricks do not see the writes, so the mount tells them
//     (fop.OpLocalWrote, which they turn into upcalls to their other
//     clients) at every close and fsync of the file, and every
//     passthroughTick while it is open, when its size or times changed;
//   - attributes learned at a close are not kept for the file (the
//     kernel's own are refreshed after each of its writes);
//   - when go-fuse cannot register a descriptor with the kernel (a
//     kernel without passthrough, a brick on a stacked file system) it
//     stops passthrough for the mount, without a word: the mount finds
//     out from the file's first read or write through it, or from an
//     open go-fuse did not ask about, and stops taking descriptors.
//
// Files opened read-only, appending or for direct I/O, and every file of
// a replicated volume, whose writes must reach each copy, keep the
// mount's path.

// passthroughTick is how often the mount looks for the kernel's writes to
// an open passthrough file, to tell the bricks' other clients.
const passthroughTick = time.Second

// ptCacheMax is the largest file whose data the mount puts in the
// kernel's cache when its last passthrough file closes.
const ptCacheMax = 256 << 10

// ptReadMin is the smallest file opened for reading in passthrough.
const ptReadMin = 1 << 20

// passthroughTimeout bounds taking a brick's descriptor (a round trip at
// most).
const passthroughTimeout = 30 * time.Second

// ptFile is a node's passthrough state: a descriptor of its copy, kept
// while any file of the node is open. It is taken from the brick by an
// open (file.takeFD), and becomes the node's when go-fuse hands it to
// the kernel (file.PassthroughFd) or passes the open through on a
// backing file it still holds (file.settle).
type ptFile struct {
	n    *node
	f    *file // the open that took it
	vol  fop.Passthrougher
	h    uint64 // the handle that took the descriptor: the brick to tell
	gfid fop.GFID
	fd   int
	// reused: the open that took it was passed through on the backing
	// file of an earlier open, whose close may have filled the kernel's
	// cache meanwhile (ptFile.end).
	reused bool

	mu sync.Mutex
	// tick tells the bricks every passthroughTick (nil until armed).
	tick *time.Timer
	last unix.Stat_t // size and times last told
	// posted: the last notice was not waited for (the ticker's), so a
	// close waits for one even with nothing new.
	posted bool
	done   bool
}

// What became of an open, for passthrough (file.pass).
const (
	// passUnknown: go-fuse has not asked for a descriptor (yet). Once
	// it answered the open, the open was passed through on the backing
	// file go-fuse held for the node (it does not ask then), or go-fuse
	// passes nothing through any more.
	passUnknown uint32 = iota
	passNo             // not passed through
	passFD             // given the descriptor it took (file.PassthroughFd)
	passReused         // passed through on the node's earlier backing file
)

// go-fuse (fs/bridge.go, rawBridge.addBackingID, v2.12) decides on
// passthrough after Open or Create returned and before it answers the
// kernel, holding one mutex of the whole mount (backingMu): it asks
// PassthroughFd only when it holds no backing file for the node, and
// otherwise passes the open through on the one it holds, without a
// word; it holds that one until every open passed through on it was
// released, after Release returned. A failed registration of the
// descriptor returned stops passthrough for the whole mount, again
// without a word. The kernel's first request on the open comes after
// the answer, so by then the mount can tell what became of it
// (file.settle), and a read or a write the kernel sends shows it was not
// passed through (file.throughMount).

var _ fs.FilePassthroughFder = (*file)(nil)

// PassthroughFd hands go-fuse the descriptor the open took (takeFD) for
// the kernel to read and write the file through (FUSE passthrough), when
// it may. go-fuse calls it under a mutex of the whole mount: it does not
// wait for anything.
func (f *file) PassthroughFd() (int, bool) {
	if f.pass.Load() != passUnknown {
		return -1, false // not to be passed through (Options.Passthrough off)
	}
	n := f.n
	n.mu.Lock()
	p := f.pend
	f.pend = nil
	// Asked: go-fuse holds no backing file of the node.
	n.ptMaybe = false
	_, mine := n.files[f]
	ok := p != nil && f.pass.Load() == passUnknown && f.mayPass() && mine && len(n.files) == 1 && n.pt == nil
	if ok {
		n.pt = p
		n.ptMaybe = true
		n.inv++ // what a close learned before is not the file's any more
		n.freshInv = 0
		f.pass.Store(passFD)
	} else if f.pass.Load() == passUnknown {
		f.pass.Store(passNo)
	}
	n.mu.Unlock()
	if !ok {
		p.drop()
		return -1, false
	}
	p.arm()
	return p.fd, true
}

// mayPass reports whether the open may be passed through, as far as its
// flags and the file's set-ID bits go.
func (f *file) mayPass() bool {
	if f.flags&syscall.O_ACCMODE == syscall.O_RDONLY && !f.n.readThrough() || f.flags&(syscall.O_APPEND|syscall.O_DIRECT) != 0 {
		return false
	}
	return f.n.priv.Load() == privNone
}

// takeFD takes from the brick, at the end of an open or a create, the
// descriptor go-fuse may hand the kernel (PassthroughFd, which must not
// wait for a brick): when the open may be passed through and is the
// node's only one, and for any open for writing that go-fuse may pass
// through on a backing file it still holds (node.ptMaybe), whose writes
// the bricks are then told of with it. A descriptor that does not become
// the node's passthrough state is closed once go-fuse shows what became
// of the open (settle).
func (f *file) takeFD(ctx context.Context) {
	n := f.n
	pt, ok := f.vol.(fop.Passthrougher)
	if !ok || f.pass.Load() != passUnknown || n.opts.passthroughOff() {
		return
	}
	n.mu.Lock()
	_, mine := n.files[f]
	alone := mine && len(n.files) == 1 && n.pt == nil
	reuse := n.ptMaybe && n.pt == nil && f.flags&syscall.O_ACCMODE != syscall.O_RDONLY
	n.mu.Unlock()
	if !(alone && f.mayPass()) && !reuse {
		return
	}
	f.mu.Lock()
	h, opened := f.h, f.opened
	f.mu.Unlock()
	if !opened {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, passthroughTimeout)
	defer cancel()
	fd, gfid, ok := pt.PassthroughFD(ctx, h)
	if !ok {
		return
	}
	p := &ptFile{n: n, f: f, vol: pt, h: h, gfid: gfid, fd: fd}
	if err := unix.Fstat(fd, &p.last); err != nil {
		unix.Close(fd)
		return
	}
	n.mu.Lock()
	f.pend = p
	n.mu.Unlock()
	if reuse {
		// Should go-fuse not ask, the ticks find out what became of the
		// open before its first request (settle).
		p.arm()
	}
}

// settle records what became of an open go-fuse did not ask
// PassthroughFd about, once go-fuse answered the kernel (final: called
// for one of the kernel's requests on the open, which come after; a tick
// may come before, and decides only on a reuse). Not asked, the open was
// passed through on the node's backing file when go-fuse still held one
// (node.ptMaybe), which the descriptor the open took then stands for as
// the node's passthrough state; otherwise go-fuse passes nothing through
// any more.
func (f *file) settle(final bool) uint32 {
	if s := f.pass.Load(); s != passUnknown {
		return s
	}
	n := f.n
	n.mu.Lock()
	s := f.pass.Load()
	if s != passUnknown {
		n.mu.Unlock()
		return s
	}
	p := f.pend
	var mine *ptFile
	switch {
	case n.opts.passthroughOff():
		s = passNo
	case n.ptMaybe:
		s = passReused
		if n.pt == nil && p != nil {
			n.pt, mine, p = p, p, nil
			mine.reused = true
			n.inv++
			n.freshInv = 0
		}
	case final:
		// Not asked, and no backing file to reuse: go-fuse stopped
		// passthrough (a registration failed).
		n.opts.stopPassthrough()
		s = passNo
	default:
		n.mu.Unlock()
		return passUnknown
	}
	f.pend = nil
	f.pass.Store(s)
	n.mu.Unlock()
	p.drop()
	mine.arm()
	return s
}

// throughMount records that the kernel sent the mount a read or a write
// of the open: it is not passed through (the kernel sends none for a
// passthrough open), whatever the mount took it for. An open that was
// given the mount's descriptor or taken for a reuse (or that go-fuse did
// not ask about) then shows that go-fuse failed to register a backing
// file, and passes nothing through any more: the open's passthrough
// state, which would tell the bricks of the mount's own writes, goes.
func (f *file) throughMount() {
	if f.pass.Load() == passNo {
		return
	}
	n := f.n
	n.mu.Lock()
	if f.pass.Load() == passNo {
		n.mu.Unlock()
		return
	}
	f.pass.Store(passNo)
	p := f.pend
	f.pend = nil
	var orphan *ptFile
	if n.pt != nil && n.pt.f == f {
		orphan, n.pt = n.pt, nil
	}
	n.mu.Unlock()
	n.opts.stopPassthrough()
	p.drop()
	orphan.drop()
}

// arm starts the ticks (ticked), once.
func (p *ptFile) arm() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.done && p.tick == nil {
		p.tick = time.AfterFunc(passthroughTick, p.ticked)
	}
}

// drop closes a descriptor that is no node's passthrough state (any
// more), telling no one: the kernel does not write through it.
func (p *ptFile) drop() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finishLocked() {
		unix.Close(p.fd)
	}
}

// finishLocked marks p done and stops its ticks, with p.mu held; false
// when it was done already.
func (p *ptFile) finishLocked() bool {
	if p.done {
		return false
	}
	p.done = true
	if p.tick != nil {
		p.tick.Stop()
	}
	return true
}

// ticked tells the bricks of the kernel's writes, every passthroughTick
// until the node's last file closes (a timer, not a goroutine: most
// files close well before the first tick).
func (p *ptFile) ticked() {
	n := p.n
	if n.passthrough() != p {
		// Taken at an open go-fuse may have passed through without
		// asking for it: the node's once that shows (settle); closed if
		// not.
		p.f.settle(false)
	}
	if n.passthrough() == p {
		p.tell(context.Background(), false)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.done {
		p.tick.Reset(passthroughTick)
	}
}

// tell sends fop.OpLocalWrote when the file's size or times changed since
// the last time, and records the change on the node; with wait (a close,
// an fsync), it returns once the brick told its other clients.
func (p *ptFile) tell(ctx context.Context, wait bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return
	}
	var st unix.Stat_t
	if err := unix.Fstat(p.fd, &st); err != nil {
		return
	}
	same := st.Size == p.last.Size && st.Mtim == p.last.Mtim && st.Ctim == p.last.Ctim
	if same && !(wait && p.posted) {
		return
	}
	if !same {
		p.killPriv(&st)
		p.last = st
		p.n.changed()
	}
	p.posted = !wait
	_ = p.vol.PassthroughWrote(ctx, p.h, p.gfid, wait)
}

// end tells the bricks a last time, once the node's last file closed,
// and closes the descriptor. The file's attributes and, for a small file,
// its data then go where the mount's path would have left them: the
// attributes for the kernel's next getattr (node.learned), the data in
// the kernel's cache for the next open (it kept what went through it).
func (p *ptFile) end(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.finishLocked() {
		return
	}
	defer unix.Close(p.fd)
	n := p.n
	var st unix.Stat_t
	if err := unix.Fstat(p.fd, &st); err != nil {
		n.changed()
		return
	}
	if st.Size != p.last.Size || st.Mtim != p.last.Mtim || st.Ctim != p.last.Ctim {
		p.killPriv(&st)
		_ = p.vol.PassthroughWrote(ctx, p.h, p.gfid, false)
	}
	if p.reused {
		// The close of the open whose backing file this one reused may
		// have put the file's data in the kernel's cache after it
		// began, and its writes went around it.
		n.EmbeddedInode().NotifyContent(0, 0)
	}
	if n.cache == nil {
		n.changed()
		return
	}
	// The attributes read after the change count: a change by another
	// client after the fstat counts again, and they are not used.
	inv := n.changed()
	if err := unix.Fstat(p.fd, &st); err != nil {
		return
	}
	a := fop.AttrOf(&st, p.gfid)
	n.learned(a, inv, 0)
	if st.Size == 0 || st.Size > ptCacheMax {
		return
	}
	inv = n.changeCount()
	rfd, err := readableFD(p.fd)
	if err != nil {
		return
	}
	if rfd != p.fd {
		defer unix.Close(rfd)
	}
	buf := make([]byte, st.Size)
	m, err := unix.Pread(rfd, buf, 0)
	if err != nil || m != len(buf) {
		return
	}
	in := n.EmbeddedInode()
	if in.WriteCache(0, buf) == 0 && n.changeCount() != inv {
		// Another client changed the file meanwhile: its upcall may have
		// dropped the pages before they were stored.
		in.NotifyContent(0, 0)
	}
}

// killPriv clears set-ID bits the file gained while passed through (a
// chmod after its open, here or on another mount) once the kernel wrote
// to it: the kernel writes the backing file with the mount's
// credentials and leaves clearing them to the mount (HandleKillPriv),
// whose write path these writes skip. Who wrote is not known here, so a
// write by a process with CAP_FSETID clears them too (the safe way). A
// file with the bits at its open is not passed through at all.
func (p *ptFile) killPriv(st *unix.Stat_t) {
	bits := privBits(st.Mode)
	if bits == 0 {
		return
	}
	if err := unix.Fchmod(p.fd, st.Mode&07777&^bits); err != nil {
		return
	}
	_ = unix.Fstat(p.fd, st)
}

// readableFD returns fd when it is open for reading without access time
// updates, else a new descriptor of its file open so, made through its
// /proc link (O_NOATIME: reading back what was written is not a read
// the brick's file system is to record; the mount is root). A file a
// create made is open so on the brick whatever the caller asked.
func readableFD(fd int) (int, error) {
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return -1, err
	}
	if fl&unix.O_ACCMODE != unix.O_WRONLY && fl&unix.O_NOATIME != 0 {
		return fd, nil
	}
	return unix.Open("/proc/self/fd/"+strconv.Itoa(fd), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOATIME, 0)
}

// mayHaveWritten tells the brick of writes the kernel may have made
// through f, an open go-fuse passed through on the node's earlier
// backing file (settle) without the node's passthrough state (the
// brick's descriptor could not be had, or another open's state went with
// the node's last close): nothing else would tell the other clients.
func (f *file) mayHaveWritten(ctx context.Context) {
	n := f.n
	if f.pass.Load() != passReused || f.flags&syscall.O_ACCMODE == syscall.O_RDONLY {
		return
	}
	h, opened := f.openedHandle()
	pt, ok := f.vol.(fop.Passthrougher)
	if !opened || !ok {
		return
	}
	n.mu.Lock()
	gfid := n.last.GFID
	n.mu.Unlock()
	n.changed()
	// The last close may have put the file's data in the kernel's cache
	// (ptFile.end) after such an open, whose writes went around it.
	n.EmbeddedInode().NotifyContent(0, 0)
	_ = pt.PassthroughWrote(ctx, h, gfid, true)
}

// readThrough reports whether a read-only open of the node is to be
// passed through: a big file, read faster by the kernel from its copy's
// pages than through the mount, where the open's round trip to the brick
// is small beside the reads (a small file's open is deferred instead,
// and read from the kernel's cache without one).
func (n *node) readThrough() bool {
	return n.opts.Passthrough && n.size.Load() >= ptReadMin
}

// passthrough returns the node's passthrough state, nil when its files
// are not passed through.
func (n *node) passthrough() *ptFile {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.pt
}
