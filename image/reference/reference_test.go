package reference

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/cais-platform/cais/errdefs"
)

const (
	hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	dgst  = "sha256:" + hex64
)

func TestParseNormalized(t *testing.T) {
	tests := []struct {
		in                       string
		full, familiar           string
		domain, path, tag, digst string
	}{
		{in: "busybox", full: "docker.io/library/busybox", familiar: "busybox", domain: "docker.io", path: "library/busybox"},
		{in: "busybox:1.36", full: "docker.io/library/busybox:1.36", familiar: "busybox:1.36", domain: "docker.io", path: "library/busybox", tag: "1.36"},
		{in: "library/busybox", full: "docker.io/library/busybox", familiar: "busybox", domain: "docker.io", path: "library/busybox"},
		{in: "docker.io/busybox", full: "docker.io/library/busybox", familiar: "busybox", domain: "docker.io", path: "library/busybox"},
		{in: "index.docker.io/busybox", full: "docker.io/library/busybox", familiar: "busybox", domain: "docker.io", path: "library/busybox"},
		{in: "docker.io/library/busybox:latest", full: "docker.io/library/busybox:latest", familiar: "busybox:latest", domain: "docker.io", path: "library/busybox", tag: "latest"},
		{in: "me/app", full: "docker.io/me/app", familiar: "me/app", domain: "docker.io", path: "me/app"},
		{in: "library/a/b", full: "docker.io/library/a/b", familiar: "library/a/b", domain: "docker.io", path: "library/a/b"},
		{in: "localhost/app", full: "localhost/app", familiar: "localhost/app", domain: "localhost", path: "app"},
		{in: "localhost:5000/app:1", full: "localhost:5000/app:1", familiar: "localhost:5000/app:1", domain: "localhost:5000", path: "app", tag: "1"},
		{in: "ghcr.io/o/app@" + dgst, full: "ghcr.io/o/app@" + dgst, familiar: "ghcr.io/o/app@" + dgst, domain: "ghcr.io", path: "o/app", digst: dgst},
		{in: "busybox@" + dgst, full: "docker.io/library/busybox@" + dgst, familiar: "busybox@" + dgst, domain: "docker.io", path: "library/busybox", digst: dgst},
		{in: "busybox:1@" + dgst, full: "docker.io/library/busybox:1@" + dgst, familiar: "busybox:1@" + dgst, domain: "docker.io", path: "library/busybox", tag: "1", digst: dgst},
		{in: "Foo/bar", full: "Foo/bar", familiar: "Foo/bar", domain: "Foo", path: "bar"},
		{in: "[::1]:5000/app", full: "[::1]:5000/app", familiar: "[::1]:5000/app", domain: "[::1]:5000", path: "app"},
		{in: "10.0.0.1:5000/a-b/c__d.e:T_1.x-", full: "10.0.0.1:5000/a-b/c__d.e:T_1.x-", familiar: "10.0.0.1:5000/a-b/c__d.e:T_1.x-", domain: "10.0.0.1:5000", path: "a-b/c__d.e", tag: "T_1.x-"},
		{in: "FOO/bar", full: "FOO/bar", familiar: "FOO/bar", domain: "FOO", path: "bar"},
		{in: "busybox:Latest", full: "docker.io/library/busybox:Latest", familiar: "busybox:Latest", domain: "docker.io", path: "library/busybox", tag: "Latest"},
		{in: "a---b", full: "docker.io/library/a---b", familiar: "a---b", domain: "docker.io", path: "library/a---b"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			ref, err := ParseNormalized(tt.in)
			if err != nil {
				t.Fatalf("ParseNormalized(%q): %v", tt.in, err)
			}
			if got := ref.String(); got != tt.full {
				t.Errorf("String() = %q, want %q", got, tt.full)
			}
			if got := ref.Familiar(); got != tt.familiar {
				t.Errorf("Familiar() = %q, want %q", got, tt.familiar)
			}
			if ref.Domain() != tt.domain || ref.Path() != tt.path || ref.Tag() != tt.tag || string(ref.Digest()) != tt.digst {
				t.Errorf("parts = %q %q %q %q, want %q %q %q %q", ref.Domain(), ref.Path(), ref.Tag(), ref.Digest(), tt.domain, tt.path, tt.tag, tt.digst)
			}
			// The familiar form normalizes back to the same reference.
			again, err := ParseNormalized(ref.Familiar())
			if err != nil || again != ref {
				t.Errorf("ParseNormalized(Familiar()) = %v, %v; want %v", again, err, ref)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in   string
		want string
		is   error
	}{
		{"", "invalid reference format", ErrReferenceInvalidFormat},
		{"Foo", "invalid reference format: repository name (library/Foo) must be lowercase", ErrReferenceInvalidFormat},
		{"docker.io/library/Busybox:1", "invalid reference format: repository name (library/Busybox) must be lowercase", ErrReferenceInvalidFormat},
		{"ghcr.io/Owner/app", "invalid reference format: repository name (Owner/app) must be lowercase", ErrReferenceInvalidFormat},
		{"busybox:", "invalid reference format", ErrReferenceInvalidFormat},
		// Checked against the docker 28 CLI.
		{"Busybox:Latest", "invalid reference format: repository name (library/Busybox) must be lowercase", ErrReferenceInvalidFormat},
		{"localhost:5000/Foo", "invalid reference format: repository name (Foo) must be lowercase", ErrReferenceInvalidFormat},
		{"a:b:c", "invalid reference format", ErrReferenceInvalidFormat},
		{"busybox:-x", "invalid reference format", ErrReferenceInvalidFormat},
		{"busybox:" + strings.Repeat("a", 129), "invalid reference format", ErrReferenceInvalidFormat},
		{"busybox@sha256:abc", "invalid reference format", ErrReferenceInvalidFormat},
		{"busybox@sha256:" + hex64[:40], "invalid checksum digest length", ErrDigestInvalidFormat},
		{"busybox@md5:" + hex64[:32], "unsupported digest algorithm", ErrDigestInvalidFormat},
		{"a..b", "invalid reference format", ErrReferenceInvalidFormat},
		{"a___b", "invalid reference format", ErrReferenceInvalidFormat},
		{"-a", "invalid reference format", ErrReferenceInvalidFormat},
		{"a-", "invalid reference format", ErrReferenceInvalidFormat},
		{"a//b", "invalid reference format", ErrReferenceInvalidFormat},
		{"a/", "invalid reference format", ErrReferenceInvalidFormat},
		{"/a", "invalid reference format", ErrReferenceInvalidFormat},
		{"a b", "invalid reference format", ErrReferenceInvalidFormat},
		{"localhost:5000:1/a", "invalid reference format", ErrReferenceInvalidFormat},
		{"a@b@" + dgst, "invalid reference format", ErrReferenceInvalidFormat},
		{hex64, "invalid repository name (" + hex64 + "), cannot specify 64-byte hexadecimal strings", errdefs.ErrInvalid},
		{"a/" + strings.Repeat("b", 250), "repository name must not be more than 255 characters", ErrNameTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseNormalized(tt.in)
			if err == nil {
				t.Fatalf("ParseNormalized(%q) succeeded", tt.in)
			}
			if err.Error() != tt.want {
				t.Errorf("error = %q, want %q", err, tt.want)
			}
			if !errors.Is(err, tt.is) || !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("error %v is not %v and errdefs.ErrInvalid", err, tt.is)
			}
		})
	}
}

func TestParseStrict(t *testing.T) {
	tests := []struct {
		in, domain, path string
		err              error
	}{
		{"busybox", "", "busybox", nil},
		{"foo/bar", "foo", "bar", nil},
		{"a_b/c", "", "a_b/c", nil},
		{"Foo", "", "", ErrNameContainsUppercase},
		{"", "", "", ErrNameEmpty},
		{"a/B", "", "", ErrNameContainsUppercase},
	}
	for _, tt := range tests {
		ref, err := Parse(tt.in)
		if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
			t.Errorf("Parse(%q) error = %v, want %v", tt.in, err, tt.err)
			continue
		}
		if err == nil && (ref.Domain() != tt.domain || ref.Path() != tt.path) {
			t.Errorf("Parse(%q) = %q %q, want %q %q", tt.in, ref.Domain(), ref.Path(), tt.domain, tt.path)
		}
	}
}

func TestParseDockerRef(t *testing.T) {
	tests := map[string]string{
		"busybox":                     "docker.io/library/busybox:latest",
		"busybox:1":                   "docker.io/library/busybox:1",
		"busybox@" + dgst:             "docker.io/library/busybox@" + dgst,
		"busybox:1@" + dgst:           "docker.io/library/busybox@" + dgst,
		"localhost:5000/app":          "localhost:5000/app:latest",
		"docker.io/library/busybox:x": "docker.io/library/busybox:x",
	}
	for in, want := range tests {
		ref, err := ParseDockerRef(in)
		if err != nil || ref.String() != want {
			t.Errorf("ParseDockerRef(%q) = %q, %v; want %q", in, ref, err, want)
		}
	}
}

func TestParseCanonical(t *testing.T) {
	if _, err := ParseCanonical("docker.io/library/busybox:1"); err != nil {
		t.Errorf("canonical: %v", err)
	}
	if _, err := ParseCanonical("busybox:1"); !errors.Is(err, ErrNameNotCanonical) {
		t.Errorf("busybox:1: %v, want ErrNameNotCanonical", err)
	}
}

func TestWith(t *testing.T) {
	ref, err := ParseNormalized("busybox")
	if err != nil {
		t.Fatal(err)
	}
	tagged, err := ref.WithTag("v1")
	if err != nil || tagged.String() != "docker.io/library/busybox:v1" {
		t.Errorf("WithTag = %q, %v", tagged, err)
	}
	if _, err := ref.WithTag("bad tag"); !errors.Is(err, ErrTagInvalidFormat) {
		t.Errorf("WithTag(bad): %v", err)
	}
	d, err := tagged.WithDigest(dgst)
	if err != nil || d.String() != "docker.io/library/busybox:v1@"+dgst {
		t.Errorf("WithDigest = %q, %v", d, err)
	}
	if _, err := ref.WithDigest("sha256:xyz"); err == nil {
		t.Error("WithDigest(bad) succeeded")
	}
	if got := d.TrimmedName().String(); got != "docker.io/library/busybox" {
		t.Errorf("TrimmedName = %q", got)
	}
	if got := ref.WithDefaultTag().Familiar(); got != "busybox:latest" {
		t.Errorf("WithDefaultTag = %q", got)
	}
	if !IsID(hex64) || IsID(hex64[1:]) || IsID(strings.ToUpper(hex64)) {
		t.Error("IsID wrong")
	}
}

// grammarRE is the grammar of doc.go written as one regular expression: the
// hand-written recognizer must accept exactly what it accepts.
var grammarRE = func() *regexp.Regexp {
	alnum := `[a-z0-9]+`
	sep := `(?:[._]|__|[-]+)`
	comp := alnum + `(?:` + sep + alnum + `)*`
	path := comp + `(?:/` + comp + `)*`
	domComp := `(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])`
	host := `(?:` + domComp + `(?:\.` + domComp + `)*|\[[a-fA-F0-9:]+\])`
	domain := host + `(?::[0-9]+)?`
	tag := `[\w][\w.-]{0,127}`
	dg := `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}`
	return regexp.MustCompile(`^((?:` + domain + `/)?` + path + `)(?::(` + tag + `))?(?:@(` + dg + `))?$`)
}()

func TestGrammarAgreesWithRegexp(t *testing.T) {
	for _, s := range seeds {
		checkGrammar(t, s)
	}
}

func checkGrammar(t *testing.T, s string) {
	t.Helper()
	m := grammarRE.FindStringSubmatch(s)
	ref, ok := parse(s)
	if ok != (m != nil) {
		t.Fatalf("parse(%q) ok=%v, regexp match=%v", s, ok, m != nil)
	}
	if ok && (ref.Name() != m[1] || ref.tag != m[2] || string(ref.digest) != m[3]) {
		t.Fatalf("parse(%q) = %q %q %q, regexp %q %q %q", s, ref.Name(), ref.tag, ref.digest, m[1], m[2], m[3])
	}
}

var seeds = []string{
	"", "busybox", "busybox:latest", "Foo", "a/b/c:1", "localhost:5000/a:b",
	"[::1]:5000/app", "[::1]/app", "[]/a", "[zz]/a", "a@" + dgst, "a:b@" + dgst,
	"a@sha256+b64.x_y-z:" + hex64, "a@1sha:" + hex64, "a@sha-:" + hex64, "a---b",
	"a__b", "a___b", "a._b", ":tag", "@" + dgst, "a:", "a@", "a/b:c/d",
	"docker.io/library/busybox:1.36@" + dgst, "x.y-z.w:80/p_q/r:T", "a-.b/c",
	"-a.b/c", "a.b-/c", "a:1/b", "a:/b", "ab:1a/c", hex64, "a/" + hex64,
}

func FuzzParse(f *testing.F) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkGrammar(t, s)
		if ref, err := Parse(s); err == nil {
			again, err := Parse(ref.String())
			if err != nil || again != ref {
				t.Fatalf("Parse(%q) round trip: %v, %v", s, again, err)
			}
		} else if !errors.Is(err, errdefs.ErrInvalid) {
			t.Fatalf("Parse(%q) error %v is not ErrInvalid", s, err)
		}
		ref, err := ParseNormalized(s)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("ParseNormalized(%q) error %v is not ErrInvalid", s, err)
			}
			return
		}
		if ref.Domain() == "" {
			t.Fatalf("ParseNormalized(%q) has no domain", s)
		}
		for _, form := range []string{ref.String(), ref.Familiar()} {
			again, err := ParseNormalized(form)
			if err != nil || again != ref {
				t.Fatalf("ParseNormalized(%q) -> %q -> %v, %v", s, form, again, err)
			}
		}
	})
}
