package writebehind

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
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cais-platform/cais/brick"
	"github.com/cais-platform/cais/fop"
	"github.com/cais-platform/cais/rpc"
)

var ctx = context.Background()

// realBrick serves a directory as a brick on loopback; stop ends it.
func realBrick(t *testing.T) (fop.Volume, string, func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a brick sets trusted.* extended attributes: needs root")
	}
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- brick.ServeDir(sctx, slog.New(slog.DiscardHandler), ln, dir) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cl := rpc.NewClient(c)
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cl.Close()
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return fop.NewClient(cl), dir, stop
}

func create(t *testing.T, v fop.Volume, p string, flags uint32) uint64 {
	t.Helper()
	r, err := v.Create(ctx, &fop.CreateReq{Path: p, Mode: syscall.S_IFREG | 0o644, GFID: fop.NewGFID(), Flags: flags})
	if err != nil {
		t.Fatal(err)
	}
	return r.Handle
}

// Overlapping writes land in order, and whatever reads the file after
// the writes were answered sees all of them.
func TestWritesLandInOrderAndAreSeen(t *testing.T) {
	inner, dir, _ := realBrick(t)
	v := New(inner, 256<<10)
	h := create(t, v, "f", syscall.O_RDWR)
	want := make([]byte, 2<<20)
	chunk := make([]byte, 64<<10)
	// Every write lands over the previous one's second half.
	for off := 0; off+len(chunk) <= len(want); off += len(chunk) / 2 {
		rand.Read(chunk)
		if _, err := v.Write(ctx, h, int64(off), chunk); err != nil {
			t.Fatal(err)
		}
		copy(want[off:], chunk)
		chunk = make([]byte, len(chunk)) // the caller's buffer may be reused; use fresh ones too
	}
	a, err := v.Getattr(ctx, "f")
	if err != nil || a.Size != uint64(len(want)) {
		t.Fatalf("size right after the writes: %d %v", a.Size, err)
	}
	got, err := v.Read(ctx, h, 0, uint32(len(want)))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read back differs (%v)", err)
	}
	if err := v.Flush(ctx, h); err != nil {
		t.Fatal(err)
	}
	if err := v.Release(ctx, h); err != nil {
		t.Fatal(err)
	}
	if disk, _ := os.ReadFile(filepath.Join(dir, "f")); !bytes.Equal(disk, want) {
		t.Fatal("brick's file differs")
	}
}

// The caller's buffer is reused as soon as the write is answered: the
// layer must have copied it.
func TestBufferReuse(t *testing.T) {
	inner, dir, _ := realBrick(t)
	v := New(inner, 0)
	h := create(t, v, "f", syscall.O_WRONLY)
	buf := []byte("first")
	v.Write(ctx, h, 0, buf)
	copy(buf, "XXXXX")
	v.Release(ctx, h)
	if got, _ := os.ReadFile(filepath.Join(dir, "f")); string(got) != "first" {
		t.Fatalf("brick holds %q", got)
	}
}

// A write that fails in the background is reported at the next flush.
func TestFailureReportedAtFlush(t *testing.T) {
	inner, _, stop := realBrick(t)
	v := New(inner, 0)
	h := create(t, v, "f", syscall.O_WRONLY)
	stop()
	if _, err := v.Write(ctx, h, 0, []byte("lost")); err != nil {
		// Answered at once: the failure comes later.
		t.Fatalf("write answered with %v", err)
	}
	if err := v.Flush(ctx, h); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("flush: %v, want the write's failure", err)
	}
	if err := v.Flush(ctx, h); err != nil {
		t.Fatalf("a failure is reported once: %v", err)
	}
}

// O_APPEND files are written through: each write's place is the end of
// the file when the brick gets it.
func TestAppendWrittenThrough(t *testing.T) {
	inner, dir, _ := realBrick(t)
	v := New(inner, 0)
	h := create(t, v, "log", syscall.O_WRONLY|syscall.O_APPEND)
	for _, s := range []string{"a", "b", "c"} {
		if _, err := v.Write(ctx, h, 0, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "log")); string(got) != "abc" {
		t.Fatalf("appended %q", got)
	}
}

// noFinalAttrs hides the brick client's fop.FinalAttrs, as replicate
// does not offer it.
type noFinalAttrs struct{ fop.Volume }

// FlushAttr gives, after the handle's writes land, the attributes a
// getattr then returns; nothing before a write, after a written-through
// write, or over a layer whose write replies are not final.
func TestFlushAttrMatchesGetattr(t *testing.T) {
	b, _, _ := realBrick(t)
	v := New(b, 0)
	h := create(t, v, "f", syscall.O_WRONLY)
	if _, ok, err := v.FlushAttr(ctx, h); err != nil || ok {
		t.Fatalf("flush before any write: ok %v, err %v", ok, err)
	}
	data := make([]byte, 1<<20)
	rand.Read(data)
	for off := int64(0); off < 4<<20; off += int64(len(data)) {
		if _, err := v.Write(ctx, h, off, data); err != nil {
			t.Fatal(err)
		}
	}
	a, ok, err := v.FlushAttr(ctx, h)
	if err != nil || !ok {
		t.Fatalf("flush after writes: ok %v, err %v", ok, err)
	}
	g, err := v.Getattr(ctx, "f")
	if err != nil {
		t.Fatal(err)
	}
	if a != g {
		t.Fatalf("attributes at flush %+v, getattr after %+v", a, g)
	}
	if a.Size != 4<<20 {
		t.Fatalf("size %d after 4 MiB of writes", a.Size)
	}
	v.Release(ctx, h)

	h = create(t, v, "append", syscall.O_WRONLY|syscall.O_APPEND)
	if _, err := v.Write(ctx, h, 0, data[:10]); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := v.FlushAttr(ctx, h); err != nil || ok {
		t.Fatalf("flush after a written-through write: ok %v, err %v", ok, err)
	}
	v.Release(ctx, h)

	w := New(noFinalAttrs{b}, 0)
	h = create(t, w, "g", syscall.O_WRONLY)
	if _, err := w.Write(ctx, h, 0, data[:10]); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := w.FlushAttr(ctx, h); err != nil || ok {
		t.Fatalf("flush over a layer without final write attributes: ok %v, err %v", ok, err)
	}
	w.Release(ctx, h)
}

// A truncation between a handle's writes, through it or another handle
// or the path, is in the attributes FlushAttr gives: the writes' replies
// before it told of a bigger file.
func TestFlushAttrAfterTruncation(t *testing.T) {
	b, _, _ := realBrick(t)
	v := New(b, 0)
	data := make([]byte, 1<<20)
	rand.Read(data)
	for _, how := range []string{"ftruncate", "other handle", "truncate", "O_TRUNC open"} {
		p := strings.ReplaceAll(how, " ", "-")
		h := create(t, v, p, syscall.O_RDWR)
		for off := int64(0); off < 3<<20; off += int64(len(data)) {
			if _, err := v.Write(ctx, h, off, data); err != nil {
				t.Fatal(err)
			}
		}
		const size = 100 << 10
		req := &fop.SetattrReq{Valid: fop.SetSize, Size: size}
		var err error
		switch how {
		case "ftruncate":
			_, err = v.Fsetattr(ctx, h, req)
		case "other handle":
			g := create(t, v, p, syscall.O_RDWR)
			_, err = v.Fsetattr(ctx, g, req)
			v.Release(ctx, g)
		case "truncate":
			req.Path = p
			_, err = v.Setattr(ctx, req)
		case "O_TRUNC open":
			var r fop.OpenReply
			r, err = v.Open(ctx, p, syscall.O_WRONLY|syscall.O_TRUNC)
			if err == nil {
				_, err = v.Write(ctx, r.Handle, 0, data[:size])
				v.Release(ctx, r.Handle)
			}
		}
		if err != nil {
			t.Fatalf("%s: %v", how, err)
		}
		// A write inside the new size: its reply is the file's size.
		if _, err := v.Write(ctx, h, 10, data[:10]); err != nil {
			t.Fatal(err)
		}
		a, ok, err := v.FlushAttr(ctx, h)
		if err != nil || !ok {
			t.Fatalf("%s: flush: ok %v, err %v", how, ok, err)
		}
		g, err := v.Getattr(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if a.Size != size || g.Size != size {
			t.Fatalf("%s: size %d at flush, %d by getattr, want %d", how, a.Size, g.Size, size)
		}
		v.Release(ctx, h)
	}
}

// ReleaseAttr over a layer that learns nothing at release is Release:
// the handle's writes land before it, and the layer forgets the handle.
func TestReleaseAttrWaitsForWrites(t *testing.T) {
	inner, dir, _ := realBrick(t)
	v := New(inner, 0)
	h := create(t, v, "f", syscall.O_WRONLY)
	data := bytes.Repeat([]byte("w"), 1<<20)
	for i := range 8 {
		if _, err := v.Write(ctx, h, int64(i)<<20, data); err != nil {
			t.Fatal(err)
		}
	}
	if _, known, err := v.ReleaseAttr(ctx, h); err != nil || known {
		t.Fatalf("release: known %v, %v", known, err)
	}
	if st, err := os.Stat(filepath.Join(dir, "f")); err != nil || st.Size() != 8<<20 {
		t.Fatalf("after release the brick holds %v bytes (%v), want %d", st.Size(), err, 8<<20)
	}
	v.mu.Lock()
	left := len(v.files) + len(v.paths)
	v.mu.Unlock()
	if left != 0 {
		t.Fatalf("the layer still keeps %d records of the released handle", left)
	}
}

// countingVolume counts the writes that reach the layer below.
type countingVolume struct {
	fop.Volume
	mu     sync.Mutex
	writes []int // sizes
}

func (c *countingVolume) Write(ctx context.Context, h uint64, off int64, data []byte) (fop.WriteReply, error) {
	c.mu.Lock()
	c.writes = append(c.writes, len(data))
	c.mu.Unlock()
	return c.Volume.Write(ctx, h, off, data)
}

func (c *countingVolume) sizes() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.writes)
}

// Small writes that follow on are sent as one, at close at the latest.
func TestSmallWritesAggregated(t *testing.T) {
	inner, dir, _ := realBrick(t)
	cv := &countingVolume{Volume: inner}
	v := New(cv, 0)
	v.delay = time.Hour // only the sizes send here
	h := create(t, v, "f", syscall.O_WRONLY)
	var want []byte
	chunk := make([]byte, 4096)
	for i := range Aggregate/len(chunk) + 3 { // one Aggregate's worth, and 3 more
		rand.Read(chunk)
		if _, err := v.Write(ctx, h, int64(i*len(chunk)), chunk); err != nil {
			t.Fatal(err)
		}
		want = append(want, chunk...)
	}
	if err := v.Flush(ctx, h); err != nil {
		t.Fatal(err)
	}
	// The full buffer goes out in the background, the rest at the flush:
	// in either order.
	got := cv.sizes()
	slices.Sort(got)
	if !slices.Equal(got, []int{3 * len(chunk), Aggregate}) {
		t.Errorf("writes sent to the brick: %v, want %d and %d", got, Aggregate, 3*len(chunk))
	}
	if disk, _ := os.ReadFile(filepath.Join(dir, "f")); !bytes.Equal(disk, want) {
		t.Fatal("brick's file differs")
	}
	v.Release(ctx, h)
}

// A pending write goes out by itself after PendingDelay.
func TestPendingWriteSentAfterDelay(t *testing.T) {
	inner, dir, _ := realBrick(t)
	v := New(inner, 0)
	h := create(t, v, "f", syscall.O_WRONLY)
	defer v.Release(ctx, h)
	if _, err := v.Write(ctx, h, 0, []byte("held a moment")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		if disk, _ := os.ReadFile(filepath.Join(dir, "f")); string(disk) == "held a moment" {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("the pending write never reached the brick")
		}
		time.Sleep(time.Millisecond)
	}
	if d := time.Since(start); d < PendingDelay/2 {
		t.Errorf("the write reached the brick after %v: it was not held", d)
	}
}

// A write that does not follow on from the pending ones lands after them,
// and whatever reads the file sees both.
func TestPendingWriteOrder(t *testing.T) {
	inner, dir, _ := realBrick(t)
	cv := &countingVolume{Volume: inner}
	v := New(cv, 0)
	v.delay = time.Hour
	h := create(t, v, "f", syscall.O_RDWR)
	if _, err := v.Write(ctx, h, 0, bytes.Repeat([]byte("a"), 4096)); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Write(ctx, h, 0, bytes.Repeat([]byte("b"), 100)); err != nil {
		t.Fatal(err)
	}
	want := append(bytes.Repeat([]byte("b"), 100), bytes.Repeat([]byte("a"), 4096-100)...)
	a, err := v.Getattr(ctx, "f")
	if err != nil || a.Size != 4096 {
		t.Fatalf("size seen: %d, %v", a.Size, err)
	}
	got, err := v.Read(ctx, h, 0, 8192)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read back %q..., %v", got[:min(len(got), 8)], err)
	}
	if n := len(cv.sizes()); n != 2 {
		t.Errorf("%d writes reached the brick, want 2", n)
	}
	if err := v.Flush(ctx, h); err != nil {
		t.Fatal(err)
	}
	v.Release(ctx, h)
	if disk, _ := os.ReadFile(filepath.Join(dir, "f")); !bytes.Equal(disk, want) {
		t.Fatal("brick's file differs")
	}
}

// panickyVolume panics in Write.
type panickyVolume struct{ fop.Volume }

func (panickyVolume) Write(context.Context, uint64, int64, []byte) (fop.WriteReply, error) {
	panic("a bug below write-behind")
}

// A panic under a background write fails that write with EIO, reported at
// the flush, is logged, and leaves the process and the file's waiters
// alone: big writes (sent at once) and small ones (held) alike.
func TestBackgroundWritePanic(t *testing.T) {
	inner, _, _ := realBrick(t)
	v := New(panickyVolume{inner}, 0)
	var logged bytes.Buffer
	v.Log = slog.New(slog.NewTextHandler(&logged, nil))
	for _, size := range []int{Aggregate, 100} {
		name := fmt.Sprintf("f%d", size)
		h := create(t, v, name, syscall.O_WRONLY)
		if _, err := v.Write(ctx, h, 0, make([]byte, size)); err != nil {
			t.Fatalf("write of %d bytes: %v", size, err)
		}
		if err := v.Flush(ctx, h); !errors.Is(err, syscall.EIO) {
			t.Errorf("flush after a panicking write of %d bytes: %v, want EIO", size, err)
		}
		if err := v.Release(ctx, h); err != nil {
			t.Errorf("release: %v", err)
		}
	}
	if n := strings.Count(logged.String(), "panic in a background write"); n != 2 {
		t.Errorf("%d panics logged, want 2:\n%s", n, logged.String())
	}
}

// slowVolume holds every write of gateSize bytes until gate closes.
type slowVolume struct {
	fop.Volume
	gateSize int
	gate     chan struct{}
}

func (s *slowVolume) Write(ctx context.Context, h uint64, off int64, data []byte) (fop.WriteReply, error) {
	if len(data) == s.gateSize {
		<-s.gate
	}
	return s.Volume.Write(ctx, h, off, data)
}

// A held write that must wait for an overlapping write in flight stays
// pending while it waits: a later write over the same bytes lands after
// it, and a read or fsync that comes meanwhile waits for it (the
// reviewer's case: the held write had been in neither place).
func TestHeldWriteWaitingForAdmission(t *testing.T) {
	inner, dir, _ := realBrick(t)
	sv := &slowVolume{Volume: inner, gateSize: Aggregate, gate: make(chan struct{})}
	v := New(sv, 0)
	v.delay = time.Millisecond
	h := create(t, v, "f", syscall.O_RDWR)
	// 1. A big write at 0, held at the brick.
	if _, err := v.Write(ctx, h, 0, bytes.Repeat([]byte("1"), Aggregate)); err != nil {
		t.Fatal(err)
	}
	// 2. A small write over it: held, and after the delay its push
	// waits for the big write.
	if _, err := v.Write(ctx, h, 0, bytes.Repeat([]byte("2"), 4096)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	// The held write, whose push now waits, is still where whatever
	// waits for the file looks: pending, or in flight.
	f := v.file(h)
	f.mu.Lock()
	visible := len(f.pend) == 4096
	for _, o := range f.inflight {
		visible = visible || o.off == 0 && o.end == 4096
	}
	f.mu.Unlock()
	if !visible {
		t.Fatal("a held write waiting to go is neither pending nor in flight")
	}
	// 3. A fsync and a read meanwhile, and the brick's write let go.
	fsynced := make(chan error, 1)
	go func() { fsynced <- v.Fsync(ctx, h, false) }()
	time.Sleep(10 * time.Millisecond)
	close(sv.gate)
	if err := <-fsynced; err != nil {
		t.Fatal(err)
	}
	want := append(bytes.Repeat([]byte("2"), 4096), bytes.Repeat([]byte("1"), Aggregate-4096)...)
	if disk, _ := os.ReadFile(filepath.Join(dir, "f")); !bytes.Equal(disk, want) {
		t.Fatalf("after fsync the brick holds %q...", disk[:min(len(disk), 8)])
	}
	// 4. Another big write over both lands last.
	if _, err := v.Write(ctx, h, 0, bytes.Repeat([]byte("3"), Aggregate)); err != nil {
		t.Fatal(err)
	}
	got, err := v.Read(ctx, h, 0, Aggregate)
	if err != nil || !bytes.Equal(got, bytes.Repeat([]byte("3"), Aggregate)) {
		t.Fatalf("read after the last write: %q..., %v", got[:min(len(got), 8)], err)
	}
	if err := v.Flush(ctx, h); err != nil {
		t.Fatal(err)
	}
	v.Release(ctx, h)
}

// Writes through two descriptors of one file land in the order they were
// made, and fsync through one makes the other's writes durable.
func TestWritesOrderedAcrossHandles(t *testing.T) {
	inner, dir, _ := realBrick(t)
	v := New(inner, 0)
	v.delay = time.Hour
	h1 := create(t, v, "f", syscall.O_RDWR)
	r, err := v.Open(ctx, "f", syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	h2 := r.Handle
	// A small write through h1 is held; a big one through h2 over it
	// comes after and must win.
	if _, err := v.Write(ctx, h1, 0, bytes.Repeat([]byte("a"), 4096)); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Write(ctx, h2, 0, bytes.Repeat([]byte("b"), Aggregate)); err != nil {
		t.Fatal(err)
	}
	// Another small write through h1, then fsync through h2.
	if _, err := v.Write(ctx, h1, Aggregate, []byte("tail")); err != nil {
		t.Fatal(err)
	}
	if err := v.Fsync(ctx, h2, false); err != nil {
		t.Fatal(err)
	}
	want := append(bytes.Repeat([]byte("b"), Aggregate), "tail"...)
	if disk, _ := os.ReadFile(filepath.Join(dir, "f")); !bytes.Equal(disk, want) {
		t.Fatalf("after fsync through the other descriptor the brick holds %d bytes, %q...", len(disk), disk[:min(len(disk), 8)])
	}
	for _, h := range []uint64{h1, h2} {
		if err := v.Flush(ctx, h); err != nil {
			t.Fatal(err)
		}
		v.Release(ctx, h)
	}
}

// With flush-behind a close does not wait for the handle's writes: it
// starts them; the release waits for them, and what reads the file
// through the layer meanwhile (getattr) waits too, so it sees them. A
// failure known at close is still reported there; one that comes after
// is logged at release.
func TestFlushBehind(t *testing.T) {
	inner, dir, _ := realBrick(t)
	sv := &slowVolume{Volume: inner, gateSize: 4096, gate: make(chan struct{})}
	var logged bytes.Buffer // slog's handler serializes its writes
	v := New(sv, 0)
	v.FlushBehind = true
	v.Log = slog.New(slog.NewTextHandler(&logged, nil))
	h := create(t, v, "f", syscall.O_WRONLY)
	if _, err := v.Write(ctx, h, 0, bytes.Repeat([]byte("x"), 4096)); err != nil {
		t.Fatal(err)
	}
	flushed := make(chan error, 1)
	go func() { flushed <- v.Flush(ctx, h) }()
	select {
	case err := <-flushed:
		if err != nil {
			t.Fatalf("flush: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("flush waits for a write held at the brick")
	}
	if _, known, err := v.FlushAttr(ctx, h); known || err != nil {
		t.Fatalf("flush with a write in flight: attributes known %v (%v), want unknown", known, err)
	}
	looked := make(chan fop.Attr, 1)
	go func() {
		a, err := v.Getattr(ctx, "f")
		if err != nil {
			t.Error(err)
		}
		looked <- a
	}()
	select {
	case a := <-looked:
		t.Fatalf("getattr answered (size %d) before the write was done", a.Size)
	case <-time.After(50 * time.Millisecond):
	}
	close(sv.gate)
	if a := <-looked; a.Size != 4096 {
		t.Fatalf("getattr after the write: size %d, want 4096", a.Size)
	}
	if err := v.Release(ctx, h); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(dir, "f")); err != nil || st.Size() != 4096 {
		t.Fatalf("after release the brick holds %v (%v)", st, err)
	}

	// A write that fails after the close: logged at release.
	inner2, _, stop := realBrick(t)
	v2 := New(inner2, 0)
	v2.FlushBehind = true
	v2.Log = v.Log
	h2 := create(t, v2, "g", syscall.O_WRONLY)
	stop()
	if _, err := v2.Write(ctx, h2, 0, []byte("lost")); err != nil {
		t.Fatalf("write answered with %v", err)
	}
	// The held write is sent by the flush, after it looked for failures.
	if err := v2.Flush(ctx, h2); err != nil {
		t.Fatalf("flush-behind of a write not sent yet: %v", err)
	}
	_ = v2.Release(ctx, h2)
	// A failure known at the close is reported there.
	h3 := create(t, v, "h", syscall.O_WRONLY)
	if _, err := v.Write(ctx, h3, 0, []byte("x")); err != nil {
		t.Fatal(err)
	}
	f := v.file(h3)
	f.mu.Lock()
	f.err = syscall.ENOSPC // as a failed background write leaves it
	f.mu.Unlock()
	if err := v.Flush(ctx, h3); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("flush after a failed write: %v, want ENOSPC", err)
	}
	_ = v.Release(ctx, h3)
	if n := strings.Count(logged.String(), "a write failed after the file was closed"); n != 1 {
		t.Fatalf("%d failures after close logged, want 1 (g's):\n%s", n, logged.String())
	}
}

// Close sends what is pending, waits for it, and releases the handles
// the kernel never released (a mount's end).
func TestCloseDrainsAndReleases(t *testing.T) {
	inner, dir, _ := realBrick(t)
	v := New(inner, 0)
	v.FlushBehind = true
	v.delay = time.Hour // nothing sends the pending write but Close
	h := create(t, v, "f", syscall.O_WRONLY)
	if _, err := v.Write(ctx, h, 0, []byte("kept")); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || string(b) != "kept" {
		t.Fatalf("after Close the brick holds %q (%v)", b, err)
	}
	if f := v.file(h); f != nil {
		t.Fatal("Close left the handle open")
	}
}
