package brick

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/fop"
)

// The lock table's ranges: an owner's locks merge and split; other
// owners conflict where ranges overlap and one of them writes.
func TestClientLockRanges(t *testing.T) {
	var tab clientLocks
	k := inodeKey{dev: 1, ino: 2}
	s1, s2 := &session{}, &session{}
	lk := func(typ uint32, start, end uint64) fop.Lk { return fop.Lk{Type: typ, Start: start, End: end, Pid: 7} }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(tab.setlk(k, s1, 1, 1, lk(fop.LockWrite, 100, 199), false))
	must(tab.setlk(k, s1, 1, 1, lk(fop.LockWrite, 200, 299), false)) // merges
	if got := tab.files[k].posix; len(got) != 1 || got[0].Start != 100 || got[0].End != 299 {
		t.Fatalf("merged: %+v", got)
	}
	for _, c := range []struct {
		s     *session
		owner uint64
		lk    fop.Lk
		want  error
	}{
		{s2, 1, lk(fop.LockRead, 299, 299), unix.EAGAIN}, // same owner number, other connection
		{s1, 2, lk(fop.LockRead, 0, fop.LkEOF), unix.EAGAIN},
		{s1, 2, lk(fop.LockWrite, 0, 99), nil},
		{s1, 2, lk(fop.LockWrite, 300, 300), nil},
		{s1, 1, lk(fop.LockRead, 150, 150), nil}, // the owner itself: a change
	} {
		if err := tab.setlk(k, c.s, c.owner, 1, c.lk, false); !errors.Is(err, c.want) && err != c.want {
			t.Errorf("%+v: %v, want %v", c, err, c.want)
		}
	}
	// Owner 1 now holds write 100-149, read 150, write 151-299.
	if g := tab.getlk(k, s2, 9, lk(fop.LockRead, 150, 150), false); g.Type != fop.LockUnlock {
		t.Errorf("a reader conflicts with a read lock: %+v", g)
	}
	if g := tab.getlk(k, s2, 9, lk(fop.LockWrite, 0, fop.LkEOF), false); g.Type != fop.LockWrite || g.Pid != 7 {
		t.Errorf("getlk: %+v", g)
	}
	must(tab.setlk(k, s1, 1, 1, lk(fop.LockUnlock, 0, fop.LkEOF), false))
	must(tab.setlk(k, s1, 2, 1, lk(fop.LockUnlock, 0, fop.LkEOF), false))
	if len(tab.files) != 0 {
		t.Fatalf("a file without locks is remembered: %+v", tab.files)
	}
	// flock locks are whole-file and independent of POSIX locks.
	must(tab.setlk(k, s1, 5, 1, lk(fop.LockWrite, 0, 0), false))
	must(tab.setlk(k, s2, 6, 1, lk(fop.LockRead, 0, 0), true))
	if err := tab.setlk(k, s1, 5, 1, lk(fop.LockWrite, 0, 0), true); err != unix.EAGAIN {
		t.Errorf("flock over another's shared flock: %v", err)
	}
	tab.drop(func(l *heldLock) bool { return l.s == s2 })
	must(tab.setlk(k, s1, 5, 1, lk(fop.LockWrite, 0, 0), true))
}

// Locks are seen by every connection of the brick and go when the
// connection that holds them ends, or the handle they were taken through
// is released, or the process closes any descriptor (LkPid).
func TestClientLocksAcrossConnections(t *testing.T) {
	_, cls, raws := afrBrick(t, 3)
	ctx := context.Background()
	var h [3]uint64
	for i, c := range cls {
		var r fop.OpenReply
		var err error
		if i == 0 {
			r, err = c.Create(ctx, &fop.CreateReq{Path: "f", Mode: unix.S_IFREG | 0o644, GFID: fop.NewGFID(), Flags: unix.O_RDWR})
		} else {
			r, err = c.Open(ctx, "f", unix.O_RDWR)
		}
		if err != nil {
			t.Fatal(err)
		}
		h[i] = r.Handle
	}
	whole := fop.Lk{Type: fop.LockWrite, Start: 0, End: fop.LkEOF, Pid: 42}
	if err := cls[0].Setlk(ctx, h[0], 1, &whole, 0); err != nil {
		t.Fatal(err)
	}
	if err := cls[1].Setlk(ctx, h[1], 1, &whole, 0); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("second connection: %v, want EAGAIN", err)
	}
	if g, err := cls[2].Getlk(ctx, h[2], 1, &whole, 0); err != nil || g.Type != fop.LockWrite || g.Pid != 42 {
		t.Fatalf("getlk: %+v %v", g, err)
	}
	// A close by the holding process drops it.
	byPid := fop.Lk{Type: fop.LockUnlock, End: fop.LkEOF, Pid: 42}
	if err := cls[0].Setlk(ctx, h[0], 0, &byPid, fop.LkPid); err != nil {
		t.Fatal(err)
	}
	if err := cls[1].Setlk(ctx, h[1], 1, &whole, 0); err != nil {
		t.Fatalf("after the holder's close: %v", err)
	}
	// The connection's end drops its locks.
	raws[1].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := cls[2].Setlk(ctx, h[2], 1, &whole, 0)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EAGAIN) || time.Now().After(deadline) {
			t.Fatalf("lock of a closed connection still held: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Releasing the handle drops the locks taken through it.
	if err := cls[2].Release(ctx, h[2]); err != nil {
		t.Fatal(err)
	}
	if err := cls[0].Setlk(ctx, h[0], 1, &whole, 0); err != nil {
		t.Fatalf("after the holder's handle was released: %v", err)
	}
	if err := cls[0].Setlk(ctx, h[0], 1, &fop.Lk{Type: 9}, 0); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("bad lock type: %v", err)
	}
}
