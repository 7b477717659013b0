package brick

import (
	"context"
	"crypto/tls"
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

	"github.com/cais-platform/cais/fop"
	"github.com/cais-platform/cais/rpc"
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
	if _, ok := c.(*rpc.BatchConn); !ok {
		t.Errorf("local connection is a %T, not a BatchConn (posted calls would not batch)", c)
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
