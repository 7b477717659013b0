package dockerapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cais-platform/cais/engine/events"
	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/image/distribution"
	"github.com/cais-platform/cais/image/reference"
)

// The registry side of the Docker API: docker login (POST /auth), pull
// (POST /images/create?fromImage=) and push (POST /images/NAME/push),
// over package distribution.

// postAuth is docker login: the credentials are checked against the
// registry and not kept (the CLI keeps them).
func (s *Server) postAuth(w http.ResponseWriter, r *http.Request) {
	var creds distribution.AuthConfig
	if err := decodeBody(r, &creds); err != nil {
		writeError(w, err)
		return
	}
	res, err := s.registries.Login(r.Context(), creds)
	if err != nil {
		s.log.Info("registry login failed", "server", creds.ServerAddress, "user", creds.Username, "err", err)
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"Status": res.Status, "IdentityToken": res.IdentityToken})
}

// registryAuth reads the X-Registry-Auth header.
func registryAuth(r *http.Request) (distribution.AuthConfig, error) {
	return distribution.DecodeAuthHeader(r.Header.Get("X-Registry-Auth"))
}

// progressMessage is one line of Docker's JSON progress stream.
type progressMessage struct {
	Status         string                   `json:"status,omitempty"`
	ProgressDetail *progressDetail          `json:"progressDetail,omitempty"`
	ID             string                   `json:"id,omitempty"`
	Error          string                   `json:"error,omitempty"`
	ErrorDetail    *errorDetail             `json:"errorDetail,omitempty"`
	Aux            *distribution.PushResult `json:"aux,omitempty"`
}

type progressDetail struct {
	Current int64 `json:"current,omitempty"`
	Total   int64 `json:"total,omitempty"`
}

type errorDetail struct {
	Message string `json:"message"`
}

// progressStream writes events as Docker's JSON stream. The response
// starts with the first event: an operation that fails before any (no
// such image, registry unreachable, unauthorized) answers with an HTTP
// error, as Docker's does, and the CLI shows "Error response from
// daemon: ...".
type progressStream struct {
	w       http.ResponseWriter
	mu      sync.Mutex
	started bool
	enc     *json.Encoder
}

func newProgressStream(w http.ResponseWriter) *progressStream {
	return &progressStream{w: w, enc: json.NewEncoder(newFlushWriter(w))}
}

func (p *progressStream) start() {
	if !p.started {
		p.started = true
		p.w.Header().Set("Content-Type", "application/json")
		p.w.WriteHeader(http.StatusOK)
	}
}

func (p *progressStream) event(e distribution.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.start()
	m := progressMessage{Status: e.Status, ID: e.ID, ProgressDetail: &progressDetail{Current: e.Current, Total: e.Total}, Aux: e.Aux}
	p.enc.Encode(m)
}

// fail ends the stream with an error: an HTTP error if nothing was sent.
// A registry's refusal of the credentials is not a 401 of the API, as in
// Docker: the CLI answers a 401 by prompting for a login ("Login prior to
// pull:") and trying again.
func (p *progressStream) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if errors.Is(err, errdefs.ErrUnauthenticated) {
		err = errors.New(errdefs.Message(err))
	}
	if !p.started {
		writeError(p.w, err)
		return
	}
	msg := errdefs.Message(err)
	p.enc.Encode(progressMessage{Error: msg, ErrorDetail: &errorDetail{Message: msg}})
}

// pullImage is docker pull, and the pull docker run does when create
// answered "No such image".
func (s *Server) pullImage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ref, err := pullReference(q.Get("fromImage"), q.Get("tag"))
	if err != nil {
		writeError(w, err)
		return
	}
	platform, err := parsePlatform(q.Get("platform"))
	if err != nil {
		writeError(w, err)
		return
	}
	creds, err := registryAuth(r)
	if err != nil {
		writeError(w, err)
		return
	}
	ps := newProgressStream(w)
	res, err := s.registries.Pull(r.Context(), s.e.Images(), ref, creds, platform, ps.event)
	if err != nil {
		s.log.Info("image pull failed", "ref", ref.String(), "err", err)
		ps.fail(err)
		return
	}
	s.log.Info("image pulled", "ref", ref.String(), "digest", res.Target.Digest, "up_to_date", res.UpToDate)
	s.e.Publish(events.Image, "pull", ref.Familiar(), map[string]string{"name": ref.FamiliarName()})
}

// pullReference builds the reference of POST /images/create: fromImage
// may hold a tag or digest itself; tag may be a tag or a digest.
func pullReference(from, tag string) (reference.Reference, error) {
	ref, err := reference.ParseNormalized(from)
	if err != nil {
		return ref, err
	}
	switch {
	case tag == "":
	case strings.Contains(tag, ":"):
		if ref, err = ref.WithDigest(digest.Digest(tag)); err != nil {
			return ref, err
		}
	default:
		if ref, err = ref.WithTag(tag); err != nil {
			return ref, err
		}
	}
	if d := ref.Digest(); d != "" && ref.Tag() != "" {
		// name:tag@digest pulls by digest.
		ref, _ = ref.TrimmedName().WithDigest(d)
	}
	return ref.WithDefaultTag(), nil
}

// parsePlatform reads "os/arch[/variant]"; empty is this machine's.
func parsePlatform(s string) (ocispec.Platform, error) {
	p := ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
	if s == "" {
		return p, nil
	}
	parts := strings.Split(strings.ToLower(s), "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return p, invalid("invalid platform %q: want os/arch[/variant]", s)
	}
	p.OS, p.Architecture = parts[0], parts[1]
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// pushImage is docker push: the tag given, or every tag of the
// repository when none is.
func (s *Server) pushImage(w http.ResponseWriter, r *http.Request, name string) {
	ref, err := reference.ParseNormalized(name)
	if err != nil {
		writeError(w, err)
		return
	}
	if ref.Digest() != "" {
		writeError(w, invalid("cannot push a digest reference"))
		return
	}
	var refs []reference.Reference
	switch tag := r.URL.Query().Get("tag"); {
	case tag != "":
		rt, err := ref.TrimmedName().WithTag(tag)
		if err != nil {
			writeError(w, err)
			return
		}
		refs = append(refs, rt)
	case ref.Tag() != "":
		refs = append(refs, ref)
	default:
		refs, err = s.repositoryTags(ref)
		if err != nil {
			writeError(w, err)
			return
		}
	}
	creds, err := registryAuth(r)
	if err != nil {
		writeError(w, err)
		return
	}
	ps := newProgressStream(w)
	header := false
	progress := func(e distribution.Event) {
		// One "The push refers to repository" line for all the tags.
		if strings.HasPrefix(e.Status, "The push refers to repository ") {
			if header {
				return
			}
			header = true
		}
		ps.event(e)
	}
	for _, rt := range refs {
		res, err := s.registries.Push(r.Context(), s.e.Images(), rt, creds, progress)
		if err != nil {
			s.log.Info("image push failed", "ref", rt.String(), "err", err)
			ps.fail(err)
			return
		}
		s.log.Info("image pushed", "ref", rt.String(), "digest", res.Digest)
		s.e.Publish(events.Image, "push", rt.Familiar(), map[string]string{"name": rt.FamiliarName()})
	}
}

// repositoryTags lists the local tags of a repository, for a push
// without a tag.
func (s *Server) repositoryTags(repo reference.Reference) ([]reference.Reference, error) {
	imgs, err := s.e.Images().List()
	if err != nil {
		return nil, err
	}
	var out []reference.Reference
	for _, img := range imgs {
		for _, n := range img.Names {
			if r, err := reference.ParseNormalized(n); err == nil && r.Name() == repo.Name() && r.Tag() != "" {
				out = append(out, r)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("An image does not exist locally with the tag: %s: %w", repo.FamiliarName(), errdefs.ErrNotFound)
	}
	return out, nil
}

// registryConfig is docker info's RegistryConfig: the insecure
// registries (names, and CIDRs with loopback's always there) and Docker
// Hub's mirrors, as `docker info` lists them.
func (s *Server) registryConfig() map[string]any {
	cfg := s.registries.Config()
	mirrors := []string{}
	for _, m := range cfg.Mirrors {
		if u, err := distribution.ParseMirror(m); err == nil {
			mirrors = append(mirrors, u.String()+"/") // Docker shows them so
		}
	}
	cidrs := []string{"127.0.0.0/8"}
	indexes := map[string]any{
		"docker.io": map[string]any{"Name": "docker.io", "Mirrors": mirrors, "Secure": true, "Official": true},
	}
	for _, r := range cfg.Insecure {
		if _, _, err := net.ParseCIDR(r); err == nil {
			cidrs = append(cidrs, r)
			continue
		}
		indexes[r] = map[string]any{"Name": r, "Mirrors": []string{}, "Secure": false, "Official": false}
	}
	return map[string]any{"IndexConfigs": indexes, "InsecureRegistryCIDRs": cidrs, "Mirrors": mirrors}
}
