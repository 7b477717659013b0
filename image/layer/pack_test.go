package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func tarNames(t *testing.T, data []byte) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
	}
}

func TestPackRoundTrip(t *testing.T) {
	requireRoot(t)
	archive := makeTar(t,
		ent{name: "etc/", typ: tar.TypeDir, mode: 0o750, gid: 42},
		ent{name: "etc/passwd", body: "root:x:0:0\n"},
		ent{name: "bin/sh", body: "#!elf", mode: 0o4755, uid: 1000, gid: 1000},
		ent{name: "bin/ln-sh", typ: tar.TypeLink, link: "bin/sh"},
		ent{name: "bin/abs", typ: tar.TypeSymlink, link: "/etc/passwd"},
		ent{name: "pipe", typ: tar.TypeFifo, mode: 0o600},
		ent{name: "attrs", body: "y", xattrs: map[string]string{"user.k": "v"}},
		ent{name: "empty/", typ: tar.TypeDir, mode: 0o1777},
	)
	_, src := sandbox(t)
	if _, err := Unpack(context.Background(), bytes.NewReader(archive), src, Options{}); err != nil {
		t.Fatal(err)
	}
	var packed, again bytes.Buffer
	if err := Pack(context.Background(), &packed, src, PackOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := Pack(context.Background(), &again, src, PackOptions{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(packed.Bytes(), again.Bytes()) {
		t.Error("packing the same tree twice gave different bytes")
	}
	wantNames := []string{"attrs", "bin/", "bin/abs", "bin/ln-sh", "bin/sh", "empty/", "etc/", "etc/passwd", "pipe"}
	if got := tarNames(t, packed.Bytes()); !slices.Equal(got, wantNames) {
		t.Errorf("entries = %q, want %q", got, wantNames)
	}
	_, dst := sandbox(t)
	if _, err := Unpack(context.Background(), bytes.NewReader(packed.Bytes()), dst, Options{}); err != nil {
		t.Fatal(err)
	}
	a, b := snapshot(t, src), snapshot(t, dst)
	if !maps.Equal(a, b) {
		for k := range a {
			if a[k] != b[k] {
				t.Errorf("%s: %q after the round trip, was %q", k, b[k], a[k])
			}
		}
		t.Errorf("trees differ: %d vs %d entries", len(a), len(b))
	}
}

func TestPackOverlayWhiteouts(t *testing.T) {
	requireRoot(t)
	archive := makeTar(t,
		ent{name: "d/", typ: tar.TypeDir},
		ent{name: "d/.wh..wh..opq"},
		ent{name: "d/new", body: "n"},
		ent{name: "gone/.wh.file"},
		ent{name: ".wh.top"},
	)
	_, upper := sandbox(t)
	if _, err := Unpack(context.Background(), bytes.NewReader(archive), upper, Options{}); err != nil {
		t.Fatal(err)
	}
	var packed bytes.Buffer
	if err := Pack(context.Background(), &packed, upper, PackOptions{Whiteouts: WhiteoutOverlay}); err != nil {
		t.Fatal(err)
	}
	want := []string{"d/", "d/.wh..wh..opq", "d/new", "gone/", "gone/.wh.file", ".wh.top"} // in the order of the names on disk
	if got := tarNames(t, packed.Bytes()); !slices.Equal(got, want) {
		t.Errorf("entries = %q, want %q", got, want)
	}
	_, again := sandbox(t)
	if _, err := Unpack(context.Background(), bytes.NewReader(packed.Bytes()), again, Options{}); err != nil {
		t.Fatal(err)
	}
	a, b := snapshot(t, upper), snapshot(t, again)
	delete(a, "gone")
	delete(b, "gone") // a parent made on the way keeps the time it was made
	if !maps.Equal(a, b) {
		t.Errorf("overlay round trip:\n%v\n%v", a, b)
	}
	// Without conversion, whiteouts are the devices they are.
	var raw bytes.Buffer
	if err := Pack(context.Background(), &raw, upper, PackOptions{Whiteouts: WhiteoutLiteral}); err != nil {
		t.Fatal(err)
	}
	if got := tarNames(t, raw.Bytes()); !slices.Contains(got, "top") {
		t.Errorf("literal pack = %q", got)
	}
}

func TestPackOwnerAndErrors(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o600)
	var buf bytes.Buffer
	if err := Pack(context.Background(), &buf, dir, PackOptions{Owner: &Owner{UID: 3, GID: 4}}); err != nil {
		t.Fatal(err)
	}
	hdr, err := tar.NewReader(&buf).Next()
	if err != nil || hdr.Uid != 3 || hdr.Gid != 4 || hdr.Size != 1 {
		t.Errorf("header %+v %v", hdr, err)
	}
	if err := Pack(context.Background(), io.Discard, filepath.Join(dir, "missing"), PackOptions{}); err == nil {
		t.Error("missing dir packed")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Pack(ctx, io.Discard, dir, PackOptions{}); err == nil {
		t.Error("cancelled pack succeeded")
	}
}
