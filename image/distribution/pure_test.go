package distribution

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/image/store"
)

func endpointURLs(eps []Endpoint) []string {
	var out []string
	for _, e := range eps {
		s := e.URL.String()
		if e.Mirror {
			s += " mirror"
		}
		if e.SkipVerify {
			s += " skip-verify"
		}
		out = append(out, s)
	}
	return out
}

func TestEndpoints(t *testing.T) {
	c := Config{Insecure: []string{"reg.lan:5000", "10.1.0.0/16", "plain.example"}, Mirrors: []string{"https://mirror.example", "http://127.0.0.1:5001/"}}
	for domain, want := range map[string][]string{
		"docker.io":         {"https://mirror.example mirror", "http://127.0.0.1:5001 mirror", "https://registry-1.docker.io"},
		"index.docker.io":   {"https://mirror.example mirror", "http://127.0.0.1:5001 mirror", "https://registry-1.docker.io"},
		"localhost:5000":    {"https://localhost:5000 skip-verify", "http://localhost:5000"},
		"127.0.0.9:5000":    {"https://127.0.0.9:5000 skip-verify", "http://127.0.0.9:5000"},
		"[::1]:5000":        {"https://[::1]:5000 skip-verify", "http://[::1]:5000"},
		"reg.lan:5000":      {"https://reg.lan:5000 skip-verify", "http://reg.lan:5000"},
		"reg.lan:5001":      {"https://reg.lan:5001"},
		"plain.example:443": {"https://plain.example:443 skip-verify", "http://plain.example:443"},
		"10.1.2.3:5000":     {"https://10.1.2.3:5000 skip-verify", "http://10.1.2.3:5000"},
		"10.2.2.3:5000":     {"https://10.2.2.3:5000"},
		"quay.io":           {"https://quay.io"},
	} {
		eps, err := c.Endpoints(domain)
		if err != nil {
			t.Fatalf("%s: %v", domain, err)
		}
		if got := endpointURLs(eps); !reflect.DeepEqual(got, want) {
			t.Errorf("Endpoints(%q) = %q, want %q", domain, got, want)
		}
	}
	if _, err := (Config{Mirrors: []string{"ftp://x"}}).Endpoints("docker.io"); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("bad mirror: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{Insecure: []string{"reg:5000", "reg", "10.0.0.0/8"}, Mirrors: []string{"https://m.example", "http://127.0.0.1:5000/"}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Config{
		{Insecure: []string{"http://reg:5000"}},
		{Insecure: []string{""}},
		{Mirrors: []string{"m.example"}},
		{Mirrors: []string{"https://m.example/path"}},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestNormalizeDomain(t *testing.T) {
	for in, want := range map[string]string{
		"https://index.docker.io/v1/": "docker.io", "docker.io": "docker.io", "registry-1.docker.io": "docker.io",
		"localhost:5000": "localhost:5000", "http://127.0.0.1:5000/": "127.0.0.1:5000", "Reg.Example:443": "reg.example:443", "": "",
	} {
		if got := NormalizeDomain(in); got != want {
			t.Errorf("NormalizeDomain(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseChallenges(t *testing.T) {
	got := ParseChallenges([]string{
		`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"`,
		`Basic realm="cais registry"`,
		`Basic realm="a \"quoted\" realm", Bearer realm=https://t.example/token, error="insufficient_scope"`,
		`Negotiate`,
	})
	want := []Challenge{
		{"bearer", map[string]string{"realm": "https://auth.docker.io/token", "service": "registry.docker.io", "scope": "repository:library/busybox:pull"}},
		{"basic", map[string]string{"realm": "cais registry"}},
		{"basic", map[string]string{"realm": `a "quoted" realm`}},
		{"bearer", map[string]string{"realm": "https://t.example/token", "error": "insufficient_scope"}},
		{"negotiate", map[string]string{}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseChallenges:\n got %+v\nwant %+v", got, want)
	}
	if got := ParseChallenges([]string{"", ",,,", `"`}); len(got) != 0 {
		t.Errorf("garbage gave %+v", got)
	}
}

func TestDecodeAuthHeader(t *testing.T) {
	js := `{"username":"alice","password":"s3cret","serveraddress":"localhost:5000"}`
	for _, enc := range []*base64.Encoding{base64.URLEncoding, base64.RawURLEncoding, base64.StdEncoding} {
		a, err := DecodeAuthHeader(enc.EncodeToString([]byte(js)))
		if err != nil || a.Username != "alice" || a.Password != "s3cret" || a.ServerAddress != "localhost:5000" {
			t.Errorf("decode: %+v %v", a, err)
		}
	}
	// The CLI's config file form: auth only.
	b, _ := json.Marshal(AuthConfig{Auth: base64.StdEncoding.EncodeToString([]byte("bob:pw:with:colons"))})
	a, err := DecodeAuthHeader(base64.URLEncoding.EncodeToString(b))
	if err != nil || a.Username != "bob" || a.Password != "pw:with:colons" {
		t.Errorf("auth field: %+v %v", a, err)
	}
	if a, err := DecodeAuthHeader(""); err != nil || a != (AuthConfig{}) {
		t.Errorf("empty: %+v %v", a, err)
	}
	for _, bad := range []string{"!!!", base64.URLEncoding.EncodeToString([]byte("not json")), base64.URLEncoding.EncodeToString([]byte(`{"auth":"bm9jb2xvbg=="}`))} {
		if _, err := DecodeAuthHeader(bad); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("DecodeAuthHeader(%q) = %v", bad, err)
		}
	}
}

func manifestJSON(t testing.TB, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseManifest(t *testing.T) {
	d := digest.FromString("x")
	good := map[string]any{"schemaVersion": 2, "mediaType": ocispec.MediaTypeImageManifest,
		"config": map[string]any{"mediaType": ocispec.MediaTypeImageConfig, "digest": d, "size": 10},
		"layers": []any{map[string]any{"mediaType": ocispec.MediaTypeImageLayerGzip, "digest": d, "size": 3}}}
	m, err := ParseManifest("", manifestJSON(t, good))
	if err != nil || m.IsIndex() || m.Config.Digest != d || len(m.Layers) != 1 {
		t.Fatalf("good manifest: %+v %v", m, err)
	}
	// No mediaType in the body: the Content-Type says.
	delete(good, "mediaType")
	if m, err := ParseManifest(store.MediaTypeDockerManifest+"; charset=utf-8", manifestJSON(t, good)); err != nil || m.MediaType != store.MediaTypeDockerManifest {
		t.Errorf("Content-Type: %+v %v", m, err)
	}
	idx := map[string]any{"schemaVersion": 2, "mediaType": ocispec.MediaTypeImageIndex,
		"manifests": []any{map[string]any{"mediaType": ocispec.MediaTypeImageManifest, "digest": d, "size": 5, "platform": map[string]string{"os": "linux", "architecture": "amd64"}}}}
	if m, err := ParseManifest("", manifestJSON(t, idx)); err != nil || !m.IsIndex() || len(m.Manifests) != 1 {
		t.Errorf("index: %+v %v", m, err)
	}
	bad := []map[string]any{
		{"schemaVersion": 1, "mediaType": ocispec.MediaTypeImageManifest},
		{"schemaVersion": 2, "mediaType": "application/x-unknown"},
		{"schemaVersion": 2, "mediaType": ocispec.MediaTypeImageManifest},
		{"schemaVersion": 2, "mediaType": ocispec.MediaTypeImageManifest, "config": map[string]any{"mediaType": "application/x-helm", "digest": d, "size": 1}},
		{"schemaVersion": 2, "mediaType": ocispec.MediaTypeImageManifest, "config": map[string]any{"mediaType": ocispec.MediaTypeImageConfig, "digest": "sha256:zz", "size": 1}},
		{"schemaVersion": 2, "mediaType": ocispec.MediaTypeImageManifest, "config": map[string]any{"mediaType": ocispec.MediaTypeImageConfig, "digest": d, "size": MaxConfigSize + 1}},
		{"schemaVersion": 2, "mediaType": ocispec.MediaTypeImageManifest, "config": map[string]any{"mediaType": ocispec.MediaTypeImageConfig, "digest": d, "size": 1},
			"layers": []any{map[string]any{"mediaType": ocispec.MediaTypeImageLayer, "digest": d, "size": -1}}},
		{"schemaVersion": 2, "mediaType": ocispec.MediaTypeImageIndex, "manifests": []any{map[string]any{"digest": d, "size": MaxManifestSize + 1}}},
	}
	for _, b := range bad {
		if m, err := ParseManifest("", manifestJSON(t, b)); err == nil {
			t.Errorf("accepted %v: %+v", b, m)
		}
	}
	if _, err := ParseManifest("", make([]byte, MaxManifestSize+1)); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("huge manifest: %v", err)
	}
}

func TestPickPlatform(t *testing.T) {
	d1, d2, d3 := digest.FromString("1"), digest.FromString("2"), digest.FromString("3")
	idx := []ocispec.Descriptor{
		{MediaType: ocispec.MediaTypeImageManifest, Digest: d1, Platform: &ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}},
		{MediaType: ocispec.MediaTypeImageManifest, Digest: d3, Platform: &ocispec.Platform{OS: "unknown", Architecture: "unknown"}},
		{MediaType: ocispec.MediaTypeImageManifest, Digest: d2, Platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"}},
	}
	if d, ok := PickPlatform(idx, ocispec.Platform{OS: "linux", Architecture: "amd64"}); !ok || d.Digest != d2 {
		t.Errorf("amd64: %v %v", d.Digest, ok)
	}
	if d, ok := PickPlatform(idx, ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}); !ok || d.Digest != d1 {
		t.Errorf("arm/v7: %v %v", d.Digest, ok)
	}
	if _, ok := PickPlatform(idx, ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}); ok {
		t.Error("arm/v6 matched v7")
	}
}

func TestRegistryErrorWording(t *testing.T) {
	for _, c := range []struct {
		status int
		body   string
		want   string
		kind   error
	}{
		{404, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`, "manifest unknown: manifest unknown", errdefs.ErrNotFound},
		{401, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, "unauthorized: authentication required", errdefs.ErrUnauthenticated},
		{401, `{"details":"incorrect username or password"}`, "unauthorized: incorrect username or password", errdefs.ErrUnauthenticated},
		{403, `{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}`, "denied: requested access to the resource is denied", errdefs.ErrForbidden},
		{502, `<html>bad gateway</html>`, "received unexpected HTTP status: 502 Bad Gateway", errdefs.ErrUnavailable},
	} {
		err := parseErrorBody(c.status, []byte(c.body))
		if err.Error() != c.want || !errors.Is(err, c.kind) {
			t.Errorf("%d %s: %q (kind %v), want %q", c.status, c.body, err.Error(), errors.Is(err, c.kind), c.want)
		}
	}
	if !strings.Contains(ErrNoBasicAuthCredentials.Error(), "no basic auth credentials") || errdefs.HTTPStatus(ErrNoBasicAuthCredentials) != http.StatusUnauthorized {
		t.Error(ErrNoBasicAuthCredentials)
	}
}
