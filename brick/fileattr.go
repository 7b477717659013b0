package brick

import (
	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/fop"
)

// Attributes of open files, reached through the handle's descriptor: they
// work when the file's last name is gone, as fstat and ftruncate do.

func (s *session) fgetattr(req *fop.HandleReq) (fop.Message, error) {
	var a fop.Attr
	err := s.use(req.Handle, func(h *handle) error {
		var err error
		a, err = fdAttr(h.fd, h.gfid)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &a, nil
}

// localFD names the descriptor behind a handle, for a client of this
// machine to take a duplicate of (fop.OpLocalFD); a client over TCP has
// no use for it. The client checks the descriptor's flags itself (a
// handle for direct I/O keeps the brick's path).
func (s *session) localFD(req *fop.HandleReq) (fop.Message, error) {
	if !s.local {
		return nil, unix.ENOSYS
	}
	r, err := s.localFDOf(req.Handle)
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// appendLocalFD ends a create's or open's reply with the new handle's
// descriptor (fop.FeatLocalFD), when it has one to give.
func (s *session) appendLocalFD(reply []byte) []byte {
	var r fop.OpenReply
	if fop.Unmarshal(reply, &r) != nil {
		return reply
	}
	l, err := s.localFDOf(r.Handle)
	if err != nil {
		return reply
	}
	return fop.AppendLocalFD(reply, l)
}

func (s *session) localFDOf(id uint64) (fop.LocalFDReply, error) {
	var r fop.LocalFDReply
	err := s.use(id, func(h *handle) error {
		var st unix.Stat_t
		if err := unix.Fstat(h.fd, &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			return unix.EINVAL
		}
		r = fop.LocalFDReply{FD: uint32(h.fd), Dev: st.Dev, Ino: st.Ino, GFID: h.gfid}
		return nil
	})
	return r, err
}

// localWrote hears that a client wrote through its duplicate of a
// handle's descriptor (fop.OpLocalWrote): the other clients hear of the
// change as of a write (upcalls, by the GFID the call names: the handle
// may be released by now).
func (s *session) localWrote(req *fop.LocalWroteReq) (fop.Message, error) {
	if req.GFID.IsZero() {
		return nil, unix.EINVAL
	}
	return nil, nil
}

// fsetattr changes attributes in the order setattr does: owner, size,
// mode, times.
func (s *session) fsetattr(req *fop.FsetattrReq) (fop.Message, error) {
	r := &req.Attr
	v := r.Valid
	if v&fop.SetSize != 0 && r.Size > 1<<63-1 {
		return nil, unix.EINVAL
	}
	var a fop.Attr
	err := s.use(req.Handle, func(h *handle) error {
		if v&(fop.SetUID|fop.SetGID) != 0 {
			uid, gid := -1, -1
			if v&fop.SetUID != 0 {
				uid = int(r.UID)
			}
			if v&fop.SetGID != 0 {
				gid = int(r.GID)
			}
			if err := unix.Fchown(h.fd, uid, gid); err != nil {
				return err
			}
		}
		if v&fop.SetSize != 0 {
			if err := unix.Ftruncate(h.fd, int64(r.Size)); err != nil {
				return err
			}
		}
		if v&fop.SetMode != 0 {
			if err := unix.Fchmod(h.fd, r.Mode&0o7777); err != nil {
				return err
			}
		}
		if v&(fop.SetAtime|fop.SetMtime|fop.SetAtimeNow|fop.SetMtimeNow) != 0 {
			ts := []unix.Timespec{
				timespec(v&fop.SetAtime != 0, v&fop.SetAtimeNow != 0, r.Atime),
				timespec(v&fop.SetMtime != 0, v&fop.SetMtimeNow != 0, r.Mtime),
			}
			// The handle's descriptor is a regular file or a directory:
			// its magic link is safe to follow.
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, procFD(h.fd), ts, 0); err != nil {
				return err
			}
		}
		var err error
		a, err = fdAttr(h.fd, h.gfid)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &a, nil
}

// Extended attributes of open files, with the same names allowed and
// hidden as by path.

func (s *session) fgetxattr(req *fop.FxattrReq) (fop.Message, error) {
	if err := checkXattrName(req.Name); err != nil {
		return nil, err
	}
	var v []byte
	err := s.use(req.Handle, func(h *handle) error {
		var err error
		v, err = xattrValue(func(b []byte) (int, error) { return unix.Fgetxattr(h.fd, req.Name, b) })
		return err
	})
	if err != nil {
		return nil, err
	}
	return &fop.Blob{Data: v}, nil
}

func (s *session) fsetxattr(req *fop.FxattrReq) (fop.Message, error) {
	if err := checkXattrName(req.Name); err != nil {
		return nil, err
	}
	if req.Flags&^(unix.XATTR_CREATE|unix.XATTR_REPLACE) != 0 {
		return nil, unix.EINVAL
	}
	return nil, s.use(req.Handle, func(h *handle) error {
		return unix.Fsetxattr(h.fd, req.Name, req.Value, int(req.Flags))
	})
}

func (s *session) fremovexattr(req *fop.FxattrReq) (fop.Message, error) {
	if err := checkXattrName(req.Name); err != nil {
		return nil, err
	}
	return nil, s.use(req.Handle, func(h *handle) error { return unix.Fremovexattr(h.fd, req.Name) })
}

func (s *session) flistxattr(req *fop.FxattrReq) (fop.Message, error) {
	var names []byte
	err := s.use(req.Handle, func(h *handle) error {
		var err error
		names, err = xattrValue(func(b []byte) (int, error) { return unix.Flistxattr(h.fd, b) })
		return err
	})
	if err != nil {
		return nil, err
	}
	return &fop.Blob{Data: clientXattrNames(names)}, nil
}

// clientXattrNames keeps the names of a NUL-separated list a client may
// see.
func clientXattrNames(names []byte) []byte {
	out := names[:0]
	for rest := names; len(rest) > 0; {
		i := indexZero(rest)
		if i < 0 {
			i = len(rest)
		}
		if name := rest[:i]; classify(string(name)) == xattrClient {
			out = append(out, name...)
			out = append(out, 0)
		}
		rest = rest[min(i+1, len(rest)):]
	}
	return out
}
