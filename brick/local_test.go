package brick

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/fop"
	"github.com/cais-platform/cais/rpc"
	"github.com/cais-platform/cais/unixsock"
)

// A brick serves its own machine's root clients on a Unix socket: only
// root's, only to a client that asks for that brick, and it leaves no
// socket behind when it stops.
func TestLocalSocket(t *testing.T) {
	requireRoot(t)
	dir, volID, cert := servedBrick(t)
	// A directory others may enter, so that only the socket's own mode
	// and the brick's check keep another user out.
	sockDir, err := os.MkdirTemp("", "cais-sock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	if err := os.Chmod(sockDir, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := SocketPath(sockDir, "b1")
	// A socket left by a brick killed before it could remove it.
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	cfg := ServerConfig{Volume: "v", VolumeID: volID, BrickID: "b1", Path: dir, Listen: "127.0.0.1:0",
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, LocalSocket: sock}
	go func() { done <- Serve(ctx, discardLog(), cfg, nil) }()

	var c net.Conn
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err = DialLocal(ctx, sock, volID, "b1")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dial the local socket: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if nc, ok := c.(interface{ NetConn() net.Conn }); !ok {
		t.Errorf("local connection is a %T, with no BatchConn under it (posted calls would not batch)", c)
	} else if bc, ok := nc.NetConn().(*rpc.BatchConn); !ok {
		t.Errorf("local connection is over a %T, not a BatchConn (posted calls would not batch)", nc.NetConn())
	} else if _, ok := bc.Conn.(*unixsock.PipeConn); !ok {
		t.Errorf("local connection's bytes go through a %T, not pipes", bc.Conn)
	}
	if p, ok := c.(interface{ PeerPID() int }); !ok || p.PeerPID() != os.Getpid() {
		t.Errorf("local connection's peer: %T %v, want this process %d", c, ok, os.Getpid())
	}
	cl := rpc.NewClient(c)
	out, err := cl.Call(ctx, fop.OpLookup, fop.Marshal(&fop.PathReq{}))
	var e fop.Entry
	if err != nil || fop.Unmarshal(out, &e) != nil || e.Attr.GFID != fop.RootGFID {
		t.Fatalf("lookup over the local socket: %+v %v", e, err)
	}
	cl.Close()

	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket file: %v %v, want a socket of mode 0600", fi.Mode(), err)
	}
	if _, err := DialLocal(ctx, sock, volID, "b2"); !errors.Is(err, ErrNotThatBrick) {
		t.Fatalf("dial for another brick: %v, want ErrNotThatBrick", err)
	}
	if _, err := DialLocal(ctx, sock, uuid.NewString(), "b1"); !errors.Is(err, ErrNotThatBrick) {
		t.Fatalf("dial for another volume: %v, want ErrNotThatBrick", err)
	}

	// Another user: the file's mode keeps it out, and were the mode
	// opened, the brick's check of its credentials would.
	if got := pingAsNobody(t, sock); got != "denied" {
		t.Fatalf("nobody's connection to a 0600 socket: %s, want denied", got)
	}
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	if got := pingAsNobody(t, sock); got != "closed" {
		t.Fatalf("nobody's ping on an opened socket: %s, want the connection closed unanswered", got)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket left after the brick stopped: %v", err)
	}
}

// A brick of a release before pipe offers drops the connection at the
// offer; DialLocal then talks to it on the socket.
func TestLocalSocketOldBrick(t *testing.T) {
	dir, volID, _ := servedBrick(t)
	sockDir, err := os.MkdirTemp("", "cais-sock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := SocketPath(sockDir, "b1")
	ln, err := unixsock.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := json.Marshal(Identity{Volume: "v", VolumeID: volID, BrickID: "b1", Path: dir, PID: os.Getpid()})
	ping := func() (syscall.Errno, []byte) { return 0, id }
	sh := newShared()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go rpc.ServeSessions(ctx, discardLog(), ln, func(net.Conn) rpc.Session {
		s := newSessionShared(dir, discardLog(), ping, sh)
		s.local = true
		return s
	})
	c, err := DialLocal(ctx, sock, volID, "b1")
	if err != nil {
		t.Fatalf("dial a brick that takes no pipes: %v", err)
	}
	defer c.Close()
	if bc := c.(interface{ NetConn() net.Conn }).NetConn().(*rpc.BatchConn); !isUnixConn(bc.Conn) {
		t.Fatalf("connection to an old brick over %T, want the socket", bc.Conn)
	}
	cl := rpc.NewClient(c)
	out, err := cl.Call(ctx, fop.OpLookup, fop.Marshal(&fop.PathReq{}))
	var e fop.Entry
	if err != nil || fop.Unmarshal(out, &e) != nil || e.Attr.GFID != fop.RootGFID {
		t.Fatalf("lookup on an old brick's socket: %+v %v", e, err)
	}
}

func isUnixConn(c net.Conn) bool {
	_, ok := c.(*net.UnixConn)
	return ok
}

// pingAsNobody runs this test binary as user nobody to ping the brick on
// sock (TestLocalSocketHelper) and returns what it saw: denied (no
// permission to connect), closed (connected, then closed unanswered) or
// answered.
func pingAsNobody(t *testing.T, sock string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The test binary's own directory is root's alone.
	dir, err := os.MkdirTemp("", "cais-brick-helper")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "helper.test")
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestLocalSocketHelper$")
	cmd.Env = append(os.Environ(), "CAIS_LOCAL_SOCKET_HELPER="+sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if r, ok := strings.CutPrefix(l, "RESULT "); ok {
			return r
		}
	}
	t.Fatalf("helper printed no result:\n%s", out)
	return ""
}

// TestLocalSocketHelper is pingAsNobody's other process.
func TestLocalSocketHelper(t *testing.T) {
	sock := os.Getenv("CAIS_LOCAL_SOCKET_HELPER")
	if sock == "" {
		t.Skip("run by TestLocalSocket")
	}
	fmt.Println("RESULT " + pingRaw(sock))
}

func pingRaw(sock string) string {
	c, err := net.Dial("unix", sock)
	if errors.Is(err, syscall.EACCES) {
		return "denied"
	}
	if err != nil {
		return "dial: " + err.Error()
	}
	defer c.Close()
	req, _ := rpc.AppendFrame(nil, rpc.Frame{Kind: rpc.KindCall, Op: rpc.OpPing, XID: 1})
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(req); err != nil && !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
		return "write: " + err.Error()
	}
	f, err := rpc.ReadFrame(c)
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
		return "closed"
	}
	if err != nil {
		return "read: " + err.Error()
	}
	return fmt.Sprintf("answered (status %d, %q)", f.Status, f.Payload)
}

// A client of a brick on its own machine reads and writes an open file
// through a duplicate of the brick's descriptor: the file the brick
// named, kept once and closed with the handle; over TCP there is none.
func TestLocalFD(t *testing.T) {
	requireRoot(t)
	dir, volID, cert := servedBrick(t)
	sock := SocketPath(t.TempDir(), "b1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	cfg := ServerConfig{Volume: "v", VolumeID: volID, BrickID: "b1", Path: dir, Listen: "127.0.0.1:0",
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, LocalSocket: sock}
	go func() { done <- Serve(ctx, discardLog(), cfg, func(a net.Addr) { addrc <- a }) }()
	addr := (<-addrc).String()
	defer func() {
		cancel()
		<-done
	}()
	for i := 0; ; i++ {
		c, err := DialLocal(ctx, sock, volID, "b1")
		if err == nil {
			c.Close()
			break
		}
		if i == 250 {
			t.Fatalf("dial the local socket: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	local := fop.NewClient(rpc.NewRedialer("b1", func(ctx context.Context, _ string) (net.Conn, error) {
		return DialLocal(ctx, sock, volID, "b1")
	}, discardLog()))
	data := []byte(strings.Repeat("local read ", 1000))
	w, err := local.Create(ctx, &fop.CreateReq{Path: "f", Mode: syscall.S_IFREG | 0o644, GFID: fop.NewGFID(), Flags: syscall.O_WRONLY})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := local.Write(ctx, w.Handle, 0, data); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(data)+10)
	if n, ok := local.ReadLocal(ctx, w.Handle, buf, 0); ok {
		t.Fatalf("a write-only handle read %d bytes locally", n)
	}
	// A write past the start goes through the descriptor, and reports
	// the file's attributes after it as the brick does.
	wr, err := local.Write(ctx, w.Handle, int64(len(data)), []byte("and more"))
	if err != nil || wr.Written != 8 || wr.Attr.Size != uint64(len(data)+8) || wr.Attr.GFID.IsZero() {
		t.Fatalf("local write: %+v %v", wr, err)
	}
	data = append(data, "and more"...)
	if got, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("brick's file after the local write: %d bytes, %v", len(got), err)
	}
	if a, err := local.Fgetattr(ctx, w.Handle); err != nil || a.Ino != wr.Attr.Ino || a.Size != wr.Attr.Size || a.Mtime != wr.Attr.Mtime {
		t.Fatalf("brick's attributes %+v %v, local write's %+v", a, err, wr.Attr)
	}
	r, err := local.Open(ctx, "f", syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	n, ok := local.ReadLocal(ctx, r.Handle, buf, 5)
	if !ok || !bytes.Equal(buf[:n], data[5:]) {
		t.Fatalf("local read: %d bytes (ok %v), want %d", n, ok, len(data)-5)
	}
	// The client holds a descriptor of the brick's file for each handle,
	// beside the brick's own (the brick runs in this process).
	brickFile := filepath.Join(dir, "f")
	if fds := openOn(t, brickFile); len(fds) != 4 {
		t.Fatalf("descriptors of %s in this process: %v, want the brick's two and the client's two", brickFile, fds)
	}
	if n, ok := local.ReadLocal(ctx, r.Handle, buf[:4], 11); !ok || string(buf[:n]) != "loca" {
		t.Fatalf("second local read: %q %v", buf[:n], ok)
	}
	if fds := openOn(t, brickFile); len(fds) != 4 {
		t.Fatalf("descriptors after a second read: %v, want the first one kept", fds)
	}
	for _, h := range []uint64{r.Handle, w.Handle} {
		if err := local.Release(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; len(openOn(t, brickFile)) != 0; i++ {
		if i == 250 {
			t.Fatalf("descriptors of the file after the releases: %v", openOn(t, brickFile))
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A client that says hello is told the descriptor with the new
	// handle (fop.FeatLocalFD): even a first write at the start of the
	// file goes through it, with no call to ask for it.
	rd := rpc.NewRedialer("b1", func(ctx context.Context, _ string) (net.Conn, error) {
		return DialLocal(ctx, sock, volID, "b1")
	}, discardLog())
	rd.Hello = func(ctx context.Context, c *rpc.Client) error { _, err := fop.SayHello(ctx, c); return err }
	hello := fop.NewClient(rd)
	hGFID := fop.NewGFID()
	cr, err := hello.Create(ctx, &fop.CreateReq{Path: "h", Mode: syscall.S_IFREG | 0o644, GFID: hGFID, Flags: syscall.O_RDWR})
	if err != nil {
		t.Fatal(err)
	}
	hFile := filepath.Join(dir, "h")
	if got := openOn(t, hFile); len(got) != 1 {
		t.Fatalf("descriptors of a new file before its first write: %v, want the brick's", got)
	}
	if wr, err := hello.Write(ctx, cr.Handle, 0, []byte("abc")); err != nil || wr.Written != 3 || wr.Attr.Size != 3 {
		t.Fatalf("first write: %+v %v", wr, err)
	}
	if got := openOn(t, hFile); len(got) != 2 {
		t.Fatalf("descriptors after the first write: %v, want the brick's and the client's", got)
	}
	if got, err := os.ReadFile(hFile); err != nil || string(got) != "abc" {
		t.Fatalf("file after the first write: %q %v", got, err)
	}
	if n, ok := hello.ReadLocal(ctx, cr.Handle, buf, 0); !ok || string(buf[:n]) != "abc" {
		t.Fatalf("first read: %q %v", buf[:n], ok)
	}
	// The descriptor a mount hands the kernel (fop.Passthrougher): a
	// duplicate of the brick's, the caller's to close, naming the file
	// and its GFID, usable after the handle's release.
	pfd, pgfid, ok := hello.PassthroughFD(ctx, cr.Handle)
	if !ok {
		t.Fatal("no passthrough descriptor from a brick on this machine")
	}
	defer unix.Close(pfd)
	var pst, hst unix.Stat_t
	if err := unix.Fstat(pfd, &pst); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(hFile, &hst); err != nil {
		t.Fatal(err)
	}
	if pst.Dev != hst.Dev || pst.Ino != hst.Ino || pgfid != hGFID {
		t.Fatalf("passthrough descriptor names %d/%d %v, want %d/%d %v", pst.Dev, pst.Ino, pgfid, hst.Dev, hst.Ino, hGFID)
	}
	if err := hello.Release(ctx, cr.Handle); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Pwrite(pfd, []byte("de"), 3); err != nil {
		t.Fatalf("write through the passthrough descriptor after the release: %v", err)
	}
	if got, err := os.ReadFile(hFile); err != nil || string(got) != "abcde" {
		t.Fatalf("file after a write through the passthrough descriptor: %q %v", got, err)
	}

	// A file a create makes is open for reading too, without access time
	// updates, whatever the caller asked: the mount reads back what it
	// wrote through the descriptor. An open of an existing file keeps
	// the access mode asked for.
	cw, err := hello.Create(ctx, &fop.CreateReq{Path: "w", Mode: syscall.S_IFREG | 0o200, GFID: fop.NewGFID(), Flags: syscall.O_WRONLY})
	if err != nil {
		t.Fatal(err)
	}
	flags := func(what string, h uint64) int {
		t.Helper()
		fd, _, ok := hello.PassthroughFD(ctx, h)
		if !ok {
			t.Fatalf("%s: no descriptor", what)
		}
		defer unix.Close(fd)
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return fl & (unix.O_ACCMODE | unix.O_NOATIME)
	}
	if got, want := flags("create O_WRONLY", cw.Handle), unix.O_RDWR|unix.O_NOATIME; got != want {
		t.Fatalf("create O_WRONLY: descriptor flags %#o, want %#o", got, want)
	}
	ow, err := hello.Open(ctx, "w", syscall.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	if got := flags("open O_WRONLY", ow.Handle); got&unix.O_ACCMODE != unix.O_WRONLY {
		t.Fatalf("open O_WRONLY of an existing file: flags %#o, want write-only", got)
	}

	// The same brick over TLS: no descriptor to be had.
	remote := fop.NewClient(rpc.NewRedialer(addr, func(ctx context.Context, addr string) (net.Conn, error) {
		return rpc.DialTLS(ctx, &net.Dialer{}, addr, &tls.Config{InsecureSkipVerify: true})
	}, discardLog()))
	r, err = remote.Open(ctx, "f", syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := remote.ReadLocal(ctx, r.Handle, buf, 0); ok {
		t.Fatalf("a TLS connection read %d bytes locally", n)
	}
	if fd, _, ok := remote.PassthroughFD(ctx, r.Handle); ok {
		unix.Close(fd)
		t.Fatal("a TLS connection gave a passthrough descriptor")
	}
	if got := openOn(t, brickFile); len(got) != 1 {
		t.Fatalf("descriptors of the file with a TLS client's handle: %v, want the brick's", got)
	}
}

// openOn lists the descriptors of this process open on path (the brick,
// served in this process, has none between calls).
func openOn(t *testing.T, path string) []string {
	t.Helper()
	fds, err := filepath.Glob("/proc/self/fd/*")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, fd := range fds {
		if p, err := os.Readlink(fd); err == nil && p == path {
			out = append(out, filepath.Base(fd))
		}
	}
	return out
}
