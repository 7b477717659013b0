package fop

import "context"

// Operations on an open file's attributes (codes 160-169). They reach the
// inode through the handle, so they work on a file whose last name is gone
// (fstat or ftruncate after unlink) and on the very file a process opened
// when its name was replaced since.
const (
	// OpFgetattr returns an open file's attributes (HandleReq → Attr).
	OpFgetattr uint16 = 160 + iota
	// OpFsetattr changes an open file's attributes (FsetattrReq → Attr).
	OpFsetattr
)

// FileAttrer is implemented by the layers that can reach an open file's
// attributes by its handle. It is optional: the FUSE layer falls back to
// the path when a layer lacks it.
type FileAttrer interface {
	Fgetattr(ctx context.Context, h uint64) (Attr, error)
	Fsetattr(ctx context.Context, h uint64, req *SetattrReq) (Attr, error)
}

// FsetattrReq is a SetattrReq on an open file; the path is not used.
type FsetattrReq struct {
	Handle uint64
	Attr   SetattrReq
}

func (m *FsetattrReq) Encode(e *Encoder) { e.U64(m.Handle); m.Attr.Encode(e) }
func (m *FsetattrReq) Decode(d *Decoder) { m.Handle = d.U64(); m.Attr.Decode(d) }

var _ FileAttrer = (*Client)(nil)

func (c *Client) Fgetattr(ctx context.Context, h uint64) (Attr, error) {
	var r Attr
	return r, c.call(ctx, OpFgetattr, &HandleReq{Handle: h}, &r)
}

func (c *Client) Fsetattr(ctx context.Context, h uint64, req *SetattrReq) (Attr, error) {
	var r Attr
	return r, c.call(ctx, OpFsetattr, &FsetattrReq{Handle: h, Attr: *req}, &r)
}
