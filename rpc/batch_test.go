package rpc_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cais-platform/cais/pki"
	"github.com/cais-platform/cais/rpc"
)

// countConn counts the writes that reach the socket.
type countConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

func testTLS(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.SelfSigned(key, "batch-test")
	if err != nil {
		t.Fatal(err)
	}
	// The test is of the transport, not of certificate checks.
	return &tls.Config{Certificates: []tls.Certificate{cert}}, &tls.Config{InsecureSkipVerify: true}
}

// Held, the 64 TLS records of a 1 MiB frame reach the socket in a few
// writes; not held, one write each.
func TestBatchConnGathersRecords(t *testing.T) {
	scfg, ccfg := testTLS(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	client := tls.Client(raw, ccfg)
	defer client.Close()
	sraw := <-accepted
	if sraw == nil {
		t.Fatal("accept failed")
	}
	counted := &countConn{Conn: sraw}
	bc := rpc.NewBatchConn(counted)
	server := tls.Server(bc, scfg)
	defer server.Close()
	hs := make(chan error, 1)
	go func() { hs <- server.Handshake() }()
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-hs; err != nil {
		t.Fatal(err)
	}
	frame := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	send := func(held bool) int64 {
		t.Helper()
		before := counted.writes.Load()
		done := make(chan error, 1)
		go func() {
			if held {
				bc.Hold()
			}
			_, err := server.Write(frame)
			if held {
				if ferr := bc.Flush(); err == nil {
					err = ferr
				}
			}
			done <- err
		}()
		got := make([]byte, len(frame))
		if _, err := io.ReadFull(client, got); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, frame) {
			t.Fatal("the frame arrived changed")
		}
		return counted.writes.Load() - before
	}
	if n := send(true); n > 8 {
		t.Fatalf("held: %d writes to the socket for a 1 MiB frame, want at most 8", n)
	} else {
		t.Logf("held: %d writes", n)
	}
	if n := send(false); n < 32 {
		t.Fatalf("not held: %d writes to the socket, want one per record (64)", n)
	}
}

// A call and its 1 MiB reply over TLSListener and DialTLS.
func TestTLSCallRoundTrip(t *testing.T) {
	scfg, ccfg := testTLS(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	h := func(_ context.Context, op uint16, payload []byte) (syscall.Errno, []byte) {
		return 0, append(payload, payload...)
	}
	go func() {
		served <- rpc.Serve(ctx, slog.New(slog.DiscardHandler), rpc.TLSListener(ln, scfg), h)
	}()
	defer func() {
		cancel()
		<-served
	}()
	c, err := rpc.DialTLS(guard(t), nil, ln.Addr().String(), ccfg)
	if err != nil {
		t.Fatal(err)
	}
	cl := rpc.NewClient(c)
	defer cl.Close()
	half := bytes.Repeat([]byte{7, 1, 3}, 1<<18/3*2)
	for range 3 {
		got, err := cl.Call(guard(t), opEcho, half)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, append(half, half...)) {
			t.Fatalf("reply of %d bytes, want %d", len(got), 2*len(half))
		}
	}
}

// BenchmarkRead1MiB is 1 MiB replies to small calls, four in flight (as
// a mount's read-ahead keeps them), over loopback TCP with and without
// TLS: the transport's ceiling for a sequential read, with nothing read
// from a disk and nothing passed to FUSE.
func BenchmarkRead1MiB(b *testing.B) {
	scfg, ccfg := testTLS(b)
	reply := bytes.Repeat([]byte{1}, 1<<20)
	h := func(context.Context, uint16, []byte) (syscall.Errno, []byte) { return 0, reply }
	for _, tc := range []struct {
		name      string
		tls, pool bool
	}{{"tcp", false, false}, {"tls", true, false}, {"tls-pool", true, true}} {
		b.Run(tc.name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var c net.Conn
			if tc.tls {
				go rpc.Serve(ctx, slog.New(slog.DiscardHandler), rpc.TLSListener(ln, scfg), h)
				c, err = rpc.DialTLS(ctx, nil, ln.Addr().String(), ccfg)
			} else {
				go rpc.Serve(ctx, slog.New(slog.DiscardHandler), ln, h)
				c, err = net.Dial("tcp", ln.Addr().String())
			}
			if err != nil {
				b.Fatal(err)
			}
			var pool *rpc.BufPool
			if tc.pool {
				pool = rpc.NewBufPool(1 << 20)
			}
			cl := rpc.NewClientPool(c, pool)
			defer cl.Close()
			b.SetBytes(1 << 20)
			b.ResetTimer()
			sem := make(chan struct{}, 4)
			errs := make(chan error, b.N)
			for range b.N {
				sem <- struct{}{}
				go func() {
					defer func() { <-sem }()
					data, err := cl.Call(ctx, opEcho, nil)
					pool.Put(data)
					errs <- err
				}()
			}
			for range b.N {
				if err := <-errs; err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A client with a pool reads big replies into the pool's buffers: one
// given back holds the next big reply; small replies stay out of it.
func TestClientPoolReuses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- rpc.Serve(ctx, slog.New(slog.DiscardHandler), ln, func(_ context.Context, _ uint16, p []byte) (syscall.Errno, []byte) {
			return 0, bytes.Repeat(p[:1], int(p[1])<<12) // p[1] in 4 KiB units
		})
	}()
	defer func() {
		cancel()
		<-served
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	const size = 512 << 10
	pool := rpc.NewBufPool(size)
	cl := rpc.NewClientPool(c, pool)
	defer cl.Close()
	call := func(c byte, units int) []byte {
		t.Helper()
		got, err := cl.Call(guard(t), opEcho, []byte{c, byte(units)})
		if err != nil || len(got) != units<<12 || got[0] != c || got[len(got)-1] != c {
			t.Fatalf("reply %c: %d bytes, %v", c, len(got), err)
		}
		return got
	}
	first := call('a', 50) // 200 KiB
	if cap(first) != size {
		t.Fatalf("a big reply is not in a pooled buffer: cap %d", cap(first))
	}
	pool.Put(first)
	second := call('b', 40)
	if cap(second) != size {
		t.Fatalf("the second big reply is not in a pooled buffer: cap %d", cap(second))
	}
	if &second[0] != &first[0] {
		t.Log("the pool gave a new buffer (a collection emptied it)")
	}
	// Small, under a quarter of the pool's size (a pooled buffer would be
	// mostly wasted), and over the pool's size: read without the pool.
	for _, units := range []int{1, 20, 200} {
		if got := call('c', units); cap(got) == size {
			t.Fatalf("a reply of %d KiB went into a pooled buffer", units*4)
		}
	}
}

// A posted call over TLS waits in the buffer: it goes to the socket with
// the next call, in the same write, or on its own after PostDelay.
func TestPostRidesWithNextCall(t *testing.T) {
	scfg, ccfg := testTLS(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const opPost, opEcho = 7, 8
	posted := make(chan string, 4)
	go rpc.Serve(ctx, slog.New(slog.DiscardHandler), rpc.TLSListener(ln, scfg), func(_ context.Context, op uint16, p []byte) (syscall.Errno, []byte) {
		if op == opPost {
			posted <- string(p)
			return 0, nil
		}
		return 0, p
	})
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	counted := &countConn{Conn: raw}
	tc := tls.Client(rpc.NewBatchConn(counted), ccfg)
	if err := tc.HandshakeContext(ctx); err != nil { // as DialTLS does
		t.Fatal(err)
	}
	cl := rpc.NewClient(tc)
	defer cl.Close()
	arrives := func(want string) {
		t.Helper()
		select {
		case got := <-posted:
			if got != want {
				t.Fatalf("posted call %q arrived, want %q", got, want)
			}
		case <-ctx.Done():
			t.Fatalf("posted call %q never arrived", want)
		}
	}

	before := counted.writes.Load()
	if err := cl.Post(ctx, opPost, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if n := counted.writes.Load() - before; n != 0 {
		t.Fatalf("the posted call went to the socket at once (%d writes)", n)
	}
	if got, err := cl.Call(ctx, opEcho, []byte("next")); err != nil || string(got) != "next" {
		t.Fatalf("call after the post = %q, %v", got, err)
	}
	if n := counted.writes.Load() - before; n != 1 {
		t.Fatalf("the post and the call took %d writes to the socket, want 1", n)
	}
	arrives("one")

	// Alone, it goes after PostDelay.
	before = counted.writes.Load()
	start := time.Now()
	if err := cl.Post(ctx, opPost, []byte("two")); err != nil {
		t.Fatal(err)
	}
	arrives("two")
	if took := time.Since(start); took < rpc.PostDelay/2 {
		t.Fatalf("the lone posted call arrived after %v, before PostDelay (%v)", took, rpc.PostDelay)
	}
	if n := counted.writes.Load() - before; n != 1 {
		t.Fatalf("the lone post took %d writes, want 1", n)
	}

	// Posts that follow one another do not push the first one back: it
	// goes PostDelay after it was posted, with those before then.
	start = time.Now()
	deadline := start.Add(4 * rpc.PostDelay)
	for i := 0; time.Now().Before(deadline); i++ {
		if err := cl.Post(ctx, opPost, []byte("stream")); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			select {
			case <-posted:
				t.Fatal("the first post of the stream went at once")
			default:
			}
		}
		time.Sleep(rpc.PostDelay / 5)
		select {
		case <-posted:
			if took := time.Since(start); took > 3*rpc.PostDelay {
				t.Fatalf("the first post of a stream arrived after %v, want about PostDelay (%v)", took, rpc.PostDelay)
			}
			return
		default:
		}
	}
	t.Fatalf("no post of a stream arrived within %v: each pushed the others back", 4*rpc.PostDelay)
}
