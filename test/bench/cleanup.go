package main

import (
	"log/slog"
	"sync"
)

// cleanups is a stack of undo steps: everything the bench starts pushes
// the step that stops it, and run undoes them newest first, once, whether
// the bench ends normally, fails, or is interrupted.
type cleanups struct {
	log  *slog.Logger
	mu   sync.Mutex
	fns  []cleanup
	once sync.Once
}

type cleanup struct {
	what string
	fn   func() error
}

func (c *cleanups) push(what string, fn func() error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fns = append(c.fns, cleanup{what, fn})
}

// run undoes every step; a failing step is logged and the next one runs.
// Concurrent callers wait for the first to finish.
func (c *cleanups) run() {
	c.once.Do(func() {
		c.mu.Lock()
		fns := c.fns
		c.fns = nil
		c.mu.Unlock()
		for i := len(fns) - 1; i >= 0; i-- {
			if err := fns[i].fn(); err != nil {
				c.log.Warn("cleanup", "step", fns[i].what, "err", err)
			}
		}
	})
}
