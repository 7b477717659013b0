package store

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/image/layer"
	"github.com/cais-platform/cais/image/reference"
)

// ArchiveManifest is one entry of a docker-archive's manifest.json.
type ArchiveManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// Save writes the images names (references or IDs, as Find takes them) to
// w as docker save does: an OCI image layout with Docker's manifest.json.
// Each image is saved as the manifest for the store's platform.
func (s *Store) Save(ctx context.Context, w io.Writer, names []string) error {
	tw := tar.NewWriter(w)
	written := map[digest.Digest]bool{}
	idx := newIndex()
	var manifests []ArchiveManifest
	byTarget := map[digest.Digest]int{} // manifest digest -> position in manifests

	writeFile := func(name string, b []byte) error {
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	writeBlob := func(d digest.Digest) error {
		if written[d] {
			return nil
		}
		written[d] = true
		f, err := s.OpenBlob(d)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: blobName(d), Mode: 0o444, Size: fi.Size(), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err = io.Copy(tw, ctxReader{ctx, f})
		return err
	}

	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: dir, Mode: 0o755, Typeflag: tar.TypeDir, ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
	}
	for _, name := range names {
		img, err := s.Find(name)
		if err != nil {
			return err
		}
		desc, m, err := s.Manifest(img.Target)
		if err != nil {
			return err
		}
		for _, d := range append([]digest.Digest{desc.Digest, m.Config.Digest}, layerDigests(m)...) {
			if err := writeBlob(d); err != nil {
				return err
			}
		}
		i, ok := byTarget[desc.Digest]
		if !ok {
			i = len(manifests)
			byTarget[desc.Digest] = i
			am := ArchiveManifest{Config: blobName(m.Config.Digest), RepoTags: []string{}}
			for _, d := range layerDigests(m) {
				am.Layers = append(am.Layers, blobName(d))
			}
			manifests = append(manifests, am)
		}
		// The names saved: the one asked for, or all of an image given by ID.
		var tags []reference.Reference
		if ref, err := reference.ParseDockerRef(name); err == nil && ref.Tag() != "" {
			if d, err := s.Resolve(ref); err == nil && d.Digest == img.Target.Digest {
				tags = append(tags, ref)
			}
		}
		if len(tags) == 0 {
			for _, n := range img.Names {
				if ref, err := reference.ParseNormalized(n); err == nil {
					tags = append(tags, ref)
				}
			}
		}
		for _, ref := range tags {
			if slices.Contains(manifests[i].RepoTags, ref.Familiar()) {
				continue
			}
			manifests[i].RepoTags = append(manifests[i].RepoTags, ref.Familiar())
			idx.Manifests = append(idx.Manifests, ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size,
				Annotations: map[string]string{AnnotationImageName: ref.String(), AnnotationRefName: ref.Tag()}})
		}
		if len(tags) == 0 && !slices.ContainsFunc(idx.Manifests, func(d ocispec.Descriptor) bool { return d.Digest == desc.Digest }) {
			idx.Manifests = append(idx.Manifests, ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size})
		}
	}
	layout, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	ib, _ := json.Marshal(idx)
	mb, _ := json.Marshal(manifests)
	for _, f := range []struct {
		name string
		b    []byte
	}{{ocispec.ImageLayoutFile, layout}, {ocispec.ImageIndexFile, ib}, {"manifest.json", mb}} {
		if err := writeFile(f.name, f.b); err != nil {
			return err
		}
	}
	return tw.Close()
}

func blobName(d digest.Digest) string {
	return path.Join(ocispec.ImageBlobsDir, string(d.Algorithm()), d.Encoded())
}

func layerDigests(m ocispec.Manifest) []digest.Digest {
	out := make([]digest.Digest, len(m.Layers))
	for i, l := range m.Layers {
		out[i] = l.Digest
	}
	return out
}

// Loaded is an image Load stored.
type Loaded struct {
	// Names are the familiar names it was tagged with ("busybox:latest").
	Names []string
	// ID is its image ID (config digest).
	ID     digest.Digest
	Target ocispec.Descriptor
}

// Load reads a docker save archive (OCI layout with or without Docker's
// manifest.json, or the legacy format with <id>/layer.tar), plain or
// compressed, stores its blobs after checking their digests, and tags its
// images. Names in the archive replace those in the store.
func (s *Store) Load(ctx context.Context, r io.Reader) ([]Loaded, error) {
	zr, _, err := layer.Decompress(r)
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	files := map[string]digest.Digest{} // archive path -> stored blob
	sizes := map[digest.Digest]int64{}
	links := map[string]string{}
	var index *ocispec.Index
	var manifests []ArchiveManifest
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("invalid archive: %w: %w", err, errdefs.ErrInvalid)
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, "./"))
		switch hdr.Typeflag {
		case tar.TypeSymlink, tar.TypeLink:
			target := hdr.Linkname
			if hdr.Typeflag == tar.TypeSymlink {
				target = path.Join(path.Dir(name), target)
			}
			links[name] = path.Clean(strings.TrimPrefix(target, "./"))
			continue
		case tar.TypeReg, tar.TypeRegA:
		default:
			continue
		}
		switch {
		case name == ocispec.ImageIndexFile:
			index = &ocispec.Index{}
			if err := readJSON(tr, index); err != nil {
				return nil, fmt.Errorf("invalid archive: index.json: %w", err)
			}
		case name == "manifest.json":
			if err := readJSON(tr, &manifests); err != nil {
				return nil, fmt.Errorf("invalid archive: manifest.json: %w", err)
			}
		case strings.HasPrefix(name, ocispec.ImageBlobsDir+"/"):
			parts := strings.Split(name, "/")
			if len(parts) != 3 {
				continue
			}
			want := digest.NewDigestFromEncoded(digest.Algorithm(parts[1]), parts[2])
			if err := want.Validate(); err != nil {
				return nil, fmt.Errorf("invalid archive: blob %s: %w: %w", name, err, errdefs.ErrInvalid)
			}
			d, n, err := s.WriteBlob(ctx, archiveBody{tr}, want, hdr.Size)
			if err != nil {
				return nil, fmt.Errorf("invalid archive: %s: %w", name, err)
			}
			files[name], sizes[d] = d, n
		case strings.HasSuffix(name, ".tar") || strings.HasSuffix(name, ".json"):
			// The legacy format: <id>/layer.tar and <id>.json.
			d, n, err := s.WriteBlob(ctx, archiveBody{tr}, "", hdr.Size)
			if err != nil {
				return nil, fmt.Errorf("invalid archive: %s: %w", name, err)
			}
			files[name], sizes[d] = d, n
		}
	}
	lookup := func(p string) (digest.Digest, bool) {
		p = path.Clean(strings.TrimPrefix(p, "./"))
		for i := 0; i < 16; i++ {
			if d, ok := files[p]; ok {
				return d, true
			}
			next, ok := links[p]
			if !ok {
				return "", false
			}
			p = next
		}
		return "", false
	}

	type found struct {
		target ocispec.Descriptor
		names  []string
	}
	var images []found
	add := func(f found) {
		for i := range images {
			if images[i].target.Digest == f.target.Digest {
				for _, n := range f.names {
					if !slices.Contains(images[i].names, n) {
						images[i].names = append(images[i].names, n)
					}
				}
				return
			}
		}
		images = append(images, f)
	}
	if index != nil && len(index.Manifests) > 0 {
		for _, d := range index.Manifests {
			if err := s.checkComplete(d); err != nil {
				return nil, fmt.Errorf("invalid archive: image %s: %w", d.Digest, err)
			}
			f := found{target: ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}}
			if n := d.Annotations[AnnotationImageName]; n != "" {
				f.names = append(f.names, n)
			} else if n := d.Annotations[AnnotationRefName]; strings.ContainsAny(n, "/:") {
				f.names = append(f.names, n)
			}
			if len(f.names) == 0 {
				// Docker's manifest.json may name it.
				_, m, _ := s.Manifest(f.target)
				for _, am := range manifests {
					if cd, ok := lookup(am.Config); ok && cd == m.Config.Digest {
						f.names = append(f.names, am.RepoTags...)
					}
				}
			}
			add(f)
		}
	} else if len(manifests) > 0 {
		for _, am := range manifests {
			target, err := s.commitArchived(ctx, am, lookup, sizes)
			if err != nil {
				return nil, err
			}
			add(found{target: target, names: am.RepoTags})
		}
	} else {
		return nil, fmt.Errorf("invalid archive: no index.json or manifest.json: %w", errdefs.ErrInvalid)
	}

	var out []Loaded
	for _, f := range images {
		_, m, err := s.Manifest(f.target)
		if err != nil {
			return nil, err
		}
		// Layers are unpacked at the first docker run: a layer that could
		// not be is refused now.
		if err := s.checkLayers(ctx, m); err != nil {
			for _, l := range m.Layers {
				s.RemoveBlobIfUnused(context.WithoutCancel(ctx), l.Digest)
			}
			return nil, fmt.Errorf("invalid archive: %w", err)
		}
		l := Loaded{ID: m.Config.Digest, Target: f.target}
		for _, n := range f.names {
			ref, err := reference.ParseDockerRef(n)
			if err != nil {
				return nil, fmt.Errorf("invalid archive: image name %q: %w", n, err)
			}
			if err := s.Tag(ctx, ref, f.target); err != nil {
				return nil, err
			}
			l.Names = append(l.Names, ref.Familiar())
		}
		if len(f.names) == 0 {
			if err := s.AddDangling(ctx, f.target); err != nil {
				return nil, err
			}
		}
		out = append(out, l)
	}
	return out, nil
}

// commitArchived makes a Docker schema 2 manifest for a manifest.json entry.
func (s *Store) commitArchived(ctx context.Context, am ArchiveManifest, lookup func(string) (digest.Digest, bool), sizes map[digest.Digest]int64) (ocispec.Descriptor, error) {
	cd, ok := lookup(am.Config)
	if !ok {
		return ocispec.Descriptor{}, fmt.Errorf("invalid archive: config %q missing: %w", am.Config, errdefs.ErrInvalid)
	}
	var buf bytes.Buffer
	f, err := s.OpenBlob(cd)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	_, err = io.Copy(&buf, io.LimitReader(f, maxJSON+1))
	f.Close()
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	var layers []ocispec.Descriptor
	for _, lp := range am.Layers {
		ld, ok := lookup(lp)
		if !ok {
			return ocispec.Descriptor{}, fmt.Errorf("invalid archive: layer %q missing: %w", lp, errdefs.ErrInvalid)
		}
		mt, err := s.layerMediaType(ld)
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		layers = append(layers, ocispec.Descriptor{MediaType: mt, Digest: ld, Size: sizes[ld]})
	}
	desc, err := s.Commit(ctx, buf.Bytes(), layers, true)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("invalid archive: %w", err)
	}
	return desc, nil
}

// layerMediaType names a stored layer's Docker media type by its
// compression.
func (s *Store) layerMediaType(d digest.Digest) (string, error) {
	f, err := s.OpenBlob(d)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, 4)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", err
	}
	switch layer.DetectCompression(head[:n]) {
	case layer.Gzip:
		return MediaTypeDockerLayerGzip, nil
	case layer.Zstd:
		return ocispec.MediaTypeImageLayerZstd, nil
	}
	return MediaTypeDockerLayer, nil
}

// archiveBody marks read errors of an archive's content (truncation) as
// the archive's fault.
type archiveBody struct{ r io.Reader }

func (a archiveBody) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: %w", err, errdefs.ErrInvalid)
	}
	return n, err
}

// checkLayers reads each layer of m and refuses one that Unpack would
// refuse by its entries (layer.Check).
func (s *Store) checkLayers(ctx context.Context, m ocispec.Manifest) error {
	for _, l := range m.Layers {
		f, err := s.OpenBlob(l.Digest)
		if err != nil {
			return err
		}
		zr, _, err := layer.Decompress(f)
		if err == nil {
			err = layer.Check(ctx, zr, layer.Options{Whiteouts: layer.WhiteoutOverlay, Devices: s.opts.Devices})
			zr.Close()
		}
		f.Close()
		if err != nil {
			return fmt.Errorf("layer %s: %w", l.Digest, err)
		}
	}
	return nil
}
