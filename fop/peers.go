package fop

import (
	"context"
	"sync/atomic"
)

// Close-to-open across mounts with local I/O. A client that writes a file
// through a brick's descriptor (localfd.go), or lets the kernel write it
// (passthrough), tells the brick afterwards (OpLocalWrote), and the brick
// tells its other clients (upcalls). Told without waiting, another mount
// could open the file right after the close and read what its kernel kept
// from before. So at a close the client waits for the brick to have told
// them (Barrierer), when there are others to tell: each brick sends every
// subscribed client the number of its other subscribed clients (OpPeers)
// when it subscribes and whenever that number changes.

// OpPeers is the event carrying a Peers.
const OpPeers uint16 = 175

// Peers is how many other clients of the brick take its upcalls.
type Peers struct {
	Others uint32
}

func (m *Peers) Encode(e *Encoder) { e.U32(m.Others) }
func (m *Peers) Decode(d *Decoder) { m.Others = d.U32() }

// Barrierer is implemented by the layers that can make sure the bricks
// told their other clients of a handle's writes made without them (local
// I/O): a close waits for it, so that a client opening the file after the
// close does not read what it cached before.
type Barrierer interface {
	Barrier(ctx context.Context, h uint64) error
}

var _ Barrierer = (*Client)(nil)

// peerState is what the brick last said of its other clients. A new
// connection's subscription brings a new count before anything is written
// through it.
type peerState struct {
	v atomic.Uint64 // others+1; 0: nothing heard
}

// SetPeers records a Peers event.
func (c *Client) SetPeers(p Peers) {
	c.peers.v.Store(uint64(p.Others) + 1)
}

// PeersUnknown forgets what the brick said of its other clients (its
// events were lost).
func (c *Client) PeersUnknown() { c.peers.v.Store(0) }

// alone reports whether the brick said that no other client takes its
// upcalls.
func (c *Client) alone() bool {
	return c.NoPeers || c.peers.v.Load() == 1
}

// Barrier tells the brick, and waits for it, of the writes made through
// h's descriptor since the last barrier, when the brick has other clients
// to tell.
func (c *Client) Barrier(ctx context.Context, h uint64) error {
	gfid, wrote := c.local.takeWrote(h)
	if !wrote || c.alone() {
		// Each local write was posted to the brick already (writeLocal):
		// with no one else to tell, there is nothing to wait for.
		return nil
	}
	return c.told(ctx, h, gfid, true)
}

// told tells the brick that h's file changed without it (OpLocalWrote):
// with wait, and another client to tell, as a call that returns once the
// brick has told them; otherwise posted.
func (c *Client) told(ctx context.Context, h uint64, gfid GFID, wait bool) error {
	if gfid.IsZero() {
		return nil
	}
	req := Marshal(&LocalWroteReq{Handle: h, GFID: gfid})
	if wait && !c.alone() {
		_, err := c.c.Call(ctx, OpLocalWrote, req)
		return err
	}
	post, ok := c.c.(Poster)
	if !ok {
		_, err := c.c.Call(ctx, OpLocalWrote, req)
		return err
	}
	return post.Post(ctx, OpLocalWrote, req)
}
