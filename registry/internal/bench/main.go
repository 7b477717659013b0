// Command bench pushes and pulls an image of many layers against an OCI
// registry, the way docker does (a session per layer: POST, PATCH, PUT;
// three layers at a time), and prints the times. scripts/registry-bench.sh
// runs it against the cais registry and the reference registry
// (distribution/distribution) on the same disk.
package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func main() {
	base := flag.String("url", "http://127.0.0.1:5000", "registry URL")
	repo := flag.String("repo", "bench/app", "repository")
	layers := flag.Int("layers", 20, "number of layers")
	total := flag.Int("mb", 200, "image size in MB")
	par := flag.Int("parallel", 3, "layers pushed and pulled at a time")
	flag.Parse()
	if err := run(*base, *repo, *layers, *total<<20, *par); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type blob struct {
	data []byte
	d    digest.Digest
}

func run(base, repo string, n, total, par int) error {
	blobs := make([]blob, n)
	for i := range blobs {
		b := make([]byte, total/n)
		rand.Read(b)
		blobs[i] = blob{b, digest.FromBytes(b)}
	}
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}}
	m.SchemaVersion = 2
	for _, b := range blobs {
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: b.d, Size: int64(len(b.data))})
	}
	manifest, _ := json.Marshal(m)
	c := &http.Client{Timeout: 5 * time.Minute}

	start := time.Now()
	if err := each(blobs, par, func(b blob) error { return push(c, base, repo, b) }); err != nil {
		return err
	}
	if err := push(c, base, repo, blob{cfg, digest.FromBytes(cfg)}); err != nil {
		return err
	}
	req, _ := http.NewRequest("PUT", base+"/v2/"+repo+"/manifests/latest", bytes.NewReader(manifest))
	req.Header.Set("Content-Type", ocispec.MediaTypeImageManifest)
	if err := expect(c.Do(req))(http.StatusCreated); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	pushT := time.Since(start)

	start = time.Now()
	resp, err := c.Get(base + "/v2/" + repo + "/manifests/latest")
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	var pulled int64
	var mu sync.Mutex
	err = each(blobs, par, func(b blob) error {
		resp, err := c.Get(base + "/v2/" + repo + "/blobs/" + b.d.String())
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		k, err := io.Copy(io.Discard, resp.Body)
		mu.Lock()
		pulled += k
		mu.Unlock()
		if resp.StatusCode != http.StatusOK || k != int64(len(b.data)) {
			return fmt.Errorf("pull %s: %s, %d bytes", b.d, resp.Status, k)
		}
		return err
	})
	if err != nil {
		return err
	}
	pullT := time.Since(start)
	mb := float64(total) / (1 << 20)
	fmt.Printf("push %.3f s %.0f MB/s pull %.3f s %.0f MB/s\n", pushT.Seconds(), mb/pushT.Seconds(), pullT.Seconds(), mb/pullT.Seconds())
	return nil
}

func each(blobs []blob, par int, fn func(blob) error) error {
	sem := make(chan struct{}, par)
	errs := make(chan error, len(blobs))
	var wg sync.WaitGroup
	for _, b := range blobs {
		wg.Add(1)
		sem <- struct{}{}
		go func(b blob) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(b); err != nil {
				errs <- err
			}
		}(b)
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func expect(resp *http.Response, err error) func(int) error {
	return func(status int) error {
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != status {
			b, _ := io.ReadAll(resp.Body)
			return fmt.Errorf("%s: %s", resp.Status, b)
		}
		io.Copy(io.Discard, resp.Body)
		return nil
	}
}

// push uploads a blob as docker does: a session, one PATCH, a PUT.
func push(c *http.Client, base, repo string, b blob) error {
	resp, err := c.Post(base+"/v2/"+repo+"/blobs/uploads/", "", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || loc == "" {
		return fmt.Errorf("start upload: %s", resp.Status)
	}
	if loc[0] == '/' {
		loc = base + loc
	}
	req, _ := http.NewRequest("PATCH", loc, bytes.NewReader(b.data))
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Content-Range", "0-"+strconv.Itoa(len(b.data)-1))
	resp, err = c.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("patch: %s", resp.Status)
	}
	if l := resp.Header.Get("Location"); l != "" {
		loc = l
		if loc[0] == '/' {
			loc = base + loc
		}
	}
	sep := "?"
	if bytes.ContainsRune([]byte(loc), '?') {
		sep = "&"
	}
	req, _ = http.NewRequest("PUT", loc+sep+"digest="+b.d.String(), nil)
	return expect(c.Do(req))(http.StatusCreated)
}
