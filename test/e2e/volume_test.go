package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/test/clustertest"
)

// brickPath strips the host from HOST:PATH.
func brickPath(b string) string { return b[strings.Index(b, ":")+1:] }

// The seed's walkthrough, with cais in place of gluster: a distributed
// volume over two servers, then a replicated one.
func TestSeedWalkthrough(t *testing.T) {
	c := clustertest.New(t)
	nodes := c.Pool(2)
	s1, s2 := nodes[0], nodes[1]
	b1, b2 := s1.Brick("brick1/brick"), s2.Brick("brick2/brick")
	if got := s1.MustCLI("volume", "create", "distvol", b1, b2); got != "volume create: distvol: success: please start the volume to access data\n" {
		t.Fatalf("create: %q", got)
	}
	if got := s1.MustCLI("volume", "start", "distvol"); got != "volume start: distvol: success\n" {
		t.Fatalf("start: %q", got)
	}
	info := s2.MustCLI("volume", "info", "distvol")
	id := regexp.MustCompile(`Volume ID: (\S+)`).FindStringSubmatch(info)
	if id == nil {
		t.Fatalf("info: %s", info)
	}
	want := " \nVolume Name: distvol\nType: Distribute\nVolume ID: " + id[1] + "\nStatus: Started\nSnapshot Count: 0\n" +
		"Number of Bricks: 2\nTransport-type: tcp\nBricks:\nBrick1: " + b1 + "\nBrick2: " + b2 + "\n" +
		"Options Reconfigured:\nstorage.fips-mode-rchecksum: on\ntransport.address-family: inet\nnfs.disable: on\n"
	if info != want {
		t.Fatalf("volume info:\n%s\nwant:\n%s", info, want)
	}
	// The bricks are plain directories marked with the volume's ID.
	for _, b := range []string{b1, b2} {
		buf := make([]byte, 16)
		if n, err := unix.Getxattr(brickPath(b), "trusted.cais.volume-id", buf); err != nil || n != 16 {
			t.Fatalf("brick %s mark: %v", b, err)
		}
	}
	b3, b4 := s1.Brick("brick3/brick"), s2.Brick("brick4/brick")
	r := s1.CLI("volume", "create", "replvol", "replica", "2", b3, b4)
	if r.Code != 0 || !strings.Contains(r.Stderr, "Replica 2 volumes are prone to split-brain") {
		t.Fatalf("create replvol: %+v", r)
	}
	s1.MustCLI("volume", "start", "replvol")
	info = s1.MustCLI("volume", "info")
	contains(t, info, "Volume Name: replvol\nType: Replicate\n")
	contains(t, info, "Number of Bricks: 1 x 2 = 2\n")
	contains(t, info, "Options Reconfigured:\ncluster.granular-entry-heal: on\nstorage.fips-mode-rchecksum: on\ntransport.address-family: inet\nnfs.disable: on\nperformance.client-io-threads: off\n")
	if strings.Index(info, "Volume Name: distvol") > strings.Index(info, "Volume Name: replvol") {
		t.Fatal("volume info all is not sorted by name")
	}
	if got := s2.MustCLI("volume", "list"); got != "distvol\nreplvol\n" {
		t.Fatalf("volume list: %q", got)
	}
}

func TestVolumeTypes(t *testing.T) {
	c := clustertest.New(t)
	nodes := c.Pool(3)
	b := func(vol string, n int) []string {
		var out []string
		for i := 0; i < n; i++ {
			out = append(out, nodes[i%3].Brick(fmt.Sprintf("%s-%d", vol, i)))
		}
		return out
	}
	cases := []struct {
		name   string
		args   []string
		bricks int
		typ    string
		count  string
	}{
		{"dist", nil, 3, "Distribute", "3"},
		{"rep3", []string{"replica", "3"}, 3, "Replicate", "1 x 3 = 3"},
		{"drep", []string{"replica", "3"}, 6, "Distributed-Replicate", "2 x 3 = 6"},
		{"arb", []string{"replica", "3", "arbiter", "1"}, 3, "Replicate", "1 x (2 + 1) = 3"},
		{"arb2", []string{"replica", "2", "arbiter", "1"}, 6, "Distributed-Replicate", "2 x (2 + 1) = 6"},
		{"str", []string{"stripe", "3"}, 3, "Stripe", "1 x 3 = 3"},
		{"dstr", []string{"stripe", "3"}, 6, "Distributed-Stripe", "2 x 3 = 6"},
		{"srep", []string{"stripe", "2", "replica", "3"}, 6, "Striped-Replicate", "1 x 2 x 3 = 6"},
		{"dsrep", []string{"stripe", "2", "replica", "3"}, 12, "Distributed-Striped-Replicate", "2 x 2 x 3 = 12"},
		{"disp", []string{"disperse", "3", "redundancy", "1"}, 3, "Disperse", "1 x (2 + 1) = 3"},
		{"ddisp", []string{"disperse", "3"}, 6, "Distributed-Disperse", "2 x (2 + 1) = 6"},
	}
	for _, tc := range cases {
		args := append([]string{"volume", "create", tc.name}, tc.args...)
		args = append(args, b(tc.name, tc.bricks)...)
		// Striped replicas over three nodes: each replica set (three
		// consecutive bricks) spans all nodes, though a stripe group of six
		// uses each node twice; no force is needed.
		nodes[0].MustCLI(args...)
		info := nodes[1].MustCLI("volume", "info", tc.name)
		contains(t, info, "Type: "+tc.typ+"\n")
		contains(t, info, "Number of Bricks: "+tc.count+"\n")
		if tc.name == "arb" {
			contains(t, info, "Brick3: "+b(tc.name, 3)[2]+" (arbiter)\n")
		}
	}
	// Every created volume starts and stops; status shows every brick
	// online with a port and a PID.
	for _, name := range []string{"drep", "dsrep"} {
		nodes[2].MustCLI("volume", "start", name)
		st := nodes[0].MustCLI("volume", "status", name)
		// Long brick names wrap at 43 columns, as in gluster.
		rows := regexp.MustCompile(`(?m)^\S*\s+(\d+)\s+0\s+Y\s+(\d+)\s*$`).FindAllStringSubmatch(st, -1)
		want := map[string]int{"drep": 6, "dsrep": 12}[name]
		if len(rows) != want {
			t.Fatalf("volume status %s: %d online rows, want %d:\n%s", name, len(rows), want, st)
		}
		nodes[1].MustCLI("volume", "stop", name)
		fails(t, nodes[0].CLI("volume", "status", name), "Volume "+name+" is not started")
	}
}

func TestVolumeCreateRefusals(t *testing.T) {
	c := clustertest.New(t)
	nodes := c.Pool(2)
	n1, n2 := nodes[0], nodes[1]
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"v1", "replica", "2", n1.Brick("a")}, "number of bricks is not a multiple of replica count"},
		{[]string{"v1", "stripe", "2", "replica", "3", n1.Brick("a"), n2.Brick("b"), n1.Brick("c")}, "number of bricks is not a multiple of stripe count x replica count"},
		{[]string{"v1", "disperse", "4", "redundancy", "2", n1.Brick("a"), n2.Brick("b"), n1.Brick("c"), n2.Brick("d")}, "redundancy must be greater than or equal to 1 and less than 2"},
		{[]string{"v1", "replica", "1", n1.Brick("a")}, "replica count should be greater than 1"},
		{[]string{"v1", "replica", "3", "arbiter", "2", n1.Brick("a"), n2.Brick("b"), n1.Brick("c")}, "For arbiter configuration"},
		{[]string{"v1", n1.Brick("a"), n1.Brick("a")}, "Found duplicate exports"},
		{[]string{"v1", "transport", "rdma", n1.Brick("a")}, "transport rdma is not supported"},
		{[]string{"v1", "server1/data"}, "Wrong brick type: server1/data"},
		{[]string{"v1", "h:relative"}, "Wrong brick type"},
		{[]string{"bad/name", n1.Brick("a")}, "Volume name should not contain"},
		{[]string{"all", n1.Brick("a")}, `"all" cannot be the name of a volume.`},
		{[]string{"v1", "nosuchhost.invalid:/data/b"}, "Host nosuchhost.invalid is not in 'Peer in Cluster' state"},
		{[]string{"v1", c.Addr(9) + ":/data/b"}, "Host " + c.Addr(9) + " is not in 'Peer in Cluster' state"},
		{[]string{"v1", "replica", "2", n1.Brick("a"), n1.Brick("b")}, "Multiple bricks of a replicate volume are present on the same server"},
		{[]string{"v1", n1.Brick("a"), n1.Brick("a/inner")}, "not available. Brick may be containing or be contained by"},
	}
	for _, tc := range cases {
		r := n1.CLI(append([]string{"volume", "create"}, tc.args...)...)
		fails(t, r, tc.want)
		if !regexp.MustCompile(`(?m)^volume create: \S+: failed: `).MatchString(r.Stderr) {
			t.Fatalf("error not in gluster form: %q", r.Stderr)
		}
	}
	// A mount point as brick needs force.
	fails(t, n1.CLI("volume", "create", "v3", n1.Addr+":"+c.BrickRoot()), "is a mount point")
	// Same-server replica sets are allowed with force.
	n1.MustCLI("volume", "create", "forced", "replica", "2", n1.Brick("f1"), n1.Brick("f2"), "force")

	// A brick on the root file system needs force; the error names the node.
	rootBrick := filepath.Join(c.Dir(), "rootfs-brick")
	r := n1.CLI("volume", "create", "v2", n2.Addr+":"+rootBrick)
	fails(t, r, "Staging failed on "+n2.Addr+". Error: The brick "+n2.Addr+":"+rootBrick+" is being created in the root partition")
	if _, err := os.Stat(rootBrick); err == nil {
		t.Fatal("a refused create left the brick directory behind")
	}
	n1.MustCLI("volume", "create", "v2", n2.Addr+":"+rootBrick, "force")

	// Bricks of existing volumes, or inside them, are refused.
	fails(t, n1.CLI("volume", "create", "v4", n1.Brick("f1")), "is already part of a volume")
	fails(t, n1.CLI("volume", "create", "v4", n1.Brick("f1/sub")), "Brick may be containing or be contained by an existing brick")
	fails(t, n1.CLI("volume", "create", "v4", n1.Addr+":"+filepath.Dir(brickPath(n1.Brick("f1")))), "Brick may be containing or be contained by an existing brick")
	fails(t, n1.CLI("volume", "create", "forced", n2.Brick("x")), "Volume forced already exists")

	// A failure on one node leaves nothing behind on the others: the
	// brick on n1 is unmarked again, so it can be used right away.
	blocker := brickPath(n2.Brick("blocked"))
	if err := os.MkdirAll(filepath.Dir(blocker), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blocker, []byte("a file, not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = n1.CLI("volume", "create", "v5", n1.Brick("ok1"), n2.Brick("blocked"))
	fails(t, r, "Staging failed on "+n2.Addr+". Error: brick path "+blocker+" exists and is not a directory")
	if _, err := os.Stat(brickPath(n1.Brick("ok1"))); err == nil {
		t.Fatal("staged brick on the other node was not rolled back")
	}
	n1.MustCLI("volume", "create", "v5", n1.Brick("ok1"), n2.Brick("ok2"))
	if got := n2.MustCLI("volume", "list"); got != "forced\nv2\nv5\n" {
		t.Fatalf("volume list: %q", got)
	}
}

func TestVolumeLifecycle(t *testing.T) {
	c := clustertest.New(t)
	nodes := c.Pool(2)
	n1, n2 := nodes[0], nodes[1]
	n1.MustCLI("volume", "create", "v", "replica", "2", n1.Brick("b1"), n2.Brick("b2"))
	fails(t, n1.CLI("volume", "stop", "v"), "volume stop: v: failed: Volume v is not in the started state")
	fails(t, n1.CLI("volume", "status", "v"), "Volume v is not started")
	n2.MustCLI("volume", "start", "v")
	fails(t, n1.CLI("volume", "start", "v"), "volume start: v: failed: Volume v already started")
	fails(t, n1.CLI("volume", "delete", "v"), "volume delete: v: failed: Volume v has been started.Volume needs to be stopped before deletion.")
	fails(t, n1.CLI("volume", "start", "nope"), "Volume nope does not exist")
	fails(t, n1.CLI("volume", "info", "nope"), "Volume nope does not exist")

	st := n1.MustCLI("volume", "status", "v")
	contains(t, st, "Status of volume: v\n")
	contains(t, st, "There are no active volume tasks")
	var status struct {
		Bricks []struct {
			Port   int  `json:"port"`
			PID    int  `json:"pid"`
			Online bool `json:"online"`
		} `json:"bricks"`
	}
	if err := json.Unmarshal([]byte(n1.MustCLI("volume", "status", "v", "--json")), &status); err != nil || len(status.Bricks) != 2 {
		t.Fatalf("status --json: %v", err)
	}
	for _, b := range status.Bricks {
		if !b.Online || b.Port < clustertest.BrickPortBase || b.PID <= 0 {
			t.Fatalf("brick status %+v", b)
		}
		if syscall.Kill(b.PID, 0) != nil {
			t.Fatalf("brick pid %d does not run", b.PID)
		}
		// Bricks run with the runtime's monitor kept awake
		// (brick.ProcessEnv) and share the node's CPUs with the bricks
		// its daemon lists in its run directory (brick.ShareCPUs).
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", b.PID))
		if err != nil {
			t.Fatal(err)
		}
		godebug := ""
		for _, kv := range strings.Split(string(env), "\x00") {
			if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
				godebug = v
			}
		}
		if !strings.Contains(","+godebug+",", ",schedtrace=") {
			t.Errorf("brick pid %d runs with GODEBUG=%q, without schedtrace", b.PID, godebug)
		}
		args, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", b.PID))
		if err != nil {
			t.Fatal(err)
		}
		argv := strings.Split(strings.TrimSuffix(string(args), "\x00"), "\x00")
		if i := slices.Index(argv, "--cpu-share-dir"); i < 0 || i+1 >= len(argv) {
			t.Errorf("brick pid %d runs without --cpu-share-dir: %q", b.PID, argv)
		} else {
			// The directory holds the brick's own state file, by its pid.
			files, _ := filepath.Glob(filepath.Join(argv[i+1], "*.json"))
			own := false
			for _, f := range files {
				data, _ := os.ReadFile(f)
				own = own || strings.Contains(string(data), fmt.Sprintf(`"pid":%d,`, b.PID))
			}
			if !own {
				t.Errorf("brick pid %d shares CPUs by %s, which does not list it (%v)", b.PID, argv[i+1], files)
			}
		}
	}
	// A brick that dies is restarted by its daemon.
	victim := status.Bricks[1].PID
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 30*time.Second, func() error {
		if err := json.Unmarshal([]byte(n1.MustCLI("volume", "status", "v", "--json")), &status); err != nil {
			return err
		}
		b := status.Bricks[1]
		if !b.Online || b.PID == victim || b.PID <= 0 {
			return fmt.Errorf("brick not back: %+v", b)
		}
		return nil
	})

	// Options: set, get, reset, and refusals.
	if got := n1.MustCLI("volume", "set", "v", "network.ping-timeout", "10"); got != "volume set: success\n" {
		t.Fatalf("set: %q", got)
	}
	n2.MustCLI("volume", "set", "v", "performance.cache-size", "256MB")
	n2.MustCLI("volume", "set", "v", "user.owner", "ops team")
	n2.MustCLI("volume", "set", "v", "cluster.quorum-type", "fixed")
	got := n2.MustCLI("volume", "get", "v", "network.ping-timeout")
	if !regexp.MustCompile(`(?m)^network\.ping-timeout\s+10\s*$`).MatchString(got) || !strings.HasPrefix(got, fmt.Sprintf("%-40s %-39s\n", "Option", "Value")) {
		t.Fatalf("get: %q", got)
	}
	contains(t, n1.MustCLI("volume", "info", "v"), "Options Reconfigured:\ncluster.quorum-type: fixed\nuser.owner: ops team\nperformance.cache-size: 256MB\nnetwork.ping-timeout: 10\n")
	all := n1.MustCLI("volume", "get", "v", "all")
	if n := strings.Count(all, "\n"); n < 50 {
		t.Fatalf("get all lists %d lines", n)
	}
	contains(t, all, "performance.cache-size")
	// Short keys complete as in gluster.
	n1.MustCLI("volume", "set", "v", "ping-timeout", "20")
	contains(t, n1.MustCLI("volume", "get", "v", "network.ping-timeout"), "20")
	for _, bad := range [][]string{
		{"network.ping-timeout", "forever", "not an integer"},
		{"network.ping-timeout", "5000", "out of range"},
		{"no.such-option", "1", "option : no.such-option does not exist"},
		{"performance.cach-size", "1MB", "Did you mean performance.cache-size?"},
		{"cluster.quorum-type", "sometimes", "use one of none, auto, fixed"},
		{"performance.write-behind", "maybe", "use on or off"},
		{"performance.cache-size", "lots", "not a size"},
		{"auth.allow", "10.0.0.0/8,bad addr", "is not an address"},
		{"cluster.stripe-block-size", "256KB", "Cannot set cluster.stripe-block-size for a non-stripe volume."},
		{"cluster.quorum-count", "3", "out of range [1 - 2]"},
	} {
		fails(t, n1.CLI("volume", "set", "v", bad[0], bad[1]), bad[2])
	}
	fails(t, n1.CLI("volume", "set", "nope", "network.ping-timeout", "1"), "Volume nope does not exist")
	fails(t, n1.CLI("volume", "get", "v", "no.such"), "Option with name: no.such does not exist")
	if got := n1.MustCLI("volume", "reset", "v", "network.ping-timeout"); got != "volume reset: success: reset volume successful\n" {
		t.Fatalf("reset: %q", got)
	}
	contains(t, n1.MustCLI("volume", "get", "v", "network.ping-timeout"), "42")
	fails(t, n1.CLI("volume", "reset", "v", "no.such"), "Option no.such does not exist")
	n1.MustCLI("volume", "reset", "v")
	info := n1.MustCLI("volume", "info", "v")
	if strings.Contains(info, "user.owner") || !strings.Contains(info, "nfs.disable: on") {
		t.Fatalf("reset all: %s", info)
	}

	n1.MustCLI("volume", "stop", "v")
	clustertest.Eventually(t, 10*time.Second, func() error {
		for _, p := range append(n1.BrickPIDs(), n2.BrickPIDs()...) {
			if syscall.Kill(p, 0) == nil {
				return fmt.Errorf("brick %d still runs", p)
			}
		}
		return nil
	})
	contains(t, n1.MustCLI("volume", "info", "v"), "Status: Stopped\n")
	n2.MustCLI("volume", "start", "v")
	n2.MustCLI("volume", "stop", "v")
	if got := n1.MustCLI("volume", "delete", "v"); got != "volume delete: v: success\n" {
		t.Fatalf("delete: %q", got)
	}
	fails(t, n1.CLI("volume", "info", "v"), "Volume v does not exist")
	r := n2.CLI("volume", "info")
	if r.Code != 0 || !strings.Contains(r.Stderr, "No volumes present") {
		t.Fatalf("info with no volumes: %+v", r)
	}
	// The bricks are free again; their data stayed.
	n1.MustCLI("volume", "create", "again", n1.Brick("b1"), n2.Brick("b2"))
}

// Operations on one volume are serialized pool-wide and applied on every
// node or none: two nodes racing to create the same volume yield one.
func TestConcurrentCreateIsAtomic(t *testing.T) {
	c := clustertest.New(t)
	nodes := c.Pool(3)
	const rounds = 5
	for round := 0; round < rounds; round++ {
		name := "race" + strconv.Itoa(round)
		var wg sync.WaitGroup
		results := make([]clustertest.Result, len(nodes))
		for i, n := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = n.CLI("volume", "create", name, n.Brick(name+"-a"), nodes[(i+1)%3].Brick(name+"-b"))
			}()
		}
		wg.Wait()
		ok := 0
		for _, r := range results {
			if r.Code == 0 {
				ok++
			} else if !strings.Contains(r.Stderr, "already exists") && !strings.Contains(r.Stderr, "already part of a volume") {
				t.Fatalf("unexpected failure: %+v", r)
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %d creates succeeded, want 1: %+v", round, ok, results)
		}
		// Every node sees the same single definition.
		var first string
		for _, n := range nodes {
			info := n.MustCLI("volume", "info", name)
			if first == "" {
				first = info
			} else if info != first {
				t.Fatalf("nodes disagree:\n%s\n%s", first, info)
			}
		}
	}
	// Concurrent option changes on one volume all land.
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodes[i%3].MustCLI("volume", "set", "race0", "user.k"+strconv.Itoa(i), strconv.Itoa(i))
		}()
	}
	wg.Wait()
	info := nodes[0].MustCLI("volume", "info", "race0")
	for i := 0; i < 6; i++ {
		contains(t, info, fmt.Sprintf("user.k%d: %d\n", i, i))
	}
}
