package events

import (
	"context"
	"strings"
	"sync"
	"time"
)

// Object types, as Docker names them.
const (
	Container = "container"
	Image     = "image"
	Volume    = "volume"
	Network   = "network"
	Builder   = "builder"
)

// Actor is the object an event is about.
type Actor struct {
	ID         string            `json:"ID"`
	Attributes map[string]string `json:"Attributes"`
}

// Message is one event, in the Docker Engine API's form. Status, ID and
// From repeat Action, Actor.ID and the image for old clients, as Docker
// sends them for containers and images.
type Message struct {
	Status   string `json:"status,omitempty"`
	ID       string `json:"id,omitempty"`
	From     string `json:"from,omitempty"`
	Type     string `json:"Type"`
	Action   string `json:"Action"`
	Actor    Actor  `json:"Actor"`
	Scope    string `json:"scope"`
	Time     int64  `json:"time"`
	TimeNano int64  `json:"timeNano"`
}

// Keep is how many past messages the bus keeps.
const Keep = 1024

// Bus fans events out to subscribers. The zero value is not usable: call
// New. Its methods are safe for concurrent use.
type Bus struct {
	mu   sync.Mutex
	past []Message
	subs map[chan Message]struct{}
	now  func() time.Time
}

// New returns an empty bus.
func New() *Bus {
	return &Bus{subs: map[chan Message]struct{}{}, now: time.Now}
}

// Publish sends an event: typ is one of the object types, action what
// happened ("create", "start", "die", "pull", …), id the object (a
// container ID, an image reference, a volume or network name) and attrs
// its attributes ("name", "image", "exitCode", …). A nil Bus drops it.
func (b *Bus) Publish(typ, action, id string, attrs map[string]string) {
	if b == nil {
		return
	}
	if attrs == nil {
		attrs = map[string]string{}
	}
	t := b.now()
	m := Message{Type: typ, Action: action, Actor: Actor{ID: id, Attributes: attrs}, Scope: "local", Time: t.Unix(), TimeNano: t.UnixNano()}
	if typ == Container || typ == Image {
		m.Status, m.ID = action, id
		if typ == Container {
			m.From = attrs["image"]
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.past = append(b.past, m)
	if len(b.past) > Keep {
		b.past = append([]Message(nil), b.past[len(b.past)-Keep:]...)
	}
	for ch := range b.subs {
		select {
		case ch <- m:
		default:
		}
	}
}

// Subscribe returns the kept messages and a channel of those to come,
// closed when ctx ends.
func (b *Bus) Subscribe(ctx context.Context) ([]Message, <-chan Message) {
	ch := make(chan Message, 256)
	b.mu.Lock()
	past := append([]Message(nil), b.past...)
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	go func() {
		<-ctx.Done()
		b.mu.Lock()
		delete(b.subs, ch)
		b.mu.Unlock()
		close(ch)
	}()
	return past, ch
}

// Filter is the filters of docker events: key -> accepted values.
type Filter map[string][]string

// Match reports whether m passes every filter key given (values of one
// key are alternatives).
func (f Filter) Match(m Message) bool {
	for key, vals := range f {
		if len(vals) == 0 {
			continue
		}
		ok := false
		for _, v := range vals {
			if f.matchOne(key, v, m) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func (f Filter) matchOne(key, v string, m Message) bool {
	a := m.Actor.Attributes
	idOrName := func(typ string) bool {
		return m.Type == typ && (m.Actor.ID == v || strings.HasPrefix(m.Actor.ID, v) && len(v) >= 1 || a["name"] == v)
	}
	switch key {
	case "type":
		return m.Type == v
	case "event":
		// "exec_start" matches "exec_start: sh -c …", as Docker's does.
		return m.Action == v || strings.HasPrefix(m.Action, v+":")
	case "container":
		return idOrName(Container)
	case "image":
		return m.Type == Image && (m.Actor.ID == v || a["name"] == v) || m.Type == Container && a["image"] == v
	case "volume":
		return idOrName(Volume)
	case "network":
		return idOrName(Network)
	case "label":
		k, val, hasVal := strings.Cut(v, "=")
		got, ok := a[k]
		return ok && (!hasVal || got == val)
	case "scope":
		return m.Scope == v
	}
	return false
}

// ValidKey reports whether GET /events accepts a filter key.
func ValidKey(k string) bool {
	switch k {
	case "type", "event", "container", "image", "volume", "network", "label", "scope", "daemon", "plugin", "node", "service", "secret", "config":
		return true
	}
	return false
}
