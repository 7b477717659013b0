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

func testTLS(t *testing.T) (server, client *tls.Config) {
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
