package brick

// Client file locks: POSIX record locks and flock locks, kept per file
// (device and inode) in a table the brick's connections share. A lock's
// owner is the client's lock owner on the connection that took it, so
// owners of two mounts never merge; a connection's locks go when it ends,
// and the locks taken through a handle when the handle is released.

import (
	"sync"

	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/fop"
)

// clientLocks is the lock table of one brick server.
type clientLocks struct {
	mu    sync.Mutex
	files map[inodeKey]*fileLocks
}

type fileLocks struct {
	posix []heldLock
	flock []heldLock // whole-file: Start 0, End LkEOF
}

// heldLock is one lock: a range of one owner on one connection.
type heldLock struct {
	s      *session
	owner  uint64
	handle uint64 // the handle it was taken through
	fop.Lk
}

func (l *heldLock) sameOwner(s *session, owner uint64) bool { return l.s == s && l.owner == owner }

func overlaps(a, b *fop.Lk) bool { return a.Start <= b.End && b.Start <= a.End }

// conflicts reports whether lock l of another owner stands in the way of
// lk.
func conflicts(l *heldLock, lk *fop.Lk) bool {
	return overlaps(&l.Lk, lk) && (l.Type == fop.LockWrite || lk.Type == fop.LockWrite)
}

func (t *clientLocks) file(k inodeKey) *fileLocks {
	if t.files == nil {
		t.files = map[inodeKey]*fileLocks{}
	}
	f := t.files[k]
	if f == nil {
		f = &fileLocks{}
		t.files[k] = f
	}
	return f
}

// tidy forgets a file without locks.
func (t *clientLocks) tidy(k inodeKey) {
	if f := t.files[k]; f != nil && len(f.posix) == 0 && len(f.flock) == 0 {
		delete(t.files, k)
	}
}

// getlk returns the first lock that conflicts with lk for owner, or an
// unlock when none does.
func (t *clientLocks) getlk(k inodeKey, s *session, owner uint64, lk fop.Lk, flock bool) fop.Lk {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.files[k]
	if f != nil {
		list := f.posix
		if flock {
			list = f.flock
			lk.Start, lk.End = 0, fop.LkEOF
		}
		for i := range list {
			if l := &list[i]; !l.sameOwner(s, owner) && conflicts(l, &lk) {
				return l.Lk
			}
		}
	}
	return fop.Lk{Type: fop.LockUnlock, Start: lk.Start, End: lk.End}
}

// setlk takes, changes or drops owner's lock lk, or fails with EAGAIN.
func (t *clientLocks) setlk(k inodeKey, s *session, owner, handle uint64, lk fop.Lk, flock bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.file(k)
	defer t.tidy(k)
	list := &f.posix
	if flock {
		list = &f.flock
		lk.Start, lk.End = 0, fop.LkEOF
	}
	if lk.Type != fop.LockUnlock {
		for i := range *list {
			if l := &(*list)[i]; !l.sameOwner(s, owner) && conflicts(l, &lk) {
				return unix.EAGAIN
			}
		}
	}
	*list = carve(*list, func(l *heldLock) bool { return l.sameOwner(s, owner) }, lk.Start, lk.End)
	if lk.Type == fop.LockUnlock {
		return nil
	}
	// Merge with the owner's locks of the same type that touch the range.
	out := (*list)[:0]
	for _, l := range *list {
		if l.sameOwner(s, owner) && l.Type == lk.Type && touches(&l.Lk, &lk) {
			lk.Start, lk.End = min(lk.Start, l.Start), max(lk.End, l.End)
			continue
		}
		out = append(out, l)
	}
	*list = append(out, heldLock{s: s, owner: owner, handle: handle, Lk: lk})
	return nil
}

// touches reports whether two ranges overlap or are adjacent.
func touches(a, b *fop.Lk) bool {
	return overlaps(a, b) || (a.End != fop.LkEOF && a.End+1 == b.Start) || (b.End != fop.LkEOF && b.End+1 == a.Start)
}

// carve removes [start, end] from the locks match selects, splitting
// those that reach past it.
func carve(list []heldLock, match func(*heldLock) bool, start, end uint64) []heldLock {
	out := make([]heldLock, 0, len(list)+1)
	for _, l := range list {
		if !match(&l) || l.End < start || l.Start > end {
			out = append(out, l)
			continue
		}
		if l.Start < start {
			left := l
			left.End = start - 1
			out = append(out, left)
		}
		if end != fop.LkEOF && l.End > end {
			right := l
			right.Start = end + 1
			out = append(out, right)
		}
	}
	return out
}

// drop removes the locks match selects, on every file.
func (t *clientLocks) drop(match func(*heldLock) bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, f := range t.files {
		f.posix = carve(f.posix, match, 0, fop.LkEOF)
		f.flock = carve(f.flock, match, 0, fop.LkEOF)
		t.tidy(k)
	}
}

// dropPid removes the POSIX locks on file k that process pid holds
// through session s.
func (t *clientLocks) dropPid(k inodeKey, s *session, pid uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f := t.files[k]; f != nil {
		f.posix = carve(f.posix, func(l *heldLock) bool { return l.s == s && l.Pid == pid }, 0, fop.LkEOF)
		t.tidy(k)
	}
}

// Session side.

func checkLk(req *fop.LkReq) error {
	lk := &req.Lk
	if lk.Start > lk.End || (lk.Type != fop.LockRead && lk.Type != fop.LockWrite && lk.Type != fop.LockUnlock) ||
		req.Flags&^(fop.LkFlock|fop.LkPid) != 0 {
		return unix.EINVAL
	}
	return nil
}

// handleKey returns the file an open handle names.
func handleKey(h *handle) (inodeKey, error) {
	var st unix.Stat_t
	if err := unix.Fstat(h.fd, &st); err != nil {
		return inodeKey{}, err
	}
	return inodeKey{dev: st.Dev, ino: st.Ino}, nil
}

func (s *session) getlk(req *fop.LkReq) (fop.Message, error) {
	if err := checkLk(req); err != nil {
		return nil, err
	}
	var out fop.Lk
	err := s.use(req.Handle, func(h *handle) error {
		k, err := handleKey(h)
		if err != nil {
			return err
		}
		out = s.sh.clientLocks.getlk(k, s, req.Owner, req.Lk, req.Flags&fop.LkFlock != 0)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

func (s *session) setlk(req *fop.LkReq) (fop.Message, error) {
	if err := checkLk(req); err != nil {
		return nil, err
	}
	return nil, s.use(req.Handle, func(h *handle) error {
		k, err := handleKey(h)
		if err != nil {
			return err
		}
		if req.Flags&fop.LkPid != 0 {
			if req.Lk.Type != fop.LockUnlock || req.Flags&fop.LkFlock != 0 {
				return unix.EINVAL
			}
			s.sh.clientLocks.dropPid(k, s, req.Lk.Pid)
			return nil
		}
		return s.sh.clientLocks.setlk(k, s, req.Owner, req.Handle, req.Lk, req.Flags&fop.LkFlock != 0)
	})
}

// dropHandleLocks and dropSessionLocks release what a handle or a whole
// connection held.
func (s *session) dropHandleLocks(id uint64) {
	s.sh.clientLocks.drop(func(l *heldLock) bool { return l.s == s && l.handle == id })
}

func (s *session) dropSessionLocks() {
	s.sh.clientLocks.drop(func(l *heldLock) bool { return l.s == s })
}
