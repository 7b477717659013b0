package disk_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cais-platform/cais/registry"
	"github.com/cais-platform/cais/registry/disk"
)

type client struct {
	t    testing.TB
	h    http.Handler
	root string
}

func (c client) do(method, path string, body []byte, ct string) int {
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	if ct != "" {
		r.Header.Set("Content-Type", ct)
	}
	w := httptest.NewRecorder()
	c.h.ServeHTTP(w, r)
	return w.Code
}

func (c client) blob(repo string, b []byte) digest.Digest {
	d := digest.FromBytes(b)
	if code := c.do("POST", "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), b, ""); code != http.StatusCreated {
		c.t.Errorf("push blob: %d", code)
	}
	return d
}

// image pushes a config and layers and returns the manifest's bytes and
// the status of its PUT.
func (c client) image(repo, tag string, layers ...[]byte) ([]byte, int) {
	cfg := []byte(fmt.Sprintf(`{"tag":%q}`, tag))
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: c.blob(repo, cfg), Size: int64(len(cfg))}, Layers: []ocispec.Descriptor{}}
	m.SchemaVersion = 2
	for _, l := range layers {
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: c.blob(repo, l), Size: int64(len(l))})
	}
	b, _ := json.Marshal(m)
	return b, c.do("PUT", "/v2/"+repo+"/manifests/"+tag, b, ocispec.MediaTypeImageManifest)
}

func open(t testing.TB) (*disk.Store, client) {
	root := t.TempDir()
	st, err := disk.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	return st, client{t, registry.New(st, registry.Options{}), root}
}

// pullable checks that a manifest and every blob it names can be read.
func pullable(t testing.TB, c client, repo string, m []byte) {
	t.Helper()
	var doc ocispec.Manifest
	json.Unmarshal(m, &doc)
	if code := c.do("GET", "/v2/"+repo+"/manifests/"+digest.FromBytes(m).String(), nil, ""); code != http.StatusOK {
		t.Fatalf("manifest of %s: %d", repo, code)
	}
	for _, d := range append([]ocispec.Descriptor{doc.Config}, doc.Layers...) {
		if code := c.do("GET", "/v2/"+repo+"/blobs/"+d.Digest.String(), nil, ""); code != http.StatusOK {
			_, errContent := os.Stat(filepath.Join(c.root, "blobs", "sha256", d.Digest.Encoded()))
			_, errLink := os.Stat(filepath.Join(c.root, "repos", repo, "_layers", "sha256", d.Digest.Encoded()))
			t.Fatalf("blob %s (%s) of %s: %d (content: %v, link: %v)", d.Digest, d.MediaType, repo, code, errContent, errLink)
		}
	}
}

func TestGC(t *testing.T) {
	st, c := open(t)
	shared := []byte("shared layer")
	keep, code := c.image("app", "keep", shared, []byte("keep layer"))
	if code != http.StatusCreated {
		t.Fatal(code)
	}
	drop, _ := c.image("app", "drop", shared, []byte("drop layer"))
	c.do("DELETE", "/v2/app/manifests/"+digest.FromBytes(drop).String(), nil, "")
	orphan := c.blob("other", []byte("orphan"))
	c.do("DELETE", "/v2/other/blobs/"+orphan.String(), nil, "")

	ctx := context.Background()
	// With a grace period, nothing is recent enough to go.
	s, err := st.GC(ctx, disk.GCOptions{Grace: 3600e9, Unreferenced: true})
	if err != nil || s.Blobs != 0 || s.Unlinked != 0 {
		t.Fatalf("GC within grace: %+v %v", s, err)
	}
	// Without: the deleted manifest's content and the deleted blob go.
	s, err = st.GC(ctx, disk.GCOptions{})
	if err != nil || s.Blobs != 2 || s.Unlinked != 0 {
		t.Fatalf("GC: %+v %v", s, err)
	}
	// Unreferenced: the layers only the deleted manifest named go too.
	s, err = st.GC(ctx, disk.GCOptions{Unreferenced: true, DryRun: true})
	if err != nil || s.Blobs != 2 || s.Unlinked != 2 {
		t.Fatalf("GC dry run: %+v %v", s, err)
	}
	s, err = st.GC(ctx, disk.GCOptions{Unreferenced: true})
	if err != nil || s.Blobs != 2 || s.Unlinked != 2 {
		t.Fatalf("GC unreferenced: %+v %v", s, err)
	}
	pullable(t, c, "app", keep)
	if code := c.do("GET", "/v2/app/blobs/"+digest.FromBytes([]byte("drop layer")).String(), nil, ""); code != http.StatusNotFound {
		t.Fatalf("collected layer: %d", code)
	}
}

// TestGCWhilePushing runs collections with no grace period while images
// are pushed: a push may be refused (and retried by its client), but every
// manifest the registry accepted stays pullable.
func TestGCWhilePushing(t *testing.T) {
	st, c := open(t)
	var accepted sync.Map
	var stop atomic.Bool
	var wg sync.WaitGroup
	for p := 0; p < 4; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				tag := fmt.Sprintf("p%d-%d", p, i)
				// A push refused because a collection took its blobs
				// is pushed again, as clients do.
				for try := 0; try < 5; try++ {
					m, code := c.image("app", tag, []byte("base"), []byte(tag))
					if code == http.StatusCreated {
						accepted.Store(tag, m)
						break
					}
				}
				if i%3 == 0 {
					c.do("DELETE", "/v2/app/manifests/"+tag, nil, "")
					accepted.Delete(tag)
				}
			}
		}(p)
	}
	gcDone := make(chan struct{})
	go func() {
		defer close(gcDone)
		for !stop.Load() {
			if _, err := st.GC(context.Background(), disk.GCOptions{Unreferenced: true}); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	wg.Wait()
	stop.Store(true)
	<-gcDone
	n := 0
	accepted.Range(func(k, v any) bool {
		n++
		pullable(t, c, "app", v.([]byte))
		return true
	})
	if n == 0 {
		t.Fatal("no push was accepted")
	}
	t.Logf("%d tagged images pullable after concurrent collections", n)
}
