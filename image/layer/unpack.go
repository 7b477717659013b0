package layer

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/errdefs"
)

// WhiteoutMode says what whiteout files in an archive mean.
type WhiteoutMode int

// Whiteout modes.
const (
	// WhiteoutOverlay converts whiteouts to overlayfs's form: a 0/0
	// character device, and trusted.overlay.opaque=y on opaque directories.
	WhiteoutOverlay WhiteoutMode = iota
	// WhiteoutApply deletes what whiteouts name, flattening a layer onto
	// the tree of the layers below it.
	WhiteoutApply
	// WhiteoutLiteral treats whiteout files as the ordinary files they
	// are (build contexts, docker cp).
	WhiteoutLiteral
)

// DevicePolicy says what to do with block and character devices that are
// not whiteouts.
type DevicePolicy int

// Device policies.
const (
	// DevicesRefuse fails the unpack, naming the entry.
	DevicesRefuse DevicePolicy = iota
	// DevicesSkip leaves them out.
	DevicesSkip
	// DevicesAllow makes them (needs CAP_MKNOD).
	DevicesAllow
)

// Owner is a user and group ID.
type Owner struct{ UID, GID int }

// Options tune Unpack. The zero value suits image layers that become
// overlayfs lower directories, unpacked as root.
type Options struct {
	// Whiteouts says how whiteout files are handled.
	Whiteouts WhiteoutMode
	// Devices says what to do with device nodes.
	Devices DevicePolicy
	// Owner, when set, owns every entry instead of the archive's IDs
	// (docker cp without -a, build contexts).
	Owner *Owner
	// NoXattrs drops extended attributes.
	NoXattrs bool
	// Subdir, when set, is a directory inside the target (resolved inside
	// it, symlinks included, and made if missing) where the archive's
	// root lands: docker cp to a path in a container's root.
	Subdir string
	// MaxSize, when positive, bounds the bytes of file content written:
	// a small compressed archive (or a sparse entry) can expand without
	// limit otherwise.
	MaxSize int64
}

// Result describes an unpacked archive.
type Result struct {
	// DiffID is the digest of the uncompressed tar stream.
	DiffID digest.Digest
	// Size counts the uncompressed bytes.
	Size int64
	// Compression is what the stream was compressed with.
	Compression Compression
	// Entries counts the archive's entries.
	Entries int
}

// Prefixes of whiteout names.
const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// Extended attributes.
const (
	paxXattr         = "SCHILY.xattr."
	overlayXattr     = "trusted.overlay."
	overlayOpaque    = "trusted.overlay.opaque"
	overlayOpaqueYes = "y"
)

// EntryError is an archive entry that could not be unpacked.
type EntryError struct {
	Name string // the entry's name as the archive gives it
	Err  error
}

func (e *EntryError) Error() string { return fmt.Sprintf("layer entry %q: %v", e.Name, e.Err) }
func (e *EntryError) Unwrap() error { return e.Err }

// Errors that make an archive invalid; each wraps errdefs.ErrInvalid.
var (
	ErrEscape       = fmt.Errorf("path escapes the target directory: %w", errdefs.ErrInvalid)
	ErrBadName      = fmt.Errorf("invalid path: %w", errdefs.ErrInvalid)
	ErrDevice       = fmt.Errorf("device nodes are not allowed: %w", errdefs.ErrInvalid)
	ErrLinkTarget   = fmt.Errorf("hard link target is not a file in the archive's tree: %w", errdefs.ErrInvalid)
	ErrEntryType    = fmt.Errorf("unsupported entry type: %w", errdefs.ErrInvalid)
	ErrOverlayXattr = fmt.Errorf("overlay extended attributes are not allowed: %w", errdefs.ErrInvalid)
	ErrTooLarge     = fmt.Errorf("archive content exceeds the size limit: %w", errdefs.ErrInvalid)
)

// cleanName turns an archive name into a relative, cleaned path ("" for the
// root). Leading "/" and "./" are dropped; ".." components and NUL bytes
// are refused.
func cleanName(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", ErrBadName
	}
	for _, comp := range strings.Split(name, "/") {
		if comp == ".." {
			return "", ErrEscape
		}
	}
	p := strings.TrimPrefix(path.Clean("/"+name), "/")
	return p, nil
}

// Unpack reads a tar archive, plain or compressed, from r and writes its
// entries into dir, which must exist. It stops at the first entry it cannot
// unpack; what was unpacked before stays (the caller unpacks into a fresh
// directory and removes it on failure). Nothing outside dir is created,
// changed or removed, whatever the archive holds.
func Unpack(ctx context.Context, r io.Reader, dir string, opts Options) (Result, error) {
	var res Result
	zr, comp, err := Decompress(r)
	if err != nil {
		return res, err
	}
	defer zr.Close()
	res.Compression = comp
	rootFD, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return res, fmt.Errorf("open target %s: %w", dir, err)
	}
	defer unix.Close(rootFD)

	subdir := ""
	if opts.Subdir != "" {
		if subdir, err = cleanName(opts.Subdir); err != nil {
			return res, fmt.Errorf("subdirectory %q: %w", opts.Subdir, err)
		}
	}

	h := sha256.New()
	counted := &countingReader{r: io.TeeReader(zr, h)}
	u := &unpacker{rootFD: rootFD, opts: opts}
	tr := tar.NewReader(counted)
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return res, fmt.Errorf("read archive: %w: %w", err, errdefs.ErrInvalid)
		}
		res.Entries++
		if err := u.entry(ctx, tr, hdr, subdir); err != nil {
			return res, &EntryError{Name: hdr.Name, Err: err}
		}
	}
	if err := u.finishDirs(); err != nil {
		return res, err
	}
	// The DiffID covers the whole stream, padding included.
	if _, err := io.Copy(io.Discard, counted); err != nil {
		return res, fmt.Errorf("read archive: %w: %w", err, errdefs.ErrInvalid)
	}
	res.Size = counted.n
	res.DiffID = digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil))
	return res, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type unpacker struct {
	rootFD  int
	opts    Options
	dirs    []dirTimes
	written int64 // bytes of file content so far
}

// dirTimes are set once all entries are in: writing into a directory
// changes its mtime.
type dirTimes struct {
	rel          string
	atime, mtime time.Time
}

func (u *unpacker) entry(ctx context.Context, tr *tar.Reader, hdr *tar.Header, subdir string) error {
	rel, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if rel == "" {
		return nil // the root entry: the target keeps its own metadata
	}
	rel = path.Join(subdir, rel)
	dirRel, base := path.Split(rel)
	dirRel = strings.TrimSuffix(dirRel, "/")

	if u.opts.Whiteouts != WhiteoutLiteral && strings.HasPrefix(base, whiteoutPrefix) {
		return u.whiteout(dirRel, base, hdr)
	}

	switch hdr.Typeflag {
	case tar.TypeChar, tar.TypeBlock:
		switch u.opts.Devices {
		case DevicesRefuse:
			return ErrDevice
		case DevicesSkip:
			return nil
		}
	case tar.TypeXGlobalHeader:
		return nil
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo:
	default:
		return fmt.Errorf("%w %q", ErrEntryType, hdr.Typeflag)
	}
	xattrs, err := u.xattrs(hdr)
	if err != nil {
		return err
	}

	pfd, err := openDir(u.rootFD, dirRel, true)
	if err != nil {
		return fmt.Errorf("parent directory: %w", err)
	}
	defer unix.Close(pfd)

	// What is there already goes, unless a directory meets a directory.
	if st, err := lstatAt(pfd, base); err == nil {
		if !(st.Mode&unix.S_IFMT == unix.S_IFDIR && hdr.Typeflag == tar.TypeDir) {
			if err := removeAll(pfd, base); err != nil {
				return fmt.Errorf("replace existing entry: %w", err)
			}
		}
	} else if !errors.Is(err, unix.ENOENT) {
		return err
	}

	perm := uint32(hdr.Mode) & 0o7777
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := unix.Mkdirat(pfd, base, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return err
		}
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
		if err := u.writeFile(ctx, pfd, base, tr); err != nil {
			return err
		}
	case tar.TypeSymlink:
		if hdr.Linkname == "" || strings.IndexByte(hdr.Linkname, 0) >= 0 {
			return fmt.Errorf("symlink target %q: %w", hdr.Linkname, ErrBadName)
		}
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return err
		}
	case tar.TypeLink:
		return u.hardlink(pfd, base, hdr.Linkname, subdir)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		mode := uint32(unix.S_IFIFO)
		if hdr.Typeflag == tar.TypeChar {
			mode = unix.S_IFCHR
		} else if hdr.Typeflag == tar.TypeBlock {
			mode = unix.S_IFBLK
		}
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		if err := unix.Mknodat(pfd, base, mode|(perm&0o777), int(dev)); err != nil {
			return err
		}
	}

	uid, gid := hdr.Uid, hdr.Gid
	if u.opts.Owner != nil {
		uid, gid = u.opts.Owner.UID, u.opts.Owner.GID
	}
	if uid < 0 || gid < 0 || uid > 1<<32-2 || gid > 1<<32-2 {
		return fmt.Errorf("owner %d:%d: %w", uid, gid, ErrBadName)
	}
	if err := unix.Fchownat(pfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if hdr.Typeflag != tar.TypeSymlink {
		// After chown, which clears the set-ID bits.
		if err := chmodAt(pfd, base, perm); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	for _, x := range xattrs {
		if err := unix.Lsetxattr(procPath(pfd, base), x.name, []byte(x.value), 0); err != nil {
			if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EPERM) {
				continue // the file system or our privileges do not allow it; Docker ignores these too
			}
			return fmt.Errorf("xattr %s: %w", x.name, err)
		}
	}
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	if hdr.Typeflag == tar.TypeDir {
		u.dirs = append(u.dirs, dirTimes{rel: rel, atime: atime, mtime: hdr.ModTime})
		return nil
	}
	return setTimes(pfd, base, atime, hdr.ModTime)
}

func setTimes(pfd int, base string, atime, mtime time.Time) error {
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	if err := unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

func (u *unpacker) finishDirs() error {
	for i := len(u.dirs) - 1; i >= 0; i-- {
		d := u.dirs[i]
		dirRel, base := path.Split(d.rel)
		pfd, err := openDir(u.rootFD, strings.TrimSuffix(dirRel, "/"), false)
		if err != nil {
			continue // removed by a later entry
		}
		st, err := lstatAt(pfd, base)
		if err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			err = setTimes(pfd, base, d.atime, d.mtime)
		}
		unix.Close(pfd)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return &EntryError{Name: d.rel, Err: err}
		}
	}
	return nil
}

// writeFile creates base in pfd, which must not exist, with the entry's
// content.
func (u *unpacker) writeFile(ctx context.Context, pfd int, base string, r io.Reader) error {
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), base)
	_, err = io.Copy(f, &archiveReader{ctx: ctx, r: r, u: u})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// archiveReader reads an entry's content: it stops a long copy when the
// context ends and marks the archive's own faults (truncation) invalid.
type archiveReader struct {
	ctx context.Context
	r   io.Reader
	u   *unpacker
}

func (a *archiveReader) Read(p []byte) (int, error) {
	if err := a.ctx.Err(); err != nil {
		return 0, err
	}
	if max := a.u.opts.MaxSize; max > 0 {
		if a.u.written >= max {
			return 0, ErrTooLarge
		}
		if int64(len(p)) > max-a.u.written {
			p = p[:max-a.u.written+1] // one byte more tells "over" from "exactly at"
		}
	}
	n, err := a.r.Read(p)
	a.u.written += int64(n)
	if max := a.u.opts.MaxSize; max > 0 && a.u.written > max {
		return 0, ErrTooLarge
	}
	if err != nil && err != io.EOF {
		err = fmt.Errorf("read archive: %w: %w", err, errdefs.ErrInvalid)
	}
	return n, err
}

// hardlink links base in pfd to the tree's own file linkname.
func (u *unpacker) hardlink(pfd int, base, linkname, subdir string) error {
	target, err := cleanName(linkname)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", linkname, err)
	}
	if target == "" {
		return fmt.Errorf("hard link target %q: %w", linkname, ErrLinkTarget)
	}
	target = path.Join(subdir, target)
	tdir, tbase := path.Split(target)
	tfd, err := openDir(u.rootFD, strings.TrimSuffix(tdir, "/"), false)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w (%w)", linkname, ErrLinkTarget, err)
	}
	defer unix.Close(tfd)
	st, err := lstatAt(tfd, tbase)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w (%w)", linkname, ErrLinkTarget, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return fmt.Errorf("hard link target %q is a directory: %w", linkname, ErrLinkTarget)
	}
	if err := unix.Linkat(tfd, tbase, pfd, base, 0); err != nil {
		return fmt.Errorf("hard link to %q: %w", linkname, err)
	}
	return nil
}

// whiteout handles a whiteout entry base in dirRel. An overlay whiteout
// device takes the entry's times, so packing it again gives the same entry.
func (u *unpacker) whiteout(dirRel, base string, hdr *tar.Header) error {
	if base == whiteoutOpaque {
		if u.opts.Whiteouts == WhiteoutApply {
			pfd, err := openDir(u.rootFD, dirRel, false)
			if errors.Is(err, unix.ENOENT) {
				return nil
			}
			if err != nil {
				return err
			}
			defer unix.Close(pfd)
			return removeChildren(pfd, ".")
		}
		pfd, err := openDir(u.rootFD, dirRel, true)
		if err != nil {
			return fmt.Errorf("opaque directory: %w", err)
		}
		defer unix.Close(pfd)
		if err := unix.Setxattr(procPath(pfd, ""), overlayOpaque, []byte(overlayOpaqueYes), 0); err != nil {
			return fmt.Errorf("mark directory opaque: %w", err)
		}
		return nil
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		return nil // aufs metadata
	}
	name := strings.TrimPrefix(base, whiteoutPrefix)
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("whiteout of %q: %w", name, ErrBadName)
	}
	create := u.opts.Whiteouts == WhiteoutOverlay
	pfd, err := openDir(u.rootFD, dirRel, create)
	if errors.Is(err, unix.ENOENT) && !create {
		return nil
	}
	if err != nil {
		return fmt.Errorf("whiteout parent: %w", err)
	}
	defer unix.Close(pfd)
	if err := removeAll(pfd, name); err != nil {
		return fmt.Errorf("whiteout: %w", err)
	}
	if !create {
		return nil
	}
	if err := unix.Mknodat(pfd, name, unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("make whiteout device: %w", err)
	}
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	if err := setTimes(pfd, name, atime, hdr.ModTime); err != nil {
		return fmt.Errorf("whiteout times: %w", err)
	}
	return nil
}

type xattr struct{ name, value string }

// xattrs returns an entry's extended attributes in a stable order.
func (u *unpacker) xattrs(hdr *tar.Header) ([]xattr, error) {
	if u.opts.NoXattrs {
		return nil, nil
	}
	var xs []xattr
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, paxXattr)
		if !ok {
			continue
		}
		if strings.HasPrefix(name, overlayXattr) {
			return nil, fmt.Errorf("%w: %s", ErrOverlayXattr, name)
		}
		if name == "" || strings.IndexByte(name, 0) >= 0 {
			return nil, fmt.Errorf("xattr name %q: %w", name, ErrBadName)
		}
		xs = append(xs, xattr{name, v})
	}
	return xs, nil
}
