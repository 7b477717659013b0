package unixsock

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cais-platform/cais/errdefs"
)

func TestListen(t *testing.T) {
	dir := t.TempDir()
	if _, err := Listen("/" + strings.Repeat("x", MaxPath)); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("long path: %v", err)
	}
	// A file in the way is left alone.
	file := filepath.Join(dir, "f.sock")
	if err := os.WriteFile(file, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("regular file in the way: %v", err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "data" {
		t.Fatalf("the file in the way was changed: %q %v", b, err)
	}
	// A live socket is not taken over; a stale one is replaced.
	path := filepath.Join(dir, "sub", "s.sock")
	live, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v, want 0600", fi.Mode(), err)
	}
	if _, err := Listen(path); !errors.Is(err, errdefs.ErrExists) {
		t.Fatalf("live socket: %v, want ErrExists", err)
	}
	live.(*net.UnixListener).SetUnlinkOnClose(false)
	live.Close()
	ln, err := Listen(path)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	defer ln.Close()
	// The peer of a connection is this process.
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	defer sc.Close()
	uid, pid, err := PeerUser(sc)
	if err != nil || uid != os.Geteuid() || pid != os.Getpid() {
		t.Fatalf("PeerUser = %d %d %v, want %d %d", uid, pid, err, os.Geteuid(), os.Getpid())
	}
	if _, _, err := PeerUser(&net.TCPConn{}); err == nil {
		t.Fatal("PeerUser of a TCP connection succeeded")
	}
}
