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
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/dockerfile"
	"github.com/cais-platform/cais/image/layer"
)

// mountImage mounts img's file system at dir/merged: writable (an
// overlay with dir/upper on top) or read-only. It returns the root and a
// function that unmounts it.
func (b *Builder) mountImage(ctx context.Context, img image, dir string, writable bool) (string, func(), error) {
	var lowers []string
	if img.id != "" {
		var err error
		if lowers, err = b.images.Layers(ctx, img.target); err != nil {
			return "", nil, err
		}
	}
	empty := filepath.Join(dir, "empty")
	if err := os.MkdirAll(empty, 0o755); err != nil {
		return "", nil, err
	}
	if !writable && len(lowers) < 2 {
		// overlayfs needs two lower directories without an upper one;
		// a single layer is read in place.
		if len(lowers) == 1 {
			return lowers[0], func() {}, nil
		}
		return empty, func() {}, nil
	}
	if len(lowers) == 0 {
		lowers = []string{empty}
	}
	merged := filepath.Join(dir, "merged")
	if err := os.MkdirAll(merged, 0o755); err != nil {
		return "", nil, err
	}
	opts := "lowerdir=" + strings.Join(lowers, ":")
	flags := uintptr(0)
	if writable {
		upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
		for _, d := range []string{upper, work} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return "", nil, err
			}
		}
		opts += ",upperdir=" + upper + ",workdir=" + work
	} else {
		flags = unix.MS_RDONLY
	}
	if len(opts) >= unix.Getpagesize() {
		return "", nil, fmt.Errorf("image has too many layers to mount (%d)", len(lowers))
	}
	if err := unix.Mount("overlay", merged, "overlay", flags, opts); err != nil {
		return "", nil, fmt.Errorf("mount the image's file system: %w", err)
	}
	return merged, func() { unix.Unmount(merged, unix.MNT_DETACH) }, nil
}

// unmountAll detaches every mount under dir (what a crashed build left).
func unmountAll(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, f[4])
		}
	}
	slices.Sort(points)
	for i := len(points) - 1; i >= 0; i-- {
		unix.Unmount(points[i], unix.MNT_DETACH)
	}
}

// snapshot performs a step that changes files without running anything
// in the image (COPY, ADD, WORKDIR): fn changes the image's file system,
// mounted writable, and the changes become the step's layer.
func (j *Job) snapshot(ctx context.Context, cur image, plan *dockerfile.StagePlan, step *dockerfile.Step, fn func(root string) error) (image, error) {
	dir, err := os.MkdirTemp(j.tmp, "snap-")
	if err != nil {
		return image{}, err
	}
	defer os.RemoveAll(dir)
	root, unmount, err := j.b.mountImage(ctx, cur, dir, true)
	if err != nil {
		return image{}, err
	}
	err = fn(root)
	unmount()
	if err != nil {
		return image{}, err
	}
	desc, diffID, err := j.b.packDiff(ctx, filepath.Join(dir, "upper"), dir, diffOptions{})
	if err != nil {
		return image{}, err
	}
	return j.commit(ctx, cur, plan, step, desc, diffID)
}

// runArtifacts are what starting a container leaves in its upper
// directory: mount points the runtime made. Docker keeps them in a layer
// of their own that images never get.
var runArtifacts = map[string]bool{"proc": true, "sys": true, "dev": true, "etc/hosts": true, "etc/hostname": true, "etc/resolv.conf": true}

// artifactParents are directories copied up only because an artifact was
// made in them.
var artifactParents = map[string]bool{"etc": true}

// isRunArtifact says whether an entry of a RUN container's upper
// directory is a mount point the runtime made rather than a change.
func isRunArtifact(hdr *tar.Header) bool {
	name := strings.TrimSuffix(hdr.Name, "/")
	if !runArtifacts[name] {
		return false
	}
	if hdr.Typeflag == tar.TypeDir {
		return true
	}
	return hdr.Typeflag == tar.TypeReg && hdr.Size == 0
}

// diffOptions tune packDiff.
type diffOptions struct {
	// container: the upper directory is a container's, whose mount
	// points are left out.
	container bool
	// lowers are the image's layer directories, top first: a directory
	// the runtime's mount points made it copy up, unchanged from them and
	// with nothing else changed below it, is left out too.
	lowers []string
}

// unchangedDir reports whether the directory hdr names has, in the
// topmost lower layer holding it, the same mode and owner.
func unchangedDir(hdr *tar.Header, lowers []string) bool {
	name := strings.TrimSuffix(hdr.Name, "/")
	for _, l := range lowers {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(l, name), &st); err != nil {
			continue
		}
		return st.Mode&unix.S_IFMT == unix.S_IFDIR && int64(st.Mode&0o7777) == hdr.Mode&0o7777 && int(st.Uid) == hdr.Uid && int(st.Gid) == hdr.Gid
	}
	return false
}

// packDiff packs an overlayfs upper directory as a layer (whiteouts in
// OCI form) and stores it. It returns nil when nothing changed.
func (b *Builder) packDiff(ctx context.Context, upper, tmpDir string, opts diffOptions) (*ocispec.Descriptor, digest.Digest, error) {
	f, err := os.CreateTemp(tmpDir, "layer-*.tar")
	if err != nil {
		return nil, "", err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(layer.Pack(ctx, pw, upper, layer.PackOptions{Whiteouts: layer.WhiteoutOverlay}))
	}()
	tr := tar.NewReader(pr)
	tw := tar.NewWriter(f)
	entries := 0
	// pending is an artifact parent held back until an entry below it
	// shows it is needed.
	var pending *tar.Header
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			pr.CloseWithError(err)
			return nil, "", fmt.Errorf("pack the changes: %w", err)
		}
		if opts.container {
			if isRunArtifact(hdr) {
				continue
			}
			if pending != nil && !strings.HasPrefix(hdr.Name, pending.Name) {
				pending = nil // nothing below it changed
			}
			if hdr.Typeflag == tar.TypeDir && artifactParents[strings.TrimSuffix(hdr.Name, "/")] && unchangedDir(hdr, opts.lowers) {
				pending = hdr
				continue
			}
			if pending != nil {
				entries++
				if err := tw.WriteHeader(pending); err != nil {
					pr.CloseWithError(err)
					return nil, "", err
				}
				pending = nil
			}
		}
		entries++
		if err := tw.WriteHeader(hdr); err != nil {
			pr.CloseWithError(err)
			return nil, "", err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			pr.CloseWithError(err)
			return nil, "", err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	if entries == 0 {
		return nil, "", nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, "", err
	}
	desc, diffID, err := b.images.AddLayer(ctx, f)
	if err != nil {
		return nil, "", err
	}
	return &desc, diffID, nil
}

// makeDir makes dir (absolute, as the image sees it) in root unless it
// is there: WORKDIR.
func makeDir(ctx context.Context, root, dir string) error {
	rel := strings.TrimPrefix(path.Clean("/"+dir), "/")
	if rel == "" {
		return nil
	}
	if st, err := statInRoot(root, rel); err == nil {
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fmt.Errorf("mkdir %s: not a directory", dir)
		}
		return nil
	}
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: rel + "/", Mode: 0o755, Format: tar.FormatPAX})
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	_, err := layer.Unpack(ctx, pr, root, layer.Options{Whiteouts: layer.WhiteoutLiteral, Devices: layer.DevicesRefuse})
	pr.Close()
	if err != nil {
		return fmt.Errorf("mkdir %s: %w", dir, err)
	}
	return nil
}

// statInRoot stats rel inside root, following symlinks inside it.
func statInRoot(root, rel string) (unix.Stat_t, error) {
	var st unix.Stat_t
	fd, err := openPathInRoot(root, rel)
	if err != nil {
		return st, err
	}
	defer unix.Close(fd)
	err = unix.Fstat(fd, &st)
	return st, err
}

// openPathInRoot opens rel inside root as an O_PATH descriptor, symlinks
// resolved as if root were "/".
func openPathInRoot(root, rel string) (int, error) {
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(rfd)
	if rel == "" {
		rel = "."
	}
	fd, err := unix.Openat2(rfd, rel, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
	if errors.Is(err, unix.ENOENT) {
		return -1, os.ErrNotExist
	}
	return fd, err
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
