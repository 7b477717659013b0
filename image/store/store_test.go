package store

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/image/reference"
)

func newStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "images"), Options{GCGracePeriod: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tarOf makes a layer: name -> content; a name ending in "/" is a
// directory, content "->x" a symlink to x.
func tarOf(t testing.TB, files ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := 0; i+1 < len(files); i += 2 {
		name, body := files[i], files[i+1]
		hdr := &tar.Header{Name: name, Mode: 0o644, ModTime: time.Unix(1e9, 0), Typeflag: tar.TypeReg, Size: int64(len(body))}
		switch {
		case strings.HasSuffix(name, "/"):
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeDir, 0o755, 0
		case strings.HasPrefix(body, "->"):
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeSymlink, body[2:], 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			tw.Write([]byte(body))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// makeImage stores layers and an image config and returns the manifest.
func makeImage(t testing.TB, s *Store, cmd string, layers ...[]byte) ocispec.Descriptor {
	t.Helper()
	ctx := context.Background()
	cfg := ImageConfig{Architecture: "amd64", OS: "linux", Config: ContainerConfig{Cmd: []string{cmd}}, RootFS: ocispec.RootFS{Type: "layers"}}
	var descs []ocispec.Descriptor
	for _, l := range layers {
		desc, diffID, err := s.AddLayer(ctx, bytes.NewReader(l))
		if err != nil {
			t.Fatal(err)
		}
		descs = append(descs, desc)
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, diffID)
	}
	b, _ := json.Marshal(cfg)
	m, err := s.Commit(ctx, b, descs, false)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func ref(t testing.TB, s string) reference.Reference {
	t.Helper()
	r, err := reference.ParseDockerRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func blobCount(t testing.TB, s *Store) int {
	t.Helper()
	e, err := os.ReadDir(s.blobDir(digest.SHA256))
	if err != nil {
		t.Fatal(err)
	}
	return len(e)
}

func TestLayoutFiles(t *testing.T) {
	s := newStore(t)
	b, err := os.ReadFile(filepath.Join(s.Root(), "oci-layout"))
	if err != nil || string(b) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout = %s %v", b, err)
	}
	var idx ocispec.Index
	b, _ = os.ReadFile(filepath.Join(s.Root(), "index.json"))
	if err := json.Unmarshal(b, &idx); err != nil || idx.SchemaVersion != 2 || idx.MediaType != ocispec.MediaTypeImageIndex {
		t.Errorf("index.json = %s %v", b, err)
	}
	// Reopening keeps what is there.
	m := makeImage(t, s, "sh", tarOf(t, "a", "1"))
	if err := s.Tag(context.Background(), ref(t, "x"), m); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(s.Root(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d, err := s2.Resolve(ref(t, "x")); err != nil || d.Digest != m.Digest {
		t.Errorf("after reopen: %v %v", d, err)
	}
}

func TestWriteBlob(t *testing.T) {
	ctx := context.Background()
	content := []byte("hello blob")
	good := digest.FromBytes(content)
	tests := []struct {
		name     string
		expected digest.Digest
		size     int64
		wantErr  error
	}{
		{"verified", good, int64(len(content)), nil},
		{"unknown digest", "", -1, nil},
		{"wrong digest", digest.FromString("other"), -1, ErrDigestMismatch},
		{"wrong size", good, 3, ErrDigestMismatch},
		{"bad digest", "sha256:zz", -1, errdefs.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			d, n, err := s.WriteBlob(ctx, bytes.NewReader(content), tt.expected, tt.size)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if c := blobCount(t, s); c != 0 {
					t.Errorf("%d blobs left", c)
				}
				if e, _ := os.ReadDir(s.ingestDir()); len(e) != 0 {
					t.Errorf("ingest left %d files", len(e))
				}
				return
			}
			if err != nil || d != good || n != int64(len(content)) {
				t.Fatalf("WriteBlob = %s %d %v", d, n, err)
			}
			f, err := s.OpenBlob(d)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var buf bytes.Buffer
			buf.ReadFrom(f)
			if buf.String() != string(content) {
				t.Errorf("content %q", buf.String())
			}
		})
	}
	s := newStore(t)
	if _, err := s.OpenBlob(good); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("missing blob: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := s.WriteBlob(cctx, bytes.NewReader(content), "", -1); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestTagResolveList(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	m1 := makeImage(t, s, "one", tarOf(t, "bin/", "", "bin/sh", "#!"))
	m2 := makeImage(t, s, "two", tarOf(t, "etc/", "", "etc/os", "debian"))
	if err := s.Tag(ctx, ref(t, "busybox"), m1); err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(ctx, ref(t, "localhost:5000/bb:1"), m1); err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(ctx, ref(t, "debian:12"), m2); err != nil {
		t.Fatal(err)
	}
	if d, err := s.Resolve(ref(t, "busybox:latest")); err != nil || d.Digest != m1.Digest {
		t.Errorf("Resolve busybox = %v %v", d, err)
	}
	if _, err := s.Resolve(ref(t, "nothere")); !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "No such image: nothere:latest") {
		t.Errorf("Resolve missing: %v", err)
	}
	imgs, err := s.List()
	if err != nil || len(imgs) != 2 {
		t.Fatalf("List = %v %v", imgs, err)
	}
	if !slices.Equal(imgs[0].Names, []string{"docker.io/library/busybox:latest", "localhost:5000/bb:1"}) || imgs[0].ID == "" {
		t.Errorf("image 0 = %+v", imgs[0])
	}
	// Docker's lookups: name, full ID, short ID, sha256:short.
	for _, q := range []string{"busybox", "docker.io/library/busybox:latest", imgs[0].ID.String(), imgs[0].ID.Encoded()[:12], "sha256:" + imgs[0].ID.Encoded()[:8]} {
		if img, err := s.Find(q); err != nil || img.Target.Digest != m1.Digest {
			t.Errorf("Find(%q) = %v %v", q, img.Target.Digest, err)
		}
	}
	if _, err := s.Find("zzz"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Find(zzz): %v", err)
	}
	// Moving a name leaves the old image dangling when nothing else names it.
	if err := s.Tag(ctx, ref(t, "debian:12"), m1); err != nil {
		t.Fatal(err)
	}
	imgs, _ = s.List()
	var dangling []Image
	for _, img := range imgs {
		if len(img.Names) == 0 {
			dangling = append(dangling, img)
		}
	}
	if len(dangling) != 1 || dangling[0].Target.Digest != m2.Digest {
		t.Errorf("dangling = %+v", dangling)
	}
	// Tagging refuses what is not a complete manifest.
	if err := s.Tag(ctx, ref(t, "x"), ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("nope"), Size: 4}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("tag missing manifest: %v", err)
	}
	if err := s.Tag(ctx, ref(t, "x@"+m1.Digest.String()), m1); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("tag with digest only: %v", err)
	}
	if d, err := s.Resolve(ref(t, "busybox@"+m1.Digest.String())); err != nil || d.Digest != m1.Digest {
		t.Errorf("resolve by digest: %v %v", d, err)
	}
}

func TestDeleteRefCounts(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	base := tarOf(t, "bin/", "", "bin/sh", "#!")
	m1 := makeImage(t, s, "one", base, tarOf(t, "app1", "1"))
	m2 := makeImage(t, s, "two", base, tarOf(t, "app2", "2"))
	s.Tag(ctx, ref(t, "one"), m1)
	s.Tag(ctx, ref(t, "one:alias"), m1)
	s.Tag(ctx, ref(t, "two"), m2)
	// 2 images x (manifest + config + top layer) + the shared base layer.
	if c := blobCount(t, s); c != 7 {
		t.Fatalf("%d blobs", c)
	}
	rm, err := s.Delete(ctx, ref(t, "one"))
	if err != nil || len(rm) != 1 || rm[0].Untagged != "one:latest" {
		t.Fatalf("Delete(one) = %+v %v", rm, err)
	}
	if c := blobCount(t, s); c != 7 {
		t.Errorf("untag freed blobs: %d", c)
	}
	rm, err = s.Delete(ctx, ref(t, "one:alias"))
	if err != nil || len(rm) != 2 || rm[0].Untagged != "one:alias" || !strings.HasPrefix(rm[1].Deleted, "sha256:") {
		t.Fatalf("Delete(one:alias) = %+v %v", rm, err)
	}
	if c := blobCount(t, s); c != 4 {
		t.Errorf("after deleting one: %d blobs, want 4", c)
	}
	if _, err := s.Layers(ctx, m2); err != nil {
		t.Errorf("two lost a blob: %v", err)
	}
	if _, err := s.Delete(ctx, ref(t, "one")); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	if _, err := s.DeleteImage(ctx, m2.Digest); err != nil {
		t.Fatal(err)
	}
	if c := blobCount(t, s); c != 0 {
		t.Errorf("after deleting all: %d blobs", c)
	}
}

func TestGC(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	keep := makeImage(t, s, "keep", tarOf(t, "k", "k"))
	s.Tag(ctx, ref(t, "keep"), keep)
	dirs, err := s.Layers(ctx, keep)
	if err != nil {
		t.Fatal(err)
	}
	orphan := makeImage(t, s, "orphan", tarOf(t, "o", "o"))
	odirs, err := s.Layers(ctx, orphan)
	if err != nil {
		t.Fatal(err)
	}
	held := makeImage(t, s, "held", tarOf(t, "h", "h"))
	hdirs, _ := s.Layers(ctx, held)
	heldChain := digest.NewDigestFromEncoded(digest.SHA256, filepath.Base(hdirs[0]))
	time.Sleep(time.Millisecond)
	st, err := s.GC(ctx, func(id digest.Digest) bool { return id == heldChain })
	if err != nil {
		t.Fatal(err)
	}
	if st.Blobs != 6 || st.Layers != 1 || st.Bytes == 0 {
		t.Errorf("GC = %+v, want 6 blobs (2 images x 3) and 1 layer", st)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("kept layer removed: %v", err)
		}
	}
	if _, err := os.Stat(odirs[0]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("orphan layer kept: %v", err)
	}
	if _, err := os.Stat(hdirs[0]); err != nil {
		t.Errorf("held layer removed: %v", err)
	}
	if _, err := s.Layers(ctx, keep); err != nil {
		t.Errorf("kept image broken: %v", err)
	}
	// The grace period protects fresh blobs.
	s2, _ := Open(s.Root(), Options{GCGracePeriod: time.Hour})
	makeImage(t, s2, "fresh", tarOf(t, "f", "f"))
	if st, _ := s2.GC(ctx, nil); st.Blobs != 0 {
		t.Errorf("fresh blobs collected: %+v", st)
	}
}

func TestLayers(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	m := makeImage(t, s, "sh",
		gz(tarOf(t, "etc/", "", "etc/passwd", "root", "etc/gone", "x", "lib", "->usr/lib")),
		tarOf(t, "etc/.wh.gone", "", "etc/new", "n"))
	var wg sync.WaitGroup
	results := make([][]string, 8)
	errs := make([]error, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = s.Layers(ctx, m)
		}()
	}
	wg.Wait()
	for i := range results {
		if errs[i] != nil || !slices.Equal(results[i], results[0]) || len(results[i]) != 2 {
			t.Fatalf("Layers[%d] = %v %v", i, results[i], errs[i])
		}
	}
	top, bottom := results[0][0], results[0][1]
	if b, err := os.ReadFile(filepath.Join(bottom, "etc/passwd")); err != nil || string(b) != "root" {
		t.Errorf("bottom etc/passwd: %q %v", b, err)
	}
	if l, err := os.Readlink(filepath.Join(bottom, "lib")); err != nil || l != "usr/lib" {
		t.Errorf("bottom lib: %q %v", l, err)
	}
	fi, err := os.Lstat(filepath.Join(top, "etc/gone"))
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		t.Errorf("whiteout in top: %v %v", fi, err)
	}
	if fi, err := os.Stat(top); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("layer root mode: %v %v", fi, err)
	}
	// The directory is keyed by chain ID.
	_, man, _ := s.Manifest(m)
	cfg, _ := s.Config(man)
	chains := ChainIDs(cfg.RootFS.DiffIDs)
	if bottom != s.LayerPath(chains[0]) || top != s.LayerPath(chains[1]) || chains[0] != cfg.RootFS.DiffIDs[0] {
		t.Errorf("layer paths %s %s, chains %v", bottom, top, chains)
	}
	if e, _ := os.ReadDir(s.layerTmpDir()); len(e) != 0 {
		t.Errorf("tmp left: %d", len(e))
	}
}

func TestLayersDiffIDMismatch(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	desc, _, err := s.AddLayer(ctx, bytes.NewReader(tarOf(t, "a", "1")))
	if err != nil {
		t.Fatal(err)
	}
	cfg := ImageConfig{Architecture: "amd64", OS: "linux", RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromString("lie")}}}
	b, _ := json.Marshal(cfg)
	m, err := s.Commit(ctx, b, []ocispec.Descriptor{desc}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Layers(ctx, m); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("Layers = %v, want ErrDigestMismatch", err)
	}
	if _, err := os.Stat(s.LayerPath(digest.FromString("lie"))); !errors.Is(err, os.ErrNotExist) {
		t.Error("layer directory made despite the mismatch")
	}
	if e, _ := os.ReadDir(s.layerTmpDir()); len(e) != 0 {
		t.Errorf("tmp left: %d", len(e))
	}
	// A layer with a device node is refused by default.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "dev/sda", Typeflag: tar.TypeBlock, Devmajor: 8, Mode: 0o600})
	tw.Close()
	if _, _, err := s.AddLayer(ctx, bytes.NewReader(buf.Bytes())); err == nil || !strings.Contains(err.Error(), `layer entry "dev/sda": device nodes are not allowed`) {
		t.Errorf("AddLayer of a device layer: %v", err)
	}
	if _, err := os.Stat(s.blobPath(digest.FromBytes(buf.Bytes()))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused layer's blob stayed: %v", err)
	}
	// And if such a blob is in the store anyway (written as a blob), the
	// unpack refuses it too.
	d, _, err := s.WriteBlob(ctx, bytes.NewReader(buf.Bytes()), "", -1)
	if err != nil {
		t.Fatal(err)
	}
	cfg2, _ := json.Marshal(ImageConfig{Architecture: "amd64", OS: "linux", RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{d}}})
	m2, err := s.Commit(ctx, cfg2, []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayer, Digest: d, Size: int64(buf.Len())}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Layers(ctx, m2); err == nil || !strings.Contains(err.Error(), `layer entry "dev/sda": device nodes are not allowed`) {
		t.Errorf("device layer: %v", err)
	}
}

func TestManifestKinds(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	m := makeImage(t, s, "sh", tarOf(t, "a", "1"))
	// An index with this platform and another, missing one.
	_, man, _ := s.Manifest(m)
	other := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("arm"), Size: 3, Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64"}}
	this := m
	this.Platform = &ocispec.Platform{OS: "linux", Architecture: s.opts.Platform.Architecture}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{other, this}}
	idx.SchemaVersion = 2
	ib, _ := json.Marshal(idx)
	id, err := s.WriteBlobBytes(ctx, ib)
	if err != nil {
		t.Fatal(err)
	}
	idesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: id, Size: int64(len(ib))}
	got, gm, err := s.Manifest(idesc)
	if err != nil || got.Digest != m.Digest || gm.Config.Digest != man.Config.Digest {
		t.Errorf("Manifest(index) = %v %v", got, err)
	}
	if err := s.Tag(ctx, ref(t, "multi"), idesc); err != nil {
		t.Errorf("tag index: %v", err)
	}
	// Docker schema 2 media types.
	dm := map[string]any{"schemaVersion": 2, "mediaType": MediaTypeDockerManifest,
		"config": map[string]any{"mediaType": MediaTypeDockerConfig, "digest": man.Config.Digest, "size": man.Config.Size},
		"layers": []any{map[string]any{"mediaType": MediaTypeDockerLayerGzip, "digest": man.Layers[0].Digest, "size": man.Layers[0].Size}}}
	db, _ := json.Marshal(dm)
	dd, _ := s.WriteBlobBytes(ctx, db)
	if _, _, err := s.Manifest(ocispec.Descriptor{MediaType: MediaTypeDockerManifest, Digest: dd, Size: int64(len(db))}); err != nil {
		t.Errorf("docker manifest: %v", err)
	}
	// Unsupported kinds.
	bad := map[string]any{"schemaVersion": 2, "mediaType": ocispec.MediaTypeImageManifest,
		"config": map[string]any{"mediaType": "application/x-helm", "digest": man.Config.Digest, "size": man.Config.Size}}
	bb, _ := json.Marshal(bad)
	bd, _ := s.WriteBlobBytes(ctx, bb)
	if _, _, err := s.Manifest(ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: bd, Size: int64(len(bb))}); !errors.Is(err, ErrUnsupportedMediaType) {
		t.Errorf("helm config: %v", err)
	}
	if _, _, err := s.Manifest(ocispec.Descriptor{MediaType: MediaTypeDockerManifest, Digest: m.Digest, Size: m.Size}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("media type disagreement: %v", err)
	}
}
