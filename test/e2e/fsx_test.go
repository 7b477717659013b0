package e2e

import (
	"bytes"
	"errors"
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

// fsx runs a random sequence of operations on one file through a mount,
// as fsx does, against a model of its content: writes at random offsets
// through up to three descriptors (some write-only), reads, truncations,
// writes through a shared mapping, stats by path and by descriptor, and
// closes; every so often all descriptors close and the file is read back
// through another mount, which kept what it read the time before. With
// more, also appends through an O_APPEND descriptor, renames away and
// back with descriptors open, and fsyncs. The sequence depends on seed
// and more alone.
func fsx(t *testing.T, mnt, other, name string, seed int64, ops int, more bool) {
	t.Helper()
	const max = 4 << 20
	r := rand.New(rand.NewSource(seed))
	p, q := filepath.Join(mnt, name), filepath.Join(other, name)
	var model []byte
	var fds []*os.File
	var checks, late int // reads through the other mount, and those a notice came after
	defer func() {
		if !t.Failed() {
			t.Logf("seed %d: %d of %d reads through the other mount right after a close were late", seed, late, checks)
		}
	}()
	defer func() {
		for _, f := range fds {
			f.Close()
		}
	}()
	open := func() {
		flags := os.O_RDWR | os.O_CREATE
		if r.Intn(4) == 0 {
			flags = os.O_WRONLY | os.O_CREATE
		}
		f, err := os.OpenFile(p, flags, 0o644)
		if err != nil {
			t.Fatalf("seed %d: open: %v", seed, err)
		}
		fds = append(fds, f)
	}
	accmode := func(f *os.File) int {
		fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
		if err != nil {
			t.Fatal(err)
		}
		return fl & unix.O_ACCMODE
	}
	check := func(path, what string, i int) {
		t.Helper()
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("seed %d op %d: read %s: %v", seed, i, what, err)
		}
		if path == q {
			checks++
		}
		if path == q && !bytes.Equal(got, model) {
			// Another mount applies the bricks' notices on its own: a
			// read right after the close may beat one. Once.
			late++
			time.Sleep(50 * time.Millisecond)
			if got, err = os.ReadFile(path); err != nil {
				t.Fatalf("seed %d op %d: read %s again: %v", seed, i, what, err)
			}
		}
		if !bytes.Equal(got, model) {
			d := 0
			for d < len(got) && d < len(model) && got[d] == model[d] {
				d++
			}
			t.Fatalf("seed %d op %d: %s: %d bytes, want %d, first difference at %d", seed, i, what, len(got), len(model), d)
		}
	}
	open()
	for i := 0; i < ops; i++ {
		if len(fds) == 0 {
			open()
		}
		f := fds[r.Intn(len(fds))]
		kinds := 12
		if more {
			kinds = 15
		}
		switch r.Intn(kinds) {
		case 0, 1, 2:
			off := r.Intn(max)
			n := min(1+r.Intn(256<<10), max-off)
			buf := make([]byte, n)
			r.Read(buf)
			if accmode(f) == unix.O_RDONLY {
				continue
			}
			if _, err := f.WriteAt(buf, int64(off)); err != nil {
				t.Fatalf("seed %d op %d: write: %v", seed, i, err)
			}
			if off+n > len(model) {
				model = append(model, make([]byte, off+n-len(model))...)
			}
			copy(model[off:], buf)
		case 3, 4:
			if accmode(f) == unix.O_WRONLY || len(model) == 0 {
				continue
			}
			off := r.Intn(len(model))
			buf := make([]byte, 1+r.Intn(128<<10))
			n, err := f.ReadAt(buf, int64(off))
			if err != nil && n == 0 {
				t.Fatalf("seed %d op %d: read: %v", seed, i, err)
			}
			if want := model[off:min(off+len(buf), len(model))]; !bytes.Equal(buf[:n], want) {
				t.Fatalf("seed %d op %d: read %d bytes at %d, not the %d written", seed, i, n, off, len(want))
			}
		case 5:
			size := r.Intn(max)
			if err := f.Truncate(int64(size)); err != nil {
				if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.EBADF) {
					continue // a descriptor not open for writing
				}
				t.Fatalf("seed %d op %d: truncate: %v", seed, i, err)
			}
			if size < len(model) {
				model = model[:size]
			} else {
				model = append(model, make([]byte, size-len(model))...)
			}
		case 6:
			st, err := os.Stat(p)
			if err != nil || st.Size() != int64(len(model)) {
				t.Fatalf("seed %d op %d: stat: %v, %v; want size %d", seed, i, st, err, len(model))
			}
			if fst, err := f.Stat(); err != nil || fst.Size() != int64(len(model)) {
				t.Fatalf("seed %d op %d: fstat: %v, %v; want size %d", seed, i, fst, err, len(model))
			}
		case 7:
			k := r.Intn(len(fds))
			if err := fds[k].Close(); err != nil {
				t.Fatalf("seed %d op %d: close: %v", seed, i, err)
			}
			fds = append(fds[:k], fds[k+1:]...)
		case 8:
			if len(fds) < 3 {
				open()
			}
		case 9:
			if accmode(f) != unix.O_RDWR || len(model) < 8192 {
				continue
			}
			m, err := unix.Mmap(int(f.Fd()), 0, len(model), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
			if err != nil {
				t.Fatalf("seed %d op %d: mmap: %v", seed, i, err)
			}
			off := r.Intn(len(model) - 100)
			for j := range 100 {
				b := byte(r.Intn(256))
				m[off+j], model[off+j] = b, b
			}
			err = unix.Msync(m, unix.MS_SYNC)
			unix.Munmap(m)
			if err != nil {
				t.Fatalf("seed %d op %d: msync: %v", seed, i, err)
			}
		case 10:
			check(p, "through the mount", i)
		case 12:
			buf := make([]byte, 1+r.Intn(64<<10))
			r.Read(buf)
			if len(model)+len(buf) > max {
				continue
			}
			g, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatalf("seed %d op %d: open for appending: %v", seed, i, err)
			}
			if _, err := g.Write(buf); err != nil {
				t.Fatalf("seed %d op %d: append: %v", seed, i, err)
			}
			model = append(model, buf...)
			if err := g.Close(); err != nil {
				t.Fatalf("seed %d op %d: close after appending: %v", seed, i, err)
			}
		case 13:
			if err := os.Rename(p, p+".moved"); err != nil {
				t.Fatalf("seed %d op %d: rename: %v", seed, i, err)
			}
			if accmode(f) != unix.O_WRONLY && len(model) > 0 {
				off := r.Intn(len(model))
				buf := make([]byte, 10)
				n, _ := f.ReadAt(buf, int64(off))
				if !bytes.Equal(buf[:n], model[off:min(off+10, len(model))]) {
					t.Fatalf("seed %d op %d: read after a rename: not what was written", seed, i)
				}
			}
			if err := os.Rename(p+".moved", p); err != nil {
				t.Fatalf("seed %d op %d: rename back: %v", seed, i, err)
			}
		case 14:
			if err := f.Sync(); err != nil {
				t.Fatalf("seed %d op %d: fsync: %v", seed, i, err)
			}
		case 11:
			for _, g := range fds {
				if err := g.Close(); err != nil {
					t.Fatalf("seed %d op %d: close: %v", seed, i, err)
				}
			}
			fds = nil
			check(q, "through the other mount, right after the close", i)
		}
	}
}

// The fsx sequences through a mount that writes in place (local I/O, then
// passthrough) and one that goes through the bricks' protocol, read back
// through another mount. Seeds 4 and 6 met the two bugs fsx found: a
// truncation between a handle's writes left the write-behind's bigger
// size for the stat after the close (for good: a failure here), and a
// close after local writes did not wait for the bricks to tell the other
// mount, which then read the old size right after the close. The other
// mount applies the notices on its own, so a read right after a close can
// still beat one, rarely, whatever the writer did: such a read is tried
// again 50 ms later, and the late ones are counted in the log (0 of 447
// in each of three runs with the close's wait; 1 or 2 without).
func TestFsx(t *testing.T) {
	needFuse(t)
	c := clustertest.New(t)
	n := c.Pool(1)[0]
	n.MustCLI("volume", "create", "fx", n.Brick("fx1"), n.Brick("fx2"), "force")
	n.MustCLI("volume", "start", "fx")
	reader := mountAs(t, c, n, "fx", "fx-reader")
	for _, m := range []struct {
		name string
		opts []string
	}{
		{"local-io", []string{"--passthrough=false"}},
		{"passthrough", nil},
		{"protocol", []string{"--local-io=false"}},
	} {
		mnt := mountAs(t, c, n, "fx", "fx-"+m.name, m.opts...)
		for _, seed := range []int64{4, 6} {
			fsx(t, mnt, reader, fmt.Sprintf("%s-%d", m.name, seed), seed, 2000, false)
		}
		fsx(t, mnt, reader, m.name+"-more", 7, 2000, true)
	}
}
