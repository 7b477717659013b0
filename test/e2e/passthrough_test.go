package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cais-platform/cais/test/clustertest"
)

// procIO returns the bytes process pid read and wrote through system
// calls (/proc/PID/io rchar and wchar): a mount's grow by every byte a
// file's reads and writes carry through it.
func procIO(t *testing.T, pid int) (rchar, wchar int64) {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ": ")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "rchar":
			rchar = n
		case "wchar":
			wchar = n
		}
	}
	return rchar, wchar
}

// A distributed volume's files on this machine's bricks are written, and
// big ones read, by the kernel itself (FUSE passthrough): their data does
// not pass through the mount process, lands in the brick's file, and
// another mount sees it while the file is open and after the close. Files
// with set-ID bits, and every file of a mount with --passthrough=false,
// take the mount's path.
func TestPassthrough(t *testing.T) {
	needFuse(t)
	c := clustertest.New(t)
	n := c.Pool(1)[0]
	b1, b2 := n.Brick("pt1"), n.Brick("pt2")
	n.MustCLI("volume", "create", "pt", b1, b2, "force")
	n.MustCLI("volume", "start", "pt")
	mnt := mountAs(t, c, n, "pt", "pt")
	other := mountAs(t, c, n, "pt", "pt-other")
	off := mountAs(t, c, n, "pt", "pt-off", "--passthrough=false")
	pid, offPID := mountPID(t, mnt), mountPID(t, off)

	const size = 8 << 20
	data := make([]byte, size)
	rand.New(rand.NewSource(2)).Read(data)
	onBrick := func(name string) []byte {
		t.Helper()
		for _, b := range []string{b1, b2} {
			if got, err := os.ReadFile(filepath.Join(brickPath(b), name)); err == nil {
				return got
			}
		}
		t.Fatalf("%s on neither brick", name)
		return nil
	}

	// Written through the mount: the bytes the mount process moves stay
	// far below the file's.
	_, w0 := procIO(t, pid)
	f, err := os.OpenFile(filepath.Join(mnt, "big"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data[:size/2]); err != nil {
		t.Fatal(err)
	}
	// While it is open, the other mount learns of the writes (the mount
	// tells the brick every second).
	clustertest.Eventually(t, 10*time.Second, func() error {
		st, err := os.Stat(filepath.Join(other, "big"))
		if err != nil {
			return err
		}
		if st.Size() != size/2 {
			return fmt.Errorf("the other mount sees %d bytes of the open file, want %d", st.Size(), size/2)
		}
		return nil
	})
	if _, err := f.Write(data[size/2:]); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, w1 := procIO(t, pid); w1-w0 > size/4 {
		t.Errorf("the mount process wrote %d bytes for a file of %d: not passed through", w1-w0, size)
	}
	if got := onBrick("big"); !bytes.Equal(got, data) {
		t.Fatalf("the brick's copy: %d bytes, not what was written", len(got))
	}
	// At the close, the other mount, which kept the file's first half.
	if got, err := os.ReadFile(filepath.Join(other, "big")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the other mount after the close: %d bytes, %v", len(got), err)
	}
	if st, err := os.Stat(filepath.Join(mnt, "big")); err != nil || st.Size() != size {
		t.Fatalf("stat after the close: %v, %v", st, err)
	}

	// A big file is read by the kernel too.
	r0, _ := procIO(t, pid)
	if got, err := os.ReadFile(filepath.Join(mnt, "big")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %d bytes, %v", len(got), err)
	}
	if r1, _ := procIO(t, pid); r1-r0 > size/4 {
		t.Errorf("the mount process read %d bytes for a read of %d: not passed through", r1-r0, size)
	}

	// A small file written and closed is read back from the kernel's
	// cache, with its attributes, and is on the brick.
	small := []byte("small file\n")
	if err := os.WriteFile(filepath.Join(mnt, "small"), small, 0o640); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(mnt, "small")); err != nil || st.Size() != int64(len(small)) || st.Mode().Perm() != 0o640 {
		t.Fatalf("stat of the small file: %v, %v", st, err)
	}
	if got, err := os.ReadFile(filepath.Join(mnt, "small")); err != nil || !bytes.Equal(got, small) {
		t.Fatalf("small file read back: %q, %v", got, err)
	}
	if got := onBrick("small"); !bytes.Equal(got, small) {
		t.Fatalf("small file on the brick: %q", got)
	}
	// The fstat after an open for reading is answered from what the close
	// learned: the open is not made on the brick for it (open-behind).
	// The close's release is asynchronous: a few tries.
	for try := 0; ; try++ {
		name := fmt.Sprintf("fstat%d", try)
		if err := os.WriteFile(filepath.Join(mnt, name), small, 0o640); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		f, err := os.Open(filepath.Join(mnt, name))
		if err != nil {
			t.Fatal(err)
		}
		st, err := f.Stat()
		if err != nil || st.Size() != int64(len(small)) {
			t.Fatalf("fstat after open: %v, %v", st, err)
		}
		var holders []string
		for _, b := range []string{b1, b2} {
			holders = append(holders, openedBy(t, filepath.Join(brickPath(b), name))...)
		}
		f.Close()
		if len(holders) == 0 {
			break
		}
		if try == 4 {
			t.Fatalf("an fstat after an open for reading opened the file on its brick: held by %v", holders)
		}
	}
	// Rewritten through the other mount: this one reads the new data.
	if err := os.WriteFile(filepath.Join(other, "small"), []byte("changed\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 10*time.Second, content2(filepath.Join(mnt, "small"), "changed\n"))

	// A set-user-ID file is written through the mount, which clears the
	// bit for writers without CAP_FSETID.
	suid := filepath.Join(mnt, "suid")
	if err := os.WriteFile(suid, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Chmod(suid, 0o4755); err != nil {
		t.Fatal(err)
	}
	_, w0 = procIO(t, pid)
	if err := os.WriteFile(suid, data[:1<<20], 0o755); err != nil {
		t.Fatal(err)
	}
	if _, w1 := procIO(t, pid); w1-w0 < 1<<20 {
		t.Errorf("the mount process wrote %d bytes of a 1 MiB write to a set-user-ID file: passed through", w1-w0)
	}

	// A file that gains the bit while it is open, passed through: the
	// kernel's writes skip the mount, which clears the bit once it sees
	// them (whoever wrote: the mount cannot tell).
	late := filepath.Join(mnt, "late-suid")
	lf, err := os.OpenFile(late, os.O_CREATE|os.O_RDWR, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	_, w0 = procIO(t, pid)
	if err := syscall.Chmod(filepath.Join(other, "late-suid"), 0o4755); err != nil {
		lf.Close()
		t.Fatal(err)
	}
	if _, err := lf.Write(data[:1<<20]); err != nil {
		lf.Close()
		t.Fatal(err)
	}
	if err := lf.Close(); err != nil {
		t.Fatal(err)
	}
	if _, w1 := procIO(t, pid); w1-w0 >= 1<<20 {
		t.Logf("the open before the chmod was not passed through (%d bytes through the mount)", w1-w0)
	}
	clustertest.Eventually(t, 10*time.Second, func() error {
		fi, err := os.Stat(filepath.Join(other, "late-suid"))
		if err != nil {
			return err
		}
		if fi.Mode()&os.ModeSetuid != 0 {
			return fmt.Errorf("mode %v after a write: the set-user-ID bit gained while open stayed", fi.Mode())
		}
		return nil
	})

	// A file closed and opened again at once: the open comes while the
	// close's release is still under way, and go-fuse passes it through
	// on the backing file it still holds, without asking the mount. The
	// other mount sees every open's writes after its close all the same,
	// and the mount goes on passing files through (it took none of this
	// for a backing file the kernel refused).
	again := filepath.Join(mnt, "again")
	var want []byte
	for i := 0; i < 50; i++ {
		f, err := os.OpenFile(again, os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		rec := []byte(fmt.Sprintf("%04d\n", i))
		want = append(want, rec...)
		if _, err := f.WriteAt(rec, int64(5*i)); err != nil {
			f.Close()
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if i%10 != 9 {
			continue // the next open at once, during this close's release
		}
		if got, err := os.ReadFile(filepath.Join(other, "again")); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("the other mount after close %d: %q, %v", i, got, err)
		}
	}
	_, w0 = procIO(t, pid)
	if err := os.WriteFile(filepath.Join(mnt, "big2"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, w1 := procIO(t, pid); w1-w0 > size/4 {
		t.Errorf("the mount process wrote %d bytes for a file of %d after the reopens: passthrough stopped", w1-w0, size)
	}

	// --passthrough=false: every byte goes through the mount.
	_, w0 = procIO(t, offPID)
	if err := os.WriteFile(filepath.Join(off, "slow"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, w1 := procIO(t, offPID); w1-w0 < size {
		t.Errorf("a --passthrough=false mount wrote %d bytes of a file of %d", w1-w0, size)
	}
	if got := onBrick("slow"); !bytes.Equal(got, data) {
		t.Fatalf("the brick's copy of slow: %d bytes", len(got))
	}
}

// openedBy lists the processes with a descriptor of path.
func openedBy(t *testing.T, path string) []string {
	t.Helper()
	fds, err := filepath.Glob("/proc/[0-9]*/fd/*")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, fd := range fds {
		if p, err := os.Readlink(fd); err == nil && p == path {
			out = append(out, fd)
		}
	}
	return out
}
