package registry

import (
	"path"
	"strings"
	"testing"
)

// FuzzParseContentRange: a parsed range is well-formed, and a range the
// parser accepts prints back to itself.
func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"0-0", "0-5", "bytes 10-15", "bytes=1-2", "5-4", "-1-2", "+1-2", "1-", "9223372036854775807-9223372036854775807", "a-b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, length, err := ParseContentRange(s)
		if err != nil {
			return
		}
		if start < 0 || length < 1 || start+length-1 < start {
			t.Fatalf("%q: start %d length %d", s, start, length)
		}
	})
}

// FuzzValidName: every name the registry accepts is a clean relative path
// with no upper case, no "..", no component starting with '_' or '.'.
func FuzzValidName(f *testing.F) {
	for _, s := range []string{"a", "library/busybox", "a/../b", "..", "a.b", "a__b", "a---b", "A", "a/_layers", "a/.b", "a//b", "a/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !ValidName(s) {
			return
		}
		if path.Clean(s) != s || path.IsAbs(s) || strings.Contains(s, "..") || strings.ToLower(s) != s {
			t.Fatalf("accepted %q", s)
		}
		for _, c := range strings.Split(s, "/") {
			if c == "" || c[0] == '_' || c[0] == '.' || c[0] == '-' {
				t.Fatalf("accepted %q (component %q)", s, c)
			}
		}
	})
}

// FuzzParseManifest: the manifest parser never panics, and a manifest it
// accepts as an image has a config and valid descriptor digests.
func FuzzParseManifest(f *testing.F) {
	f.Add("application/vnd.oci.image.manifest.v1+json", []byte(`{"schemaVersion":2,"config":{"mediaType":"a","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}`))
	f.Add("", []byte(`{"schemaVersion":2,"manifests":[]}`))
	f.Add("application/vnd.oci.image.index.v1+json", []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`))
	f.Add("text/plain; charset=\"", []byte(`{}`))
	f.Add("application/vnd.docker.distribution.manifest.v2+json", []byte(`{"schemaVersion":2,"config":{"digest":"md5:x"}}`))
	f.Fuzz(func(t *testing.T, ct string, b []byte) {
		doc, mt, err := parseManifest(ct, b)
		if err != nil {
			if _, ok := err.(*apiError); !ok {
				t.Fatalf("error %v is not an API error", err)
			}
			return
		}
		switch kindOf(mt) {
		case kindImage:
			if doc.Config == nil || doc.Config.Digest.Validate() != nil {
				t.Fatalf("image manifest accepted without a valid config: %s", b)
			}
			for _, l := range doc.Layers {
				if l.Digest.Validate() != nil {
					t.Fatalf("layer digest %q accepted", l.Digest)
				}
			}
		case kindIndex:
			for _, m := range doc.Manifests {
				if m.Digest.Validate() != nil {
					t.Fatalf("child digest %q accepted", m.Digest)
				}
			}
		}
	})
}

// FuzzParsePath: a routed path's repository and argument never contain
// what would let them climb out of the store.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"/v2/", "/v2/a/b/blobs/uploads/", "/v2/a/blobs/uploads/x", "/v2/a/manifests/t", "/v2/blobs/blobs/sha256:0", "/v2/a/tags/list", "/v2/a/referrers/sha256:0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		rt, ok := parsePath(p)
		if !ok || rt.kind == "base" {
			return
		}
		if strings.Contains(rt.arg, "/") {
			t.Fatalf("%q: argument %q has a slash", p, rt.arg)
		}
		if "/v2/"+rt.name != p[:len("/v2/")+len(rt.name)] {
			t.Fatalf("%q: name %q is not its prefix", p, rt.name)
		}
	})
}
