package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/cais-platform/cais/client"
	"github.com/cais-platform/cais/engine/volumes"
	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/volume"
)

// poolMounter mounts this node's pool volumes for the cais volume driver
// (docker volume create -d cais): it asks the local API whether a volume
// can be mounted, and runs `cais mount` against the local socket, which
// fetches the volume's layout and a mount certificate from this caisd
// and leaves a FUSE mount process of its own.
type poolMounter struct {
	socket string // caisd's local API socket
	addr   string // this node's address, the HOST of HOST:/VOLUME
	cais   string // the cais CLI binary
	logDir string
}

var _ volumes.PoolMounter = (*poolMounter)(nil)

func (d *Daemon) poolMounter() *poolMounter {
	cli := filepath.Join(filepath.Dir(d.exe), "cais")
	if _, err := os.Stat(cli); err != nil {
		if p, err := exec.LookPath("cais"); err == nil {
			cli = p
		}
	}
	return &poolMounter{socket: d.cfg.Socket, addr: d.cfg.Addr, cais: cli, logDir: filepath.Join(d.cfg.engineDir(), "volume-mounts")}
}

// Check says whether the pool volume exists and is started.
func (m *poolMounter) Check(ctx context.Context, name string) error {
	c := client.NewUnix(m.socket)
	defer c.Close()
	v, err := c.Volume(ctx, name)
	if errors.Is(err, errdefs.ErrNotFound) {
		return fmt.Errorf("cais volume %s does not exist in this node's pool (see cais volume list): %w", name, errdefs.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("cais volume %s: %w", name, err)
	}
	if v.Status != volume.Started {
		return fmt.Errorf("cais volume %s is not started (it is %s): start it with cais volume start %s: %w", name, strings.ToLower(string(v.Status)), name, errdefs.ErrState)
	}
	return nil
}

// Mount runs cais mount, which returns once the FUSE mount is there.
func (m *poolMounter) Mount(ctx context.Context, name, dir string) error {
	if err := os.MkdirAll(m.logDir, 0o700); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, m.cais, "--socket", m.socket, "mount",
		"--log-file", filepath.Join(m.logDir, name+".log"), m.addr+":/"+name, dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("%s: %w", msg, errdefs.ErrUnavailable)
	}
	return nil
}

// volumeDrivers are the container engine's volume drivers beside local.
func (d *Daemon) volumeDrivers() []volumes.Driver {
	return []volumes.Driver{&volumes.Cais{Pool: d.poolMounter()}}
}
