package dockerapi

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/image/distribution"
)

func TestPullReference(t *testing.T) {
	const d = "sha256:7e55cff5461751e9275e262196735783317d0b2f4d13d6c0884c3ea58faefb75"
	for _, c := range []struct{ from, tag, want string }{
		{"busybox", "", "docker.io/library/busybox:latest"},
		{"docker.io/library/busybox", "1.36", "docker.io/library/busybox:1.36"},
		{"localhost:5000/app", "1", "localhost:5000/app:1"},
		{"localhost:5000/app:2", "", "localhost:5000/app:2"},
		{"localhost:5000/app", d, "localhost:5000/app@" + d},
		{"localhost:5000/app:1@" + d, "", "localhost:5000/app@" + d},
	} {
		ref, err := pullReference(c.from, c.tag)
		if err != nil || ref.String() != c.want {
			t.Errorf("pullReference(%q, %q) = %q, %v; want %q", c.from, c.tag, ref.String(), err, c.want)
		}
	}
	for _, c := range [][2]string{{"app/UPPER", ""}, {"app", "bad tag"}, {"app", "sha256:short"}} {
		if _, err := pullReference(c[0], c[1]); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("pullReference(%q, %q): %v", c[0], c[1], err)
		}
	}
}

func TestParsePlatform(t *testing.T) {
	p, err := parsePlatform("linux/arm64/v8")
	if err != nil || p.OS != "linux" || p.Architecture != "arm64" || p.Variant != "v8" {
		t.Errorf("linux/arm64/v8: %+v %v", p, err)
	}
	if p, err := parsePlatform(""); err != nil || p.OS != "linux" || p.Architecture == "" {
		t.Errorf("default: %+v %v", p, err)
	}
	for _, bad := range []string{"linux", "/amd64", "a/b/c/d"} {
		if _, err := parsePlatform(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestProgressStreamErrors: an error before any progress is an HTTP
// error with its kind's status; a registry's refusal of credentials is
// not a 401 (the CLI would prompt for a login); after progress, an error
// is the stream's last message.
func TestProgressStreamErrors(t *testing.T) {
	w := httptest.NewRecorder()
	newProgressStream(w).fail(errors.Join(errdefs.ErrNotFound))
	if w.Code != http.StatusNotFound {
		t.Errorf("not found: %d", w.Code)
	}
	w = httptest.NewRecorder()
	newProgressStream(w).fail(distribution.ErrNoBasicAuthCredentials)
	if w.Code != http.StatusInternalServerError || w.Body.String() != "{\"message\":\"no basic auth credentials\"}\n" {
		t.Errorf("no credentials: %d %q", w.Code, w.Body.String())
	}
	w = httptest.NewRecorder()
	ps := newProgressStream(w)
	ps.event(distribution.Event{ID: "abc", Status: "Pulling fs layer"})
	ps.fail(distribution.ErrNoBasicAuthCredentials)
	want := "{\"status\":\"Pulling fs layer\",\"progressDetail\":{},\"id\":\"abc\"}\n{\"error\":\"no basic auth credentials\",\"errorDetail\":{\"message\":\"no basic auth credentials\"}}\n"
	if w.Code != http.StatusOK || w.Body.String() != want {
		t.Errorf("in the stream: %d %q", w.Code, w.Body.String())
	}
}
