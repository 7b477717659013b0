// Package registry serves the OCI distribution API (distribution-spec
// v1.1): the HTTP endpoints under /v2/ with which docker, podman, oras and
// every other OCI client push and pull images and artifacts.
//
// The package is a pure http.Handler over a Store; it decides what each
// request means, checks it (repository names, digests, ranges, manifest
// references) and turns the Store's sentinel errors into the spec's
// error bodies. It does no file I/O itself. The local-disk Store is in
// registry/disk:
//
//	st, err := disk.Open("/var/lib/cais/registry")
//	if err != nil { ... }
//	h := registry.New(st, registry.Options{Log: log})
//	http.ListenAndServe("127.0.0.1:5000", h)
//
// A push goes: blobs first (POST /v2/<name>/blobs/uploads/, then PATCH
// chunks and a PUT with ?digest=, or a single POST with ?digest=), then
// the manifest (PUT /v2/<name>/manifests/<tag>), which is refused with
// MANIFEST_BLOB_UNKNOWN until every blob it names is in the repository.
// A pull is the reverse. Content is verified against its digest before
// the Store makes it visible, so a failed push stores nothing.
package registry
