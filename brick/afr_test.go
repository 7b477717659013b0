package brick

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/fop"
	"github.com/cais-platform/cais/rpc"
)

// afrBrick serves one brick directory to several connections that share
// the brick's state, as a brick server does.
func afrBrick(t testing.TB, conns int) (string, []*fop.Client, []*rpc.Client) {
	t.Helper()
	requireRoot(t)
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sh := newShared()
	log := discardLog()
	served := make(chan error, 1)
	go func() {
		served <- rpc.ServeSessions(ctx, log, ln, func(net.Conn) rpc.Session { return newSessionShared(dir, log, nil, sh) })
	}()
	var cls []*fop.Client
	var raws []*rpc.Client
	for range conns {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		r := rpc.NewClient(c)
		raws = append(raws, r)
		cls = append(cls, fop.NewClient(r))
	}
	t.Cleanup(func() {
		for _, r := range raws {
			r.Close()
		}
		cancel()
		<-served
	})
	return dir, cls, raws
}

func TestXattropCountersAndIndex(t *testing.T) {
	dir, cls, _ := afrBrick(t, 1)
	c := cls[0]
	ctx := context.Background()
	g := fop.NewGFID()
	if _, err := c.Create(ctx, &fop.CreateReq{Path: "f", Mode: 0o644, GFID: g}); err != nil {
		t.Fatal(err)
	}
	got, err := c.Xattrop(ctx, &fop.XattropReq{Path: "f", Delta: []int32{1, 0, 0, 0, 0, 0, 2, 0, 0}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int32{1, 0, 0, 0, 0, 0, 2, 0, 0}; !reflect.DeepEqual(got, want) {
		t.Fatalf("counters %v, want %v", got, want)
	}
	// The lookup shows the changelog; the index names the file.
	e, err := c.Lookup(ctx, "f")
	if err != nil {
		t.Fatal(err)
	}
	if cl, err := fop.DecodeChangelog(e.Changelog); err != nil || !reflect.DeepEqual(cl, got) {
		t.Fatalf("lookup changelog %v %v", cl, err)
	}
	// Trailing zero triples are not stored, and count as zeros.
	if got, err = c.Xattrop(ctx, &fop.XattropReq{Path: "f", Delta: []int32{0, 0, 0, 0, 0, 0, -2, 0, 0}}); err != nil || !reflect.DeepEqual(got, []int32{1, 0, 0, 0, 0, 0, 0, 0, 0}) {
		t.Fatalf("after clearing brick 1's pending: %v %v", got, err)
	}
	if e, _ := c.Lookup(ctx, "f"); !reflect.DeepEqual(e.Changelog, fop.EncodeChangelog([]int32{1, 0, 0})) {
		t.Fatalf("stored changelog %x, want the first triple only", e.Changelog)
	}
	if got, err = c.Xattrop(ctx, &fop.XattropReq{Path: "f", Delta: []int32{0, 0, 0, 0, 0, 0, 2, 0, 0}}); err != nil || !reflect.DeepEqual(got, []int32{1, 0, 0, 0, 0, 0, 2, 0, 0}) {
		t.Fatalf("marked again: %v %v", got, err)
	}
	idx, err := c.Index(ctx)
	if err != nil || len(idx) != 1 || idx[0].GFID != g || idx[0].Path != "f" {
		t.Fatalf("index %+v %v", idx, err)
	}
	// Counters never go below zero; all zero removes the record and the
	// index entry.
	got, err = c.Xattrop(ctx, &fop.XattropReq{Path: "f", Delta: []int32{-5, 0, 0, 0, 0, 0, -2, 0, 0}})
	if err != nil || !reflect.DeepEqual(got, make([]int32, 9)) {
		t.Fatalf("after decrement: %v %v", got, err)
	}
	if e, _ := c.Lookup(ctx, "f"); len(e.Changelog) != 0 {
		t.Fatalf("changelog left: %x", e.Changelog)
	}
	if idx, _ := c.Index(ctx); len(idx) != 0 {
		t.Fatalf("index left: %+v", idx)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, indexDir)); len(ents) != 0 {
		t.Fatalf("index files left: %v", ents)
	}
	// Clients can neither read nor write the record directly.
	if _, err := c.Getxattr(ctx, "f", fop.ChangelogXattr); !errors.Is(err, syscall.EPERM) {
		t.Fatalf("getxattr of the changelog: %v", err)
	}
	if _, err := c.Xattrop(ctx, &fop.XattropReq{Path: "f", Delta: []int32{1}}); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("partial triple: %v", err)
	}
	if _, err := c.Xattrop(ctx, &fop.XattropReq{Path: "../x", Delta: []int32{1, 0, 0}}); err == nil {
		t.Fatal("xattrop outside the brick accepted")
	}
}

func TestInodelkWritersAndHeal(t *testing.T) {
	_, cls, raws := afrBrick(t, 3)
	ctx := context.Background()
	if _, err := cls[0].Create(ctx, &fop.CreateReq{Path: "f", Mode: 0o644, GFID: fop.NewGFID()}); err != nil {
		t.Fatal(err)
	}
	// Two writers share the file.
	for _, c := range cls[:2] {
		if _, err := c.Xattrop(ctx, &fop.XattropReq{Path: "f", Delta: []int32{1, 0, 0}, Lock: fop.LockShared}); err != nil {
			t.Fatal(err)
		}
	}
	// The heal's exclusive lock does not wait for them: EAGAIN at once.
	healer := cls[2]
	if err := healer.Inodelk(ctx, &fop.InodelkReq{Path: "f", Mode: fop.LockExclusive}); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("exclusive lock over writers: %v", err)
	}
	// One writer finishes, the other dies: its lock goes with its connection.
	if _, err := cls[0].Xattrop(ctx, &fop.XattropReq{Path: "f", Delta: []int32{-1, 0, 0}, Lock: fop.Unlock}); err != nil {
		t.Fatal(err)
	}
	raws[1].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := healer.Inodelk(ctx, &fop.InodelkReq{Path: "f", Mode: fop.LockExclusive})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("exclusive lock after the writers left: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A new writer waits for the heal to finish.
	done := make(chan error, 1)
	go func() {
		_, err := cls[0].Xattrop(ctx, &fop.XattropReq{Path: "f", Delta: []int32{1, 0, 0}, Lock: fop.LockShared})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("writer did not wait for the heal: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := healer.Inodelk(ctx, &fop.InodelkReq{Path: "f", Mode: fop.Unlock, Which: fop.LockExclusive}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Dropping a lock not held is refused.
	if err := healer.Inodelk(ctx, &fop.InodelkReq{Path: "f", Mode: fop.Unlock, Which: fop.LockExclusive}); !errors.Is(err, syscall.ENOLCK) {
		t.Fatalf("unlock of a lock not held: %v", err)
	}
}

// A writer's close in one round trip: the changelog update through the
// handle, its shared lock dropped, and the handle released.
func TestStoredChangelog(t *testing.T) {
	for _, tc := range []struct{ in, want []int32 }{
		{[]int32{1, 0, 0, 0, 0, 0, 0, 0, 0}, []int32{1, 0, 0}},
		{[]int32{1, 0, 0, 0, 0, 0, 2, 0, 0}, []int32{1, 0, 0, 0, 0, 0, 2, 0, 0}},
		{[]int32{0, 0, 0, 0, 1, 0, 0, 0, 0}, []int32{0, 0, 0, 0, 1, 0}},
		{[]int32{0, 0, 0}, []int32{}},
		{nil, []int32{}},
	} {
		if got := storedChangelog(tc.in); !reflect.DeepEqual(got, tc.want) && (len(got) != 0 || len(tc.want) != 0) {
			t.Errorf("storedChangelog(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// A file marked by a write on a healthy Replica 2 or 3 set keeps its
// changelog inside its inode: no block of its own for extended attributes
// (st_blocks stays 0 for an empty file).
func TestChangelogStaysInInode(t *testing.T) {
	dir, cls, _ := afrBrick(t, 1)
	c := cls[0]
	ctx := context.Background()
	if _, err := c.Create(ctx, &fop.CreateReq{Path: "f", Mode: 0o644, GFID: fop.NewGFID()}); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(dir, "f"), &st); err != nil || st.Blocks != 0 {
		t.Skipf("this file system keeps a new file's attributes in a block (%d blocks, %v)", st.Blocks, err)
	}
	for _, n := range []int{2, 3} {
		delta := make([]int32, 3*(1+n))
		delta[0] = 1
		if _, err := c.Xattrop(ctx, &fop.XattropReq{Path: "f", Delta: delta}); err != nil {
			t.Fatal(err)
		}
		if err := unix.Stat(filepath.Join(dir, "f"), &st); err != nil || st.Blocks != 0 {
			t.Errorf("Replica %d: the marked file has %d blocks (%v): its attributes left the inode", n, st.Blocks, err)
		}
		delta[0] = -1
		if _, err := c.Xattrop(ctx, &fop.XattropReq{Path: "f", Delta: delta}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestXattropRelease(t *testing.T) {
	_, cls, _ := afrBrick(t, 2)
	ctx := context.Background()
	r, err := cls[0].Create(ctx, &fop.CreateReq{Path: "f", Mode: 0o644, GFID: fop.NewGFID(), Flags: unix.O_RDWR})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cls[0].Xattrop(ctx, &fop.XattropReq{Path: "f", Delta: []int32{1, 0, 0}, Lock: fop.LockShared, Handle: r.Handle}); err != nil {
		t.Fatal(err)
	}
	// Renamed meanwhile: the handle still reaches the file.
	if err := cls[0].Rename(ctx, "f", "g", 0); err != nil {
		t.Fatal(err)
	}
	got, err := cls[0].XattropRelease(ctx, &fop.XattropReq{Path: "g", Delta: []int32{-1, 0, 0}, Lock: fop.Unlock, Handle: r.Handle})
	if err != nil || !reflect.DeepEqual(got.Counters, []int32{0, 0, 0}) {
		t.Fatalf("xattrop-release: %v %v", got, err)
	}
	if got.HasAttr {
		t.Fatal("a client that did not ask for FeatReleaseAttrs got the file's attributes")
	}
	if _, err := cls[0].Read(ctx, r.Handle, 0, 1); !errors.Is(err, syscall.EBADF) {
		t.Fatalf("handle after release: %v, want EBADF", err)
	}
	if err := cls[1].Inodelk(ctx, &fop.InodelkReq{Path: "g", Mode: fop.LockExclusive}); err != nil {
		t.Fatalf("the writer's lock is still held: %v", err)
	}
	if _, err := cls[0].XattropRelease(ctx, &fop.XattropReq{Path: "g", Delta: []int32{0, 0, 0}}); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("xattrop-release without a handle: %v", err)
	}
}

// A client that asked for FeatReleaseAttrs learns, at release, the
// file's attributes after the changelog update: as a getattr then sees
// them, change time included.
func TestXattropReleaseAttr(t *testing.T) {
	_, cls, raws := afrBrick(t, 1)
	ctx := context.Background()
	if _, err := fop.SayHello(ctx, raws[0]); err != nil {
		t.Fatal(err)
	}
	r, err := cls[0].Create(ctx, &fop.CreateReq{Path: "f", Mode: 0o644, GFID: fop.NewGFID(), Flags: unix.O_RDWR})
	if err != nil {
		t.Fatal(err)
	}
	w, err := cls[0].WriteDirty(ctx, &fop.WriteDirtyReq{Handle: r.Handle, Path: "f", Delta: []int32{1, 0, 0}, Data: []byte("data")})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // the post-op's change time differs from the write's
	got, err := cls[0].XattropRelease(ctx, &fop.XattropReq{Path: "f", Delta: []int32{-1, 0, 0}, Lock: fop.Unlock, Handle: r.Handle})
	if err != nil || !got.HasAttr {
		t.Fatalf("xattrop-release: %+v %v", got, err)
	}
	a, err := cls[0].Getattr(ctx, "f")
	if err != nil {
		t.Fatal(err)
	}
	if got.Attr != a {
		t.Fatalf("release's attributes %+v, getattr's %+v", got.Attr, a)
	}
	if got.Attr.Ctime == w.Attr.Ctime {
		t.Fatalf("change time %v: the write's, not the post-op's", got.Attr.Ctime)
	}
}

// A writer's first write takes the lock, marks the file dirty and writes
// the data in one call.
func TestWriteDirty(t *testing.T) {
	dir, cls, _ := afrBrick(t, 2)
	ctx := context.Background()
	r, err := cls[0].Create(ctx, &fop.CreateReq{Path: "f", Mode: 0o644, GFID: fop.NewGFID(), Flags: unix.O_RDWR})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := cls[0].WriteDirty(ctx, &fop.WriteDirtyReq{Handle: r.Handle, Offset: 2, Path: "f", Delta: []int32{1, 0, 0}, Data: []byte("data")})
	if err != nil || rep.Written != 4 || rep.Attr.Size != 6 {
		t.Fatalf("write-dirty: %+v %v", rep, err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "f")); string(got) != "\x00\x00data" {
		t.Fatalf("file holds %q", got)
	}
	e, _ := cls[0].Lookup(ctx, "f")
	if cl, _ := fop.DecodeChangelog(e.Changelog); !reflect.DeepEqual(cl, []int32{1, 0, 0}) {
		t.Fatalf("changelog %v", cl)
	}
	if err := cls[1].Inodelk(ctx, &fop.InodelkReq{Path: "f", Mode: fop.LockExclusive}); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("heal's lock while the writer holds the file: %v", err)
	}
	if _, err := cls[0].XattropRelease(ctx, &fop.XattropReq{Path: "f", Delta: []int32{-1, 0, 0}, Lock: fop.Unlock, Handle: r.Handle}); err != nil {
		t.Fatal(err)
	}
	if err := cls[1].Inodelk(ctx, &fop.InodelkReq{Path: "f", Mode: fop.LockExclusive}); err != nil {
		t.Fatalf("heal's lock after the writer closed: %v", err)
	}
}

// BenchmarkReplicatedFile is a 4 KiB file's life on one brick of a
// replica set: create, the first write with the writers' lock and the
// dirty mark, and the release that clears the mark (each waited for).
func BenchmarkReplicatedFile(b *testing.B) {
	_, clients, _ := afrBrick(b, 1)
	cls := clients[0]
	ctx := context.Background()
	if _, err := cls.Mkdir(ctx, &fop.CreateReq{Path: "d", Mode: unix.S_IFDIR | 0o755, GFID: fop.NewGFID()}); err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 4096)
	b.ResetTimer()
	for i := range b.N {
		r, err := cls.Create(ctx, &fop.CreateReq{Path: "d/f" + strconv.Itoa(i), Mode: 0o644, GFID: fop.NewGFID(), Flags: unix.O_WRONLY})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := cls.WriteDirty(ctx, &fop.WriteDirtyReq{Handle: r.Handle, Path: "d/f" + strconv.Itoa(i), Delta: []int32{1, 0, 0, 0, 0, 0, 0, 0, 0}, Data: data}); err != nil {
			b.Fatal(err)
		}
		if _, err := cls.XattropRelease(ctx, &fop.XattropReq{Path: "d/f" + strconv.Itoa(i), Delta: []int32{-1, 0, 0, 0, 0, 0, 0, 0, 0}, Lock: fop.Unlock, Handle: r.Handle}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestIndexDropsStaleEntries: the index lists the files left to heal.
// An entry whose file was removed while marked, whose name now holds
// another file, or whose file's changelog is clear is dropped when the
// index is read; a marked file stays, and so does a name whose file has
// no identity yet (the brick cannot tell whose it is).
func TestIndexDropsStaleEntries(t *testing.T) {
	dir, cls, _ := afrBrick(t, 1)
	c := cls[0]
	ctx := context.Background()
	dirty := []int32{1, 0, 0, 0, 0, 0}
	mark := func(name string) fop.GFID {
		t.Helper()
		g := fop.NewGFID()
		if _, err := c.Create(ctx, &fop.CreateReq{Path: name, Mode: 0o644, GFID: g}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Xattrop(ctx, &fop.XattropReq{Path: name, Delta: dirty}); err != nil {
			t.Fatal(err)
		}
		return g
	}
	entry := func(g fop.GFID, p string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, indexDir, g.Hex()), []byte(p), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	keep := mark("keep")
	removed := mark("removed")
	if err := os.Remove(filepath.Join(dir, "removed")); err != nil {
		t.Fatal(err)
	}
	replaced := mark("replaced")
	if err := c.Unlink(ctx, "replaced"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(ctx, &fop.CreateReq{Path: "replaced", Mode: 0o644, GFID: fop.NewGFID()}); err != nil {
		t.Fatal(err)
	}
	underFile := fop.NewGFID()
	entry(underFile, "keep/x") // a path through a file: ENOTDIR
	clean := fop.NewGFID()
	if _, err := c.Create(ctx, &fop.CreateReq{Path: "clean", Mode: 0o644, GFID: clean}); err != nil {
		t.Fatal(err)
	}
	entry(clean, "clean")
	anon := fop.NewGFID()
	if err := os.WriteFile(filepath.Join(dir, "anon"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	entry(anon, "anon")

	idx, err := c.Index(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[fop.GFID]string{}
	for _, e := range idx {
		got[e.GFID] = e.Path
	}
	want := map[fop.GFID]string{keep: "keep", anon: "anon"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("index %v, want %v", got, want)
	}
	for _, g := range []fop.GFID{removed, replaced, underFile, clean} {
		if _, err := os.Stat(filepath.Join(dir, indexDir, g.Hex())); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stale entry %s still on disk (%v)", g, err)
		}
	}
	// A stale entry marked again is indexed again.
	if _, err := c.Xattrop(ctx, &fop.XattropReq{Path: "clean", Delta: dirty}); err != nil {
		t.Fatal(err)
	}
	if idx, _ := c.Index(ctx); len(idx) != 3 {
		t.Fatalf("index after marking clean again: %+v", idx)
	}
}

// A create's mark (fop.FeatCreateMark) is added to the file it opens,
// new or not, under the writers' lock, which the handle keeps until its
// xattrop-release; a mark of the wrong shape makes no file.
func TestCreateMark(t *testing.T) {
	dir, cls, _ := afrBrick(t, 2)
	ctx := context.Background()
	if _, err := cls[1].Create(ctx, &fop.CreateReq{Path: "x", Mode: 0o644, GFID: fop.NewGFID(), Mark: []int32{1, 0, 0}}); !errors.Is(err, syscall.ENOSYS) {
		t.Fatalf("a mark to a brick that did not grant it: %v, want ENOSYS", err)
	}
	cls[0].SetFeatures(fop.FeatCreateMark)
	changelog := func(p string) []int32 {
		t.Helper()
		buf := make([]byte, 256)
		n, err := unix.Getxattr(filepath.Join(dir, p), fop.ChangelogXattr, buf)
		if errors.Is(err, unix.ENODATA) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		c, err := fop.DecodeChangelog(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, c := range []struct {
		name  string
		flags uint32
	}{{"new", unix.O_RDWR | unix.O_EXCL}, {"existing", unix.O_RDWR}} {
		r, err := cls[0].Create(ctx, &fop.CreateReq{Path: "f", Mode: 0o644, GFID: fop.NewGFID(), Flags: c.flags, Mark: []int32{1, 0, 0}})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := changelog("f"); !reflect.DeepEqual(got, []int32{1}) && !reflect.DeepEqual(got, []int32{1, 0, 0}) {
			t.Fatalf("%s: changelog %v, want one change in flight", c.name, got)
		}
		if err := cls[1].Inodelk(ctx, &fop.InodelkReq{Path: "f", Mode: fop.LockExclusive}); !errors.Is(err, syscall.EAGAIN) {
			t.Fatalf("%s: a heal's lock beside the marked create: %v, want EAGAIN", c.name, err)
		}
		got, err := cls[0].XattropRelease(ctx, &fop.XattropReq{Path: "f", Delta: []int32{-1, 0, 0}, Lock: fop.Unlock, Handle: r.Handle})
		if err != nil || !reflect.DeepEqual(got.Counters, []int32{0, 0, 0}) {
			t.Fatalf("%s: xattrop-release: %v %v", c.name, got, err)
		}
		if err := cls[1].Inodelk(ctx, &fop.InodelkReq{Path: "f", Mode: fop.LockExclusive}); err != nil {
			t.Fatalf("%s: the lock outlived the release: %v", c.name, err)
		}
		if err := cls[1].Inodelk(ctx, &fop.InodelkReq{Path: "f", Mode: fop.Unlock, Which: fop.LockExclusive}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cls[0].Create(ctx, &fop.CreateReq{Path: "bad", Mode: 0o644, GFID: fop.NewGFID(), Flags: unix.O_RDWR, Mark: []int32{1, 0}}); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("a mark of two counters: %v, want EINVAL", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "bad")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused create made a file: %v", err)
	}
}

// A lock taken by path is released by the same path even when a rename
// moved the file meanwhile or gave its name to another file: the file
// locked is unlocked and its changelog mark dropped, and the file now
// under the name is left alone. (Before, the unlock went to whatever the
// path named then: the lock and the mark stayed, blocking heals.)
func TestPathLockAcrossRename(t *testing.T) {
	dir, cls, _ := afrBrick(t, 2)
	ctx := context.Background()
	for _, p := range []string{"f", "other"} {
		if _, err := cls[0].Create(ctx, &fop.CreateReq{Path: p, Mode: 0o644, GFID: fop.NewGFID()}); err != nil {
			t.Fatal(err)
		}
	}
	w, healer := cls[0], cls[1]
	if _, err := w.Xattrop(ctx, &fop.XattropReq{Path: "f", Delta: []int32{0, 0, 0, 1, 0, 0}, Lock: fop.LockShared}); err != nil {
		t.Fatal(err)
	}
	if err := healer.Inodelk(ctx, &fop.InodelkReq{Path: "other", Mode: fop.LockExclusive}); err != nil {
		t.Fatal(err)
	}
	// Another client renames both: f to g, other to f.
	if err := healer.Rename(ctx, "f", "g", 0); err != nil {
		t.Fatal(err)
	}
	if err := healer.Rename(ctx, "other", "f", 0); err != nil {
		t.Fatal(err)
	}
	got, err := w.Xattrop(ctx, &fop.XattropReq{Path: "f", Delta: []int32{0, 0, 0, -1, 0, 0}, Lock: fop.Unlock})
	if err != nil || !reflect.DeepEqual(got, []int32{0, 0, 0, 0, 0, 0}) {
		t.Fatalf("unlock by the old path: %v %v", got, err)
	}
	if err := healer.Inodelk(ctx, &fop.InodelkReq{Path: "other", Mode: fop.Unlock, Which: fop.LockExclusive}); err != nil {
		t.Fatalf("heal's unlock by the old path: %v", err)
	}
	for _, p := range []string{"g", "f"} {
		if n, err := unix.Lgetxattr(filepath.Join(dir, p), fop.ChangelogXattr, make([]byte, 64)); err != unix.ENODATA {
			t.Errorf("%s keeps a changelog (%d bytes, %v)", p, n, err)
		}
		// Both files are free: the exclusive lock is had at once.
		if err := healer.Inodelk(ctx, &fop.InodelkReq{Path: p, Mode: fop.LockExclusive}); err != nil {
			t.Errorf("%s still locked: %v", p, err)
			continue
		}
		if err := healer.Inodelk(ctx, &fop.InodelkReq{Path: p, Mode: fop.Unlock, Which: fop.LockExclusive}); err != nil {
			t.Error(err)
		}
	}
	// Nothing is left to release by a path once its locks are gone.
	if _, err := w.Xattrop(ctx, &fop.XattropReq{Path: "g", Delta: []int32{0, 0, 0, -1, 0, 0}, Lock: fop.Unlock}); !errors.Is(err, syscall.ENOLCK) {
		t.Fatalf("second unlock: %v, want ENOLCK", err)
	}
}

// The reader serves a create itself only without a replication mark:
// the mark's lock may be held by a heal on the same connection.
func TestInlineCalls(t *testing.T) {
	s := &session{}
	plain := fop.Marshal(&fop.CreateReq{Path: "f", Mode: 0o644, GFID: fop.NewGFID()})
	marked := fop.Marshal(&fop.CreateReq{Path: "f", Mode: 0o644, GFID: fop.NewGFID(), Mark: []int32{0, 0, 0, 1, 0, 0}})
	for _, c := range []struct {
		op      uint16
		payload []byte
		want    bool
	}{
		{fop.OpCreate, plain, true},
		{fop.OpCreate, marked, false},
		{fop.OpCreate, []byte{1, 2}, false},
		{fop.OpLookup, nil, true},
		{fop.OpUnlinkFile, nil, true},
		{fop.OpWrite, nil, false},
		{fop.OpInodelk, nil, false},
		{fop.OpXattrop, nil, false},
	} {
		if got := s.Inline(c.op, c.payload); got != c.want {
			t.Errorf("Inline(%d, %d bytes) = %v, want %v", c.op, len(c.payload), got, c.want)
		}
	}
}

// A file's locks of the data and the metadata domain do not wait for
// each other; within a domain the heal's exclusive lock does. A domain
// the brick does not know is refused.
func TestLockDomains(t *testing.T) {
	_, cls, _ := afrBrick(t, 2)
	ctx := context.Background()
	if _, err := cls[0].Create(ctx, &fop.CreateReq{Path: "f", Mode: 0o644, GFID: fop.NewGFID()}); err != nil {
		t.Fatal(err)
	}
	writer, healer := cls[0], cls[1]
	if _, err := writer.Xattrop(ctx, &fop.XattropReq{Path: "f", Delta: []int32{1, 0, 0}, Lock: fop.LockShared}); err != nil {
		t.Fatal(err)
	}
	if err := healer.Inodelk(ctx, &fop.InodelkReq{Path: "f", Mode: fop.LockExclusive}); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("data heal beside a writer: %v, want EAGAIN", err)
	}
	if err := healer.Inodelk(ctx, &fop.InodelkReq{Path: "f", Mode: fop.LockExclusive, Domain: fop.DomainMetadata}); err != nil {
		t.Fatalf("metadata heal beside a writer: %v", err)
	}
	// A metadata change waits for the metadata heal.
	changed := make(chan error, 1)
	go func() {
		_, err := writer.Xattrop(ctx, &fop.XattropReq{Path: "f", Delta: []int32{0, 1, 0}, Lock: fop.LockShared, Domain: fop.DomainMetadata})
		changed <- err
	}()
	select {
	case err := <-changed:
		t.Fatalf("a metadata change took its lock beside the metadata heal's (%v)", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := healer.Inodelk(ctx, &fop.InodelkReq{Path: "f", Mode: fop.Unlock, Which: fop.LockExclusive}); !errors.Is(err, syscall.ENOLCK) {
		t.Fatalf("unlock in the wrong domain: %v, want ENOLCK", err)
	}
	if err := healer.Inodelk(ctx, &fop.InodelkReq{Path: "f", Mode: fop.Unlock, Which: fop.LockExclusive, Domain: fop.DomainMetadata}); err != nil {
		t.Fatal(err)
	}
	if err := <-changed; err != nil {
		t.Fatalf("metadata change after the heal: %v", err)
	}
	if err := healer.Inodelk(ctx, &fop.InodelkReq{Path: "f", Mode: fop.LockShared, Domain: 7}); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("unknown domain: %v, want EINVAL", err)
	}
}
