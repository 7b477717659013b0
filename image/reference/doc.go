// Package reference parses, validates and normalizes image references the
// way Docker does.
//
// A reference names an image in a registry:
//
//	[domain/]path[:tag][@digest]
//
// following the grammar of the distribution project's reference docs:
//
//	domain           := host [':' port-number]
//	host             := domain-name | '[' IPv6address ']'
//	domain-name      := domain-component ['.' domain-component]*
//	domain-component := /[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]/
//	port-number      := /[0-9]+/
//	path             := path-component ['/' path-component]*
//	path-component   := alpha-numeric [separator alpha-numeric]*
//	alpha-numeric    := /[a-z0-9]+/
//	separator        := /[_.]|__|[-]+/
//	tag              := /[\w][\w.-]{0,127}/
//	digest           := algorithm ':' hex   (validated with go-digest)
//
// [Parse] checks that grammar only. [ParseNormalized] is what the docker CLI
// and daemon apply to what a user types: a name without a registry lives on
// Docker Hub ("docker.io"), and a one-component Hub name is an official image
// under "library/":
//
//	busybox              -> docker.io/library/busybox
//	busybox:1.36         -> docker.io/library/busybox:1.36
//	me/app               -> docker.io/me/app
//	localhost:5000/app:1 -> localhost:5000/app:1
//	ghcr.io/o/app@sha256:… stays as it is
//
// [ParseDockerRef] adds what image commands do on top: ":latest" when neither
// tag nor digest is given, and a digest wins over a tag ("name:tag@digest"
// names the digest). [Reference.Familiar] gives the short form Docker shows
// ("busybox:latest", "me/app:1"), the inverse of the normalization.
//
// Errors carry Docker's wording ("invalid reference format", "invalid
// reference format: repository name (library/Foo) must be lowercase") and
// match errdefs.ErrInvalid with errors.Is, as well as this package's
// sentinels.
package reference
