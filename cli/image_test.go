package cli

import (
	"strings"
	"testing"
)

func TestDecodeStream(t *testing.T) {
	for _, tc := range []struct {
		in, out, err string
	}{
		{"OK", "OK", ""},
		{`{"stream":"Loaded image: busybox:latest\n"}` + "\n", "Loaded image: busybox:latest\n", ""},
		{`{"status":"sha256:abc"}`, "sha256:abc\n", ""},
		{`{"stream":"a\n"}{"errorDetail":{"message":"no space left"},"error":"no space left"}`, "a\n", "no space left"},
		{`{"stream":"a\n"}{"stre`, "a\n", "reading the engine's answer"},
	} {
		out, err := decodeStream([]byte(tc.in))
		if out != tc.out || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: %q, %v; want %q, %q", tc.in, out, err, tc.out, tc.err)
		}
	}
}
