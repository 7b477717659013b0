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
	// OpFgetxattr, OpFsetxattr, OpFlistxattr and OpFremovexattr are the
	// extended attribute calls on an open file (FxattrReq → Blob).
	OpFgetxattr
	OpFsetxattr
	OpFlistxattr
	OpFremovexattr
)

// FileAttrer is implemented by the layers that can reach an open file's
// attributes by its handle. It is optional: the FUSE layer falls back to
// the path when a layer lacks it.
type FileAttrer interface {
	Fgetattr(ctx context.Context, h uint64) (Attr, error)
	Fsetattr(ctx context.Context, h uint64, req *SetattrReq) (Attr, error)
}

// FileXattrer is implemented by the layers that can reach an open file's
// extended attributes by its handle; optional as FileAttrer is.
type FileXattrer interface {
	Fgetxattr(ctx context.Context, h uint64, name string) ([]byte, error)
	Fsetxattr(ctx context.Context, h uint64, name string, value []byte, flags uint32) error
	Flistxattr(ctx context.Context, h uint64) ([]byte, error)
	Fremovexattr(ctx context.Context, h uint64, name string) error
}

// FxattrReq is an XattrReq on an open file.
type FxattrReq struct {
	Handle uint64
	Name   string
	Value  []byte
	Flags  uint32
}

func (m *FxattrReq) Encode(e *Encoder) {
	e.U64(m.Handle)
	e.String(m.Name)
	e.Bytes32(m.Value)
	e.U32(m.Flags)
}

func (m *FxattrReq) Decode(d *Decoder) {
	m.Handle = d.U64()
	m.Name = d.String()
	m.Value = d.Bytes32()
	m.Flags = d.U32()
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

var _ FileXattrer = (*Client)(nil)

func (c *Client) Fgetxattr(ctx context.Context, h uint64, name string) ([]byte, error) {
	var r Blob
	err := c.call(ctx, OpFgetxattr, &FxattrReq{Handle: h, Name: name}, &r)
	return r.Data, err
}

func (c *Client) Fsetxattr(ctx context.Context, h uint64, name string, value []byte, flags uint32) error {
	return c.call(ctx, OpFsetxattr, &FxattrReq{Handle: h, Name: name, Value: value, Flags: flags}, nil)
}

func (c *Client) Flistxattr(ctx context.Context, h uint64) ([]byte, error) {
	var r Blob
	err := c.call(ctx, OpFlistxattr, &FxattrReq{Handle: h}, &r)
	return r.Data, err
}

func (c *Client) Fremovexattr(ctx context.Context, h uint64, name string) error {
	return c.call(ctx, OpFremovexattr, &FxattrReq{Handle: h, Name: name}, nil)
}
