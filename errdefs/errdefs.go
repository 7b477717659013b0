// Package errdefs declares the kinds of error cais reports. Packages wrap
// them with context (fmt.Errorf("volume %s: %w", name, errdefs.ErrNotFound));
// each edge translates them once: to an HTTP status in the API, to an exit
// code and message in the CLI, later to errno in the FUSE layer.
package errdefs

import (
	"errors"
	"net/http"
	"strings"
)

// Error kinds.
var (
	// ErrInvalid: the request is malformed or breaks a rule.
	ErrInvalid = errors.New("invalid request")
	// ErrNotFound: the named thing does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: the thing to create exists already or is in use.
	ErrExists = errors.New("already exists")
	// ErrState: the thing is in the wrong state for the operation.
	ErrState = errors.New("wrong state")
	// ErrNeedsForce: refused, but 'force' overrides.
	ErrNeedsForce = errors.New("refused without force")
	// ErrUnavailable: a node or service the operation needs cannot be reached.
	ErrUnavailable = errors.New("unavailable")
	// ErrUnauthenticated: no valid credentials.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrForbidden: credentials valid, operation not allowed.
	ErrForbidden = errors.New("forbidden")
	// ErrConflict: a concurrent change won; the operation can be retried.
	ErrConflict = errors.New("conflict")
)

// HTTPStatus maps an error to the status the API answers with.
func HTTPStatus(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrInvalid), errors.Is(err, ErrNeedsForce):
		return http.StatusBadRequest
	case errors.Is(err, ErrUnauthenticated):
		return http.StatusUnauthorized
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrExists), errors.Is(err, ErrState), errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// Code names an error kind on the wire, so a client can rebuild it.
func Code(err error) string {
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.code
		}
	}
	return "internal"
}

// FromCode returns the error kind a wire code names, or nil.
func FromCode(code string) error {
	for _, k := range kinds {
		if k.code == code {
			return k.err
		}
	}
	return nil
}

var kinds = []struct {
	code string
	err  error
}{
	{"invalid", ErrInvalid}, {"not_found", ErrNotFound}, {"exists", ErrExists},
	{"state", ErrState}, {"needs_force", ErrNeedsForce}, {"unavailable", ErrUnavailable},
	{"unauthenticated", ErrUnauthenticated}, {"forbidden", ErrForbidden}, {"conflict", ErrConflict},
}

// Message is an error's text for a user: the "<kind>: " or ": <kind>" that
// wrapping with %w leaves is dropped, wherever it stands.
func Message(err error) string {
	s := err.Error()
	for _, k := range kinds {
		t := k.err.Error()
		s = strings.ReplaceAll(s, ": "+t+": ", ": ")
		s = strings.ReplaceAll(s, ". Error: "+t+": ", ". Error: ")
		s = strings.ReplaceAll(s, ": "+t+"\n", "\n")
		s = strings.TrimSuffix(s, ": "+t)
		s = strings.TrimPrefix(s, t+": ")
		s = strings.ReplaceAll(s, "\n"+t+": ", "\n")
	}
	return s
}
