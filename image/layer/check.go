package layer

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/cais-platform/cais/errdefs"
)

// Check reads an uncompressed tar stream from r and refuses what Unpack
// with opts would refuse by the entries' headers alone: names with ".."
// or NUL bytes, device nodes (unless opts allows or skips them), entry
// types it does not unpack, and hard links to anything but a file the
// archive gave before. It writes nothing: docker load and docker import
// check a layer when they store it, rather than at the first docker run.
// It reads only up to the archive's end marker.
func Check(ctx context.Context, r io.Reader, opts Options) error {
	files := map[string]bool{}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read archive: %w: %w", err, errdefs.ErrInvalid)
		}
		if err := checkEntry(hdr, opts, files); err != nil {
			return &EntryError{Name: hdr.Name, Err: err}
		}
	}
}

func checkEntry(hdr *tar.Header, opts Options, files map[string]bool) error {
	rel, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeChar, tar.TypeBlock:
		if opts.Devices == DevicesRefuse {
			return ErrDevice
		}
	case tar.TypeSymlink:
		if hdr.Linkname == "" || strings.IndexByte(hdr.Linkname, 0) >= 0 {
			return fmt.Errorf("symlink target %q: %w", hdr.Linkname, ErrBadName)
		}
	case tar.TypeLink:
		target, err := cleanName(hdr.Linkname)
		if err != nil {
			return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
		}
		if !files[target] {
			return fmt.Errorf("hard link target %q: %w", hdr.Linkname, ErrLinkTarget)
		}
	case tar.TypeXGlobalHeader, tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse, tar.TypeDir, tar.TypeFifo:
	default:
		return fmt.Errorf("%w %q", ErrEntryType, hdr.Typeflag)
	}
	if rel == "" {
		return nil
	}
	if opts.Whiteouts != WhiteoutLiteral && strings.HasPrefix(path.Base(rel), whiteoutPrefix) {
		return nil
	}
	// A name replaces what was there: a directory's entries stay, but
	// under a file or link they are gone.
	if hdr.Typeflag != tar.TypeDir {
		for f := range files {
			if strings.HasPrefix(f, rel+"/") {
				delete(files, f)
			}
		}
	}
	files[rel] = hdr.Typeflag != tar.TypeDir
	if !files[rel] {
		delete(files, rel)
	}
	return nil
}
