package engine

import (
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/errdefs"
)

// Docker's default seccomp profile, as data: an allowlist (every other
// system call fails with EPERM) and the rules that depend on the
// container's capabilities, its architecture or a call's arguments. The
// facts are Docker's (moby profiles/seccomp/default.json); the shape is
// ours: [DefaultSeccomp] evaluates the conditions for one container, so
// the spec handed to runc holds only the rules that apply.

// seccompAllowed are the calls every container may make, by topic.
var seccompAllowed = strings.Fields(`
	accept accept4 bind connect getpeername getsockname getsockopt listen recv recvfrom
	recvmmsg recvmmsg_time64 recvmsg send sendmmsg sendmsg sendto setsockopt shutdown
	socketcall socketpair

	access chdir chmod chown chown32 creat faccessat faccessat2 fchdir fchmod fchmodat
	fchown fchown32 fchownat fstat fstat64 fstatat64 fstatfs fstatfs64 getcwd getdents
	getdents64 lchown lchown32 link linkat lstat lstat64 mkdir mkdirat mknod mknodat
	newfstatat open openat openat2 readlink readlinkat rename renameat renameat2 rmdir
	stat stat64 statfs statfs64 statx symlink symlinkat truncate truncate64 umask unlink
	unlinkat utime utimensat utimensat_time64 utimes futimesat name_to_handle_at

	close close_range copy_file_range dup dup2 dup3 fadvise64 fadvise64_64 fallocate
	fcntl fcntl64 fdatasync flock fsync ftruncate ftruncate64 _llseek lseek pread64
	preadv preadv2 pwrite64 pwritev pwritev2 read readahead readv sendfile sendfile64
	splice sync sync_file_range syncfs tee vmsplice write writev pipe pipe2 ioctl

	fgetxattr flistxattr fremovexattr fsetxattr getxattr lgetxattr listxattr llistxattr
	lremovexattr lsetxattr removexattr setxattr

	epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2
	epoll_wait epoll_wait_old eventfd eventfd2 poll ppoll ppoll_time64 pselect6
	pselect6_time64 select _newselect inotify_add_watch inotify_init inotify_init1
	inotify_rm_watch fanotify_mark signalfd signalfd4 timerfd_create timerfd_gettime
	timerfd_gettime64 timerfd_settime timerfd_settime64

	io_cancel io_destroy io_getevents io_pgetevents io_pgetevents_time64 io_setup
	io_submit io_uring_enter io_uring_register io_uring_setup

	brk madvise membarrier memfd_create memfd_secret mincore mlock mlock2 mlockall mmap
	mmap2 mprotect mremap msync munlock munlockall munmap pkey_alloc pkey_free
	pkey_mprotect remap_file_pages

	execve execveat exit exit_group fork vfork wait4 waitid waitpid kill tgkill tkill
	pidfd_open pidfd_send_signal process_mrelease restart_syscall rseq set_robust_list
	get_robust_list set_tid_address set_thread_area get_thread_area prctl seccomp
	capget capset

	rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend
	rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sigaltstack sigprocmask
	sigreturn pause

	getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32 getpgid
	getpgrp getpid getppid getresgid getresgid32 getresuid getresuid32 getsid gettid
	getuid getuid32 setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups
	setgroups32 setpgid setregid setregid32 setresgid setresgid32 setresuid setresuid32
	setreuid setreuid32 setsid setuid setuid32

	getpriority setpriority getrlimit setrlimit prlimit64 ugetrlimit getrusage
	ioprio_get ioprio_set sched_getaffinity sched_getattr sched_getparam
	sched_get_priority_max sched_get_priority_min sched_getscheduler
	sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity sched_setattr
	sched_setparam sched_setscheduler sched_yield getcpu

	adjtimex alarm clock_adjtime clock_adjtime64 clock_getres clock_getres_time64
	clock_gettime clock_gettime64 clock_nanosleep clock_nanosleep_time64 getitimer
	setitimer gettimeofday nanosleep time times timer_create timer_delete
	timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64

	futex futex_time64 futex_waitv ipc mq_getsetattr mq_notify mq_open mq_timedreceive
	mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink msgctl msgget
	msgrcv msgsnd semctl semget semop semtimedop semtimedop_time64 shmat shmctl shmdt
	shmget

	getrandom landlock_add_rule landlock_create_ruleset landlock_restrict_self sysinfo
	uname

	process_vm_readv process_vm_writev ptrace
`)

// (Docker allows the last three from kernel 4.8 on, the oldest kernel
// whose seccomp cannot be bypassed with ptrace; cais needs a newer one.)

// seccompRule allows (or, with errno, fails) calls when its conditions
// hold for the container.
type seccompRule struct {
	names []string
	// errno, if not zero, makes the calls fail with it instead.
	errno uint
	// args must all match.
	args []specs.LinuxSeccompArg
	// withCap: only when the container has one of these capabilities;
	// withoutCap: only when it has none of them.
	withCap, withoutCap []string
	// arches: only on these GOARCH values; notArches: never on them.
	arches, notArches []string
}

// nsFlags are the clone flags that make namespaces: without
// CAP_SYS_ADMIN, clone may not use them.
const nsFlags = unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
	unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET

// Personalities a container may set (linux/personality.h): PER_LINUX,
// PER_LINUX32, UNAME26, both of the last, and the query (0xffffffff).
const (
	perLinux          = 0x0000
	perLinux32        = 0x0008
	perUname26        = 0x0020000
	personalityLookup = 0xffffffff
)

var seccompPersonalities = []uint64{perLinux, perLinux32, perUname26, perUname26 | perLinux32, personalityLookup}

func argEq(index uint, value uint64) specs.LinuxSeccompArg {
	return specs.LinuxSeccompArg{Index: index, Value: value, Op: specs.OpEqualTo}
}

// seccompRules are the conditional rules of Docker's default profile.
func seccompRules() []seccompRule {
	rules := []seccompRule{
		// Any socket but vsock (AF_VSOCK is 40).
		{names: []string{"socket"}, args: []specs.LinuxSeccompArg{{Index: 0, Value: unix.AF_VSOCK, Op: specs.OpNotEqual}}},
		{names: []string{"sync_file_range2", "swapcontext"}, arches: []string{"ppc64le"}},
		{names: []string{"arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"}, arches: []string{"arm", "arm64"}},
		{names: []string{"arch_prctl"}, arches: []string{"amd64"}},
		{names: []string{"modify_ldt"}, arches: []string{"amd64", "386"}},
		{names: []string{"s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"}, arches: []string{"s390x"}},
		{names: []string{"riscv_flush_icache"}, arches: []string{"riscv64"}},
		{names: []string{"open_by_handle_at"}, withCap: []string{"CAP_DAC_READ_SEARCH"}},
		{names: []string{"bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
			"lookup_dcookie", "mount", "mount_setattr", "move_mount", "open_tree", "perf_event_open", "quotactl",
			"quotactl_fd", "setdomainname", "sethostname", "setns", "syslog", "umount", "umount2", "unshare"},
			withCap: []string{"CAP_SYS_ADMIN"}},
		// clone without namespace flags (on s390 the flags are the
		// second argument).
		{names: []string{"clone"}, args: []specs.LinuxSeccompArg{{Index: 0, Value: nsFlags, ValueTwo: 0, Op: specs.OpMaskedEqual}},
			withoutCap: []string{"CAP_SYS_ADMIN"}, notArches: []string{"s390x"}},
		{names: []string{"clone"}, args: []specs.LinuxSeccompArg{{Index: 1, Value: nsFlags, ValueTwo: 0, Op: specs.OpMaskedEqual}},
			withoutCap: []string{"CAP_SYS_ADMIN"}, arches: []string{"s390x"}},
		// clone3's flags are in memory seccomp cannot read: ENOSYS makes
		// the C library fall back to clone.
		{names: []string{"clone3"}, errno: uint(unix.ENOSYS), withoutCap: []string{"CAP_SYS_ADMIN"}},
		{names: []string{"reboot"}, withCap: []string{"CAP_SYS_BOOT"}},
		{names: []string{"chroot"}, withCap: []string{"CAP_SYS_CHROOT"}},
		{names: []string{"delete_module", "init_module", "finit_module"}, withCap: []string{"CAP_SYS_MODULE"}},
		{names: []string{"acct"}, withCap: []string{"CAP_SYS_PACCT"}},
		{names: []string{"kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"}, withCap: []string{"CAP_SYS_PTRACE"}},
		{names: []string{"iopl", "ioperm"}, withCap: []string{"CAP_SYS_RAWIO"}},
		{names: []string{"settimeofday", "stime", "clock_settime", "clock_settime64"}, withCap: []string{"CAP_SYS_TIME"}},
		{names: []string{"vhangup"}, withCap: []string{"CAP_SYS_TTY_CONFIG"}},
		{names: []string{"get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"}, withCap: []string{"CAP_SYS_NICE"}},
		{names: []string{"syslog"}, withCap: []string{"CAP_SYSLOG"}},
		{names: []string{"bpf"}, withCap: []string{"CAP_BPF"}},
		{names: []string{"perf_event_open"}, withCap: []string{"CAP_PERFMON"}},
	}
	for _, p := range seccompPersonalities {
		rules = append(rules, seccompRule{names: []string{"personality"}, args: []specs.LinuxSeccompArg{argEq(0, p)}})
	}
	return rules
}

// seccompArches are the architectures a profile covers on each GOARCH:
// the native one and those whose binaries the kernel also runs.
var seccompArches = map[string][]specs.Arch{
	"amd64":    {specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
	"arm64":    {specs.ArchAARCH64, specs.ArchARM},
	"386":      {specs.ArchX86},
	"arm":      {specs.ArchARM},
	"ppc64le":  {specs.ArchPPC64LE},
	"s390x":    {specs.ArchS390X, specs.ArchS390},
	"riscv64":  {specs.ArchRISCV64},
	"mips64":   {specs.ArchMIPS64, specs.ArchMIPS, specs.ArchMIPS64N32},
	"mips64le": {specs.ArchMIPSEL64, specs.ArchMIPSEL, specs.ArchMIPSEL64N32},
}

// DefaultSeccomp is Docker's default profile for a container with the
// capabilities caps on the architecture goarch (runtime.GOARCH): calls
// outside it fail with EPERM. It does no I/O.
func DefaultSeccomp(caps []string, goarch string) *specs.LinuxSeccomp {
	eperm := uint(unix.EPERM)
	s := &specs.LinuxSeccomp{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: &eperm,
		Architectures:   seccompArches[goarch],
	}
	s.Syscalls = append(s.Syscalls, specs.LinuxSyscall{Names: slices.Clone(seccompAllowed), Action: specs.ActAllow})
	for _, r := range seccompRules() {
		if !r.applies(caps, goarch) {
			continue
		}
		sc := specs.LinuxSyscall{Names: r.names, Action: specs.ActAllow, Args: r.args}
		if r.errno != 0 {
			e := r.errno
			sc.Action, sc.ErrnoRet = specs.ActErrno, &e
		}
		s.Syscalls = append(s.Syscalls, sc)
	}
	return s
}

func (r seccompRule) applies(caps []string, goarch string) bool {
	has := func(list []string) bool {
		for _, c := range list {
			if slices.Contains(caps, c) {
				return true
			}
		}
		return false
	}
	switch {
	case len(r.withCap) > 0 && !has(r.withCap),
		len(r.withoutCap) > 0 && has(r.withoutCap),
		len(r.arches) > 0 && !slices.Contains(r.arches, goarch),
		slices.Contains(r.notArches, goarch):
		return false
	}
	return true
}

// dockerProfile is a seccomp profile in Docker's JSON format, as
// `docker run --security-opt seccomp=profile.json` sends it.
type dockerProfile struct {
	DefaultAction   specs.LinuxSeccompAction `json:"defaultAction"`
	DefaultErrnoRet *uint                    `json:"defaultErrnoRet,omitempty"`
	Architectures   []specs.Arch             `json:"architectures,omitempty"`
	ArchMap         []struct {
		Arch      specs.Arch   `json:"architecture"`
		SubArches []specs.Arch `json:"subArchitectures"`
	} `json:"archMap,omitempty"`
	Flags    []specs.LinuxSeccompFlag `json:"flags,omitempty"`
	Syscalls []struct {
		Name     string                   `json:"name,omitempty"`
		Names    []string                 `json:"names,omitempty"`
		Action   specs.LinuxSeccompAction `json:"action"`
		ErrnoRet *uint                    `json:"errnoRet,omitempty"`
		Args     []specs.LinuxSeccompArg  `json:"args,omitempty"`
		Includes profileFilter            `json:"includes"`
		Excludes profileFilter            `json:"excludes"`
	} `json:"syscalls"`
}

// profileFilter is a rule's condition in Docker's format.
type profileFilter struct {
	Arches    []string `json:"arches,omitempty"`
	Caps      []string `json:"caps,omitempty"`
	MinKernel string   `json:"minKernel,omitempty"`
}

var seccompActions = []specs.LinuxSeccompAction{specs.ActKill, specs.ActKillProcess, specs.ActKillThread, specs.ActTrap,
	specs.ActErrno, specs.ActTrace, specs.ActAllow, specs.ActLog}

var seccompOps = []specs.LinuxSeccompOperator{specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo,
	specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual}

// dockerArchNames maps the arches of a profile's conditions to GOARCH.
var dockerArchNames = map[string]string{"x86": "386", "x32": "amd64", "aarch64": "arm64", "ppc64le": "ppc64le", "s390": "s390x"}

// ParseSeccompProfile reads a profile in Docker's JSON format and
// evaluates its conditions for a container with the capabilities caps on
// goarch. It does no I/O.
func ParseSeccompProfile(data []byte, caps []string, goarch string) (*specs.LinuxSeccomp, error) {
	var p dockerProfile
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("decoding seccomp profile failed: %v: %w", err, errdefs.ErrInvalid)
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("invalid seccomp profile: "+format+": %w", append(a, errdefs.ErrInvalid)...)
	}
	if !slices.Contains(seccompActions, p.DefaultAction) {
		return nil, bad("unknown default action %q", p.DefaultAction)
	}
	s := &specs.LinuxSeccomp{DefaultAction: p.DefaultAction, DefaultErrnoRet: p.DefaultErrnoRet, Flags: p.Flags}
	if len(p.Architectures) > 0 && len(p.ArchMap) > 0 {
		return nil, bad("use either 'architectures' or 'archMap'")
	}
	s.Architectures = p.Architectures
	native := seccompArches[goarch]
	for _, m := range p.ArchMap {
		if len(native) > 0 && m.Arch == native[0] {
			s.Architectures = append(append(s.Architectures, m.Arch), m.SubArches...)
		}
	}
	for _, sc := range p.Syscalls {
		if sc.Name != "" && len(sc.Names) > 0 {
			return nil, bad("use either 'name' or 'names'")
		}
		names := sc.Names
		if sc.Name != "" {
			names = []string{sc.Name}
		}
		if len(names) == 0 {
			return nil, bad("a rule without system call names")
		}
		if !slices.Contains(seccompActions, sc.Action) {
			return nil, bad("unknown action %q", sc.Action)
		}
		for _, a := range sc.Args {
			if !slices.Contains(seccompOps, a.Op) {
				return nil, bad("unknown operator %q", a.Op)
			}
			if a.Index > 5 {
				return nil, bad("argument index %d is out of range", a.Index)
			}
		}
		r := seccompRule{withCap: sc.Includes.Caps, withoutCap: sc.Excludes.Caps}
		for _, a := range sc.Includes.Arches {
			r.arches = append(r.arches, goArch(a))
		}
		for _, a := range sc.Excludes.Arches {
			r.notArches = append(r.notArches, goArch(a))
		}
		if !r.applies(caps, goarch) {
			continue
		}
		s.Syscalls = append(s.Syscalls, specs.LinuxSyscall{Names: names, Action: sc.Action, ErrnoRet: sc.ErrnoRet, Args: sc.Args})
	}
	return s, nil
}

func goArch(a string) string {
	if g, ok := dockerArchNames[a]; ok {
		return g
	}
	return a
}

// SecurityOptions are a container's --security-opt values, parsed.
type SecurityOptions struct {
	// Seccomp is "" (Docker's default profile), "unconfined", or a
	// profile in Docker's JSON format.
	Seccomp string
	// NoNewPrivileges keeps the container's processes from gaining
	// privileges (setuid binaries, file capabilities).
	NoNewPrivileges bool
	// UnmaskSystemPaths (systempaths=unconfined) leaves /proc and /sys
	// unmasked and writable.
	UnmaskSystemPaths bool
}

// ParseSecurityOpts parses --security-opt values: seccomp=unconfined,
// seccomp=PROFILE-JSON (the docker CLI reads the file and sends its
// content), no-new-privileges[=true|false], systempaths=unconfined; and,
// since this host has no such security module, apparmor= and label= are
// accepted and have no effect. Docker's older "key:value" form works too.
func ParseSecurityOpts(opts []string) (SecurityOptions, error) {
	var so SecurityOptions
	for _, o := range opts {
		k, v, ok := strings.Cut(o, "=")
		if !ok {
			k, v, ok = strings.Cut(o, ":")
		}
		switch {
		case k == "no-new-privileges" && (!ok || v == "true"):
			so.NoNewPrivileges = true
		case k == "no-new-privileges" && v == "false":
			so.NoNewPrivileges = false
		case k == "seccomp" && ok && v != "":
			so.Seccomp = v
		case k == "systempaths" && v == "unconfined":
			so.UnmaskSystemPaths = true
		case (k == "apparmor" || k == "label") && ok:
		default:
			return so, fmt.Errorf("invalid --security-opt: %q: %w", o, errdefs.ErrInvalid)
		}
	}
	return so, nil
}

// seccompFor returns the container's seccomp filter: none for a
// privileged container or seccomp=unconfined, the given profile, or
// Docker's default.
func seccompFor(h HostConfig, so SecurityOptions, caps []string) (*specs.LinuxSeccomp, error) {
	switch {
	case h.Privileged || so.Seccomp == "unconfined":
		return nil, nil
	case so.Seccomp != "":
		return ParseSeccompProfile([]byte(so.Seccomp), caps, runtime.GOARCH)
	}
	return DefaultSeccomp(caps, runtime.GOARCH), nil
}
