package mount

import (
	"context"
	"path"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hanwen/go-fuse/v2/fs"

	"github.com/cais-platform/cais/fop"
)

// Cache keeps the kernel's caches of a mount right when other clients
// change the volume: it takes the bricks' upcalls (fop.Upcall, through
// volgraph.Config.Upcalls) and drops what the kernel holds about each
// file or name that changed, through go-fuse's notify calls. With it a
// mount can let the kernel keep attributes, entries and pages for long
// (performance.md-cache-timeout), as GlusterFS's md-cache does with
// features.cache-invalidation.
//
// Upcall and Lost never block: they run on a brick connection's reader.
// Run does the work on its own goroutine, because a notification waits
// for kernel locks that a request in flight may hold until its reply
// comes in on that very reader.
type Cache struct {
	wake chan struct{}

	// gen counts the entry upcalls and losses: the directories this
	// mount made know all their names while it has not moved (listing).
	gen atomic.Uint64

	mu    sync.Mutex
	root  *node
	byIno map[uint64]*node // known nodes by inode number, for upcalls by GFID
	q     []fop.Upcall
	lost  bool
}

// maxQueuedUpcalls bounds the upcalls waiting for Run; past it they are
// dropped and everything cached is invalidated instead.
const maxQueuedUpcalls = 8192

// NewCache makes a Cache; Root makes its file system.
func NewCache() *Cache {
	return &Cache{wake: make(chan struct{}, 1), byIno: map[uint64]*node{}}
}

// Root returns the root node of a volume's file system, kept by c.
func (c *Cache) Root(vol fop.Volume, o Options) fs.InodeEmbedder {
	o.final = fop.FinalOf(vol)
	o.ptOff = new(atomic.Bool)
	n := &node{vol: vol, cache: c, opts: &o}
	c.mu.Lock()
	c.root = n
	c.mu.Unlock()
	return n
}

// Upcall queues one change made by another client.
func (c *Cache) Upcall(u fop.Upcall) {
	if u.Flags&fop.UpcallEntry != 0 {
		c.gen.Add(1)
	}
	c.mu.Lock()
	if len(c.q) >= maxQueuedUpcalls {
		c.q, c.lost = nil, true
	} else if !c.lost {
		c.q = append(c.q, u)
	}
	c.mu.Unlock()
	c.poke()
}

// Lost says upcalls may have been missed: everything is invalidated.
func (c *Cache) Lost() {
	c.gen.Add(1)
	c.mu.Lock()
	c.q, c.lost = nil, true
	c.mu.Unlock()
	c.poke()
}

func (c *Cache) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Run invalidates what the queued upcalls name, until ctx ends.
func (c *Cache) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		}
		c.mu.Lock()
		q, lost, root := c.q, c.lost, c.root
		c.q, c.lost = nil, false
		c.mu.Unlock()
		if root == nil {
			continue
		}
		if lost {
			invalidateTree(root.EmbeddedInode())
			continue
		}
		seen := map[fop.Upcall]bool{} // replicas send each change once per copy
		for _, u := range q {
			if !seen[u] {
				seen[u] = true
				c.apply(root, u)
			}
		}
	}
}

// remember records a node by its inode number, for upcalls by GFID.
func (c *Cache) remember(n *node, ino uint64) {
	if c == nil || ino == 0 {
		return
	}
	c.mu.Lock()
	c.byIno[ino] = n
	c.mu.Unlock()
}

// forget drops n when the kernel forgot it.
func (c *Cache) forget(n *node) {
	if c == nil {
		return
	}
	ino := n.StableAttr().Ino
	c.mu.Lock()
	if c.byIno[ino] == n {
		delete(c.byIno, ino)
	}
	c.mu.Unlock()
}

// OnForget keeps the cache's index of nodes to those the kernel knows.
func (n *node) OnForget() { n.cache.forget(n) }

var _ fs.NodeOnForgetter = (*node)(nil)

// knownAbsent reports an extended attribute the bricks said the file
// does not have. Only names the bricks send upcalls for are kept: not
// trusted.*, which the client layers change themselves.
func (n *node) knownAbsent(name string) bool {
	if n.cache == nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.noXattr[name]
	return ok
}

// capabilityXattr holds a file's capabilities. With it absent (the
// common case) the kernel still asks for it before every write(2) to a
// FUSE file, to know whether the write must drop it.
const capabilityXattr = "security.capability"

// absent records an extended attribute the file does not have.
func (n *node) absent(name string) {
	if n.cache == nil || strings.HasPrefix(name, "trusted.") {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.noXattr == nil {
		n.noXattr = map[string]struct{}{}
	}
	if len(n.noXattr) < 16 {
		n.noXattr[name] = struct{}{}
	}
}

// listed records which of fop.ListingXattrs a listing said the file
// lacks (fop.Dirent.Xattrs): ls -l then reads none of them from the
// bricks.
func (n *node) listed(x uint8) {
	if x&fop.XattrsKnown == 0 {
		return
	}
	for i, name := range fop.ListingXattrs {
		if x&(1<<i) == 0 {
			n.absent(name)
		}
	}
}

// forgetXattrs drops what absent recorded, what the node knew of its
// set-ID bits, and the attributes learned at a close: an extended
// attribute's change changes the file's change time (an ACL's, its
// mode), and an upcall whatever it names.
func (n *node) forgetXattrs() {
	n.mu.Lock()
	n.noXattr = nil
	n.mu.Unlock()
	n.changed()
	// After the count: a read of the attributes begun before it records
	// nothing (sawModeAt). A chmod, or an ACL's mask, may have set bits.
	n.priv.Store(privUnknown)
}

// forgetXattrsOf drops what absent recorded for in.
func forgetXattrsOf(in *fs.Inode) {
	if n, ok := in.Operations().(*node); ok {
		n.forgetXattrs()
	}
}

// apply invalidates what one upcall names.
func (c *Cache) apply(root *node, u fop.Upcall) {
	if u.Flags&fop.UpcallEntry != 0 {
		dir, name := path.Split(u.Path)
		parent := walk(root.EmbeddedInode(), strings.TrimSuffix(dir, "/"))
		if parent == nil || name == "" {
			return
		}
		// The kernel looks the name up again, and go-fuse puts what it
		// finds there in its tree. The node stays where it is meanwhile:
		// an upcall may come in after this mount looked the new entry up
		// already (a create's, from a slower brick), and taking a
		// current node out of the tree would leave it without a path.
		child := parent.GetChild(name)
		if pn, ok := parent.Operations().(*node); ok {
			pn.changed() // its times, size, link count
		}
		// The kernel drops the name and, when it knew the name, the
		// directory's attributes and the listing it keeps
		// (FOPEN_CACHE_DIR); a name it never looked up drops neither, so
		// the directory's attributes and pages (its listing) are dropped
		// here.
		parent.NotifyEntry(name)
		parent.NotifyContent(0, 0)
		if child != nil {
			// Its link count, at least, changed.
			child.NotifyContent(-1, 0)
			forgetXattrsOf(child)
		}
		return
	}
	var in *fs.Inode
	if !u.GFID.IsZero() {
		c.mu.Lock()
		if n := c.byIno[fop.InoOf(u.GFID)]; n != nil {
			in = n.EmbeddedInode()
		}
		c.mu.Unlock()
	}
	if in == nil && (u.Path != "" || u.GFID.IsZero()) {
		in = walk(root.EmbeddedInode(), u.Path)
	}
	if in == nil {
		return
	}
	forgetXattrsOf(in)
	if u.Flags&fop.UpcallData != 0 {
		in.NotifyContent(0, 0) // attributes and every page
	} else {
		in.NotifyContent(-1, 0) // attributes only
	}
}

// walk finds the node at p ("" for the root) among those the kernel
// knows, nil when it knows none there.
func walk(in *fs.Inode, p string) *fs.Inode {
	if p == "" {
		return in
	}
	for _, name := range strings.Split(p, "/") {
		if in = in.GetChild(name); in == nil {
			return nil
		}
	}
	return in
}

// invalidateTree drops every entry, attribute and page the kernel keeps
// under in.
func invalidateTree(in *fs.Inode) {
	forgetXattrsOf(in)
	in.NotifyContent(0, 0)
	for name, child := range in.Children() {
		in.NotifyEntry(name)
		invalidateTree(child)
	}
}

// Negative lookups without a round trip (as GlusterFS's nl-cache): a
// directory this mount made starts empty, and while no other client
// makes, removes or renames a name anywhere in the volume (no entry
// upcall, no lost upcalls: the Cache's generation stays), every name in
// it is one this mount made there. A lookup of any other name is answered
// ENOENT at once, as a create's lookup of its new name is. Names are
// recorded before the call that makes them, so a call that fails or whose
// outcome is unknown leaves them recorded: such a name is looked up.

// maxName is the longest name a brick's file system takes (NAME_MAX).
const maxName = 255

// generation is the Cache's generation, 0 without a Cache.
func (c *Cache) generation() uint64 {
	if c == nil {
		return 0
	}
	return c.gen.Load() + 1 // never 0
}

// madeEmpty marks a directory this mount just made, with the generation
// read before making it: complete while it holds.
func (n *node) madeEmpty(gen uint64) {
	if n.cache == nil || gen != n.cache.generation() {
		return
	}
	n.mu.Lock()
	n.completeGen, n.names = gen, map[string]struct{}{}
	n.mu.Unlock()
}

// adding records a name about to be made in directory n.
func (n *node) adding(name string) {
	n.mu.Lock()
	if n.completeGen != 0 {
		n.names[name] = struct{}{}
	}
	n.mu.Unlock()
}

// knownMissing reports a name directory n is known not to hold.
func (n *node) knownMissing(name string) bool {
	if n.cache == nil || len(name) > maxName {
		return false // a name too long is the bricks' to refuse
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.completeGen == 0 {
		return false
	}
	if n.completeGen != n.cache.generation() {
		n.completeGen, n.names = 0, nil
		return false
	}
	_, ok := n.names[name]
	return !ok
}
