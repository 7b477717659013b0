package brick

import (
	"strings"
	"sync"
	"syscall"

	"github.com/cais-platform/cais/fop"
	"github.com/cais-platform/cais/rpc"
)

// Cache invalidation (upcalls): a mount that subscribed to its
// connection's events (rpc.OpSubscribe) hears of every change another
// client makes on this brick, as fop.Upcall events, and drops what its
// kernel cached about the file or name. The client that made a change
// hears nothing of it: its kernel already knows.

// upcallers are the brick's connections that take events.
type upcallers struct {
	mu   sync.Mutex
	subs map[*session]*rpc.Events
	// counted are the sessions whose clients subscribed: their coming
	// and going changes the others' Peers.
	counted map[*session]bool
}

func (u *upcallers) add(s *session, ev *rpc.Events) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.subs == nil {
		u.subs = map[*session]*rpc.Events{}
	}
	u.subs[s] = ev
}

func (u *upcallers) remove(s *session) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.subs, s)
	if u.counted[s] {
		delete(u.counted, s)
		u.peersLocked()
	}
}

// peersLocked sends every subscribed connection how many others there are
// (fop.OpPeers), with u.mu held so that the counts queue in order.
func (u *upcallers) peersLocked() {
	var evs []*rpc.Events
	for _, ev := range u.subs {
		if ev.Subscribed() {
			evs = append(evs, ev)
		}
	}
	if len(evs) == 0 {
		return
	}
	b := fop.Marshal(&fop.Peers{Others: uint32(len(evs) - 1)})
	for _, ev := range evs {
		ev.Send(fop.OpPeers, b)
	}
}

// Subscribed tells every subscribed connection, this one among them, the
// new count of the others (rpc.Subscriber).
func (s *session) Subscribed() {
	u := &s.sh.upcalls
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.counted == nil {
		u.counted = map[*session]bool{}
	}
	u.counted[s] = true
	u.peersLocked()
}

// others returns the subscribed connections other than from.
func (u *upcallers) others(from *session) []*rpc.Events {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []*rpc.Events
	for s, ev := range u.subs {
		if s != from && ev.Subscribed() {
			out = append(out, ev)
		}
	}
	return out
}

// SetEvents makes the session one that may take events (rpc.EventSession).
func (s *session) SetEvents(ev *rpc.Events) { s.sh.upcalls.add(s, ev) }

var _ rpc.EventSession = (*session)(nil)

// notify tells the other subscribed clients what a successful call
// changed.
func (s *session) notify(op uint16, payload []byte) {
	evs := s.sh.upcalls.others(s)
	if len(evs) == 0 {
		return
	}
	for _, u := range changes(op, payload, s.handleGFID) {
		b := fop.Marshal(&u)
		for _, ev := range evs {
			ev.Send(fop.OpUpcall, b)
		}
	}
}

// handleGFID is the GFID of the file an open handle of this connection
// reaches, zero when there is no such handle.
func (s *session) handleGFID(h uint64) fop.GFID {
	s.mu.Lock()
	defer s.mu.Unlock()
	if hd := s.handles[h]; hd != nil {
		return hd.gfid
	}
	return fop.GFID{}
}

// changes decides which upcalls a successful call makes: the entries it
// made or removed and the files whose attributes or content it changed.
// Calls that change nothing a client caches (reads, locks, the replicate
// layer's own bookkeeping in trusted.* attributes) make none.
func changes(op uint16, payload []byte, handleGFID func(uint64) fop.GFID) []fop.Upcall {
	entry := func(p string) fop.Upcall { return fop.Upcall{Flags: fop.UpcallEntry, Path: p} }
	switch op {
	case fop.OpMkdir, fop.OpMknod, fop.OpSymlink, fop.OpCreate, fop.OpUnlink, fop.OpRmdir, fop.OpUnlinkFile:
		if p, ok := entryPath(op, payload); ok {
			return []fop.Upcall{entry(p)}
		}
	case fop.OpRename:
		var req fop.RenameReq
		if fop.Unmarshal(payload, &req) == nil {
			return []fop.Upcall{entry(req.From), entry(req.To)}
		}
	case fop.OpLink:
		var req fop.RenameReq
		if fop.Unmarshal(payload, &req) == nil {
			return []fop.Upcall{entry(req.To), {Flags: fop.UpcallAttr, Path: req.From}}
		}
	case fop.OpSetattr:
		var req fop.SetattrReq
		if fop.Unmarshal(payload, &req) == nil {
			return []fop.Upcall{{Flags: setattrFlags(req.Valid), Path: req.Path}}
		}
	case fop.OpFsetattr:
		var req fop.FsetattrReq
		if fop.Unmarshal(payload, &req) == nil {
			if g := handleGFID(req.Handle); !g.IsZero() {
				return []fop.Upcall{{Flags: setattrFlags(req.Attr.Valid), GFID: g}}
			}
		}
	case fop.OpWrite:
		var req fop.WriteReq
		if fop.Unmarshal(payload, &req) == nil {
			if g := handleGFID(req.Handle); !g.IsZero() {
				return []fop.Upcall{{Flags: fop.UpcallData, GFID: g}}
			}
		}
	case fop.OpLocalWrote: // a client of this machine wrote through the descriptor
		var req fop.LocalWroteReq
		if fop.Unmarshal(payload, &req) == nil && !req.GFID.IsZero() {
			return []fop.Upcall{{Flags: fop.UpcallData, GFID: req.GFID}}
		}
	case fop.OpWriteDirty: // the replicate layer's first write
		var req fop.WriteDirtyReq
		if fop.Unmarshal(payload, &req) == nil {
			if g := handleGFID(req.Handle); !g.IsZero() {
				return []fop.Upcall{{Flags: fop.UpcallData, GFID: g}}
			}
		}
	case fop.OpSetxattr, fop.OpRemovexattr:
		var req fop.XattrReq
		if fop.Unmarshal(payload, &req) == nil && !strings.HasPrefix(req.Name, "trusted.") {
			return []fop.Upcall{{Flags: fop.UpcallAttr, Path: req.Path}}
		}
	case fop.OpFsetxattr, fop.OpFremovexattr:
		var req fop.FxattrReq
		if fop.Unmarshal(payload, &req) == nil && !strings.HasPrefix(req.Name, "trusted.") {
			if g := handleGFID(req.Handle); !g.IsZero() {
				return []fop.Upcall{{Flags: fop.UpcallAttr, GFID: g}}
			}
		}
	}
	return nil
}

// setattrFlags: a size change changes the content too.
func setattrFlags(valid uint32) uint32 {
	if valid&fop.SetSize != 0 {
		return fop.UpcallData
	}
	return fop.UpcallAttr
}

// mutates reports the calls changes may make upcalls for, so that other
// calls skip the work.
func mutates(op uint16, status syscall.Errno) bool {
	if status != 0 {
		return false
	}
	switch op {
	case fop.OpMkdir, fop.OpMknod, fop.OpSymlink, fop.OpCreate, fop.OpUnlink, fop.OpUnlinkFile, fop.OpRmdir,
		fop.OpRename, fop.OpLink, fop.OpSetattr, fop.OpFsetattr, fop.OpWrite, fop.OpWriteDirty, fop.OpLocalWrote,
		fop.OpSetxattr, fop.OpRemovexattr, fop.OpFsetxattr, fop.OpFremovexattr:
		return true
	}
	return false
}

// entryPath is the name an entry call (fop.EntryOp) makes or removes.
func entryPath(op uint16, payload []byte) (string, bool) {
	switch op {
	case fop.OpLink:
		var req fop.RenameReq
		err := fop.Unmarshal(payload, &req)
		return req.To, err == nil
	case fop.OpUnlink, fop.OpRmdir, fop.OpUnlinkFile:
		var req fop.PathReq
		err := fop.Unmarshal(payload, &req)
		return req.Path, err == nil
	case fop.OpMkdir, fop.OpMknod, fop.OpSymlink, fop.OpCreate:
		var req fop.CreateReq
		err := fop.Unmarshal(payload, &req)
		return req.Path, err == nil
	}
	return "", false
}
