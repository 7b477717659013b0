package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/opencontainers/go-digest"

	"github.com/cais-platform/cais/errdefs"
)

// WriteBlob stores the content of r. With expected set, the content must
// have that digest (and size, when size >= 0) or nothing is stored; without
// it the content's sha256 names it. Writing a blob that exists reads r to
// its end and keeps the one there.
func (s *Store) WriteBlob(ctx context.Context, r io.Reader, expected digest.Digest, size int64) (digest.Digest, int64, error) {
	if expected != "" {
		if err := expected.Validate(); err != nil {
			return "", 0, fmt.Errorf("blob digest %q: %w: %w", expected, err, errdefs.ErrInvalid)
		}
	}
	alg := digest.SHA256
	if expected != "" {
		alg = expected.Algorithm()
	}
	f, err := os.CreateTemp(s.ingestDir(), "blob-*")
	if err != nil {
		return "", 0, fmt.Errorf("ingest: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed

	dg := alg.Digester()
	n, err := io.Copy(io.MultiWriter(f, dg.Hash()), ctxReader{ctx, r})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, fmt.Errorf("ingest: %w", err)
	}
	got := dg.Digest()
	if expected != "" && got != expected {
		return "", 0, fmt.Errorf("blob %s: got content with digest %s: %w", expected, got, ErrDigestMismatch)
	}
	if size >= 0 && n != size {
		return "", 0, fmt.Errorf("blob %s: got %d bytes, want %d: %w", got, n, size, ErrDigestMismatch)
	}
	if err := os.MkdirAll(s.blobDir(alg), 0o700); err != nil {
		return "", 0, err
	}
	if err := os.Chmod(tmp, 0o444); err != nil {
		return "", 0, err
	}
	if err := os.Rename(tmp, s.blobPath(got)); err != nil {
		return "", 0, fmt.Errorf("ingest %s: %w", got, err)
	}
	return got, n, syncDir(s.blobDir(alg))
}

// WriteBlobBytes stores b and returns its digest.
func (s *Store) WriteBlobBytes(ctx context.Context, b []byte) (digest.Digest, error) {
	d := digest.FromBytes(b)
	if _, err := os.Stat(s.blobPath(d)); err == nil {
		return d, nil
	}
	_, _, err := s.WriteBlob(ctx, bytes.NewReader(b), d, int64(len(b)))
	return d, err
}

// OpenBlob opens a blob for reading.
func (s *Store) OpenBlob(d digest.Digest) (*os.File, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("blob digest %q: %w: %w", d, err, errdefs.ErrInvalid)
	}
	f, err := os.Open(s.blobPath(d))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", d, errdefs.ErrNotFound)
	}
	return f, err
}

// BlobSize returns a blob's size, or an errdefs.ErrNotFound.
func (s *Store) BlobSize(d digest.Digest) (int64, error) {
	if err := d.Validate(); err != nil {
		return 0, fmt.Errorf("blob digest %q: %w: %w", d, err, errdefs.ErrInvalid)
	}
	fi, err := os.Stat(s.blobPath(d))
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("blob %s: %w", d, errdefs.ErrNotFound)
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// readBlobJSON decodes a small blob.
func (s *Store) readBlobJSON(d digest.Digest, v any) error {
	f, err := s.OpenBlob(d)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := readJSON(f, v); err != nil {
		return fmt.Errorf("blob %s: %w", d, err)
	}
	return nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
