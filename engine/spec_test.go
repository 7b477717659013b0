package engine

import (
	"errors"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/image/store"
)

func specFor(t *testing.T, c Config, h HostConfig) *specs.Spec {
	t.Helper()
	s, err := Spec(SpecInput{ID: "0123456789abcdef0123", Config: c, Host: h, Rootfs: "/r", NoFile: Rlimit{Soft: 1024, Hard: 20000}, SwapAccounting: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSpecDefaults(t *testing.T) {
	s := specFor(t, Config{Cmd: []string{"echo", "hi"}, Env: []string{"A=1"}}, HostConfig{NetworkMode: "bridge"})
	if got := s.Process.Args; !slices.Equal(got, []string{"echo", "hi"}) {
		t.Errorf("args %v", got)
	}
	if s.Hostname != "0123456789ab" || s.Process.Cwd != "/" || s.Root.Path != "/r" {
		t.Errorf("hostname %q cwd %q root %q", s.Hostname, s.Process.Cwd, s.Root.Path)
	}
	if want := []string{"PATH=" + DefaultPath, "HOSTNAME=0123456789ab", "A=1"}; !slices.Equal(s.Process.Env, want) {
		t.Errorf("env %v", s.Process.Env)
	}
	var ns []specs.LinuxNamespaceType
	for _, n := range s.Linux.Namespaces {
		ns = append(ns, n.Type)
	}
	for _, want := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.MountNamespace, specs.NetworkNamespace, specs.IPCNamespace, specs.UTSNamespace} {
		if !slices.Contains(ns, want) {
			t.Errorf("namespace %s missing from %v", want, ns)
		}
	}
	if !slices.Equal(s.Process.Capabilities.Bounding, s.Process.Capabilities.Effective) || len(s.Process.Capabilities.Bounding) != 14 {
		t.Errorf("caps %v", s.Process.Capabilities.Bounding)
	}
	if slices.Contains(s.Process.Capabilities.Bounding, "CAP_SYS_ADMIN") || !slices.Contains(s.Process.Capabilities.Bounding, "CAP_NET_BIND_SERVICE") {
		t.Errorf("caps %v", s.Process.Capabilities.Bounding)
	}
	if !slices.Contains(s.Linux.MaskedPaths, "/proc/kcore") || !slices.Contains(s.Linux.ReadonlyPaths, "/proc/sys") {
		t.Errorf("masked %v readonly %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	if s.Linux.CgroupsPath != "/cais/0123456789abcdef0123" {
		t.Errorf("cgroups path %q", s.Linux.CgroupsPath)
	}
	// The open-file limit is the host's hard limit, never above.
	if len(s.Process.Rlimits) != 1 || s.Process.Rlimits[0].Hard != 20000 || s.Process.Rlimits[0].Soft != 20000 {
		t.Errorf("rlimits %+v", s.Process.Rlimits)
	}
	if d := s.Linux.Resources.Devices; len(d) != 1 || d[0].Allow || d[0].Access != "rwm" {
		t.Errorf("devices %+v", d)
	}
	var dests []string
	for _, m := range s.Mounts {
		dests = append(dests, m.Destination)
	}
	for _, want := range []string{"/proc", "/dev", "/dev/pts", "/sys", "/dev/shm", "/dev/mqueue", "/sys/fs/cgroup"} {
		if !slices.Contains(dests, want) {
			t.Errorf("mount %s missing: %v", want, dests)
		}
	}
}

func TestSpecResources(t *testing.T) {
	pids := int64(10)
	s := specFor(t, Config{Cmd: []string{"sh"}, Tty: true}, HostConfig{Memory: 20 << 20, NanoCPUs: 500_000_000, PidsLimit: &pids, CPUShares: 512, ConsoleSize: [2]uint{30, 100}})
	r := s.Linux.Resources
	if *r.Memory.Limit != 20<<20 || *r.Memory.Swap != 40<<20 {
		t.Errorf("memory %d swap %d", *r.Memory.Limit, *r.Memory.Swap)
	}
	if *r.CPU.Quota != 50000 || *r.CPU.Period != 100000 || *r.CPU.Shares != 512 {
		t.Errorf("cpu %+v", r.CPU)
	}
	if *r.Pids.Limit != 10 {
		t.Errorf("pids %d", *r.Pids.Limit)
	}
	if !s.Process.Terminal || s.Process.ConsoleSize.Width != 100 || !slices.Contains(s.Process.Env, "TERM=xterm") {
		t.Errorf("terminal %v %+v", s.Process.Terminal, s.Process.ConsoleSize)
	}
}

func TestSpecHostNetworkAndBinds(t *testing.T) {
	s := specFor(t, Config{Cmd: []string{"sh"}}, HostConfig{NetworkMode: "host", Binds: []string{"/srv/data:/data:ro", "/tmp/x:/x"}, CapAdd: []string{"sys_admin"}, CapDrop: []string{"CAP_KILL"}})
	for _, n := range s.Linux.Namespaces {
		if n.Type == specs.NetworkNamespace {
			t.Errorf("host network has a network namespace")
		}
	}
	found := 0
	for _, m := range s.Mounts {
		switch m.Destination {
		case "/data":
			found++
			if m.Source != "/srv/data" || !slices.Contains(m.Options, "ro") || !slices.Contains(m.Options, "rbind") {
				t.Errorf("bind %+v", m)
			}
		case "/x":
			found++
		case "/sys":
			if m.Type != "bind" {
				t.Errorf("host network /sys is %s", m.Type)
			}
		}
	}
	if found != 2 {
		t.Errorf("binds missing: %+v", s.Mounts)
	}
	caps := s.Process.Capabilities.Bounding
	if !slices.Contains(caps, "CAP_SYS_ADMIN") || slices.Contains(caps, "CAP_KILL") {
		t.Errorf("caps %v", caps)
	}
}

func TestSpecRefuses(t *testing.T) {
	big := int64(1)
	for name, in := range map[string]SpecInput{
		"no command":      {Config: Config{}},
		"relative cwd":    {Config: Config{Cmd: []string{"sh"}, WorkingDir: "tmp"}},
		"bad volume name": {Config: Config{Cmd: []string{"sh"}}, Host: HostConfig{Binds: []string{"-x:/data"}}},
		"tiny memory":     {Config: Config{Cmd: []string{"sh"}}, Host: HostConfig{Memory: 1 << 20}},
		"unknown cap":     {Config: Config{Cmd: []string{"sh"}}, Host: HostConfig{CapAdd: []string{"CAP_FLY"}}},
		"nofile > hard":   {Config: Config{Cmd: []string{"sh"}}, Host: HostConfig{Ulimits: []Ulimit{{Name: "nofile", Soft: 1, Hard: 1 << 30}}}, NoFile: Rlimit{Hard: 20000}},
		"unknown ulimit":  {Config: Config{Cmd: []string{"sh"}}, Host: HostConfig{Ulimits: []Ulimit{{Name: "bogus", Soft: 1, Hard: 1}}}},
		"network":         {Config: Config{Cmd: []string{"sh"}}, Host: HostConfig{NetworkMode: "container:"}},
		"cpus and quota":  {Config: Config{Cmd: []string{"sh"}}, Host: HostConfig{NanoCPUs: 1e9, CPUQuota: 1000}},
		"bind to root":    {Config: Config{Cmd: []string{"sh"}}, Host: HostConfig{Binds: []string{"/a:/"}, PidsLimit: &big}},
	} {
		if _, err := Spec(in); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%s: %v, want an invalid-request error", name, err)
		}
	}
}

func TestMergeImageConfig(t *testing.T) {
	img := store.ContainerConfig{Env: []string{"PATH=/bin", "A=img"}, Cmd: []string{"sh"}, Entrypoint: []string{"/init"}, WorkingDir: "/w", User: "nobody", Labels: map[string]string{"l": "img"}}
	c := MergeImageConfig(Config{Env: []string{"A=user", "B=2"}}, img)
	if !slices.Equal(Args(c), []string{"/init", "sh"}) || !slices.Equal(c.Env, []string{"PATH=/bin", "A=user", "B=2"}) || c.WorkingDir != "/w" || c.User != "nobody" {
		t.Errorf("merged %+v", c)
	}
	c = MergeImageConfig(Config{Cmd: []string{"echo"}}, img)
	if !slices.Equal(Args(c), []string{"/init", "echo"}) {
		t.Errorf("user cmd: %v", Args(c))
	}
	// A user entrypoint drops the image's cmd.
	c = MergeImageConfig(Config{Entrypoint: []string{"top"}}, img)
	if !slices.Equal(Args(c), []string{"top"}) {
		t.Errorf("user entrypoint: %v", Args(c))
	}
	c = MergeImageConfig(Config{Entrypoint: []string{""}, Cmd: []string{"ls"}}, img)
	if !slices.Equal(Args(c), []string{"ls"}) {
		t.Errorf("empty entrypoint: %v", Args(c))
	}
}

func TestResolveUser(t *testing.T) {
	passwd := "root:x:0:0:root:/root:/bin/sh\nwww:x:33:34:www:/var/www:/bin/false\n# comment\nbroken\n"
	group := "root:x:0:\nwww:x:34:\nadm:x:4:www,other\n"
	for _, c := range []struct {
		in   string
		want specs.User
		err  bool
	}{
		{"", specs.User{}, false},
		{"www", specs.User{UID: 33, GID: 34, AdditionalGids: []uint32{4}}, false},
		{"33", specs.User{UID: 33, GID: 34, AdditionalGids: []uint32{4}}, false},
		{"1000", specs.User{UID: 1000}, false},
		{"www:adm", specs.User{UID: 33, GID: 4}, false},
		{"1000:55", specs.User{UID: 1000, GID: 55}, false},
		{"nobody", specs.User{}, true},
		{"www:nogroup", specs.User{}, true},
	} {
		got, err := ResolveUser(c.in, strings.NewReader(passwd), strings.NewReader(group))
		if (err != nil) != c.err || err == nil && (got.UID != c.want.UID || got.GID != c.want.GID || !slices.Equal(got.AdditionalGids, c.want.AdditionalGids)) {
			t.Errorf("%q: %+v %v, want %+v", c.in, got, err, c.want)
		}
	}
}

func TestRestartPolicy(t *testing.T) {
	for _, c := range []struct {
		p     RestartPolicy
		st    State
		count int
		want  bool
	}{
		{RestartPolicy{Name: "no"}, State{ExitCode: 1}, 0, false},
		{RestartPolicy{Name: "always"}, State{ExitCode: 0}, 5, true},
		{RestartPolicy{Name: "always"}, State{ExitCode: 0, StoppedByUser: true}, 0, false},
		{RestartPolicy{Name: "unless-stopped"}, State{ExitCode: 0}, 0, true},
		{RestartPolicy{Name: "on-failure"}, State{ExitCode: 0}, 0, false},
		{RestartPolicy{Name: "on-failure", MaximumRetryCount: 2}, State{ExitCode: 1}, 1, true},
		{RestartPolicy{Name: "on-failure", MaximumRetryCount: 2}, State{ExitCode: 1}, 2, false},
	} {
		if got := shouldRestart(c.p, c.st, c.count); got != c.want {
			t.Errorf("%+v %+v %d: %v", c.p, c.st, c.count, got)
		}
	}
	if err := ValidateRestartPolicy(RestartPolicy{Name: "sometimes"}, false); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("unknown policy: %v", err)
	}
	if err := ValidateRestartPolicy(RestartPolicy{Name: "always"}, true); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("always with --rm: %v", err)
	}
	if backoff(1) != 100e6 || backoff(3) != 400e6 || backoff(50) != 60e9 {
		t.Errorf("backoff %v %v %v", backoff(1), backoff(3), backoff(50))
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]int{"SIGTERM": 15, "term": 15, "KILL": 9, "9": 9, "SIGUSR1": 10} {
		if got, err := ParseSignal(in); err != nil || int(got) != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	for _, in := range []string{"", "0", "SIGFOO", "99"} {
		if _, err := ParseSignal(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}
