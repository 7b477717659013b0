package distribute

import (
	"context"
	"errors"
	"syscall"
	"testing"

	"github.com/cais-platform/cais/fop"
)

// fakeTree is a subvolume with a few directories, each with its own
// times and entries; renames are recorded.
type fakeTree struct {
	fop.Volume     // other calls are not used here and would panic
	index      int // which of two subvolumes
	dirs       map[string]fop.Attr
	entries    map[string][]string
	renamed    []string
}

func (f *fakeTree) Lookup(ctx context.Context, p string) (fop.Entry, error) {
	a, ok := f.dirs[p]
	if !ok {
		return fop.Entry{}, syscall.ENOENT
	}
	return fop.Entry{Attr: a, Layout: Even(2, 1).EncodeRange(f.index)}, nil
}

func (f *fakeTree) Readdir(ctx context.Context, p string, pos fop.Pos, max uint32) (fop.ReaddirReply, error) {
	if _, ok := f.dirs[p]; !ok {
		return fop.ReaddirReply{}, syscall.ENOENT
	}
	var r fop.ReaddirReply
	for _, n := range f.entries[p] {
		r.Entries = append(r.Entries, fop.Dirent{Name: n, Attr: fop.Attr{Mode: syscall.S_IFREG}})
	}
	r.EOF = true
	return r, nil
}

func (f *fakeTree) Rename(ctx context.Context, from, to string, flags uint32) error {
	f.renamed = append(f.renamed, from+"->"+to)
	return nil
}

func dirAttrAt(mtime, ctime, atime int64) fop.Attr {
	return fop.Attr{Mode: syscall.S_IFDIR | 0o755, Nlink: 2, Mtime: mtime, Ctime: ctime, Atime: atime}
}

// A directory's times are the latest of its copies': an entry made on one
// subvolume changes that copy's times only.
func TestDirectoryTimesMerged(t *testing.T) {
	a := &fakeTree{dirs: map[string]fop.Attr{"": dirAttrAt(1, 1, 1), "d": dirAttrAt(10, 20, 30)}}
	b := &fakeTree{index: 1, dirs: map[string]fop.Attr{"": dirAttrAt(1, 1, 1), "d": dirAttrAt(15, 12, 31)}}
	v := New([]fop.Volume{a, b})
	for _, get := range []func() (fop.Attr, error){
		func() (fop.Attr, error) { return v.Getattr(context.Background(), "d") },
		func() (fop.Attr, error) { e, err := v.Lookup(context.Background(), "d"); return e.Attr, err },
	} {
		got, err := get()
		if err != nil {
			t.Fatal(err)
		}
		if got.Mtime != 15 || got.Ctime != 20 || got.Atime != 31 || got.Nlink != 2 {
			t.Fatalf("merged attributes: %+v", got)
		}
	}
}

// A directory replaces only a directory empty on every subvolume: one
// entry on any of them refuses the rename before any subvolume renames.
func TestRenameDirOverNonEmpty(t *testing.T) {
	dirs := func() map[string]fop.Attr {
		return map[string]fop.Attr{"": dirAttrAt(1, 1, 1), "from": dirAttrAt(1, 1, 1), "to": dirAttrAt(1, 1, 1)}
	}
	for i := range 2 {
		a := &fakeTree{dirs: dirs(), entries: map[string][]string{}}
		b := &fakeTree{index: 1, dirs: dirs(), entries: map[string][]string{}}
		[]*fakeTree{a, b}[i].entries["to"] = []string{"file"}
		v := New([]fop.Volume{a, b})
		err := v.Rename(context.Background(), "from", "to", 0)
		if !errors.Is(err, syscall.ENOTEMPTY) {
			t.Fatalf("entry on subvolume %d: rename gave %v, want ENOTEMPTY", i, err)
		}
		if len(a.renamed)+len(b.renamed) != 0 {
			t.Fatalf("renamed anyway: %v %v", a.renamed, b.renamed)
		}
	}
	a := &fakeTree{dirs: dirs()}
	b := &fakeTree{index: 1, dirs: dirs()}
	if err := New([]fop.Volume{a, b}).Rename(context.Background(), "from", "to", 0); err != nil {
		t.Fatal(err)
	}
	if len(a.renamed) != 1 || len(b.renamed) != 1 {
		t.Fatalf("an empty target: renamed %v %v", a.renamed, b.renamed)
	}
}

// mkdirTree answers Mkdir with the times it is set to.
type mkdirTree struct {
	*fakeTree
	made fop.Attr
}

func (m *mkdirTree) Mkdir(ctx context.Context, req *fop.CreateReq) (fop.Attr, error) {
	m.dirs[req.Path] = m.made
	return m.made, nil
}

// A new directory's attributes are, as a getattr's, the latest times of
// its copies: the copies are made one after the other, and may fall on
// either side of a clock tick.
func TestMkdirTimesMerged(t *testing.T) {
	a := &mkdirTree{fakeTree: &fakeTree{}}
	b := &mkdirTree{fakeTree: &fakeTree{index: 1}}
	v := New([]fop.Volume{a, b})
	// Whichever copy the name hashes to, the earlier or the later.
	for _, early := range []*mkdirTree{a, b} {
		for _, m := range []*mkdirTree{a, b} {
			m.made, m.dirs = dirAttrAt(44, 44, 44), map[string]fop.Attr{"": dirAttrAt(1, 1, 1)}
		}
		early.made = dirAttrAt(40, 40, 40)
		got, err := v.Mkdir(context.Background(), &fop.CreateReq{Path: "new", Mode: syscall.S_IFDIR | 0o755, GFID: fop.NewGFID()})
		if err != nil {
			t.Fatal(err)
		}
		if got.Mtime != 44 || got.Ctime != 44 || got.Atime != 44 {
			t.Fatalf("mkdir's attributes %+v, want the later copy's times (44)", got)
		}
		v.forget("")
	}
}
