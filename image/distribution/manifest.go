package distribution

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/image/store"
)

// Limits on what a registry sends.
const (
	// MaxManifestSize bounds a manifest or index, as the cais registry
	// and distribution/distribution do.
	MaxManifestSize = 4 << 20
	// MaxConfigSize bounds an image config.
	MaxConfigSize = 8 << 20
	// maxDescriptors bounds the layers of a manifest or the manifests of
	// an index.
	maxDescriptors = 1000
)

// manifestAccept is the Accept header of manifest requests: every
// manifest and index type the store takes.
var manifestAccept = strings.Join([]string{
	ocispec.MediaTypeImageManifest, store.MediaTypeDockerManifest,
	ocispec.MediaTypeImageIndex, store.MediaTypeDockerManifestList,
}, ", ")

// Manifest is a parsed manifest or index.
type Manifest struct {
	// MediaType is the document's type.
	MediaType string
	// Config and Layers are an image manifest's.
	Config ocispec.Descriptor
	Layers []ocispec.Descriptor
	// Manifests are an index's.
	Manifests []ocispec.Descriptor
}

// IsIndex reports whether m is an index.
func (m Manifest) IsIndex() bool { return store.IsIndex(m.MediaType) }

type manifestDoc struct {
	SchemaVersion int                  `json:"schemaVersion"`
	MediaType     string               `json:"mediaType,omitempty"`
	Config        *ocispec.Descriptor  `json:"config,omitempty"`
	Layers        []ocispec.Descriptor `json:"layers,omitempty"`
	Manifests     []ocispec.Descriptor `json:"manifests,omitempty"`
}

// ParseManifest decodes a manifest or index a registry sent with
// contentType (its Content-Type header, which may be empty or generic)
// and checks it: schema version 2, a media type the store takes, valid
// digests and sizes, config and layer types the store handles, at most
// maxDescriptors entries.
func ParseManifest(contentType string, body []byte) (Manifest, error) {
	if len(body) > MaxManifestSize {
		return Manifest{}, fmt.Errorf("manifest larger than %d bytes: %w", MaxManifestSize, errdefs.ErrInvalid)
	}
	var doc manifestDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		return Manifest{}, fmt.Errorf("invalid manifest: %v: %w", err, errdefs.ErrInvalid)
	}
	mt := doc.MediaType
	if ct, _, _ := strings.Cut(contentType, ";"); mt == "" {
		ct = strings.TrimSpace(ct)
		switch {
		case store.IsManifest(ct) || store.IsIndex(ct):
			mt = ct
		case doc.Config != nil:
			mt = ocispec.MediaTypeImageManifest
		case doc.Manifests != nil:
			mt = ocispec.MediaTypeImageIndex
		}
	}
	if doc.SchemaVersion != 2 {
		return Manifest{}, fmt.Errorf("unsupported manifest schema version %d (only schema 2 images are pulled): %w", doc.SchemaVersion, errdefs.ErrInvalid)
	}
	m := Manifest{MediaType: mt}
	switch {
	case store.IsManifest(mt):
		if doc.Config == nil || doc.Manifests != nil {
			return Manifest{}, fmt.Errorf("invalid manifest: an image manifest needs a config and no manifests: %w", errdefs.ErrInvalid)
		}
		if !store.IsConfig(doc.Config.MediaType) {
			return Manifest{}, fmt.Errorf("manifest config media type %q is not an image's: %w", doc.Config.MediaType, store.ErrUnsupportedMediaType)
		}
		if err := checkDescriptor(*doc.Config, MaxConfigSize); err != nil {
			return Manifest{}, fmt.Errorf("manifest config: %w", err)
		}
		if len(doc.Layers) > maxDescriptors {
			return Manifest{}, fmt.Errorf("manifest has %d layers, more than %d: %w", len(doc.Layers), maxDescriptors, errdefs.ErrInvalid)
		}
		for i, l := range doc.Layers {
			if !store.IsLayer(l.MediaType) {
				return Manifest{}, fmt.Errorf("manifest layer %d: media type %q: %w", i, l.MediaType, store.ErrUnsupportedMediaType)
			}
			if err := checkDescriptor(l, -1); err != nil {
				return Manifest{}, fmt.Errorf("manifest layer %d: %w", i, err)
			}
		}
		m.Config, m.Layers = *doc.Config, doc.Layers
	case store.IsIndex(mt):
		if doc.Config != nil || doc.Layers != nil {
			return Manifest{}, fmt.Errorf("invalid index: an index has no config or layers: %w", errdefs.ErrInvalid)
		}
		if len(doc.Manifests) > maxDescriptors {
			return Manifest{}, fmt.Errorf("index has %d manifests, more than %d: %w", len(doc.Manifests), maxDescriptors, errdefs.ErrInvalid)
		}
		for i, d := range doc.Manifests {
			if err := checkDescriptor(d, MaxManifestSize); err != nil {
				return Manifest{}, fmt.Errorf("index entry %d: %w", i, err)
			}
		}
		m.Manifests = doc.Manifests
	default:
		return Manifest{}, fmt.Errorf("unsupported manifest media type %q: %w", mt, store.ErrUnsupportedMediaType)
	}
	return m, nil
}

// checkDescriptor checks a descriptor's digest and size (at most max,
// unless max < 0).
func checkDescriptor(d ocispec.Descriptor, max int64) error {
	if err := d.Digest.Validate(); err != nil {
		return fmt.Errorf("digest %q: %v: %w", d.Digest, err, errdefs.ErrInvalid)
	}
	if d.Digest.Algorithm() != digest.SHA256 && d.Digest.Algorithm() != digest.SHA512 {
		return fmt.Errorf("digest %s: unsupported algorithm: %w", d.Digest, errdefs.ErrInvalid)
	}
	if d.Size < 0 || max >= 0 && d.Size > max {
		return fmt.Errorf("%s: size %d out of bounds: %w", d.Digest, d.Size, errdefs.ErrInvalid)
	}
	return nil
}

// PickPlatform chooses an index's manifest for platform: same OS and
// architecture, and variant when both name one. Docker's order: the
// first match.
func PickPlatform(index []ocispec.Descriptor, platform ocispec.Platform) (ocispec.Descriptor, bool) {
	for _, d := range index {
		p := d.Platform
		if p == nil || !store.IsManifest(d.MediaType) && d.MediaType != "" {
			continue
		}
		if strings.EqualFold(p.OS, platform.OS) && strings.EqualFold(p.Architecture, platform.Architecture) &&
			(platform.Variant == "" || p.Variant == "" || p.Variant == platform.Variant) {
			return d, true
		}
	}
	return ocispec.Descriptor{}, false
}
