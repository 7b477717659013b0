package distribution

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/image/reference"
	"github.com/cais-platform/cais/image/store"
)

// maxConcurrentUploads is how many layers a push sends at once
// (dockerd's default, --max-concurrent-uploads 5).
const maxConcurrentUploads = 5

// PushResult is what a push of one tag made: Docker's aux message.
type PushResult struct {
	Tag    string
	Digest digest.Digest
	Size   int64
}

// Push sends the image ref (with a tag) names in st to its registry: the
// layers it lacks (mounted from another of its repositories when one of
// the store's images came from there), the config, and the manifest as
// stored, so the registry's digests are the store's.
func (c *Client) Push(ctx context.Context, st *store.Store, ref reference.Reference, creds AuthConfig, progress ProgressFunc) (PushResult, error) {
	if ref.Domain() == "" || ref.Tag() == "" {
		return PushResult{}, fmt.Errorf("push %s: a reference with a registry and a tag is needed: %w", ref.String(), errdefs.ErrInvalid)
	}
	creds, err := creds.normalize()
	if err != nil {
		return PushResult{}, err
	}
	target, err := st.Resolve(ref)
	if errors.Is(err, errdefs.ErrNotFound) {
		return PushResult{}, fmt.Errorf("An image does not exist locally with the tag: %s: %w", ref.FamiliarName(), errdefs.ErrNotFound)
	}
	if err != nil {
		return PushResult{}, err
	}
	mdesc, m, err := st.Manifest(target)
	if err != nil {
		return PushResult{}, err
	}
	cfg, err := st.Config(m)
	if err != nil {
		return PushResult{}, err
	}
	mounts := mountSources(st, ref, m.Layers)
	scopes := []string{"repository:" + ref.Path() + ":pull,push"}
	for _, from := range sortedValues(mounts) {
		scopes = append(scopes, "repository:"+from+":pull")
	}
	eps, err := c.cfg.Endpoints(ref.Domain())
	if err != nil {
		return PushResult{}, err
	}
	var s *session
	for _, ep := range eps {
		if ep.Mirror {
			continue
		}
		s, err = c.open(ctx, ep, ref.Path(), creds, scopes)
		if err == nil {
			break
		}
		c.cfg.Log.Debug("registry endpoint", "url", ep.URL.String(), "err", err)
		if !errors.Is(err, errdefs.ErrUnavailable) {
			break
		}
	}
	if err != nil {
		return PushResult{}, err
	}
	defer s.close()
	progress.emit(Event{Status: "The push refers to repository [" + ref.Name() + "]"})

	// Layers are shown top first, by their DiffIDs, as Docker does.
	ids := make([]string, len(m.Layers))
	for i := range m.Layers {
		ids[i] = ShortID(cfg.RootFS.DiffIDs[i])
	}
	for i := len(m.Layers) - 1; i >= 0; i-- {
		progress.emit(Event{ID: ids[i], Status: "Preparing"})
	}
	// The layers go up maxConcurrentUploads at a time; the first error
	// cancels the others.
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, maxConcurrentUploads)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	done := map[digest.Digest]bool{}
	for i := len(m.Layers) - 1; i >= 0; i-- {
		l := m.Layers[i]
		if done[l.Digest] {
			continue
		}
		done[l.Digest] = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-cctx.Done():
				return
			}
			defer func() { <-sem }()
			status, err := pushBlob(cctx, s, st, l, mounts[l.Digest], ids[i], progress)
			if err != nil {
				once.Do(func() { first = err; cancel() })
				return
			}
			progress.emit(Event{ID: ids[i], Status: status})
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	if errors.Is(first, ErrNoBasicAuthCredentials) {
		// Docker's push says just that, under the layers' lines.
		return PushResult{}, ErrNoBasicAuthCredentials
	}
	if first != nil {
		return PushResult{}, first
	}
	if _, err := pushBlob(ctx, s, st, m.Config, "", "", nil); err != nil {
		return PushResult{}, fmt.Errorf("image config: %w", err)
	}
	f, err := st.OpenBlob(mdesc.Digest)
	if err != nil {
		return PushResult{}, err
	}
	body, err := io.ReadAll(io.LimitReader(f, MaxManifestSize+1))
	f.Close()
	if err != nil {
		return PushResult{}, err
	}
	if len(body) > MaxManifestSize {
		return PushResult{}, fmt.Errorf("manifest %s larger than %d bytes: %w", mdesc.Digest, MaxManifestSize, errdefs.ErrInvalid)
	}
	if err := s.putManifest(ctx, ref.Tag(), mdesc, body); err != nil {
		return PushResult{}, err
	}
	res := PushResult{Tag: ref.Tag(), Digest: mdesc.Digest, Size: mdesc.Size}
	progress.emit(Event{Status: fmt.Sprintf("%s: digest: %s size: %d", res.Tag, res.Digest, res.Size)})
	progress.emit(Event{Aux: &res})
	return res, nil
}

// pushBlob makes the registry have a blob: it has it already ("Layer
// already exists"), it mounts it from another repository ("Mounted from
// app"), or it is uploaded ("Pushed").
func pushBlob(ctx context.Context, s *session, st *store.Store, desc ocispec.Descriptor, from, id string, progress ProgressFunc) (string, error) {
	ok, err := s.blobExists(ctx, desc.Digest)
	if err != nil {
		return "", err
	}
	if ok {
		return "Layer already exists", nil
	}
	if from != "" {
		if ok, err := s.mountBlob(ctx, desc.Digest, from); err == nil && ok {
			return "Mounted from " + from, nil
		}
	}
	f, err := st.OpenBlob(desc.Digest)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var r io.Reader = f
	if id != "" {
		r = &progressReader{r: f, emit: progress, id: id, status: "Pushing", total: desc.Size}
	}
	if err := s.pushBlob(ctx, desc, r); err != nil {
		return "", err
	}
	return "Pushed", nil
}

// mountSources finds, for each layer, another repository of the same
// registry that an image of the store is named from and that uses the
// layer: the registry likely has it there.
func mountSources(st *store.Store, ref reference.Reference, layers []ocispec.Descriptor) map[digest.Digest]string {
	want := map[digest.Digest]bool{}
	for _, l := range layers {
		want[l.Digest] = true
	}
	out := map[digest.Digest]string{}
	imgs, err := st.List()
	if err != nil {
		return out
	}
	for _, img := range imgs {
		var repos []string
		for _, n := range img.Names {
			r, err := reference.ParseNormalized(n)
			if err == nil && r.Domain() == ref.Domain() && r.Path() != ref.Path() {
				repos = append(repos, r.Path())
			}
		}
		if len(repos) == 0 {
			continue
		}
		_, m, err := st.Manifest(img.Target)
		if err != nil {
			continue
		}
		for _, l := range m.Layers {
			if want[l.Digest] && out[l.Digest] == "" {
				out[l.Digest] = repos[0]
			}
		}
	}
	return out
}

func sortedValues(m map[digest.Digest]string) []string {
	set := map[string]bool{}
	for _, v := range m {
		set[v] = true
	}
	out := make([]string, 0, len(set))
	for v := range set {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}
