package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		ents []ent
		want error
	}{
		{"plain", []ent{{name: "d/", typ: tar.TypeDir}, {name: "d/f", body: "x"}, {name: "h", typ: tar.TypeLink, link: "d/f"}, {name: "s", typ: tar.TypeSymlink, link: "/etc"}}, nil},
		{"dotdot", []ent{{name: "../evil", body: "x"}}, ErrEscape},
		{"device", []ent{{name: "dev/sda", typ: tar.TypeBlock}}, ErrDevice},
		{"hard link dotdot", []ent{{name: "h", typ: tar.TypeLink, link: "../../etc/shadow"}}, ErrEscape},
		{"hard link absolute", []ent{{name: "h", typ: tar.TypeLink, link: "/etc/shadow"}}, ErrLinkTarget},
		{"hard link to dir", []ent{{name: "d/", typ: tar.TypeDir}, {name: "h", typ: tar.TypeLink, link: "d"}}, ErrLinkTarget},
		{"hard link to replaced", []ent{{name: "d/f", body: "x"}, {name: "d", body: "now a file"}, {name: "h", typ: tar.TypeLink, link: "d/f"}}, ErrLinkTarget},
	} {
		err := Check(context.Background(), bytes.NewReader(makeTar(t, tc.ents...)), LayerOptions())
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if err := Check(context.Background(), bytes.NewReader(makeTar(t, ent{name: "dev/sda", typ: tar.TypeBlock})), Options{Devices: DevicesSkip}); err != nil {
		t.Errorf("device, skipped: %v", err)
	}
	if err := Check(context.Background(), bytes.NewReader([]byte("not a tar at all, not at all, not at all")), LayerOptions()); err == nil {
		t.Error("garbage accepted")
	}
}

// FuzzCheck: Check never panics, and what it accepts Unpack unpacks.
func FuzzCheck(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		if Check(context.Background(), bytes.NewReader(data), LayerOptions()) != nil {
			return
		}
		dir := t.TempDir()
		if _, err := Unpack(context.Background(), bytes.NewReader(data), dir, LayerOptions()); err != nil && errors.Is(err, ErrEscape) {
			t.Fatalf("Check accepted what Unpack refuses as escaping: %v", err)
		}
	})
}
