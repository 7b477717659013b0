package volumes

import (
	"context"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/errdefs"
)

// Local is Docker's local driver: a directory, or with the options type,
// device and o, a file system mounted there while in use.
type Local struct{}

var _ Driver = Local{}

// Name is "local".
func (Local) Name() string { return "local" }

// LocalMount is what the local driver's options ask to mount.
type LocalMount struct {
	Type, Device, Data string
	Flags              uintptr
}

// ParseLocalOptions checks the local driver's options: none, or type and
// device (and o, comma-separated mount options, of which ro, nosuid,
// nodev and noexec become flags). It does no I/O.
func ParseLocalOptions(opts map[string]string) (*LocalMount, error) {
	if len(opts) == 0 {
		return nil, nil
	}
	m := &LocalMount{}
	for k, v := range opts {
		switch k {
		case "type":
			m.Type = v
		case "device":
			m.Device = v
		case "o":
			var data []string
			for _, o := range strings.Split(v, ",") {
				switch o {
				case "ro":
					m.Flags |= unix.MS_RDONLY
				case "nosuid":
					m.Flags |= unix.MS_NOSUID
				case "nodev":
					m.Flags |= unix.MS_NODEV
				case "noexec":
					m.Flags |= unix.MS_NOEXEC
				case "bind", "rbind":
					return nil, fmt.Errorf("local volume option o=%s: bind mounts are not supported: use a bind mount (-v /host:/ctr): %w", v, errdefs.ErrInvalid)
				case "":
				default:
					data = append(data, o)
				}
			}
			m.Data = strings.Join(data, ",")
		default:
			return nil, fmt.Errorf("invalid option: %q: %w", k, errdefs.ErrInvalid)
		}
	}
	if m.Type == "" || m.Device == "" {
		return nil, fmt.Errorf("local volume options: both type and device are needed to mount a file system: %w", errdefs.ErrInvalid)
	}
	if strings.ContainsRune(m.Type+m.Device+m.Data, 0) {
		return nil, fmt.Errorf("local volume options: invalid character: %w", errdefs.ErrInvalid)
	}
	return m, nil
}

// Create checks the options.
func (Local) Create(ctx context.Context, v Volume) error {
	_, err := ParseLocalOptions(v.Options)
	return err
}

// Mount mounts the file system the options name, if any.
func (Local) Mount(ctx context.Context, v Volume) error {
	m, err := ParseLocalOptions(v.Options)
	if err != nil || m == nil {
		return err
	}
	if mounted(v.Mountpoint) {
		return nil
	}
	if err := unix.Mount(m.Device, v.Mountpoint, m.Type, m.Flags, m.Data); err != nil {
		return fmt.Errorf("error while mounting volume '%s': %w", v.Mountpoint, err)
	}
	return nil
}

// Unmount unmounts what Mount mounted.
func (Local) Unmount(ctx context.Context, v Volume) error {
	if m, _ := ParseLocalOptions(v.Options); m == nil {
		return nil
	}
	return unmount(v.Mountpoint)
}

// Remove has nothing beyond the directory to delete.
func (Local) Remove(ctx context.Context, v Volume) error { return nil }

// mounted reports whether p is a mount point.
func mounted(p string) bool {
	var st, parent unix.Stat_t
	if unix.Lstat(p, &st) != nil || unix.Lstat(p+"/..", &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}

func unmount(p string) error {
	if !mounted(p) {
		return nil
	}
	if err := unix.Unmount(p, 0); err != nil && err != unix.EINVAL {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && err != unix.EINVAL {
			return fmt.Errorf("unmount %s: %w", p, err)
		}
	}
	return nil
}
