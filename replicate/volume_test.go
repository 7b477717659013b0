package replicate

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/cais-platform/cais/brick"
	"github.com/cais-platform/cais/fop"
	"github.com/cais-platform/cais/rpc"
	"golang.org/x/sys/unix"
)

// testBrick is a real brick server on loopback that a test can stop and
// start again on the same address.
type testBrick struct {
	t      *testing.T
	dir    string
	addr   string
	cancel context.CancelFunc
	done   chan error
}

func (b *testBrick) start() {
	b.t.Helper()
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", b.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		b.t.Fatal(err)
	}
	b.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel, b.done = cancel, make(chan error, 1)
	go func() { b.done <- brick.ServeDir(ctx, slog.New(slog.DiscardHandler), ln, b.dir) }()
}

func (b *testBrick) stop() {
	b.cancel()
	<-b.done
}

// set is a replica set of n real bricks and the layer over them.
type set struct {
	t      *testing.T
	bricks []*testBrick
	v      *Volume
}

func newSet(t *testing.T, n int, opts Options) *set {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("bricks set trusted.* extended attributes: needs root")
	}
	s := &set{t: t}
	var kids []Brick
	for i := range n {
		b := &testBrick{t: t, dir: filepath.Join(t.TempDir(), "brick"), addr: "127.0.0.1:0"}
		if err := os.Mkdir(b.dir, 0o755); err != nil {
			t.Fatal(err)
		}
		b.start()
		s.bricks = append(s.bricks, b)
		d := &net.Dialer{Timeout: time.Second}
		r := rpc.NewRedialer(b.addr, func(ctx context.Context, addr string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", addr)
		}, slog.New(slog.DiscardHandler))
		r.RetryAfter = 20 * time.Millisecond
		fc := fop.NewClient(r)
		// As a mount's: the features the brick grants (a create's mark).
		r.Hello = func(ctx context.Context, c *rpc.Client) error {
			f, err := fop.SayHello(ctx, c)
			fc.SetFeatures(f)
			return err
		}
		kids = append(kids, fc)
		_ = i
	}
	opts.ProbeInterval = 20 * time.Millisecond
	s.v = New(kids, opts)
	t.Cleanup(func() {
		s.v.Close()
		for _, b := range s.bricks {
			b.cancel()
		}
	})
	return s
}

// missChmod makes brick i miss a chmod of p: it is blamed for the
// file's metadata once back up.
func (s *set) missChmod(i int, p string, mode uint32) {
	s.t.Helper()
	s.bricks[i].stop()
	if _, err := s.v.Setattr(ctx, &fop.SetattrReq{Path: p, Valid: fop.SetMode, Mode: mode}); err != nil {
		s.t.Fatal(err)
	}
	s.bricks[i].start()
	s.waitUp(i)
}

// waitUp waits until the layer sees brick i up again.
func (s *set) waitUp(i int) {
	s.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !s.v.Up()[i] {
		// Any call notices; a probe brings it back.
		_, _ = s.v.Statfs(context.Background())
		if time.Now().After(deadline) {
			s.t.Fatalf("brick %d not seen up", i)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *set) file(i int, p string) []byte {
	s.t.Helper()
	b, err := os.ReadFile(filepath.Join(s.bricks[i].dir, p))
	if err != nil {
		s.t.Fatalf("brick %d: %v", i, err)
	}
	return b
}

func (s *set) names(i int, dir string) []string {
	s.t.Helper()
	ents, err := os.ReadDir(filepath.Join(s.bricks[i].dir, dir))
	if err != nil {
		s.t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.Name() != ".cais" {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

func (s *set) pending() int {
	s.t.Helper()
	all, _, err := s.v.Pending(context.Background())
	if err != nil {
		s.t.Fatal(err)
	}
	return len(all)
}

var ctx = context.Background()

func create(t *testing.T, v fop.Volume, p string) uint64 {
	t.Helper()
	r, err := v.Create(ctx, &fop.CreateReq{Path: p, Mode: syscall.S_IFREG | 0o644, GFID: fop.NewGFID(), Flags: syscall.O_RDWR})
	if err != nil {
		t.Fatalf("create %s: %v", p, err)
	}
	return r.Handle
}

func write(t *testing.T, v fop.Volume, h uint64, off int64, data []byte) {
	t.Helper()
	if _, err := v.Write(ctx, h, off, data); err != nil {
		t.Fatalf("write at %d: %v", off, err)
	}
}

func TestMirroredWrites(t *testing.T) {
	s := newSet(t, 3, Options{})
	h := create(t, s.v, "f")
	data := make([]byte, 300000)
	rand.Read(data)
	write(t, s.v, h, 0, data)
	got, err := s.v.Read(ctx, h, 0, uint32(len(data)))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}
	if err := s.v.Release(ctx, h); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if !bytes.Equal(s.file(i, "f"), data) {
			t.Fatalf("brick %d differs", i)
		}
	}
	if n := s.pending(); n != 0 {
		t.Fatalf("%d files left marked after a clean write", n)
	}
}

// A brick that dies during writes misses them: writers see no error, the
// others blame it, and the heal brings it back in line.
func TestBrickDownDuringWritesThenHeal(t *testing.T) {
	s := newSet(t, 3, Options{})
	h := create(t, s.v, "f")
	chunk := make([]byte, 64<<10)
	var want []byte
	for i := range 40 {
		if i == 10 {
			s.bricks[2].stop()
		}
		rand.Read(chunk)
		write(t, s.v, h, int64(i*len(chunk)), chunk)
		want = append(want, chunk...)
	}
	if s.v.Up()[2] {
		t.Fatal("brick 2 still seen up")
	}
	// While a writer holds the file, the heal waits for it.
	s.bricks[2].start()
	s.waitUp(2)
	if _, err := s.v.Heal(ctx, "f"); !errors.Is(err, ErrBusy) {
		t.Fatalf("heal under a writer: %v, want ErrBusy", err)
	}
	if err := s.v.Release(ctx, h); err != nil {
		t.Fatal(err)
	}
	if n := s.pending(); n != 1 {
		t.Fatalf("index names %d files, want the one written", n)
	}
	res, err := s.v.Heal(ctx, "f")
	if err != nil {
		t.Fatal(err)
	}
	if res.Bytes != int64(len(want)) {
		t.Fatalf("healed %d bytes, want %d", res.Bytes, len(want))
	}
	for i := range 3 {
		if !bytes.Equal(s.file(i, "f"), want) {
			t.Fatalf("brick %d differs after heal", i)
		}
	}
	if n := s.pending(); n != 0 {
		t.Fatalf("%d files still marked after heal", n)
	}
}

func TestQuorumRefusesWrites(t *testing.T) {
	s := newSet(t, 3, Options{})
	h := create(t, s.v, "f")
	s.bricks[1].stop()
	s.bricks[2].stop()
	_, err := s.v.Write(ctx, h, 0, []byte("x"))
	if !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("write with 1 of 3 bricks: %v, want ENOTCONN", err)
	}
	if _, err := s.v.Mkdir(ctx, &fop.CreateReq{Path: "d", Mode: syscall.S_IFDIR | 0o755, GFID: fop.NewGFID()}); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("mkdir with 1 of 3 bricks: %v, want ENOTCONN", err)
	}
	// Reads still work from the brick that is up.
	if _, err := s.v.Lookup(ctx, "f"); err != nil {
		t.Fatalf("lookup with 1 of 3 bricks: %v", err)
	}

	// Replica 2, auto quorum: the first brick alone may write, the
	// second alone may not.
	s2 := newSet(t, 2, Options{})
	s2.bricks[1].stop()
	h = create(t, s2.v, "a")
	write(t, s2.v, h, 0, []byte("ok"))
	s2.bricks[1].start()
	s2.waitUp(1)
	s2.bricks[0].stop()
	if _, err := s2.v.Create(ctx, &fop.CreateReq{Path: "b", Mode: syscall.S_IFREG | 0o644, GFID: fop.NewGFID()}); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("create on the second brick alone: %v, want ENOTCONN", err)
	}
}

// Names created and removed while a brick is down are created and removed
// on it by the entry heal of their directory.
func TestEntryHeal(t *testing.T) {
	s := newSet(t, 3, Options{})
	for _, n := range []string{"old1", "old2"} {
		s.v.Release(ctx, create(t, s.v, n))
	}
	s.bricks[0].stop()
	if _, err := s.v.Mkdir(ctx, &fop.CreateReq{Path: "d", Mode: syscall.S_IFDIR | 0o750, GFID: fop.NewGFID()}); err != nil {
		t.Fatal(err)
	}
	h := create(t, s.v, "d/new")
	write(t, s.v, h, 0, []byte("hello"))
	s.v.Release(ctx, h)
	if _, err := s.v.Symlink(ctx, &fop.CreateReq{Path: "ln", Mode: syscall.S_IFLNK | 0o777, GFID: fop.NewGFID(), Target: "d/new"}); err != nil {
		t.Fatal(err)
	}
	if err := s.v.Unlink(ctx, "old1"); err != nil {
		t.Fatal(err)
	}
	s.bricks[0].start()
	s.waitUp(0)
	if _, err := s.v.Heal(ctx, ""); err != nil {
		t.Fatal(err)
	}
	want := s.names(1, "")
	if got := s.names(0, ""); !equal(got, want) {
		t.Fatalf("brick 0 root %v, want %v", got, want)
	}
	if got := string(s.file(0, "d/new")); got != "hello" {
		t.Fatalf("healed file holds %q", got)
	}
	if fi, err := os.Stat(filepath.Join(s.bricks[0].dir, "d")); err != nil || fi.Mode().Perm() != 0o750 {
		t.Fatalf("healed directory: %v %v", fi, err)
	}
	if tgt, err := os.Readlink(filepath.Join(s.bricks[0].dir, "ln")); err != nil || tgt != "d/new" {
		t.Fatalf("healed symlink: %q %v", tgt, err)
	}
	if n := s.pending(); n != 0 {
		t.Fatalf("%d entries still marked", n)
	}
}

// Two bricks each took writes the other missed: no copy can be chosen,
// opening the file fails with EIO until an administrator picks a source.
func TestSplitBrainResolution(t *testing.T) {
	s := newSet(t, 2, Options{QuorumNone: true})
	s.v.Release(ctx, create(t, s.v, "f"))
	s.bricks[1].stop()
	r, err := s.v.Open(ctx, "f", syscall.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	write(t, s.v, r.Handle, 0, []byte("from brick 0, longer"))
	s.v.Release(ctx, r.Handle)
	s.bricks[1].start()
	s.waitUp(1)
	s.bricks[0].stop()
	if r, err = s.v.Open(ctx, "f", syscall.O_WRONLY); err != nil {
		t.Fatal(err)
	}
	write(t, s.v, r.Handle, 0, []byte("from brick 1"))
	s.v.Release(ctx, r.Handle)
	s.bricks[0].start()
	s.waitUp(0)
	if _, err := s.v.Open(ctx, "f", syscall.O_RDONLY); !errors.Is(err, syscall.EIO) {
		t.Fatalf("open in split-brain: %v, want EIO", err)
	}
	if _, err := s.v.Heal(ctx, "f"); !errors.Is(err, ErrSplitBrain) {
		t.Fatalf("heal in split-brain: %v", err)
	}
	if _, err := s.v.HealFrom(ctx, "f", 1); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if got := string(s.file(i, "f")); got != "from brick 1" {
			t.Fatalf("brick %d holds %q after resolution", i, got)
		}
	}
	if split, _, _ := s.v.Split(ctx, "f"); split {
		t.Fatal("still in split-brain")
	}
}

func TestArbiterHoldsNoData(t *testing.T) {
	s := newSet(t, 3, Options{Arbiters: 1})
	h := create(t, s.v, "f")
	write(t, s.v, h, 0, []byte("payload"))
	s.v.Release(ctx, h)
	if got := s.file(2, "f"); len(got) != 0 {
		t.Fatalf("arbiter holds %q", got)
	}
	for i := range 2 {
		if string(s.file(i, "f")) != "payload" {
			t.Fatalf("brick %d lacks the data", i)
		}
	}
	a, err := s.v.Getattr(ctx, "f")
	if err != nil || a.Size != 7 {
		t.Fatalf("size %d %v, want 7 (never the arbiter's)", a.Size, err)
	}
	// Arbiter and one data brick keep quorum; the arbiter is never read.
	s.bricks[0].stop()
	r, err := s.v.Open(ctx, "f", syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.v.Read(ctx, r.Handle, 0, 100); err != nil || string(got) != "payload" {
		t.Fatalf("read with a data brick down: %q %v", got, err)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A full heal finds copies that differ with no changelog saying so (a
// brick's directory changed behind the volume's back).
func TestHealTree(t *testing.T) {
	s := newSet(t, 2, Options{})
	h := create(t, s.v, "f")
	write(t, s.v, h, 0, []byte("same"))
	s.v.Release(ctx, h)
	// Behind the volume's back: brick 1 loses a file, brick 0 a
	// directory's content changes.
	if err := os.Remove(filepath.Join(s.bricks[1].dir, "f")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.v.Heal(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.bricks[1].dir, "f")); err == nil {
		t.Fatal("index heal recreated a file no changelog named")
	}
	var visited []string
	if err := s.v.HealTree(ctx, "", func(p string, r Result, err error) {
		if err != nil {
			t.Errorf("%s: %v", p, err)
		}
		visited = append(visited, p)
	}); err != nil {
		t.Fatal(err)
	}
	if got := string(s.file(1, "f")); got != "same" {
		t.Fatalf("full heal left brick 1 with %q (visited %v)", got, visited)
	}
}

// Locks are taken on every brick: two handles of two clients conflict
// whichever copy each reads from, and a refused lock leaves nothing held.
func TestLocksOnEveryBrick(t *testing.T) {
	s := newSet(t, 3, Options{})
	s.v.Release(ctx, create(t, s.v, "f"))
	r1, err := s.v.Open(ctx, "f", syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := s.v.Open(ctx, "f", syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	whole := fop.Lk{Start: 0, End: fop.LkEOF, Type: fop.LockWrite, Pid: 1}
	if err := s.v.Setlk(ctx, r1.Handle, 1, &whole, 0); err != nil {
		t.Fatalf("first lock: %v", err)
	}
	if err := s.v.Setlk(ctx, r2.Handle, 2, &whole, 0); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("conflicting lock: %v, want EAGAIN", err)
	}
	got, err := s.v.Getlk(ctx, r2.Handle, 2, &whole, 0)
	if err != nil || got.Type != fop.LockWrite {
		t.Fatalf("getlk: %+v %v", got, err)
	}
	unlock := whole
	unlock.Type = fop.LockUnlock
	if err := s.v.Setlk(ctx, r1.Handle, 1, &unlock, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.v.Setlk(ctx, r2.Handle, 2, &whole, 0); err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
}

// A file renamed while open keeps being written: the changelog updates go
// through the open files, not the old name, and a brick that misses
// writes after the rename is blamed on the file under its new name.
func TestWriteAfterRename(t *testing.T) {
	s := newSet(t, 3, Options{})
	h := create(t, s.v, "old")
	write(t, s.v, h, 0, []byte("before "))
	if err := s.v.Rename(ctx, "old", "new", 0); err != nil {
		t.Fatal(err)
	}
	write(t, s.v, h, 7, []byte("after"))
	s.bricks[2].stop()
	write(t, s.v, h, 12, []byte(" and more"))
	if err := s.v.Release(ctx, h); err != nil {
		t.Fatal(err)
	}
	all, _, err := s.v.Pending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 {
		t.Fatalf("index %v, want the renamed file", all)
	}
	for _, p := range all {
		if p != "new" {
			t.Fatalf("indexed as %q, want new", p)
		}
	}
	s.bricks[2].start()
	s.waitUp(2)
	if _, err := s.v.Heal(ctx, "new"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if got := string(s.file(i, "new")); got != "before after and more" {
			t.Fatalf("brick %d holds %q", i, got)
		}
	}
}

// A file blamed on a brick that lacks it, in a directory that blames no
// brick (a create cut short): healing the file makes it there.
func TestHealMakesMissingCopy(t *testing.T) {
	s := newSet(t, 3, Options{})
	h := create(t, s.v, "f")
	write(t, s.v, h, 0, []byte("content"))
	s.v.Release(ctx, h)
	if err := os.Remove(filepath.Join(s.bricks[2].dir, "f")); err != nil {
		t.Fatal(err)
	}
	for _, b := range s.v.Bricks()[:2] {
		if _, err := b.Xattrop(ctx, &fop.XattropReq{Path: "f", Delta: PendingDelta(3, Data, 1, []int{2})}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.v.Heal(ctx, "f"); err != nil {
		t.Fatal(err)
	}
	if got := string(s.file(2, "f")); got != "content" {
		t.Fatalf("brick 2 holds %q", got)
	}
	if n := s.pending(); n != 0 {
		t.Fatalf("%d files still marked", n)
	}
}

// A reader whose brick dies goes on reading from another good copy.
func TestReadFailsOver(t *testing.T) {
	s := newSet(t, 3, Options{})
	h := create(t, s.v, "f")
	write(t, s.v, h, 0, []byte("replicated"))
	s.v.Release(ctx, h)
	r, err := s.v.Open(ctx, "f", syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	rh, _ := s.v.handle(r.Handle)
	s.bricks[rh.read].stop()
	got, err := s.v.Read(ctx, r.Handle, 0, 100)
	if err != nil || string(got) != "replicated" {
		t.Fatalf("read after the brick died: %q %v", got, err)
	}
	if err := s.v.Release(ctx, r.Handle); err != nil {
		t.Fatal(err)
	}
}

// O_CREAT|O_TRUNC of an existing file is a data change: a brick that is
// down meanwhile is blamed for it, and healed to the truncated file,
// even when no write follows.
func TestCreateTruncIsDataChange(t *testing.T) {
	s := newSet(t, 3, Options{})
	h := create(t, s.v, "f")
	write(t, s.v, h, 0, []byte("old data"))
	if err := s.v.Release(ctx, h); err != nil {
		t.Fatal(err)
	}
	s.bricks[2].stop()
	gfid := fop.NewGFID()
	r, err := s.v.Create(ctx, &fop.CreateReq{Path: "f", Mode: syscall.S_IFREG | 0o644, GFID: gfid, Flags: syscall.O_WRONLY | syscall.O_TRUNC})
	if err != nil {
		t.Fatal(err)
	}
	if r.Attr.GFID == gfid || r.Attr.Size != 0 {
		t.Fatalf("create of an existing name: gfid new %v, size %d; want the file's own, truncated", r.Attr.GFID == gfid, r.Attr.Size)
	}
	if err := s.v.Release(ctx, r.Handle); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if got := s.file(i, "f"); len(got) != 0 {
			t.Fatalf("brick %d after the truncating create: %q", i, got)
		}
	}
	s.bricks[2].start()
	s.waitUp(2)
	if _, err := s.v.Heal(ctx, "f"); err != nil {
		t.Fatal(err)
	}
	if got := s.file(2, "f"); len(got) != 0 {
		t.Fatalf("brick 2 after heal: %q, want the truncated file (it was down during the truncation)", got)
	}
	// A create of a new name with O_TRUNC makes it, as before.
	r, err = s.v.Create(ctx, &fop.CreateReq{Path: "g", Mode: syscall.S_IFREG | 0o644, GFID: gfid, Flags: syscall.O_WRONLY | syscall.O_TRUNC})
	if err != nil || r.Attr.GFID != gfid {
		t.Fatalf("create of a new name: %v, gfid ours %v", err, r.Attr.GFID == gfid)
	}
	if err := s.v.Release(ctx, r.Handle); err != nil {
		t.Fatal(err)
	}
}

// A write handle opened while a brick was down, with that brick healed
// between the open and the first write (the heal takes its lock while no
// writer holds one): the writes that then skip the brick must blame it
// again, or the heal's reset leaves it behind with a clean changelog.
func TestWriteBlamesBricksTheHandleLacks(t *testing.T) {
	s := newSet(t, 3, Options{})
	h := create(t, s.v, "f")
	write(t, s.v, h, 0, []byte("first"))
	if err := s.v.Release(ctx, h); err != nil {
		t.Fatal(err)
	}
	s.bricks[2].stop()
	// What the kernel sends for a rewrite: truncate, then open.
	if _, err := s.v.Setattr(ctx, &fop.SetattrReq{Path: "f", Valid: fop.SetSize}); err != nil {
		t.Fatal(err)
	}
	r, err := s.v.Open(ctx, "f", syscall.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	s.bricks[2].start()
	s.waitUp(2)
	if _, err := s.v.Heal(ctx, "f"); err != nil {
		t.Fatal(err)
	}
	write(t, s.v, r.Handle, 0, []byte("second"))
	if err := s.v.Release(ctx, r.Handle); err != nil {
		t.Fatal(err)
	}
	if _, err := s.v.Heal(ctx, "f"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if got := s.file(i, "f"); string(got) != "second" {
			t.Fatalf("brick %d after heal: %q, want %q", i, got, "second")
		}
	}
}

// localBrick is a brick the test says is on this machine.
type localBrick struct {
	Brick
	local bool
}

func (b localBrick) Local() bool { return b.local }

// With cluster.choose-local a handle reads from a good copy on this
// machine, never from a stale one; without it, from the set's first good
// copy.
func TestChooseLocal(t *testing.T) {
	s := newSet(t, 3, Options{})
	h := create(t, s.v, "f")
	write(t, s.v, h, 0, []byte("all copies"))
	if err := s.v.Release(ctx, h); err != nil {
		t.Fatal(err)
	}
	over := func(choose bool, local int) *Volume {
		var kids []Brick
		for i, k := range s.v.kids {
			kids = append(kids, localBrick{Brick: k.b, local: i == local})
		}
		v := New(kids, Options{ChooseLocal: choose, ProbeInterval: 20 * time.Millisecond})
		t.Cleanup(v.Close)
		return v
	}
	readFrom := func(v *Volume, flags uint32) int {
		t.Helper()
		r, err := v.Open(ctx, "f", flags)
		if err != nil {
			t.Fatal(err)
		}
		defer v.Release(ctx, r.Handle)
		hd, err := v.handle(r.Handle)
		if err != nil {
			t.Fatal(err)
		}
		got, err := v.Read(ctx, r.Handle, 0, 64)
		if err != nil || string(got) != "all copies" {
			t.Fatalf("read %q %v", got, err)
		}
		return hd.read
	}
	if got := readFrom(over(true, 1), syscall.O_RDONLY); got != 1 {
		t.Fatalf("choose-local read handle reads from brick %d, want the local 1", got)
	}
	if got := readFrom(over(true, 2), syscall.O_RDWR); got != 2 {
		t.Fatalf("choose-local read-write handle reads from brick %d, want the local 2", got)
	}
	if got := readFrom(over(false, 1), syscall.O_RDONLY); got != 0 {
		t.Fatalf("without choose-local: brick %d, want the first good copy 0", got)
	}
	// The local copy missed a write: it is not read from.
	s.bricks[1].stop()
	w, err := s.v.Open(ctx, "f", syscall.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	write(t, s.v, w.Handle, 0, []byte("ALL"))
	if err := s.v.Release(ctx, w.Handle); err != nil {
		t.Fatal(err)
	}
	s.bricks[1].start()
	v := over(true, 1)
	deadline := time.Now().Add(5 * time.Second)
	for !v.Up()[1] && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	r, err := v.Open(ctx, "f", syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Release(ctx, r.Handle)
	hd, _ := v.handle(r.Handle)
	got, err := v.Read(ctx, r.Handle, 0, 64)
	if err != nil || string(got) != "ALL copies" || hd.read == 1 {
		t.Fatalf("with the local copy stale: read %q from brick %d (%v)", got, hd.read, err)
	}
}

// gateBrick holds a brick's Setattr calls until the gate opens, so that a
// test can look at a set while a metadata change is half made.
type gateBrick struct {
	Brick
	entered chan struct{}
	gate    chan struct{}
}

func (b gateBrick) Setattr(ctx context.Context, req *fop.SetattrReq) (fop.Attr, error) {
	b.entered <- struct{}{}
	<-b.gate
	return b.Brick.Setattr(ctx, req)
}

// A metadata heal never runs beside a metadata change: it would copy the
// source's metadata from before the change over a sink that already has
// it, and clear the blame (the change lost on the sink, nothing to say
// so). It waits for the change, then finds nothing to do or heals what
// it finds; a change cut short leaves its dirty mark for the heal.
func TestMetadataHealWaitsForChanges(t *testing.T) {
	s := newSet(t, 3, Options{})
	h := create(t, s.v, "f")
	if err := s.v.Release(ctx, h); err != nil {
		t.Fatal(err)
	}
	// Brick 2 misses a chmod: it is blamed for the file's metadata.
	s.missChmod(2, "f", 0o600)
	// A second mount's chmod reaches bricks 0 and 2 and is held on brick 1.
	var kids []Brick
	for i, k := range s.v.kids {
		if i == 1 {
			kids = append(kids, gateBrick{Brick: k.b, entered: make(chan struct{}, 1), gate: make(chan struct{})})
		} else {
			kids = append(kids, k.b)
		}
	}
	other := New(kids, Options{ProbeInterval: 20 * time.Millisecond})
	t.Cleanup(other.Close)
	gate := kids[1].(gateBrick)
	done := make(chan error, 1)
	go func() {
		_, err := other.Setattr(ctx, &fop.SetattrReq{Path: "f", Valid: fop.SetMode, Mode: 0o640})
		done <- err
	}()
	<-gate.entered
	mode := func(i int) os.FileMode {
		fi, err := os.Stat(filepath.Join(s.bricks[i].dir, "f"))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	deadline := time.Now().Add(5 * time.Second)
	for mode(0) != 0o640 || mode(2) != 0o640 {
		if time.Now().After(deadline) {
			t.Fatalf("the chmod did not reach bricks 0 and 2: %v %v", mode(0), mode(2))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := s.v.Heal(ctx, "f"); !errors.Is(err, ErrBusy) {
		t.Fatalf("metadata heal beside a half-made chmod: %v, want ErrBusy (modes now %v %v %v)", err, mode(0), mode(1), mode(2))
	}
	close(gate.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := s.v.Heal(ctx, "f"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if m := mode(i); m != 0o640 {
			t.Fatalf("brick %d: mode %v after the chmod and the heal, want 0640", i, m)
		}
	}
	if n := s.pending(); n != 0 {
		t.Fatalf("%d files still marked after the heal", n)
	}
	// Dirty marks balance: a plain change leaves no mark behind.
	if err := s.v.Setxattr(ctx, "f", "user.k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	if n := s.pending(); n != 0 {
		t.Fatalf("a setxattr left %d files marked", n)
	}
}

// noMark hides a brick's FeatCreateMark.
type noMark struct{ Brick }

// A create to bricks that take a mark (fop.FeatCreateMark) is its first
// write's lock and dirty mark: the handle holds them from the create to
// the release, a heal waits meanwhile, the writes need no mark of their
// own, and a brick that was down is blamed as a first write would blame
// it. Bricks that cannot are sent the plain create.
func TestCreateMark(t *testing.T) {
	s := newSet(t, 3, Options{})
	if _, err := s.v.Getattr(ctx, ""); err != nil { // connects, and says hello
		t.Fatal(err)
	}
	h := create(t, s.v, "f")
	hd, err := s.v.handle(h)
	if err != nil {
		t.Fatal(err)
	}
	if !hd.dirtied {
		t.Fatal("a create to bricks that take a mark left the handle unmarked")
	}
	for i := range 3 {
		cl := brickChangelog(t, s.bricks[i].dir, "f")
		if cl.Dirty(Data) != 1 {
			t.Fatalf("brick %d: changelog %v after the create, want one data change in flight", i, cl)
		}
	}
	if _, err := s.v.Heal(ctx, "f"); !errors.Is(err, ErrBusy) {
		t.Fatalf("heal of a file open from its create: %v, want ErrBusy", err)
	}
	write(t, s.v, h, 0, []byte("marked"))
	if err := s.v.Release(ctx, h); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if got := string(s.file(i, "f")); got != "marked" {
			t.Fatalf("brick %d holds %q", i, got)
		}
		if cl := brickChangelog(t, s.bricks[i].dir, "f"); cl.Dirty(Data) != 0 || cl.Pending(0, Data)+cl.Pending(1, Data)+cl.Pending(2, Data) != 0 {
			t.Fatalf("brick %d: changelog %v after the release, want clear", i, cl)
		}
	}
	if n := s.pending(); n != 0 {
		t.Fatalf("%d files marked after the release", n)
	}

	// Brick 2 down: the create's mark blames it, and the heal gives it
	// the data once it is back.
	s.bricks[2].stop()
	h = create(t, s.v, "g")
	write(t, s.v, h, 0, []byte("while brick 2 was down"))
	if err := s.v.Release(ctx, h); err != nil {
		t.Fatal(err)
	}
	s.bricks[2].start()
	s.waitUp(2)
	if _, err := s.v.Heal(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.v.Heal(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if got := string(s.file(2, "g")); got != "while brick 2 was down" {
		t.Fatalf("brick 2 after the heal holds %q", got)
	}
	if n := s.pending(); n != 0 {
		t.Fatalf("%d files marked after the heal", n)
	}

	// A brick that cannot take the mark: the plain create, and the mark
	// with the first write.
	var kids []Brick
	for i, k := range s.v.kids {
		if i == 1 {
			kids = append(kids, noMark{k.b})
		} else {
			kids = append(kids, k.b)
		}
	}
	old := New(kids, Options{ProbeInterval: 20 * time.Millisecond})
	t.Cleanup(old.Close)
	h = create(t, old, "o")
	if hd, _ := old.handle(h); hd.dirtied {
		t.Fatal("a create with a brick that takes no mark marked the handle")
	}
	if cl := brickChangelog(t, s.bricks[0].dir, "o"); cl.Dirty(Data) != 0 {
		t.Fatalf("brick 0: changelog %v after a plain create", cl)
	}
	write(t, old, h, 0, []byte("plain"))
	if err := old.Release(ctx, h); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if got := string(s.file(i, "o")); got != "plain" {
			t.Fatalf("brick %d holds %q", i, got)
		}
	}
}

// brickChangelog reads a file's changelog on a brick's directory.
func brickChangelog(t *testing.T, dir, p string) Changelog {
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
	return Changelog(c)
}

// A release that cleared every copy's marks reports the attributes the
// next lookup answers with: the first data copy's, whatever copy reads
// went to and however far apart the copies' times are. With a copy
// missing, nothing.
func TestReleaseAttrFirstCopy(t *testing.T) {
	s := newSet(t, 3, Options{ReadPolicy: ReadHashGFID})
	if _, err := s.v.Getattr(ctx, ""); err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		p := fmt.Sprintf("f%d", i)
		h := create(t, s.v, p)
		write(t, s.v, h, 0, []byte("some data"))
		// Set the copies' times apart.
		if err := os.Chtimes(filepath.Join(s.bricks[1].dir, p), time.Unix(1, 0), time.Unix(1, 0)); err != nil {
			t.Fatal(err)
		}
		a, known, err := s.v.ReleaseAttr(ctx, h)
		if err != nil || !known {
			t.Fatalf("%s: release: known %v, %v", p, known, err)
		}
		e, err := s.v.Lookup(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		// An fstat through a handle, whichever copy it reads, agrees
		// with a stat by the name.
		for _, flags := range []uint32{syscall.O_RDONLY, syscall.O_WRONLY} {
			r, err := s.v.Open(ctx, p, flags)
			if err != nil {
				t.Fatal(err)
			}
			fa, err := s.v.Fgetattr(ctx, r.Handle)
			if err != nil {
				t.Fatal(err)
			}
			if fa.Mtime != e.Attr.Mtime || fa.Ctime != e.Attr.Ctime {
				t.Fatalf("%s: fstat (flags %#x) says mtime %d ctime %d, the lookup %d %d", p, flags, fa.Mtime, fa.Ctime, e.Attr.Mtime, e.Attr.Ctime)
			}
			if err := s.v.Release(ctx, r.Handle); err != nil {
				t.Fatal(err)
			}
		}
		if a.Size != 9 || a.Mtime != e.Attr.Mtime || a.Ctime != e.Attr.Ctime {
			t.Fatalf("%s: release says size %d mtime %d ctime %d, the lookup %d %d %d", p, a.Size, a.Mtime, a.Ctime, e.Attr.Size, e.Attr.Mtime, e.Attr.Ctime)
		}
	}
	s.bricks[2].stop()
	h := create(t, s.v, "g")
	write(t, s.v, h, 0, []byte("x"))
	if _, known, err := s.v.ReleaseAttr(ctx, h); err != nil || known {
		t.Fatalf("release with a copy missing: known %v, %v", known, err)
	}
}

// A heal that finds nothing left to do once it holds the lock (another
// heal was first) says so, and is not counted as a heal.
func TestHealFoundNothingUnderLock(t *testing.T) {
	s := newSet(t, 2, Options{})
	h := create(t, s.v, "f")
	write(t, s.v, h, 0, []byte("data"))
	if err := s.v.Release(ctx, h); err != nil {
		t.Fatal(err)
	}
	if err := s.v.healMetadata(ctx, "f", healOpts{force: -1}); !errors.Is(err, errNotNeeded) {
		t.Fatalf("metadata heal of a clean file: %v, want errNotNeeded", err)
	}
	var res Result
	if err := s.v.healData(ctx, "f", &res, healOpts{force: -1}); !errors.Is(err, errNotNeeded) {
		t.Fatalf("data heal of a clean file: %v, want errNotNeeded", err)
	}
}

// A file held open for writing (its handle keeps the data domain's lock)
// still has a missed metadata change healed: the metadata heal takes the
// metadata domain's lock. Its data heals once it is closed.
func TestMetadataHealBesideAnOpenWriter(t *testing.T) {
	s := newSet(t, 3, Options{})
	h := create(t, s.v, "f")
	write(t, s.v, h, 0, []byte("data"))
	s.missChmod(2, "f", 0o600)
	// Another mount holds the file open for writing meanwhile.
	var kids []Brick
	for _, k := range s.v.kids {
		kids = append(kids, k.b)
	}
	other := New(kids, Options{ProbeInterval: 20 * time.Millisecond})
	t.Cleanup(other.Close)
	r, err := other.Open(ctx, "f", syscall.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Write(ctx, r.Handle, 4, []byte("more")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(s.bricks[2].dir, "f"))
	if err != nil || fi.Mode().Perm() == 0o600 {
		t.Fatalf("brick 2 before the heal: %v %v, want the old mode", fi, err)
	}
	res, err := s.v.Heal(ctx, "f")
	if !slices.Contains(res.Healed, Metadata) {
		t.Fatalf("heal beside an open writer: healed %v (%v), want the metadata", res.Healed, err)
	}
	if fi, err := os.Stat(filepath.Join(s.bricks[2].dir, "f")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("brick 2 after the heal: %v %v, want mode 0600", fi, err)
	}
	for _, hh := range []struct {
		v *Volume
		h uint64
	}{{other, r.Handle}, {s.v, h}} {
		if err := hh.v.Release(ctx, hh.h); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.v.Heal(ctx, "f"); err != nil {
		t.Fatal(err)
	}
	if n := s.pending(); n != 0 {
		t.Fatalf("%d files still marked after the heal", n)
	}
}

// A close settles a writing handle (Settle): the mark and the writers'
// lock go before close returns, so the copies' change time does not move
// at the release that follows; a later write through the handle marks
// the file again, and the release clears that.
func TestSettleAtClose(t *testing.T) {
	s := newSet(t, 3, Options{})
	if _, err := s.v.Getattr(ctx, ""); err != nil {
		t.Fatal(err)
	}
	h := create(t, s.v, "f")
	write(t, s.v, h, 0, []byte("before the close"))
	a, known, err := s.v.Settle(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	// The attributes the next lookup answers with: the first copy's,
	// after the mark went.
	var first unix.Stat_t
	if err := unix.Stat(filepath.Join(s.bricks[0].dir, "f"), &first); err != nil {
		t.Fatal(err)
	}
	if !known || a.Size != 16 || a.Ctime != first.Ctim.Nano() {
		t.Fatalf("settle's attributes: %+v %v, want size 16 and the first copy's ctime %d", a, known, first.Ctim.Nano())
	}
	var ctimes [3]unix.Timespec
	for i := range 3 {
		if cl := brickChangelog(t, s.bricks[i].dir, "f"); cl.Dirty(Data) != 0 {
			t.Fatalf("brick %d: changelog %v after the close, want clear", i, cl)
		}
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(s.bricks[i].dir, "f"), &st); err != nil {
			t.Fatal(err)
		}
		ctimes[i] = st.Ctim
	}
	// The writers' lock went too: a heal may take its lock now.
	if _, err := s.v.Heal(ctx, "f"); errors.Is(err, ErrBusy) {
		t.Fatalf("heal after the close: %v (the writers' lock stayed)", err)
	}
	// Another write through the same open handle marks the file again.
	write(t, s.v, h, 0, []byte("after the close!"))
	for i := range 3 {
		if cl := brickChangelog(t, s.bricks[i].dir, "f"); cl.Dirty(Data) != 1 {
			t.Fatalf("brick %d: changelog %v after a write past the close, want one change in flight", i, cl)
		}
	}
	if _, _, err := s.v.Settle(ctx, h); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(s.bricks[i].dir, "f"), &st); err != nil {
			t.Fatal(err)
		}
		ctimes[i] = st.Ctim
	}
	if err := s.v.Release(ctx, h); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(s.bricks[i].dir, "f"), &st); err != nil {
			t.Fatal(err)
		}
		if st.Ctim != ctimes[i] {
			t.Fatalf("brick %d: change time moved at the release after a settled close: %v -> %v", i, ctimes[i], st.Ctim)
		}
		if got := string(s.file(i, "f")); got != "after the close!" {
			t.Fatalf("brick %d holds %q", i, got)
		}
		if cl := brickChangelog(t, s.bricks[i].dir, "f"); cl.Dirty(Data) != 0 {
			t.Fatalf("brick %d: changelog %v after the release", i, cl)
		}
	}
	if n := s.pending(); n != 0 {
		t.Fatalf("%d files marked after the release", n)
	}
}

// Settle waits for the handle's writes in flight: none lands outside
// the mark.
func TestSettleWaitsForWrites(t *testing.T) {
	s := newSet(t, 2, Options{})
	if _, err := s.v.Getattr(ctx, ""); err != nil {
		t.Fatal(err)
	}
	h := create(t, s.v, "f")
	write(t, s.v, h, 0, []byte("x"))
	hd, err := s.v.handle(h)
	if err != nil {
		t.Fatal(err)
	}
	hd.mu.Lock()
	hd.beginBusyLocked() // a write in flight
	hd.mu.Unlock()
	done := make(chan struct{})
	go func() {
		_, _, _ = s.v.Settle(ctx, h)
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("Settle returned with a write in flight")
	case <-time.After(100 * time.Millisecond):
	}
	if cl := brickChangelog(t, s.bricks[0].dir, "f"); cl.Dirty(Data) != 1 {
		t.Fatalf("changelog %v with a write in flight, want the mark kept", cl)
	}
	hd.endBusy()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Settle did not return after the write")
	}
	if cl := brickChangelog(t, s.bricks[0].dir, "f"); cl.Dirty(Data) != 0 {
		t.Fatalf("changelog %v after the settle", cl)
	}
	if err := s.v.Release(ctx, h); err != nil {
		t.Fatal(err)
	}
}
