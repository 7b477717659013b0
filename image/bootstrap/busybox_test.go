package bootstrap

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/cais-platform/cais/image/store"
)

func TestBusybox(t *testing.T) {
	const bb = "/bin/busybox"
	if _, err := os.Stat(bb); err != nil {
		t.Skip("busybox-static is not installed")
	}
	ctx := context.Background()
	var a, b bytes.Buffer
	if err := BusyboxArchive(ctx, &a, bb); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := st.Load(ctx, bytes.NewReader(a.Bytes()))
	if err != nil || len(loaded) != 1 || loaded[0].Names[0] != "busybox:latest" {
		t.Fatalf("load: %+v %v", loaded, err)
	}
	img, err := st.Find("busybox")
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := st.Layers(ctx, img.Target)
	if err != nil || len(dirs) != 1 {
		t.Fatalf("layers %v %v", dirs, err)
	}
	for _, p := range []string{"bin/busybox", "bin/sh", "bin/echo", "etc/passwd"} {
		if _, err := os.Stat(filepath.Join(dirs[0], p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if target, _ := os.Readlink(filepath.Join(dirs[0], "bin/sh")); target != "busybox" {
		t.Errorf("bin/sh -> %q", target)
	}
	// The same binary gives the same image.
	if err := BusyboxArchive(ctx, &b, bb); err != nil {
		t.Fatal(err)
	}
	again, err := st.Load(ctx, &b)
	if err != nil || again[0].ID != loaded[0].ID {
		t.Fatalf("second build: %v %v vs %v", err, again, loaded)
	}
}
