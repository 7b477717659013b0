// Package containerfs reads and writes files inside a container's root
// file system on behalf of docker cp (GET, HEAD and PUT
// /containers/{id}/archive), never reaching anything outside it.
//
// Every path is resolved beneath the root with openat2 and
// RESOLVE_IN_ROOT: "..", absolute symlinks and relative ones that climb
// stop at the container's "/", as they would for a process inside it. The
// last component is never followed ([Stat] and [Archive] report and pack
// a symlink as the link it is; the docker CLI follows links itself when
// asked to, -L). Archives put into a container are unpacked by package
// image/layer with its docker cp options: entries with ".." or NUL bytes,
// hard links to files outside the archive's tree and device nodes are
// refused with an error naming the entry; symlinks are kept as they are,
// as Docker keeps them, and whatever later entries write through them
// lands inside the root.
//
// The root is the container's merged root file system: the overlay mount
// of a stopped container, or /proc/PID/root of a running one, which shows
// its volumes and bind mounts too.
package containerfs
