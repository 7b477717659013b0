package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/cais-platform/cais/mount"
)

// serveLoopback mounts go-fuse's loopback node over src at mnt until it is
// unmounted: a FUSE file system that does no network I/O, the floor under
// every FUSE file system on this machine. Its options are those of
// cais mount, so the two differ only in what is under the FUSE layer,
// except for the caches: a loopback has no upcalls to keep them right, so
// it keeps entries and attributes for 1 second, as cais mounts without
// features.cache-invalidation do.
func serveLoopback(src, mnt string) error {
	root, err := fs.NewLoopbackRoot(src)
	if err != nil {
		return err
	}
	sec := time.Second
	server, err := fs.Mount(mnt, root, &fs.Options{
		EntryTimeout:    &sec,
		AttrTimeout:     &sec,
		NullPermissions: true,
		MountOptions: fuse.MountOptions{
			FsName:      src,
			Name:        "loopback",
			AllowOther:  true,
			DirectMount: true,
			MaxWrite:    1 << 20,
			Options:     []string{"default_permissions"},
		},
	})
	if err != nil {
		return fmt.Errorf("mount loopback of %s at %s: %w", src, mnt, err)
	}
	// The read-ahead of cais mounts (1 MiB reads for sequential readers).
	if err := mount.SetReadAhead(mnt, mount.ReadAheadKB); err != nil {
		fmt.Fprintln(os.Stderr, "loopback:", err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		_ = server.Unmount()
	}()
	server.Wait()
	return nil
}
