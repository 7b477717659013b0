package store

import (
	"context"
	"os"
	"testing"

	"github.com/opencontainers/go-digest"
)

// TestRemoveBlobIfUnused: a blob no image uses goes (what a failed pull
// wrote); one an image uses stays.
func TestRemoveBlobIfUnused(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	target := makeImage(t, s, "true", tarOf(t, "a", "x"))
	if err := s.Tag(ctx, ref(t, "app:1"), target); err != nil {
		t.Fatal(err)
	}
	_, m, err := s.Manifest(target)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range append([]digest.Digest{target.Digest, m.Config.Digest}, m.Layers[0].Digest) {
		if removed, err := s.RemoveBlobIfUnused(ctx, d); removed || err != nil {
			t.Errorf("%s of an image: removed %v, %v", d, removed, err)
		}
		if _, err := s.BlobSize(d); err != nil {
			t.Errorf("%s gone: %v", d, err)
		}
	}
	d, err := s.WriteBlobBytes(ctx, []byte("left by a failed pull"))
	if err != nil {
		t.Fatal(err)
	}
	if removed, err := s.RemoveBlobIfUnused(ctx, d); !removed || err != nil {
		t.Errorf("unused blob: removed %v, %v", removed, err)
	}
	if _, err := os.Stat(s.blobPath(d)); !os.IsNotExist(err) {
		t.Errorf("unused blob still there: %v", err)
	}
	if removed, err := s.RemoveBlobIfUnused(ctx, d); removed || err != nil {
		t.Errorf("again: removed %v, %v", removed, err)
	}
}
