package distribute_test

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/cais-platform/cais/distribute"
	"github.com/cais-platform/cais/fop"
)

// unlinkingVolume is a counting brick that also removes names in one call.
type unlinkingVolume struct{ *countingVolume }

func (u unlinkingVolume) UnlinkFile(ctx context.Context, p string) (string, error) {
	return u.Volume.(fop.FileUnlinker).UnlinkFile(ctx, p)
}

// Unlinking a file takes no lookup when the bricks remove names in one
// call, and a pointer entry left by a rename leads to its file: both go.
func TestUnlinkWithoutLookup(t *testing.T) {
	bricks := realBricks(t, 2)
	subs := make([]fop.Volume, len(bricks))
	for i, b := range bricks {
		subs[i] = unlinkingVolume{b}
	}
	v := distribute.New(subs)
	ctx := context.Background()
	mk := func(p string) {
		t.Helper()
		r, err := v.Create(ctx, &fop.CreateReq{Path: p, Mode: syscall.S_IFREG | 0o644, GFID: fop.NewGFID()})
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Release(ctx, r.Handle); err != nil {
			t.Fatal(err)
		}
	}
	lookups := func() int64 { return bricks[0].lookups.Load() + bricks[1].lookups.Load() }
	for i := range 8 {
		mk(fmt.Sprintf("f%d", i))
	}
	before := lookups()
	for i := range 8 {
		if err := v.Unlink(ctx, fmt.Sprintf("f%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := lookups() - before; n != 0 {
		t.Errorf("8 unlinks made %d lookups, want 0", n)
	}
	// Renames to names hashing to the other brick leave pointer entries.
	pointers := 0
	for i := range 16 {
		from, to := fmt.Sprintf("r%d", i), fmt.Sprintf("moved%d", i)
		mk(from)
		if err := v.Rename(ctx, from, to, 0); err != nil {
			t.Fatal(err)
		}
		for _, b := range bricks {
			if e, err := b.Lookup(ctx, to); err == nil && e.LinkTo != "" {
				pointers++
			}
		}
		if err := v.Unlink(ctx, to); err != nil {
			t.Fatalf("unlink %s: %v", to, err)
		}
		for bi, b := range bricks {
			if _, err := b.Lookup(ctx, to); !errors.Is(err, syscall.ENOENT) {
				t.Errorf("%s on brick %d after unlink: %v", to, bi, err)
			}
		}
	}
	if pointers == 0 {
		t.Fatal("no rename left a pointer entry: the test proves nothing")
	}
	if err := v.Unlink(ctx, "never"); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("unlink of a missing name: %v", err)
	}
}
