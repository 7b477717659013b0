package registry

import (
	"errors"
	"net/http"
	"path"
	"strings"
)

// Authorizer decides whether a request may read (push false) or change
// (push true) a repository; repo is "" for the API root, which clients
// probe to learn whether they must log in.
type Authorizer interface {
	Authorize(r *http.Request, repo string, push bool) error
}

// Errors of an Authorizer.
var (
	ErrUnauthorized = errors.New("authentication required")
	ErrDenied       = errors.New("requested access to the resource is denied")
)

// Credentials check a user's password.
type Credentials interface {
	Check(user, password string) error
}

// BasicAuth is HTTP basic authentication (send it over TLS, or on
// loopback): every known user may pull and push; without credentials,
// repositories matching AnonymousPull may be pulled.
type BasicAuth struct {
	Users Credentials
	// AnonymousPull are repository patterns: path.Match patterns ("*"
	// stops at '/'), a pattern ending in "/**" matches everything under
	// its prefix, and "**" matches every repository.
	AnonymousPull []string
}

// Authorize implements Authorizer.
func (b *BasicAuth) Authorize(r *http.Request, repo string, push bool) error {
	if user, pass, ok := r.BasicAuth(); ok {
		if b.Users != nil && b.Users.Check(user, pass) == nil {
			return nil
		}
		return ErrUnauthorized
	}
	if !push && repo != "" && MatchRepo(b.AnonymousPull, repo) {
		return nil
	}
	return ErrUnauthorized
}

// MatchRepo reports whether repo matches one of the patterns.
func MatchRepo(patterns []string, repo string) bool {
	for _, p := range patterns {
		switch {
		case p == "**":
			return true
		case strings.HasSuffix(p, "/**"):
			if strings.HasPrefix(repo, strings.TrimSuffix(p, "**")) {
				return true
			}
		default:
			if ok, _ := path.Match(p, repo); ok {
				return true
			}
		}
	}
	return false
}
