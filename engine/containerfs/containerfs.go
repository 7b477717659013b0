package containerfs

import (
	"archive/tar"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/engine/volumes"
	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/image/layer"
)

// PathStat is what the X-Docker-Container-Path-Stat header carries: the
// file's base name, size, mode (in Go's os.FileMode encoding, which the
// docker CLI decodes), modification time and symlink target.
type PathStat struct {
	Name       string      `json:"name"`
	Size       int64       `json:"size"`
	Mode       os.FileMode `json:"mode"`
	Mtime      time.Time   `json:"mtime"`
	LinkTarget string      `json:"linkTarget"`
}

// Header encodes a stat as the X-Docker-Container-Path-Stat header.
func (s PathStat) Header() string {
	b, _ := json.Marshal(s)
	return base64.StdEncoding.EncodeToString(b)
}

// CleanPath checks a path given by a client (relative paths are taken
// from "/") and returns it cleaned and absolute.
func CleanPath(p string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("path cannot be empty: %w", errdefs.ErrInvalid)
	}
	if strings.IndexByte(p, 0) >= 0 {
		return "", fmt.Errorf("invalid path %q: %w", p, errdefs.ErrInvalid)
	}
	return path.Clean("/" + p), nil
}

// ErrNoSuchPath is a path that does not exist in the container.
var ErrNoSuchPath = fmt.Errorf("no such file: %w", errdefs.ErrNotFound)

// PathError is a path of the container that cannot be used.
type PathError struct {
	Path string
	Err  error
}

func (e *PathError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *PathError) Unwrap() error { return e.Err }

func notFound(p string) error { return &PathError{Path: p, Err: ErrNoSuchPath} }

// openNoFollow opens p beneath root without following its last component
// (O_PATH), returning the descriptor and its stat.
func openNoFollow(root, p string) (int, unix.Stat_t, error) {
	var st unix.Stat_t
	fd, err := volumes.OpenInRoot(root, p, unix.O_PATH|unix.O_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return -1, st, notFound(p)
	}
	if err != nil {
		return -1, st, fmt.Errorf("%s: %w", p, err)
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, st, err
	}
	return fd, st, nil
}

// Stat describes the file at p (absolute, cleaned) beneath root.
func Stat(root, p string) (PathStat, error) {
	fd, st, err := openNoFollow(root, p)
	if err != nil {
		return PathStat{}, err
	}
	defer unix.Close(fd)
	return statOf(fd, p, st), nil
}

func statOf(fd int, p string, st unix.Stat_t) PathStat {
	ps := PathStat{Name: path.Base(p), Size: st.Size, Mode: fileMode(st.Mode), Mtime: time.Unix(st.Mtim.Unix()).UTC()}
	if p == "/" {
		ps.Name = "/"
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		buf := make([]byte, 4096)
		if n, err := unix.Readlinkat(fd, "", buf); err == nil {
			ps.LinkTarget = string(buf[:n])
		}
	}
	return ps
}

// fileMode converts a stat mode to Go's encoding.
func fileMode(m uint32) os.FileMode {
	mode := os.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= os.ModeDir
	case unix.S_IFLNK:
		mode |= os.ModeSymlink
	case unix.S_IFIFO:
		mode |= os.ModeNamedPipe
	case unix.S_IFSOCK:
		mode |= os.ModeSocket
	case unix.S_IFCHR:
		mode |= os.ModeDevice | os.ModeCharDevice
	case unix.S_IFBLK:
		mode |= os.ModeDevice
	}
	if m&unix.S_ISUID != 0 {
		mode |= os.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		mode |= os.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= os.ModeSticky
	}
	return mode
}

// Archive writes p (beneath root) to w as a tar stream whose entries are
// named from p's base name: "x" for a file, "x/", "x/a"… for a directory,
// as docker cp expects. It returns p's stat, known before any byte is
// written.
func Archive(ctx context.Context, w io.Writer, root, p string, started func(PathStat)) error {
	fd, st, err := openNoFollow(root, p)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ps := statOf(fd, p, st)
	if started != nil {
		started(ps)
	}
	base := ps.Name
	if p == "/" {
		base = "."
	}
	tw := tar.NewWriter(w)
	hdr := &tar.Header{Name: base, Mode: int64(st.Mode & 0o7777), Uid: int(st.Uid), Gid: int(st.Gid), ModTime: ps.Mtime, Format: tar.FormatPAX}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag, hdr.Name = tar.TypeDir, base+"/"
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		dfd, err := volumes.OpenInRoot(root, p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
		if err != nil {
			return err
		}
		defer unix.Close(dfd)
		if err := packUnder(ctx, tw, volumes.FDPath(dfd), base+"/"); err != nil {
			return err
		}
	case unix.S_IFLNK:
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, ps.LinkTarget
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
	case unix.S_IFREG:
		ffd, err := volumes.OpenInRoot(root, p, unix.O_RDONLY|unix.O_NOFOLLOW)
		if err != nil {
			return err
		}
		f := os.NewFile(uintptr(ffd), p)
		defer f.Close()
		hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.CopyN(tw, f, st.Size); err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
	default:
		return fmt.Errorf("%s is not a file, directory or symlink: %w", p, errdefs.ErrInvalid)
	}
	return tw.Close()
}

// packUnder packs the tree of dir into tw with every name prefixed.
func packUnder(ctx context.Context, tw *tar.Writer, dir, prefix string) error {
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(layer.Pack(ctx, pw, dir, layer.PackOptions{Whiteouts: layer.WhiteoutLiteral}))
	}()
	defer pr.Close()
	tr := tar.NewReader(pr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		h.Name = prefix + h.Name
		if h.Typeflag == tar.TypeLink {
			h.Linkname = prefix + h.Linkname
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}

// ExtractOptions tune Extract.
type ExtractOptions struct {
	// KeepOwners keeps the archive's user and group IDs (docker cp -a);
	// otherwise root owns everything.
	KeepOwners bool
	// MaxSize bounds the content written (0: no bound).
	MaxSize int64
}

// Extract unpacks the tar archive r into the directory p beneath root.
// p must exist and be a directory, as Docker requires.
func Extract(ctx context.Context, r io.Reader, root, p string, opts ExtractOptions) error {
	fd, st, err := openNoFollow(root, p)
	if err != nil {
		return err
	}
	unix.Close(fd)
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		// The CLI resolves the destination's links itself; a link here
		// is followed inside the root.
		dfd, err := volumes.OpenInRoot(root, p, unix.O_PATH|unix.O_DIRECTORY)
		if err != nil {
			return fmt.Errorf("extraction point is not a directory: %w", errdefs.ErrInvalid)
		}
		unix.Close(dfd)
	} else if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("extraction point is not a directory: %w", errdefs.ErrInvalid)
	}
	var owner *layer.Owner
	if !opts.KeepOwners {
		owner = &layer.Owner{UID: 0, GID: 0}
	}
	lo := layer.CopyOptions(strings.TrimPrefix(p, "/"), owner)
	lo.MaxSize = opts.MaxSize
	if _, err := layer.Unpack(ctx, r, root, lo); err != nil {
		return fmt.Errorf("copy to %s: %w", p, err)
	}
	return nil
}
