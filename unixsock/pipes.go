package unixsock

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// A connection on a Unix socket between two processes of one machine can
// carry its bytes through two pipes instead, one each way, the socket
// staying open beside them to name the peer (PeerUser) and to close with
// it. The client makes the pipes and passes the server its two ends with
// one byte, PipeOffer, the first the socket carries (SCM_RIGHTS).
//
// Why: reading from a Unix stream socket frees the writer's send buffer,
// and the kernel then wakes whoever waits on the writer's socket for
// EPOLLOUT. Go's poller waits on every socket for both directions, so
// each message read wakes the sender's poller thread (an interrupt to an
// idle CPU, then a thread that finds nothing to do): two needless
// wakeups per call and reply, both on the call's path. A pipe wakes its
// writer only when it was full.

// PipeOffer is the byte a client's pipe offer starts with. A frame of
// the brick protocol starts with its length, whose first byte is at most
// 1, so a server that does not know offers drops the connection.
const PipeOffer = 0xff

// pipeSize is each pipe's capacity: a 1 MiB write goes through in one or
// two steps (the default, 64 KiB, takes 16 wakeups of the reader).
const pipeSize = 1 << 20

// PipeConn is a connection whose bytes go through two pipes, beside the
// Unix socket it was made on.
type PipeConn struct {
	sock *net.UnixConn
	r, w *os.File
}

var _ net.Conn = (*PipeConn)(nil)

func (c *PipeConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *PipeConn) Write(p []byte) (int, error) { return c.w.Write(p) }

// Close closes both pipes and the socket: the peer reads the end of its
// pipe.
func (c *PipeConn) Close() error {
	return errors.Join(c.r.Close(), c.w.Close(), c.sock.Close())
}

func (c *PipeConn) LocalAddr() net.Addr  { return c.sock.LocalAddr() }
func (c *PipeConn) RemoteAddr() net.Addr { return c.sock.RemoteAddr() }

func (c *PipeConn) SetDeadline(t time.Time) error {
	return errors.Join(c.r.SetDeadline(t), c.w.SetDeadline(t))
}
func (c *PipeConn) SetReadDeadline(t time.Time) error  { return c.r.SetDeadline(t) }
func (c *PipeConn) SetWriteDeadline(t time.Time) error { return c.w.SetDeadline(t) }

// UnixConn is the socket the connection was made on.
func (c *PipeConn) UnixConn() *net.UnixConn { return c.sock }

// OfferPipes makes c a PipeConn: it makes the two pipes, passes the
// server its ends, and returns the connection that uses the others. The
// caller then talks on it; a server that does not take the offer closes
// the connection, which the first read reports (io.EOF).
func OfferPipes(c *net.UnixConn) (*PipeConn, error) {
	var p [2][2]int // requests (read, write), replies (read, write)
	for i := range p {
		if err := unix.Pipe2(p[i][:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
			for j := range i {
				unix.Close(p[j][0])
				unix.Close(p[j][1])
			}
			return nil, fmt.Errorf("make pipes for a local connection: %w", err)
		}
		// Best effort: a user over its pipe quota keeps the default.
		_, _ = unix.FcntlInt(uintptr(p[i][1]), unix.F_SETPIPE_SZ, pipeSize)
	}
	theirs := []int{p[0][0], p[1][1]}
	_, _, err := c.WriteMsgUnix([]byte{PipeOffer}, unix.UnixRights(theirs...), nil)
	unix.Close(theirs[0])
	unix.Close(theirs[1])
	r, w := os.NewFile(uintptr(p[1][0]), "pipe"), os.NewFile(uintptr(p[0][1]), "pipe")
	if err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("offer pipes: %w", err)
	}
	return &PipeConn{sock: c, r: r, w: w}, nil
}

// AcceptOffer returns the connection a client made on c: a PipeConn when
// the client offered pipes, else c itself as it was (what was read to
// tell goes first to its reader). It reads one byte of c, and waits for
// it until the deadline set on c, if any. Passed descriptors other than
// a read end and a write end of two pipes close the connection.
func AcceptOffer(c *net.UnixConn) (net.Conn, error) {
	var b [1]byte
	oob := make([]byte, unix.CmsgSpace(4*4)) // room for more than two, to close them
	n, oobn, flags, _, err := c.ReadMsgUnix(b[:], oob)
	if err != nil {
		return nil, err
	}
	fds, perr := passedFDs(oob[:oobn])
	if n == 0 {
		closeAll(fds)
		return nil, io.EOF
	}
	if b[0] != PipeOffer {
		closeAll(fds)
		if len(fds) > 0 || perr != nil {
			return nil, errors.New("descriptors passed with a frame")
		}
		return &prefixConn{Conn: c, sock: c, r: io.MultiReader(bytes.NewReader(b[:n]), c)}, nil
	}
	if perr != nil || flags&unix.MSG_CTRUNC != 0 || len(fds) != 2 {
		closeAll(fds)
		return nil, fmt.Errorf("pipe offer with %d descriptors (%v), want 2", len(fds), perr)
	}
	if err := checkPipeEnd(fds[0], unix.O_RDONLY); err != nil {
		closeAll(fds)
		return nil, err
	}
	if err := checkPipeEnd(fds[1], unix.O_WRONLY); err != nil {
		closeAll(fds)
		return nil, err
	}
	for _, fd := range fds {
		unix.CloseOnExec(fd)
		if err := unix.SetNonblock(fd, true); err != nil {
			closeAll(fds)
			return nil, err
		}
	}
	return &PipeConn{sock: c, r: os.NewFile(uintptr(fds[0]), "pipe"), w: os.NewFile(uintptr(fds[1]), "pipe")}, nil
}

// passedFDs returns the descriptors in the control messages of oob.
func passedFDs(oob []byte) ([]int, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	var errs []error
	for i := range msgs {
		m := &msgs[i]
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_RIGHTS || len(m.Data)%4 != 0 {
			// ParseUnixRights reads past a length not a multiple of 4.
			errs = append(errs, fmt.Errorf("control message level %d type %d of %d bytes: not descriptors", m.Header.Level, m.Header.Type, len(m.Data)))
			continue
		}
		got, err := unix.ParseUnixRights(m)
		fds = append(fds, got...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return fds, errors.Join(errs...)
}

// checkPipeEnd checks that fd is a pipe open with access mode mode.
func checkPipeEnd(fd, mode int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFIFO || fl&unix.O_ACCMODE != mode {
		return fmt.Errorf("pipe offer: descriptor is not a pipe's %s end", map[int]string{unix.O_RDONLY: "read", unix.O_WRONLY: "write"}[mode])
	}
	return nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// prefixConn is a socket whose first bytes were read already.
type prefixConn struct {
	net.Conn
	sock *net.UnixConn
	r    io.Reader
}

func (c *prefixConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// UnixConn is the socket.
func (c *prefixConn) UnixConn() *net.UnixConn { return c.sock }

// OfferConn is a server's side of a connection on a Unix socket that
// takes pipe offers: the first read or write (AcceptOffer) finds out
// which the client made, so that accepting never waits for a client.
// Deadlines set before that apply to the socket, and so to reading the
// offer.
type OfferConn struct {
	sock *net.UnixConn
	once sync.Once
	c    net.Conn
	err  error
	done atomic.Bool // c and err are set
}

var _ net.Conn = (*OfferConn)(nil)

// NewOfferConn returns the server's side of c.
func NewOfferConn(c *net.UnixConn) *OfferConn { return &OfferConn{sock: c} }

func (c *OfferConn) conn() (net.Conn, error) {
	c.once.Do(func() {
		c.c, c.err = AcceptOffer(c.sock)
		if c.err != nil {
			c.sock.Close()
		}
		c.done.Store(true)
	})
	return c.c, c.err
}

func (c *OfferConn) Read(p []byte) (int, error) {
	cc, err := c.conn()
	if err != nil {
		return 0, err
	}
	return cc.Read(p)
}

func (c *OfferConn) Write(p []byte) (int, error) {
	cc, err := c.conn()
	if err != nil {
		return 0, err
	}
	return cc.Write(p)
}

// Close closes the connection; a read waiting for the client's first
// byte returns.
func (c *OfferConn) Close() error {
	err := c.sock.Close()
	if cc, cerr := c.conn(); cerr == nil {
		err = cc.Close()
	}
	return err
}

func (c *OfferConn) LocalAddr() net.Addr  { return c.sock.LocalAddr() }
func (c *OfferConn) RemoteAddr() net.Addr { return c.sock.RemoteAddr() }

// settled is the connection the offer made, nil before it is read.
func (c *OfferConn) settled() net.Conn {
	if !c.done.Load() || c.err != nil {
		return nil
	}
	return c.c
}

func (c *OfferConn) SetDeadline(t time.Time) error {
	if cc := c.settled(); cc != nil {
		return cc.SetDeadline(t)
	}
	return c.sock.SetDeadline(t)
}

func (c *OfferConn) SetReadDeadline(t time.Time) error {
	if cc := c.settled(); cc != nil {
		return cc.SetReadDeadline(t)
	}
	return c.sock.SetReadDeadline(t)
}

func (c *OfferConn) SetWriteDeadline(t time.Time) error {
	if cc := c.settled(); cc != nil {
		return cc.SetWriteDeadline(t)
	}
	return c.sock.SetWriteDeadline(t)
}

// UnixConn is the socket.
func (c *OfferConn) UnixConn() *net.UnixConn { return c.sock }
