package layer

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// ent describes one archive entry for the tests.
type ent struct {
	name, link string
	typ        byte
	mode       int64
	body       string
	uid, gid   int
	major      int64
	xattrs     map[string]string
}

var testTime = time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)

func makeTar(tb testing.TB, ents ...ent) []byte {
	tb.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
			if typ == tar.TypeDir {
				mode = 0o755
			}
		}
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: typ, Mode: mode, Uid: e.uid, Gid: e.gid, ModTime: testTime, Devmajor: e.major, Format: tar.FormatPAX}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		for k, v := range e.xattrs {
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = map[string]string{}
			}
			hdr.PAXRecords[paxXattr+k] = v
		}
		if err := tw.WriteHeader(hdr); err != nil {
			tb.Fatalf("write header %s: %v", e.name, err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func gzipped(tb testing.TB, b []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func zstded(tb testing.TB, b []byte) []byte {
	tb.Helper()
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer zw.Close()
	return zw.EncodeAll(b, nil)
}

// snapshot describes every entry under dir: type, mode, owner, content or
// link target, mtime (seconds) and extended attributes.
func snapshot(tb testing.TB, dir string) map[string]string {
	tb.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		desc := fmt.Sprintf("mode=%o uid=%d gid=%d", st.Mode, st.Uid, st.Gid)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if len(b) <= 32 {
				desc += fmt.Sprintf(" data=%q", b)
			} else {
				sum := sha256.Sum256(b)
				desc += " sha256=" + hex.EncodeToString(sum[:])
			}
			desc += fmt.Sprintf(" nlink=%d", st.Nlink)
		case unix.S_IFLNK:
			t, _ := os.Readlink(p)
			desc += " -> " + t
		case unix.S_IFCHR, unix.S_IFBLK:
			desc += fmt.Sprintf(" dev=%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			desc += fmt.Sprintf(" mtime=%d", st.Mtim.Sec)
		}
		if xs := listXattrs(tb, p); len(xs) > 0 {
			desc += " xattrs=" + strings.Join(xs, ",")
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		tb.Fatalf("snapshot %s: %v", dir, err)
	}
	return out
}

func listXattrs(tb testing.TB, p string) []string {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil || n == 0 {
		return nil
	}
	var out []string
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if strings.HasPrefix(name, "security.selinux") {
			continue
		}
		v := make([]byte, 4096)
		m, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			continue
		}
		out = append(out, name+"="+string(v[:m]))
	}
	slices.Sort(out)
	return out
}

// sandbox makes a target directory with neighbours to detect escapes:
// base/outside/canary and base/root. It returns base and root.
func sandbox(tb testing.TB) (base, root string) {
	tb.Helper()
	base = tb.TempDir()
	root = filepath.Join(base, "root")
	if err := os.MkdirAll(filepath.Join(base, "outside"), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(base, "outside", "canary"), []byte("canary"), 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.Mkdir(root, 0o755); err != nil {
		tb.Fatal(err)
	}
	return base, root
}

// assertContained fails if anything next to root changed.
func assertContained(tb testing.TB, base string) {
	tb.Helper()
	entries, err := os.ReadDir(base)
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"outside", "root"}) {
		tb.Fatalf("entries next to the target: %v", names)
	}
	outside, err := os.ReadDir(filepath.Join(base, "outside"))
	if err != nil || len(outside) != 1 {
		tb.Fatalf("outside dir changed: %v %v", outside, err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(base, "outside", "canary"), &st); err != nil {
		tb.Fatalf("canary: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(base, "outside", "canary"))
	if err != nil || string(b) != "canary" || st.Mode != unix.S_IFREG|0o644 || st.Uid != uint32(os.Getuid()) || st.Nlink != 1 {
		tb.Fatalf("canary changed: %q mode=%o uid=%d nlink=%d %v", b, st.Mode, st.Uid, st.Nlink, err)
	}
	for _, p := range escapeProbes {
		if _, err := os.Lstat(p); err == nil {
			tb.Fatalf("%s exists: an archive escaped", p)
		}
	}
}

// escapeProbes are absolute paths the seed archives aim at.
var escapeProbes = []string{"/tmp/cais-layer-escape", "/cais-layer-escape"}

func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Getuid() != 0 {
		tb.Skip("needs root (chown, mknod, trusted xattrs)")
	}
}
