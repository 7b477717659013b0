package rpc

import "sync"

// BufPool lends buffers of one size for big reply payloads (a read's
// data): a client with one reads such a payload straight into a pooled
// buffer, and whoever is done with the payload gives it back with Put.
// A buffer that is not given back is collected as any other; one given
// back must be used no more.
type BufPool struct {
	size int
	p    sync.Pool
}

// NewBufPool returns a pool of buffers of size bytes.
func NewBufPool(size int) *BufPool { return &BufPool{size: size} }

// Get returns a buffer of n bytes, or nil when n is over the pool's
// size or under a quarter of it (a pooled buffer would waste most of its
// memory on it: a listing's reply, say).
func (b *BufPool) Get(n int) []byte {
	if b == nil || n > b.size || n < b.size/4 {
		return nil
	}
	if bp, ok := b.p.Get().(*[]byte); ok {
		return (*bp)[:n]
	}
	return make([]byte, n, b.size)
}

// Put gives back a buffer Get returned (anything else is left alone).
func (b *BufPool) Put(buf []byte) {
	if b == nil || cap(buf) != b.size {
		return
	}
	full := buf[:b.size]
	b.p.Put(&full)
}
