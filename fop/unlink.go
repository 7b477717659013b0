package fop

import "context"

// OpUnlinkFile removes a name in one round trip where the distribute
// layer otherwise looks it up first: the brick unlinks it unless it is a
// pointer entry (a zero-length file with only the sticky bit and the
// trusted.cais.linkto attribute), which it leaves, answering the pointer's
// target instead (PathReq → Blob: empty when unlinked, else the linkto
// value).
const OpUnlinkFile uint16 = 171

// FileUnlinker is implemented by the brick client: UnlinkFile is
// OpUnlinkFile. Optional: a layer without it looks the name up first.
type FileUnlinker interface {
	UnlinkFile(ctx context.Context, path string) (linkTo string, err error)
}

var _ FileUnlinker = (*Client)(nil)

// UnlinkFile sends OpUnlinkFile.
func (c *Client) UnlinkFile(ctx context.Context, path string) (string, error) {
	var r Blob
	err := c.call(ctx, OpUnlinkFile, &PathReq{Path: path}, &r)
	return string(r.Data), err
}
