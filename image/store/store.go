package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/image/layer"
)

// Errors.
var (
	// ErrDigestMismatch: content does not have the digest it claims.
	ErrDigestMismatch = fmt.Errorf("digest mismatch: %w", errdefs.ErrInvalid)
	// ErrUnsupportedMediaType: a manifest, config or layer of a kind the
	// store does not handle.
	ErrUnsupportedMediaType = fmt.Errorf("unsupported media type: %w", errdefs.ErrInvalid)
)

// Annotations naming an image in index.json.
const (
	AnnotationImageName = "io.containerd.image.name"
	AnnotationRefName   = ocispec.AnnotationRefName
)

// Limits.
const (
	// maxJSON bounds a manifest, index or config read into memory.
	maxJSON = 8 << 20
)

// Options configure a Store.
type Options struct {
	// Devices is what unpacking does with device nodes in layers.
	Devices layer.DevicePolicy
	// GCGracePeriod keeps unreferenced blobs younger than this from GC
	// (default 10 minutes).
	GCGracePeriod time.Duration
	// Platform picks the manifest of a multi-platform index (default the
	// running one, linux/GOARCH).
	Platform *ocispec.Platform
}

// Store is an image store rooted at a directory. Its methods are safe for
// concurrent use by one process.
type Store struct {
	root string
	opts Options

	mu sync.Mutex // index.json and deletions

	unpackMu sync.Mutex
	unpacks  map[digest.Digest]*flight // chain IDs being unpacked
}

// flight is one unpack in progress; others wait on done.
type flight struct {
	done chan struct{}
	err  error
}

// Open opens (making it if needed) the store rooted at dir.
func Open(dir string, opts Options) (*Store, error) {
	if opts.GCGracePeriod == 0 {
		opts.GCGracePeriod = 10 * time.Minute
	}
	if opts.Platform == nil {
		p := defaultPlatform()
		opts.Platform = &p
	}
	s := &Store{root: dir, opts: opts, unpacks: map[digest.Digest]*flight{}}
	for _, d := range []string{s.blobDir(digest.SHA256), s.ingestDir(), s.layersDir(), s.layerTmpDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
	}
	layout := filepath.Join(dir, ocispec.ImageLayoutFile)
	if _, err := os.Stat(layout); errors.Is(err, os.ErrNotExist) {
		b, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
		if err := writeFileAtomic(layout, b); err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
	}
	if _, err := os.Stat(s.indexPath()); errors.Is(err, os.ErrNotExist) {
		if err := s.writeIndex(newIndex()); err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
	}
	// Leftovers of a crash: partial ingests and unpacks.
	for _, d := range []string{s.ingestDir(), s.layerTmpDir()} {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			os.RemoveAll(filepath.Join(d, e.Name()))
		}
	}
	return s, nil
}

// Root returns the store's directory.
func (s *Store) Root() string { return s.root }

func (s *Store) blobDir(alg digest.Algorithm) string {
	return filepath.Join(s.root, ocispec.ImageBlobsDir, string(alg))
}

func (s *Store) blobPath(d digest.Digest) string {
	return filepath.Join(s.blobDir(d.Algorithm()), d.Encoded())
}

func (s *Store) ingestDir() string   { return filepath.Join(s.root, "ingest") }
func (s *Store) layerTmpDir() string { return filepath.Join(s.root, "layers", "tmp") }
func (s *Store) layersDir() string   { return filepath.Join(s.root, "layers", string(digest.SHA256)) }
func (s *Store) indexPath() string   { return filepath.Join(s.root, ocispec.ImageIndexFile) }

// LayerPath returns where the layer with chainID is (or would be) unpacked.
func (s *Store) LayerPath(chainID digest.Digest) string {
	return filepath.Join(s.layersDir(), chainID.Encoded())
}

// writeFileAtomic replaces path with data: a temporary file in the same
// directory, fsynced, renamed over path, and the directory fsynced.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// readJSON reads a small JSON file or blob into v.
func readJSON(r io.Reader, v any) error {
	b, err := io.ReadAll(io.LimitReader(r, maxJSON+1))
	if err != nil {
		return err
	}
	if len(b) > maxJSON {
		return fmt.Errorf("JSON document larger than %d bytes: %w", maxJSON, errdefs.ErrInvalid)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %w", err, errdefs.ErrInvalid)
	}
	return nil
}
