package layer

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPackOverlayUpper changes files through a real overlayfs mount and
// packs its upper directory: the kernel's whiteouts and opaque directories
// come out as OCI whiteouts, so a container's changes become a layer.
func TestPackOverlayUpper(t *testing.T) {
	requireRoot(t)
	base := t.TempDir()
	lower, upper, work, merged := filepath.Join(base, "lower"), filepath.Join(base, "upper"), filepath.Join(base, "work"), filepath.Join(base, "merged")
	for _, d := range []string{lower + "/d", lower + "/etc", upper, work, merged} {
		os.MkdirAll(d, 0o755)
	}
	os.WriteFile(lower+"/d/old", []byte("o"), 0o644)
	os.WriteFile(lower+"/etc/gone", []byte("g"), 0o644)
	os.WriteFile(lower+"/etc/keep", []byte("k"), 0o644)
	if err := unix.Mount("overlay", merged, "overlay", 0, "lowerdir="+lower+",upperdir="+upper+",workdir="+work); err != nil {
		t.Skipf("overlayfs mount: %v", err)
	}
	mounted := true
	defer func() {
		if mounted {
			unix.Unmount(merged, unix.MNT_DETACH)
		}
	}()
	if err := os.Remove(merged + "/etc/gone"); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(merged + "/d"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(merged+"/d", 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(merged+"/d/new", []byte("n"), 0o644)
	if err := unix.Unmount(merged, 0); err != nil {
		t.Fatal(err)
	}
	mounted = false

	var buf bytes.Buffer
	if err := Pack(context.Background(), &buf, upper, PackOptions{Whiteouts: WhiteoutOverlay}); err != nil {
		t.Fatal(err)
	}
	got := tarNames(t, buf.Bytes())
	want := []string{"d/", "d/.wh..wh..opq", "d/new", "etc/", "etc/.wh.gone"}
	if !slices.Equal(got, want) {
		t.Errorf("layer of the upper dir = %q, want %q", got, want)
	}
}
