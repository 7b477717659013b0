package fop

import (
	"reflect"
	"testing"
)

func TestLkRoundTrip(t *testing.T) {
	in := &LkReq{Handle: 3, Owner: 0xdeadbeef, Lk: Lk{Start: 1 << 40, End: LkEOF, Type: LockWrite, Pid: 99}, Flags: LkFlock}
	var out LkReq
	if err := Unmarshal(Marshal(in), &out); err != nil || !reflect.DeepEqual(*in, out) {
		t.Fatalf("got %+v %v, want %+v", out, err, *in)
	}
	lk := &Lk{Start: 5, End: 9, Type: LockRead, Pid: 1}
	var lk2 Lk
	if err := Unmarshal(Marshal(lk), &lk2); err != nil || lk2 != *lk {
		t.Fatalf("got %+v %v", lk2, err)
	}
	if err := Unmarshal(Marshal(in)[:20], &out); err == nil {
		t.Fatal("a truncated request decoded")
	}
}
