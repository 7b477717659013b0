package rpc

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Redialer is a connection to one server that dials again after the
// connection fails. A call during a failed dial fails at once; the next
// call after RetryAfter dials again, so a server that is down costs its
// callers one quick failure each, not a dial timeout each.
type Redialer struct {
	addr string
	dial func(ctx context.Context, addr string) (net.Conn, error)
	log  *slog.Logger

	// RetryAfter is how long after a failed dial calls fail without
	// dialing.
	RetryAfter time.Duration

	// Events, when set before the first call, subscribes every
	// connection to the server's events and receives them (see
	// NewClientEvents: it must not block). After a reconnection it gets
	// OpEventsLost first: events sent while there was no connection are
	// gone.
	Events    func(op uint16, payload []byte)
	connected bool // a connection was made before, guarded by mu

	// Hello, when set, is called on every new connection before any other
	// call (a protocol's feature negotiation); an ENOSYS from it is an
	// older server's answer and not an error.
	Hello func(ctx context.Context, c *Client) error

	// Pool, when set before the first call, lends the buffers big replies
	// are read into (NewClientPool).
	Pool *BufPool

	lock chan struct{} // a mutex a cancelled caller can stop waiting for

	mu       sync.Mutex // guards the fields below
	c        *Client
	conns    uint64 // connections made so far
	failedAt time.Time
	lastErr  error
}

// NewRedialer returns a Redialer for addr; dial makes the connection
// (TLS, a timeout).
func NewRedialer(addr string, dial func(ctx context.Context, addr string) (net.Conn, error), log *slog.Logger) *Redialer {
	return &Redialer{addr: addr, dial: dial, log: log, RetryAfter: 500 * time.Millisecond, lock: make(chan struct{}, 1)}
}

// Addr is the server's address.
func (r *Redialer) Addr() string { return r.addr }

// Conns counts the connections made so far: it changes when the server
// is reached again, and with it every session state the server kept for
// the last connection (handles, locks) is gone.
func (r *Redialer) Conns() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conns
}

// LocalPeer is the process at the other end of the current connection,
// when the connection knows it (a PeerPID method: a Unix socket to a
// brick of this machine), with the connection's number (Conns) and a
// channel closed when it ends (fop.LocalPeer).
func (r *Redialer) LocalPeer() (pid int, conn uint64, done <-chan struct{}, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.c == nil {
		return 0, 0, nil, false
	}
	p, ok := r.c.c.(interface{ PeerPID() int })
	if !ok {
		return 0, 0, nil, false
	}
	return p.PeerPID(), r.conns, r.c.Done(), true
}

func (r *Redialer) conn(ctx context.Context) (*Client, error) {
	r.mu.Lock()
	if r.c != nil {
		select {
		case <-r.c.Done():
			r.c = nil
		default:
			c := r.c
			r.mu.Unlock()
			return c, nil
		}
	}
	if !r.failedAt.IsZero() && time.Since(r.failedAt) < r.RetryAfter {
		err := r.lastErr
		r.mu.Unlock()
		return nil, err
	}
	r.mu.Unlock()
	select {
	case r.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-r.lock }()
	r.mu.Lock()
	if r.c != nil {
		c := r.c
		r.mu.Unlock()
		return c, nil
	}
	r.mu.Unlock()
	nc, err := r.dial(ctx, r.addr)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		if r.failedAt.IsZero() {
			r.log.Warn("cannot reach server", "addr", r.addr, "err", err)
		}
		r.failedAt, r.lastErr = time.Now(), err
		return nil, err
	}
	if !r.failedAt.IsZero() {
		r.log.Info("reconnected", "addr", r.addr)
	}
	r.failedAt, r.lastErr = time.Time{}, nil
	c := newClient(nc, r.Pool, r.Events)
	if r.Hello != nil {
		r.mu.Unlock()
		err := r.Hello(ctx, c)
		r.mu.Lock()
		if err != nil && !isENOSYS(err) {
			c.Close()
			r.failedAt, r.lastErr = time.Now(), err
			return nil, err
		}
	}
	if r.Events == nil {
		r.c = c
		r.conns++
		return r.c, nil
	}
	r.mu.Unlock()
	err = c.Subscribe(ctx)
	r.mu.Lock()
	if err != nil && !isENOSYS(err) {
		c.Close()
		r.failedAt, r.lastErr = time.Now(), err
		return nil, err
	}
	if err != nil {
		r.log.Warn("the server sends no events (an older version): what it changes for other clients is not announced", "addr", r.addr)
	}
	if r.connected {
		r.Events(OpEventsLost, nil)
	}
	r.connected, r.c = true, c
	r.conns++
	return c, nil
}

// Call sends one call, dialing first if there is no connection.
func (r *Redialer) Call(ctx context.Context, op uint16, payload []byte) ([]byte, error) {
	c, err := r.conn(ctx)
	if err != nil {
		return nil, err
	}
	return c.Call(ctx, op, payload)
}

// CallParts is Call with the payload in parts (see Client.CallParts).
func (r *Redialer) CallParts(ctx context.Context, op uint16, parts ...[]byte) ([]byte, error) {
	c, err := r.conn(ctx)
	if err != nil {
		return nil, err
	}
	return c.CallParts(ctx, op, parts...)
}

// Post sends one call without waiting for its reply (see Client.Post) on
// the current connection. It never dials: a posted call acts on what an
// earlier call made on that connection (a release, on a handle), and that
// went with the connection when it was lost. With no live connection the
// call is dropped and Post returns nil.
func (r *Redialer) Post(ctx context.Context, op uint16, payload []byte) error {
	r.mu.Lock()
	c := r.c
	r.mu.Unlock()
	if c == nil {
		return nil
	}
	select {
	case <-c.Done():
		return nil
	default:
	}
	if err := c.Post(ctx, op, payload); err != nil {
		select {
		case <-c.Done():
			return nil // lost while sending: the same
		default:
		}
		return err
	}
	return nil
}

// Close closes the current connection.
func (r *Redialer) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.c != nil {
		err := r.c.Close()
		r.c = nil
		return err
	}
	return nil
}
