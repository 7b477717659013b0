package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/cais-platform/cais/test/clustertest"
)

// A file's attributes right after its close are those it keeps: a stat
// through the mount that wrote it, made as soon as close(2) returns, must
// answer what a mount that never saw the file answers later, when
// everything the close set off is done. On a replicated volume the
// changelog mark a write leaves on the copies changes their change time
// when it is cleared, so it must be cleared before the close returns (or
// the stat must wait for it), never behind the stat's back.
//
// Each way of closing is repeated: the race is narrow when the machine
// is idle (the kernel sends the release as close(2) returns).
func TestAttrsRightAfterClose(t *testing.T) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
	c := clustertest.New(t)
	n := c.Pool(1)[0]
	for _, tc := range []struct {
		name   string
		layout []string
	}{
		{"replica2", []string{"replica", "2", n.Brick("ac-r1"), n.Brick("ac-r2"), "force"}},
		{"distribute", []string{n.Brick("ac-d1"), n.Brick("ac-d2")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vol := "ac" + tc.name[:4]
			n.MustCLI(append([]string{"volume", "create", vol}, tc.layout...)...)
			n.MustCLI("volume", "start", vol)
			mnt := mountPublic(t, c, n, vol, vol)
			other := mountPublic(t, c, n, vol, vol+"-other")
			closeAttrCases(t, mnt, other, 100)
		})
	}
}

// closeAttrCases writes files on mnt in several ways, rounds times each,
// stats each as soon as it is closed, and then checks those stats
// against other's, a mount that had not seen the files.
func closeAttrCases(t *testing.T, mnt, other string, rounds int) {
	t.Helper()
	ways := []struct {
		name  string
		write func(p string) error
	}{
		// create, write, close: os.WriteFile, cp, tar.
		{"written", func(p string) error { return os.WriteFile(p, []byte("x"), 0o644) }},
		// create and close: touch.
		{"empty", func(p string) error { return os.WriteFile(p, nil, 0o644) }},
		// an existing file opened for writing and written.
		{"rewritten", func(p string) error {
			if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
				return err
			}
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			if _, err := f.WriteAt([]byte("yy"), 1); err != nil {
				f.Close()
				return err
			}
			return f.Close()
		}},
		// written, then fstat before the close: the kernel keeps what
		// the fstat answered.
		{"fstat", func(p string) error {
			f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			if err != nil {
				return err
			}
			if _, err := f.Write([]byte("x")); err != nil {
				f.Close()
				return err
			}
			if _, err := f.Stat(); err != nil {
				f.Close()
				return err
			}
			return f.Close()
		}},
		// a shell's redirection: the descriptor is duplicated and the
		// first copy closed before the write; the file is closed twice.
		{"duplicated", func(p string) error {
			fd, err := syscall.Open(p, syscall.O_CREAT|syscall.O_WRONLY|syscall.O_EXCL, 0o644)
			if err != nil {
				return fmt.Errorf("open: %w", err)
			}
			fd2, err := syscall.Dup(fd)
			syscall.Close(fd)
			if err != nil {
				return fmt.Errorf("dup: %w", err)
			}
			if _, err := syscall.Write(fd2, []byte("x")); err != nil {
				syscall.Close(fd2)
				return fmt.Errorf("write: %w", err)
			}
			return syscall.Close(fd2)
		}},
	}
	type seen struct {
		p  string
		st syscall.Stat_t
	}
	var stats []seen
	for _, w := range ways {
		if err := os.Mkdir(filepath.Join(mnt, w.name), 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range rounds {
			p := filepath.Join(w.name, fmt.Sprintf("f%03d", i))
			if err := w.write(filepath.Join(mnt, p)); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			var st syscall.Stat_t
			if err := syscall.Stat(filepath.Join(mnt, p), &st); err != nil {
				t.Fatal(err)
			}
			stats = append(stats, seen{p, st})
		}
	}
	bad := 0
	badBy := map[string]int{}
	for _, s := range stats {
		var want syscall.Stat_t
		if err := syscall.Stat(filepath.Join(other, s.p), &want); err != nil {
			t.Fatal(err)
		}
		got := s.st
		if got.Mtim != want.Mtim || got.Ctim != want.Ctim || got.Size != want.Size || got.Blocks != want.Blocks || got.Nlink != want.Nlink {
			bad++
			badBy[filepath.Dir(s.p)]++
			if badBy[filepath.Dir(s.p)] <= 2 {
				t.Errorf("%s right after its close: the mount said mtime %v ctime %v size %d blocks %d links %d; later, a mount that had not seen it %v %v %d %d %d", s.p,
					got.Mtim, got.Ctim, got.Size, got.Blocks, got.Nlink, want.Mtim, want.Ctim, want.Size, want.Blocks, want.Nlink)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d files' attributes changed after their close (%v)", bad, len(stats), badBy)
	}
}
