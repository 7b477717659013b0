package distribute

import (
	"context"
	"syscall"

	"github.com/cais-platform/cais/fop"
)

var _ fop.FileAttrer = (*Volume)(nil)

// Fgetattr asks the subvolume that opened the file; ENOSYS when it cannot
// reach attributes by handle.
func (v *Volume) Fgetattr(ctx context.Context, h uint64) (fop.Attr, error) {
	sub, inner, err := v.sub(h)
	if err != nil {
		return fop.Attr{}, err
	}
	fa, ok := sub.(fop.FileAttrer)
	if !ok {
		return fop.Attr{}, syscall.ENOSYS
	}
	return fa.Fgetattr(ctx, inner)
}

// Fsetattr is Fgetattr's counterpart for changes.
func (v *Volume) Fsetattr(ctx context.Context, h uint64, req *fop.SetattrReq) (fop.Attr, error) {
	sub, inner, err := v.sub(h)
	if err != nil {
		return fop.Attr{}, err
	}
	fa, ok := sub.(fop.FileAttrer)
	if !ok {
		return fop.Attr{}, syscall.ENOSYS
	}
	return fa.Fsetattr(ctx, inner, req)
}
