package distribute

import (
	"context"
	"syscall"

	"github.com/cais-platform/cais/fop"
)

var (
	_ fop.FileAttrer  = (*Volume)(nil)
	_ fop.FileXattrer = (*Volume)(nil)
)

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

// fileXattrer returns the subvolume that opened the file, when it reaches
// extended attributes by handle, and its own handle.
func (v *Volume) fileXattrer(h uint64) (fop.FileXattrer, uint64, error) {
	sub, inner, err := v.sub(h)
	if err != nil {
		return nil, 0, err
	}
	fx, ok := sub.(fop.FileXattrer)
	if !ok {
		return nil, 0, syscall.ENOSYS
	}
	return fx, inner, nil
}

func (v *Volume) Fgetxattr(ctx context.Context, h uint64, name string) ([]byte, error) {
	fx, inner, err := v.fileXattrer(h)
	if err != nil {
		return nil, err
	}
	return fx.Fgetxattr(ctx, inner, name)
}

func (v *Volume) Fsetxattr(ctx context.Context, h uint64, name string, value []byte, flags uint32) error {
	fx, inner, err := v.fileXattrer(h)
	if err != nil {
		return err
	}
	return fx.Fsetxattr(ctx, inner, name, value, flags)
}

func (v *Volume) Flistxattr(ctx context.Context, h uint64) ([]byte, error) {
	fx, inner, err := v.fileXattrer(h)
	if err != nil {
		return nil, err
	}
	return fx.Flistxattr(ctx, inner)
}

func (v *Volume) Fremovexattr(ctx context.Context, h uint64, name string) error {
	fx, inner, err := v.fileXattrer(h)
	if err != nil {
		return err
	}
	return fx.Fremovexattr(ctx, inner, name)
}

// FinalAttrs reports whether every subvolume's replies carry final
// attributes (fop.FinalAttrs).
func (v *Volume) FinalAttrs() bool {
	for _, sub := range v.subs {
		if !fop.HasFinalAttrs(sub) {
			return false
		}
	}
	return true
}
