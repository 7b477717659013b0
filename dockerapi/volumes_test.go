package dockerapi

import (
	"reflect"
	"testing"
	"time"

	"github.com/cais-platform/cais/engine/events"
	"github.com/cais-platform/cais/engine/volumes"
)

func TestVolumeMatches(t *testing.T) {
	v := volumes.Volume{Name: "webdata", Driver: "local", Labels: map[string]string{"app": "web"}}
	for _, tc := range []struct {
		f    Filters
		refs int
		want bool
	}{
		{Filters{}, 0, true},
		{Filters{"dangling": {"true"}}, 0, true},
		{Filters{"dangling": {"true"}}, 1, false},
		{Filters{"dangling": {"false"}}, 1, true},
		{Filters{"name": {"data"}}, 0, true},
		{Filters{"name": {"db"}}, 0, false},
		{Filters{"label": {"app"}}, 0, true},
		{Filters{"label": {"app=db"}}, 0, false},
		{Filters{"driver": {"cais"}}, 0, false},
	} {
		if got := VolumeMatches(tc.f, v, tc.refs); got != tc.want {
			t.Errorf("%v with %d refs: %v, want %v", tc.f, tc.refs, got, tc.want)
		}
	}
}

func TestSharedSizes(t *testing.T) {
	shared, total := SharedSizes([][]LayerSize{
		{{"a", 100}, {"b", 10}},
		{{"a", 100}, {"c", 1}},
		{{"d", 1000}},
	})
	if !reflect.DeepEqual(shared, []int64{100, 100, 0}) || total != 1111 {
		t.Errorf("shared %v total %d", shared, total)
	}
}

func TestEventWindow(t *testing.T) {
	at := func(s int64) events.Message { return events.Message{TimeNano: time.Unix(s, 0).UnixNano()} }
	w := EventWindow{Since: time.Unix(10, 0), Until: time.Unix(20, 0)}
	for s, want := range map[int64]bool{9: false, 10: true, 15: true, 20: true, 21: false} {
		if w.In(at(s)) != want {
			t.Errorf("%d: %v", s, !want)
		}
	}
	if !(EventWindow{}).In(at(1)) {
		t.Error("an open window takes everything")
	}
}

func TestPruneFilterKeep(t *testing.T) {
	now := time.Now()
	old := now.Add(-2 * time.Hour)
	for _, tc := range []struct {
		pf      pruneFilter
		created time.Time
		labels  map[string]string
		keep    bool
	}{
		{pruneFilter{}, now, nil, false},
		{pruneFilter{until: now.Add(-time.Hour)}, now, nil, true},
		{pruneFilter{until: now.Add(-time.Hour)}, old, nil, false},
		{pruneFilter{labels: []string{"app=web"}}, old, map[string]string{"app": "web"}, false},
		{pruneFilter{labels: []string{"app=web"}}, old, map[string]string{"app": "db"}, true},
		{pruneFilter{notLabels: []string{"keep"}}, old, map[string]string{"keep": ""}, true},
		{pruneFilter{notLabels: []string{"keep"}}, old, nil, false},
	} {
		if got := tc.pf.Keep(tc.created, tc.labels); got != tc.keep {
			t.Errorf("%+v on %v %v: keep %v, want %v", tc.pf, tc.created, tc.labels, got, tc.keep)
		}
	}
}
