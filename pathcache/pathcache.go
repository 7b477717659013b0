// Package pathcache keeps what a client layer learnt about a path for a
// short time: the brick a lookup found a name on, which copies a lookup
// judged good. The kernel looks a name up right before it opens it or
// reads its attributes; a layer that remembers the lookup for a second
// answers those without asking the bricks again.
//
// A Cache is bounded: past its size it starts over empty, so a listing of
// a huge directory never grows it without limit.
package pathcache

import (
	"sync"
	"time"
)

// Cache maps paths to values for TTL each; safe for concurrent use.
type Cache[V any] struct {
	ttl time.Duration
	max int

	mu sync.Mutex
	m  map[string]entry[V]
}

type entry[V any] struct {
	v  V
	at time.Time
}

// New returns a cache keeping values for ttl, at most max of them.
func New[V any](ttl time.Duration, max int) *Cache[V] {
	return &Cache[V]{ttl: ttl, max: max, m: map[string]entry[V]{}}
}

// Put remembers v for p.
func (c *Cache[V]) Put(p string, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[p] = entry[V]{v, time.Now()}
}

// Get returns p's value if it is fresh.
func (c *Cache[V]) Get(p string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fresh(p)
}

// Take returns p's value if it is fresh, and forgets it.
func (c *Cache[V]) Take(p string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.fresh(p)
	delete(c.m, p)
	return v, ok
}

func (c *Cache[V]) fresh(p string) (V, bool) {
	e, ok := c.m[p]
	if !ok || time.Since(e.at) >= c.ttl {
		var zero V
		return zero, false
	}
	return e.v, true
}

// Forget drops p.
func (c *Cache[V]) Forget(p string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, p)
}

// Clear drops everything.
func (c *Cache[V]) Clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
}
