package rpc_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cais-platform/cais/rpc"
)

// Operations of the test handler.
const (
	opEcho    uint16 = 10 // echo the payload after a delay taken from its first byte
	opErrno   uint16 = 11 // fail with ENOENT and a payload
	opBlock   uint16 = 12 // block until the test releases it
	opHuge    uint16 = 13 // answer more than MaxPayload
	opBlockCt uint16 = 14 // block until the server's context ends
)

type testServer struct {
	addr    string
	cancel  context.CancelFunc
	served  chan error
	release chan struct{}
	started chan struct{} // one value per blocking call entered
	once    sync.Once
}

// releaseAll lets every opBlock call return, now and later.
func (s *testServer) releaseAll() { s.once.Do(func() { close(s.release) }) }

func startServer(t *testing.T) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &testServer{
		addr:    ln.Addr().String(),
		cancel:  cancel,
		served:  make(chan error, 1),
		release: make(chan struct{}),
		started: make(chan struct{}, 1000),
	}
	h := func(ctx context.Context, op uint16, payload []byte) (syscall.Errno, []byte) {
		switch op {
		case rpc.OpPing:
			return 0, []byte(`{"brick":"test"}`)
		case opEcho:
			if len(payload) > 0 {
				time.Sleep(time.Duration(payload[0]%8) * time.Millisecond)
			}
			return 0, payload
		case opErrno:
			return syscall.ENOENT, []byte("no such file")
		case opBlock:
			s.started <- struct{}{}
			<-s.release
			return 0, []byte("released")
		case opBlockCt:
			s.started <- struct{}{}
			<-ctx.Done()
			return 0, []byte("late")
		case opHuge:
			return 0, make([]byte, rpc.MaxPayload+1)
		}
		return syscall.ENOSYS, nil
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	go func() { s.served <- rpc.Serve(ctx, log, ln, h) }()
	t.Cleanup(func() {
		s.releaseAll()
		cancel()
		select {
		case <-s.served:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after its context ended")
		}
	})
	return s
}

func dial(t *testing.T, addr string) *rpc.Client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cl := rpc.NewClient(c)
	t.Cleanup(func() { cl.Close() })
	return cl
}

func guard(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestCallPing(t *testing.T) {
	s := startServer(t)
	cl := dial(t, s.addr)
	got, err := cl.Call(guard(t), rpc.OpPing, nil)
	if err != nil || string(got) != `{"brick":"test"}` {
		t.Fatalf("Call(ping) = %q, %v", got, err)
	}
}

// TestPipelinedCalls runs many calls on one connection at once; the
// handler's delays make replies come back in another order than the calls
// went out, and each caller must still get its own reply.
func TestPipelinedCalls(t *testing.T) {
	s := startServer(t)
	cl := dial(t, s.addr)
	ctx := guard(t)
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			// The first byte sets the delay: later calls often finish first.
			payload := []byte(fmt.Sprintf("%c call %d %s", byte(7-i%8), i, bytes.Repeat([]byte{byte(i)}, i*37)))
			got, err := cl.Call(ctx, opEcho, payload)
			if err != nil {
				errs <- fmt.Errorf("call %d: %w", i, err)
				return
			}
			if !bytes.Equal(got, payload) {
				errs <- fmt.Errorf("call %d got a reply of %d bytes that is not its own", i, len(got))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestCallErrno(t *testing.T) {
	s := startServer(t)
	cl := dial(t, s.addr)
	got, err := cl.Call(guard(t), opErrno, []byte("x"))
	var errno syscall.Errno
	if !errors.As(err, &errno) || errno != syscall.ENOENT {
		t.Fatalf("Call(errno op) = %v, want syscall.ENOENT", err)
	}
	if !errors.Is(err, syscall.ENOENT) {
		t.Error("errors.Is(err, ENOENT) = false")
	}
	if string(got) != "no such file" {
		t.Errorf("payload with the errno = %q", got)
	}
	if _, err := cl.Call(guard(t), 999, nil); !errors.Is(err, syscall.ENOSYS) {
		t.Errorf("unknown op = %v, want ENOSYS", err)
	}
	// The connection survives errno replies.
	if _, err := cl.Call(guard(t), rpc.OpPing, nil); err != nil {
		t.Errorf("ping after errno replies: %v", err)
	}
}

func TestReplyTooLarge(t *testing.T) {
	s := startServer(t)
	cl := dial(t, s.addr)
	if _, err := cl.Call(guard(t), opHuge, nil); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Call with an oversize reply = %v, want EIO", err)
	}
	if _, err := cl.Call(guard(t), rpc.OpPing, nil); err != nil {
		t.Errorf("ping after an oversize reply: %v", err)
	}
}

func TestCallTooLarge(t *testing.T) {
	s := startServer(t)
	cl := dial(t, s.addr)
	if _, err := cl.Call(guard(t), opEcho, make([]byte, rpc.MaxPayload+1)); !errors.Is(err, rpc.ErrFrame) {
		t.Fatalf("Call with an oversize payload = %v, want ErrFrame", err)
	}
	if _, err := cl.Call(guard(t), rpc.OpPing, nil); err != nil {
		t.Errorf("ping after an oversize call: %v", err)
	}
}

var errLateReply = errors.New("answered while shutting down")

// TestServerShutdownFailsCalls: calls in flight when the server goes away
// fail; they do not wait for replies that will never come.
func TestServerShutdownFailsCalls(t *testing.T) {
	for name, op := range map[string]uint16{"handler ignores context": opBlock, "handler watches context": opBlockCt} {
		t.Run(name, func(t *testing.T) {
			s := startServer(t)
			cl := dial(t, s.addr)
			ctx := guard(t)
			const n = 5
			errs := make(chan error, n)
			for range n {
				go func() {
					got, err := cl.Call(ctx, op, nil)
					if op == opBlockCt && err == nil && string(got) == "late" {
						// A handler that watches its context may still
						// answer before the connection is closed.
						err = errLateReply
					}
					errs <- err
				}()
			}
			for range n {
				select {
				case <-s.started:
				case <-ctx.Done():
					t.Fatal("calls did not reach the handler")
				}
			}
			s.cancel()
			for range n {
				err := <-errs
				if err == nil {
					t.Error("a call in flight succeeded after the server shut down")
				} else if errors.Is(err, context.DeadlineExceeded) {
					t.Fatal("a call in flight hung until the guard timeout")
				}
			}
			select {
			case <-cl.Done():
			case <-ctx.Done():
				t.Fatal("Done not closed after the server shut down")
			}
			if _, err := cl.Call(ctx, rpc.OpPing, nil); err == nil || errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Call on a lost connection = %v, want the connection error", err)
			}
		})
	}
}

func TestClientCloseFailsCalls(t *testing.T) {
	s := startServer(t)
	cl := dial(t, s.addr)
	ctx := guard(t)
	errc := make(chan error, 1)
	go func() {
		_, err := cl.Call(ctx, opBlock, nil)
		errc <- err
	}()
	select {
	case <-s.started:
	case <-ctx.Done():
		t.Fatal("call did not reach the handler")
	}
	cl.Close()
	if err := <-errc; err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("call in flight over a closed client = %v, want a connection error", err)
	}
	<-cl.Done()
	if _, err := cl.Call(ctx, rpc.OpPing, nil); err == nil {
		t.Error("Call after Close succeeded")
	}
}

// TestCallContext: a call whose context ends returns at once; its reply,
// when it comes, is dropped without disturbing other calls.
func TestCallContext(t *testing.T) {
	s := startServer(t)
	cl := dial(t, s.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := cl.Call(ctx, opBlock, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Call with an expiring context = %v, want DeadlineExceeded", err)
	}
	s.releaseAll() // the late reply arrives now
	for i := range 20 {
		payload := []byte{0, byte(i)}
		got, err := cl.Call(guard(t), opEcho, payload)
		if err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("call %d after a late reply = %q, %v", i, got, err)
		}
	}
}

// rawConn dials the server and speaks frames by hand.
func rawConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

func TestServerDropsBadFrames(t *testing.T) {
	s := startServer(t)
	tests := []struct {
		name string
		data []byte
	}{
		{"length too large", binary.BigEndian.AppendUint32(nil, 0xffffffff)},
		{"length too small", append(binary.BigEndian.AppendUint32(nil, 3), 1, 2, 3)},
		{"bad kind", must(rpc.AppendFrame(nil, rpc.Frame{Kind: 9, XID: 1}))},
		{"a reply", must(rpc.AppendFrame(nil, rpc.Frame{Kind: rpc.KindReply, XID: 1}))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := rawConn(t, s.addr)
			if _, err := c.Write(tt.data); err != nil {
				t.Fatal(err)
			}
			// The server hangs up without answering.
			n, err := io.ReadAll(c)
			if errors.Is(err, syscall.ECONNRESET) {
				err = nil // closed with bytes unread: a reset is a hang-up too
			}
			if err != nil || len(n) != 0 {
				t.Errorf("after a bad frame the server sent %d bytes, err %v; want EOF", len(n), err)
			}
		})
	}
	// And keeps serving others.
	c := rawConn(t, s.addr)
	if _, err := c.Write(must(rpc.AppendFrame(nil, rpc.Frame{Kind: rpc.KindCall, Op: rpc.OpPing, XID: 77}))); err != nil {
		t.Fatal(err)
	}
	f, err := rpc.ReadFrame(c)
	if err != nil || f.Kind != rpc.KindReply || f.XID != 77 || f.Op != rpc.OpPing || f.Status != 0 {
		t.Errorf("raw ping answered with %+v, %v", f, err)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestClientRefusesCallFrames: a server that sends a call instead of a
// reply breaks the protocol; the client fails its calls.
func TestClientRefusesCallFrames(t *testing.T) {
	c1, c2 := net.Pipe()
	defer c2.Close()
	cl := rpc.NewClient(c1)
	defer cl.Close()
	ctx := guard(t)
	errc := make(chan error, 1)
	go func() {
		_, err := cl.Call(ctx, rpc.OpPing, nil)
		errc <- err
	}()
	req, err := rpc.ReadFrame(c2)
	if err != nil || req.Kind != rpc.KindCall || req.Op != rpc.OpPing {
		t.Fatalf("fake server read %+v, %v", req, err)
	}
	if _, err := c2.Write(must(rpc.AppendFrame(nil, rpc.Frame{Kind: rpc.KindCall, XID: req.XID}))); err != nil {
		t.Fatal(err)
	}
	err = <-errc
	if !errors.Is(err, rpc.ErrFrame) {
		t.Errorf("Call answered by a call frame = %v, want ErrFrame", err)
	}
	select {
	case <-cl.Done():
	case <-ctx.Done():
		t.Fatal("client not done after a protocol error")
	}
}

// TestClientXIDs: every call on a connection gets its own transaction ID and
// a reply for an unknown ID is ignored.
func TestClientXIDs(t *testing.T) {
	c1, c2 := net.Pipe()
	defer c2.Close()
	cl := rpc.NewClient(c1)
	defer cl.Close()
	ctx := guard(t)
	results := make(chan string, 3)
	for i := range 3 {
		go func() {
			got, err := cl.Call(ctx, opEcho, []byte{byte(i)})
			if err != nil {
				results <- err.Error()
				return
			}
			results <- string(got)
		}()
	}
	seen := map[uint64]bool{}
	var calls []rpc.Frame
	for range 3 {
		f, err := rpc.ReadFrame(c2)
		if err != nil {
			t.Fatal(err)
		}
		if seen[f.XID] {
			t.Fatalf("transaction ID %d used twice", f.XID)
		}
		seen[f.XID] = true
		calls = append(calls, f)
	}
	// A stray reply first, then the real ones in reverse order.
	if _, err := c2.Write(must(rpc.AppendFrame(nil, rpc.Frame{Kind: rpc.KindReply, XID: 1 << 60, Payload: []byte("stray")}))); err != nil {
		t.Fatal(err)
	}
	for i := len(calls) - 1; i >= 0; i-- {
		reply := rpc.Frame{Kind: rpc.KindReply, Op: calls[i].Op, XID: calls[i].XID, Payload: []byte(fmt.Sprintf("reply to %d", calls[i].Payload[0]))}
		if _, err := c2.Write(must(rpc.AppendFrame(nil, reply))); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]bool{}
	for range 3 {
		got[<-results] = true
	}
	for i := range 3 {
		if !got[fmt.Sprintf("reply to %d", i)] {
			t.Errorf("results %v miss the reply to call %d", got, i)
		}
	}
}

// TestNoReplyCall: a call with FlagNoReply is served and not answered.
func TestNoReplyCall(t *testing.T) {
	s := startServer(t)
	c := rawConn(t, s.addr)
	posted := must(rpc.AppendFrame(nil, rpc.Frame{Kind: rpc.KindCall, Flags: rpc.FlagNoReply, Op: opBlock, XID: 5}))
	if _, err := c.Write(posted); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.started: // the server did handle it
	case <-time.After(10 * time.Second):
		t.Fatal("the posted call was not handled")
	}
	s.releaseAll()
	if _, err := c.Write(must(rpc.AppendFrame(nil, rpc.Frame{Kind: rpc.KindCall, Op: rpc.OpPing, XID: 6}))); err != nil {
		t.Fatal(err)
	}
	f, err := rpc.ReadFrame(c)
	if err != nil || f.XID != 6 {
		t.Fatalf("first frame back: %+v, %v; want the ping's reply (XID 6)", f, err)
	}
	// Nothing else comes: the posted call's reply would have been written
	// by now.
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if f, err := rpc.ReadFrame(c); err == nil {
		t.Fatalf("the server answered a call with FlagNoReply: %+v", f)
	}
}

// TestClientPost: Post sends FlagNoReply and returns without a reply; a
// server that replies anyway (one older than the flag) does not confuse
// the calls after it.
func TestClientPost(t *testing.T) {
	s := startServer(t)
	cl := dial(t, s.addr)
	ctx := guard(t)
	if err := cl.Post(ctx, opBlock, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the posted call was not handled")
	}
	s.releaseAll()
	if got, err := cl.Call(ctx, opEcho, []byte{0, 'x'}); err != nil || string(got) != "\x00x" {
		t.Fatalf("call after a post = %q, %v", got, err)
	}

	// An old server: replies to every call, in order, flags or not.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	flags := make(chan uint8, 2)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		for {
			f, err := rpc.ReadFrame(c)
			if err != nil {
				return
			}
			flags <- f.Flags
			reply := must(rpc.AppendFrame(nil, rpc.Frame{Kind: rpc.KindReply, Op: f.Op, XID: f.XID, Payload: []byte(fmt.Sprintf("reply to %d", f.XID))}))
			if _, err := c.Write(reply); err != nil {
				return
			}
		}
	}()
	old := dial(t, ln.Addr().String())
	if err := old.Post(ctx, opEcho, []byte("posted")); err != nil {
		t.Fatal(err)
	}
	got, err := old.Call(ctx, opEcho, []byte("called"))
	if err != nil || string(got) != "reply to 2" {
		t.Fatalf("call after a post to an old server = %q, %v; want its own reply", got, err)
	}
	if p, c := <-flags, <-flags; p != rpc.FlagNoReply || c != 0 {
		t.Errorf("flags sent: post %d, call %d; want %d and 0", p, c, rpc.FlagNoReply)
	}
}

// TestRedialerPostNeverDials: Post goes on the live connection, and with
// none (never made, or lost) it drops the call without dialing.
func TestRedialerPostNeverDials(t *testing.T) {
	s := startServer(t)
	ctx := guard(t)
	var dials int
	var mu sync.Mutex
	r := rpc.NewRedialer(s.addr, func(ctx context.Context, addr string) (net.Conn, error) {
		mu.Lock()
		dials++
		mu.Unlock()
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}, slog.New(slog.DiscardHandler))
	defer r.Close()
	if err := r.Post(ctx, opEcho, nil); err != nil {
		t.Fatalf("post with no connection: %v", err)
	}
	if _, err := r.Call(ctx, rpc.OpPing, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.Post(ctx, opBlock, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.started: // posted on the live connection
	case <-ctx.Done():
		t.Fatal("the posted call never reached the server")
	}
	r.Close()
	if err := r.Post(ctx, opEcho, nil); err != nil {
		t.Fatalf("post after the connection closed: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if dials != 1 {
		t.Fatalf("%d dials, want 1 (the call's)", dials)
	}
}

// inlineSession answers opEcho in the connection's reader (rpc.Inliner)
// and opBlock, also inline, once release is closed.
type inlineSession struct {
	started chan struct{}
	release chan struct{}
}

func (s *inlineSession) Handle(ctx context.Context, op uint16, payload []byte) (syscall.Errno, []byte) {
	switch op {
	case opEcho:
		return 0, payload
	case opBlock:
		s.started <- struct{}{}
		<-s.release
		return 0, []byte("released")
	case opErrno:
		return 0, []byte("in a goroutine")
	}
	return syscall.ENOSYS, nil
}

func (s *inlineSession) Close() {}

func (s *inlineSession) Inline(op uint16, _ []byte) bool { return op == opEcho || op == opBlock }

// A call the session names as quick (rpc.Inliner) runs in the
// connection's reader when nothing else waits to be read: a call sent
// after it waits for it, where other calls run beside each other.
func TestInlineCalls(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sess := &inlineSession{started: make(chan struct{}, 1), release: make(chan struct{})}
	served := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	go func() {
		served <- rpc.ServeSessions(ctx, log, ln, func(net.Conn) rpc.Session { return sess })
	}()
	t.Cleanup(func() {
		cancel()
		<-served
	})
	cl := dial(t, ln.Addr().String())
	gctx := guard(t)

	// Many at once, some read while others wait in the buffer: each
	// gets its own reply.
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			p := []byte(fmt.Sprintf("call %d", i))
			if got, err := cl.Call(gctx, opEcho, p); err != nil || !bytes.Equal(got, p) {
				t.Errorf("call %d: %q %v", i, got, err)
			}
		})
	}
	wg.Wait()

	blocked := make(chan error, 1)
	go func() {
		_, err := cl.Call(gctx, opBlock, nil)
		blocked <- err
	}()
	<-sess.started
	after := make(chan error, 1)
	go func() {
		_, err := cl.Call(gctx, opErrno, nil)
		after <- err
	}()
	select {
	case err := <-after:
		t.Fatalf("a call sent after an inline call still running was answered (%v): the reader did not run it", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(sess.release)
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	if err := <-after; err != nil {
		t.Fatal(err)
	}
}
