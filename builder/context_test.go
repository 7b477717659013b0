package builder

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cais-platform/cais/errdefs"
)

func TestCheckContextEntry(t *testing.T) {
	cases := []struct {
		hdr  tar.Header
		want string // "" for accepted, else part of the error
	}{
		{tar.Header{Name: "a/b.txt", Typeflag: tar.TypeReg}, ""},
		{tar.Header{Name: "./a/", Typeflag: tar.TypeDir}, ""},
		{tar.Header{Name: "a/link", Typeflag: tar.TypeSymlink, Linkname: "../b"}, ""},
		{tar.Header{Name: "a/link", Typeflag: tar.TypeSymlink, Linkname: "c/./d"}, ""},
		{tar.Header{Name: "a/hard", Typeflag: tar.TypeLink, Linkname: "a/b.txt"}, ""},
		{tar.Header{Name: "fifo", Typeflag: tar.TypeFifo}, ""},
		{tar.Header{Name: "../x", Typeflag: tar.TypeReg}, "forbidden path outside the build context"},
		{tar.Header{Name: "a/../../x", Typeflag: tar.TypeReg}, "forbidden path outside the build context"},
		{tar.Header{Name: "/abs/ok", Typeflag: tar.TypeReg}, ""},
		{tar.Header{Name: "etc", Typeflag: tar.TypeSymlink, Linkname: "/etc"}, "absolute symlinks are not allowed"},
		{tar.Header{Name: "a/up", Typeflag: tar.TypeSymlink, Linkname: "../../etc"}, "forbidden path outside the build context"},
		{tar.Header{Name: "up", Typeflag: tar.TypeSymlink, Linkname: "a/../../x"}, "forbidden path outside the build context"},
		{tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "../../etc/shadow"}, "forbidden path outside the build context"},
		{tar.Header{Name: "dev/sda", Typeflag: tar.TypeBlock}, "device nodes are not allowed"},
		{tar.Header{Name: "null", Typeflag: tar.TypeChar}, "device nodes are not allowed"},
		{tar.Header{Name: "nul\x00", Typeflag: tar.TypeReg}, "invalid name"},
	}
	for _, c := range cases {
		err := CheckContextEntry(&c.hdr)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q -> %q: refused: %v", c.hdr.Name, c.hdr.Linkname, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, errdefs.ErrInvalid)):
			t.Errorf("%q -> %q: got %v, want an invalid-request error with %q", c.hdr.Name, c.hdr.Linkname, err, c.want)
		}
	}
}

func TestClimbs(t *testing.T) {
	for p, want := range map[string]bool{"a": false, "a/..": false, "a/../..": true, "..": true, "./../x": true, "/a/b/../../c": false, "a/b/../../../c": true, "": false} {
		if got := climbs(p); got != want {
			t.Errorf("climbs(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestIgnore(t *testing.T) {
	ig, err := ParseIgnore(strings.NewReader("# comment\n*.log\nbuild/\n!build/keep.txt\n**/secret\nDockerfile\n"))
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{
		"a.log": true, "dir/a.log": false, "build/x": true, "build/keep.txt": false, "a/b/secret": true,
		"secret": true, "src/main.go": false, "Dockerfile": false, ".dockerignore": false,
	} {
		if got := ig.Excluded(p, "Dockerfile"); got != want {
			t.Errorf("Excluded(%q) = %v, want %v", p, got, want)
		}
	}
}

// tarBytes makes an archive of headers (regular files get body "x").
func tarBytes(t testing.TB, hdrs ...tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		if h.Typeflag == tar.TypeReg {
			h.Size = 1
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte("x"))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func TestReceiveContext(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "ctx")
	os.Mkdir(dir, 0o755)
	good := tarBytes(t, tar.Header{Name: "Dockerfile", Typeflag: tar.TypeReg, Mode: 0o644}, tar.Header{Name: "src/", Typeflag: tar.TypeDir, Mode: 0o755},
		tar.Header{Name: "src/a", Typeflag: tar.TypeReg, Mode: 0o600}, tar.Header{Name: "src/l", Typeflag: tar.TypeSymlink, Linkname: "a"})
	if err := ReceiveContext(context.Background(), bytes.NewReader(good), dir, 0); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "src/l")); err != nil || string(b) != "x" {
		t.Fatalf("src/l: %q %v", b, err)
	}
	for _, bad := range [][]byte{
		tarBytes(t, tar.Header{Name: "ok", Typeflag: tar.TypeReg}, tar.Header{Name: "../escaped", Typeflag: tar.TypeReg}),
		tarBytes(t, tar.Header{Name: "etc", Typeflag: tar.TypeSymlink, Linkname: "/etc"}, tar.Header{Name: "etc/evil", Typeflag: tar.TypeReg}),
		tarBytes(t, tar.Header{Name: "d", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}),
		[]byte("not a tar archive at all, just text that goes on for a while........................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................"),
	} {
		d := filepath.Join(base, "bad")
		os.RemoveAll(d)
		os.Mkdir(d, 0o755)
		if err := ReceiveContext(context.Background(), bytes.NewReader(bad), d, 0); err == nil {
			t.Errorf("a hostile context was accepted")
		}
	}
	names, _ := os.ReadDir(base)
	var got []string
	for _, n := range names {
		got = append(got, n.Name())
	}
	if !slices.Equal(got, []string{"bad", "ctx"}) {
		t.Errorf("the unpacker wrote outside its directory: %q", got)
	}
}

func TestApplyIgnore(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"Dockerfile", "a.log", "keep/x.log", "build/out", "build/keep.txt"} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(f)), 0o755)
		os.WriteFile(filepath.Join(dir, f), nil, 0o644)
	}
	os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte("*.log\nbuild\n!build/keep.txt\nDockerfile\n"), 0o644)
	if err := applyIgnore(dir, "Dockerfile"); err != nil {
		t.Fatal(err)
	}
	var left []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			left = append(left, rel)
		}
		return nil
	})
	slices.Sort(left)
	if want := []string{".dockerignore", "Dockerfile", "build/keep.txt", "keep/x.log"}; !slices.Equal(left, want) {
		t.Errorf("left %q, want %q", left, want)
	}
}

func FuzzParseIgnore(f *testing.F) {
	f.Add("*.log\n!keep.log\n", "a/keep.log")
	f.Add("**/x\n# c\n  \nbuild/\n", "build/x")
	f.Add("[a-\n", "a")
	f.Add("!\n\\!x\n", "!x")
	f.Fuzz(func(t *testing.T, patterns, p string) {
		ig, err := ParseIgnore(strings.NewReader(patterns))
		if err != nil {
			return
		}
		ig.Excluded(p, "Dockerfile")
		if ig.Excluded("Dockerfile", "Dockerfile") || ig.Excluded(".dockerignore", "Dockerfile") {
			t.Fatal("the Dockerfile or .dockerignore was excluded")
		}
	})
}

func FuzzCheckContextEntry(f *testing.F) {
	f.Add("a/b", "", byte(tar.TypeReg))
	f.Add("l", "../x", byte(tar.TypeSymlink))
	f.Add("a/l", "..", byte(tar.TypeSymlink))
	f.Add("h", "a/../b", byte(tar.TypeLink))
	f.Fuzz(func(t *testing.T, name, link string, typ byte) {
		hdr := &tar.Header{Name: name, Linkname: link, Typeflag: typ}
		if CheckContextEntry(hdr) != nil {
			return
		}
		// What is accepted stays inside: the name, and a symlink's
		// target resolved from its directory.
		if climbs(name) {
			t.Fatalf("accepted name %q", name)
		}
		if typ == tar.TypeSymlink && (strings.HasPrefix(link, "/") || climbs(filepath.Join(filepath.Dir(filepath.Clean("/"+name)), link)[1:])) {
			t.Fatalf("accepted symlink %q -> %q", name, link)
		}
	})
}
