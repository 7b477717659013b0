package rpc_test

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

// eventSession broadcasts every call's payload as an event to the other
// sessions, as a brick does with its upcalls.
type eventSession struct {
	hub *hub
	ev  *rpc.Events
}

type hub struct {
	mu   sync.Mutex
	subs map[*eventSession]bool
}

func (s *eventSession) SetEvents(ev *rpc.Events) {
	s.ev = ev
	s.hub.mu.Lock()
	s.hub.subs[s] = true
	s.hub.mu.Unlock()
}

func (s *eventSession) Handle(ctx context.Context, op uint16, payload []byte) (syscall.Errno, []byte) {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	for o := range s.hub.subs {
		if o != s {
			o.ev.Send(op, payload)
		}
	}
	return 0, nil
}

func (s *eventSession) Close() {
	s.hub.mu.Lock()
	delete(s.hub.subs, s)
	s.hub.mu.Unlock()
}

func TestEvents(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := &hub{subs: map[*eventSession]bool{}}
	go rpc.ServeSessions(ctx, slog.New(slog.DiscardHandler), ln, func(net.Conn) rpc.Session { return &eventSession{hub: h} })

	type event struct {
		op      uint16
		payload string
	}
	got := make(chan event, 10)
	dial := func(events func(uint16, []byte)) *rpc.Client {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		cl := rpc.NewClientEvents(c, events)
		t.Cleanup(func() { cl.Close() })
		return cl
	}
	listener := dial(func(op uint16, p []byte) { got <- event{op, string(p)} })
	quiet := dial(func(op uint16, p []byte) { t.Errorf("an unsubscribed client got event %d %q", op, p) })
	sender := dial(nil)

	// Before subscribing, nothing arrives.
	if _, err := sender.Call(ctx, 20, []byte("early")); err != nil {
		t.Fatal(err)
	}
	if err := listener.Subscribe(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := sender.Call(ctx, 21, []byte("changed")); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-got:
		if e != (event{21, "changed"}) {
			t.Fatalf("event %+v, want op 21 \"changed\"", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	// A subscriber's own calls make no event for itself; calls still
	// work on a connection that takes events.
	if _, err := listener.Call(ctx, 22, []byte("own")); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-got:
		t.Fatalf("unexpected event %+v", e)
	case <-time.After(100 * time.Millisecond):
	}
	_ = quiet
}

// A server whose sessions take no events refuses a subscription.
func TestSubscribeUnsupported(t *testing.T) {
	s := startServer(t)
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	cl := rpc.NewClientEvents(c, func(uint16, []byte) {})
	defer cl.Close()
	if err := cl.Subscribe(context.Background()); err != syscall.ENOSYS {
		t.Fatalf("Subscribe = %v, want ENOSYS", err)
	}
}
