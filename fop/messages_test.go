package fop

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"
)

func sampleAttr() Attr {
	return Attr{GFID: NewGFID(), Ino: 42, Mode: 0o100644, Nlink: 1, UID: 1000, GID: 100, Rdev: 7, Size: 1 << 40,
		Blocks: 8, Blksize: 4096, Atime: -5, Mtime: 1700000000123456789, Ctime: 1}
}

// every message type, filled, for round trips and as fuzz seeds.
func samples() []Message {
	a := sampleAttr()
	return []Message{
		&PathReq{Path: "dir/file"},
		&Entry{Attr: a, Layout: []byte{1, 2, 3}, LinkTo: "vol-client-1", Changelog: EncodeChangelog([]int32{1, 0, 0, 0, 2, 0})},
		&SetattrReq{Path: "f", Valid: SetMode | SetSize | SetMtime, Mode: 0o600, UID: 1, GID: 2, Size: 99, Atime: 3, Mtime: 4},
		&CreateReq{Path: "d/x", Mode: 0o40755, Rdev: 1, UID: 3, GID: 4, GFID: NewGFID(), Flags: 0o102, Target: "../t",
			Xattrs: []Xattr{{Name: "trusted.cais.dht", Value: []byte{1}}, {Name: "user.a", Value: nil}}},
		&OpenReq{Path: "f", Flags: 2},
		&OpenReply{Handle: 9, Attr: a},
		&HandleReq{Handle: 9, Flag: true},
		&ReadReq{Handle: 9, Offset: 1 << 33, Size: 131072},
		&WriteReq{Handle: 9, Offset: 5, Data: bytes.Repeat([]byte("x"), 1000)},
		&WriteReply{Written: 1000, Attr: a},
		&RenameReq{From: "a", To: "b/c", Flags: 1},
		&ReaddirReq{Path: "d", Cookie: 77, Max: 128},
		&ReaddirReply{Entries: []Dirent{{Name: "a", Cookie: 1, Attr: a}, {Name: "b", Cookie: 2, Attr: a, LinkTo: "x"}}, EOF: true},
		&XattrReq{Path: "f", Name: "user.k", Value: []byte("v"), Flags: 1},
		&Statfs{Blocks: 1, Bfree: 2, Bavail: 3, Files: 4, Ffree: 5, Bsize: 4096, NameLen: 255},
		&Blob{Data: []byte("target")},
		&XattropReq{Path: "d/f", Delta: []int32{1, 0, 0, 0, -1, 0, 5, 0, 0}, Lock: LockShared},
		&Changelog{Counters: []int32{0, 0, 1}},
		&InodelkReq{Path: "f", Mode: Unlock, Which: LockExclusive, Wait: true},
		&IndexReply{Entries: []IndexEntry{{GFID: NewGFID(), Path: "a/b"}, {GFID: NewGFID(), Path: ""}}},
		&FsetattrReq{Handle: 9, Attr: SetattrReq{Valid: SetSize, Size: 5 << 30}},
		&LkReq{Handle: 9, Owner: 1 << 60, Lk: Lk{Start: 100, End: LkEOF, Type: LockWrite, Pid: 42}, Flags: LkFlock},
		&Lk{Start: 1, End: 2, Type: LockRead, Pid: 7},
		&Upcall{Flags: UpcallEntry | UpcallData, GFID: NewGFID(), Path: "d/f"},
		&Hello{Features: ClientFeatures},
		&LocalFDReply{FD: 12, Dev: 2049, Ino: 1 << 40, GFID: NewGFID()},
		&LocalWroteReq{Handle: 9, GFID: NewGFID(), Offset: 1 << 33, Length: 1 << 20},
		&Peers{Others: 3},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, m := range samples() {
		b := Marshal(m)
		got := reflect.New(reflect.TypeOf(m).Elem()).Interface().(Message)
		if err := Unmarshal(b, got); err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		if !reflect.DeepEqual(normalize(got), normalize(m)) {
			t.Fatalf("%T: got %+v, want %+v", m, got, m)
		}
		// Every proper prefix is refused, and so is a trailing byte.
		for i := 0; i < len(b); i++ {
			if err := Unmarshal(b[:i], reflect.New(reflect.TypeOf(m).Elem()).Interface().(Message)); !errors.Is(err, ErrDecode) {
				t.Fatalf("%T: prefix of %d bytes: %v", m, i, err)
			}
		}
		if err := Unmarshal(append(b, 0), reflect.New(reflect.TypeOf(m).Elem()).Interface().(Message)); !errors.Is(err, ErrDecode) {
			t.Fatalf("%T: trailing byte accepted", m)
		}
	}
}

// normalize treats nil and empty byte slices alike.
func normalize(m Message) Message {
	switch v := m.(type) {
	case *CreateReq:
		c := *v
		c.Xattrs = append([]Xattr(nil), v.Xattrs...)
		for i := range c.Xattrs {
			if len(c.Xattrs[i].Value) == 0 {
				c.Xattrs[i].Value = nil
			}
		}
		return &c
	}
	return m
}

func TestAttrSize(t *testing.T) {
	a := sampleAttr()
	if n := len(Marshal(&a)); n != attrSize {
		t.Fatalf("encoded Attr is %d bytes, attrSize says %d", n, attrSize)
	}
}

func TestHugeCountsRefused(t *testing.T) {
	// A readdir reply claiming 2^32-1 entries in 5 bytes must not allocate.
	if err := Unmarshal([]byte{0xff, 0xff, 0xff, 0xff, 1}, &ReaddirReply{}); !errors.Is(err, ErrDecode) {
		t.Fatalf("huge entry count: %v", err)
	}
	if err := Unmarshal([]byte{0xff, 0xff, 0xff, 0xff}, &PathReq{}); !errors.Is(err, ErrDecode) {
		t.Fatalf("huge string: %v", err)
	}
	if err := Unmarshal([]byte{0, 0, 0, 0, 0, 0, 0, 0, 2}, &HandleReq{}); !errors.Is(err, ErrDecode) {
		t.Fatalf("boolean 2: %v", err)
	}
}

func FuzzUnmarshal(f *testing.F) {
	for i, m := range samples() {
		f.Add(uint8(i), Marshal(m))
		if c, ok := m.(*CreateReq); ok {
			marked := *c
			marked.Mark = []int32{1, 0, 0, 0, 1, 0}
			f.Add(uint8(i), Marshal(&marked))
		}
	}
	f.Fuzz(func(t *testing.T, kind uint8, b []byte) {
		ms := samples()
		proto := ms[int(kind)%len(ms)]
		m := reflect.New(reflect.TypeOf(proto).Elem()).Interface().(Message)
		if err := Unmarshal(b, m); err != nil {
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("error %v does not wrap ErrDecode", err)
			}
			return
		}
		// What decodes re-encodes to the same bytes.
		if got := Marshal(m); !bytes.Equal(got, b) {
			t.Fatalf("%T: re-encoded %x, input %x", m, got, b)
		}
	})
}

// A create's mark (FeatCreateMark) is an optional trailing field: a
// create without one encodes as before it existed, one with it round
// trips, and an empty one is refused.
func TestCreateReqMark(t *testing.T) {
	plain := &CreateReq{Path: "f", Mode: 0o100644, GFID: NewGFID(), Flags: 1}
	marked := *plain
	marked.Mark = []int32{1, 0, 0, 0, 1, 0}
	pb, mb := Marshal(plain), Marshal(&marked)
	if len(mb) != len(pb)+4+4*len(marked.Mark) || !bytes.Equal(mb[:len(pb)], pb) {
		t.Fatalf("the mark is not a trailing field: %x vs %x", pb, mb)
	}
	var got CreateReq
	if err := Unmarshal(mb, &got); err != nil || !reflect.DeepEqual(got.Mark, marked.Mark) {
		t.Fatalf("round trip: %v %v", got.Mark, err)
	}
	if err := Unmarshal(pb, &got); err != nil || got.Mark != nil {
		t.Fatalf("without a mark: %v %v", got.Mark, err)
	}
	if err := Unmarshal(append(pb, 0, 0, 0, 0), &got); !errors.Is(err, ErrDecode) {
		t.Fatalf("an empty mark: %v, want ErrDecode", err)
	}
}

func TestChangelogXattr(t *testing.T) {
	c := []int32{1, 0, 0, 0, 7, -1}
	got, err := DecodeChangelog(EncodeChangelog(c))
	if err != nil || !reflect.DeepEqual(got, c) {
		t.Fatalf("round trip: %v %v", got, err)
	}
	for _, bad := range [][]byte{{1}, make([]byte, 8), make([]byte, 4*MaxChangelog+12)} {
		if _, err := DecodeChangelog(bad); !errors.Is(err, ErrDecode) {
			t.Errorf("DecodeChangelog(%d bytes) = %v, want ErrDecode", len(bad), err)
		}
	}
}

// Changelogs come from bricks: any bytes decode to counters or ErrDecode,
// and what decodes re-encodes to the same bytes.
func FuzzDecodeChangelog(f *testing.F) {
	f.Add(EncodeChangelog([]int32{1, 0, 0, 0, 2, 0}))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeChangelog(b)
		if err != nil {
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("error %v does not wrap ErrDecode", err)
			}
			return
		}
		if got := EncodeChangelog(c); !bytes.Equal(got, b) {
			t.Fatalf("re-encoded %x, input %x", got, b)
		}
	})
}

// A listing's extended attribute flags follow its entries: a reply
// without them (an older brick's) decodes with none known, and flags that
// do not match the entries are refused.
func TestReaddirReplyXattrs(t *testing.T) {
	a := Attr{Ino: 5, Mode: 0o100644}
	m := &ReaddirReply{Entries: []Dirent{
		{Name: "a", Cookie: 1, Attr: a, Xattrs: XattrsKnown},
		{Name: "b", Cookie: 2, Attr: a, Xattrs: XattrsKnown | 1<<1},
	}, EOF: true}
	b := Marshal(m)
	var got ReaddirReply
	if err := Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&got, m) {
		t.Fatalf("got %+v, want %+v", got, m)
	}
	old := Marshal(&ReaddirReply{Entries: []Dirent{{Name: "a", Cookie: 1, Attr: a}, {Name: "b", Cookie: 2, Attr: a}}, EOF: true})
	if !bytes.HasPrefix(b, old) {
		t.Fatal("the flags are not a suffix")
	}
	got = ReaddirReply{}
	if err := Unmarshal(old, &got); err != nil || got.Entries[1].Xattrs != 0 {
		t.Fatalf("reply without flags: %v, %+v", err, got)
	}
	bad := append(slices.Clone(old), 0, 0, 0, 1, XattrsKnown) // one flag for two entries
	if err := Unmarshal(bad, &ReaddirReply{}); !errors.Is(err, ErrDecode) {
		t.Fatalf("flags for the wrong number of entries: %v", err)
	}
}

// Whatever a brick sends, SplitParentAttr and SplitFileAttr never fail
// hard: either the reply is left as it is, or it is a body and attributes
// that AppendParentAttr (AppendFileAttr) puts back together into the same
// bytes.
func FuzzSplitParentAttr(f *testing.F) {
	f.Add([]byte{})
	f.Add(AppendParentAttr(Marshal(&OpenReply{Handle: 3}), Attr{Ino: 9, Mode: 0o40755, Nlink: 3}))
	f.Add(AppendParentAttr(nil, Attr{}))
	f.Add(AppendFileAttr(Marshal(&Changelog{Counters: []int32{0, 0, 0}}), Attr{Ino: 7, Mode: 0o100644, Size: 4096}))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, c := range []struct {
			split func([]byte) ([]byte, Attr, bool)
			join  func([]byte, Attr) []byte
		}{{SplitParentAttr, AppendParentAttr}, {SplitFileAttr, AppendFileAttr}} {
			body, a, ok := c.split(b)
			if !ok {
				if !bytes.Equal(body, b) {
					t.Fatal("a reply without attributes was changed")
				}
				continue
			}
			if got := c.join(slices.Clone(body), a); !bytes.Equal(got, b) {
				t.Fatalf("split and joined %x, input %x", got, b)
			}
		}
	})
}

// A replica set's copies each report the directory's attributes; the one
// picked is passed on, tagged as the layer above tags the call, and a
// set that cannot tell passes on a miss.
func TestParentCopies(t *testing.T) {
	base := Attr{Mtime: 1, Ctime: 1, Size: 10, Nlink: 2}
	copyAttr := []Attr{{Mtime: 5, Ctime: 6, Size: 40, Nlink: 3}, {Mtime: 7, Ctime: 8, Size: 50, Nlink: 3}}
	run := func(ctx context.Context, pick int, ok bool) {
		ctxs, done := ParentCopies(ctx, 2)
		for i, c := range ctxs {
			p, _ := c.Value(parentAttrsKey{}).(*ParentAttrs)
			if p == nil {
				t.Fatal("a copy's context gathers nothing")
			}
			p.add(c, copyAttr[i], true)
		}
		done(pick, ok)
	}
	ctx, pa := WithParentAttrs(context.Background())
	run(ctx, 1, true)
	got, ok := pa.Merge(base)
	if want := (Attr{Mtime: 7, Ctime: 8, Size: 50, Nlink: 3}); !ok || got != want {
		t.Fatalf("picked copy 1: %+v %v, want %+v", got, ok, want)
	}
	// Under distribute: subvolume 0's report is not the one that gives
	// the size.
	ctx, pa = WithParentAttrs(context.Background())
	run(ParentSub(ctx, 0, 1), 0, true)
	got, ok = pa.Merge(base)
	if want := (Attr{Mtime: 5, Ctime: 6, Size: 10, Nlink: 2}); !ok || got != want {
		t.Fatalf("tagged: %+v %v, want %+v", got, ok, want)
	}
	ctx, pa = WithParentAttrs(context.Background())
	run(ctx, 0, false)
	if _, ok := pa.Merge(base); ok {
		t.Fatal("copies that disagree gave attributes")
	}
	// Without a collector every copy's context is the caller's.
	plain := context.Background()
	ctxs, done := ParentCopies(plain, 3)
	for _, c := range ctxs {
		if c != plain {
			t.Fatal("a context was made for nothing to gather")
		}
	}
	done(0, true)
}

// Whatever a brick sends, SplitLocalFD leaves a reply without a
// descriptor as it is, or splits it into a body and a descriptor that
// AppendLocalFD puts back together into the same bytes; after a
// create's reply it comes off before the directory's attributes do.
func FuzzSplitLocalFD(f *testing.F) {
	f.Add([]byte{})
	f.Add(AppendLocalFD(Marshal(&OpenReply{Handle: 3}), LocalFDReply{FD: 9, Dev: 2049, Ino: 12, GFID: NewGFID()}))
	f.Add(AppendParentAttr(AppendLocalFD(Marshal(&OpenReply{Handle: 4}), LocalFDReply{FD: 10}), Attr{Ino: 1}))
	f.Fuzz(func(t *testing.T, b []byte) {
		body, l, ok := SplitLocalFD(b)
		if !ok {
			if !bytes.Equal(body, b) {
				t.Fatal("a reply without a descriptor was changed")
			}
			return
		}
		if got := AppendLocalFD(slices.Clone(body), l); !bytes.Equal(got, b) {
			t.Fatalf("split and joined %x, input %x", got, b)
		}
	})
}

func TestSplitLocalFDAfterParentAttr(t *testing.T) {
	want := LocalFDReply{FD: 7, Dev: 1, Ino: 2, GFID: NewGFID()}
	reply := AppendParentAttr(AppendLocalFD(Marshal(&OpenReply{Handle: 5}), want), Attr{Ino: 3})
	rest, _, ok := SplitParentAttr(reply)
	if !ok {
		t.Fatal("no directory attributes")
	}
	rest, got, ok := SplitLocalFD(rest)
	var r OpenReply
	if !ok || got != want || Unmarshal(rest, &r) != nil || r.Handle != 5 {
		t.Fatalf("descriptor %+v %v, reply %+v", got, ok, r)
	}
}
