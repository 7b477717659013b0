package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// glusterAddr is the loopback address the bench's glusterd listens on.
// GlusterFS refuses bricks on 127.0.0.1 and localhost but takes any other
// loopback address as local. Binding one address rather than all of them
// lets the bench run beside a caisd that holds HOST:24007.
const glusterAddr = "127.0.0.69"

// glusterd is a GlusterFS management daemon of the bench's own: its state
// (working directory), CLI socket and log live in the bench's directory and
// its bricks take ports 49152-49251, so it touches no system glusterd
// state and nothing it leaves outlives the bench.
type glusterd struct {
	dir  string
	log  *slog.Logger
	cl   *cleanups
	sock string
	d    *daemon
}

func (g *glusterd) cli(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return run(ctx, "gluster", append([]string{"--glusterd-sock=" + g.sock, "--mode=script"}, args...)...)
}

func (g *glusterd) start(ctx context.Context) error {
	bin, err := exec.LookPath("glusterd")
	if err != nil {
		return fmt.Errorf("glusterd is not installed (make bench installs glusterfs-server): %w", err)
	}
	if out, err := run(ctx, bin, "--version"); err == nil && !strings.Contains(out, "glusterfs 10.") {
		g.log.Warn("glusterd is not GlusterFS 10", "version", strings.SplitN(out, "\n", 2)[0])
	}
	// Fail clearly when another glusterd holds the port on every address.
	if l, err := net.Listen("tcp", glusterAddr+":24007"); err != nil {
		return fmt.Errorf("cannot listen on %s:24007 (is a system glusterd running on all addresses? stop it): %w", glusterAddr, err)
	} else {
		l.Close()
	}
	wd := filepath.Join(g.dir, "state")
	if err := os.MkdirAll(wd, 0o755); err != nil {
		return err
	}
	g.sock = filepath.Join(g.dir, "glusterd.socket")
	g.d, err = startDaemon("glusterd", filepath.Join(g.dir, "glusterd.out"), bin, "-N",
		"-p", filepath.Join(g.dir, "glusterd.pid"), "-l", filepath.Join(g.dir, "glusterd.log"),
		"--xlator-option", "management.working-directory="+wd,
		"--xlator-option", "management.glusterd-sockfile="+g.sock,
		"--xlator-option", "management.transport.socket.bind-address="+glusterAddr,
		"--xlator-option", "management.base-port=49152",
		"--xlator-option", "management.max-port=49251")
	if err != nil {
		return err
	}
	g.cl.push("stop glusterd", func() error {
		err := g.d.stop(10 * time.Second)
		// The self-heal daemon is glusterd's child but outlives it.
		killPIDs(pidsMentioning("shd/gluster-bench-"))
		return err
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := g.cli(ctx, "volume", "list")
		if err == nil {
			return nil
		}
		select {
		case <-g.d.exited:
			return fmt.Errorf("glusterd exited; see %s", filepath.Join(g.dir, "glusterd.log"))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("glusterd did not answer within 30s: %w", err)
		}
	}
}

// volume creates, starts and mounts (mount -t glusterfs) a volume of
// layout l with default options, as an administrator would.
func (g *glusterd) volume(ctx context.Context, l layout, bricksDir, mnt string) error {
	name := "gluster-bench-" + l.key
	var bricks []string
	for i := 0; i < l.bricks; i++ {
		bricks = append(bricks, fmt.Sprintf("%s:%s/%s-b%d", glusterAddr, bricksDir, name, i+1))
	}
	if _, err := g.cli(ctx, l.createArgs(name, bricks)...); err != nil {
		return err
	}
	g.cl.push("delete gluster volume "+name, func() error {
		_, err := g.cli(context.Background(), "volume", "delete", name)
		return err
	})
	if _, err := g.cli(ctx, "volume", "start", name); err != nil {
		return err
	}
	g.cl.push("stop gluster volume "+name, func() error {
		_, err := g.cli(context.Background(), "volume", "stop", name, "force")
		return err
	})
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return err
	}
	mctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := run(mctx, "mount", "-t", "glusterfs", "-o", "log-file="+filepath.Join(g.dir, "mount-"+l.key+".log"),
		glusterAddr+":/"+name, mnt); err != nil {
		return err
	}
	g.cl.push("unmount "+mnt, func() error { return unmount(mnt) })
	if t := mountFSType(mnt); t != "fuse.glusterfs" {
		return fmt.Errorf("mount -t glusterfs %s: found %q mounted there", mnt, t)
	}
	return nil
}
