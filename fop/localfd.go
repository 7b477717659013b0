package fop

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/readahead"
)

// Local I/O: a mount reads and writes a file whose copy sits on a brick of
// its own machine straight in that copy, without the brick copying the
// data into a reply or out of a call, and the mount out of one or into
// one. The brick names the descriptor its handle holds (OpLocalFD) and
// the client takes a duplicate of it from the brick process with
// pidfd_getfd(2), which only a process allowed to trace the brick may do
// (root). The duplicate is checked to be the file the brick named
// (device and inode) before it serves a byte. A write through it is
// told to the brick after the fact (OpLocalWrote), which tells the other
// clients as it does of its own writes (upcalls).

// OpLocalFD names the descriptor behind an open handle (HandleReq →
// LocalFDReply). A brick refuses it for handles open for direct I/O.
const OpLocalFD uint16 = 173

// OpLocalWrote tells the brick that the client wrote through its
// duplicate of a handle's descriptor (LocalWroteReq, sent without
// waiting for a reply).
const OpLocalWrote uint16 = 174

// LocalFDReply is the brick's descriptor number for a handle, the file it
// is open on, and that file's GFID.
type LocalFDReply struct {
	FD   uint32
	Dev  uint64
	Ino  uint64
	GFID GFID
}

func (m *LocalFDReply) Encode(e *Encoder) { e.U32(m.FD); e.U64(m.Dev); e.U64(m.Ino); e.GFID(m.GFID) }
func (m *LocalFDReply) Decode(d *Decoder) {
	m.FD = d.U32()
	m.Dev = d.U64()
	m.Ino = d.U64()
	m.GFID = d.GFID()
}

// localFDSize is an encoded LocalFDReply's length; localFDMagic ends a
// reply that carries one (FeatLocalFD).
const (
	localFDSize  = 4 + 8 + 8 + 16
	localFDMagic = 0x4c4f4644 // "LOFD"
)

// AppendLocalFD ends a create's or open's reply with the new handle's
// descriptor (FeatLocalFD).
func AppendLocalFD(reply []byte, l LocalFDReply) []byte {
	e := Encoder{b: reply}
	l.Encode(&e)
	return binary.BigEndian.AppendUint32(e.b, localFDMagic)
}

// SplitLocalFD takes the handle's descriptor off the end of a create's or
// open's reply, when it is there.
func SplitLocalFD(b []byte) ([]byte, LocalFDReply, bool) {
	if len(b) < localFDSize+4 || binary.BigEndian.Uint32(b[len(b)-4:]) != localFDMagic {
		return b, LocalFDReply{}, false
	}
	body, tail := b[:len(b)-4-localFDSize], b[len(b)-4-localFDSize:len(b)-4]
	var l LocalFDReply
	if err := Unmarshal(tail, &l); err != nil {
		return b, LocalFDReply{}, false
	}
	return body, l, true
}

// LocalWroteReq is a write a client made through a handle's descriptor.
// It names the file by its GFID too: a brick serves posted calls at
// once, so the handle's release, posted next, may be served first.
type LocalWroteReq struct {
	Handle uint64
	GFID   GFID
	Offset int64
	Length uint32
}

func (m *LocalWroteReq) Encode(e *Encoder) {
	e.U64(m.Handle)
	e.GFID(m.GFID)
	e.I64(m.Offset)
	e.U32(m.Length)
}

func (m *LocalWroteReq) Decode(d *Decoder) {
	m.Handle = d.U64()
	m.GFID = d.GFID()
	m.Offset = d.I64()
	m.Length = d.U32()
}

// LocalReader is implemented by the layers that can read an open file's
// data straight from its copy on a brick of this machine. ReadLocal reads
// into buf at off as pread(2) does; ok false means the read must go
// through Read: the copy reads go to is on another machine, its brick is
// gone, or a layer has writes of the file in flight.
type LocalReader interface {
	ReadLocal(ctx context.Context, h uint64, buf []byte, off int64) (n int, ok bool)
}

// LocalFDReader is implemented by the layers that can hand out, for one
// read of size bytes at off, a descriptor of an open file's copy on a
// brick of this machine, when ReadLocal would read from it: the mount
// has the kernel splice the data from it into its reply, a copy fewer
// than ReadLocal's pread and the reply's write. fd is the caller's to
// close; ok false means as ReadLocal's.
type LocalFDReader interface {
	LocalReadFD(ctx context.Context, h uint64, off int64, size int) (fd int, ok bool)
}

// LocalPeer is a Caller that can tell the process at the other end of its
// current connection, when that is a brick of this machine: its process
// ID in this process's PID namespace, the connection's number
// (ConnCounter) and a channel closed when the connection ends.
type LocalPeer interface {
	LocalPeer() (pid int, conn uint64, done <-chan struct{}, ok bool)
}

// localFDs are the descriptors a Client took from its brick, by handle.
// Reads hold mu for reading while they use one, so none is closed under
// a read (its number could be another file's by then).
type localFDs struct {
	mu   sync.RWMutex
	conn uint64
	fds  map[uint64]*localFile // fd -1: the handle's data is not to be had locally
	off  bool                  // the brick or the kernel refused: stop asking
	// watched is the connection whose end a goroutine waits for.
	watched uint64
}

// offeredFD marks a descriptor the brick named in a create's or open's
// reply and the client did not take yet (localFile.offer).
const offeredFD = -2

// localFile is a descriptor taken from the brick: fd -1 when there is
// none to be had, offeredFD when the brick named one not taken yet.
type localFile struct {
	offer    LocalFDReply
	fd       int
	gfid     GFID
	readable bool
	writable bool // and not O_APPEND: an appending write keeps the brick's path
	ra       readahead.Tracker
	// wmu takes the file's writes one at a time: writes of one file
	// wait for each other on its inode's lock anyway, where the kernel
	// spins while the holder copies on the other CPU.
	wmu sync.Mutex
	// wrote: a write went through the descriptor since the last
	// Barrier; guarded by wmu.
	wrote bool
	// direct is the copy opened again with O_DIRECT, for big aligned
	// writes (directWrites), and its alignment rules; guarded by wmu.
	direct directFD
}

// close closes the file's descriptors.
func (f *localFile) close() {
	if f.fd >= 0 {
		unix.Close(f.fd)
	}
	f.direct.close()
}

// file is handle h's descriptor on connection conn, with l.mu held for
// reading; known is false when there is none yet (nothing asked, or an
// offer not taken), f nil when there is none to be had.
func (l *localFDs) file(conn, h uint64) (f *localFile, known bool) {
	if l.conn != conn {
		return nil, false
	}
	f, known = l.fds[h]
	switch {
	case known && f.fd == offeredFD:
		return nil, false
	case !known:
		return nil, l.off
	case f.fd < 0:
		return nil, true
	}
	return f, true
}

// pread reads from handle h's descriptor on connection conn; known is
// false when there is none yet, ok false when it is not to be had.
func (l *localFDs) pread(conn, h uint64, buf []byte, off int64) (n int, known, ok bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	f, known := l.file(conn, h)
	if f == nil || !f.readable {
		return 0, known, false
	}
	fd := f.fd
	f.ra.Advise(fd, off, int64(len(buf)))
	for n < len(buf) {
		m, err := unix.Pread(fd, buf[n:], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, true, false // the brick's protocol reports it
		}
		if m == 0 {
			break // end of file
		}
		n += m
	}
	return n, true, true
}

// dupForRead duplicates handle h's descriptor on connection conn for a
// read of size bytes at off; known and ok as pread's.
func (l *localFDs) dupForRead(conn, h uint64, off int64, size int) (fd int, known, ok bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	f, known := l.file(conn, h)
	if f == nil || !f.readable {
		return -1, known, false
	}
	fd, err := unix.FcntlInt(uintptr(f.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, true, false
	}
	// Never O_DIRECT (checkLocalFD), whose alignment rules a splice
	// would keep.
	return fd, true, true
}

// put keeps f (nil: none to be had) for handle h of connection conn,
// unless the connection changed or another call put one first. A new
// connection drops the descriptors of the last one (their handles died
// with it).
func (l *localFDs) put(conn, h uint64, f *localFile, done <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != conn {
		l.closeAllLocked()
		l.conn = conn
	}
	if l.watched != conn {
		// The connection's end closes its descriptors at once, whether
		// or not a read or write comes to see it (a replicate layer that
		// marked the brick down asks no more).
		l.watched = conn
		go func() {
			<-done
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.conn == conn {
				l.closeAllLocked()
			}
		}()
	}
	if f == nil {
		f = &localFile{fd: -1}
	}
	if old, ok := l.fds[h]; ok && old.fd != offeredFD {
		if f.fd >= 0 {
			unix.Close(f.fd)
		}
		return
	}
	if l.fds == nil {
		l.fds = map[uint64]*localFile{}
	}
	l.fds[h] = f
}

// offered returns what the brick named for handle h of connection conn,
// when the client did not take it yet.
func (l *localFDs) offered(conn, h uint64) (LocalFDReply, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if f, ok := l.fds[h]; ok && l.conn == conn && f.fd == offeredFD {
		return f.offer, true
	}
	return LocalFDReply{}, false
}

// pwrite writes through handle h's descriptor on connection conn, and
// returns the file's attributes after it; known is false when there is
// no descriptor yet, ok false when writes must go to the brick.
func (l *localFDs) pwrite(conn, h uint64, data []byte, off int64) (r WriteReply, err error, known, ok bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	f, known := l.file(conn, h)
	if f == nil || !f.writable {
		return r, nil, known, false
	}
	f.wmu.Lock()
	defer f.wmu.Unlock()
	n := 0
	if dfd, ok := f.direct.fits(f.fd, data, off); ok {
		n = f.direct.write(dfd, data, off)
	}
	for n < len(data) {
		m, err := unix.Pwrite(f.fd, data[n:], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			if n > 0 {
				break // a short write, as the brick reports one
			}
			return r, err, true, true
		}
		if m == 0 {
			break
		}
		n += m
	}
	f.wrote = true
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err != nil {
		return r, err, true, true
	}
	return WriteReply{Written: uint32(n), Attr: AttrOf(&st, f.gfid)}, nil, true, true
}

// takeWrote reports whether handle h wrote through its descriptor since
// the last call, with the file's GFID, and starts over.
func (l *localFDs) takeWrote(h uint64) (GFID, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	f, ok := l.fds[h]
	if !ok || f.fd < 0 {
		return GFID{}, false
	}
	f.wmu.Lock()
	defer f.wmu.Unlock()
	w := f.wrote
	f.wrote = false
	return f.gfid, w
}

// closeAllIfAny closes every descriptor (their brick is gone), when there
// are any: a client over TCP never takes the write lock.
func (l *localFDs) closeAllIfAny() {
	l.mu.RLock()
	n := len(l.fds)
	l.mu.RUnlock()
	if n == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closeAllLocked()
}

func (l *localFDs) closeAllLocked() {
	for _, f := range l.fds {
		f.close()
	}
	l.fds = nil
}

// drop closes handle h's descriptor, at its release.
func (l *localFDs) drop(h uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f, ok := l.fds[h]; ok {
		f.close()
		delete(l.fds, h)
	}
}

var _ LocalReader = (*Client)(nil)

// ReadLocal asks the brick for the descriptor behind h the first time and
// reads from a duplicate of it, kept until h's Release or the
// connection's end.
func (c *Client) ReadLocal(ctx context.Context, h uint64, buf []byte, off int64) (int, bool) {
	lp, ok := c.c.(LocalPeer)
	if !ok || c.NoLocalIO {
		return 0, false
	}
	pid, conn, done, ok := c.localPeer(lp)
	if !ok {
		return 0, false
	}
	if n, known, ok := c.local.pread(conn, h, buf, off); known {
		return n, ok
	}
	if !c.ensureFD(ctx, pid, conn, done, h, off > 0) {
		return 0, false
	}
	n, _, ok := c.local.pread(conn, h, buf, off)
	return n, ok
}

var _ LocalFDReader = (*Client)(nil)

// LocalReadFD is ReadLocal's descriptor, duplicated for one read
// (LocalFDReader).
func (c *Client) LocalReadFD(ctx context.Context, h uint64, off int64, size int) (int, bool) {
	lp, ok := c.c.(LocalPeer)
	if !ok || c.NoLocalIO {
		return -1, false
	}
	pid, conn, done, ok := c.localPeer(lp)
	if !ok {
		return -1, false
	}
	if fd, known, ok := c.local.dupForRead(conn, h, off, size); known {
		return fd, ok
	}
	if !c.ensureFD(ctx, pid, conn, done, h, off > 0) {
		return -1, false
	}
	fd, _, ok := c.local.dupForRead(conn, h, off, size)
	return fd, ok
}

// Local reports whether the brick is on this machine and reached through
// its Unix socket now (a replica set reads from such a copy first:
// cluster.choose-local).
func (c *Client) Local() bool {
	lp, ok := c.c.(LocalPeer)
	if !ok {
		return false
	}
	_, _, _, ok = c.localPeer(lp)
	return ok
}

// localPeer is the brick process of the current connection, when it is
// on this machine and alive. When it is not (the brick died, or the
// client is between connections), the descriptors taken from it go:
// reads and writes then go through the brick's protocol, which fails
// over.
func (c *Client) localPeer(lp LocalPeer) (pid int, conn uint64, done <-chan struct{}, ok bool) {
	pid, conn, done, ok = lp.LocalPeer()
	if ok && pid > 0 {
		select {
		case <-done:
		default:
			return pid, conn, done, true
		}
	}
	c.local.closeAllIfAny()
	return 0, 0, nil, false
}

// ensureFD takes the descriptor behind h: the one the brick named when it
// made the handle, or, with fetch, one asked for (OpLocalFD). The first
// read or write of a file does not ask: a small file's one call costs a
// brick round trip either way.
func (c *Client) ensureFD(ctx context.Context, pid int, conn uint64, done <-chan struct{}, h uint64, fetch bool) bool {
	if offer, ok := c.local.offered(conn, h); ok {
		f, err := takeFD(pid, done, offer)
		if err != nil {
			c.refused(err)
		}
		c.local.put(conn, h, f, done)
		return true
	}
	if !fetch {
		return false
	}
	c.fetchFD(ctx, pid, conn, done, h)
	return true
}

// offerFD keeps the descriptor the brick named for a new handle h
// (FeatLocalFD), for its first read or write to take.
func (c *Client) offerFD(h uint64, l LocalFDReply) {
	lp, ok := c.c.(LocalPeer)
	if !ok || c.NoLocalIO {
		return
	}
	_, conn, done, ok := lp.LocalPeer()
	if !ok {
		return
	}
	c.local.put(conn, h, &localFile{fd: offeredFD, offer: l}, done)
}

// writeLocal writes through the descriptor behind h, when the brick is
// on this machine and the handle writes without O_APPEND; ok false when
// the write must go to the brick.
func (c *Client) writeLocal(ctx context.Context, h uint64, off int64, data []byte) (WriteReply, bool, error) {
	lp, ok := c.c.(LocalPeer)
	if !ok || c.NoLocalIO {
		return WriteReply{}, false, nil
	}
	post, ok := c.c.(Poster)
	if !ok {
		return WriteReply{}, false, nil
	}
	pid, conn, done, ok := c.localPeer(lp)
	if !ok {
		return WriteReply{}, false, nil
	}
	r, err, known, ok := c.local.pwrite(conn, h, data, off)
	if !known {
		if !c.ensureFD(ctx, pid, conn, done, h, off > 0) {
			return WriteReply{}, false, nil
		}
		r, err, _, ok = c.local.pwrite(conn, h, data, off)
	}
	if !ok {
		return WriteReply{}, false, nil
	}
	if err != nil {
		return WriteReply{}, true, err
	}
	// The other clients hear of it from the brick. The connection is
	// alive or the handle is gone with it: nothing to tell either way.
	_ = post.Post(ctx, OpLocalWrote, Marshal(&LocalWroteReq{Handle: h, GFID: r.Attr.GFID, Offset: off, Length: r.Written}))
	return r, true, nil
}

// fetchFD takes the descriptor behind h from the brick and keeps it (or
// that there is none to be had).
func (c *Client) fetchFD(ctx context.Context, pid int, conn uint64, done <-chan struct{}, h uint64) {
	var r LocalFDReply
	err := c.call(ctx, OpLocalFD, &HandleReq{Handle: h}, &r)
	var f *localFile
	if err == nil {
		f, err = takeFD(pid, done, r)
	}
	if err != nil {
		c.refused(err)
	}
	c.local.put(conn, h, f, done)
}

// refused stops asking for descriptors after an error that will not
// change: a brick that does not know the call, a kernel that does not
// let this process take descriptors.
func (c *Client) refused(err error) {
	if errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
		c.local.mu.Lock()
		c.local.off = true
		c.local.mu.Unlock()
	}
}

// takeFD duplicates the descriptor r names in the brick process pid
// into this one.
func takeFD(pid int, done <-chan struct{}, r LocalFDReply) (*localFile, error) {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(pidfd)
	// The pidfd names the brick only if the brick still runs: its
	// connection open after pidfd_open means the PID was not reused.
	select {
	case <-done:
		return nil, syscall.ENOTCONN
	default:
	}
	fd, err := unix.PidfdGetfd(pidfd, int(r.FD), 0)
	if err != nil {
		return nil, err
	}
	f, err := checkLocalFD(fd, r)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return f, nil
}

// checkLocalFD checks that fd is the regular file the brick named, open
// without O_DIRECT, and what it may do.
func checkLocalFD(fd int, r LocalFDReply) (*localFile, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Dev != r.Dev || st.Ino != r.Ino {
		return nil, fmt.Errorf("descriptor %d of the brick is not the file it named: %w", r.FD, os.ErrInvalid)
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return nil, err
	}
	if fl&unix.O_DIRECT != 0 {
		return nil, fmt.Errorf("descriptor %d of the brick is for direct I/O: %w", r.FD, os.ErrInvalid)
	}
	mode := fl & unix.O_ACCMODE
	return &localFile{
		fd:       fd,
		gfid:     r.GFID,
		readable: mode != unix.O_WRONLY,
		writable: mode != unix.O_RDONLY && fl&unix.O_APPEND == 0,
	}, nil
}

// AttrOf is a file's attributes as a brick reports them: from its stat,
// with the inode number made of its GFID (when it has one).
func AttrOf(st *unix.Stat_t, g GFID) Attr {
	ino := st.Ino
	if !g.IsZero() {
		ino = InoOf(g)
	}
	return Attr{
		GFID:    g,
		Ino:     ino,
		Mode:    st.Mode,
		Nlink:   uint32(st.Nlink),
		UID:     st.Uid,
		GID:     st.Gid,
		Rdev:    st.Rdev,
		Size:    uint64(st.Size),
		Blocks:  uint64(st.Blocks),
		Blksize: uint32(st.Blksize),
		Atime:   st.Atim.Nano(),
		Mtime:   st.Mtim.Nano(),
		Ctime:   st.Ctim.Nano(),
	}
}

// Passthrougher is implemented by the layers that can give the kernel an
// open file to read and write itself (FUSE passthrough): the file's data
// is one copy, on a brick of this machine, and no layer between the mount
// and that brick needs to see its reads and writes.
type Passthrougher interface {
	// PassthroughFD returns a new descriptor of handle h's copy, the
	// caller's to close, and the file's GFID; ok false when h's reads
	// and writes must come through the layers.
	PassthroughFD(ctx context.Context, h uint64) (fd int, gfid GFID, ok bool)
	// PassthroughWrote tells the brick that the kernel wrote to h's
	// copy (OpLocalWrote): the brick tells its other clients, as of its
	// own writes. With wait (a close), it returns once the brick has,
	// when the brick has other clients (peers.go).
	PassthroughWrote(ctx context.Context, h uint64, gfid GFID, wait bool) error
}

var _ Passthrougher = (*Client)(nil)

// PassthroughFD takes the descriptor behind h from the brick, when the
// brick is on this machine, and returns a duplicate of it.
func (c *Client) PassthroughFD(ctx context.Context, h uint64) (int, GFID, bool) {
	lp, ok := c.c.(LocalPeer)
	if !ok || c.NoLocalIO {
		return -1, GFID{}, false
	}
	if _, ok := c.c.(Poster); !ok {
		return -1, GFID{}, false // the brick could not be told of the writes
	}
	pid, conn, done, ok := c.localPeer(lp)
	if !ok {
		return -1, GFID{}, false
	}
	fd, gfid, known := c.local.dup(conn, h)
	if !known {
		if !c.ensureFD(ctx, pid, conn, done, h, true) {
			return -1, GFID{}, false
		}
		fd, gfid, _ = c.local.dup(conn, h)
	}
	return fd, gfid, fd >= 0
}

// PassthroughWrote sends OpLocalWrote for h (Client.told).
func (c *Client) PassthroughWrote(ctx context.Context, h uint64, gfid GFID, wait bool) error {
	return c.told(ctx, h, gfid, wait)
}

// dup returns a duplicate of handle h's descriptor on connection conn
// (close-on-exec) and the file's GFID, fd -1 when there is none to be
// had; known is false when there is none yet.
func (l *localFDs) dup(conn, h uint64) (fd int, gfid GFID, known bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	f, known := l.file(conn, h)
	if f == nil || f.gfid.IsZero() {
		return -1, GFID{}, known
	}
	fd, err := unix.FcntlInt(uintptr(f.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, GFID{}, true
	}
	return fd, f.gfid, true
}
