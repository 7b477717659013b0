// Package engine runs containers from images, as dockerd does: the
// container engine inside caisd, which package dockerapi serves to the
// docker CLI.
//
// # A container's life
//
// [Engine.Create] resolves the image in the store (package image/store),
// merges its config with the request ([MergeImageConfig]: entrypoint,
// cmd, environment, working directory, user, labels), checks that a
// runtime spec can be made from it, and records the container in
// ROOT/containers/ID/container.json.
//
// [Engine.Start] mounts the root file system, an overlay of the image's
// layers (unpacked once per chain ID by the store and shared by every
// container) under the container's own upper directory; resolves the user
// in the image's /etc/passwd (opened inside the root, so a symlink cannot
// lead to the host's); writes /etc/hosts, /etc/hostname and
// /etc/resolv.conf; makes the OCI runtime spec ([Spec], pure: namespaces
// pid, mount, ipc, uts and network unless --network host; Docker's default
// capabilities; Docker's masked and read-only /proc and /sys paths; cgroup
// limits for memory, swap, CPU quota and shares, pids; the open-file limit
// at the host's hard limit, since neither the engine nor the container has
// CAP_SYS_RESOURCE here) into config.json; and starts the container's
// monitor.
//
// The monitor (package engine/monitor; caisd re-executing itself as
// "caisd monitor --dir DIR", in a session of its own) runs runc create,
// holds the container's stdio, writes its output to the json-file log,
// starts it when the engine asks (after attach requests that came before
// the start have connected, so `docker run` sees all the output), runs
// exec processes, and when init exits records the exit code and whether
// the memory cgroup OOM-killed it in exit.json. Containers therefore keep
// running when caisd stops; [Open] adopts them by connecting to their
// monitors again, or reads exit.json of those that ended meanwhile.
//
// When a run ends the engine records the exit, applies the restart policy
// (no, on-failure[:N], always, unless-stopped, with Docker's doubling
// delay) and removes an AutoRemove container.
//
// # What the engine asks of runc
//
// Beyond what the monitor runs, the engine needs signals, the process list
// and statistics: the [Runtime] interface, implemented with go-runc by
// [RuncRuntime].
package engine
