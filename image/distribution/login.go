package distribution

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/image/reference"
)

// LoginResult is what docker login is told.
type LoginResult struct {
	// Status is "Login Succeeded".
	Status string
	// IdentityToken is a refresh token the CLI may keep instead of the
	// password (from a token server that gives one).
	IdentityToken string
}

// Login checks credentials against the registry of creds.ServerAddress
// (Docker Hub when empty): the /v2/ endpoint must answer 200 with them.
func (c *Client) Login(ctx context.Context, creds AuthConfig) (LoginResult, error) {
	creds, err := creds.normalize()
	if err != nil {
		return LoginResult{}, err
	}
	domain := NormalizeDomain(creds.ServerAddress)
	if domain == "" {
		domain = reference.DefaultDomain
	}
	eps, err := c.cfg.Endpoints(domain)
	if err != nil {
		return LoginResult{}, err
	}
	var lastErr error
	for _, ep := range eps {
		if ep.Mirror {
			continue
		}
		res, err := c.loginEndpoint(ctx, ep, creds)
		if err == nil {
			return res, nil
		}
		c.cfg.Log.Debug("registry login", "url", ep.URL.String(), "err", err)
		lastErr = err
		if !errors.Is(err, errdefs.ErrUnavailable) {
			break // the endpoint answered: no other will say otherwise
		}
	}
	return LoginResult{}, lastErr
}

func (c *Client) loginEndpoint(ctx context.Context, ep Endpoint, creds AuthConfig) (LoginResult, error) {
	hc, err := c.httpClient(ep)
	if err != nil {
		return LoginResult{}, err
	}
	defer hc.CloseIdleConnections()
	resp, err := c.ping(ctx, hc, ep)
	if err != nil {
		return LoginResult{}, err
	}
	ok := LoginResult{Status: "Login Succeeded"}
	if resp.StatusCode == http.StatusOK {
		return ok, nil
	}
	endpoint := ep.URL.String() + "/v2/"
	if resp.StatusCode != http.StatusUnauthorized {
		return LoginResult{}, fmt.Errorf("login attempt to %s failed with status: %d %s: %w", endpoint, resp.StatusCode, http.StatusText(resp.StatusCode), errdefs.ErrUnavailable)
	}
	authz := ""
	for _, ch := range ParseChallenges(resp.Header.Values("Www-Authenticate")) {
		switch ch.Scheme {
		case "bearer":
			tok, err := c.fetchToken(ctx, hc, ch, creds, nil, true)
			if err != nil {
				return LoginResult{}, err
			}
			authz, ok.IdentityToken = "Bearer "+tok.Token, tok.RefreshToken
		case "basic":
			if !creds.hasBasic() {
				return LoginResult{}, ErrNoBasicAuthCredentials
			}
			authz = basicAuth(creds.Username, creds.Password)
		default:
			continue
		}
		break
	}
	if authz == "" {
		return LoginResult{}, fmt.Errorf("registry %s asks for authentication cais does not speak (%s): %w", ep.URL.Host, resp.Header.Get("Www-Authenticate"), errdefs.ErrUnauthenticated)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return LoginResult{}, err
	}
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	req.Header.Set("Authorization", authz)
	resp, err = hc.Do(req)
	if err != nil {
		return LoginResult{}, unavailable(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return LoginResult{}, fmt.Errorf("login attempt to %s failed with status: %d %s: %w", endpoint, resp.StatusCode, http.StatusText(resp.StatusCode), errdefs.ErrUnauthenticated)
	}
	return ok, nil
}
