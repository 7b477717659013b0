package distribution

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/image/reference"
	"github.com/cais-platform/cais/image/store"
)

// PullResult says what a pull stored.
type PullResult struct {
	// Target is the manifest or index the reference now names.
	Target ocispec.Descriptor
	// UpToDate: the reference named that image already.
	UpToDate bool
}

// Pull fetches the image ref names (with a tag or a digest) from its
// registry into st, for platform, and names it ref. Mirrors of Docker
// Hub that fail are passed over for the next endpoint.
func (c *Client) Pull(ctx context.Context, st *store.Store, ref reference.Reference, creds AuthConfig, platform ocispec.Platform, progress ProgressFunc) (PullResult, error) {
	if ref.Domain() == "" || ref.IsNameOnly() {
		return PullResult{}, fmt.Errorf("pull %s: a reference with a registry and a tag or digest is needed: %w", ref.String(), errdefs.ErrInvalid)
	}
	creds, err := creds.normalize()
	if err != nil {
		return PullResult{}, err
	}
	eps, err := c.cfg.Endpoints(ref.Domain())
	if err != nil {
		return PullResult{}, err
	}
	var lastErr error
	for i, ep := range eps {
		last := i == len(eps)-1
		s, err := c.open(ctx, ep, ref.Path(), creds, []string{"repository:" + ref.Path() + ":pull"})
		if err != nil {
			lastErr = err
			c.cfg.Log.Debug("registry endpoint", "url", ep.URL.String(), "err", err)
			if !last && (ep.Mirror || errors.Is(err, errdefs.ErrUnavailable)) {
				continue
			}
			return PullResult{}, err
		}
		p := &puller{c: c, s: s, st: st, ref: ref, platform: platform, progress: progress, wrote: map[digest.Digest]bool{}}
		res, err := p.pull(ctx)
		s.close()
		if err != nil && ep.Mirror && !last && !p.started {
			c.cfg.Log.Debug("registry mirror", "url", ep.URL.String(), "err", err)
			lastErr = err
			continue
		}
		return res, err
	}
	return PullResult{}, lastErr
}

type puller struct {
	c        *Client
	s        *session
	st       *store.Store
	ref      reference.Reference
	platform ocispec.Platform
	progress ProgressFunc
	// started: progress was shown, so no other endpoint is tried.
	started bool

	mu sync.Mutex
	// wrote are the blobs this pull stored (layers download at once).
	wrote map[digest.Digest]bool
}

// pullError words a failed manifest fetch as Docker does.
func (p *puller) pullError(err error) error {
	switch {
	case isRegistryCode(err, "NAME_UNKNOWN"), isRegistryCode(err, "UNAUTHORIZED"), isRegistryCode(err, "DENIED"):
		return fmt.Errorf("pull access denied for %s, repository does not exist or may require 'docker login': %w", p.ref.FamiliarName(), err)
	case errors.Is(err, errdefs.ErrNotFound):
		return fmt.Errorf("manifest for %s not found: %w", p.ref.Familiar(), err)
	}
	return err
}

func (p *puller) pull(ctx context.Context) (PullResult, error) {
	ref := p.ref
	tagOrDigest := ref.Tag()
	if ref.Digest() != "" {
		tagOrDigest = ref.Digest().String()
	}
	top, topBody, err := p.s.getManifest(ctx, tagOrDigest)
	if err != nil {
		return PullResult{}, p.pullError(err)
	}
	p.started = true
	p.progress.emit(Event{ID: tagOrDigest, Status: "Pulling from " + ref.Path()})

	if ref.Digest() == "" {
		if cur, err := p.st.Resolve(ref); err == nil && cur.Digest == top.Digest {
			if _, err := p.st.Layers(ctx, cur); err == nil {
				p.done(top, true)
				return PullResult{Target: top, UpToDate: true}, nil
			}
		}
	}
	// The manifest for this platform, and the index above it, if any.
	type doc struct {
		desc ocispec.Descriptor
		body []byte
	}
	docs := []doc{{top, topBody}}
	mdesc, mbody := top, topBody
	m, err := ParseManifest(top.MediaType, topBody)
	if err != nil {
		return PullResult{}, err
	}
	if m.IsIndex() {
		child, ok := PickPlatform(m.Manifests, p.platform)
		if !ok {
			return PullResult{}, fmt.Errorf("no matching manifest for %s/%s in the manifest list entries: %w", p.platform.OS, p.platform.Architecture, errdefs.ErrNotFound)
		}
		mdesc, mbody, err = p.s.getManifest(ctx, child.Digest.String())
		if err != nil {
			return PullResult{}, p.pullError(err)
		}
		if m, err = ParseManifest(mdesc.MediaType, mbody); err != nil {
			return PullResult{}, err
		}
		if m.IsIndex() {
			return PullResult{}, fmt.Errorf("index %s names an index for %s/%s, not an image: %w", top.Digest, p.platform.OS, p.platform.Architecture, errdefs.ErrInvalid)
		}
		docs = append([]doc{{mdesc, mbody}}, docs...)
	}

	// Every blob of the image is held while the pull runs, before any is
	// looked for in the store; if the pull fails, the blobs it wrote go
	// again, unless another pull holds them or an image uses them.
	need := []digest.Digest{m.Config.Digest}
	for _, l := range m.Layers {
		need = append(need, l.Digest)
	}
	for _, d := range docs {
		need = append(need, d.desc.Digest)
	}
	p.c.hold(need)
	succeeded := false
	defer func() {
		drop := map[digest.Digest]bool{}
		if !succeeded {
			p.mu.Lock()
			drop = p.wrote
			p.mu.Unlock()
		}
		// Not the request's context: a cancelled pull cleans up too.
		p.c.release(context.WithoutCancel(ctx), p.st, need, drop)
	}()

	// The config first: it says what the layers are.
	if err := p.fetch(ctx, m.Config, "", ""); err != nil {
		return PullResult{}, fmt.Errorf("image config: %w", err)
	}
	if _, err := p.st.Config(ocispec.Manifest{Config: m.Config, Layers: m.Layers}); err != nil {
		return PullResult{}, err
	}
	var missing []ocispec.Descriptor
	seen := map[digest.Digest]bool{}
	for _, l := range m.Layers {
		id := ShortID(l.Digest)
		if seen[l.Digest] {
			continue
		}
		seen[l.Digest] = true
		if size, err := p.st.BlobSize(l.Digest); err == nil && size == l.Size {
			p.progress.emit(Event{ID: id, Status: "Already exists"})
			continue
		}
		p.progress.emit(Event{ID: id, Status: "Pulling fs layer"})
		missing = append(missing, l)
	}
	if err := p.fetchAll(ctx, missing); err != nil {
		return PullResult{}, err
	}
	for _, d := range docs {
		if _, err := p.st.BlobSize(d.desc.Digest); err == nil {
			continue
		}
		if _, _, err := p.st.WriteBlob(ctx, bytes.NewReader(d.body), d.desc.Digest, d.desc.Size); err != nil {
			return PullResult{}, fmt.Errorf("manifest %s: %w", d.desc.Digest, err)
		}
		p.mu.Lock()
		p.wrote[d.desc.Digest] = true
		p.mu.Unlock()
	}
	// Unpacked now, so that a layer that is not what the config says
	// fails the pull rather than the first container.
	if _, err := p.st.Layers(ctx, top); err != nil {
		return PullResult{}, err
	}
	for _, l := range missing {
		p.progress.emit(Event{ID: ShortID(l.Digest), Status: "Pull complete"})
	}
	if ref.Tag() != "" && ref.Digest() == "" {
		err = p.st.Tag(ctx, ref, top)
	} else {
		err = p.st.AddDangling(ctx, top)
	}
	if err != nil {
		return PullResult{}, err
	}
	succeeded = true
	p.done(top, false)
	return PullResult{Target: top}, nil
}

func (p *puller) done(top ocispec.Descriptor, upToDate bool) {
	p.progress.emit(Event{Status: "Digest: " + top.Digest.String()})
	if upToDate {
		p.progress.emit(Event{Status: "Status: Image is up to date for " + p.ref.Familiar()})
	} else {
		p.progress.emit(Event{Status: "Status: Downloaded newer image for " + p.ref.Familiar()})
	}
}

// fetch copies a blob into the store, checking its digest and size;
// with an id, progress is shown under it.
func (p *puller) fetch(ctx context.Context, desc ocispec.Descriptor, id, status string) error {
	if size, err := p.st.BlobSize(desc.Digest); err == nil && size == desc.Size {
		return nil
	}
	rc, err := p.s.getBlob(ctx, desc.Digest)
	if err != nil {
		return err
	}
	defer rc.Close()
	// A registry that sends more than it should is cut at one byte over.
	var r io.Reader = io.LimitReader(rc, desc.Size+1)
	if id != "" {
		r = &progressReader{r: r, emit: p.progress, id: id, status: status, total: desc.Size}
	}
	p.mu.Lock()
	p.wrote[desc.Digest] = true // a partial write leaves nothing; marking early is harmless
	p.mu.Unlock()
	if _, _, err := p.st.WriteBlob(ctx, r, desc.Digest, desc.Size); err != nil {
		if errors.Is(err, store.ErrDigestMismatch) {
			// Docker's words; the store's error says what came instead.
			return fmt.Errorf("filesystem layer verification failed for digest %s: %w", desc.Digest, errdefs.ErrInvalid)
		}
		return err
	}
	if id != "" {
		p.progress.emit(Event{ID: id, Status: "Verifying Checksum"})
		p.progress.emit(Event{ID: id, Status: "Download complete"})
	}
	return nil
}

// maxConcurrentDownloads is how many layers a pull downloads at once
// (dockerd's default, --max-concurrent-downloads 3).
const maxConcurrentDownloads = 3

// fetchAll downloads layers, maxConcurrentDownloads at a time; the first
// error cancels the others and is returned.
func (p *puller) fetchAll(ctx context.Context, layers []ocispec.Descriptor) error {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, maxConcurrentDownloads)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for _, l := range layers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-cctx.Done():
				return
			}
			defer func() { <-sem }()
			if err := p.fetch(cctx, l, ShortID(l.Digest), "Downloading"); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}
