// Package brick is a brick: a plain directory on a pool member's ext4 or
// xfs file system, marked with its volume's ID, and the server process that
// exports it over the rpc protocol.
//
// The directory holds the volume's files as ordinary files; cais keeps its
// own metadata in trusted.cais.* extended attributes, as GlusterFS keeps
// trusted.glusterfs.*.
package brick

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/errdefs"
)

// VolumeIDXattr marks a brick root with the ID of its volume.
const VolumeIDXattr = "trusted.cais.volume-id"

// PrepareResult tells what Prepare changed, so a failed create can undo it.
type PrepareResult struct {
	// Created is the topmost directory Prepare created (the brick
	// directory or a parent of it), or "" when the directory existed.
	Created string `json:"created,omitempty"`
}

// Prepare readies a directory to be a brick of volume volID. Unless force,
// it refuses a directory on the root file system, a mount point itself, and
// one that is marked as, or sits inside, another volume's brick; it always
// refuses a file system without extended attributes. Then it creates the
// directory and marks it. name is HOST:PATH, for messages.
func Prepare(path, name, volID string, force bool) (PrepareResult, error) {
	var res PrepareResult
	id, err := uuid.Parse(volID)
	if err != nil {
		return res, fmt.Errorf("%w: volume ID %q", errdefs.ErrInvalid, volID)
	}
	if !filepath.IsAbs(path) || filepath.Clean(path) != path {
		return res, fmt.Errorf("%w: brick path %s must be absolute and clean", errdefs.ErrInvalid, path)
	}
	existing, err := nearestExisting(path)
	if err != nil {
		return res, err
	}
	if fi, err := os.Stat(existing); err == nil && existing == path && !fi.IsDir() {
		return res, fmt.Errorf("%w: brick path %s exists and is not a directory", errdefs.ErrInvalid, path)
	}
	if !force {
		onRoot, err := sameDevice(existing, "/")
		if err != nil {
			return res, err
		}
		if onRoot {
			return res, fmt.Errorf("%w: The brick %s is being created in the root partition. It is recommended that you don't use the system's root partition for storage backend. Or use 'force' at the end of the command if you want to override this behavior.", errdefs.ErrNeedsForce, name)
		}
		if existing == path {
			sameAsParent, err := sameDevice(path, filepath.Dir(path))
			if err != nil {
				return res, err
			}
			if !sameAsParent {
				return res, fmt.Errorf("%w: The brick %s is a mount point. Please create a sub-directory under the mount point and use that as the brick directory. Or use 'force' at the end of the command if you want to override this behavior.", errdefs.ErrNeedsForce, name)
			}
		}
		for p := existing; ; p = filepath.Dir(p) {
			if v, ok := volumeID(p); ok {
				if p == path {
					return res, fmt.Errorf("%w: %s is already part of a volume (volume ID %s). Use 'force' to reuse it", errdefs.ErrNeedsForce, path, v)
				}
				return res, fmt.Errorf("%w: parent directory %s is already part of a volume. Use 'force' to reuse it", errdefs.ErrNeedsForce, p)
			}
			if p == "/" {
				break
			}
		}
	}
	if existing != path {
		// The topmost new directory is the child of existing on the way
		// to path.
		top := path
		for filepath.Dir(top) != existing {
			top = filepath.Dir(top)
		}
		if err := os.MkdirAll(path, 0o755); err != nil {
			removeEmpty(path, top)
			return res, fmt.Errorf("create brick directory %s: %w", path, err)
		}
		res.Created = top
	}
	flags := unix.XATTR_CREATE
	if force {
		flags = 0
	}
	if err := unix.Setxattr(path, VolumeIDXattr, id[:], flags); err != nil {
		if res.Created != "" {
			removeEmpty(path, res.Created)
		}
		if errors.Is(err, unix.ENOTSUP) {
			return PrepareResult{}, fmt.Errorf("%w: cais is not supported on brick: %s. Setting extended attributes failed, reason: %v; use ext4 or xfs", errdefs.ErrInvalid, name, err)
		}
		return PrepareResult{}, fmt.Errorf("mark brick %s: %w", path, err)
	}
	return res, nil
}

// Release undoes Prepare: it removes the volume mark if it is volID's, and
// the directories Prepare created (created is PrepareResult.Created) that
// are still empty. Data is never removed.
func Release(path, volID, created string) error {
	if v, ok := volumeID(path); ok && v == volID {
		if err := unix.Removexattr(path, VolumeIDXattr); err != nil && !errors.Is(err, unix.ENODATA) {
			return fmt.Errorf("unmark brick %s: %w", path, err)
		}
	}
	if created != "" && (created == path || strings.HasPrefix(path, created+"/")) {
		removeEmpty(path, created)
	}
	return nil
}

// removeEmpty removes path and its parents up to and including top, as
// long as they are empty.
func removeEmpty(path, top string) {
	for p := path; ; p = filepath.Dir(p) {
		if os.Remove(p) != nil || p == top || p == "/" {
			return
		}
	}
}

// Verify checks that path is a brick of volume volID, as a brick must be
// before it is served.
func Verify(path, volID string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("failed to find brick directory %s for volume: %w", path, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: brick %s is not a directory", errdefs.ErrState, path)
	}
	v, ok := volumeID(path)
	if !ok {
		return fmt.Errorf("%w: brick %s has no volume ID mark (%s); was the directory replaced?", errdefs.ErrState, path, VolumeIDXattr)
	}
	if v != volID {
		return fmt.Errorf("%w: brick %s belongs to volume ID %s, not %s", errdefs.ErrState, path, v, volID)
	}
	return nil
}

func volumeID(path string) (string, bool) {
	buf := make([]byte, 64)
	n, err := unix.Getxattr(path, VolumeIDXattr, buf)
	if err != nil || n != 16 {
		return "", false
	}
	id, err := uuid.FromBytes(bytes.Clone(buf[:16]))
	if err != nil {
		return "", false
	}
	return id.String(), true
}

func nearestExisting(path string) (string, error) {
	for p := path; ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			return p, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("examine %s: %w", p, err)
		}
		if p == "/" {
			return "/", nil
		}
	}
}

func sameDevice(a, b string) (bool, error) {
	var sa, sb unix.Stat_t
	if err := unix.Stat(a, &sa); err != nil {
		return false, fmt.Errorf("stat %s: %w", a, err)
	}
	if err := unix.Stat(b, &sb); err != nil {
		return false, fmt.Errorf("stat %s: %w", b, err)
	}
	return sa.Dev == sb.Dev, nil
}
