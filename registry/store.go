package registry

import (
	"context"
	"errors"
	"io"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Sentinel errors a Store returns (wrapped as it likes); the handler maps
// them to the spec's error codes.
var (
	ErrBlobUnknown     = errors.New("blob unknown")
	ErrManifestUnknown = errors.New("manifest unknown")
	ErrNameUnknown     = errors.New("repository unknown")
	ErrUploadUnknown   = errors.New("upload unknown")
	ErrDigestMismatch  = errors.New("content does not match digest")
	ErrRangeInvalid    = errors.New("range does not continue the upload")
	ErrSizeInvalid     = errors.New("content shorter or longer than declared")
)

// Store keeps a registry's content. Blobs are content-addressed and shared
// by all repositories; a repository sees a blob once it is linked to it (by
// an upload into it or a mount). Manifests are blobs too, with tags naming
// them per repository.
//
// Lifecycle of an upload: NewUpload gives an id; AppendUpload adds bytes
// at the offset the upload has reached (ErrRangeInvalid otherwise);
// CommitUpload checks the whole content against the digest and, only if
// it matches, makes it a blob of the repository; CancelUpload forgets it.
//
// Every write must be atomic as seen by readers: a reader sees the old
// content or the new, never part of either.
type Store interface {
	// StatBlob returns the size of a blob linked to repo.
	StatBlob(ctx context.Context, repo string, dgst digest.Digest) (int64, error)
	// OpenBlob opens a blob linked to repo.
	OpenBlob(ctx context.Context, repo string, dgst digest.Digest) (io.ReadSeekCloser, int64, error)
	// MountBlob links to repo a blob linked to from.
	MountBlob(ctx context.Context, repo, from string, dgst digest.Digest) error
	// DeleteBlob unlinks a blob from repo.
	DeleteBlob(ctx context.Context, repo string, dgst digest.Digest) error

	// NewUpload starts an upload session into repo.
	NewUpload(ctx context.Context, repo string) (id string, err error)
	// UploadSize returns how many bytes an upload holds.
	UploadSize(ctx context.Context, repo, id string) (int64, error)
	// AppendUpload writes r at offset, which must be the upload's size,
	// and returns the new size. With want >= 0, r must hold exactly want
	// bytes (ErrSizeInvalid otherwise, and nothing is kept).
	AppendUpload(ctx context.Context, repo, id string, offset, want int64, r io.Reader) (int64, error)
	// CommitUpload verifies the upload against dgst and makes it a blob
	// of repo; on ErrDigestMismatch nothing is stored and the upload is
	// gone.
	CommitUpload(ctx context.Context, repo, id string, dgst digest.Digest) (int64, error)
	// CancelUpload forgets an upload.
	CancelUpload(ctx context.Context, repo, id string) error
	// PutBlob stores r as a blob of repo if it matches dgst (and holds
	// want bytes when want >= 0): a monolithic upload.
	PutBlob(ctx context.Context, repo string, dgst digest.Digest, want int64, r io.Reader) (int64, error)

	// PutManifest stores a manifest, already verified by the caller, in
	// repo and, if tag is not empty, points tag at it. If the manifest has
	// a subject, m.Referrer describes it for the referrers API. It returns
	// ErrBlobUnknown, storing nothing, if one of m.Blobs is gone.
	PutManifest(ctx context.Context, repo string, m Manifest, tag string) error
	// GetManifest returns a manifest of repo by digest.
	GetManifest(ctx context.Context, repo string, dgst digest.Digest) (Manifest, error)
	// ResolveTag returns the digest tag points at.
	ResolveTag(ctx context.Context, repo, tag string) (digest.Digest, error)
	// DeleteManifest removes a manifest, the tags pointing at it and its
	// referrer entry from repo.
	DeleteManifest(ctx context.Context, repo string, dgst digest.Digest) error
	// DeleteTag removes a tag (not the manifest).
	DeleteTag(ctx context.Context, repo, tag string) error
	// Tags lists repo's tags in lexical order; ErrNameUnknown if repo has
	// never been pushed to.
	Tags(ctx context.Context, repo string) ([]string, error)
	// Referrers lists the descriptors of the manifests of repo whose
	// subject is dgst.
	Referrers(ctx context.Context, repo string, dgst digest.Digest) ([]ocispec.Descriptor, error)
}

// Manifest is a manifest as stored: its bytes, their digest and media
// type, and, when it has a subject, its subject and the descriptor the
// referrers API lists for it.
type Manifest struct {
	Digest    digest.Digest
	MediaType string
	Content   []byte
	// Subject is the digest of the manifest's subject, if any.
	Subject digest.Digest
	// Referrer is the descriptor listed for it by the referrers API.
	Referrer *ocispec.Descriptor
	// Blobs are the blobs (config, layers) it names, all linked to the
	// repository; PutManifest fails with ErrBlobUnknown if one is gone.
	Blobs []digest.Digest
}
