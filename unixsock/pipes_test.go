package unixsock

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pair returns the two ends of a new connection on a Unix socket.
func pair(t *testing.T) (client, server *net.UnixConn) {
	t.Helper()
	ln, err := Listen(filepath.Join(t.TempDir(), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.UnixConn), s.(*net.UnixConn)
}

// echo copies what the server side reads back to it, until it fails.
func echo(s net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			if _, werr := s.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func TestPipeOffer(t *testing.T) {
	c, s := pair(t)
	sc := NewOfferConn(s)
	go echo(sc)
	pc, err := OfferPipes(c)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	// A message bigger than a pipe holds, both ways.
	msg := bytes.Repeat([]byte("0123456789abcdef"), (3*pipeSize)/16)
	go func() { _, _ = pc.Write(msg) }()
	got := make([]byte, len(msg))
	if err := pc.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(pc, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("echo through the pipes differs")
	}
	// The server's side took the offer: its bytes go through pipes, and
	// nothing went through the socket after the offer.
	if _, ok := sc.settled().(*PipeConn); !ok {
		t.Fatalf("server connection is %T after an offer, want *PipeConn", sc.settled())
	}
	var queued int
	if err := rawControl(c, func(fd int) error {
		var err error
		queued, err = unix.IoctlGetInt(fd, unix.SIOCINQ)
		return err
	}); err != nil || queued != 0 {
		t.Fatalf("socket holds %d bytes (%v), want 0", queued, err)
	}
	// Both ends still name their peer.
	if uid, pid, err := PeerUser(pc); err != nil || uid != os.Geteuid() || pid != os.Getpid() {
		t.Fatalf("PeerUser of the client's side: %d %d %v", uid, pid, err)
	}
	if uid, _, err := PeerUser(sc); err != nil || uid != os.Geteuid() {
		t.Fatalf("PeerUser of the server's side: %d %v", uid, err)
	}
	// The client's close ends the server's reads; the server's close
	// ends the client's.
	c2, s2 := pair(t)
	sc2 := NewOfferConn(s2)
	pc2, err := OfferPipes(c2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc2.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(sc2, b); err != nil || b[0] != 'x' {
		t.Fatalf("server read %q %v", b, err)
	}
	pc2.Close()
	if n, err := sc2.Read(b); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("server read after the client's close: %d %v, want EOF", n, err)
	}
	c3, s3 := pair(t)
	sc3 := NewOfferConn(s3)
	pc3, err := OfferPipes(c3)
	if err != nil {
		t.Fatal(err)
	}
	defer pc3.Close()
	go func() {
		_, _ = sc3.Read(b)
		sc3.Close()
	}()
	if _, err := pc3.Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	pc3.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := pc3.Read(b); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("client read after the server's close: %d %v, want EOF", n, err)
	}
}

// A client that offers nothing talks on the socket, its first byte
// included.
func TestOfferNotMade(t *testing.T) {
	c, s := pair(t)
	sc := NewOfferConn(s)
	go echo(sc)
	msg := []byte("\x00\x00\x00\x10plain frame bytes")
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo %q, want %q", got, msg)
	}
	if _, ok := sc.settled().(*PipeConn); ok {
		t.Fatal("server took pipes no one offered")
	}
}

// An offer of anything but a pipe's read end and another's write end
// closes the connection, and closes what was passed.
func TestOfferRefused(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, fd := range p {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
	}()
	for _, tc := range []struct {
		name string
		b    byte
		fds  []int
	}{
		{"one pipe end", PipeOffer, []int{p[0]}},
		{"a file", PipeOffer, []int{p[0], int(f.Fd())}},
		{"ends swapped", PipeOffer, []int{p[1], p[0]}},
		{"three", PipeOffer, []int{p[0], p[1], p[1]}},
		{"none", PipeOffer, nil},
		{"a frame with descriptors", 0, []int{p[0], p[1]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s := pair(t)
			var oob []byte
			if tc.fds != nil {
				oob = unix.UnixRights(tc.fds...)
			}
			if _, _, err := c.WriteMsgUnix([]byte{tc.b}, oob, nil); err != nil {
				t.Fatal(err)
			}
			sc := NewOfferConn(s)
			if n, err := sc.Read(make([]byte, 8)); err == nil {
				t.Fatalf("read %d bytes of a bad offer", n)
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
				t.Fatalf("client read after a refused offer: %d %v, want EOF", n, err)
			}
		})
	}
	// The refused descriptors were closed: the pipe's read end here is
	// the only one left, so a write end passed and dropped does not keep
	// it open. Closing our write end then gives EOF at once.
	unix.Close(p[1])
	p[1] = -1
	if err := unix.SetNonblock(p[0], true); err != nil {
		t.Fatal(err)
	}
	if n, err := unix.Read(p[0], make([]byte, 1)); n != 0 || err != nil {
		t.Fatalf("pipe read after every write end closed: %d %v, want EOF (0, nil); a passed end was kept open", n, err)
	}
}

func rawControl(c *net.UnixConn, f func(fd int) error) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := raw.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// The control messages of a pipe offer come from the kernel, but their
// parsing must hold whatever bytes it is given.
func FuzzPassedFDs(f *testing.F) {
	f.Add(unix.UnixRights(3, 4))
	f.Add(unix.UnixRights(3))
	f.Add([]byte{})
	f.Add(append(unix.UnixRights(5, 6), unix.UnixRights(7)...))
	f.Fuzz(func(t *testing.T, oob []byte) {
		fds, err := passedFDs(oob)
		if len(fds)*4 > len(oob) {
			t.Fatalf("%d descriptors from %d bytes (%v)", len(fds), len(oob), err)
		}
	})
}
