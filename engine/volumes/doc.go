// Package volumes keeps a container engine's volumes and decides what a
// container mounts, as dockerd does for `docker volume` and for the -v,
// --mount and --tmpfs options of `docker run`.
//
// # Volumes and drivers
//
// A [Store] holds the node's volumes under its directory, one
// subdirectory each: NAME/volume.json (driver, labels, options, creation
// time) and NAME/_data, the directory containers see. Volumes survive
// caisd restarts. What a volume is made of is its [Driver]'s business:
//
//   - "local" ([Local]) keeps the data in NAME/_data; with the options
//     type, device and o (docker volume create -o type=tmpfs -o
//     device=tmpfs -o o=size=64m) it mounts that file system there while
//     a container uses the volume, as Docker's local driver does.
//   - "cais" ([Cais]) mounts a cais volume of the node's pool there
//     (docker volume create -d cais -o volume=distvol data), through the
//     FUSE mount `cais mount` makes, shared by every container of the
//     node that uses it and unmounted when the last one stops.
//
// The store counts two things per volume: the containers that reference
// it (a volume in use cannot be removed: "volume is in use - [IDs]") and
// the running containers that have it mounted (the driver mounts at the
// first and unmounts after the last).
//
// # What a container mounts
//
// [Plan] is pure: from a container's -v binds ([ParseBind]), --mount
// specs ([Mount]), --tmpfs mounts and the volumes its image and config
// declare, it returns the [MountPoint]s to make, in mount order, refusing
// duplicates and invalid specs with Docker's messages. A declared volume
// that nothing else covers becomes an anonymous volume (a random name,
// removed with its container by docker rm -v or --rm).
//
// At a volume's first mount into a container the engine copies what the
// image has at the destination into an empty volume ([CopyUp]), as Docker
// does, unless the mount says nocopy.
package volumes
