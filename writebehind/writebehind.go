// Package writebehind is a client layer that acknowledges writes before
// the bricks have them, as GlusterFS's write-behind translator does: a
// write is copied, answered at once, and sent in the background, so an
// application's next write overlaps the previous one's trip to the bricks.
//
// Small writes are held a moment before they are sent: a write under
// Aggregate bytes waits in the file's pending buffer, the next ones that
// follow it on are added to it, and the buffer goes to the bricks as one
// write when a write does not follow on, when it would pass Aggregate
// bytes, after PendingDelay, or as soon as anything waits for the file's
// writes (a close among them). A file written and closed at once, the
// commonest small write, so sends its data at close, in the call close
// waits for anyway, and a stream of small writes goes out in big ones.
//
// What it keeps correct:
//   - writes to overlapping ranges of a file reach the bricks in the order
//     they were made (a write waits for the in-flight writes it overlaps;
//     a write through one descriptor first sends the pending writes of the
//     file's other descriptors and waits for theirs in flight);
//   - at most Window bytes per open file are in flight;
//   - anything that reads data or attributes of a file (read, getattr,
//     lookup, readdir), changes them another way (setattr, truncate,
//     rename, unlink, link) or ends the write stream (fsync, flush,
//     release) first sends the file's pending writes and waits for its
//     writes in flight;
//   - a failed background write is reported by the next write, fsync or
//     flush (close) of that handle, as write-behind does;
//   - with FlushBehind (performance.flush-behind, off by default) a
//     close starts sending what is pending and returns without waiting
//     for it; the handle's release waits, and logs a write that failed
//     after the close. A lookup, stat, read, rename or unlink of the file
//     through this mount still waits for those writes; another client
//     may not see them yet, and the closing process does not hear of
//     their failure;
//   - files opened with O_APPEND, O_SYNC, O_DSYNC or O_DIRECT are written
//     through.
package writebehind

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/cais-platform/cais/fop"
)

// DefaultWindow is the bytes in flight per open file.
const DefaultWindow = 4 << 20

// Aggregate is the most a file's pending small writes hold: writes of this
// size or more are sent at once.
const Aggregate = 128 << 10

// PendingDelay is the longest a pending write waits to be sent when
// nothing else sends it.
const PendingDelay = 5 * time.Millisecond

// Volume is the write-behind layer over inner.
type Volume struct {
	inner  fop.Volume
	window int64
	// Log, when set, gets a panic of a layer below in a write sent in
	// the background: the write fails with EIO, reported at the next
	// write, fsync or close, and the mount goes on.
	Log *slog.Logger
	// FlushBehind makes a flush (close) send the handle's pending writes
	// without waiting for them (performance.flush-behind): the handle's
	// release waits instead, which the closing process does not wait
	// for.
	FlushBehind bool
	// delay is how long pending writes may wait (PendingDelay).
	delay time.Duration

	// bufs keeps the copies of big writes (bigWrite bytes) for the next
	// ones: memory already in use is copied into faster than new memory,
	// zeroed and faulted in page by page.
	bufs sync.Pool

	mu    sync.Mutex
	files map[uint64]*file
	paths map[string]map[*file]struct{}
}

var (
	_ fop.Volume      = (*Volume)(nil)
	_ fop.FileAttrer  = (*Volume)(nil)
	_ fop.Locker      = (*Volume)(nil)
	_ fop.Flusher     = (*Volume)(nil)
	_ fop.AttrFlusher = (*Volume)(nil)
	_ fop.FileXattrer = (*Volume)(nil)
)

// New returns a write-behind layer over inner with window bytes in flight
// per open file (DefaultWindow when 0).
func New(inner fop.Volume, window int64) *Volume {
	if window <= 0 {
		window = DefaultWindow
	}
	return &Volume{inner: inner, window: window, delay: PendingDelay, files: map[uint64]*file{}, paths: map[string]map[*file]struct{}{}}
}

// span is a write in flight: its bytes, and the file's size generation
// (file.gen) when it went.
type span struct {
	off, end int64
	gen      uint64
}

type file struct {
	v       *Volume
	h       uint64
	path    string
	through bool // written through: O_APPEND, O_SYNC, O_DSYNC, O_DIRECT

	mu       sync.Mutex
	cond     *sync.Cond
	inflight []span
	bytes    int64
	err      error // the first failed background write, reported once

	// pend holds answered small writes not sent yet, one run of bytes
	// from pendOff; timer sends them after PendingDelay.
	pend    []byte
	pendOff int64
	pendCtx context.Context
	timer   *time.Timer

	// attr is the file's attributes after the writes done so far: each
	// of size, blocks and times the largest a reply carried (writes only
	// raise them; with writes in flight together, a reply's fstat may run
	// before another write's blocks are counted, so no one reply need be
	// the last word); attrOK is false until a write succeeds. blind is set
	// for good once the handle wrote in a way whose attributes it did not
	// see (a failed or written-through write).
	attr   fop.Attr
	attrOK bool
	blind  bool
	// gen counts the changes of the file's size made other than by its
	// writes (a truncation, through any handle): a write's reply tells of
	// the file as it was after that write, and a write in flight across
	// such a change tells of either side of it (Volume.resized).
	gen uint64
}

// wrote records the reply of a background write sent in size generation
// gen.
func (f *file) wrote(a fop.Attr, err error, gen uint64) {
	switch {
	case err != nil, gen != f.gen:
		f.blind = true
	case !f.attrOK:
		f.attr, f.attrOK = a, true
	default:
		f.attr.Size = max(f.attr.Size, a.Size)
		f.attr.Blocks = max(f.attr.Blocks, a.Blocks)
		f.attr.Mtime = max(f.attr.Mtime, a.Mtime)
		f.attr.Ctime = max(f.attr.Ctime, a.Ctime)
		f.attr.Atime = max(f.attr.Atime, a.Atime)
	}
}

func (f *file) overlaps(s span) bool {
	for _, o := range f.inflight {
		if s.off < o.end && o.off < s.end {
			return true
		}
	}
	return false
}

// drain sends the file's pending writes, waits for its writes in flight
// and returns (and forgets) the error of a failed one.
func (f *file) drain() error {
	f.wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.err
	f.err = nil
	return err
}

// wait sends the file's pending writes and waits for its writes in
// flight.
func (f *file) wait() {
	f.push()
	f.mu.Lock()
	for len(f.inflight) > 0 {
		f.cond.Wait()
	}
	f.mu.Unlock()
}

// mustWait reports whether a write of s must wait before it goes: it
// overlaps a write in flight, or would pass the window. f.mu is held.
func (f *file) mustWait(s span) bool {
	return f.overlaps(s) || (f.bytes > 0 && f.bytes+(s.end-s.off) > f.v.window)
}

// admitLocked waits, with f.mu held, until a write of s may go, and
// counts it in flight.
func (f *file) admitLocked(s span) span {
	for f.mustWait(s) {
		f.cond.Wait()
	}
	s.gen = f.gen
	f.inflight = append(f.inflight, s)
	f.bytes += s.end - s.off
	return s
}

// takePending waits, with f.mu held (and given up while it waits), until
// the pending writes, if any, may go: they overlap no write in flight and
// fit the window. It then makes them a write in flight and returns it for
// send. While it waits they stay pending, where whatever waits for the
// file still finds them, and writes that follow on still join them.
func (f *file) takePending() (context.Context, span, []byte, bool) {
	for len(f.pend) > 0 {
		s := span{off: f.pendOff, end: f.pendOff + int64(len(f.pend))}
		if f.mustWait(s) {
			f.cond.Wait()
			continue
		}
		buf, ctx := f.pend, f.pendCtx
		f.pend, f.pendCtx = nil, nil
		f.timer.Stop()
		s = f.admitLocked(s) // admitted at once: nothing in its way now
		return ctx, s, buf, true
	}
	return nil, span{}, nil, false
}

// write is the layer below's Write, with a panic in it turned into EIO:
// a background write has no caller to raise it in, and the writes waiting
// on it must still be let go.
func (f *file) write(ctx context.Context, off int64, buf []byte) (r fop.WriteReply, err error, panicked bool) {
	defer func() {
		if p := recover(); p != nil {
			if f.v.Log != nil {
				f.v.Log.Error("panic in a background write", "handle", f.h, "offset", off, "bytes", len(buf), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			}
			r, err, panicked = fop.WriteReply{}, syscall.EIO, true
		}
	}()
	r, err = f.v.inner.Write(ctx, f.h, off, buf)
	return r, err, false
}

// push sends the file's pending writes, if any, and returns once the
// bricks answered.
func (f *file) push() {
	f.mu.Lock()
	ctx, s, buf, ok := f.takePending()
	f.mu.Unlock()
	if ok {
		f.send(ctx, s, buf)
	}
}

// send writes buf (counted in flight as s) to the layer below and records
// the outcome.
func (f *file) send(ctx context.Context, s span, buf []byte) {
	r, err, panicked := f.write(ctx, s.off, buf)
	if !panicked {
		f.v.release(buf) // after a panic a layer below may still hold it
	}
	if err == nil && int(r.Written) != len(buf) {
		err = syscall.EIO
	}
	f.mu.Lock()
	for i, o := range f.inflight {
		if o == s {
			f.inflight = append(f.inflight[:i], f.inflight[i+1:]...)
			break
		}
	}
	f.bytes -= int64(len(buf))
	if err != nil && f.err == nil {
		f.err = err
	}
	f.wrote(r.Attr, err, s.gen)
	f.cond.Broadcast()
	f.mu.Unlock()
}

func (v *Volume) register(h uint64, p string, flags uint32) {
	f := &file{v: v, h: h, path: p, through: flags&(syscall.O_APPEND|syscall.O_SYNC|syscall.O_DSYNC|syscall.O_DIRECT) != 0}
	f.cond = sync.NewCond(&f.mu)
	f.timer = time.AfterFunc(time.Hour, f.push)
	f.timer.Stop()
	v.mu.Lock()
	defer v.mu.Unlock()
	v.files[h] = f
	if v.paths[p] == nil {
		v.paths[p] = map[*file]struct{}{}
	}
	v.paths[p][f] = struct{}{}
}

func (v *Volume) file(h uint64) *file {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.files[h]
}

// waitPath waits for the writes pending or in flight of every file open on p.
func (v *Volume) waitPath(p string) { v.waitFiles(p, nil) }

// waitFiles waits for the writes pending or in flight of the files open
// on p (f's path, read under v.mu, when f is given), leaving f out.
func (v *Volume) waitFiles(p string, f *file) {
	v.mu.Lock()
	if f != nil {
		p = f.path // renames change it under v.mu
	}
	var fs []*file
	for g := range v.paths[p] {
		if g != f {
			fs = append(fs, g)
		}
	}
	v.mu.Unlock()
	for _, g := range fs {
		g.wait()
	}
}

// waitOthers sends the pending writes of the other handles open on f's
// path and waits for their writes in flight, so that writes reach a file
// in the order they were made, whichever descriptor made them.
func (v *Volume) waitOthers(f *file) { v.waitFiles("", f) }

// Close sends every open file's pending writes, waits for them and for
// those in flight, and releases the handles still open: at a mount's
// end the kernel drops the releases it has not delivered, and with
// flush-behind the writes of a file already closed may be among them. It
// gives up waiting when ctx ends.
func (v *Volume) Close(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		v.mu.Lock()
		hs := make([]uint64, 0, len(v.files))
		for h := range v.files {
			hs = append(hs, h)
		}
		v.mu.Unlock()
		for _, h := range hs {
			_ = v.Release(context.WithoutCancel(ctx), h)
		}
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("write-behind: writes still in flight: %w", ctx.Err())
	}
}

// waitAll waits for every write pending or in flight.
func (v *Volume) waitAll() {
	v.mu.Lock()
	fs := make([]*file, 0, len(v.files))
	for _, f := range v.files {
		fs = append(fs, f)
	}
	v.mu.Unlock()
	for _, f := range fs {
		f.wait()
	}
}

func (v *Volume) Write(ctx context.Context, h uint64, off int64, data []byte) (fop.WriteReply, error) {
	f := v.file(h)
	if f != nil {
		v.waitOthers(f)
	}
	if f == nil || f.through {
		if f != nil {
			if err := f.drain(); err != nil {
				return fop.WriteReply{}, err
			}
			f.mu.Lock()
			f.blind = true
			f.mu.Unlock()
		}
		return v.inner.Write(ctx, h, off, data)
	}
	f.mu.Lock()
	for {
		if f.err != nil {
			err := f.err
			f.err = nil
			f.mu.Unlock()
			return fop.WriteReply{}, err
		}
		if len(f.pend) == 0 || off == f.pendOff+int64(len(f.pend)) && len(f.pend)+len(data) <= Aggregate {
			break // nothing pending, or this write follows on
		}
		// What is pending goes first, on its own. Taking it may wait and
		// let other writes in: look again after.
		if pctx, ps, pbuf, ok := f.takePending(); ok {
			go f.send(pctx, ps, pbuf)
		}
	}
	if len(data) < Aggregate {
		// Held, and answered; the caller's buffer is reused once we
		// answer, so it is copied.
		if len(f.pend) == 0 {
			f.pend = make([]byte, 0, len(data)) // grown by the writes that follow on
			f.pendOff, f.pendCtx = off, context.WithoutCancel(ctx)
			f.timer.Reset(v.delay)
		}
		f.pend = append(f.pend, data...)
		f.mu.Unlock()
		return fop.WriteReply{Written: uint32(len(data))}, nil
	}
	s := f.admitLocked(span{off: off, end: off + int64(len(data))})
	f.mu.Unlock()
	buf := v.copyOf(data)
	go f.send(context.WithoutCancel(ctx), s, buf)
	return fop.WriteReply{Written: uint32(len(data))}, nil
}

// bigWrite is the size of the pooled copies: the mount's largest write.
const bigWrite = 1 << 20

// copyOf returns a copy of data, in a pooled buffer when it is big.
func (v *Volume) copyOf(data []byte) []byte {
	if len(data) < 64<<10 || len(data) > bigWrite {
		return append([]byte(nil), data...)
	}
	var buf []byte
	if bp, ok := v.bufs.Get().(*[]byte); ok {
		buf = (*bp)[:len(data)]
	} else {
		buf = make([]byte, len(data), bigWrite)
	}
	copy(buf, data)
	return buf
}

// release takes back a copy made by copyOf once the layers below are done
// with it.
func (v *Volume) release(buf []byte) {
	if cap(buf) == bigWrite {
		b := buf[:bigWrite]
		v.bufs.Put(&b)
	}
}

func (v *Volume) Read(ctx context.Context, h uint64, off int64, size uint32) ([]byte, error) {
	if f := v.file(h); f != nil {
		v.waitPath(f.path)
	}
	return v.inner.Read(ctx, h, off, size)
}

func (v *Volume) Fsync(ctx context.Context, h uint64, datasync bool) error {
	if f := v.file(h); f != nil {
		v.waitOthers(f) // fsync is the file's, not the descriptor's
		if err := f.drain(); err != nil {
			return err
		}
	}
	return v.inner.Fsync(ctx, h, datasync)
}

// Flush reports what the handle's background writes did, at close.
func (v *Volume) Flush(ctx context.Context, h uint64) error {
	f := v.file(h)
	if f == nil {
		return nil
	}
	if v.FlushBehind && !f.through {
		_, err := f.flushBehind()
		return err
	}
	if err := f.drain(); err != nil {
		return err
	}
	_, _, err := v.settle(ctx, h)
	return err
}

// settle is the layer below's Settle (fop.Settler), with its barrier,
// once the handle's writes are done: at a close that waits for them.
// Without one, the barrier alone.
func (v *Volume) settle(ctx context.Context, h uint64) (fop.Attr, bool, error) {
	if s, ok := v.inner.(fop.Settler); ok {
		return s.Settle(ctx, h)
	}
	return fop.Attr{}, false, v.barrier(ctx, h)
}

// barrier waits for the bricks to have told their other clients of the
// handle's writes made through local descriptors (fop.Barrierer), so that
// a client that opens the file after the close sees them.
func (v *Volume) barrier(ctx context.Context, h uint64) error {
	if b, ok := v.inner.(fop.Barrierer); ok {
		// The data is where it belongs: a brick that cannot be told now
		// (gone, say) is the other clients' loss, not the writer's
		// error; its upcalls were sent with the writes.
		_ = b.Barrier(ctx, h)
	}
	return nil
}

var _ fop.Barrierer = (*Volume)(nil)

// Barrier is the layer below's, once the handle's writes landed.
func (v *Volume) Barrier(ctx context.Context, h uint64) error {
	if f := v.file(h); f != nil {
		if err := f.drain(); err != nil {
			return err
		}
	}
	return v.barrier(ctx, h)
}

// flushBehind starts sending the file's pending writes and returns,
// without waiting, whether any are still pending or in flight and the
// error of one that failed already.
func (f *file) flushBehind() (busy bool, err error) {
	f.mu.Lock()
	err, f.err = f.err, nil
	busy = len(f.pend) > 0 || len(f.inflight) > 0
	pending := len(f.pend) > 0
	f.mu.Unlock()
	if pending {
		go f.push()
	}
	return busy, err
}

// FinalAttrs forwards the layer below's (fop.FinalAttrs).
func (v *Volume) FinalAttrs() fop.Final { return fop.FinalOf(v.inner) }

// FlushAttr is Flush, with the file's attributes after the handle's
// writes when the layers below give final ones (fop.AttrFlusher).
func (v *Volume) FlushAttr(ctx context.Context, h uint64) (fop.Attr, bool, error) {
	f := v.file(h)
	if f == nil {
		return fop.Attr{}, false, nil
	}
	if v.FlushBehind && !f.through {
		// The attributes are known once the writes are done: here only
		// if none are left.
		if busy, err := f.flushBehind(); busy || err != nil {
			return fop.Attr{}, false, err
		}
	} else if err := f.drain(); err != nil {
		return fop.Attr{}, false, err
	} else if a, ok, err := v.settle(ctx, h); err != nil || ok {
		// Settled: the layers below read the file's attributes after
		// everything, as at a release.
		return a, ok, err
	}
	if fop.FinalOf(v.inner)&fop.FinalWrites == 0 {
		return fop.Attr{}, false, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attr, f.attrOK && !f.blind, nil
}

func (v *Volume) Release(ctx context.Context, h uint64) error {
	v.forget(h)
	return v.inner.Release(ctx, h)
}

// ReleaseAttr is Release, with the file's attributes when the layer
// below learns them (fop.ReleaseAttrer).
func (v *Volume) ReleaseAttr(ctx context.Context, h uint64) (fop.Attr, bool, error) {
	failed := v.forget(h) != nil
	if ra, ok := v.inner.(fop.ReleaseAttrer); ok && !failed {
		return ra.ReleaseAttr(ctx, h)
	}
	return fop.Attr{}, false, v.inner.Release(ctx, h)
}

// forget waits for the handle's writes and drops what the layer keeps of
// it; it returns the error of a write that failed.
func (v *Volume) forget(h uint64) error {
	v.mu.Lock()
	f := v.files[h]
	v.mu.Unlock()
	var err error
	if f != nil {
		err = f.drain()
		if err != nil && v.FlushBehind && v.Log != nil {
			// Nobody may be left to tell: the process closed the file
			// before the write was done (flush-behind).
			v.Log.Error("write-behind: a write failed after the file was closed; its data is not on the bricks",
				"path", f.path, "err", err)
		}
		v.mu.Lock()
		delete(v.files, h)
		if set := v.paths[f.path]; set != nil {
			delete(set, f)
			if len(set) == 0 {
				delete(v.paths, f.path)
			}
		}
		v.mu.Unlock()
	}
	return err
}

func (v *Volume) Create(ctx context.Context, req *fop.CreateReq) (fop.OpenReply, error) {
	if req.Flags&syscall.O_TRUNC != 0 {
		// An existing file is truncated.
		defer v.resized(req.Path)
	}
	r, err := v.inner.Create(ctx, req)
	if err == nil {
		v.register(r.Handle, req.Path, req.Flags)
	}
	return r, err
}

func (v *Volume) Open(ctx context.Context, p string, flags uint32) (fop.OpenReply, error) {
	if flags&syscall.O_TRUNC != 0 {
		v.waitPath(p)
		defer v.resized(p)
	}
	r, err := v.inner.Open(ctx, p, flags)
	if err == nil {
		v.register(r.Handle, p, flags)
	}
	return r, err
}

func (v *Volume) Lookup(ctx context.Context, p string) (fop.Entry, error) {
	v.waitPath(p)
	return v.inner.Lookup(ctx, p)
}

func (v *Volume) Getattr(ctx context.Context, p string) (fop.Attr, error) {
	v.waitPath(p)
	return v.inner.Getattr(ctx, p)
}

func (v *Volume) Setattr(ctx context.Context, req *fop.SetattrReq) (fop.Attr, error) {
	v.waitPath(req.Path)
	if req.Valid&fop.SetSize != 0 {
		defer v.resized(req.Path)
	}
	return v.inner.Setattr(ctx, req)
}

// resized records a change of the size of the file open on p made other
// than by its writes: what the writes' replies told of its attributes is
// forgotten, and a write in flight across the change makes its handle
// blind (file.gen).
func (v *Volume) resized(p string) {
	v.mu.Lock()
	var fs []*file
	for f := range v.paths[p] {
		fs = append(fs, f)
	}
	v.mu.Unlock()
	for _, f := range fs {
		f.mu.Lock()
		f.gen++
		f.attrOK = false
		f.mu.Unlock()
	}
}

func (v *Volume) Mkdir(ctx context.Context, req *fop.CreateReq) (fop.Attr, error) {
	return v.inner.Mkdir(ctx, req)
}

func (v *Volume) Mknod(ctx context.Context, req *fop.CreateReq) (fop.Attr, error) {
	return v.inner.Mknod(ctx, req)
}

func (v *Volume) Symlink(ctx context.Context, req *fop.CreateReq) (fop.Attr, error) {
	return v.inner.Symlink(ctx, req)
}

func (v *Volume) Unlink(ctx context.Context, p string) error {
	v.waitPath(p)
	return v.inner.Unlink(ctx, p)
}

func (v *Volume) Rmdir(ctx context.Context, p string) error { return v.inner.Rmdir(ctx, p) }

func (v *Volume) Rename(ctx context.Context, from, to string, flags uint32) error {
	v.waitPath(from)
	v.waitPath(to)
	err := v.inner.Rename(ctx, from, to, flags)
	if err == nil {
		// Files open on the old name are open on the new one.
		v.mu.Lock()
		if set := v.paths[from]; set != nil {
			delete(v.paths, from)
			for f := range set {
				f.path = to
			}
			if v.paths[to] == nil {
				v.paths[to] = set
			} else {
				for f := range set {
					v.paths[to][f] = struct{}{}
				}
			}
		}
		v.mu.Unlock()
	}
	return err
}

func (v *Volume) Link(ctx context.Context, from, to string) (fop.Attr, error) {
	v.waitPath(from)
	return v.inner.Link(ctx, from, to)
}

func (v *Volume) Readlink(ctx context.Context, p string) (string, error) {
	return v.inner.Readlink(ctx, p)
}

func (v *Volume) Readdir(ctx context.Context, p string, pos fop.Pos, max uint32) (fop.ReaddirReply, error) {
	// A listing carries attributes (sizes): let the writes land first.
	v.waitAll()
	return v.inner.Readdir(ctx, p, pos, max)
}

func (v *Volume) Getxattr(ctx context.Context, p, name string) ([]byte, error) {
	return v.inner.Getxattr(ctx, p, name)
}

func (v *Volume) Setxattr(ctx context.Context, p, name string, value []byte, flags uint32) error {
	return v.inner.Setxattr(ctx, p, name, value, flags)
}

func (v *Volume) Listxattr(ctx context.Context, p string) ([]byte, error) {
	return v.inner.Listxattr(ctx, p)
}

func (v *Volume) Removexattr(ctx context.Context, p, name string) error {
	return v.inner.Removexattr(ctx, p, name)
}

func (v *Volume) Statfs(ctx context.Context) (fop.Statfs, error) {
	v.waitAll()
	return v.inner.Statfs(ctx)
}

func (v *Volume) Fgetattr(ctx context.Context, h uint64) (fop.Attr, error) {
	fa, ok := v.inner.(fop.FileAttrer)
	if !ok {
		return fop.Attr{}, syscall.ENOSYS
	}
	if f := v.file(h); f != nil {
		v.waitPath(f.path)
	}
	return fa.Fgetattr(ctx, h)
}

func (v *Volume) Fsetattr(ctx context.Context, h uint64, req *fop.SetattrReq) (fop.Attr, error) {
	fa, ok := v.inner.(fop.FileAttrer)
	if !ok {
		return fop.Attr{}, syscall.ENOSYS
	}
	if f := v.file(h); f != nil {
		v.waitPath(f.path)
		if req.Valid&fop.SetSize != 0 {
			defer v.resized(f.path)
		}
	}
	return fa.Fsetattr(ctx, h, req)
}

func (v *Volume) Getlk(ctx context.Context, h uint64, owner uint64, lk *fop.Lk, flags uint32) (fop.Lk, error) {
	l, ok := v.inner.(fop.Locker)
	if !ok {
		return fop.Lk{}, syscall.ENOSYS
	}
	return l.Getlk(ctx, h, owner, lk, flags)
}

func (v *Volume) Setlk(ctx context.Context, h uint64, owner uint64, lk *fop.Lk, flags uint32) error {
	l, ok := v.inner.(fop.Locker)
	if !ok {
		return syscall.ENOSYS
	}
	// A lock orders this client's writes before another's: land them.
	if f := v.file(h); f != nil {
		v.waitPath(f.path)
	}
	return l.Setlk(ctx, h, owner, lk, flags)
}

func (v *Volume) fileXattrer() (fop.FileXattrer, error) {
	fx, ok := v.inner.(fop.FileXattrer)
	if !ok {
		return nil, syscall.ENOSYS
	}
	return fx, nil
}

func (v *Volume) Fgetxattr(ctx context.Context, h uint64, name string) ([]byte, error) {
	fx, err := v.fileXattrer()
	if err != nil {
		return nil, err
	}
	return fx.Fgetxattr(ctx, h, name)
}

func (v *Volume) Fsetxattr(ctx context.Context, h uint64, name string, value []byte, flags uint32) error {
	fx, err := v.fileXattrer()
	if err != nil {
		return err
	}
	return fx.Fsetxattr(ctx, h, name, value, flags)
}

func (v *Volume) Flistxattr(ctx context.Context, h uint64) ([]byte, error) {
	fx, err := v.fileXattrer()
	if err != nil {
		return nil, err
	}
	return fx.Flistxattr(ctx, h)
}

func (v *Volume) Fremovexattr(ctx context.Context, h uint64, name string) error {
	fx, err := v.fileXattrer()
	if err != nil {
		return err
	}
	return fx.Fremovexattr(ctx, h, name)
}

var _ fop.LocalReader = (*Volume)(nil)

// ReadLocal is the layer below's, once the writes of the file that wait
// here have landed, as Read does (fop.LocalReader).
func (v *Volume) ReadLocal(ctx context.Context, h uint64, buf []byte, off int64) (int, bool) {
	lr, ok := v.inner.(fop.LocalReader)
	if !ok {
		return 0, false
	}
	if f := v.file(h); f != nil {
		v.waitPath(f.path)
	}
	return lr.ReadLocal(ctx, h, buf, off)
}

var _ fop.LocalFDReader = (*Volume)(nil)

// LocalReadFD is the layer below's, once the writes of the file that wait
// here have landed, as ReadLocal (fop.LocalFDReader).
func (v *Volume) LocalReadFD(ctx context.Context, h uint64, off int64, size int) (int, bool) {
	lr, ok := v.inner.(fop.LocalFDReader)
	if !ok {
		return -1, false
	}
	if f := v.file(h); f != nil {
		v.waitPath(f.path)
	}
	return lr.LocalReadFD(ctx, h, off, size)
}

var _ fop.Passthrougher = (*Volume)(nil)

// PassthroughFD is the layer below's, once the writes of the file that
// wait here have landed: the kernel's reads and writes then go around
// this layer (fop.Passthrougher).
func (v *Volume) PassthroughFD(ctx context.Context, h uint64) (int, fop.GFID, bool) {
	pt, ok := v.inner.(fop.Passthrougher)
	if !ok {
		return -1, fop.GFID{}, false
	}
	if f := v.file(h); f != nil {
		v.waitPath(f.path)
	}
	return pt.PassthroughFD(ctx, h)
}

// PassthroughWrote is the layer below's.
func (v *Volume) PassthroughWrote(ctx context.Context, h uint64, gfid fop.GFID, wait bool) error {
	if pt, ok := v.inner.(fop.Passthrougher); ok {
		return pt.PassthroughWrote(ctx, h, gfid, wait)
	}
	return nil
}
