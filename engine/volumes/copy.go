package volumes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/image/layer"
)

// OpenInRoot opens rel beneath root as if root were "/": ".." stops at
// root and symlinks, absolute or relative, resolve inside it, so nothing
// outside root is ever reached. flags are open(2)'s.
func OpenInRoot(root, rel string, flags uint64) (int, error) {
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", root, err)
	}
	defer unix.Close(rfd)
	rel = strings.TrimLeft(rel, "/")
	if rel == "" {
		rel = "."
	}
	how := &unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	for i := 0; ; i++ {
		fd, err := unix.Openat2(rfd, rel, how)
		if err == unix.EAGAIN && i < 16 {
			continue
		}
		return fd, err
	}
}

// FDPath names an open descriptor as a path this process can open.
func FDPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// CopyUp copies what the container's root file system has at dst (a
// directory, resolved inside rootfs) into the volume directory dir if dir
// is empty, as Docker fills a new volume from the image: content, owners,
// modes, and the directory's own owner and mode. Devices are skipped.
func CopyUp(ctx context.Context, rootfs, dst, dir string) error {
	src, err := OpenInRoot(rootfs, dst, unix.O_RDONLY|unix.O_DIRECTORY)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("copy the image's %s into the volume: %w", dst, err)
	}
	defer unix.Close(src)
	empty, err := isEmpty(dir)
	if err != nil || !empty {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstat(src, &st); err != nil {
		return err
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(layer.Pack(ctx, pw, FDPath(src), layer.PackOptions{Whiteouts: layer.WhiteoutLiteral}))
	}()
	_, err = layer.Unpack(ctx, pr, dir, layer.Options{Whiteouts: layer.WhiteoutLiteral, Devices: layer.DevicesSkip})
	pr.CloseWithError(err)
	if err != nil {
		return fmt.Errorf("copy the image's %s into the volume: %w", dst, err)
	}
	if err := os.Lchown(dir, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	return os.Chmod(dir, os.FileMode(st.Mode&0o777)|modeBits(st.Mode))
}

func modeBits(m uint32) os.FileMode {
	var out os.FileMode
	if m&unix.S_ISUID != 0 {
		out |= os.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		out |= os.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		out |= os.ModeSticky
	}
	return out
}

func isEmpty(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err == io.EOF {
		return true, nil
	}
	return len(names) == 0, err
}
