package registry_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cais-platform/cais/registry"
	"github.com/cais-platform/cais/registry/disk"
)

// env is a registry on a fresh disk store, called in-process.
type env struct {
	t    testing.TB
	h    http.Handler
	root string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	root := t.TempDir()
	st, err := disk.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, h: registry.New(st, registry.Options{}), root: root}
}

type req struct {
	method, path string
	body         []byte
	header       map[string]string
	// contentLength, when not zero, overrides the declared length (-1: none).
	contentLength int64
}

func (e *env) do(r req) *httptest.ResponseRecorder {
	e.t.Helper()
	hr := httptest.NewRequest(r.method, r.path, bytes.NewReader(r.body))
	hr.ContentLength = int64(len(r.body))
	hr.Header.Set("Content-Length", fmt.Sprint(len(r.body)))
	if r.contentLength != 0 {
		hr.ContentLength = r.contentLength
		hr.Header.Set("Content-Length", fmt.Sprint(r.contentLength))
		if r.contentLength < 0 {
			hr.Header.Del("Content-Length")
		}
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, hr)
	return w
}

// expect checks a response's status and, for errors, its spec error code.
func expect(t testing.TB, w *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d; body %s", w.Code, status, w.Body)
	}
	if code == "" {
		return
	}
	var body struct {
		Errors []struct {
			Code    string          `json:"code"`
			Message string          `json:"message"`
			Detail  json.RawMessage `json:"detail"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("error body %q: %v", w.Body, err)
	}
	if len(body.Errors) != 1 || body.Errors[0].Code != code || body.Errors[0].Message == "" {
		t.Fatalf("error body %s, want code %s", w.Body, code)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error Content-Type %q", ct)
	}
}

func (e *env) pushBlob(repo string, b []byte) digest.Digest {
	e.t.Helper()
	d := digest.FromBytes(b)
	w := e.do(req{method: "POST", path: "/v2/" + repo + "/blobs/uploads/?digest=" + d.String(), body: b})
	expect(e.t, w, http.StatusCreated, "")
	return d
}

func imageManifest(config digest.Digest, configSize int64, layers ...ocispec.Descriptor) ocispec.Manifest {
	m := ocispec.Manifest{
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: config, Size: configSize},
		Layers:    layers,
	}
	m.SchemaVersion = 2
	if m.Layers == nil {
		m.Layers = []ocispec.Descriptor{}
	}
	return m
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pushImage pushes a config, one layer and a manifest tagged tag.
func (e *env) pushImage(repo, tag, seed string) (digest.Digest, []byte) {
	e.t.Helper()
	cfg := []byte(`{"seed":"` + seed + `"}`)
	layer := []byte("layer " + seed)
	cd := e.pushBlob(repo, cfg)
	ld := e.pushBlob(repo, layer)
	m := mustJSON(e.t, imageManifest(cd, int64(len(cfg)), ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: ld, Size: int64(len(layer))}))
	w := e.do(req{method: "PUT", path: "/v2/" + repo + "/manifests/" + tag, body: m, header: map[string]string{"Content-Type": ocispec.MediaTypeImageManifest}})
	expect(e.t, w, http.StatusCreated, "")
	return digest.FromBytes(m), m
}

func TestBase(t *testing.T) {
	e := newEnv(t)
	w := e.do(req{method: "GET", path: "/v2/"})
	expect(t, w, http.StatusOK, "")
	if v := w.Header().Get("Docker-Distribution-API-Version"); v != "registry/2.0" {
		t.Fatalf("API version header %q", v)
	}
}

func TestPushPullImage(t *testing.T) {
	e := newEnv(t)
	d, m := e.pushImage("library/app", "1", "a")
	for _, ref := range []string{"1", d.String()} {
		w := e.do(req{method: "GET", path: "/v2/library/app/manifests/" + ref})
		expect(t, w, http.StatusOK, "")
		if !bytes.Equal(w.Body.Bytes(), m) || w.Header().Get("Docker-Content-Digest") != d.String() || w.Header().Get("Content-Type") != ocispec.MediaTypeImageManifest {
			t.Fatalf("manifest by %s: %s %v", ref, w.Body, w.Header())
		}
		w = e.do(req{method: "HEAD", path: "/v2/library/app/manifests/" + ref})
		expect(t, w, http.StatusOK, "")
		if w.Body.Len() != 0 || w.Header().Get("Content-Length") != fmt.Sprint(len(m)) {
			t.Fatalf("HEAD manifest: %d bytes, length %q", w.Body.Len(), w.Header().Get("Content-Length"))
		}
	}
	layer := digest.FromBytes([]byte("layer a"))
	w := e.do(req{method: "GET", path: "/v2/library/app/blobs/" + layer.String()})
	expect(t, w, http.StatusOK, "")
	if w.Body.String() != "layer a" {
		t.Fatalf("blob %q", w.Body)
	}
	w = e.do(req{method: "GET", path: "/v2/library/app/blobs/" + layer.String(), header: map[string]string{"Range": "bytes=2-4"}})
	expect(t, w, http.StatusPartialContent, "")
	if w.Body.String() != "yer" {
		t.Fatalf("range %q", w.Body)
	}
}

func TestChunkedUpload(t *testing.T) {
	e := newEnv(t)
	content := []byte("0123456789abcdef")
	d := digest.FromBytes(content)
	w := e.do(req{method: "POST", path: "/v2/r/blobs/uploads/"})
	expect(t, w, http.StatusAccepted, "")
	loc := w.Header().Get("Location")
	if !strings.HasPrefix(loc, "/v2/r/blobs/uploads/") {
		t.Fatalf("Location %q", loc)
	}
	w = e.do(req{method: "PATCH", path: loc, body: content[:6], header: map[string]string{"Content-Range": "0-5"}})
	expect(t, w, http.StatusAccepted, "")
	if r := w.Header().Get("Range"); r != "0-5" {
		t.Fatalf("Range %q", r)
	}
	// Out of order: a chunk that does not start where the upload ends.
	w = e.do(req{method: "PATCH", path: loc, body: content[10:], header: map[string]string{"Content-Range": "10-15"}})
	expect(t, w, http.StatusRequestedRangeNotSatisfiable, registry.CodeBlobUploadInvalid)
	// The same chunk again is out of order too.
	w = e.do(req{method: "PATCH", path: loc, body: content[:6], header: map[string]string{"Content-Range": "0-5"}})
	expect(t, w, http.StatusRequestedRangeNotSatisfiable, registry.CodeBlobUploadInvalid)
	w = e.do(req{method: "GET", path: loc})
	expect(t, w, http.StatusNoContent, "")
	if r := w.Header().Get("Range"); r != "0-5" {
		t.Fatalf("status Range %q", r)
	}
	// A streamed chunk (no Content-Range), then the last one with the PUT.
	w = e.do(req{method: "PATCH", path: loc, body: content[6:10], contentLength: -1})
	expect(t, w, http.StatusAccepted, "")
	w = e.do(req{method: "PUT", path: loc + "?digest=" + d.String(), body: content[10:], header: map[string]string{"Content-Range": "10-15"}})
	expect(t, w, http.StatusCreated, "")
	w = e.do(req{method: "GET", path: "/v2/r/blobs/" + d.String()})
	expect(t, w, http.StatusOK, "")
	if !bytes.Equal(w.Body.Bytes(), content) {
		t.Fatalf("blob %q", w.Body)
	}
	// The session is over.
	expect(t, e.do(req{method: "GET", path: loc}), http.StatusNotFound, registry.CodeBlobUploadUnknown)
}

// blobFiles counts the content files of the store.
func (e *env) blobFiles() int {
	n := 0
	filepath.WalkDir(filepath.Join(e.root, "blobs"), func(_ string, de os.DirEntry, _ error) error {
		if de != nil && !de.IsDir() {
			n++
		}
		return nil
	})
	return n
}

func TestWrongDigestStoresNothing(t *testing.T) {
	e := newEnv(t)
	wrong := digest.FromString("something else")
	// Monolithic.
	w := e.do(req{method: "POST", path: "/v2/r/blobs/uploads/?digest=" + wrong.String(), body: []byte("data")})
	expect(t, w, http.StatusBadRequest, registry.CodeDigestInvalid)
	expect(t, e.do(req{method: "HEAD", path: "/v2/r/blobs/" + wrong.String()}), http.StatusNotFound, "")
	expect(t, e.do(req{method: "GET", path: "/v2/r/blobs/" + digest.FromString("data").String()}), http.StatusNotFound, registry.CodeBlobUnknown)
	// Session.
	w = e.do(req{method: "POST", path: "/v2/r/blobs/uploads/"})
	loc := w.Header().Get("Location")
	expect(t, e.do(req{method: "PATCH", path: loc, body: []byte("data")}), http.StatusAccepted, "")
	expect(t, e.do(req{method: "PUT", path: loc + "?digest=" + wrong.String()}), http.StatusBadRequest, registry.CodeDigestInvalid)
	expect(t, e.do(req{method: "GET", path: loc}), http.StatusNotFound, registry.CodeBlobUploadUnknown)
	if n := e.blobFiles(); n != 0 {
		t.Fatalf("%d blob files stored after wrong digests", n)
	}
	// Malformed digests.
	expect(t, e.do(req{method: "POST", path: "/v2/r/blobs/uploads/?digest=sha256:xyz", body: []byte("x")}), http.StatusBadRequest, registry.CodeDigestInvalid)
	expect(t, e.do(req{method: "GET", path: "/v2/r/blobs/md5:abc"}), http.StatusBadRequest, registry.CodeDigestInvalid)
	expect(t, e.do(req{method: "PUT", path: loc}), http.StatusBadRequest, registry.CodeDigestInvalid)
}

func TestTruncatedAndOversizedUploads(t *testing.T) {
	e := newEnv(t)
	content := []byte("0123456789")
	d := digest.FromBytes(content)
	// Declares 20 bytes, sends 10.
	w := e.do(req{method: "POST", path: "/v2/r/blobs/uploads/?digest=" + d.String(), body: content, contentLength: 20})
	expect(t, w, http.StatusBadRequest, registry.CodeSizeInvalid)
	expect(t, e.do(req{method: "HEAD", path: "/v2/r/blobs/" + d.String()}), http.StatusNotFound, "")

	w = e.do(req{method: "POST", path: "/v2/r/blobs/uploads/"})
	loc := w.Header().Get("Location")
	// A chunk cut short leaves the upload where it was.
	w = e.do(req{method: "PATCH", path: loc, body: content[:4], contentLength: 10})
	expect(t, w, http.StatusBadRequest, registry.CodeSizeInvalid)
	w = e.do(req{method: "GET", path: loc})
	expect(t, w, http.StatusNoContent, "")
	if r := w.Header().Get("Range"); r != "0-0" {
		t.Fatalf("Range after a truncated chunk %q", r)
	}
	// Content-Range and Content-Length disagree.
	w = e.do(req{method: "PATCH", path: loc, body: content, header: map[string]string{"Content-Range": "0-3"}})
	expect(t, w, http.StatusBadRequest, registry.CodeSizeInvalid)
	// Malformed Content-Range.
	w = e.do(req{method: "PATCH", path: loc, body: content, header: map[string]string{"Content-Range": "9-0"}})
	expect(t, w, http.StatusRequestedRangeNotSatisfiable, registry.CodeBlobUploadInvalid)
	// Unknown and malformed upload ids, uploads of another repository.
	expect(t, e.do(req{method: "PATCH", path: "/v2/r/blobs/uploads/00000000-0000-0000-0000-000000000000", body: content}), http.StatusNotFound, registry.CodeBlobUploadUnknown)
	expect(t, e.do(req{method: "PATCH", path: "/v2/r/blobs/uploads/not.an.id", body: content}), http.StatusNotFound, registry.CodeBlobUploadUnknown)
	expect(t, e.do(req{method: "PATCH", path: "/v2/r/blobs/uploads/..%2f..%2fx", body: content}), http.StatusNotFound, registry.CodeUnsupported)
	other := strings.Replace(loc, "/v2/r/", "/v2/other/", 1)
	expect(t, e.do(req{method: "GET", path: other}), http.StatusNotFound, registry.CodeBlobUploadUnknown)
	// Cancel.
	expect(t, e.do(req{method: "DELETE", path: loc}), http.StatusNoContent, "")
	expect(t, e.do(req{method: "GET", path: loc}), http.StatusNotFound, registry.CodeBlobUploadUnknown)
}

func TestBadNames(t *testing.T) {
	e := newEnv(t)
	for _, name := range []string{"a/../b", "..", "a/./b", "Upper", "a//b", "a/", "_x", "a/_layers", "a%20b", "a:b", strings.Repeat("a", 256)} {
		w := e.do(req{method: "GET", path: "/v2/" + name + "/tags/list"})
		expect(t, w, http.StatusBadRequest, registry.CodeNameInvalid)
		w = e.do(req{method: "POST", path: "/v2/" + name + "/blobs/uploads/"})
		expect(t, w, http.StatusBadRequest, registry.CodeNameInvalid)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.root, "repos")); len(ents) != 0 {
		t.Fatalf("bad names created %d repositories", len(ents))
	}
	expect(t, e.do(req{method: "GET", path: "/v2/nothere/tags/list"}), http.StatusNotFound, registry.CodeNameUnknown)
	expect(t, e.do(req{method: "GET", path: "/v3/"}), http.StatusNotFound, registry.CodeUnsupported)
	expect(t, e.do(req{method: "POST", path: "/v2/r/tags/list"}), http.StatusMethodNotAllowed, registry.CodeUnsupported)
}

func TestManifestErrors(t *testing.T) {
	e := newEnv(t)
	cfg := []byte("{}")
	cd := e.pushBlob("r", cfg)
	missing := digest.FromString("missing layer")
	m := mustJSON(t, imageManifest(cd, 2, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: missing, Size: 13}))
	ct := map[string]string{"Content-Type": ocispec.MediaTypeImageManifest}
	expect(t, e.do(req{method: "PUT", path: "/v2/r/manifests/t", body: m, header: ct}), http.StatusBadRequest, registry.CodeManifestBlobUnknown)
	expect(t, e.do(req{method: "GET", path: "/v2/r/manifests/t"}), http.StatusNotFound, registry.CodeManifestUnknown)
	expect(t, e.do(req{method: "GET", path: "/v2/r/manifests/" + digest.FromBytes(m).String()}), http.StatusNotFound, registry.CodeManifestUnknown)
	// A blob of another repository is missing here too.
	ld := e.pushBlob("other", []byte("missing layer"))
	expect(t, e.do(req{method: "PUT", path: "/v2/r/manifests/t", body: m, header: ct}), http.StatusBadRequest, registry.CodeManifestBlobUnknown)
	// An index naming an unknown manifest.
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(m), Size: int64(len(m))}}}
	idx.SchemaVersion = 2
	expect(t, e.do(req{method: "PUT", path: "/v2/r/manifests/i", body: mustJSON(t, idx), header: map[string]string{"Content-Type": ocispec.MediaTypeImageIndex}}), http.StatusBadRequest, registry.CodeManifestBlobUnknown)
	// Pushed by a digest it does not have.
	good := mustJSON(t, imageManifest(cd, 2))
	expect(t, e.do(req{method: "PUT", path: "/v2/r/manifests/" + digest.FromString("x").String(), body: good, header: ct}), http.StatusBadRequest, registry.CodeDigestInvalid)
	// Not JSON, media type mismatch, bad tag, bad schema version.
	expect(t, e.do(req{method: "PUT", path: "/v2/r/manifests/t", body: []byte("{"), header: ct}), http.StatusBadRequest, registry.CodeManifestInvalid)
	expect(t, e.do(req{method: "PUT", path: "/v2/r/manifests/t", body: good, header: map[string]string{"Content-Type": ocispec.MediaTypeImageIndex}}), http.StatusBadRequest, registry.CodeManifestInvalid)
	expect(t, e.do(req{method: "PUT", path: "/v2/r/manifests/-bad", body: good, header: ct}), http.StatusBadRequest, registry.CodeManifestInvalid)
	expect(t, e.do(req{method: "PUT", path: "/v2/r/manifests/t", body: []byte(`{"schemaVersion":1,"config":{}}`), header: ct}), http.StatusBadRequest, registry.CodeManifestInvalid)
	// Huge.
	huge := append([]byte(`{"schemaVersion":2,"annotations":{"x":"`), bytes.Repeat([]byte("a"), registry.MaxManifestSize)...)
	huge = append(huge, `"}}`...)
	expect(t, e.do(req{method: "PUT", path: "/v2/r/manifests/t", body: huge, header: ct}), http.StatusRequestEntityTooLarge, registry.CodeSizeInvalid)
	expect(t, e.do(req{method: "PUT", path: "/v2/r/manifests/t", body: huge, header: ct, contentLength: -1}), http.StatusRequestEntityTooLarge, registry.CodeSizeInvalid)
	// Nothing of all that was stored: no tags; the daemon still serves.
	w := e.do(req{method: "GET", path: "/v2/r/tags/list"})
	expect(t, w, http.StatusOK, "")
	if strings.TrimSpace(w.Body.String()) != `{"name":"r","tags":[]}` {
		t.Fatalf("tags %s", w.Body)
	}
	// Once the layer is mounted, the manifest goes in.
	w = e.do(req{method: "POST", path: "/v2/r/blobs/uploads/?mount=" + ld.String() + "&from=other"})
	expect(t, w, http.StatusCreated, "")
	expect(t, e.do(req{method: "PUT", path: "/v2/r/manifests/t", body: m, header: ct}), http.StatusCreated, "")
}

func TestMountFallsBackToUpload(t *testing.T) {
	e := newEnv(t)
	d := digest.FromString("nowhere")
	w := e.do(req{method: "POST", path: "/v2/r/blobs/uploads/?mount=" + d.String() + "&from=other"})
	expect(t, w, http.StatusAccepted, "")
	if !strings.HasPrefix(w.Header().Get("Location"), "/v2/r/blobs/uploads/") {
		t.Fatalf("Location %q", w.Header().Get("Location"))
	}
}

func TestTagsPagination(t *testing.T) {
	e := newEnv(t)
	for _, tag := range []string{"c", "a", "b", "d"} {
		e.pushImage("r", tag, "s")
	}
	w := e.do(req{method: "GET", path: "/v2/r/tags/list?n=2"})
	expect(t, w, http.StatusOK, "")
	if strings.TrimSpace(w.Body.String()) != `{"name":"r","tags":["a","b"]}` {
		t.Fatalf("page 1 %s", w.Body)
	}
	link := w.Header().Get("Link")
	if link != `</v2/r/tags/list?last=b&n=2>; rel="next"` {
		t.Fatalf("Link %q", link)
	}
	w = e.do(req{method: "GET", path: "/v2/r/tags/list?last=b&n=2"})
	if strings.TrimSpace(w.Body.String()) != `{"name":"r","tags":["c","d"]}` {
		t.Fatalf("page 2 %s", w.Body)
	}
	w = e.do(req{method: "GET", path: "/v2/r/tags/list?last=d&n=2"})
	if strings.TrimSpace(w.Body.String()) != `{"name":"r","tags":[]}` || w.Header().Get("Link") != "" {
		t.Fatalf("page 3 %s %q", w.Body, w.Header().Get("Link"))
	}
	expect(t, e.do(req{method: "GET", path: "/v2/r/tags/list?n=-1"}), http.StatusBadRequest, registry.CodeUnsupported)
}

func TestReferrersAndDeletes(t *testing.T) {
	e := newEnv(t)
	subject, subjectBody := e.pushImage("r", "v1", "s")
	empty := e.pushBlob("r", []byte("{}"))
	var refs []digest.Digest
	for _, at := range []string{"application/vnd.example.sbom", "application/vnd.example.sig"} {
		m := imageManifest(empty, 2)
		m.ArtifactType = at
		m.Config.MediaType = ocispec.MediaTypeEmptyJSON
		m.Subject = &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: subject, Size: int64(len(subjectBody))}
		m.Annotations = map[string]string{"k": at}
		b := mustJSON(t, m)
		d := digest.FromBytes(b)
		w := e.do(req{method: "PUT", path: "/v2/r/manifests/" + d.String(), body: b, header: map[string]string{"Content-Type": ocispec.MediaTypeImageManifest}})
		expect(t, w, http.StatusCreated, "")
		if w.Header().Get("OCI-Subject") != subject.String() {
			t.Fatalf("OCI-Subject %q", w.Header().Get("OCI-Subject"))
		}
		refs = append(refs, d)
	}
	list := func(q string) (ocispec.Index, http.Header) {
		w := e.do(req{method: "GET", path: "/v2/r/referrers/" + subject.String() + q})
		expect(t, w, http.StatusOK, "")
		var idx ocispec.Index
		if err := json.Unmarshal(w.Body.Bytes(), &idx); err != nil {
			t.Fatal(err)
		}
		if idx.MediaType != ocispec.MediaTypeImageIndex || w.Header().Get("Content-Type") != ocispec.MediaTypeImageIndex {
			t.Fatalf("referrers media type %q", idx.MediaType)
		}
		return idx, w.Header()
	}
	if idx, _ := list(""); len(idx.Manifests) != 2 {
		t.Fatalf("referrers %+v", idx)
	}
	idx, hdr := list("?artifactType=application/vnd.example.sig")
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != refs[1] || idx.Manifests[0].Annotations["k"] != "application/vnd.example.sig" || hdr.Get("OCI-Filters-Applied") != "artifactType" {
		t.Fatalf("filtered referrers %+v %v", idx, hdr)
	}
	// Deleting a referrer drops it from the list.
	expect(t, e.do(req{method: "DELETE", path: "/v2/r/manifests/" + refs[0].String()}), http.StatusAccepted, "")
	if idx, _ := list(""); len(idx.Manifests) != 1 || idx.Manifests[0].Digest != refs[1] {
		t.Fatalf("referrers after delete %+v", idx)
	}
	// Referrers of an unknown subject: an empty index.
	w := e.do(req{method: "GET", path: "/v2/r/referrers/" + digest.FromString("none").String()})
	expect(t, w, http.StatusOK, "")
	if !strings.Contains(w.Body.String(), `"manifests":[]`) {
		t.Fatalf("empty referrers %s", w.Body)
	}
	// Tag delete keeps the manifest; manifest delete removes its tags.
	e.do(req{method: "PUT", path: "/v2/r/manifests/v2", body: subjectBody, header: map[string]string{"Content-Type": ocispec.MediaTypeImageManifest}})
	expect(t, e.do(req{method: "DELETE", path: "/v2/r/manifests/v1"}), http.StatusAccepted, "")
	expect(t, e.do(req{method: "GET", path: "/v2/r/manifests/v1"}), http.StatusNotFound, registry.CodeManifestUnknown)
	expect(t, e.do(req{method: "GET", path: "/v2/r/manifests/v2"}), http.StatusOK, "")
	expect(t, e.do(req{method: "DELETE", path: "/v2/r/manifests/" + subject.String()}), http.StatusAccepted, "")
	expect(t, e.do(req{method: "GET", path: "/v2/r/manifests/v2"}), http.StatusNotFound, registry.CodeManifestUnknown)
	expect(t, e.do(req{method: "DELETE", path: "/v2/r/manifests/" + subject.String()}), http.StatusNotFound, registry.CodeManifestUnknown)
	// Blob delete.
	expect(t, e.do(req{method: "DELETE", path: "/v2/r/blobs/" + empty.String()}), http.StatusAccepted, "")
	expect(t, e.do(req{method: "GET", path: "/v2/r/blobs/" + empty.String()}), http.StatusNotFound, registry.CodeBlobUnknown)
	expect(t, e.do(req{method: "DELETE", path: "/v2/r/blobs/" + empty.String()}), http.StatusNotFound, registry.CodeBlobUnknown)
}

// TestConcurrentTagPushes pushes many manifests to one tag at once over
// real HTTP: the tag ends on one of them, whole, and every read during the
// race sees a whole manifest.
func TestConcurrentTagPushes(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewServer(e.h)
	defer srv.Close()
	const n = 16
	cd := e.pushBlob("r", []byte("{}"))
	bodies := map[digest.Digest]bool{}
	var manifests [][]byte
	for i := 0; i < n; i++ {
		m := imageManifest(cd, 2)
		m.Annotations = map[string]string{"i": strings.Repeat(fmt.Sprint(i), 1000)}
		b := mustJSON(t, m)
		manifests = append(manifests, b)
		bodies[digest.FromBytes(b)] = true
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := 0; i < n; i++ {
		wg.Add(2)
		go func(b []byte) {
			defer wg.Done()
			r, _ := http.NewRequest("PUT", srv.URL+"/v2/r/manifests/latest", bytes.NewReader(b))
			r.Header.Set("Content-Type", ocispec.MediaTypeImageManifest)
			resp, err := http.DefaultClient.Do(r)
			if err != nil {
				errs <- err
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				errs <- fmt.Errorf("push: %s", resp.Status)
			}
		}(manifests[i])
		go func() {
			defer wg.Done()
			resp, err := http.Get(srv.URL + "/v2/r/manifests/latest")
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode == http.StatusOK && !bodies[digest.FromBytes(b)] {
				errs <- fmt.Errorf("read a manifest that was never pushed (%d bytes)", len(b))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	w := e.do(req{method: "GET", path: "/v2/r/manifests/latest"})
	expect(t, w, http.StatusOK, "")
	if d := digest.FromBytes(w.Body.Bytes()); !bodies[d] || w.Header().Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("tag points at %s, not one of the pushed manifests", d)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.root, "tmp")); len(ents) != 0 {
		t.Fatalf("%d temporary files left", len(ents))
	}
}

// TestUploadResumesAfterFailedChunk: after a chunk cut short the client
// resumes from the upload's Range and the blob is whole and verified.
func TestUploadResumesAfterFailedChunk(t *testing.T) {
	e := newEnv(t)
	content := []byte("the quick brown fox jumps over the lazy dog")
	d := digest.FromBytes(content)
	w := e.do(req{method: "POST", path: "/v2/r/blobs/uploads/"})
	loc := w.Header().Get("Location")
	expect(t, e.do(req{method: "PATCH", path: loc, body: content[:10]}), http.StatusAccepted, "")
	expect(t, e.do(req{method: "PATCH", path: loc, body: content[10:20], contentLength: 30}), http.StatusBadRequest, registry.CodeSizeInvalid)
	w = e.do(req{method: "GET", path: loc})
	if r := w.Header().Get("Range"); r != "0-9" {
		t.Fatalf("Range after a failed chunk %q", r)
	}
	expect(t, e.do(req{method: "PATCH", path: loc, body: content[10:], header: map[string]string{"Content-Range": fmt.Sprintf("10-%d", len(content)-1)}}), http.StatusAccepted, "")
	expect(t, e.do(req{method: "PUT", path: loc + "?digest=" + d.String()}), http.StatusCreated, "")
	w = e.do(req{method: "GET", path: "/v2/r/blobs/" + d.String()})
	if !bytes.Equal(w.Body.Bytes(), content) {
		t.Fatalf("blob %q", w.Body)
	}
	// sha512 uploads are verified too.
	d512 := digest.SHA512.FromBytes(content)
	w = e.do(req{method: "POST", path: "/v2/r/blobs/uploads/"})
	loc = w.Header().Get("Location")
	expect(t, e.do(req{method: "PATCH", path: loc, body: content}), http.StatusAccepted, "")
	expect(t, e.do(req{method: "PUT", path: loc + "?digest=" + digest.SHA512.FromString("x").String()}), http.StatusBadRequest, registry.CodeDigestInvalid)
	w = e.do(req{method: "POST", path: "/v2/r/blobs/uploads/"})
	loc = w.Header().Get("Location")
	expect(t, e.do(req{method: "PATCH", path: loc, body: content}), http.StatusAccepted, "")
	expect(t, e.do(req{method: "PUT", path: loc + "?digest=" + d512.String()}), http.StatusCreated, "")
}
