package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cais-platform/cais/test/clustertest"
)

// With performance.flush-behind on, close returns before the data is on
// the bricks: the mount still reads back what was closed, and its end
// (an unmount right after the closes, which drops the kernel's releases
// not delivered yet) leaves every byte on the bricks.
func TestFlushBehind(t *testing.T) {
	needFuse(t)
	c := clustertest.New(t)
	n := c.Pool(1)[0]
	b1, b2 := n.Brick("fb1"), n.Brick("fb2")
	n.MustCLI("volume", "create", "fb", "replica", "2", b1, b2, "force")
	n.MustCLI("volume", "set", "fb", "performance.flush-behind", "on")
	n.MustCLI("volume", "start", "fb")
	mnt := mountAs(t, c, n, "fb", "fb")
	pid := mountPID(t, mnt)
	const files = 200
	content := func(i int) []byte { return bytes.Repeat([]byte(fmt.Sprintf("file %d ", i)), 100+i) }
	for i := range files {
		if err := os.WriteFile(filepath.Join(mnt, fmt.Sprintf("f%03d", i)), content(i), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		if got, err := os.ReadFile(filepath.Join(mnt, fmt.Sprintf("f%03d", i))); err != nil || !bytes.Equal(got, content(i)) {
			t.Fatalf("f%03d read back through the mount: %d bytes, %v", i, len(got), err)
		}
	}
	for i := 10; i < files+10; i++ {
		p := filepath.Join(mnt, fmt.Sprintf("g%03d", i))
		if err := os.WriteFile(p, content(i), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A big one last: its final writes are still in flight at the close.
	big := bytes.Repeat([]byte("0123456789abcdef"), 2<<20)
	if err := os.WriteFile(filepath.Join(mnt, "big"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Unmount(mnt, 0); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 30*time.Second, func() error {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			return fmt.Errorf("the mount process %d is still running", pid)
		}
		return nil
	})
	for _, b := range []string{b1, b2} {
		if got, err := os.ReadFile(filepath.Join(brickPath(b), "big")); err != nil || !bytes.Equal(got, big) {
			t.Fatalf("%s/big after the unmount: %d bytes, %v; want %d", brickPath(b), len(got), err, len(big))
		}
		for i := 10; i < files+10; i++ {
			p := filepath.Join(brickPath(b), fmt.Sprintf("g%03d", i))
			if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, content(i)) {
				t.Fatalf("%s after the unmount: %d bytes, %v; want %d", p, len(got), err, len(content(i)))
			}
		}
	}
}
