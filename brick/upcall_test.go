package brick

import (
	"reflect"
	"testing"

	"github.com/cais-platform/cais/fop"
)

func TestChanges(t *testing.T) {
	g := fop.NewGFID()
	handles := func(h uint64) fop.GFID {
		if h == 7 {
			return g
		}
		return fop.GFID{}
	}
	entry := func(p string) fop.Upcall { return fop.Upcall{Flags: fop.UpcallEntry, Path: p} }
	for _, tc := range []struct {
		name string
		op   uint16
		req  fop.Message
		want []fop.Upcall
	}{
		{"create", fop.OpCreate, &fop.CreateReq{Path: "d/f"}, []fop.Upcall{entry("d/f")}},
		{"mkdir", fop.OpMkdir, &fop.CreateReq{Path: "d/s"}, []fop.Upcall{entry("d/s")}},
		{"unlink", fop.OpUnlink, &fop.PathReq{Path: "d/f"}, []fop.Upcall{entry("d/f")}},
		{"unlink in one call", fop.OpUnlinkFile, &fop.PathReq{Path: "d/f"}, []fop.Upcall{entry("d/f")}},
		{"rename", fop.OpRename, &fop.RenameReq{From: "a", To: "b/c"}, []fop.Upcall{entry("a"), entry("b/c")}},
		{"link", fop.OpLink, &fop.RenameReq{From: "a", To: "b"}, []fop.Upcall{entry("b"), {Flags: fop.UpcallAttr, Path: "a"}}},
		{"chmod", fop.OpSetattr, &fop.SetattrReq{Path: "f", Valid: fop.SetMode}, []fop.Upcall{{Flags: fop.UpcallAttr, Path: "f"}}},
		{"truncate", fop.OpSetattr, &fop.SetattrReq{Path: "f", Valid: fop.SetSize}, []fop.Upcall{{Flags: fop.UpcallData, Path: "f"}}},
		{"ftruncate", fop.OpFsetattr, &fop.FsetattrReq{Handle: 7, Attr: fop.SetattrReq{Valid: fop.SetSize}}, []fop.Upcall{{Flags: fop.UpcallData, GFID: g}}},
		{"write", fop.OpWrite, &fop.WriteReq{Handle: 7, Data: []byte("x")}, []fop.Upcall{{Flags: fop.UpcallData, GFID: g}}},
		{"replicate's first write", fop.OpWriteDirty, &fop.WriteDirtyReq{Handle: 7, Path: "f", Data: []byte("x")}, []fop.Upcall{{Flags: fop.UpcallData, GFID: g}}},
		{"write, unknown handle", fop.OpWrite, &fop.WriteReq{Handle: 8, Data: []byte("x")}, nil},
		// Posted after the write through the descriptor: the handle may
		// be released by the time the brick serves it.
		{"local write, handle released", fop.OpLocalWrote, &fop.LocalWroteReq{Handle: 8, GFID: g, Length: 1}, []fop.Upcall{{Flags: fop.UpcallData, GFID: g}}},
		{"user xattr", fop.OpSetxattr, &fop.XattrReq{Path: "f", Name: "user.a"}, []fop.Upcall{{Flags: fop.UpcallAttr, Path: "f"}}},
		{"replicate's own xattr", fop.OpSetxattr, &fop.XattrReq{Path: "f", Name: "trusted.afr.x"}, nil},
		{"read", fop.OpRead, &fop.ReadReq{Handle: 7}, nil},
	} {
		got := changes(tc.op, fop.Marshal(tc.req), handles)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
	// A request that does not decode makes no upcall.
	if got := changes(fop.OpRename, []byte{1, 2}, handles); got != nil {
		t.Errorf("garbled rename: %+v", got)
	}
}
