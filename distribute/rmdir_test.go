package distribute_test

import (
	"context"
	"errors"
	"strconv"
	"syscall"
	"testing"

	"github.com/cais-platform/cais/distribute"
	"github.com/cais-platform/cais/fop"
)

// racingRmdir makes one entry in the directory on its brick just before
// removing it there, as another client's create between rmdir's
// emptiness check and its removal would.
type racingRmdir struct {
	*countingVolume
	race bool
}

func (r *racingRmdir) Rmdir(ctx context.Context, p string) error {
	if r.race {
		if _, err := r.countingVolume.Mknod(ctx, &fop.CreateReq{Path: p + "/late", Mode: syscall.S_IFREG | 0o644, GFID: fop.NewGFID()}); err != nil {
			return err
		}
	}
	return r.countingVolume.Rmdir(ctx, p)
}

// rmdir refuses a directory that is not empty on any brick and removes
// nothing then; and when a copy cannot be removed after the check, the
// directory stays: its hashed copy comes back as it was (identity,
// owner, mode), with a whole layout.
func TestRmdir(t *testing.T) {
	bricks := realBricks(t, 2)
	racers := []*racingRmdir{{countingVolume: bricks[0]}, {countingVolume: bricks[1]}}
	v := distribute.New([]fop.Volume{racers[0], racers[1]})
	ctx := context.Background()
	mk := func(p string) fop.Attr {
		t.Helper()
		a, err := v.Mkdir(ctx, &fop.CreateReq{Path: p, Mode: syscall.S_IFDIR | 0o751, UID: 7, GID: 8, GFID: fop.NewGFID()})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	mk("empty")
	if err := v.Rmdir(ctx, "empty"); err != nil {
		t.Fatalf("rmdir of an empty directory: %v", err)
	}
	for i, b := range bricks {
		if _, err := b.Lookup(ctx, "empty"); !errors.Is(err, syscall.ENOENT) {
			t.Fatalf("brick %d still has the directory: %v", i, err)
		}
	}
	// Not empty (on the one brick the file is on): refused, nothing
	// removed.
	mk("full")
	if _, err := v.Mknod(ctx, &fop.CreateReq{Path: "full/f", Mode: syscall.S_IFREG | 0o644, GFID: fop.NewGFID()}); err != nil {
		t.Fatal(err)
	}
	if err := v.Rmdir(ctx, "full"); !errors.Is(err, syscall.ENOTEMPTY) {
		t.Fatalf("rmdir of a directory with an entry: %v, want ENOTEMPTY", err)
	}
	for i, b := range bricks {
		if _, err := b.Lookup(ctx, "full"); err != nil {
			t.Fatalf("brick %d lost the directory: %v", i, err)
		}
	}
	if err := v.Rmdir(ctx, "full/f"); !errors.Is(err, syscall.ENOTDIR) {
		t.Fatalf("rmdir of a file: %v, want ENOTDIR", err)
	}
	// ...and leaves the file as it was, and no directory of its name on
	// any brick.
	for i, b := range bricks {
		e, err := b.Lookup(ctx, "full/f")
		if err == nil && (isDirMode(e.Attr.Mode) || len(e.Layout) > 0) {
			t.Fatalf("brick %d: after rmdir of a file, mode %o, layout %x", i, e.Attr.Mode, e.Layout)
		}
	}
	// A directory with entries on one brick only, its hashed brick's or
	// the other's: refused, and every copy is there after.
	hashedOf := func(name string) int {
		t.Helper()
		records := make([]*distribute.Record, len(bricks))
		for i, b := range bricks {
			e, err := b.Lookup(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			if r, err := distribute.DecodeRange(e.Layout); err == nil {
				records[i] = &r
			}
		}
		l, _ := distribute.Assemble(records)
		i, ok := l.Locate(distribute.Hash(name))
		if !ok {
			t.Fatalf("no brick for %q in the root's layout", name)
		}
		return i
	}
	for _, onHashed := range []bool{true, false} {
		dir := ""
		for n := 0; dir == ""; n++ {
			name := "one" + strconv.Itoa(n)
			if (hashedOf(name) == 0) == onHashed {
				dir = name // its entries go to brick 0: the hashed one or not
			}
		}
		mk(dir)
		kept := false
		for n := 0; !kept; n++ {
			name := dir + "/f" + strconv.Itoa(n)
			if _, err := v.Mknod(ctx, &fop.CreateReq{Path: name, Mode: syscall.S_IFREG | 0o644, GFID: fop.NewGFID()}); err != nil {
				t.Fatal(err)
			}
			if _, err := bricks[0].Lookup(ctx, name); err == nil {
				kept = true
			} else if err := v.Unlink(ctx, name); err != nil {
				t.Fatal(err)
			}
		}
		if err := v.Rmdir(ctx, dir); !errors.Is(err, syscall.ENOTEMPTY) {
			t.Fatalf("rmdir of a directory with entries on one brick (hashed %v): %v, want ENOTEMPTY", onHashed, err)
		}
		records := make([]*distribute.Record, len(bricks))
		for i, b := range bricks {
			e, err := b.Lookup(ctx, dir)
			if err != nil || !isDirMode(e.Attr.Mode) {
				t.Fatalf("entries on the hashed brick %v: brick %d lost the directory: %v", onHashed, i, err)
			}
			if r, err := distribute.DecodeRange(e.Layout); err == nil {
				records[i] = &r
			}
		}
		if _, anomaly := distribute.Assemble(records); !anomaly.OK() {
			t.Fatalf("entries on the hashed brick %v: layout after the refused rmdir: %+v", onHashed, anomaly)
		}
	}
	// Each brick in turn is the one where an entry appears late.
	for race := range racers {
		p := "raced" + string(rune('0'+race))
		want := mk(p)
		racers[race].race = true
		err := v.Rmdir(ctx, p)
		racers[race].race = false
		if !errors.Is(err, syscall.ENOTEMPTY) {
			t.Fatalf("rmdir raced on brick %d: %v, want ENOTEMPTY", race, err)
		}
		got, err := v.Lookup(ctx, p)
		if err != nil {
			t.Fatalf("the directory is gone after a failed rmdir (race on brick %d): %v", race, err)
		}
		if got.Attr.GFID != want.GFID || got.Attr.Mode != want.Mode || got.Attr.UID != 7 || got.Attr.GID != 8 {
			t.Fatalf("after a failed rmdir: %+v, want as made %+v", got.Attr, want)
		}
		records := make([]*distribute.Record, len(bricks))
		for i, b := range bricks {
			e, err := b.Lookup(ctx, p)
			if i == race && err != nil {
				t.Fatalf("brick %d, which holds the late entry, lost the directory: %v", i, err)
			}
			if err != nil {
				continue
			}
			if e.Attr.GFID != want.GFID {
				t.Fatalf("brick %d: GFID %v, want %v", i, e.Attr.GFID, want.GFID)
			}
			if r, err := distribute.DecodeRange(e.Layout); err == nil {
				records[i] = &r
			}
		}
		// The hashed copy is back, and with the other copies (if they
		// stayed) covers the whole hash space.
		if _, anomaly := distribute.Assemble(records); !anomaly.OK() {
			t.Fatalf("layout after a failed rmdir (race on brick %d): %+v", race, anomaly)
		}
	}
}

func isDirMode(m uint32) bool { return m&syscall.S_IFMT == syscall.S_IFDIR }

// BenchmarkRmdir removes empty directories through distribute over two
// bricks served in this process over loopback TCP.
func BenchmarkRmdir(b *testing.B) {
	bricks := realBricks(b, 2)
	v := distribute.New([]fop.Volume{bricks[0], bricks[1]})
	ctx := context.Background()
	if _, err := v.Mkdir(ctx, &fop.CreateReq{Path: "d", Mode: syscall.S_IFDIR | 0o755, GFID: fop.NewGFID()}); err != nil {
		b.Fatal(err)
	}
	names := make([]string, b.N)
	for i := range names {
		names[i] = "d/" + strconv.Itoa(i)
		if _, err := v.Mkdir(ctx, &fop.CreateReq{Path: names[i], Mode: syscall.S_IFDIR | 0o755, GFID: fop.NewGFID()}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for _, p := range names {
		if err := v.Rmdir(ctx, p); err != nil {
			b.Fatal(err)
		}
	}
}
