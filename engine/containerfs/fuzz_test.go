package containerfs

import (
	"bytes"
	"context"
	"io"
	"testing"
)

// A docker cp path comes from the client: whatever it is, what Stat and
// Archive reach stays inside the container's root (the sandbox's
// outside/secret is never read).
func FuzzArchivePath(f *testing.F) {
	for _, p := range []string{"/data", "/up/secret", "/abs/../../outside/secret", "../outside", "/data/link", "/abs/abs/etc", "/"} {
		f.Add(p)
	}
	_, root := sandbox(f)
	f.Fuzz(func(t *testing.T, p string) {
		clean, err := CleanPath(p)
		if err != nil {
			return
		}
		Stat(root, clean)
		var buf bytes.Buffer
		Archive(context.Background(), &buf, root, clean, nil)
		if bytes.Contains(buf.Bytes(), []byte("host secret")) {
			t.Fatalf("path %q read a file outside the root", p)
		}
		io.Discard.Write(buf.Bytes())
	})
}
