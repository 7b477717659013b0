package distribute

import (
	"context"
	"fmt"
	"sort"
	"syscall"
	"testing"

	"github.com/cais-platform/cais/fop"
)

// fakeDir is a subvolume holding one directory listing whose cookies are
// large hash-like values, as ext4 gives.
type fakeDir struct {
	fop.Volume // other calls are not used here and would panic
	names      []string
	dirs       map[string]bool
	linkto     map[string]bool
}

func cookieOf(i int) uint64 { return 0x7000000000000000 | uint64(i+1)*0x0123456789abc }

func (f *fakeDir) Readdir(ctx context.Context, p string, pos fop.Pos, max uint32) (fop.ReaddirReply, error) {
	start := 0
	if pos.Cookie != 0 {
		start = -1
		for i := range f.names {
			if cookieOf(i) == pos.Cookie {
				start = i + 1
			}
		}
		if start < 0 {
			return fop.ReaddirReply{}, syscall.EINVAL
		}
	}
	var out fop.ReaddirReply
	for i := start; i < len(f.names) && len(out.Entries) < int(max); i++ {
		mode := uint32(syscall.S_IFREG | 0o644)
		if f.dirs[f.names[i]] {
			mode = syscall.S_IFDIR | 0o755
		}
		e := fop.Dirent{Name: f.names[i], Cookie: cookieOf(i), Attr: fop.Attr{Mode: mode}}
		if f.linkto[f.names[i]] {
			e.LinkTo = "0"
		}
		out.Entries = append(out.Entries, e)
	}
	out.EOF = start+len(out.Entries) >= len(f.names)
	return out, nil
}

// Listing a distributed directory in small batches returns every file once,
// directories once, and no pointer entries, whatever the bricks' cookies.
func TestReaddirMergesSubvolumes(t *testing.T) {
	a := &fakeDir{names: []string{"d", "a1", "a2", "a3"}, dirs: map[string]bool{"d": true}}
	b := &fakeDir{names: []string{"d", "b1", "ptr", "b2"}, dirs: map[string]bool{"d": true}, linkto: map[string]bool{"ptr": true}}
	c := &fakeDir{names: []string{"d"}, dirs: map[string]bool{"d": true}}
	v := New([]fop.Volume{a, b, c})
	for _, batch := range []uint32{1, 2, 3, 100} {
		var got []string
		var pos fop.Pos
		for round := 0; ; round++ {
			if round > 100 {
				t.Fatal("listing does not end")
			}
			r, err := v.Readdir(context.Background(), "x", pos, batch)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range r.Entries {
				got = append(got, e.Name)
			}
			if n := len(r.Entries); n > 0 {
				pos = r.Entries[n-1].Pos()
			}
			if r.EOF {
				break
			}
		}
		sort.Strings(got)
		if fmt.Sprint(got) != "[a1 a2 a3 b1 b2 d]" {
			t.Fatalf("batch %d: %v", batch, got)
		}
	}
}
