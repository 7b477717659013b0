package fop

import "context"

// File locks of clients (codes 150-159): POSIX record locks (fcntl) and
// whole-file flock locks, held by the brick that holds the file, so that
// every mount sees them. A lock belongs to its owner (the kernel's lock
// owner: a process's file table for fcntl locks, an open file for flock
// and OFD locks) on the connection that took it; the brick drops a
// connection's locks when it ends, so a client that dies blocks nobody.
const (
	// OpGetlk reports a lock that conflicts with the one described
	// (LkReq → Lk; Type Unlock when none).
	OpGetlk uint16 = 150 + iota
	// OpSetlk takes, changes or drops a lock (LkReq), or fails with
	// EAGAIN while another owner's lock conflicts. It never waits on the
	// brick: a waiting caller asks again, so a wait the caller gives up
	// can never be granted behind its back.
	OpSetlk
)

// Lock types, as fcntl's F_RDLCK, F_WRLCK and F_UNLCK.
const (
	LockRead   uint32 = 0
	LockWrite  uint32 = 1
	LockUnlock uint32 = 2
)

// LkEOF is the End of a lock that reaches past any end of the file.
const LkEOF = ^uint64(0)

// LkReq flags.
const (
	// LkFlock: a whole-file flock(2) lock; flock and POSIX locks do not
	// conflict with each other.
	LkFlock uint32 = 1 << iota
	// LkPid: with LockUnlock, drop the POSIX locks on the file that
	// process Pid holds through this connection, whatever their owner
	// (a process closing any descriptor of a file loses its locks on it).
	LkPid
)

// Lk describes a lock: a byte range [Start, End] (End LkEOF: to the end
// of any file), its type, and the process that holds it.
type Lk struct {
	Start uint64
	End   uint64
	Type  uint32
	Pid   uint32
}

func (m *Lk) Encode(e *Encoder) { e.U64(m.Start); e.U64(m.End); e.U32(m.Type); e.U32(m.Pid) }
func (m *Lk) Decode(d *Decoder) {
	m.Start = d.U64()
	m.End = d.U64()
	m.Type = d.U32()
	m.Pid = d.U32()
}

// LkReq asks about, takes or drops a lock on an open file.
type LkReq struct {
	Handle uint64
	Owner  uint64
	Lk     Lk
	Flags  uint32
}

func (m *LkReq) Encode(e *Encoder) { e.U64(m.Handle); e.U64(m.Owner); m.Lk.Encode(e); e.U32(m.Flags) }
func (m *LkReq) Decode(d *Decoder) {
	m.Handle = d.U64()
	m.Owner = d.U64()
	m.Lk.Decode(d)
	m.Flags = d.U32()
}

// Locker is implemented by the layers that carry file locks to the
// bricks. It is optional: without it the FUSE layer leaves locks to the
// local kernel, which sees only its own mount's.
type Locker interface {
	Getlk(ctx context.Context, h uint64, owner uint64, lk *Lk, flags uint32) (Lk, error)
	Setlk(ctx context.Context, h uint64, owner uint64, lk *Lk, flags uint32) error
}

var _ Locker = (*Client)(nil)

func (c *Client) Getlk(ctx context.Context, h uint64, owner uint64, lk *Lk, flags uint32) (Lk, error) {
	var r Lk
	return r, c.call(ctx, OpGetlk, &LkReq{Handle: h, Owner: owner, Lk: *lk, Flags: flags}, &r)
}

func (c *Client) Setlk(ctx context.Context, h uint64, owner uint64, lk *Lk, flags uint32) error {
	err := c.call(ctx, OpSetlk, &LkReq{Handle: h, Owner: owner, Lk: *lk, Flags: flags}, nil)
	if lk.Type != LockUnlock {
		// Recorded even when the call failed (it may have been taken
		// before it was cancelled), on the connection it went over: the
		// one counted now, since a connection made during the call is
		// the one it was sent on.
		n := c.conns()
		c.mu.Lock()
		c.lockedFor(n)[h] = struct{}{}
		c.mu.Unlock()
	}
	return err
}
