// Package unixsock makes a node's root-only Unix sockets (the daemon's
// API and Docker sockets, each brick's local socket) and names the user
// at the other end of a connection on one, as the kernel records it.
package unixsock

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/errdefs"
)

// MaxPath is the longest path a Unix socket address holds (sun_path less
// its terminating NUL).
const MaxPath = 107

// Listen listens on the Unix socket at path, open to the caller's user
// only (mode 0600, made under umask 077 so it is never wider). A socket
// left by a process that died is replaced; one a live process answers on
// is not taken over (errdefs.ErrExists), nor is a file that is not a
// socket.
func Listen(path string) (net.Listener, error) {
	if len(path) > MaxPath {
		return nil, fmt.Errorf("socket path %s is longer than the %d bytes a Unix socket address holds", path, MaxPath)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket; remove it to listen there", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s is served by another running daemon: %w", path, errdefs.ErrExists)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	old := unix.Umask(0o077)
	ln, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("restrict %s: %w", path, err)
	}
	return ln, nil
}

// PeerUser is the user and process at the other end of c, a connection
// on a Unix socket (SO_PEERCRED), or one made on such a socket
// (OfferConn, PipeConn).
func PeerUser(c net.Conn) (uid, pid int, err error) {
	uc, ok := c.(*net.UnixConn)
	if on, isOn := c.(interface{ UnixConn() *net.UnixConn }); isOn {
		uc, ok = on.UnixConn(), true
	}
	if !ok {
		return -1, 0, fmt.Errorf("not a Unix socket: %T", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return -1, 0, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return -1, 0, err
	}
	if cerr != nil {
		return -1, 0, fmt.Errorf("peer credentials: %w", cerr)
	}
	return int(cred.Uid), int(cred.Pid), nil
}
