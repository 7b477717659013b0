// Package disk is a registry.Store on a local directory (or a mounted cais
// volume): blobs content-addressed under blobs/<alg>/<hex>, and per
// repository the links that say which blobs and manifests it holds and
// what its tags point at:
//
//	blobs/sha256/<hex>                              content (layers, configs, manifests)
//	uploads/<id>.data, uploads/<id>.repo            upload sessions
//	repos/<name>/_layers/sha256/<hex>               blob linked to the repository
//	repos/<name>/_manifests/revisions/sha256/<hex>  manifest of the repository (its media type, subject)
//	repos/<name>/_manifests/tags/<tag>              digest the tag points at
//	repos/<name>/_referrers/sha256/<subject>/<alg>-<hex>  referrer descriptor
//	tmp/                                            files being written
//
// Every file is written in tmp/, synced and renamed into place, so a
// reader sees a whole file or none, and two pushes of the same tag leave
// the last one. Repository components never start with '_' (the spec's
// grammar), so the link directories cannot collide with a repository.
package disk

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/registry"
)

// Store is a registry.Store on a directory.
type Store struct {
	root string

	mu      sync.Mutex
	uploads map[string]*upload

	bufs sync.Pool // of *[]byte, copyBuf bytes: uploads are copied in large steps
}

// copyBuf is the size of the steps an upload is copied to disk in: reads
// from the connection are gathered until a step is full, so a push makes one
// write and one hash update per megabyte instead of one per network read.
const copyBuf = 1 << 20

// copy copies src to dst in copyBuf steps; it returns src's error, if not
// io.EOF, or dst's.
func (s *Store) copy(dst io.Writer, src io.Reader) (int64, error) {
	bp, _ := s.bufs.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, copyBuf)
		bp = &b
	}
	defer s.bufs.Put(bp)
	buf := *bp
	var total int64
	for {
		n, rerr := 0, error(nil)
		for n < len(buf) && rerr == nil {
			var k int
			k, rerr = src.Read(buf[n:])
			n += k
		}
		if n > 0 {
			k, werr := dst.Write(buf[:n])
			total += int64(k)
			if werr == nil && k != n {
				werr = io.ErrShortWrite
			}
			if werr != nil {
				return total, werr
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// upload is what this process knows of an upload session: a lock (one
// writer at a time) and the sha256 of the bytes it appended itself, so that
// finishing a sha256 upload need not read it all again. Another process
// appending to the same session (a store shared on a volume) shows as a
// size that does not match off, and the content is hashed from disk.
type upload struct {
	mu  sync.Mutex
	h   hash.Hash // nil: unknown
	off int64     // bytes h has seen
}

var _ registry.Store = (*Store)(nil)

// Open opens (creating if needed) the store in dir.
func Open(dir string) (*Store, error) {
	for _, sub := range []string{"blobs", "uploads", "repos", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("registry store: %w", err)
		}
	}
	return &Store{root: dir, uploads: map[string]*upload{}}, nil
}

var errBadName = errors.New("invalid repository name")

func (s *Store) repoDir(repo string) (string, error) {
	if !registry.ValidName(repo) {
		return "", fmt.Errorf("repository %q: %w", repo, errBadName)
	}
	return filepath.Join(s.root, "repos", filepath.FromSlash(repo)), nil
}

// digestPath returns <dir>/<alg>/<hex> for a valid digest.
func digestPath(dir string, d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("digest %q: %w", d, err)
	}
	return filepath.Join(dir, string(d.Algorithm()), d.Encoded()), nil
}

func (s *Store) blobPath(d digest.Digest) (string, error) {
	return digestPath(filepath.Join(s.root, "blobs"), d)
}

func (s *Store) layerLink(repo string, d digest.Digest) (string, error) {
	rd, err := s.repoDir(repo)
	if err != nil {
		return "", err
	}
	return digestPath(filepath.Join(rd, "_layers"), d)
}

func (s *Store) revisionPath(repo string, d digest.Digest) (string, error) {
	rd, err := s.repoDir(repo)
	if err != nil {
		return "", err
	}
	return digestPath(filepath.Join(rd, "_manifests", "revisions"), d)
}

func (s *Store) tagPath(repo, tag string) (string, error) {
	rd, err := s.repoDir(repo)
	if err != nil {
		return "", err
	}
	if !registry.ValidTag(tag) {
		return "", fmt.Errorf("tag %q: %w", tag, registry.ErrManifestUnknown)
	}
	return filepath.Join(rd, "_manifests", "tags", tag), nil
}

func (s *Store) referrerDir(repo string, subject digest.Digest) (string, error) {
	rd, err := s.repoDir(repo)
	if err != nil {
		return "", err
	}
	return digestPath(filepath.Join(rd, "_referrers"), subject)
}

// writeAtomic writes data to path through a synced temporary file.
func (s *Store) writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Join(s.root, "tmp"), "w-")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// rename moves a finished file into place, making its directory.
func (s *Store) rename(from, to string) error {
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	return os.Rename(from, to)
}

// linkNew links to repo a blob about to be renamed into place: the link
// comes first, so a concurrent GC never takes the new content for garbage.
func (s *Store) linkNew(repo string, d digest.Digest) error {
	p, err := s.layerLink(repo, d)
	if err != nil {
		return err
	}
	// An empty file cannot be torn: it is made in place, and made durable
	// with the blob by the sync of the blob's directory (syncDir), which
	// commits the file system's journal.
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	// O_TRUNC makes a link there already recent in the same step, so a
	// concurrent GC spares it.
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// syncDir syncs a directory, making the entries just renamed into it
// durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// link links blob d to repo. It touches the blob first and the link
// itself, so a concurrent GC (which spares what is recent) keeps both, and
// checks afterwards that the blob is still there (GC may have moved it
// aside just before; see GC).
func (s *Store) link(repo string, d digest.Digest) error {
	p, err := s.layerLink(repo, d)
	if err != nil {
		return err
	}
	bp, _ := s.blobPath(d)
	now := time.Now()
	if err := os.Chtimes(bp, now, now); err != nil {
		return fmt.Errorf("blob %s: %w", d, registry.ErrBlobUnknown)
	}
	if err := os.Chtimes(p, now, now); err != nil {
		if err := s.writeAtomic(p, nil); err != nil {
			return err
		}
	}
	// A GC that moved the blob aside puts it back once it sees the link.
	for i := 0; ; i++ {
		if _, err := os.Stat(bp); err == nil {
			return nil
		}
		if i == 20 {
			return fmt.Errorf("blob %s: collected meanwhile: %w", d, registry.ErrBlobUnknown)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// StatBlob implements registry.Store.
func (s *Store) StatBlob(ctx context.Context, repo string, d digest.Digest) (int64, error) {
	lp, err := s.layerLink(repo, d)
	if err != nil {
		return 0, fmt.Errorf("%v: %w", err, registry.ErrBlobUnknown)
	}
	if _, err := os.Stat(lp); err != nil {
		return 0, fmt.Errorf("blob %s in %s: %w", d, repo, registry.ErrBlobUnknown)
	}
	bp, _ := s.blobPath(d)
	fi, err := os.Stat(bp)
	if err != nil {
		return 0, fmt.Errorf("blob %s: %w", d, registry.ErrBlobUnknown)
	}
	return fi.Size(), nil
}

// OpenBlob implements registry.Store.
func (s *Store) OpenBlob(ctx context.Context, repo string, d digest.Digest) (io.ReadSeekCloser, int64, error) {
	if _, err := s.StatBlob(ctx, repo, d); err != nil {
		return nil, 0, err
	}
	bp, _ := s.blobPath(d)
	f, err := os.Open(bp)
	if err != nil {
		return nil, 0, fmt.Errorf("blob %s: %w", d, registry.ErrBlobUnknown)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// MountBlob implements registry.Store.
func (s *Store) MountBlob(ctx context.Context, repo, from string, d digest.Digest) error {
	if _, err := s.StatBlob(ctx, from, d); err != nil {
		return err
	}
	return s.link(repo, d)
}

// DeleteBlob implements registry.Store. The content stays until garbage
// collection, since other repositories may link it.
func (s *Store) DeleteBlob(ctx context.Context, repo string, d digest.Digest) error {
	lp, err := s.layerLink(repo, d)
	if err != nil {
		return fmt.Errorf("%v: %w", err, registry.ErrBlobUnknown)
	}
	if err := os.Remove(lp); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("blob %s in %s: %w", d, repo, registry.ErrBlobUnknown)
		}
		return err
	}
	return nil
}

// maxUploadStates bounds what is remembered of sessions that were never
// finished: past it, the states of sessions whose files are gone (a GC
// removed them) are dropped.
const maxUploadStates = 4096

func (s *Store) pruneUploads() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.uploads) < maxUploadStates {
		return
	}
	for id := range s.uploads {
		if data, _ := s.uploadPaths(id); !exists(data) {
			delete(s.uploads, id)
		}
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// lockUpload returns the session's state, locked.
func (s *Store) lockUpload(id string) *upload {
	s.mu.Lock()
	u, ok := s.uploads[id]
	if !ok {
		u = &upload{}
		s.uploads[id] = u
	}
	s.mu.Unlock()
	u.mu.Lock()
	return u
}

func (s *Store) uploadPaths(id string) (data, owner string) {
	base := filepath.Join(s.root, "uploads", id)
	return base + ".data", base + ".repo"
}

// checkUpload returns the data file of an upload of repo.
func (s *Store) checkUpload(repo, id string) (string, error) {
	if _, err := uuid.Parse(id); err != nil {
		return "", fmt.Errorf("upload %q: %w", id, registry.ErrUploadUnknown)
	}
	data, owner := s.uploadPaths(id)
	b, err := os.ReadFile(owner)
	if err != nil || string(b) != repo {
		return "", fmt.Errorf("upload %s of %s: %w", id, repo, registry.ErrUploadUnknown)
	}
	return data, nil
}

// NewUpload implements registry.Store.
func (s *Store) NewUpload(ctx context.Context, repo string) (string, error) {
	if _, err := s.repoDir(repo); err != nil {
		return "", err
	}
	s.pruneUploads()
	id := uuid.NewString()
	data, owner := s.uploadPaths(id)
	if err := os.WriteFile(data, nil, 0o644); err != nil {
		return "", err
	}
	if err := s.writeAtomic(owner, []byte(repo)); err != nil {
		os.Remove(data)
		return "", err
	}
	return id, nil
}

// UploadSize implements registry.Store.
func (s *Store) UploadSize(ctx context.Context, repo, id string) (int64, error) {
	data, err := s.checkUpload(repo, id)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(data)
	if err != nil {
		return 0, fmt.Errorf("upload %s: %w", id, registry.ErrUploadUnknown)
	}
	return fi.Size(), nil
}

// AppendUpload implements registry.Store.
func (s *Store) AppendUpload(ctx context.Context, repo, id string, offset, want int64, r io.Reader) (int64, error) {
	data, err := s.checkUpload(repo, id)
	if err != nil {
		return 0, err
	}
	u := s.lockUpload(id)
	defer u.mu.Unlock()
	f, err := os.OpenFile(data, os.O_WRONLY, 0)
	if err != nil {
		return 0, fmt.Errorf("upload %s: %w", id, registry.ErrUploadUnknown)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if fi.Size() != offset {
		return 0, fmt.Errorf("chunk at %d, upload holds %d: %w", offset, fi.Size(), registry.ErrRangeInvalid)
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return 0, err
	}
	if offset == 0 {
		u.h, u.off = sha256.New(), 0
	}
	var w io.Writer = newWriteback(f, offset)
	if u.h != nil && u.off == offset {
		w = io.MultiWriter(w, u.h)
	} else {
		u.h = nil
	}
	var n int64
	if want >= 0 {
		n, err = s.copy(w, io.LimitReader(r, want))
		if err == nil && n != want {
			err = fmt.Errorf("chunk of %d bytes, %d declared: %w", n, want, registry.ErrSizeInvalid)
		}
	} else {
		n, err = s.copy(w, r)
	}
	if err != nil {
		// A chunk is all or nothing: the upload stays where it was.
		f.Truncate(offset)
		u.h = nil
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("chunk cut short after %d bytes: %w", n, registry.ErrSizeInvalid)
		}
		return 0, err
	}
	u.off = offset + n
	return offset + n, nil
}

// CommitUpload implements registry.Store.
func (s *Store) CommitUpload(ctx context.Context, repo, id string, d digest.Digest) (int64, error) {
	data, err := s.checkUpload(repo, id)
	if err != nil {
		return 0, err
	}
	bp, err := s.blobPath(d)
	if err != nil {
		return 0, fmt.Errorf("%v: %w", err, registry.ErrDigestMismatch)
	}
	u := s.lockUpload(id)
	defer u.mu.Unlock()
	f, err := os.Open(data)
	if err != nil {
		return 0, fmt.Errorf("upload %s: %w", id, registry.ErrUploadUnknown)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return 0, err
	}
	n := fi.Size()
	var got digest.Digest
	if d.Algorithm() == digest.SHA256 && u.h != nil && u.off == n {
		got = digest.NewDigest(digest.SHA256, u.h)
	} else {
		h := d.Algorithm().Hash()
		n, err = io.Copy(h, f)
		got = digest.NewDigest(d.Algorithm(), h)
	}
	if err == nil {
		err = f.Sync()
	}
	f.Close()
	if err != nil {
		return 0, err
	}
	if got != d {
		s.removeUpload(id)
		return 0, fmt.Errorf("upload %s: %w", id, registry.ErrDigestMismatch)
	}
	if err := s.linkNew(repo, d); err != nil {
		return 0, err
	}
	if err := s.rename(data, bp); err != nil {
		return 0, err
	}
	s.removeUpload(id)
	if err := syncDir(filepath.Dir(bp)); err != nil {
		return 0, err
	}
	return n, nil
}

func (s *Store) removeUpload(id string) {
	data, owner := s.uploadPaths(id)
	os.Remove(owner)
	os.Remove(data)
	s.mu.Lock()
	delete(s.uploads, id)
	s.mu.Unlock()
}

// CancelUpload implements registry.Store.
func (s *Store) CancelUpload(ctx context.Context, repo, id string) error {
	if _, err := s.checkUpload(repo, id); err != nil {
		return err
	}
	u := s.lockUpload(id)
	defer u.mu.Unlock()
	s.removeUpload(id)
	return nil
}

// PutBlob implements registry.Store.
func (s *Store) PutBlob(ctx context.Context, repo string, d digest.Digest, want int64, r io.Reader) (int64, error) {
	bp, err := s.blobPath(d)
	if err != nil {
		return 0, fmt.Errorf("%v: %w", err, registry.ErrDigestMismatch)
	}
	if _, err := s.repoDir(repo); err != nil {
		return 0, err
	}
	f, err := os.CreateTemp(filepath.Join(s.root, "tmp"), "blob-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := d.Algorithm().Hash()
	src := r
	if want >= 0 {
		src = io.LimitReader(r, want)
	}
	n, err := s.copy(io.MultiWriter(newWriteback(f, 0), h), src)
	if errors.Is(err, io.ErrUnexpectedEOF) || (err == nil && want >= 0 && n != want) {
		return 0, fmt.Errorf("blob of %d bytes, %d declared: %w", n, want, registry.ErrSizeInvalid)
	}
	if err != nil {
		return 0, err
	}
	if digest.NewDigest(d.Algorithm(), h) != d {
		return 0, fmt.Errorf("blob %s: %w", d, registry.ErrDigestMismatch)
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	if err := s.linkNew(repo, d); err != nil {
		return 0, err
	}
	if err := s.rename(f.Name(), bp); err != nil {
		return 0, err
	}
	if err := syncDir(filepath.Dir(bp)); err != nil {
		return 0, err
	}
	return n, nil
}

// revision is what a repository records of one of its manifests.
type revision struct {
	MediaType string        `json:"mediaType"`
	Subject   digest.Digest `json:"subject,omitempty"`
}

// PutManifest implements registry.Store. The content is written first,
// then the repository's link to it, then its referrer entry, then the tag:
// a reader following the tag always finds the whole manifest.
func (s *Store) PutManifest(ctx context.Context, repo string, m registry.Manifest, tag string) error {
	bp, err := s.blobPath(m.Digest)
	if err != nil {
		return err
	}
	rp, err := s.revisionPath(repo, m.Digest)
	if err != nil {
		return err
	}
	for _, b := range m.Blobs {
		if err := s.link(repo, b); err != nil {
			return err
		}
	}
	if err := s.writeAtomic(bp, m.Content); err != nil {
		return err
	}
	rev, _ := json.Marshal(revision{MediaType: m.MediaType, Subject: m.Subject})
	if err := s.writeAtomic(rp, rev); err != nil {
		return err
	}
	// A GC that collected the content, unlinked a blob or moved one aside
	// before the revision existed did not see it: store the content again
	// if it is gone (first: a GC reads it to learn what the manifest
	// names), link the blobs again now that the revision exists, and
	// withdraw the manifest if a blob is gone.
	if _, err := os.Stat(bp); err != nil {
		if err := s.writeAtomic(bp, m.Content); err != nil {
			os.Remove(rp)
			return err
		}
	}
	for _, b := range m.Blobs {
		if err := s.link(repo, b); err != nil {
			os.Remove(rp)
			return err
		}
	}
	if m.Subject != "" && m.Referrer != nil {
		dir, err := s.referrerDir(repo, m.Subject)
		if err != nil {
			return err
		}
		b, _ := json.Marshal(m.Referrer)
		name := string(m.Digest.Algorithm()) + "-" + m.Digest.Encoded()
		if err := s.writeAtomic(filepath.Join(dir, name), b); err != nil {
			return err
		}
	}
	if tag == "" {
		return nil
	}
	tp, err := s.tagPath(repo, tag)
	if err != nil {
		return err
	}
	return s.writeAtomic(tp, []byte(m.Digest.String()))
}

func (s *Store) readRevision(repo string, d digest.Digest) (revision, error) {
	var rev revision
	rp, err := s.revisionPath(repo, d)
	if err != nil {
		return rev, fmt.Errorf("%v: %w", err, registry.ErrManifestUnknown)
	}
	b, err := os.ReadFile(rp)
	if err != nil {
		return rev, fmt.Errorf("manifest %s in %s: %w", d, repo, registry.ErrManifestUnknown)
	}
	if err := json.Unmarshal(b, &rev); err != nil {
		return rev, fmt.Errorf("manifest %s in %s: corrupt link: %w", d, repo, err)
	}
	return rev, nil
}

// GetManifest implements registry.Store.
func (s *Store) GetManifest(ctx context.Context, repo string, d digest.Digest) (registry.Manifest, error) {
	rev, err := s.readRevision(repo, d)
	if err != nil {
		return registry.Manifest{}, err
	}
	bp, _ := s.blobPath(d)
	b, err := os.ReadFile(bp)
	if err != nil {
		return registry.Manifest{}, fmt.Errorf("manifest %s: %w", d, registry.ErrManifestUnknown)
	}
	return registry.Manifest{Digest: d, MediaType: rev.MediaType, Content: b, Subject: rev.Subject}, nil
}

// ResolveTag implements registry.Store.
func (s *Store) ResolveTag(ctx context.Context, repo, tag string) (digest.Digest, error) {
	tp, err := s.tagPath(repo, tag)
	if err != nil {
		return "", fmt.Errorf("%v: %w", err, registry.ErrManifestUnknown)
	}
	b, err := os.ReadFile(tp)
	if err != nil {
		return "", fmt.Errorf("tag %s in %s: %w", tag, repo, registry.ErrManifestUnknown)
	}
	d, err := digest.Parse(strings.TrimSpace(string(b)))
	if err != nil {
		return "", fmt.Errorf("tag %s in %s: corrupt: %w", tag, repo, err)
	}
	return d, nil
}

// DeleteManifest implements registry.Store.
func (s *Store) DeleteManifest(ctx context.Context, repo string, d digest.Digest) error {
	rev, err := s.readRevision(repo, d)
	if err != nil {
		return err
	}
	tags, _ := s.Tags(ctx, repo)
	for _, t := range tags {
		if td, err := s.ResolveTag(ctx, repo, t); err == nil && td == d {
			if tp, err := s.tagPath(repo, t); err == nil {
				os.Remove(tp)
			}
		}
	}
	if rev.Subject != "" {
		if dir, err := s.referrerDir(repo, rev.Subject); err == nil {
			os.Remove(filepath.Join(dir, string(d.Algorithm())+"-"+d.Encoded()))
		}
	}
	rp, _ := s.revisionPath(repo, d)
	return os.Remove(rp)
}

// DeleteTag implements registry.Store.
func (s *Store) DeleteTag(ctx context.Context, repo, tag string) error {
	tp, err := s.tagPath(repo, tag)
	if err != nil {
		return fmt.Errorf("%v: %w", err, registry.ErrManifestUnknown)
	}
	if err := os.Remove(tp); err != nil {
		return fmt.Errorf("tag %s in %s: %w", tag, repo, registry.ErrManifestUnknown)
	}
	return nil
}

// Tags implements registry.Store.
func (s *Store) Tags(ctx context.Context, repo string) ([]string, error) {
	rd, err := s.repoDir(repo)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, registry.ErrNameUnknown)
	}
	if _, err := os.Stat(rd); err != nil {
		return nil, fmt.Errorf("repository %s: %w", repo, registry.ErrNameUnknown)
	}
	ents, err := os.ReadDir(filepath.Join(rd, "_manifests", "tags"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	tags := make([]string, 0, len(ents))
	for _, e := range ents {
		tags = append(tags, e.Name())
	}
	sort.Strings(tags)
	return tags, nil
}

// Referrers implements registry.Store.
func (s *Store) Referrers(ctx context.Context, repo string, subject digest.Digest) ([]ocispec.Descriptor, error) {
	dir, err := s.referrerDir(repo, subject)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []ocispec.Descriptor
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // deleted meanwhile
		}
		var d ocispec.Descriptor
		if err := json.Unmarshal(b, &d); err != nil {
			return nil, fmt.Errorf("referrer %s: %w", e.Name(), err)
		}
		out = append(out, d)
	}
	return out, nil
}

// writeback writes to a file and, every writebackChunk bytes, asks the
// kernel to start writing them to disk (sync_file_range, which does not
// wait): the disk works while the upload goes on, and the fsync that
// makes the blob durable at its commit has little left to wait for.
type writeback struct {
	f          *os.File
	off, began int64
}

const writebackChunk = 2 << 20

func newWriteback(f *os.File, off int64) *writeback {
	return &writeback{f: f, off: off, began: off}
}

func (w *writeback) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if w.off-w.began >= writebackChunk {
		// Only a hint: a failure shows at the fsync.
		_ = unix.SyncFileRange(int(w.f.Fd()), w.began, w.off-w.began, unix.SYNC_FILE_RANGE_WRITE)
		w.began = w.off
	}
	return n, err
}
