package layer

// Operations relative to a directory descriptor that never leave it.

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// inRoot resolves a path as if the descriptor were "/": ".." stops there
// and absolute symlinks start there. Magic links (/proc/<pid>/fd/N) are
// refused: they could jump anywhere.
const inRoot = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

// openat2 opens rel (relative, cleaned; "" for the root itself) beneath
// rootFD with the in-root rules, retrying while the kernel asks to.
func openat2(rootFD int, rel string, flags uint64) (int, error) {
	if rel == "" {
		rel = "."
	}
	how := &unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Resolve: inRoot}
	for i := 0; ; i++ {
		fd, err := unix.Openat2(rootFD, rel, how)
		if err == unix.EAGAIN && i < 16 {
			continue
		}
		return fd, err
	}
}

// openDir returns an O_PATH descriptor of the directory rel beneath rootFD.
// With create, missing components are made (mode 0755), each one with
// mkdirat in the directory resolved just before it. A component that is a
// symlink to a missing directory gets its target made, resolved inside the
// root as the kernel would resolve it, as mkdir -p through a symlink does.
func openDir(rootFD int, rel string, create bool) (int, error) {
	return openDirDepth(rootFD, rel, create, 0)
}

// maxLinkDepth bounds the symlinks followed while making directories, as
// the kernel's own limit does.
const maxLinkDepth = 40

func openDirDepth(rootFD int, rel string, create bool, depth int) (int, error) {
	fd, err := openat2(rootFD, rel, unix.O_PATH|unix.O_DIRECTORY)
	if err == nil || !create || !errors.Is(err, unix.ENOENT) {
		return fd, err
	}
	if depth > maxLinkDepth {
		return -1, unix.ELOOP
	}
	parent, err := openat2(rootFD, "", unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return -1, err
	}
	prefix := ""
	for _, comp := range strings.Split(rel, "/") {
		if comp == "" || comp == "." {
			continue
		}
		prefix += "/" + comp
		fd, err := openat2(rootFD, prefix, unix.O_PATH|unix.O_DIRECTORY)
		if errors.Is(err, unix.ENOENT) {
			err = unix.Mkdirat(parent, comp, 0o755)
			if errors.Is(err, unix.EEXIST) {
				err = makeLinkTarget(rootFD, parent, prefix, comp, depth)
			}
			if err == nil {
				fd, err = openat2(rootFD, prefix, unix.O_PATH|unix.O_DIRECTORY)
			}
		}
		unix.Close(parent)
		if err != nil {
			return -1, fmt.Errorf("directory %s: %w", strings.TrimPrefix(prefix, "/"), err)
		}
		parent = fd
	}
	return parent, nil
}

// makeLinkTarget makes the missing directory that comp in parent, a
// symlink at prefix, points to. Anything else in the way is ENOTDIR.
func makeLinkTarget(rootFD, parent int, prefix, comp string, depth int) error {
	target, err := readlinkAt(parent, comp)
	if err != nil {
		if errors.Is(err, unix.EINVAL) {
			return unix.ENOTDIR // not a symlink
		}
		return err
	}
	if !strings.HasPrefix(target, "/") {
		target = prefix[:strings.LastIndexByte(prefix, '/')+1] + target
	}
	fd, err := openDirDepth(rootFD, target, true, depth+1)
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

// lstatAt stats name in the directory dirFD without following a symlink.
func lstatAt(dirFD int, name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	err := unix.Fstatat(dirFD, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	return st, err
}

// removeAll removes name in dirFD and, for a directory, all it holds,
// following no symlink.
func removeAll(dirFD int, name string) error {
	err := unix.Unlinkat(dirFD, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return err
	}
	if err := removeChildren(dirFD, name); err != nil {
		return err
	}
	return unix.Unlinkat(dirFD, name, unix.AT_REMOVEDIR)
}

// removeChildren empties the directory name in dirFD.
func removeChildren(dirFD int, name string) error {
	fd, err := unix.Openat(dirFD, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	for {
		names, err := f.Readdirnames(256)
		for _, n := range names {
			if err := removeAll(fd, n); err != nil {
				return err
			}
		}
		if err != nil {
			return nil // io.EOF: done
		}
		if _, err := f.Seek(0, 0); err != nil {
			return err
		}
	}
}

// procPath names the inode behind an O_PATH descriptor, or name in the
// directory behind it, through /proc, for the calls that have no *at form.
func procPath(fd int, name string) string {
	p := "/proc/self/fd/" + strconv.Itoa(fd)
	if name != "" {
		p += "/" + name
	}
	return p
}

// chmodAt sets the mode of name in dirFD, which must not be a symlink.
func chmodAt(dirFD int, name string, mode uint32) error {
	fd, err := unix.Openat(dirFD, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return nil
	}
	return unix.Chmod(procPath(fd, ""), mode)
}
