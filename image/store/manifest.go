package store

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/image/imageconfig"
)

// Docker's media types (image manifest v2, schema 2).
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar"
	MediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
)

// IsManifest reports whether a media type is a single-platform manifest.
func IsManifest(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == MediaTypeDockerManifest
}

// IsIndex reports whether a media type is a multi-platform index.
func IsIndex(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == MediaTypeDockerManifestList
}

// IsLayer reports whether a media type is a layer the store can unpack.
func IsLayer(mt string) bool {
	switch mt {
	case ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerZstd,
		MediaTypeDockerLayer, MediaTypeDockerLayerGzip, MediaTypeDockerForeignLayer,
		ocispec.MediaTypeImageLayerNonDistributable, ocispec.MediaTypeImageLayerNonDistributableGzip, ocispec.MediaTypeImageLayerNonDistributableZstd: //nolint:staticcheck // still found in images
		return true
	}
	return false
}

// IsConfig reports whether a media type is an image config.
func IsConfig(mt string) bool {
	return mt == ocispec.MediaTypeImageConfig || mt == MediaTypeDockerConfig
}

// ContainerConfig is the "config" object of an image config (package
// imageconfig, shared with the Dockerfile evaluator and the builder).
type ContainerConfig = imageconfig.Config

// HealthConfig is Docker's health check in an image config.
type HealthConfig = imageconfig.Healthcheck

// ImageConfig is an image config (OCI, or Docker's, which adds to it).
type ImageConfig struct {
	Created      *time.Time        `json:"created,omitempty"`
	Author       string            `json:"author,omitempty"`
	Architecture string            `json:"architecture"`
	Variant      string            `json:"variant,omitempty"`
	OS           string            `json:"os"`
	Config       ContainerConfig   `json:"config"`
	RootFS       ocispec.RootFS    `json:"rootfs"`
	History      []ocispec.History `json:"history,omitempty"`
}

// ChainIDs returns the chain ID of each layer prefix:
// ChainID(L0) = DiffID(L0), ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)).
func ChainIDs(diffIDs []digest.Digest) []digest.Digest {
	out := make([]digest.Digest, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d
			continue
		}
		out[i] = digest.FromString(out[i-1].String() + " " + d.String())
	}
	return out
}

func defaultPlatform() ocispec.Platform {
	return ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
}

// platformMatches compares OS and architecture (and variant when both
// give one).
func platformMatches(want ocispec.Platform, got *ocispec.Platform) bool {
	if got == nil {
		return false
	}
	if !strings.EqualFold(want.OS, got.OS) || !strings.EqualFold(want.Architecture, got.Architecture) {
		return false
	}
	return want.Variant == "" || got.Variant == "" || want.Variant == got.Variant
}

// manifestDoc decodes both OCI and Docker schema 2 manifests and indexes:
// they share their field names.
type manifestDoc struct {
	SchemaVersion int                  `json:"schemaVersion"`
	MediaType     string               `json:"mediaType,omitempty"`
	Config        *ocispec.Descriptor  `json:"config,omitempty"`
	Layers        []ocispec.Descriptor `json:"layers,omitempty"`
	Manifests     []ocispec.Descriptor `json:"manifests,omitempty"`
}

// Manifest returns the manifest desc names; for an index, the manifest
// of the store's platform among those present.
func (s *Store) Manifest(desc ocispec.Descriptor) (ocispec.Descriptor, ocispec.Manifest, error) {
	for depth := 0; depth < 4; depth++ {
		var doc manifestDoc
		if err := s.readBlobJSON(desc.Digest, &doc); err != nil {
			return desc, ocispec.Manifest{}, err
		}
		mt := desc.MediaType
		if mt == "" {
			mt = doc.MediaType
		}
		if doc.MediaType != "" && desc.MediaType != "" && doc.MediaType != desc.MediaType {
			return desc, ocispec.Manifest{}, fmt.Errorf("manifest %s: media type %s, descriptor says %s: %w", desc.Digest, doc.MediaType, desc.MediaType, errdefs.ErrInvalid)
		}
		if mt == "" {
			// Older OCI manifests may omit it; the fields tell.
			if doc.Config != nil {
				mt = ocispec.MediaTypeImageManifest
			} else if doc.Manifests != nil {
				mt = ocispec.MediaTypeImageIndex
			}
		}
		switch {
		case IsManifest(mt):
			if doc.SchemaVersion != 2 || doc.Config == nil {
				return desc, ocispec.Manifest{}, fmt.Errorf("manifest %s: not a schema 2 image manifest: %w", desc.Digest, errdefs.ErrInvalid)
			}
			if !IsConfig(doc.Config.MediaType) {
				return desc, ocispec.Manifest{}, fmt.Errorf("manifest %s: config media type %q: %w", desc.Digest, doc.Config.MediaType, ErrUnsupportedMediaType)
			}
			for _, l := range doc.Layers {
				if !IsLayer(l.MediaType) {
					return desc, ocispec.Manifest{}, fmt.Errorf("manifest %s: layer media type %q: %w", desc.Digest, l.MediaType, ErrUnsupportedMediaType)
				}
			}
			desc.MediaType = mt
			return desc, ocispec.Manifest{MediaType: mt, Config: *doc.Config, Layers: doc.Layers}, nil
		case IsIndex(mt):
			next, ok := s.pickPlatform(doc.Manifests)
			if !ok {
				return desc, ocispec.Manifest{}, fmt.Errorf("index %s: no manifest for %s/%s in the store: %w", desc.Digest, s.opts.Platform.OS, s.opts.Platform.Architecture, errdefs.ErrNotFound)
			}
			desc = next
		default:
			return desc, ocispec.Manifest{}, fmt.Errorf("manifest %s: media type %q: %w", desc.Digest, mt, ErrUnsupportedMediaType)
		}
	}
	return desc, ocispec.Manifest{}, fmt.Errorf("manifest %s: indexes nested too deep: %w", desc.Digest, errdefs.ErrInvalid)
}

// pickPlatform chooses the stored manifest for the store's platform.
func (s *Store) pickPlatform(ms []ocispec.Descriptor) (ocispec.Descriptor, bool) {
	for _, m := range ms {
		if platformMatches(*s.opts.Platform, m.Platform) {
			if _, err := s.BlobSize(m.Digest); err == nil {
				return m, true
			}
		}
	}
	return ocispec.Descriptor{}, false
}

// Config returns a manifest's image config, checked against its layers.
func (s *Store) Config(m ocispec.Manifest) (ImageConfig, error) {
	var c ImageConfig
	if err := s.readBlobJSON(m.Config.Digest, &c); err != nil {
		return c, err
	}
	if len(c.RootFS.DiffIDs) != len(m.Layers) {
		return c, fmt.Errorf("config %s lists %d layers, the manifest %d: %w", m.Config.Digest, len(c.RootFS.DiffIDs), len(m.Layers), errdefs.ErrInvalid)
	}
	for _, d := range c.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return c, fmt.Errorf("config %s: diff ID %q: %w: %w", m.Config.Digest, d, err, errdefs.ErrInvalid)
		}
	}
	return c, nil
}

// Commit writes config (an image config's JSON) and a manifest for the
// stored layers, and returns the manifest's descriptor (untagged). The
// manifest is OCI, or Docker schema 2 with docker set.
func (s *Store) Commit(ctx context.Context, config []byte, layers []ocispec.Descriptor, docker bool) (ocispec.Descriptor, error) {
	var c ImageConfig
	if err := json.Unmarshal(config, &c); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("image config: %w: %w", err, errdefs.ErrInvalid)
	}
	if len(c.RootFS.DiffIDs) != len(layers) {
		return ocispec.Descriptor{}, fmt.Errorf("image config lists %d layers, given %d: %w", len(c.RootFS.DiffIDs), len(layers), errdefs.ErrInvalid)
	}
	for _, l := range layers {
		if size, err := s.BlobSize(l.Digest); err != nil {
			return ocispec.Descriptor{}, err
		} else if size != l.Size {
			return ocispec.Descriptor{}, fmt.Errorf("layer %s is %d bytes, descriptor says %d: %w", l.Digest, size, l.Size, errdefs.ErrInvalid)
		}
	}
	cd, err := s.WriteBlobBytes(ctx, config)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	mt, cmt := ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageConfig
	if docker {
		mt, cmt = MediaTypeDockerManifest, MediaTypeDockerConfig
	}
	m := ocispec.Manifest{MediaType: mt, Config: ocispec.Descriptor{MediaType: cmt, Digest: cd, Size: int64(len(config))}, Layers: layers}
	m.SchemaVersion = 2
	b, err := json.Marshal(m)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	md, err := s.WriteBlobBytes(ctx, b)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return ocispec.Descriptor{MediaType: mt, Digest: md, Size: int64(len(b))}, nil
}
