package brick

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"syscall"

	"github.com/cais-platform/cais/pki"
	"github.com/cais-platform/cais/rpc"
)

// GCPercent is the garbage collection target of data-path processes
// (bricks and mounts): they allocate a buffer per request, and 400 spends
// less CPU on collection (about 12% of a mount's for 1 GiB written and
// read) for a few MB more memory.
const GCPercent = 400

// ServerConfig describes one brick server process.
type ServerConfig struct {
	Volume   string
	VolumeID string
	BrickID  string
	Path     string
	// Listen is IP:PORT.
	Listen string
	TLS    *tls.Config
	// LocalSocket, if set, is a Unix socket path (SocketPath) where the
	// brick also serves local clients without TLS (see DialLocal).
	LocalSocket string
}

// Identity is what a brick answers to a ping.
type Identity struct {
	Volume   string `json:"volume"`
	VolumeID string `json:"volumeID"`
	BrickID  string `json:"brickID"`
	Path     string `json:"path"`
	PID      int    `json:"pid"`
}

// Serve runs a brick server until ctx ends. It refuses to serve a directory
// that is not marked as a brick of its volume. ready, if not nil, is called
// once the port is held.
func Serve(ctx context.Context, log *slog.Logger, cfg ServerConfig, ready func(net.Addr)) error {
	if err := Verify(cfg.Path, cfg.VolumeID); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("brick %s: listen on %s: %w", cfg.Path, cfg.Listen, err)
	}
	tln := rpc.TLSListener(ln, cfg.TLS)
	if ready != nil {
		ready(ln.Addr())
	}
	id := Identity{Volume: cfg.Volume, VolumeID: cfg.VolumeID, BrickID: cfg.BrickID, Path: cfg.Path, PID: os.Getpid()}
	idJSON, _ := json.Marshal(id)
	log.Info("brick serving", "volume", cfg.Volume, "path", cfg.Path, "addr", ln.Addr().String())
	ping := func() (syscall.Errno, []byte) {
		// A brick whose directory vanished or was swapped is not healthy.
		if err := Verify(cfg.Path, cfg.VolumeID); err != nil {
			return syscall.ESTALE, []byte(err.Error())
		}
		return 0, idJSON
	}
	sh := newShared()
	open := func(net.Conn) rpc.Session {
		return newSessionShared(cfg.Path, log, ping, sh)
	}
	openLocal := func(net.Conn) rpc.Session {
		s := newSessionShared(cfg.Path, log, ping, sh)
		s.local = true
		return s
	}
	if cfg.LocalSocket == "" {
		return rpc.ServeSessions(ctx, log, tln, open)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	local := make(chan struct{})
	if lln, err := listenLocal(log, cfg.LocalSocket); err != nil {
		// Local clients then use TCP and TLS, as remote ones do.
		log.Warn("brick serves no local socket", "err", err)
		close(local)
	} else {
		log.Info("brick serving local clients", "socket", cfg.LocalSocket)
		go func() {
			defer close(local)
			if err := rpc.ServeSessions(ctx, log, lln, openLocal); err != nil {
				log.Warn("local socket stopped; local clients use TCP", "err", err)
			}
		}()
	}
	err = rpc.ServeSessions(ctx, log, tln, open)
	cancel()
	<-local
	return err
}

// ServerTLS is the brick's TLS configuration: it presents the node's
// certificate and accepts clients with certificates from the pool CA.
func ServerTLS(caPEM, certPEM, keyPEM []byte) (*tls.Config, error) {
	cfg, err := pki.ClientTLS(caPEM, certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	cfg.ClientCAs = cfg.RootCAs
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	return cfg, nil
}

// Ping dials a brick and returns its identity.
func Ping(ctx context.Context, addr string, tlsCfg *tls.Config) (Identity, error) {
	d := tls.Dialer{Config: tlsCfg}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return Identity{}, fmt.Errorf("connect to brick at %s: %w", addr, err)
	}
	cl := rpc.NewClient(c)
	defer cl.Close()
	reply, err := cl.Call(ctx, rpc.OpPing, nil)
	if err != nil {
		if len(reply) > 0 {
			return Identity{}, fmt.Errorf("brick at %s: %s: %w", addr, reply, err)
		}
		return Identity{}, fmt.Errorf("ping brick at %s: %w", addr, err)
	}
	var id Identity
	if err := json.Unmarshal(reply, &id); err != nil {
		return Identity{}, fmt.Errorf("brick at %s: bad ping reply: %w", addr, err)
	}
	return id, nil
}

// ServeDir serves the directory dir on ln, as a brick server does but
// without TLS and without checking the brick's volume mark: for tests of
// the client layers over real bricks.
func ServeDir(ctx context.Context, log *slog.Logger, ln net.Listener, dir string) error {
	sh := newShared()
	return rpc.ServeSessions(ctx, log, ln, func(net.Conn) rpc.Session {
		return newSessionShared(dir, log, nil, sh)
	})
}
