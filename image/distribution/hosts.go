package distribution

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/image/reference"
)

// Docker Hub's addresses.
const (
	// HubRegistryHost serves Docker Hub's distribution API.
	HubRegistryHost = "registry-1.docker.io"
	// IndexServer is the server address Docker uses for Hub logins.
	IndexServer = "https://index.docker.io/v1/"
)

// Endpoint is one way to reach a registry.
type Endpoint struct {
	// URL is the scheme and host ("https://registry-1.docker.io").
	URL *url.URL
	// Mirror is a pull-through mirror of Docker Hub: never pushed to, and
	// on failure the next endpoint is tried.
	Mirror bool
	// SkipVerify accepts any certificate (an insecure registry over TLS).
	SkipVerify bool
}

// Endpoints returns where the registry of domain is reached, in the
// order to try: Docker Hub's mirrors and then Docker Hub for
// "docker.io"; for an insecure registry (loopback, or named in
// c.Insecure by HOST:PORT, host or CIDR) HTTPS without verification and
// then plain HTTP; for any other, HTTPS.
func (c Config) Endpoints(domain string) ([]Endpoint, error) {
	domain = NormalizeDomain(domain)
	if domain == "" {
		return nil, fmt.Errorf("empty registry name: %w", errdefs.ErrInvalid)
	}
	if domain == reference.DefaultDomain {
		var eps []Endpoint
		for _, m := range c.Mirrors {
			u, err := ParseMirror(m)
			if err != nil {
				return nil, err
			}
			eps = append(eps, Endpoint{URL: u, Mirror: true, SkipVerify: u.Scheme == "https" && c.IsInsecure(u.Host)})
		}
		return append(eps, Endpoint{URL: &url.URL{Scheme: "https", Host: HubRegistryHost}}), nil
	}
	if c.IsInsecure(domain) {
		return []Endpoint{
			{URL: &url.URL{Scheme: "https", Host: domain}, SkipVerify: true},
			{URL: &url.URL{Scheme: "http", Host: domain}},
		}, nil
	}
	return []Endpoint{{URL: &url.URL{Scheme: "https", Host: domain}}}, nil
}

// IsInsecure reports whether a registry host (HOST or HOST:PORT) may be
// reached over plain HTTP: loopback hosts always, others when c.Insecure
// names them (HOST:PORT, HOST, or a CIDR holding the host's address).
func (c Config) IsInsecure(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	ip := net.ParseIP(host)
	if host == "localhost" || ip != nil && ip.IsLoopback() {
		return true
	}
	for _, s := range c.Insecure {
		if s == hostport || s == host {
			return true
		}
		if _, n, err := net.ParseCIDR(s); err == nil && ip != nil && n.Contains(ip) {
			return true
		}
	}
	return false
}

// ValidateInsecure checks an --insecure-registry value: HOST, HOST:PORT
// or a CIDR, without a scheme.
func ValidateInsecure(s string) error {
	if _, _, err := net.ParseCIDR(s); err == nil {
		return nil
	}
	if s == "" || strings.Contains(s, "://") || strings.ContainsAny(s, "/ ") {
		return fmt.Errorf("insecure registry %q: want HOST, HOST:PORT or a CIDR, without a scheme: %w", s, errdefs.ErrInvalid)
	}
	return nil
}

// ParseMirror checks a --registry-mirror URL: http or https, a host, no
// path beyond "/".
func ParseMirror(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("registry mirror %q: want an http:// or https:// URL: %w", s, errdefs.ErrInvalid)
	}
	if strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.User != nil {
		return nil, fmt.Errorf("registry mirror %q: a mirror URL has no path, query or user: %w", s, errdefs.ErrInvalid)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// NormalizeDomain turns a server address as docker login gives it
// ("https://index.docker.io/v1/", "localhost:5000", "http://reg:5000/")
// into a registry domain; Docker Hub's names all become "docker.io".
func NormalizeDomain(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	s, _, _ = strings.Cut(s, "/")
	s = strings.ToLower(s)
	switch s {
	case "", "docker.io", "index.docker.io", HubRegistryHost, "registry.hub.docker.com":
		if s == "" {
			return ""
		}
		return reference.DefaultDomain
	}
	return s
}
