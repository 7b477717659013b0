package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cais-platform/cais/test/clustertest"
)

type brickState struct {
	Brick struct {
		Host string `json:"host"`
	} `json:"brick"`
	Port   int  `json:"port"`
	PID    int  `json:"pid"`
	Online bool `json:"online"`
}

func volumeStatus(t *testing.T, n *clustertest.Node, vol string) []brickState {
	t.Helper()
	var st struct {
		Bricks []brickState `json:"bricks"`
	}
	if err := json.Unmarshal([]byte(n.MustCLI("volume", "status", vol, "--json")), &st); err != nil {
		t.Fatal(err)
	}
	return st.Bricks
}

// kill -9 one daemon of three: the pool keeps answering and changing; the
// killed node comes back with its state, and its bricks never stopped.
func TestKillOneOfThree(t *testing.T) {
	c := clustertest.New(t)
	nodes := c.Pool(3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	n1.MustCLI("volume", "create", "v", "replica", "3", n1.Brick("a"), n2.Brick("b"), n3.Brick("c"))
	n1.MustCLI("volume", "start", "v")
	before := volumeStatus(t, n1, "v")
	n3.Kill()

	// The other two answer at once and can still change the state.
	contains(t, n1.MustCLI("volume", "info", "v"), "Status: Started")
	n2.MustCLI("volume", "create", "w", n1.Brick("w1"), n2.Brick("w2"))
	n1.MustCLI("volume", "set", "v", "user.during-outage", "yes")
	clustertest.Eventually(t, 20*time.Second, func() error {
		out := n1.MustCLI("peer", "status")
		if strings.Count(out, "(Disconnected)") != 1 || !strings.Contains(out, "Hostname: "+n3.Addr+"\nUuid: ") {
			return fmt.Errorf("peer status:\n%s", out)
		}
		return nil
	})
	contains(t, n2.MustCLI("pool", "list"), "Disconnected")
	// A volume on the dead node's bricks cannot be created.
	fails(t, n1.CLI("volume", "create", "x", n3.Brick("x")), "Host "+n3.Addr+" not connected")
	// The bricks of the killed daemon keep serving: bricks are not the
	// daemon's children.
	pid := before[2].PID
	if syscall.Kill(pid, 0) != nil {
		t.Fatalf("brick %d died with its daemon", pid)
	}

	n3.Restart()
	clustertest.Eventually(t, 20*time.Second, func() error {
		out := n3.MustCLI("peer", "status")
		if strings.Count(out, "(Connected)") != 2 {
			return fmt.Errorf("peer status on the restarted node:\n%s", out)
		}
		return nil
	})
	// It kept its state and saw what changed while it was away.
	contains(t, n3.MustCLI("volume", "info", "v"), "user.during-outage: yes")
	contains(t, n3.MustCLI("volume", "list"), "w\n")
	// It adopted its running brick rather than starting another.
	clustertest.Eventually(t, 20*time.Second, func() error {
		st := volumeStatus(t, n3, "v")
		if !st[2].Online || st[2].PID != pid {
			return fmt.Errorf("brick after restart: %+v (was pid %d)", st[2], pid)
		}
		return nil
	})
	// And it takes part in new operations.
	n3.MustCLI("volume", "create", "y", n3.Brick("y1"), n1.Brick("y1"))
	contains(t, n2.MustCLI("volume", "info", "y"), "Brick1: "+n3.Brick("y1"))
}

// A clean daemon restart keeps the bricks running and adopts them.
func TestDaemonRestartAdoptsBricks(t *testing.T) {
	c := clustertest.New(t)
	n1 := c.Start(clustertest.NodeOptions{})
	n1.MustCLI("volume", "create", "v", n1.Brick("a"), n1.Brick("b"))
	n1.MustCLI("volume", "start", "v")
	before := volumeStatus(t, n1, "v")
	n1.Stop()
	for _, b := range before {
		if syscall.Kill(b.PID, 0) != nil {
			t.Fatalf("brick %d stopped with the daemon", b.PID)
		}
	}
	n1.Restart()
	clustertest.Eventually(t, 20*time.Second, func() error {
		after := volumeStatus(t, n1, "v")
		for i := range after {
			if !after[i].Online || after[i].PID != before[i].PID || after[i].Port != before[i].Port {
				return fmt.Errorf("brick %d: %+v, was %+v", i, after[i], before[i])
			}
		}
		return nil
	})
	// Stopping the volume stops adopted bricks too.
	n1.MustCLI("volume", "stop", "v")
	for _, b := range before {
		if syscall.Kill(b.PID, 0) == nil {
			t.Fatalf("adopted brick %d still runs after volume stop", b.PID)
		}
	}
}

// The pool's state in an external etcd cluster (Debian's etcd-server).
func TestExternalEtcd(t *testing.T) {
	etcdBin, err := exec.LookPath("etcd")
	if err != nil {
		if os.Getenv("CI") != "" || os.Getenv("CAIS_REQUIRE_ALL") != "" {
			t.Fatal("etcd (Debian package etcd-server) is not installed; 'make deps' installs it")
		}
		t.Skip("etcd not installed (apt-get install etcd-server)")
	}
	c := clustertest.New(t)
	addr := c.Addr(200)
	clientURL := "http://" + net.JoinHostPort(addr, "24479")
	etcd := exec.Command(etcdBin, "--name", "ext", "--data-dir", filepath.Join(c.Dir(), "ext-etcd"),
		"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
		"--listen-peer-urls", "http://"+net.JoinHostPort(addr, "24480"),
		"--initial-advertise-peer-urls", "http://"+net.JoinHostPort(addr, "24480"),
		"--initial-cluster", "ext=http://"+net.JoinHostPort(addr, "24480"))
	logf, _ := os.Create(filepath.Join(c.Dir(), "ext-etcd.log"))
	etcd.Stdout, etcd.Stderr = logf, logf
	etcd.Env = append(os.Environ(), "ETCD_UNSUPPORTED_ARCH=")
	if err := etcd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { etcd.Process.Kill(); etcd.Wait() })
	clustertest.Eventually(t, 20*time.Second, func() error {
		conn, err := net.Dial("tcp", net.JoinHostPort(addr, "24479"))
		if err != nil {
			return err
		}
		return conn.Close()
	})
	ext := []string{"--etcd-endpoints", clientURL, "--etcd-prefix", "/pool-a/"}
	n1 := c.Start(clustertest.NodeOptions{Args: ext})
	token := strings.TrimSpace(n1.MustCLI("pool", "token"))
	// A node that would use embedded etcd cannot join an external-etcd pool.
	odd := c.Start(clustertest.NodeOptions{JoinToken: token, Waiting: true})
	fails(t, n1.CLI("peer", "probe", odd.Addr), "external etcd")
	n2 := c.Start(clustertest.NodeOptions{JoinToken: token, Waiting: true, Args: ext})
	n1.MustCLI("peer", "probe", n2.Addr)
	n2.WaitReady(false)
	n2.MustCLI("volume", "create", "v", n1.Brick("a"), n2.Brick("b"))
	n2.MustCLI("volume", "start", "v")
	for _, b := range volumeStatus(t, n1, "v") {
		if !b.Online {
			t.Fatalf("brick offline: %+v", b)
		}
	}
	var peers []struct {
		EtcdRole string `json:"etcdRole"`
	}
	if err := json.Unmarshal([]byte(n1.MustCLI("pool", "list", "--json")), &peers); err != nil || len(peers) != 2 || peers[0].EtcdRole != "external" {
		t.Fatalf("pool list: %v %+v", err, peers)
	}
	// The state really is in that etcd, under the prefix.
	if ctl, err := exec.LookPath("etcdctl"); err == nil {
		cmd := exec.Command(ctl, "--endpoints", clientURL, "get", "--prefix", "--keys-only", "/pool-a/volumes/")
		cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "/pool-a/volumes/v") {
			t.Fatalf("etcdctl: %v %s", err, out)
		}
	}
	// No node of its own etcd was started.
	for _, n := range []*clustertest.Node{n1, n2} {
		if _, err := os.Stat(filepath.Join(n.DataDir, "etcd")); err == nil {
			t.Fatalf("%s started an embedded etcd", n.Addr)
		}
	}
	// A second pool can share the etcd cluster under another prefix, and
	// a node without a token cannot take over the first pool's prefix.
	intruder := c.Start(clustertest.NodeOptions{Args: []string{"--etcd-endpoints", clientURL, "--etcd-prefix", "/pool-b/"}})
	contains(t, intruder.MustCLI("pool", "list"), "localhost")
	cmd := exec.Command(filepath.Join(clustertest.Bin(t), "caisd"), "--addr", c.Addr(201), "--data-dir", filepath.Join(c.Dir(), "intruder"),
		"--port", strconv.Itoa(clustertest.APIPort), "--etcd-endpoints", clientURL, "--etcd-prefix", "/pool-a/")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "already holds a cais pool") {
		t.Fatalf("caisd without a token on a taken prefix: %v\n%s", err, out)
	}
	contains(t, n1.MustCLI("peer", "status"), "Number of Peers: 1\n")
}

// A dead node can be detached with force; the pool then has no dead etcd
// member left, so it accepts new nodes again.
func TestDetachDeadPeerWithForce(t *testing.T) {
	c := clustertest.New(t)
	nodes := c.Pool(3)
	n1, n3 := nodes[0], nodes[2]
	n3.Kill()
	clustertest.Eventually(t, 20*time.Second, func() error {
		if out := n1.MustCLI("peer", "status"); !strings.Contains(out, "(Disconnected)") {
			return fmt.Errorf("peer status:\n%s", out)
		}
		return nil
	})
	fails(t, n1.CLI("peer", "detach", n3.Addr), "is not connected; use 'peer detach "+n3.Addr+" force'")
	n1.MustCLI("peer", "detach", n3.Addr, "force")
	contains(t, n1.MustCLI("peer", "status"), "Number of Peers: 1\n")
	token := strings.TrimSpace(n1.MustCLI("pool", "token"))
	n4 := c.Start(clustertest.NodeOptions{JoinToken: token, Waiting: true})
	n1.MustCLI("peer", "probe", n4.Addr)
	n4.WaitReady(false)
	contains(t, n4.MustCLI("peer", "status"), "Number of Peers: 2\n")
}

// volume status all skips stopped volumes with gluster's message.
func TestVolumeStatusAll(t *testing.T) {
	c := clustertest.New(t)
	n1 := c.Start(clustertest.NodeOptions{})
	r := n1.CLI("volume", "status")
	if r.Code != 0 || !strings.Contains(r.Stderr, "No volumes present") {
		t.Fatalf("status with no volumes: %+v", r)
	}
	n1.MustCLI("volume", "create", "a", n1.Brick("a"))
	n1.MustCLI("volume", "create", "b", n1.Brick("b"))
	n1.MustCLI("volume", "start", "b")
	r = n1.CLI("volume", "status", "all")
	if r.Code != 0 || !strings.Contains(r.Stderr, "Volume a is not started") || !strings.Contains(r.Stdout, "Status of volume: b\n") {
		t.Fatalf("status all: %+v", r)
	}
	var all []struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal([]byte(n1.MustCLI("volume", "status", "--json")), &all); err != nil || len(all) != 1 || all[0].Name != "b" {
		t.Fatalf("status --json: %v %+v", err, all)
	}
}

// A node's address is part of its identity: restarting it on another one
// is refused with the fix in the message.
func TestRestartOnOtherAddressRefused(t *testing.T) {
	c := clustertest.New(t)
	n1 := c.Start(clustertest.NodeOptions{})
	n1.Stop()
	cmd := exec.Command(filepath.Join(clustertest.Bin(t), "caisd"), "--addr", c.Addr(50), "--data-dir", n1.DataDir,
		"--port", strconv.Itoa(clustertest.APIPort), "--etcd-client-port", strconv.Itoa(clustertest.EtcdClientPort),
		"--etcd-peer-port", strconv.Itoa(clustertest.EtcdPeerPort))
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "start caisd with --addr "+n1.Addr) {
		t.Fatalf("restart on another address: %v\n%s", err, out)
	}
	n1.Restart()
	contains(t, n1.MustCLI("pool", "list"), "localhost")
}

// After an upgrade (caisd from another binary), running bricks are
// replaced rather than adopted, so the data path runs the new code.
func TestUpgradeReplacesBricks(t *testing.T) {
	c := clustertest.New(t)
	n1 := c.Start(clustertest.NodeOptions{})
	n1.MustCLI("volume", "create", "v", n1.Brick("a"))
	n1.MustCLI("volume", "start", "v")
	before := volumeStatus(t, n1, "v")
	n1.Stop()
	newBin := filepath.Join(c.Dir(), "newbin")
	if err := os.MkdirAll(newBin, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(clustertest.Bin(t), "caisd"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(newBin, "caisd"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	n1.RestartWith(newBin)
	clustertest.Eventually(t, 30*time.Second, func() error {
		after := volumeStatus(t, n1, "v")
		if !after[0].Online || after[0].PID == before[0].PID {
			return fmt.Errorf("brick %+v, was pid %d", after[0], before[0].PID)
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", after[0].PID))
		if err != nil || exe != filepath.Join(newBin, "caisd") {
			return fmt.Errorf("brick runs %q: %v", exe, err)
		}
		return nil
	})
	if syscall.Kill(before[0].PID, 0) == nil {
		t.Fatalf("old brick %d still runs", before[0].PID)
	}
}

// A pool of two voters stops when one is down (etcd needs a majority);
// reads then fail with an explanation instead of hanging.
func TestLostQuorumIsReported(t *testing.T) {
	c := clustertest.New(t)
	nodes := c.Pool(2)
	nodes[1].Kill()
	start := time.Now()
	r := nodes[0].CLI("volume", "info")
	if r.Code == 0 || !strings.Contains(r.Stderr, "is a majority of its voting etcd members up?") {
		t.Fatalf("volume info without quorum: %+v", r)
	}
	if d := time.Since(start); d > 40*time.Second {
		t.Fatalf("took %v to fail", d)
	}
	nodes[1].Restart()
	nodes[0].MustCLI("volume", "info")
}
