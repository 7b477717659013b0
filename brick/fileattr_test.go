package brick

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/fop"
)

// An open file's attributes are reached by its handle, also once its last
// name is gone.
func TestFileAttrByHandle(t *testing.T) {
	b := startBrick(t)
	rep, g := b.create("f", 0o644, unix.O_RDWR)
	b.write(rep.Handle, 0, "Hello, World!")
	b.must(fop.OpUnlink, &fop.PathReq{Path: "f"}, nil)

	var a fop.Attr
	b.must(fop.OpFgetattr, &fop.HandleReq{Handle: rep.Handle}, &a)
	if a.Nlink != 0 || a.Size != 13 || a.GFID != g || a.Ino != foldIno(g) {
		t.Fatalf("fgetattr after unlink: %+v", a)
	}
	b.must(fop.OpFsetattr, &fop.FsetattrReq{Handle: rep.Handle, Attr: fop.SetattrReq{
		Valid: fop.SetSize | fop.SetMode | fop.SetUID | fop.SetGID | fop.SetMtime | fop.SetAtimeNow,
		Size:  3, Mode: 0o4600, UID: 7, GID: 8, Mtime: 1234567890123456789,
	}}, &a)
	if a.Size != 3 || a.Mode != unix.S_IFREG|0o4600 || a.UID != 7 || a.GID != 8 || a.Mtime != 1234567890123456789 {
		t.Fatalf("fsetattr: %+v", a)
	}
	if got := b.read(rep.Handle, 0, 100); got != "Hel" {
		t.Fatalf("read after ftruncate: %q", got)
	}
	b.must(fop.OpRelease, &fop.HandleReq{Handle: rep.Handle}, nil)
	b.wantErr(syscall.EBADF, fop.OpFgetattr, &fop.HandleReq{Handle: rep.Handle})
	b.wantErr(syscall.EBADF, fop.OpFsetattr, &fop.FsetattrReq{Handle: 999, Attr: fop.SetattrReq{Valid: fop.SetMode}})
	b.wantErr(syscall.EINVAL, fop.OpFsetattr, &fop.FsetattrReq{Handle: rep.Handle, Attr: fop.SetattrReq{Valid: fop.SetSize, Size: 1 << 63}})
}

// Entries made in a set-group-ID directory take its group, and
// directories its set-group-ID bit, whoever asks.
func TestSetgidDirectoryInherits(t *testing.T) {
	b := startBrick(t)
	b.must(fop.OpMkdir, &fop.CreateReq{Path: "sg", Mode: unix.S_IFDIR | 0o2775, UID: 0, GID: 500, GFID: fop.NewGFID()}, nil)
	if st := b.stat("sg"); st.Mode&0o7777 != 0o2775 || st.Gid != 500 {
		t.Fatalf("sg: mode %o gid %d", st.Mode, st.Gid)
	}
	b.create("sg/f", 0o644, unix.O_WRONLY)
	b.must(fop.OpMkdir, &fop.CreateReq{Path: "sg/d", Mode: unix.S_IFDIR | 0o755, UID: 9, GID: 9, GFID: fop.NewGFID()}, nil)
	b.must(fop.OpMknod, &fop.CreateReq{Path: "sg/p", Mode: unix.S_IFIFO | 0o600, UID: 9, GID: 9, GFID: fop.NewGFID()}, nil)
	b.must(fop.OpSymlink, &fop.CreateReq{Path: "sg/s", Mode: unix.S_IFLNK | 0o777, UID: 9, GID: 9, GFID: fop.NewGFID(), Target: "x"}, nil)
	for name, wantMode := range map[string]uint32{"sg/f": 0o644, "sg/d": 0o2755, "sg/p": 0o600, "sg/s": 0o777} {
		st := b.stat(name)
		if st.Gid != 500 || st.Mode&0o7777 != wantMode {
			t.Errorf("%s: gid %d mode %o, want gid 500 mode %o", name, st.Gid, st.Mode&0o7777, wantMode)
		}
	}
	// Outside a set-group-ID directory the caller's group stays.
	b.must(fop.OpMkdir, &fop.CreateReq{Path: "plain", Mode: unix.S_IFDIR | 0o755, UID: 9, GID: 9, GFID: fop.NewGFID()}, nil)
	if st := b.stat("plain"); st.Gid != 9 || st.Mode&0o7777 != 0o755 {
		t.Errorf("plain: gid %d mode %o", st.Gid, st.Mode&0o7777)
	}
	if _, err := os.Stat(filepath.Join(b.dir, "sg", "f")); err != nil {
		t.Fatal(err)
	}
}

// Every kind of entry gets the owner and mode asked for, whether it is
// the brick's own (no chown is needed, and it is made with its mode) or
// not, in a plain and in a set-group-ID directory, whatever the brick's
// umask; the reply says so too.
func TestNewEntryOwner(t *testing.T) {
	b := startBrick(t)
	b.must(fop.OpMkdir, &fop.CreateReq{Path: "sg", Mode: unix.S_IFDIR | 0o2777, UID: 0, GID: 500, GFID: fop.NewGFID()}, nil)
	b.must(fop.OpMkdir, &fop.CreateReq{Path: "plain", Mode: unix.S_IFDIR | 0o777, GFID: fop.NewGFID()}, nil)
	old := unix.Umask(0o022)
	defer unix.Umask(old)
	uid, gid := uint32(os.Geteuid()), uint32(os.Getegid())
	type owner struct{ uid, gid uint32 }
	for _, dir := range []string{"plain", "sg"} {
		for i, o := range []owner{{uid, gid}, {uid, 7}, {7, gid}, {7, 8}} {
			want := o
			if dir == "sg" {
				want.gid = 500
			}
			mk := func(kind string, op uint16, mode uint32) {
				t.Helper()
				p := fmt.Sprintf("%s/%s%d", dir, kind, i)
				req := &fop.CreateReq{Path: p, Mode: mode, UID: o.uid, GID: o.gid, GFID: fop.NewGFID(), Target: "t", Flags: unix.O_WRONLY}
				var a fop.Attr
				if op == fop.OpCreate {
					var r fop.OpenReply
					b.must(op, req, &r)
					a = r.Attr
				} else {
					b.must(op, req, &a)
				}
				st := b.stat(p)
				if st.Uid != want.uid || st.Gid != want.gid || a.UID != want.uid || a.GID != want.gid {
					t.Errorf("%s asked as %d:%d: %d:%d on the brick, %d:%d in the reply, want %d:%d",
						p, o.uid, o.gid, st.Uid, st.Gid, a.UID, a.GID, want.uid, want.gid)
				}
				perm := mode & 0o7777
				if dir == "sg" && (kind == "d" || kind == "D") {
					perm |= unix.S_ISGID
				}
				if kind != "s" && (st.Mode&0o7777 != perm || a.Mode&0o7777 != perm) {
					t.Errorf("%s: mode %o on the brick, %o in the reply, want %o", p, st.Mode&0o7777, a.Mode&0o7777, perm)
				}
			}
			mk("f", fop.OpCreate, unix.S_IFREG|0o640)
			mk("d", fop.OpMkdir, unix.S_IFDIR|0o750)
			mk("p", fop.OpMknod, unix.S_IFIFO|0o600)
			mk("s", fop.OpSymlink, unix.S_IFLNK|0o777)
			// Modes the brick's umask (022 or 077) would cut.
			mk("F", fop.OpCreate, unix.S_IFREG|0o666)
			mk("D", fop.OpMkdir, unix.S_IFDIR|0o777)
			mk("P", fop.OpMknod, unix.S_IFIFO|0o677)
		}
	}
}

// On a brick file system mounted with grpid, new entries take their
// directory's group whatever it is: the brick still gives them the group
// asked for.
func TestNewEntryOwnerGrpid(t *testing.T) {
	requireRoot(t)
	base := t.TempDir()
	img, mnt := filepath.Join(base, "fs.img"), filepath.Join(base, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("truncate", "-s", "32M", img).CombinedOutput(); err != nil {
		t.Skipf("truncate: %v %s", err, out)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", img).CombinedOutput(); err != nil {
		t.Skipf("mkfs.ext4: %v %s", err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop,grpid", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("no loop mount here: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount: %v %s", err, out)
		}
	})
	b := startBrickIn(t, mnt)
	if err := os.Chown(b.dir, 0, 1234); err != nil {
		t.Fatal(err)
	}
	uid, gid := uint32(os.Geteuid()), uint32(os.Getegid())
	for i, c := range []struct {
		op   uint16
		mode uint32
	}{{fop.OpCreate, unix.S_IFREG | 0o644}, {fop.OpMkdir, unix.S_IFDIR | 0o755}, {fop.OpMknod, unix.S_IFIFO | 0o666}, {fop.OpCreate, unix.S_IFREG | 0o640}} {
		p := fmt.Sprintf("e%d", i)
		req := &fop.CreateReq{Path: p, Mode: c.mode, UID: uid, GID: gid, GFID: fop.NewGFID(), Flags: unix.O_WRONLY}
		if c.op == fop.OpCreate {
			b.must(c.op, req, &fop.OpenReply{})
		} else {
			b.must(c.op, req, &fop.Attr{})
		}
		if st := b.stat(p); st.Uid != uid || st.Gid != gid || st.Mode&0o7777 != c.mode&0o7777 {
			t.Errorf("%s: %d:%d mode %o, want %d:%d mode %o", p, st.Uid, st.Gid, st.Mode&0o7777, uid, gid, c.mode&0o7777)
		}
	}
}

// Extended attributes of an open file by handle, after its name is gone;
// the brick's own names stay hidden and refused.
func TestFileXattrsByHandle(t *testing.T) {
	b := startBrick(t)
	rep, _ := b.create("f", 0o644, unix.O_RDWR)
	b.must(fop.OpUnlink, &fop.PathReq{Path: "f"}, nil)
	h := rep.Handle
	b.must(fop.OpFsetxattr, &fop.FxattrReq{Handle: h, Name: "user.k", Value: []byte("v")}, nil)
	b.wantErr(syscall.EEXIST, fop.OpFsetxattr, &fop.FxattrReq{Handle: h, Name: "user.k", Value: []byte("w"), Flags: unix.XATTR_CREATE})
	var v fop.Blob
	b.must(fop.OpFgetxattr, &fop.FxattrReq{Handle: h, Name: "user.k"}, &v)
	if string(v.Data) != "v" {
		t.Fatalf("fgetxattr: %q", v.Data)
	}
	b.must(fop.OpFlistxattr, &fop.FxattrReq{Handle: h}, &v)
	if string(v.Data) != "user.k\x00" {
		t.Fatalf("flistxattr: %q (the GFID must stay hidden)", v.Data)
	}
	b.wantErr(syscall.EPERM, fop.OpFgetxattr, &fop.FxattrReq{Handle: h, Name: fop.GFIDXattr})
	b.wantErr(syscall.EPERM, fop.OpFsetxattr, &fop.FxattrReq{Handle: h, Name: fop.GFIDXattr, Value: []byte("x")})
	b.must(fop.OpFremovexattr, &fop.FxattrReq{Handle: h, Name: "user.k"}, nil)
	b.wantErr(syscall.ENODATA, fop.OpFgetxattr, &fop.FxattrReq{Handle: h, Name: "user.k"})
	b.wantErr(syscall.EBADF, fop.OpFgetxattr, &fop.FxattrReq{Handle: 999, Name: "user.k"})
}
