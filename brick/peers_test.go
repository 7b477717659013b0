package brick

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/cais-platform/cais/fop"
	"github.com/cais-platform/cais/rpc"
)

// Every subscribed client hears how many others take the brick's upcalls
// (fop.OpPeers): when it subscribes, and when another subscribes or goes.
// Clients that never subscribe count for nothing.
func TestPeersEvents(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a brick sets trusted.* extended attributes: needs root")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ServeDir(ctx, discardLog(), ln, t.TempDir())
	type client struct {
		cl    *rpc.Client
		peers chan uint32
	}
	dial := func(subscribe bool) client {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		ch := make(chan uint32, 16)
		cl := rpc.NewClientEvents(c, func(op uint16, p []byte) {
			var m fop.Peers
			if op == fop.OpPeers && fop.Unmarshal(p, &m) == nil {
				ch <- m.Others
			}
		})
		t.Cleanup(func() { cl.Close() })
		if subscribe {
			if err := cl.Subscribe(ctx); err != nil {
				t.Fatal(err)
			}
		}
		return client{cl, ch}
	}
	next := func(c client, want uint32, what string) {
		t.Helper()
		select {
		case got := <-c.peers:
			if got != want {
				t.Fatalf("%s: Peers %d, want %d", what, got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no Peers event", what)
		}
	}
	none := func(c client, what string) {
		t.Helper()
		select {
		case got := <-c.peers:
			t.Fatalf("%s: Peers %d, want no event", what, got)
		case <-time.After(100 * time.Millisecond):
		}
	}
	a := dial(true)
	next(a, 0, "the first subscriber")
	quiet := dial(false)
	none(a, "a client that does not subscribe")
	b := dial(true)
	next(b, 1, "the second subscriber")
	next(a, 1, "the first, when the second subscribed")
	quiet.cl.Close()
	none(a, "a client that never subscribed goes")
	b.cl.Close()
	next(a, 0, "the first, when the second went")
}
