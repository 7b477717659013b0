package errdefs_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/cais-platform/cais/errdefs"
)

var allKinds = []error{
	errdefs.ErrInvalid, errdefs.ErrNotFound, errdefs.ErrExists, errdefs.ErrState, errdefs.ErrNeedsForce,
	errdefs.ErrUnavailable, errdefs.ErrUnauthenticated, errdefs.ErrForbidden, errdefs.ErrConflict,
}

func TestHTTPStatus(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, http.StatusOK},
		{errdefs.ErrInvalid, http.StatusBadRequest},
		{errdefs.ErrNeedsForce, http.StatusBadRequest},
		{errdefs.ErrUnauthenticated, http.StatusUnauthorized},
		{errdefs.ErrForbidden, http.StatusForbidden},
		{errdefs.ErrNotFound, http.StatusNotFound},
		{errdefs.ErrExists, http.StatusConflict},
		{errdefs.ErrState, http.StatusConflict},
		{errdefs.ErrConflict, http.StatusConflict},
		{errdefs.ErrUnavailable, http.StatusServiceUnavailable},
		{io.EOF, http.StatusInternalServerError},
		{errors.New("invalid request"), http.StatusInternalServerError}, // same text, not the kind
		{fmt.Errorf("volume gv0: %w", errdefs.ErrNotFound), http.StatusNotFound},
		{fmt.Errorf("create: %w", fmt.Errorf("%w: bad name", errdefs.ErrInvalid)), http.StatusBadRequest},
		{errors.Join(io.EOF, fmt.Errorf("x: %w", errdefs.ErrUnavailable)), http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		if got := errdefs.HTTPStatus(tt.err); got != tt.want {
			t.Errorf("HTTPStatus(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestCodeRoundTrip(t *testing.T) {
	codes := map[string]bool{}
	for _, k := range allKinds {
		code := errdefs.Code(fmt.Errorf("context: %w", k))
		if code == "internal" || code == "" {
			t.Errorf("Code(%v) = %q", k, code)
		}
		if codes[code] {
			t.Errorf("code %q names two kinds", code)
		}
		codes[code] = true
		back := errdefs.FromCode(code)
		if back != k {
			t.Errorf("FromCode(Code(%v)) = %v", k, back)
		}
		// A client rebuilds the kind; the server's status follows it.
		if errdefs.HTTPStatus(fmt.Errorf("%w: remote", back)) != errdefs.HTTPStatus(k) {
			t.Errorf("rebuilt %v maps to another status", k)
		}
	}
	if got := errdefs.Code(errors.New("plain")); got != "internal" {
		t.Errorf("Code(plain error) = %q, want internal", got)
	}
	if got := errdefs.Code(nil); got != "internal" {
		t.Errorf("Code(nil) = %q, want internal", got)
	}
	for _, c := range []string{"internal", "", "Invalid", "bogus"} {
		if got := errdefs.FromCode(c); got != nil {
			t.Errorf("FromCode(%q) = %v, want nil", c, got)
		}
	}
}

func TestMessage(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"kind prefix", fmt.Errorf("%w: volume name is empty", errdefs.ErrInvalid), "volume name is empty"},
		{"kind suffix", fmt.Errorf("volume gv0: %w", errdefs.ErrNotFound), "volume gv0"},
		{"kind in the middle", fmt.Errorf("volume create: %w", fmt.Errorf("%w: replica count should be greater than 1", errdefs.ErrInvalid)), "volume create: replica count should be greater than 1"},
		{"gluster failure spelling", fmt.Errorf("volume create: gv0: failed. Error: %w", fmt.Errorf("%w: Brick not available", errdefs.ErrExists)), "volume create: gv0: failed. Error: Brick not available"},
		{"two kinds", fmt.Errorf("%w: %w: gone", errdefs.ErrUnavailable, errdefs.ErrNotFound), "gone"},
		{"two kinds reversed", fmt.Errorf("%w: %w: gone", errdefs.ErrNotFound, errdefs.ErrUnavailable), "gone"},
		{"prefix and suffix", fmt.Errorf("%w: node n1: %w", errdefs.ErrForbidden, errdefs.ErrUnauthenticated), "node n1"},
		{"no kind", errors.New("something broke"), "something broke"},
		{"kind alone", errdefs.ErrInvalid, "invalid request"},
		{"kind words in text kept", errors.New("volume not found in the pool"), "volume not found in the pool"},
		{
			"joined lines",
			errors.Join(fmt.Errorf("%w: brick a:/b", errdefs.ErrInvalid), fmt.Errorf("brick c:/d: %w", errdefs.ErrNotFound), fmt.Errorf("%w: brick e:/f", errdefs.ErrState)),
			"brick a:/b\nbrick c:/d\nbrick e:/f",
		},
		{
			"joined lines with suffix then prefix",
			errors.Join(fmt.Errorf("node n1: %w", errdefs.ErrUnavailable), fmt.Errorf("%w: node n2 refused", errdefs.ErrForbidden)),
			"node n1\nnode n2 refused",
		},
		{
			"joined wrapped lines",
			fmt.Errorf("volume start gv0: %w", errors.Join(fmt.Errorf("%w: a", errdefs.ErrConflict), fmt.Errorf("%w: b", errdefs.ErrConflict))),
			"volume start gv0: a\nb",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errdefs.Message(tt.err); got != tt.want {
				t.Errorf("Message(%q) =\n  %q\nwant\n  %q", tt.err, got, tt.want)
			}
		})
	}
}
