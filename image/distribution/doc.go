// Package distribution pulls images from and pushes them to registries
// that speak the OCI distribution API (Docker Hub, a cais registry,
// distribution/distribution, ...), storing them in an image store.
//
// A [Client] holds what the daemon was told about registries: which are
// insecure (plain HTTP, or TLS without verification), the mirrors of
// Docker Hub, and the certificate authorities to trust besides the
// system's (the pool CA). Loopback registries (localhost, 127.0.0.0/8,
// ::1) are insecure by default, as Docker has them.
//
// Each operation opens a session with the registry: the /v2/ ping tells
// which authentication it wants, from the WWW-Authenticate challenge. With
// Basic, the user's credentials go with every request; with Bearer, a
// token for the repository's scope ("repository:app:pull,push") is fetched
// from the challenge's realm, with the credentials, once per session.
//
//	c := distribution.New(distribution.Config{Insecure: []string{"registry.lan:5000"}})
//	res, err := c.Pull(ctx, st, ref, creds, func(e distribution.Event) { ... })
//	err = c.Push(ctx, st, ref, creds, func(e distribution.Event) { ... })
//	status, err := c.Login(ctx, creds)
//
// Pulls verify every blob's digest and size as it is written to the store
// and cap manifest and config sizes; the image is named only once all of
// it is stored and its layers unpacked, so a failed pull leaves no image
// (the blobs it wrote go with the store's next GC). Pushes send the blobs
// as stored, so an image pulled and pushed keeps its digests; a blob the
// registry has is skipped, and one another repository of the registry has
// is mounted from there.
//
// The pure parts, tested on their own: [Config.Endpoints] (where a
// registry domain is reached), [ParseChallenges] (WWW-Authenticate),
// [DecodeAuthHeader] (X-Registry-Auth), [ParseManifest] (manifests and
// indexes), the registry error bodies. Progress is reported as [Event]s,
// which the Docker API turns into its JSON progress stream.
package distribution
