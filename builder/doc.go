// Package builder builds images from Dockerfiles as Docker's classic
// builder does (DOCKER_BUILDKIT=0 docker build), and makes images of
// containers (docker commit).
//
// A build has two phases, so that what can be refused before any output
// is refused with an HTTP error: [Builder.Prepare] receives the context,
// an untrusted tar stream, and reads the Dockerfile; [Job.Run] builds,
// writing the classic builder's progress ("Step 2/5 : RUN make",
// " ---> Running in 1a2b3c4d5e6f", the command's output, " ---> Using
// cache", "Successfully built …").
//
// # The context
//
// [ReceiveContext] checks every entry ([CheckContextEntry]: no ".."
// names, no symlink that is absolute or climbs out, no hard link to a
// name outside, no device node) and unpacks with package layer, whose
// unpacker never writes outside its directory. A .dockerignore in the
// context removes what it names, as the docker CLI does before sending
// (patterns with github.com/moby/patternmatcher, the docker CLI's own).
// COPY sources are looked up inside the context with openat2's
// RESOLVE_IN_ROOT, and a source with ".." that climbs out is refused
// ("forbidden path outside the build context").
//
// # Steps
//
// Package dockerfile evaluates each stage into steps; the builder
// performs them on the image so far:
//
//   - RUN: a container of the image (through the engine, no TTY, the
//     step's environment with the build arguments) runs the command; its
//     log is streamed; a non-zero exit fails the build with Docker's
//     "The command '/bin/sh -c false' returned a non-zero code: 1". The
//     container's overlayfs upper directory, packed with OCI whiteouts
//     (less the mount points the runtime made), is the step's layer.
//   - COPY, ADD, WORKDIR: the image's layers are mounted as an overlay
//     with a fresh upper directory in the builder's own directory; the
//     files are unpacked into it (package layer again, so a symlink in
//     the image cannot lead the copy out) and the upper directory is the
//     layer. ADD unpacks local tar archives and fetches URLs when the
//     machine can reach them.
//   - Everything else changes only the config; as in Docker a container
//     is made and removed for it.
//
// A step that changes no file adds no layer, only a history entry with
// empty_layer set. Every step makes an image: an intermediate image is
// recorded (untagged) only while a container needs it, and removed when
// the build ends unless something else uses it; each stage's last image
// is kept.
//
// # The cache
//
// A step's result is remembered under a key made of the parent image's
// ID, what the step does (history line, command, environment, the config
// after it) and, for COPY and ADD, a checksum of the names, modes, owners
// and contents copied (not their times). A later build with the same key
// writes the remembered config back, byte for byte, so it gets the same
// image ID, and prints " ---> Using cache". Entries whose layers left
// the store are misses.
//
// # docker commit
//
// [Builder.Commit] packs a container's upper directory the same way and
// applies --change instructions with the Dockerfile evaluator
// ([ApplyChanges]).
package builder
