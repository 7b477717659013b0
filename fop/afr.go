package fop

import (
	"context"
	"encoding/binary"
	"syscall"
)

// Operations of the replicate layer's bookkeeping (codes 130-149).
const (
	// OpXattrop adds to a file's changelog atomically on the brick, and
	// may take or drop the connection's shared write lock on the file.
	OpXattrop uint16 = 130 + iota
	// OpInodelk takes or drops a lock on a file (the self-heal's
	// exclusive lock, which waits for no writer).
	OpInodelk
	// OpIndex lists the brick's files with a non-zero changelog.
	OpIndex
	// OpXattropRelease is OpXattrop by handle followed by the handle's
	// release, in one round trip (a writer closing its file).
	OpXattropRelease
	// OpWriteDirty is a writer's first write: the file's shared lock and
	// dirty mark taken, then the data written, in one round trip. When the
	// write fails after the mark, the mark and the lock stay: the writer
	// drops them when it closes the file, as after any write.
	OpWriteDirty
)

// WriteDirtyReq is OpWriteDirty's request. Data comes last, so it can be
// sent from the caller's buffer.
type WriteDirtyReq struct {
	Handle uint64
	Offset int64
	Path   string // for the index
	Delta  []int32
	Data   []byte
}

func (m *WriteDirtyReq) Encode(e *Encoder) {
	m.encodeHead(e)
	e.b = append(e.b, m.Data...)
}

func (m *WriteDirtyReq) encodeHead(e *Encoder) {
	e.U64(m.Handle)
	e.I64(m.Offset)
	e.String(m.Path)
	encodeCounters(e, m.Delta)
	e.U32(uint32(len(m.Data)))
}

// Decode leaves Data pointing into the input.
func (m *WriteDirtyReq) Decode(d *Decoder) {
	m.Handle = d.U64()
	m.Offset = d.I64()
	m.Path = d.String()
	m.Delta = decodeCounters(d)
	m.Data = d.BytesRef()
}

// WriteDirty sends a writer's first write (see OpWriteDirty).
func (c *Client) WriteDirty(ctx context.Context, req *WriteDirtyReq) (WriteReply, error) {
	var r WriteReply
	pc, ok := c.c.(PartsCaller)
	if !ok {
		return r, c.call(ctx, OpWriteDirty, req, &r)
	}
	var e Encoder
	req.encodeHead(&e)
	out, err := pc.CallParts(ctx, OpWriteDirty, e.Bytes(), req.Data)
	if err != nil {
		return r, Errno(err)
	}
	if err := Unmarshal(out, &r); err != nil {
		return r, syscall.EIO
	}
	return r, nil
}

// ChangelogXattr holds a file's changelog on a brick: int32 counters,
// big-endian, in triples (data, metadata, entry). The first triple counts
// operations in flight (dirty); triple 1+j counts operations brick j of
// the replica set missed (pending).
const ChangelogXattr = "trusted.cais.afr"

// MaxChangelog bounds the counters in a changelog (1 + 64 bricks).
const MaxChangelog = 3 * 65

// Lock modes of XattropReq and InodelkReq.
const (
	LockNone      uint8 = 0
	LockShared    uint8 = 1 // writers: any number at once
	LockExclusive uint8 = 2 // self-heal: no writer at all
	Unlock        uint8 = 3 // drops one lock of the connection; Shared or Exclusive in Mode2
)

// XattropReq adds Delta to the file's changelog, element by element
// (counters never go below zero). With Lock set to LockShared, the
// connection first takes a shared lock on the file, waiting for an
// exclusive holder; with Unlock, it drops one shared lock after the add.
//
// With Handle set, the file is the one open under that handle (it may have
// been renamed or unlinked since); Path is then only a hint for the index.
type XattropReq struct {
	Path   string
	Delta  []int32
	Lock   uint8
	Handle uint64
	// Domain is the lock's domain (DomainData or DomainMetadata).
	Domain uint8
}

func (m *XattropReq) Encode(e *Encoder) {
	e.String(m.Path)
	encodeCounters(e, m.Delta)
	e.U8(m.Lock)
	e.U64(m.Handle)
	e.U8(m.Domain)
}

func (m *XattropReq) Decode(d *Decoder) {
	m.Path = d.String()
	m.Delta = decodeCounters(d)
	m.Lock = d.U8()
	m.Handle = d.U64()
	m.Domain = d.U8()
}

// Lock domains. A file's locks of one domain do not wait for those of
// the other: writers hold the data domain's shared lock while their file
// is open, and a metadata change (chmod, chown, times, extended
// attributes) and the metadata heal take the metadata domain's, so that
// a file open for writing for days still has its metadata healed.
const (
	DomainData     uint8 = 0
	DomainMetadata uint8 = 1
)

// Changelog is a file's changelog after an xattrop.
type Changelog struct{ Counters []int32 }

func (m *Changelog) Encode(e *Encoder) { encodeCounters(e, m.Counters) }
func (m *Changelog) Decode(d *Decoder) { m.Counters = decodeCounters(d) }

func encodeCounters(e *Encoder, c []int32) {
	e.U32(uint32(len(c)))
	for _, v := range c {
		e.U32(uint32(v))
	}
}

func decodeCounters(d *Decoder) []int32 {
	n := d.U32()
	if n > MaxChangelog {
		if d.err == nil {
			d.err = ErrDecode
		}
		return nil
	}
	out := make([]int32, 0, n)
	for range n {
		out = append(out, int32(d.U32()))
	}
	return out
}

// EncodeChangelog renders counters as the ChangelogXattr value.
func EncodeChangelog(c []int32) []byte {
	b := make([]byte, 0, 4*len(c))
	for _, v := range c {
		b = binary.BigEndian.AppendUint32(b, uint32(v))
	}
	return b
}

// DecodeChangelog parses a ChangelogXattr value; a malformed one (not a
// whole number of triples, or too long) is an error.
func DecodeChangelog(b []byte) ([]int32, error) {
	if len(b)%12 != 0 || len(b) > 4*MaxChangelog {
		return nil, ErrDecode
	}
	out := make([]int32, len(b)/4)
	for i := range out {
		out[i] = int32(binary.BigEndian.Uint32(b[4*i:]))
	}
	return out, nil
}

// InodelkReq takes (Mode LockShared or LockExclusive) or drops (Mode
// Unlock, Which the mode to drop) a lock of the connection on a file.
// Without Wait, a lock that is held incompatibly fails with EAGAIN at once.
type InodelkReq struct {
	Path   string
	Mode   uint8
	Which  uint8
	Wait   bool
	Domain uint8 // DomainData or DomainMetadata
}

func (m *InodelkReq) Encode(e *Encoder) {
	e.String(m.Path)
	e.U8(m.Mode)
	e.U8(m.Which)
	e.Bool(m.Wait)
	e.U8(m.Domain)
}
func (m *InodelkReq) Decode(d *Decoder) {
	m.Path = d.String()
	m.Mode = d.U8()
	m.Which = d.U8()
	m.Wait = d.Bool()
	m.Domain = d.U8()
}

// IndexEntry names a file the brick holds a non-zero changelog for, by
// its identity and the path it had when the changelog was last changed.
type IndexEntry struct {
	GFID GFID
	Path string
}

// IndexReply lists index entries.
type IndexReply struct{ Entries []IndexEntry }

func (m *IndexReply) Encode(e *Encoder) {
	e.U32(uint32(len(m.Entries)))
	for _, en := range m.Entries {
		e.GFID(en.GFID)
		e.String(en.Path)
	}
}

func (m *IndexReply) Decode(d *Decoder) {
	n := d.U32()
	if uint64(n)*20 > uint64(len(d.b)) {
		if d.err == nil {
			d.err = ErrDecode
		}
		return
	}
	m.Entries = make([]IndexEntry, 0, n)
	for range n {
		m.Entries = append(m.Entries, IndexEntry{GFID: d.GFID(), Path: d.String()})
	}
}

// Bookkeeper is what the replicate layer needs of a brick beyond Volume.
type Bookkeeper interface {
	Xattrop(ctx context.Context, req *XattropReq) ([]int32, error)
	WriteDirty(ctx context.Context, req *WriteDirtyReq) (WriteReply, error)
	XattropRelease(ctx context.Context, req *XattropReq) (ReleaseReply, error)
	Inodelk(ctx context.Context, req *InodelkReq) error
	Index(ctx context.Context) ([]IndexEntry, error)
}

var _ Bookkeeper = (*Client)(nil)

func (c *Client) Xattrop(ctx context.Context, req *XattropReq) ([]int32, error) {
	var r Changelog
	err := c.call(ctx, OpXattrop, req, &r)
	return r.Counters, err
}

func (c *Client) Inodelk(ctx context.Context, req *InodelkReq) error {
	return c.call(ctx, OpInodelk, req, nil)
}

// ReleaseReply is what XattropRelease learns: the changelog after the
// update and, from a brick that sends them (FeatReleaseAttrs), the file's
// attributes after it.
type ReleaseReply struct {
	Counters []int32
	Attr     Attr
	HasAttr  bool
}

// XattropRelease applies req (by req.Handle) and releases the handle;
// the handle is released even when the changelog update fails.
func (c *Client) XattropRelease(ctx context.Context, req *XattropReq) (ReleaseReply, error) {
	c.local.drop(req.Handle)
	out, err := c.c.Call(ctx, OpXattropRelease, Marshal(req))
	if err != nil {
		return ReleaseReply{}, Errno(err)
	}
	return decodeReleaseReply(out)
}

// decodeReleaseReply decodes a changelog followed, when the brick sent
// them, by the file's attributes.
func decodeReleaseReply(out []byte) (ReleaseReply, error) {
	var r ReleaseReply
	out, r.Attr, r.HasAttr = SplitFileAttr(out)
	var cl Changelog
	if err := Unmarshal(out, &cl); err != nil {
		return ReleaseReply{}, syscall.EIO
	}
	r.Counters = cl.Counters
	return r, nil
}

// XattropAttr applies req (by req.Handle) and returns the changelog after
// it and, from a brick that sends them (FeatReleaseAttrs, for an unlock
// by handle), the file's attributes after it: a settle's changelog
// update (replicate.Settle) learns what a release's did.
func (c *Client) XattropAttr(ctx context.Context, req *XattropReq) (ReleaseReply, error) {
	out, err := c.c.Call(ctx, OpXattrop, Marshal(req))
	if err != nil {
		return ReleaseReply{}, Errno(err)
	}
	return decodeReleaseReply(out)
}

func (c *Client) Index(ctx context.Context) ([]IndexEntry, error) {
	var r IndexReply
	err := c.call(ctx, OpIndex, &PathReq{}, &r)
	return r.Entries, err
}
