package rpc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"
)

// Operations understood by every brick. The data path adds its own.
const (
	// OpPing answers with the brick's identity (a JSON object).
	OpPing uint16 = 1
)

// MaxInFlight bounds the calls served at once on one connection.
const MaxInFlight = 256

// Handler serves one call. A non-zero status is sent as the reply's errno.
type Handler func(ctx context.Context, op uint16, payload []byte) (status syscall.Errno, reply []byte)

// Session serves the calls of one connection; Close is called when the
// connection ends, so per-connection state (open files, locks) is
// released even when a client dies.
type Session interface {
	Handle(ctx context.Context, op uint16, payload []byte) (status syscall.Errno, reply []byte)
	Close()
}

// PayloadPool is implemented by sessions that lend the server the
// buffers of big call frames (over 64 KiB, a write's): FrameBuf gives one
// of n bytes, and ReleasePayload gets it back, holding the frame of a
// call of op, once the call is answered. The session keeps it only for
// ops whose handling keeps nothing of the payload.
type PayloadPool interface {
	FrameBuf(n int) []byte
	ReleasePayload(op uint16, frame []byte)
}

// ReplyReleaser is implemented by sessions whose replies may come from a
// pool: ReleaseReply gets each reply of op back once it is written (or
// was not to be), and may reuse its memory.
type ReplyReleaser interface {
	ReleaseReply(op uint16, reply []byte)
}

type handlerSession Handler

func (h handlerSession) Handle(ctx context.Context, op uint16, payload []byte) (syscall.Errno, []byte) {
	return h(ctx, op, payload)
}
func (handlerSession) Close() {}

// Serve accepts connections on ln until ctx ends, serving each call on its
// own goroutine so calls on one connection overlap.
func Serve(ctx context.Context, log *slog.Logger, ln net.Listener, h Handler) error {
	return ServeSessions(ctx, log, ln, func(net.Conn) Session { return handlerSession(h) })
}

// ServeSessions is Serve with a Session per connection.
func ServeSessions(ctx context.Context, log *slog.Logger, ln net.Listener, open func(net.Conn) Session) error {
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	// Stopped, it returns once every connection is closed: a client can
	// reach the server no more when it returns.
	var conns sync.WaitGroup
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				conns.Wait()
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		conns.Add(1)
		go serveConn(ctx, log, c, open(c), conns.Done)
	}
}

// serveConn serves c until it fails or ctx ends; closed is called once c
// is closed.
func serveConn(ctx context.Context, log *slog.Logger, c net.Conn, h Session, closed func()) {
	// Deferred in this order so that, on the way out, the connection is
	// closed and the context cancelled before waiting for calls in flight
	// and closing the session.
	var calls sync.WaitGroup
	defer func() {
		calls.Wait()
		h.Close()
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	closeConn := sync.OnceFunc(func() {
		c.Close()
		closed()
	})
	defer closeConn()
	go func() {
		<-ctx.Done()
		closeConn()
	}()
	var wmu sync.Mutex
	w := bufio.NewWriter(c)
	r := bufio.NewReaderSize(c, 64<<10)
	bc := batcher(c)
	ev := newEvents(func(fs []Frame) error {
		wmu.Lock()
		defer wmu.Unlock()
		hold(bc)
		err := writeFrames(w, fs)
		if ferr := flush(bc); err == nil {
			err = ferr
		}
		return err
	})
	defer ev.close()
	es, events := h.(EventSession)
	if events {
		es.SetEvents(ev)
	}
	// At most MaxInFlight calls of one connection run at once; the reader
	// waits for a slot, which pushes back on the client through TCP.
	slots := make(chan struct{}, MaxInFlight)
	pool, pooled := h.(PayloadPool)
	inl, inline := h.(Inliner)
	var alloc func(int) []byte
	if pooled {
		alloc = pool.FrameBuf
	}
	for {
		f, lent, err := readFrame(r, alloc)
		if ctx.Err() != nil {
			return // closed: frames still buffered go unanswered
		}
		if err != nil {
			if errors.Is(err, ErrFrame) {
				log.Warn("dropping connection after a malformed frame", "remote", c.RemoteAddr().String(), "err", err)
			}
			return
		}
		if f.Kind != KindCall {
			log.Warn("dropping connection: a client sent a reply frame", "remote", c.RemoteAddr().String())
			return
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		calls.Add(1)
		serve := func(f Frame, lent []byte) {
			defer calls.Done()
			defer func() { <-slots }()
			if lent != nil {
				defer pool.ReleasePayload(f.Op, lent) // after the reply is written
			}
			var status syscall.Errno
			var reply []byte
			switch {
			case f.Op == OpSubscribe && events:
				ev.subscribe()
				if sub, ok := h.(Subscriber); ok {
					sub.Subscribed()
				}
			case f.Op == OpSubscribe:
				status = syscall.ENOSYS
			default:
				status, reply = h.Handle(ctx, f.Op, f.Payload)
			}
			if f.Flags&FlagNoReply != 0 {
				if rr, ok := h.(ReplyReleaser); ok && reply != nil {
					rr.ReleaseReply(f.Op, reply)
				}
				return
			}
			hdr, err := AppendHeader(make([]byte, 0, 4+headerLen), Frame{Kind: KindReply, Op: f.Op, Status: uint32(status), XID: f.XID}, len(reply))
			if err != nil {
				reply = nil
				hdr, _ = AppendHeader(hdr[:0], Frame{Kind: KindReply, Op: f.Op, Status: uint32(syscall.EIO), XID: f.XID}, 0)
			}
			if rr, ok := h.(ReplyReleaser); ok && reply != nil {
				defer rr.ReleaseReply(f.Op, reply) // after the unlock below
			}
			wmu.Lock()
			defer wmu.Unlock()
			hold(bc)
			defer flush(bc)
			// A big reply goes from its own buffer to the connection.
			if _, err := w.Write(hdr); err != nil {
				return
			}
			if _, err := w.Write(reply); err == nil {
				_ = w.Flush()
			}
		}
		if inline && r.Buffered() == 0 && inl.Inline(f.Op, f.Payload) {
			// Nothing else read yet: the call runs here, without a
			// goroutine to start and a thread to wake for it.
			serve(f, lent)
			continue
		}
		go serve(f, lent)
	}
}

// Inliner is a Session that names the calls it answers quickly and
// without waiting for another call of the connection (no lock another
// call of it may hold): the connection's reader runs such a call itself
// when no other call is waiting to be read, instead of in a goroutine of
// its own (one thread fewer to wake per call).
type Inliner interface {
	Inline(op uint16, payload []byte) bool
}

// smallPart is the largest part of a call copied into the call's own
// buffer; bigger ones are written from where they are.
const smallPart = 4096

// Client is one connection to a brick with calls pipelined over it.
type Client struct {
	c    net.Conn
	bc   *BatchConn // under c's TLS, if any
	pool *BufPool   // big replies' buffers, or nil
	wmu  sync.Mutex
	mu   sync.Mutex
	next uint64
	wait map[uint64]chan Frame
	err  error
	done chan struct{}
	// frames lends the buffers calls are built in (*[]byte): a call
	// with a small payload (up to smallPart) is one buffer, written at
	// once and then free again.
	frames sync.Pool
	// events takes the server's events (NewClientEvents); nil drops them.
	events func(op uint16, payload []byte)
}

// NewClient starts reading replies on c.
func NewClient(c net.Conn) *Client {
	return NewClientPool(c, nil)
}

// NewClientPool is NewClient with big reply payloads read into buffers
// from pool (BufPool), which their readers may give back.
func NewClientPool(c net.Conn, pool *BufPool) *Client { return newClient(c, pool, nil) }

func newClient(c net.Conn, pool *BufPool, events func(op uint16, payload []byte)) *Client {
	cl := &Client{c: c, bc: batcher(c), pool: pool, wait: map[uint64]chan Frame{}, done: make(chan struct{}), events: events}
	go cl.readLoop()
	return cl
}

func (cl *Client) readLoop() {
	r := bufio.NewReaderSize(cl.c, 64<<10)
	for {
		f, err := ReadFramePool(r, cl.pool)
		if err == nil && f.Kind == KindEvent {
			if cl.events != nil {
				cl.events(f.Op, f.Payload)
			}
			continue
		}
		if err == nil && f.Kind != KindReply {
			err = fmt.Errorf("%w: the server sent a call", ErrFrame)
		}
		if err != nil {
			cl.mu.Lock()
			cl.err = fmt.Errorf("connection to %s lost: %w", cl.c.RemoteAddr(), err)
			for _, ch := range cl.wait {
				close(ch)
			}
			cl.wait = nil
			cl.mu.Unlock()
			close(cl.done)
			cl.c.Close()
			return
		}
		cl.mu.Lock()
		ch, ok := cl.wait[f.XID]
		delete(cl.wait, f.XID)
		cl.mu.Unlock()
		if ok {
			ch <- f
		}
	}
}

// Call sends one call and waits for its reply. A reply with a non-zero
// status returns that errno as the error.
func (cl *Client) Call(ctx context.Context, op uint16, payload []byte) ([]byte, error) {
	return cl.CallParts(ctx, op, payload)
}

// CallParts is Call with the payload in parts, sent one after the other,
// so a big part (a write's data) is not copied into one buffer.
func (cl *Client) CallParts(ctx context.Context, op uint16, parts ...[]byte) ([]byte, error) {
	ch := make(chan Frame, 1)
	cl.mu.Lock()
	if cl.wait == nil {
		err := cl.err
		cl.mu.Unlock()
		return nil, err
	}
	cl.next++
	xid := cl.next
	cl.wait[xid] = ch
	cl.mu.Unlock()
	return cl.send(ctx, xid, ch, op, parts...)
}

// PostDelay is how long a posted call may wait for another call to go out
// with.
const PostDelay = 5 * time.Millisecond

// Post sends one call with FlagNoReply and does not wait: for calls whose
// outcome no one waits for, such as a file's release, so that neither the
// caller nor the connection's reader is woken for a reply (a server that
// sends one anyway has it dropped). Over a BatchConn (TLS connections) the
// call goes out with the next call on the connection, or after PostDelay
// at the latest, so the server is woken once for both. Calls on one
// connection reach the server in the order they were sent; the server
// handles each on its own goroutine, so a later call may still finish
// first. An error is a failure to send.
func (cl *Client) Post(ctx context.Context, op uint16, payload []byte) error {
	cl.mu.Lock()
	if cl.wait == nil {
		err := cl.err
		cl.mu.Unlock()
		return err
	}
	cl.next++
	xid := cl.next
	cl.mu.Unlock()
	_, err := cl.send(ctx, xid, nil, op, payload)
	return err
}

// send writes a call and waits for its reply on ch; with ch nil, the call
// is posted (FlagNoReply) and send returns once it is written.
func (cl *Client) send(ctx context.Context, xid uint64, ch chan Frame, op uint16, parts ...[]byte) ([]byte, error) {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	var flags uint8
	if ch == nil {
		flags = FlagNoReply
	}
	bp, _ := cl.frames.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, 0, 4+headerLen+smallPart+256)
		bp = &b
	}
	hdr, err := AppendHeader((*bp)[:0], Frame{Kind: KindCall, Flags: flags, Op: op, XID: xid}, n)
	if err != nil {
		cl.frames.Put(bp)
		cl.forget(xid)
		return nil, err
	}
	// Small parts ride in the header's buffer: one write for most calls.
	bufs := net.Buffers{hdr}
	for _, p := range parts {
		if len(p) <= smallPart && len(bufs) == 1 {
			bufs[0] = append(bufs[0], p...)
		} else {
			bufs = append(bufs, p)
		}
	}
	*bp = bufs[0][:0] // goes back to the pool once written
	cl.wmu.Lock()
	hold(cl.bc)
	for _, b := range bufs {
		if _, err = cl.c.Write(b); err != nil {
			break
		}
	}
	var ferr error
	if ch == nil && cl.bc != nil {
		ferr = cl.bc.FlushLater(PostDelay)
	} else {
		ferr = flush(cl.bc)
	}
	if err == nil {
		err = ferr
	}
	cl.wmu.Unlock()
	if cap(*bp) <= 64<<10 {
		cl.frames.Put(bp) // written: the connection keeps none of it
	}
	if err != nil {
		// Part of a frame may have gone: the stream is no longer framed.
		cl.c.Close()
		cl.forget(xid)
		return nil, fmt.Errorf("send to %s: %w", cl.c.RemoteAddr(), err)
	}
	if ch == nil {
		return nil, nil // posted
	}
	select {
	case f, ok := <-ch:
		if !ok {
			cl.mu.Lock()
			err := cl.err
			cl.mu.Unlock()
			return nil, err
		}
		if f.Status != 0 {
			return f.Payload, syscall.Errno(f.Status)
		}
		return f.Payload, nil
	case <-ctx.Done():
		cl.forget(xid)
		return nil, ctx.Err()
	}
}

func (cl *Client) forget(xid uint64) {
	cl.mu.Lock()
	if cl.wait != nil {
		delete(cl.wait, xid)
	}
	cl.mu.Unlock()
}

// Close closes the connection; calls in flight fail.
func (cl *Client) Close() error { return cl.c.Close() }

// Done is closed when the connection is lost.
func (cl *Client) Done() <-chan struct{} { return cl.done }
