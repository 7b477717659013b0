package containerfs

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cais-platform/cais/errdefs"
)

// sandbox makes base/outside/secret and a container root base/root with
// a file, a directory, and symlinks that point out of it.
func sandbox(tb testing.TB) (base, root string) {
	tb.Helper()
	base = tb.TempDir()
	root = filepath.Join(base, "root")
	for _, d := range []string{"outside", "root/etc", "root/data/sub", "root/tmp"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(base, "outside/secret"), []byte("host secret"), 0o600)
	os.WriteFile(filepath.Join(root, "etc/hostname"), []byte("box\n"), 0o644)
	os.WriteFile(filepath.Join(root, "data/sub/f"), []byte("content"), 0o644)
	os.Symlink("/", filepath.Join(root, "abs"))
	os.Symlink("../../outside", filepath.Join(root, "up"))
	os.Symlink("sub/f", filepath.Join(root, "data/link"))
	return base, root
}

func tarNames(t *testing.T, b []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		c, _ := io.ReadAll(tr)
		out[h.Name] = string(c) + h.Linkname
	}
}

func TestStatAndArchive(t *testing.T) {
	_, root := sandbox(t)
	st, err := Stat(root, "/data/link")
	if err != nil || st.Name != "link" || st.LinkTarget != "sub/f" || st.Mode&os.ModeSymlink == 0 {
		t.Errorf("stat of a link: %+v %v", st, err)
	}
	st, err = Stat(root, "/data")
	if err != nil || !st.Mode.IsDir() || st.Name != "data" {
		t.Errorf("stat of a directory: %+v %v", st, err)
	}
	var buf bytes.Buffer
	if err := Archive(context.Background(), &buf, root, "/data", nil); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"data/": "", "data/link": "sub/f", "data/sub/": "", "data/sub/f": "content"}
	if got := tarNames(t, buf.Bytes()); !reflect.DeepEqual(got, want) {
		t.Errorf("archive of a directory: %v, want %v", got, want)
	}
	buf.Reset()
	if err := Archive(context.Background(), &buf, root, "/etc/hostname", nil); err != nil {
		t.Fatal(err)
	}
	if got := tarNames(t, buf.Bytes()); !reflect.DeepEqual(got, map[string]string{"hostname": "box\n"}) {
		t.Errorf("archive of a file: %v", got)
	}
	// Symlinks on the way resolve inside the root: /abs/etc is the
	// root's /etc, /up/secret does not exist.
	if st, err := Stat(root, "/abs/etc/hostname"); err != nil || st.Size != 4 {
		t.Errorf("stat through an absolute link: %+v %v", st, err)
	}
	for _, p := range []string{"/up/secret", "/../outside/secret", "/abs/../../outside/secret"} {
		if _, err := Stat(root, p); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("stat %s: %v, want not found", p, err)
		}
	}
}

func tarOf(t *testing.T, ents ...tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range ents {
		body := h.Linkname
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len("x"))
			body = "x"
		}
		h.Mode = 0o644
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(body))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func TestExtract(t *testing.T) {
	base, root := sandbox(t)
	ctx := context.Background()
	ok := tarOf(t, tar.Header{Name: "new/", Typeflag: tar.TypeDir}, tar.Header{Name: "new/f", Typeflag: tar.TypeReg})
	if err := Extract(ctx, bytes.NewReader(ok), root, "/tmp", ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "tmp/new/f")); err != nil || string(b) != "x" {
		t.Errorf("extracted: %q %v", b, err)
	}
	// Writing through a link that points out lands inside the root.
	via := tarOf(t, tar.Header{Name: "secret", Typeflag: tar.TypeReg})
	if err := Extract(ctx, bytes.NewReader(via), root, "/up", ExtractOptions{}); err != nil {
		t.Logf("through /up: %v", err)
	}
	evil := tarOf(t, tar.Header{Name: "esc", Typeflag: tar.TypeSymlink, Linkname: "/"}, tar.Header{Name: "esc/outside/secret", Typeflag: tar.TypeReg})
	if err := Extract(ctx, bytes.NewReader(evil), root, "/tmp", ExtractOptions{}); err != nil {
		t.Logf("through a symlink to /: %v", err)
	}
	for name, b := range map[string][]byte{
		"dot-dot":   tarOf(t, tar.Header{Name: "../../outside/secret", Typeflag: tar.TypeReg}),
		"hard link": tarOf(t, tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "../outside/secret"}),
		"device":    tarOf(t, tar.Header{Name: "sda", Typeflag: tar.TypeBlock, Devmajor: 8}),
	} {
		err := Extract(ctx, bytes.NewReader(b), root, "/tmp", ExtractOptions{})
		if !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%s: %v, want an invalid-request error", name, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(base, "outside/secret")); string(b) != "host secret" {
		t.Errorf("the file outside the root changed: %q", b)
	}
	ents, _ := os.ReadDir(filepath.Join(base, "outside"))
	if len(ents) != 1 {
		t.Errorf("files appeared outside the root: %v", ents)
	}
	if err := Extract(ctx, bytes.NewReader(ok), root, "/etc/hostname", ExtractOptions{}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("extract to a file: %v", err)
	}
	if err := Extract(ctx, bytes.NewReader(ok), root, "/nosuch", ExtractOptions{}); !errors.Is(err, ErrNoSuchPath) || !strings.Contains(err.Error(), "/nosuch") {
		t.Errorf("extract to a missing directory: %v", err)
	}
}

func TestCleanPath(t *testing.T) {
	for in, want := range map[string]string{"/a/b/": "/a/b", "a": "/a", "/../..": "/", "/x/./y/../z": "/x/z"} {
		if got, err := CleanPath(in); got != want || err != nil {
			t.Errorf("CleanPath(%q) = %q %v, want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "a\x00b"} {
		if _, err := CleanPath(in); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("CleanPath(%q): %v", in, err)
		}
	}
}
