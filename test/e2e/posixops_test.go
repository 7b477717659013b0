package e2e

// A small interpreter of file system calls for the POSIX behaviour tests.
// A call is a list of words, as in pjdfstest's fstest tool: the system
// call's name, then its arguments. runOp performs one in this process; as
// another user (uid, gid and groups) the test binary runs it in a child
// process with those credentials (SysProcAttr.Credential), so the
// kernel's permission checks on the mount see a real unprivileged caller.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Environment of the child process that runs one call.
const (
	opEnv = "CAIS_POSIX_OP" // the call's words, separated by opSep

	opSep = "\x1f"
)

func TestMain(m *testing.M) {
	if words, ok := os.LookupEnv(opEnv); ok {
		res, err := runOp(strings.Split(words, opSep))
		fmt.Print(formatResult(res, err))
		os.Exit(0)
	}
	code := m.Run()
	removeHelper() // after every suite that used it
	os.Exit(code)
}

// formatResult renders a call's outcome as the child prints it: the
// result, or "errno N".
func formatResult(res string, err error) string {
	if err != nil {
		var e syscall.Errno
		if errors.As(err, &e) {
			return "errno " + strconv.Itoa(int(e))
		}
		return "error " + err.Error()
	}
	return res
}

// cred is a caller: uid 0 runs in the test process itself.
type cred struct {
	UID    uint32
	GID    uint32
	Groups []uint32
}

// Callers of the tests: root, and users that own nothing by default.
var (
	asRoot = cred{}
	nobody = cred{UID: 65534, GID: 65534}
	other  = cred{UID: 65533, GID: 65533}
	// nobody in a second group, 65532, as well.
	nobodyG = cred{UID: 65534, GID: 65534, Groups: []uint32{65534, 65532}}
	// root in a process of its own, for locks another process holds.
	rootProc = cred{Groups: []uint32{0}}
)

var (
	helperOnce sync.Once
	helperBin  string
	helperErr  error
)

// helper returns a copy of the test binary that any user may run (the
// go test build directory is root's alone).
func helper(tb testing.TB) string {
	tb.Helper()
	helperOnce.Do(func() {
		self, err := os.Executable()
		if err != nil {
			helperErr = err
			return
		}
		dir, err := os.MkdirTemp("", "cais-posix-helper")
		if err != nil {
			helperErr = err
			return
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			helperErr = err
			return
		}
		in, err := os.Open(self)
		if err != nil {
			helperErr = err
			return
		}
		defer in.Close()
		helperBin = filepath.Join(dir, "e2e.test")
		out, err := os.OpenFile(helperBin, os.O_CREATE|os.O_WRONLY, 0o755)
		if err != nil {
			helperErr = err
			return
		}
		if _, err := io.Copy(out, in); err != nil {
			helperErr = err
		}
		if err := out.Close(); err != nil && helperErr == nil {
			helperErr = err
		}
	})
	if helperErr != nil {
		tb.Fatalf("posix helper: %v", helperErr)
	}
	return helperBin
}

// removeHelper deletes the helper copy; TestMain calls it when the tests
// are done.
func removeHelper() {
	if helperBin != "" {
		os.RemoveAll(filepath.Dir(helperBin))
	}
}

// as performs a call as c and returns its result or its errno.
func as(tb testing.TB, c cred, words ...string) (string, error) {
	tb.Helper()
	if c.UID == 0 && c.GID == 0 && c.Groups == nil {
		return runOp(words)
	}
	cmd := exec.Command(helper(tb), "-test.run=^$")
	cmd.Env = append(os.Environ(), opEnv+"="+strings.Join(words, opSep))
	groups := c.Groups
	if groups == nil {
		groups = []uint32{c.GID}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: c.UID, Gid: c.GID, Groups: groups}}
	cmd.Dir = "/"
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("helper as %d:%d for %q: %v", c.UID, c.GID, words, err)
	}
	s := string(out)
	if n, ok := strings.CutPrefix(s, "errno "); ok {
		e, err := strconv.Atoi(n)
		if err != nil {
			tb.Fatalf("helper output %q", s)
		}
		return "", syscall.Errno(e)
	}
	if msg, ok := strings.CutPrefix(s, "error "); ok {
		tb.Fatalf("helper for %q: %s", words, msg)
	}
	return s, nil
}

// expect performs a call as c and fails the test unless it ends with
// errno want (0: success).
func expect(tb testing.TB, want syscall.Errno, c cred, words ...string) {
	tb.Helper()
	_, err := as(tb, c, words...)
	if got := errnoOf(err); got != want {
		tb.Errorf("%v as uid %d: got %s, want %s", words, c.UID, errName(got), errName(want))
	}
}

// expectValue performs a call that returns a value (stat fields,
// readlink) and fails the test unless it is want.
func expectValue(tb testing.TB, want string, c cred, words ...string) {
	tb.Helper()
	got, err := as(tb, c, words...)
	if err != nil {
		tb.Errorf("%v as uid %d: %v, want %q", words, c.UID, errName(errnoOf(err)), want)
		return
	}
	if got != want {
		tb.Errorf("%v as uid %d: got %q, want %q", words, c.UID, got, want)
	}
}

func errnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.Errno(^uint(0) >> 1)
}

func errName(e syscall.Errno) string {
	if e == 0 {
		return "success"
	}
	if n := unix.ErrnoName(e); n != "" {
		return n
	}
	return strconv.Itoa(int(e))
}

// Open flags by name.
var openFlagNames = map[string]int{
	"O_RDONLY": unix.O_RDONLY, "O_WRONLY": unix.O_WRONLY, "O_RDWR": unix.O_RDWR,
	"O_CREAT": unix.O_CREAT, "O_EXCL": unix.O_EXCL, "O_TRUNC": unix.O_TRUNC,
	"O_APPEND": unix.O_APPEND, "O_NOFOLLOW": unix.O_NOFOLLOW, "O_DIRECTORY": unix.O_DIRECTORY,
	"O_NONBLOCK": unix.O_NONBLOCK, "O_SYNC": unix.O_SYNC, "O_PATH": unix.O_PATH,
}

func parseFlags(s string) (int, error) {
	f := 0
	for _, w := range strings.Split(s, "|") {
		v, ok := openFlagNames[w]
		if !ok {
			return 0, fmt.Errorf("unknown open flag %q", w)
		}
		f |= v
	}
	return f, nil
}

func parseMode(s string) (uint32, error) {
	v, err := strconv.ParseUint(s, 8, 32)
	return uint32(v), err
}

func parseInt(s string) int {
	v, err := strconv.ParseInt(s, 0, 64)
	if err != nil {
		panic(fmt.Sprintf("bad number %q", s))
	}
	return int(v)
}

// parseTime is a utimensat time: seconds, or NOW or OMIT.
func parseTime(s string) unix.Timespec {
	switch s {
	case "NOW":
		return unix.Timespec{Nsec: unix.UTIME_NOW}
	case "OMIT":
		return unix.Timespec{Nsec: unix.UTIME_OMIT}
	}
	sec, nsec, _ := strings.Cut(s, ".")
	ts := unix.Timespec{Sec: int64(parseInt(sec))}
	if nsec != "" {
		ts.Nsec = int64(parseInt(nsec))
	}
	return ts
}

// statFields renders the named fields of a stat result, comma-separated:
// type, mode (octal permission bits), uid, gid, nlink, size, rdev
// (major,minor as major:minor), atime, mtime, ctime (ns).
func statFields(st *unix.Stat_t, fields string) (string, error) {
	var out []string
	for _, f := range strings.Split(fields, ",") {
		switch f {
		case "type":
			out = append(out, typeName(st.Mode))
		case "mode":
			out = append(out, fmt.Sprintf("0%o", st.Mode&0o7777))
		case "uid":
			out = append(out, strconv.Itoa(int(st.Uid)))
		case "gid":
			out = append(out, strconv.Itoa(int(st.Gid)))
		case "nlink":
			out = append(out, strconv.Itoa(int(st.Nlink)))
		case "size":
			out = append(out, strconv.FormatInt(st.Size, 10))
		case "rdev":
			out = append(out, fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev)))
		case "atime":
			out = append(out, strconv.FormatInt(st.Atim.Nano(), 10))
		case "mtime":
			out = append(out, strconv.FormatInt(st.Mtim.Nano(), 10))
		case "ctime":
			out = append(out, strconv.FormatInt(st.Ctim.Nano(), 10))
		default:
			return "", fmt.Errorf("unknown stat field %q", f)
		}
	}
	return strings.Join(out, ","), nil
}

func typeName(m uint32) string {
	switch m & unix.S_IFMT {
	case unix.S_IFREG:
		return "regular"
	case unix.S_IFDIR:
		return "dir"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR:
		return "char"
	case unix.S_IFBLK:
		return "block"
	}
	return "unknown"
}

// runOp performs one call. Errors are the system call's errno; a call
// the interpreter does not know is a plain error.
func runOp(w []string) (res string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v: %v", w, r)
		}
	}()
	need := func(n int) {
		if len(w) != n+1 {
			panic(fmt.Sprintf("%s takes %d arguments", w[0], n))
		}
	}
	switch w[0] {
	case "open": // open PATH FLAGS [MODE]
		if len(w) != 3 && len(w) != 4 {
			need(3)
		}
		flags, err := parseFlags(w[2])
		if err != nil {
			return "", err
		}
		var mode uint32
		if len(w) == 4 {
			if mode, err = parseMode(w[3]); err != nil {
				return "", err
			}
		}
		fd, err := unix.Open(w[1], flags|unix.O_CLOEXEC, mode)
		if err != nil {
			return "", err
		}
		return "", unix.Close(fd)
	case "create": // create PATH MODE
		need(2)
		fd, err := unix.Open(w[1], unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, mustMode(w[2]))
		if err != nil {
			return "", err
		}
		return "", unix.Close(fd)
	case "mkdir":
		need(2)
		return "", unix.Mkdir(w[1], mustMode(w[2]))
	case "rmdir":
		need(1)
		return "", unix.Rmdir(w[1])
	case "unlink":
		need(1)
		return "", unix.Unlink(w[1])
	case "mkfifo":
		need(2)
		return "", unix.Mkfifo(w[1], mustMode(w[2]))
	case "mknod": // mknod PATH TYPE(b|c|f|s) MODE MAJOR MINOR
		need(5)
		t := map[string]uint32{"b": unix.S_IFBLK, "c": unix.S_IFCHR, "f": unix.S_IFIFO, "s": unix.S_IFSOCK, "r": unix.S_IFREG}[w[2]]
		if t == 0 {
			return "", fmt.Errorf("mknod type %q", w[2])
		}
		return "", unix.Mknod(w[1], t|mustMode(w[3]), int(unix.Mkdev(uint32(parseInt(w[4])), uint32(parseInt(w[5])))))
	case "link":
		need(2)
		return "", unix.Link(w[1], w[2])
	case "symlink": // symlink TARGET PATH
		need(2)
		return "", unix.Symlink(w[1], w[2])
	case "readlink":
		need(1)
		buf := make([]byte, 8192)
		n, err := unix.Readlink(w[1], buf)
		if err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case "rename":
		need(2)
		return "", unix.Rename(w[1], w[2])
	case "renameat2": // renameat2 FROM TO noreplace|exchange
		need(3)
		flags := map[string]uint{"noreplace": unix.RENAME_NOREPLACE, "exchange": unix.RENAME_EXCHANGE}[w[3]]
		return "", unix.Renameat2(unix.AT_FDCWD, w[1], unix.AT_FDCWD, w[2], flags)
	case "chmod":
		need(2)
		return "", unix.Chmod(w[1], mustMode(w[2]))
	case "chown", "lchown": // chown PATH UID GID (-1 keeps)
		need(3)
		if w[0] == "lchown" {
			return "", unix.Lchown(w[1], parseInt(w[2]), parseInt(w[3]))
		}
		return "", unix.Chown(w[1], parseInt(w[2]), parseInt(w[3]))
	case "truncate":
		need(2)
		return "", unix.Truncate(w[1], int64(parseInt(w[2])))
	case "ftruncate": // ftruncate PATH FLAGS SIZE: open, then ftruncate
		need(3)
		flags, err := parseFlags(w[2])
		if err != nil {
			return "", err
		}
		fd, err := unix.Open(w[1], flags|unix.O_CLOEXEC, 0)
		if err != nil {
			return "", err
		}
		defer unix.Close(fd)
		return "", unix.Ftruncate(fd, int64(parseInt(w[3])))
	case "utimensat": // utimensat PATH ATIME MTIME [nofollow]
		if len(w) != 4 && len(w) != 5 {
			need(3)
		}
		flags := 0
		if len(w) == 5 {
			flags = unix.AT_SYMLINK_NOFOLLOW
		}
		return "", unix.UtimesNanoAt(unix.AT_FDCWD, w[1], []unix.Timespec{parseTime(w[2]), parseTime(w[3])}, flags)
	case "stat", "lstat": // stat PATH FIELDS
		need(2)
		var st unix.Stat_t
		var err error
		if w[0] == "stat" {
			err = unix.Stat(w[1], &st)
		} else {
			err = unix.Lstat(w[1], &st)
		}
		if err != nil {
			return "", err
		}
		return statFields(&st, w[2])
	case "write": // write PATH DATA: open O_WRONLY, write at 0
		need(2)
		fd, err := unix.Open(w[1], unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return "", err
		}
		defer unix.Close(fd)
		_, err = unix.Write(fd, []byte(w[2]))
		return "", err
	case "setlk", "getlk": // setlk PATH r|w|u START LEN: fcntl F_SETLK (getlk: F_GETLK)
		need(4)
		typ := map[string]int16{"r": unix.F_RDLCK, "w": unix.F_WRLCK, "u": unix.F_UNLCK}[w[2]]
		fd, err := unix.Open(w[1], unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return "", err
		}
		defer unix.Close(fd)
		lk := unix.Flock_t{Type: typ, Whence: 0, Start: int64(parseInt(w[3])), Len: int64(parseInt(w[4]))}
		if w[0] == "setlk" {
			return "", unix.FcntlFlock(uintptr(fd), unix.F_SETLK, &lk)
		}
		if err := unix.FcntlFlock(uintptr(fd), unix.F_GETLK, &lk); err != nil {
			return "", err
		}
		if lk.Type == unix.F_UNLCK {
			return "u", nil
		}
		return fmt.Sprintf("%s,%d,%d,%d", map[int16]string{unix.F_RDLCK: "r", unix.F_WRLCK: "w"}[lk.Type], lk.Start, lk.Len, lk.Pid), nil
	case "flock": // flock PATH sh|ex, without waiting
		need(2)
		fd, err := unix.Open(w[1], unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return "", err
		}
		defer unix.Close(fd)
		how := map[string]int{"sh": unix.LOCK_SH, "ex": unix.LOCK_EX}[w[2]]
		return "", unix.Flock(fd, how|unix.LOCK_NB)
	case "setxattr": // setxattr PATH NAME VALUE [create|replace]
		if len(w) != 4 && len(w) != 5 {
			need(3)
		}
		flags := 0
		if len(w) == 5 {
			flags = map[string]int{"create": unix.XATTR_CREATE, "replace": unix.XATTR_REPLACE}[w[4]]
		}
		return "", unix.Lsetxattr(w[1], w[2], []byte(w[3]), flags)
	case "getxattr":
		need(2)
		buf := make([]byte, 65536)
		n, err := unix.Lgetxattr(w[1], w[2], buf)
		if err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("unknown call %q", w[0])
}

func mustMode(s string) uint32 {
	m, err := parseMode(s)
	if err != nil {
		panic(fmt.Sprintf("bad mode %q", s))
	}
	return m
}
