package mount

import (
	"bufio"
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/cais-platform/cais/fop"
)

// File locks (fcntl and flock) go to the brick that holds the file, so
// every mount of the volume sees them; the mount must be made with
// fuse.MountOptions.EnableLocks for the kernel to send them.

var (
	_ fs.FileGetlker  = (*file)(nil)
	_ fs.FileSetlker  = (*file)(nil)
	_ fs.FileSetlkwer = (*file)(nil)
)

// offsetMax is the kernel's end of a lock that reaches the end of any
// file (OFFSET_MAX).
const offsetMax = 1<<63 - 1

func toLk(lk *fuse.FileLock) fop.Lk {
	out := fop.Lk{Start: lk.Start, End: lk.End, Type: lk.Typ, Pid: lk.Pid}
	if out.End >= offsetMax {
		out.End = fop.LkEOF
	}
	return out
}

func lkFlags(flags uint32) uint32 {
	if flags&fuse.FUSE_LK_FLOCK != 0 {
		return fop.LkFlock
	}
	return 0
}

func (f *file) locker() (fop.Locker, syscall.Errno) {
	l, ok := f.vol.(fop.Locker)
	if !ok {
		return nil, syscall.ENOTSUP
	}
	return l, 0
}

func (f *file) Getlk(ctx context.Context, owner uint64, lk *fuse.FileLock, flags uint32, out *fuse.FileLock) syscall.Errno {
	l, e := f.locker()
	if e != 0 {
		return e
	}
	in := toLk(lk)
	h, e := f.handle(ctx)
	if e != 0 {
		return e
	}
	got, err := l.Getlk(uninterrupted(ctx), h, owner, &in, lkFlags(flags))
	if err != nil {
		return errno(err)
	}
	out.Start, out.End, out.Typ, out.Pid = got.Start, got.End, got.Type, got.Pid
	if out.End == fop.LkEOF {
		out.End = offsetMax
	}
	return 0
}

func (f *file) Setlk(ctx context.Context, owner uint64, lk *fuse.FileLock, flags uint32) syscall.Errno {
	l, e := f.locker()
	if e != 0 {
		return e
	}
	in := toLk(lk)
	if in.Type != fop.LockUnlock {
		f.n.locked.Store(true)
	}
	f.settle(true)
	f.n.tellLocked(ctx)
	h, e := f.handle(ctx)
	if e != 0 {
		return e
	}
	return errno(l.Setlk(uninterrupted(ctx), h, owner, &in, lkFlags(flags)))
}

// tellLocked sends the bricks' other clients notice of the kernel's
// writes to a passed-through file before a lock changes hands: a process
// that takes the lock next on another mount reads what was written under
// it (not at the next tick).
func (n *node) tellLocked(ctx context.Context) {
	if pt := n.passthrough(); pt != nil {
		pt.tell(uninterrupted(ctx), true)
	}
}

// Setlkw waits for a lock by asking again, ever less often, until it is
// granted or the kernel interrupts the wait (a signal: the kernel restarts
// the call when the signal's handler asks for it). The brick never waits
// on a client's behalf, so a wait given up leaves nothing behind.
func (f *file) Setlkw(ctx context.Context, owner uint64, lk *fuse.FileLock, flags uint32) syscall.Errno {
	l, e := f.locker()
	if e != 0 {
		return e
	}
	in := toLk(lk)
	if in.Type != fop.LockUnlock {
		f.n.locked.Store(true)
	}
	f.settle(true)
	f.n.tellLocked(ctx)
	delay := time.Millisecond
	for {
		h, e := f.handle(ctx)
		if e != 0 {
			return e
		}
		err := l.Setlk(uninterrupted(ctx), h, owner, &in, lkFlags(flags))
		if !errors.Is(err, syscall.EAGAIN) {
			return errno(err)
		}
		select {
		case <-ctx.Done():
			return syscall.EINTR
		case <-time.After(delay):
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
}

// Flush reports a failed write the layers answered early (write-behind),
// and drops the closing process's POSIX locks on the file: closing any
// descriptor of a file releases the locks the process holds on it.
func (f *file) Flush(ctx context.Context) syscall.Errno {
	f.settle(true)
	if pt := f.n.passthrough(); pt != nil {
		pt.tell(uninterrupted(ctx), true) // the other clients see the writes after the close
	} else {
		f.mayHaveWritten(uninterrupted(ctx))
	}
	h, opened := f.openedHandle()
	if !opened {
		return f.unlockOnClose(ctx) // a deferred open never made: nothing written
	}
	if af, ok := f.vol.(fop.AttrFlusher); ok && f.n.cache != nil {
		a, known, err := af.FlushAttr(uninterrupted(ctx), h)
		if err != nil {
			f.unlockOnClose(ctx)
			return errno(err)
		}
		if known {
			f.n.closedWith(a, f.wrote.Load())
		}
		return f.unlockOnClose(ctx)
	}
	if fl, ok := f.vol.(fop.Flusher); ok {
		if err := fl.Flush(uninterrupted(ctx), h); err != nil {
			f.unlockOnClose(ctx)
			return errno(err)
		}
	} else {
		// Without write-behind (which waits for the bricks' notices of
		// the handle's local writes at its flush, and settles the
		// handle) the close does both here.
		if s, ok := f.vol.(fop.Settler); ok {
			inv := f.wrote.Load()
			if a, known, err := s.Settle(uninterrupted(ctx), h); err == nil && known && f.n.cache != nil {
				f.n.closedWith(a, inv)
			}
		} else if b, ok := f.vol.(fop.Barrierer); ok {
			_ = b.Barrier(uninterrupted(ctx), h)
		}
	}
	return f.unlockOnClose(ctx)
}

func (f *file) unlockOnClose(ctx context.Context) syscall.Errno {
	if !f.n.locked.Load() {
		return 0
	}
	l, e := f.locker()
	if e != 0 {
		return 0
	}
	c, ok := fuse.FromContext(ctx)
	if !ok {
		return 0
	}
	pid, ok := tgid(c.Pid)
	if !ok {
		return 0
	}
	h, e := f.handle(ctx)
	if e != 0 {
		return 0
	}
	lk := fop.Lk{Start: 0, End: fop.LkEOF, Type: fop.LockUnlock, Pid: pid}
	return errno(l.Setlk(uninterrupted(ctx), h, 0, &lk, fop.LkPid))
}

// tgid returns the process of thread tid (the kernel names the thread
// that closes a file; locks name the process).
func tgid(tid uint32) (uint32, bool) {
	fh, err := os.Open("/proc/" + strconv.FormatUint(uint64(tid), 10) + "/status")
	if err != nil {
		return 0, false
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Tgid:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			return uint32(n), err == nil
		}
	}
	return 0, false
}
