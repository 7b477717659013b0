package layer

// Option sets for the archives the engine unpacks. They differ in what a
// whiteout means and who owns the files; the confinement rules are the
// same for all.

// LayerOptions suit an image layer unpacked as an overlayfs lower
// directory: whiteouts in overlayfs form, the archive's owners, devices
// refused. docker import and docker load archives end up as layers too and
// are unpacked with these when a container first uses them.
func LayerOptions() Options { return Options{Whiteouts: WhiteoutOverlay, Devices: DevicesRefuse} }

// ContextOptions suit a build context: names starting with ".wh." are
// ordinary files, every entry is owned by root (COPY sets the owner it
// wants), device nodes are refused, and maxSize (if positive) bounds the
// content.
func ContextOptions(maxSize int64) Options {
	return Options{Whiteouts: WhiteoutLiteral, Devices: DevicesRefuse, Owner: &Owner{UID: 0, GID: 0}, MaxSize: maxSize}
}

// CopyOptions suit docker cp into a container: the archive lands in
// subdir of the container's root file system (resolved inside it),
// whiteout names are ordinary files, devices are refused, and owner (the
// container's root, unless docker cp -a keeps the archive's IDs: nil)
// owns everything.
func CopyOptions(subdir string, owner *Owner) Options {
	return Options{Whiteouts: WhiteoutLiteral, Devices: DevicesRefuse, Owner: owner, Subdir: subdir}
}
