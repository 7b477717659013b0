package engine

import (
	"context"
	"os"
	"path/filepath"
	"syscall"

	runc "github.com/containerd/go-runc"
)

// Runtime is what the engine asks of the OCI runtime once a container's
// monitor has created it: signals, the process list and statistics. The
// monitor itself runs create, start, exec and delete.
type Runtime interface {
	// Kill sends sig to the container's init (all its processes with
	// all).
	Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error
	// Top lists the container's processes as ps with psArgs shows them.
	Top(ctx context.Context, id, psArgs string) (*runc.TopResults, error)
	// Stats reads the container's cgroup statistics.
	Stats(ctx context.Context, id string) (*runc.Stats, error)
	// Delete removes what the runtime keeps of a container (after a
	// monitor died without doing so).
	Delete(ctx context.Context, id string) error
}

// RuncRuntime is Runtime with runc.
type RuncRuntime struct{ r *runc.Runc }

var _ Runtime = (*RuncRuntime)(nil)

// NewRuncRuntime uses the runc binary with its state in root.
func NewRuncRuntime(binary, root string) *RuncRuntime {
	return &RuncRuntime{r: &runc.Runc{Command: binary, Root: root}}
}

func (r *RuncRuntime) Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error {
	return r.r.Kill(ctx, id, int(sig), &runc.KillOpts{All: all})
}

func (r *RuncRuntime) Top(ctx context.Context, id, psArgs string) (*runc.TopResults, error) {
	return r.r.Top(ctx, id, psArgs)
}

func (r *RuncRuntime) Stats(ctx context.Context, id string) (*runc.Stats, error) {
	return r.r.Stats(ctx, id)
}

func (r *RuncRuntime) Delete(ctx context.Context, id string) error {
	if _, err := os.Stat(filepath.Join(r.r.Root, id)); os.IsNotExist(err) {
		return nil
	}
	return r.r.Delete(ctx, id, &runc.DeleteOpts{Force: true})
}

// hostInfo is what the engine learns of the host once.
type hostInfo struct {
	noFile Rlimit
	// memoryCgroup is the root of the v1 memory hierarchy ("" on a pure
	// cgroup v2 host).
	memoryCgroup   string
	swapAccounting bool
	// capBounding is caisd's capability bounding set: what a container
	// can be given.
	capBounding []string
}

func probeHost() hostInfo {
	h := hostInfo{capBounding: capBounding()}
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil {
		h.noFile = Rlimit{Soft: rl.Cur, Hard: rl.Max}
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.limit_in_bytes"); err == nil {
		h.memoryCgroup = "/sys/fs/cgroup/memory"
		_, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
		h.swapAccounting = err == nil
	}
	return h
}
