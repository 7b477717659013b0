package distribution

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/cais-platform/cais/errdefs"
)

// AuthConfig is the credentials the docker CLI sends: the body of
// POST /auth, and the X-Registry-Auth header of pulls and pushes.
type AuthConfig struct {
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// Auth is "username:password" in base64, as in the CLI's config file.
	Auth          string `json:"auth,omitempty"`
	Email         string `json:"email,omitempty"`
	ServerAddress string `json:"serveraddress,omitempty"`
	// IdentityToken is a refresh token for a token server.
	IdentityToken string `json:"identitytoken,omitempty"`
	// RegistryToken is a bearer token to send as it is.
	RegistryToken string `json:"registrytoken,omitempty"`
}

// maxAuthHeader bounds an X-Registry-Auth header.
const maxAuthHeader = 64 << 10

// DecodeAuthHeader decodes an X-Registry-Auth header: JSON in URL-safe
// base64 (padded or not; the standard alphabet is accepted too). An empty
// header is no credentials.
func DecodeAuthHeader(h string) (AuthConfig, error) {
	var a AuthConfig
	if h == "" {
		return a, nil
	}
	if len(h) > maxAuthHeader {
		return a, fmt.Errorf("X-Registry-Auth header larger than %d bytes: %w", maxAuthHeader, errdefs.ErrInvalid)
	}
	var b []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.URLEncoding, base64.RawURLEncoding, base64.StdEncoding, base64.RawStdEncoding} {
		if b, err = enc.DecodeString(h); err == nil {
			break
		}
	}
	if err != nil {
		return a, fmt.Errorf("invalid X-Registry-Auth header: %v: %w", err, errdefs.ErrInvalid)
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return AuthConfig{}, fmt.Errorf("invalid X-Registry-Auth header: %v: %w", err, errdefs.ErrInvalid)
	}
	return a.normalize()
}

// normalize fills Username and Password from Auth when only Auth is set.
func (a AuthConfig) normalize() (AuthConfig, error) {
	if a.Auth != "" && a.Username == "" && a.Password == "" {
		b, err := base64.StdEncoding.DecodeString(a.Auth)
		if err != nil {
			return AuthConfig{}, fmt.Errorf("invalid auth field: %v: %w", err, errdefs.ErrInvalid)
		}
		u, p, ok := strings.Cut(string(b), ":")
		if !ok {
			return AuthConfig{}, fmt.Errorf("invalid auth field: no ':' between user and password: %w", errdefs.ErrInvalid)
		}
		a.Username, a.Password = u, p
	}
	return a, nil
}

// Normalize returns the credentials with Username and Password filled in
// from Auth when only Auth was given.
func (a AuthConfig) Normalize() (AuthConfig, error) { return a.normalize() }

func (a AuthConfig) hasBasic() bool { return a.Username != "" || a.Password != "" }
