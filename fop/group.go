package fop

import (
	"fmt"
	"runtime/debug"
	"sync"
)

// Group runs calls on goroutines of their own and waits for them, as the
// layers do when they ask several subvolumes at once. A panic in one is
// raised again, with its stack, in the goroutine that waits: there the
// recovery around the caller (go-fuse's around a mount's request, the
// daemon's around its background work) answers it, where a panic left on
// its own goroutine would end the process.
type Group struct {
	wg sync.WaitGroup

	mu       sync.Mutex
	panicked *goPanic
}

type goPanic struct {
	value any
	stack []byte
}

// Go runs fn on a goroutine of its own.
func (g *Group) Go(fn func()) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer func() {
			if r := recover(); r != nil {
				g.mu.Lock()
				if g.panicked == nil {
					g.panicked = &goPanic{value: r, stack: debug.Stack()}
				}
				g.mu.Unlock()
			}
		}()
		fn()
	}()
}

// Wait waits for every call, and panics again with the first panic of
// one, if any.
func (g *Group) Wait() {
	g.wg.Wait()
	g.mu.Lock()
	p := g.panicked
	g.mu.Unlock()
	if p != nil {
		panic(fmt.Sprintf("%v\n\nin a goroutine of the call's:\n%s", p.value, p.stack))
	}
}
