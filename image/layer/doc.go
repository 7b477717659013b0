// Package layer moves file trees in and out of tar archives: it unpacks
// image layers (and build contexts, docker cp and import archives) into a
// directory without ever touching anything outside it, and packs a
// directory, such as an overlayfs upper directory, back into a layer.
//
// # Unpacking safely
//
// An archive is untrusted input. [Unpack] holds an O_PATH descriptor of the
// target directory and does every operation relative to it:
//
//   - Entry names are cleaned: a leading "/" or "./" is dropped (the
//     archive's root is the target directory), and a name with a ".."
//     component is refused, as is a NUL byte.
//   - The parent directory of every entry is resolved with openat2 and
//     RESOLVE_IN_ROOT: a symlink met on the way, absolute ("/etc") or
//     relative ("../../.."), resolves as if the target were "/", so a
//     symlink unpacked earlier can never redirect a later write outside.
//     Missing parents are made one component at a time, each beneath the
//     last resolved descriptor.
//   - The last component is created with the *at calls on the parent's
//     descriptor, none of which follows a symlink there (O_CREAT|O_EXCL,
//     mkdirat, symlinkat, mknodat, linkat without AT_SYMLINK_FOLLOW), and
//     metadata goes through fchownat/utimensat with AT_SYMLINK_NOFOLLOW and
//     through descriptors of the very inode.
//   - A hard link's target is resolved the same way, inside the tree: a
//     link to "/etc/passwd", or through a symlink to "/etc", names the
//     tree's own etc/passwd, never the host's; a target that is not in the
//     tree is an error.
//   - Symlinks are stored as they are: their targets are only ever
//     interpreted inside the root (by this package and by a container).
//   - Block and character devices are refused by default with an error
//     naming the entry ([DevicesRefuse]); [DevicesSkip] drops them, as
//     rootless Docker does, and [DevicesAllow] makes them, as Docker does as
//     root. A container's /dev is a tmpfs the runtime fills, so images need
//     none. FIFOs are harmless and made.
//   - Extended attributes named trusted.overlay.* are refused: only the
//     whiteout conversion below may set them, or an archive could steer
//     overlayfs lookups.
//
// Errors name the entry ("layer entry \"../x\": path escapes the target
// directory") and wrap errdefs.ErrInvalid when the archive is at fault.
//
// # Whiteouts
//
// OCI layers mark deletions with whiteout files: ".wh.NAME" deletes NAME
// from the layers below, ".wh..wh..opq" in a directory hides everything
// below it. [WhiteoutOverlay] (for layers that become overlayfs lower
// directories) turns them into overlayfs's form: a 0/0 character device
// named NAME, and the xattr trusted.overlay.opaque=y on the directory.
// [WhiteoutApply] deletes the named paths instead, flattening layers into
// one tree. [WhiteoutLiteral] (build contexts, docker cp) keeps such files
// as the ordinary files they are there. Other ".wh..wh." names (aufs
// metadata) are skipped in the first two modes.
//
// # Packing
//
// [Pack] writes a directory as a tar stream: regular files, directories,
// symlinks, hard links (by inode), FIFOs, modes, owners, mtimes and
// extended attributes. With [PackOptions].Whiteouts set to
// [WhiteoutOverlay] it turns overlayfs whiteouts back into OCI whiteouts, so
// packing a container's upper directory yields its layer.
//
// Compressed layers (gzip, zstd) are recognized by their magic bytes with
// [Decompress]; [Unpack] does it itself and returns the DiffID, the digest
// of the uncompressed tar, which an image config lists.
package layer
