package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cais-platform/cais/test/clustertest"
)

func needFuse(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
}

// The second half of the seed's walkthrough: on a replica 2 volume the ten
// files appear on both bricks, byte-identical.
func TestSeedWalkthroughReplicated(t *testing.T) {
	needFuse(t)
	c := clustertest.New(t)
	nodes := c.Pool(2)
	s1, s2 := nodes[0], nodes[1]
	b3, b4 := s1.Brick("brick3/brick"), s2.Brick("brick4/brick")
	s1.MustCLI("volume", "create", "replvol", "replica", "2", b3, b4)
	s1.MustCLI("volume", "start", "replvol")
	mnt := mountVolume(t, c, s1, "replvol")
	out, err := exec.Command("bash", "-c", "touch "+mnt+"/distvol-file{1..10}.txt; seq 1 20000 > "+mnt+"/numbers.txt").CombinedOutput()
	if err != nil {
		t.Fatalf("touch: %v %s", err, out)
	}
	on3, on4 := listBrick(t, brickPath(b3)), listBrick(t, brickPath(b4))
	t.Logf("server1 brick3: %v", on3)
	t.Logf("server2 brick4: %v", on4)
	if len(on3) != 11 || strings.Join(on3, ",") != strings.Join(on4, ",") {
		t.Fatalf("bricks differ: %v / %v", on3, on4)
	}
	for _, n := range on3 {
		a, err1 := os.ReadFile(filepath.Join(brickPath(b3), n))
		b, err2 := os.ReadFile(filepath.Join(brickPath(b4), n))
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Fatalf("%s differs between the bricks (%v %v)", n, err1, err2)
		}
	}
	if info := s1.MustCLI("volume", "heal", "replvol", "info"); strings.Count(info, "Number of entries: 0") != 2 {
		t.Fatalf("heal info of a healthy volume:\n%s", info)
	}
}

// writeLoad writes files of 256 KiB in 64 KiB writes until stop closes,
// rewriting 40 names in turn (the bricks are a small tmpfs), and records
// each finished file's checksum; it returns the first error it sees.
func writeLoad(dir string, stop <-chan struct{}, sums map[string][32]byte, files *int, mu *sync.Mutex) error {
	buf := make([]byte, 64<<10)
	for i := 0; ; i++ {
		select {
		case <-stop:
			return nil
		default:
		}
		name := fmt.Sprintf("load-%02d", i%40)
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
		h := sha256.New()
		for j := 0; j < 4; j++ {
			rand.Read(buf)
			if _, err := f.Write(buf); err != nil {
				f.Close()
				return fmt.Errorf("write %s: %w", name, err)
			}
			h.Write(buf)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("close %s: %w", name, err)
		}
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		mu.Lock()
		sums[name] = sum
		*files++
		mu.Unlock()
	}
}

// kill -9 of a brick, then of a whole node, under a write load on a
// replica 3 volume: the writer sees no error, and once the bricks are
// back and healed every brick holds every acknowledged byte.
// copiesOf describes name's copies on every brick, for a failure: size,
// checksum and changelogs.
func copiesOf(bricks []string, name string) string {
	var out strings.Builder
	for _, b := range bricks {
		p := filepath.Join(brickPath(b), name)
		data, err := os.ReadFile(p)
		xattrs, _ := exec.Command("getfattr", "-d", "-m", "trusted", "-e", "hex", p).CombinedOutput()
		fmt.Fprintf(&out, "%s: %d bytes, sha256 %x, err %v\n%s", b, len(data), sha256.Sum256(data), err, xattrs)
	}
	return out.String()
}

func TestReplicaFaultsUnderLoad(t *testing.T) {
	needFuse(t)
	c := clustertest.New(t)
	nodes := c.Pool(3)
	var bricks []string
	for i, n := range nodes {
		bricks = append(bricks, n.Brick(fmt.Sprintf("r%d", i)))
	}
	n1 := nodes[0]
	n1.MustCLI(append([]string{"volume", "create", "r3", "replica", "3"}, bricks...)...)
	n1.MustCLI("volume", "start", "r3")
	mnt := mountVolume(t, c, n1, "r3")

	sums := map[string][32]byte{}
	var mu sync.Mutex
	stop := make(chan struct{})
	done := make(chan error, 1)
	var files int
	go func() { done <- writeLoad(mnt, stop, sums, &files, &mu) }()
	count := func() int { mu.Lock(); defer mu.Unlock(); return files }
	var werr error
	waitFiles := func(n int) {
		t.Helper()
		clustertest.Eventually(t, 60*time.Second, func() error {
			select {
			case werr = <-done:
				t.Fatalf("the writer stopped: %v", werr)
			default:
			}
			if count() < n {
				return fmt.Errorf("%d files written", count())
			}
			return nil
		})
	}
	waitFiles(3)
	// A brick dies: caisd restarts it.
	pids := nodes[2].BrickPIDs()
	if len(pids) != 1 {
		t.Fatalf("node 3 brick pids %v", pids)
	}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed brick pid %d after %d files", pids[0], count())
	waitFiles(count() + 5)
	// Two bricks down at once is below quorum: let the restarted brick be
	// back (and the mount see it, within its probe interval) first.
	clustertest.Eventually(t, 30*time.Second, func() error {
		st := n1.MustCLI("volume", "status", "r3")
		if strings.Count(st, " Y ") != 3 {
			return fmt.Errorf("not every brick online:\n%s", st)
		}
		return nil
	})
	time.Sleep(3 * time.Second)
	// The names made while the brick was down are back on it (entry heal)
	// before the next fault: a node dying while another brick still lacks
	// a file would leave that file below quorum, a double fault.
	clustertest.Eventually(t, 30*time.Second, func() error {
		want, got := listBrick(t, brickPath(bricks[0])), listBrick(t, brickPath(bricks[2]))
		if strings.Join(want, ",") != strings.Join(got, ",") {
			return fmt.Errorf("brick 3 has %d names, brick 1 %d", len(got), len(want))
		}
		return nil
	})
	// A whole node dies (its daemon and its brick): the very node the
	// volume was mounted through. The mount talks to the bricks left.
	pids = n1.BrickPIDs()
	n1.Kill()
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	t.Logf("killed node 1, the mount's (caisd and brick %v), after %d files", pids, count())
	waitFiles(count() + 5)
	n1.Restart()
	waitFiles(count() + 3)
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("the writer saw an error: %v", err)
	}
	written := count()
	t.Logf("%d files of 256 KiB written through the faults", written)

	n1.MustCLI("volume", "heal", "r3")
	clustertest.Eventually(t, 90*time.Second, func() error {
		info := n1.CLI("volume", "heal", "r3", "info")
		if info.Code != 0 || strings.Count(info.Stdout, "Number of entries: 0") != 3 {
			var xattrs []byte
			for _, b := range bricks {
				out, _ := exec.Command("getfattr", "-R", "-d", "-m", "trusted.cais.afr", "-e", "hex", brickPath(b)).CombinedOutput()
				xattrs = append(xattrs, out...)
			}
			return fmt.Errorf("heal info:\n%s%s\nchangelogs:\n%s", info.Stdout, info.Stderr, xattrs)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	for _, b := range bricks {
		for name, want := range sums {
			got, err := os.ReadFile(filepath.Join(brickPath(b), name))
			if err != nil {
				t.Fatalf("%s on %s: %v", name, b, err)
			}
			if sha256.Sum256(got) != want {
				t.Fatalf("%s on %s: checksum differs after heal (%d bytes)\n%s", name, b, len(got), copiesOf(bricks, name))
			}
		}
	}
	stats := n1.MustCLI("volume", "heal", "r3", "statistics")
	t.Logf("heal statistics:\n%s", stats)
	if !strings.Contains(stats, "No. of entries healed") {
		t.Fatalf("no node reports a heal:\n%s", stats)
	}
}

// killBrick kills a node's brick while its daemon is paused, so nothing
// restarts it until the daemon goes on.
func killBrick(t *testing.T, n *clustertest.Node) {
	t.Helper()
	n.Send(syscall.SIGSTOP)
	for _, p := range n.BrickPIDs() {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
}

// Split-brain made on purpose (quorum off, each brick of a pair down in
// turn while the other takes a write): reading the file fails with EIO,
// heal info says so, and the CLI resolves it from the bigger copy.
func TestSplitBrainThroughCLI(t *testing.T) {
	needFuse(t)
	c := clustertest.New(t)
	nodes := c.Pool(2)
	n1, n2 := nodes[0], nodes[1]
	b1, b2 := n1.Brick("sb1"), n2.Brick("sb2")
	n1.MustCLI("volume", "create", "sb", "replica", "2", b1, b2)
	n1.MustCLI("volume", "set", "sb", "cluster.quorum-type", "none")
	n1.MustCLI("volume", "set", "sb", "cluster.self-heal-daemon", "off")
	n1.MustCLI("volume", "start", "sb")
	mnt := mountVolume(t, c, n1, "sb")
	f := filepath.Join(mnt, "f")
	if err := os.WriteFile(f, []byte("start"), 0o644); err != nil {
		t.Fatal(err)
	}
	allOnline := func(n *clustertest.Node) {
		clustertest.Eventually(t, 30*time.Second, func() error {
			st := n.CLI("volume", "status", "sb")
			if strings.Count(st.Stdout, " Y ") != 2 {
				return fmt.Errorf("bricks not online:\n%s%s", st.Stdout, st.Stderr)
			}
			return nil
		})
		time.Sleep(2500 * time.Millisecond) // the mount's probe sees it
	}
	writeF := func(s string) {
		t.Helper()
		if err := os.WriteFile(f, []byte(s), 0o644); err != nil {
			t.Fatalf("write %q: %v", s, err)
		}
	}
	killBrick(t, n2)
	writeF("the bigger copy, written on brick 1 alone")
	n2.Send(syscall.SIGCONT)
	allOnline(n1)
	killBrick(t, n1)
	writeF("brick 2 alone")
	n1.Send(syscall.SIGCONT)
	allOnline(n1)

	if _, err := os.ReadFile(f); err == nil || !strings.Contains(err.Error(), "input/output error") {
		t.Fatalf("read of a file in split-brain: %v, want EIO", err)
	}
	info := n1.MustCLI("volume", "heal", "sb", "info", "split-brain")
	if strings.Count(info, "/f\n") != 2 || !strings.Contains(info, "Number of entries in split-brain: 1") {
		t.Fatalf("heal info split-brain:\n%s", info)
	}
	if out := n1.MustCLI("volume", "heal", "sb", "split-brain", "bigger-file", "/f"); out != "Healed /f.\n" {
		t.Fatalf("resolution said %q", out)
	}
	got, err := os.ReadFile(f)
	if err != nil || string(got) != "the bigger copy, written on brick 1 alone" {
		t.Fatalf("after resolution: %q %v", got, err)
	}
	for _, b := range []string{b1, b2} {
		if on, _ := os.ReadFile(filepath.Join(brickPath(b), "f")); !bytes.Equal(on, got) {
			t.Fatalf("brick %s holds %q", b, on)
		}
	}
	res := n1.CLI("volume", "heal", "sb", "split-brain", "bigger-file", "/f")
	if res.Code == 0 || !strings.Contains(res.Stderr, "File not in split-brain") {
		t.Fatalf("second resolution: %d %q", res.Code, res.Stderr)
	}
}

// A client killed in the middle of writes leaves nothing that blocks the
// file: its locks go with its connections, another client writes the file
// at once, and the dirty marks it left are healed.
func TestClientKilledMidWrite(t *testing.T) {
	needFuse(t)
	c := clustertest.New(t)
	nodes := c.Pool(2)
	n1, n2 := nodes[0], nodes[1]
	b1, b2 := n1.Brick("k1"), n2.Brick("k2")
	n1.MustCLI("volume", "create", "kv", "replica", "2", b1, b2)
	n1.MustCLI("volume", "start", "kv")
	mnt := mountVolume(t, c, n1, "kv")
	// A writer in another process keeps the file open and writing.
	w := exec.Command("bash", "-c", "exec 3>"+filepath.Join(mnt, "f")+"; while :; do head -c 65536 /dev/urandom >&3; done")
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	out, _ := exec.Command("pgrep", "-f", "mount.*"+mnt).Output()
	pids := strings.Fields(string(out))
	if len(pids) == 0 {
		t.Fatal("no mount process found")
	}
	for _, p := range pids {
		_ = exec.Command("kill", "-9", p).Run()
	}
	_ = w.Process.Kill()
	_ = w.Wait()
	_ = syscall.Unmount(mnt, syscall.MNT_DETACH)

	mnt2 := mountVolume(t, c, n2, "kv")
	start := time.Now()
	if err := os.WriteFile(filepath.Join(mnt2, "f"), []byte("after the crash"), 0o644); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("writing the file after a client died took %v", d)
	}
	n1.MustCLI("volume", "heal", "kv")
	clustertest.Eventually(t, 30*time.Second, func() error {
		info := n1.CLI("volume", "heal", "kv", "info")
		if strings.Count(info.Stdout, "Number of entries: 0") != 2 {
			return fmt.Errorf("heal info:\n%s%s", info.Stdout, info.Stderr)
		}
		return nil
	})
	for _, b := range []string{b1, b2} {
		if got, _ := os.ReadFile(filepath.Join(brickPath(b), "f")); string(got) != "after the crash" {
			t.Fatalf("brick %s holds %d bytes", b, len(got))
		}
	}
}

// Distributed-Replicate (2 x 2): each file lives on both bricks of the one
// set its name hashes to; directories exist on all four.
func TestDistributedReplicateMount(t *testing.T) {
	needFuse(t)
	c := clustertest.New(t)
	nodes := c.Pool(2)
	n1, n2 := nodes[0], nodes[1]
	bricks := []string{n1.Brick("dr1"), n2.Brick("dr2"), n1.Brick("dr3"), n2.Brick("dr4")}
	n1.MustCLI(append([]string{"volume", "create", "dr", "replica", "2"}, bricks...)...)
	n1.MustCLI("volume", "start", "dr")
	if info := n1.MustCLI("volume", "info", "dr"); !strings.Contains(info, "Type: Distributed-Replicate") || !strings.Contains(info, "Number of Bricks: 2 x 2 = 4") {
		t.Fatalf("volume info:\n%s", info)
	}
	mnt := mountVolume(t, c, n2, "dr")
	if err := os.MkdirAll(filepath.Join(mnt, "d/e"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if err := os.WriteFile(filepath.Join(mnt, "d", fmt.Sprintf("f%02d", i)), []byte(fmt.Sprint(i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set1 := listBrick(t, filepath.Join(brickPath(bricks[0]), "d"))
	set2 := listBrick(t, filepath.Join(brickPath(bricks[2]), "d"))
	if got := strings.Join(listBrick(t, filepath.Join(brickPath(bricks[1]), "d")), ","); got != strings.Join(set1, ",") {
		t.Fatalf("replicas of set 1 differ: %v / %s", set1, got)
	}
	if got := strings.Join(listBrick(t, filepath.Join(brickPath(bricks[3]), "d")), ","); got != strings.Join(set2, ",") {
		t.Fatalf("replicas of set 2 differ: %v / %s", set2, got)
	}
	// Both sets hold files; "e" is on both; each file is in one set only.
	files := map[string]int{}
	for _, set := range [][]string{set1, set2} {
		for _, n := range set {
			files[n]++
		}
	}
	if files["e"] != 2 || len(files) != 21 {
		t.Fatalf("files per set: %v", files)
	}
	for n, k := range files {
		if n != "e" && k != 1 {
			t.Fatalf("%s is in %d sets", n, k)
		}
	}
	if len(set1) < 3 || len(set2) < 3 {
		t.Fatalf("files not spread over the sets: %d / %d", len(set1), len(set2))
	}
	ents, err := os.ReadDir(filepath.Join(mnt, "d"))
	if err != nil || len(ents) != 21 {
		t.Fatalf("ls of the mount: %d entries, %v", len(ents), err)
	}
}

// A client with no local daemon mounts through the named server, or, when
// that one cannot be reached, through its backup volfile servers (mount -o
// backup-volfile-servers=...), and keeps working when the server it
// mounted through goes down.
func TestMountBackupVolfileServers(t *testing.T) {
	needFuse(t)
	c := clustertest.New(t)
	nodes := c.Pool(2)
	n1, n2 := nodes[0], nodes[1]
	n1.MustCLI("volume", "create", "bv", "replica", "2", n1.Brick("bv1"), n2.Brick("bv2"))
	n1.MustCLI("volume", "start", "bv")
	creds := filepath.Join(c.Dir(), "creds")
	n1.MustCLI("pool", "credentials", "--out", creds)
	mnt := filepath.Join(c.Dir(), "mnt-bv")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	backup := fmt.Sprintf("%s:%d", n2.Addr, clustertest.APIPort)
	dead := c.Addr(9) // nothing listens there
	r := c.Run("--socket", filepath.Join(c.Dir(), "no-such.sock"), "--credentials", creds, "mount",
		"--log-file", filepath.Join(c.Dir(), "mount-bv.log"), "--backup-volfile-servers", backup, dead+":/bv", mnt)
	if r.Code != 0 {
		t.Fatalf("mount through the backup server: %d %s%s", r.Code, r.Stdout, r.Stderr)
	}
	t.Cleanup(func() { _ = syscall.Unmount(mnt, syscall.MNT_DETACH) })
	if err := os.WriteFile(filepath.Join(mnt, "f"), []byte("through the backup"), 0o644); err != nil {
		t.Fatal(err)
	}
	n2.Kill() // the server it mounted through; its brick keeps serving
	if got, err := os.ReadFile(filepath.Join(mnt, "f")); err != nil || string(got) != "through the backup" {
		t.Fatalf("read after the volfile server died: %q %v", got, err)
	}
	// Without backups the dead server is an error that says so.
	if err := os.MkdirAll(mnt+"2", 0o755); err != nil {
		t.Fatal(err)
	}
	r = c.Run("--socket", filepath.Join(c.Dir(), "no-such.sock"), "--credentials", creds, "mount", dead+":/bv", mnt+"2")
	if r.Code == 0 || !strings.Contains(r.Stderr, "cannot reach caisd") {
		t.Fatalf("mount through a dead server: %d %q", r.Code, r.Stderr)
	}
}

// A file open for reading comes with its first bytes; a write through the
// same mount after the open is still seen by a read on that descriptor.
func TestReadAfterOwnWriteSeesIt(t *testing.T) {
	needFuse(t)
	c := clustertest.New(t)
	nodes := c.Pool(2)
	n1, n2 := nodes[0], nodes[1]
	n1.MustCLI("volume", "create", "pf", "replica", "2", n1.Brick("pf1"), n2.Brick("pf2"))
	n1.MustCLI("volume", "start", "pf")
	mnt := mountVolume(t, c, n1, "pf")
	p := filepath.Join(mnt, "f")
	if err := os.WriteFile(p, []byte("old content"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt([]byte("NEW"), 0); err != nil {
		t.Fatal(err)
	}
	w.Close()
	buf := make([]byte, 64)
	n, err := r.ReadAt(buf, 0)
	if string(buf[:n]) != "NEW content" {
		t.Fatalf("read after a write through the same mount: %q %v", buf[:n], err)
	}
}
