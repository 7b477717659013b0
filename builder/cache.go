package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cais-platform/cais/dockerfile"
	"github.com/cais-platform/cais/image/store"
)

// cache remembers the image each step made from each parent: a file per
// key under dir holding the image's config, byte for byte, and its
// layers. A hit needs the layers still in the store; the config and
// manifest are written again, which gives the same image ID.
type cache struct {
	dir string
}

// cacheEntry is what a cache file holds.
type cacheEntry struct {
	Config json.RawMessage      `json:"config"`
	Layers []ocispec.Descriptor `json:"layers"`
}

// cacheKey identifies a step applied to a parent image: the parent's ID,
// what the step does (its history line, command, environment and the
// config after it) and, for COPY and ADD, the checksum of what is copied.
func cacheKey(parent digest.Digest, step *dockerfile.Step, copySum string) string {
	k := struct {
		Parent    digest.Digest
		Kind      dockerfile.StepKind
		CreatedBy string
		Args, Env []string
		Config    dockerfile.Config
		Copy      *dockerfile.CopySpec
		CopySum   string
	}{parent, step.Kind, step.CreatedBy, step.Args, step.Env, step.Config, step.Copy, copySum}
	b, _ := json.Marshal(k)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func (c *cache) path(key string) string { return filepath.Join(c.dir, key+".json") }

// get returns the cached image for key if its layers are all stored.
func (c *cache) get(ctx context.Context, s *store.Store, key string) (image, bool) {
	b, err := os.ReadFile(c.path(key))
	if err != nil {
		return image{}, false
	}
	var e cacheEntry
	if json.Unmarshal(b, &e) != nil {
		return image{}, false
	}
	if !layersStored(s, e.Layers) {
		return image{}, false
	}
	img, err := commitRaw(ctx, s, e.Config, e.Layers)
	if err != nil {
		return image{}, false
	}
	return img, true
}

// put records img for key; a failure only costs a later cache miss.
func (c *cache) put(key string, img image) {
	b, err := json.Marshal(cacheEntry{Config: img.raw, Layers: slices.Clone(img.layers)})
	if err != nil {
		return
	}
	f, err := os.CreateTemp(c.dir, key+".*.tmp")
	if err != nil {
		return
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil && cerr == nil {
		err = os.Rename(f.Name(), c.path(key))
	}
	if err != nil {
		os.Remove(f.Name())
	}
}

// PruneResult is what Prune removed.
type PruneResult struct {
	// Keys are the cache entries removed.
	Keys []string
	// Bytes counts their files.
	Bytes int64
}

// prune removes cache entries: all of them, or (stale) only those whose
// layers are no longer stored.
func (c *cache) prune(s *store.Store, staleOnly bool) (PruneResult, error) {
	var res PruneResult
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return res, err
	}
	for _, ent := range ents {
		p := filepath.Join(c.dir, ent.Name())
		key, isEntry := strings.CutSuffix(ent.Name(), ".json")
		if staleOnly && isEntry {
			b, err := os.ReadFile(p)
			var e cacheEntry
			if err == nil && json.Unmarshal(b, &e) == nil && layersStored(s, e.Layers) {
				continue
			}
		}
		fi, err := ent.Info()
		if err != nil {
			continue
		}
		if os.Remove(p) == nil && isEntry {
			res.Keys = append(res.Keys, key)
			res.Bytes += fi.Size()
		}
	}
	return res, nil
}

func layersStored(s *store.Store, layers []ocispec.Descriptor) bool {
	for _, l := range layers {
		if size, err := s.BlobSize(l.Digest); err != nil || size != l.Size {
			return false
		}
	}
	return true
}

// PruneCache empties the layer cache (docker builder prune).
func (b *Builder) PruneCache(ctx context.Context) (PruneResult, error) {
	return b.cache.prune(b.images, false)
}
