package mount

import (
	"context"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
)

func TestPrivBits(t *testing.T) {
	for _, tc := range []struct {
		mode, want uint32
	}{
		{syscall.S_IFREG | 0o6777, syscall.S_ISUID | syscall.S_ISGID},
		{syscall.S_IFREG | 0o4755, syscall.S_ISUID},
		{syscall.S_IFREG | 0o2775, syscall.S_ISGID},
		// Set-group-ID without group execute marks mandatory locking.
		{syscall.S_IFREG | 0o2765, 0},
		{syscall.S_IFREG | 0o6765, syscall.S_ISUID},
		{syscall.S_IFREG | 0o1777, 0},
		{syscall.S_IFREG | 0o777, 0},
		// Only regular files are written.
		{syscall.S_IFDIR | 0o6777, 0},
	} {
		if got := privBits(tc.mode); got != tc.want {
			t.Errorf("privBits(%o) = %o, want %o", tc.mode, got, tc.want)
		}
	}
}

func TestSawMode(t *testing.T) {
	var n node
	if n.priv.Load() != privUnknown {
		t.Fatal("a new node knows its set-ID bits")
	}
	n.sawModeAt(syscall.S_IFREG|0o4755, n.changeCount())
	if n.priv.Load() != privSome {
		t.Error("04755: not privSome")
	}
	n.sawModeAt(syscall.S_IFREG|0o755, n.changeCount())
	if n.priv.Load() != privNone {
		t.Error("0755: not privNone")
	}
	// An upcall while attributes were being read: they may be older than
	// the change it announced, and record nothing.
	inv := n.changeCount()
	n.forgetXattrs()
	if n.priv.Load() != privUnknown {
		t.Error("an upcall leaves the set-ID bits known")
	}
	n.sawModeAt(syscall.S_IFREG|0o755, inv)
	if n.priv.Load() != privUnknown {
		t.Error("attributes read before an upcall overrode it")
	}
	n.sawModeAt(syscall.S_IFREG|0o755, n.changeCount())
	if n.priv.Load() != privNone {
		t.Error("attributes read after the upcall not recorded")
	}
	// A chmod u+s whose reply comes after some other change counted (a
	// close's attributes learned): the bits it shows are not lost.
	inv = n.changeCount()
	n.changed()
	n.sawModeAt(syscall.S_IFREG|0o4755, inv)
	if n.priv.Load() != privSome {
		t.Error("set-ID bits seen beside another change left the node at none")
	}
}

func TestParseCapEff(t *testing.T) {
	status := []byte("Name:\tcat\nUmask:\t0022\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\nCapBnd:\t000001ffffffffff\n")
	caps, ok := parseCapEff(status)
	if !ok || caps != 0x1ffffffffff || caps&capFSETID == 0 {
		t.Errorf("root: %x %v", caps, ok)
	}
	caps, ok = parseCapEff([]byte("Name:\tcat\nCapEff:\t0000000000000000\n"))
	if !ok || caps != 0 {
		t.Errorf("nobody: %x %v", caps, ok)
	}
	for _, bad := range []string{"", "Name:\tcat\n", "CapEff:\tzz\n", "CapEff:"} {
		if _, ok := parseCapEff([]byte(bad)); ok {
			t.Errorf("%q parsed", bad)
		}
	}
	// This process's own status parses, as the kernel writes it.
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip(err)
	}
	if _, ok := parseCapEff(b); !ok {
		t.Errorf("/proc/self/status: no CapEff in\n%s", b)
	}
}

func TestCallerMayKeepPriv(t *testing.T) {
	ctx := func(pid int) context.Context {
		return &fuse.Context{Caller: fuse.Caller{Pid: uint32(pid)}}
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: a caller with CAP_FSETID, and one made without")
	}
	if !callerMayKeepPriv(ctx(os.Getpid())) {
		t.Error("root, in the mount's user namespace: may not keep set-ID bits")
	}
	cmd := exec.Command("sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if callerMayKeepPriv(ctx(cmd.Process.Pid)) {
		t.Error("nobody may keep set-ID bits")
	}
	if callerMayKeepPriv(ctx(0)) {
		t.Error("a caller the mount cannot see may keep set-ID bits")
	}
	if callerMayKeepPriv(context.Background()) {
		t.Error("a request without a caller may keep set-ID bits")
	}
}
