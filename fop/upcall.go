package fop

import "encoding/binary"

// Upcalls (cache invalidation): a brick tells the mounts that subscribed
// to its events (rpc.OpSubscribe) that another client changed a file or
// a directory's entries, as GlusterFS's upcall translator does for
// features.cache-invalidation. A mount then drops what its kernel caches
// about that file or name, and so can cache attributes, entries and pages
// for long (performance.md-cache-timeout).
const (
	// OpUpcall is the event carrying an Upcall.
	OpUpcall uint16 = 170
)

// Upcall flags: what changed.
const (
	// UpcallEntry: the entry Path (a name in its parent directory) was
	// made, removed or renamed; the parent's attributes changed too.
	UpcallEntry uint32 = 1 << iota
	// UpcallAttr: the file's attributes changed.
	UpcallAttr
	// UpcallData: the file's content changed (and so its attributes).
	UpcallData
)

// Upcall names a file that changed, by its GFID when the brick knows it
// (a change through an open handle) and by its path when it has one.
type Upcall struct {
	Flags uint32
	GFID  GFID
	Path  string
}

func (m *Upcall) Encode(e *Encoder) {
	e.U32(m.Flags)
	e.GFID(m.GFID)
	e.String(m.Path)
}

func (m *Upcall) Decode(d *Decoder) {
	m.Flags = d.U32()
	m.GFID = d.GFID()
	m.Path = d.String()
}

// InoOf is the inode number a file with GFID g has on every brick and
// mount: its two halves folded together.
func InoOf(g GFID) uint64 {
	return binary.BigEndian.Uint64(g[0:8]) ^ binary.BigEndian.Uint64(g[8:16])
}
