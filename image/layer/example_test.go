package layer_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/image/layer"
)

// A hostile archive: a symlink to "/" and a write through it lands inside
// the target, and "../" is refused with the entry named.
func ExampleUnpack() {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "escape", Typeflag: tar.TypeSymlink, Linkname: "/"})
	tw.WriteHeader(&tar.Header{Name: "escape/etc/motd", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2})
	tw.Write([]byte("hi"))
	tw.WriteHeader(&tar.Header{Name: "../outside", Typeflag: tar.TypeReg, Mode: 0o644})
	tw.Close()

	dir, _ := os.MkdirTemp("", "layer-example-")
	defer os.RemoveAll(dir)
	_, err := layer.Unpack(context.Background(), &buf, dir, layer.CopyOptions("", &layer.Owner{UID: os.Getuid(), GID: os.Getgid()}))
	fmt.Println(err)
	fmt.Println(errors.Is(err, errdefs.ErrInvalid))
	b, _ := os.ReadFile(dir + "/etc/motd")
	fmt.Printf("%s\n", b)
	// Output:
	// layer entry "../outside": path escapes the target directory: invalid request
	// true
	// hi
}
