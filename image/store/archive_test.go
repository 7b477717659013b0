package store

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cais-platform/cais/errdefs"
)

func tarEntries(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out[hdr.Name] = b
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := newStore(t)
	base := tarOf(t, "bin/", "", "bin/sh", "#!")
	m1 := makeImage(t, src, "one", base, gz(tarOf(t, "app", "1")))
	m2 := makeImage(t, src, "two", base)
	src.Tag(ctx, ref(t, "one:1"), m1)
	src.Tag(ctx, ref(t, "one:alias"), m1)
	src.Tag(ctx, ref(t, "localhost:5000/two"), m2)

	var buf bytes.Buffer
	if err := src.Save(ctx, &buf, []string{"one:1", "localhost:5000/two"}); err != nil {
		t.Fatal(err)
	}
	entries := tarEntries(t, buf.Bytes())
	var am []ArchiveManifest
	if err := json.Unmarshal(entries["manifest.json"], &am); err != nil || len(am) != 2 {
		t.Fatalf("manifest.json = %s %v", entries["manifest.json"], err)
	}
	if !slices.Equal(am[0].RepoTags, []string{"one:1"}) || !slices.Equal(am[1].RepoTags, []string{"localhost:5000/two:latest"}) || len(am[0].Layers) != 2 {
		t.Errorf("manifest.json = %+v", am)
	}
	if _, ok := entries[am[0].Config]; !ok {
		t.Errorf("config %s not in the archive", am[0].Config)
	}
	if string(entries["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout = %s", entries["oci-layout"])
	}
	// 2 manifests + 2 configs + 2 distinct layers + the shared one, once.
	blobs := 0
	for name := range entries {
		if strings.HasPrefix(name, "blobs/sha256/") && len(name) > len("blobs/sha256/") {
			blobs++
		}
	}
	if blobs != 6 {
		t.Errorf("%d blobs in the archive, want 6", blobs)
	}

	dst := newStore(t)
	loaded, err := dst.Load(ctx, bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded) != 2 || !slices.Equal(loaded[0].Names, []string{"one:1"}) || loaded[0].Target.Digest != m1.Digest {
		t.Errorf("loaded = %+v", loaded)
	}
	if d, err := dst.Resolve(ref(t, "localhost:5000/two")); err != nil || d.Digest != m2.Digest {
		t.Errorf("two after load: %v %v", d, err)
	}
	if _, err := dst.Resolve(ref(t, "one:alias")); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("alias was not asked for: %v", err)
	}
	if _, err := dst.Layers(ctx, m1); err != nil {
		t.Errorf("layers after load: %v", err)
	}
	// Compressed archives load too; by ID an image keeps all its names.
	var byID bytes.Buffer
	img, _ := src.Find("one:1")
	if err := src.Save(ctx, &byID, []string{img.ID.Encoded()[:12]}); err != nil {
		t.Fatal(err)
	}
	dst2 := newStore(t)
	loaded, err = dst2.Load(ctx, bytes.NewReader(gz(byID.Bytes())))
	if err != nil || len(loaded) != 1 || !slices.Equal(loaded[0].Names, []string{"one:1", "one:alias"}) {
		t.Errorf("load by ID = %+v %v", loaded, err)
	}
}

// legacyArchive builds a pre-OCI docker save archive: <id>/layer.tar,
// <id>.json, manifest.json, and a symlink for a repeated layer.
func legacyArchive(t testing.TB, layerTar []byte, corruptConfig bool) []byte {
	t.Helper()
	diffID := digest.FromBytes(layerTar)
	cfg := ImageConfig{Architecture: "amd64", OS: "linux", Config: ContainerConfig{Cmd: []string{"sh"}},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID, diffID}}}
	cb, _ := json.Marshal(cfg)
	if corruptConfig {
		cb = []byte("{not json")
	}
	mb, _ := json.Marshal([]ArchiveManifest{{Config: "abc.json", RepoTags: []string{"legacy:v1"}, Layers: []string{"l1/layer.tar", "l2/layer.tar"}}})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, b []byte) {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)})
		tw.Write(b)
	}
	add("l1/layer.tar", layerTar)
	tw.WriteHeader(&tar.Header{Name: "l2/layer.tar", Typeflag: tar.TypeSymlink, Linkname: "../l1/layer.tar"})
	add("abc.json", cb)
	add("manifest.json", mb)
	add("repositories", []byte(`{"legacy":{"v1":"abc"}}`))
	tw.Close()
	return buf.Bytes()
}

func TestLoadLegacy(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	loaded, err := s.Load(ctx, bytes.NewReader(legacyArchive(t, tarOf(t, "hello", "world"), false)))
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded) != 1 || !slices.Equal(loaded[0].Names, []string{"legacy:v1"}) {
		t.Fatalf("loaded = %+v", loaded)
	}
	desc, err := s.Resolve(ref(t, "legacy:v1"))
	if err != nil || desc.MediaType != MediaTypeDockerManifest {
		t.Fatalf("resolve = %+v %v", desc, err)
	}
	_, m, _ := s.Manifest(desc)
	if len(m.Layers) != 2 || m.Layers[0].MediaType != MediaTypeDockerLayer || m.Layers[0].Digest != m.Layers[1].Digest {
		t.Errorf("layers = %+v", m.Layers)
	}
	if dirs, err := s.Layers(ctx, desc); err != nil || len(dirs) != 2 {
		t.Errorf("Layers = %v %v", dirs, err)
	}
}

func TestLoadBad(t *testing.T) {
	ctx := context.Background()
	good := func() []byte {
		src := newStore(t)
		m := makeImage(t, src, "x", tarOf(t, "a", "b"))
		src.Tag(ctx, ref(t, "x"), m)
		var buf bytes.Buffer
		if err := src.Save(ctx, &buf, []string{"x"}); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}()
	// Corrupt one blob: flip a byte of the first regular file under blobs/.
	corrupt := func() []byte {
		var out bytes.Buffer
		tw := tar.NewWriter(&out)
		tr := tar.NewReader(bytes.NewReader(good))
		done := false
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				break
			}
			b, _ := io.ReadAll(tr)
			if !done && hdr.Typeflag == tar.TypeReg && strings.HasPrefix(hdr.Name, "blobs/") && len(b) > 0 {
				b[0] ^= 0xff
				done = true
			}
			tw.WriteHeader(hdr)
			tw.Write(b)
		}
		tw.Close()
		return out.Bytes()
	}()
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"garbage", []byte(strings.Repeat("garbage!", 200)), errdefs.ErrInvalid},
		{"empty tar", tarOf(t), errdefs.ErrInvalid},
		{"corrupt blob", corrupt, ErrDigestMismatch},
		{"truncated", good[:len(good)/2], errdefs.ErrInvalid},
		{"bad config", legacyArchive(t, tarOf(t, "a", "b"), true), errdefs.ErrInvalid},
		{"bad name", func() []byte {
			mb, _ := json.Marshal([]ArchiveManifest{{Config: "c.json", RepoTags: []string{"Bad:Name"}}})
			cb, _ := json.Marshal(ImageConfig{OS: "linux", Architecture: "amd64", RootFS: ocispec.RootFS{Type: "layers"}})
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			tw.WriteHeader(&tar.Header{Name: "c.json", Size: int64(len(cb)), Mode: 0o644})
			tw.Write(cb)
			tw.WriteHeader(&tar.Header{Name: "manifest.json", Size: int64(len(mb)), Mode: 0o644})
			tw.Write(mb)
			tw.Close()
			return buf.Bytes()
		}(), errdefs.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			if _, err := s.Load(ctx, bytes.NewReader(tt.data)); !errors.Is(err, tt.want) {
				t.Errorf("Load = %v, want %v", err, tt.want)
			}
			if imgs, _ := s.List(); len(imgs) != 0 {
				t.Errorf("images after a failed load: %+v", imgs)
			}
		})
	}
}

// FuzzLoad loads arbitrary archives: no panic, every failure an
// ErrInvalid, ErrNotFound or digest mismatch, and every loaded image
// complete.
func FuzzLoad(f *testing.F) {
	ctx := context.Background()
	src := newStore(f)
	m := makeImage(f, src, "x", tarOf(f, "a", "b"))
	src.Tag(ctx, ref(f, "x"), m)
	var buf bytes.Buffer
	src.Save(ctx, &buf, []string{"x"})
	f.Add(buf.Bytes())
	f.Add(legacyArchive(f, tarOf(f, "a", "b"), false))
	f.Add(tarOf(f, "index.json", `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":1}]}`))
	f.Add(tarOf(f, "manifest.json", `[{"Config":"x.json","Layers":["../../etc/passwd"]}]`, "blobs/sha256/../../x", "y"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newStore(t)
		loaded, err := s.Load(ctx, bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalid) && !errors.Is(err, errdefs.ErrNotFound) {
				t.Fatalf("Load error %v is neither ErrInvalid nor ErrNotFound", err)
			}
			return
		}
		for _, l := range loaded {
			if err := s.checkComplete(l.Target); err != nil {
				t.Fatalf("loaded image %s incomplete: %v", l.Target.Digest, err)
			}
		}
	})
}
