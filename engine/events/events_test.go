package events

import (
	"context"
	"testing"
	"time"
)

func TestBus(t *testing.T) {
	b := New()
	clock := time.Unix(1000, 0)
	b.now = func() time.Time { clock = clock.Add(time.Second); return clock }
	b.Publish(Container, "create", "c1", map[string]string{"image": "busybox", "name": "web"})
	ctx, cancel := context.WithCancel(context.Background())
	past, live := b.Subscribe(ctx)
	if len(past) != 1 || past[0].Status != "create" || past[0].ID != "c1" || past[0].From != "busybox" || past[0].Time != 1001 || past[0].Scope != "local" {
		t.Fatalf("past %+v", past)
	}
	b.Publish(Volume, "mount", "data", map[string]string{"container": "c1"})
	m := <-live
	if m.Type != Volume || m.Action != "mount" || m.Actor.ID != "data" || m.Status != "" || m.ID != "" {
		t.Errorf("live %+v", m)
	}
	cancel()
	for range live {
	}
	// A nil bus drops events: parts without an engine may publish.
	var nb *Bus
	nb.Publish(Image, "pull", "busybox:latest", nil)
	for i := 0; i < Keep+10; i++ {
		b.Publish(Image, "tag", "x", nil)
	}
	if past, _ := b.Subscribe(context.Background()); len(past) != Keep {
		t.Errorf("kept %d", len(past))
	}
}

func TestFilter(t *testing.T) {
	c := Message{Type: Container, Action: "exec_start: sh -c true", Actor: Actor{ID: "abcdef0123", Attributes: map[string]string{"name": "web", "image": "busybox", "env": "prod"}}, Scope: "local"}
	v := Message{Type: Volume, Action: "create", Actor: Actor{ID: "data", Attributes: map[string]string{"driver": "local"}}, Scope: "local"}
	for _, tc := range []struct {
		f    Filter
		m    Message
		want bool
	}{
		{Filter{}, c, true},
		{Filter{"type": {"container"}}, c, true},
		{Filter{"type": {"volume", "network"}}, c, false},
		{Filter{"event": {"exec_start"}}, c, true},
		{Filter{"event": {"exec"}}, c, false},
		{Filter{"container": {"web"}}, c, true},
		{Filter{"container": {"abcdef"}}, c, true},
		{Filter{"container": {"db"}}, c, false},
		{Filter{"image": {"busybox"}}, c, true},
		{Filter{"label": {"env=prod"}}, c, true},
		{Filter{"label": {"env=dev"}}, c, false},
		{Filter{"volume": {"data"}}, v, true},
		{Filter{"volume": {"data"}, "event": {"destroy"}}, v, false},
		{Filter{"container": {"web"}}, v, false},
	} {
		if got := tc.f.Match(tc.m); got != tc.want {
			t.Errorf("%v on %s %s: %v, want %v", tc.f, tc.m.Type, tc.m.Action, got, tc.want)
		}
	}
	if !ValidKey("container") || ValidKey("bogus") {
		t.Error("ValidKey")
	}
}
