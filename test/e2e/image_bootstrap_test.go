package e2e

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImageBootstrap: cais image bootstrap makes the base images without a
// registry: busybox from busybox-static, and Debian with debootstrap from
// the machine's Debian mirror, which the docker CLI then runs.
func TestImageBootstrap(t *testing.T) {
	d := startDocker(t)
	sock := "--docker-socket=" + d.socket

	// busybox: the image make up loads, again from scratch.
	d.must("rmi", "busybox")
	out := d.n.MustCLI("image", "bootstrap", "busybox", sock)
	if out != "Loaded image: busybox:latest\n" {
		t.Fatalf("bootstrap busybox said %q", out)
	}
	d.expect(0, ptr("ok\n"), "", "run", "--rm", "busybox", "echo", "ok")

	// Bad input is refused before anything runs.
	r := d.n.CLI("image", "bootstrap", "debian", sock, "--suite", "../etc")
	if r.Code == 0 || !strings.Contains(r.Stderr, `invalid Debian suite "../etc"`) {
		t.Errorf("bad suite: %+v", r)
	}
	r = d.n.CLI("image", "bootstrap", "fedora", sock)
	if r.Code == 0 || !strings.Contains(r.Stderr, `unknown base image "fedora": debian or busybox`) {
		t.Errorf("unknown image: %+v", r)
	}
	r = d.n.CLI("image", "bootstrap", "busybox", "--docker-socket=/nonexistent.sock")
	if r.Code == 0 || !strings.Contains(r.Stderr, "caisd's Docker API at /nonexistent.sock does not answer") {
		t.Errorf("no engine: %+v", r)
	}

	if _, err := exec.LookPath("debootstrap"); err != nil {
		t.Fatal("debootstrap is not installed (make deps installs it)")
	}
	r = d.n.CLI("image", "bootstrap", "debian", sock, "-q", "--suite", "bookworm")
	if r.Code != 0 {
		t.Fatalf("bootstrap debian: %+v", r)
	}
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "sha256:") || lines[1] != "debian:bookworm" {
		t.Fatalf("bootstrap debian said %q", r.Stdout)
	}
	t.Logf("cais image bootstrap debian: %s", r.Stdout)
	d.expect(0, ptr(lines[0]+"\n"), "", "inspect", "-f", "{{.Id}}", "debian:bookworm")
	d.expect(0, ptr(`[bash]`+"\n"), "", "inspect", "-f", "{{.Config.Cmd}}", "debian:bookworm")
	// Debian 12, with its owners kept (shadow's group), apt working, no
	// device nodes but the container's own, and bash as the command.
	out = d.must("run", "--rm", "debian:bookworm", "sh", "-c", "cat /etc/debian_version; stat -c %U:%G /etc/shadow; apt-get --version | head -1; ls /dev | tr '\\n' ' '")
	if !strings.HasPrefix(out, "12.") || !strings.Contains(out, "\nroot:shadow\n") || !strings.Contains(out, "apt ") || strings.Contains(out, " sda") {
		t.Errorf("debian container:\n%s", out)
	}
	d.expect(0, ptr("bash\n"), "", "run", "--rm", "debian:bookworm", "bash", "-c", "echo $0")
	// No downloaded packages left (the glob stays as it is).
	d.expect(0, ptr("/var/cache/apt/archives/*.deb\n"), "", "run", "--rm", "debian:bookworm", "sh", "-c", "echo /var/cache/apt/archives/*.deb")
}
