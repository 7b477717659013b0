package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"slices"
	"strings"
	"testing"
)

// FuzzUnpack unpacks arbitrary bytes and checks that nothing outside the
// target directory was created, changed or removed, whatever the outcome.
func FuzzUnpack(f *testing.F) {
	if os.Getuid() != 0 {
		f.Skip("needs root")
	}
	cwd := cwdNames(f)
	seeds := [][]ent{
		{{name: "a/b", body: "x"}, {name: "a/l", typ: tar.TypeLink, link: "a/b"}, {name: "s", typ: tar.TypeSymlink, link: "a"}},
		{{name: "../x", body: "x"}},
		{{name: "ln", typ: tar.TypeSymlink, link: "/tmp"}, {name: "ln/cais-layer-escape", body: "x"}},
		{{name: "ln", typ: tar.TypeSymlink, link: "/"}, {name: "ln/cais-layer-escape", body: "x"}},
		{{name: "ln", typ: tar.TypeSymlink, link: "../outside"}, {name: "ln/canary", body: "x"}, {name: "h", typ: tar.TypeLink, link: "ln/canary"}},
		{{name: "a/ln", typ: tar.TypeSymlink, link: "../../.."}, {name: "a/ln/outside/canary", body: "x"}},
		{{name: "l1", typ: tar.TypeSymlink, link: "l2/x"}, {name: "l2", typ: tar.TypeSymlink, link: "../outside"}, {name: "l1/y", body: "x"}},
		{{name: "loop", typ: tar.TypeSymlink, link: "loop/x"}, {name: "loop/y", body: "x"}},
		{{name: "h", typ: tar.TypeLink, link: "../outside/canary"}},
		{{name: "h", typ: tar.TypeLink, link: "/tmp/cais-layer-escape"}},
		{{name: "d/", typ: tar.TypeDir}, {name: "d/.wh..wh..opq"}, {name: ".wh.d"}, {name: "x/.wh.y"}},
		{{name: "dev", typ: tar.TypeChar, major: 1}},
		{{name: "f", typ: tar.TypeSymlink, link: "../outside/canary"}, {name: "f", body: "x", mode: 0o4777}},
		{{name: "p", typ: tar.TypeSymlink, link: "/proc/self/cwd"}, {name: "p/cais-layer-escape", body: "x"}},
	}
	for i, s := range seeds {
		data := makeTar(f, s...)
		f.Add(data, uint8(i%3))
		if i%4 == 0 {
			f.Add(gzipped(f, data), uint8(0))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		base, root := sandbox(t)
		opts := Options{Whiteouts: WhiteoutMode(mode % 3), Devices: DevicePolicy(mode / 3 % 2), MaxSize: 1 << 20}
		Unpack(context.Background(), bytes.NewReader(data), root, opts)
		assertContained(t, base)
		if got := cwdNames(t); !slices.Equal(got, cwd) {
			t.Fatalf("the working directory changed: %q, was %q", got, cwd)
		}
	})
}

// cwdNames lists the working directory, which /proc/self/cwd reaches.
func cwdNames(tb testing.TB) []string {
	tb.Helper()
	e, err := os.ReadDir(".")
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, x := range e {
		names = append(names, x.Name())
	}
	return names
}

// Words the structured fuzzer builds names and link targets from; "BASE"
// becomes the sandbox's absolute path, the directory that holds both the
// target and the canary next to it.
var fuzzWords = []string{"a", "b", "ln", "..", ".", "", "outside", "canary", ".wh.a", ".wh..wh..opq", ".wh.ln", "BASE", "/", "tmp", "cais-layer-escape", "proc", "self", "root", "cwd", "fd", "3"}

// FuzzUnpackEntries builds well-formed archives from the fuzzer's bytes
// (entry types, names and link targets from a small vocabulary full of
// "..", symlinks and absolute paths), so that the fuzzer explores what an
// archive means rather than tar's checksums, and checks that nothing
// outside the target changes.
func FuzzUnpackEntries(f *testing.F) {
	if os.Getuid() != 0 {
		f.Skip("needs root")
	}
	cwd := cwdNames(f)
	f.Add([]byte{2, 2, 11, 6, 0, 2, 2, 6, 7}, uint8(0))
	f.Add([]byte{2, 1, 2, 4, 12, 15, 16, 18, 0, 2, 2, 0}, uint8(0)) // ln -> /proc/self/cwd; ln/a
	f.Add([]byte{2, 1, 2, 4, 4, 4, 6, 0, 3, 2, 6, 7}, uint8(1))
	f.Add([]byte{3, 1, 3, 2, 4, 6, 7, 0, 1, 8}, uint8(2))
	f.Add([]byte{0, 1, 9, 2, 1, 2, 1, 12, 0, 3, 2, 13, 14}, uint8(0))
	f.Fuzz(func(t *testing.T, prog []byte, mode uint8) {
		base, root := sandbox(t)
		word := func(b byte) string {
			w := fuzzWords[int(b)%len(fuzzWords)]
			if w == "BASE" {
				return base
			}
			return w
		}
		// Each entry: type byte, name length n (1-4), n words, and for
		// links a target length m (1-4) and m words.
		var ents []ent
		for len(prog) > 1 && len(ents) < 32 {
			typ := []byte{tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo, tar.TypeChar}[int(prog[0])%6]
			n := int(prog[1])%4 + 1
			prog = prog[2:]
			var parts []string
			for i := 0; i < n && len(prog) > 0; i++ {
				parts = append(parts, word(prog[0]))
				prog = prog[1:]
			}
			e := ent{name: strings.Join(parts, "/"), typ: typ, body: "pwned"}
			if typ == tar.TypeSymlink || typ == tar.TypeLink {
				m := 1
				if len(prog) > 0 {
					m = int(prog[0])%4 + 1
					prog = prog[1:]
				}
				var lparts []string
				for i := 0; i < m && len(prog) > 0; i++ {
					lparts = append(lparts, word(prog[0]))
					prog = prog[1:]
				}
				e.link = strings.Join(lparts, "/")
				if e.link == "" {
					e.link = "a"
				}
			}
			if e.name == "" {
				continue
			}
			ents = append(ents, e)
		}
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, e := range ents {
			hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o755, Devmajor: 1}
			if e.typ == tar.TypeReg {
				hdr.Size = int64(len(e.body))
			}
			if tw.WriteHeader(hdr) != nil {
				continue // a name tar cannot encode
			}
			if e.typ == tar.TypeReg {
				tw.Write([]byte(e.body))
			}
		}
		tw.Close()
		data := buf.Bytes()
		opts := Options{Whiteouts: WhiteoutMode(mode % 3), Devices: DevicePolicy(mode / 3 % 2), Subdir: []string{"", "ln", "a/ln"}[int(mode/6)%3]}
		Unpack(context.Background(), bytes.NewReader(data), root, opts)
		assertContained(t, base)
		if got := cwdNames(t); !slices.Equal(got, cwd) {
			t.Fatalf("the working directory changed: %q, was %q", got, cwd)
		}
	})
}
