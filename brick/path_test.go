package brick_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/brick"
	"github.com/cais-platform/cais/errdefs"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("brick marks are trusted.* extended attributes: needs root")
	}
}

// rootDir is a fresh directory on the root file system.
func rootDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	var a, b unix.Stat_t
	if err := unix.Stat(dir, &a); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat("/", &b); err != nil {
		t.Fatal(err)
	}
	if a.Dev != b.Dev {
		t.Skipf("%s is not on the root file system", dir)
	}
	return dir
}

// mountFS mounts a fresh file system of type fstype on a new directory and
// unmounts it when the test ends.
func mountFS(t *testing.T, fstype string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount(fstype, dir, fstype, 0, "size=16m"); err != nil {
		t.Skipf("cannot mount %s: %v", fstype, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// mark returns the volume ID a directory is marked with, or "".
func mark(t *testing.T, path string) string {
	t.Helper()
	buf := make([]byte, 64)
	n, err := unix.Getxattr(path, brick.VolumeIDXattr, buf)
	if errors.Is(err, unix.ENODATA) || errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatalf("read mark of %s: %v", path, err)
	}
	id, err := uuid.FromBytes(buf[:n])
	if err != nil {
		t.Fatalf("mark of %s is %d bytes, not a UUID: %v", path, n, err)
	}
	return id.String()
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func wantErr(t *testing.T, err, kind error, msg string) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("error %v, want one wrapping %v", err, kind)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Errorf("error %q does not mention %q", err, msg)
	}
}

func TestPrepareArguments(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	id := uuid.NewString()
	tests := []struct {
		name, path, volID string
		msg               string
	}{
		{"bad volume ID", filepath.Join(dir, "b"), "not-a-uuid", "volume ID"},
		{"empty volume ID", filepath.Join(dir, "b"), "", "volume ID"},
		{"relative path", "data/brick", id, "must be absolute and clean"},
		{"dot-dot path", dir + "/x/../b", id, "must be absolute and clean"},
		{"trailing slash", dir + "/b/", id, "must be absolute and clean"},
		{"double slash", dir + "//b", id, "must be absolute and clean"},
		{"a file", file, id, "exists and is not a directory"},
	}
	for _, tt := range tests {
		for _, force := range []bool{false, true} {
			res, err := brick.Prepare(tt.path, "h:"+tt.path, tt.volID, force)
			wantErr(t, err, errdefs.ErrInvalid, tt.msg)
			if res.Created != "" {
				t.Errorf("%s: CreatedDir set on error", tt.name)
			}
		}
	}
	if exists(filepath.Join(dir, "b")) {
		t.Error("a refused Prepare created the directory")
	}
}

func TestPrepareRootPartition(t *testing.T) {
	needRoot(t)
	dir := rootDir(t)
	id := uuid.NewString()

	// New directory: the root check comes before anything is created.
	path := filepath.Join(dir, "brick1")
	res, err := brick.Prepare(path, "server1:"+path, id, false)
	wantErr(t, err, errdefs.ErrNeedsForce, "The brick server1:"+path+" is being created in the root partition")
	if res.Created != "" || exists(path) {
		t.Error("Prepare refused for the root partition but created the directory")
	}

	// Existing directory: refused the same way, and left unmarked.
	existing := filepath.Join(dir, "existing")
	if err := os.Mkdir(existing, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = brick.Prepare(existing, "server1:"+existing, id, false)
	wantErr(t, err, errdefs.ErrNeedsForce, "root partition")
	if m := mark(t, existing); m != "" {
		t.Errorf("refused directory was marked %s", m)
	}

	// force overrides.
	res, err = brick.Prepare(path, "server1:"+path, id, true)
	if err != nil {
		t.Fatalf("Prepare with force: %v", err)
	}
	if res.Created == "" {
		t.Error("CreatedDir = false for a new directory")
	}
	if fi, err := os.Stat(path); err != nil || !fi.IsDir() {
		t.Fatalf("brick directory not created: %v", err)
	}
	if m := mark(t, path); m != id {
		t.Errorf("mark = %q, want %s", m, id)
	}
	if err := brick.Verify(path, id); err != nil {
		t.Errorf("Verify after Prepare: %v", err)
	}

	// An existing directory with force: not created, marked.
	res, err = brick.Prepare(existing, "server1:"+existing, id, true)
	if err != nil || res.Created != "" {
		t.Errorf("Prepare(existing, force) = %+v, %v", res, err)
	}
	if m := mark(t, existing); m != id {
		t.Errorf("existing directory marked %q, want %s", m, id)
	}

	// force also re-marks a brick of another volume.
	other := uuid.NewString()
	if _, err := brick.Prepare(path, "server1:"+path, other, true); err != nil {
		t.Fatalf("Prepare(force) over a marked brick: %v", err)
	}
	if err := brick.Verify(path, other); err != nil {
		t.Errorf("Verify after re-marking: %v", err)
	}
}

func TestVerify(t *testing.T) {
	needRoot(t)
	dir := rootDir(t)
	id, other := uuid.NewString(), uuid.NewString()
	path := filepath.Join(dir, "b")
	if _, err := brick.Prepare(path, "h:"+path, id, true); err != nil {
		t.Fatal(err)
	}
	if err := brick.Verify(path, id); err != nil {
		t.Errorf("Verify(own volume) = %v", err)
	}
	wantErr(t, brick.Verify(path, other), errdefs.ErrState, "belongs to volume ID "+id+", not "+other)

	unmarked := filepath.Join(dir, "unmarked")
	if err := os.Mkdir(unmarked, 0o755); err != nil {
		t.Fatal(err)
	}
	wantErr(t, brick.Verify(unmarked, id), errdefs.ErrState, "has no volume ID mark")

	// A mark that is not 16 bytes is no mark.
	if err := unix.Setxattr(unmarked, brick.VolumeIDXattr, []byte("short"), 0); err != nil {
		t.Fatal(err)
	}
	wantErr(t, brick.Verify(unmarked, id), errdefs.ErrState, "has no volume ID mark")

	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	wantErr(t, brick.Verify(file, id), errdefs.ErrState, "is not a directory")

	if err := brick.Verify(filepath.Join(dir, "missing"), id); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Verify(missing) = %v, want ErrNotExist", err)
	}
}

func TestRelease(t *testing.T) {
	needRoot(t)
	dir := rootDir(t)
	id := uuid.NewString()
	prepare := func(name string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		res, err := brick.Prepare(path, "h:"+path, id, true)
		if err != nil || res.Created != path {
			t.Fatalf("Prepare(%s) = %+v, %v", name, res, err)
		}
		return path
	}

	t.Run("created and empty", func(t *testing.T) {
		path := prepare("empty")
		if err := brick.Release(path, id, path); err != nil {
			t.Fatal(err)
		}
		if exists(path) {
			t.Error("Release kept an empty directory Prepare created")
		}
	})
	t.Run("created with data", func(t *testing.T) {
		path := prepare("data")
		if err := os.WriteFile(filepath.Join(path, "f"), []byte("data"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := brick.Release(path, id, path); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(path, "f")); err != nil || string(b) != "data" {
			t.Errorf("Release lost data: %q, %v", b, err)
		}
		if m := mark(t, path); m != "" {
			t.Errorf("mark %s kept", m)
		}
	})
	t.Run("not created", func(t *testing.T) {
		path := prepare("kept")
		if err := brick.Release(path, id, ""); err != nil {
			t.Fatal(err)
		}
		if !exists(path) {
			t.Error("Release removed a directory Prepare did not create")
		}
		if m := mark(t, path); m != "" {
			t.Errorf("mark %s kept", m)
		}
	})
	t.Run("other volume's mark", func(t *testing.T) {
		path := prepare("other")
		if err := brick.Release(path, uuid.NewString(), ""); err != nil {
			t.Fatal(err)
		}
		if m := mark(t, path); m != id {
			t.Errorf("Release removed another volume's mark: now %q", m)
		}
	})
	t.Run("unmarked", func(t *testing.T) {
		path := filepath.Join(dir, "plain")
		if err := os.Mkdir(path, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := brick.Release(path, id, ""); err != nil {
			t.Errorf("Release of an unmarked directory = %v", err)
		}
		if err := brick.Release(filepath.Join(dir, "missing"), id, filepath.Join(dir, "missing")); err != nil {
			t.Errorf("Release of a missing directory = %v", err)
		}
	})
}

// TestPrepareOnOwnFileSystem covers the refusals after the root-partition
// check, on a tmpfs so that check passes.
func TestPrepareOnOwnFileSystem(t *testing.T) {
	needRoot(t)
	mnt := mountFS(t, "tmpfs")
	id, other := uuid.NewString(), uuid.NewString()

	// The mount point itself.
	_, err := brick.Prepare(mnt, "h:"+mnt, id, false)
	wantErr(t, err, errdefs.ErrNeedsForce, "The brick h:"+mnt+" is a mount point")
	if m := mark(t, mnt); m != "" {
		t.Errorf("refused mount point marked %s", m)
	}

	// A new directory below it: no force needed.
	b1 := filepath.Join(mnt, "b1")
	res, err := brick.Prepare(b1, "h:"+b1, id, false)
	if err != nil || res.Created == "" {
		t.Fatalf("Prepare(%s) = %+v, %v", b1, res, err)
	}
	if err := brick.Verify(b1, id); err != nil {
		t.Fatalf("Verify: %v", err)
	}

	// The same directory again, for any volume.
	for _, v := range []string{id, other} {
		_, err = brick.Prepare(b1, "h:"+b1, v, false)
		wantErr(t, err, errdefs.ErrNeedsForce, b1+" is already part of a volume (volume ID "+id+")")
	}

	// Inside it, at any depth: the marked parent is named; nothing is created.
	for _, p := range []string{filepath.Join(b1, "sub"), filepath.Join(b1, "sub", "deeper")} {
		_, err = brick.Prepare(p, "h:"+p, other, false)
		wantErr(t, err, errdefs.ErrNeedsForce, "parent directory "+b1+" is already part of a volume")
	}
	if exists(filepath.Join(b1, "sub")) {
		t.Error("a refused Prepare created a directory")
	}
	// An existing directory inside it, too.
	inside := filepath.Join(b1, "existing")
	if err := os.Mkdir(inside, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = brick.Prepare(inside, "h:"+inside, other, false)
	wantErr(t, err, errdefs.ErrNeedsForce, "parent directory "+b1)

	// A sibling is fine; an existing empty directory is taken as it is.
	pre := filepath.Join(mnt, "pre")
	if err := os.Mkdir(pre, 0o755); err != nil {
		t.Fatal(err)
	}
	res, err = brick.Prepare(pre, "h:"+pre, other, false)
	if err != nil || res.Created != "" {
		t.Fatalf("Prepare(existing sibling) = %+v, %v", res, err)
	}
	if err := brick.Release(pre, other, res.Created); err != nil {
		t.Fatal(err)
	}
	if !exists(pre) || mark(t, pre) != "" {
		t.Error("Release of an existing directory must unmark it and keep it")
	}

	// force overrides each refusal.
	for _, p := range []string{mnt, b1, filepath.Join(b1, "sub")} {
		if _, err := brick.Prepare(p, "h:"+p, other, true); err != nil {
			t.Errorf("Prepare(%s, force) = %v", p, err)
		}
		if err := brick.Verify(p, other); err != nil {
			t.Errorf("Verify(%s) after forced Prepare: %v", p, err)
		}
	}
}

// TestPrepareWithoutXattrs: a file system without extended attributes is
// refused even with force, and a directory Prepare made is removed again.
func TestPrepareWithoutXattrs(t *testing.T) {
	needRoot(t)
	mnt := mountFS(t, "ramfs")
	for _, force := range []bool{false, true} {
		path := filepath.Join(mnt, "b")
		res, err := brick.Prepare(path, "h:"+path, uuid.NewString(), force)
		wantErr(t, err, errdefs.ErrInvalid, "cais is not supported on brick: h:"+path)
		if res.Created != "" {
			t.Error("CreatedDir set on error")
		}
		if exists(path) {
			t.Errorf("force=%v: Prepare left the directory it created", force)
		}
	}
}

// TestPrepareWithoutXattrsNested: when marking fails, Prepare removes the
// brick directory it made but not the parents MkdirAll made for it, and
// PrepareResult cannot tell Release about them either.
func TestPrepareWithoutXattrsNested(t *testing.T) {
	needRoot(t)
	mnt := mountFS(t, "ramfs")
	path := filepath.Join(mnt, "a", "b")
	_, err := brick.Prepare(path, "h:"+path, uuid.NewString(), false)
	wantErr(t, err, errdefs.ErrInvalid, "not supported")
	if exists(filepath.Join(mnt, "a")) {
		t.Errorf("failed Prepare left %s behind", filepath.Join(mnt, "a"))
	}
}
