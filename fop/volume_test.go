package fop

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cais-platform/cais/rpc"
)

// TestReleasePosted: a release goes out without waiting (FlagNoReply) and
// returns nil, not a zero errno; a handle that took a lock is released
// with a call that returns once the brick is done, locks and all.
func TestReleasePosted(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	released := make(chan uint64, 2)
	gate := make(chan struct{}) // releases wait at the brick until it closes
	go rpc.Serve(ctx, slog.New(slog.DiscardHandler), ln, func(_ context.Context, op uint16, payload []byte) (syscall.Errno, []byte) {
		switch op {
		case OpSetlk:
			return 0, nil
		case OpRelease:
			var r HandleReq
			if err := Unmarshal(payload, &r); err != nil {
				return syscall.EINVAL, nil
			}
			<-gate
			released <- r.Handle
			return 0, nil
		}
		return syscall.ENOSYS, nil
	})
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cl := rpc.NewClient(c)
	defer cl.Close()
	fc := NewClient(cl)

	// No lock: Release returns while the brick is still at it.
	if err := fc.Release(ctx, 42); err != nil {
		t.Fatalf("Release = %#v, want nil", err)
	}
	// A lock: Release waits for the brick.
	if err := fc.Setlk(ctx, 7, 1, &Lk{Type: LockWrite, End: LkEOF, Pid: 1}, 0); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- fc.Release(ctx, 7) }()
	select {
	case err := <-done:
		t.Fatalf("the release of a handle with a lock returned (%v) before the brick released it", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(gate)
	if err := <-done; err != nil {
		t.Fatalf("Release of the locked handle = %#v, want nil", err)
	}
	got := map[uint64]bool{}
	for range 2 {
		select {
		case h := <-released:
			got[h] = true
		case <-ctx.Done():
			t.Fatal("a release never reached the brick")
		}
	}
	if !got[42] || !got[7] {
		t.Fatalf("the brick released %v, want 42 and 7", got)
	}
}

// TestReleaseAfterReconnect: a lock's record goes with the connection it
// was taken on. The brick dropped that connection's locks with it, so a
// release of such a handle after a reconnection does not wait, and the
// record is gone rather than kept for a handle that may never be
// released; a lock taken on the new connection is waited for again.
func TestReleaseAfterReconnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	gate := make(chan struct{}) // releases wait at the brick until it closes
	go rpc.Serve(ctx, slog.New(slog.DiscardHandler), ln, func(_ context.Context, op uint16, _ []byte) (syscall.Errno, []byte) {
		switch op {
		case OpSetlk:
			return 0, nil
		case OpRelease:
			<-gate
			return 0, nil
		}
		return syscall.ENOSYS, nil
	})
	var mu sync.Mutex
	var last net.Conn
	r := rpc.NewRedialer(ln.Addr().String(), func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		mu.Lock()
		last = c
		mu.Unlock()
		return c, err
	}, slog.New(slog.DiscardHandler))
	r.RetryAfter = 0
	defer r.Close()
	fc := NewClient(r)
	lk := &Lk{Type: LockWrite, End: LkEOF, Pid: 1}
	if err := fc.Setlk(ctx, 7, 1, lk, 0); err != nil {
		t.Fatal(err)
	}
	if n := r.Conns(); n != 1 {
		t.Fatalf("Conns() = %d after the first call, want 1", n)
	}
	mu.Lock()
	last.Close()
	mu.Unlock()
	// The next call notices the lost connection and dials again.
	for r.Conns() == 1 {
		if ctx.Err() != nil {
			t.Fatal("the Redialer never connected again")
		}
		_, _ = r.Call(ctx, rpc.OpPing, nil)
	}
	released := make(chan error, 1)
	go func() { released <- fc.Release(ctx, 7) }()
	select {
	case err := <-released:
		if err != nil {
			t.Fatalf("Release = %v, want nil", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the release of a handle locked on a lost connection waited for the brick")
	}
	fc.mu.Lock()
	stale := len(fc.locked)
	fc.mu.Unlock()
	if stale != 0 {
		t.Fatalf("%d lock records kept after the reconnection, want 0", stale)
	}
	// A lock on the new connection: its release waits again.
	if err := fc.Setlk(ctx, 8, 1, lk, 0); err != nil {
		t.Fatal(err)
	}
	go func() { released <- fc.Release(ctx, 8) }()
	select {
	case err := <-released:
		t.Fatalf("the release of a handle locked on this connection returned (%v) before the brick released it", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(gate)
	if err := <-released; err != nil {
		t.Fatalf("Release = %v, want nil", err)
	}
}
