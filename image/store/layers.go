package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cais-platform/cais/image/layer"
)

// AddLayer stores a layer (a tar, plain, gzip or zstd) read from r and
// returns its descriptor, with an OCI media type for its compression, and
// its DiffID (the digest of the uncompressed tar).
func (s *Store) AddLayer(ctx context.Context, r io.Reader) (ocispec.Descriptor, digest.Digest, error) {
	d, size, err := s.WriteBlob(ctx, r, "", -1)
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	f, err := s.OpenBlob(d)
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	defer f.Close()
	zr, comp, err := layer.Decompress(f)
	if err != nil {
		return ocispec.Descriptor{}, "", fmt.Errorf("layer %s: %w", d, err)
	}
	defer zr.Close()
	dg := digest.SHA256.Digester()
	// The entries are checked as the layer is hashed, so a layer that
	// could not be unpacked is refused now, not at the first docker run.
	tee := io.TeeReader(ctxReader{ctx, zr}, dg.Hash())
	if err := layer.Check(ctx, tee, layer.Options{Whiteouts: layer.WhiteoutOverlay, Devices: s.opts.Devices}); err != nil {
		zr.Close()
		f.Close()
		s.RemoveBlobIfUnused(context.WithoutCancel(ctx), d)
		return ocispec.Descriptor{}, "", fmt.Errorf("layer %s: %w", d, err)
	}
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return ocispec.Descriptor{}, "", fmt.Errorf("layer %s: %w", d, err)
	}
	mt := ocispec.MediaTypeImageLayer
	switch comp {
	case layer.Gzip:
		mt = ocispec.MediaTypeImageLayerGzip
	case layer.Zstd:
		mt = ocispec.MediaTypeImageLayerZstd
	}
	return ocispec.Descriptor{MediaType: mt, Digest: d, Size: size}, dg.Digest(), nil
}

// Layers unpacks the layers of the image target (each chain ID once) and
// returns their directories top layer first, as overlayfs's lowerdir
// lists them.
func (s *Store) Layers(ctx context.Context, target ocispec.Descriptor) ([]string, error) {
	_, m, err := s.Manifest(target)
	if err != nil {
		return nil, err
	}
	cfg, err := s.Config(m)
	if err != nil {
		return nil, err
	}
	chains := ChainIDs(cfg.RootFS.DiffIDs)
	dirs := make([]string, len(chains))
	for i, chain := range chains {
		if err := s.unpackLayer(ctx, chain, cfg.RootFS.DiffIDs[i], m.Layers[i]); err != nil {
			return nil, err
		}
		dirs[len(chains)-1-i] = s.LayerPath(chain)
	}
	return dirs, nil
}

// unpackLayer makes LayerPath(chain) once; concurrent callers for the same
// chain wait for the first.
func (s *Store) unpackLayer(ctx context.Context, chain, diffID digest.Digest, desc ocispec.Descriptor) error {
	if _, err := os.Stat(s.LayerPath(chain)); err == nil {
		return nil
	}
	s.unpackMu.Lock()
	if f := s.unpacks[chain]; f != nil {
		s.unpackMu.Unlock()
		select {
		case <-f.done:
			return f.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f := &flight{done: make(chan struct{})}
	s.unpacks[chain] = f
	s.unpackMu.Unlock()

	f.err = s.doUnpack(ctx, chain, diffID, desc)

	s.unpackMu.Lock()
	delete(s.unpacks, chain)
	s.unpackMu.Unlock()
	close(f.done)
	return f.err
}

func (s *Store) doUnpack(ctx context.Context, chain, diffID digest.Digest, desc ocispec.Descriptor) error {
	final := s.LayerPath(chain)
	if _, err := os.Stat(final); err == nil {
		return nil
	}
	blob, err := s.OpenBlob(desc.Digest)
	if err != nil {
		return err
	}
	defer blob.Close()
	tmp, err := os.MkdirTemp(s.layerTmpDir(), chain.Encoded()[:12]+"-")
	if err != nil {
		return err
	}
	res, err := layer.Unpack(ctx, blob, tmp, layer.Options{Whiteouts: layer.WhiteoutOverlay, Devices: s.opts.Devices})
	if err == nil && res.DiffID != diffID {
		err = fmt.Errorf("layer %s: content has diff ID %s, the config says %s: %w", desc.Digest, res.DiffID, diffID, ErrDigestMismatch)
	}
	if err == nil {
		err = os.Chmod(tmp, 0o755)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("unpack layer %s: %w", desc.Digest, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		os.RemoveAll(tmp)
		if _, serr := os.Stat(final); serr == nil {
			return nil // another process won
		}
		return fmt.Errorf("unpack layer %s: %w", desc.Digest, err)
	}
	return syncDir(filepath.Dir(final))
}

// removeLayer deletes an unpacked layer: renamed away first, so that it
// disappears whole, then removed.
func (s *Store) removeLayer(chain digest.Digest) error {
	tmp, err := os.MkdirTemp(s.layerTmpDir(), "rm-")
	if err != nil {
		return err
	}
	victim := filepath.Join(tmp, "layer")
	if err := os.Rename(s.LayerPath(chain), victim); err != nil {
		os.Remove(tmp)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	return os.RemoveAll(tmp)
}
