package engine

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/errdefs"
)

// DeviceMapping is a host device given to a container (docker run
// --device /dev/fuse or HOST:CONTAINER[:PERMISSIONS]).
type DeviceMapping struct {
	PathOnHost        string `json:"PathOnHost"`
	PathInContainer   string `json:"PathInContainer"`
	CgroupPermissions string `json:"CgroupPermissions"`
}

// HostDevice is a device node of the host as a container gets it: the
// node to create and what the device cgroup allows on it ("rwm").
type HostDevice struct {
	Node   specs.LinuxDevice
	Access string
}

// applySecurity completes a spec with what isolates the container beyond
// namespaces: capabilities cut to what caisd itself holds, the seccomp
// filter, no_new_privs, devices, and for a privileged container the lifted
// restrictions (every host device, writable /sys and cgroup, no masked
// paths). It does no I/O.
func applySecurity(s *specs.Spec, in SpecInput) error {
	h := in.Host
	so, err := ParseSecurityOpts(h.SecurityOpt)
	if err != nil {
		return err
	}
	caps := s.Process.Capabilities.Bounding
	if in.CapBounding != nil {
		caps, err = boundCapabilities(caps, in.CapBounding, h.CapAdd)
		if err != nil {
			return err
		}
		s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}
	}
	if s.Linux.Seccomp, err = seccompFor(h, so, caps); err != nil {
		return err
	}
	s.Process.NoNewPrivileges = so.NoNewPrivileges
	if h.Privileged || so.UnmaskSystemPaths {
		s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = nil, nil
	}
	if h.Privileged {
		for i, m := range s.Mounts {
			if m.Destination == "/sys" || m.Type == "cgroup" {
				s.Mounts[i].Options = slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return o == "ro" })
			}
		}
		s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	}
	for _, d := range in.Devices {
		s.Linux.Devices = append(s.Linux.Devices, d.Node)
		if !h.Privileged {
			major, minor := d.Node.Major, d.Node.Minor
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{
				Allow: true, Type: d.Node.Type, Major: &major, Minor: &minor, Access: d.Access,
			})
		}
	}
	return nil
}

// boundCapabilities cuts caps to the bounding set: a process cannot give
// what it does not hold. A privileged container or --cap-add ALL quietly
// gets what there is; a capability asked for by name that the host does
// not have is an error.
func boundCapabilities(caps, bounding, added []string) ([]string, error) {
	var out []string
	for _, c := range caps {
		if slices.Contains(bounding, c) {
			out = append(out, c)
			continue
		}
		for _, a := range added {
			if n := strings.ToUpper(a); n == c || "CAP_"+n == c {
				return nil, fmt.Errorf("capability %s cannot be added: caisd itself does not hold it (its bounding set lacks it): %w", c, errdefs.ErrInvalid)
			}
		}
	}
	return out, nil
}

// capNames are the kernel's capability numbers' names.
var capNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
	"CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
	"CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
	"CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// ParseCapBnd reads the CapBnd line of a /proc/PID/status into
// capability names (the ones this package knows).
func ParseCapBnd(status string) ([]string, error) {
	for _, line := range strings.Split(status, "\n") {
		v, ok := strings.CutPrefix(line, "CapBnd:")
		if !ok {
			continue
		}
		var mask uint64
		if _, err := fmt.Sscanf(strings.TrimSpace(v), "%x", &mask); err != nil {
			return nil, fmt.Errorf("CapBnd %q: %w", v, err)
		}
		out := []string{}
		for i, n := range capNames {
			if mask&(1<<i) != 0 {
				out = append(out, n)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("no CapBnd line")
}

// capBounding is caisd's own bounding set (nil when unknown: no cut).
func capBounding() []string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil
	}
	caps, err := ParseCapBnd(string(b))
	if err != nil {
		return nil
	}
	return caps
}

// ResolveDevices finds the host devices a container gets: every device
// under /dev for a privileged one (as Docker: not the terminals' and
// shared memory's directories), the --device ones otherwise.
func ResolveDevices(h HostConfig) ([]HostDevice, error) {
	var out []HostDevice
	if h.Privileged {
		filepath.WalkDir("/dev", func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if d.IsDir() {
				switch d.Name() {
				case "pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev":
					return filepath.SkipDir
				}
				return nil
			}
			if d.Name() == "console" || d.Type()&os.ModeDevice == 0 {
				return nil
			}
			if n, err := deviceNode(p, p); err == nil {
				out = append(out, HostDevice{Node: n, Access: "rwm"})
			}
			return nil
		})
		return out, nil
	}
	for _, m := range h.Devices {
		host, ctr, access := m.PathOnHost, m.PathInContainer, m.CgroupPermissions
		if ctr == "" {
			ctr = host
		}
		if access == "" {
			access = "rwm"
		}
		if strings.Trim(access, "rwm") != "" || !path.IsAbs(ctr) {
			return nil, fmt.Errorf("invalid device mapping %s:%s:%s: %w", host, ctr, access, errdefs.ErrInvalid)
		}
		n, err := deviceNode(host, path.Clean(ctr))
		if err != nil {
			return nil, fmt.Errorf("error gathering device information while adding custom device %q: %w", host, err)
		}
		out = append(out, HostDevice{Node: n, Access: access})
	}
	return out, nil
}

// deviceNode describes the device node at host for creating it at ctr.
func deviceNode(host, ctr string) (specs.LinuxDevice, error) {
	var st unix.Stat_t
	if err := unix.Stat(host, &st); err != nil {
		return specs.LinuxDevice{}, err
	}
	var t string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		t = "c"
	case unix.S_IFBLK:
		t = "b"
	default:
		return specs.LinuxDevice{}, fmt.Errorf("not a device node: %w", errdefs.ErrInvalid)
	}
	mode := os.FileMode(st.Mode &^ unix.S_IFMT)
	uid, gid := st.Uid, st.Gid
	return specs.LinuxDevice{Path: ctr, Type: t, Major: int64(unix.Major(st.Rdev)), Minor: int64(unix.Minor(st.Rdev)),
		FileMode: &mode, UID: &uid, GID: &gid}, nil
}
