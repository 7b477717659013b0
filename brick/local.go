package brick

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/cais-platform/cais/rpc"
	"github.com/cais-platform/cais/unixsock"
)

// A brick also serves the clients of its own machine (a mount, the
// self-heal daemon) on a Unix socket, without TLS: the kernel names the
// peer's user, so the socket needs no certificates to know that its
// client is root, and a connection spares the encryption of every byte
// both ways and loopback TCP's work. Only root (or the brick's own user)
// may connect, as only root may read the node's key that a TLS client
// presents; a client checks the same of the server and asks the brick
// for its identity before it sends a call.
//
// The connection's bytes go through two pipes the client passes the
// brick on the socket (unixsock.OfferPipes): a pipe, unlike the socket,
// does not wake the writer's poller each time the reader takes a
// message, and those wakeups were on every call's path.

// SocketPath is where the brick brickID listens for local clients, in the
// supervisor's run directory runDir.
func SocketPath(runDir, brickID string) string {
	return filepath.Join(runDir, brickID+".sock")
}

// listenLocal listens on the Unix socket at path (unixsock.Listen: mode
// 0600, a stale socket replaced). Connections from users other than the
// brick's own are closed on accept.
func listenLocal(log *slog.Logger, path string) (net.Listener, error) {
	ln, err := unixsock.Listen(path)
	if err != nil {
		return nil, err
	}
	return &localListener{Listener: ln, uid: os.Geteuid(), log: log}, nil
}

// localListener hands out the connections of its users' processes as
// BatchConns.
type localListener struct {
	net.Listener
	uid int
	log *slog.Logger
}

func (l *localListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		uid, pid, err := unixsock.PeerUser(c)
		if err != nil || !trustedUID(uid, l.uid) {
			l.log.Warn("refused a local connection from another user", "uid", uid, "pid", pid, "err", err)
			c.Close()
			continue
		}
		uc, ok := c.(*net.UnixConn)
		if !ok {
			return rpc.NewBatchConn(c), nil
		}
		return rpc.NewBatchConn(unixsock.NewOfferConn(uc)), nil
	}
}

// trustedUID reports whether a peer running as uid may share a brick's
// data with a process running as self: root, or the same user.
func trustedUID(uid, self int) bool { return uid == 0 || uid == self }

// DialLocal connects to the brick brickID of volume volumeID on the Unix
// socket at path (SocketPath), and returns the connection once the brick
// there has said it is that one. The server must run as root or as the
// caller's user.
func DialLocal(ctx context.Context, path, volumeID, brickID string) (net.Conn, error) {
	c, pid, err := dialLocal(ctx, path, volumeID, brickID, true)
	if err != nil && !errors.Is(err, ErrNotThatBrick) && ctx.Err() == nil {
		// A brick of a release before pipe offers drops the connection
		// at the offer: the socket then carries the calls.
		c, pid, err = dialLocal(ctx, path, volumeID, brickID, false)
	}
	if err != nil {
		return nil, fmt.Errorf("local brick socket %s: %w", path, err)
	}
	return &localConn{BatchConn: rpc.NewBatchConn(c), pid: pid}, nil
}

// dialLocal connects to the brick's socket, through pipes if pipes, and
// checks the brick (checkLocal).
func dialLocal(ctx context.Context, path, volumeID, brickID string, pipes bool) (net.Conn, int, error) {
	var d net.Dialer
	sc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, 0, err
	}
	c := sc
	if uc, ok := sc.(*net.UnixConn); ok && pipes {
		pc, err := unixsock.OfferPipes(uc)
		if err != nil {
			sc.Close()
			return nil, 0, err
		}
		c = pc
	}
	pid, err := checkLocal(ctx, c, volumeID, brickID)
	if err != nil {
		c.Close()
		return nil, 0, err
	}
	return c, pid, nil
}

// localConn is a connection to a brick of this machine, which knows the
// brick's process (fop.LocalPeer, for fop.OpLocalFD).
type localConn struct {
	*rpc.BatchConn
	pid int
}

// PeerPID is the brick's process ID in this process's PID namespace, 0
// when it is not in it.
func (c *localConn) PeerPID() int { return c.pid }

// NetConn is the BatchConn under c, which batches the frames written.
func (c *localConn) NetConn() net.Conn { return c.BatchConn }

// ErrNotThatBrick is returned by DialLocal when another brick (or none)
// answers on the socket.
var ErrNotThatBrick = errors.New("another brick serves this socket")

// checkLocal checks the server's user and asks it who it is with a ping,
// before the connection carries anything else. It returns the server's
// process ID.
func checkLocal(ctx context.Context, c net.Conn, volumeID, brickID string) (int, error) {
	uid, pid, err := unixsock.PeerUser(c)
	if err != nil {
		return 0, err
	}
	if !trustedUID(uid, os.Geteuid()) {
		return 0, fmt.Errorf("served by uid %d, neither root nor this process's user", uid)
	}
	return pid, pingLocal(ctx, c, volumeID, brickID)
}

func pingLocal(ctx context.Context, c net.Conn, volumeID, brickID string) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(5 * time.Second)
	}
	if err := c.SetDeadline(deadline); err != nil {
		return err
	}
	const xid = 1
	req, err := rpc.AppendFrame(nil, rpc.Frame{Kind: rpc.KindCall, Op: rpc.OpPing, XID: xid})
	if err != nil {
		return err
	}
	if _, err := c.Write(req); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	f, err := rpc.ReadFrame(c)
	if err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	if f.Kind != rpc.KindReply || f.XID != xid || f.Op != rpc.OpPing {
		return fmt.Errorf("ping: unexpected frame (kind %d, op %d, xid %d)", f.Kind, f.Op, f.XID)
	}
	if f.Status != 0 {
		return fmt.Errorf("ping: brick unhealthy: %s", f.Payload)
	}
	var id Identity
	if err := json.Unmarshal(f.Payload, &id); err != nil {
		return fmt.Errorf("ping: bad reply: %w", err)
	}
	if id.VolumeID != volumeID || id.BrickID != brickID {
		return fmt.Errorf("%w: brick %s of volume %s, not %s of %s", ErrNotThatBrick, id.BrickID, id.VolumeID, brickID, volumeID)
	}
	return c.SetDeadline(time.Time{})
}
