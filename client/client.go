// Package client is the Go client of caisd's REST API, used by the cais CLI
// and by daemons calling each other.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"

	"github.com/cais-platform/cais/api"
	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/volume"
)

// Error is an error answered by a daemon.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the errdefs kind the daemon named.
func (e *Error) Unwrap() error { return errdefs.FromCode(e.Code) }

// Client talks to one daemon.
type Client struct {
	hc   *http.Client
	base string
	// Where names the daemon in connection errors.
	Where string
}

// NewUnix returns a client for the daemon's local socket.
func NewUnix(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}
	return &Client{hc: &http.Client{Transport: tr}, base: "http://caisd", Where: path}
}

// NewTLS returns a client for a daemon's TCP address.
func NewTLS(hostport string, cfg *tls.Config) *Client {
	tr := &http.Transport{
		TLSClientConfig:     cfg,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		TLSHandshakeTimeout: 5 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	return &Client{hc: &http.Client{Transport: tr}, base: "https://" + hostport, Where: hostport}
}

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Do sends a request with an optional JSON body and decodes a JSON answer.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.connErr(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read answer from %s: %w", c.Where, err)
	}
	if resp.StatusCode >= 300 {
		var eb api.ErrorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error.Message != "" {
			return &Error{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message}
		}
		return &Error{Status: resp.StatusCode, Code: "internal", Message: fmt.Sprintf("%s answered %s", c.Where, resp.Status)}
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode answer from %s: %w", c.Where, err)
		}
	}
	return nil
}

func (c *Client) connErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	switch {
	case errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("cannot reach caisd: %s does not exist; is caisd running? (start it with 'make up' or 'caisd'): %w", c.Where, errdefs.ErrUnavailable)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("cannot reach caisd at %s: connection refused; is caisd running?: %w", c.Where, errdefs.ErrUnavailable)
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("cannot reach caisd at %s: permission denied (the socket is for root; or use --server with credentials): %w", c.Where, errdefs.ErrUnavailable)
	}
	var ce *tls.CertificateVerificationError
	if errors.As(err, &ce) {
		return fmt.Errorf("%s presented a certificate this client does not trust: %v: %w", c.Where, ce.Err, errdefs.ErrUnavailable)
	}
	return fmt.Errorf("cannot reach caisd at %s: %v: %w", c.Where, err, errdefs.ErrUnavailable)
}

// Version asks the daemon who it is.
func (c *Client) Version(ctx context.Context) (api.Version, error) {
	var v api.Version
	return v, c.Do(ctx, http.MethodGet, "/v1/version", nil, &v)
}

// Probe adds a node to the pool.
func (c *Client) Probe(ctx context.Context, host string, port int) (api.ProbeResponse, error) {
	var r api.ProbeResponse
	return r, c.Do(ctx, http.MethodPost, "/v1/peers", api.ProbeRequest{Host: host, Port: port}, &r)
}

// Peers lists the other members.
func (c *Client) Peers(ctx context.Context) ([]api.Peer, error) {
	var r []api.Peer
	return r, c.Do(ctx, http.MethodGet, "/v1/peers", nil, &r)
}

// Detach removes a member.
func (c *Client) Detach(ctx context.Context, host string, force bool) error {
	return c.Do(ctx, http.MethodDelete, "/v1/peers/"+url.PathEscape(host)+forceQuery(force), nil, nil)
}

// Pool lists every member, this node first.
func (c *Client) Pool(ctx context.Context) ([]api.Peer, error) {
	var r []api.Peer
	return r, c.Do(ctx, http.MethodGet, "/v1/pool", nil, &r)
}

// Token returns the join token; rotate makes a new one first.
func (c *Client) Token(ctx context.Context, rotate bool) (string, error) {
	var t api.Token
	if rotate {
		return t.Token, c.Do(ctx, http.MethodPost, "/v1/pool/token/rotate", nil, &t)
	}
	return t.Token, c.Do(ctx, http.MethodGet, "/v1/pool/token", nil, &t)
}

// Credentials issues an administrator certificate.
func (c *Client) Credentials(ctx context.Context, name string, days int) (api.Credentials, error) {
	var r api.Credentials
	return r, c.Do(ctx, http.MethodPost, "/v1/pool/credentials", api.CredentialsRequest{Name: name, Days: days}, &r)
}

// CreateVolume creates a volume.
func (c *Client) CreateVolume(ctx context.Context, req volume.CreateRequest) (api.CreateResponse, error) {
	var r api.CreateResponse
	return r, c.Do(ctx, http.MethodPost, "/v1/volumes", req, &r)
}

// Volumes returns every volume.
func (c *Client) Volumes(ctx context.Context) ([]volume.Volume, error) {
	var r []volume.Volume
	return r, c.Do(ctx, http.MethodGet, "/v1/volumes", nil, &r)
}

// Volume returns one volume.
func (c *Client) Volume(ctx context.Context, name string) (volume.Volume, error) {
	var r volume.Volume
	return r, c.Do(ctx, http.MethodGet, "/v1/volumes/"+url.PathEscape(name), nil, &r)
}

// VolumeOp runs start, stop or delete.
func (c *Client) VolumeOp(ctx context.Context, name, op string, force bool) (api.OpResponse, error) {
	var r api.OpResponse
	p := "/v1/volumes/" + url.PathEscape(name)
	if op == "delete" {
		return r, c.Do(ctx, http.MethodDelete, p, nil, &r)
	}
	return r, c.Do(ctx, http.MethodPost, p+"/"+op+forceQuery(force), nil, &r)
}

// VolumeStatus returns the bricks' state.
func (c *Client) VolumeStatus(ctx context.Context, name string) (api.VolumeStatus, error) {
	var r api.VolumeStatus
	return r, c.Do(ctx, http.MethodGet, "/v1/volumes/"+url.PathEscape(name)+"/status", nil, &r)
}

// GetOptions returns one option (key) or all ("" or "all").
func (c *Client) GetOptions(ctx context.Context, name, key string) ([]api.OptionValue, error) {
	var r []api.OptionValue
	q := ""
	if key != "" && key != "all" {
		q = "?key=" + url.QueryEscape(key)
	}
	return r, c.Do(ctx, http.MethodGet, "/v1/volumes/"+url.PathEscape(name)+"/options"+q, nil, &r)
}

// SetOption sets an option.
func (c *Client) SetOption(ctx context.Context, name, key, value string) error {
	return c.Do(ctx, http.MethodPut, "/v1/volumes/"+url.PathEscape(name)+"/options", api.SetOptionRequest{Key: key, Value: value}, nil)
}

// ResetOptions resets one option, or all when key is "".
func (c *Client) ResetOptions(ctx context.Context, name, key string) error {
	q := ""
	if key != "" && key != "all" {
		q = "?key=" + url.QueryEscape(key)
	}
	return c.Do(ctx, http.MethodDelete, "/v1/volumes/"+url.PathEscape(name)+"/options"+q, nil, nil)
}

func forceQuery(force bool) string {
	if force {
		return "?force=1"
	}
	return ""
}

// Heal launches an index heal (or a full one) of a volume.
func (c *Client) Heal(ctx context.Context, name string, full bool) error {
	return c.Do(ctx, http.MethodPost, "/v1/volumes/"+url.PathEscape(name)+"/heal", api.HealRequest{Full: full}, nil)
}

// HealInfo lists the entries each brick's index names; splitBrain keeps
// only those in split-brain.
func (c *Client) HealInfo(ctx context.Context, name string, splitBrain bool) (api.HealInfo, error) {
	var r api.HealInfo
	q := ""
	if splitBrain {
		q = "?split-brain=1"
	}
	return r, c.Do(ctx, http.MethodGet, "/v1/volumes/"+url.PathEscape(name)+"/heal/info"+q, nil, &r)
}

// HealStatistics reads every node's self-heal crawl statistics.
func (c *Client) HealStatistics(ctx context.Context, name string) ([]api.HealStats, error) {
	var r []api.HealStats
	return r, c.Do(ctx, http.MethodGet, "/v1/volumes/"+url.PathEscape(name)+"/heal/statistics", nil, &r)
}

// ResolveSplitBrain heals split-brain files from a chosen copy.
func (c *Client) ResolveSplitBrain(ctx context.Context, name string, req api.SplitBrainRequest) (api.SplitBrainResponse, error) {
	var r api.SplitBrainResponse
	return r, c.Do(ctx, http.MethodPost, "/v1/volumes/"+url.PathEscape(name)+"/heal/split-brain", req, &r)
}
