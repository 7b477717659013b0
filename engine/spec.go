package engine

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cais-platform/cais/errdefs"
)

// DefaultCapabilities is Docker's default capability set for containers.
var defaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// DefaultCapabilities returns Docker's default capability set.
func DefaultCapabilities() []string { return append([]string(nil), defaultCapabilities...) }

// allCapabilities are the capabilities a privileged container gets, and
// what "ALL" means in --cap-add and --cap-drop.
var allCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
	"CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
	"CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
	"CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
	"CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
	"CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// maskedPaths and readonlyPaths are Docker's defaults: kernel interfaces a
// container must not read (masked) or change (read-only).
var (
	maskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
		"/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
	}
	readonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// DefaultPath is the PATH a container gets when its image sets none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// CgroupParent is the cgroup (in every v1 hierarchy) containers are put
// under, as Docker uses /docker.
const CgroupParent = "/cais"

// Rlimit is a limit of the host, which a container may not exceed:
// without CAP_SYS_RESOURCE, asking for more than the hard limit fails.
type Rlimit struct{ Soft, Hard uint64 }

// SpecInput is everything a container's runtime spec is made from.
type SpecInput struct {
	ID     string
	Config Config
	Host   HostConfig
	// Rootfs is the container's root directory (the overlay mount).
	Rootfs string
	// User is the resolved user (ResolveUser).
	User specs.User
	// EtcFiles are host files bind-mounted at /etc/hosts, /etc/hostname
	// and /etc/resolv.conf, by destination; empty ones are left out.
	EtcFiles map[string]string
	// NetNSPath is the network namespace the engine made and attached to
	// the container's networks (package network); without it a network
	// mode other than host gets a new namespace with lo only.
	NetNSPath string
	// NoFile is the host's open-file limit.
	NoFile Rlimit
	// CapBounding is caisd's own capability bounding set, which caps the
	// container's (nil: no cut).
	CapBounding []string
	// Devices are the host devices the container gets (ResolveDevices).
	Devices []HostDevice
	// SwapAccounting says the memory cgroup can limit swap
	// (memory.memsw.limit_in_bytes exists).
	SwapAccounting bool
	// VolumeSources are the host directories of the container's volumes
	// (mounted by the engine), by destination; volumes without one are
	// left out.
	VolumeSources map[string]string
}

// Args returns the command a container runs: entrypoint then cmd.
func Args(c Config) []string {
	return append(append([]string(nil), c.Entrypoint...), c.Cmd...)
}

// Env returns a container process's environment: PATH and HOSTNAME first
// (unless set), TERM for a terminal, then the configured variables.
func Env(c Config, hostname string) []string {
	env := []string{}
	if !hasEnv(c.Env, "PATH") {
		env = append(env, "PATH="+DefaultPath)
	}
	env = append(env, "HOSTNAME="+hostname)
	if c.Tty && !hasEnv(c.Env, "TERM") {
		env = append(env, "TERM=xterm")
	}
	return append(env, c.Env...)
}

func hasEnv(env []string, name string) bool {
	for _, e := range env {
		if k, _, _ := strings.Cut(e, "="); k == name {
			return true
		}
	}
	return false
}

// Spec makes a container's OCI runtime spec. It does no I/O.
func Spec(in SpecInput) (*specs.Spec, error) {
	c, h := in.Config, in.Host
	args := Args(c)
	if len(args) == 0 {
		return nil, fmt.Errorf("no command specified: %w", errdefs.ErrInvalid)
	}
	hostname := c.Hostname
	if hostname == "" {
		hostname = ShortID(in.ID)
	}
	caps, err := Capabilities(h.Privileged, h.CapAdd, h.CapDrop)
	if err != nil {
		return nil, err
	}
	rlimits, err := Rlimits(h.Ulimits, in.NoFile)
	if err != nil {
		return nil, err
	}
	cwd := c.WorkingDir
	if cwd == "" {
		cwd = "/"
	}
	if !path.IsAbs(cwd) {
		return nil, fmt.Errorf("the working directory '%s' is invalid, it needs to be an absolute path: %w", cwd, errdefs.ErrInvalid)
	}
	s := &specs.Spec{
		Version: "1.0.2-dev",
		Process: &specs.Process{
			Terminal: c.Tty,
			User:     in.User,
			Args:     args,
			Env:      Env(c, hostname),
			Cwd:      path.Clean(cwd),
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
			Rlimits: rlimits,
		},
		Root:     &specs.Root{Path: in.Rootfs, Readonly: h.ReadonlyRootfs},
		Hostname: hostname,
	}
	if c.Tty && h.ConsoleSize[0] > 0 && h.ConsoleSize[1] > 0 {
		s.Process.ConsoleSize = &specs.Box{Height: h.ConsoleSize[0], Width: h.ConsoleSize[1]}
	}
	hostNet := h.NetworkMode == "host"
	s.Mounts = defaultMounts(hostNet, h.ShmSize)
	// The container's volumes, binds and tmpfs mounts, then the
	// engine's /etc files, which show over a volume at /etc too, unless
	// the container mounts its own there.
	mounts, err := ContainerMounts(h, c.Volumes, in.VolumeSources)
	if err != nil {
		return nil, err
	}
	s.Mounts = append(s.Mounts, mounts...)
	for _, dst := range []string{"/etc/resolv.conf", "/etc/hostname", "/etc/hosts"} {
		if src := in.EtcFiles[dst]; src != "" && !hasMount(mounts, dst) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: dst, Type: "bind", Source: src, Options: []string{"rbind", "rprivate"}})
		}
	}

	ns := []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.MountNamespace}}
	switch {
	case h.NetworkMode == "host":
	case h.NetworkMode == "container:":
		return nil, fmt.Errorf("invalid network mode %q: name the container to share the network namespace of: %w", h.NetworkMode, errdefs.ErrInvalid)
	default:
		// bridge, a network's name, none (a namespace of its own with lo
		// only), or container:X (the engine gives X's namespace).
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: in.NetNSPath})
	}
	res, err := Resources(h, in.SwapAccounting)
	if err != nil {
		return nil, err
	}
	s.Linux = &specs.Linux{
		Namespaces:  ns,
		Resources:   res,
		CgroupsPath: path.Join(CgroupParent, in.ID),
	}
	if !h.Privileged {
		s.Linux.MaskedPaths = append([]string(nil), maskedPaths...)
		s.Linux.ReadonlyPaths = append([]string(nil), readonlyPaths...)
	}
	if err := applySecurity(s, in); err != nil {
		return nil, err
	}
	return s, nil
}

// ShortID is the 12-character form of a container or image ID.
func ShortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func defaultMounts(hostNet bool, shmSize int64) []specs.Mount {
	if shmSize <= 0 {
		shmSize = 64 << 20
	}
	sys := specs.Mount{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}}
	if hostNet {
		// A new sysfs mount needs a network namespace of one's own.
		sys = specs.Mount{Destination: "/sys", Type: "bind", Source: "/sys", Options: []string{"rbind", "nosuid", "noexec", "nodev", "ro"}}
	}
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		sys,
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"ro", "nosuid", "noexec", "nodev"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=" + strconv.FormatInt(shmSize, 10)}},
	}
}

// ParseBind parses a -v bind "SRC:DST[:OPTS]" with an absolute host path.
// Options: ro, rw, z, Z (ignored) and the propagation modes.
func ParseBind(b string) (specs.Mount, error) {
	parts := strings.Split(b, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return specs.Mount{}, fmt.Errorf("invalid volume specification: '%s': %w", b, errdefs.ErrInvalid)
	}
	src, dst := parts[0], parts[1]
	if !path.IsAbs(src) {
		return specs.Mount{}, fmt.Errorf("invalid volume specification: '%s': named volumes are not supported yet; give an absolute host path: %w", b, errdefs.ErrInvalid)
	}
	if !path.IsAbs(dst) {
		return specs.Mount{}, fmt.Errorf("invalid volume specification: '%s': invalid mount config: invalid mount path: '%s' mount path must be absolute: %w", b, dst, errdefs.ErrInvalid)
	}
	if path.Clean(dst) == "/" {
		return specs.Mount{}, fmt.Errorf("invalid volume specification: '%s': invalid mount config: destination can't be '/': %w", b, errdefs.ErrInvalid)
	}
	opts := []string{"rbind"}
	prop := "rprivate"
	ro := false
	if len(parts) == 3 {
		for _, o := range strings.Split(parts[2], ",") {
			switch o {
			case "ro":
				ro = true
			case "rw", "z", "Z", "":
			case "private", "rprivate", "shared", "rshared", "slave", "rslave":
				prop = o
			case "nocopy":
			default:
				return specs.Mount{}, fmt.Errorf("invalid volume specification: '%s': invalid mode: %s: %w", b, o, errdefs.ErrInvalid)
			}
		}
	}
	opts = append(opts, prop)
	if ro {
		opts = append(opts, "ro")
	}
	return specs.Mount{Destination: path.Clean(dst), Type: "bind", Source: path.Clean(src), Options: opts}, nil
}

// Capabilities returns the capability set: Docker's defaults (all for a
// privileged container), plus add, minus drop. Names may omit "CAP_" and
// are case-insensitive; "ALL" means every capability.
func Capabilities(privileged bool, add, drop []string) ([]string, error) {
	norm := func(list []string) ([]string, error) {
		var out []string
		for _, c := range list {
			u := strings.ToUpper(c)
			if u == "ALL" {
				out = append(out, "ALL")
				continue
			}
			if !strings.HasPrefix(u, "CAP_") {
				u = "CAP_" + u
			}
			known := false
			for _, k := range allCapabilities {
				if k == u {
					known = true
				}
			}
			if !known {
				return nil, fmt.Errorf("unknown capability: %q: %w", c, errdefs.ErrInvalid)
			}
			out = append(out, u)
		}
		return out, nil
	}
	a, err := norm(add)
	if err != nil {
		return nil, err
	}
	d, err := norm(drop)
	if err != nil {
		return nil, err
	}
	base := defaultCapabilities
	if privileged {
		base = allCapabilities
	}
	set := map[string]bool{}
	for _, c := range base {
		set[c] = true
	}
	for _, c := range d {
		if c == "ALL" {
			set = map[string]bool{}
			continue
		}
		delete(set, c)
	}
	for _, c := range a {
		if c == "ALL" {
			for _, k := range allCapabilities {
				set[k] = true
			}
			continue
		}
		set[c] = true
	}
	var out []string
	for _, c := range allCapabilities {
		if set[c] {
			out = append(out, c)
		}
	}
	return out, nil
}

// rlimitNames maps docker's --ulimit names to the kernel's.
var rlimitNames = map[string]string{
	"core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA", "fsize": "RLIMIT_FSIZE",
	"locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK", "msgqueue": "RLIMIT_MSGQUEUE",
	"nice": "RLIMIT_NICE", "nofile": "RLIMIT_NOFILE", "nproc": "RLIMIT_NPROC",
	"rss": "RLIMIT_RSS", "rtprio": "RLIMIT_RTPRIO", "rttime": "RLIMIT_RTTIME",
	"sigpending": "RLIMIT_SIGPENDING", "stack": "RLIMIT_STACK", "as": "RLIMIT_AS",
}

// Rlimits returns the process's limits: the open-file limit at the host's
// hard limit (a container cannot raise it past that without
// CAP_SYS_RESOURCE, which the engine does not have either), overridden by
// --ulimit values, of which a nofile above the host's hard limit is refused
// with a clear error rather than failing in runc.
func Rlimits(ulimits []Ulimit, nofile Rlimit) ([]specs.POSIXRlimit, error) {
	var out []specs.POSIXRlimit
	if nofile.Hard > 0 {
		out = append(out, specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Soft: nofile.Hard, Hard: nofile.Hard})
	}
	for _, u := range ulimits {
		t, ok := rlimitNames[u.Name]
		if !ok {
			return nil, fmt.Errorf("invalid ulimit type: %s: %w", u.Name, errdefs.ErrInvalid)
		}
		if u.Soft < 0 || u.Hard < 0 || u.Soft > u.Hard {
			return nil, fmt.Errorf("ulimit %s: soft limit %d must be at most the hard limit %d: %w", u.Name, u.Soft, u.Hard, errdefs.ErrInvalid)
		}
		if t == "RLIMIT_NOFILE" && nofile.Hard > 0 && uint64(u.Hard) > nofile.Hard {
			return nil, fmt.Errorf("ulimit nofile=%d:%d is above the host's hard limit %d: %w", u.Soft, u.Hard, nofile.Hard, errdefs.ErrInvalid)
		}
		r := specs.POSIXRlimit{Type: t, Soft: uint64(u.Soft), Hard: uint64(u.Hard)}
		replaced := false
		for i := range out {
			if out[i].Type == t {
				out[i], replaced = r, true
			}
		}
		if !replaced {
			out = append(out, r)
		}
	}
	return out, nil
}

// Resources returns the cgroup limits of a host config.
func Resources(h HostConfig, swapAccounting bool) (*specs.LinuxResources, error) {
	r := &specs.LinuxResources{
		Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
	}
	if h.Memory < 0 || h.NanoCPUs < 0 || h.CPUQuota < 0 && h.CPUQuota != -1 {
		return nil, fmt.Errorf("resource limits must not be negative: %w", errdefs.ErrInvalid)
	}
	if h.Memory > 0 && h.Memory < 6<<20 {
		return nil, fmt.Errorf("minimum memory limit allowed is 6MB: %w", errdefs.ErrInvalid)
	}
	if h.Memory > 0 || h.MemoryReservation > 0 || h.OomKillDisable != nil {
		m := &specs.LinuxMemory{}
		if h.Memory > 0 {
			lim := h.Memory
			m.Limit = &lim
			if swapAccounting {
				swap := h.MemorySwap
				switch {
				case swap == 0:
					swap = 2 * h.Memory
				case swap > 0 && swap < h.Memory:
					return nil, fmt.Errorf("minimum memoryswap limit should be larger than memory limit, see usage: %w", errdefs.ErrInvalid)
				}
				m.Swap = &swap
			}
		}
		if h.MemoryReservation > 0 {
			res := h.MemoryReservation
			m.Reservation = &res
		}
		if h.OomKillDisable != nil {
			v := *h.OomKillDisable
			m.DisableOOMKiller = &v
		}
		r.Memory = m
	}
	if h.NanoCPUs > 0 && (h.CPUQuota > 0 || h.CPUPeriod > 0) {
		return nil, fmt.Errorf("conflicting options: Nano CPUs and CPU Period cannot both be set: %w", errdefs.ErrInvalid)
	}
	cpu := &specs.LinuxCPU{}
	set := false
	if h.NanoCPUs > 0 {
		period := uint64(100000)
		quota := h.NanoCPUs * 100000 / 1e9
		if quota < 1000 {
			return nil, fmt.Errorf("range of CPUs is from 0.01 to the number of CPUs available: %w", errdefs.ErrInvalid)
		}
		cpu.Period, cpu.Quota, set = &period, &quota, true
	}
	if h.CPUPeriod > 0 {
		p := uint64(h.CPUPeriod)
		cpu.Period, set = &p, true
	}
	if h.CPUQuota > 0 {
		q := h.CPUQuota
		cpu.Quota, set = &q, true
	}
	if h.CPUShares > 0 {
		s := uint64(h.CPUShares)
		cpu.Shares, set = &s, true
	}
	if h.CpusetCpus != "" {
		cpu.Cpus, set = h.CpusetCpus, true
	}
	if set {
		r.CPU = cpu
	}
	if h.PidsLimit != nil && *h.PidsLimit > 0 {
		lim := *h.PidsLimit
		r.Pids = &specs.LinuxPids{Limit: &lim}
	}
	return r, nil
}
