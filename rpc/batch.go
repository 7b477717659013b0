package rpc

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"
)

// batchSize is how much a BatchConn reads at once and gathers before it
// writes.
const batchSize = 256 << 10

// BatchConn is a connection under TLS that reads in large steps and, while
// held, gathers what is written until Flush. TLS writes a frame of 1 MiB
// as 64 records, each its own write(2) to the socket, and reads them about
// one read(2) each; under it, the records of one frame go out, and come
// in, a few hundred KiB per system call. Writes outside Hold and Flush
// (the TLS handshake's) go out at once.
type BatchConn struct {
	net.Conn
	r *bufio.Reader

	mu      sync.Mutex
	held    int
	w       *bufio.Writer
	later   *time.Timer // sends what FlushLater left waiting
	pending bool        // later is armed
}

// NewBatchConn wraps c.
func NewBatchConn(c net.Conn) *BatchConn {
	return &BatchConn{Conn: c, r: bufio.NewReaderSize(c, batchSize), w: bufio.NewWriterSize(c, batchSize)}
}

func (b *BatchConn) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b *BatchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.held == 0 {
		if err := b.w.Flush(); err != nil {
			return 0, err
		}
		return b.Conn.Write(p)
	}
	return b.w.Write(p)
}

// Hold makes writes wait in the buffer (while it has room) until Flush.
func (b *BatchConn) Hold() {
	b.mu.Lock()
	b.held++
	b.mu.Unlock()
}

// Flush ends a Hold and, when no other Hold is on, writes what waits.
func (b *BatchConn) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.held > 0 {
		b.held--
	}
	if b.held > 0 {
		return nil
	}
	return b.w.Flush()
}

// FlushLater ends a Hold, leaving what waits in the buffer for the next
// Flush, or for d at the most: writes that no one waits for go out with
// the next ones in one system call, and wake the other end once.
func (b *BatchConn) FlushLater(d time.Duration) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.held > 0 {
		b.held--
	}
	if b.held > 0 || b.w.Buffered() == 0 {
		return nil
	}
	if b.w.Available() < b.w.Size()/2 {
		return b.w.Flush() // a full buffer goes now
	}
	// Armed once for the first write left waiting: later ones do not
	// push it back, so none waits longer than d.
	if !b.pending {
		b.pending = true
		if b.later == nil {
			b.later = time.AfterFunc(d, b.flushWaiting)
		} else {
			b.later.Reset(d)
		}
	}
	return nil
}

// flushWaiting writes what FlushLater left, unless a Hold is on (its
// Flush writes it).
func (b *BatchConn) flushWaiting() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pending = false
	if b.held == 0 {
		_ = b.w.Flush() // an error stays in the writer for the next write to report
	}
}

// batcher returns the BatchConn under c (a *tls.Conn over one), if any.
func batcher(c net.Conn) *BatchConn {
	if b, ok := c.(*BatchConn); ok {
		return b
	}
	if t, ok := c.(interface{ NetConn() net.Conn }); ok {
		if b, ok := t.NetConn().(*BatchConn); ok {
			return b
		}
	}
	return nil
}

// hold and flush bracket the writes of one frame (or one batch of
// frames) to c; without a BatchConn under c they do nothing.
func hold(b *BatchConn) {
	if b != nil {
		b.Hold()
	}
}

func flush(b *BatchConn) error {
	if b != nil {
		return b.Flush()
	}
	return nil
}

// batchListener hands out accepted connections as BatchConns.
type batchListener struct{ net.Listener }

func (l batchListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return NewBatchConn(c), nil
}

// TLSListener is tls.NewListener over ln, with a BatchConn under each
// connection's TLS.
func TLSListener(ln net.Listener, cfg *tls.Config) net.Listener {
	return tls.NewListener(batchListener{ln}, cfg)
}

// DialTLS dials addr with d and makes a TLS client connection over a
// BatchConn, as tls.Dialer would (the server name is addr's host when
// cfg names none).
func DialTLS(ctx context.Context, d *net.Dialer, addr string, cfg *tls.Config) (net.Conn, error) {
	if d == nil {
		d = &net.Dialer{}
	}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			raw.Close()
			return nil, fmt.Errorf("dial %s: %w", addr, err)
		}
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	c := tls.Client(NewBatchConn(raw), cfg)
	if d.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.Timeout)
		defer cancel()
	}
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}
