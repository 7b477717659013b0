package engine

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// rulesFor returns the rules of a filter that name call.
func rulesFor(s *specs.LinuxSeccomp, call string) []specs.LinuxSyscall {
	var out []specs.LinuxSyscall
	for _, sc := range s.Syscalls {
		if slices.Contains(sc.Names, call) {
			out = append(out, sc)
		}
	}
	return out
}

func TestDefaultSeccomp(t *testing.T) {
	s := DefaultSeccomp(DefaultCapabilities(), "amd64")
	if s.DefaultAction != specs.ActErrno || s.DefaultErrnoRet == nil || *s.DefaultErrnoRet != 1 {
		t.Errorf("default action %s errno %v, want EPERM", s.DefaultAction, s.DefaultErrnoRet)
	}
	if !slices.Equal(s.Architectures, []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}) {
		t.Errorf("architectures %v", s.Architectures)
	}
	// Plain calls are allowed, calls needing CAP_SYS_ADMIN are not.
	for _, call := range []string{"read", "openat", "execve", "arch_prctl", "modify_ldt", "ptrace"} {
		if r := rulesFor(s, call); len(r) == 0 || r[0].Action != specs.ActAllow || len(r[0].Args) != 0 {
			t.Errorf("%s: %+v, want allowed", call, r)
		}
	}
	for _, call := range []string{"mount", "unshare", "setns", "keyctl", "add_key", "reboot", "bpf", "init_module", "open_by_handle_at", "s390_runtime_instr"} {
		if r := rulesFor(s, call); len(r) != 0 {
			t.Errorf("%s: %+v, want no rule (EPERM)", call, r)
		}
	}
	// clone without namespace flags; clone3 fails with ENOSYS.
	if r := rulesFor(s, "clone"); len(r) != 1 || len(r[0].Args) != 1 || r[0].Args[0].Op != specs.OpMaskedEqual || r[0].Args[0].Value != 0x7E020000 || r[0].Args[0].Index != 0 {
		t.Errorf("clone: %+v", r)
	}
	if r := rulesFor(s, "clone3"); len(r) != 1 || r[0].Action != specs.ActErrno || *r[0].ErrnoRet != 38 {
		t.Errorf("clone3: %+v", r)
	}
	// Personality: five values.
	var pers []uint64
	for _, r := range rulesFor(s, "personality") {
		pers = append(pers, r.Args[0].Value)
	}
	if !slices.Equal(pers, []uint64{0, 8, 0x20000, 0x20008, 0xffffffff}) {
		t.Errorf("personality values %x", pers)
	}
	if r := rulesFor(s, "socket"); len(r) != 1 || r[0].Args[0].Op != specs.OpNotEqual || r[0].Args[0].Value != 40 {
		t.Errorf("socket: %+v", r)
	}

	// With CAP_SYS_ADMIN: mount and unshare, clone unrestricted.
	admin := DefaultSeccomp(append(DefaultCapabilities(), "CAP_SYS_ADMIN", "CAP_SYS_PTRACE"), "amd64")
	for _, call := range []string{"mount", "unshare", "setns", "clone", "clone3", "kcmp"} {
		r := rulesFor(admin, call)
		if len(r) != 1 || r[0].Action != specs.ActAllow || len(r[0].Args) != 0 {
			t.Errorf("with CAP_SYS_ADMIN, %s: %+v", call, r)
		}
	}
	// On s390x the clone flags are the second argument.
	if r := rulesFor(DefaultSeccomp(nil, "s390x"), "clone"); len(r) != 1 || r[0].Args[0].Index != 1 {
		t.Errorf("s390x clone: %+v", r)
	}
	if r := rulesFor(DefaultSeccomp(nil, "arm64"), "arch_prctl"); len(r) != 0 {
		t.Errorf("arm64 arch_prctl: %+v", r)
	}
}

func TestParseSeccompProfile(t *testing.T) {
	prof := `{
		"defaultAction": "SCMP_ACT_ERRNO",
		"archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
			{"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
		"syscalls": [
			{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
			{"name": "mount", "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
			{"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
			{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "excludes": {"caps": ["CAP_SYS_ADMIN"]},
			 "args": [{"index": 1, "value": 511, "op": "SCMP_CMP_EQ"}], "comment": "ignored"}
		]}`
	s, err := ParseSeccompProfile([]byte(prof), DefaultCapabilities(), "amd64")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Architectures, []specs.Arch{specs.ArchX86_64, specs.ArchX86}) {
		t.Errorf("architectures %v", s.Architectures)
	}
	var names []string
	for _, sc := range s.Syscalls {
		names = append(names, strings.Join(sc.Names, ","))
	}
	if got := strings.Join(names, " "); got != "read,write arch_prctl mkdir" {
		t.Errorf("rules %q", got)
	}
	if m := s.Syscalls[2]; *m.ErrnoRet != 13 || m.Args[0].Value != 511 {
		t.Errorf("mkdir rule %+v", m)
	}
	s, _ = ParseSeccompProfile([]byte(prof), []string{"CAP_SYS_ADMIN"}, "arm64")
	if len(s.Syscalls) != 2 || s.Syscalls[1].Names[0] != "mount" || s.Architectures[0] != specs.ArchAARCH64 {
		t.Errorf("arm64 with CAP_SYS_ADMIN: %+v", s)
	}

	for _, bad := range []string{
		`{bad`,
		`{"defaultAction": "SCMP_ACT_EXPLODE"}`,
		`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ALLOW"}]}`,
		`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ALLOW"}]}`,
		`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "op": "SCMP_CMP_EQ"}]}]}`,
		`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "op": "SCMP_CMP_LIKE"}]}]}`,
		`{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"], "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}`,
	} {
		if _, err := ParseSeccompProfile([]byte(bad), nil, "amd64"); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func FuzzParseSeccompProfile(f *testing.F) {
	def, _ := json.Marshal(map[string]any{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []map[string]any{
		{"names": []string{"read"}, "action": "SCMP_ACT_ALLOW", "includes": map[string]any{"caps": []string{"CAP_SYS_ADMIN"}, "arches": []string{"amd64"}}},
		{"name": "clone", "action": "SCMP_ACT_ALLOW", "args": []map[string]any{{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}}},
	}})
	f.Add(def)
	f.Add([]byte(`{"defaultAction":"SCMP_ACT_ALLOW","archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":null}]}`))
	f.Add([]byte(`{"defaultAction":"SCMP_ACT_KILL","syscalls":[{"names":[],"action":""}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSeccompProfile(data, DefaultCapabilities(), "amd64")
		if err != nil {
			return
		}
		for _, sc := range s.Syscalls {
			if len(sc.Names) == 0 {
				t.Fatalf("a rule without names from %q", data)
			}
			for _, a := range sc.Args {
				if a.Index > 5 {
					t.Fatalf("argument index %d from %q", a.Index, data)
				}
			}
		}
	})
}

func TestParseSecurityOpts(t *testing.T) {
	so, err := ParseSecurityOpts([]string{"no-new-privileges", "seccomp=unconfined", "apparmor=unconfined", "label=disable", "systempaths=unconfined"})
	if err != nil || !so.NoNewPrivileges || so.Seccomp != "unconfined" || !so.UnmaskSystemPaths {
		t.Errorf("%+v %v", so, err)
	}
	so, err = ParseSecurityOpts([]string{"no-new-privileges:true", "no-new-privileges=false", `seccomp={"defaultAction":"SCMP_ACT_ALLOW"}`})
	if err != nil || so.NoNewPrivileges || !strings.HasPrefix(so.Seccomp, "{") {
		t.Errorf("%+v %v", so, err)
	}
	for _, bad := range []string{"nope", "seccomp=", "no-new-privileges=maybe", "systempaths=open"} {
		if _, err := ParseSecurityOpts([]string{bad}); err == nil || !strings.Contains(err.Error(), "invalid --security-opt") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestParseCapBnd(t *testing.T) {
	caps, err := ParseCapBnd("Name:\tcaisd\nCapPrm:\t0\nCapBnd:\t000001fffeffffff\nSeccomp:\t0\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(caps) != 40 || slices.Contains(caps, "CAP_SYS_RESOURCE") || !slices.Contains(caps, "CAP_CHECKPOINT_RESTORE") {
		t.Errorf("caps %v", caps)
	}
	if _, err := ParseCapBnd("Name:\tx\n"); err == nil {
		t.Error("no CapBnd: no error")
	}
}

func TestSpecSecurity(t *testing.T) {
	bounding, _ := ParseCapBnd("CapBnd:\t000001fffeffffff\n")
	in := SpecInput{ID: "0123456789abcdef0123", Config: Config{Cmd: []string{"true"}}, CapBounding: bounding}

	s, err := Spec(in)
	if err != nil {
		t.Fatal(err)
	}
	if s.Linux.Seccomp == nil || len(rulesFor(s.Linux.Seccomp, "mount")) != 0 || s.Process.NoNewPrivileges {
		t.Errorf("default: seccomp %v, no_new_privs %v", s.Linux.Seccomp != nil, s.Process.NoNewPrivileges)
	}

	// Privileged: every capability caisd has, no filter, no masked paths,
	// writable /sys and cgroup, every device.
	in.Host = HostConfig{Privileged: true}
	in.Devices = []HostDevice{{Node: specs.LinuxDevice{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229}, Access: "rwm"}}
	s, err = Spec(in)
	if err != nil {
		t.Fatal(err)
	}
	if s.Linux.Seccomp != nil || s.Linux.MaskedPaths != nil || s.Linux.ReadonlyPaths != nil {
		t.Errorf("privileged: seccomp %v masked %v readonly %v", s.Linux.Seccomp, s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	if !slices.Equal(s.Process.Capabilities.Bounding, bounding) {
		t.Errorf("privileged caps %v, want the bounding set", s.Process.Capabilities.Bounding)
	}
	for _, m := range s.Mounts {
		if (m.Destination == "/sys" || m.Type == "cgroup") && slices.Contains(m.Options, "ro") {
			t.Errorf("privileged mount %s is read-only", m.Destination)
		}
	}
	if d := s.Linux.Resources.Devices; len(d) != 1 || !d[0].Allow || len(s.Linux.Devices) != 1 {
		t.Errorf("privileged devices %+v %+v", d, s.Linux.Devices)
	}

	// A device: its node and a cgroup rule with its permissions.
	in.Host = HostConfig{SecurityOpt: []string{"no-new-privileges", "seccomp=unconfined"}}
	in.Devices[0].Access = "r"
	s, err = Spec(in)
	if err != nil {
		t.Fatal(err)
	}
	if d := s.Linux.Resources.Devices; len(d) != 2 || d[0].Allow || !d[1].Allow || d[1].Access != "r" || *d[1].Major != 10 {
		t.Errorf("device rules %+v", d)
	}
	if s.Linux.Seccomp != nil || !s.Process.NoNewPrivileges {
		t.Errorf("unconfined, no-new-privileges: seccomp %v nnp %v", s.Linux.Seccomp, s.Process.NoNewPrivileges)
	}

	// A capability caisd lacks, asked for by name, is refused; ALL is cut.
	in.Host = HostConfig{CapAdd: []string{"sys_resource"}}
	if _, err := Spec(in); err == nil || !strings.Contains(err.Error(), "CAP_SYS_RESOURCE cannot be added") {
		t.Errorf("cap-add SYS_RESOURCE: %v", err)
	}
	in.Host = HostConfig{CapAdd: []string{"ALL"}}
	if s, err := Spec(in); err != nil || slices.Contains(s.Process.Capabilities.Effective, "CAP_SYS_RESOURCE") {
		t.Errorf("cap-add ALL: %v", err)
	}
	// A bad profile is refused at create.
	in.Host = HostConfig{SecurityOpt: []string{"seccomp={"}}
	if _, err := Spec(in); err == nil || !strings.Contains(err.Error(), "decoding seccomp profile failed") {
		t.Errorf("bad profile: %v", err)
	}
}
