package fop

import (
	"context"
	"log/slog"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/cais-platform/cais/rpc"
)

// TestReleasePosted: a release goes out without waiting (FlagNoReply),
// reaches the brick, and succeeds with a nil error, not a zero errno.
func TestReleasePosted(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := make(chan uint64, 1)
	go rpc.Serve(ctx, slog.New(slog.DiscardHandler), ln, func(_ context.Context, op uint16, payload []byte) (syscall.Errno, []byte) {
		if op != OpRelease {
			return syscall.ENOSYS, nil
		}
		var r HandleReq
		if err := Unmarshal(payload, &r); err != nil {
			return syscall.EINVAL, nil
		}
		got <- r.Handle
		return 0, nil
	})
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cl := rpc.NewClient(c)
	defer cl.Close()
	if err := NewClient(cl).Release(ctx, 42); err != nil {
		t.Fatalf("Release = %#v, want nil", err)
	}
	select {
	case h := <-got:
		if h != 42 {
			t.Fatalf("the brick released handle %d, want 42", h)
		}
	case <-ctx.Done():
		t.Fatal("the release never reached the brick")
	}
}
