package volumes

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/cais-platform/cais/errdefs"
)

// fakeDriver counts mounts, to check the store mounts once for many
// containers.
type fakeDriver struct {
	mu               sync.Mutex
	mounts, unmounts int
	refuse           error
}

var _ Driver = (*fakeDriver)(nil)

func (d *fakeDriver) Name() string { return "fake" }
func (d *fakeDriver) Create(ctx context.Context, v Volume) error {
	return d.refuse
}
func (d *fakeDriver) Mount(ctx context.Context, v Volume) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.mounts++
	return nil
}
func (d *fakeDriver) Unmount(ctx context.Context, v Volume) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.unmounts++
	return nil
}
func (d *fakeDriver) Remove(ctx context.Context, v Volume) error { return nil }

func TestStore(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	fd := &fakeDriver{}
	var events []string
	var mu sync.Mutex
	s, err := Open(Options{Root: root, Drivers: []Driver{fd}, Publish: func(action, name string, _ map[string]string) {
		mu.Lock()
		events = append(events, action+" "+name)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.Create(ctx, CreateOptions{Name: "data", Labels: map[string]string{"a": "b"}})
	if err != nil || v.Driver != "local" || v.Mountpoint != filepath.Join(root, "data", "_data") || v.Labels["a"] != "b" {
		t.Fatalf("create: %+v %v", v, err)
	}
	if again, err := s.Create(ctx, CreateOptions{Name: "data"}); err != nil || again.CreatedAt != v.CreatedAt {
		t.Errorf("create again: %+v %v", again, err)
	}
	if _, err := s.Create(ctx, CreateOptions{Name: "data", Driver: "fake"}); !errors.Is(err, errdefs.ErrExists) {
		t.Errorf("create with another driver: %v", err)
	}
	if _, err := s.Create(ctx, CreateOptions{Name: "xy", Driver: "nosuch"}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("unknown driver: %v", err)
	}
	anon, err := s.Create(ctx, CreateOptions{})
	if err != nil || len(anon.Name) != 64 || !anon.Anonymous {
		t.Fatalf("anonymous: %+v %v", anon, err)
	}
	f, err := s.Create(ctx, CreateOptions{Name: "shared", Driver: "fake"})
	if err != nil {
		t.Fatal(err)
	}
	// Two containers mount the fake volume: one driver mount; it is
	// unmounted after the second stops.
	for _, id := range []string{"c1", "c2"} {
		if p, err := s.Mount(ctx, "shared", id); err != nil || p != f.Mountpoint {
			t.Fatalf("mount %s: %q %v", id, p, err)
		}
	}
	if err := s.Remove(ctx, "shared", false); !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "remove shared: volume is in use - [c1, c2]") {
		t.Errorf("remove in use: %v", err)
	}
	s.Unmount(ctx, "shared", "c1")
	if fd.mounts != 1 || fd.unmounts != 0 {
		t.Errorf("after one unmount: %d mounts, %d unmounts", fd.mounts, fd.unmounts)
	}
	s.Unmount(ctx, "shared", "c2")
	if fd.mounts != 1 || fd.unmounts != 1 {
		t.Errorf("after both: %d mounts, %d unmounts", fd.mounts, fd.unmounts)
	}
	// Still referenced by the stopped containers.
	if err := s.Remove(ctx, "shared", false); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("remove referenced: %v", err)
	}
	s.Unref("shared", "c1")
	s.Unref("shared", "c2")
	// The store comes back from disk.
	s2, err := Open(Options{Root: root, Drivers: []Driver{fd}})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range s2.List() {
		names = append(names, v.Name)
	}
	want := []string{anon.Name, "data", "shared"}
	sort.Strings(want)
	if !reflect.DeepEqual(names, want) {
		t.Errorf("reopened: %v, want %v", names, want)
	}
	if got, _ := s2.Get("data"); got.Labels["a"] != "b" || got.Driver != "local" {
		t.Errorf("reopened data: %+v", got)
	}
	os.WriteFile(filepath.Join(anon.Mountpoint, "f"), []byte("12345"), 0o644)
	// Prune takes anonymous volumes only, unless all.
	removed, space := s.Prune(ctx, false, nil)
	if !reflect.DeepEqual(removed, []string{anon.Name}) || space != 5 {
		t.Errorf("prune: %v %d", removed, space)
	}
	s.Ref("data", "c3")
	removed, _ = s.Prune(ctx, true, nil)
	if !reflect.DeepEqual(removed, []string{"shared"}) {
		t.Errorf("prune all: %v", removed)
	}
	if _, err := s.Get("shared"); !errors.Is(err, errdefs.ErrNotFound) || err.Error() != "get shared: no such volume: not found" {
		t.Errorf("get removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "shared")); !os.IsNotExist(err) {
		t.Errorf("removed volume's directory: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	wantEvents := "create data,create " + anon.Name + ",create shared,mount shared,mount shared,unmount shared,unmount shared,destroy " + anon.Name + ",destroy shared"
	if got := strings.Join(events, ","); got != wantEvents {
		t.Errorf("events\n%s\nwant\n%s", got, wantEvents)
	}
	fd.refuse = errdefs.ErrInvalid
	if _, err := s.Create(ctx, CreateOptions{Name: "refused", Driver: "fake"}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("refused by the driver: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "refused")); !os.IsNotExist(err) {
		t.Errorf("a refused volume left its directory: %v", err)
	}
}

func TestCopyUp(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (file owners)")
	}
	ctx := context.Background()
	rootfs := t.TempDir()
	os.MkdirAll(filepath.Join(rootfs, "etc/app/conf.d"), 0o750)
	os.WriteFile(filepath.Join(rootfs, "etc/app/conf.d/a.conf"), []byte("x=1\n"), 0o640)
	os.Symlink("/etc/passwd", filepath.Join(rootfs, "etc/app/pw"))
	os.Chown(filepath.Join(rootfs, "etc/app"), 65534, 65534)
	// A link out of the root is followed inside it: nothing is copied.
	os.Symlink("/", filepath.Join(rootfs, "escape"))
	vol := t.TempDir()
	if err := CopyUp(ctx, rootfs, "/etc/app", vol); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(vol, "conf.d/a.conf"))
	if err != nil || string(b) != "x=1\n" {
		t.Errorf("copied file: %q %v", b, err)
	}
	if l, _ := os.Readlink(filepath.Join(vol, "pw")); l != "/etc/passwd" {
		t.Errorf("symlink %q", l)
	}
	fi, _ := os.Stat(vol)
	if fi.Mode().Perm() != 0o750 || inodeOwner(fi) != 65534 {
		t.Errorf("volume root mode %v owner %d", fi.Mode(), inodeOwner(fi))
	}
	// A volume with content is left alone.
	os.WriteFile(filepath.Join(rootfs, "etc/app/new"), nil, 0o644)
	if err := CopyUp(ctx, rootfs, "/etc/app", vol); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(vol, "new")); !os.IsNotExist(err) {
		t.Errorf("copied into a volume with content")
	}
	vol2 := t.TempDir()
	if err := CopyUp(ctx, rootfs, "/escape/etc/app/../../nosuch", vol2); err != nil {
		t.Fatal(err)
	}
	if err := CopyUp(ctx, rootfs, "/escape/etc", vol2); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(vol2, "app/conf.d/a.conf")); err != nil {
		t.Errorf("a symlink to / should resolve to the root's own /etc: %v", err)
	}
	if _, err := os.Stat(filepath.Join(vol2, "hostname")); err == nil {
		t.Errorf("the host's /etc was copied")
	}
}

func inodeOwner(fi os.FileInfo) uint32 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Uid
	}
	return 0
}
