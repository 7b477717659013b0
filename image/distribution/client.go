package distribution

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/image/store"
)

// Config is what a Client knows of registries.
type Config struct {
	// Insecure registries (HOST:PORT, HOST or CIDR) are reached over plain
	// HTTP, or over TLS without verifying their certificate; loopback
	// ones always are (caisd --insecure-registry).
	Insecure []string
	// Mirrors are pull-through mirrors of Docker Hub, tried before it
	// (caisd --registry-mirror).
	Mirrors []string
	// RootCAs returns the certificate authorities registries' TLS
	// certificates are verified against; nil uses the system's. It is
	// called for every session, so a CA that appears later (a node that
	// joins a pool) is used from then on.
	RootCAs func() (*x509.CertPool, error)
	// DialTimeout bounds connecting to a registry (default 10s): an
	// unreachable registry is an error within it, never a hang.
	DialTimeout time.Duration
	// UserAgent is sent with every request.
	UserAgent string
	// Log receives debug records of the endpoints tried.
	Log *slog.Logger
}

// Validate checks the insecure registries and mirrors.
func (c Config) Validate() error {
	var errs []error
	for _, s := range c.Insecure {
		errs = append(errs, ValidateInsecure(s))
	}
	for _, m := range c.Mirrors {
		_, err := ParseMirror(m)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Client talks to registries. It holds no connections between
// operations; it is safe for concurrent use.
type Client struct {
	cfg Config

	mu sync.Mutex
	// held counts the pulls in progress that need each blob: a failed
	// pull removes the blobs it wrote only when no other pull holds them.
	held map[digest.Digest]int
}

// New returns a Client.
func New(cfg Config) *Client {
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "cais"
	}
	return &Client{cfg: cfg, held: map[digest.Digest]int{}}
}

// hold marks blobs as needed by a pull in progress.
func (c *Client) hold(ds []digest.Digest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range ds {
		c.held[d]++
	}
}

// release ends a pull's hold; with drop, the blobs no other pull holds
// and no image uses are removed from st (the blobs a failed pull wrote).
func (c *Client) release(ctx context.Context, st *store.Store, ds []digest.Digest, drop map[digest.Digest]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range ds {
		c.held[d]--
		if c.held[d] > 0 {
			continue
		}
		delete(c.held, d)
		if drop[d] {
			if _, err := st.RemoveBlobIfUnused(ctx, d); err != nil {
				c.cfg.Log.Warn("removing a failed pull's blob", "digest", d, "err", err)
			}
		}
	}
}

// Config returns the client's configuration.
func (c *Client) Config() Config { return c.cfg }

// httpClient returns an HTTP client for an endpoint, trusting the
// configured authorities (or any certificate for an insecure one).
func (c *Client) httpClient(ep Endpoint) (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if ep.SkipVerify {
		tc.InsecureSkipVerify = true
	} else if c.cfg.RootCAs != nil {
		pool, err := c.cfg.RootCAs()
		if err != nil {
			return nil, fmt.Errorf("registry certificate authorities: %w", err)
		}
		tc.RootCAs = pool
	}
	d := &net.Dialer{Timeout: c.cfg.DialTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		TLSClientConfig:       tc,
		TLSHandshakeTimeout:   c.cfg.DialTimeout,
		ResponseHeaderTimeout: 60 * time.Second,
		ExpectContinueTimeout: time.Second,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       30 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{Transport: tr}, nil
}

// session is an authenticated conversation with one endpoint about one
// repository.
type session struct {
	c     *Client
	hc    *http.Client
	ep    Endpoint
	repo  string
	authz string // the Authorization header, if any
	// basicNoCreds: the registry wants basic authentication and there
	// are no credentials; a 401 then says so as Docker does.
	basicNoCreds bool
}

// close releases the session's idle connections.
func (s *session) close() { s.hc.CloseIdleConnections() }

func (s *session) url(p string) string { return s.ep.URL.String() + "/v2/" + s.repo + p }

// ping asks the endpoint's /v2/ and returns the response (body closed).
func (c *Client) ping(ctx context.Context, hc *http.Client, ep Endpoint) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ep.URL.String()+"/v2/", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, unavailable(err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	resp.Body.Close()
	return resp, nil
}

// unavailable marks a transport error (Docker shows its text as it is:
// Get "https://registry-1.docker.io/v2/": dial tcp: lookup ...).
func unavailable(err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w: %w", err, errdefs.ErrUnavailable)
}

// open starts a session with an endpoint for repo, authenticated for
// scopes ("repository:app:pull,push").
func (c *Client) open(ctx context.Context, ep Endpoint, repo string, creds AuthConfig, scopes []string) (*session, error) {
	hc, err := c.httpClient(ep)
	if err != nil {
		return nil, err
	}
	s := &session{c: c, hc: hc, ep: ep, repo: repo}
	resp, err := c.ping(ctx, hc, ep)
	if err != nil {
		return nil, err
	}
	c.cfg.Log.Debug("registry ping", "url", ep.URL.String(), "status", resp.StatusCode)
	switch {
	case resp.StatusCode == http.StatusOK:
		if creds.RegistryToken != "" {
			s.authz = "Bearer " + creds.RegistryToken
		}
		return s, nil
	case resp.StatusCode != http.StatusUnauthorized:
		return nil, fmt.Errorf("%s %s/v2/: %w", "GET", ep.URL, &registryError{status: resp.StatusCode})
	}
	if creds.RegistryToken != "" {
		s.authz = "Bearer " + creds.RegistryToken
		return s, nil
	}
	chs := ParseChallenges(resp.Header.Values("Www-Authenticate"))
	for _, ch := range chs {
		if ch.Scheme == "bearer" {
			tok, err := c.fetchToken(ctx, hc, ch, creds, scopes, false)
			if err != nil {
				return nil, err
			}
			s.authz = "Bearer " + tok.Token
			return s, nil
		}
	}
	for _, ch := range chs {
		if ch.Scheme == "basic" {
			if creds.hasBasic() {
				s.authz = basicAuth(creds.Username, creds.Password)
			} else {
				s.basicNoCreds = true
			}
			return s, nil
		}
	}
	return nil, fmt.Errorf("registry %s asks for authentication cais does not speak (%s): %w", ep.URL.Host, resp.Header.Get("Www-Authenticate"), errdefs.ErrUnauthenticated)
}

func basicAuth(user, pass string) string {
	r := http.Request{Header: http.Header{}}
	r.SetBasicAuth(user, pass)
	return r.Header.Get("Authorization")
}

// tokenResponse is a token server's answer.
type tokenResponse struct {
	Token        string `json:"token"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

// maxTokenResponse bounds a token server's answer.
const maxTokenResponse = 1 << 20

// fetchToken gets a bearer token from the challenge's realm for scopes:
// GET with basic credentials, or POST with the identity token (OAuth2
// refresh grant). offline asks for a refresh token too (docker login).
func (c *Client) fetchToken(ctx context.Context, hc *http.Client, ch Challenge, creds AuthConfig, scopes []string, offline bool) (tokenResponse, error) {
	realm, err := url.Parse(ch.Params["realm"])
	if err != nil || (realm.Scheme != "https" && realm.Scheme != "http") || realm.Host == "" {
		return tokenResponse{}, fmt.Errorf("registry's token realm %q is not an http(s) URL: %w", ch.Params["realm"], errdefs.ErrInvalid)
	}
	var req *http.Request
	if creds.IdentityToken != "" {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {creds.IdentityToken}, "client_id": {"cais"}}
		if svc := ch.Params["service"]; svc != "" {
			form.Set("service", svc)
		}
		if len(scopes) > 0 {
			form.Set("scope", strings.Join(scopes, " "))
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, realm.String(), strings.NewReader(form.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		q := realm.Query()
		if svc := ch.Params["service"]; svc != "" {
			q.Set("service", svc)
		}
		for _, sc := range scopes {
			q.Add("scope", sc)
		}
		if creds.Username != "" {
			q.Set("account", creds.Username)
		}
		if offline {
			q.Set("offline_token", "true")
			q.Set("client_id", "cais")
		}
		realm.RawQuery = q.Encode()
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
		if err == nil && creds.hasBasic() {
			req.SetBasicAuth(creds.Username, creds.Password)
		}
	}
	if err != nil {
		return tokenResponse{}, err
	}
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	resp, err := hc.Do(req)
	if err != nil {
		return tokenResponse{}, unavailable(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return tokenResponse{}, responseError(resp)
	}
	var tr tokenResponse
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponse+1))
	if err != nil {
		return tokenResponse{}, unavailable(err)
	}
	if len(b) > maxTokenResponse {
		return tokenResponse{}, fmt.Errorf("token server's answer larger than %d bytes: %w", maxTokenResponse, errdefs.ErrInvalid)
	}
	if err := json.Unmarshal(b, &tr); err != nil {
		return tokenResponse{}, fmt.Errorf("token server's answer: %v: %w", err, errdefs.ErrInvalid)
	}
	if tr.Token == "" {
		tr.Token = tr.AccessToken
	}
	if tr.Token == "" {
		return tokenResponse{}, fmt.Errorf("token server gave no token: %w", errdefs.ErrUnauthenticated)
	}
	return tr, nil
}

// do sends a request in the session. A 2xx response is returned for the
// caller to read and close; any other is turned into an error (a 404 to
// HEAD too: callers that expect it check errdefs.ErrNotFound).
func (s *session) do(ctx context.Context, method, u string, body io.Reader, size int64, hdr http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if body != nil && size >= 0 {
		req.ContentLength = size
		if size == 0 {
			req.Body = http.NoBody
		}
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", s.c.cfg.UserAgent)
	if s.authz != "" {
		req.Header.Set("Authorization", s.authz)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return nil, unavailable(err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized && s.basicNoCreds {
		return nil, fmt.Errorf("%s %q: %w", opName(method), u, ErrNoBasicAuthCredentials)
	}
	return nil, responseError(resp)
}

// opName is a method as Go's url.Error shows it ("Head").
func opName(method string) string {
	return method[:1] + strings.ToLower(method[1:])
}

// getManifest fetches a manifest or index by tag or digest and checks
// it against the digest (the reference's, else the registry's
// Docker-Content-Digest header, else sha256 of the body).
func (s *session) getManifest(ctx context.Context, ref string) (ocispec.Descriptor, []byte, error) {
	resp, err := s.do(ctx, http.MethodGet, s.url("/manifests/"+ref), nil, -1, http.Header{"Accept": {manifestAccept}})
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	defer resp.Body.Close()
	if resp.ContentLength > MaxManifestSize {
		return ocispec.Descriptor{}, nil, fmt.Errorf("manifest %s is %d bytes, more than %d: %w", ref, resp.ContentLength, MaxManifestSize, errdefs.ErrInvalid)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxManifestSize+1))
	if err != nil {
		return ocispec.Descriptor{}, nil, unavailable(err)
	}
	if len(b) > MaxManifestSize {
		return ocispec.Descriptor{}, nil, fmt.Errorf("manifest %s is larger than %d bytes: %w", ref, MaxManifestSize, errdefs.ErrInvalid)
	}
	want := digest.Digest(ref)
	if want.Validate() != nil {
		want = digest.Digest(resp.Header.Get("Docker-Content-Digest"))
		if want.Validate() != nil {
			want = digest.FromBytes(b)
		}
	}
	if got := want.Algorithm().FromBytes(b); got != want {
		return ocispec.Descriptor{}, nil, fmt.Errorf("manifest %s: content has digest %s, expected %s: %w", ref, got, want, errdefs.ErrInvalid)
	}
	m, err := ParseManifest(resp.Header.Get("Content-Type"), b)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	return ocispec.Descriptor{MediaType: m.MediaType, Digest: want, Size: int64(len(b))}, b, nil
}

// getBlob opens a blob for reading; the caller checks its digest.
func (s *session) getBlob(ctx context.Context, d digest.Digest) (io.ReadCloser, error) {
	resp, err := s.do(ctx, http.MethodGet, s.url("/blobs/"+d.String()), nil, -1, nil)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d, err)
	}
	return resp.Body, nil
}

// blobExists asks whether the repository has a blob.
func (s *session) blobExists(ctx context.Context, d digest.Digest) (bool, error) {
	resp, err := s.do(ctx, http.MethodHead, s.url("/blobs/"+d.String()), nil, -1, nil)
	if errors.Is(err, errdefs.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	return true, nil
}

// mountBlob asks the registry to link a blob from another repository;
// false when it opened an upload session instead (which is cancelled).
func (s *session) mountBlob(ctx context.Context, d digest.Digest, from string) (bool, error) {
	q := url.Values{"mount": {d.String()}, "from": {from}}
	resp, err := s.do(ctx, http.MethodPost, s.url("/blobs/uploads/?"+q.Encode()), http.NoBody, 0, nil)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusCreated {
		return true, nil
	}
	if loc, err := s.location(resp); err == nil {
		if r, err := s.do(ctx, http.MethodDelete, loc, nil, -1, nil); err == nil {
			r.Body.Close()
		}
	}
	return false, nil
}

// location resolves an upload's Location header against the endpoint.
func (s *session) location(resp *http.Response) (string, error) {
	loc := resp.Header.Get("Location")
	if loc == "" {
		return "", fmt.Errorf("registry gave no upload location: %w", errdefs.ErrInvalid)
	}
	u, err := resp.Request.URL.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("upload location %q: %v: %w", loc, err, errdefs.ErrInvalid)
	}
	return u.String(), nil
}

// pushBlob uploads a blob: POST opens a session, one PUT with the whole
// content and its digest ends it (a monolithic upload, which every
// registry takes).
func (s *session) pushBlob(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	resp, err := s.do(ctx, http.MethodPost, s.url("/blobs/uploads/"), http.NoBody, 0, nil)
	if err != nil {
		return fmt.Errorf("blob upload: %w", err)
	}
	resp.Body.Close()
	loc, err := s.location(resp)
	if err != nil {
		return err
	}
	u, _ := url.Parse(loc)
	q := u.Query()
	q.Set("digest", desc.Digest.String())
	u.RawQuery = q.Encode()
	resp, err = s.do(ctx, http.MethodPut, u.String(), r, desc.Size, http.Header{"Content-Type": {"application/octet-stream"}})
	if err != nil {
		return fmt.Errorf("blob %s upload: %w", desc.Digest, err)
	}
	resp.Body.Close()
	return nil
}

// putManifest uploads a manifest under a tag (or its digest) and checks
// the digest the registry computed.
func (s *session) putManifest(ctx context.Context, ref string, desc ocispec.Descriptor, body []byte) error {
	resp, err := s.do(ctx, http.MethodPut, s.url("/manifests/"+ref), bytes.NewReader(body), int64(len(body)), http.Header{"Content-Type": {desc.MediaType}})
	if err != nil {
		return err
	}
	resp.Body.Close()
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != desc.Digest.String() {
		return fmt.Errorf("registry stored manifest as %s, expected %s: %w", got, desc.Digest, errdefs.ErrInvalid)
	}
	return nil
}
