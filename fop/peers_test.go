package fop

import (
	"context"
	"testing"
)

// callPoster counts the calls and posts it is given.
type callPoster struct{ calls, posts int }

func (c *callPoster) Call(context.Context, uint16, []byte) ([]byte, error) {
	c.calls++
	return nil, nil
}

func (c *callPoster) Post(context.Context, uint16, []byte) error {
	c.posts++
	return nil
}

// A close waits for the brick to tell its other clients of a local write
// (a call) unless the brick said there are none (a post).
func TestToldWaitsForPeers(t *testing.T) {
	g := NewGFID()
	for _, tc := range []struct {
		name       string
		set        func(c *Client)
		wait       bool
		call, post int
	}{
		{"nothing heard: others may be there", func(c *Client) {}, true, 1, 0},
		{"alone", func(c *Client) { c.SetPeers(Peers{Others: 0}) }, true, 0, 1},
		{"two others", func(c *Client) { c.SetPeers(Peers{Others: 2}) }, true, 1, 0},
		{"two others, not a close", func(c *Client) { c.SetPeers(Peers{Others: 2}) }, false, 0, 1},
		{"alone, then events lost", func(c *Client) { c.SetPeers(Peers{}); c.PeersUnknown() }, true, 1, 0},
		{"no cache invalidation on the volume", func(c *Client) { c.NoPeers = true }, true, 0, 1},
	} {
		cp := &callPoster{}
		c := NewClient(cp)
		tc.set(c)
		if err := c.PassthroughWrote(context.Background(), 1, g, tc.wait); err != nil {
			t.Fatal(err)
		}
		if cp.calls != tc.call || cp.posts != tc.post {
			t.Errorf("%s: %d calls, %d posts; want %d, %d", tc.name, cp.calls, cp.posts, tc.call, tc.post)
		}
	}
	// A file without a GFID is not told of.
	cp := &callPoster{}
	if err := NewClient(cp).PassthroughWrote(context.Background(), 1, GFID{}, true); err != nil || cp.calls+cp.posts != 0 {
		t.Errorf("zero GFID: %d calls, %d posts, %v", cp.calls, cp.posts, err)
	}
}
