package mount

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/fop"
)

// ptVol is a volume whose files are a directory's, all on a "local
// brick" that hands out their descriptors (fop.Passthrougher), for the
// mount's passthrough bookkeeping to be tested through go-fuse's own
// bridge without a kernel.
type ptVol struct {
	fop.Volume // nil: a call the tests do not expect panics
	dir        string

	mu     sync.Mutex
	next   uint64
	files  map[uint64]*os.File
	paths  map[uint64]string
	remote map[string]bool          // PassthroughFD refuses (a brick elsewhere)
	slow   map[string]chan struct{} // PassthroughFD waits for a close
	// release, when set, runs at the start of each Release.
	release func(h uint64)
	fds     int          // PassthroughFD calls
	wrote   []ptWroteArg // PassthroughWrote calls
}

type ptWroteArg struct {
	h    uint64
	wait bool
}

func newPtVol(t *testing.T) *ptVol {
	return &ptVol{dir: t.TempDir(), files: map[uint64]*os.File{}, paths: map[uint64]string{},
		remote: map[string]bool{}, slow: map[string]chan struct{}{}}
}

func (v *ptVol) open(p string, flags int, gfid fop.GFID) (fop.OpenReply, error) {
	f, err := os.OpenFile(filepath.Join(v.dir, p), flags|os.O_RDWR, 0o644)
	if err != nil {
		return fop.OpenReply{}, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return fop.OpenReply{}, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.next++
	v.files[v.next] = f
	v.paths[v.next] = p
	return fop.OpenReply{Handle: v.next, Attr: fop.AttrOf(&st, gfid)}, nil
}

func (v *ptVol) Create(ctx context.Context, req *fop.CreateReq) (fop.OpenReply, error) {
	return v.open(req.Path, os.O_CREATE, req.GFID)
}

func (v *ptVol) Open(ctx context.Context, p string, flags uint32) (fop.OpenReply, error) {
	return v.open(p, 0, fop.GFID{1})
}

func (v *ptVol) file(h uint64) (*os.File, string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.files[h], v.paths[h]
}

func (v *ptVol) Write(ctx context.Context, h uint64, off int64, data []byte) (fop.WriteReply, error) {
	f, _ := v.file(h)
	n, err := f.WriteAt(data, off)
	return fop.WriteReply{Written: uint32(n)}, err
}

func (v *ptVol) Fsync(ctx context.Context, h uint64, datasync bool) error { return nil }

func (v *ptVol) Release(ctx context.Context, h uint64) error {
	v.mu.Lock()
	hook := v.release
	v.mu.Unlock()
	if hook != nil {
		hook(h)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	f := v.files[h]
	delete(v.files, h)
	return f.Close()
}

func (v *ptVol) PassthroughFD(ctx context.Context, h uint64) (int, fop.GFID, bool) {
	f, p := v.file(h)
	v.mu.Lock()
	v.fds++
	slow, remote := v.slow[p], v.remote[p]
	v.mu.Unlock()
	if slow != nil {
		select {
		case <-slow:
		case <-ctx.Done():
			return -1, fop.GFID{}, false
		}
	}
	if remote || f == nil {
		return -1, fop.GFID{}, false
	}
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, fop.GFID{}, false
	}
	return fd, fop.GFID{1}, true
}

func (v *ptVol) PassthroughWrote(ctx context.Context, h uint64, gfid fop.GFID, wait bool) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.wrote = append(v.wrote, ptWroteArg{h, wait})
	return nil
}

func (v *ptVol) counts() (fds int, wrote []ptWroteArg) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.fds, append([]ptWroteArg(nil), v.wrote...)
}

// ptKernel stands in for the kernel's side of go-fuse's server: the
// notifications succeed, and backing files are registered (or refused,
// with fail) and counted.
type ptKernel struct {
	mu         sync.Mutex
	fail       bool
	registered map[int32]bool
	next       int32
}

func (k *ptKernel) DeleteNotify(parent, child uint64, name string) fuse.Status { return fuse.OK }
func (k *ptKernel) EntryNotify(parent uint64, name string) fuse.Status         { return fuse.OK }
func (k *ptKernel) InodeNotify(node uint64, off, length int64) fuse.Status     { return fuse.OK }
func (k *ptKernel) InodeRetrieveCache(node uint64, off int64, dest []byte) (int, fuse.Status) {
	return 0, fuse.ENOSYS
}
func (k *ptKernel) InodeNotifyStoreCache(node uint64, off int64, data []byte) fuse.Status {
	return fuse.OK
}

func (k *ptKernel) RegisterBackingFd(m *fuse.BackingMap) (int32, syscall.Errno) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fail {
		return 0, syscall.EPERM
	}
	if k.registered == nil {
		k.registered = map[int32]bool{}
	}
	k.next++
	k.registered[k.next] = true
	return k.next, 0
}

func (k *ptKernel) UnregisterBackingFd(id int32) syscall.Errno {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.registered, id)
	return 0
}

// ptMount is a passthrough mount of a ptVol, driven through go-fuse's
// raw file system as the kernel would.
type ptMount struct {
	t    *testing.T
	vol  *ptVol
	k    *ptKernel
	root *node
	raw  fuse.RawFileSystem
}

func newPtMount(t *testing.T) *ptMount {
	m := &ptMount{t: t, vol: newPtVol(t), k: &ptKernel{}}
	m.root = Root(m.vol, Options{Passthrough: true}).(*node)
	m.raw = fs.NewNodeFS(m.root, &fs.Options{ServerCallbacks: m.k})
	return m
}

// ptOpen is an open file of a ptMount.
type ptOpen struct {
	id, fh uint64
	flags  uint32 // go-fuse's open flags (FOPEN_PASSTHROUGH)
}

func (m *ptMount) create(name string) ptOpen {
	m.t.Helper()
	in := &fuse.CreateIn{InHeader: fuse.InHeader{NodeId: fuse.FUSE_ROOT_ID}, Flags: syscall.O_RDWR | syscall.O_CREAT, Mode: 0o644}
	var out fuse.CreateOut
	if st := m.raw.Create(nil, in, name, &out); st != fuse.OK {
		m.t.Fatalf("create %s: %v", name, st)
	}
	return ptOpen{id: out.NodeId, fh: out.Fh, flags: out.OpenFlags}
}

func (m *ptMount) open(id uint64, flags uint32) ptOpen {
	m.t.Helper()
	in := &fuse.OpenIn{InHeader: fuse.InHeader{NodeId: id}, Flags: flags}
	var out fuse.OpenOut
	if st := m.raw.Open(nil, in, &out); st != fuse.OK {
		m.t.Fatalf("open %d: %v", id, st)
	}
	return ptOpen{id: id, fh: out.Fh, flags: out.OpenFlags}
}

func (m *ptMount) flush(o ptOpen) {
	m.t.Helper()
	if st := m.raw.Flush(nil, &fuse.FlushIn{InHeader: fuse.InHeader{NodeId: o.id}, Fh: o.fh}); st != fuse.OK {
		m.t.Fatalf("flush: %v", st)
	}
}

func (m *ptMount) fsync(o ptOpen) {
	m.t.Helper()
	if st := m.raw.Fsync(nil, &fuse.FsyncIn{InHeader: fuse.InHeader{NodeId: o.id}, Fh: o.fh}); st != fuse.OK {
		m.t.Fatalf("fsync: %v", st)
	}
}

func (m *ptMount) write(o ptOpen, data []byte) {
	m.t.Helper()
	in := &fuse.WriteIn{InHeader: fuse.InHeader{NodeId: o.id}, Fh: o.fh, Size: uint32(len(data))}
	if _, st := m.raw.Write(nil, in, data); st != fuse.OK {
		m.t.Fatalf("write: %v", st)
	}
}

func (m *ptMount) release(o ptOpen) {
	m.raw.Release(nil, &fuse.ReleaseIn{InHeader: fuse.InHeader{NodeId: o.id}, Fh: o.fh})
}

// close is the kernel's close: a flush, then the release.
func (m *ptMount) close(o ptOpen) {
	m.t.Helper()
	m.flush(o)
	m.release(o)
}

func (m *ptMount) node(name string) *node {
	m.t.Helper()
	c := m.root.GetChild(name)
	if c == nil {
		m.t.Fatalf("no node %s", name)
	}
	return c.Operations().(*node)
}

// A brick slow to hand over a file's descriptor holds up that file's
// open only: go-fuse asks for the descriptor under one mutex of the
// whole mount.
func TestPassthroughSlowBrick(t *testing.T) {
	m := newPtMount(t)
	slow := make(chan struct{})
	m.vol.slow["slow"] = slow
	done := make(chan ptOpen)
	go func() { done <- m.create("slow") }()
	// The slow create waits for its descriptor.
	deadline := time.Now().Add(5 * time.Second)
	for fds, _ := m.vol.counts(); fds == 0; fds, _ = m.vol.counts() {
		if time.Now().After(deadline) {
			t.Fatal("the create never asked for its descriptor")
		}
		time.Sleep(time.Millisecond)
	}
	fast := make(chan ptOpen)
	go func() { fast <- m.create("fast") }()
	var f ptOpen
	select {
	case f = <-fast:
	case <-time.After(2 * time.Second):
		close(slow)
		<-fast
		<-done
		t.Fatal("a create waited for another file's slow brick")
	}
	close(slow)
	s := <-done
	if f.flags&fuse.FOPEN_PASSTHROUGH == 0 || s.flags&fuse.FOPEN_PASSTHROUGH == 0 {
		t.Errorf("open flags %#x and %#x: not passed through", f.flags, s.flags)
	}
	m.close(f)
	m.close(s)
}

// A close of a file open for writing that wrote nothing does not tell
// the brick of writes when the file was not passed through.
func TestPassthroughCloseNotPassed(t *testing.T) {
	m := newPtMount(t)
	m.vol.remote["far"] = true
	o := m.create("far")
	if o.flags&fuse.FOPEN_PASSTHROUGH != 0 {
		t.Fatal("a file of a remote brick passed through")
	}
	m.close(o)
	o = m.open(o.id, syscall.O_RDWR) // a SQLite reader, touch
	m.close(o)
	if _, wrote := m.vol.counts(); len(wrote) != 0 {
		t.Errorf("closes of a file not passed through told the brick of writes: %v", wrote)
	}
}

// An open that comes while go-fuse still holds the backing file of the
// node's last close is passed through without the mount being asked: it
// gets the node's passthrough state too, whose fsync and ticks tell the
// brick of the kernel's writes.
func TestPassthroughReusedBacking(t *testing.T) {
	m := newPtMount(t)
	a := m.create("f")
	if a.flags&fuse.FOPEN_PASSTHROUGH == 0 {
		t.Fatal("not passed through")
	}
	m.flush(a)
	// The release of a waits on the brick while the next open comes.
	inRelease, reopened := make(chan struct{}), make(chan struct{})
	m.vol.release = func(uint64) {
		close(inRelease)
		<-reopened
	}
	released := make(chan struct{})
	go func() {
		m.release(a)
		close(released)
	}()
	<-inRelease
	m.vol.mu.Lock()
	m.vol.release = nil
	m.vol.mu.Unlock()
	b := m.open(a.id, syscall.O_RDWR)
	close(reopened)
	<-released
	if b.flags&fuse.FOPEN_PASSTHROUGH == 0 {
		t.Fatal("go-fuse did not reuse the backing file: the test sets up nothing")
	}
	n := m.node("f")
	_, before := m.vol.counts()
	// The kernel writes the brick's file.
	if err := os.WriteFile(filepath.Join(m.vol.dir, "f"), []byte("kernel's write"), 0o644); err != nil {
		t.Fatal(err)
	}
	m.fsync(b)
	_, after := m.vol.counts()
	if len(after) == len(before) || !after[len(after)-1].wait {
		t.Fatalf("an fsync of a reused passthrough open told the brick nothing: %v", after[len(before):])
	}
	if n.passthrough() == nil {
		t.Fatal("a reused passthrough open has no passthrough state")
	}
	// And a tick, for a write between them.
	if err := os.WriteFile(filepath.Join(m.vol.dir, "f"), []byte("the kernel's second write"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * passthroughTick)
	for {
		_, now := m.vol.counts()
		if len(now) > len(after) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no tick told the brick of a reused passthrough open's write")
		}
		time.Sleep(10 * time.Millisecond)
	}
	m.close(b)
	if n.passthrough() != nil {
		t.Error("passthrough state left after the last close")
	}
	m.k.mu.Lock()
	defer m.k.mu.Unlock()
	if len(m.k.registered) != 0 {
		t.Errorf("backing files left registered: %v", m.k.registered)
	}
}

// A descriptor go-fuse fails to register with the kernel leaves no
// passthrough state behind once the mount sees the file's writes come
// through it; and opens stop taking descriptors from the bricks.
func TestPassthroughRegistrationFails(t *testing.T) {
	m := newPtMount(t)
	m.k.fail = true
	a := m.create("a")
	if a.flags&fuse.FOPEN_PASSTHROUGH != 0 {
		t.Fatal("passed through without a backing file")
	}
	m.write(a, []byte("through the mount"))
	if m.node("a").passthrough() != nil {
		t.Error("a write through the mount left the file's passthrough state")
	}
	m.close(a)
	b := m.create("b") // go-fuse asks no more
	m.close(b)
	fds, _ := m.vol.counts()
	c := m.create("c")
	m.close(c)
	if now, _ := m.vol.counts(); now != fds {
		t.Errorf("%d more descriptors taken once go-fuse stopped passthrough", now-fds)
	}
}
