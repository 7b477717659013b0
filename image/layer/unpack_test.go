package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/errdefs"
)

func TestUnpackTree(t *testing.T) {
	requireRoot(t)
	plain := makeTar(t,
		ent{name: "etc/", typ: tar.TypeDir, mode: 0o750, uid: 0, gid: 42},
		ent{name: "etc/passwd", body: "root:x:0:0\n", mode: 0o644},
		ent{name: "/bin/sh", body: "#!elf", mode: 0o4755, uid: 1000, gid: 1000},
		ent{name: "./bin/ln-sh", typ: tar.TypeLink, link: "bin/sh"},
		ent{name: "bin/abs", typ: tar.TypeSymlink, link: "/etc/passwd"},
		ent{name: "bin/rel", typ: tar.TypeSymlink, link: "../../../etc"},
		ent{name: "deep/a/b/c", body: "x"},
		ent{name: "pipe", typ: tar.TypeFifo, mode: 0o600},
		ent{name: "attrs", body: "y", xattrs: map[string]string{"user.k": "v", "trusted.t": "1", "security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"}},
	)
	want := map[string]string{
		"etc":        "mode=40750 uid=0 gid=42 mtime=1614834367",
		"etc/passwd": "mode=100644 uid=0 gid=0 data=\"root:x:0:0\\n\" nlink=1 mtime=1614834367",
		"bin":        "mode=40755 uid=0 gid=0 mtime=",
		"bin/sh":     "mode=104755 uid=1000 gid=1000 data=\"#!elf\" nlink=2 mtime=1614834367",
		"bin/ln-sh":  "mode=104755 uid=1000 gid=1000 data=\"#!elf\" nlink=2 mtime=1614834367",
		"bin/abs":    "mode=120777 uid=0 gid=0 -> /etc/passwd",
		"bin/rel":    "mode=120777 uid=0 gid=0 -> ../../../etc",
		"deep":       "mode=40755 uid=0 gid=0 mtime=",
		"deep/a":     "mode=40755 uid=0 gid=0 mtime=",
		"deep/a/b":   "mode=40755 uid=0 gid=0 mtime=",
		"deep/a/b/c": "mode=100644 uid=0 gid=0 data=\"x\" nlink=1 mtime=1614834367",
		"pipe":       "mode=10600 uid=0 gid=0 mtime=1614834367",
		"attrs":      "mode=100644 uid=0 gid=0 data=\"y\" nlink=1 mtime=1614834367 xattrs=security.capability=\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00,trusted.t=1,user.k=v",
	}
	sum := sha256.Sum256(plain)
	for _, tc := range []struct {
		name string
		data []byte
		comp Compression
	}{
		{"plain", plain, Uncompressed},
		{"gzip", gzipped(t, plain), Gzip},
		{"zstd", zstded(t, plain), Zstd},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, root := sandbox(t)
			res, err := Unpack(context.Background(), bytes.NewReader(tc.data), root, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if res.DiffID != digest.NewDigestFromBytes(digest.SHA256, sum[:]) || res.Size != int64(len(plain)) || res.Compression != tc.comp || res.Entries != 9 {
				t.Errorf("result = %+v", res)
			}
			got := snapshot(t, root)
			for p, w := range want {
				g, ok := got[p]
				if !ok {
					t.Errorf("%s missing", p)
					continue
				}
				if strings.HasSuffix(w, "mtime=") { // a parent made on the way: any mtime
					g = g[:strings.Index(g, "mtime=")+len("mtime=")]
				}
				if g != w {
					t.Errorf("%s:\n got %q\nwant %q", p, g, w)
				}
			}
			if len(got) != len(want) {
				t.Errorf("got %d entries, want %d: %v", len(got), len(want), got)
			}
			assertContained(t, base)
		})
	}
}

// TestUnpackHostile feeds archives that try to reach outside the target.
func TestUnpackHostile(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name    string
		ents    func(base string) []ent
		opts    Options
		wantErr error  // nil: the archive is fine, but must stay inside
		entry   string // the entry the error names
		inside  []string
	}{
		{name: "dotdot", ents: func(string) []ent { return []ent{{name: "../evil", body: "x"}} }, wantErr: ErrEscape, entry: "../evil"},
		{name: "dotdot nested", ents: func(string) []ent { return []ent{{name: "a/../../evil", body: "x"}} }, wantErr: ErrEscape, entry: "a/../../evil"},
		{name: "dotdot inside", ents: func(string) []ent { return []ent{{name: "a/../b", body: "x"}} }, wantErr: ErrEscape, entry: "a/../b"},
		{name: "absolute name", ents: func(string) []ent { return []ent{{name: "/tmp/cais-layer-escape", body: "x"}} }, inside: []string{"tmp/cais-layer-escape"}},
		{name: "absolute symlink parent", ents: func(base string) []ent {
			return []ent{{name: "ln", typ: tar.TypeSymlink, link: filepath.Join(base, "outside")}, {name: "ln/canary", body: "pwned"}, {name: "ln/new", body: "pwned"}}
		}, inside: []string{"{base}/outside/canary", "{base}/outside/new"}},
		{name: "root symlink parent", ents: func(string) []ent {
			return []ent{{name: "ln", typ: tar.TypeSymlink, link: "/"}, {name: "ln/tmp/cais-layer-escape", body: "pwned"}}
		}, inside: []string{"tmp/cais-layer-escape"}},
		{name: "relative escaping symlink parent", ents: func(string) []ent {
			return []ent{{name: "a/ln", typ: tar.TypeSymlink, link: "../../../../../../outside"}, {name: "a/ln/canary", body: "pwned"}}
		}, inside: []string{"outside/canary"}},
		{name: "symlink chain", ents: func(base string) []ent {
			return []ent{{name: "l1", typ: tar.TypeSymlink, link: "l2"}, {name: "l2", typ: tar.TypeSymlink, link: "../outside"}, {name: "l1/canary", body: "pwned"}}
		}, inside: []string{"outside/canary"}},
		{name: "proc magic link", ents: func(string) []ent {
			return []ent{{name: "p", typ: tar.TypeSymlink, link: "/proc/self/root/tmp"}, {name: "p/cais-layer-escape", body: "pwned"}}
		}, inside: []string{"proc/self/root/tmp/cais-layer-escape"}},
		{name: "hard link dotdot", ents: func(string) []ent {
			return []ent{{name: "h", typ: tar.TypeLink, link: "../outside/canary"}}
		}, wantErr: ErrEscape, entry: "h"},
		{name: "hard link absolute", ents: func(base string) []ent {
			return []ent{{name: "h", typ: tar.TypeLink, link: filepath.Join(base, "outside", "canary")}}
		}, wantErr: ErrLinkTarget, entry: "h"},
		{name: "hard link through symlink", ents: func(base string) []ent {
			return []ent{{name: "e", typ: tar.TypeSymlink, link: filepath.Join(base, "outside")}, {name: "h", typ: tar.TypeLink, link: "e/canary"}}
		}, wantErr: ErrLinkTarget, entry: "h"},
		{name: "hard link through relative symlink", ents: func(base string) []ent {
			return []ent{{name: "e", typ: tar.TypeSymlink, link: "../outside"}, {name: "h", typ: tar.TypeLink, link: "e/canary"}}
		}, wantErr: ErrLinkTarget, entry: "h"},
		{name: "hard link to dir", ents: func(string) []ent {
			return []ent{{name: "d/", typ: tar.TypeDir}, {name: "h", typ: tar.TypeLink, link: "d"}}
		}, wantErr: ErrLinkTarget, entry: "h"},
		{name: "file over symlink", ents: func(base string) []ent {
			return []ent{{name: "f", typ: tar.TypeSymlink, link: filepath.Join(base, "outside", "canary")}, {name: "f", body: "pwned", mode: 0o777}}
		}, inside: []string{"f"}},
		{name: "dir over symlink", ents: func(base string) []ent {
			return []ent{{name: "d", typ: tar.TypeSymlink, link: filepath.Join(base, "outside")}, {name: "d/", typ: tar.TypeDir, mode: 0o700}, {name: "d/x", body: "x"}}
		}, inside: []string{"d/x"}},
		{name: "hard link over symlink", ents: func(base string) []ent {
			return []ent{{name: "f", body: "mine"}, {name: "h", typ: tar.TypeSymlink, link: filepath.Join(base, "outside", "canary")}, {name: "h", typ: tar.TypeLink, link: "f"}}
		}, inside: []string{"h"}},
		{name: "char device", ents: func(string) []ent { return []ent{{name: "dev/mem", typ: tar.TypeChar, major: 1}} }, wantErr: ErrDevice, entry: "dev/mem"},
		{name: "block device", ents: func(string) []ent { return []ent{{name: "sda", typ: tar.TypeBlock, major: 8}} }, wantErr: ErrDevice, entry: "sda"},
		{name: "devices skipped", opts: Options{Devices: DevicesSkip}, ents: func(string) []ent {
			return []ent{{name: "dev/mem", typ: tar.TypeChar, major: 1}, {name: "ok", body: "x"}}
		}, inside: []string{"ok"}},
		{name: "overlay xattr", ents: func(string) []ent {
			return []ent{{name: "d/", typ: tar.TypeDir, xattrs: map[string]string{"trusted.overlay.redirect": "/etc"}}}
		}, wantErr: ErrOverlayXattr, entry: "d/"},
		{name: "whiteout dotdot", ents: func(string) []ent { return []ent{{name: "a/.wh...", body: ""}} }, wantErr: ErrBadName, entry: "a/.wh..."},
		{name: "whiteout through symlink", ents: func(base string) []ent {
			return []ent{{name: "ln", typ: tar.TypeSymlink, link: filepath.Join(base, "outside")}, {name: "ln/.wh.canary"}, {name: "ln/.wh..wh..opq"}}
		}},
		{name: "subdir symlink", opts: Options{Subdir: "sub"}, ents: func(string) []ent {
			return []ent{{name: "x", body: "x"}}
		}, inside: []string{"sub/x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, root := sandbox(t)
			_, err := Unpack(context.Background(), bytes.NewReader(makeTar(t, tt.ents(base)...)), root, tt.opts)
			if tt.wantErr == nil && err != nil {
				t.Fatalf("Unpack: %v", err)
			}
			if tt.wantErr != nil {
				var ee *EntryError
				if !errors.Is(err, tt.wantErr) || !errors.Is(err, errdefs.ErrInvalid) || !errors.As(err, &ee) || ee.Name != tt.entry {
					t.Fatalf("Unpack error = %v, want %v naming %q", err, tt.wantErr, tt.entry)
				}
				if !strings.Contains(err.Error(), "layer entry \""+tt.entry+"\"") {
					t.Errorf("error %q does not name the entry", err)
				}
			}
			for _, p := range tt.inside {
				p = strings.ReplaceAll(p, "{base}", base)
				if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
					t.Errorf("%s not inside the target: %v", p, err)
				}
			}
			assertContained(t, base)
		})
	}
}

func TestUnpackSubdirThroughSymlink(t *testing.T) {
	requireRoot(t)
	base, root := sandbox(t)
	if err := os.Symlink("../outside", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	_, err := Unpack(context.Background(), bytes.NewReader(makeTar(t, ent{name: "canary", body: "pwned"})), root, Options{Subdir: "link"})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "outside", "canary")); err != nil || string(b) != "pwned" {
		t.Errorf("subdir not resolved inside the root: %q %v", b, err)
	}
	assertContained(t, base)
	if _, err := Unpack(context.Background(), bytes.NewReader(makeTar(t)), root, Options{Subdir: "../x"}); !errors.Is(err, ErrEscape) {
		t.Errorf("subdir ../x: %v", err)
	}
}

func TestUnpackWhiteouts(t *testing.T) {
	requireRoot(t)
	archive := makeTar(t,
		ent{name: "d/", typ: tar.TypeDir},
		ent{name: "d/.wh..wh..opq"},
		ent{name: "d/new", body: "n"},
		ent{name: "gone/.wh.file"},
		ent{name: ".wh.top"},
		ent{name: ".wh..wh.plnk", typ: tar.TypeDir},
	)
	lower := func(t *testing.T, root string) {
		for _, p := range []string{"d/old", "gone/file", "gone/keep", "top/x"} {
			os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
			if err := os.WriteFile(filepath.Join(root, p), []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}

	t.Run("overlay", func(t *testing.T) {
		base, root := sandbox(t)
		if _, err := Unpack(context.Background(), bytes.NewReader(archive), root, Options{Whiteouts: WhiteoutOverlay}); err != nil {
			t.Fatal(err)
		}
		got := snapshot(t, root)
		for _, p := range []string{"gone/file", "top"} {
			if !strings.Contains(got[p], "mode=20000 ") || !strings.Contains(got[p], "dev=0:0") {
				t.Errorf("%s = %q, want a 0/0 character device", p, got[p])
			}
		}
		if !strings.Contains(got["d"], "trusted.overlay.opaque=y") {
			t.Errorf("d = %q, want opaque", got["d"])
		}
		if _, ok := got["d/new"]; !ok {
			t.Error("d/new missing")
		}
		for p := range got {
			if strings.Contains(p, ".wh.") {
				t.Errorf("whiteout file %s kept", p)
			}
		}
		assertContained(t, base)
	})
	t.Run("apply", func(t *testing.T) {
		_, root := sandbox(t)
		lower(t, root)
		if _, err := Unpack(context.Background(), bytes.NewReader(archive), root, Options{Whiteouts: WhiteoutApply}); err != nil {
			t.Fatal(err)
		}
		got := snapshot(t, root)
		for _, p := range []string{"d/old", "gone/file", "top", "top/x"} {
			if _, ok := got[p]; ok {
				t.Errorf("%s not deleted", p)
			}
		}
		for _, p := range []string{"d/new", "gone/keep"} {
			if _, ok := got[p]; !ok {
				t.Errorf("%s missing", p)
			}
		}
	})
	t.Run("literal", func(t *testing.T) {
		_, root := sandbox(t)
		if _, err := Unpack(context.Background(), bytes.NewReader(archive), root, Options{Whiteouts: WhiteoutLiteral}); err != nil {
			t.Fatal(err)
		}
		got := snapshot(t, root)
		for _, p := range []string{"d/.wh..wh..opq", "gone/.wh.file", ".wh.top", ".wh..wh.plnk"} {
			if _, ok := got[p]; !ok {
				t.Errorf("%s missing", p)
			}
		}
	})
}

func TestUnpackReplaces(t *testing.T) {
	requireRoot(t)
	_, root := sandbox(t)
	archive := makeTar(t,
		ent{name: "d/", typ: tar.TypeDir},
		ent{name: "d/keep", body: "k"},
		ent{name: "d/", typ: tar.TypeDir, mode: 0o700},
		ent{name: "x/y/z", body: "z"},
		ent{name: "x", body: "file now"},
		ent{name: "f", body: "first"},
		ent{name: "f", typ: tar.TypeSymlink, link: "d"},
	)
	if _, err := Unpack(context.Background(), bytes.NewReader(archive), root, Options{}); err != nil {
		t.Fatal(err)
	}
	got := snapshot(t, root)
	if !strings.HasPrefix(got["d"], "mode=40700 ") || got["d/keep"] == "" {
		t.Errorf("dir over dir: d=%q d/keep=%q", got["d"], got["d/keep"])
	}
	if !strings.HasPrefix(got["x"], "mode=100644") || got["x/y/z"] != "" {
		t.Errorf("file over dir: %q", got["x"])
	}
	if !strings.Contains(got["f"], "-> d") {
		t.Errorf("symlink over file: %q", got["f"])
	}
}

func TestUnpackOwnerOverride(t *testing.T) {
	requireRoot(t)
	_, root := sandbox(t)
	archive := makeTar(t, ent{name: "a", body: "x", uid: 5, gid: 6}, ent{name: "l", typ: tar.TypeSymlink, link: "a", uid: 5})
	if _, err := Unpack(context.Background(), bytes.NewReader(archive), root, Options{Owner: &Owner{UID: 7, GID: 8}, NoXattrs: true}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"a", "l"} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(root, p), &st); err != nil || st.Uid != 7 || st.Gid != 8 {
			t.Errorf("%s owner %d:%d %v", p, st.Uid, st.Gid, err)
		}
	}
}

func TestUnpackBadInput(t *testing.T) {
	_, root := sandbox(t)
	for name, data := range map[string][]byte{
		"garbage":   []byte(strings.Repeat("not a tar ", 100)),
		"bad gzip":  append([]byte{0x1f, 0x8b, 0x08}, 0, 0, 0),
		"truncated": makeTar(t, ent{name: "a", body: strings.Repeat("x", 2000)})[:1024],
	} {
		if _, err := Unpack(context.Background(), bytes.NewReader(data), root, Options{}); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	big := makeTar(t, ent{name: "a", body: strings.Repeat("x", 600)}, ent{name: "b", body: strings.Repeat("x", 600)})
	if _, err := Unpack(context.Background(), bytes.NewReader(big), root, Options{MaxSize: 1000}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over MaxSize: %v", err)
	}
	if _, err := Unpack(context.Background(), bytes.NewReader(big), root, Options{MaxSize: 1200}); err != nil {
		t.Errorf("at MaxSize: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Unpack(ctx, bytes.NewReader(makeTar(t, ent{name: "a"})), root, Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if _, err := Unpack(context.Background(), bytes.NewReader(nil), filepath.Join(root, "missing"), Options{}); err == nil {
		t.Error("missing target accepted")
	}
}

func TestCleanName(t *testing.T) {
	tests := []struct {
		in, want string
		err      error
	}{
		{"a/b", "a/b", nil}, {"./a/b/", "a/b", nil}, {"/a//b", "a/b", nil}, {".", "", nil}, {"/", "", nil},
		{"..", "", ErrEscape}, {"a/..", "", ErrEscape}, {"../a", "", ErrEscape}, {"a\x00b", "", ErrBadName},
	}
	for _, tt := range tests {
		got, err := cleanName(tt.in)
		if got != tt.want || !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
			t.Errorf("cleanName(%q) = %q, %v; want %q, %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}
