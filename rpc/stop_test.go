package rpc_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cais-platform/cais/rpc"
)

type okSession struct{}

func (okSession) Handle(context.Context, uint16, []byte) (syscall.Errno, []byte) { return 0, nil }
func (okSession) Close()                                                         {}

// slowListener hands out connections whose Close takes a while, and
// counts those closed.
type slowListener struct {
	net.Listener
	closed *atomic.Int32
}

func (l slowListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return slowConn{c, l.closed}, nil
}

type slowConn struct {
	net.Conn
	closed *atomic.Int32
}

func (c slowConn) Close() error {
	time.Sleep(50 * time.Millisecond)
	err := c.Conn.Close()
	c.closed.Add(1)
	return err
}

// A stopped server returns only once its connections are closed, so that
// no client reaches it after: a test (or caisd) that stops a brick can
// count on it being gone.
func TestServeSessionsStopClosesConnections(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var closed atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- rpc.ServeSessions(ctx, slog.New(slog.DiscardHandler), slowListener{tcp, &closed}, func(net.Conn) rpc.Session { return okSession{} })
	}()
	var clients []*rpc.Client
	for range 3 {
		c, err := net.Dial("tcp", tcp.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		cl := rpc.NewClient(c)
		defer cl.Close()
		if _, err := cl.Call(context.Background(), 7, nil); err != nil {
			t.Fatalf("call before the stop: %v", err)
		}
		clients = append(clients, cl)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ServeSessions did not return")
	}
	if n := closed.Load(); n != 3 {
		t.Fatalf("ServeSessions returned with %d of 3 connections closed", n)
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ccancel()
	if _, err := clients[0].Call(cctx, 7, nil); err == nil {
		t.Fatal("a call after the stop was served")
	}
}

// releasingSession answers every call with its payload and records the
// replies given back to it.
type releasingSession struct {
	released chan []byte
}

func (s *releasingSession) Handle(_ context.Context, _ uint16, payload []byte) (syscall.Errno, []byte) {
	return 0, append([]byte(nil), payload...)
}
func (s *releasingSession) Close() {}
func (s *releasingSession) ReleaseReply(op uint16, reply []byte) {
	s.released <- reply
}

// A session that pools its replies gets each one back once it is sent.
func TestReplyReleased(t *testing.T) {
	s := &releasingSession{released: make(chan []byte, 1)}
	cl := serveOne(t, s)
	ctx := context.Background()
	got, err := cl.Call(ctx, 7, []byte("pooled reply"))
	if err != nil || string(got) != "pooled reply" {
		t.Fatalf("call: %q, %v", got, err)
	}
	select {
	case r := <-s.released:
		if string(r) != "pooled reply" {
			t.Fatalf("released %q", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the reply was not given back")
	}
}

// poolSession lends the server big frames' buffers and records what
// comes back.
type poolSession struct {
	releasingSession
	lent     atomic.Int64
	returned chan []byte
}

func (s *poolSession) FrameBuf(n int) []byte {
	s.lent.Add(1)
	return make([]byte, n)
}
func (s *poolSession) ReleasePayload(op uint16, frame []byte) { s.returned <- frame }

// A big call's frame is read into a buffer the session lends, and given
// back, holding the call, once the call is answered; small ones are not.
func TestPayloadPool(t *testing.T) {
	s := &poolSession{releasingSession: releasingSession{released: make(chan []byte, 2)}, returned: make(chan []byte, 2)}
	cl := serveOne(t, s)
	ctx := context.Background()
	if _, err := cl.Call(ctx, 7, []byte("small")); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("w"), 200<<10)
	got, err := cl.Call(ctx, 8, big)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("big call: %d bytes back, %v", len(got), err)
	}
	select {
	case f := <-s.returned:
		if !bytes.HasSuffix(f, big) {
			t.Fatalf("the returned frame (%d bytes) does not hold the call", len(f))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the big frame was not given back")
	}
	if n := s.lent.Load(); n != 1 {
		t.Fatalf("%d buffers lent for one big call and one small", n)
	}
}

// serveOne serves s on a loopback port for the test's length and returns
// a client connected to it.
func serveOne(t *testing.T, s rpc.Session) *rpc.Client {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go rpc.ServeSessions(ctx, slog.New(slog.DiscardHandler), ln, func(net.Conn) rpc.Session { return s })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cl := rpc.NewClient(c)
	t.Cleanup(func() { cl.Close() })
	return cl
}
