package fop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/readahead"
)

// Local reads: a mount reads a file whose copy sits on a brick of its own
// machine straight from that copy, without the brick copying it into a
// reply and the mount out of one. The brick names the descriptor its
// handle holds (OpLocalFD) and the client takes a duplicate of it from the
// brick process with pidfd_getfd(2), which only a process allowed to
// trace the brick may do (root). The duplicate is checked to be the
// file the brick named (device and inode) before it serves a byte.

// OpLocalFD names the descriptor behind an open handle (HandleReq →
// LocalFDReply). A brick refuses it for handles not open for reading.
const OpLocalFD uint16 = 173

// LocalFDReply is the brick's descriptor number for a handle and the
// file it is open on.
type LocalFDReply struct {
	FD  uint32
	Dev uint64
	Ino uint64
}

func (m *LocalFDReply) Encode(e *Encoder) { e.U32(m.FD); e.U64(m.Dev); e.U64(m.Ino) }
func (m *LocalFDReply) Decode(d *Decoder) { m.FD = d.U32(); m.Dev = d.U64(); m.Ino = d.U64() }

// LocalReader is implemented by the layers that can read an open file's
// data straight from its copy on a brick of this machine. ReadLocal reads
// into buf at off as pread(2) does; ok false means the read must go
// through Read: the copy reads go to is on another machine, its brick is
// gone, or a layer has writes of the file in flight.
type LocalReader interface {
	ReadLocal(ctx context.Context, h uint64, buf []byte, off int64) (n int, ok bool)
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
}

// localFile is a descriptor taken from the brick.
type localFile struct {
	fd int
	ra readahead.Tracker
}

// pread reads from handle h's descriptor on connection conn; known is
// false when there is none yet, ok false when it is not to be had.
func (l *localFDs) pread(conn, h uint64, buf []byte, off int64) (n int, known, ok bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.conn != conn {
		return 0, false, false
	}
	f, known := l.fds[h]
	if !known || f.fd < 0 {
		return 0, known || l.off, false
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

// put keeps fd (or -1: none to be had) for handle h of connection conn,
// unless the connection changed or another read put one first. A new
// connection drops the descriptors of the last one (their handles died
// with it).
func (l *localFDs) put(conn, h uint64, fd int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != conn {
		l.closeAllLocked()
		l.conn = conn
	}
	if _, ok := l.fds[h]; ok {
		if fd >= 0 {
			unix.Close(fd)
		}
		return
	}
	if l.fds == nil {
		l.fds = map[uint64]*localFile{}
	}
	l.fds[h] = &localFile{fd: fd}
}

// closeAll closes every descriptor (their brick is gone).
func (l *localFDs) closeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closeAllLocked()
}

func (l *localFDs) closeAllLocked() {
	for _, f := range l.fds {
		if f.fd >= 0 {
			unix.Close(f.fd)
		}
	}
	l.fds = nil
}

// drop closes handle h's descriptor, at its release.
func (l *localFDs) drop(h uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f, ok := l.fds[h]; ok {
		if f.fd >= 0 {
			unix.Close(f.fd)
		}
		delete(l.fds, h)
	}
}

var _ LocalReader = (*Client)(nil)

// ReadLocal asks the brick for the descriptor behind h the first time and
// reads from a duplicate of it, kept until h's Release or the
// connection's end.
func (c *Client) ReadLocal(ctx context.Context, h uint64, buf []byte, off int64) (int, bool) {
	lp, ok := c.c.(LocalPeer)
	if !ok {
		return 0, false
	}
	pid, conn, done, ok := lp.LocalPeer()
	if !ok || pid <= 0 {
		return 0, false
	}
	select {
	case <-done:
		// The brick is gone: its descriptors go, and reads go through
		// Read, which fails over.
		c.local.closeAll()
		return 0, false
	default:
	}
	if n, known, ok := c.local.pread(conn, h, buf, off); known {
		return n, ok
	}
	fd, err := c.takeFD(ctx, pid, done, h)
	if err != nil {
		// A brick that does not know the call or a kernel that does not
		// let this process take descriptors will not change its mind.
		if errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
			c.local.mu.Lock()
			c.local.off = true
			c.local.mu.Unlock()
		}
		fd = -1
	}
	c.local.put(conn, h, fd)
	n, _, ok := c.local.pread(conn, h, buf, off)
	return n, ok
}

// takeFD duplicates the brick's descriptor for h into this process.
func (c *Client) takeFD(ctx context.Context, pid int, done <-chan struct{}, h uint64) (int, error) {
	var r LocalFDReply
	if err := c.call(ctx, OpLocalFD, &HandleReq{Handle: h}, &r); err != nil {
		return -1, err
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(pidfd)
	// The pidfd names the brick only if the brick still runs: its
	// connection open after pidfd_open means the PID was not reused.
	select {
	case <-done:
		return -1, syscall.ENOTCONN
	default:
	}
	fd, err := unix.PidfdGetfd(pidfd, int(r.FD), 0)
	if err != nil {
		return -1, err
	}
	if err := checkLocalFD(fd, r); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// checkLocalFD checks that fd is the regular file the brick named, open
// for reading without O_DIRECT.
func checkLocalFD(fd int, r LocalFDReply) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Dev != r.Dev || st.Ino != r.Ino {
		return fmt.Errorf("descriptor %d of the brick is not the file it named: %w", r.FD, os.ErrInvalid)
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return err
	}
	if fl&unix.O_ACCMODE == unix.O_WRONLY || fl&unix.O_DIRECT != 0 {
		return fmt.Errorf("descriptor %d of the brick is not for buffered reads: %w", r.FD, os.ErrInvalid)
	}
	return nil
}
