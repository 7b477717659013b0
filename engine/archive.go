package engine

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/cais-platform/cais/errdefs"
)

// ContainerRoot returns a directory showing the root file system of the
// container ref names, for docker cp: /proc/PID/root of a running
// container (with its volumes and binds), or its overlay, mounted for the
// while, of a stopped one (which cannot start meanwhile). Call release
// when done.
func (e *Engine) ContainerRoot(ctx context.Context, ref string) (root string, release func(), err error) {
	c, err := e.lookup(ref)
	if err != nil {
		return "", nil, err
	}
	e.mu.Lock()
	st := c.State
	e.mu.Unlock()
	if st.Status == Running && st.Pid > 0 {
		return "/proc/" + strconv.Itoa(st.Pid) + "/root", func() {}, nil
	}
	c.op.Lock()
	e.mu.Lock()
	snap, removed := c.snapshot(), c.removed
	e.mu.Unlock()
	if removed {
		c.op.Unlock()
		return "", nil, fmt.Errorf("No such container: %s: %w", ref, errdefs.ErrNotFound)
	}
	if snap.State.Running() {
		c.op.Unlock()
		return e.ContainerRoot(ctx, ref)
	}
	dir := e.dir(c.ID)
	rootfs := filepath.Join(dir, "rootfs")
	wasMounted := mounted(rootfs)
	if err := e.mountRootfs(ctx, snap, dir); err != nil {
		c.op.Unlock()
		return "", nil, err
	}
	return rootfs, func() {
		if !wasMounted {
			syscall.Unmount(rootfs, syscall.MNT_DETACH)
		}
		c.op.Unlock()
	}, nil
}
