package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// The bricks' file system.
//
// This machine's root file system is ext4 without a journal, and there
// ext4 looks for a free inode past every inode freed in the last 305
// seconds whose table block is cached and dirty, from the start of the
// block group, on every create (find_inode_bit, recently_deleted). A
// target that runs after others deleted thousands of files then pays
// for each of them on each create: on the make-up pool, 3,000 creates
// on a volume whose block group had seen the day's deletions ran at 600
// files/s where the same volume on a fresh ext4 ran at 2,400-2,850, and
// rounds of one build varied from 589 to 1,358 on Replica 2. Which target
// came after which decided the create figures. A brick's disk has a
// journal (mkfs.ext4's default; XFS always has one), and ext4 with one
// does not look: by default the bench makes its work directory a fresh
// ext4 of its own, in an image file beside it mounted through a loop
// device with direct I/O (no second page cache under it) that reads
// ahead as far as the disk does. Every target,
// the disk column included, runs on it.

// brickFS makes dir a new ext4 file system of size bytes in dir+".img"
// and pushes its removal on cl. It returns the note the report carries.
func brickFS(ctx context.Context, log *slog.Logger, cl *cleanups, dir string, size int64, keep bool) (string, error) {
	img := dir + ".img"
	detachStale(ctx, log, img)
	if err := os.Remove(img); err != nil && !os.IsNotExist(err) {
		return "", err
	}
	f, err := os.OpenFile(img, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", err
	}
	err = f.Truncate(size) // sparse: blocks only as the bricks write
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	removeImg := func() error {
		if keep {
			return nil
		}
		return os.Remove(img)
	}
	if err != nil {
		_ = removeImg()
		return "", err
	}
	// Inode tables and journal written now, not by a kernel thread
	// during the workloads.
	if _, err := run(ctx, "mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", img); err != nil {
		_ = removeImg()
		return "", err
	}
	out, err := run(ctx, "losetup", "--find", "--show", "--direct-io=on", img)
	if err != nil {
		_ = removeImg()
		return "", err
	}
	dev := strings.TrimSpace(out)
	// The loop device reads ahead as much as the disk under it (a loop
	// device's own default is 128 KiB; this machine's disk reads 8 MiB
	// ahead): sequential reads through the mounts would otherwise meet
	// a smaller window than they did on the disk itself.
	if kb, err := readAheadKB(filepath.Dir(img)); err == nil {
		err = os.WriteFile("/sys/block/"+filepath.Base(dev)+"/queue/read_ahead_kb", []byte(kb), 0o644)
		if err != nil {
			log.Warn("loop device keeps its own read-ahead", "device", dev, "err", err)
		}
	}
	cl.push("remove "+img, removeImg)
	cl.push("detach "+dev, func() error {
		_, err := run(context.Background(), "losetup", "--detach", dev)
		return err
	})
	if _, err := run(ctx, "mount", dev, dir); err != nil {
		return "", err
	}
	cl.push("unmount "+dir, func() error { return unmount(dir) })
	return fmt.Sprintf("The work directory is a new ext4 file system with its journal, %d GiB, in %s on %s (loop device, direct I/O): this machine's root file system has no journal, and ext4 without one makes every create scan past the inodes freed in the last minutes (-fs none measures the directory as it is).", size>>30, img, fsTypeOf(dir+".img")), nil
}

// readAheadKB is the read-ahead, in KiB, of the block device holding dir
// (of its whole disk, for a partition).
func readAheadKB(dir string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return "", err
	}
	base := fmt.Sprintf("/sys/dev/block/%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))
	for _, p := range []string{base + "/queue/read_ahead_kb", base + "/../queue/read_ahead_kb"} {
		if b, err := os.ReadFile(p); err == nil {
			return strings.TrimSpace(string(b)), nil
		}
	}
	return "", fmt.Errorf("no read-ahead setting for the device of %s", dir)
}

// detachStale detaches the loop devices a failed run left on img.
func detachStale(ctx context.Context, log *slog.Logger, img string) {
	out, err := run(ctx, "losetup", "--associated", img, "--noheadings", "--output", "NAME")
	if err != nil {
		return
	}
	for _, dev := range strings.Fields(out) {
		if _, err := run(ctx, "losetup", "--detach", dev); err != nil {
			log.Warn("detach a loop device left by a failed run", "device", dev, "err", err)
		}
	}
}

// brickFSSize is the image's size: every target's sequential file, each
// copy of it, in every run, with room to spare.
func brickFSSize(sizeMiB, runs, copies int) int64 {
	return int64(runs*copies*sizeMiB)<<20 + 8<<30
}
