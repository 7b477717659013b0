package distribute_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cais-platform/cais/brick"
	"github.com/cais-platform/cais/distribute"
	"github.com/cais-platform/cais/fop"
	"github.com/cais-platform/cais/rpc"
)

// countingVolume counts the lookups a brick serves, each delayed by
// delay (nanoseconds) when set.
type countingVolume struct {
	fop.Volume
	lookups atomic.Int64
	delay   atomic.Int64
}

func (c *countingVolume) Lookup(ctx context.Context, p string) (fop.Entry, error) {
	c.lookups.Add(1)
	time.Sleep(time.Duration(c.delay.Load()))
	return c.Volume.Lookup(ctx, p)
}

func realBricks(t testing.TB, n int) []*countingVolume {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("bricks set trusted.* extended attributes: needs root")
	}
	var out []*countingVolume
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- brick.ServeDir(ctx, slog.New(slog.DiscardHandler), ln, t.TempDir()) }()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		cl := rpc.NewClient(c)
		t.Cleanup(func() { cl.Close(); cancel(); <-done })
		out = append(out, &countingVolume{Volume: fop.NewClient(cl)})
	}
	return out
}

// A name that does not exist costs one lookup, on the brick it hashes to,
// not one per brick (lookup-optimize); with LookupUnhashed every brick is
// asked.
func TestMissingNameAsksOneBrick(t *testing.T) {
	bricks := realBricks(t, 4)
	subs := make([]fop.Volume, len(bricks))
	for i, b := range bricks {
		subs[i] = b
	}
	v := distribute.New(subs)
	ctx := context.Background()
	if _, err := v.Lookup(ctx, "warm-up"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("lookup: %v", err)
	}
	total := func() int64 {
		var n int64
		for _, b := range bricks {
			n += b.lookups.Load()
		}
		return n
	}
	before := total()
	for _, name := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		if _, err := v.Lookup(ctx, name); !errors.Is(err, syscall.ENOENT) {
			t.Fatalf("lookup %s: %v", name, err)
		}
	}
	if got := total() - before; got != 8 {
		t.Fatalf("8 missing names cost %d brick lookups, want 8", got)
	}
	v.LookupUnhashed = true
	before = total()
	if _, err := v.Lookup(ctx, "a"); !errors.Is(err, syscall.ENOENT) {
		t.Fatal(err)
	}
	if got := total() - before; got != 1+4 {
		t.Fatalf("with LookupUnhashed a missing name cost %d lookups, want 5", got)
	}
}

// Reading a file's extended attributes right after a lookup (ls -l asks
// for security.selinux and the ACL of every entry) goes straight to the
// brick holding it: no second lookup.
func TestXattrAfterLookupAsksNoLookup(t *testing.T) {
	bricks := realBricks(t, 2)
	subs := []fop.Volume{bricks[0], bricks[1]}
	v := distribute.New(subs)
	ctx := context.Background()
	r, err := v.Create(ctx, &fop.CreateReq{Path: "f", Mode: syscall.S_IFREG | 0o644, GFID: fop.NewGFID()})
	if err != nil {
		t.Fatal(err)
	}
	v.Release(ctx, r.Handle)
	if _, err := v.Lookup(ctx, "f"); err != nil {
		t.Fatal(err)
	}
	before := bricks[0].lookups.Load() + bricks[1].lookups.Load()
	if _, err := v.Getxattr(ctx, "f", "user.none"); !errors.Is(err, syscall.ENODATA) {
		t.Fatalf("getxattr: %v", err)
	}
	if _, err := v.Listxattr(ctx, "f"); err != nil {
		t.Fatal(err)
	}
	if got := bricks[0].lookups.Load() + bricks[1].lookups.Load() - before; got != 0 {
		t.Fatalf("getxattr and listxattr after a lookup cost %d lookups", got)
	}
	// Renamed away by this client: the next read looks the name up again.
	if err := v.Rename(ctx, "f", "g", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Getxattr(ctx, "f", "user.none"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("getxattr of a renamed name: %v", err)
	}
}

// A listing counts as the lookup of its names (READDIRPLUS): ls -l reading
// each entry's extended attributes asks no lookup.
func TestXattrAfterListingAsksNoLookup(t *testing.T) {
	bricks := realBricks(t, 2)
	v := distribute.New([]fop.Volume{bricks[0], bricks[1]})
	ctx := context.Background()
	names := []string{"a", "b", "c", "d", "e", "f"}
	for _, n := range names {
		r, err := v.Create(ctx, &fop.CreateReq{Path: n, Mode: syscall.S_IFREG | 0o644, GFID: fop.NewGFID()})
		if err != nil {
			t.Fatal(err)
		}
		v.Release(ctx, r.Handle)
	}
	var pos fop.Pos
	seen := 0
	for {
		r, err := v.Readdir(ctx, "", pos, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range r.Entries {
			pos = e.Pos()
			seen++
		}
		if r.EOF || len(r.Entries) == 0 {
			break
		}
	}
	if seen != len(names) {
		t.Fatalf("listed %d entries", seen)
	}
	before := bricks[0].lookups.Load() + bricks[1].lookups.Load()
	for _, n := range names {
		if _, err := v.Getxattr(ctx, n, "user.none"); !errors.Is(err, syscall.ENODATA) {
			t.Fatalf("getxattr %s: %v", n, err)
		}
	}
	if got := bricks[0].lookups.Load() + bricks[1].lookups.Load() - before; got != 0 {
		t.Fatalf("getxattr of %d listed names cost %d lookups", len(names), got)
	}
}

// The attributes of a directory whose layout the client holds (the
// kernel asks for them after every create or unlink in it) take one
// round trip: every brick is asked at once, not the brick its name hashes
// to and then the others. Its times are the latest of all its copies'.
func TestKnownDirectoryAttrOneRoundTrip(t *testing.T) {
	bricks := realBricks(t, 3)
	v := distribute.New([]fop.Volume{bricks[0], bricks[1], bricks[2]})
	ctx := context.Background()
	if _, err := v.Mkdir(ctx, &fop.CreateReq{Path: "d", Mode: syscall.S_IFDIR | 0o755, GFID: fop.NewGFID()}); err != nil {
		t.Fatal(err)
	}
	var latest int64
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		r, err := v.Create(ctx, &fop.CreateReq{Path: "d/" + n, Mode: syscall.S_IFREG | 0o644, GFID: fop.NewGFID()})
		if err != nil {
			t.Fatal(err)
		}
		v.Release(ctx, r.Handle)
		latest = max(latest, r.Attr.Ctime)
	}
	const delay = 200 * time.Millisecond
	for _, b := range bricks {
		b.delay.Store(int64(delay))
	}
	start := time.Now()
	a, err := v.Getattr(ctx, "d")
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if a.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		t.Fatalf("mode %o, want a directory", a.Mode)
	}
	if took >= 2*delay-20*time.Millisecond {
		t.Fatalf("getattr of a known directory took %v with %v per lookup: more than one round trip", took, delay)
	}
	// Every copy's change time is at most the directory's: the last
	// entry made changed one copy only.
	if a.Mtime < latest {
		t.Fatalf("directory mtime %d is before its last entry's creation %d", a.Mtime, latest)
	}
	for _, b := range bricks {
		b.delay.Store(0)
	}
	// A directory this client never looked into takes the lookup path.
	if _, err := v.Mkdir(ctx, &fop.CreateReq{Path: "other", Mode: syscall.S_IFDIR | 0o755, GFID: fop.NewGFID()}); err != nil {
		t.Fatal(err)
	}
	if a, err := v.Getattr(ctx, "other"); err != nil || a.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		t.Fatalf("getattr other: %v, mode %o", err, a.Mode)
	}
}

// BenchmarkBrickLookupDir is one lookup of a directory on a brick served
// in this process over loopback TCP; BenchmarkBrickGetattrDir the
// distribute layer's getattr of a directory over two such bricks.
func BenchmarkBrickLookupDir(b *testing.B) {
	bricks := realBricks(b, 1)
	ctx := context.Background()
	if _, err := bricks[0].Mkdir(ctx, &fop.CreateReq{Path: "d", Mode: syscall.S_IFDIR | 0o755, GFID: fop.NewGFID()}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := bricks[0].Lookup(ctx, "d"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBrickGetattrDir(b *testing.B) {
	bricks := realBricks(b, 2)
	v := distribute.New([]fop.Volume{bricks[0], bricks[1]})
	ctx := context.Background()
	if _, err := v.Mkdir(ctx, &fop.CreateReq{Path: "d", Mode: syscall.S_IFDIR | 0o755, GFID: fop.NewGFID()}); err != nil {
		b.Fatal(err)
	}
	if _, err := v.Lookup(ctx, "d/x"); !errors.Is(err, syscall.ENOENT) {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := v.Getattr(ctx, "d"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBrickCreate is a 4 KiB file's life on a brick served in this
// process over loopback TCP: create, write, release, each waited for.
func BenchmarkBrickCreate(b *testing.B) {
	bricks := realBricks(b, 1)
	ctx := context.Background()
	if _, err := bricks[0].Mkdir(ctx, &fop.CreateReq{Path: "d", Mode: syscall.S_IFDIR | 0o755, GFID: fop.NewGFID()}); err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 4096)
	b.ResetTimer()
	for i := range b.N {
		r, err := bricks[0].Create(ctx, &fop.CreateReq{Path: fmt.Sprintf("d/f%d", i), Mode: 0o644, GFID: fop.NewGFID(), Flags: syscall.O_WRONLY | syscall.O_CREAT | syscall.O_EXCL})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := bricks[0].Write(ctx, r.Handle, 0, data); err != nil {
			b.Fatal(err)
		}
		if err := bricks[0].Release(ctx, r.Handle); err != nil {
			b.Fatal(err)
		}
	}
}
