package fop

import (
	"encoding/hex"

	"github.com/google/uuid"
)

// Operation codes (rpc ops 1-99 belong to the rpc package).
const (
	OpLookup uint16 = 100 + iota
	OpGetattr
	OpSetattr
	OpMkdir
	OpMknod
	OpCreate
	OpOpen
	OpRead
	OpWrite
	OpRelease
	OpFsync
	OpUnlink
	OpRmdir
	OpRename
	OpLink
	OpSymlink
	OpReadlink
	OpReaddir
	OpGetxattr
	OpSetxattr
	OpListxattr
	OpRemovexattr
	OpStatfs
)

// GFIDXattr holds a file's identity on a brick.
const GFIDXattr = "trusted.cais.gfid"

// GFID is a file's identity, the same on every brick that holds it.
type GFID [16]byte

// RootGFID is the volume root's identity.
var RootGFID = GFID{15: 1}

// NewGFID makes a random identity.
func NewGFID() GFID { return GFID(uuid.New()) }

// String renders the GFID as a UUID.
func (g GFID) String() string { return uuid.UUID(g).String() }

// Hex renders the GFID as 32 hex digits.
func (g GFID) Hex() string { return hex.EncodeToString(g[:]) }

// IsZero reports an unset GFID.
func (g GFID) IsZero() bool { return g == GFID{} }

// Timespec is a time in nanoseconds since the epoch.
type Timespec = int64

// Attr is a file's attributes as a brick reports them.
type Attr struct {
	GFID    GFID
	Ino     uint64
	Mode    uint32 // type and permission bits, as in stat(2)
	Nlink   uint32
	UID     uint32
	GID     uint32
	Rdev    uint64
	Size    uint64
	Blocks  uint64
	Blksize uint32
	Atime   Timespec
	Mtime   Timespec
	Ctime   Timespec
}

func (a *Attr) Encode(e *Encoder) {
	e.GFID(a.GFID)
	e.U64(a.Ino)
	e.U32(a.Mode)
	e.U32(a.Nlink)
	e.U32(a.UID)
	e.U32(a.GID)
	e.U64(a.Rdev)
	e.U64(a.Size)
	e.U64(a.Blocks)
	e.U32(a.Blksize)
	e.I64(a.Atime)
	e.I64(a.Mtime)
	e.I64(a.Ctime)
}

func (a *Attr) Decode(d *Decoder) {
	a.GFID = d.GFID()
	a.Ino = d.U64()
	a.Mode = d.U32()
	a.Nlink = d.U32()
	a.UID = d.U32()
	a.GID = d.U32()
	a.Rdev = d.U64()
	a.Size = d.U64()
	a.Blocks = d.U64()
	a.Blksize = d.U32()
	a.Atime = d.I64()
	a.Mtime = d.I64()
	a.Ctime = d.I64()
}

// PathReq names one file: getattr, unlink, rmdir, readlink, listxattr,
// statfs, and lookup.
type PathReq struct {
	Path string
}

func (m *PathReq) Encode(e *Encoder) { e.String(m.Path) }
func (m *PathReq) Decode(d *Decoder) { m.Path = d.String() }

// Entry answers a lookup: the attributes, and for directories the brick's
// layout record; LinkTo is set on a pointer entry left by a rename;
// Changelog is the replicate layer's record (ChangelogXattr), empty when
// the file has none.
type Entry struct {
	Attr      Attr
	Layout    []byte
	LinkTo    string
	Changelog []byte
}

func (m *Entry) Encode(e *Encoder) {
	m.Attr.Encode(e)
	e.Bytes32(m.Layout)
	e.String(m.LinkTo)
	e.Bytes32(m.Changelog)
}

func (m *Entry) Decode(d *Decoder) {
	m.Attr.Decode(d)
	m.Layout = d.Bytes32()
	m.LinkTo = d.String()
	m.Changelog = d.Bytes32()
}

// Setattr valid bits.
const (
	SetMode uint32 = 1 << iota
	SetUID
	SetGID
	SetSize
	SetAtime
	SetMtime
	SetAtimeNow
	SetMtimeNow
)

// SetattrReq changes attributes; Valid says which.
type SetattrReq struct {
	Path  string
	Valid uint32
	Mode  uint32
	UID   uint32
	GID   uint32
	Size  uint64
	Atime Timespec
	Mtime Timespec
}

func (m *SetattrReq) Encode(e *Encoder) {
	e.String(m.Path)
	e.U32(m.Valid)
	e.U32(m.Mode)
	e.U32(m.UID)
	e.U32(m.GID)
	e.U64(m.Size)
	e.I64(m.Atime)
	e.I64(m.Mtime)
}

func (m *SetattrReq) Decode(d *Decoder) {
	m.Path = d.String()
	m.Valid = d.U32()
	m.Mode = d.U32()
	m.UID = d.U32()
	m.GID = d.U32()
	m.Size = d.U64()
	m.Atime = d.I64()
	m.Mtime = d.I64()
}

// Xattr is a name and value set on a new entry or by setxattr.
type Xattr struct {
	Name  string
	Value []byte
}

// CreateReq makes a directory, node, regular file or symlink. Kind picks
// which; Target is a symlink's content; Xattrs are set atomically with the
// entry (its layout record, say), before it becomes visible under its
// name.
type CreateReq struct {
	Path   string
	Mode   uint32
	Rdev   uint64
	UID    uint32
	GID    uint32
	GFID   GFID
	Flags  uint32 // open flags, for OpCreate
	Target string
	Xattrs []Xattr
	// Mark, for OpCreate to a brick that granted FeatCreateMark: a
	// changelog delta added to the file under the writers' lock, held
	// until the handle's OpXattropRelease. Sent only when set.
	Mark []int32
}

func (m *CreateReq) Encode(e *Encoder) {
	e.String(m.Path)
	e.U32(m.Mode)
	e.U64(m.Rdev)
	e.U32(m.UID)
	e.U32(m.GID)
	e.GFID(m.GFID)
	e.U32(m.Flags)
	e.String(m.Target)
	e.U32(uint32(len(m.Xattrs)))
	for _, x := range m.Xattrs {
		e.String(x.Name)
		e.Bytes32(x.Value)
	}
	if len(m.Mark) > 0 {
		encodeCounters(e, m.Mark)
	}
}

func (m *CreateReq) Decode(d *Decoder) {
	m.Path = d.String()
	m.Mode = d.U32()
	m.Rdev = d.U64()
	m.UID = d.U32()
	m.GID = d.U32()
	m.GFID = d.GFID()
	m.Flags = d.U32()
	m.Target = d.String()
	n := d.U32()
	if n > 64 {
		if d.err == nil {
			d.err = ErrDecode
		}
		return
	}
	m.Xattrs = nil
	for range n {
		m.Xattrs = append(m.Xattrs, Xattr{Name: d.String(), Value: d.Bytes32()})
	}
	m.Mark = nil
	if d.More() {
		// Sent only when set: an empty one is not a message we make.
		if m.Mark = decodeCounters(d); len(m.Mark) == 0 && d.err == nil {
			d.err = ErrDecode
		}
	}
}

// OpenReq opens a file.
type OpenReq struct {
	Path  string
	Flags uint32
}

func (m *OpenReq) Encode(e *Encoder) { e.String(m.Path); e.U32(m.Flags) }
func (m *OpenReq) Decode(d *Decoder) { m.Path = d.String(); m.Flags = d.U32() }

// OpenReply returns a handle and the file's attributes.
type OpenReply struct {
	Handle uint64
	Attr   Attr
}

func (m *OpenReply) Encode(e *Encoder) { e.U64(m.Handle); m.Attr.Encode(e) }
func (m *OpenReply) Decode(d *Decoder) { m.Handle = d.U64(); m.Attr.Decode(d) }

// HandleReq names an open file: release, fsync (Flag: datasync).
type HandleReq struct {
	Handle uint64
	Flag   bool
}

func (m *HandleReq) Encode(e *Encoder) { e.U64(m.Handle); e.Bool(m.Flag) }
func (m *HandleReq) Decode(d *Decoder) { m.Handle = d.U64(); m.Flag = d.Bool() }

// ReadReq reads Size bytes at Offset; the reply is the data itself.
type ReadReq struct {
	Handle uint64
	Offset int64
	Size   uint32
}

func (m *ReadReq) Encode(e *Encoder) { e.U64(m.Handle); e.I64(m.Offset); e.U32(m.Size) }
func (m *ReadReq) Decode(d *Decoder) { m.Handle = d.U64(); m.Offset = d.I64(); m.Size = d.U32() }

// WriteReq writes Data at Offset.
type WriteReq struct {
	Handle uint64
	Offset int64
	Data   []byte
}

func (m *WriteReq) Encode(e *Encoder) { e.U64(m.Handle); e.I64(m.Offset); e.Bytes32(m.Data) }

// Decode leaves Data pointing into the input, which a brick holds for
// the call: a write's data is not copied.
func (m *WriteReq) Decode(d *Decoder) { m.Handle = d.U64(); m.Offset = d.I64(); m.Data = d.BytesRef() }

// encodeHead encodes the request without its data, which the caller
// sends right after it.
func (m *WriteReq) encodeHead() []byte {
	var e Encoder
	e.U64(m.Handle)
	e.I64(m.Offset)
	e.U32(uint32(len(m.Data)))
	return e.Bytes()
}

// WriteReply reports a write.
type WriteReply struct {
	Written uint32
	Attr    Attr
}

func (m *WriteReply) Encode(e *Encoder) { e.U32(m.Written); m.Attr.Encode(e) }
func (m *WriteReply) Decode(d *Decoder) { m.Written = d.U32(); m.Attr.Decode(d) }

// RenameReq is rename and link: From becomes (also) To.
type RenameReq struct {
	From string
	To   string
	// Flags are renameat2 flags (RENAME_NOREPLACE, RENAME_EXCHANGE).
	Flags uint32
}

func (m *RenameReq) Encode(e *Encoder) { e.String(m.From); e.String(m.To); e.U32(m.Flags) }
func (m *RenameReq) Decode(d *Decoder) { m.From = d.String(); m.To = d.String(); m.Flags = d.U32() }

// ReaddirReq lists a directory from a cookie; Max bounds the entries.
type ReaddirReq struct {
	Path   string
	Cookie uint64
	Max    uint32
}

func (m *ReaddirReq) Encode(e *Encoder) { e.String(m.Path); e.U64(m.Cookie); e.U32(m.Max) }
func (m *ReaddirReq) Decode(d *Decoder) { m.Path = d.String(); m.Cookie = d.U64(); m.Max = d.U32() }

// Dirent is one directory entry with its attributes (readdirplus).
type Dirent struct {
	Name   string
	Cookie uint64
	Attr   Attr
	LinkTo string
	// Xattrs says which of ListingXattrs the entry has (bit i for the
	// i-th), when XattrsKnown is set: ls -l asks for them on every entry,
	// and a mount answers from this without a round trip each. Sent after
	// the entries, and absent from an older brick's reply.
	Xattrs uint8
	// Sub is set by layers over several subvolumes (not on the wire): with
	// Cookie it is the position after this entry.
	Sub uint32
}

// Pos is a position in a directory listing: a brick's cookie (the
// kernel's d_off, any 64-bit value) and, for layers over several
// subvolumes, which subvolume it belongs to.
type Pos struct {
	Sub    uint32
	Cookie uint64
}

// Pos returns the position after the entry.
func (d Dirent) Pos() Pos { return Pos{Sub: d.Sub, Cookie: d.Cookie} }

// ListingXattrs are the extended attributes ls -l reads on every entry
// it lists (SELinux label, ACLs) and the kernel on every write (file
// capabilities), whose presence a listing reports (Dirent.Xattrs).
var ListingXattrs = [...]string{"security.selinux", "system.posix_acl_access", "system.posix_acl_default", "security.capability"}

// XattrsKnown marks a Dirent.Xattrs the brick filled.
const XattrsKnown = 1 << 7

// ReaddirReply is a batch of entries.
type ReaddirReply struct {
	Entries []Dirent
	EOF     bool
}

func (m *ReaddirReply) Encode(e *Encoder) {
	e.U32(uint32(len(m.Entries)))
	for i := range m.Entries {
		en := &m.Entries[i]
		e.String(en.Name)
		e.U64(en.Cookie)
		en.Attr.Encode(e)
		e.String(en.LinkTo)
	}
	e.Bool(m.EOF)
	known := false
	for i := range m.Entries {
		known = known || m.Entries[i].Xattrs != 0
	}
	if known {
		flags := make([]byte, len(m.Entries))
		for i := range m.Entries {
			flags[i] = m.Entries[i].Xattrs
		}
		e.Bytes32(flags)
	}
}

func (m *ReaddirReply) Decode(d *Decoder) {
	n := d.U32()
	// Each entry takes at least 4+8+attrSize+4 bytes: refuse counts the
	// input cannot hold before allocating for them.
	if uint64(n)*(16+attrSize) > uint64(len(d.b)) {
		if d.err == nil {
			d.err = ErrDecode
		}
		return
	}
	m.Entries = make([]Dirent, 0, n)
	for range n {
		var en Dirent
		en.Name = d.String()
		en.Cookie = d.U64()
		en.Attr.Decode(d)
		en.LinkTo = d.String()
		m.Entries = append(m.Entries, en)
	}
	m.EOF = d.Bool()
	if d.err == nil && len(d.b) > 0 {
		flags := d.Bytes32()
		if len(flags) != len(m.Entries) {
			if d.err == nil {
				d.err = ErrDecode
			}
			return
		}
		some := false
		for i := range m.Entries {
			m.Entries[i].Xattrs = flags[i]
			some = some || flags[i] != 0
		}
		if !some && d.err == nil {
			d.err = ErrDecode // sent only when some entry has flags
		}
	}
}

// attrSize is the encoded size of an Attr.
const attrSize = 16 + 8 + 4*4 + 8*3 + 4 + 8*3

// XattrReq gets, sets or removes one extended attribute.
type XattrReq struct {
	Path  string
	Name  string
	Value []byte
	Flags uint32 // XATTR_CREATE, XATTR_REPLACE for set; size probe for get
}

func (m *XattrReq) Encode(e *Encoder) {
	e.String(m.Path)
	e.String(m.Name)
	e.Bytes32(m.Value)
	e.U32(m.Flags)
}
func (m *XattrReq) Decode(d *Decoder) {
	m.Path = d.String()
	m.Name = d.String()
	m.Value = d.Bytes32()
	m.Flags = d.U32()
}

// Statfs is a brick file system's usage.
type Statfs struct {
	Blocks, Bfree, Bavail uint64
	Files, Ffree          uint64
	Bsize, NameLen        uint32
}

func (m *Statfs) Encode(e *Encoder) {
	e.U64(m.Blocks)
	e.U64(m.Bfree)
	e.U64(m.Bavail)
	e.U64(m.Files)
	e.U64(m.Ffree)
	e.U32(m.Bsize)
	e.U32(m.NameLen)
}

func (m *Statfs) Decode(d *Decoder) {
	m.Blocks = d.U64()
	m.Bfree = d.U64()
	m.Bavail = d.U64()
	m.Files = d.U64()
	m.Ffree = d.U64()
	m.Bsize = d.U32()
	m.NameLen = d.U32()
}

// Blob is a reply that is a single byte string (readlink, getxattr,
// listxattr as NUL-separated names).
type Blob struct{ Data []byte }

func (m *Blob) Encode(e *Encoder) { e.Bytes32(m.Data) }
func (m *Blob) Decode(d *Decoder) { m.Data = d.Bytes32() }
