package daemon

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"time"

	"github.com/cais-platform/cais/api"
	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/pki"
	"github.com/cais-platform/cais/unixsock"
)

// caller is who made a request.
type caller struct {
	local bool   // over the root-only socket
	role  string // pki.RoleNode or pki.RoleAdmin; "" when unauthenticated
	name  string
	// peerCert is the presented certificate, verified or not (join calls
	// check it against the offered CA themselves).
	peerCert *x509.Certificate
}

type ctxKey int

const (
	keyLocal ctxKey = iota
	keyCaller
)

// localConn marks connections on the unix socket, after checking that the
// peer is root (the socket's mode already says so; this is a second lock).
func localConn(ctx context.Context, c net.Conn) context.Context {
	if uid, _, err := unixsock.PeerUser(c); err != nil || uid != 0 {
		return ctx
	}
	return context.WithValue(ctx, keyLocal, true)
}

// auth identifies the caller of every request. Over TCP a caller must show
// a certificate of the pool's CA; over the socket it is root.
func (d *Daemon) auth(r *http.Request) caller {
	if v, _ := r.Context().Value(keyLocal).(bool); v {
		return caller{local: true, role: pki.RoleAdmin, name: "root"}
	}
	var c caller
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return c
	}
	c.peerCert = r.TLS.PeerCertificates[0]
	m, _ := d.current()
	if m == nil {
		return c
	}
	inter := x509.NewCertPool()
	for _, ic := range r.TLS.PeerCertificates[1:] {
		inter.AddCert(ic)
	}
	roots := x509.NewCertPool()
	roots.AddCert(m.ca)
	if _, err := c.peerCert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return c
	}
	c.role = pki.RoleOf(c.peerCert)
	c.name = c.peerCert.Subject.CommonName
	return c
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, c caller) error

// Access levels of routes.
const (
	accessAdmin = iota // an administrator or a node
	accessNode         // nodes only (internal calls)
	accessJoin         // anyone; the handler checks the offered CA
)

func (d *Daemon) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, access int, needMember bool, h handlerFunc) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			r.Body = http.MaxBytesReader(w, r.Body, 4<<20)
			if r.Method == http.MethodGet {
				// Reads answer from the cluster state or not at all: a pool
				// without an etcd majority says so instead of hanging.
				ctx, cancel := context.WithTimeout(r.Context(), readTimeout)
				defer cancel()
				r = r.WithContext(ctx)
			}
			c := d.auth(r)
			var err error
			switch {
			case access == accessJoin:
			case c.role == "":
				err = fmt.Errorf("authentication required: present a certificate from this pool's CA (see 'cais pool credentials'): %w", errdefs.ErrUnauthenticated)
			case access == accessNode && c.role != pki.RoleNode:
				err = fmt.Errorf("this call is for pool members only: %w", errdefs.ErrForbidden)
			}
			if err == nil && needMember {
				if m, _ := d.current(); m == nil {
					err = fmt.Errorf("this node is not a member of a pool yet: it waits to be probed (cais peer probe %s from a pool member): %w", d.cfg.Hostname, errdefs.ErrState)
				}
			}
			if err == nil {
				err = h(w, r, c)
			}
			if err != nil {
				d.writeError(w, r, err)
			}
		})
	}
	handle("GET /v1/version", accessAdmin, false, d.getVersion)
	handle("GET /v1/peers", accessAdmin, true, d.getPeers)
	handle("POST /v1/peers", accessAdmin, true, d.postPeer)
	handle("DELETE /v1/peers/{host}", accessAdmin, true, d.deletePeer)
	handle("GET /v1/pool", accessAdmin, true, d.getPool)
	handle("GET /v1/pool/token", accessAdmin, true, d.getToken)
	handle("POST /v1/pool/token/rotate", accessAdmin, true, d.rotateToken)
	handle("POST /v1/pool/credentials", accessAdmin, true, d.postCredentials)
	handle("GET /v1/volumes", accessAdmin, true, d.getVolumes)
	handle("POST /v1/volumes", accessAdmin, true, d.postVolume)
	handle("GET /v1/volumes/{name}", accessAdmin, true, d.getVolume)
	handle("DELETE /v1/volumes/{name}", accessAdmin, true, d.deleteVolume)
	handle("POST /v1/volumes/{name}/start", accessAdmin, true, d.startVolume)
	handle("POST /v1/volumes/{name}/stop", accessAdmin, true, d.stopVolume)
	handle("GET /v1/volumes/{name}/status", accessAdmin, true, d.volumeStatus)
	handle("GET /v1/volumes/{name}/options", accessAdmin, true, d.getOptions)
	handle("PUT /v1/volumes/{name}/options", accessAdmin, true, d.setOption)
	handle("DELETE /v1/volumes/{name}/options", accessAdmin, true, d.resetOptions)
	handle("POST /v1/volumes/{name}/heal", accessAdmin, true, d.postHeal)
	handle("GET /v1/volumes/{name}/heal/info", accessAdmin, true, d.healInfo)
	handle("GET /v1/volumes/{name}/heal/statistics", accessAdmin, true, d.healStatistics)
	handle("POST /v1/volumes/{name}/heal/split-brain", accessAdmin, true, d.postSplitBrain)

	handle("POST /v1/internal/join/offer", accessJoin, false, d.joinOffer)
	handle("POST /v1/internal/join/accept", accessJoin, false, d.joinAccept)
	handle("POST /v1/internal/stage", accessNode, true, d.stage)
	handle("POST /v1/internal/kick", accessNode, true, d.kick)
	handle("POST /v1/internal/leave", accessNode, true, d.leave)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if c := d.auth(r); c.role == "" {
			d.writeError(w, r, fmt.Errorf("authentication required: %w", errdefs.ErrUnauthenticated))
			return
		}
		d.writeError(w, r, fmt.Errorf("no such API call: %s %s: %w", r.Method, r.URL.Path, errdefs.ErrNotFound))
	})
	return mux
}

// readTimeout bounds read requests.
const readTimeout = 15 * time.Second

func (d *Daemon) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.DeadlineExceeded) && r.Context().Err() != nil {
		err = fmt.Errorf("the pool's cluster state did not answer in time: is a majority of its voting etcd members up? ('cais pool list --json' shows each member's etcd role; a pool of two voters stops when either is down): %w", errdefs.ErrUnavailable)
	}
	status := errdefs.HTTPStatus(err)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		status = http.StatusRequestEntityTooLarge
	}
	if status >= 500 {
		d.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	} else {
		d.log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Mutual-TLS realm="cais"`)
	}
	writeJSON(w, status, api.ErrorBody{Error: api.ErrorDetail{Code: errdefs.Code(err), Message: errdefs.Message(err)}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// readJSON decodes a request body strictly.
func readJSON(r *http.Request, into any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fmt.Errorf("request body too large: %w", err)
		}
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("request body is empty: %w", errdefs.ErrInvalid)
		}
		return fmt.Errorf("malformed request body: %v: %w", err, errdefs.ErrInvalid)
	}
	return nil
}

func (d *Daemon) getVersion(w http.ResponseWriter, r *http.Request, c caller) error {
	m, id := d.current()
	v := api.Version{Version: Version, GoVersion: runtime.Version(), APIVersion: "v1", NodeUUID: id.UUID, State: api.StateWaiting, PoolID: id.PoolID}
	if m != nil {
		v.State = api.StateMember
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}
