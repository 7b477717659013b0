package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"testing"
)

// FuzzUnpack unpacks arbitrary bytes and checks that nothing outside the
// target directory was created, changed or removed, whatever the outcome.
func FuzzUnpack(f *testing.F) {
	if os.Getuid() != 0 {
		f.Skip("needs root")
	}
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
	})
}
