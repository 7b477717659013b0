package dockerapi

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/cais-platform/cais/engine/events"
)

// EventWindow is the time window of GET /events: past events from since
// (zero: none), live ones until until (zero: for ever).
type EventWindow struct{ Since, Until time.Time }

// In reports whether an event's time lies in the window.
func (w EventWindow) In(m events.Message) bool {
	t := time.Unix(0, m.TimeNano)
	return (w.Since.IsZero() || !t.Before(w.Since)) && (w.Until.IsZero() || !t.After(w.Until))
}

func (s *Server) getEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var win EventWindow
	var err error
	if win.Since, err = parseTime(q.Get("since")); err == nil {
		win.Until, err = parseTime(q.Get("until"))
	}
	f, ferr := ParseFilters(q.Get("filters"))
	if err == nil {
		err = ferr
	}
	if err == nil {
		for k := range f {
			if !events.ValidKey(k) {
				err = invalid("invalid filter '%s'", k)
			}
		}
	}
	if err != nil {
		writeError(w, err)
		return
	}
	filter := events.Filter(f)
	ctx := r.Context()
	if !win.Until.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, win.Until.Add(time.Millisecond))
		defer cancel()
	}
	past, live := s.e.Events().Subscribe(ctx)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	fw := newFlushWriter(w)
	if fw.f != nil {
		fw.f.Flush()
	}
	enc := json.NewEncoder(fw)
	// The kept events and the live ones are taken at once: none is
	// missed or sent twice.
	if !win.Since.IsZero() {
		for _, m := range past {
			if win.In(m) && filter.Match(m) {
				if enc.Encode(m) != nil {
					return
				}
			}
		}
	}
	if !win.Until.IsZero() && !win.Until.After(time.Now()) {
		return
	}
	for m := range live {
		if win.In(m) && filter.Match(m) {
			if enc.Encode(m) != nil {
				return
			}
		}
	}
}
