package mount

import (
	"bytes"
	"context"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/hanwen/go-fuse/v2/splice"
	"golang.org/x/sys/unix"
)

// splicedFile answers every read with a splicedRead of its backing file,
// and counts the reads go-fuse did not splice (Bytes).
type splicedFile struct {
	fs.Inode
	backing   *os.File
	size      int64
	unspliced *atomic.Int32
}

type countingRead struct {
	*splicedRead
	unspliced *atomic.Int32
}

func (r countingRead) Bytes(buf []byte) ([]byte, fuse.Status) {
	r.unspliced.Add(1)
	return r.splicedRead.Bytes(buf)
}

func (f *splicedFile) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return nil, 0, 0
}

func (f *splicedFile) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o444
	out.Size = uint64(f.size)
	return 0
}

func (f *splicedFile) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	fd, err := unix.FcntlInt(f.backing.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fs.ToErrno(err)
	}
	r := &splicedRead{fd: fd, off: off, size: len(dest), slow: func() ([]byte, fuse.Status) { return nil, fuse.EIO }}
	return countingRead{r, f.unspliced}, 0
}

// A read as large as the mount asks for (max_read) is spliced from the
// copy's descriptor, a short one at the end of the file included, and
// the data is the file's.
func TestSplicedReads(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
	if n := MaxSplicedRead(); n+spliceSlack > splice.MaxPipeSize() || n < 64<<10 {
		t.Fatalf("MaxSplicedRead %d: a reply of it does not fit a pipe of %d, or it is too small to be worth it", n, splice.MaxPipeSize())
	}
	dir := t.TempDir()
	data := make([]byte, 3<<20+123)
	rand.New(rand.NewSource(1)).Read(data)
	backing := filepath.Join(dir, "backing")
	if err := os.WriteFile(backing, data, 0o644); err != nil {
		t.Fatal(err)
	}
	bf, err := os.Open(backing)
	if err != nil {
		t.Fatal(err)
	}
	defer bf.Close()
	var unspliced atomic.Int32
	file := &splicedFile{backing: bf, size: int64(len(data)), unspliced: &unspliced}
	root := &fs.Inode{}
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	srv, err := fs.Mount(mnt, root, &fs.Options{
		OnAdd: func(ctx context.Context) {
			root.AddChild("f", root.NewPersistentInode(ctx, file, fs.StableAttr{Mode: syscall.S_IFREG}), false)
		},
		MountOptions: fuse.MountOptions{
			DirectMount: true,
			MaxWrite:    1 << 20,
			Options:     []string{"max_read=" + strconv.Itoa(MaxSplicedRead())},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Unmount()
	got, err := os.ReadFile(filepath.Join(mnt, "f"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes through the mount, not the file's %d", len(got), len(data))
	}
	// O_DIRECT reads go to the mount as asked: max_read each, and a
	// short one at the end.
	f, err := os.OpenFile(filepath.Join(mnt, "f"), os.O_RDONLY|syscall.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 2<<20)
	n, err := f.ReadAt(buf, int64(len(data))-(1<<20))
	if n != 1<<20 || !bytes.Equal(buf[:n], data[len(data)-(1<<20):]) {
		t.Fatalf("read across the end: %d bytes, %v", n, err)
	}
	if u := unspliced.Load(); u != 0 {
		t.Fatalf("%d reads were not spliced", u)
	}
}

// A spliced read go-fuse reads instead (Bytes) stops at the end of the
// file, and takes the slow way when the descriptor fails.
func TestSplicedReadBytes(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	slow := 0
	r := &splicedRead{fd: fd, off: 4, size: 100, slow: func() ([]byte, fuse.Status) { slow++; return []byte("slow"), fuse.OK }}
	got, st := r.Bytes(make([]byte, 100))
	if st != fuse.OK || string(got) != "456789" || slow != 0 {
		t.Fatalf("read to the end: %q %v (slow %d)", got, st, slow)
	}
	r.Done()
	if r.fd != -1 {
		t.Fatal("Done kept the descriptor")
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
		t.Fatal("Done left the descriptor open")
	}
	bad := &splicedRead{fd: 1 << 20, off: 0, size: 4, slow: func() ([]byte, fuse.Status) { slow++; return []byte("slow"), fuse.OK }}
	if got, st := bad.Bytes(make([]byte, 4)); st != fuse.OK || string(got) != "slow" || slow != 1 {
		t.Fatalf("failed descriptor: %q %v (slow %d), want the slow way's", got, st, slow)
	}
}
