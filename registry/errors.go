package registry

import (
	"encoding/json"
	"errors"
	"net/http"
)

// Error codes of the distribution spec.
const (
	CodeBlobUnknown         = "BLOB_UNKNOWN"
	CodeBlobUploadInvalid   = "BLOB_UPLOAD_INVALID"
	CodeBlobUploadUnknown   = "BLOB_UPLOAD_UNKNOWN"
	CodeDigestInvalid       = "DIGEST_INVALID"
	CodeManifestBlobUnknown = "MANIFEST_BLOB_UNKNOWN"
	CodeManifestInvalid     = "MANIFEST_INVALID"
	CodeManifestUnknown     = "MANIFEST_UNKNOWN"
	CodeNameInvalid         = "NAME_INVALID"
	CodeNameUnknown         = "NAME_UNKNOWN"
	CodeSizeInvalid         = "SIZE_INVALID"
	CodeUnsupported         = "UNSUPPORTED"
	CodeUnauthorized        = "UNAUTHORIZED"
	CodeDenied              = "DENIED"
)

// apiError is one entry of the spec's error body.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func newError(status int, code, msg string, detail any) *apiError {
	return &apiError{Status: status, Code: code, Message: msg, Detail: detail}
}

// toAPIError translates an error from the Store (or the handler) into the
// spec's code and status, once, at the edge.
func toAPIError(err error) *apiError {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, ErrBlobUnknown):
		return newError(http.StatusNotFound, CodeBlobUnknown, "blob unknown to registry", nil)
	case errors.Is(err, ErrManifestUnknown):
		return newError(http.StatusNotFound, CodeManifestUnknown, "manifest unknown to registry", nil)
	case errors.Is(err, ErrNameUnknown):
		return newError(http.StatusNotFound, CodeNameUnknown, "repository name not known to registry", nil)
	case errors.Is(err, ErrUploadUnknown):
		return newError(http.StatusNotFound, CodeBlobUploadUnknown, "blob upload unknown to registry", nil)
	case errors.Is(err, ErrDigestMismatch):
		return newError(http.StatusBadRequest, CodeDigestInvalid, "provided digest did not match uploaded content", nil)
	case errors.Is(err, ErrRangeInvalid):
		return newError(http.StatusRequestedRangeNotSatisfiable, CodeBlobUploadInvalid, "range does not continue the upload", nil)
	case errors.Is(err, ErrUnauthorized):
		return newError(http.StatusUnauthorized, CodeUnauthorized, "authentication required", nil)
	case errors.Is(err, ErrDenied):
		return newError(http.StatusForbidden, CodeDenied, "requested access to the resource is denied", nil)
	case errors.Is(err, ErrSizeInvalid):
		return newError(http.StatusBadRequest, CodeSizeInvalid, "provided length did not match content length", nil)
	}
	return &apiError{Status: http.StatusInternalServerError, Code: CodeUnsupported, Message: "internal error"}
}

// writeError writes the spec's error body: {"errors":[{code,message,detail}]}.
func writeError(w http.ResponseWriter, r *http.Request, e *apiError) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Del("Content-Length")
	if e.Code == CodeUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="cais registry"`)
	}
	w.WriteHeader(e.Status)
	if r.Method == http.MethodHead {
		return
	}
	_ = json.NewEncoder(w).Encode(struct {
		Errors []*apiError `json:"errors"`
	}{[]*apiError{e}})
}
