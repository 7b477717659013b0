package daemon

import (
	"net/http"
	"sync"

	"github.com/cais-platform/cais/api"
	"github.com/cais-platform/cais/errdefs"
)

// startGate is the API's handler while caisd starts: it answers every
// call with 503 and what caisd is waiting for, until open hands the calls
// to the real handler.
type startGate struct {
	mu  sync.RWMutex
	h   http.Handler // nil until open
	why string
}

func (g *startGate) setWhy(why string) {
	g.mu.Lock()
	g.why = why
	g.mu.Unlock()
}

func (g *startGate) open(h http.Handler) {
	g.mu.Lock()
	g.h = h
	g.mu.Unlock()
}

func (g *startGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.RLock()
	h, why := g.h, g.why
	g.mu.RUnlock()
	if h != nil {
		h.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Retry-After", "5")
	writeJSON(w, http.StatusServiceUnavailable, api.ErrorBody{Error: api.ErrorDetail{Code: errdefs.Code(errdefs.ErrUnavailable), Message: why}})
}
