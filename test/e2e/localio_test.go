package e2e

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/test/clustertest"
)

// A mount reads and writes a file past its start in the copy on a brick
// of its own machine directly (a descriptor taken from the brick): it
// sees what another client writes, another client sees what it writes,
// and it reads from the other copy when that brick dies.
func TestLocalIO(t *testing.T) {
	needFuse(t)
	c := clustertest.New(t)
	nodes := c.Pool(2)
	n1, n2 := nodes[0], nodes[1]
	b1, b2 := n1.Brick("lr1"), n2.Brick("lr2")
	n1.MustCLI("volume", "create", "lr", "replica", "2", b1, b2, "force")
	n1.MustCLI("volume", "start", "lr")
	local := mountAs(t, c, n1, "lr", "lr-local")
	other := mountAs(t, c, n1, "lr", "lr-tcp", "--transport", "tcp")
	off := mountAs(t, c, n1, "lr", "lr-off", "--local-io=false")

	const mib = 1 << 20
	data := make([]byte, 8*mib)
	rand.New(rand.NewSource(1)).Read(data)
	if err := os.WriteFile(filepath.Join(other, "f"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(local, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	readAt := func(at, n int) []byte {
		t.Helper()
		// The kernel's pages of the file go first, so the read reaches
		// the mount.
		if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, n)
		got, err := f.ReadAt(buf, int64(at))
		if err != nil {
			t.Fatalf("read at %d: %v", at, err)
		}
		return buf[:got]
	}
	if got := readAt(0, 3*mib); !bytes.Equal(got, data[:3*mib]) {
		t.Fatal("first 3 MiB differ")
	}
	// Both bricks are on this machine (both nodes are), so the mount
	// reads the copy cluster.read-hash-mode picks, in place.
	pid := mountPID(t, local)
	brickFile, readNode := filepath.Join(brickPath(b1), "f"), n1
	if other := filepath.Join(brickPath(b2), "f"); holds(t, pid, other) {
		brickFile, readNode = other, n2
	}
	if !holds(t, pid, brickFile) {
		t.Fatalf("the mount reads without a descriptor of %s or %s", filepath.Join(brickPath(b1), "f"), filepath.Join(brickPath(b2), "f"))
	}
	if holds(t, mountPID(t, off), brickFile) {
		// It has read nothing yet; make it read, then look.
		t.Fatal("the --local-io=false mount holds the brick's file")
	}
	if got, err := os.ReadFile(filepath.Join(off, "f")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read through the --local-io=false mount: %d bytes, %v", len(got), err)
	}
	offF, err := os.Open(filepath.Join(off, "f"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := offF.ReadAt(make([]byte, 2*mib), 0); err != nil {
		t.Fatal(err)
	}
	if holds(t, mountPID(t, off), brickFile) {
		t.Fatal("the --local-io=false mount holds the brick's file")
	}
	offF.Close()

	// Another client rewrites a MiB in the middle: the local read sees it.
	fresh := bytes.Repeat([]byte("new data "), mib/9+1)[:mib]
	w, err := os.OpenFile(filepath.Join(other, "f"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt(fresh, 5*mib); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	copy(data[5*mib:], fresh)
	if got := readAt(4*mib, 2*mib); !bytes.Equal(got, data[4*mib:6*mib]) {
		t.Fatalf("after another client's write: read %q..., want %q...", got[mib:mib+20], data[5*mib:5*mib+20])
	}

	// The local mount writes a file through the bricks' descriptors (its
	// writes past the start): both copies have it, and another client
	// that cached the file hears of a rewrite (the brick's upcall).
	written := make([]byte, 6*mib)
	rand.New(rand.NewSource(2)).Read(written)
	if err := os.WriteFile(filepath.Join(local, "g"), written, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{b1, b2} {
		if got, err := os.ReadFile(filepath.Join(brickPath(b), "g")); err != nil || !bytes.Equal(got, written) {
			t.Fatalf("copy on %s of the file the local mount wrote: %d bytes, %v", b, len(got), err)
		}
	}
	if got, err := os.ReadFile(filepath.Join(other, "g")); err != nil || !bytes.Equal(got, written) {
		t.Fatalf("the TCP mount reads the local mount's file: %d bytes, %v", len(got), err)
	}
	g, err := os.OpenFile(filepath.Join(local, "g"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A handle's first write goes to the bricks with the replicate
	// layer's dirty mark (an upcall of the brick's own); the next one
	// through the descriptor, after the other client cached the file
	// again.
	sees := func(want []byte) {
		t.Helper()
		clustertest.Eventually(t, 5*time.Second, func() error {
			got, err := os.ReadFile(filepath.Join(other, "g"))
			if err != nil {
				return err
			}
			if !bytes.Equal(got, want) {
				return fmt.Errorf("the TCP mount reads old data: at 1 MiB %q, at 4 MiB %q", got[1*mib:1*mib+16], got[4*mib:4*mib+16])
			}
			return nil
		})
	}
	for _, at := range []int{1 * mib, 4 * mib} {
		if _, err := g.WriteAt(fresh, int64(at)); err != nil {
			t.Fatal(err)
		}
		if err := g.Sync(); err != nil {
			t.Fatal(err)
		}
		copy(written[at:], fresh)
		sees(written)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}

	// The brick read from dies: reads go on from the other copy.
	readNode.Send(syscall.SIGSTOP) // no restart meanwhile
	for _, p := range readNode.BrickPIDs() {
		if err := syscall.Kill(p, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	clustertest.Eventually(t, 10*time.Second, func() error {
		if got := readAt(2*mib, 6*mib); !bytes.Equal(got, data[2*mib:]) {
			t.Fatal("read after the local brick died differs")
		}
		if holds(t, pid, brickFile) {
			return fmt.Errorf("the mount still reads the dead brick's copy")
		}
		return nil
	})
	readNode.Send(syscall.SIGCONT)
	f.Close()
}

// holds reports whether process pid has path open.
func holds(t *testing.T, pid int, path string) bool {
	t.Helper()
	fds, err := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if p, err := os.Readlink(fd); err == nil && p == path {
			return true
		}
	}
	return false
}
