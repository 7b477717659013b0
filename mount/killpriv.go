package mount

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/cais-platform/cais/fop"
)

// Set-ID bits on writes (FUSE_HANDLE_KILLPRIV_V2).
//
// A write(2), or a truncation, by a process without CAP_FSETID clears a
// file's set-user-ID bit, and its set-group-ID bit where the group may
// execute; a chown clears both whoever makes it; any of the three drops
// the file's capabilities (security.capability). Left to the kernel, a
// FUSE mount pays for this with a GETXATTR of security.capability before
// every write(2): a request each, the write's own as dear. With
// HandleKillPriv the mount does it:
//
//   - the bricks' own file systems drop capabilities on the writes,
//     truncations and chowns the bricks make, and clear set-ID bits on
//     a chown (the bricks' chown is root's, which clears them too);
//   - the mount clears set-ID bits before a write or truncation by a
//     caller without CAP_FSETID, when the file has them.
//
// To know without a round trip whether a file has such bits, each node
// keeps what the last attributes it read said (node.sawModeAt), forgotten
// when another client changes the file (an upcall) and when an extended
// attribute (an ACL's mask is the group's bits) changes. The kernel used
// its cached mode for the same decision: another client's chmod u+s
// reaches this mount's writes as soon as either would have learned it.
//
// The kernel stops asking for security.capability once it has seen a
// file without: a file's first write still brings one GETXATTR, its
// later writes none.

// HandleKillPriv is the capability a mount with Options.KillPriv asks the
// kernel for (fuse.MountOptions.ExtraCapabilities).
const HandleKillPriv = fuse.CAP_HANDLE_KILLPRIV_V2

// What a node knows of its set-ID bits (node.priv).
const (
	privUnknown uint32 = iota
	privNone           // no bit a write would clear
	privSome
)

// privBits returns the bits of mode a write or truncation by a caller
// without CAP_FSETID clears: set-user-ID, and set-group-ID when the group
// may execute (without, it marks mandatory locking and stays).
func privBits(mode uint32) uint32 {
	if mode&syscall.S_IFMT != syscall.S_IFREG {
		return 0
	}
	bits := mode & syscall.S_ISUID
	if mode&(syscall.S_ISGID|syscall.S_IXGRP) == syscall.S_ISGID|syscall.S_IXGRP {
		bits |= syscall.S_ISGID
	}
	return bits
}

// privOf is what mode says of the set-ID bits.
func privOf(mode uint32) uint32 {
	if privBits(mode) != 0 {
		return privSome
	}
	return privNone
}

// sawModeAt records the set-ID bits of attributes read from the bricks
// by a call that began when the node's change count (node.changed) was
// inv, unless it changed since: an upcall may have come in meanwhile,
// and the attributes may be older than the change it announced.
func (n *node) sawModeAt(mode uint32, inv uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.inv == inv:
		n.priv.Store(privOf(mode))
	case privBits(mode) != 0:
		// Bits seen are bits to look at again before a write, whatever
		// changed meanwhile (a close's bookkeeping, say, beside a chmod
		// u+s): left as it was, the node could keep "none".
		n.priv.Store(privSome)
	}
}

// capFSETID is CAP_FSETID's bit in a capability set.
const capFSETID = 1 << 4

// parseCapEff returns the effective capability set in the text of a
// /proc/PID/status file.
func parseCapEff(status []byte) (uint64, bool) {
	for line := range bytes.Lines(status) {
		v, ok := bytes.CutPrefix(line, []byte("CapEff:"))
		if !ok {
			continue
		}
		caps, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 16, 64)
		return caps, err == nil
	}
	return 0, false
}

// callerMayKeepPriv reports whether the thread that made the request in
// ctx holds CAP_FSETID where the kernel checks it: in its effective set,
// in the mount's user namespace. A thread the mount cannot see (another
// PID namespace, gone already) holds nothing: the bits are cleared.
func callerMayKeepPriv(ctx context.Context) bool {
	c, ok := fuse.FromContext(ctx)
	if !ok || c.Pid == 0 {
		return false
	}
	proc := fmt.Sprintf("/proc/%d/", c.Pid)
	status, err := os.ReadFile(proc + "status")
	if err != nil {
		return false
	}
	caps, ok := parseCapEff(status)
	if !ok || caps&capFSETID == 0 {
		return false
	}
	theirs, err1 := os.Readlink(proc + "ns/user")
	ours, err2 := os.Readlink("/proc/self/ns/user")
	return err1 == nil && err2 == nil && theirs == ours
}

// killPriv clears the set-ID bits a write through f by the caller in ctx
// clears, before it.
func (f *file) killPriv(ctx context.Context) syscall.Errno {
	n := f.n
	if !n.opts.KillPriv || n.priv.Load() == privNone || callerMayKeepPriv(ctx) {
		return 0
	}
	fa, mode, e := n.modeNow(ctx, f)
	if e != 0 {
		return e
	}
	bits := privBits(mode)
	if bits == 0 {
		return 0
	}
	defer n.changed()
	inv := n.changeCount()
	a, err := fa.set(&fop.SetattrReq{Valid: fop.SetMode, Mode: mode & 0o7777 &^ bits})
	if err != nil {
		return errno(err)
	}
	n.sawModeAt(a.Mode, inv)
	n.modeChanged()
	return 0
}

// fileAttrs reads and sets one file's attributes.
type fileAttrs struct {
	get func() (fop.Attr, error)
	set func(*fop.SetattrReq) (fop.Attr, error)
}

// attrsVia reaches the node's attributes through handle f where the
// volume has handle calls (node.fileAttrer), else by its path.
func (n *node) attrsVia(ctx context.Context, f fs.FileHandle) (fileAttrs, syscall.Errno) {
	if fa, h, ok := n.fileAttrer(ctx, f); ok {
		return fileAttrs{
			get: func() (fop.Attr, error) { return fa.Fgetattr(ctx, h) },
			set: func(r *fop.SetattrReq) (fop.Attr, error) { return fa.Fsetattr(ctx, h, r) },
		}, 0
	}
	p, e := n.path()
	if e != 0 {
		return fileAttrs{}, e
	}
	return fileAttrs{
		get: func() (fop.Attr, error) { return n.vol.Getattr(ctx, p) },
		set: func(r *fop.SetattrReq) (fop.Attr, error) {
			r.Path = p
			return n.vol.Setattr(ctx, r)
		},
	}, 0
}

// modeChanged tells the kernel that the node's mode changed other than
// by a SETATTR it sent: it drops the attributes it keeps (not the pages).
func (n *node) modeChanged() {
	n.EmbeddedInode().NotifyContent(-1, 0)
}

// killPrivSetattr adds to a truncation the kernel marked FATTR_KILL_SUIDGID
// (a caller without CAP_FSETID) the mode without the bits it clears.
func (n *node) killPrivSetattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, req *fop.SetattrReq) syscall.Errno {
	if !n.opts.KillPriv || in.Valid&fuse.FATTR_KILL_SUIDGID == 0 || req.Valid&fop.SetSize == 0 || req.Valid&fop.SetMode != 0 || n.priv.Load() == privNone {
		return 0
	}
	_, mode, e := n.modeNow(ctx, f)
	if e != 0 {
		return e
	}
	if bits := privBits(mode); bits != 0 {
		req.Valid |= fop.SetMode
		req.Mode = mode & 0o7777 &^ bits
	}
	return 0
}

// modeNow reads the file's mode from the bricks (through handle f where
// it can) and records its set-ID bits; it returns the way it reached the
// attributes too, to set them.
func (n *node) modeNow(ctx context.Context, f fs.FileHandle) (fileAttrs, uint32, syscall.Errno) {
	fa, e := n.attrsVia(ctx, f)
	if e != 0 {
		return fa, 0, e
	}
	inv := n.changeCount()
	a, err := fa.get()
	if err != nil {
		return fa, 0, errno(err)
	}
	n.sawModeAt(a.Mode, inv)
	return fa, a.Mode, 0
}
