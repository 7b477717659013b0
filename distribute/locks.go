package distribute

import (
	"context"
	"syscall"

	"github.com/cais-platform/cais/fop"
)

var _ fop.Locker = (*Volume)(nil)

// Getlk asks the subvolume that holds the open file; ENOSYS when it does
// not carry locks.
func (v *Volume) Getlk(ctx context.Context, h uint64, owner uint64, lk *fop.Lk, flags uint32) (fop.Lk, error) {
	sub, inner, err := v.sub(h)
	if err != nil {
		return fop.Lk{}, err
	}
	l, ok := sub.(fop.Locker)
	if !ok {
		return fop.Lk{}, syscall.ENOSYS
	}
	return l.Getlk(ctx, inner, owner, lk, flags)
}

// Setlk is Getlk's counterpart for taking and dropping locks.
func (v *Volume) Setlk(ctx context.Context, h uint64, owner uint64, lk *fop.Lk, flags uint32) error {
	sub, inner, err := v.sub(h)
	if err != nil {
		return err
	}
	l, ok := sub.(fop.Locker)
	if !ok {
		return syscall.ENOSYS
	}
	return l.Setlk(ctx, inner, owner, lk, flags)
}
