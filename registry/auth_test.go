package registry_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/cais-platform/cais/registry"
	"github.com/cais-platform/cais/registry/disk"
)

type users map[string]string

func (u users) Check(user, pass string) error {
	if p, ok := u[user]; ok && p == pass {
		return nil
	}
	return errors.New("bad credentials")
}

var _ registry.Credentials = users(nil)

func TestBasicAuth(t *testing.T) {
	st, err := disk.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	auth := &registry.BasicAuth{Users: users{"alice": "pw"}, AnonymousPull: []string{"public/**", "library/*"}}
	h := registry.New(st, registry.Options{Auth: auth})
	do := func(method, path, user, pass string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, nil)
		if user != "" {
			r.SetBasicAuth(user, pass)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	unauthorized := func(w *httptest.ResponseRecorder) {
		t.Helper()
		expect(t, w, http.StatusUnauthorized, registry.CodeUnauthorized)
		if w.Header().Get("WWW-Authenticate") != `Basic realm="cais registry"` {
			t.Fatalf("challenge %q", w.Header().Get("WWW-Authenticate"))
		}
	}
	// docker login probes /v2/ without, then with, credentials.
	unauthorized(do("GET", "/v2/", "", ""))
	unauthorized(do("GET", "/v2/", "alice", "wrong"))
	expect(t, do("GET", "/v2/", "alice", "pw"), http.StatusOK, "")
	// Push needs credentials everywhere.
	unauthorized(do("POST", "/v2/public/app/blobs/uploads/", "", ""))
	expect(t, do("POST", "/v2/public/app/blobs/uploads/", "alice", "pw"), http.StatusAccepted, "")
	unauthorized(do("DELETE", "/v2/public/app/manifests/x", "", ""))
	// Anonymous pull only where allowed.
	blob := "/blobs/" + digest.FromString("x").String()
	expect(t, do("GET", "/v2/public/app"+blob, "", ""), http.StatusNotFound, registry.CodeBlobUnknown)
	expect(t, do("GET", "/v2/library/busybox"+blob, "", ""), http.StatusNotFound, registry.CodeBlobUnknown)
	unauthorized(do("GET", "/v2/library/a/b"+blob, "", ""))
	unauthorized(do("GET", "/v2/private/app"+blob, "", ""))
	unauthorized(do("GET", "/v2/private/app/tags/list", "", ""))
	expect(t, do("GET", "/v2/private/app"+blob, "alice", "pw"), http.StatusNotFound, registry.CodeBlobUnknown)
	// Wrong credentials are refused even where anonymous pull is allowed.
	unauthorized(do("GET", "/v2/public/app"+blob, "alice", "wrong"))
}

func TestMatchRepo(t *testing.T) {
	for _, c := range []struct {
		patterns []string
		repo     string
		want     bool
	}{
		{[]string{"**"}, "a/b/c", true},
		{[]string{"public/**"}, "public/a/b", true},
		{[]string{"public/**"}, "publicx/a", false},
		{[]string{"library/*"}, "library/a", true},
		{[]string{"library/*"}, "library/a/b", false},
		{[]string{"app"}, "app", true},
		{nil, "app", false},
	} {
		if got := registry.MatchRepo(c.patterns, c.repo); got != c.want {
			t.Errorf("MatchRepo(%q, %q) = %v", c.patterns, c.repo, got)
		}
	}
}
