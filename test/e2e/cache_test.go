package e2e

// Cache invalidation: mounts let the kernel keep attributes, entries and
// pages for performance.md-cache-timeout (600 seconds by default, with
// features.cache-invalidation on), so a change made through one mount
// must reach the other mounts' kernels as an upcall from the bricks.
// Each case changes something through mount A after mount B cached it,
// and B must see the change within upcallBound, far below the timeout.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/test/clustertest"
)

// upcallBound is how soon a change through one mount must be seen through
// another.
const upcallBound = 500 * time.Millisecond

func TestCacheInvalidation(t *testing.T) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
	c := clustertest.New(t)
	nodes := c.Pool(2)
	n1, n2 := nodes[0], nodes[1]
	for _, tc := range []struct {
		name   string
		layout []string
	}{
		{"distribute", []string{n1.Brick("ci-d1"), n2.Brick("ci-d2")}},
		{"replica2", []string{"replica", "2", n1.Brick("ci-r1"), n2.Brick("ci-r2")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vol := "ci" + tc.name[:4]
			n1.MustCLI(append([]string{"volume", "create", vol}, tc.layout...)...)
			n1.MustCLI("volume", "start", vol)
			a := mountPublic(t, c, n1, vol, vol+"-a")
			b := mountPublic(t, c, n2, vol, vol+"-b")
			cacheCases(t, a, b)
		})
	}
}

// seen waits until check passes on mount B, failing the test when it
// does not within upcallBound; it returns how long it took.
func seen(t *testing.T, what string, check func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := check()
		if err == nil {
			d := time.Since(start)
			t.Logf("%s: seen through the other mount after %v", what, d.Round(time.Millisecond))
			return d
		}
		if time.Since(start) > upcallBound {
			t.Fatalf("%s: not seen through the other mount within %v: %v", what, upcallBound, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func cacheCases(t *testing.T, a, b string) {
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(filepath.Join(a, "d"), 0o755))
	pa, pb := filepath.Join(a, "d", "f"), filepath.Join(b, "d", "f")
	must(os.WriteFile(pa, []byte("first content"), 0o644))

	content := func(want string) func() error {
		return func() error {
			got, err := os.ReadFile(pb)
			if err != nil {
				return err
			}
			if !bytes.Equal(got, []byte(want)) {
				return fmt.Errorf("read %q, want %q", got, want)
			}
			return nil
		}
	}
	// B reads the file: its pages, attributes and entry are cached now.
	seen(t, "the file made", content("first content"))
	must(content("first content")())

	// Content of the same size: only the upcall tells B's kernel.
	must(os.WriteFile(pa, []byte("other content"), 0o644))
	seen(t, "a rewrite of the same size", content("other content"))

	// Content through a descriptor kept open (write, no truncate).
	f, err := os.OpenFile(pa, os.O_WRONLY, 0)
	must(err)
	_, err = f.WriteAt([]byte("OTHER"), 0)
	must(err)
	must(f.Close())
	seen(t, "a write through an open file", content("OTHER content"))

	// Attributes.
	stat := func(p string) (syscall.Stat_t, error) {
		var st syscall.Stat_t
		return st, syscall.Lstat(p, &st)
	}
	must(os.Chmod(pa, 0o600))
	seen(t, "chmod", func() error {
		st, err := stat(pb)
		if err == nil && st.Mode&0o777 != 0o600 {
			err = fmt.Errorf("mode %o", st.Mode&0o777)
		}
		return err
	})
	must(os.Chown(pa, 1234, 5678))
	seen(t, "chown", func() error {
		st, err := stat(pb)
		if err == nil && (st.Uid != 1234 || st.Gid != 5678) {
			err = fmt.Errorf("owner %d:%d", st.Uid, st.Gid)
		}
		return err
	})
	when := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	must(os.Chtimes(pa, when, when))
	seen(t, "utimes", func() error {
		st, err := stat(pb)
		if err == nil && st.Mtim.Sec != when.Unix() {
			err = fmt.Errorf("mtime %d", st.Mtim.Sec)
		}
		return err
	})
	must(os.Truncate(pa, 5))
	seen(t, "truncate", content("OTHER"))

	// Extended attributes: B learns that the file has none by that name
	// (which the mount remembers, as ls -l asks on every entry).
	xb := func(want string) func() error {
		return func() error {
			buf := make([]byte, 64)
			n, err := syscall.Getxattr(pb, "user.cached", buf)
			switch {
			case want == "" && errors.Is(err, syscall.ENODATA):
				return nil
			case err != nil:
				return err
			case string(buf[:n]) != want:
				return fmt.Errorf("user.cached = %q, want %q", buf[:n], want)
			}
			return nil
		}
	}
	must(xb("")())
	must(syscall.Setxattr(pa, "user.cached", []byte("set"), 0))
	seen(t, "setxattr", xb("set"))
	must(syscall.Removexattr(pa, "user.cached"))
	seen(t, "removexattr", xb(""))

	// Entries: B first caches that the names do not exist (negative
	// entries), and lists the directory.
	nb := filepath.Join(b, "d", "new")
	if _, err := stat(nb); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("lstat %s before it is made: %v", nb, err)
	}
	// B's kernel keeps the listing too (FOPEN_CACHE_DIR).
	must(listed(filepath.Join(b, "d"), "new", false))
	must(os.WriteFile(filepath.Join(a, "d", "new"), []byte("new"), 0o644))
	seen(t, "a create", func() error { _, err := stat(nb); return err })
	seen(t, "a create, listed", func() error { return listed(filepath.Join(b, "d"), "new", true) })

	must(os.Remove(filepath.Join(a, "d", "new")))
	seen(t, "an unlink", func() error {
		if _, err := stat(nb); !errors.Is(err, syscall.ENOENT) {
			return fmt.Errorf("lstat: %v", err)
		}
		return nil
	})
	seen(t, "an unlink, listed", func() error { return listed(filepath.Join(b, "d"), "new", false) })

	must(os.Rename(pa, filepath.Join(a, "d", "g")))
	seen(t, "a rename: the old name", func() error {
		if _, err := stat(pb); !errors.Is(err, syscall.ENOENT) {
			return fmt.Errorf("lstat: %v", err)
		}
		return nil
	})
	seen(t, "a rename, listed: the old name", func() error { return listed(filepath.Join(b, "d"), "f", false) })
	seen(t, "a rename, listed: the new name", func() error { return listed(filepath.Join(b, "d"), "g", true) })
	seen(t, "a rename: the new name", func() error {
		got, err := os.ReadFile(filepath.Join(b, "d", "g"))
		if err == nil && string(got) != "OTHER" {
			err = fmt.Errorf("read %q", got)
		}
		return err
	})

	// A rename over a name B has cached replaces what B sees there.
	must(os.WriteFile(filepath.Join(a, "d", "h"), []byte("h's own"), 0o644))
	seen(t, "another create", content2(filepath.Join(b, "d", "h"), "h's own"))
	must(os.Rename(filepath.Join(a, "d", "g"), filepath.Join(a, "d", "h")))
	seen(t, "a rename over a cached name", content2(filepath.Join(b, "d", "h"), "OTHER"))

	// A directory B made: B knows every name in it, until another
	// client makes one.
	must(os.Mkdir(filepath.Join(b, "mine"), 0o755))
	must(listed(filepath.Join(b, "mine"), "b-made", false))
	must(os.WriteFile(filepath.Join(b, "mine", "b-made"), []byte("b"), 0o644))
	must(listed(filepath.Join(b, "mine"), "b-made", true)) // its own create: at once
	mb := filepath.Join(b, "mine", "a-made")
	if _, err := stat(mb); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("lstat %s before it is made: %v", mb, err)
	}
	seen(t, "a directory made on the other mount", func() error { _, err := stat(filepath.Join(a, "mine", "b-made")); return err })
	must(os.WriteFile(filepath.Join(a, "mine", "a-made"), []byte("a"), 0o644))
	seen(t, "a create in a directory the other mount made", content2(mb, "a"))
	seen(t, "a create in a directory the other mount made, listed", func() error { return listed(filepath.Join(b, "mine"), "a-made", true) })
	seen(t, "its own file still there", content2(filepath.Join(b, "mine", "b-made"), "b"))

	// A file B wrote and closed: B answers its kernel's getattr with the
	// attributes its writes' replies carried, until a change anywhere.
	bw, aw := filepath.Join(b, "d", "b-wrote"), filepath.Join(a, "d", "b-wrote")
	must(os.WriteFile(bw, []byte("written by b"), 0o644))
	if st, err := stat(bw); err != nil || st.Size != 12 {
		t.Fatalf("lstat after b's write: size %d, %v", st.Size, err)
	}
	seen(t, "a file the other mount wrote", content2(aw, "written by b"))
	must(os.WriteFile(aw, []byte("rewritten by a, longer"), 0o644))
	seen(t, "a rewrite of a file this mount wrote and closed", func() error {
		st, err := stat(bw)
		if err == nil && st.Size != 22 {
			err = fmt.Errorf("size %d", st.Size)
		}
		return err
	})
	must(os.WriteFile(bw, []byte("b again"), 0o644))
	if st, err := stat(bw); err != nil || st.Size != 7 {
		t.Fatalf("lstat after b's second write: size %d, %v", st.Size, err)
	}
	must(os.Chmod(aw, 0o640))
	seen(t, "a chmod of a file this mount wrote and closed", func() error {
		st, err := stat(bw)
		if err == nil && st.Mode&0o777 != 0o640 {
			err = fmt.Errorf("mode %o", st.Mode&0o777)
		}
		return err
	})

	// A read-only open is made on the bricks only when a read misses the
	// page cache; a file open for reading and then removed through the
	// same mount still reads back, as on a local file system.
	pr := filepath.Join(a, "d", "read-then-removed")
	must(os.WriteFile(pr, []byte("still here"), 0o644))
	rf, err := os.Open(pr)
	must(err)
	must(os.Remove(pr))
	must(unix.Fadvise(int(rf.Fd()), 0, 0, unix.FADV_DONTNEED)) // the read goes to the bricks
	got := make([]byte, 32)
	n, err := rf.ReadAt(got, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("read of an open file removed since: %v", err)
	}
	if string(got[:n]) != "still here" {
		t.Fatalf("read %q from an open file removed since", got[:n])
	}
	must(rf.Close())

	// Directories.
	db := filepath.Join(b, "d", "sub")
	if _, err := stat(db); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("lstat %s before it is made: %v", db, err)
	}
	must(os.Mkdir(filepath.Join(a, "d", "sub"), 0o700))
	seen(t, "a mkdir", func() error {
		st, err := stat(db)
		if err == nil && st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
			err = fmt.Errorf("mode %o", st.Mode)
		}
		return err
	})
	must(os.Remove(filepath.Join(a, "d", "sub")))
	seen(t, "an rmdir", func() error {
		if _, err := stat(db); !errors.Is(err, syscall.ENOENT) {
			return fmt.Errorf("lstat: %v", err)
		}
		return nil
	})
}

func content2(p, want string) func() error {
	return func() error {
		got, err := os.ReadFile(p)
		if err == nil && string(got) != want {
			err = fmt.Errorf("read %q, want %q", got, want)
		}
		return err
	}
}

// listed checks whether dir lists name.
func listed(dir, name string, want bool) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	found := false
	for _, e := range ents {
		found = found || e.Name() == name
	}
	if found != want {
		return fmt.Errorf("%s listed: %v, want %v", name, found, want)
	}
	return nil
}

// After a create, mkdir, unlink or rmdir the kernel asks for the
// directory's attributes again; the mount answers with what the bricks
// reported with the call (the directory's attributes after it). They must
// be what the bricks hold: what another mount, which reads them from the
// bricks once the change's upcall drops its cache, says; on distribute
// the latest times of the bricks' copies, on a replica set those of the
// copy lookups read from (the first brick's). And after a close, the
// file's attributes are those the bricks hold (on a replica set, after
// the changelog is cleared at release).
func TestDirAttrsAfterEntryCalls(t *testing.T) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
	c := clustertest.New(t)
	n := c.Pool(1)[0]
	for _, tc := range []struct {
		name    string
		replica bool
	}{{"distribute", false}, {"replica2", true}} {
		t.Run(tc.name, func(t *testing.T) {
			vol := "da" + tc.name[:4]
			b1, b2 := n.Brick(vol+"1"), n.Brick(vol+"2")
			args := []string{"volume", "create", vol, b1, b2}
			if tc.replica {
				args = []string{"volume", "create", vol, "replica", "2", b1, b2, "force"}
			}
			n.MustCLI(args...)
			n.MustCLI("volume", "start", vol)
			mnt := mountPublic(t, c, n, vol, vol)
			other := mountPublic(t, c, n, vol, vol+"-other")
			copies := []string{b1[strings.Index(b1, ":")+1:], b2[strings.Index(b2, ":")+1:]}
			if tc.replica {
				copies = copies[:1]
			}
			entryCallCases(t, mnt, other, copies)
		})
	}
}

// entryCallCases runs TestDirAttrsAfterEntryCalls's calls on mount mnt,
// checking the directory's attributes against the other mount and
// against copies, the brick directories whose latest times it must show.
func entryCallCases(t *testing.T, mnt, other string, copies []string) {
	d, od := filepath.Join(mnt, "d"), filepath.Join(other, "d")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	check := func(what string) {
		t.Helper()
		var got syscall.Stat_t
		if err := syscall.Stat(d, &got); err != nil {
			t.Fatal(err)
		}
		var mtime, ctime int64
		for _, cp := range copies {
			var st syscall.Stat_t
			if err := syscall.Stat(filepath.Join(cp, "d"), &st); err != nil {
				t.Fatal(err)
			}
			mtime, ctime = max(mtime, st.Mtim.Nano()), max(ctime, st.Ctim.Nano())
		}
		if got.Mtim.Nano() != mtime || got.Ctim.Nano() != ctime {
			t.Fatalf("%s: the mount says mtime %d ctime %d; the bricks' copies' latest %d %d", what, got.Mtim.Nano(), got.Ctim.Nano(), mtime, ctime)
		}
		start := time.Now()
		for {
			var st syscall.Stat_t
			if err := syscall.Stat(od, &st); err != nil {
				t.Fatal(err)
			}
			if st.Mtim == got.Mtim && st.Ctim == got.Ctim && st.Nlink == got.Nlink && st.Size == got.Size && st.Blocks == got.Blocks {
				return
			}
			if time.Since(start) > upcallBound {
				t.Fatalf("%s: the mount says mtime %v ctime %v links %d size %d blocks %d; the other mount %v %v %d %d %d", what,
					got.Mtim, got.Ctim, got.Nlink, got.Size, got.Blocks, st.Mtim, st.Ctim, st.Nlink, st.Size, st.Blocks)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// A file's attributes after its close, as the bricks hold them: the
	// other mount has never seen the file and asks them.
	checkFile := func(p string) {
		t.Helper()
		var got, want syscall.Stat_t
		if err := syscall.Stat(p, &got); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Stat(filepath.Join(other, strings.TrimPrefix(p, mnt)), &want); err != nil {
			t.Fatal(err)
		}
		if got.Mtim != want.Mtim || got.Ctim != want.Ctim || got.Size != want.Size || got.Blocks != want.Blocks || got.Nlink != want.Nlink {
			t.Fatalf("%s after its close: the mount says mtime %v ctime %v size %d blocks %d links %d; the bricks %v %v %d %d %d", p,
				got.Mtim, got.Ctim, got.Size, got.Blocks, got.Nlink, want.Mtim, want.Ctim, want.Size, want.Blocks, want.Nlink)
		}
	}
	check("a new directory")
	// The other mount keeps d's listing; a name it never looked up, made
	// here, must show in it.
	if err := listed(od, "f00", false); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		p := filepath.Join(d, fmt.Sprintf("f%02d", i))
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		check("after creating " + p)
		checkFile(p)
		if i == 0 {
			seen(t, "a create the other mount never looked up, listed", func() error { return listed(od, "f00", true) })
		}
	}
	for i := range 5 {
		p := filepath.Join(d, fmt.Sprintf("sub%d", i))
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		check("after mkdir " + p)
	}
	if err := os.Symlink("f00", filepath.Join(d, "link")); err != nil {
		t.Fatal(err)
	}
	check("after symlink")
	if err := os.Link(filepath.Join(d, "f00"), filepath.Join(d, "hard")); err != nil {
		t.Fatal(err)
	}
	check("after link")
	for i := range 20 {
		if err := os.Remove(filepath.Join(d, fmt.Sprintf("f%02d", i))); err != nil {
			t.Fatal(err)
		}
		check(fmt.Sprintf("after unlinking f%02d", i))
	}
	for i := range 5 {
		if err := os.Remove(filepath.Join(d, fmt.Sprintf("sub%d", i))); err != nil {
			t.Fatal(err)
		}
		check(fmt.Sprintf("after rmdir sub%d", i))
	}
	if err := os.Rename(filepath.Join(d, "hard"), filepath.Join(d, "moved")); err != nil {
		t.Fatal(err)
	}
	check("after rename")
}

// A directory that a process holds open (rm -r, find -delete) still has
// its attributes answered by the mount after an entry call in it: go-fuse
// hands the mount the open directory's handle with the kernel's
// permission checks, which must not send each to the bricks. Checked with
// the bricks stopped: a call that went to them would wait.
func TestDirAttrsWithDirOpen(t *testing.T) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
	c := clustertest.New(t)
	n := c.Pool(1)[0]
	n.MustCLI("volume", "create", "dopen", n.Brick("do1"), n.Brick("do2"))
	n.MustCLI("volume", "start", "dopen")
	mnt := mountVolume(t, c, n, "dopen")
	d := filepath.Join(mnt, "d")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := os.WriteFile(filepath.Join(d, fmt.Sprint("f", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := os.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	if _, err := dir.Readdirnames(-1); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := unix.Unlinkat(int(dir.Fd()), fmt.Sprint("f", i), 0); err != nil {
			t.Fatal(err)
		}
	}
	var before syscall.Stat_t
	if err := syscall.Fstat(int(dir.Fd()), &before); err != nil {
		t.Fatal(err)
	}
	if err := unix.Unlinkat(int(dir.Fd()), "f2", 0); err != nil {
		t.Fatal(err)
	}
	pids := n.BrickPIDs()
	for _, p := range pids {
		if err := syscall.Kill(p, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	cont := sync.OnceFunc(func() {
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGCONT)
		}
	})
	defer cont()
	done := make(chan error, 1)
	var st syscall.Stat_t
	go func() { done <- syscall.Fstat(int(dir.Fd()), &st) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Second):
		cont()
		<-done
		t.Fatal("fstat of the open directory after an unlink waited for the (stopped) bricks")
	}
	cont()
	if st.Mtim.Nano() < before.Mtim.Nano() || st.Ino != before.Ino {
		t.Fatalf("directory after the unlink: mtime %v ino %d, before it %v %d", st.Mtim, st.Ino, before.Mtim, before.Ino)
	}
}
