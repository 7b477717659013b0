package distribution

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/cais-platform/cais/errdefs"
)

// ErrNoBasicAuthCredentials: a registry asked for basic authentication
// and the user gave no credentials (Docker's wording).
var ErrNoBasicAuthCredentials = fmt.Errorf("no basic auth credentials: %w", errdefs.ErrUnauthenticated)

// maxErrorBody bounds the error body read from a registry.
const maxErrorBody = 64 << 10

// registryError is a registry's answer that is not a success: the
// distribution spec's error entries, worded as Docker words them
// ("manifest unknown: manifest unknown").
type registryError struct {
	status int
	errs   []errorEntry
}

type errorEntry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

func (e *registryError) Error() string {
	if len(e.errs) == 0 {
		return fmt.Sprintf("received unexpected HTTP status: %d %s", e.status, http.StatusText(e.status))
	}
	parts := make([]string, len(e.errs))
	for i, x := range e.errs {
		code := strings.ToLower(strings.ReplaceAll(x.Code, "_", " "))
		switch {
		case code == "":
			parts[i] = x.Message
		case x.Message == "":
			parts[i] = code
		default:
			parts[i] = code + ": " + x.Message
		}
	}
	return strings.Join(parts, ", ")
}

// Unwrap gives the error's kind from the HTTP status.
func (e *registryError) Unwrap() error {
	switch e.status {
	case http.StatusUnauthorized:
		return errdefs.ErrUnauthenticated
	case http.StatusForbidden:
		return errdefs.ErrForbidden
	case http.StatusNotFound:
		return errdefs.ErrNotFound
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusRequestedRangeNotSatisfiable:
		return errdefs.ErrInvalid
	case http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return errdefs.ErrUnavailable
	}
	return nil
}

// hasCode reports whether the registry gave the error code.
func (e *registryError) hasCode(code string) bool {
	for _, x := range e.errs {
		if x.Code == code {
			return true
		}
	}
	return false
}

// parseErrorBody decodes the spec's error body {"errors":[...]}; token
// servers answer {"details": "..."} (Docker Hub) instead. Anything else
// gives no entries.
func parseErrorBody(status int, body []byte) *registryError {
	e := &registryError{status: status}
	var doc struct {
		Errors  []errorEntry `json:"errors"`
		Details string       `json:"details"`
	}
	if json.Unmarshal(body, &doc) == nil {
		e.errs = doc.Errors
		if len(e.errs) == 0 && doc.Details != "" {
			code := "UNKNOWN"
			if status == http.StatusUnauthorized {
				code = "UNAUTHORIZED"
			}
			e.errs = []errorEntry{{Code: code, Message: doc.Details}}
		}
	}
	return e
}

// responseError reads a failed response's body (bounded) into an error.
func responseError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return parseErrorBody(resp.StatusCode, b)
}

// isRegistryCode reports whether err is a registry error with code.
func isRegistryCode(err error, code string) bool {
	var re *registryError
	return errors.As(err, &re) && re.hasCode(code)
}
