package volumes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cais-platform/cais/errdefs"
)

// Options configure a Store.
type Options struct {
	// Root holds one directory per volume.
	Root string
	// Drivers are the volume drivers; Local is always there.
	Drivers []Driver
	// Publish, if set, is told of volume events: create, destroy, mount
	// (with the container's ID in attrs) and unmount.
	Publish func(action, name string, attrs map[string]string)
	Log     *slog.Logger
}

// Store keeps a node's volumes. Its methods are safe for concurrent use.
type Store struct {
	root    string
	drivers map[string]Driver
	publish func(action, name string, attrs map[string]string)
	log     *slog.Logger

	mu   sync.Mutex
	vols map[string]*entry
}

type entry struct {
	Volume
	// op serializes the driver's calls for the volume.
	op sync.Mutex
	// refs are the containers that reference the volume; mounts those
	// that have it mounted (running).
	refs, mounts map[string]bool
	removed      bool
}

const metaName = "volume.json"

// Open reads the volumes under opts.Root.
func Open(opts Options) (*Store, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Publish == nil {
		opts.Publish = func(string, string, map[string]string) {}
	}
	s := &Store{root: opts.Root, drivers: map[string]Driver{"local": Local{}}, publish: opts.Publish, log: opts.Log, vols: map[string]*entry{}}
	for _, d := range opts.Drivers {
		s.drivers[d.Name()] = d
	}
	if err := os.MkdirAll(opts.Root, 0o701); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(opts.Root)
	if err != nil {
		return nil, err
	}
	for _, ent := range ents {
		b, err := os.ReadFile(filepath.Join(opts.Root, ent.Name(), metaName))
		if err != nil {
			continue
		}
		e := &entry{refs: map[string]bool{}, mounts: map[string]bool{}}
		if err := json.Unmarshal(b, &e.Volume); err != nil || e.Name != ent.Name() {
			s.log.Warn("skipping unreadable volume", "dir", ent.Name(), "err", err)
			continue
		}
		e.Mountpoint = s.dataDir(e.Name)
		s.vols[e.Name] = e
	}
	return s, nil
}

func (s *Store) dataDir(name string) string { return filepath.Join(s.root, name, "_data") }

// CreateOptions describe a new volume.
type CreateOptions struct {
	Name      string // empty: a random name, for an anonymous volume
	Driver    string // empty: local
	Labels    map[string]string
	Options   map[string]string
	Anonymous bool
}

func noSuchVolume(name string) error {
	return fmt.Errorf("get %s: no such volume: %w", name, errdefs.ErrNotFound)
}

// Create makes a volume. Creating one that exists with the same driver
// returns it, as Docker does.
func (s *Store) Create(ctx context.Context, o CreateOptions) (Volume, error) {
	if o.Driver == "" {
		o.Driver = "local"
	}
	if o.Name == "" {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return Volume{}, err
		}
		o.Name = hex.EncodeToString(b)
		o.Anonymous = true
	}
	if err := ValidateName(o.Name); err != nil {
		return Volume{}, err
	}
	d, ok := s.drivers[o.Driver]
	if !ok {
		return Volume{}, fmt.Errorf("error looking up volume plugin %s: plugin %q not found: %w", o.Driver, o.Driver, errdefs.ErrNotFound)
	}
	s.mu.Lock()
	if e, ok := s.vols[o.Name]; ok {
		s.mu.Unlock()
		if e.Driver != o.Driver {
			return Volume{}, fmt.Errorf("create %s: volume name must be unique: a volume of driver %s has this name: %w", o.Name, e.Driver, errdefs.ErrExists)
		}
		return e.Volume, nil
	}
	labels := map[string]string{}
	for k, v := range o.Labels {
		labels[k] = v
	}
	if o.Anonymous {
		labels[AnonymousLabel] = ""
	}
	opts := map[string]string{}
	for k, v := range o.Options {
		opts[k] = v
	}
	e := &entry{Volume: Volume{
		Name: o.Name, Driver: o.Driver, Mountpoint: s.dataDir(o.Name), CreatedAt: time.Now().UTC().Truncate(time.Second),
		Labels: labels, Options: opts, Scope: "local", Anonymous: o.Anonymous,
	}, refs: map[string]bool{}, mounts: map[string]bool{}}
	// Held while the driver checks: a concurrent create of the same name
	// waits for this one.
	e.op.Lock()
	s.vols[o.Name] = e
	s.mu.Unlock()
	defer e.op.Unlock()
	err := func() error {
		if err := d.Create(ctx, e.Volume); err != nil {
			return fmt.Errorf("create %s: %w", o.Name, err)
		}
		if err := os.MkdirAll(e.Mountpoint, 0o755); err != nil {
			return err
		}
		return writeJSON(filepath.Join(s.root, o.Name, metaName), e.Volume)
	}()
	if err != nil {
		s.mu.Lock()
		delete(s.vols, o.Name)
		s.mu.Unlock()
		os.RemoveAll(filepath.Join(s.root, o.Name))
		return Volume{}, err
	}
	s.publish("create", o.Name, map[string]string{"driver": o.Driver})
	return e.Volume, nil
}

func writeJSON(p string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(p+".tmp", b, 0o600); err != nil {
		return err
	}
	return os.Rename(p+".tmp", p)
}

// Get returns a volume.
func (s *Store) Get(name string) (Volume, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.vols[name]
	if !ok {
		return Volume{}, noSuchVolume(name)
	}
	return e.Volume, nil
}

// List returns the volumes by name.
func (s *Store) List() []Volume {
	s.mu.Lock()
	out := make([]Volume, 0, len(s.vols))
	for _, e := range s.vols {
		out = append(out, e.Volume)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Refs returns the IDs of the containers that reference a volume.
func (s *Store) Refs(name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.vols[name]
	if !ok {
		return nil
	}
	out := make([]string, 0, len(e.refs))
	for id := range e.refs {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Ref records that a container references a volume.
func (s *Store) Ref(name, containerID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.vols[name]
	if !ok {
		return noSuchVolume(name)
	}
	e.refs[containerID] = true
	return nil
}

// Unref forgets a container's reference.
func (s *Store) Unref(name, containerID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.vols[name]; ok {
		delete(e.refs, containerID)
	}
}

// Mount mounts a volume for a running container and returns the host
// directory to bind into it. The driver mounts for the first container.
func (s *Store) Mount(ctx context.Context, name, containerID string) (string, error) {
	s.mu.Lock()
	e, ok := s.vols[name]
	s.mu.Unlock()
	if !ok {
		return "", noSuchVolume(name)
	}
	e.op.Lock()
	defer e.op.Unlock()
	s.mu.Lock()
	first, removed := len(e.mounts) == 0, e.removed
	s.mu.Unlock()
	if removed {
		return "", noSuchVolume(name)
	}
	if first {
		if err := s.drivers[e.Driver].Mount(ctx, e.Volume); err != nil {
			return "", err
		}
	}
	s.mu.Lock()
	e.mounts[containerID] = true
	e.refs[containerID] = true
	s.mu.Unlock()
	s.publish("mount", name, map[string]string{"driver": e.Driver, "container": containerID})
	return e.Mountpoint, nil
}

// Unmount releases a container's mount; the driver unmounts after the
// last.
func (s *Store) Unmount(ctx context.Context, name, containerID string) error {
	s.mu.Lock()
	e, ok := s.vols[name]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	e.op.Lock()
	defer e.op.Unlock()
	s.mu.Lock()
	had := e.mounts[containerID]
	delete(e.mounts, containerID)
	last := had && len(e.mounts) == 0
	s.mu.Unlock()
	if !had {
		return nil
	}
	s.publish("unmount", name, map[string]string{"driver": e.Driver, "container": containerID})
	if last {
		return s.drivers[e.Driver].Unmount(ctx, e.Volume)
	}
	return nil
}

// Remove deletes a volume and its content. A volume that containers
// reference is refused unless force (which still refuses a mounted one).
func (s *Store) Remove(ctx context.Context, name string, force bool) error {
	s.mu.Lock()
	e, ok := s.vols[name]
	s.mu.Unlock()
	if !ok {
		if force {
			return nil
		}
		return noSuchVolume(name)
	}
	e.op.Lock()
	defer e.op.Unlock()
	s.mu.Lock()
	var users []string
	for id := range e.refs {
		users = append(users, id)
	}
	for id := range e.mounts {
		if !e.refs[id] {
			users = append(users, id)
		}
	}
	sort.Strings(users)
	mountedNow := len(e.mounts) > 0
	if len(users) > 0 && (!force || mountedNow) {
		s.mu.Unlock()
		return fmt.Errorf("remove %s: volume is in use - [%s]: %w", name, strings.Join(users, ", "), errdefs.ErrConflict)
	}
	e.removed = true
	delete(s.vols, name)
	s.mu.Unlock()
	d := s.drivers[e.Driver]
	if err := d.Unmount(ctx, e.Volume); err != nil {
		s.log.Warn("unmount of a removed volume", "volume", name, "err", err)
	}
	if err := d.Remove(ctx, e.Volume); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	if mounted(e.Mountpoint) {
		return fmt.Errorf("remove %s: %s is still mounted: %w", name, e.Mountpoint, errdefs.ErrState)
	}
	if err := os.RemoveAll(filepath.Join(s.root, name)); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	s.publish("destroy", name, map[string]string{"driver": e.Driver})
	return nil
}

// Prune removes the volumes no container references that match keep:
// anonymous ones only unless all. It returns their names and the bytes
// their local content took.
func (s *Store) Prune(ctx context.Context, all bool, match func(Volume) bool) ([]string, int64) {
	var removed []string
	var space int64
	for _, v := range s.List() {
		if len(s.Refs(v.Name)) > 0 || !all && !v.Anonymous || match != nil && !match(v) {
			continue
		}
		size := int64(0)
		if v.Driver == "local" {
			size = DirSize(v.Mountpoint)
		}
		if err := s.Remove(ctx, v.Name, false); err != nil {
			if !errors.Is(err, errdefs.ErrConflict) {
				s.log.Warn("prune", "volume", v.Name, "err", err)
			}
			continue
		}
		removed = append(removed, v.Name)
		space += size
	}
	return removed, space
}

// DirSize adds up the sizes of the files under dir (each hard-linked file
// once), without following symlinks.
func DirSize(dir string) int64 {
	var n int64
	seen := map[uint64]bool{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		if ino, links := inode(fi); links > 1 {
			if seen[ino] {
				return nil
			}
			seen[ino] = true
		}
		n += fi.Size()
		return nil
	})
	return n
}
