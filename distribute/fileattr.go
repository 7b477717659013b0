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

// FinalAttrs reports which replies carry final attributes on every
// subvolume (fop.FinalAttrs).
func (v *Volume) FinalAttrs() fop.Final {
	f := fop.FinalWrites | fop.FinalEntries
	for _, sub := range v.subs {
		f &= fop.FinalOf(sub)
	}
	return f
}

// ReleaseAttr releases the handle on its subvolume, with the file's
// attributes when that subvolume learns them (fop.ReleaseAttrer).
func (v *Volume) ReleaseAttr(ctx context.Context, h uint64) (fop.Attr, bool, error) {
	sub, inner, err := v.sub(h)
	if err != nil {
		return fop.Attr{}, false, err
	}
	if ra, ok := sub.(fop.ReleaseAttrer); ok {
		return ra.ReleaseAttr(ctx, inner)
	}
	return fop.Attr{}, false, sub.Release(ctx, inner)
}
