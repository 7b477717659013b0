package daemon

import (
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cais-platform/cais/registry/htpasswd"
)

func TestLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{"127.0.0.1": true, "127.0.0.9": true, "::1": true, "localhost": true, "": false, "0.0.0.0": false, "::": false, "192.0.2.1": false, "example.com": false} {
		if got := loopbackHost(host); got != want {
			t.Errorf("loopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}

// TestStartRegistry: on loopback the registry speaks plain HTTP, with its
// data under DATA-DIR/registry; with no address there is none.
func TestStartRegistry(t *testing.T) {
	d := &Daemon{cfg: Config{DataDir: t.TempDir()}, log: slog.New(slog.DiscardHandler)}
	if r, err := d.startRegistry(); r != nil || err != nil {
		t.Fatalf("no address: %v %v", r, err)
	}
	d.cfg.RegistryAddr = "127.0.0.1:0"
	r, err := d.startRegistry()
	if err != nil {
		t.Fatal(err)
	}
	defer r.stop()
	if !strings.HasPrefix(r.url, "http://127.0.0.1:") {
		t.Fatalf("url %q", r.url)
	}
	resp, err := http.Get(r.url + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Distribution-API-Version") != "registry/2.0" || string(b) != "{}" {
		t.Fatalf("GET /v2/: %s %v %q", resp.Status, resp.Header, b)
	}
	if _, err := os.Stat(filepath.Join(d.cfg.DataDir, "registry", "blobs")); err != nil {
		t.Fatalf("registry data: %v", err)
	}
	d.cfg.RegistryAddr = "nonsense"
	if _, err := d.startRegistry(); err == nil {
		t.Fatal("bad address accepted")
	}
}

// TestStartRegistryWithUsers: with a users file, the API root asks for
// credentials (what docker login needs) and accepts a user's.
func TestStartRegistryWithUsers(t *testing.T) {
	dir := t.TempDir()
	if err := htpasswd.Set(filepath.Join(dir, "registry-users"), "alice", "pw"); err != nil {
		t.Fatal(err)
	}
	d := &Daemon{cfg: Config{DataDir: dir, RegistryAddr: "127.0.0.1:0", RegistryAnonymousPull: []string{"public/**"}}, log: slog.New(slog.DiscardHandler)}
	r, err := d.startRegistry()
	if err != nil {
		t.Fatal(err)
	}
	defer r.stop()
	get := func(path, user string) int {
		req, _ := http.NewRequest("GET", r.url+path, nil)
		if user != "" {
			req.SetBasicAuth(user, "pw")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get("/v2/", ""); c != http.StatusUnauthorized {
		t.Fatalf("anonymous /v2/: %d", c)
	}
	if c := get("/v2/", "alice"); c != http.StatusOK {
		t.Fatalf("alice /v2/: %d", c)
	}
	if c := get("/v2/public/app/tags/list", ""); c != http.StatusNotFound {
		t.Fatalf("anonymous pull of public/app: %d", c)
	}
	if c := get("/v2/private/app/tags/list", ""); c != http.StatusUnauthorized {
		t.Fatalf("anonymous pull of private/app: %d", c)
	}
}
