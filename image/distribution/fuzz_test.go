package distribution

import (
	"encoding/base64"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// FuzzParseChallenges: any WWW-Authenticate header parses without
// panicking, schemes lower-cased and non-empty.
func FuzzParseChallenges(f *testing.F) {
	for _, s := range []string{
		`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"`,
		`Basic realm="cais registry"`, `Basic realm="a \"q\"", Bearer realm=x`, `"`, `a=b=c,,`, "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		for _, c := range ParseChallenges([]string{h}) {
			if c.Scheme == "" || c.Params == nil {
				t.Fatalf("challenge %+v from %q", c, h)
			}
		}
	})
}

// FuzzDecodeAuthHeader: any header decodes or is refused, never panics.
func FuzzDecodeAuthHeader(f *testing.F) {
	f.Add(base64.URLEncoding.EncodeToString([]byte(`{"username":"a","password":"b","serveraddress":"localhost:5000"}`)))
	f.Add(base64.URLEncoding.EncodeToString([]byte(`{"auth":"YTpi"}`)))
	f.Add("e30=")
	f.Add("!!")
	f.Fuzz(func(t *testing.T, h string) {
		DecodeAuthHeader(h)
	})
}

// FuzzParseManifest: whatever a registry sends, a manifest that parses
// has only valid digests and bounded sizes.
func FuzzParseManifest(f *testing.F) {
	d := digest.FromString("x")
	f.Add("", `{"schemaVersion":2,"mediaType":"`+ocispec.MediaTypeImageManifest+`","config":{"mediaType":"`+ocispec.MediaTypeImageConfig+`","digest":"`+d.String()+`","size":2},"layers":[{"mediaType":"`+ocispec.MediaTypeImageLayerGzip+`","digest":"`+d.String()+`","size":3}]}`)
	f.Add(ocispec.MediaTypeImageIndex, `{"schemaVersion":2,"manifests":[{"mediaType":"`+ocispec.MediaTypeImageManifest+`","digest":"`+d.String()+`","size":5,"platform":{"os":"linux","architecture":"amd64"}}]}`)
	f.Add("application/json", `{"schemaVersion":1}`)
	f.Add("", `[]`)
	f.Fuzz(func(t *testing.T, ct, body string) {
		m, err := ParseManifest(ct, []byte(body))
		if err != nil {
			return
		}
		all := append(append([]ocispec.Descriptor{}, m.Layers...), m.Manifests...)
		if !m.IsIndex() {
			all = append(all, m.Config)
		}
		for _, x := range all {
			if x.Digest.Validate() != nil || x.Size < 0 {
				t.Fatalf("accepted descriptor %+v", x)
			}
		}
	})
}
