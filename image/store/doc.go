// Package store keeps container images on disk in the OCI image layout,
// and their layers unpacked once, ready to be overlayfs lower directories.
//
// Layout of the store's root:
//
//	oci-layout              {"imageLayoutVersion": "1.0.0"}
//	index.json              an OCI index: one entry per image name, and
//	                        untagged ("dangling") images without a name
//	blobs/sha256/<hex>      manifests, configs and layers, by digest
//	ingest/                 blobs being written
//	layers/sha256/<hex>     a layer unpacked, by chain ID
//	layers/tmp/             layers being unpacked
//
// The root is thus itself an OCI image layout that other tools can read.
// Each index entry names its image with the annotation
// "io.containerd.image.name" (the full reference, docker.io/library/
// busybox:latest) and "org.opencontainers.image.ref.name" (the tag), as
// containerd and Docker's image store do.
//
// # Blobs
//
// [Store.WriteBlob] streams into ingest/, hashing as it goes; when the
// digest is known beforehand a mismatch fails the write and leaves
// nothing. A blob lands in blobs/ by rename, so readers never see part of
// one. Manifests and configs are blobs too; [Store.Commit] writes them for
// layers already stored (docker import, build, bootstrap).
//
// # Images
//
// [Store.Tag] points a name at a manifest (OCI or Docker v2 schema 2, or an
// index, of which the manifest for this platform is used), after checking
// that every blob it needs is present. index.json is rewritten atomically
// (temporary file, fsync, rename) under the store's lock. A name moved to
// another image leaves the old one dangling when nothing else names it, as
// Docker does. [Store.Untag] and [Store.Delete] remove names and images;
// blobs are reference-counted over the images left, so deleting one image
// frees exactly the blobs no other image uses. [Store.GC] removes blobs
// and unpacked layers nothing references (blobs written recently are kept:
// an image being loaded or pulled is not tagged yet).
//
// # Layers
//
// [Store.Layers] unpacks an image's layers (with package layer, whiteouts
// in overlayfs form) into layers/sha256/<chain ID>, checking each layer's
// DiffID against the config, and returns the directories top layer first,
// as overlayfs's lowerdir option lists them. Each chain ID is unpacked
// once: concurrent callers wait for the one unpacking, and the final
// rename makes a finished directory appear whole.
//
// # Archives
//
// [Store.Save] writes images as docker save does (Docker 25 and later):
// one tar that is both an OCI image layout and the docker-archive format
// with manifest.json. [Store.Load] reads either format, and the legacy
// docker-archive with <id>/layer.tar, verifying every blob's digest.
package store
