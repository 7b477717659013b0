package e2e

// POSIX behaviour of a cais mount, over the ground pjdfstest covers: each
// system call with its errno cases, permission checks as unprivileged
// users, ownership and timestamps; then extended attributes, hard links,
// mmap, sparse files past 4 GiB, a directory of 100,000 entries, and file
// locks and O_APPEND seen across two mounts of the same volume.
//
// posixSuite runs every case on one volume layout, mounted twice. On a
// volume distributed over two bricks names land on both: a directory's
// entries, its times and its emptiness are spread over the bricks, and
// renames and links cross them. Every expectation is what Linux gives on
// a local ext4 or tmpfs.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/test/clustertest"
)

// posixFS is the mounted volume the tests share: two mounts of one
// distributed volume.
type posixFS struct {
	mnt, mnt2 string
}

// dir makes a fresh directory for one test, owned by root, mode 0755.
func (f *posixFS) dir(t *testing.T) string {
	t.Helper()
	d := filepath.Join(f.mnt, strings.ReplaceAll(t.Name(), "/", "_"))
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// other returns p's path on the second mount.
func (f *posixFS) other(p string) string {
	return filepath.Join(f.mnt2, strings.TrimPrefix(p, f.mnt))
}

// mountPublic mounts HOST:/VOL on a mount point every user can reach (a
// test's scratch directory is root's alone) and unmounts it at the end.
func mountPublic(t *testing.T, c *clustertest.Cluster, n *clustertest.Node, vol, name string, opts ...string) string {
	t.Helper()
	base, err := os.MkdirTemp("", "cais-posix-"+name)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(base, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	n.MustCLI(append(append([]string{"mount", "--log-file", filepath.Join(c.Dir(), "mount-"+name+".log")}, opts...), n.Addr+":/"+vol, mnt)...)
	t.Cleanup(func() {
		for i := 0; i < 50; i++ {
			if err := syscall.Unmount(mnt, 0); err == nil || err == syscall.EINVAL || err == syscall.ENOENT {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		_ = syscall.Unmount(mnt, syscall.MNT_DETACH)
		os.RemoveAll(base)
	})
	return mnt
}

// TestPosixDistribute runs the POSIX behaviour suite on a real mount of
// a volume distributed over two bricks.
func TestPosixDistribute(t *testing.T) {
	posixSuite(t, func(n1, n2 *clustertest.Node) []string {
		return []string{n1.Brick("px1"), n2.Brick("px2")}
	}, true)
}

// TestPosixReplicate runs it on a replica 2 volume over two nodes (without
// the 100,000 entries, which exercise the same listing code).
func TestPosixReplicate(t *testing.T) {
	posixSuite(t, func(n1, n2 *clustertest.Node) []string {
		return []string{"replica", "2", n1.Brick("pr1"), n2.Brick("pr2")}
	}, false)
}

// posixSuite runs the suite on a volume of two nodes made with the given
// layout (the arguments of volume create after its name), mounted once
// through each node. big adds the directory of 100,000 entries.
func posixSuite(t *testing.T, layout func(n1, n2 *clustertest.Node) []string, big bool) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
	c := clustertest.New(t)
	nodes := c.Pool(2)
	n1, n2 := nodes[0], nodes[1]
	n1.MustCLI(append([]string{"volume", "create", "px"}, layout(n1, n2)...)...)
	n1.MustCLI("volume", "start", "px")
	f := &posixFS{mnt: mountPublic(t, c, n1, "px", "a"), mnt2: mountPublic(t, c, n2, "px", "b")}
	// Modes are asserted exactly: no umask, here and in the helpers.
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })

	for _, tc := range []struct {
		name string
		fn   func(*testing.T, *posixFS)
	}{
		{"open", testOpen},
		{"chmod", testChmod},
		{"chown", testChown},
		{"kill_privileges", testKillPriv},
		{"truncate", testTruncate},
		{"link", testLink},
		{"mkdir", testMkdir},
		{"mkfifo_mknod", testMknod},
		{"rename", testRename},
		{"rmdir", testRmdir},
		{"symlink", testSymlink},
		{"unlink", testUnlink},
		{"utimensat", testUtimensat},
		{"permissions", testPermissions},
		{"setgid_dirs", testSetgidDirs},
		{"timestamps", testTimestamps},
		{"open_unlinked", testOpenUnlinked},
		{"xattrs", testXattrs},
		{"hardlinks", testHardLinks},
		{"mmap", testMmap},
		{"sparse_4g", testSparse},
		{"append_two_mounts", testAppendTwoMounts},
		{"locks_two_mounts", testLocks},
		{"dir_100k", testBigDir},
	} {
		if tc.name == "dir_100k" && !big {
			continue
		}
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, f) })
	}
}

// step is one call of a scenario and its expected outcome: an errno (0
// for success), or with out set the value it returns.
type step struct {
	as    cred
	words []string
	err   syscall.Errno
	out   string
}

// do expects the call to end with errno want.
func do(c cred, want syscall.Errno, words ...string) step {
	return step{as: c, words: words, err: want}
}

// val expects the call to succeed and return out.
func val(c cred, out string, words ...string) step {
	return step{as: c, words: words, out: out}
}

// run performs a scenario's steps in order.
func run(t *testing.T, steps []step) {
	t.Helper()
	for _, s := range steps {
		if s.out != "" {
			expectValue(t, s.out, s.as, s.words...)
		} else {
			expect(t, s.err, s.as, s.words...)
		}
	}
}

// kindPath is the path a creating call makes: a symlink's second
// argument, any other's first.
func kindPath(kind []string) string {
	if kind[0] == "symlink" {
		return kind[2]
	}
	return kind[1]
}

func joiner(d string) func(string) string {
	return func(name string) string { return filepath.Join(d, name) }
}

const (
	success = syscall.Errno(0)
	eacces  = syscall.EACCES
	eperm   = syscall.EPERM
	enoent  = syscall.ENOENT
	eexist  = syscall.EEXIST
	enotdir = syscall.ENOTDIR
	eisdir  = syscall.EISDIR
)

// longName is a name one byte too long for NAME_MAX; longPath is a path
// too long for PATH_MAX.
var (
	maxName  = strings.Repeat("n", 255)
	longName = strings.Repeat("n", 256)
	longPath = strings.Repeat("d/", 2048) + "f"
)

func testOpen(t *testing.T, f *posixFS) {
	p := joiner(f.dir(t))
	run(t, []step{
		// Creation: the mode exactly, the caller as owner.
		do(asRoot, success, "chmod", p(""), "0777"),
		do(nobody, success, "open", p("f"), "O_CREAT|O_WRONLY", "0640"),
		val(asRoot, "regular,0640,65534,65534", "lstat", p("f"), "type,mode,uid,gid"),
		do(asRoot, success, "open", p("zero-w"), "O_CREAT|O_WRONLY", "0"),
		do(asRoot, success, "open", p("zero-rw"), "O_CREAT|O_RDWR", "0"),
		do(asRoot, success, "open", p("zero-r"), "O_CREAT|O_RDONLY", "0"),
		val(asRoot, "regular,00", "lstat", p("zero-w"), "type,mode"),
		val(asRoot, "regular,00", "lstat", p("zero-rw"), "type,mode"),
		val(asRoot, "regular,00", "lstat", p("zero-r"), "type,mode"),
		do(asRoot, success, "open", p("all"), "O_CREAT|O_WRONLY", "07777"),
		val(asRoot, "07777", "lstat", p("all"), "mode"),
		// O_CREAT without O_EXCL opens an existing file and keeps its mode.
		do(asRoot, success, "open", p("f"), "O_CREAT|O_RDONLY", "0777"),
		val(asRoot, "0640", "lstat", p("f"), "mode"),
		// O_EXCL.
		do(asRoot, eexist, "open", p("f"), "O_CREAT|O_EXCL|O_WRONLY", "0644"),
		do(asRoot, success, "mkdir", p("d"), "0755"),
		do(asRoot, eexist, "open", p("d"), "O_CREAT|O_EXCL|O_RDONLY", "0644"),
		do(asRoot, success, "symlink", "dangling-target", p("dangling")),
		do(asRoot, eexist, "open", p("dangling"), "O_CREAT|O_EXCL|O_WRONLY", "0644"),
		// Without O_EXCL a dangling symlink is followed: its target is made.
		do(asRoot, success, "open", p("dangling"), "O_CREAT|O_WRONLY", "0604"),
		val(asRoot, "regular,0604", "lstat", p("dangling-target"), "type,mode"),
		// ENOENT, ENOTDIR.
		do(asRoot, enoent, "open", p("missing"), "O_RDONLY"),
		do(asRoot, enoent, "open", p("missing/f"), "O_CREAT|O_WRONLY", "0644"),
		do(asRoot, enotdir, "open", p("f/x"), "O_RDONLY"),
		do(asRoot, enotdir, "open", p("f/x"), "O_CREAT|O_WRONLY", "0644"),
		do(asRoot, enotdir, "open", p("f")+"/", "O_RDONLY"),
		do(asRoot, enotdir, "open", p("f"), "O_RDONLY|O_DIRECTORY"),
		// EISDIR.
		do(asRoot, success, "open", p("d"), "O_RDONLY"),
		do(asRoot, eisdir, "open", p("d"), "O_WRONLY"),
		do(asRoot, eisdir, "open", p("d"), "O_RDWR"),
		do(asRoot, eisdir, "open", p("d"), "O_CREAT|O_RDONLY", "0644"),
		do(asRoot, eisdir, "open", p("d"), "O_RDONLY|O_TRUNC"),
		// ENAMETOOLONG.
		do(asRoot, success, "open", p(maxName), "O_CREAT|O_WRONLY", "0644"),
		do(asRoot, success, "unlink", p(maxName)),
		do(asRoot, syscall.ENAMETOOLONG, "open", p(longName), "O_CREAT|O_WRONLY", "0644"),
		do(asRoot, syscall.ENAMETOOLONG, "open", p(longName), "O_RDONLY"),
		do(asRoot, syscall.ENAMETOOLONG, "open", p(longPath), "O_RDONLY"),
		// ELOOP.
		do(asRoot, success, "symlink", "loop2", p("loop1")),
		do(asRoot, success, "symlink", "loop1", p("loop2")),
		do(asRoot, syscall.ELOOP, "open", p("loop1"), "O_RDONLY"),
		do(asRoot, syscall.ELOOP, "open", p("loop1/f"), "O_CREAT|O_WRONLY", "0644"),
		do(asRoot, success, "symlink", "f", p("tof")),
		do(asRoot, success, "open", p("tof"), "O_RDONLY"),
		do(asRoot, syscall.ELOOP, "open", p("tof"), "O_RDONLY|O_NOFOLLOW"),
		// EACCES: the file's mode, the directory's write and search bits.
		do(asRoot, success, "create", p("root644"), "0644"),
		do(nobody, success, "open", p("root644"), "O_RDONLY"),
		do(nobody, eacces, "open", p("root644"), "O_WRONLY"),
		do(nobody, eacces, "open", p("root644"), "O_RDWR"),
		do(nobody, eacces, "open", p("root644"), "O_WRONLY|O_TRUNC"),
		do(nobody, eacces, "open", p("d/new"), "O_CREAT|O_WRONLY", "0644"),
		do(asRoot, success, "create", p("d/f"), "0644"),
		do(asRoot, success, "chmod", p("d"), "0754"),
		do(nobody, eacces, "open", p("d/f"), "O_RDONLY"),
		do(asRoot, success, "chmod", p("d"), "0755"),
		do(nobody, success, "open", p("d/f"), "O_RDONLY"),
		do(asRoot, success, "chown", p("f"), "65534", "65534"),
		do(asRoot, success, "chmod", p("f"), "0"),
		do(nobody, eacces, "open", p("f"), "O_RDONLY"),
		do(asRoot, success, "open", p("f"), "O_RDWR"), // root is not asked
		// FIFOs are served by the client's kernel.
		do(asRoot, success, "mkfifo", p("fifo"), "0666"),
		do(asRoot, success, "open", p("fifo"), "O_RDONLY|O_NONBLOCK"),
		do(asRoot, syscall.ENXIO, "open", p("fifo"), "O_WRONLY|O_NONBLOCK"),
	})
	// O_TRUNC empties the file; O_APPEND writes at the end whatever the
	// offset.
	name := p("trunc")
	if err := os.WriteFile(name, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(name, unix.O_WRONLY|unix.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	expectValue(t, "0", asRoot, "stat", name, "size")
	fd, err = unix.Open(name, unix.O_WRONLY|unix.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"abc", "def"} {
		// Linux appends even pwrite's data on an O_APPEND descriptor.
		if _, err := unix.Pwrite(fd, []byte("x"), 0); err != nil {
			t.Fatal(err)
		}
		if _, err := unix.Write(fd, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	unix.Close(fd)
	if b, err := os.ReadFile(name); err != nil || string(b) != "xabcxdef" {
		t.Errorf("O_APPEND: %q %v, want %q", b, err, "xabcxdef")
	}
}

func testChmod(t *testing.T, f *posixFS) {
	p := joiner(f.dir(t))
	var steps []step
	// Every type of file but symlinks takes every mode bit, through a
	// symlink too.
	for _, kind := range [][]string{
		{"create", p("reg"), "0644"},
		{"mkdir", p("dir"), "0755"},
		{"mkfifo", p("fifo"), "0644"},
		{"mknod", p("blk"), "b", "0644", "1", "2"},
		{"mknod", p("chr"), "c", "0644", "1", "2"},
	} {
		name := kind[1]
		steps = append(steps,
			do(asRoot, success, kind...),
			do(asRoot, success, "chmod", name, "0111"),
			val(asRoot, "0111", "stat", name, "mode"),
			do(asRoot, success, "chmod", name, "07777"),
			val(asRoot, "07777", "stat", name, "mode"),
			do(asRoot, success, "symlink", name, name+".link"),
			do(asRoot, success, "chmod", name+".link", "0640"),
			val(asRoot, "0640", "stat", name, "mode"),
			val(asRoot, "symlink,0777", "lstat", name+".link", "type,mode"),
		)
	}
	steps = append(steps,
		// Only the owner (and root) may change the mode.
		do(asRoot, success, "create", p("f"), "0644"),
		do(nobody, eperm, "chmod", p("f"), "0600"),
		do(asRoot, success, "chown", p("f"), "65534", "65534"),
		do(nobody, success, "chmod", p("f"), "0600"),
		val(asRoot, "0600", "stat", p("f"), "mode"),
		do(other, eperm, "chmod", p("f"), "0666"),
		// The owner outside the file's group cannot set set-group-ID: it
		// is dropped silently.
		do(asRoot, success, "chown", p("f"), "65534", "0"),
		do(nobody, success, "chmod", p("f"), "02755"),
		val(asRoot, "0755", "stat", p("f"), "mode"),
		do(asRoot, success, "chown", p("f"), "65534", "65532"),
		do(nobodyG, success, "chmod", p("f"), "02755"),
		val(asRoot, "02755", "stat", p("f"), "mode"),
		// Errors on the path.
		do(asRoot, enoent, "chmod", p("missing"), "0644"),
		do(asRoot, enotdir, "chmod", p("f/x"), "0644"),
		do(asRoot, syscall.ENAMETOOLONG, "chmod", p(longName), "0644"),
		do(asRoot, success, "symlink", "loop2", p("loop1")),
		do(asRoot, success, "symlink", "loop1", p("loop2")),
		do(asRoot, syscall.ELOOP, "chmod", p("loop1"), "0644"),
		do(asRoot, success, "chmod", p(""), "0700"),
		do(nobody, eacces, "chmod", p("f"), "0644"), // no search permission
	)
	run(t, steps)
}

func testChown(t *testing.T, f *posixFS) {
	p := joiner(f.dir(t))
	run(t, []step{
		do(asRoot, success, "create", p("f"), "0644"),
		do(asRoot, success, "chown", p("f"), "123", "456"),
		val(asRoot, "123,456", "stat", p("f"), "uid,gid"),
		do(asRoot, success, "chown", p("f"), "-1", "789"),
		val(asRoot, "123,789", "stat", p("f"), "uid,gid"),
		do(asRoot, success, "chown", p("f"), "321", "-1"),
		val(asRoot, "321,789", "stat", p("f"), "uid,gid"),
		// chown follows symlinks, lchown does not.
		do(asRoot, success, "symlink", "f", p("link")),
		do(asRoot, success, "chown", p("link"), "65534", "65534"),
		val(asRoot, "65534,65534", "stat", p("f"), "uid,gid"),
		val(asRoot, "0,0", "lstat", p("link"), "uid,gid"),
		do(asRoot, success, "lchown", p("link"), "65533", "65533"),
		val(asRoot, "65533,65533", "lstat", p("link"), "uid,gid"),
		val(asRoot, "65534,65534", "stat", p("f"), "uid,gid"),
		// An owner may change the group to one of its groups only, and
		// never the owner.
		do(nobody, eperm, "chown", p("f"), "65533", "-1"),
		do(nobodyG, success, "chown", p("f"), "-1", "65532"),
		val(asRoot, "65534,65532", "stat", p("f"), "uid,gid"),
		do(nobodyG, eperm, "chown", p("f"), "-1", "65533"),
		do(nobodyG, success, "chown", p("f"), "65534", "65534"),
		do(other, eperm, "chown", p("f"), "-1", "65533"),
		// An unprivileged chown clears set-user-ID and set-group-ID.
		do(asRoot, success, "chmod", p("f"), "06555"),
		do(nobodyG, success, "chown", p("f"), "-1", "65532"),
		val(asRoot, "0555,65534,65532", "stat", p("f"), "mode,uid,gid"),
		// Errors on the path.
		do(asRoot, enoent, "chown", p("missing"), "1", "1"),
		do(asRoot, enotdir, "chown", p("f/x"), "1", "1"),
		do(asRoot, syscall.ENAMETOOLONG, "chown", p(longName), "1", "1"),
		do(asRoot, success, "symlink", "loop2", p("loop1")),
		do(asRoot, success, "symlink", "loop1", p("loop2")),
		do(asRoot, syscall.ELOOP, "chown", p("loop1"), "1", "1"),
		do(asRoot, success, "lchown", p("loop1"), "1", "1"),
	})
}

// testKillPriv checks what a local file system does to a file's
// set-user-ID and set-group-ID bits and file capabilities when it is
// written, truncated or given away: a writer without CAP_FSETID clears
// set-user-ID, and set-group-ID where the group may execute; a chown
// clears them whoever makes it; any write, truncate or chown drops
// security.capability. The mount does it itself (FUSE_HANDLE_KILLPRIV_V2),
// not the kernel.
func testKillPriv(t *testing.T, f *posixFS) {
	p := joiner(f.dir(t))
	run(t, []step{
		do(asRoot, success, "create", p("f"), "06777"),
		val(asRoot, "06777", "stat", p("f"), "mode"),
		// Root keeps the bits.
		do(asRoot, success, "write", p("f"), "root"),
		val(asRoot, "06777", "stat", p("f"), "mode"),
		do(asRoot, success, "truncate", p("f"), "2"),
		val(asRoot, "06777", "stat", p("f"), "mode"),
		// Others clear them; the same again leaves the mode.
		do(nobody, success, "write", p("f"), "nobody"),
		val(asRoot, "0777,6", "stat", p("f"), "mode,size"),
		do(nobody, success, "write", p("f"), "again"),
		val(asRoot, "0777", "stat", p("f"), "mode"),
		// Set-group-ID without group execute marks mandatory locking
		// and stays.
		do(asRoot, success, "chmod", p("f"), "02767"),
		do(nobody, success, "write", p("f"), "x"),
		val(asRoot, "02767", "stat", p("f"), "mode"),
		do(asRoot, success, "chmod", p("f"), "04767"),
		do(nobody, success, "write", p("f"), "x"),
		val(asRoot, "0767", "stat", p("f"), "mode"),
		// Truncation by path, by descriptor and at open.
		do(asRoot, success, "chmod", p("f"), "06777"),
		do(nobody, success, "truncate", p("f"), "1"),
		val(asRoot, "0777,1", "stat", p("f"), "mode,size"),
		do(asRoot, success, "chmod", p("f"), "06777"),
		do(nobody, success, "ftruncate", p("f"), "O_WRONLY", "3"),
		val(asRoot, "0777,3", "stat", p("f"), "mode,size"),
		do(asRoot, success, "chmod", p("f"), "06777"),
		do(nobody, success, "open", p("f"), "O_WRONLY|O_TRUNC"),
		val(asRoot, "0777,0", "stat", p("f"), "mode,size"),
		// Opening without truncating or writing leaves them.
		do(asRoot, success, "chmod", p("f"), "06777"),
		do(nobody, success, "open", p("f"), "O_WRONLY"),
		val(asRoot, "06777", "stat", p("f"), "mode"),
		// A chown clears them, root's too.
		do(asRoot, success, "chown", p("f"), "0", "0"),
		val(asRoot, "0777", "stat", p("f"), "mode"),
	})
	// The bits set through the other mount: this one clears them once it
	// has seen them, as the kernel of a local file system would.
	run(t, []step{do(asRoot, success, "chmod", f.other(p("f")), "06777")})
	waitMode(t, p("f"), 0o6777)
	run(t, []step{
		do(nobody, success, "write", p("f"), "y"),
		val(asRoot, "0777", "stat", p("f"), "mode"),
	})
	waitMode(t, f.other(p("f")), 0o777)

	// File capabilities go with any write, truncate or chown.
	caps := []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0} // v2: cap_net_bind_service
	for _, tc := range []struct {
		name string
		op   []string
	}{
		{"write", []string{"write", p("c"), "data"}},
		{"truncate", []string{"truncate", p("c"), "1"}},
		{"chown", []string{"chown", p("c"), "0", "0"}},
	} {
		if err := os.WriteFile(p("c"), []byte("c"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Setxattr(p("c"), "security.capability", caps, 0); err != nil {
			t.Fatalf("set file capabilities: %v", err)
		}
		if _, err := unix.Getxattr(p("c"), "security.capability", make([]byte, 64)); err != nil {
			t.Fatalf("%s: capabilities not set: %v", tc.name, err)
		}
		run(t, []step{do(asRoot, success, tc.op...)})
		if _, err := unix.Getxattr(p("c"), "security.capability", make([]byte, 64)); err != unix.ENODATA {
			t.Errorf("%s: security.capability after it: %v, want ENODATA", tc.name, err)
		}
		if err := os.Remove(p("c")); err != nil {
			t.Fatal(err)
		}
	}
}

// waitMode waits until path p, through its mount, shows mode m (another
// mount changed it; the change reaches this one's caches by upcall).
func waitMode(t *testing.T, p string, m uint32) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var st unix.Stat_t
		err := unix.Stat(p, &st)
		if err == nil && st.Mode&0o7777 == m {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: mode %o (%v), want %o", p, st.Mode&0o7777, err, m)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testTruncate(t *testing.T, f *posixFS) {
	p := joiner(f.dir(t))
	run(t, []step{
		do(asRoot, success, "create", p("f"), "0644"),
		do(asRoot, success, "truncate", p("f"), "1234567"),
		val(asRoot, "1234567", "stat", p("f"), "size"),
		do(asRoot, success, "truncate", p("f"), "567"),
		val(asRoot, "567", "stat", p("f"), "size"),
		do(asRoot, success, "ftruncate", p("f"), "O_RDWR", "89"),
		val(asRoot, "89", "stat", p("f"), "size"),
		do(asRoot, success, "ftruncate", p("f"), "O_WRONLY", "0"),
		val(asRoot, "0", "stat", p("f"), "size"),
		do(asRoot, syscall.EINVAL, "ftruncate", p("f"), "O_RDONLY", "10"),
		do(asRoot, syscall.EINVAL, "truncate", p("f"), "-1"),
		do(asRoot, syscall.EINVAL, "ftruncate", p("f"), "O_RDWR", "-1"),
		// Write permission is needed, ownership is not.
		do(nobody, eacces, "truncate", p("f"), "10"),
		do(asRoot, success, "chmod", p("f"), "0666"),
		do(nobody, success, "truncate", p("f"), "10"),
		do(nobody, success, "ftruncate", p("f"), "O_WRONLY", "11"),
		val(asRoot, "11", "stat", p("f"), "size"),
		do(asRoot, success, "mkdir", p("d"), "0755"),
		do(asRoot, eisdir, "truncate", p("d"), "0"),
		do(asRoot, enoent, "truncate", p("missing"), "0"),
		do(asRoot, enotdir, "truncate", p("f/x"), "0"),
		do(asRoot, syscall.ENAMETOOLONG, "truncate", p(longName), "0"),
	})
	// Growing reads back zeros; shrinking drops the tail.
	name := p("data")
	if err := os.WriteFile(name, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(name, 4); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(name, 8); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(name); err != nil || string(b) != "0123\x00\x00\x00\x00" {
		t.Errorf("after shrink and grow: %q %v", b, err)
	}
	if b, err := os.ReadFile(f.other(name)); err != nil || string(b) != "0123\x00\x00\x00\x00" {
		t.Errorf("the other mount reads %q %v", b, err)
	}
}

func testLink(t *testing.T, f *posixFS) {
	p := joiner(f.dir(t))
	var steps []step
	for _, kind := range [][]string{
		{"create", p("reg"), "0644"},
		{"mkfifo", p("fifo"), "0644"},
		{"mknod", p("blk"), "b", "0644", "1", "2"},
		{"mknod", p("chr"), "c", "0644", "1", "2"},
		{"symlink", "reg", p("sym")},
	} {
		name := kindPath(kind)
		typ := map[string]string{"create": "regular", "mkfifo": "fifo", "symlink": "symlink"}[kind[0]]
		if kind[0] == "mknod" {
			typ = map[string]string{"b": "block", "c": "char"}[kind[2]]
		}
		steps = append(steps, do(asRoot, success, kind...))
		// Many names, so that some hash to the other brick.
		for i := range 4 {
			steps = append(steps, do(asRoot, success, "link", name, name+".l"+strconv.Itoa(i)))
		}
		steps = append(steps,
			val(asRoot, typ+",5", "lstat", name, "type,nlink"),
			val(asRoot, typ+",5", "lstat", name+".l3", "type,nlink"),
			do(asRoot, success, "unlink", name),
			val(asRoot, typ+",4", "lstat", name+".l0", "type,nlink"),
		)
	}
	steps = append(steps,
		do(asRoot, success, "create", p("f"), "0644"),
		do(asRoot, success, "create", p("g"), "0644"),
		do(asRoot, eexist, "link", p("f"), p("g")),
		do(asRoot, eexist, "link", p("f"), p("f")),
		do(asRoot, success, "mkdir", p("d"), "0755"),
		do(asRoot, eperm, "link", p("d"), p("d2")),
		do(asRoot, eexist, "link", p("f"), p("d")),
		do(asRoot, enoent, "link", p("missing"), p("x")),
		do(asRoot, enoent, "link", p("f"), p("missing/x")),
		do(asRoot, enotdir, "link", p("f/x"), p("x")),
		do(asRoot, enotdir, "link", p("f"), p("g/x")),
		do(asRoot, syscall.ENAMETOOLONG, "link", p("f"), p(longName)),
		do(asRoot, success, "link", p("f"), p(maxName)),
		// Write permission on the new name's directory.
		do(asRoot, success, "chmod", p("f"), "0666"),
		do(nobody, eacces, "link", p("f"), p("d/x")),
		do(asRoot, success, "chmod", p("d"), "0777"),
		do(nobody, success, "link", p("f"), p("d/x")),
		val(asRoot, "3", "stat", p("f"), "nlink"),
	)
	run(t, steps)
}

func testMkdir(t *testing.T, f *posixFS) {
	p := joiner(f.dir(t))
	run(t, []step{
		do(asRoot, success, "mkdir", p("d"), "0755"),
		val(asRoot, "dir,0755,0,0,2", "lstat", p("d"), "type,mode,uid,gid,nlink"),
		do(asRoot, success, "mkdir", p("d/sub"), "0700"),
		val(asRoot, "3", "lstat", p("d"), "nlink"),
		// The kernel keeps the permission and sticky bits of the mode.
		do(asRoot, success, "mkdir", p("all"), "07777"),
		val(asRoot, "01777", "lstat", p("all"), "mode"),
		do(asRoot, success, "mkdir", p("none"), "0"),
		val(asRoot, "00", "lstat", p("none"), "mode"),
		do(nobody, success, "mkdir", p("all/mine"), "0751"),
		val(asRoot, "dir,0751,65534,65534", "lstat", p("all/mine"), "type,mode,uid,gid"),
		do(asRoot, eexist, "mkdir", p("d"), "0755"),
		do(asRoot, success, "create", p("f"), "0644"),
		do(asRoot, eexist, "mkdir", p("f"), "0755"),
		do(asRoot, success, "symlink", "nowhere", p("sym")),
		do(asRoot, eexist, "mkdir", p("sym"), "0755"),
		do(asRoot, enoent, "mkdir", p("missing/d"), "0755"),
		do(asRoot, enotdir, "mkdir", p("f/d"), "0755"),
		do(asRoot, syscall.ENAMETOOLONG, "mkdir", p(longName), "0755"),
		do(asRoot, success, "mkdir", p(maxName), "0755"),
		do(nobody, eacces, "mkdir", p("d/x"), "0755"),
		do(asRoot, success, "chmod", p("d"), "0776"),
		do(nobody, eacces, "mkdir", p("d/x"), "0755"), // no search permission
		do(asRoot, success, "symlink", "loop2", p("loop1")),
		do(asRoot, success, "symlink", "loop1", p("loop2")),
		do(asRoot, syscall.ELOOP, "mkdir", p("loop1/d"), "0755"),
	})
	// A directory exists on every brick of a distributed volume.
	if err := os.Mkdir(p("everywhere"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f.other(p("everywhere"))); err != nil {
		t.Errorf("the other mount: %v", err)
	}
}

func testMknod(t *testing.T, f *posixFS) {
	p := joiner(f.dir(t))
	run(t, []step{
		do(asRoot, success, "mkfifo", p("fifo"), "0640"),
		val(asRoot, "fifo,0640,0,0", "lstat", p("fifo"), "type,mode,uid,gid"),
		do(asRoot, success, "mknod", p("fifo2"), "f", "0604", "0", "0"),
		val(asRoot, "fifo,0604", "lstat", p("fifo2"), "type,mode"),
		do(asRoot, success, "mknod", p("blk"), "b", "0600", "7", "9"),
		val(asRoot, "block,0600,7:9", "lstat", p("blk"), "type,mode,rdev"),
		do(asRoot, success, "mknod", p("chr"), "c", "0620", "4095", "1048575"),
		val(asRoot, "char,0620,4095:1048575", "lstat", p("chr"), "type,mode,rdev"),
		do(asRoot, success, "mknod", p("sock"), "s", "0755", "0", "0"),
		val(asRoot, "socket,0755", "lstat", p("sock"), "type,mode"),
		do(asRoot, success, "mknod", p("reg"), "r", "0444", "0", "0"),
		val(asRoot, "regular,0444,0", "lstat", p("reg"), "type,mode,size"),
		do(asRoot, eexist, "mkfifo", p("fifo"), "0644"),
		do(asRoot, eexist, "mknod", p("blk"), "c", "0644", "1", "1"),
		do(asRoot, enoent, "mkfifo", p("missing/fifo"), "0644"),
		do(asRoot, enotdir, "mkfifo", p("reg/fifo"), "0644"),
		do(asRoot, syscall.ENAMETOOLONG, "mkfifo", p(longName), "0644"),
		do(nobody, eacces, "mkfifo", p("x"), "0644"),
		// Device nodes need privilege; FIFOs do not.
		do(asRoot, success, "chmod", p(""), "0777"),
		do(nobody, eperm, "mknod", p("nblk"), "b", "0644", "1", "2"),
		do(nobody, eperm, "mknod", p("nchr"), "c", "0644", "1", "2"),
		do(nobody, success, "mkfifo", p("nfifo"), "0644"),
		val(asRoot, "fifo,65534,65534", "lstat", p("nfifo"), "type,uid,gid"),
	})
	// A FIFO on the mount carries data (the client's kernel serves it).
	done := make(chan []byte, 1)
	go func() {
		b, _ := os.ReadFile(p("fifo"))
		done <- b
	}()
	if err := os.WriteFile(p("fifo"), []byte("through the fifo"), 0); err != nil {
		t.Fatal(err)
	}
	if b := <-done; string(b) != "through the fifo" {
		t.Errorf("fifo read %q", b)
	}
	// So does a socket bound on it.
	sock := p("bound.sock")
	ln, err := listenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ln)
	expectValue(t, "socket", asRoot, "lstat", sock, "type")
}

// listenUnix binds a unix socket at path (the net package would remove
// the file when closing).
func listenUnix(path string) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, unix.Listen(fd, 1)
}

func testRename(t *testing.T, f *posixFS) {
	p := joiner(f.dir(t))
	var steps []step
	// Every type of file, to many names (some hash to the other brick),
	// keeping its identity and link count.
	for _, kind := range [][]string{
		{"create", p("reg"), "0644"},
		{"mkdir", p("dir"), "0755"},
		{"mkfifo", p("fifo"), "0644"},
		{"mknod", p("blk"), "b", "0644", "1", "2"},
		{"mknod", p("chr"), "c", "0644", "1", "2"},
		{"mknod", p("sock"), "s", "0644", "0", "0"},
		{"symlink", "reg", p("sym")},
	} {
		name := kindPath(kind)
		steps = append(steps, do(asRoot, success, kind...))
		prev := name
		for i := range 6 {
			next := name + ".r" + strconv.Itoa(i)
			steps = append(steps,
				do(asRoot, success, "rename", prev, next),
				do(asRoot, enoent, "lstat", prev, "type"),
			)
			prev = next
		}
		steps = append(steps, do(asRoot, success, "rename", prev, name))
	}
	steps = append(steps,
		val(asRoot, "dir,2", "lstat", p("dir"), "type,nlink"),
		// Replacing: a file replaces a file, a directory an empty
		// directory.
		do(asRoot, success, "create", p("a"), "0600"),
		do(asRoot, success, "create", p("b"), "0644"),
		do(asRoot, success, "rename", p("a"), p("b")),
		val(asRoot, "0600", "lstat", p("b"), "mode"),
		do(asRoot, enoent, "lstat", p("a"), "mode"),
		do(asRoot, success, "mkdir", p("d1"), "0700"),
		do(asRoot, success, "mkdir", p("d2"), "0755"),
		do(asRoot, success, "rename", p("d1"), p("d2")),
		val(asRoot, "0700", "lstat", p("d2"), "mode"),
		do(asRoot, success, "mkdir", p("d1"), "0700"),
		do(asRoot, success, "create", p("d2/inside"), "0644"),
		do(asRoot, syscall.ENOTEMPTY, "rename", p("d1"), p("d2")),
		val(asRoot, "regular", "lstat", p("d2/inside"), "type"),
		do(asRoot, eisdir, "rename", p("b"), p("d1")),
		do(asRoot, enotdir, "rename", p("d1"), p("b")),
		// A directory cannot move beneath itself.
		do(asRoot, syscall.EINVAL, "rename", p("d2"), p("d2/sub")),
		do(asRoot, success, "mkdir", p("d2/sub"), "0755"),
		do(asRoot, syscall.EINVAL, "rename", p("d2"), p("d2/sub/x")),
		// Two names of one file: nothing happens.
		do(asRoot, success, "link", p("b"), p("b2")),
		do(asRoot, success, "rename", p("b"), p("b2")),
		val(asRoot, "2", "lstat", p("b"), "nlink"),
		val(asRoot, "2", "lstat", p("b2"), "nlink"),
		// Into another directory and back.
		do(asRoot, success, "rename", p("b"), p("d1/b")),
		val(asRoot, "regular,2", "lstat", p("d1/b"), "type,nlink"),
		do(asRoot, success, "rename", p("d1/b"), p("b")),
		do(asRoot, success, "rename", p("d2/sub"), p("sub")),
		val(asRoot, "dir", "lstat", p("sub"), "type"),
		// Errors on the paths.
		do(asRoot, enoent, "rename", p("missing"), p("x")),
		do(asRoot, enoent, "rename", p("b"), p("missing/x")),
		do(asRoot, enotdir, "rename", p("b/x"), p("x")),
		do(asRoot, enotdir, "rename", p("b"), p("b2/x")),
		do(asRoot, syscall.ENAMETOOLONG, "rename", p("b"), p(longName)),
		do(asRoot, syscall.ENAMETOOLONG, "rename", p(longName), p("b")),
		// renameat2.
		do(asRoot, eexist, "renameat2", p("b"), p("d2/inside"), "noreplace"),
		do(asRoot, success, "renameat2", p("b"), p("new"), "noreplace"),
		do(asRoot, success, "mkfifo", p("swap"), "0600"),
		do(asRoot, success, "renameat2", p("new"), p("swap"), "exchange"),
		val(asRoot, "fifo", "lstat", p("new"), "type"),
		val(asRoot, "regular", "lstat", p("swap"), "type"),
		// Permissions: write on both directories; moving a directory to
		// another parent writes its "..", so needs write on it too.
		do(asRoot, success, "mkdir", p("pub"), "0777"),
		do(asRoot, success, "mkdir", p("pub2"), "0777"),
		do(nobody, eacces, "rename", p("swap"), p("pub/x")),
		do(asRoot, success, "create", p("pub/f"), "0644"),
		do(nobody, eacces, "rename", p("pub/f"), p("x")),
		do(nobody, success, "rename", p("pub/f"), p("pub2/f")),
		do(asRoot, success, "mkdir", p("pub/rootdir"), "0755"),
		do(nobody, success, "rename", p("pub/rootdir"), p("pub/rootdir2")),
		do(nobody, eacces, "rename", p("pub/rootdir2"), p("pub2/rootdir")),
		// Sticky directories: only the owner of the file or of the
		// directory removes or replaces names.
		do(asRoot, success, "mkdir", p("sticky"), "01777"),
		do(nobody, success, "create", p("sticky/mine"), "0666"),
		do(other, success, "create", p("sticky/theirs"), "0666"),
		do(other, eperm, "rename", p("sticky/mine"), p("sticky/x")),
		do(other, eperm, "rename", p("sticky/theirs"), p("sticky/mine")),
		do(nobody, success, "rename", p("sticky/mine"), p("sticky/mine2")),
		do(asRoot, success, "rename", p("sticky/theirs"), p("sticky/mine2")),
	)
	run(t, steps)
	// Renaming keeps the data in place whatever brick the new name hashes
	// to, and replaces a file that lives on the other brick.
	for i := range 8 {
		a, b := p(fmt.Sprintf("data%d", i)), p(fmt.Sprintf("target%d", i))
		if err := os.WriteFile(a, []byte(a), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(b, []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(a, b); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(b); err != nil || string(got) != a {
			t.Errorf("after rename over %s: %q %v", b, got, err)
		}
		if got, err := os.ReadFile(f.other(b)); err != nil || string(got) != a {
			t.Errorf("the other mount reads %s: %q %v", b, got, err)
		}
	}
	ents, err := os.ReadDir(f.mnt2 + strings.TrimPrefix(p(""), f.mnt))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, e := range ents {
		seen[e.Name()]++
		if seen[e.Name()] > 1 {
			t.Errorf("%s listed twice", e.Name())
		}
	}
	for i := range 8 {
		if seen[fmt.Sprintf("data%d", i)] != 0 || seen[fmt.Sprintf("target%d", i)] != 1 {
			t.Errorf("listing after renames: %v", seen)
			break
		}
	}
}

func testRmdir(t *testing.T, f *posixFS) {
	p := joiner(f.dir(t))
	steps := []step{
		do(asRoot, success, "mkdir", p("d"), "0755"),
		do(asRoot, success, "rmdir", p("d")),
		do(asRoot, enoent, "lstat", p("d"), "type"),
		do(asRoot, enoent, "rmdir", p("d")),
		do(asRoot, enoent, "rmdir", p("missing/d")),
		do(asRoot, success, "create", p("f"), "0644"),
		do(asRoot, enotdir, "rmdir", p("f")),
		do(asRoot, enotdir, "rmdir", p("f/x")),
		do(asRoot, syscall.ENAMETOOLONG, "rmdir", p(longName)),
		do(asRoot, success, "mkdir", p("d"), "0755"),
		do(asRoot, syscall.EINVAL, "rmdir", p("d")+"/."),
		do(asRoot, syscall.ENOTEMPTY, "rmdir", p("d")+"/.."),
		do(asRoot, success, "symlink", "d", p("sym")),
		do(asRoot, enotdir, "rmdir", p("sym")),
		// Write and search permission on the parent.
		do(nobody, eacces, "rmdir", p("d")),
		do(asRoot, success, "mkdir", p("pub"), "0777"),
		do(asRoot, success, "mkdir", p("pub/d"), "0755"),
		do(nobody, success, "rmdir", p("pub/d")),
		do(asRoot, success, "mkdir", p("pub/d"), "0755"),
		do(asRoot, success, "chmod", p("pub"), "0776"),
		do(nobody, eacces, "rmdir", p("pub/d")),
		// Sticky.
		do(asRoot, success, "mkdir", p("sticky"), "01777"),
		do(nobody, success, "mkdir", p("sticky/mine"), "0755"),
		do(other, eperm, "rmdir", p("sticky/mine")),
		do(nobody, success, "rmdir", p("sticky/mine")),
	}
	// A directory is not empty while any brick holds an entry: one entry
	// of each type, under names that land on either brick.
	for i := range 6 {
		dir := p(fmt.Sprintf("full%d", i))
		entry := dir + "/" + fmt.Sprintf("entry-%d", i*7)
		kinds := [][]string{
			{"create", entry, "0644"}, {"mkdir", entry, "0755"}, {"mkfifo", entry, "0644"},
			{"mknod", entry, "c", "0644", "1", "2"}, {"mknod", entry, "s", "0644", "0", "0"}, {"symlink", "x", entry},
		}
		steps = append(steps,
			do(asRoot, success, "mkdir", dir, "0755"),
			do(asRoot, success, kinds[i]...),
			do(asRoot, syscall.ENOTEMPTY, "rmdir", dir),
		)
	}
	run(t, steps)
	// fsync of a directory succeeds; a directory removed while open lists
	// nothing more (getdents fails with ENOENT, as on any Linux file
	// system; glibc's readdir reports it as the end).
	gone := p("gone")
	if err := os.Mkdir(gone, 0o755); err != nil {
		t.Fatal(err)
	}
	fh, err := os.Open(gone)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if err := fh.Sync(); err != nil {
		t.Errorf("fsync of a directory: %v", err)
	}
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(fh.Fd()), &st); err != nil || st.Nlink != 0 || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Errorf("fstat of a removed directory: nlink %d mode %o, %v", st.Nlink, st.Mode, err)
	}
	if names, err := fh.Readdirnames(-1); len(names) != 0 || (err != nil && !errors.Is(err, syscall.ENOENT)) {
		t.Errorf("listing a removed directory: %v %v", names, err)
	}
}

func testSymlink(t *testing.T, f *posixFS) {
	p := joiner(f.dir(t))
	longTarget := strings.Repeat("t", 4095)
	run(t, []step{
		do(asRoot, success, "create", p("f"), "0644"),
		do(asRoot, success, "symlink", "f", p("s")),
		val(asRoot, "f", "readlink", p("s")),
		val(asRoot, "symlink", "lstat", p("s"), "type"),
		val(asRoot, "regular", "stat", p("s"), "type"),
		do(asRoot, success, "symlink", "../../"+maxName+"/x/y", p("rel")),
		val(asRoot, "../../"+maxName+"/x/y", "readlink", p("rel")),
		do(asRoot, success, "symlink", longTarget, p("long")),
		val(asRoot, longTarget, "readlink", p("long")),
		do(asRoot, syscall.ENAMETOOLONG, "symlink", longTarget+"t", p("toolong")),
		do(asRoot, success, "symlink", "missing", p("dangling")),
		do(asRoot, enoent, "stat", p("dangling"), "type"),
		do(asRoot, eexist, "symlink", "x", p("f")),
		do(asRoot, eexist, "symlink", "x", p("s")),
		do(asRoot, eexist, "symlink", "x", p("dangling")),
		do(asRoot, enoent, "symlink", "x", p("missing/s")),
		do(asRoot, enotdir, "symlink", "x", p("f/s")),
		do(asRoot, syscall.ENAMETOOLONG, "symlink", "x", p(longName)),
		do(asRoot, syscall.EINVAL, "readlink", p("f")),
		do(nobody, eacces, "symlink", "x", p("mine")),
		do(asRoot, success, "chmod", p(""), "0777"),
		do(nobody, success, "symlink", "x", p("mine")),
		val(asRoot, "symlink,65534,65534", "lstat", p("mine"), "type,uid,gid"),
		do(asRoot, success, "mkdir", p("d"), "0755"),
		do(asRoot, success, "symlink", "d", p("sd")),
		do(asRoot, success, "create", p("sd/through"), "0644"),
		val(asRoot, "regular", "lstat", p("d/through"), "type"),
	})
}

func testUnlink(t *testing.T, f *posixFS) {
	p := joiner(f.dir(t))
	var steps []step
	for _, kind := range [][]string{
		{"create", p("reg"), "0644"},
		{"mkfifo", p("fifo"), "0644"},
		{"mknod", p("blk"), "b", "0644", "1", "2"},
		{"mknod", p("chr"), "c", "0644", "1", "2"},
		{"mknod", p("sock"), "s", "0644", "0", "0"},
		{"symlink", "reg", p("sym")},
	} {
		steps = append(steps,
			do(asRoot, success, kind...),
			do(asRoot, success, "unlink", kindPath(kind)),
			do(asRoot, enoent, "lstat", kindPath(kind), "type"),
		)
	}
	steps = append(steps,
		do(asRoot, enoent, "unlink", p("missing")),
		do(asRoot, success, "mkdir", p("d"), "0755"),
		do(asRoot, eisdir, "unlink", p("d")),
		do(asRoot, success, "create", p("f"), "0644"),
		do(asRoot, enotdir, "unlink", p("f/x")),
		do(asRoot, syscall.ENAMETOOLONG, "unlink", p(longName)),
		// A symlink goes, not its target.
		do(asRoot, success, "symlink", "f", p("s")),
		do(asRoot, success, "unlink", p("s")),
		val(asRoot, "regular", "lstat", p("f"), "type"),
		// Permissions on the parent, not on the file.
		do(nobody, eacces, "unlink", p("f")),
		do(asRoot, success, "mkdir", p("pub"), "0777"),
		do(asRoot, success, "create", p("pub/rootfile"), "0"),
		do(nobody, success, "unlink", p("pub/rootfile")),
		do(asRoot, success, "create", p("pub/rootfile"), "0644"),
		do(asRoot, success, "chmod", p("pub"), "0776"),
		do(nobody, eacces, "unlink", p("pub/rootfile")),
		do(asRoot, success, "mkdir", p("sticky"), "01777"),
		do(nobody, success, "create", p("sticky/mine"), "0666"),
		do(other, eperm, "unlink", p("sticky/mine")),
		do(asRoot, success, "chown", p("sticky"), "65533", "65533"),
		do(other, success, "unlink", p("sticky/mine")), // the directory's owner
	)
	run(t, steps)
}

func testUtimensat(t *testing.T, f *posixFS) {
	p := joiner(f.dir(t))
	run(t, []step{
		do(asRoot, success, "create", p("f"), "0644"),
		do(asRoot, success, "utimensat", p("f"), "1000000000.123456789", "1234567890.987654321"),
		val(asRoot, "1000000000123456789,1234567890987654321", "stat", p("f"), "atime,mtime"),
		do(asRoot, success, "utimensat", p("f"), "OMIT", "1500000000"),
		val(asRoot, "1000000000123456789,1500000000000000000", "stat", p("f"), "atime,mtime"),
		do(asRoot, success, "utimensat", p("f"), "1600000000", "OMIT"),
		val(asRoot, "1600000000000000000,1500000000000000000", "stat", p("f"), "atime,mtime"),
		do(asRoot, success, "utimensat", p("f"), "OMIT", "OMIT"),
		val(asRoot, "1600000000000000000,1500000000000000000", "stat", p("f"), "atime,mtime"),
		// Times before the epoch and past 2038.
		do(asRoot, success, "utimensat", p("f"), "-1000", "4294967296"),
		val(asRoot, "-1000000000000,4294967296000000000", "stat", p("f"), "atime,mtime"),
		// Explicit times need ownership; "now" needs write permission.
		do(nobody, eperm, "utimensat", p("f"), "1", "1"),
		do(nobody, eacces, "utimensat", p("f"), "NOW", "NOW"),
		do(asRoot, success, "chmod", p("f"), "0666"),
		do(nobody, success, "utimensat", p("f"), "NOW", "NOW"),
		do(nobody, eperm, "utimensat", p("f"), "1", "1"),
		do(nobody, eperm, "utimensat", p("f"), "NOW", "1"),
		do(asRoot, success, "chown", p("f"), "65534", "65534"),
		do(asRoot, success, "chmod", p("f"), "0"),
		do(nobody, success, "utimensat", p("f"), "5", "6"),
		val(asRoot, "5000000000,6000000000", "stat", p("f"), "atime,mtime"),
		do(nobody, success, "utimensat", p("f"), "NOW", "NOW"), // the owner may
		// A symlink's own times.
		do(asRoot, success, "create", p("g"), "0644"),
		do(asRoot, success, "utimensat", p("g"), "100", "200"),
		do(asRoot, success, "symlink", "g", p("s")),
		do(asRoot, success, "utimensat", p("s"), "300", "400", "nofollow"),
		val(asRoot, "300000000000,400000000000", "lstat", p("s"), "atime,mtime"),
		val(asRoot, "100000000000,200000000000", "stat", p("s"), "atime,mtime"),
		do(asRoot, success, "utimensat", p("s"), "500", "600"),
		val(asRoot, "500000000000,600000000000", "stat", p("g"), "atime,mtime"),
		do(asRoot, enoent, "utimensat", p("missing"), "1", "1"),
		do(asRoot, enotdir, "utimensat", p("g/x"), "1", "1"),
		do(asRoot, syscall.ENAMETOOLONG, "utimensat", p(longName), "1", "1"),
	})
}

// testPermissions checks the classes of a mode: the owner's bits apply
// to the owner even where the group's or others' would allow more, the
// group's to members (primary or supplementary), the others' to the
// rest; search permission on every directory of the path.
func testPermissions(t *testing.T, f *posixFS) {
	p := joiner(f.dir(t))
	run(t, []step{
		do(asRoot, success, "chmod", p(""), "0777"),
		do(asRoot, success, "create", p("f"), "0"),
		do(asRoot, success, "chown", p("f"), "65534", "65532"),
		// Owner class.
		do(asRoot, success, "chmod", p("f"), "0477"),
		do(nobody, success, "open", p("f"), "O_RDONLY"),
		do(nobody, eacces, "open", p("f"), "O_WRONLY"),
		do(asRoot, success, "chmod", p("f"), "0277"),
		do(nobody, eacces, "open", p("f"), "O_RDONLY"),
		do(nobody, success, "open", p("f"), "O_WRONLY"),
		// Group class, through a supplementary group.
		do(asRoot, success, "chmod", p("f"), "0747"),
		do(asRoot, success, "chown", p("f"), "0", "65532"),
		do(nobodyG, success, "open", p("f"), "O_RDONLY"),
		do(nobodyG, eacces, "open", p("f"), "O_WRONLY"),
		do(asRoot, success, "chmod", p("f"), "0707"),
		do(nobodyG, eacces, "open", p("f"), "O_RDONLY"), // others' bits don't help a member
		do(nobody, success, "open", p("f"), "O_RDWR"),
		// Others.
		do(asRoot, success, "chmod", p("f"), "0774"),
		do(other, success, "open", p("f"), "O_RDONLY"),
		do(other, eacces, "open", p("f"), "O_WRONLY"),
		// Search permission on the way.
		do(asRoot, success, "mkdir", p("d"), "0777"),
		do(asRoot, success, "mkdir", p("d/e"), "0777"),
		do(asRoot, success, "create", p("d/e/f"), "0666"),
		do(other, success, "open", p("d/e/f"), "O_RDWR"),
		do(asRoot, success, "chmod", p("d"), "0776"),
		do(other, eacces, "open", p("d/e/f"), "O_RDONLY"),
		do(other, eacces, "stat", p("d/e/f"), "type"),
		do(other, eacces, "create", p("d/e/g"), "0644"),
		do(asRoot, success, "chmod", p("d"), "0771"),
		do(other, success, "open", p("d/e/f"), "O_RDONLY"),
		do(asRoot, success, "chmod", p("d/e"), "0773"),
		do(other, success, "create", p("d/e/g"), "0644"),
		do(other, eacces, "open", p("d/e"), "O_RDONLY|O_DIRECTORY"), // no read on the directory
	})
}

// testSetgidDirs: entries made in a set-group-ID directory take its group;
// directories made there inherit the bit.
func testSetgidDirs(t *testing.T, f *posixFS) {
	p := joiner(f.dir(t))
	run(t, []step{
		do(asRoot, success, "mkdir", p("sg"), "0777"),
		do(asRoot, success, "chown", p("sg"), "0", "65532"),
		do(asRoot, success, "chmod", p("sg"), "02777"),
		do(nobody, success, "create", p("sg/f"), "0644"),
		val(asRoot, "65534,65532,0644", "lstat", p("sg/f"), "uid,gid,mode"),
		do(nobody, success, "mkdir", p("sg/d"), "0755"),
		val(asRoot, "65534,65532,02755", "lstat", p("sg/d"), "uid,gid,mode"),
		do(nobody, success, "mkfifo", p("sg/fifo"), "0644"),
		val(asRoot, "65532", "lstat", p("sg/fifo"), "gid"),
		do(nobody, success, "symlink", "x", p("sg/sym")),
		val(asRoot, "65532", "lstat", p("sg/sym"), "gid"),
		do(nobody, success, "create", p("sg/d/deeper"), "0600"),
		val(asRoot, "65534,65532", "lstat", p("sg/d/deeper"), "uid,gid"),
		do(asRoot, success, "mkdir", p("plain"), "0777"),
		do(nobody, success, "create", p("plain/f"), "0644"),
		val(asRoot, "65534,65534", "lstat", p("plain/f"), "uid,gid"),
	})
}

// times is a file's (mtime, ctime) in ns.
func times(t *testing.T, p string) (int64, int64) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatalf("lstat %s: %v", p, err)
	}
	return st.Mtim.Nano(), st.Ctim.Nano()
}

// testTimestamps checks which times each call changes: a changed entry
// updates its directory's mtime and ctime, a changed inode its ctime, new
// data its mtime; a failed call changes nothing.
func testTimestamps(t *testing.T, f *posixFS) {
	d := f.dir(t)
	p := joiner(d)
	mustCall := func(words ...string) {
		t.Helper()
		if _, err := as(t, asRoot, words...); err != nil {
			t.Fatalf("%v: %v", words, err)
		}
	}
	mustCall("create", p("f"), "0644")
	mustCall("mkdir", p("sub"), "0755")
	cases := []struct {
		name string
		call []string
		// which times must move: the directory's (d), the object's
		// mtime (m) and ctime (c); "" means none.
		dir, obj string
		// objPath is the object before the call; for renames, objAfter
		// is its new name.
		objPath, objAfter string
		fails             bool
	}{
		// Entries land on either brick: each kind under several names.
		{"create", []string{"create", p("c1"), "0644"}, "dmc", "", "", "", false},
		{"create2", []string{"create", p("c2"), "0644"}, "dmc", "", "", "", false},
		{"create3", []string{"create", p("c3"), "0644"}, "dmc", "", "", "", false},
		{"mkdir", []string{"mkdir", p("m1"), "0755"}, "dmc", "", "", "", false},
		{"mkfifo", []string{"mkfifo", p("p1"), "0644"}, "dmc", "", "", "", false},
		{"mkfifo2", []string{"mkfifo", p("p2"), "0644"}, "dmc", "", "", "", false},
		{"mknod", []string{"mknod", p("n1"), "c", "0644", "1", "2"}, "dmc", "", "", "", false},
		{"symlink", []string{"symlink", "x", p("s1")}, "dmc", "", "", "", false},
		{"symlink2", []string{"symlink", "x", p("s2")}, "dmc", "", "", "", false},
		{"link", []string{"link", p("f"), p("l1")}, "dmc", "c", p("f"), "", false},
		{"link2", []string{"link", p("f"), p("l2")}, "dmc", "c", p("f"), "", false},
		{"unlink-link", []string{"unlink", p("l1")}, "dmc", "c", p("f"), "", false},
		{"unlink", []string{"unlink", p("c1")}, "dmc", "", "", "", false},
		{"unlink2", []string{"unlink", p("c2")}, "dmc", "", "", "", false},
		{"unlink3", []string{"unlink", p("p2")}, "dmc", "", "", "", false},
		{"rmdir", []string{"rmdir", p("m1")}, "dmc", "", "", "", false},
		{"rename", []string{"rename", p("c3"), p("c4")}, "dmc", "c", p("c3"), p("c4"), false},
		{"rename2", []string{"rename", p("c4"), p("c5")}, "dmc", "c", p("c4"), p("c5"), false},
		{"rename-out", []string{"rename", p("c5"), p("sub/c5")}, "dmc", "c", p("c5"), p("sub/c5"), false},
		{"chmod", []string{"chmod", p("f"), "0600"}, "", "c", p("f"), "", false},
		{"chown", []string{"chown", p("f"), "1", "1"}, "", "c", p("f"), "", false},
		{"truncate", []string{"truncate", p("f"), "100"}, "", "mc", p("f"), "", false},
		{"ftruncate", []string{"ftruncate", p("f"), "O_RDWR", "10"}, "", "mc", p("f"), "", false},
		{"write", []string{"write", p("f"), "data"}, "", "mc", p("f"), "", false},
		{"open-trunc", []string{"open", p("f"), "O_WRONLY|O_TRUNC"}, "", "mc", p("f"), "", false},
		{"utimensat", []string{"utimensat", p("f"), "1", "2"}, "", "c", p("f"), "", false},
		{"setxattr", []string{"setxattr", p("f"), "user.k", "v"}, "", "c", p("f"), "", false},
		{"chmod-dir", []string{"chmod", p("sub"), "0700"}, "", "c", p("sub"), "", false},
		// Failures change nothing.
		{"failed-create", []string{"create", p("f"), "0644"}, "", "", p("f"), "", true},
		{"failed-mkdir", []string{"mkdir", p("sub"), "0755"}, "", "", p("sub"), "", true},
		{"failed-rmdir", []string{"rmdir", p("sub")}, "", "", p("sub"), "", true},
		{"failed-chmod", []string{"chmod", p("missing"), "0644"}, "", "", "", "", true},
		{"failed-unlink", []string{"unlink", p("sub")}, "", "", p("sub"), "", true},
		{"failed-rename", []string{"rename", p("f"), p("sub")}, "", "", p("f"), "", true},
	}
	for _, tc := range cases {
		dm, dc := times(t, d)
		var om, oc int64
		if tc.objPath != "" {
			om, oc = times(t, tc.objPath)
		}
		// Longer than the clock's tick, so a change shows.
		time.Sleep(20 * time.Millisecond)
		_, err := as(t, asRoot, tc.call...)
		if (err != nil) != tc.fails {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		dm2, dc2 := times(t, d)
		check := func(what string, before, after int64, want bool) {
			if moved := after != before; moved != want {
				t.Errorf("%s: %s moved=%v (from %d to %d), want moved=%v", tc.name, what, moved, before, after, want)
			} else if moved && after < before {
				t.Errorf("%s: %s went back from %d to %d", tc.name, what, before, after)
			}
		}
		check("directory mtime", dm, dm2, strings.Contains(tc.dir, "d"))
		check("directory ctime", dc, dc2, strings.Contains(tc.dir, "d"))
		if tc.objPath != "" {
			after := tc.objPath
			if tc.objAfter != "" {
				after = tc.objAfter
			}
			om2, oc2 := times(t, after)
			if tc.name == "utimensat" {
				om = om2 // set explicitly, not moved by the clock
			}
			check("mtime", om, om2, strings.Contains(tc.obj, "m"))
			check("ctime", oc, oc2, strings.Contains(tc.obj, "c"))
		}
	}
}

// testOpenUnlinked: an open file outlives its last name: fstat gives
// nlink 0, reads, writes and ftruncate work.
func testOpenUnlinked(t *testing.T, f *posixFS) {
	p := joiner(f.dir(t))
	for i := range 4 { // names on either brick
		name := p(fmt.Sprintf("gone%d", i))
		fd, err := unix.Open(name, unix.O_CREAT|unix.O_RDWR, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := unix.Write(fd, []byte("Hello, World!")); err != nil {
			t.Fatal(err)
		}
		if err := unix.Unlink(name); err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil || st.Nlink != 0 || st.Size != 13 || st.Mode&unix.S_IFMT != unix.S_IFREG {
			t.Errorf("fstat after unlink: nlink %d size %d mode %o, %v", st.Nlink, st.Size, st.Mode, err)
		}
		buf := make([]byte, 5)
		if n, err := unix.Pread(fd, buf, 7); err != nil || string(buf[:n]) != "World" {
			t.Errorf("pread after unlink: %q %v", buf[:n], err)
		}
		if _, err := unix.Pwrite(fd, []byte("cais!"), 7); err != nil {
			t.Errorf("pwrite after unlink: %v", err)
		}
		if err := unix.Ftruncate(fd, 3); err != nil {
			t.Errorf("ftruncate after unlink: %v", err)
		}
		if err := unix.Fchmod(fd, 0o600); err != nil {
			t.Errorf("fchmod after unlink: %v", err)
		}
		if err := unix.Fsetxattr(fd, "user.k", []byte("kept"), 0); err != nil {
			t.Errorf("fsetxattr after unlink: %v", err)
		}
		xb := make([]byte, 16)
		if n, err := unix.Fgetxattr(fd, "user.k", xb); err != nil || string(xb[:n]) != "kept" {
			t.Errorf("fgetxattr after unlink: %d bytes, %v", n, err)
		}
		if err := unix.Fstat(fd, &st); err != nil || st.Size != 3 || st.Mode&0o7777 != 0o600 {
			t.Errorf("fstat after ftruncate and fchmod: size %d mode %o, %v", st.Size, st.Mode, err)
		}
		unix.Close(fd)
		if _, err := os.Lstat(name); !os.IsNotExist(err) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func testXattrs(t *testing.T, f *posixFS) {
	p := joiner(f.dir(t))
	big := strings.Repeat("v", 4000)
	var steps []step
	for _, kind := range [][]string{
		{"create", p("f"), "0644"},
		{"mkdir", p("d"), "0755"},
	} {
		name := kind[1]
		steps = append(steps,
			do(asRoot, success, kind...),
			do(asRoot, syscall.ENODATA, "getxattr", name, "user.missing"),
			do(asRoot, success, "setxattr", name, "user.k", "v1"),
			val(asRoot, "v1", "getxattr", name, "user.k"),
			do(asRoot, eexist, "setxattr", name, "user.k", "v2", "create"),
			do(asRoot, success, "setxattr", name, "user.k", "v2", "replace"),
			val(asRoot, "v2", "getxattr", name, "user.k"),
			do(asRoot, syscall.ENODATA, "setxattr", name, "user.new", "v", "replace"),
			do(asRoot, success, "setxattr", name, "user.new", "v", "create"),
			do(asRoot, success, "setxattr", name, "user.big", big),
			val(asRoot, big, "getxattr", name, "user.big"),
			do(asRoot, success, "setxattr", name, "security.cais-test", "s"),
			val(asRoot, "s", "getxattr", name, "security.cais-test"),
			// The brick's own attributes are not the client's.
			do(asRoot, eperm, "setxattr", name, "trusted.cais.gfid", "x"),
			do(asRoot, syscall.EOPNOTSUPP, "setxattr", name, "bogus.k", "v"),
			// user.* follows the file's permissions.
			do(nobody, success, "getxattr", name, "user.k"),
			do(nobody, eacces, "setxattr", name, "user.k", "x"),
		)
	}
	steps = append(steps,
		// Symlinks carry no user.* attributes on Linux.
		do(asRoot, success, "symlink", "f", p("s")),
		do(asRoot, eperm, "setxattr", p("s"), "user.k", "v"),
		do(asRoot, enoent, "getxattr", p("missing"), "user.k"),
	)
	run(t, steps)

	// Listing, size probes and removal, and the other mount's view.
	name := p("f")
	names := listXattr(t, name)
	for _, want := range []string{"user.k", "user.new", "user.big", "security.cais-test"} {
		if !names[want] {
			t.Errorf("listxattr %v lacks %s", names, want)
		}
	}
	for n := range names {
		if strings.HasPrefix(n, "trusted.") {
			t.Errorf("listxattr shows %s", n)
		}
	}
	if n, err := unix.Getxattr(name, "user.big", nil); err != nil || n != len(big) {
		t.Errorf("size probe: %d %v", n, err)
	}
	if _, err := unix.Getxattr(name, "user.big", make([]byte, 10)); err != syscall.ERANGE {
		t.Errorf("small buffer: %v, want ERANGE", err)
	}
	if n, err := unix.Listxattr(name, nil); err != nil || n == 0 {
		t.Errorf("list size probe: %d %v", n, err)
	}
	if _, err := unix.Listxattr(name, make([]byte, 3)); err != syscall.ERANGE {
		t.Errorf("list into a small buffer: %v, want ERANGE", err)
	}
	if err := unix.Removexattr(name, "user.new"); err != nil {
		t.Error(err)
	}
	if err := unix.Removexattr(name, "user.new"); err != syscall.ENODATA {
		t.Errorf("second removexattr: %v, want ENODATA", err)
	}
	buf := make([]byte, 100)
	if n, err := unix.Getxattr(f.other(name), "user.k", buf); err != nil || string(buf[:n]) != "v2" {
		t.Errorf("the other mount: %q %v", buf[:n], err)
	}
	if _, err := unix.Getxattr(f.other(name), "user.new", buf); err != syscall.ENODATA {
		t.Errorf("the other mount sees a removed attribute: %v", err)
	}
	// A directory's attributes are the same from every brick: read them
	// through the other mount after a change on this one.
	if err := unix.Setxattr(p("d"), "user.dir", []byte("on all"), 0); err != nil {
		t.Fatal(err)
	}
	if n, err := unix.Getxattr(f.other(p("d")), "user.dir", buf); err != nil || string(buf[:n]) != "on all" {
		t.Errorf("directory attribute from the other mount: %q %v", buf[:n], err)
	}
}

func listXattr(t *testing.T, p string) map[string]bool {
	t.Helper()
	buf := make([]byte, 65536)
	n, err := unix.Listxattr(p, buf)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, s := range strings.Split(string(buf[:n]), "\x00") {
		if s != "" {
			out[s] = true
		}
	}
	return out
}

// testHardLinks: links share one inode, its data and attributes, across
// bricks and mounts.
func testHardLinks(t *testing.T, f *posixFS) {
	p := joiner(f.dir(t))
	orig := p("orig")
	if err := os.WriteFile(orig, []byte("shared"), 0o640); err != nil {
		t.Fatal(err)
	}
	var st0 unix.Stat_t
	if err := unix.Stat(orig, &st0); err != nil {
		t.Fatal(err)
	}
	const n = 10
	for i := range n {
		if err := os.Link(orig, p(fmt.Sprintf("link%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	// A write through one name shows through every other, on both mounts.
	if err := os.WriteFile(p("link7"), []byte("changed through link7"), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p("link3"), 0o604); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		for _, name := range []string{p(fmt.Sprintf("link%d", i)), f.other(p(fmt.Sprintf("link%d", i)))} {
			var st unix.Stat_t
			if err := unix.Stat(name, &st); err != nil {
				t.Fatal(err)
			}
			if st.Ino != st0.Ino || st.Nlink != n+1 || st.Mode&0o7777 != 0o604 {
				t.Errorf("%s: ino %d (want %d) nlink %d mode %o", name, st.Ino, st0.Ino, st.Nlink, st.Mode&0o7777)
			}
			if b, err := os.ReadFile(name); err != nil || string(b) != "changed through link7" {
				t.Errorf("%s reads %q %v", name, b, err)
			}
		}
	}
	for i := range n {
		if err := os.Remove(p(fmt.Sprintf("link%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	expectValue(t, "1", asRoot, "stat", orig, "nlink")
	ents, err := os.ReadDir(p(""))
	if err != nil || len(ents) != 1 {
		t.Errorf("after removing the links: %d entries, %v", len(ents), err)
	}
}

// testMmap: writes through a shared mapping reach the file.
func testMmap(t *testing.T, f *posixFS) {
	p := joiner(f.dir(t))
	name := p("mapped")
	const size = 3*4096 + 100
	fd, err := unix.Open(name, unix.O_CREAT|unix.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Ftruncate(fd, size); err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, size)
	for i := range want {
		want[i] = byte('a' + i%26)
	}
	copy(m, want)
	if err := unix.Msync(m, unix.MS_SYNC); err != nil {
		t.Fatal(err)
	}
	// read(2) on another descriptor, at once.
	got := make([]byte, size)
	if n, err := unix.Pread(fd, got, 0); err != nil || n != size || !bytes.Equal(got, want) {
		t.Errorf("pread after msync: %d bytes, %v, equal %v", n, err, bytes.Equal(got, want))
	}
	if err := unix.Munmap(m); err != nil {
		t.Fatal(err)
	}
	// The other mount, which never cached the file, reads the bytes from
	// the brick.
	if b, err := os.ReadFile(f.other(name)); err != nil || !bytes.Equal(b, want) {
		t.Errorf("the other mount: %d bytes, %v, equal %v", len(b), err, bytes.Equal(b, want))
	}
	// A mapping also reads what write(2) put there.
	if _, err := unix.Pwrite(fd, []byte("WRITTEN"), 4096); err != nil {
		t.Fatal(err)
	}
	m, err = unix.Mmap(fd, 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	if string(m[4096:4103]) != "WRITTEN" {
		t.Errorf("mapping reads %q", m[4096:4103])
	}
}

// testSparse: offsets past 4 GiB, holes read as zeros and take no space.
func testSparse(t *testing.T, f *posixFS) {
	p := joiner(f.dir(t))
	name := p("sparse")
	const off = 5<<30 + 12345
	fd, err := unix.Open(name, unix.O_CREAT|unix.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	data := bytes.Repeat([]byte("past4G"), 1000)
	if n, err := unix.Pwrite(fd, data, off); err != nil || n != len(data) {
		t.Fatalf("pwrite at %d: %d %v", int64(off), n, err)
	}
	if _, err := unix.Pwrite(fd, []byte("start"), 0); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Size != off+int64(len(data)) {
		t.Errorf("size %d, %v; want %d", st.Size, err, off+len(data))
	}
	if st.Blocks*512 > 1<<20 {
		t.Errorf("a sparse file takes %d bytes", st.Blocks*512)
	}
	got := make([]byte, len(data))
	if n, err := unix.Pread(fd, got, off); err != nil || n != len(data) || !bytes.Equal(got, data) {
		t.Errorf("pread at %d: %d %v", int64(off), n, err)
	}
	hole := make([]byte, 8192)
	for _, at := range []int64{4096, 1 << 32, 1<<32 - 10, off - 8192} {
		for i := range hole {
			hole[i] = 0xff
		}
		if n, err := unix.Pread(fd, hole, at); err != nil || n != len(hole) || !bytes.Equal(hole, make([]byte, len(hole))) {
			t.Errorf("hole at %d: %d %v, not zeros", at, n, err)
		}
	}
	// Reads past the end return nothing; the other mount sees the size.
	if n, err := unix.Pread(fd, got, off+int64(len(data))); err != nil || n != 0 {
		t.Errorf("read at the end: %d %v", n, err)
	}
	if fi, err := os.Stat(f.other(name)); err != nil || fi.Size() != off+int64(len(data)) {
		t.Errorf("the other mount: %v %v", fi, err)
	}
	// Truncating far past 4 GiB and back.
	if err := unix.Ftruncate(fd, 1<<33); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fstat(fd, &st); err != nil || st.Size != 1<<33 {
		t.Errorf("after ftruncate to 8 GiB: %d %v", st.Size, err)
	}
	if n, err := unix.Pread(fd, hole[:10], 1<<33-10); err != nil || n != 10 || !bytes.Equal(hole[:10], make([]byte, 10)) {
		t.Errorf("read before 8 GiB: %d %v", n, err)
	}
	if err := unix.Ftruncate(fd, 3); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(name); err != nil || string(b) != "sta" {
		t.Errorf("after truncating back: %q %v", b, err)
	}
}

// testAppendTwoMounts: writers on two mounts appending to one file with
// O_APPEND never overwrite each other's records.
func testAppendTwoMounts(t *testing.T, f *posixFS) {
	p := joiner(f.dir(t))
	name := p("log")
	if err := os.WriteFile(name, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	const writers, records, size = 4, 200, 64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := name
			if w%2 == 1 {
				path = f.other(name)
			}
			fd, err := unix.Open(path, unix.O_WRONLY|unix.O_APPEND, 0)
			if err != nil {
				errs <- err
				return
			}
			defer unix.Close(fd)
			for r := range records {
				rec := fmt.Sprintf("writer %d record %d", w, r)
				rec += strings.Repeat(".", size-1-len(rec)) + "\n"
				if n, err := unix.Write(fd, []byte(rec)); err != nil || n != size {
					errs <- fmt.Errorf("write: %d %v", n, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Attributes are cached for a second: read once they have expired.
	time.Sleep(1100 * time.Millisecond)
	for _, path := range []string{name, f.other(name)} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != writers*records*size {
			t.Errorf("%s: %d bytes, want %d", path, len(b), writers*records*size)
			continue
		}
		next := make([]int, writers)
		for i := 0; i < len(b); i += size {
			var w, r int
			if _, err := fmt.Sscanf(string(b[i:i+size]), "writer %d record %d", &w, &r); err != nil || w < 0 || w >= writers || b[i+size-1] != '\n' {
				t.Fatalf("%s: garbled record at %d: %q", path, i, b[i:i+size])
			}
			if r != next[w] {
				t.Fatalf("%s: writer %d's record %d where %d was due", path, w, r, next[w])
			}
			next[w]++
		}
	}
}

// testLocks: fcntl, OFD and flock locks taken through one mount are seen
// through the other, as another process on a local file system sees
// them; closing a descriptor drops the process's fcntl locks; a waiter on
// one mount gets the lock when the other releases it.
func testLocks(t *testing.T, f *posixFS) {
	p := joiner(f.dir(t))
	name := p("locked")
	if err := os.WriteFile(name, make([]byte, 1000), 0o666); err != nil {
		t.Fatal(err)
	}
	far := f.other(name)
	fd, err := unix.Open(name, unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	setlk := func(fd int, cmd int, typ int16, start, n int64) error {
		lk := unix.Flock_t{Type: typ, Whence: 0, Start: start, Len: n}
		for {
			err := unix.FcntlFlock(uintptr(fd), cmd, &lk)
			if err != unix.EINTR {
				return err
			}
		}
	}
	if err := setlk(fd, unix.F_SETLK, unix.F_WRLCK, 100, 100); err != nil {
		t.Fatal(err)
	}
	pid := strconv.Itoa(os.Getpid())
	run(t, []step{
		do(rootProc, syscall.EAGAIN, "setlk", far, "w", "150", "10"),
		do(rootProc, syscall.EAGAIN, "setlk", far, "r", "199", "1"),
		do(rootProc, syscall.EAGAIN, "setlk", far, "r", "0", "0"), // to the end of the file
		do(rootProc, success, "setlk", far, "w", "200", "10"),
		do(rootProc, success, "setlk", far, "w", "0", "100"),
		val(rootProc, "w,100,100,"+pid, "getlk", far, "r", "0", "0"),
		val(rootProc, "u", "getlk", far, "w", "300", "10"),
		do(rootProc, syscall.EAGAIN, "setlk", name, "w", "150", "1"), // another process on the same mount
	})
	// Downgraded to a read lock, the range is shared; unlocking a part
	// leaves the rest.
	if err := setlk(fd, unix.F_SETLK, unix.F_RDLCK, 100, 100); err != nil {
		t.Fatal(err)
	}
	if err := setlk(fd, unix.F_SETLK, unix.F_UNLCK, 100, 50); err != nil {
		t.Fatal(err)
	}
	run(t, []step{
		do(rootProc, success, "setlk", far, "r", "150", "10"),
		do(rootProc, success, "setlk", far, "w", "100", "50"),
		do(rootProc, syscall.EAGAIN, "setlk", far, "w", "150", "50"),
		val(rootProc, "r,150,50,"+pid, "getlk", far, "w", "0", "0"),
	})
	// Closing any descriptor of the file drops the process's locks.
	fd2, err := unix.Open(name, unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd2)
	expect(t, success, rootProc, "setlk", far, "w", "0", "0")
	unix.Close(fd)

	// flock locks, independent of fcntl locks.
	fd, err = unix.Open(name, unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	flock := func(how int) {
		t.Helper()
		for {
			err := unix.Flock(fd, how)
			if err == nil {
				return
			}
			if err != unix.EINTR {
				t.Fatalf("flock: %v", err)
			}
		}
	}
	flock(unix.LOCK_EX)
	run(t, []step{
		do(rootProc, syscall.EWOULDBLOCK, "flock", far, "sh"),
		do(rootProc, syscall.EWOULDBLOCK, "flock", name, "ex"),
		do(rootProc, success, "setlk", far, "w", "0", "0"),
	})
	flock(unix.LOCK_SH)
	run(t, []step{
		do(rootProc, success, "flock", far, "sh"),
		do(rootProc, syscall.EWOULDBLOCK, "flock", far, "ex"),
	})
	flock(unix.LOCK_UN)
	expect(t, success, rootProc, "flock", far, "ex")

	// Open file description locks: a waiter on the other mount gets the
	// lock once it is released here.
	a, err := unix.Open(name, unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(a)
	b, err := unix.Open(far, unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(b)
	if err := setlk(a, unix.F_OFD_SETLK, unix.F_WRLCK, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := setlk(b, unix.F_OFD_SETLK, unix.F_RDLCK, 10, 1); err != syscall.EAGAIN {
		t.Fatalf("OFD lock through the other mount: %v, want EAGAIN", err)
	}
	granted := make(chan error, 1)
	go func() { granted <- setlk(b, unix.F_OFD_SETLKW, unix.F_WRLCK, 0, 0) }()
	select {
	case err := <-granted:
		t.Fatalf("a waiting lock was granted while held elsewhere: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := setlk(a, unix.F_OFD_SETLK, unix.F_UNLCK, 0, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-granted:
		if err != nil {
			t.Fatalf("waiting lock: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a waiting lock was not granted after the release")
	}
	if err := setlk(a, unix.F_OFD_SETLK, unix.F_RDLCK, 0, 1); err != syscall.EAGAIN {
		t.Fatalf("after the waiter got the lock: %v, want EAGAIN", err)
	}
}

// testBigDir: a directory of 100,000 entries lists every one exactly
// once, on both mounts.
func testBigDir(t *testing.T, f *posixFS) {
	d := f.dir(t)
	const n = 100000
	start := time.Now()
	var wg sync.WaitGroup
	const workers = 8
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				if err := unix.Mknod(filepath.Join(d, "e"+strconv.Itoa(i)), unix.S_IFREG|0o644, 0); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("created %d entries in %v", n, time.Since(start).Round(time.Millisecond))
	for _, dir := range []string{d, f.other(d)} {
		start = time.Now()
		fh, err := os.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		names, err := fh.Readdirnames(-1)
		fh.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("listed %d entries in %v", len(names), time.Since(start).Round(time.Millisecond))
		seen := make([]bool, n)
		for _, name := range names {
			i, err := strconv.Atoi(strings.TrimPrefix(name, "e"))
			if err != nil || i < 0 || i >= n || !strings.HasPrefix(name, "e") {
				t.Fatalf("unexpected entry %q", name)
			}
			if seen[i] {
				t.Fatalf("%q listed twice", name)
			}
			seen[i] = true
		}
		if len(names) != n {
			t.Fatalf("%s: %d entries, want %d", dir, len(names), n)
		}
	}
	expectValue(t, "dir,2", asRoot, "stat", d, "type,nlink")
	// rewinddir lists the same entries again.
	fh, err := os.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	first, err := fh.Readdirnames(3000)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	again, err := fh.Readdirnames(3000)
	if err != nil || strings.Join(again, ",") != strings.Join(first, ",") {
		t.Errorf("after rewinddir: %d names, %v, same %v", len(again), err, strings.Join(again, ",") == strings.Join(first, ","))
	}
}

// Without -o acl and -o selinux, as on a GlusterFS mount without them,
// POSIX ACLs and SELinux labels are not supported (EOPNOTSUPP, and not
// listed): ls -l then asks for them once per file system, not once per
// file. With the options they are kept on the bricks and read back.
func TestMountACLOption(t *testing.T) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
	c := clustertest.New(t)
	n := c.Pool(1)[0]
	n.MustCLI("volume", "create", "aclvol", n.Brick("acl1"))
	n.MustCLI("volume", "start", "aclvol")
	plain := mountPublic(t, c, n, "aclvol", "acl-plain")
	withACL := mountPublic(t, c, n, "aclvol", "acl-on", "--acl", "--selinux")
	if err := os.WriteFile(filepath.Join(plain, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// user::rw- user:1000:r-- group::r-- mask::r-- other::r-- in the
	// kernel's xattr form: version 2, then (tag, perm, id) entries.
	acl := []byte{2, 0, 0, 0}
	for _, e := range []struct {
		tag, perm uint16
		id        uint32
	}{{1, 6, 0xffffffff}, {2, 4, 1000}, {4, 4, 0xffffffff}, {0x10, 4, 0xffffffff}, {0x20, 4, 0xffffffff}} {
		acl = binary.LittleEndian.AppendUint16(acl, e.tag)
		acl = binary.LittleEndian.AppendUint16(acl, e.perm)
		acl = binary.LittleEndian.AppendUint32(acl, e.id)
	}
	const name = "system.posix_acl_access"
	pf, af := filepath.Join(plain, "f"), filepath.Join(withACL, "f")
	if err := syscall.Setxattr(pf, name, acl, 0); !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Fatalf("setting an ACL without -o acl: %v, want EOPNOTSUPP", err)
	}
	buf := make([]byte, 256)
	if _, err := syscall.Getxattr(pf, "security.selinux", buf); !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Fatalf("reading a label without -o selinux: %v, want EOPNOTSUPP", err)
	}
	if err := syscall.Setxattr(af, name, acl, 0); err != nil {
		t.Fatalf("setting an ACL with -o acl: %v", err)
	}
	sz, err := syscall.Getxattr(af, name, buf)
	if err != nil || !bytes.Equal(buf[:sz], acl) {
		t.Fatalf("ACL read back with -o acl: %v, %x, want %x", err, buf[:sz], acl)
	}
	list := func(p string) string {
		sz, err := syscall.Listxattr(p, buf)
		if err != nil {
			t.Fatalf("listxattr %s: %v", p, err)
		}
		return string(buf[:sz])
	}
	if l := list(af); !strings.Contains(l, name) {
		t.Fatalf("listxattr with -o acl: %q, want %s", l, name)
	}
	if l := list(pf); strings.Contains(l, name) {
		t.Fatalf("listxattr without -o acl: %q lists %s", l, name)
	}
}
