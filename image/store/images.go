package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/image/reference"
)

// Image is a stored image: a manifest (or index) and the names that point
// to it.
type Image struct {
	// Target is the manifest or index descriptor.
	Target ocispec.Descriptor
	// Names are the full references naming it, sorted; none for a dangling
	// image.
	Names []string
	// ID is the digest of its config (for this platform), Docker's image
	// ID; empty when the manifest cannot be read.
	ID digest.Digest
}

func newIndex() ocispec.Index {
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{}}
	idx.SchemaVersion = 2
	return idx
}

func (s *Store) readIndex() (ocispec.Index, error) {
	f, err := os.Open(s.indexPath())
	if err != nil {
		return ocispec.Index{}, fmt.Errorf("image index: %w", err)
	}
	defer f.Close()
	var idx ocispec.Index
	if err := readJSON(f, &idx); err != nil {
		return ocispec.Index{}, fmt.Errorf("image index: %w", err)
	}
	if idx.Manifests == nil {
		idx.Manifests = []ocispec.Descriptor{}
	}
	return idx, nil
}

func (s *Store) writeIndex(idx ocispec.Index) error {
	b, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	return writeFileAtomic(s.indexPath(), b)
}

func nameOf(d ocispec.Descriptor) string { return d.Annotations[AnnotationImageName] }

// canonical checks and normalizes a reference used as a name: it must have
// a tag (a digest-only name is not a tag).
func canonical(ref reference.Reference) (string, string, error) {
	if ref.Domain() == "" || ref.Tag() == "" {
		return "", "", fmt.Errorf("image name %q needs a registry and a tag: %w", ref.String(), errdefs.ErrInvalid)
	}
	return ref.String(), ref.Tag(), nil
}

// Tag points ref (normalized, with a tag) at target, a manifest or index
// in the store whose blobs are all present. An image the name leaves stays
// as a dangling image when nothing else names it.
func (s *Store) Tag(ctx context.Context, ref reference.Reference, target ocispec.Descriptor) error {
	name, tag, err := canonical(ref)
	if err != nil {
		return err
	}
	if err := s.checkComplete(target); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	idx, err := s.readIndex()
	if err != nil {
		return err
	}
	var old *ocispec.Descriptor
	kept := idx.Manifests[:0]
	for _, d := range idx.Manifests {
		switch {
		case nameOf(d) == name:
			d := d
			old = &d
		case nameOf(d) == "" && d.Digest == target.Digest:
			// A dangling entry of the same image gets the name instead.
		default:
			kept = append(kept, d)
		}
	}
	idx.Manifests = kept
	entry := ocispec.Descriptor{MediaType: target.MediaType, Digest: target.Digest, Size: target.Size,
		Annotations: map[string]string{AnnotationImageName: name, AnnotationRefName: tag}}
	idx.Manifests = append(idx.Manifests, entry)
	if old != nil && old.Digest != target.Digest && !named(idx, old.Digest) {
		idx.Manifests = append(idx.Manifests, ocispec.Descriptor{MediaType: old.MediaType, Digest: old.Digest, Size: old.Size})
	}
	return s.writeIndex(idx)
}

// AddDangling records target as an image without a name (docker build
// without -t, docker load of an untagged image), unless it is there.
func (s *Store) AddDangling(ctx context.Context, target ocispec.Descriptor) error {
	if err := s.checkComplete(target); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	idx, err := s.readIndex()
	if err != nil {
		return err
	}
	for _, d := range idx.Manifests {
		if d.Digest == target.Digest {
			return nil
		}
	}
	idx.Manifests = append(idx.Manifests, ocispec.Descriptor{MediaType: target.MediaType, Digest: target.Digest, Size: target.Size})
	return s.writeIndex(idx)
}

func named(idx ocispec.Index, d digest.Digest) bool {
	for _, m := range idx.Manifests {
		if m.Digest == d && nameOf(m) != "" {
			return true
		}
	}
	return false
}

// checkComplete checks that target is a manifest or index whose needed
// blobs (for this platform) are all in the store.
func (s *Store) checkComplete(target ocispec.Descriptor) error {
	if !IsManifest(target.MediaType) && !IsIndex(target.MediaType) {
		return fmt.Errorf("image target %s: media type %q: %w", target.Digest, target.MediaType, ErrUnsupportedMediaType)
	}
	if size, err := s.BlobSize(target.Digest); err != nil {
		return err
	} else if size != target.Size {
		return fmt.Errorf("image target %s is %d bytes, descriptor says %d: %w", target.Digest, size, target.Size, errdefs.ErrInvalid)
	}
	_, m, err := s.Manifest(target)
	if err != nil {
		return err
	}
	if _, err := s.BlobSize(m.Config.Digest); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if _, err := s.Config(m); err != nil {
		return err
	}
	for _, l := range m.Layers {
		if _, err := s.BlobSize(l.Digest); err != nil {
			return fmt.Errorf("layer: %w", err)
		}
	}
	return nil
}

// Resolve returns the manifest or index ref names.
func (s *Store) Resolve(ref reference.Reference) (ocispec.Descriptor, error) {
	if ref.Digest() != "" {
		// name@digest: the image with that digest, if the name has it.
		imgs, err := s.List()
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		for _, img := range imgs {
			if img.Target.Digest != ref.Digest() {
				continue
			}
			for _, n := range img.Names {
				if r, err := reference.ParseNormalized(n); err == nil && r.Name() == ref.Name() {
					return img.Target, nil
				}
			}
		}
		return ocispec.Descriptor{}, fmt.Errorf("No such image: %s: %w", ref.Familiar(), errdefs.ErrNotFound)
	}
	name, _, err := canonical(ref)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	idx, err := s.readIndex()
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	for _, d := range idx.Manifests {
		if nameOf(d) == name {
			return ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}, nil
		}
	}
	return ocispec.Descriptor{}, fmt.Errorf("No such image: %s: %w", ref.Familiar(), errdefs.ErrNotFound)
}

// List returns the stored images, one per manifest, in the order first
// recorded.
func (s *Store) List() ([]Image, error) {
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	return s.images(idx), nil
}

func (s *Store) images(idx ocispec.Index) []Image {
	var out []Image
	pos := map[digest.Digest]int{}
	for _, d := range idx.Manifests {
		i, ok := pos[d.Digest]
		if !ok {
			i = len(out)
			pos[d.Digest] = i
			img := Image{Target: ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}}
			if _, m, err := s.Manifest(img.Target); err == nil {
				img.ID = m.Config.Digest
			}
			out = append(out, img)
		}
		if n := nameOf(d); n != "" {
			out[i].Names = append(out[i].Names, n)
		}
	}
	for i := range out {
		slices.Sort(out[i].Names)
	}
	return out
}

// Find looks an image up as Docker's commands do: a reference first, then
// a full or abbreviated image ID (with or without "sha256:").
func (s *Store) Find(name string) (Image, error) {
	imgs, err := s.List()
	if err != nil {
		return Image{}, err
	}
	if ref, err := reference.ParseDockerRef(name); err == nil {
		if desc, err := s.Resolve(ref); err == nil {
			for _, img := range imgs {
				if img.Target.Digest == desc.Digest {
					return img, nil
				}
			}
		}
	}
	hex := strings.TrimPrefix(name, "sha256:")
	if hex == "" || strings.Trim(hex, "0123456789abcdef") != "" {
		return Image{}, fmt.Errorf("No such image: %s: %w", name, errdefs.ErrNotFound)
	}
	var found []Image
	for _, img := range imgs {
		if strings.HasPrefix(img.ID.Encoded(), hex) || strings.HasPrefix(img.Target.Digest.Encoded(), hex) && len(hex) == 64 {
			found = append(found, img)
		}
	}
	switch len(found) {
	case 0:
		return Image{}, fmt.Errorf("No such image: %s: %w", name, errdefs.ErrNotFound)
	case 1:
		return found[0], nil
	}
	return Image{}, fmt.Errorf("image ID %s is ambiguous: %w", name, errdefs.ErrInvalid)
}

// Removal is one line of docker rmi's report.
type Removal struct {
	Untagged string `json:",omitempty"`
	Deleted  string `json:",omitempty"`
}

// Delete removes the name ref; if no other name is left on its image, the
// image goes too, with the blobs no other image uses (docker rmi NAME).
func (s *Store) Delete(ctx context.Context, ref reference.Reference) ([]Removal, error) {
	name, _, err := canonical(ref)
	if err != nil {
		return nil, err
	}
	return s.remove(func(d ocispec.Descriptor) bool { return nameOf(d) == name }, "No such image: "+ref.Familiar())
}

// DeleteImage removes an image and all its names (docker rmi -f ID).
func (s *Store) DeleteImage(ctx context.Context, target digest.Digest) ([]Removal, error) {
	return s.remove(func(d ocispec.Descriptor) bool { return d.Digest == target }, "No such image: "+target.String())
}

func (s *Store) remove(match func(ocispec.Descriptor) bool, notFound string) ([]Removal, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	before := s.refCounts(idx)
	var out []Removal
	var removed []ocispec.Descriptor
	kept := idx.Manifests[:0]
	for _, d := range idx.Manifests {
		if match(d) {
			removed = append(removed, d)
			if n := nameOf(d); n != "" {
				fam := n
				if r, err := reference.ParseNormalized(n); err == nil {
					fam = r.Familiar()
				}
				out = append(out, Removal{Untagged: fam})
			}
			continue
		}
		kept = append(kept, d)
	}
	if len(removed) == 0 {
		return nil, fmt.Errorf("%s: %w", notFound, errdefs.ErrNotFound)
	}
	idx.Manifests = kept
	// An image left with only a dangling entry after losing its last name
	// is deleted: rmi of its last tag deletes it.
	gone := map[digest.Digest]bool{}
	for _, d := range removed {
		if !named(idx, d.Digest) {
			gone[d.Digest] = true
		}
	}
	kept = idx.Manifests[:0]
	for _, d := range idx.Manifests {
		if !gone[d.Digest] {
			kept = append(kept, d)
		}
	}
	idx.Manifests = kept
	if err := s.writeIndex(idx); err != nil {
		return nil, err
	}
	after := s.refCounts(idx)
	for _, d := range removed {
		if gone[d.Digest] {
			if _, m, err := s.Manifest(d); err == nil {
				out = append(out, Removal{Deleted: m.Config.Digest.String()})
			}
			gone[d.Digest] = false
		}
	}
	for dg := range before {
		if after[dg] == 0 {
			os.Remove(s.blobPath(dg))
		}
	}
	return out, nil
}

// refCounts counts, for every blob, the images that use it (their
// manifest or index, the chosen manifests, configs and layers).
func (s *Store) refCounts(idx ocispec.Index) map[digest.Digest]int {
	counts := map[digest.Digest]int{}
	seen := map[digest.Digest]bool{}
	for _, d := range idx.Manifests {
		if seen[d.Digest] {
			continue
		}
		seen[d.Digest] = true
		for _, b := range s.blobsOf(ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}) {
			counts[b]++
		}
	}
	return counts
}

// blobsOf lists the blobs an image uses: its target, an index's manifests
// that are present, and each manifest's config and layers.
func (s *Store) blobsOf(target ocispec.Descriptor) []digest.Digest {
	out := []digest.Digest{target.Digest}
	var doc manifestDoc
	if err := s.readBlobJSON(target.Digest, &doc); err != nil {
		return out
	}
	manifests := []manifestDoc{doc}
	if len(doc.Manifests) > 0 {
		manifests = nil
		for _, m := range doc.Manifests {
			var md manifestDoc
			if err := s.readBlobJSON(m.Digest, &md); err == nil {
				out = append(out, m.Digest)
				manifests = append(manifests, md)
			}
		}
	}
	for _, m := range manifests {
		if m.Config != nil {
			out = append(out, m.Config.Digest)
		}
		for _, l := range m.Layers {
			out = append(out, l.Digest)
		}
	}
	return out
}

// GCStats says what GC removed.
type GCStats struct {
	Blobs, Layers int
	Bytes         int64
}

// GC removes blobs no image uses (unless written within the grace
// period) and unpacked layers no image uses and keepLayer does not keep
// (the engine keeps those under running containers).
func (s *Store) GC(ctx context.Context, keepLayer func(chainID digest.Digest) bool) (GCStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var st GCStats
	idx, err := s.readIndex()
	if err != nil {
		return st, err
	}
	used := s.refCounts(idx)
	chains := map[digest.Digest]bool{}
	for _, img := range s.images(idx) {
		if _, m, err := s.Manifest(img.Target); err == nil {
			if c, err := s.Config(m); err == nil {
				for _, id := range ChainIDs(c.RootFS.DiffIDs) {
					chains[id] = true
				}
			}
		}
	}
	entries, err := os.ReadDir(s.blobDir(digest.SHA256))
	if err != nil {
		return st, err
	}
	cutoff := time.Now().Add(-s.opts.GCGracePeriod)
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if used[d] > 0 {
			continue
		}
		fi, err := e.Info()
		if err != nil || fi.ModTime().After(cutoff) {
			continue
		}
		if err := os.Remove(s.blobPath(d)); err == nil {
			st.Blobs++
			st.Bytes += fi.Size()
		}
	}
	layers, err := os.ReadDir(s.layersDir())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return st, err
	}
	for _, e := range layers {
		id := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if chains[id] || (keepLayer != nil && keepLayer(id)) {
			continue
		}
		if err := s.removeLayer(id); err == nil {
			st.Layers++
		}
	}
	return st, nil
}
