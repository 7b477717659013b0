package reference

import (
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/cais-platform/cais/errdefs"
)

// Limits from the grammar.
const (
	// NameTotalLengthMax bounds a repository name (domain and path).
	NameTotalLengthMax = 255
	// TagLengthMax bounds a tag.
	TagLengthMax = 128
)

// Docker Hub's names.
const (
	// DefaultDomain is the registry of names that name none.
	DefaultDomain = "docker.io"
	// LegacyDefaultDomain is an old spelling of DefaultDomain.
	LegacyDefaultDomain = "index.docker.io"
	// OfficialRepoPrefix holds Docker Hub's official images.
	OfficialRepoPrefix = "library/"
	// DefaultTag is the tag of a reference that gives neither tag nor digest.
	DefaultTag = "latest"
)

// formatError is an error kind of this package. Every kind is an
// errdefs.ErrInvalid.
type formatError string

func (e formatError) Error() string { return string(e) }

// Is makes every kind match errdefs.ErrInvalid.
func (e formatError) Is(target error) bool { return target == errdefs.ErrInvalid }

// digestError is go-digest's complaint about a digest ("invalid checksum
// digest length"), which Docker shows as it is; it matches
// ErrDigestInvalidFormat and errdefs.ErrInvalid.
type digestError struct{ err error }

func (e digestError) Error() string { return e.err.Error() }
func (e digestError) Unwrap() error { return e.err }
func (e digestError) Is(target error) bool {
	return target == ErrDigestInvalidFormat || target == errdefs.ErrInvalid
}

// Error kinds, worded as Docker words them.
var (
	ErrReferenceInvalidFormat error = formatError("invalid reference format")
	ErrTagInvalidFormat       error = formatError("invalid tag format")
	ErrDigestInvalidFormat    error = formatError("invalid digest format")
	ErrNameContainsUppercase  error = formatError("invalid reference format: repository name must be lowercase")
	ErrNameEmpty              error = formatError("repository name must have at least one component")
	ErrNameTooLong            error = formatError(fmt.Sprintf("repository name must not be more than %d characters", NameTotalLengthMax))
	ErrNameNotCanonical       error = formatError("repository name must be canonical")
)

// Reference is a parsed image reference. The zero value is not a valid
// reference. References are values: the With methods return copies.
type Reference struct {
	domain string
	path   string
	tag    string
	digest digest.Digest
}

// Domain returns the registry part ("docker.io", "localhost:5000"), empty
// for a reference from Parse whose name has a single component.
func (r Reference) Domain() string { return r.domain }

// Path returns the repository path within the registry ("library/busybox").
func (r Reference) Path() string { return r.path }

// Name returns the repository name: domain and path.
func (r Reference) Name() string {
	if r.domain == "" {
		return r.path
	}
	return r.domain + "/" + r.path
}

// Tag returns the tag, or "".
func (r Reference) Tag() string { return r.tag }

// Digest returns the digest, or "".
func (r Reference) Digest() digest.Digest { return r.digest }

// IsNameOnly reports whether the reference has neither tag nor digest.
func (r Reference) IsNameOnly() bool { return r.tag == "" && r.digest == "" }

// String returns the reference in full: name[:tag][@digest].
func (r Reference) String() string { return r.Name() + r.suffix() }

func (r Reference) suffix() string {
	s := ""
	if r.tag != "" {
		s += ":" + r.tag
	}
	if r.digest != "" {
		s += "@" + r.digest.String()
	}
	return s
}

// FamiliarName returns the name as Docker shows it: without "docker.io/",
// and without "library/" for official images.
func (r Reference) FamiliarName() string {
	if r.domain != DefaultDomain {
		return r.Name()
	}
	if rest, ok := strings.CutPrefix(r.path, OfficialRepoPrefix); ok && !strings.Contains(rest, "/") {
		return rest
	}
	return r.path
}

// Familiar returns the reference as Docker shows it: the familiar name with
// tag and digest ("busybox:latest", "me/app@sha256:…").
func (r Reference) Familiar() string { return r.FamiliarName() + r.suffix() }

// TrimmedName returns the reference with tag and digest removed.
func (r Reference) TrimmedName() Reference { return Reference{domain: r.domain, path: r.path} }

// WithTag returns the reference with its tag set (and its digest kept).
func (r Reference) WithTag(tag string) (Reference, error) {
	if err := ValidateTag(tag); err != nil {
		return Reference{}, err
	}
	r.tag = tag
	return r, nil
}

// WithDigest returns the reference with its digest set (and its tag kept).
func (r Reference) WithDigest(d digest.Digest) (Reference, error) {
	if !isDigest(string(d)) {
		return Reference{}, ErrDigestInvalidFormat
	}
	if err := d.Validate(); err != nil {
		return Reference{}, digestError{err}
	}
	r.digest = d
	return r, nil
}

// WithDefaultTag returns the reference with DefaultTag if it is name only.
func (r Reference) WithDefaultTag() Reference {
	if r.IsNameOnly() {
		r.tag = DefaultTag
	}
	return r
}

// ValidateTag checks a tag against the grammar.
func ValidateTag(tag string) error {
	if !isTag(tag) {
		return fmt.Errorf("%w: %q", ErrTagInvalidFormat, tag)
	}
	return nil
}

// Parse parses s against the reference grammar without normalizing it.
// A name of two or more components whose first is a valid domain takes it
// as its domain ("foo/bar" has domain "foo"), as the grammar's regular
// expression does.
func Parse(s string) (Reference, error) {
	ref, ok := parse(s)
	if !ok {
		if s == "" {
			return Reference{}, ErrNameEmpty
		}
		if _, ok := parse(strings.ToLower(s)); ok {
			return Reference{}, ErrNameContainsUppercase
		}
		return Reference{}, ErrReferenceInvalidFormat
	}
	if len(ref.Name()) > NameTotalLengthMax {
		return Reference{}, ErrNameTooLong
	}
	if ref.digest != "" {
		if err := ref.digest.Validate(); err != nil {
			return Reference{}, digestError{err}
		}
	}
	return ref, nil
}

// ParseNormalized parses what a user typed as Docker does: a name without a
// registry is on Docker Hub, a one-component Hub name is under "library/".
// It adds no default tag (see ParseDockerRef). A 64-character hexadecimal
// string is refused: it is an image ID, not a name.
func ParseNormalized(s string) (Reference, error) {
	if isIdentifier(s) {
		return Reference{}, formatError(fmt.Sprintf("invalid repository name (%s), cannot specify 64-byte hexadecimal strings", s))
	}
	domain, remainder := splitDockerDomain(s)
	remote := remainder
	if i := strings.IndexAny(remote, ":@"); i >= 0 {
		remote = remote[:i]
	}
	if strings.ToLower(remote) != remote {
		return Reference{}, fmt.Errorf("%w: repository name (%s) must be lowercase", ErrReferenceInvalidFormat, remote)
	}
	ref, err := Parse(domain + "/" + remainder)
	if err != nil {
		return Reference{}, err
	}
	if ref.domain != domain {
		// The remainder itself parsed as domain/path: not canonical.
		return Reference{}, ErrReferenceInvalidFormat
	}
	return ref, nil
}

// ParseDockerRef parses like ParseNormalized, then adds DefaultTag to a name
// alone and drops the tag of a reference that has a digest too, as image
// commands do.
func ParseDockerRef(s string) (Reference, error) {
	ref, err := ParseNormalized(s)
	if err != nil {
		return Reference{}, err
	}
	if ref.digest != "" {
		ref.tag = ""
	}
	return ref.WithDefaultTag(), nil
}

// ParseCanonical parses a reference that must already be in normalized form
// (it has a domain and is unchanged by normalization).
func ParseCanonical(s string) (Reference, error) {
	ref, err := ParseNormalized(s)
	if err != nil {
		return Reference{}, err
	}
	if ref.String() != s {
		return Reference{}, ErrNameNotCanonical
	}
	return ref, nil
}

// IsID reports whether s is a full image ID: 64 lowercase hex digits.
func IsID(s string) bool { return isIdentifier(s) }

// splitDockerDomain splits a name into its registry and the rest. The first
// component is a registry when it contains '.' or ':', is "localhost", or
// has an uppercase letter (which a path never has).
func splitDockerDomain(name string) (domain, remainder string) {
	i := strings.IndexByte(name, '/')
	if i == -1 || (!strings.ContainsAny(name[:i], ".:") && name[:i] != "localhost" && strings.ToLower(name[:i]) == name[:i]) {
		domain, remainder = DefaultDomain, name
	} else {
		domain, remainder = name[:i], name[i+1:]
	}
	if domain == LegacyDefaultDomain {
		domain = DefaultDomain
	}
	if domain == DefaultDomain && !strings.ContainsRune(remainder, '/') {
		remainder = OfficialRepoPrefix + remainder
	}
	return domain, remainder
}
