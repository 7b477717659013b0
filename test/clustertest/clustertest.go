// Package clustertest runs real cais pools for tests: N caisd processes on
// their own loopback addresses (127.X.Y.1, .2, …) and data directories,
// bricks on a tmpfs of the test's own, driven through the real cais CLI.
//
//	c := clustertest.New(t)
//	n1, n2 := c.Pool(2)            // n2 probed into n1's pool
//	n1.MustCLI("volume", "create", "v", n1.Brick("b1"), n2.Brick("b2"))
//
// Binaries come from $CAIS_BIN (make test sets it) or are built once per
// test process.
package clustertest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cais-platform/cais/network"
)

// Ports every node uses on its own address; away from GlusterFS's 24007
// and 49152 and up, so both can run side by side.
const (
	APIPort        = 24100
	EtcdClientPort = 24379
	EtcdPeerPort   = 24380
	BrickPortBase  = 50152
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
	subnet    atomic.Int32
)

// Bin returns the directory holding caisd and cais.
func Bin(tb testing.TB) string {
	tb.Helper()
	if d := os.Getenv("CAIS_BIN"); d != "" {
		return d
	}
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "cais-bin")
		if buildErr != nil {
			return
		}
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		cmd := exec.Command("go", "build", "-o", binDir+"/", "./cmd/caisd", "./cmd/cais")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return binDir
}

// Cluster is a set of nodes of one test.
type Cluster struct {
	tb     testing.TB
	bin    string
	dir    string
	prefix string // "127.X.Y."
	mu     sync.Mutex
	nodes  []*Node
	bricks string
}

// New prepares an empty cluster; everything it starts is stopped and
// removed when the test ends.
func New(tb testing.TB) *Cluster {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("cais pools need root (bricks use trusted.* extended attributes)")
	}
	dir, err := os.MkdirTemp("", "cais")
	if err != nil {
		tb.Fatal(err)
	}
	n := subnet.Add(1)
	c := &Cluster{
		tb:     tb,
		bin:    Bin(tb),
		dir:    dir,
		prefix: fmt.Sprintf("127.%d.%d.", 100+os.Getpid()%100, n%250+1),
		bricks: filepath.Join(dir, "bricks"),
	}
	if err := os.MkdirAll(c.bricks, 0o755); err != nil {
		tb.Fatal(err)
	}
	// Bricks may not sit on the root file system without force: give them
	// a file system of their own, as an administrator would.
	if err := syscall.Mount("tmpfs", c.bricks, "tmpfs", 0, "size=256m"); err != nil {
		tb.Fatalf("mount tmpfs for bricks: %v", err)
	}
	tb.Cleanup(c.cleanup)
	return c
}

// Addr returns the address of the i-th node (1-based).
func (c *Cluster) Addr(i int) string { return c.prefix + strconv.Itoa(i) }

// Dir is the cluster's scratch directory (on the root file system).
func (c *Cluster) Dir() string { return c.dir }

// BrickRoot is the tmpfs that holds bricks.
func (c *Cluster) BrickRoot() string { return c.bricks }

// NodeOptions tune one node.
type NodeOptions struct {
	JoinToken string
	Args      []string
	// Wait for "waiting" instead of "member" before returning.
	Waiting bool
}

// Node is one caisd.
type Node struct {
	c       *Cluster
	Index   int
	Addr    string
	DataDir string
	Socket  string
	// DockerSocket is the node's Docker Engine API socket.
	DockerSocket string
	args         []string
	mu           sync.Mutex
	cmd          *exec.Cmd
	logPath      string
	binDir       string // overrides the cluster's binaries (an upgrade)
}

// Start starts one more node.
func (c *Cluster) Start(opts NodeOptions) *Node {
	c.tb.Helper()
	c.mu.Lock()
	i := len(c.nodes) + 1
	n := &Node{c: c, Index: i, Addr: c.Addr(i), DataDir: filepath.Join(c.dir, "n"+strconv.Itoa(i))}
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	n.Socket = filepath.Join(n.DataDir, "caisd.sock")
	n.DockerSocket = filepath.Join(n.DataDir, "docker.sock")
	n.logPath = filepath.Join(c.dir, fmt.Sprintf("caisd-%d.log", i))
	n.args = []string{"--addr", n.Addr, "--data-dir", n.DataDir, "--port", strconv.Itoa(APIPort),
		"--etcd-client-port", strconv.Itoa(EtcdClientPort), "--etcd-peer-port", strconv.Itoa(EtcdPeerPort),
		"--brick-port-base", strconv.Itoa(BrickPortBase), "--log-level", "debug",
		"--docker-socket", n.DockerSocket, "--bridge", bridgeName(n.Addr)}
	if opts.JoinToken != "" {
		n.args = append(n.args, "--join-token", opts.JoinToken)
	}
	n.args = append(n.args, opts.Args...)
	n.start()
	n.WaitReady(opts.Waiting)
	return n
}

// bridgeName is the node's default bridge: its own, so that nodes of
// tests running at once on the host do not tear down each other's.
func bridgeName(addr string) string {
	ip := net.ParseIP(addr).To4()
	if ip == nil {
		return "cais0"
	}
	return fmt.Sprintf("cb%02x%02x%02x", ip[1], ip[2], ip[3])
}

func (n *Node) start() {
	n.c.tb.Helper()
	lf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		n.c.tb.Fatal(err)
	}
	bin := n.c.bin
	if n.binDir != "" {
		bin = n.binDir
	}
	cmd := exec.Command(filepath.Join(bin, "caisd"), n.args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		n.c.tb.Fatal(err)
	}
	lf.Close()
	n.mu.Lock()
	n.cmd = cmd
	n.mu.Unlock()
	go cmd.Wait() //nolint:errcheck // reaped; the state is read through the CLI
}

// WaitReady waits until the node answers as a member (or as waiting).
func (n *Node) WaitReady(waiting bool) {
	n.c.tb.Helper()
	want := "state: member"
	if waiting {
		want = "state: waiting"
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		r := n.CLI("version")
		if r.Code == 0 && strings.Contains(r.Stdout, want) {
			return
		}
		if n.Exited() {
			n.c.tb.Fatalf("caisd %s exited:\n%s", n.Addr, n.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	n.c.tb.Fatalf("caisd %s not ready (%s) after 60s:\n%s", n.Addr, want, n.Log())
}

// Exited reports whether the process has ended.
func (n *Node) Exited() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd == nil || syscall.Kill(n.cmd.Process.Pid, 0) != nil || isZombie(n.cmd.Process.Pid)
}

func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && len(b) > i+2 && b[i+2] == 'Z'
}

// Log returns the daemon's log.
func (n *Node) Log() string {
	b, _ := os.ReadFile(n.logPath)
	return string(b)
}

// Pool starts n nodes and probes them all into the first one's pool.
func (c *Cluster) Pool(count int) []*Node {
	c.tb.Helper()
	first := c.Start(NodeOptions{})
	nodes := []*Node{first}
	token := strings.TrimSpace(first.MustCLI("pool", "token"))
	for i := 1; i < count; i++ {
		n := c.Start(NodeOptions{JoinToken: token, Waiting: true})
		first.MustCLI("peer", "probe", n.Addr)
		n.WaitReady(false)
		nodes = append(nodes, n)
	}
	return nodes
}

// Result is a finished CLI command.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// CLI runs cais against this node's socket.
func (n *Node) CLI(args ...string) Result {
	return n.c.Run(append([]string{"--socket", n.Socket}, args...)...)
}

// Run runs cais with exactly these arguments.
func (c *Cluster) Run(args ...string) Result {
	cmd := exec.Command(filepath.Join(c.bin, "cais"), args...)
	cmd.Env = append(os.Environ(), "CAIS_SOCKET=", "CAIS_SERVER=")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	return Result{Stdout: out.String(), Stderr: errOut.String(), Code: code}
}

// MustCLI runs cais and fails the test unless it succeeds.
func (n *Node) MustCLI(args ...string) string {
	n.c.tb.Helper()
	r := n.CLI(args...)
	if r.Code != 0 {
		n.c.tb.Fatalf("cais %s on %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), n.Addr, r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// Brick returns HOST:PATH for a brick directory on this node's tmpfs.
func (n *Node) Brick(name string) string {
	return n.Addr + ":" + filepath.Join(n.c.bricks, fmt.Sprintf("n%d", n.Index), name)
}

// Kill kills the daemon with SIGKILL (its bricks keep running).
func (n *Node) Kill() {
	n.signal(syscall.SIGKILL)
}

// Send sends sig to the daemon and returns at once (SIGSTOP and SIGCONT
// pause and resume it; its bricks run on).
func (n *Node) Send(sig syscall.Signal) {
	n.mu.Lock()
	cmd := n.cmd
	n.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Signal(sig)
	}
}

// Stop stops the daemon with SIGTERM and waits for it.
func (n *Node) Stop() {
	n.signal(syscall.SIGTERM)
}

func (n *Node) signal(sig syscall.Signal) {
	n.mu.Lock()
	cmd := n.cmd
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	if n.waitExit(15 * time.Second) {
		return
	}
	// A caisd that outlives its signal this long is a bug.
	n.c.tb.Errorf("caisd %s still running 15s after %v; killing it", n.Addr, sig)
	_ = cmd.Process.Kill()
	n.waitExit(5 * time.Second)
}

// waitExit waits up to d for the daemon to exit and reports whether it did.
func (n *Node) waitExit(d time.Duration) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if n.Exited() {
			return true
		}
	}
	return n.Exited()
}

// Restart starts the daemon again with the same flags.
func (n *Node) Restart() {
	n.c.tb.Helper()
	n.start()
	n.WaitReady(false)
}

// StartAgain starts a stopped daemon without waiting for it to be ready.
func (n *Node) StartAgain() {
	n.c.tb.Helper()
	n.start()
}

// RestartWithArgs stops the daemon and starts it again with more flags,
// for what needs the pool first (a registry whose directory is on a
// mounted volume).
func (n *Node) RestartWithArgs(extra ...string) {
	n.c.tb.Helper()
	n.Stop()
	n.args = append(n.args, extra...)
	n.start()
	n.WaitReady(false)
}

// RestartWith starts the daemon again from the caisd in dir, as after an
// upgrade.
func (n *Node) RestartWith(dir string) {
	n.c.tb.Helper()
	n.binDir = dir
	n.Restart()
}

// BrickPIDs returns the PIDs of the brick processes this node ran.
func (n *Node) BrickPIDs() []int {
	files, _ := filepath.Glob(filepath.Join(n.DataDir, "run", "bricks", "*.json"))
	var pids []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		s := string(b)
		if i := strings.Index(s, `"pid":`); i >= 0 {
			rest := s[i+6:]
			j := strings.IndexAny(rest, ",}")
			if p, err := strconv.Atoi(rest[:j]); err == nil {
				pids = append(pids, p)
			}
		}
	}
	return pids
}

// Eventually retries f until it returns nil or the timeout passes.
func Eventually(tb testing.TB, timeout time.Duration, f func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	tb.Fatalf("condition not met after %v: %v", timeout, err)
}

func (c *Cluster) cleanup() {
	c.mu.Lock()
	nodes := c.nodes
	c.mu.Unlock()
	for _, n := range nodes {
		n.signal(syscall.SIGKILL)
		for _, pid := range n.BrickPIDs() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	for _, n := range nodes {
		teardownNetworks(n.DataDir)
	}
	for _, n := range nodes {
		// Binaries built with -race report here.
		if log := n.Log(); strings.Contains(log, "WARNING: DATA RACE") || strings.Contains(log, "panic:") {
			c.tb.Errorf("caisd %s logged a data race or a panic", n.Addr)
		}
	}
	if c.tb.Failed() {
		for _, n := range nodes {
			c.tb.Logf("--- log of caisd %s ---\n%s", n.Addr, tail(n.Log(), 60))
		}
	}
	for i := 0; i < 50; i++ {
		if err := syscall.Unmount(c.bricks, 0); err == nil || err == syscall.EINVAL {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	os.RemoveAll(c.dir)
}

// teardownNetworks takes down the container networks a killed caisd left
// (caisd takes them down itself when it stops cleanly), so that bridges,
// veths, namespaces and iptables rules do not pile up on the host.
func teardownNetworks(dataDir string) {
	dir := filepath.Join(dataDir, "engine", "network")
	if _, err := os.Stat(filepath.Join(dir, "networks.json")); err != nil {
		return
	}
	if m, err := network.Open(network.Options{Dir: dir}); err == nil {
		m.TearDown()
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
