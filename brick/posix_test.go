package brick

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/distribute"
	"github.com/cais-platform/cais/fop"
	"github.com/cais-platform/cais/pki"
	"github.com/cais-platform/cais/rpc"
)

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a brick sets trusted.* extended attributes and owners: needs root")
	}
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testBrick is a session served over loopback TCP on a fresh brick
// directory, with a sibling directory that must stay untouched.
type testBrick struct {
	t       *testing.T
	dir     string // the brick root
	outside string // a sibling of the brick
	cl      *rpc.Client
	addr    string // where it serves
	// concurrent: calls run at once, so a reply's directory attributes
	// need not be the directory's latest
	concurrent bool
}

func startBrick(t *testing.T) *testBrick {
	t.Helper()
	requireRoot(t)
	return startBrickIn(t, t.TempDir())
}

// startBrickIn is startBrick with the brick and its sibling in base.
func startBrickIn(t *testing.T, base string) *testBrick {
	t.Helper()
	b := &testBrick{t: t, dir: filepath.Join(base, "brick"), outside: filepath.Join(base, "outside")}
	for _, d := range []string{b.dir, b.outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	log := discardLog()
	go func() {
		served <- rpc.ServeSessions(ctx, log, ln, func(net.Conn) rpc.Session { return newSession(b.dir, log, nil) })
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b.cl = rpc.NewClient(c)
	if _, err := fop.SayHello(context.Background(), b.cl); err != nil {
		t.Fatalf("hello: %v", err)
	}
	t.Cleanup(func() {
		b.cl.Close()
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		if ents, err := os.ReadDir(b.outside); err != nil || len(ents) != 0 {
			t.Errorf("the directory beside the brick changed: %v %v", ents, err)
		}
	})
	return b
}

// call sends req and decodes the reply into rep (if not nil).
func (b *testBrick) call(op uint16, req, rep fop.Message) error {
	b.t.Helper()
	var payload []byte
	if req != nil {
		payload = fop.Marshal(req)
	}
	out, err := b.cl.Call(context.Background(), op, payload)
	if err != nil {
		return err
	}
	if fop.EntryOp(op) {
		// The reply ends with the directory's attributes after the call.
		var ok bool
		var pa fop.Attr
		if out, pa, ok = fop.SplitParentAttr(out); !ok {
			b.t.Fatalf("op %d: no directory attributes in the reply", op)
		}
		if !b.concurrent {
			b.checkParent(op, req, pa)
		}
	}
	if rep != nil {
		if err := fop.Unmarshal(out, rep); err != nil {
			b.t.Fatalf("op %d: bad reply: %v", op, err)
		}
	}
	return nil
}

// checkParent compares the directory attributes an entry call's reply
// ends with against the directory on the brick now (the tests make no
// other change meanwhile).
func (b *testBrick) checkParent(op uint16, req fop.Message, pa fop.Attr) {
	b.t.Helper()
	var p string
	switch r := req.(type) {
	case *fop.CreateReq:
		p = r.Path
	case *fop.PathReq:
		p = r.Path
	case *fop.RenameReq:
		p = r.To
	default:
		b.t.Fatalf("op %d: an entry call with a %T", op, req)
	}
	var st unix.Stat_t
	dir := filepath.Join(b.dir, filepath.Dir(p))
	if len(dir) >= unix.PathMax {
		return // beyond what one lstat takes (TestPathLongerThanPathMax)
	}
	if err := unix.Lstat(dir, &st); err != nil {
		b.t.Fatalf("op %d %s: %v", op, p, err)
	}
	want := fop.AttrOf(&st, fop.GFID{})
	if pa.Ino != want.Ino || pa.Mode != want.Mode || pa.Nlink != want.Nlink || pa.Size != want.Size ||
		pa.Mtime != want.Mtime || pa.Ctime != want.Ctime {
		b.t.Fatalf("op %d %s: the reply's directory attributes %+v, the brick's %+v", op, p, pa, want)
	}
}

func (b *testBrick) must(op uint16, req, rep fop.Message) {
	b.t.Helper()
	if err := b.call(op, req, rep); err != nil {
		b.t.Fatalf("op %d %+v: %v", op, req, err)
	}
}

func (b *testBrick) wantErr(want syscall.Errno, op uint16, req fop.Message) {
	b.t.Helper()
	err := b.call(op, req, nil)
	if !errors.Is(err, want) {
		b.t.Fatalf("op %d %+v: got %v, want %v", op, req, err, want)
	}
}

func (b *testBrick) create(path string, mode uint32, flags uint32) (fop.OpenReply, fop.GFID) {
	b.t.Helper()
	g := fop.NewGFID()
	var rep fop.OpenReply
	b.must(fop.OpCreate, &fop.CreateReq{Path: path, Mode: mode, GFID: g, Flags: flags}, &rep)
	return rep, g
}

func (b *testBrick) write(h uint64, off int64, data string) fop.WriteReply {
	b.t.Helper()
	var rep fop.WriteReply
	b.must(fop.OpWrite, &fop.WriteReq{Handle: h, Offset: off, Data: []byte(data)}, &rep)
	return rep
}

func (b *testBrick) read(h uint64, off int64, size uint32) string {
	b.t.Helper()
	out, err := b.cl.Call(context.Background(), fop.OpRead, fop.Marshal(&fop.ReadReq{Handle: h, Offset: off, Size: size}))
	if err != nil {
		b.t.Fatalf("read: %v", err)
	}
	return string(out)
}

func (b *testBrick) lookup(path string) fop.Entry {
	b.t.Helper()
	var e fop.Entry
	b.must(fop.OpLookup, &fop.PathReq{Path: path}, &e)
	return e
}

func (b *testBrick) stat(path string) unix.Stat_t {
	b.t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(b.dir, path), &st); err != nil {
		b.t.Fatal(err)
	}
	return st
}

func foldIno(g fop.GFID) uint64 {
	return binary.BigEndian.Uint64(g[0:8]) ^ binary.BigEndian.Uint64(g[8:16])
}

func diskGFID(t *testing.T, path string) fop.GFID {
	t.Helper()
	var g fop.GFID
	n, err := unix.Lgetxattr(path, fop.GFIDXattr, g[:])
	if err != nil || n != 16 {
		t.Fatalf("gfid of %s: %d %v", path, n, err)
	}
	return g
}

func TestPosixCreateWriteRead(t *testing.T) {
	b := startBrick(t)
	g := fop.NewGFID()
	var rep fop.OpenReply
	b.must(fop.OpCreate, &fop.CreateReq{
		Path: "f", Mode: unix.S_IFREG | 0o640, UID: 1000, GID: 2000, GFID: g,
		Flags:  unix.O_RDWR | unix.O_CREAT | unix.O_EXCL,
		Xattrs: []fop.Xattr{{Name: "user.note", Value: []byte("hi")}, {Name: linkToXattr, Value: []byte("subvol-1")}},
	}, &rep)
	if rep.Handle != 1 {
		t.Errorf("first handle %d, want 1", rep.Handle)
	}
	a := rep.Attr
	if a.GFID != g || a.Ino != foldIno(g) || a.Mode != unix.S_IFREG|0o640 || a.UID != 1000 || a.GID != 2000 || a.Size != 0 || a.Nlink != 1 {
		t.Fatalf("attr %+v", a)
	}
	if got := diskGFID(t, filepath.Join(b.dir, "f")); got != g {
		t.Fatalf("gfid on disk %v, want %v", got, g)
	}
	buf := make([]byte, 16)
	if n, err := unix.Lgetxattr(filepath.Join(b.dir, "f"), "user.note", buf); err != nil || string(buf[:n]) != "hi" {
		t.Fatalf("user.note: %q %v", buf[:n], err)
	}
	if e := b.lookup("f"); e.LinkTo != "subvol-1" || e.Attr.GFID != g || e.Layout != nil {
		t.Fatalf("lookup %+v", e)
	}

	if w := b.write(rep.Handle, 0, "hello"); w.Written != 5 || w.Attr.Size != 5 || w.Attr.GFID != g {
		t.Fatalf("write %+v", w)
	}
	if w := b.write(rep.Handle, 5, "world"); w.Written != 5 || w.Attr.Size != 10 {
		t.Fatalf("write %+v", w)
	}
	if got := b.read(rep.Handle, 0, 100); got != "helloworld" {
		t.Fatalf("read %q", got)
	}
	if got := b.read(rep.Handle, 3, 4); got != "lowo" {
		t.Fatalf("read %q", got)
	}
	if got := b.read(rep.Handle, 50, 4); got != "" {
		t.Fatalf("read past EOF %q", got)
	}
	b.wantErr(syscall.EINVAL, fop.OpRead, &fop.ReadReq{Handle: rep.Handle, Offset: -1, Size: 1})
	b.must(fop.OpFsync, &fop.HandleReq{Handle: rep.Handle}, nil)
	b.must(fop.OpFsync, &fop.HandleReq{Handle: rep.Handle, Flag: true}, nil)
	b.must(fop.OpRelease, &fop.HandleReq{Handle: rep.Handle}, nil)
	b.wantErr(syscall.EBADF, fop.OpRelease, &fop.HandleReq{Handle: rep.Handle})
	b.wantErr(syscall.EBADF, fop.OpRead, &fop.ReadReq{Handle: rep.Handle, Size: 1})
	b.wantErr(syscall.EBADF, fop.OpWrite, &fop.WriteReq{Handle: rep.Handle, Data: []byte("x")})
	b.wantErr(syscall.EBADF, fop.OpFsync, &fop.HandleReq{Handle: 12345})
	if data, _ := os.ReadFile(filepath.Join(b.dir, "f")); string(data) != "helloworld" {
		t.Fatalf("on disk %q", data)
	}

	// O_EXCL on an existing file; without it the file is opened as it is.
	b.wantErr(syscall.EEXIST, fop.OpCreate, &fop.CreateReq{Path: "f", Mode: 0o600, GFID: fop.NewGFID(), Flags: unix.O_RDWR | unix.O_CREAT | unix.O_EXCL})
	var again fop.OpenReply
	b.must(fop.OpCreate, &fop.CreateReq{Path: "f", Mode: 0o600, GFID: fop.NewGFID(), Flags: unix.O_RDWR | unix.O_CREAT}, &again)
	if again.Handle != 2 || again.Attr.GFID != g || again.Attr.Mode != unix.S_IFREG|0o640 || again.Attr.Size != 10 {
		t.Fatalf("create of an existing file: %+v", again)
	}
	// A zero GFID is refused.
	b.wantErr(syscall.EINVAL, fop.OpCreate, &fop.CreateReq{Path: "z", Mode: 0o600, Flags: unix.O_RDWR})
	b.wantErr(syscall.EINVAL, fop.OpMkdir, &fop.CreateReq{Path: "z", Mode: 0o700})
	if _, err := os.Lstat(filepath.Join(b.dir, "z")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("z: %v", err)
	}
	// Internal extended attributes cannot ride on a create.
	b.wantErr(syscall.EPERM, fop.OpCreate, &fop.CreateReq{Path: "z", Mode: 0o600, GFID: fop.NewGFID(), Xattrs: []fop.Xattr{{Name: fop.GFIDXattr, Value: make([]byte, 16)}}})
	// A create whose extended attribute fails leaves nothing behind.
	b.wantErr(syscall.EOPNOTSUPP, fop.OpCreate, &fop.CreateReq{Path: "z", Mode: 0o600, GFID: fop.NewGFID(), Xattrs: []fop.Xattr{{Name: "bogus.x", Value: []byte("v")}}})
	b.wantErr(syscall.ERANGE, fop.OpCreate, &fop.CreateReq{Path: "z", Mode: 0o600, GFID: fop.NewGFID(), Xattrs: []fop.Xattr{{Name: "user." + strings.Repeat("n", 300), Value: []byte("v")}}})
	b.wantErr(syscall.ERANGE, fop.OpMkdir, &fop.CreateReq{Path: "z", Mode: 0o700, GFID: fop.NewGFID(), Xattrs: []fop.Xattr{{Name: "user." + strings.Repeat("n", 300), Value: []byte("v")}}})
	b.wantErr(syscall.E2BIG, fop.OpSymlink, &fop.CreateReq{Path: "z", Target: "t", GFID: fop.NewGFID(), Xattrs: []fop.Xattr{{Name: "trusted.cais.dht", Value: make([]byte, 70000)}}})
	if _, err := os.Lstat(filepath.Join(b.dir, "z")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("z: %v", err)
	}

	// Open: read-only, then with O_TRUNC.
	var ro fop.OpenReply
	b.must(fop.OpOpen, &fop.OpenReq{Path: "f", Flags: unix.O_RDONLY}, &ro)
	if ro.Handle != 3 || ro.Attr.GFID != g || ro.Attr.Size != 10 {
		t.Fatalf("open %+v", ro)
	}
	if got := b.read(ro.Handle, 0, 5); got != "hello" {
		t.Fatalf("read %q", got)
	}
	b.wantErr(syscall.EBADF, fop.OpWrite, &fop.WriteReq{Handle: ro.Handle, Data: []byte("x")})
	var tr fop.OpenReply
	b.must(fop.OpOpen, &fop.OpenReq{Path: "f", Flags: unix.O_WRONLY | unix.O_TRUNC}, &tr)
	if tr.Attr.Size != 0 {
		t.Fatalf("open O_TRUNC: %+v", tr.Attr)
	}
	b.wantErr(syscall.ENOENT, fop.OpOpen, &fop.OpenReq{Path: "missing", Flags: unix.O_RDONLY})
	b.wantErr(syscall.EINVAL, fop.OpOpen, &fop.OpenReq{Path: "f", Flags: unix.O_ACCMODE})
	b.wantErr(syscall.ENOTDIR, fop.OpOpen, &fop.OpenReq{Path: "f", Flags: unix.O_RDONLY | unix.O_DIRECTORY})
	// Open never creates.
	b.wantErr(syscall.ENOENT, fop.OpOpen, &fop.OpenReq{Path: "new", Flags: unix.O_RDWR | unix.O_CREAT})

	// Directories open for reading only.
	b.must(fop.OpMkdir, &fop.CreateReq{Path: "d", Mode: 0o755, GFID: fop.NewGFID()}, nil)
	var dh fop.OpenReply
	b.must(fop.OpOpen, &fop.OpenReq{Path: "d", Flags: unix.O_RDONLY | unix.O_DIRECTORY}, &dh)
	b.must(fop.OpFsync, &fop.HandleReq{Handle: dh.Handle}, nil)
	b.wantErr(syscall.EISDIR, fop.OpRead, &fop.ReadReq{Handle: dh.Handle, Size: 10})
	b.wantErr(syscall.EISDIR, fop.OpOpen, &fop.OpenReq{Path: "d", Flags: unix.O_WRONLY})
	b.wantErr(syscall.EISDIR, fop.OpOpen, &fop.OpenReq{Path: "d", Flags: unix.O_RDWR})
	b.wantErr(syscall.EISDIR, fop.OpOpen, &fop.OpenReq{Path: "", Flags: unix.O_RDWR})
	b.wantErr(syscall.EISDIR, fop.OpCreate, &fop.CreateReq{Path: "d", Mode: 0o644, GFID: fop.NewGFID(), Flags: unix.O_RDONLY})
	var rh fop.OpenReply
	b.must(fop.OpOpen, &fop.OpenReq{Path: "", Flags: unix.O_RDONLY}, &rh)
	if rh.Attr.GFID != fop.RootGFID {
		t.Fatalf("root open %+v", rh.Attr)
	}

	// A large write and read, capped at 4 MiB per read.
	big := bytes.Repeat([]byte("0123456789abcdef"), (5<<20)/16)
	bh, _ := b.create("big", 0o644, unix.O_RDWR)
	var w fop.WriteReply
	b.must(fop.OpWrite, &fop.WriteReq{Handle: bh.Handle, Data: big}, &w)
	if int(w.Written) != len(big) {
		t.Fatalf("wrote %d", w.Written)
	}
	if got := b.read(bh.Handle, 0, 8<<20); got != string(big[:maxRead]) {
		t.Fatalf("big read: %d bytes", len(got))
	}
}

func TestPosixAppend(t *testing.T) {
	b := startBrick(t)
	rep, _ := b.create("log", 0o644, unix.O_WRONLY|unix.O_APPEND)
	b.write(rep.Handle, 0, "one ")
	if w := b.write(rep.Handle, 0, "two"); w.Attr.Size != 7 {
		t.Fatalf("append %+v", w)
	}
	var h fop.OpenReply
	b.must(fop.OpOpen, &fop.OpenReq{Path: "log", Flags: unix.O_WRONLY | unix.O_APPEND}, &h)
	b.write(h.Handle, 2, " three")
	if data, _ := os.ReadFile(filepath.Join(b.dir, "log")); string(data) != "one two three" {
		t.Fatalf("log %q", data)
	}
}

func TestPosixSetattr(t *testing.T) {
	b := startBrick(t)
	rep, g := b.create("f", 0o644, unix.O_RDWR)
	b.write(rep.Handle, 0, "0123456789")
	var a fop.Attr
	b.must(fop.OpSetattr, &fop.SetattrReq{Path: "f", Valid: fop.SetSize, Size: 3}, &a)
	if a.Size != 3 || a.GFID != g {
		t.Fatalf("truncate %+v", a)
	}
	if got := b.read(rep.Handle, 0, 100); got != "012" {
		t.Fatalf("after truncate %q", got)
	}
	b.must(fop.OpSetattr, &fop.SetattrReq{Path: "f", Valid: fop.SetSize, Size: 1 << 20}, &a)
	if a.Size != 1<<20 {
		t.Fatalf("extend %+v", a)
	}
	// Owner and a set-user-ID mode together: the mode survives the chown.
	b.must(fop.OpSetattr, &fop.SetattrReq{Path: "f", Valid: fop.SetUID | fop.SetGID | fop.SetMode, UID: 1234, GID: 4321, Mode: 0o4755}, &a)
	if a.Mode != unix.S_IFREG|0o4755 || a.UID != 1234 || a.GID != 4321 {
		t.Fatalf("chown+chmod %+v", a)
	}
	if st := b.stat("f"); st.Mode != unix.S_IFREG|0o4755 || st.Uid != 1234 || st.Gid != 4321 {
		t.Fatalf("on disk %+v", st)
	}
	// Only the side asked for changes.
	b.must(fop.OpSetattr, &fop.SetattrReq{Path: "f", Valid: fop.SetUID, UID: 77, GID: 99}, &a)
	if a.UID != 77 || a.GID != 4321 {
		t.Fatalf("chown uid %+v", a)
	}
	b.must(fop.OpSetattr, &fop.SetattrReq{Path: "f", Valid: fop.SetGID, UID: 99, GID: 88}, &a)
	if a.UID != 77 || a.GID != 88 {
		t.Fatalf("chown gid %+v", a)
	}
	// Times.
	at := time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC).UnixNano()
	mt := time.Date(2011, 2, 3, 4, 5, 6, 8, time.UTC).UnixNano()
	b.must(fop.OpSetattr, &fop.SetattrReq{Path: "f", Valid: fop.SetAtime | fop.SetMtime, Atime: at, Mtime: mt}, &a)
	if a.Atime != at || a.Mtime != mt {
		t.Fatalf("utimes %+v", a)
	}
	b.must(fop.OpSetattr, &fop.SetattrReq{Path: "f", Valid: fop.SetMtime, Mtime: at}, &a)
	if a.Atime != at || a.Mtime != at {
		t.Fatalf("mtime only %+v", a)
	}
	before := time.Now().Add(-time.Second).UnixNano()
	b.must(fop.OpSetattr, &fop.SetattrReq{Path: "f", Valid: fop.SetAtime | fop.SetAtimeNow | fop.SetMtime | fop.SetMtimeNow, Atime: at, Mtime: at}, &a)
	if a.Atime < before || a.Mtime < before {
		t.Fatalf("utimes now %+v", a)
	}
	// Symlinks: owner and times of the link itself; no mode.
	target := b.stat("f")
	if err := os.Symlink("f", filepath.Join(b.dir, "s")); err != nil {
		t.Fatal(err)
	}
	b.must(fop.OpSetattr, &fop.SetattrReq{Path: "s", Valid: fop.SetUID | fop.SetMtime, UID: 5, Mtime: mt}, &a)
	if a.Mode&unix.S_IFMT != unix.S_IFLNK || a.UID != 5 || a.Mtime != mt {
		t.Fatalf("symlink setattr %+v", a)
	}

	b.wantErr(syscall.EOPNOTSUPP, fop.OpSetattr, &fop.SetattrReq{Path: "s", Valid: fop.SetMode, Mode: 0o600})
	b.wantErr(syscall.ELOOP, fop.OpSetattr, &fop.SetattrReq{Path: "s", Valid: fop.SetSize})
	if st := b.stat("f"); st != target {
		t.Fatalf("the target changed: %+v, was %+v", st, target)
	}
	// Directories and the root.
	b.must(fop.OpMkdir, &fop.CreateReq{Path: "d", Mode: 0o755, GFID: fop.NewGFID()}, nil)
	b.wantErr(syscall.EISDIR, fop.OpSetattr, &fop.SetattrReq{Path: "d", Valid: fop.SetSize})
	b.must(fop.OpSetattr, &fop.SetattrReq{Path: "", Valid: fop.SetMode | fop.SetUID | fop.SetMtime, Mode: 0o1775, UID: 42, Mtime: mt}, &a)
	if a.Mode != unix.S_IFDIR|0o1775 || a.UID != 42 || a.Mtime != mt || a.GFID != fop.RootGFID {
		t.Fatalf("root setattr %+v", a)
	}
	if st := b.stat(""); st.Mode != unix.S_IFDIR|0o1775 || st.Uid != 42 {
		t.Fatalf("root on disk %+v", st)
	}
	b.wantErr(syscall.ENOENT, fop.OpSetattr, &fop.SetattrReq{Path: "missing", Valid: fop.SetMode, Mode: 0o600})
	b.wantErr(syscall.ENOENT, fop.OpGetattr, &fop.PathReq{Path: "missing"})
	b.must(fop.OpGetattr, &fop.PathReq{Path: "f"}, &a)
	if a.GFID != g || a.Size != 1<<20 {
		t.Fatalf("getattr %+v", a)
	}
}

func TestPosixModesExact(t *testing.T) {
	b := startBrick(t)
	old := unix.Umask(0o077)
	defer unix.Umask(old)
	var a fop.Attr
	b.must(fop.OpMkdir, &fop.CreateReq{Path: "tmp", Mode: unix.S_IFDIR | 0o1777, UID: 10, GID: 20, GFID: fop.NewGFID()}, &a)
	if a.Mode != unix.S_IFDIR|0o1777 || a.UID != 10 || a.GID != 20 {
		t.Fatalf("mkdir %+v", a)
	}
	if st := b.stat("tmp"); st.Mode != unix.S_IFDIR|0o1777 || st.Uid != 10 || st.Gid != 20 {
		t.Fatalf("mkdir on disk %+v", st)
	}
	var rep fop.OpenReply
	b.must(fop.OpCreate, &fop.CreateReq{Path: "tmp/suid", Mode: 0o4755, UID: 1000, GID: 1000, GFID: fop.NewGFID(), Flags: unix.O_WRONLY}, &rep)
	if st := b.stat("tmp/suid"); st.Mode != unix.S_IFREG|0o4755 || st.Uid != 1000 || rep.Attr.Mode != st.Mode {
		t.Fatalf("create 04755: %o %o", st.Mode, rep.Attr.Mode)
	}
	b.must(fop.OpCreate, &fop.CreateReq{Path: "tmp/open", Mode: 0o666, GFID: fop.NewGFID(), Flags: unix.O_WRONLY}, &rep)
	if st := b.stat("tmp/open"); st.Mode != unix.S_IFREG|0o666 {
		t.Fatalf("create 0666: %o", st.Mode)
	}
	b.must(fop.OpMknod, &fop.CreateReq{Path: "tmp/fifo", Mode: unix.S_IFIFO | 0o666, UID: 3, GID: 4, GFID: fop.NewGFID()}, &a)
	if st := b.stat("tmp/fifo"); st.Mode != unix.S_IFIFO|0o666 || st.Uid != 3 || st.Gid != 4 || a.Mode != st.Mode {
		t.Fatalf("mknod: %+v", st)
	}
	b.must(fop.OpMkdir, &fop.CreateReq{Path: "tmp/sgid", Mode: 0o2770, GFID: fop.NewGFID()}, &a)
	if st := b.stat("tmp/sgid"); st.Mode != unix.S_IFDIR|0o2770 {
		t.Fatalf("mkdir 02770: %o", st.Mode)
	}
}

func TestPosixMkdirRmdirUnlink(t *testing.T) {
	b := startBrick(t)
	g := fop.NewGFID()
	layout := []byte("layout-record")
	var a fop.Attr
	b.must(fop.OpMkdir, &fop.CreateReq{Path: "d", Mode: 0o755, GFID: g, Xattrs: []fop.Xattr{{Name: distribute.LayoutXattr, Value: layout}}}, &a)
	if a.GFID != g || a.Ino != foldIno(g) || a.Mode != unix.S_IFDIR|0o755 {
		t.Fatalf("mkdir %+v", a)
	}
	if e := b.lookup("d"); !bytes.Equal(e.Layout, layout) || e.Attr.GFID != g || e.LinkTo != "" {
		t.Fatalf("lookup %+v", e)
	}
	b.wantErr(syscall.EEXIST, fop.OpMkdir, &fop.CreateReq{Path: "d", Mode: 0o755, GFID: fop.NewGFID()})
	b.wantErr(syscall.EEXIST, fop.OpMkdir, &fop.CreateReq{Path: "", Mode: 0o755, GFID: fop.NewGFID()})
	b.wantErr(syscall.ENOENT, fop.OpMkdir, &fop.CreateReq{Path: "nope/d", Mode: 0o755, GFID: fop.NewGFID()})
	b.must(fop.OpMkdir, &fop.CreateReq{Path: "d/e", Mode: 0o700, GFID: fop.NewGFID()}, nil)
	b.create("d/e/f", 0o644, unix.O_WRONLY)
	b.wantErr(syscall.ENOTEMPTY, fop.OpRmdir, &fop.PathReq{Path: "d"})
	b.wantErr(syscall.ENOTEMPTY, fop.OpRmdir, &fop.PathReq{Path: "d/e"})
	b.wantErr(syscall.ENOTDIR, fop.OpRmdir, &fop.PathReq{Path: "d/e/f"})
	b.wantErr(syscall.EISDIR, fop.OpUnlink, &fop.PathReq{Path: "d/e"})
	b.wantErr(syscall.ENOTDIR, fop.OpCreate, &fop.CreateReq{Path: "d/e/f/g", Mode: 0o644, GFID: fop.NewGFID()})
	b.must(fop.OpUnlink, &fop.PathReq{Path: "d/e/f"}, nil)
	b.wantErr(syscall.ENOENT, fop.OpUnlink, &fop.PathReq{Path: "d/e/f"})
	b.must(fop.OpRmdir, &fop.PathReq{Path: "d/e"}, nil)
	b.must(fop.OpRmdir, &fop.PathReq{Path: "d"}, nil)
	b.wantErr(syscall.ENOENT, fop.OpRmdir, &fop.PathReq{Path: "d"})
	b.wantErr(syscall.EBUSY, fop.OpRmdir, &fop.PathReq{Path: ""})
	b.wantErr(syscall.EISDIR, fop.OpUnlink, &fop.PathReq{Path: "."})
	if ents, _ := os.ReadDir(b.dir); len(ents) != 0 {
		t.Fatalf("left %v", ents)
	}
	// A directory without the layout record has none.
	b.must(fop.OpMkdir, &fop.CreateReq{Path: "plain", Mode: 0o755, GFID: fop.NewGFID()}, nil)
	if e := b.lookup("plain"); e.Layout != nil {
		t.Fatalf("layout %q", e.Layout)
	}
}

func TestPosixRename(t *testing.T) {
	b := startBrick(t)
	ha, ga := b.create("a", 0o644, unix.O_WRONLY)
	b.write(ha.Handle, 0, "A")
	hb, gb := b.create("b", 0o644, unix.O_WRONLY)
	b.write(hb.Handle, 0, "B")
	b.must(fop.OpMkdir, &fop.CreateReq{Path: "d", Mode: 0o755, GFID: fop.NewGFID()}, nil)

	b.wantErr(syscall.EEXIST, fop.OpRename, &fop.RenameReq{From: "a", To: "b", Flags: unix.RENAME_NOREPLACE})
	b.must(fop.OpRename, &fop.RenameReq{From: "a", To: "b", Flags: unix.RENAME_EXCHANGE}, nil)
	if b.lookup("a").Attr.GFID != gb || b.lookup("b").Attr.GFID != ga {
		t.Fatal("exchange did not swap")
	}
	b.must(fop.OpRename, &fop.RenameReq{From: "b", To: "d/c", Flags: unix.RENAME_NOREPLACE}, nil)
	if data, _ := os.ReadFile(filepath.Join(b.dir, "d/c")); string(data) != "A" {
		t.Fatalf("d/c %q", data)
	}
	b.must(fop.OpRename, &fop.RenameReq{From: "a", To: "d/c"}, nil) // replaces
	if e := b.lookup("d/c"); e.Attr.GFID != gb {
		t.Fatalf("replace %+v", e)
	}
	b.wantErr(syscall.ENOENT, fop.OpRename, &fop.RenameReq{From: "a", To: "x"})
	b.wantErr(syscall.EINVAL, fop.OpRename, &fop.RenameReq{From: "d/c", To: "x", Flags: unix.RENAME_WHITEOUT})
	b.wantErr(syscall.EBUSY, fop.OpRename, &fop.RenameReq{From: "", To: "x"})
	b.wantErr(syscall.EBUSY, fop.OpRename, &fop.RenameReq{From: "d", To: "."})
	b.wantErr(syscall.EINVAL, fop.OpRename, &fop.RenameReq{From: "d", To: "d/sub"})
	b.wantErr(syscall.EACCES, fop.OpRename, &fop.RenameReq{From: "d", To: ".cais"})
	b.wantErr(syscall.EACCES, fop.OpRename, &fop.RenameReq{From: ".cais", To: "x"})
	b.must(fop.OpRename, &fop.RenameReq{From: "d", To: "e"}, nil)
	if e := b.lookup("e/c"); e.Attr.GFID != gb {
		t.Fatalf("after directory rename %+v", e)
	}
}

func TestPosixLink(t *testing.T) {
	b := startBrick(t)
	_, g := b.create("f", 0o644, unix.O_WRONLY)
	b.must(fop.OpMkdir, &fop.CreateReq{Path: "d", Mode: 0o755, GFID: fop.NewGFID()}, nil)
	var a fop.Attr
	b.must(fop.OpLink, &fop.RenameReq{From: "f", To: "d/g"}, &a)
	if a.GFID != g || a.Nlink != 2 || a.Ino != foldIno(g) {
		t.Fatalf("link %+v", a)
	}
	if e := b.lookup("f"); e.Attr.Nlink != 2 || e.Attr.GFID != g {
		t.Fatalf("lookup %+v", e)
	}
	b.wantErr(syscall.EEXIST, fop.OpLink, &fop.RenameReq{From: "f", To: "d/g"})
	b.wantErr(syscall.EPERM, fop.OpLink, &fop.RenameReq{From: "d", To: "d2"})
	b.wantErr(syscall.EPERM, fop.OpLink, &fop.RenameReq{From: "", To: "r"})
	b.wantErr(syscall.ENOENT, fop.OpLink, &fop.RenameReq{From: "nope", To: "x"})
	b.wantErr(syscall.EINVAL, fop.OpLink, &fop.RenameReq{From: "f", To: "x", Flags: 1})
	// A symlink is linked itself, never its target.
	if err := os.Symlink("/etc/passwd", filepath.Join(b.dir, "s")); err != nil {
		t.Fatal(err)
	}
	b.must(fop.OpLink, &fop.RenameReq{From: "s", To: "s2"}, &a)
	if a.Mode&unix.S_IFMT != unix.S_IFLNK {
		t.Fatalf("link of a symlink: %+v", a)
	}
}

func TestPosixSymlinkReadlink(t *testing.T) {
	b := startBrick(t)
	g := fop.NewGFID()
	var a fop.Attr
	b.must(fop.OpSymlink, &fop.CreateReq{Path: "s", Target: "../../etc/passwd", UID: 7, GID: 8, GFID: g}, &a)
	if a.Mode&unix.S_IFMT != unix.S_IFLNK || a.UID != 7 || a.GID != 8 || a.GFID != g || a.Size != uint64(len("../../etc/passwd")) {
		t.Fatalf("symlink %+v", a)
	}
	if got := diskGFID(t, filepath.Join(b.dir, "s")); got != g {
		t.Fatalf("gfid %v", got)
	}
	var blob fop.Blob
	b.must(fop.OpReadlink, &fop.PathReq{Path: "s"}, &blob)
	if string(blob.Data) != "../../etc/passwd" {
		t.Fatalf("readlink %q", blob.Data)
	}
	long := strings.Repeat("x/", 1500) + "y"
	b.must(fop.OpSymlink, &fop.CreateReq{Path: "long", Target: long, GFID: fop.NewGFID()}, nil)
	b.must(fop.OpReadlink, &fop.PathReq{Path: "long"}, &blob)
	if string(blob.Data) != long {
		t.Fatalf("long readlink: %d bytes", len(blob.Data))
	}
	if e := b.lookup("s"); e.Attr.GFID != g || e.Attr.Mode&unix.S_IFMT != unix.S_IFLNK {
		t.Fatalf("lookup %+v", e)
	}
	b.wantErr(syscall.ELOOP, fop.OpOpen, &fop.OpenReq{Path: "s", Flags: unix.O_RDONLY})
	b.wantErr(syscall.ELOOP, fop.OpCreate, &fop.CreateReq{Path: "s", Mode: 0o644, GFID: fop.NewGFID(), Flags: unix.O_WRONLY})
	b.wantErr(syscall.EEXIST, fop.OpSymlink, &fop.CreateReq{Path: "s", Target: "t", GFID: fop.NewGFID()})
	b.wantErr(syscall.ENOENT, fop.OpSymlink, &fop.CreateReq{Path: "empty", Target: "", GFID: fop.NewGFID()})
	b.must(fop.OpCreate, &fop.CreateReq{Path: "f", Mode: 0o644, GFID: fop.NewGFID()}, nil)
	b.wantErr(syscall.EINVAL, fop.OpReadlink, &fop.PathReq{Path: "f"})
	b.wantErr(syscall.EINVAL, fop.OpReadlink, &fop.PathReq{Path: ""})
	b.must(fop.OpUnlink, &fop.PathReq{Path: "s"}, nil)
}

func TestPosixMknod(t *testing.T) {
	b := startBrick(t)
	g := fop.NewGFID()
	var a fop.Attr
	b.must(fop.OpMknod, &fop.CreateReq{Path: "fifo", Mode: unix.S_IFIFO | 0o600, GFID: g}, &a)
	if a.Mode != unix.S_IFIFO|0o600 || a.GFID != g {
		t.Fatalf("mknod fifo %+v", a)
	}
	if e := b.lookup("fifo"); e.Attr.Mode != unix.S_IFIFO|0o600 {
		t.Fatalf("lookup %+v", e)
	}
	// The brick never opens what is not a regular file or a directory: a
	// FIFO would block, a device node would reach the brick host's device.
	done := make(chan error, 1)
	go func() { done <- b.call(fop.OpOpen, &fop.OpenReq{Path: "fifo", Flags: unix.O_RDONLY}, nil) }()
	select {
	case err := <-done:
		if !errors.Is(err, syscall.EOPNOTSUPP) {
			t.Fatalf("open fifo: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("open of a FIFO blocked")
	}
	null := uint64(unix.Mkdev(1, 3))
	b.must(fop.OpMknod, &fop.CreateReq{Path: "null", Mode: unix.S_IFCHR | 0o666, Rdev: null, GFID: fop.NewGFID()}, &a)
	if a.Mode != unix.S_IFCHR|0o666 || a.Rdev != null {
		t.Fatalf("mknod chr %+v", a)
	}
	b.wantErr(syscall.EOPNOTSUPP, fop.OpOpen, &fop.OpenReq{Path: "null", Flags: unix.O_RDWR})
	b.wantErr(syscall.EOPNOTSUPP, fop.OpSetattr, &fop.SetattrReq{Path: "null", Valid: fop.SetSize})
	b.wantErr(syscall.EOPNOTSUPP, fop.OpCreate, &fop.CreateReq{Path: "null", Mode: 0o666, GFID: fop.NewGFID(), Flags: unix.O_RDWR})
	b.must(fop.OpMknod, &fop.CreateReq{Path: "reg", Mode: 0o640, GFID: fop.NewGFID()}, &a)
	if a.Mode != unix.S_IFREG|0o640 {
		t.Fatalf("mknod reg %+v", a)
	}
	b.wantErr(syscall.EINVAL, fop.OpMknod, &fop.CreateReq{Path: "dir", Mode: unix.S_IFDIR | 0o755, GFID: fop.NewGFID()})
	b.wantErr(syscall.EINVAL, fop.OpMknod, &fop.CreateReq{Path: "big", Mode: unix.S_IFCHR | 0o600, Rdev: 1 << 40, GFID: fop.NewGFID()})
	b.wantErr(syscall.EEXIST, fop.OpMknod, &fop.CreateReq{Path: "fifo", Mode: unix.S_IFIFO | 0o600, GFID: fop.NewGFID()})
}

// readdirAll lists a directory in batches of max entries.
func (b *testBrick) readdirAll(path string, max uint32) []fop.Dirent {
	b.t.Helper()
	var all []fop.Dirent
	var cookie uint64
	for i := 0; ; i++ {
		var rep fop.ReaddirReply
		b.must(fop.OpReaddir, &fop.ReaddirReq{Path: path, Cookie: cookie, Max: max}, &rep)
		if len(rep.Entries) > int(max) && max != 0 {
			b.t.Fatalf("batch of %d entries, max %d", len(rep.Entries), max)
		}
		all = append(all, rep.Entries...)
		if rep.EOF {
			return all
		}
		if len(rep.Entries) == 0 {
			b.t.Fatal("empty batch before EOF")
		}
		cookie = rep.Entries[len(rep.Entries)-1].Cookie
		if i > 1<<20 {
			b.t.Fatal("readdir does not end")
		}
	}
}

func TestPosixReaddir(t *testing.T) {
	b := startBrick(t)
	if err := os.Mkdir(filepath.Join(b.dir, internalDir), 0o700); err != nil {
		t.Fatal(err)
	}
	_, gf := b.create("f", 0o644, unix.O_WRONLY)
	b.must(fop.OpMkdir, &fop.CreateReq{Path: "d", Mode: 0o755, GFID: fop.NewGFID()}, nil)
	b.must(fop.OpCreate, &fop.CreateReq{Path: "ptr", Mode: 0o1000, GFID: fop.NewGFID(), Xattrs: []fop.Xattr{{Name: linkToXattr, Value: []byte("sv2")}}}, nil)
	if err := os.WriteFile(filepath.Join(b.dir, "raw"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ents := b.readdirAll("", 0)
	got := map[string]fop.Dirent{}
	for _, e := range ents {
		got[e.Name] = e
	}
	if len(ents) != 4 || len(got) != 4 {
		t.Fatalf("root listing %v", names(ents))
	}
	if e := got["f"]; e.Attr.GFID != gf || e.Attr.Mode != unix.S_IFREG|0o644 || e.LinkTo != "" {
		t.Fatalf("f %+v", e)
	}
	if e := got["ptr"]; e.LinkTo != "sv2" {
		t.Fatalf("ptr %+v", e)
	}
	if e := got["raw"]; !e.Attr.GFID.IsZero() || e.Attr.Ino != b.stat("raw").Ino {
		t.Fatalf("raw %+v", e)
	}
	if e := got["d"]; e.Attr.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Fatalf("d %+v", e)
	}
	// Which of ls -l's extended attributes each entry has.
	for name, x := range map[string]uint8{"f": fop.XattrsKnown, "raw": fop.XattrsKnown, "ptr": fop.XattrsKnown} {
		if got[name].Xattrs != x {
			t.Fatalf("%s: xattr flags %08b, want %08b", name, got[name].Xattrs, x)
		}
	}
	labelled := unix.Setxattr(filepath.Join(b.dir, "f"), fop.ListingXattrs[0], []byte("label"), 0) == nil
	if !labelled {
		t.Logf("this file system takes no %s", fop.ListingXattrs[0])
	}
	for _, e := range b.readdirAll("", 0) {
		if !labelled {
			break
		}
		if e.Name == "f" && e.Xattrs != fop.XattrsKnown|1 {
			t.Fatalf("f with %s: xattr flags %08b", fop.ListingXattrs[0], e.Xattrs)
		}
		if e.Name == "f" && e.Attr.GFID != gf {
			t.Fatalf("f with %s: GFID %v", fop.ListingXattrs[0], e.Attr.GFID)
		}
	}
	// .cais is hidden only at the root.
	b.must(fop.OpMkdir, &fop.CreateReq{Path: "d/.cais", Mode: 0o755, GFID: fop.NewGFID()}, nil)
	if ents := b.readdirAll("d", 1); len(ents) != 1 || ents[0].Name != ".cais" {
		t.Fatalf("d listing %v", names(ents))
	}
	var rep fop.ReaddirReply
	b.must(fop.OpReaddir, &fop.ReaddirReq{Path: "d/.cais"}, &rep)
	if len(rep.Entries) != 0 || !rep.EOF {
		t.Fatalf("empty listing %+v", rep)
	}
	b.wantErr(syscall.ENOTDIR, fop.OpReaddir, &fop.ReaddirReq{Path: "f"})
	b.wantErr(syscall.ENOENT, fop.OpReaddir, &fop.ReaddirReq{Path: "nope"})
	b.wantErr(syscall.EACCES, fop.OpReaddir, &fop.ReaddirReq{Path: ".cais"})
	b.wantErr(syscall.EINVAL, fop.OpReaddir, &fop.ReaddirReq{Path: "", Cookie: 1 << 63})

	// Every batch size lists every entry exactly once.
	for i := range 300 {
		if err := unix.Mknod(filepath.Join(b.dir, "d", fmt.Sprintf("e%03d", i)), unix.S_IFREG|0o644, 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, max := range []uint32{1, 2, 7, 100, 256, 5000} {
		ents := b.readdirAll("d", max)
		checkOnce(t, ents, 301)
	}
}

func names(ents []fop.Dirent) []string {
	var n []string
	for _, e := range ents {
		n = append(n, e.Name)
	}
	return n
}

func checkOnce(t *testing.T, ents []fop.Dirent, want int) {
	t.Helper()
	seen := make(map[string]bool, len(ents))
	for _, e := range ents {
		if e.Name == "." || e.Name == ".." || e.Name == "" {
			t.Fatalf("listed %q", e.Name)
		}
		if seen[e.Name] {
			t.Fatalf("%s listed twice", e.Name)
		}
		seen[e.Name] = true
	}
	if len(seen) != want {
		t.Fatalf("listed %d entries, want %d", len(seen), want)
	}
}

func TestPosixReaddirLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 100,000 files")
	}
	b := startBrick(t)
	const n = 100_000
	dir := filepath.Join(b.dir, "big")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := unix.Mknodat(dfd, fmt.Sprintf("file-%06d", i), unix.S_IFREG|0o644, 0); err != nil {
			t.Fatal(err)
		}
	}
	unix.Close(dfd)
	start := time.Now()
	ents := b.readdirAll("big", maxReaddirMax)
	took := time.Since(start)
	checkOnce(t, ents, n)
	for _, e := range ents {
		if !strings.HasPrefix(e.Name, "file-") || e.Attr.Mode != unix.S_IFREG|0o644 {
			t.Fatalf("entry %+v", e)
		}
	}
	t.Logf("listed %d entries in %v", n, took)
	if took > 10*time.Second {
		t.Fatalf("listing %d entries took %v", n, took)
	}
	// The default batch too.
	start = time.Now()
	checkOnce(t, b.readdirAll("big", 0), n)
	t.Logf("listed %d entries in batches of %d in %v", n, defaultReaddirMax, time.Since(start))
}

func TestPosixXattrs(t *testing.T) {
	b := startBrick(t)
	b.create("f", 0o644, unix.O_WRONLY)
	set := func(path, name, value string, flags uint32) error {
		return b.call(fop.OpSetxattr, &fop.XattrReq{Path: path, Name: name, Value: []byte(value), Flags: flags}, nil)
	}
	get := func(path, name string) (string, error) {
		var blob fop.Blob
		err := b.call(fop.OpGetxattr, &fop.XattrReq{Path: path, Name: name}, &blob)
		return string(blob.Data), err
	}
	list := func(path string) []string {
		var blob fop.Blob
		b.must(fop.OpListxattr, &fop.PathReq{Path: path}, &blob)
		var n []string
		for _, s := range strings.Split(string(blob.Data), "\x00") {
			if s != "" {
				n = append(n, s)
			}
		}
		if len(blob.Data) > 0 && blob.Data[len(blob.Data)-1] != 0 {
			t.Fatalf("list not NUL-terminated: %q", blob.Data)
		}
		sort.Strings(n)
		return n
	}
	if err := set("f", "user.a", "1", 0); err != nil {
		t.Fatal(err)
	}
	if err := set("f", "user.a", "2", unix.XATTR_CREATE); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("XATTR_CREATE: %v", err)
	}
	if err := set("f", "user.b", "2", unix.XATTR_REPLACE); !errors.Is(err, syscall.ENODATA) {
		t.Fatalf("XATTR_REPLACE: %v", err)
	}
	if err := set("f", "user.a", "3", unix.XATTR_REPLACE); err != nil {
		t.Fatal(err)
	}
	if err := set("f", "user.a", "3", 4); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("bad flags: %v", err)
	}
	if v, err := get("f", "user.a"); err != nil || v != "3" {
		t.Fatalf("get %q %v", v, err)
	}
	bigv := strings.Repeat("v", 3000) // more than a first guess, less than an ext4 block
	if err := set("f", "user.big", bigv, 0); err != nil {
		t.Fatal(err)
	}
	if v, err := get("f", "user.big"); err != nil || v != bigv {
		t.Fatalf("get big: %d %v", len(v), err)
	}
	if _, err := get("f", "user.none"); !errors.Is(err, syscall.ENODATA) {
		t.Fatalf("absent: %v", err)
	}
	if err := set("f", "security.test", "s", 0); err != nil {
		t.Fatalf("security.*: %v", err)
	}
	// The brick's own names.
	if err := set("f", "trusted.cais.dht", "layout", 0); err != nil {
		t.Fatalf("managed: %v", err)
	}
	if v, err := get("f", "trusted.cais.dht"); err != nil || v != "layout" {
		t.Fatalf("managed get %q %v", v, err)
	}
	if err := set("f", linkToXattr, "sv", 0); err != nil {
		t.Fatalf("linkto: %v", err)
	}
	gfid := diskGFID(t, filepath.Join(b.dir, "f"))
	if got := list("f"); !slices.Equal(got, []string{"security.test", "user.a", "user.big"}) {
		t.Fatalf("list %q", got)
	}
	for _, name := range []string{fop.GFIDXattr, VolumeIDXattr, "trusted.cais.other", "trusted.foo"} {
		if err := set("f", name, "x", 0); !errors.Is(err, syscall.EPERM) {
			t.Fatalf("set %s: %v", name, err)
		}
		if err := b.call(fop.OpRemovexattr, &fop.XattrReq{Path: "f", Name: name}, nil); !errors.Is(err, syscall.EPERM) {
			t.Fatalf("remove %s: %v", name, err)
		}
		if _, err := get("f", name); !errors.Is(err, syscall.EPERM) {
			t.Fatalf("get %s: %v", name, err)
		}
	}
	if got := diskGFID(t, filepath.Join(b.dir, "f")); got != gfid {
		t.Fatal("the GFID changed")
	}
	for _, name := range []string{"bogus", "system.other", "os2.x"} {
		if err := set("f", name, "x", 0); !errors.Is(err, syscall.EOPNOTSUPP) {
			t.Fatalf("set %s: %v", name, err)
		}
	}
	if err := set("f", "", "x", 0); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("empty name: %v", err)
	}
	if err := set("f", "user.a\x00b", "x", 0); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("NUL in name: %v", err)
	}
	b.must(fop.OpRemovexattr, &fop.XattrReq{Path: "f", Name: "user.a"}, nil)
	b.must(fop.OpRemovexattr, &fop.XattrReq{Path: "f", Name: "trusted.cais.dht"}, nil)
	b.must(fop.OpRemovexattr, &fop.XattrReq{Path: "f", Name: linkToXattr}, nil)
	b.wantErr(syscall.ENODATA, fop.OpRemovexattr, &fop.XattrReq{Path: "f", Name: "user.a"})
	if got := list("f"); !slices.Equal(got, []string{"security.test", "user.big"}) {
		t.Fatalf("list %q", got)
	}
	// The root and a directory.
	if err := set("", "user.r", "root", 0); err != nil {
		t.Fatal(err)
	}
	if v, err := get("", "user.r"); err != nil || v != "root" {
		t.Fatalf("root get %q %v", v, err)
	}
	if got := list(""); !slices.Equal(got, []string{"user.r"}) {
		t.Fatalf("root list %q", got)
	}
	b.must(fop.OpRemovexattr, &fop.XattrReq{Path: "", Name: "user.r"}, nil)
	// On a symlink, the link itself is named, never its target.
	target := filepath.Join(b.outside, "..", "target")
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(b.dir, "s")); err != nil {
		t.Fatal(err)
	}
	if err := set("s", "user.x", "x", 0); err == nil {
		t.Fatal("user.* set on a symlink")
	}
	if err := set("s", "trusted.cais.dht", "x", 0); err != nil {
		t.Fatalf("set on a symlink: %v", err)
	}
	if n, err := unix.Getxattr(target, "trusted.cais.dht", nil); err == nil {
		t.Fatalf("the symlink's target got the attribute (%d bytes)", n)
	}
	b.wantErr(syscall.ENOENT, fop.OpListxattr, &fop.PathReq{Path: "nope"})
}

func TestPosixEscapes(t *testing.T) {
	b := startBrick(t)
	var passwd unix.Stat_t
	if err := unix.Stat("/etc/passwd", &passwd); err != nil {
		t.Fatal(err)
	}
	var slash unix.Stat_t
	if err := unix.Stat("/", &slash); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/", filepath.Join(b.dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(b.outside, filepath.Join(b.dir, "out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(b.dir, "plink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(b.dir, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	bad := []string{"../x", "/etc/passwd", "a/../../x", "..", "a/..", "./a", "a/.", "a//b", "a/", "/", "a\x00b", "//etc"}
	escapes := []string{"link/etc/passwd", "link/etc", "link/tmp/cais-escape", "out/x", "out/x/y"}
	for _, p := range bad {
		for op, req := range opsOn(p) {
			if err := b.call(op, req, nil); !errors.Is(err, syscall.EINVAL) {
				t.Errorf("op %d on %q: %v, want EINVAL", op, p, err)
			}
		}
	}
	for _, p := range escapes {
		for op, req := range opsOn(p) {
			err := b.call(op, req, nil)
			if !errors.Is(err, syscall.ELOOP) && !errors.Is(err, syscall.ENOTDIR) && !errors.Is(err, syscall.EXDEV) {
				t.Errorf("op %d on %q: %v, want ELOOP, ENOTDIR or EXDEV", op, p, err)
			}
		}
	}
	// Rename and link out of or into the brick through a symlink.
	b.create("f", 0o644, unix.O_WRONLY)
	for _, req := range []*fop.RenameReq{{From: "f", To: "link/tmp/f"}, {From: "f", To: "out/f"}, {From: "link/etc/passwd", To: "p"}, {From: "out/x", To: "x"}} {
		for _, op := range []uint16{fop.OpRename, fop.OpLink} {
			if err := b.call(op, req, nil); !errors.Is(err, syscall.ELOOP) {
				t.Errorf("op %d %+v: %v, want ELOOP", op, req, err)
			}
		}
	}
	// A final symlink is never followed.
	b.wantErr(syscall.ELOOP, fop.OpOpen, &fop.OpenReq{Path: "plink", Flags: unix.O_RDWR})
	b.wantErr(syscall.ELOOP, fop.OpOpen, &fop.OpenReq{Path: "link", Flags: unix.O_RDONLY})
	if err := b.call(fop.OpReaddir, &fop.ReaddirReq{Path: "link"}, nil); !errors.Is(err, syscall.ELOOP) && !errors.Is(err, syscall.ENOTDIR) {
		t.Fatalf("readdir of a symlink: %v", err)
	}
	b.wantErr(syscall.ELOOP, fop.OpSetattr, &fop.SetattrReq{Path: "plink", Valid: fop.SetSize})
	b.wantErr(syscall.EOPNOTSUPP, fop.OpSetattr, &fop.SetattrReq{Path: "link", Valid: fop.SetMode, Mode: 0o700})
	b.wantErr(syscall.EOPNOTSUPP, fop.OpSetattr, &fop.SetattrReq{Path: "plink", Valid: fop.SetMode, Mode: 0o777})
	b.must(fop.OpSetattr, &fop.SetattrReq{Path: "plink", Valid: fop.SetUID | fop.SetMtime, UID: 99}, nil)
	b.wantErr(syscall.EEXIST, fop.OpMkdir, &fop.CreateReq{Path: "link", Mode: 0o755, GFID: fop.NewGFID()})
	var e fop.Entry
	b.must(fop.OpLookup, &fop.PathReq{Path: "link"}, &e)
	if e.Attr.Mode&unix.S_IFMT != unix.S_IFLNK {
		t.Fatalf("lookup of a symlink followed it: %+v", e.Attr)
	}
	b.must(fop.OpUnlink, &fop.PathReq{Path: "plink"}, nil)

	var after unix.Stat_t
	if err := unix.Stat("/etc/passwd", &after); err != nil {
		t.Fatal(err)
	}
	if after.Mode != passwd.Mode || after.Uid != passwd.Uid || after.Size != passwd.Size || after.Ctim != passwd.Ctim {
		t.Fatalf("/etc/passwd changed: %+v", after)
	}
	if err := unix.Stat("/", &after); err != nil {
		t.Fatal(err)
	}
	if after.Mode != slash.Mode || after.Uid != slash.Uid || after.Ctim != slash.Ctim {
		t.Fatalf("/ changed: %+v", after)
	}
	if _, err := os.Lstat("/tmp/cais-escape"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("/tmp/cais-escape: %v", err)
	}
	if _, err := os.Lstat("/tmp/f"); err == nil {
		t.Log("note: /tmp/f exists (not made by this test?)")
	}
}

// opsOn is one request of every path-taking operation on p.
func opsOn(p string) map[uint16]fop.Message {
	g := fop.NewGFID()
	return map[uint16]fop.Message{
		fop.OpLookup:      &fop.PathReq{Path: p},
		fop.OpGetattr:     &fop.PathReq{Path: p},
		fop.OpSetattr:     &fop.SetattrReq{Path: p, Valid: fop.SetMode | fop.SetUID, Mode: 0o777, UID: 99},
		fop.OpMkdir:       &fop.CreateReq{Path: p, Mode: 0o755, GFID: g},
		fop.OpMknod:       &fop.CreateReq{Path: p, Mode: unix.S_IFIFO | 0o644, GFID: g},
		fop.OpCreate:      &fop.CreateReq{Path: p, Mode: 0o644, GFID: g, Flags: unix.O_RDWR | unix.O_TRUNC},
		fop.OpSymlink:     &fop.CreateReq{Path: p, Target: "/", GFID: g},
		fop.OpOpen:        &fop.OpenReq{Path: p, Flags: unix.O_RDWR | unix.O_TRUNC},
		fop.OpUnlink:      &fop.PathReq{Path: p},
		fop.OpRmdir:       &fop.PathReq{Path: p},
		fop.OpReadlink:    &fop.PathReq{Path: p},
		fop.OpReaddir:     &fop.ReaddirReq{Path: p},
		fop.OpGetxattr:    &fop.XattrReq{Path: p, Name: "user.x"},
		fop.OpSetxattr:    &fop.XattrReq{Path: p, Name: "user.x", Value: []byte("x")},
		fop.OpListxattr:   &fop.PathReq{Path: p},
		fop.OpRemovexattr: &fop.XattrReq{Path: p, Name: "user.x"},
		fop.OpRename:      &fop.RenameReq{From: p, To: "renamed"},
		fop.OpLink:        &fop.RenameReq{From: p, To: "linked"},
	}
}

func TestPosixInternalDir(t *testing.T) {
	b := startBrick(t)
	if err := os.MkdirAll(filepath.Join(b.dir, internalDir, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{".cais", ".cais/x", ".cais/x/y"} {
		for op, req := range opsOn(p) {
			if err := b.call(op, req, nil); !errors.Is(err, syscall.EACCES) {
				t.Errorf("op %d on %q: %v, want EACCES", op, p, err)
			}
		}
		b.wantErr(syscall.EACCES, fop.OpStatfs, &fop.PathReq{Path: p})
		b.wantErr(syscall.EACCES, fop.OpRename, &fop.RenameReq{From: "y", To: p})
		b.wantErr(syscall.EACCES, fop.OpLink, &fop.RenameReq{From: "y", To: p})
	}
	if ents, _ := os.ReadDir(filepath.Join(b.dir, internalDir)); len(ents) != 1 {
		t.Fatalf(".cais changed: %v", ents)
	}
	// Only the root's .cais is internal.
	b.must(fop.OpMkdir, &fop.CreateReq{Path: "d", Mode: 0o755, GFID: fop.NewGFID()}, nil)
	b.must(fop.OpMkdir, &fop.CreateReq{Path: "d/.cais", Mode: 0o755, GFID: fop.NewGFID()}, nil)
	b.must(fop.OpCreate, &fop.CreateReq{Path: ".caisx", Mode: 0o644, GFID: fop.NewGFID()}, nil)
}

func TestPosixRootAndStatfs(t *testing.T) {
	b := startBrick(t)
	for _, p := range []string{"", "."} {
		e := b.lookup(p)
		if e.Attr.GFID != fop.RootGFID || e.Attr.Ino != 1 || e.Attr.Mode&unix.S_IFMT != unix.S_IFDIR {
			t.Fatalf("root %q: %+v", p, e)
		}
	}
	if got := diskGFID(t, b.dir); got != fop.RootGFID {
		t.Fatalf("root gfid on disk %v", got)
	}
	var sf fop.Statfs
	b.must(fop.OpStatfs, &fop.PathReq{Path: ""}, &sf)
	var want unix.Statfs_t
	if err := unix.Statfs(b.dir, &want); err != nil {
		t.Fatal(err)
	}
	if sf.Blocks != want.Blocks || sf.Files != want.Files || sf.Bsize != uint32(want.Frsize) || sf.NameLen != uint32(want.Namelen) || sf.Bfree == 0 {
		t.Fatalf("statfs %+v, want %+v", sf, want)
	}
	b.wantErr(syscall.EINVAL, fop.OpStatfs, &fop.PathReq{Path: "../x"})

	// A root with another GFID keeps it.
	dir := t.TempDir()
	other := fop.NewGFID()
	if err := unix.Setxattr(dir, fop.GFIDXattr, other[:], 0); err != nil {
		t.Fatal(err)
	}
	s := newSession(dir, discardLog(), nil)
	defer s.Close()
	st, out := s.Handle(context.Background(), fop.OpGetattr, fop.Marshal(&fop.PathReq{}))
	var a fop.Attr
	if st != 0 || fop.Unmarshal(out, &a) != nil || a.GFID != other {
		t.Fatalf("getattr %v %+v", st, a)
	}
	// A brick directory that is gone.
	gone := newSession(filepath.Join(dir, "gone"), discardLog(), nil)
	defer gone.Close()
	if st, _ := gone.Handle(context.Background(), fop.OpGetattr, fop.Marshal(&fop.PathReq{})); st != syscall.ESTALE {
		t.Fatalf("missing brick: %v", st)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// settledFDs counts open descriptors once connections of earlier tests,
// closed asynchronously, are gone.
func settledFDs(t *testing.T) int {
	t.Helper()
	n := openFDs(t)
	for range 100 {
		time.Sleep(20 * time.Millisecond)
		m := openFDs(t)
		if m == n {
			return n
		}
		n = m
	}
	return n
}

func TestPosixHandlesClosedOnClose(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	before := settledFDs(t)
	s := newSession(dir, discardLog(), nil)
	ctx := context.Background()
	var last uint64
	for i := range 50 {
		req := &fop.CreateReq{Path: fmt.Sprintf("f%d", i), Mode: 0o644, GFID: fop.NewGFID(), Flags: unix.O_RDWR}
		st, out := s.Handle(ctx, fop.OpCreate, fop.Marshal(req))
		out, _, _ = fop.SplitParentAttr(out)
		var rep fop.OpenReply
		if st != 0 || fop.Unmarshal(out, &rep) != nil {
			t.Fatalf("create: %v", st)
		}
		if rep.Handle <= last {
			t.Fatalf("handle %d after %d", rep.Handle, last)
		}
		last = rep.Handle
		if i%2 == 0 {
			if st, _ := s.Handle(ctx, fop.OpRelease, fop.Marshal(&fop.HandleReq{Handle: rep.Handle})); st != 0 {
				t.Fatalf("release: %v", st)
			}
		}
	}
	if last != 50 {
		t.Fatalf("last handle %d, want 50", last)
	}
	if got := openFDs(t); got != before+1+25 {
		t.Fatalf("%d descriptors open, want %d", got, before+1+25)
	}
	s.Close()
	if got := openFDs(t); got != before {
		t.Fatalf("%d descriptors open after Close, want %d", got, before)
	}
	if st, _ := s.Handle(ctx, fop.OpGetattr, fop.Marshal(&fop.PathReq{})); st == 0 {
		t.Fatal("a closed session still serves")
	}

	// Over a connection: closing it releases the session's files.
	b := startBrick(t)
	before = settledFDs(t)
	for range 20 {
		b.must(fop.OpOpen, &fop.OpenReq{Path: "", Flags: unix.O_RDONLY}, nil)
	}
	if got := openFDs(t); got != before+20 {
		t.Fatalf("%d descriptors open, want %d", got, before+20)
	}
	b.cl.Close()
	deadline := time.Now().Add(5 * time.Second)
	for openFDs(t) > before-3 { // the two ends of the connection and the session's root go too
		if time.Now().After(deadline) {
			t.Fatalf("%d descriptors still open, %d before", openFDs(t), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPosixGarbage(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	s := newSession(dir, discardLog(), nil)
	defer s.Close()
	ctx := context.Background()
	valid := map[uint16][]byte{}
	for op, m := range opsOn("x") {
		valid[op] = fop.Marshal(m)
	}
	valid[fop.OpRead] = fop.Marshal(&fop.ReadReq{Handle: 1, Size: 1})
	valid[fop.OpWrite] = fop.Marshal(&fop.WriteReq{Handle: 1, Data: []byte("x")})
	valid[fop.OpRelease] = fop.Marshal(&fop.HandleReq{Handle: 1})
	valid[fop.OpFsync] = fop.Marshal(&fop.HandleReq{Handle: 1})
	valid[fop.OpStatfs] = fop.Marshal(&fop.PathReq{})
	for op := fop.OpLookup; op <= fop.OpStatfs; op++ {
		v, ok := valid[op]
		if !ok {
			t.Fatalf("no valid request for op %d", op)
		}
		garbage := [][]byte{
			nil, {1}, {1, 2, 3}, {0xff, 0xff, 0xff, 0xff, 1, 2},
			append(slices.Clone(v), 0),     // trailing byte
			v[:len(v)-1],                   // truncated
			bytes.Repeat([]byte{0xff}, 64), // huge lengths
		}
		for _, g := range garbage {
			if st, _ := s.Handle(ctx, op, g); st != syscall.EINVAL {
				t.Errorf("op %d payload %x: %v, want EINVAL", op, g, st)
			}
		}
	}
	for _, op := range []uint16{0, 2, 99, fop.OpStatfs + 1, 500, 0xffff} {
		if st, _ := s.Handle(ctx, op, nil); st != syscall.ENOSYS {
			t.Errorf("op %d: %v, want ENOSYS", op, st)
		}
	}
	if st, _ := s.Handle(ctx, rpc.OpPing, nil); st != syscall.ENOSYS {
		t.Errorf("ping without a pinger: %v", st)
	}
	ps := newSession(dir, discardLog(), func() (syscall.Errno, []byte) { return 0, []byte("pong") })
	defer ps.Close()
	if st, out := ps.Handle(ctx, rpc.OpPing, []byte("ignored")); st != 0 || string(out) != "pong" {
		t.Errorf("ping: %v %q", st, out)
	}
}

func TestPosixConcurrent(t *testing.T) {
	b := startBrick(t)
	b.concurrent = true
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 16 {
		wg.Go(func() {
			for i := range 50 {
				p := fmt.Sprintf("w%d-%d", w, i)
				var rep fop.OpenReply
				if err := b.call(fop.OpCreate, &fop.CreateReq{Path: p, Mode: 0o644, GFID: fop.NewGFID(), Flags: unix.O_RDWR}, &rep); err != nil {
					errs <- err
					return
				}
				var wr fop.WriteReply
				if err := b.call(fop.OpWrite, &fop.WriteReq{Handle: rep.Handle, Data: []byte(p)}, &wr); err != nil {
					errs <- err
					return
				}
				out, err := b.cl.Call(context.Background(), fop.OpRead, fop.Marshal(&fop.ReadReq{Handle: rep.Handle, Size: 100}))
				if err != nil || string(out) != p {
					errs <- fmt.Errorf("read %q: %v", out, err)
					return
				}
				// A release racing a read must not break the read.
				var inner sync.WaitGroup
				inner.Go(func() {
					_, _ = b.cl.Call(context.Background(), fop.OpRead, fop.Marshal(&fop.ReadReq{Handle: rep.Handle, Size: 100}))
				})
				if err := b.call(fop.OpRelease, &fop.HandleReq{Handle: rep.Handle}, nil); err != nil {
					errs <- err
					return
				}
				inner.Wait()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	checkOnce(t, b.readdirAll("", 100), 16*50)
}

// servedBrick prepares a brick directory for a new volume and makes a
// certificate for its server.
func servedBrick(t *testing.T) (dir, volID string, cert tls.Certificate) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "brick")
	volID = uuid.NewString()
	if _, err := Prepare(dir, "host:"+dir, volID, true); err != nil {
		t.Fatal(err)
	}
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if cert, err = pki.SelfSigned(key, "brick"); err != nil {
		t.Fatal(err)
	}
	return dir, volID, cert
}

// TestServeSessions runs brick.Serve with TLS: the ping answers as before
// and the file operations are served.
func TestServeFileOps(t *testing.T) {
	requireRoot(t)
	dir, volID, cert := servedBrick(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	cfg := ServerConfig{Volume: "v", VolumeID: volID, BrickID: "b1", Path: dir, Listen: "127.0.0.1:0", TLS: &tls.Config{Certificates: []tls.Certificate{cert}}}
	go func() { done <- Serve(ctx, discardLog(), cfg, func(a net.Addr) { addrc <- a }) }()
	var addr net.Addr
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatal(err)
	}
	clientTLS := &tls.Config{InsecureSkipVerify: true}
	id, err := Ping(ctx, addr.String(), clientTLS)
	if err != nil || id.VolumeID != volID || id.BrickID != "b1" || id.PID != os.Getpid() {
		t.Fatalf("ping: %+v %v", id, err)
	}
	c, err := tls.Dial("tcp", addr.String(), clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	cl := rpc.NewClient(c)
	defer cl.Close()
	out, err := cl.Call(ctx, fop.OpLookup, fop.Marshal(&fop.PathReq{}))
	var e fop.Entry
	if err != nil || fop.Unmarshal(out, &e) != nil || e.Attr.GFID != fop.RootGFID {
		t.Fatalf("lookup: %+v %v", e, err)
	}
	// A brick whose mark is gone fails its ping.
	if err := unix.Removexattr(dir, VolumeIDXattr); err != nil {
		t.Fatal(err)
	}
	if _, err := Ping(ctx, addr.String(), clientTLS); err == nil || !strings.Contains(err.Error(), "no volume ID mark") {
		t.Fatalf("ping of an unmarked brick: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// FuzzSession feeds arbitrary calls to a session on a temporary brick: no
// call may panic or make anything outside the brick.
func FuzzSession(f *testing.F) {
	requireRoot(f)
	base := f.TempDir()
	dir := filepath.Join(base, "brick")
	sentinel := filepath.Join(base, "sentinel")
	for _, d := range []string{dir, sentinel} {
		if err := os.Mkdir(d, 0o755); err != nil {
			f.Fatal(err)
		}
	}
	// Ways out for the fuzzer to try.
	for name, target := range map[string]string{"up": "..", "sent": sentinel, "slash": "/", "rel": "../sentinel"} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			f.Fatal(err)
		}
	}
	for op, m := range opsOn("a") {
		f.Add(op, fop.Marshal(m))
	}
	for op, m := range opsOn("sent/x") {
		f.Add(op, fop.Marshal(m))
	}
	f.Add(fop.OpCreate, fop.Marshal(&fop.CreateReq{Path: "f", Mode: 0o644, GFID: fop.NewGFID(), Flags: unix.O_RDWR}))
	f.Add(fop.OpWrite, fop.Marshal(&fop.WriteReq{Handle: 1, Data: []byte("data")}))
	f.Add(fop.OpRead, fop.Marshal(&fop.ReadReq{Handle: 1, Size: 10}))
	f.Add(fop.OpFsync, fop.Marshal(&fop.HandleReq{Handle: 1, Flag: true}))
	f.Add(fop.OpRelease, fop.Marshal(&fop.HandleReq{Handle: 1}))
	f.Add(fop.OpRename, fop.Marshal(&fop.RenameReq{From: "f", To: "up/x"}))
	f.Add(fop.OpStatfs, fop.Marshal(&fop.PathReq{}))
	f.Add(fop.OpReaddir, fop.Marshal(&fop.ReaddirReq{Path: "", Max: 3}))
	f.Add(fop.OpSetxattr, fop.Marshal(&fop.XattrReq{Path: "", Name: "user.x", Value: []byte("v")}))
	s := newSession(dir, discardLog(), nil)
	f.Cleanup(s.Close)
	outsideBefore := listNames(f, base)
	f.Fuzz(func(t *testing.T, op uint16, payload []byte) {
		if op > 200 {
			op = fop.OpLookup + op%(fop.OpStatfs-fop.OpLookup+2)
		}
		s.serve(context.Background(), op, payload, &parentAttr{want: true})
		if ents, err := os.ReadDir(sentinel); err != nil || len(ents) != 0 {
			t.Fatalf("op %d %x: the sentinel changed: %v %v", op, payload, names2(ents), err)
		}
		if got := listNames(t, base); !slices.Equal(got, outsideBefore) {
			t.Fatalf("op %d %x: beside the brick: %v, was %v", op, payload, got, outsideBefore)
		}
	})
}

func listNames(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return names2(ents)
}

func names2(ents []os.DirEntry) []string {
	var n []string
	for _, e := range ents {
		n = append(n, e.Name())
	}
	return n
}

// TestPosixProcfsXattrs runs the tests that touch extended attributes
// again through /proc/self/fd, as on kernels without the *xattrat calls.
func TestPosixProcfsXattrs(t *testing.T) {
	requireRoot(t)
	newSession(t.TempDir(), discardLog(), nil).Close() // settle the probe before overriding it
	t.Logf("*xattrat system calls in use: %v", xattrAt.Load())
	was := xattrAt.Load()
	xattrAt.Store(false)
	defer xattrAt.Store(was)
	for name, test := range map[string]func(*testing.T){
		"CreateWriteRead": TestPosixCreateWriteRead,
		"Setattr":         TestPosixSetattr,
		"MkdirRmdir":      TestPosixMkdirRmdirUnlink,
		"Symlink":         TestPosixSymlinkReadlink,
		"Readdir":         TestPosixReaddir,
		"Xattrs":          TestPosixXattrs,
		"Escapes":         TestPosixEscapes,
		"Root":            TestPosixRootAndStatfs,
	} {
		t.Run(name, test)
	}
}

// A client that does not say hello (an older mount) gets replies as they
// were: no directory attributes after an entry call's, no flags after a
// listing's.
func TestNoHelloNoAdditions(t *testing.T) {
	b := startBrick(t)
	c, err := net.Dial("tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	old := rpc.NewClient(c)
	defer old.Close()
	ctx := context.Background()
	out, err := old.Call(ctx, fop.OpMkdir, fop.Marshal(&fop.CreateReq{Path: "d", Mode: 0o755, GFID: fop.NewGFID()}))
	if err != nil {
		t.Fatal(err)
	}
	var a fop.Attr
	if err := fop.Unmarshal(out, &a); err != nil {
		t.Fatalf("mkdir reply to a client without hello: %v", err)
	}
	out, err = old.Call(ctx, fop.OpReaddir, fop.Marshal(&fop.ReaddirReq{Path: ""}))
	if err != nil {
		t.Fatal(err)
	}
	var r fop.ReaddirReply
	if err := fop.Unmarshal(out, &r); err != nil || len(r.Entries) != 1 || r.Entries[0].Xattrs != 0 {
		t.Fatalf("listing for a client without hello: %v, %+v", err, r)
	}
	// The hello answers the features the brick sends: over TCP, not the
	// local descriptors.
	out, err = old.Call(ctx, fop.OpHello, fop.Marshal(&fop.Hello{Features: fop.ClientFeatures | 1<<30}))
	var h fop.Hello
	if err != nil || fop.Unmarshal(out, &h) != nil || h.Features != fop.ClientFeatures&^fop.FeatLocalFD {
		t.Fatalf("hello: %v, features %b", err, h.Features)
	}
}

// A volume path longer than PATH_MAX (a local file system serves one to a
// process deep enough in it) is served: the brick walks it in parts.
func TestPathLongerThanPathMax(t *testing.T) {
	b := startBrick(t)
	p := "top"
	b.must(fop.OpMkdir, &fop.CreateReq{Path: p, Mode: unix.S_IFDIR | 0o755, GFID: fop.NewGFID()}, nil)
	for len(p) < 5000 {
		p += "/" + strings.Repeat("d", 255)
		b.must(fop.OpMkdir, &fop.CreateReq{Path: p, Mode: unix.S_IFDIR | 0o755, GFID: fop.NewGFID()}, nil)
	}
	var r fop.ReaddirReply
	b.must(fop.OpReaddir, &fop.ReaddirReq{Path: p, Max: 10}, &r)
	b.must(fop.OpRmdir, &fop.PathReq{Path: p}, nil)
	b.wantErr(syscall.ENOENT, fop.OpGetattr, &fop.PathReq{Path: p})
}
