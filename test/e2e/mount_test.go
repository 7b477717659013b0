package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cais-platform/cais/test/clustertest"
)

// mountVolume mounts HOST:/VOL with the cais CLI and unmounts it when the
// test ends.
func mountVolume(t *testing.T, c *clustertest.Cluster, n *clustertest.Node, vol string) string {
	t.Helper()
	return mountAs(t, c, n, vol, vol)
}

// mountAs is mountVolume with a name for the mount point and log, and
// more cais mount options.
func mountAs(t *testing.T, c *clustertest.Cluster, n *clustertest.Node, vol, name string, opts ...string) string {
	t.Helper()
	mnt := filepath.Join(c.Dir(), "mnt-"+name)
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(c.Dir(), "mount-"+name+".log")
	n.MustCLI(append(append([]string{"mount", "--log-file", logFile}, opts...), n.Addr+":/"+vol, mnt)...)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			t.Logf("--- mount log of %s ---\n%s", name, b)
		}
		for i := 0; i < 50; i++ {
			if err := syscall.Unmount(mnt, 0); err == nil || err == syscall.EINVAL || err == syscall.ENOENT {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		_ = syscall.Unmount(mnt, syscall.MNT_DETACH)
	})
	return mnt
}

func listBrick(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if e.Name() != ".cais" {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names
}

// The seed's walkthrough on a real mount: ten files touched on a
// distributed volume land spread over both bricks, none on both.
func TestSeedWalkthroughMount(t *testing.T) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
	c := clustertest.New(t)
	nodes := c.Pool(2)
	s1, s2 := nodes[0], nodes[1]
	b1, b2 := s1.Brick("brick1/brick"), s2.Brick("brick2/brick")
	s1.MustCLI("volume", "create", "distvol", b1, b2)
	s1.MustCLI("volume", "start", "distvol")
	mnt := mountVolume(t, c, s1, "distvol")
	out, err := exec.Command("bash", "-c", "touch "+mnt+"/distvol-file{1..10}.txt").CombinedOutput()
	if err != nil {
		t.Fatalf("touch: %v %s", err, out)
	}
	on1, on2 := listBrick(t, brickPath(b1)), listBrick(t, brickPath(b2))
	t.Logf("server1 brick: %v", on1)
	t.Logf("server2 brick: %v", on2)
	if len(on1)+len(on2) != 10 || len(on1) == 0 || len(on2) == 0 {
		t.Fatalf("files not spread over both bricks: %v / %v", on1, on2)
	}
	for _, n := range on1 {
		for _, m := range on2 {
			if n == m {
				t.Fatalf("%s is on both bricks", n)
			}
		}
	}
	// ls on the mount merges both bricks.
	all := listBrick(t, mnt)
	if len(all) != 10 {
		t.Fatalf("ls of the mount: %v", all)
	}
	if !isMountedFuse(mnt) {
		t.Fatal("not a cais FUSE mount in /proc/mounts")
	}
}

func isMountedFuse(mnt string) bool {
	b, _ := os.ReadFile("/proc/self/mounts")
	return strings.Contains(string(b), " "+mnt+" fuse.cais ")
}

// Everyday file work on a distributed mount: data round trips, directories
// exist on every brick, renames keep data in place.
func TestDistributeMountBasics(t *testing.T) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
	c := clustertest.New(t)
	nodes := c.Pool(2)
	n1, n2 := nodes[0], nodes[1]
	b1, b2 := n1.Brick("d1"), n2.Brick("d2")
	n1.MustCLI("volume", "create", "dv", b1, b2)
	n1.MustCLI("volume", "start", "dv")
	mnt := mountVolume(t, c, n2, "dv")

	data := bytes.Repeat([]byte("cais data path "), 100000) // 1.5 MB
	if err := os.WriteFile(filepath.Join(mnt, "big.bin"), data, 0o640); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(mnt, "big.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, %v", len(got), err)
	}
	fi, err := os.Stat(filepath.Join(mnt, "big.bin"))
	if err != nil || fi.Size() != int64(len(data)) || fi.Mode().Perm() != 0o640 {
		t.Fatalf("stat: %v %v", fi, err)
	}
	if err := os.MkdirAll(filepath.Join(mnt, "a/b/c"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{b1, b2} {
		if st, err := os.Stat(filepath.Join(brickPath(b), "a/b/c")); err != nil || !st.IsDir() {
			t.Fatalf("directory missing on brick %s: %v", b, err)
		}
	}
	for i := 0; i < 20; i++ {
		if err := os.WriteFile(filepath.Join(mnt, "a/b/c", fmt.Sprintf("f%d", i)), []byte{byte(i)}, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if ents, err := os.ReadDir(filepath.Join(mnt, "a/b/c")); err != nil || len(ents) != 20 {
		t.Fatalf("readdir: %d entries, %v", len(ents), err)
	}
	// Renames: the data stays where it is; the name works.
	for i := 0; i < 20; i++ {
		from := filepath.Join(mnt, "a/b/c", fmt.Sprintf("f%d", i))
		to := filepath.Join(mnt, "a/b/c", fmt.Sprintf("renamed-%d", i))
		if err := os.Rename(from, to); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(to)
		if err != nil || len(b) != 1 || b[0] != byte(i) {
			t.Fatalf("renamed file %d: %v %v", i, b, err)
		}
		if _, err := os.Stat(from); !os.IsNotExist(err) {
			t.Fatalf("old name still there: %v", err)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(mnt, "a/b/c")); len(ents) != 20 {
		t.Fatalf("after renames: %d entries (pointer entries must not show)", len(ents))
	}
	for i := 0; i < 20; i++ {
		if err := os.Remove(filepath.Join(mnt, "a/b/c", fmt.Sprintf("renamed-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(filepath.Join(mnt, "a/b")); err == nil {
		t.Fatal("rmdir of a non-empty directory succeeded")
	}
	for _, d := range []string{"a/b/c", "a/b", "a"} {
		if err := os.Remove(filepath.Join(mnt, d)); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range []string{b1, b2} {
		if names := listBrick(t, brickPath(b)); len(names) > 1 {
			t.Fatalf("brick %s left with %v", b, names)
		}
	}
	// Symlinks and hard links.
	if err := os.Symlink("big.bin", filepath.Join(mnt, "link")); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(filepath.Join(mnt, "link")); err != nil || target != "big.bin" {
		t.Fatalf("readlink: %q %v", target, err)
	}
	if err := os.Link(filepath.Join(mnt, "big.bin"), filepath.Join(mnt, "hard")); err != nil {
		t.Fatal(err)
	}
	var s1, s2 syscall.Stat_t
	if syscall.Stat(filepath.Join(mnt, "big.bin"), &s1) != nil || syscall.Stat(filepath.Join(mnt, "hard"), &s2) != nil || s1.Ino != s2.Ino || s1.Nlink != 2 {
		t.Fatalf("hard link: ino %d/%d nlink %d", s1.Ino, s2.Ino, s1.Nlink)
	}
}

// A mount whose bricks all fail to answer (node 3's daemon paused, so
// the pool, which keeps its quorum, still lists them online, and its
// bricks killed) fails, and leaves no dead mount point behind.
func TestFailedMountLeavesNoMount(t *testing.T) {
	needFuse(t)
	c := clustertest.New(t)
	nodes := c.Pool(3)
	n1, n2 := nodes[0], nodes[2]
	n1.MustCLI("volume", "create", "gone", "replica", "2", n2.Brick("g1"), n2.Brick("g2"), "force")
	n1.MustCLI("volume", "start", "gone")
	clustertest.Eventually(t, 20*time.Second, func() error {
		if st := n1.MustCLI("volume", "status", "gone"); strings.Count(st, " Y ") != 2 {
			return fmt.Errorf("bricks not online:\n%s", st)
		}
		return nil
	})
	killBrick(t, n2)
	defer n2.Send(syscall.SIGCONT)
	mnt := filepath.Join(c.Dir(), "mnt-gone")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	r := n1.CLI("mount", "--log-file", filepath.Join(c.Dir(), "mount-gone.log"), n1.Addr+":/gone", mnt)
	if r.Code == 0 {
		_ = syscall.Unmount(mnt, syscall.MNT_DETACH)
		t.Fatalf("mount with every brick dead succeeded:\n%s%s", r.Stdout, r.Stderr)
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), " "+mnt+" ") {
		_ = syscall.Unmount(mnt, syscall.MNT_DETACH)
		t.Fatalf("a failed mount (%q) left %s mounted", strings.TrimSpace(r.Stderr), mnt)
	}
	t.Logf("mount failed: %s", strings.TrimSpace(r.Stderr))
}
