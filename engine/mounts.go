package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cais-platform/cais/engine/events"
	"github.com/cais-platform/cais/engine/volumes"
	"github.com/cais-platform/cais/errdefs"
)

// ContainerMounts returns the runtime mounts of a container's binds,
// --mount entries, tmpfs mounts and volumes (declared ones included), in
// mount order. Volumes are bind-mounted from their host directories in
// sources, by destination; those without one are left out. It does no
// I/O.
func ContainerMounts(h HostConfig, declared map[string]struct{}, sources map[string]string) ([]specs.Mount, error) {
	mps, err := volumes.Plan(volumes.PlanInput{Binds: h.Binds, Mounts: h.Mounts, Tmpfs: h.Tmpfs, Volumes: declared})
	if err != nil {
		return nil, err
	}
	var out []specs.Mount
	for _, mp := range mps {
		var m specs.Mount
		switch mp.Type {
		case volumes.TypeTmpfs:
			m = specs.Mount{Destination: mp.Destination, Type: "tmpfs", Source: "tmpfs", Options: mp.Options}
		case volumes.TypeBind:
			m = specs.Mount{Destination: mp.Destination, Type: "bind", Source: mp.Source, Options: []string{"rbind", mp.Propagation}}
		case volumes.TypeVolume:
			src := sources[mp.Destination]
			if src == "" {
				continue
			}
			m = specs.Mount{Destination: mp.Destination, Type: "bind", Source: src, Options: []string{"rbind", "rprivate"}}
		}
		if !mp.RW && mp.Type != volumes.TypeTmpfs {
			m.Options = append(m.Options, "ro")
		}
		out = append(out, m)
	}
	return out, nil
}

// Volumes returns the engine's volume store.
func (e *Engine) Volumes() *volumes.Store { return e.vols }

// planMounts decides a new container's mounts and makes the volumes they
// need: named volumes that do not exist yet (with the driver a --mount
// names, local by default) and anonymous ones. The container references
// them all.
func (e *Engine) planMounts(ctx context.Context, id string, c Config, h HostConfig) ([]volumes.MountPoint, error) {
	mps, err := volumes.Plan(volumes.PlanInput{Binds: h.Binds, Mounts: h.Mounts, Tmpfs: h.Tmpfs, Volumes: c.Volumes})
	if err != nil {
		return nil, err
	}
	for _, mp := range mps {
		// Docker refuses a missing --mount bind source at create.
		if mp.Type == volumes.TypeBind && !mp.CreateSource {
			if _, err := os.Stat(mp.Source); err != nil {
				return nil, fmt.Errorf("invalid mount config for type \"bind\": bind source path does not exist: %s: %w", mp.Source, errdefs.ErrInvalid)
			}
		}
	}
	for i := range mps {
		mp := &mps[i]
		if mp.Type != volumes.TypeVolume {
			continue
		}
		v, err := e.vols.Get(mp.Name)
		if mp.Name == "" || errors.Is(err, errdefs.ErrNotFound) {
			o := volumes.CreateOptions{Name: mp.Name, Labels: mp.Labels, Anonymous: mp.Anonymous}
			if mp.DriverConfig != nil {
				o.Driver, o.Options = mp.DriverConfig.Name, mp.DriverConfig.Options
			}
			v, err = e.vols.Create(ctx, o)
		}
		if err != nil {
			e.releaseVolumes(ctx, id, mps[:i], true)
			return nil, err
		}
		mp.Name, mp.Driver = v.Name, v.Driver
		mp.DriverConfig, mp.Labels = nil, nil
		if err := e.vols.Ref(v.Name, id); err != nil {
			e.releaseVolumes(ctx, id, mps[:i], true)
			return nil, err
		}
	}
	return mps, nil
}

// releaseVolumes drops a removed container's references, and removes its
// anonymous volumes when asked (docker rm -v, --rm).
func (e *Engine) releaseVolumes(ctx context.Context, id string, mps []volumes.MountPoint, removeAnonymous bool) {
	for _, mp := range mps {
		if mp.Type == volumes.TypeVolume && mp.Name != "" {
			e.vols.Unmount(ctx, mp.Name, id)
		}
	}
	for _, mp := range mps {
		if mp.Type != volumes.TypeVolume || mp.Name == "" {
			continue
		}
		e.vols.Unref(mp.Name, id)
		if removeAnonymous && mp.Anonymous {
			if err := e.vols.Remove(ctx, mp.Name, false); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
				e.log.Warn("cannot remove an anonymous volume", "volume", mp.Name, "err", err)
			}
		}
	}
}

// mountVolumes mounts a starting container's volumes (copying the
// image's content into empty ones), makes missing -v bind sources, and
// returns the volumes' host directories by destination.
func (e *Engine) mountVolumes(ctx context.Context, c Container, rootfs string) (map[string]string, error) {
	sources := map[string]string{}
	for _, mp := range c.MountPoints {
		switch mp.Type {
		case volumes.TypeBind:
			if _, err := os.Stat(mp.Source); os.IsNotExist(err) {
				if !mp.CreateSource {
					return sources, fmt.Errorf("invalid mount config for type \"bind\": bind source path does not exist: %s: %w", mp.Source, errdefs.ErrInvalid)
				}
				if err := os.MkdirAll(mp.Source, 0o755); err != nil {
					return sources, fmt.Errorf("create bind source %s: %w", mp.Source, err)
				}
			}
		case volumes.TypeVolume:
			dir, err := e.vols.Mount(ctx, mp.Name, c.ID)
			if err != nil {
				return sources, err
			}
			sources[mp.Destination] = dir
			if !mp.NoCopy {
				if err := volumes.CopyUp(ctx, rootfs, mp.Destination, dir); err != nil {
					return sources, err
				}
			}
		}
	}
	return sources, nil
}

// unmountVolumes releases a stopped container's volume mounts.
func (e *Engine) unmountVolumes(c Container) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, mp := range c.MountPoints {
		if mp.Type == volumes.TypeVolume {
			if err := e.vols.Unmount(ctx, mp.Name, c.ID); err != nil {
				e.log.Warn("cannot unmount a volume", "volume", mp.Name, "container", c.Name, "err", err)
			}
		}
	}
}

// loadVolumes records which containers reference which volumes, and
// mounts again the volumes of running containers (a no-op for mounts
// that outlived caisd), after a restart.
func (e *Engine) loadVolumes() {
	for _, c := range e.containers {
		for _, mp := range c.MountPoints {
			if mp.Type != volumes.TypeVolume {
				continue
			}
			if err := e.vols.Ref(mp.Name, c.ID); err != nil {
				e.log.Warn("container's volume is gone", "container", c.Name, "volume", mp.Name)
				continue
			}
			if c.State.Running() {
				if _, err := e.vols.Mount(e.ctx, mp.Name, c.ID); err != nil {
					e.log.Warn("cannot mount a running container's volume again", "container", c.Name, "volume", mp.Name, "err", err)
				}
			}
		}
	}
}

func volumesDir(root string) string { return filepath.Join(root, "volumes") }

// Events returns the engine's event bus.
func (e *Engine) Events() *events.Bus { return e.events }

// Publish sends an event to docker events: typ is events.Container,
// events.Image, events.Network, events.Volume…, action what happened, id
// the object and attrs its attributes.
func (e *Engine) Publish(typ, action, id string, attrs map[string]string) {
	e.events.Publish(typ, action, id, attrs)
}

// publishContainer sends a container event with the attributes Docker
// gives them: image, name and the container's labels.
func (e *Engine) publishContainer(c Container, action string, extra map[string]string) {
	attrs := map[string]string{"image": c.Config.Image, "name": c.Name}
	for k, v := range c.Config.Labels {
		attrs[k] = v
	}
	for k, v := range extra {
		attrs[k] = v
	}
	e.events.Publish(events.Container, action, c.ID, attrs)
}

func hasMount(ms []specs.Mount, dst string) bool {
	for _, m := range ms {
		if m.Destination == dst {
			return true
		}
	}
	return false
}
