package fop

import (
	"reflect"
	"testing"
)

func TestFsetattrReqRoundTrip(t *testing.T) {
	in := &FsetattrReq{Handle: 1<<56 | 7, Attr: SetattrReq{Valid: SetSize | SetMode, Mode: 0o600, Size: 5 << 30, Mtime: -1}}
	var out FsetattrReq
	if err := Unmarshal(Marshal(in), &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*in, out) {
		t.Fatalf("got %+v, want %+v", out, *in)
	}
	if err := Unmarshal(Marshal(in)[:10], &out); err == nil {
		t.Fatal("a truncated request decoded")
	}
}

func TestFxattrReqRoundTrip(t *testing.T) {
	in := &FxattrReq{Handle: 5, Name: "user.k", Value: []byte("v"), Flags: 1}
	var out FxattrReq
	if err := Unmarshal(Marshal(in), &out); err != nil || !reflect.DeepEqual(*in, out) {
		t.Fatalf("got %+v %v, want %+v", out, err, *in)
	}
}
