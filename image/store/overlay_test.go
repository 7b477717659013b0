package store

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestLayersMountAsOverlay mounts unpacked layers with the kernel's
// overlayfs and checks that whiteouts and opaque directories hide what
// they should: the form package layer writes is the one overlayfs reads.
func TestLayersMountAsOverlay(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	ctx := context.Background()
	s := newStore(t)
	m := makeImage(t, s, "sh",
		tarOf(t, "etc/", "", "etc/passwd", "root", "etc/gone", "x", "d/", "", "d/old", "o", "keep/", "", "keep/a", "a"),
		tarOf(t, "etc/.wh.gone", "", "d/", "", "d/.wh..wh..opq", "", "d/new", "n", ".wh.keep", ""))
	lowers, err := s.Layers(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	merged := filepath.Join(t.TempDir(), "merged")
	os.Mkdir(merged, 0o755)
	if err := unix.Mount("overlay", merged, "overlay", unix.MS_RDONLY, "lowerdir="+strings.Join(lowers, ":")); err != nil {
		t.Skipf("overlayfs mount: %v", err)
	}
	defer unix.Unmount(merged, unix.MNT_DETACH)
	list := func(dir string) []string {
		e, err := os.ReadDir(filepath.Join(merged, dir))
		if err != nil {
			t.Fatalf("read %s: %v", dir, err)
		}
		var names []string
		for _, x := range e {
			names = append(names, x.Name())
		}
		return names
	}
	if got := list("."); !slices.Equal(got, []string{"d", "etc"}) {
		t.Errorf("root = %q, want d and etc (keep whited out)", got)
	}
	if got := list("etc"); !slices.Equal(got, []string{"passwd"}) {
		t.Errorf("etc = %q, want passwd only", got)
	}
	if got := list("d"); !slices.Equal(got, []string{"new"}) {
		t.Errorf("d = %q, want new only (opaque)", got)
	}
}
