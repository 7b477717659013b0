package layer

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// PackOptions tune Pack.
type PackOptions struct {
	// Whiteouts: WhiteoutOverlay turns overlayfs whiteouts (0/0 character
	// devices, trusted.overlay.opaque=y) into OCI whiteout entries, for
	// packing an upper directory as a layer. Other modes pack what is there.
	Whiteouts WhiteoutMode
	// Owner, when set, owns every entry instead of the files' own IDs.
	Owner *Owner
}

// Pack writes the tree under dir to w as a tar stream (without compression
// and without an entry for dir itself), in lexical order so that the same
// tree gives the same bytes. It follows no symlink: the tree may belong to
// a running container. Sockets are left out, as Docker leaves them out.
func Pack(ctx context.Context, w io.Writer, dir string, opts PackOptions) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer unix.Close(fd)
	p := &packer{tw: tar.NewWriter(w), opts: opts, links: map[[2]uint64]string{}}
	if err := p.dir(ctx, fd, ""); err != nil {
		return err
	}
	return p.tw.Close()
}

type packer struct {
	tw    *tar.Writer
	opts  PackOptions
	links map[[2]uint64]string // device and inode of files with several links -> first name
}

// dir packs the children of the directory dirFD, whose archive name is rel.
func (p *packer) dir(ctx context.Context, dirFD int, rel string) error {
	names, err := readDirNames(dirFD)
	if err != nil {
		return fmt.Errorf("read directory %q: %w", rel, err)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := p.entry(ctx, dirFD, rel, name); err != nil {
			return err
		}
	}
	return nil
}

// readDirNames lists a directory without taking over its descriptor.
func readDirNames(dirFD int) ([]string, error) {
	fd, err := unix.Openat(dirFD, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), ".")
	defer f.Close()
	return f.Readdirnames(-1)
}

func (p *packer) entry(ctx context.Context, dirFD int, rel, name string) error {
	st, err := lstatAt(dirFD, name)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil // gone since the listing
		}
		return err
	}
	arch := path.Join(rel, name)
	hdr := &tar.Header{
		Name:    arch,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: time.Unix(st.Mtim.Unix()).Truncate(time.Second),
		Format:  tar.FormatPAX,
	}
	if p.opts.Owner != nil {
		hdr.Uid, hdr.Gid = p.opts.Owner.UID, p.opts.Owner.GID
	}
	xattrs, opaque, err := readXattrs(dirFD, name, st, p.opts.Whiteouts == WhiteoutOverlay)
	if err != nil {
		return fmt.Errorf("%s: %w", arch, err)
	}
	if len(xattrs) > 0 {
		hdr.PAXRecords = map[string]string{}
		for _, x := range xattrs {
			hdr.PAXRecords[paxXattr+x.name] = x.value
		}
	}

	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
		if err := p.tw.WriteHeader(hdr); err != nil {
			return err
		}
		if opaque {
			wo := &tar.Header{Typeflag: tar.TypeReg, Name: path.Join(arch, whiteoutOpaque), Mode: hdr.Mode & 0o777, Uid: hdr.Uid, Gid: hdr.Gid, ModTime: hdr.ModTime, Format: tar.FormatPAX}
			if err := p.tw.WriteHeader(wo); err != nil {
				return err
			}
		}
		fd, err := unix.Openat(dirFD, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", arch, err)
		}
		defer unix.Close(fd)
		return p.dir(ctx, fd, arch)
	case unix.S_IFLNK:
		target, err := readlinkAt(dirFD, name)
		if err != nil {
			return fmt.Errorf("readlink %s: %w", arch, err)
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
		return p.tw.WriteHeader(hdr)
	case unix.S_IFCHR:
		if p.opts.Whiteouts == WhiteoutOverlay && st.Rdev == 0 {
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeReg, path.Join(rel, whiteoutPrefix+name), 0
			hdr.PAXRecords = nil
			return p.tw.WriteHeader(hdr)
		}
		hdr.Typeflag = tar.TypeChar
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
		return p.tw.WriteHeader(hdr)
	case unix.S_IFBLK:
		hdr.Typeflag = tar.TypeBlock
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
		return p.tw.WriteHeader(hdr)
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
		return p.tw.WriteHeader(hdr)
	case unix.S_IFREG:
		if st.Nlink > 1 {
			key := [2]uint64{st.Dev, st.Ino}
			if first, ok := p.links[key]; ok {
				hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
				return p.tw.WriteHeader(hdr)
			}
			p.links[key] = arch
		}
		return p.file(dirFD, name, hdr, st)
	}
	return nil // sockets
}

// file writes a regular file's header and content, refusing a file that
// changed between the stat and the open.
func (p *packer) file(dirFD int, name string, hdr *tar.Header, st unix.Stat_t) error {
	fd, err := unix.Openat(dirFD, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", hdr.Name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	var st2 unix.Stat_t
	if err := unix.Fstat(fd, &st2); err != nil {
		return err
	}
	if st2.Ino != st.Ino || st2.Dev != st.Dev || st2.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%s changed while packing", hdr.Name)
	}
	hdr.Typeflag, hdr.Size = tar.TypeReg, st2.Size
	if err := p.tw.WriteHeader(hdr); err != nil {
		return err
	}
	n, err := io.CopyN(p.tw, f, hdr.Size)
	if err != nil {
		return fmt.Errorf("%s: copied %d of %d bytes: %w", hdr.Name, n, hdr.Size, err)
	}
	return nil
}

func readlinkAt(dirFD int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirFD, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// readXattrs lists the extended attributes of name in dirFD, leaving out
// overlayfs's own; opaque reports trusted.overlay.opaque=y when overlay is
// set.
func readXattrs(dirFD int, name string, st unix.Stat_t, overlay bool) (xs []xattr, opaque bool, err error) {
	p := procPath(dirFD, name)
	size, err := unix.Llistxattr(p, nil)
	if err != nil || size == 0 {
		if errors.Is(err, unix.ENOTSUP) {
			err = nil
		}
		return nil, false, err
	}
	buf := make([]byte, size)
	size, err = unix.Llistxattr(p, buf)
	if err != nil {
		return nil, false, err
	}
	for _, attr := range strings.Split(strings.TrimRight(string(buf[:size]), "\x00"), "\x00") {
		if attr == "" {
			continue
		}
		vsize, err := unix.Lgetxattr(p, attr, nil)
		if err != nil {
			continue // removed since the listing
		}
		val := make([]byte, vsize)
		vsize, err = unix.Lgetxattr(p, attr, val)
		if err != nil {
			continue
		}
		if strings.HasPrefix(attr, overlayXattr) {
			if overlay && attr == overlayOpaque && string(val[:vsize]) == overlayOpaqueYes && st.Mode&unix.S_IFMT == unix.S_IFDIR {
				opaque = true
			}
			continue
		}
		xs = append(xs, xattr{attr, string(val[:vsize])})
	}
	slices.SortFunc(xs, func(a, b xattr) int { return strings.Compare(a.name, b.name) })
	return xs, opaque, nil
}
