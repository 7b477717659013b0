package volumes

import (
	"fmt"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/cais-platform/cais/errdefs"
)

// Mount types.
const (
	TypeVolume = "volume"
	TypeBind   = "bind"
	TypeTmpfs  = "tmpfs"
)

// Mount is one --mount of a create request: Docker's HostConfig.Mounts
// entry, with its JSON names.
type Mount struct {
	Type          string         `json:"Type"`
	Source        string         `json:"Source,omitempty"`
	Target        string         `json:"Target"`
	ReadOnly      bool           `json:"ReadOnly,omitempty"`
	Consistency   string         `json:"Consistency,omitempty"`
	BindOptions   *BindOptions   `json:"BindOptions,omitempty"`
	VolumeOptions *VolumeOptions `json:"VolumeOptions,omitempty"`
	TmpfsOptions  *TmpfsOptions  `json:"TmpfsOptions,omitempty"`
}

// BindOptions tune a bind mount.
type BindOptions struct {
	Propagation      string `json:"Propagation,omitempty"`
	NonRecursive     bool   `json:"NonRecursive,omitempty"`
	CreateMountpoint bool   `json:"CreateMountpoint,omitempty"`
}

// VolumeOptions tune a volume mount; DriverConfig and Labels apply when
// the mount creates the volume.
type VolumeOptions struct {
	NoCopy       bool              `json:"NoCopy,omitempty"`
	Labels       map[string]string `json:"Labels,omitempty"`
	Subpath      string            `json:"Subpath,omitempty"`
	DriverConfig *DriverConfig     `json:"DriverConfig,omitempty"`
}

// DriverConfig names a volume driver and its options.
type DriverConfig struct {
	Name    string            `json:"Name,omitempty"`
	Options map[string]string `json:"Options,omitempty"`
}

// TmpfsOptions tune a tmpfs mount.
type TmpfsOptions struct {
	SizeBytes int64      `json:"SizeBytes,omitempty"`
	Mode      uint32     `json:"Mode,omitempty"`
	Options   [][]string `json:"Options,omitempty"`
}

// MountPoint is one mount of a container, resolved: what the engine
// persists with the container and mounts at each start.
type MountPoint struct {
	Type        string `json:"Type"`
	Name        string `json:"Name,omitempty"`   // the volume
	Driver      string `json:"Driver,omitempty"` // the volume's driver
	Source      string `json:"Source,omitempty"` // a bind's host path
	Destination string `json:"Destination"`
	RW          bool   `json:"RW"`
	Mode        string `json:"Mode"`
	Propagation string `json:"Propagation,omitempty"`
	// Anonymous volumes go away with their container (docker rm -v).
	Anonymous bool `json:"Anonymous,omitempty"`
	// NoCopy: do not copy the image's content into an empty volume.
	NoCopy bool `json:"NoCopy,omitempty"`
	// CreateSource makes a missing bind source (-v does, --mount does not).
	CreateSource bool `json:"CreateSource,omitempty"`
	// Options are a tmpfs's mount options.
	Options []string `json:"Options,omitempty"`
	// DriverConfig and Labels create a named volume that does not exist.
	DriverConfig *DriverConfig     `json:"DriverConfig,omitempty"`
	Labels       map[string]string `json:"Labels,omitempty"`
}

var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// ValidateName checks a volume name as Docker's local driver does.
func ValidateName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("create %s: %q includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path: %w", name, name, errdefs.ErrInvalid)
	}
	return nil
}

func specError(spec, format string, args ...any) error {
	return fmt.Errorf("invalid volume specification: '%s': %s: %w", spec, fmt.Sprintf(format, args...), errdefs.ErrInvalid)
}

func checkDestination(spec, dst string) (string, error) {
	if !path.IsAbs(dst) {
		return "", specError(spec, "invalid mount config: invalid mount path: '%s' mount path must be absolute", dst)
	}
	if path.Clean(dst) == "/" {
		return "", specError(spec, "invalid mount config: destination can't be '/'")
	}
	return path.Clean(dst), nil
}

// ParseBind parses a -v value: "/host:/ctr[:OPTS]" (a bind),
// "NAME:/ctr[:OPTS]" (a named volume) or "/ctr" (an anonymous volume).
// OPTS are ro, rw, z, Z, nocopy and the propagation modes, comma-separated.
func ParseBind(spec string) (MountPoint, error) {
	if strings.IndexByte(spec, 0) >= 0 {
		return MountPoint{}, specError(spec, "invalid character")
	}
	parts := strings.Split(spec, ":")
	var src, dst, opts string
	switch len(parts) {
	case 1:
		dst = parts[0]
	case 2:
		src, dst = parts[0], parts[1]
	case 3:
		src, dst, opts = parts[0], parts[1], parts[2]
	default:
		return MountPoint{}, specError(spec, "too many colons")
	}
	if src == "" && len(parts) > 1 {
		return MountPoint{}, specError(spec, "empty section between colons")
	}
	d, err := checkDestination(spec, dst)
	if err != nil {
		return MountPoint{}, err
	}
	mp := MountPoint{Destination: d, RW: true, Mode: opts}
	switch {
	case src == "":
		mp.Type, mp.Anonymous = TypeVolume, true
	case path.IsAbs(src):
		mp.Type, mp.Source, mp.CreateSource, mp.Propagation = TypeBind, path.Clean(src), true, "rprivate"
	default:
		if err := ValidateName(src); err != nil {
			return MountPoint{}, err
		}
		mp.Type, mp.Name = TypeVolume, src
	}
	if opts == "" {
		return mp, nil
	}
	for _, o := range strings.Split(opts, ",") {
		switch o {
		case "ro":
			mp.RW = false
		case "rw", "z", "Z":
		case "nocopy":
			if mp.Type != TypeVolume {
				return MountPoint{}, specError(spec, "invalid mode: %s", o)
			}
			mp.NoCopy = true
		case "private", "rprivate", "shared", "rshared", "slave", "rslave":
			if mp.Type != TypeBind {
				return MountPoint{}, specError(spec, "invalid mode: %s", o)
			}
			mp.Propagation = o
		default:
			return MountPoint{}, specError(spec, "invalid mode: %s", o)
		}
	}
	return mp, nil
}

func mountError(m Mount, format string, args ...any) error {
	return fmt.Errorf("invalid mount config for type %q: %s: %w", m.Type, fmt.Sprintf(format, args...), errdefs.ErrInvalid)
}

// ParseMount checks a --mount entry and resolves it.
func ParseMount(m Mount) (MountPoint, error) {
	if strings.IndexByte(m.Source+m.Target, 0) >= 0 {
		return MountPoint{}, mountError(m, "invalid character")
	}
	if m.Target == "" {
		return MountPoint{}, mountError(m, "field Target must not be empty")
	}
	if !path.IsAbs(m.Target) {
		return MountPoint{}, mountError(m, "invalid mount path: '%s' mount path must be absolute", m.Target)
	}
	if path.Clean(m.Target) == "/" {
		return MountPoint{}, mountError(m, "destination can't be '/'")
	}
	mp := MountPoint{Type: m.Type, Destination: path.Clean(m.Target), RW: !m.ReadOnly}
	switch m.Type {
	case TypeBind:
		if m.VolumeOptions != nil || m.TmpfsOptions != nil {
			return MountPoint{}, mountError(m, "only BindOptions may be given")
		}
		if m.Source == "" {
			return MountPoint{}, mountError(m, "field Source must not be empty")
		}
		if !path.IsAbs(m.Source) {
			return MountPoint{}, mountError(m, "invalid mount path: '%s' mount path must be absolute", m.Source)
		}
		mp.Source, mp.Propagation = path.Clean(m.Source), "rprivate"
		if b := m.BindOptions; b != nil {
			switch b.Propagation {
			case "":
			case "private", "rprivate", "shared", "rshared", "slave", "rslave":
				mp.Propagation = b.Propagation
			default:
				return MountPoint{}, mountError(m, "invalid propagation mode: %s", b.Propagation)
			}
			mp.CreateSource = b.CreateMountpoint
		}
	case TypeVolume:
		if m.BindOptions != nil || m.TmpfsOptions != nil {
			return MountPoint{}, mountError(m, "only VolumeOptions may be given")
		}
		if m.Source == "" {
			mp.Anonymous = true
		} else if err := ValidateName(m.Source); err != nil {
			return MountPoint{}, err
		}
		mp.Name = m.Source
		if v := m.VolumeOptions; v != nil {
			if v.Subpath != "" {
				return MountPoint{}, mountError(m, "volume-subpath is not supported")
			}
			mp.NoCopy, mp.Labels, mp.DriverConfig = v.NoCopy, v.Labels, v.DriverConfig
		}
	case TypeTmpfs:
		if m.Source != "" {
			return MountPoint{}, mountError(m, "field Source must not be specified")
		}
		if m.BindOptions != nil || m.VolumeOptions != nil {
			return MountPoint{}, mountError(m, "only TmpfsOptions may be given")
		}
		mp.Options = []string{"nosuid", "nodev", "noexec"}
		if t := m.TmpfsOptions; t != nil {
			if t.SizeBytes < 0 {
				return MountPoint{}, mountError(m, "invalid tmpfs size %d", t.SizeBytes)
			}
			if t.SizeBytes > 0 {
				mp.Options = append(mp.Options, "size="+strconv.FormatInt(t.SizeBytes, 10))
			}
			if t.Mode != 0 {
				mp.Options = append(mp.Options, "mode="+strconv.FormatUint(uint64(t.Mode&0o7777), 8))
			}
			for _, o := range t.Options {
				if len(o) == 0 || len(o) > 2 || strings.ContainsAny(strings.Join(o, ""), ",\x00") {
					return MountPoint{}, mountError(m, "invalid tmpfs option %q", o)
				}
				mp.Options = append(mp.Options, strings.Join(o, "="))
			}
		}
	case "":
		return MountPoint{}, mountError(m, "mount type unknown")
	default:
		return MountPoint{}, fmt.Errorf("mount type unknown: %q: %w", m.Type, errdefs.ErrInvalid)
	}
	return mp, nil
}

// ParseTmpfs resolves a --tmpfs DST[:OPTS] entry (HostConfig.Tmpfs).
func ParseTmpfs(dst, opts string) (MountPoint, error) {
	if strings.IndexByte(dst+opts, 0) >= 0 {
		return MountPoint{}, fmt.Errorf("invalid tmpfs mount point %q: %w", dst, errdefs.ErrInvalid)
	}
	if !path.IsAbs(dst) || path.Clean(dst) == "/" {
		return MountPoint{}, fmt.Errorf("invalid tmpfs mount point %q: must be absolute and not /: %w", dst, errdefs.ErrInvalid)
	}
	mp := MountPoint{Type: TypeTmpfs, Destination: path.Clean(dst), RW: true, Options: []string{"nosuid", "nodev", "noexec"}}
	if opts != "" {
		for _, o := range strings.Split(opts, ",") {
			switch o {
			case "":
				return MountPoint{}, fmt.Errorf("invalid tmpfs options %q: %w", opts, errdefs.ErrInvalid)
			case "ro":
				mp.RW = false
			}
			mp.Options = append(mp.Options, o)
		}
	}
	return mp, nil
}

// PlanInput is everything a container's mounts are decided from.
type PlanInput struct {
	Binds  []string
	Mounts []Mount
	Tmpfs  map[string]string
	// Volumes are the destinations the image and the config declare
	// (VOLUME, docker run -v /path).
	Volumes map[string]struct{}
}

// Plan returns a container's mounts in mount order (a parent before what
// is mounted beneath it). Declared volumes that no bind, mount or tmpfs
// covers become anonymous volumes, with no name yet. Two mounts on one
// destination are refused. It does no I/O.
func Plan(in PlanInput) ([]MountPoint, error) {
	var out []MountPoint
	seen := map[string]bool{}
	add := func(mp MountPoint) error {
		if seen[mp.Destination] {
			return fmt.Errorf("Duplicate mount point: %s: %w", mp.Destination, errdefs.ErrInvalid)
		}
		seen[mp.Destination] = true
		out = append(out, mp)
		return nil
	}
	for _, b := range in.Binds {
		mp, err := ParseBind(b)
		if err != nil {
			return nil, err
		}
		if err := add(mp); err != nil {
			return nil, err
		}
	}
	for _, m := range in.Mounts {
		mp, err := ParseMount(m)
		if err != nil {
			return nil, err
		}
		if err := add(mp); err != nil {
			return nil, err
		}
	}
	dsts := make([]string, 0, len(in.Tmpfs))
	for d := range in.Tmpfs {
		dsts = append(dsts, d)
	}
	sort.Strings(dsts)
	for _, d := range dsts {
		mp, err := ParseTmpfs(d, in.Tmpfs[d])
		if err != nil {
			return nil, err
		}
		if err := add(mp); err != nil {
			return nil, err
		}
	}
	decl := make([]string, 0, len(in.Volumes))
	for d := range in.Volumes {
		decl = append(decl, d)
	}
	sort.Strings(decl)
	for _, d := range decl {
		if !path.IsAbs(d) || strings.IndexByte(d, 0) >= 0 || path.Clean(d) == "/" {
			return nil, fmt.Errorf("invalid volume %q: the path must be absolute and not /: %w", d, errdefs.ErrInvalid)
		}
		if seen[path.Clean(d)] {
			continue
		}
		seen[path.Clean(d)] = true
		out = append(out, MountPoint{Type: TypeVolume, Destination: path.Clean(d), RW: true, Anonymous: true})
	}
	sort.SliceStable(out, func(i, j int) bool {
		return strings.Count(out[i].Destination, "/") < strings.Count(out[j].Destination, "/")
	})
	return out, nil
}
