package volumes

import (
	"context"
	"fmt"

	"github.com/cais-platform/cais/errdefs"
)

// PoolMounter is what the cais driver needs of the node: checking a pool
// volume and mounting it (as `cais mount` does) at a directory.
type PoolMounter interface {
	// Check says whether the pool volume can be mounted: it exists and
	// is started.
	Check(ctx context.Context, volume string) error
	// Mount mounts the pool volume at dir and returns once the mount is
	// there; the mount lives until dir is unmounted.
	Mount(ctx context.Context, volume, dir string) error
}

// Cais is the driver of volumes backed by a cais volume of the node's
// pool: docker volume create -d cais -o volume=POOLVOL NAME.
type Cais struct {
	Pool PoolMounter
}

var _ Driver = (*Cais)(nil)

// Name is "cais".
func (*Cais) Name() string { return "cais" }

// PoolVolume returns the pool volume a cais volume's options name.
func PoolVolume(opts map[string]string) (string, error) {
	name := ""
	for k, v := range opts {
		switch k {
		case "volume":
			name = v
		default:
			return "", fmt.Errorf("invalid option: %q (the cais driver takes volume=POOLVOLUME): %w", k, errdefs.ErrInvalid)
		}
	}
	if name == "" {
		return "", fmt.Errorf("the cais driver needs the pool volume to mount: -o volume=NAME: %w", errdefs.ErrInvalid)
	}
	return name, nil
}

// Create checks that the pool volume exists.
func (d *Cais) Create(ctx context.Context, v Volume) error {
	name, err := PoolVolume(v.Options)
	if err != nil {
		return err
	}
	if d.Pool == nil {
		return fmt.Errorf("the cais volume driver needs caisd's pool: %w", errdefs.ErrUnavailable)
	}
	return d.Pool.Check(ctx, name)
}

// Mount mounts the pool volume, unless it is mounted already.
func (d *Cais) Mount(ctx context.Context, v Volume) error {
	name, err := PoolVolume(v.Options)
	if err != nil {
		return err
	}
	if mounted(v.Mountpoint) {
		return nil
	}
	if d.Pool == nil {
		return fmt.Errorf("the cais volume driver needs caisd's pool: %w", errdefs.ErrUnavailable)
	}
	if err := d.Pool.Check(ctx, name); err != nil {
		return fmt.Errorf("mount volume %s: %w", v.Name, err)
	}
	if err := d.Pool.Mount(ctx, name, v.Mountpoint); err != nil {
		return fmt.Errorf("mount volume %s (cais volume %s): %w", v.Name, name, err)
	}
	return nil
}

// Unmount unmounts the FUSE mount; its process exits then.
func (d *Cais) Unmount(ctx context.Context, v Volume) error { return unmount(v.Mountpoint) }

// Remove leaves the pool volume alone: it is the pool's.
func (d *Cais) Remove(ctx context.Context, v Volume) error { return nil }
