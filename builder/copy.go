package builder

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/dockerfile"
	"github.com/cais-platform/cais/engine"
	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/image/layer"
)

// copySource is what a COPY or ADD copies, resolved: each item a path
// inside a root (the context, a stage's or an image's file system, or a
// downloaded file).
type copySource struct {
	spec   *dockerfile.CopySpec
	items  []copyItem
	closer []func()
}

type copyItem struct {
	root string
	rel  string // inside root, "" for the root itself
	dir  bool
	// archive: ADD unpacks this local tar archive.
	archive bool
	// name is the base name the item gets in a destination directory.
	name string
}

func (s *copySource) close() {
	for _, f := range s.closer {
		f()
	}
}

func (s *copySource) word() string {
	if s.spec.Add {
		return "ADD"
	}
	return "COPY"
}

// hasMeta reports whether a path has glob characters.
func hasMeta(p string) bool { return strings.ContainsAny(p, "*?[") }

// copySources resolves a COPY or ADD's sources.
func (j *Job) copySources(ctx context.Context, out io.Writer, spec *dockerfile.CopySpec, stages []image) (*copySource, error) {
	src := &copySource{spec: spec}
	root := j.ctxDir
	if spec.FromStage >= 0 || spec.FromImage != "" {
		var img image
		if spec.FromStage >= 0 {
			img = stages[spec.FromStage]
		} else {
			var err error
			if img, err = j.load(ctx, out, spec.FromImage); err != nil {
				return nil, err
			}
		}
		dir, err := os.MkdirTemp(j.tmp, "from-")
		if err != nil {
			return nil, err
		}
		r, unmount, err := j.b.mountImage(ctx, img, dir, false)
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		src.closer = append(src.closer, func() { unmount(); os.RemoveAll(dir) })
		root = r
	}
	for _, s := range spec.Sources {
		if spec.Add && (strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")) {
			it, err := j.download(ctx, s, src)
			if err != nil {
				src.close()
				return nil, err
			}
			src.items = append(src.items, it)
			continue
		}
		items, err := resolveSource(root, s, spec.Add && spec.FromStage < 0 && spec.FromImage == "")
		if err != nil {
			src.close()
			return nil, fmt.Errorf("%s failed: %w", src.word(), err)
		}
		src.items = append(src.items, items...)
	}
	if len(src.items) == 0 {
		src.close()
		return nil, fmt.Errorf("%s failed: no source files were specified: %w", src.word(), errdefs.ErrInvalid)
	}
	return src, nil
}

// resolveSource finds what a source word names in root: one path, or
// what a wildcard matches. Every lookup stays inside root.
func resolveSource(root, s string, unpackArchives bool) ([]copyItem, error) {
	if climbs(strings.TrimPrefix(s, "/")) {
		return nil, fmt.Errorf("forbidden path outside the build context: %s (): %w", s, errdefs.ErrInvalid)
	}
	rel := strings.TrimPrefix(path.Clean("/"+s), "/")
	var rels []string
	if hasMeta(rel) {
		var err error
		if rels, err = glob(root, rel); err != nil {
			return nil, err
		}
	} else {
		rels = []string{rel}
	}
	var out []copyItem
	for _, r := range rels {
		st, err := statInRoot(root, r)
		if err != nil {
			if hasMeta(rel) {
				continue
			}
			return nil, fmt.Errorf("file not found in build context or excluded by .dockerignore: stat %s: file does not exist: %w", s, errdefs.ErrNotFound)
		}
		it := copyItem{root: root, rel: r, dir: st.Mode&unix.S_IFMT == unix.S_IFDIR, name: path.Base("/" + r)}
		if !it.dir && unpackArchives && st.Mode&unix.S_IFMT == unix.S_IFREG {
			it.archive = isArchive(root, r)
		}
		out = append(out, it)
	}
	return out, nil
}

// glob expands a pattern inside root, one component at a time, listing
// directories opened inside root.
func glob(root, pattern string) ([]string, error) {
	cands := []string{""}
	for _, comp := range strings.Split(pattern, "/") {
		var next []string
		for _, c := range cands {
			if !hasMeta(comp) {
				next = append(next, path.Join(c, comp))
				continue
			}
			if _, err := path.Match(comp, ""); err != nil {
				return nil, fmt.Errorf("%s: bad pattern: %w", pattern, errdefs.ErrInvalid)
			}
			names, err := listInRoot(root, c)
			if err != nil {
				continue
			}
			for _, n := range names {
				if ok, _ := path.Match(comp, n); ok {
					next = append(next, path.Join(c, n))
				}
			}
		}
		cands = next
	}
	return cands, nil
}

func listInRoot(root, rel string) ([]string, error) {
	fd, err := openPathInRoot(root, rel)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	dfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(dfd), rel)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	return names, nil
}

// isArchive says whether a file is a tar archive, plain or compressed,
// which ADD unpacks.
func isArchive(root, rel string) bool {
	f, err := openInRoot(root, rel)
	if err != nil {
		return false
	}
	defer f.Close()
	zr, _, err := layer.Decompress(f)
	if err != nil {
		return false
	}
	defer zr.Close()
	_, err = tar.NewReader(zr).Next()
	return err == nil
}

// download fetches an ADD URL into the job's directory.
func (j *Job) download(ctx context.Context, raw string, src *copySource) (copyItem, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return copyItem{}, fmt.Errorf("ADD failed: %s: %w: %w", raw, err, errdefs.ErrInvalid)
	}
	name := path.Base(u.Path)
	if name == "/" || name == "." || name == "" {
		return copyItem{}, fmt.Errorf("ADD failed: cannot determine filename from url: %s: %w", raw, errdefs.ErrInvalid)
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(dctx, http.MethodGet, raw, nil)
	if err != nil {
		return copyItem{}, fmt.Errorf("ADD failed: %s: %w: %w", raw, err, errdefs.ErrInvalid)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return copyItem{}, fmt.Errorf("ADD failed: cannot fetch %s (this machine may have no internet access): %w: %w", raw, err, errdefs.ErrUnavailable)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return copyItem{}, fmt.Errorf("ADD failed: %s: HTTP status %s: %w", raw, resp.Status, errdefs.ErrNotFound)
	}
	dir, err := os.MkdirTemp(j.tmp, "url-")
	if err != nil {
		return copyItem{}, err
	}
	src.closer = append(src.closer, func() { os.RemoveAll(dir) })
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return copyItem{}, err
	}
	_, err = io.Copy(f, resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return copyItem{}, fmt.Errorf("ADD failed: %s: %w", raw, err)
	}
	if lm, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		os.Chtimes(filepath.Join(dir, name), lm, lm)
	}
	return copyItem{root: dir, rel: name, name: name}, nil
}

// checksum sums what the step copies (names, modes, owners, link targets
// and contents, not times), for the layer cache.
func (s *copySource) checksum(ctx context.Context) (string, error) {
	h := sha256.New()
	for _, it := range s.items {
		fmt.Fprintf(h, "%s\x00%v\x00", it.rel, it.archive)
		if it.archive {
			f, err := openInRoot(it.root, it.rel)
			if err != nil {
				return "", err
			}
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return "", err
			}
			continue
		}
		err := it.write(ctx, it.name, 0, func(hdr *tar.Header, r io.Reader) error {
			fmt.Fprintf(h, "%s\x00%o\x00%d\x00%d\x00%c\x00%s\x00%d\x00", hdr.Name, hdr.Mode, hdr.Uid, hdr.Gid, hdr.Typeflag, hdr.Linkname, hdr.Size)
			if r != nil {
				_, err := io.Copy(h, r)
				return err
			}
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// write calls fn with each entry the item copies, named as in the
// destination directory (a file gets name); chmod, when not 0, replaces
// the modes.
func (it copyItem) write(ctx context.Context, name string, chmod int64, fn func(*tar.Header, io.Reader) error) error {
	fd, err := openPathInRoot(it.root, it.rel)
	if err != nil {
		return fmt.Errorf("%s: %w", it.rel, err)
	}
	defer unix.Close(fd)
	proc := "/proc/self/fd/" + strconv.Itoa(fd)
	if !it.dir {
		f, err := os.Open(proc)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s: not a regular file or directory: %w", it.rel, errdefs.ErrInvalid)
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: int64(unixMode(fi.Mode())), Size: fi.Size(), ModTime: fi.ModTime(), Format: tar.FormatPAX}
		if chmod != 0 {
			hdr.Mode = chmod
		}
		return fn(hdr, io.LimitReader(f, fi.Size()))
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(layer.Pack(ctx, pw, proc, layer.PackOptions{})) }()
	defer pr.Close()
	tr := tar.NewReader(pr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if chmod != 0 && hdr.Typeflag != tar.TypeSymlink {
			hdr.Mode = chmod
		}
		var r io.Reader
		if hdr.Typeflag == tar.TypeReg {
			r = tr
		}
		if err := fn(hdr, r); err != nil {
			return err
		}
	}
}

func unixMode(m os.FileMode) uint32 {
	mode := uint32(m.Perm())
	if m&os.ModeSetuid != 0 {
		mode |= unix.S_ISUID
	}
	if m&os.ModeSetgid != 0 {
		mode |= unix.S_ISGID
	}
	if m&os.ModeSticky != 0 {
		mode |= unix.S_ISVTX
	}
	return mode
}

// copyInto performs a COPY or ADD into root, the image's file system
// mounted writable.
func (j *Job) copyInto(ctx context.Context, root string, spec *dockerfile.CopySpec, src *copySource) error {
	dest := spec.Dest
	destDir := strings.HasSuffix(dest, "/")
	if len(src.items) > 1 && !destDir {
		return fmt.Errorf("When using %s with more than one source file, the destination must be a directory and end with a /: %w", src.word(), errdefs.ErrInvalid)
	}
	rel := strings.TrimPrefix(path.Clean(dest), "/")
	if !destDir {
		if st, err := statInRoot(root, rel); err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			destDir = true
		}
	}
	var owner *layer.Owner
	if spec.Chown != "" {
		o, err := resolveChown(root, spec.Chown)
		if err != nil {
			return err
		}
		owner = &o
	} else {
		owner = &layer.Owner{}
	}
	var chmod int64
	if spec.Chmod != "" {
		m, _ := strconv.ParseUint(spec.Chmod, 8, 32)
		chmod = int64(m)
	}
	for _, it := range src.items {
		if it.archive {
			f, err := openInRoot(it.root, it.rel)
			if err != nil {
				return err
			}
			var archOwner *layer.Owner
			if spec.Chown != "" {
				archOwner = owner
			}
			_, err = layer.Unpack(ctx, f, root, layer.Options{Whiteouts: layer.WhiteoutLiteral, Devices: layer.DevicesRefuse, Owner: archOwner, Subdir: rel})
			f.Close()
			if err != nil {
				return fmt.Errorf("%s failed: unpack %s: %w", src.word(), it.rel, err)
			}
			continue
		}
		subdir, name := rel, it.name
		if !destDir && !it.dir {
			subdir, name = path.Dir(rel), path.Base(rel)
			if subdir == "." {
				subdir = ""
			}
		}
		pr, pw := io.Pipe()
		go func() {
			tw := tar.NewWriter(pw)
			err := it.write(ctx, name, chmod, func(hdr *tar.Header, r io.Reader) error {
				if err := tw.WriteHeader(hdr); err != nil {
					return err
				}
				if r != nil {
					_, err := io.Copy(tw, r)
					return err
				}
				return nil
			})
			if err == nil {
				err = tw.Close()
			}
			pw.CloseWithError(err)
		}()
		opts := layer.Options{Whiteouts: layer.WhiteoutLiteral, Devices: layer.DevicesRefuse, Owner: owner, Subdir: subdir}
		if it.dir || destDir {
			// The destination directory exists afterwards even when
			// the source is empty.
			if err := makeDir(ctx, root, "/"+subdir); err != nil {
				pr.Close()
				return err
			}
		}
		_, err := layer.Unpack(ctx, pr, root, opts)
		pr.Close()
		if err != nil {
			return fmt.Errorf("%s failed: %w", src.word(), err)
		}
	}
	return nil
}

// resolveChown turns --chown's "user[:group]" into IDs with the image's
// /etc/passwd and /etc/group. A user alone gives its ID as the group
// too, as Docker does.
func resolveChown(root, chown string) (layer.Owner, error) {
	passwd, _ := openInRoot(root, "etc/passwd")
	group, _ := openInRoot(root, "etc/group")
	var pr, gr io.Reader
	if passwd != nil {
		defer passwd.Close()
		pr = passwd
	}
	if group != nil {
		defer group.Close()
		gr = group
	}
	u, err := engine.ResolveUser(chown, pr, gr)
	if err != nil {
		return layer.Owner{}, fmt.Errorf("unable to convert uid/gid chown string to host mapping: %w", err)
	}
	o := layer.Owner{UID: int(u.UID), GID: int(u.GID)}
	if !strings.Contains(chown, ":") {
		o.GID = o.UID
	}
	return o, nil
}
