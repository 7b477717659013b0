package builder

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/image/layer"
)

// ErrOutsideContext is a path that leads out of the build context.
var ErrOutsideContext = fmt.Errorf("forbidden path outside the build context: %w", errdefs.ErrInvalid)

// CheckContextEntry decides whether a build context archive may hold an
// entry: names with "..", symlinks whose target is absolute or climbs out
// of the context, hard links to names outside it and device nodes are
// refused. The context is untrusted: such entries would let COPY read the
// daemon's files.
func CheckContextEntry(hdr *tar.Header) error {
	name := strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
	if strings.IndexByte(hdr.Name, 0) >= 0 {
		return fmt.Errorf("%q: invalid name: %w", hdr.Name, errdefs.ErrInvalid)
	}
	if climbs(hdr.Name) {
		return fmt.Errorf("%s: %w", hdr.Name, ErrOutsideContext)
	}
	switch hdr.Typeflag {
	case tar.TypeSymlink:
		if path.IsAbs(hdr.Linkname) {
			return fmt.Errorf("symlink %s -> %s: absolute symlinks are not allowed in the build context: %w", name, hdr.Linkname, ErrOutsideContext)
		}
		if climbs(path.Join(path.Dir(name), hdr.Linkname)) || strings.IndexByte(hdr.Linkname, 0) >= 0 {
			return fmt.Errorf("symlink %s -> %s: %w", name, hdr.Linkname, ErrOutsideContext)
		}
	case tar.TypeLink:
		if climbs(hdr.Linkname) || strings.IndexByte(hdr.Linkname, 0) >= 0 {
			return fmt.Errorf("hard link %s -> %s: %w", name, hdr.Linkname, ErrOutsideContext)
		}
	case tar.TypeChar, tar.TypeBlock:
		return fmt.Errorf("%s: device nodes are not allowed in the build context: %w", name, errdefs.ErrInvalid)
	}
	return nil
}

// climbs reports whether a relative path goes above its root at some
// point ("a/../../b", "../x"). A leading "/" counts as the root.
func climbs(p string) bool {
	depth := 0
	for _, c := range strings.Split(p, "/") {
		switch c {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return true
			}
		default:
			depth++
		}
	}
	return false
}

// ReceiveContext unpacks a build context (a tar, plain or compressed) into
// dir, an empty directory, refusing the entries CheckContextEntry refuses;
// maxSize bounds the content. Everything is owned by root.
func ReceiveContext(ctx context.Context, r io.Reader, dir string, maxSize int64) error {
	zr, _, err := layer.Decompress(r)
	if err != nil {
		return fmt.Errorf("build context: %w", err)
	}
	defer zr.Close()
	pr, pw := io.Pipe()
	checked := make(chan error, 1)
	go func() {
		// Re-write the archive entry by entry after checking it; the
		// unpacker reads the copy.
		tr := tar.NewReader(zr)
		tw := tar.NewWriter(pw)
		err := func() error {
			for {
				hdr, err := tr.Next()
				if err == io.EOF {
					return tw.Close()
				}
				if err != nil {
					return fmt.Errorf("read build context: %w: %w", err, errdefs.ErrInvalid)
				}
				if err := CheckContextEntry(hdr); err != nil {
					return err
				}
				if err := tw.WriteHeader(hdr); err != nil {
					return err
				}
				if _, err := io.Copy(tw, tr); err != nil {
					return err
				}
			}
		}()
		checked <- err
		pw.CloseWithError(err)
	}()
	_, uerr := layer.Unpack(ctx, pr, dir, layer.ContextOptions(maxSize))
	pr.CloseWithError(errors.New("unpack stopped"))
	if cerr := <-checked; cerr != nil && !errors.Is(cerr, io.ErrClosedPipe) {
		return cerr
	}
	if uerr != nil {
		return fmt.Errorf("build context: %w", uerr)
	}
	return nil
}

// Ignore is a parsed .dockerignore.
type Ignore struct {
	pm *patternmatcher.PatternMatcher
}

// ParseIgnore reads .dockerignore patterns (Docker's syntax: globs with
// "**", "!" exceptions, comments).
func ParseIgnore(r io.Reader) (*Ignore, error) {
	patterns, err := ignorefile.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read .dockerignore: %w: %w", err, errdefs.ErrInvalid)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, fmt.Errorf(".dockerignore: %w: %w", err, errdefs.ErrInvalid)
	}
	return &Ignore{pm: pm}, nil
}

// Excluded reports whether a context path (relative, "/"-separated) is
// ignored. The Dockerfile and .dockerignore are never ignored: the
// builder needs them.
func (ig *Ignore) Excluded(p string, dockerfile string) bool {
	if ig == nil || p == ".dockerignore" || p == path.Clean(dockerfile) {
		return false
	}
	m, err := ig.pm.MatchesOrParentMatches(p)
	return err == nil && m
}

// applyIgnore removes what dir/.dockerignore excludes from the context.
// The docker CLI leaves these files out already; a plain API client may
// not.
func applyIgnore(dir, dockerfile string) error {
	f, err := openInRoot(dir, ".dockerignore")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	ig, err := ParseIgnore(io.LimitReader(f, 1<<20))
	f.Close()
	if err != nil {
		return err
	}
	type victim struct {
		path  string
		whole bool // remove with everything under it
	}
	var remove []victim
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if ig.Excluded(filepath.ToSlash(rel), dockerfile) {
			// With "!" exceptions something below may be kept: look
			// inside, and remove the directory only if it ends up empty.
			whole := !ig.pm.Exclusions()
			remove = append(remove, victim{p, whole})
			if d.IsDir() && whole {
				return filepath.SkipDir
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := len(remove) - 1; i >= 0; i-- {
		v := remove[i]
		if v.whole {
			if err := os.RemoveAll(v.path); err != nil {
				return err
			}
			continue
		}
		if err := os.Remove(v.path); err != nil && !errors.Is(err, unix.ENOTEMPTY) && !errors.Is(err, unix.EEXIST) && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// openInRoot opens name inside root, resolving symlinks as if root were
// "/": nothing outside root can be reached.
func openInRoot(root, name string) (*os.File, error) {
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(rfd)
	fd, err := unix.Openat2(rfd, name, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("%s: %w", name, os.ErrNotExist)
		}
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), name), nil
}
