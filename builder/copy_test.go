package builder

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cais-platform/cais/dockerfile"
)

// tree writes files (a "->" prefix makes a symlink) under a new
// directory.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if target, ok := strings.CutPrefix(content, "->"); ok {
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// files lists the regular files under dir with their contents.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel+"="+string(b))
		}
		return nil
	})
	slices.Sort(out)
	return out
}

func copyTo(t *testing.T, ctxDir, root string, sources []string, dest string) error {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: copies set owners")
	}
	spec := &dockerfile.CopySpec{Sources: sources, Dest: dest, FromStage: -1}
	src := &copySource{spec: spec}
	for _, s := range sources {
		items, err := resolveSource(ctxDir, s, false)
		if err != nil {
			return err
		}
		src.items = append(src.items, items...)
	}
	return (&Job{}).copyInto(context.Background(), root, spec, src)
}

func TestCopyInto(t *testing.T) {
	ctxDir := tree(t, map[string]string{"a.txt": "a", "b.txt": "b", "dir/x": "x", "dir/sub/y": "y", "c.md": "c"})
	cases := []struct {
		sources []string
		dest    string
		want    []string
	}{
		{[]string{"a.txt"}, "/app/", []string{"app/a.txt=a"}},
		{[]string{"a.txt"}, "/renamed", []string{"renamed=a"}},
		{[]string{"dir"}, "/d", []string{"d/sub/y=y", "d/x=x"}},
		{[]string{"*.txt"}, "/t/", []string{"t/a.txt=a", "t/b.txt=b"}},
		{[]string{"a.txt", "c.md"}, "/m/", []string{"m/a.txt=a", "m/c.md=c"}},
	}
	for _, c := range cases {
		root := t.TempDir()
		if err := copyTo(t, ctxDir, root, c.sources, c.dest); err != nil {
			t.Errorf("COPY %v %s: %v", c.sources, c.dest, err)
			continue
		}
		if got := files(t, root); !slices.Equal(got, c.want) {
			t.Errorf("COPY %v %s made %q, want %q", c.sources, c.dest, got, c.want)
		}
	}
	if err := copyTo(t, ctxDir, t.TempDir(), []string{"a.txt", "b.txt"}, "/notdir"); err == nil || !strings.Contains(err.Error(), "must be a directory and end with a /") {
		t.Errorf("two sources to a file: %v", err)
	}
	if err := copyTo(t, ctxDir, t.TempDir(), []string{"missing"}, "/x"); err == nil || !strings.Contains(err.Error(), "file not found in build context") {
		t.Errorf("a missing source: %v", err)
	}
	if err := copyTo(t, ctxDir, t.TempDir(), []string{"../../etc/passwd"}, "/x"); err == nil || !strings.Contains(err.Error(), "forbidden path outside the build context") {
		t.Errorf("a source outside: %v", err)
	}
}

// Symlinks in the image and in a source tree resolve inside their roots:
// neither can lead a copy to the host's files.
func TestCopyStaysInside(t *testing.T) {
	host := t.TempDir()
	os.WriteFile(filepath.Join(host, "secret"), []byte("host secret"), 0o600)
	// A stage's file system whose /link points at the host directory and
	// whose /rel climbs out.
	stage := tree(t, map[string]string{"link": "->" + host, "rel": "->../../../../../../" + host, "file": "stage"})
	root := tree(t, map[string]string{"etc": "->" + host, "dotdot": "->../../../../.." + host})
	for _, src := range []string{"link/secret", "rel/secret"} {
		if err := copyTo(t, stage, root, []string{src}, "/out/"); err == nil {
			t.Errorf("COPY %s found the host's file", src)
		}
	}
	for _, dest := range []string{"/etc/planted", "/dotdot/planted", "/etc/"} {
		if err := copyTo(t, stage, root, []string{"file"}, dest); err != nil {
			t.Logf("COPY file %s: %v", dest, err)
		}
	}
	if got := files(t, host); !slices.Equal(got, []string{"secret=host secret"}) {
		t.Errorf("the host directory holds %q after the copies", got)
	}
}
