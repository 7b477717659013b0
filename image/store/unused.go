package store

import (
	"context"
	"errors"
	"os"

	"github.com/opencontainers/go-digest"
)

// RemoveBlobIfUnused removes a blob no image uses (a failed pull's) and
// reports whether it did. A blob some image needs stays.
func (s *Store) RemoveBlobIfUnused(ctx context.Context, d digest.Digest) (bool, error) {
	if err := d.Validate(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	idx, err := s.readIndex()
	if err != nil {
		return false, err
	}
	if s.refCounts(idx)[d] > 0 {
		return false, nil
	}
	err = os.Remove(s.blobPath(d))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}
