package daemon

import (
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cais-platform/cais/errdefs"
)

// A socket a live daemon serves is never taken over; one left by a crash
// is replaced.
func TestListenUnixLiveAndStale(t *testing.T) {
	path := filepath.Join(t.TempDir(), "docker.sock")
	live, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	if ln, err := listenUnix(path); err == nil {
		ln.Close()
		t.Fatal("took over a socket another daemon serves")
	} else if !errors.Is(err, errdefs.ErrExists) || !strings.Contains(err.Error(), "served by another running daemon") {
		t.Fatalf("error = %v", err)
	}
	// The other daemon dies without removing its socket.
	live.(*net.UnixListener).SetUnlinkOnClose(false)
	live.Close()
	ln, err := listenUnix(path)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial the new socket: %v", err)
	}
	c.Close()
	ln.Close()
}
