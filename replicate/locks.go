package replicate

import (
	"context"
	"syscall"

	"github.com/cais-platform/cais/fop"
)

// Byte-range and flock locks of a replicated file are held on every brick
// of the set that is up, taken in brick order, so two clients contend on
// the same bricks whichever copy they read from; a lock is granted when a
// quorum of bricks granted it.

var _ fop.Locker = (*Volume)(nil)

// lockKids returns the bricks to lock on for a handle, opening the file
// on the bricks the handle lacks (a handle for reading is open on one).
func (v *Volume) lockKids(ctx context.Context, h *handle) []int {
	for _, i := range v.upSet() {
		if _, ok := h.kid(i); ok {
			continue
		}
		if h.write {
			continue // a write handle lost this brick: it missed writes, not locks
		}
		r, err := v.kids[i].b.Open(ctx, h.path, syscall.O_RDONLY)
		if err != nil {
			if isTransport(err) {
				v.failed(i, err)
			}
			continue
		}
		h.mu.Lock()
		if _, ok := h.kids[i]; ok {
			h.mu.Unlock()
			_ = v.kids[i].b.Release(ctx, r.Handle)
			continue
		}
		h.kids[i] = r.Handle
		h.mu.Unlock()
	}
	return h.good()
}

func (v *Volume) Getlk(ctx context.Context, id uint64, owner uint64, lk *fop.Lk, flags uint32) (fop.Lk, error) {
	h, err := v.handle(id)
	if err != nil {
		return fop.Lk{}, err
	}
	kids := v.lockKids(ctx, h)
	out := make([]fop.Lk, len(v.kids))
	errs := v.fanout(kids, func(i int, b Brick) error {
		kh, _ := h.kid(i)
		var err error
		out[i], err = b.Getlk(ctx, kh, owner, lk, flags)
		return err
	})
	ok, err := v.outcome(kids, errs)
	if err != nil {
		return fop.Lk{}, err
	}
	for _, i := range ok {
		if out[i].Type != fop.LockUnlock {
			return out[i], nil
		}
	}
	return out[ok[0]], nil
}

func (v *Volume) Setlk(ctx context.Context, id uint64, owner uint64, lk *fop.Lk, flags uint32) error {
	h, err := v.handle(id)
	if err != nil {
		return err
	}
	kids := v.lockKids(ctx, h)
	set := func(i int, l *fop.Lk) error {
		kh, ok := h.kid(i)
		if !ok {
			return syscall.ENOTCONN
		}
		return v.kids[i].b.Setlk(ctx, kh, owner, l, flags)
	}
	if lk.Type == fop.LockUnlock {
		errs := v.fanout(kids, func(i int, _ Brick) error { return set(i, lk) })
		_, err := v.outcome(kids, errs)
		return err
	}
	// In brick order, so two clients never each hold part of the set.
	var held []int
	var firstErr error
	for _, i := range kids {
		err := set(i, lk)
		if err == nil {
			held = append(held, i)
			continue
		}
		if isTransport(err) {
			v.failed(i, err)
			continue
		}
		firstErr = err
		break
	}
	if firstErr == nil && v.quorum(held) {
		return nil
	}
	un := *lk
	un.Type = fop.LockUnlock
	for _, i := range held {
		_ = set(i, &un)
	}
	if firstErr == nil {
		firstErr = syscall.ENOTCONN
	}
	return firstErr
}
