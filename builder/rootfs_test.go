package builder

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/image/store"
)

func TestIsRunArtifact(t *testing.T) {
	for _, c := range []struct {
		hdr  tar.Header
		want bool
	}{
		{tar.Header{Name: "proc/", Typeflag: tar.TypeDir}, true},
		{tar.Header{Name: "dev", Typeflag: tar.TypeDir}, true},
		{tar.Header{Name: "etc/hosts", Typeflag: tar.TypeReg}, true},
		{tar.Header{Name: "etc/hosts", Typeflag: tar.TypeReg, Size: 10}, false},
		{tar.Header{Name: "etc/", Typeflag: tar.TypeDir}, false},
		{tar.Header{Name: "proc/x", Typeflag: tar.TypeReg}, false},
		{tar.Header{Name: "app/proc", Typeflag: tar.TypeDir}, false},
	} {
		if got := isRunArtifact(&c.hdr); got != c.want {
			t.Errorf("isRunArtifact(%s %c) = %v", c.hdr.Name, c.hdr.Typeflag, got)
		}
	}
}

// An overlayfs upper directory becomes an OCI layer: deletions as
// whiteouts, opaque directories marked, the runtime's mount points left
// out; an upper directory with only those is no layer at all.
func TestPackDiff(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: whiteouts are device nodes and trusted xattrs")
	}
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := &Builder{images: st}
	upper := t.TempDir()
	for _, d := range []string{"proc", "sys", "dev", "etc", "opaque"} {
		os.Mkdir(filepath.Join(upper, d), 0o755)
	}
	os.WriteFile(filepath.Join(upper, "etc/hosts"), nil, 0o644)
	if err := unix.Mknod(filepath.Join(upper, "etc/deleted"), unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(filepath.Join(upper, "opaque"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		t.Skipf("trusted xattrs: %v", err)
	}
	os.WriteFile(filepath.Join(upper, "opaque/new"), []byte("n"), 0o644)
	desc, diffID, err := b.packDiff(context.Background(), upper, t.TempDir(), diffOptions{container: true})
	if err != nil || desc == nil {
		t.Fatalf("packDiff: %v %v", desc, err)
	}
	if desc.Digest != diffID {
		t.Errorf("an uncompressed layer has digest %s and diff ID %s", desc.Digest, diffID)
	}
	f, err := st.OpenBlob(desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	want := []string{"etc/", "etc/.wh.deleted", "opaque/", "opaque/.wh..wh..opq", "opaque/new"}
	if !slices.Equal(names, want) {
		t.Errorf("layer entries %q, want %q", names, want)
	}

	// Only mount points: no layer.
	only := t.TempDir()
	os.Mkdir(filepath.Join(only, "proc"), 0o755)
	if desc, _, err := b.packDiff(context.Background(), only, t.TempDir(), diffOptions{container: true}); err != nil || desc != nil {
		t.Errorf("an upper directory with only mount points gave %v, %v", desc, err)
	}

	// /etc copied up for /etc/hosts alone, as in the image: no layer;
	// with its mode changed, or something else changed in it, it stays.
	lower := t.TempDir()
	os.Mkdir(filepath.Join(lower, "etc"), 0o755)
	for _, c := range []struct {
		mode  os.FileMode
		extra string
		want  []string
	}{
		{0o755, "", nil},
		{0o700, "", []string{"etc/"}},
		{0o755, "etc/passwd", []string{"etc/", "etc/passwd"}},
	} {
		up := t.TempDir()
		os.Mkdir(filepath.Join(up, "etc"), c.mode)
		os.Chmod(filepath.Join(up, "etc"), c.mode)
		os.WriteFile(filepath.Join(up, "etc/hosts"), nil, 0o644)
		if c.extra != "" {
			os.WriteFile(filepath.Join(up, c.extra), []byte("x"), 0o644)
		}
		desc, _, err := b.packDiff(context.Background(), up, t.TempDir(), diffOptions{container: true, lowers: []string{lower}})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		if desc != nil {
			f, _ := st.OpenBlob(desc.Digest)
			tr := tar.NewReader(f)
			for h, err := tr.Next(); err == nil; h, err = tr.Next() {
				got = append(got, h.Name)
			}
			f.Close()
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("/etc mode %o with %q: layer %q, want %q", c.mode, c.extra, got, c.want)
		}
	}
}
