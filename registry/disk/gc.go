package disk

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// GCOptions tune a garbage collection.
type GCOptions struct {
	// Grace spares anything written or linked more recently: content of
	// pushes still going on. Zero means no grace (for tests).
	Grace time.Duration
	// Unreferenced also unlinks from each repository the blobs no
	// manifest of it names (the layers of deleted images), once older
	// than Grace.
	Unreferenced bool
	// DryRun counts what would go without removing it.
	DryRun bool
}

// GCStats say what a collection did.
type GCStats struct {
	Blobs     int   // content files removed
	Bytes     int64 // their size
	Unlinked  int   // repository links removed (with Unreferenced)
	Kept      int   // content files kept
	Restored  int   // content files a push linked again while being collected
	TmpFiles  int   // abandoned temporary and upload files removed
	Repos     int   // repositories seen
	Manifests int   // manifests seen
}

// GC removes content no repository links, safely while pushes go on, from
// this process or others sharing the directory:
//
//   - the mark walks every repository's manifest revisions and blob links;
//   - content younger than Grace is kept (a blob is renamed into place
//     before it is linked, and a mount touches the blob before linking);
//   - a candidate is first renamed aside, then every repository is checked
//     again for a link to it: if a push linked it meanwhile it is renamed
//     back, otherwise removed. A mount that linked it while it was aside
//     finds it missing and falls back to an upload, and a manifest PUT
//     re-checks its blobs after linking them (see PutManifest), so no
//     manifest is ever left naming missing content.
func (s *Store) GC(ctx context.Context, opts GCOptions) (GCStats, error) {
	var st GCStats
	start := time.Now()
	cutoff := start.Add(-opts.Grace)
	// File times are coarser than the clock: what was written "since the
	// start" is judged with a margin.
	since := start.Add(-2 * time.Second)
	old := func(fi fs.FileInfo) bool { return fi.ModTime().Before(cutoff) }

	marked := map[digest.Digest]bool{}
	err := s.walkRepos(func(rd string) error {
		st.Repos++
		referenced := map[digest.Digest]bool{}
		// A manifest whose content is missing is being pushed again
		// (PutManifest restores it): what it names is unknown, so
		// nothing of the repository is unlinked this time.
		unsure := false
		for _, d := range listDigests(filepath.Join(rd, "_manifests", "revisions")) {
			st.Manifests++
			marked[d] = true
			refs, ok, err := s.manifestRefs(d)
			if err != nil {
				return err
			}
			unsure = unsure || !ok
			for _, r := range refs {
				referenced[r] = true
				marked[r] = true
			}
		}
		for _, d := range listDigests(filepath.Join(rd, "_layers")) {
			lp, _ := digestPath(filepath.Join(rd, "_layers"), d)
			if opts.Unreferenced && !unsure && !referenced[d] {
				if fi, err := os.Stat(lp); err == nil && old(fi) {
					if opts.DryRun {
						st.Unlinked++
						continue
					}
					os.Remove(lp)
					// A manifest pushed meanwhile may name it: link it
					// again (PutManifest links its blobs once more after
					// writing its revision, so one of the two sees the
					// other).
					if s.referencedSince(rd, d, since) {
						s.writeAtomic(lp, nil)
					} else {
						st.Unlinked++
						continue
					}
				}
			}
			marked[d] = true
		}
		return ctx.Err()
	})
	if err != nil {
		return st, err
	}

	for _, d := range listDigests(filepath.Join(s.root, "blobs")) {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		bp, _ := s.blobPath(d)
		fi, err := os.Stat(bp)
		if err != nil {
			continue
		}
		if marked[d] || !old(fi) {
			st.Kept++
			continue
		}
		if opts.DryRun {
			st.Blobs++
			st.Bytes += fi.Size()
			continue
		}
		aside := filepath.Join(s.root, "tmp", "gc-"+string(d.Algorithm())+"-"+d.Encoded())
		if err := os.Rename(bp, aside); err != nil {
			continue
		}
		linked, err := s.linkedAnywhere(d, since)
		if err != nil || linked {
			// Put it back unless a push stored it again meanwhile.
			if _, serr := os.Stat(bp); serr == nil {
				os.Remove(aside)
			} else {
				os.Rename(aside, bp)
			}
			st.Restored++
			st.Kept++
			continue
		}
		os.Remove(aside)
		st.Blobs++
		st.Bytes += fi.Size()
	}

	// Temporary files and upload sessions abandoned long ago.
	for _, dir := range []string{"tmp", "uploads"} {
		ents, _ := os.ReadDir(filepath.Join(s.root, dir))
		for _, e := range ents {
			fi, err := e.Info()
			if err != nil || !old(fi) || opts.Grace == 0 {
				continue
			}
			st.TmpFiles++
			if !opts.DryRun {
				os.Remove(filepath.Join(s.root, dir, e.Name()))
			}
		}
	}
	return st, nil
}

// walkRepos calls fn with the directory of every repository.
func (s *Store) walkRepos(fn func(dir string) error) error {
	return filepath.WalkDir(filepath.Join(s.root, "repos"), func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !de.IsDir() || !strings.HasPrefix(de.Name(), "_") {
			return nil
		}
		// p is a repository's _layers, _manifests or _referrers.
		if de.Name() == "_manifests" {
			if err := fn(filepath.Dir(p)); err != nil {
				return err
			}
		} else if de.Name() == "_layers" {
			if _, err := os.Stat(filepath.Join(filepath.Dir(p), "_manifests")); err != nil {
				if err := fn(filepath.Dir(p)); err != nil {
					return err
				}
			}
		}
		return fs.SkipDir
	})
}

// linkedAnywhere reports whether any repository links d, or names it in a
// manifest pushed since the collection started.
func (s *Store) linkedAnywhere(d digest.Digest, since time.Time) (bool, error) {
	found := false
	err := s.walkRepos(func(rd string) error {
		for _, sub := range []string{"_layers", filepath.Join("_manifests", "revisions")} {
			p, _ := digestPath(filepath.Join(rd, sub), d)
			if _, err := os.Stat(p); err == nil {
				found = true
				return fs.SkipAll
			}
		}
		if s.referencedSince(rd, d, since) {
			found = true
			return fs.SkipAll
		}
		return nil
	})
	if errors.Is(err, fs.SkipAll) {
		err = nil
	}
	return found, err
}

// listDigests lists the digests stored as <dir>/<alg>/<hex>.
func listDigests(dir string) []digest.Digest {
	var out []digest.Digest
	algs, _ := os.ReadDir(dir)
	for _, a := range algs {
		ents, _ := os.ReadDir(filepath.Join(dir, a.Name()))
		for _, e := range ents {
			d := digest.NewDigestFromEncoded(digest.Algorithm(a.Name()), e.Name())
			if d.Validate() == nil {
				out = append(out, d)
			}
		}
	}
	return out
}

// manifestRefs returns the digests a stored manifest names; ok is false
// if its content is missing.
func (s *Store) manifestRefs(d digest.Digest) (refs []digest.Digest, ok bool, err error) {
	bp, _ := s.blobPath(d)
	b, err := os.ReadFile(bp)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, nil
		}
		return nil, false, err
	}
	var doc struct {
		Config *struct {
			Digest digest.Digest `json:"digest"`
		} `json:"config"`
		Layers []struct {
			Digest digest.Digest `json:"digest"`
		} `json:"layers"`
		Manifests []struct {
			Digest digest.Digest `json:"digest"`
		} `json:"manifests"`
	}
	if json.Unmarshal(b, &doc) != nil {
		return nil, true, nil // an opaque manifest names nothing
	}
	var out []digest.Digest
	if doc.Config != nil {
		out = append(out, doc.Config.Digest)
	}
	for _, l := range doc.Layers {
		out = append(out, l.Digest)
	}
	for _, m := range doc.Manifests {
		out = append(out, m.Digest)
	}
	return out, true, nil
}

// referencedSince reports whether a manifest of the repository in rd
// written since the given time names d.
func (s *Store) referencedSince(rd string, d digest.Digest, since time.Time) bool {
	revs := filepath.Join(rd, "_manifests", "revisions")
	for _, m := range listDigests(revs) {
		p, _ := digestPath(revs, m)
		if fi, err := os.Stat(p); err != nil || fi.ModTime().Before(since) {
			continue
		}
		refs, ok, _ := s.manifestRefs(m)
		if !ok {
			return true // being pushed again: assume it names d
		}
		for _, r := range refs {
			if r == d {
				return true
			}
		}
	}
	return false
}
