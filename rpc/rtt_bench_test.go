package rpc

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"syscall"
	"testing"
)

// BenchmarkCallRoundTrip is one empty call and its reply over loopback
// TCP: the latency every brick operation pays on top of its own work.
func BenchmarkCallRoundTrip(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Serve(ctx, slog.New(slog.DiscardHandler), ln, func(context.Context, uint16, []byte) (syscall.Errno, []byte) {
		return 0, nil
	})
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	cl := NewClient(c)
	defer cl.Close()
	b.ResetTimer()
	for range b.N {
		if _, err := cl.Call(ctx, 1, []byte("ping")); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawRoundTrip is the same exchange by two goroutines reading
// and writing 8 bytes over loopback TCP: the floor under
// BenchmarkCallRoundTrip.
func BenchmarkRawRoundTrip(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		s, err := ln.Accept()
		if err != nil {
			return
		}
		defer s.Close()
		r := bufio.NewReader(s)
		buf := make([]byte, 8)
		for {
			if _, err := io.ReadFull(r, buf); err != nil {
				return
			}
			if _, err := s.Write(buf); err != nil {
				return
			}
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 8)
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
}
