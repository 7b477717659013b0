package rpc

import (
	"bufio"
	"context"
	"errors"
	"net"
	"sync"
	"syscall"
)

// Operations of the event stream (see KindEvent).
const (
	// OpSubscribe asks the server for events on this connection. A
	// server without events answers ENOSYS.
	OpSubscribe uint16 = 2
	// OpEventsLost is the event a client gets when events meant for it
	// were dropped (its queue overflowed, or it reconnected): whatever it
	// keeps on the strength of events may be stale.
	OpEventsLost uint16 = 3
)

// MaxQueuedEvents bounds the events waiting to be written to one
// connection; beyond it they are dropped and the client gets OpEventsLost.
const MaxQueuedEvents = 4096

// EventSession is a Session that sends events to its client: serveConn
// hands it the connection's Events before serving any call.
type EventSession interface {
	Session
	SetEvents(*Events)
}

// Subscriber is an EventSession told when its client subscribed (after
// the events start to flow).
type Subscriber interface {
	Subscribed()
}

// Events sends one-way event frames to one connection's client, once the
// client subscribed. Send never blocks the caller: events queue, and a
// goroutine of the connection writes them.
type Events struct {
	mu     sync.Mutex
	on     bool
	closed bool
	lost   bool
	q      []Frame
	wake   chan struct{}
	write  func(fs []Frame) error
}

func newEvents(write func(fs []Frame) error) *Events {
	return &Events{wake: make(chan struct{}, 1), write: write}
}

// Subscribed reports whether the client asked for events.
func (e *Events) Subscribed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.on && !e.closed
}

// Send queues an event for the client; it is dropped when the client
// did not subscribe.
func (e *Events) Send(op uint16, payload []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.on || e.closed {
		return
	}
	if len(e.q) >= MaxQueuedEvents {
		e.q, e.lost = e.q[:0], true
	} else {
		e.q = append(e.q, Frame{Kind: KindEvent, Op: op, Payload: payload})
	}
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *Events) subscribe() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.on || e.closed {
		return
	}
	e.on = true
	go e.loop()
}

// close stops the writer: at once when idle, else when its write fails
// on the closed connection.
func (e *Events) close() {
	e.mu.Lock()
	e.closed = true
	e.q = nil
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *Events) loop() {
	for range e.wake {
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			return
		}
		q := e.q
		e.q = nil
		if e.lost {
			q = append([]Frame{{Kind: KindEvent, Op: OpEventsLost}}, q...)
			e.lost = false
		}
		e.mu.Unlock()
		if len(q) > 0 && e.write(q) != nil {
			return
		}
	}
}

// writeFrames writes frames to a connection's writer and flushes it.
func writeFrames(w *bufio.Writer, fs []Frame) error {
	var hdr [4 + headerLen]byte
	for _, f := range fs {
		h, err := AppendHeader(hdr[:0], f, len(f.Payload))
		if err != nil {
			continue
		}
		if _, err := w.Write(h); err != nil {
			return err
		}
		if _, err := w.Write(f.Payload); err != nil {
			return err
		}
	}
	return w.Flush()
}

// Subscribe asks the server for events; they go to the function the
// client was made with (NewClientEvents).
func (cl *Client) Subscribe(ctx context.Context) error {
	_, err := cl.Call(ctx, OpSubscribe, nil)
	return err
}

// NewClientEvents is NewClient for a client that takes events: each one
// the server sends is passed to events, on the connection's reader, so
// events must not block (hand the work to another goroutine).
func NewClientEvents(c net.Conn, events func(op uint16, payload []byte)) *Client {
	return newClient(c, nil, events)
}

// isENOSYS reports a server that does not know an operation.
func isENOSYS(err error) bool { return errors.Is(err, syscall.ENOSYS) }
