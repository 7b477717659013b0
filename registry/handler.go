package registry

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/opencontainers/go-digest"
)

// MaxManifestSize is the largest manifest accepted (the spec suggests
// registries accept at least 4 MiB).
const MaxManifestSize = 4 << 20

// Options configure a Handler.
type Options struct {
	// Log receives one line per failed request; nil discards.
	Log *slog.Logger
	// Auth, if set, decides who may pull and push; nil lets everyone.
	Auth Authorizer
}

// Handler serves the OCI distribution API over a Store.
type Handler struct {
	store Store
	log   *slog.Logger
	auth  Authorizer
}

// New returns a Handler serving st.
func New(st Store, opts Options) *Handler {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{store: st, log: log, auth: opts.Auth}
}

// route is what a request's path names.
type route struct {
	kind string // "base", "blob", "uploads", "upload", "manifest", "tags", "referrers"
	name string // repository
	arg  string // digest, upload id or manifest reference
}

// parsePath splits /v2/<name>/<endpoint>. Names may contain '/' and even
// components such as "blobs", so the endpoint is matched from the end.
func parsePath(p string) (route, bool) {
	if p == "/v2/" || p == "/v2" {
		return route{kind: "base"}, true
	}
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return route{}, false
	}
	c := strings.Split(rest, "/")
	n := len(c)
	join := func(k int) string { return strings.Join(c[:k], "/") }
	switch {
	case n >= 3 && c[n-3] == "blobs" && c[n-2] == "uploads" && c[n-1] == "":
		return route{kind: "uploads", name: join(n - 3)}, true
	case n >= 3 && c[n-2] == "blobs" && c[n-1] == "uploads":
		return route{kind: "uploads", name: join(n - 2)}, true
	case n >= 4 && c[n-3] == "blobs" && c[n-2] == "uploads":
		return route{kind: "upload", name: join(n - 3), arg: c[n-1]}, true
	case n >= 3 && c[n-2] == "tags" && c[n-1] == "list":
		return route{kind: "tags", name: join(n - 2)}, true
	case n >= 3 && c[n-2] == "blobs":
		return route{kind: "blob", name: join(n - 2), arg: c[n-1]}, true
	case n >= 3 && c[n-2] == "manifests":
		return route{kind: "manifest", name: join(n - 2), arg: c[n-1]}, true
	case n >= 3 && c[n-2] == "referrers":
		return route{kind: "referrers", name: join(n - 2), arg: c[n-1]}, true
	}
	return route{}, false
}

// ServeHTTP routes a request to its endpoint.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	rt, ok := parsePath(r.URL.Path)
	if !ok {
		writeError(w, r, newError(http.StatusNotFound, CodeUnsupported, "no such endpoint", nil))
		return
	}
	if rt.kind == "base" {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.methodNotAllowed(w, r)
			return
		}
		if err := h.authorize(r, "", false); err != nil {
			h.fail(w, r, toAPIError(err))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "2")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			w.Write([]byte("{}"))
		}
		return
	}
	if !ValidName(rt.name) {
		h.fail(w, r, newError(http.StatusBadRequest, CodeNameInvalid, "invalid repository name", map[string]string{"name": rt.name}))
		return
	}
	push := r.Method != http.MethodGet && r.Method != http.MethodHead
	if err := h.authorize(r, rt.name, push); err != nil {
		h.fail(w, r, toAPIError(err))
		return
	}
	var err error
	switch rt.kind + " " + r.Method {
	case "blob GET", "blob HEAD":
		err = h.getBlob(w, r, rt)
	case "blob DELETE":
		err = h.deleteBlob(w, r, rt)
	case "uploads POST":
		err = h.startUpload(w, r, rt)
	case "upload GET":
		err = h.uploadStatus(w, r, rt)
	case "upload PATCH":
		err = h.patchUpload(w, r, rt)
	case "upload PUT":
		err = h.putUpload(w, r, rt)
	case "upload DELETE":
		err = h.cancelUpload(w, r, rt)
	case "manifest GET", "manifest HEAD":
		err = h.getManifest(w, r, rt)
	case "manifest PUT":
		err = h.putManifest(w, r, rt)
	case "manifest DELETE":
		err = h.deleteManifest(w, r, rt)
	case "tags GET":
		err = h.listTags(w, r, rt)
	case "referrers GET":
		err = h.referrers(w, r, rt)
	default:
		h.methodNotAllowed(w, r)
		return
	}
	if err != nil {
		ae := toAPIError(err)
		if ae.Status >= 500 {
			h.log.Error("registry request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		}
		h.fail(w, r, ae)
	}
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, e *apiError) {
	h.log.Debug("registry request refused", "method", r.Method, "path", r.URL.Path, "code", e.Code, "msg", e.Message)
	writeError(w, r, e)
}

func (h *Handler) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	writeError(w, r, newError(http.StatusMethodNotAllowed, CodeUnsupported, "method not allowed", nil))
}

// parseDigest checks a digest from a request.
func parseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", newError(http.StatusBadRequest, CodeDigestInvalid, "invalid digest", map[string]string{"digest": s})
	}
	return d, nil
}

func (h *Handler) authorize(r *http.Request, repo string, push bool) error {
	if h.auth == nil {
		return nil
	}
	return h.auth.Authorize(r, repo, push)
}
