package fop

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
)

// Volume is what every client layer provides and consumes: a brick
// reached over the wire, and the distribute (later replicate, stripe,
// disperse) layers stacked on bricks. Errors are syscall.Errno values, so
// the FUSE layer returns them as they are.
//
// Paths are relative to the volume root, '/'-separated, "" for the root.
// Handles come from Create and Open and are only meaningful to the Volume
// that returned them.
type Volume interface {
	Lookup(ctx context.Context, path string) (Entry, error)
	Getattr(ctx context.Context, path string) (Attr, error)
	Setattr(ctx context.Context, req *SetattrReq) (Attr, error)
	Mkdir(ctx context.Context, req *CreateReq) (Attr, error)
	Mknod(ctx context.Context, req *CreateReq) (Attr, error)
	Symlink(ctx context.Context, req *CreateReq) (Attr, error)
	Create(ctx context.Context, req *CreateReq) (OpenReply, error)
	Open(ctx context.Context, path string, flags uint32) (OpenReply, error)
	Read(ctx context.Context, h uint64, off int64, size uint32) ([]byte, error)
	Write(ctx context.Context, h uint64, off int64, data []byte) (WriteReply, error)
	Release(ctx context.Context, h uint64) error
	Fsync(ctx context.Context, h uint64, datasync bool) error
	Unlink(ctx context.Context, path string) error
	Rmdir(ctx context.Context, path string) error
	Rename(ctx context.Context, from, to string, flags uint32) error
	Link(ctx context.Context, from, to string) (Attr, error)
	Readlink(ctx context.Context, path string) (string, error)
	// Readdir lists entries from pos; each entry's Pos resumes after it.
	Readdir(ctx context.Context, path string, pos Pos, max uint32) (ReaddirReply, error)
	Getxattr(ctx context.Context, path, name string) ([]byte, error)
	Setxattr(ctx context.Context, path, name string, value []byte, flags uint32) error
	Listxattr(ctx context.Context, path string) ([]byte, error)
	Removexattr(ctx context.Context, path, name string) error
	Statfs(ctx context.Context) (Statfs, error)
}

// Caller sends one call to a brick: rpc.Client, or a reconnecting wrapper.
type Caller interface {
	Call(ctx context.Context, op uint16, payload []byte) ([]byte, error)
}

// Poster is a Caller that can also send a call without waiting for its
// reply (rpc.Client.Post).
type Poster interface {
	Post(ctx context.Context, op uint16, payload []byte) error
}

// ConnCounter is a Caller that connects again after a failure
// (rpc.Redialer) and counts its connections: a brick's handles and locks
// belong to the connection they were made on.
type ConnCounter interface {
	Conns() uint64
}

// Client is a Volume over one brick connection.
type Client struct {
	c Caller

	// NoLocalIO keeps reads and writes on the brick's protocol even when
	// the brick is on this machine (localfd.go).
	NoLocalIO bool

	// NoPeers: no other client of the brick keeps a cache that upcalls
	// keep right (the volume has no cache invalidation), so a close need
	// not wait for the brick to tell them of local writes (peers.go).
	NoPeers bool

	// features are those the brick granted in the current connection's
	// hello (SetFeatures).
	features atomic.Uint32

	peers peerState // the brick's Peers events (peers.go)

	mu sync.Mutex
	// locked are the handles that took a byte-range or flock lock
	// (Setlk) on connection lockedConn: their release is waited for, so
	// that their locks are gone when Release returns. A new connection
	// empties it, since the brick dropped the old one's locks with it,
	// and handles lost with a connection are never released.
	locked     map[uint64]struct{}
	lockedConn uint64

	local localFDs // LocalFD's descriptors
}

var _ Volume = (*Client)(nil)

// NewClient returns a Volume that sends every operation to c.
func NewClient(c Caller) *Client { return &Client{c: c} }

// Errno turns any error into the errno a file system returns: errnos pass
// through, a cancelled call is EINTR, anything else (a lost connection, a
// garbled reply) is ENOTCONN.
func Errno(err error) syscall.Errno {
	var e syscall.Errno
	switch {
	case err == nil:
		return 0
	case errors.As(err, &e):
		return e
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return syscall.EINTR
	}
	return syscall.ENOTCONN
}

func (c *Client) call(ctx context.Context, op uint16, req Message, reply Message) error {
	out, err := c.c.Call(ctx, op, Marshal(req))
	if err != nil {
		return Errno(err)
	}
	if EntryOp(op) {
		var pa Attr
		var ok bool
		out, pa, ok = SplitParentAttr(out)
		if p, _ := ctx.Value(parentAttrsKey{}).(*ParentAttrs); p != nil {
			p.add(ctx, pa, ok)
		}
	}
	var offer *LocalFDReply
	if op == OpCreate || op == OpOpen {
		if rest, l, ok := SplitLocalFD(out); ok {
			out, offer = rest, &l
		}
	}
	if reply == nil {
		return nil
	}
	if err := Unmarshal(out, reply); err != nil {
		return syscall.EIO
	}
	if r, ok := reply.(*OpenReply); ok && offer != nil {
		c.offerFD(r.Handle, *offer)
	}
	return nil
}

func (c *Client) Lookup(ctx context.Context, path string) (Entry, error) {
	var r Entry
	return r, c.call(ctx, OpLookup, &PathReq{Path: path}, &r)
}

func (c *Client) Getattr(ctx context.Context, path string) (Attr, error) {
	var r Attr
	return r, c.call(ctx, OpGetattr, &PathReq{Path: path}, &r)
}

func (c *Client) Setattr(ctx context.Context, req *SetattrReq) (Attr, error) {
	var r Attr
	return r, c.call(ctx, OpSetattr, req, &r)
}

func (c *Client) Mkdir(ctx context.Context, req *CreateReq) (Attr, error) {
	var r Attr
	return r, c.call(ctx, OpMkdir, req, &r)
}

func (c *Client) Mknod(ctx context.Context, req *CreateReq) (Attr, error) {
	var r Attr
	return r, c.call(ctx, OpMknod, req, &r)
}

func (c *Client) Symlink(ctx context.Context, req *CreateReq) (Attr, error) {
	var r Attr
	return r, c.call(ctx, OpSymlink, req, &r)
}

func (c *Client) Create(ctx context.Context, req *CreateReq) (OpenReply, error) {
	if len(req.Mark) > 0 && !c.CanMark() {
		return OpenReply{}, syscall.ENOSYS
	}
	var r OpenReply
	return r, c.call(ctx, OpCreate, req, &r)
}

// SetFeatures records the features the brick granted in a connection's
// hello (SayHello), before the connection carries any other call.
func (c *Client) SetFeatures(f uint32) { c.features.Store(f) }

// CanMark reports whether creates may carry a changelog mark
// (FeatCreateMark, CreateReq.Mark).
func (c *Client) CanMark() bool { return c.features.Load()&FeatCreateMark != 0 }

func (c *Client) Open(ctx context.Context, path string, flags uint32) (OpenReply, error) {
	var r OpenReply
	return r, c.call(ctx, OpOpen, &OpenReq{Path: path, Flags: flags}, &r)
}

func (c *Client) Read(ctx context.Context, h uint64, off int64, size uint32) ([]byte, error) {
	out, err := c.c.Call(ctx, OpRead, Marshal(&ReadReq{Handle: h, Offset: off, Size: size}))
	if err != nil {
		return nil, Errno(err)
	}
	return out, nil
}

// PartsCaller is a Caller that can send a payload in parts without
// joining them (rpc.Client, rpc.Redialer): writes use it to send their
// data from the caller's buffer.
type PartsCaller interface {
	CallParts(ctx context.Context, op uint16, parts ...[]byte) ([]byte, error)
}

func (c *Client) Write(ctx context.Context, h uint64, off int64, data []byte) (WriteReply, error) {
	// Through the descriptor of a copy on this machine, when there is
	// one (localfd.go).
	if r, ok, err := c.writeLocal(ctx, h, off, data); ok {
		return r, err
	}
	var r WriteReply
	req := &WriteReq{Handle: h, Offset: off, Data: data}
	pc, ok := c.c.(PartsCaller)
	if !ok {
		return r, c.call(ctx, OpWrite, req, &r)
	}
	out, err := pc.CallParts(ctx, OpWrite, req.encodeHead(), data)
	if err != nil {
		return r, Errno(err)
	}
	if err := Unmarshal(out, &r); err != nil {
		return r, syscall.EIO
	}
	return r, nil
}

// conns is the connection count of the Caller, 0 if it does not count.
func (c *Client) conns() uint64 {
	if cc, ok := c.c.(ConnCounter); ok {
		return cc.Conns()
	}
	return 0
}

// lockedFor returns the locked handles of connection n, emptied first if
// they were another connection's; c.mu is held.
func (c *Client) lockedFor(n uint64) map[uint64]struct{} {
	if c.locked == nil || c.lockedConn != n {
		c.locked, c.lockedConn = map[uint64]struct{}{}, n
	}
	return c.locked
}

// Release sends the release without waiting for its reply when the
// connection can (Poster) and the handle took no lock: no one waits for
// such a release (the kernel sends FUSE's without waiting either), and a
// brick drops a handle that was not released when its connection ends. A
// handle's locks go with its release, so a handle that took one is
// released with a call that returns once they are gone.
func (c *Client) Release(ctx context.Context, h uint64) error {
	c.local.drop(h)
	n := c.conns()
	c.mu.Lock()
	held := c.lockedFor(n) // a lost connection's locks went with it
	_, locked := held[h]
	delete(held, h)
	c.mu.Unlock()
	if p, ok := c.c.(Poster); ok && !locked {
		if err := p.Post(ctx, OpRelease, Marshal(&HandleReq{Handle: h})); err != nil {
			return Errno(err)
		}
		return nil
	}
	return c.call(ctx, OpRelease, &HandleReq{Handle: h}, nil)
}

func (c *Client) Fsync(ctx context.Context, h uint64, datasync bool) error {
	return c.call(ctx, OpFsync, &HandleReq{Handle: h, Flag: datasync}, nil)
}

func (c *Client) Unlink(ctx context.Context, path string) error {
	return c.call(ctx, OpUnlink, &PathReq{Path: path}, nil)
}

func (c *Client) Rmdir(ctx context.Context, path string) error {
	return c.call(ctx, OpRmdir, &PathReq{Path: path}, nil)
}

func (c *Client) Rename(ctx context.Context, from, to string, flags uint32) error {
	return c.call(ctx, OpRename, &RenameReq{From: from, To: to, Flags: flags}, nil)
}

func (c *Client) Link(ctx context.Context, from, to string) (Attr, error) {
	var r Attr
	return r, c.call(ctx, OpLink, &RenameReq{From: from, To: to}, &r)
}

func (c *Client) Readlink(ctx context.Context, path string) (string, error) {
	var r Blob
	err := c.call(ctx, OpReadlink, &PathReq{Path: path}, &r)
	return string(r.Data), err
}

func (c *Client) Readdir(ctx context.Context, path string, pos Pos, max uint32) (ReaddirReply, error) {
	var r ReaddirReply
	return r, c.call(ctx, OpReaddir, &ReaddirReq{Path: path, Cookie: pos.Cookie, Max: max}, &r)
}

func (c *Client) Getxattr(ctx context.Context, path, name string) ([]byte, error) {
	var r Blob
	err := c.call(ctx, OpGetxattr, &XattrReq{Path: path, Name: name}, &r)
	return r.Data, err
}

func (c *Client) Setxattr(ctx context.Context, path, name string, value []byte, flags uint32) error {
	return c.call(ctx, OpSetxattr, &XattrReq{Path: path, Name: name, Value: value, Flags: flags}, nil)
}

func (c *Client) Listxattr(ctx context.Context, path string) ([]byte, error) {
	var r Blob
	err := c.call(ctx, OpListxattr, &PathReq{Path: path}, &r)
	return r.Data, err
}

func (c *Client) Removexattr(ctx context.Context, path, name string) error {
	return c.call(ctx, OpRemovexattr, &XattrReq{Path: path, Name: name}, nil)
}

func (c *Client) Statfs(ctx context.Context) (Statfs, error) {
	var r Statfs
	return r, c.call(ctx, OpStatfs, &PathReq{}, &r)
}

// Flusher is implemented by layers that answer writes before the bricks
// have them (write-behind): Flush waits for the handle's writes and
// reports a failed one, when the application closes the file. Optional.
type Flusher interface {
	Flush(ctx context.Context, h uint64) error
}

// AttrFlusher is a Flusher that also gives the file's attributes after
// the handle's writes, as a getattr right after would return them, when
// it knows them (ok): the handle wrote, every write succeeded, and the
// layers below report writes' attributes final (FinalWrites). A mount
// answers the kernel's getattr after a close with them, without a round
// trip.
type AttrFlusher interface {
	FlushAttr(ctx context.Context, h uint64) (a Attr, ok bool, err error)
}

// Settler is implemented by the layers that keep something open on the
// bricks while a handle writes (replicate: its changelog's dirty mark and
// the writers' lock) and can close it at a close of the file, once the
// handle's writes in flight are done: what closing it changes on the
// bricks (a file's change time) then changes before close returns, not
// after, when the kernel releases the handle. A later write through the
// same handle opens it again. Settle includes the barrier
// (Barrierer) of the handle, in the same round trip where it can. It
// returns the file's attributes after it when it learns them (ok), as
// ReleaseAttr does.
type Settler interface {
	Settle(ctx context.Context, h uint64) (a Attr, ok bool, err error)
}

// ReleaseAttrer is implemented by layers that learn, when a handle that
// wrote is released, the file's attributes after everything the handle
// did, when write replies could not give them (replicate: its changelog
// is cleared at release). ok is false when they are not known.
type ReleaseAttrer interface {
	ReleaseAttr(ctx context.Context, h uint64) (a Attr, ok bool, err error)
}

// Final says which replies carry attributes as they stay until the next
// change (FinalAttrs).
type Final uint8

const (
	// FinalWrites: a write's reply carries the file's attributes after
	// it.
	FinalWrites Final = 1 << iota
	// FinalEntries: an entry call's reports of its directory's
	// attributes (ParentAttrs) are those after it.
	FinalEntries
)

// FinalAttrs is implemented by layers whose replies carry attributes as
// they stay until the next change: no later step of the call changes
// them. Replicate's changelog, cleared when a handle that wrote is
// released, changes the file after its writes, so replicate gives
// FinalEntries only.
type FinalAttrs interface {
	FinalAttrs() Final
}

// FinalAttrs reports that a brick's replies carry the attributes after
// the call (fstat of the file or directory).
func (c *Client) FinalAttrs() Final { return FinalWrites | FinalEntries }

// FinalOf returns what v's FinalAttrs says, or nothing when v does not
// implement it.
func FinalOf(v any) Final {
	if f, ok := v.(FinalAttrs); ok {
		return f.FinalAttrs()
	}
	return 0
}
