package brick

// The brick's part in replication: changelogs changed atomically
// (xattrop), locks a replicate client and the self-heal take on a file
// (inodelk), and the index of files whose changelog is not zero.
//
// State shared by every connection to the brick lives in a shared value:
// the lock table, and a striped mutex that makes each read-modify-write of
// a changelog atomic. A connection's locks go when it closes, so a client
// that dies never blocks a file.
//
// The index is a directory of the brick's internal directory: one file per
// GFID whose changelog is not zero, holding the path the file had when its
// changelog last changed. The self-heal daemon reads it instead of
// crawling the volume.

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/fop"
)

// indexDir is the index, inside internalDir.
const indexDir = internalDir + "/index"

// maxIndexList bounds the entries one OpIndex returns.
const maxIndexList = 4096

// inodeKey names a file on the brick's file system.
type inodeKey struct{ dev, ino uint64 }

// afrKey names a file's lock of one domain (fop.DomainData,
// fop.DomainMetadata).
type afrKey struct {
	inodeKey
	domain uint8
}

// validDomain checks a lock domain a client named.
func validDomain(d uint8) error {
	if d != fop.DomainData && d != fop.DomainMetadata {
		return unix.EINVAL
	}
	return nil
}

// shared is the state of one brick server, common to its connections.
type shared struct {
	stripes [64]sync.Mutex

	// indexStripes serialize the changes to one GFID's index entry:
	// writing it, removing it, and finding it stale (indexLock).
	indexStripes [64]sync.Mutex

	mu    sync.Mutex
	locks map[afrKey]*inodeLock

	clientLocks clientLocks // fcntl and flock locks of clients (locks.go)

	upcalls upcallers // connections taking cache invalidation events (upcall.go)

	// readBufs keeps read replies' buffers (maxRead bytes) for the next
	// reads (session.readBuf), frameBufs write calls' frames
	// (session.FrameBuf).
	readBufs  bufPool
	frameBufs bufPool

	// uid and gid the brick makes entries with: a new entry that is to
	// be owned by them may be made with its mode (modeAtCreate).
	uid, gid uint32
}

type inodeLock struct {
	shared  int
	excl    bool
	changed chan struct{} // closed and replaced on every release
}

func newShared() *shared {
	return &shared{
		uid:       uint32(os.Geteuid()),
		gid:       uint32(os.Getegid()),
		locks:     map[afrKey]*inodeLock{},
		readBufs:  bufPool{size: maxRead},
		frameBufs: bufPool{size: frameBufCap},
	}
}

func (sh *shared) stripe(k inodeKey) *sync.Mutex {
	return &sh.stripes[(k.ino^k.dev)%uint64(len(sh.stripes))]
}

// indexLock is the lock of g's index entry. It may be taken under a
// stripe lock (addChangelog does), never the other way round.
func (sh *shared) indexLock(g fop.GFID) *sync.Mutex {
	return &sh.indexStripes[int(g[len(g)-1])%len(sh.indexStripes)]
}

// acquire takes a lock on k, waiting (while ctx lasts) for an incompatible
// holder when wait is set.
func (sh *shared) acquire(ctx context.Context, k afrKey, excl, wait bool) error {
	for {
		sh.mu.Lock()
		l := sh.locks[k]
		if l == nil {
			l = &inodeLock{changed: make(chan struct{})}
			sh.locks[k] = l
		}
		if !l.excl && (!excl || l.shared == 0) {
			if excl {
				l.excl = true
			} else {
				l.shared++
			}
			sh.mu.Unlock()
			return nil
		}
		ch := l.changed
		sh.mu.Unlock()
		if !wait {
			return unix.EAGAIN
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return unix.EINTR
		}
	}
}

func (sh *shared) release(k afrKey, excl bool) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	l := sh.locks[k]
	if l == nil {
		return
	}
	if excl {
		l.excl = false
	} else if l.shared > 0 {
		l.shared--
	}
	close(l.changed)
	l.changed = make(chan struct{})
	if !l.excl && l.shared == 0 {
		delete(sh.locks, k)
	}
}

// heldLocks counts a connection's locks per file.
type heldLocks map[afrKey]*[2]int // [shared, exclusive]

func (s *session) hold(k afrKey, excl bool, delta int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.locks == nil {
		s.locks = heldLocks{}
	}
	c := s.locks[k]
	if c == nil {
		c = new([2]int)
		s.locks[k] = c
	}
	i := 0
	if excl {
		i = 1
	}
	if c[i]+delta < 0 {
		return false
	}
	c[i] += delta
	if c[0] == 0 && c[1] == 0 {
		delete(s.locks, k)
	}
	return true
}

// releaseAll drops the connection's locks when it closes.
func (s *session) releaseAll(locks heldLocks) {
	for k, c := range locks {
		for range c[0] {
			s.sh.release(k, false)
		}
		for range c[1] {
			s.sh.release(k, true)
		}
	}
}

func (s *session) lockKey(l loc) (inodeKey, error) {
	var st unix.Stat_t
	if err := l.stat(&st); err != nil {
		return inodeKey{}, err
	}
	return inodeKey{st.Dev, st.Ino}, nil
}

func (s *session) lock(ctx context.Context, k afrKey, excl, wait bool) error {
	if err := s.sh.acquire(ctx, k, excl, wait); err != nil {
		return err
	}
	s.hold(k, excl, 1)
	return nil
}

func (s *session) unlock(k afrKey, excl bool) error {
	if !s.hold(k, excl, -1) {
		return unix.ENOLCK
	}
	s.sh.release(k, excl)
	return nil
}

func (s *session) inodelk(ctx context.Context, req *fop.InodelkReq) (fop.Message, error) {
	if err := validDomain(req.Domain); err != nil {
		return nil, err
	}
	if req.Mode == fop.Unlock {
		if req.Which != fop.LockShared && req.Which != fop.LockExclusive {
			return nil, unix.EINVAL
		}
		excl := req.Which == fop.LockExclusive
		if pl, ok := s.forgetPath(req.Path, excl, req.Domain); ok {
			pl.close()
			return nil, s.unlock(pl.key, excl)
		}
	} else if req.Mode != fop.LockShared && req.Mode != fop.LockExclusive {
		return nil, unix.EINVAL
	}
	l, err := s.resolve(req.Path)
	if err != nil {
		return nil, err
	}
	defer l.close()
	ik, err := s.lockKey(l)
	if err != nil {
		return nil, err
	}
	k := afrKey{ik, req.Domain}
	if req.Mode == fop.Unlock {
		return nil, s.unlock(k, req.Which == fop.LockExclusive)
	}
	excl := req.Mode == fop.LockExclusive
	if err := s.lock(ctx, k, excl, req.Wait); err != nil {
		return nil, err
	}
	s.rememberPath(req.Path, pathLock{key: k, excl: excl, fd: -1})
	return nil, nil
}

// pathLock is a lock a connection took by path: the file locked and,
// for an xattrop's lock, an O_PATH descriptor that reaches its changelog
// at the unlock (-1 for none).
type pathLock struct {
	key  afrKey
	excl bool
	fd   int
}

func (pl pathLock) close() {
	if pl.fd >= 0 {
		unix.Close(pl.fd)
	}
}

func (s *session) rememberPath(p string, pl pathLock) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		pl.close()
		return
	}
	if s.byPath == nil {
		s.byPath = map[string][]pathLock{}
	}
	s.byPath[p] = append(s.byPath[p], pl)
}

// forgetPath takes back the last lock of the kind taken by p. Two locks
// taken by one path on different files (renamed between them) are told
// apart by order only: released in the wrong order, each is still
// released once.
func (s *session) forgetPath(p string, excl bool, domain uint8) (pathLock, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pls := s.byPath[p]
	for i := len(pls) - 1; i >= 0; i-- {
		if pls[i].excl != excl || pls[i].key.domain != domain {
			continue
		}
		pl := pls[i]
		pls = append(pls[:i], pls[i+1:]...)
		if len(pls) == 0 {
			delete(s.byPath, p)
		} else {
			s.byPath[p] = pls
		}
		return pl, true
	}
	return pathLock{}, false
}

// fdChangelog reaches the changelog of the file an O_PATH descriptor
// holds, through its /proc link (which, for a symlink, names the link).
func fdChangelog(fd int) changelogFile {
	p := procFD(fd)
	x := changelogFile{
		get: func(b []byte) (int, error) { return unix.Getxattr(p, fop.ChangelogXattr, b) },
		set: func(v []byte) error { return unix.Setxattr(p, fop.ChangelogXattr, v, 0) },
		del: func() error { return unix.Removexattr(p, fop.ChangelogXattr) },
	}
	var g fop.GFID
	if n, err := unix.Getxattr(p, fop.GFIDXattr, g[:]); err == nil && n == len(g) {
		x.gfid = g
	}
	return x
}

func (s *session) xattrop(ctx context.Context, req *fop.XattropReq) (fop.Message, error) {
	if len(req.Delta)%3 != 0 || (req.Lock != fop.LockNone && req.Lock != fop.LockShared && req.Lock != fop.Unlock) {
		return nil, unix.EINVAL
	}
	if err := validDomain(req.Domain); err != nil {
		return nil, err
	}
	if req.Handle != 0 {
		var out fop.Message
		err := s.use(req.Handle, func(h *handle) error {
			var st unix.Stat_t
			if err := unix.Fstat(h.fd, &st); err != nil {
				return err
			}
			x := changelogFile{
				get:  func(b []byte) (int, error) { return unix.Fgetxattr(h.fd, fop.ChangelogXattr, b) },
				set:  func(v []byte) error { return unix.Fsetxattr(h.fd, fop.ChangelogXattr, v, 0) },
				del:  func() error { return unix.Fremovexattr(h.fd, fop.ChangelogXattr) },
				gfid: h.gfid,
			}
			var err error
			out, err = s.xattropOn(ctx, req, inodeKey{st.Dev, st.Ino}, x)
			return err
		})
		return out, err
	}
	if req.Lock == fop.Unlock {
		// The file locked by this path, wherever it is now.
		if pl, ok := s.forgetPath(req.Path, false, req.Domain); ok {
			defer pl.close()
			if pl.fd >= 0 {
				return s.xattropOn(ctx, req, pl.key.inodeKey, fdChangelog(pl.fd))
			}
			return nil, s.unlock(pl.key, false)
		}
	}
	l, err := s.resolve(req.Path)
	if err != nil {
		return nil, err
	}
	defer l.close()
	if req.Lock == fop.LockShared {
		return s.xattropLock(ctx, req, l)
	}
	k, err := s.lockKey(l)
	if err != nil {
		return nil, err
	}
	x := changelogFile{
		get:  func(b []byte) (int, error) { return l.getxattr(fop.ChangelogXattr, b) },
		set:  func(v []byte) error { return l.setxattr(fop.ChangelogXattr, v, 0) },
		del:  func() error { return l.removexattr(fop.ChangelogXattr) },
		gfid: l.readGFID(),
	}
	return s.xattropOn(ctx, req, k, x)
}

// xattropLock takes the writers' lock on a file named by path and
// changes its changelog, keeping a descriptor of the file for the unlock.
func (s *session) xattropLock(ctx context.Context, req *fop.XattropReq, l loc) (fop.Message, error) {
	var fd int
	var err error
	if l.isRoot() {
		fd, err = unix.Openat(l.dir, ".", unix.O_PATH|unix.O_CLOEXEC, 0)
	} else {
		fd, err = unix.Openat(l.dir, l.name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, err
	}
	k := inodeKey{st.Dev, st.Ino}
	out, err := s.xattropOn(ctx, req, k, fdChangelog(fd))
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	s.rememberPath(req.Path, pathLock{key: afrKey{k, req.Domain}, fd: fd})
	return out, nil
}

// changelogFile reaches one file's changelog, by name or by descriptor.
type changelogFile struct {
	get  func([]byte) (int, error)
	set  func([]byte) error
	del  func() error
	gfid fop.GFID
}

func (s *session) xattropOn(ctx context.Context, req *fop.XattropReq, k inodeKey, x changelogFile) (fop.Message, error) {
	lk := afrKey{k, req.Domain}
	if req.Lock == fop.LockShared {
		if err := s.lock(ctx, lk, false, true); err != nil {
			return nil, err
		}
	}
	counters, err := s.addChangelog(x, k, req.Path, req.Delta)
	if req.Lock == fop.Unlock {
		if uerr := s.unlock(lk, false); err == nil {
			err = uerr
		}
	}
	if err != nil {
		if req.Lock == fop.LockShared {
			_ = s.unlock(lk, false)
		}
		return nil, err
	}
	return &fop.Changelog{Counters: counters}, nil
}

// addChangelog adds delta to the file's changelog under the file's
// stripe lock and keeps the index in step.
func (s *session) addChangelog(x changelogFile, k inodeKey, p string, delta []int32) ([]int32, error) {
	mu := s.sh.stripe(k)
	mu.Lock()
	defer mu.Unlock()
	raw, err := optionalXattr(x.get)
	if err != nil {
		return nil, err
	}
	cur, err := fop.DecodeChangelog(raw)
	if err != nil {
		s.log.Warn("brick: malformed changelog replaced", "path", p, "len", len(raw))
		cur = nil
	}
	if len(delta) == 0 {
		return cur, nil
	}
	if len(delta) > len(cur) {
		cur = append(cur, make([]int32, len(delta)-len(cur))...)
	}
	zero := true
	for i := range cur {
		if i < len(delta) {
			cur[i] = max(cur[i]+delta[i], 0)
		}
		if cur[i] != 0 {
			zero = false
		}
	}
	if zero {
		if err := x.del(); err != nil && !errors.Is(err, unix.ENODATA) {
			return nil, err
		}
		s.unindex(x.gfid)
		return cur, nil
	}
	if err := x.set(fop.EncodeChangelog(storedChangelog(cur))); err != nil {
		return nil, err
	}
	s.index(x.gfid, p)
	return cur, nil
}

// storedChangelog is the part of changelog c a brick stores: without its
// trailing triples of zeros, which a reader takes as zeros anyway. A
// write in flight on a healthy set counts in the first triple only (12
// bytes): stored whole, a Replica 2 changelog is 36 bytes and Replica
// 3's 48, and with the file's GFID that is more than ext4's 256-byte
// inodes keep inside them (the two fit up to a 20-byte changelog). Past
// that the file system moves the attributes to a block of their own,
// allocated when a write marks the file and freed when it is done: 78 µs
// for the removal alone on this machine's ext4, against 1 µs inside the
// inode.
func storedChangelog(c []int32) []int32 {
	n := len(c) - len(c)%3
	for n >= 3 && c[n-3] == 0 && c[n-2] == 0 && c[n-1] == 0 {
		n -= 3
	}
	return c[:n]
}

func (s *session) index(g fop.GFID, p string) {
	if g.IsZero() {
		return
	}
	mu := s.sh.indexLock(g)
	mu.Lock()
	defer mu.Unlock()
	if err := unix.Mkdirat(s.rootFD, internalDir, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		s.log.Warn("brick: cannot make the index", "err", err)
		return
	}
	if err := unix.Mkdirat(s.rootFD, indexDir, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		s.log.Warn("brick: cannot make the index", "err", err)
		return
	}
	fd, err := unix.Openat(s.rootFD, indexDir+"/"+g.Hex(), unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		s.log.Warn("brick: cannot index a file", "path", p, "err", err)
		return
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte(p)); err != nil {
		s.log.Warn("brick: cannot index a file", "path", p, "err", err)
	}
}

func (s *session) unindex(g fop.GFID) {
	if g.IsZero() {
		return
	}
	mu := s.sh.indexLock(g)
	mu.Lock()
	defer mu.Unlock()
	if err := unix.Unlinkat(s.rootFD, indexDir+"/"+g.Hex(), 0); err != nil && !errors.Is(err, unix.ENOENT) {
		s.log.Warn("brick: cannot drop an index entry", "gfid", g.String(), "err", err)
	}
}

// indexedPath reads the path index entry name (a GFID in hex) records,
// "" if it has none.
func indexedPath(indexFD int, name string) string {
	fd, err := unix.Openat(indexFD, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return ""
	}
	defer unix.Close(fd)
	buf := make([]byte, 4096)
	n, _ := unix.Read(fd, buf)
	if n <= 0 {
		return ""
	}
	return string(buf[:n])
}

// staleIndex reports whether the index entry of g, which names p, names
// nothing left to heal: p is gone, is another file, or is g's file with a
// clear changelog. An entry outlives its file when the file is removed
// while marked (after a writer died, say), and the crawl would try it
// every round for ever. Where it cannot tell (p is a file without an
// identity yet, or an error other than a missing name), the entry stays.
// The caller holds g's index lock: a writer that marks the file meanwhile
// writes the entry again once it has the lock.
func (s *session) staleIndex(g fop.GFID, p string) bool {
	gone := func(err error) bool { return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) }
	l, err := s.resolve(p)
	if err != nil {
		return gone(err)
	}
	defer l.close()
	var cur fop.GFID
	n, err := l.getxattr(fop.GFIDXattr, cur[:])
	switch {
	case gone(err):
		return true
	case err != nil || n != len(cur):
		return false
	case cur != g:
		return true
	}
	raw, err := optionalXattr(func(b []byte) (int, error) { return l.getxattr(fop.ChangelogXattr, b) })
	if err != nil {
		return false
	}
	cl, err := fop.DecodeChangelog(raw)
	if err != nil {
		return false
	}
	for _, c := range cl {
		if c != 0 {
			return false
		}
	}
	return true
}

func (s *session) indexList(*fop.PathReq) (fop.Message, error) {
	fd, err := unix.Openat(s.rootFD, indexDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return &fop.IndexReply{}, nil
	}
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), indexDir)
	defer f.Close()
	names, err := f.Readdirnames(maxIndexList)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	out := &fop.IndexReply{}
	dropped := 0
	for _, n := range names {
		b, err := hex.DecodeString(n)
		if err != nil || len(b) != 16 {
			continue
		}
		var e fop.IndexEntry
		copy(e.GFID[:], b)
		mu := s.sh.indexLock(e.GFID)
		mu.Lock()
		e.Path = indexedPath(fd, n)
		stale := e.Path != "" && s.staleIndex(e.GFID, e.Path)
		if stale {
			if err := unix.Unlinkat(fd, n, 0); err == nil {
				dropped++
			}
		}
		mu.Unlock()
		if !stale {
			out.Entries = append(out.Entries, e)
		}
	}
	if dropped > 0 {
		s.log.Info("brick: dropped index entries of files gone or healed", "entries", dropped)
	}
	return out, nil
}

// writeDirty is a writer's first write: the shared lock and the dirty
// mark, then the data, in one call.
func (s *session) writeDirty(ctx context.Context, req *fop.WriteDirtyReq) (fop.Message, error) {
	if req.Offset < 0 || len(req.Delta)%3 != 0 {
		return nil, unix.EINVAL
	}
	var rep fop.WriteReply
	err := s.use(req.Handle, func(h *handle) error {
		var st unix.Stat_t
		if err := unix.Fstat(h.fd, &st); err != nil {
			return err
		}
		k := inodeKey{st.Dev, st.Ino}
		if err := s.lock(ctx, afrKey{k, fop.DomainData}, false, true); err != nil {
			return err
		}
		x := changelogFile{
			get:  func(b []byte) (int, error) { return unix.Fgetxattr(h.fd, fop.ChangelogXattr, b) },
			set:  func(v []byte) error { return unix.Fsetxattr(h.fd, fop.ChangelogXattr, v, 0) },
			del:  func() error { return unix.Fremovexattr(h.fd, fop.ChangelogXattr) },
			gfid: h.gfid,
		}
		if _, err := s.addChangelog(x, k, req.Path, req.Delta); err != nil {
			_ = s.unlock(afrKey{k, fop.DomainData}, false)
			return err
		}
		var err error
		rep, err = writeAt(h, req.Offset, req.Data)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &rep, nil
}
