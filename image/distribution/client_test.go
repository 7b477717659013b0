package distribution

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/image/reference"
	"github.com/cais-platform/cais/image/store"
	"github.com/cais-platform/cais/registry"
	"github.com/cais-platform/cais/registry/disk"
	"github.com/cais-platform/cais/registry/htpasswd"
)

var thisPlatform = ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}

// testRegistry is the cais registry on a loopback port, its handler
// wrapped by wrap (if set) to play a token server or a bad registry.
func testRegistry(t *testing.T, users map[string]string, wrap func(http.Handler) http.Handler) (host string) {
	t.Helper()
	st, err := disk.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var opts registry.Options
	if users != nil {
		file := filepath.Join(t.TempDir(), "users")
		for u, p := range users {
			if err := htpasswd.Set(file, u, p); err != nil {
				t.Fatal(err)
			}
		}
		f, err := htpasswd.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		opts.Auth = &registry.BasicAuth{Users: f}
	}
	var h http.Handler = registry.New(st, opts)
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func layerTar(t *testing.T, name, content string) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)})
	tw.Write([]byte(content))
	tw.Close()
	return b.Bytes()
}

// makeImage stores an image of n one-file layers named ref.
func makeImage(t *testing.T, st *store.Store, ref string, n int, seed string) ocispec.Descriptor {
	t.Helper()
	ctx := context.Background()
	var layers []ocispec.Descriptor
	var diffIDs []digest.Digest
	for i := 0; i < n; i++ {
		desc, diffID, err := st.AddLayer(ctx, bytes.NewReader(layerTar(t, fmt.Sprintf("f%d", i), seed+fmt.Sprint(i))))
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, desc)
		diffIDs = append(diffIDs, diffID)
	}
	cfg, _ := json.Marshal(store.ImageConfig{Architecture: runtime.GOARCH, OS: "linux", RootFS: ocispec.RootFS{Type: "layers", DiffIDs: diffIDs}})
	target, err := st.Commit(ctx, cfg, layers, true)
	if err != nil {
		t.Fatal(err)
	}
	r, err := reference.ParseDockerRef(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Tag(ctx, r, target); err != nil {
		t.Fatal(err)
	}
	return target
}

// recorder collects events as "ID: Status" lines.
type recorder struct {
	mu    sync.Mutex
	lines []string
	aux   []PushResult
}

func (r *recorder) add(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.Aux != nil {
		r.aux = append(r.aux, *e.Aux)
		return
	}
	if e.Status == "Downloading" || e.Status == "Pushing" {
		return
	}
	if e.ID != "" {
		r.lines = append(r.lines, e.ID+": "+e.Status)
	} else {
		r.lines = append(r.lines, e.Status)
	}
}

func (r *recorder) count(status string) int {
	n := 0
	for _, l := range r.lines {
		if strings.HasSuffix(l, ": "+status) || strings.HasPrefix(l, status) && !strings.Contains(l, ": ") {
			n++
		}
	}
	return n
}

func mustRef(t *testing.T, s string) reference.Reference {
	t.Helper()
	r, err := reference.ParseDockerRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestPushPull: an image of three layers pushed with basic credentials
// to the cais registry, pushed again (nothing uploaded), pushed under
// another name (layers mounted), and pulled into another store (every
// layer downloaded, then up to date), keeping its digest.
func TestPushPull(t *testing.T) {
	ctx := context.Background()
	host := testRegistry(t, map[string]string{"alice": "s3cret"}, nil)
	c := New(Config{})
	creds := AuthConfig{Username: "alice", Password: "s3cret"}
	src := openStore(t)
	target := makeImage(t, src, host+"/app:1", 3, "a")

	var rec recorder
	res, err := c.Push(ctx, src, mustRef(t, host+"/app:1"), creds, rec.add)
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != target.Digest || res.Size != target.Size || res.Tag != "1" {
		t.Errorf("push result %+v, image %+v", res, target)
	}
	if rec.lines[0] != "The push refers to repository ["+host+"/app]" || rec.count("Preparing") != 3 || rec.count("Pushed") != 3 ||
		rec.lines[len(rec.lines)-1] != fmt.Sprintf("1: digest: %s size: %d", target.Digest, target.Size) || len(rec.aux) != 1 {
		t.Errorf("push events:\n%s\naux %+v", strings.Join(rec.lines, "\n"), rec.aux)
	}

	rec = recorder{}
	if _, err := c.Push(ctx, src, mustRef(t, host+"/app:1"), creds, rec.add); err != nil {
		t.Fatal(err)
	}
	if rec.count("Layer already exists") != 3 || rec.count("Pushed") != 0 {
		t.Errorf("second push:\n%s", strings.Join(rec.lines, "\n"))
	}

	if err := src.Tag(ctx, mustRef(t, host+"/other:2"), target); err != nil {
		t.Fatal(err)
	}
	rec = recorder{}
	if _, err := c.Push(ctx, src, mustRef(t, host+"/other:2"), creds, rec.add); err != nil {
		t.Fatal(err)
	}
	if rec.count("Mounted from app") != 3 {
		t.Errorf("push to another repository:\n%s", strings.Join(rec.lines, "\n"))
	}

	dst := openStore(t)
	rec = recorder{}
	pr, err := c.Pull(ctx, dst, mustRef(t, host+"/app:1"), creds, thisPlatform, rec.add)
	if err != nil {
		t.Fatal(err)
	}
	if pr.Target.Digest != target.Digest || pr.UpToDate {
		t.Errorf("pull result %+v", pr)
	}
	if rec.lines[0] != "1: Pulling from app" || rec.count("Pulling fs layer") != 3 || rec.count("Download complete") != 3 || rec.count("Pull complete") != 3 ||
		rec.lines[len(rec.lines)-2] != "Digest: "+target.Digest.String() || rec.lines[len(rec.lines)-1] != "Status: Downloaded newer image for "+host+"/app:1" {
		t.Errorf("pull events:\n%s", strings.Join(rec.lines, "\n"))
	}
	if got, err := dst.Resolve(mustRef(t, host+"/app:1")); err != nil || got.Digest != target.Digest {
		t.Errorf("pulled image: %v %v", got, err)
	}
	if dirs, err := dst.Layers(ctx, pr.Target); err != nil || len(dirs) != 3 {
		t.Errorf("pulled layers: %v %v", dirs, err)
	}

	rec = recorder{}
	if pr, err := c.Pull(ctx, dst, mustRef(t, host+"/app:1"), creds, thisPlatform, rec.add); err != nil || !pr.UpToDate {
		t.Fatalf("second pull: %+v %v", pr, err)
	}
	if rec.lines[len(rec.lines)-1] != "Status: Image is up to date for "+host+"/app:1" || rec.count("Pulling fs layer") != 0 {
		t.Errorf("second pull:\n%s", strings.Join(rec.lines, "\n"))
	}

	// Another image sharing two layers: those already exist.
	src2 := openStore(t)
	makeImage(t, src2, host+"/app:1", 3, "a")
	makeImage(t, src2, host+"/app:2", 2, "a") // same first two layers
	if _, err := c.Push(ctx, src2, mustRef(t, host+"/app:2"), creds, nil); err != nil {
		t.Fatal(err)
	}
	rec = recorder{}
	if _, err := c.Pull(ctx, dst, mustRef(t, host+"/app:2"), creds, thisPlatform, rec.add); err != nil {
		t.Fatal(err)
	}
	if rec.count("Already exists") != 2 {
		t.Errorf("pull sharing layers:\n%s", strings.Join(rec.lines, "\n"))
	}
}

// TestAuthErrors: Docker's words for missing and wrong credentials.
func TestAuthErrors(t *testing.T) {
	ctx := context.Background()
	host := testRegistry(t, map[string]string{"alice": "s3cret"}, nil)
	c := New(Config{})
	src := openStore(t)
	makeImage(t, src, host+"/app:1", 1, "b")

	_, err := c.Push(ctx, src, mustRef(t, host+"/app:1"), AuthConfig{}, nil)
	if !errors.Is(err, ErrNoBasicAuthCredentials) || errdefs.Message(err) != "no basic auth credentials" {
		t.Errorf("push without credentials: %v", err)
	}
	_, err = c.Push(ctx, src, mustRef(t, host+"/app:1"), AuthConfig{Username: "alice", Password: "wrong"}, nil)
	if !errors.Is(err, errdefs.ErrUnauthenticated) {
		t.Errorf("push with a wrong password: %v", err)
	}
	_, err = c.Pull(ctx, openStore(t), mustRef(t, host+"/app:1"), AuthConfig{}, thisPlatform, nil)
	if !errors.Is(err, ErrNoBasicAuthCredentials) || errdefs.Message(err) != `Get "http://`+host+`/v2/app/manifests/1": no basic auth credentials` {
		t.Errorf("pull without credentials: %v", err)
	}

	res, err := c.Login(ctx, AuthConfig{Username: "alice", Password: "s3cret", ServerAddress: host})
	if err != nil || res.Status != "Login Succeeded" {
		t.Errorf("login: %+v %v", res, err)
	}
	_, err = c.Login(ctx, AuthConfig{Username: "alice", Password: "nope", ServerAddress: host})
	if want := "login attempt to http://" + host + "/v2/ failed with status: 401 Unauthorized"; err == nil || errdefs.Message(err) != want || !errors.Is(err, errdefs.ErrUnauthenticated) {
		t.Errorf("bad login: %v, want %q", err, want)
	}
	// A registry without users takes any login.
	open := testRegistry(t, nil, nil)
	if res, err := c.Login(ctx, AuthConfig{Username: "x", Password: "y", ServerAddress: "http://" + open + "/"}); err != nil || res.Status != "Login Succeeded" {
		t.Errorf("login to an open registry: %+v %v", res, err)
	}
}

// tokenAuth plays a token server in front of a registry: the registry
// answers 401 with a Bearer challenge unless the request has a token the
// realm issued; the realm issues one for alice's password, recording
// the scopes asked.
func tokenAuth(scopes *[]string, mu *sync.Mutex) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/token" {
				u, p, ok := r.BasicAuth()
				if !ok || u != "alice" || p != "s3cret" {
					w.WriteHeader(http.StatusUnauthorized)
					w.Write([]byte(`{"details":"incorrect username or password"}`))
					return
				}
				mu.Lock()
				*scopes = append(*scopes, r.URL.Query()["scope"]...)
				mu.Unlock()
				if r.URL.Query().Get("service") != "test-registry" {
					w.WriteHeader(http.StatusBadRequest)
					return
				}
				json.NewEncoder(w).Encode(map[string]string{"access_token": "tok-42"})
				return
			}
			if r.Header.Get("Authorization") != "Bearer tok-42" {
				w.Header().Set("Www-Authenticate", fmt.Sprintf(`Bearer realm="http://%s/token",service="test-registry"`, r.Host))
				w.WriteHeader(http.StatusUnauthorized)
				w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// TestBearer: the token flow, for push, pull and login.
func TestBearer(t *testing.T) {
	ctx := context.Background()
	var scopes []string
	var mu sync.Mutex
	host := testRegistry(t, nil, tokenAuth(&scopes, &mu))
	c := New(Config{})
	creds := AuthConfig{Username: "alice", Password: "s3cret"}
	src := openStore(t)
	target := makeImage(t, src, host+"/team/app:1", 2, "c")
	if _, err := c.Push(ctx, src, mustRef(t, host+"/team/app:1"), creds, nil); err != nil {
		t.Fatal(err)
	}
	pr, err := c.Pull(ctx, openStore(t), mustRef(t, host+"/team/app:1"), creds, thisPlatform, nil)
	if err != nil || pr.Target.Digest != target.Digest {
		t.Fatalf("pull: %+v %v", pr, err)
	}
	mu.Lock()
	got := strings.Join(scopes, " ")
	mu.Unlock()
	if got != "repository:team/app:pull,push repository:team/app:pull" {
		t.Errorf("scopes asked: %q", got)
	}
	if res, err := c.Login(ctx, AuthConfig{Username: "alice", Password: "s3cret", ServerAddress: host}); err != nil || res.Status != "Login Succeeded" {
		t.Errorf("login: %+v %v", res, err)
	}
	_, err = c.Login(ctx, AuthConfig{Username: "alice", Password: "bad", ServerAddress: host})
	if err == nil || err.Error() != "unauthorized: incorrect username or password" {
		t.Errorf("bad login: %v", err)
	}
	_, err = c.Pull(ctx, openStore(t), mustRef(t, host+"/team/app:1"), AuthConfig{Username: "alice", Password: "bad"}, thisPlatform, nil)
	if !errors.Is(err, errdefs.ErrUnauthenticated) {
		t.Errorf("pull with a bad password: %v", err)
	}
}

// TestPullRefusesBadContent: a layer whose bytes are not its digest, a
// manifest naming a blob the registry lacks, an oversized manifest, a
// tag whose manifest is not what the registry says: the pull fails and
// the store names no image.
func TestPullRefusesBadContent(t *testing.T) {
	ctx := context.Background()
	c := New(Config{})
	for name, wrap := range map[string]func(http.Handler) http.Handler{
		"corrupt layer": func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.Contains(r.URL.Path, "/blobs/") && r.Method == http.MethodGet {
					rec := httptest.NewRecorder()
					next.ServeHTTP(rec, r)
					b := rec.Body.Bytes()
					if len(b) > 600 { // a layer, not the config
						b[len(b)/2] ^= 1
					}
					w.WriteHeader(rec.Code)
					w.Write(b)
					return
				}
				next.ServeHTTP(w, r)
			})
		},
		"missing blob": func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.Contains(r.URL.Path, "/blobs/") && r.Method == http.MethodGet && !strings.Contains(r.URL.Path, "uploads") {
					rec := httptest.NewRecorder()
					next.ServeHTTP(rec, r)
					if rec.Body.Len() > 600 {
						w.WriteHeader(http.StatusNotFound)
						w.Write([]byte(`{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}`))
						return
					}
					w.WriteHeader(rec.Code)
					w.Write(rec.Body.Bytes())
					return
				}
				next.ServeHTTP(w, r)
			})
		},
		"huge manifest": func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.Contains(r.URL.Path, "/manifests/") && r.Method == http.MethodGet {
					w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
					w.Write(bytes.Repeat([]byte(" "), MaxManifestSize+10))
					return
				}
				next.ServeHTTP(w, r)
			})
		},
		"wrong manifest digest": func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.Contains(r.URL.Path, "/manifests/") && r.Method == http.MethodGet {
					rec := httptest.NewRecorder()
					next.ServeHTTP(rec, r)
					for k, v := range rec.Header() {
						w.Header()[k] = v
					}
					w.Header().Set("Docker-Content-Digest", digest.FromString("other").String())
					w.WriteHeader(rec.Code)
					w.Write(rec.Body.Bytes())
					return
				}
				next.ServeHTTP(w, r)
			})
		},
	} {
		t.Run(name, func(t *testing.T) {
			host := testRegistry(t, nil, wrap)
			src := openStore(t)
			makeImage(t, src, host+"/app:1", 2, strings.Repeat("x", 2000))
			if _, err := c.Push(ctx, src, mustRef(t, host+"/app:1"), AuthConfig{}, nil); err != nil {
				t.Fatal(err)
			}
			dst := openStore(t)
			_, err := c.Pull(ctx, dst, mustRef(t, host+"/app:1"), AuthConfig{}, thisPlatform, nil)
			if err == nil {
				t.Fatal("pull succeeded")
			}
			t.Logf("pull: %v", err)
			if imgs, err := dst.List(); err != nil || len(imgs) != 0 {
				t.Errorf("store after a failed pull: %+v %v", imgs, err)
			}
			// Nor any of the blobs it wrote.
			if left, err := os.ReadDir(filepath.Join(dst.Root(), "blobs", "sha256")); err != nil || len(left) != 0 {
				t.Errorf("blobs left after a failed pull: %v %v", left, err)
			}
		})
	}
}

// TestPullIndex: from an index, the manifest for this platform.
func TestPullIndex(t *testing.T) {
	ctx := context.Background()
	host := testRegistry(t, nil, nil)
	c := New(Config{})
	src := openStore(t)
	mine := makeImage(t, src, host+"/multi:mine", 1, "mine")
	other := makeImage(t, src, host+"/multi:other", 2, "other")
	for _, tag := range []string{"mine", "other"} {
		if _, err := c.Push(ctx, src, mustRef(t, host+"/multi:"+tag), AuthConfig{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	other.Platform = &ocispec.Platform{OS: "linux", Architecture: "s390x"}
	mine.Platform = &thisPlatform
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{other, mine}}
	idx.SchemaVersion = 2
	body, _ := json.Marshal(idx)
	req, _ := http.NewRequest(http.MethodPut, "http://"+host+"/v2/multi/manifests/latest", bytes.NewReader(body))
	req.Header.Set("Content-Type", ocispec.MediaTypeImageIndex)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("put index: %v %v", resp, err)
	}
	resp.Body.Close()
	dst := openStore(t)
	pr, err := c.Pull(ctx, dst, mustRef(t, host+"/multi"), AuthConfig{}, thisPlatform, nil)
	if err != nil {
		t.Fatal(err)
	}
	if pr.Target.Digest != digest.FromBytes(body) {
		t.Errorf("pulled %s, index is %s", pr.Target.Digest, digest.FromBytes(body))
	}
	_, m, err := dst.Manifest(pr.Target)
	if err != nil || len(m.Layers) != 1 {
		t.Errorf("platform manifest: %+v %v", m, err)
	}
	_, err = c.Pull(ctx, openStore(t), mustRef(t, host+"/multi"), AuthConfig{}, ocispec.Platform{OS: "linux", Architecture: "riscv64"}, nil)
	if err == nil || !strings.Contains(err.Error(), "no matching manifest for linux/riscv64 in the manifest list entries") {
		t.Errorf("pull for a missing platform: %v", err)
	}
}

// TestUnreachable: a closed port and an unknown host fail at once with
// the transport's words, as Docker shows them; a tag the registry lacks
// is Docker's "manifest ... not found".
func TestUnreachable(t *testing.T) {
	ctx := context.Background()
	c := New(Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	start := time.Now()
	_, err = c.Pull(ctx, openStore(t), mustRef(t, closed+"/app:1"), AuthConfig{}, thisPlatform, nil)
	want := fmt.Sprintf(`Get "http://%s/v2/": dial tcp %s: connect: connection refused`, closed, closed)
	if err == nil || errdefs.Message(err) != want || time.Since(start) > 5*time.Second {
		t.Errorf("closed port: %v after %v, want %q", err, time.Since(start), want)
	}
	_, err = c.Pull(ctx, openStore(t), mustRef(t, "nosuch.invalid/app:1"), AuthConfig{}, thisPlatform, nil)
	if err == nil || !strings.HasPrefix(errdefs.Message(err), `Get "https://nosuch.invalid/v2/": dial tcp: lookup nosuch.invalid`) {
		t.Errorf("unknown host: %v", err)
	}
	host := testRegistry(t, nil, nil)
	_, err = c.Pull(ctx, openStore(t), mustRef(t, host+"/app:nosuch"), AuthConfig{}, thisPlatform, nil)
	if err == nil || !errors.Is(err, errdefs.ErrNotFound) || !strings.HasPrefix(err.Error(), "manifest for "+host+"/app:nosuch not found: ") {
		t.Errorf("missing tag: %v", err)
	}
	_, err = c.Push(ctx, openStore(t), mustRef(t, host+"/app:1"), AuthConfig{}, nil)
	if err == nil || errdefs.Message(err) != "An image does not exist locally with the tag: "+host+"/app" {
		t.Errorf("push of a missing image: %v", err)
	}
}

// TestMirror: Docker Hub names go to the mirror first; a mirror that
// lacks the image is passed over (here for the unreachable Hub).
func TestMirror(t *testing.T) {
	ctx := context.Background()
	mirror := testRegistry(t, nil, nil)
	src := openStore(t)
	target := makeImage(t, src, mirror+"/library/busybox:latest", 1, "hub")
	c := New(Config{})
	if _, err := c.Push(ctx, src, mustRef(t, mirror+"/library/busybox:latest"), AuthConfig{}, nil); err != nil {
		t.Fatal(err)
	}
	cm := New(Config{Mirrors: []string{"http://" + mirror}})
	dst := openStore(t)
	var rec recorder
	pr, err := cm.Pull(ctx, dst, mustRef(t, "busybox"), AuthConfig{}, thisPlatform, rec.add)
	if err != nil || pr.Target.Digest != target.Digest {
		t.Fatalf("pull through the mirror: %+v %v", pr, err)
	}
	if rec.lines[0] != "latest: Pulling from library/busybox" || rec.lines[len(rec.lines)-1] != "Status: Downloaded newer image for busybox:latest" {
		t.Errorf("events:\n%s", strings.Join(rec.lines, "\n"))
	}
	// Not on the mirror: Docker Hub is tried, and here it cannot be reached.
	_, err = cm.Pull(ctx, dst, mustRef(t, "alpine"), AuthConfig{}, thisPlatform, nil)
	if err == nil || !strings.Contains(err.Error(), "registry-1.docker.io") {
		t.Errorf("pull of what the mirror lacks: %v", err)
	}
}

// TestVerifiedTLS: a registry's certificate is checked against the
// configured authorities (the daemon gives the system's and the pool
// CA), and refused without them.
func TestVerifiedTLS(t *testing.T) {
	st, err := disk.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(registry.New(st, registry.Options{}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	ep := Endpoint{URL: u}
	ctx := context.Background()

	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	c := New(Config{RootCAs: func() (*x509.CertPool, error) { return pool, nil }})
	s, err := c.open(ctx, ep, "app", AuthConfig{}, nil)
	if err != nil {
		t.Fatalf("with the server's CA: %v", err)
	}
	s.close()

	_, err = New(Config{RootCAs: func() (*x509.CertPool, error) { return x509.NewCertPool(), nil }}).open(ctx, ep, "app", AuthConfig{}, nil)
	if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Errorf("without it: %v", err)
	}
	// An insecure registry's certificate is not checked.
	s, err = New(Config{}).open(ctx, Endpoint{URL: u, SkipVerify: true}, "app", AuthConfig{}, nil)
	if err != nil {
		t.Fatalf("skip verify: %v", err)
	}
	s.close()
}

// TestPullDownloadsConcurrently: layers are downloaded three at a time,
// as dockerd does.
func TestPullDownloadsConcurrently(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	inflight, most := 0, 0
	host := testRegistry(t, nil, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
				mu.Lock()
				inflight++
				most = max(most, inflight)
				mu.Unlock()
				time.Sleep(200 * time.Millisecond)
				mu.Lock()
				inflight--
				mu.Unlock()
			}
			next.ServeHTTP(w, r)
		})
	})
	c := New(Config{})
	src := openStore(t)
	makeImage(t, src, host+"/app:1", 5, "conc")
	if _, err := c.Push(ctx, src, mustRef(t, host+"/app:1"), AuthConfig{}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Pull(ctx, openStore(t), mustRef(t, host+"/app:1"), AuthConfig{}, thisPlatform, nil); err != nil {
		t.Fatal(err)
	}
	if most != maxConcurrentDownloads {
		t.Errorf("at most %d downloads at once, want %d", most, maxConcurrentDownloads)
	}
}

// TestPushUploadsConcurrently: layers are uploaded five at a time, as
// dockerd does.
func TestPushUploadsConcurrently(t *testing.T) {
	var mu sync.Mutex
	inflight, most := 0, 0
	host := testRegistry(t, nil, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/") {
				mu.Lock()
				inflight++
				most = max(most, inflight)
				mu.Unlock()
				time.Sleep(200 * time.Millisecond)
				mu.Lock()
				inflight--
				mu.Unlock()
			}
			next.ServeHTTP(w, r)
		})
	})
	src := openStore(t)
	makeImage(t, src, host+"/app:1", 7, "up")
	var rec recorder
	if _, err := New(Config{}).Push(context.Background(), src, mustRef(t, host+"/app:1"), AuthConfig{}, rec.add); err != nil {
		t.Fatal(err)
	}
	if most != maxConcurrentUploads || rec.count("Pushed") != 7 {
		t.Errorf("at most %d uploads at once, want %d; events:\n%s", most, maxConcurrentUploads, strings.Join(rec.lines, "\n"))
	}
}
