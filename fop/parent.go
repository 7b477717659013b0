package fop

import (
	"context"
	"encoding/binary"
	"sync"
)

// A brick answers a call that makes or removes a name (create, mkdir,
// mknod, symlink, link, unlink, rmdir) with, after the call's own reply,
// the attributes its directory has after it, then parentMagic: the
// kernel asks for a directory's attributes after every change of its
// entries, and a mount answers that from them instead of asking the
// bricks again (GlusterFS's replies carry the same "postparent").

// OpHello tells a brick, first on each connection, which additions to
// replies the client reads (Hello.Features); the brick answers those it
// will send. A brick sends them only to a client that asked, so a mount
// older than the brick still reads its replies; an older brick answers
// ENOSYS and sends none.
const OpHello uint16 = 172

// Features a client may ask for in its Hello.
const (
	// FeatParentAttrs: entry calls' replies end with their directory's
	// attributes (AppendParentAttr).
	FeatParentAttrs uint32 = 1 << iota
	// FeatListingXattrs: listings end with each entry's Xattrs flags.
	FeatListingXattrs
	// FeatReleaseAttrs: OpXattropRelease's reply ends with the file's
	// attributes after the changelog update (AppendFileAttr).
	FeatReleaseAttrs
	// FeatLocalFD: on a connection from the brick's own machine (a Unix
	// socket), OpCreate's and OpOpen's replies end with the new handle's
	// descriptor (AppendLocalFD), which spares the client an OpLocalFD.
	FeatLocalFD
	// FeatCreateMark: OpCreate's request may end with a changelog delta
	// (CreateReq.Mark), which the brick adds to the file it opens under
	// the writers' lock, as a first write's OpWriteDirty does: the
	// create of a file to be written is its first write's lock and
	// mark, and that write needs no round trip of its own.
	FeatCreateMark
)

// ClientFeatures are the features this client reads.
const ClientFeatures = FeatParentAttrs | FeatListingXattrs | FeatReleaseAttrs | FeatLocalFD | FeatCreateMark

// Hello is OpHello's request and reply.
type Hello struct {
	Features uint32
}

func (m *Hello) Encode(e *Encoder) { e.U32(m.Features) }
func (m *Hello) Decode(d *Decoder) { m.Features = d.U32() }

// SayHello sends OpHello with ClientFeatures (rpc.Redialer.Hello) and
// returns the features the brick granted (none from a brick that does
// not know OpHello).
func SayHello(ctx context.Context, c Caller) (uint32, error) {
	out, err := c.Call(ctx, OpHello, Marshal(&Hello{Features: ClientFeatures}))
	if err != nil {
		return 0, err
	}
	var h Hello
	if err := Unmarshal(out, &h); err != nil {
		return 0, err
	}
	return h.Features, nil
}

// parentMagic ends a reply that carries its directory's attributes,
// fileMagic one that carries its file's (OpXattropRelease's).
const (
	parentMagic = 0x50415254 // "PART"
	fileMagic   = 0x46415454 // "FATT"
)

// EntryOp reports whether op makes or removes a name, so that its reply
// carries the directory's attributes (AppendParentAttr).
func EntryOp(op uint16) bool {
	switch op {
	case OpCreate, OpMkdir, OpMknod, OpSymlink, OpLink, OpUnlink, OpRmdir, OpUnlinkFile:
		return true
	}
	return false
}

// AppendParentAttr appends a directory's attributes to an entry call's
// reply.
func AppendParentAttr(reply []byte, a Attr) []byte { return appendAttr(reply, a, parentMagic) }

// SplitParentAttr takes the directory's attributes off the end of an
// entry call's reply, when they are there (an older brick sends none).
func SplitParentAttr(b []byte) ([]byte, Attr, bool) { return splitAttr(b, parentMagic) }

// AppendFileAttr appends a file's attributes to OpXattropRelease's reply.
func AppendFileAttr(reply []byte, a Attr) []byte { return appendAttr(reply, a, fileMagic) }

// SplitFileAttr takes the file's attributes off the end of
// OpXattropRelease's reply, when they are there.
func SplitFileAttr(b []byte) ([]byte, Attr, bool) { return splitAttr(b, fileMagic) }

func appendAttr(reply []byte, a Attr, magic uint32) []byte {
	e := Encoder{b: reply}
	a.Encode(&e)
	return binary.BigEndian.AppendUint32(e.b, magic)
}

func splitAttr(b []byte, magic uint32) ([]byte, Attr, bool) {
	if len(b) < attrSize+4 || binary.BigEndian.Uint32(b[len(b)-4:]) != magic {
		return b, Attr{}, false
	}
	body, tail := b[:len(b)-4-attrSize], b[len(b)-4-attrSize:len(b)-4]
	var a Attr
	if err := Unmarshal(tail, &a); err != nil {
		return b, Attr{}, false
	}
	return body, a, true
}

// ParentAttrs gathers, for the entry calls made with its context, the
// attributes their directory has after them, as each brick that did one
// reported them.
type ParentAttrs struct {
	mu   sync.Mutex
	got  []report
	miss bool // a brick did an entry call and reported nothing
}

// report is one brick's report; under a layer over several subvolumes
// (distribute) tagged with the subvolume and the one whose copy of the
// directory gives its size and link count (ParentSub).
type report struct {
	a         Attr
	tagged    bool
	sub, auth int
}

type parentSubKey struct{}

// ParentSub returns the context for an entry call on subvolume sub of a
// layer over several whose copies of the directory each hold part of its
// entries: the directory's times are the latest of its copies', its size
// and link count subvolume auth's (-1: unknown).
func ParentSub(ctx context.Context, sub, auth int) context.Context {
	if ctx.Value(parentAttrsKey{}) == nil {
		return ctx
	}
	return context.WithValue(ctx, parentSubKey{}, [2]int{sub, auth})
}

type parentAttrsKey struct{}

// WithParentAttrs returns a context whose entry calls report into p.
func WithParentAttrs(ctx context.Context) (context.Context, *ParentAttrs) {
	p := &ParentAttrs{}
	return context.WithValue(ctx, parentAttrsKey{}, p), p
}

func (p *ParentAttrs) add(ctx context.Context, a Attr, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !ok {
		p.miss = true
		return
	}
	r := report{a: a}
	if t, isSub := ctx.Value(parentSubKey{}).([2]int); isSub {
		r.tagged, r.sub, r.auth = true, t[0], t[1]
	}
	p.got = append(p.got, r)
}

// Merge returns base, the directory's attributes before the calls, with
// what the bricks reported: each time the latest of base's and theirs;
// size, block count and link count those of the one copy that gives them
// (an untagged report: the volume's only copy; a tagged one: the copy of
// subvolume auth), or base's when that copy was not changed. It reports
// false when no brick reported, when one that did a call did not, or
// when the copy that gives the size is unknown.
func (p *ParentAttrs) Merge(base Attr) (Attr, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.miss || len(p.got) == 0 {
		return Attr{}, false
	}
	a := base
	for _, r := range p.got {
		a.Mtime = max(a.Mtime, r.a.Mtime)
		a.Ctime = max(a.Ctime, r.a.Ctime)
		a.Atime = max(a.Atime, r.a.Atime)
		switch {
		case r.tagged && r.auth < 0:
			return Attr{}, false
		case !r.tagged || r.sub == r.auth:
			a.Size, a.Blocks, a.Nlink = r.a.Size, r.a.Blocks, r.a.Nlink
		}
	}
	return a, true
}

// ParentCopies is for a layer over n copies of one tree (replicate): it
// returns a context per copy, whose entry calls report into a collector
// of their own, and a function to call once they are done, which passes
// copy pick's reports on to ctx's collector (tagged as ctx tags them),
// or, when ok is false (the copies no longer agree, or the layer changes
// the directory after the calls), records that nothing can be known.
// When ctx gathers nothing, every copy's context is ctx.
func ParentCopies(ctx context.Context, n int) ([]context.Context, func(pick int, ok bool)) {
	ctxs := make([]context.Context, n)
	outer, _ := ctx.Value(parentAttrsKey{}).(*ParentAttrs)
	if outer == nil {
		for i := range ctxs {
			ctxs[i] = ctx
		}
		return ctxs, func(int, bool) {}
	}
	inner := make([]*ParentAttrs, n)
	for i := range ctxs {
		// The copy's own collector, with no subvolume tag of the layers
		// above: those apply when the report is passed on.
		c := context.WithValue(ctx, parentSubKey{}, nil)
		ctxs[i], inner[i] = WithParentAttrs(c)
	}
	return ctxs, func(pick int, ok bool) {
		if pick < 0 || pick >= n {
			ok = false
		}
		if !ok {
			outer.add(ctx, Attr{}, false)
			return
		}
		in := inner[pick]
		in.mu.Lock()
		got, miss := in.got, in.miss
		in.mu.Unlock()
		if miss {
			outer.add(ctx, Attr{}, false)
		}
		for _, r := range got {
			outer.add(ctx, r.a, true)
		}
	}
}
