package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cais-platform/cais/api"
	"github.com/cais-platform/cais/test/clustertest"
)

// A mount reaches the bricks of its own machine through their Unix
// sockets (no TLS), and with --transport tcp through TLS as before; both
// see each other's writes, and a brick killed and restarted is reached
// through its new socket.
func TestLocalBrickSockets(t *testing.T) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
	if _, err := exec.LookPath("ss"); err != nil {
		t.Skip("no ss (iproute2)")
	}
	c := clustertest.New(t)
	nodes := c.Pool(2)
	n1, n2 := nodes[0], nodes[1]
	n1.MustCLI("volume", "create", "lv", "replica", "2", n1.Brick("l1"), n2.Brick("l2"), "force")
	n1.MustCLI("volume", "start", "lv")

	status := func() api.VolumeStatus {
		var st api.VolumeStatus
		if err := json.Unmarshal([]byte(n1.MustCLI("volume", "status", "lv", "--json")), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	var st api.VolumeStatus
	clustertest.Eventually(t, 20*time.Second, func() error {
		st = status()
		for _, b := range st.Bricks {
			if !b.Online || b.Socket == "" {
				return fmt.Errorf("brick %s: online %v, socket %q", b.Brick.Path, b.Online, b.Socket)
			}
		}
		return nil
	})
	for i, b := range st.Bricks {
		want := filepath.Join(nodes[i].DataDir, "run", "bricks", b.Brick.ID+".sock")
		if b.Socket != want {
			t.Fatalf("brick %s socket %s, want %s", b.Brick.Path, b.Socket, want)
		}
		fi, err := os.Lstat(b.Socket)
		if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
			t.Fatalf("socket %s: %v %v, want a socket of mode 0600", b.Socket, fi, err)
		}
	}

	local := mountAs(t, c, n1, "lv", "lv-local")
	tcp := mountAs(t, c, n1, "lv", "lv-tcp", "--transport", "tcp")
	data := bytes.Repeat([]byte("over the local socket "), 50000)
	if err := os.WriteFile(filepath.Join(local, "a"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(tcp, "a")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read through the TCP mount: %d bytes, %v", len(got), err)
	}
	if err := os.WriteFile(filepath.Join(tcp, "b"), data[:1000], 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(local, "b")); err != nil || !bytes.Equal(got, data[:1000]) {
		t.Fatalf("read through the local mount: %d bytes, %v", len(got), err)
	}

	localPID, tcpPID := mountPID(t, local), mountPID(t, tcp)
	for _, b := range st.Bricks {
		if !connectedVia(t, localPID, b.Socket) {
			t.Errorf("the local mount has no connection on %s", b.Socket)
		}
		if connectedVia(t, tcpPID, b.Socket) {
			t.Errorf("the --transport tcp mount is connected on %s", b.Socket)
		}
	}
	ports := map[int]bool{}
	for _, b := range st.Bricks {
		ports[b.Port] = true
	}
	if n := tcpConns(t, localPID, ports); n != 0 {
		t.Errorf("the local mount has %d TCP connections to brick ports", n)
	}
	if n := tcpConns(t, tcpPID, ports); n != 2 {
		t.Errorf("the --transport tcp mount has %d TCP connections to brick ports, want 2", n)
	}

	// kill -9 leaves the socket file; the restarted brick replaces it and
	// the mount connects there again.
	old := st.Bricks[0]
	if err := syscall.Kill(old.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 30*time.Second, func() error {
		st = status()
		if b := st.Bricks[0]; !b.Online || b.PID == old.PID || b.Socket != old.Socket {
			return fmt.Errorf("brick 1 after kill: online %v pid %d socket %q", b.Online, b.PID, b.Socket)
		}
		return nil
	})
	clustertest.Eventually(t, 30*time.Second, func() error {
		if err := os.WriteFile(filepath.Join(local, "c"), data, 0o644); err != nil {
			return err
		}
		if !connectedVia(t, localPID, old.Socket) {
			return fmt.Errorf("the local mount is not connected on %s again", old.Socket)
		}
		return nil
	})
	if got, err := os.ReadFile(filepath.Join(tcp, "c")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read after the brick restart: %d bytes, %v", len(got), err)
	}
}

// mountPID is the process serving the FUSE mount at mnt.
func mountPID(t *testing.T, mnt string) int {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) > 2 && args[len(args)-1] == mnt && strings.Contains(string(b), "\x00--foreground\x00") {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			return pid
		}
	}
	t.Fatalf("no mount process for %s", mnt)
	return 0
}

// socketInodes are the inodes of pid's open sockets.
func socketInodes(t *testing.T, pid int) map[string]bool {
	t.Helper()
	fds, err := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(fd)
		if ino, ok := strings.CutPrefix(l, "socket:["); err == nil && ok {
			out[strings.TrimSuffix(ino, "]")] = true
		}
	}
	return out
}

// connectedVia reports whether pid holds a connection accepted on the
// Unix socket sock (ss lists the accepting end with the socket's path
// and its peer's inode).
func connectedVia(t *testing.T, pid int, sock string) bool {
	t.Helper()
	out, err := exec.Command("ss", "-xn").Output()
	if err != nil {
		t.Fatalf("ss -xn: %v", err)
	}
	mine := socketInodes(t, pid)
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		// Netid State Recv-Q Send-Q Local Port Peer Port
		f := strings.Fields(sc.Text())
		if len(f) >= 8 && f[4] == sock && mine[f[7]] {
			return true
		}
	}
	return false
}

// tcpConns counts pid's TCP connections to any of ports.
func tcpConns(t *testing.T, pid int, ports map[int]bool) int {
	t.Helper()
	mine := socketInodes(t, pid)
	n := 0
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || !mine[f[9]] {
				continue
			}
			_, portHex, _ := strings.Cut(f[2], ":")
			if port, err := strconv.ParseInt(portHex, 16, 32); err == nil && ports[int(port)] {
				n++
			}
		}
	}
	return n
}
