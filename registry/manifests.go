package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Manifest media types the registry understands (others are stored as
// opaque JSON).
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// manifestDoc is the union of the fields of image manifests and indexes
// (OCI and Docker) that the registry checks.
type manifestDoc struct {
	SchemaVersion int                  `json:"schemaVersion"`
	MediaType     string               `json:"mediaType"`
	ArtifactType  string               `json:"artifactType"`
	Config        *ocispec.Descriptor  `json:"config"`
	Layers        []ocispec.Descriptor `json:"layers"`
	Manifests     []ocispec.Descriptor `json:"manifests"`
	Subject       *ocispec.Descriptor  `json:"subject"`
	Annotations   map[string]string    `json:"annotations"`
}

// manifestKind sorts manifests by what they reference.
type manifestKind int

const (
	kindOther manifestKind = iota
	kindImage
	kindIndex
)

func kindOf(mediaType string) manifestKind {
	switch mediaType {
	case ocispec.MediaTypeImageManifest, MediaTypeDockerManifest:
		return kindImage
	case ocispec.MediaTypeImageIndex, MediaTypeDockerManifestList:
		return kindIndex
	}
	return kindOther
}

func manifestInvalid(format string, args ...any) *apiError {
	return newError(http.StatusBadRequest, CodeManifestInvalid, "manifest invalid", fmt.Sprintf(format, args...))
}

// parseManifest decodes and checks a manifest pushed with contentType.
// It returns the document and the media type the manifest is stored with.
func parseManifest(contentType string, b []byte) (*manifestDoc, string, error) {
	ct := ""
	if contentType != "" {
		mt, _, err := mime.ParseMediaType(contentType)
		if err != nil {
			return nil, "", manifestInvalid("bad Content-Type %q", contentType)
		}
		ct = mt
	}
	var doc manifestDoc
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil {
		return nil, "", manifestInvalid("not a JSON manifest: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, "", manifestInvalid("trailing data after the manifest")
	}
	mediaType := ct
	switch {
	case doc.MediaType != "" && ct != "" && doc.MediaType != ct:
		return nil, "", manifestInvalid("mediaType %q does not match Content-Type %q", doc.MediaType, ct)
	case ct == "" && doc.MediaType != "":
		mediaType = doc.MediaType
	case ct == "" && doc.Manifests != nil:
		mediaType = ocispec.MediaTypeImageIndex
	case ct == "" && doc.Config != nil:
		mediaType = ocispec.MediaTypeImageManifest
	case ct == "":
		return nil, "", manifestInvalid("no media type")
	}
	kind := kindOf(mediaType)
	if kind != kindOther && doc.SchemaVersion != 2 {
		return nil, "", manifestInvalid("schemaVersion %d, want 2", doc.SchemaVersion)
	}
	if kind == kindImage && doc.Config == nil {
		return nil, "", manifestInvalid("image manifest without config")
	}
	check := func(d *ocispec.Descriptor) error {
		if err := d.Digest.Validate(); err != nil {
			return manifestInvalid("descriptor digest %q: %v", d.Digest, err)
		}
		if d.Size < 0 {
			return manifestInvalid("descriptor %s: negative size", d.Digest)
		}
		return nil
	}
	var descs []*ocispec.Descriptor
	if doc.Config != nil {
		descs = append(descs, doc.Config)
	}
	for i := range doc.Layers {
		descs = append(descs, &doc.Layers[i])
	}
	for i := range doc.Manifests {
		descs = append(descs, &doc.Manifests[i])
	}
	if doc.Subject != nil {
		descs = append(descs, doc.Subject)
	}
	if kind != kindOther {
		for _, d := range descs {
			if err := check(d); err != nil {
				return nil, "", err
			}
		}
	}
	return &doc, mediaType, nil
}

// foreign reports whether a layer is not meant to be pushed (non-
// distributable layers, Docker's foreign layers).
func foreign(mediaType string) bool {
	return strings.Contains(mediaType, "nondistributable") || strings.Contains(mediaType, ".foreign.")
}

func (h *Handler) putManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	var tag string
	var want digest.Digest
	if strings.Contains(rt.arg, ":") {
		d, err := parseDigest(rt.arg)
		if err != nil {
			return err
		}
		want = d
	} else if ValidTag(rt.arg) {
		tag = rt.arg
	} else {
		return manifestInvalid("invalid tag %q", rt.arg)
	}
	if r.ContentLength > MaxManifestSize {
		return newError(http.StatusRequestEntityTooLarge, CodeSizeInvalid, "manifest too large", map[string]int{"max": MaxManifestSize})
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, MaxManifestSize+1))
	if err != nil {
		return newError(http.StatusBadRequest, CodeManifestInvalid, "reading manifest", err.Error())
	}
	if len(b) > MaxManifestSize {
		return newError(http.StatusRequestEntityTooLarge, CodeSizeInvalid, "manifest too large", map[string]int{"max": MaxManifestSize})
	}
	doc, mediaType, err := parseManifest(r.Header.Get("Content-Type"), b)
	if err != nil {
		return err
	}
	d := digest.Canonical.FromBytes(b)
	if want != "" {
		if want.Algorithm().FromBytes(b) != want {
			return newError(http.StatusBadRequest, CodeDigestInvalid, "manifest does not match digest", map[string]string{"digest": want.String()})
		}
		d = want
	}
	// Everything the manifest names must be in the repository.
	var blobDigests []digest.Digest
	switch kindOf(mediaType) {
	case kindImage:
		blobs := append([]ocispec.Descriptor{*doc.Config}, doc.Layers...)
		for _, desc := range blobs {
			if foreign(desc.MediaType) {
				continue
			}
			blobDigests = append(blobDigests, desc.Digest)
			if _, err := h.store.StatBlob(ctx, rt.name, desc.Digest); err != nil {
				if errors.Is(err, ErrBlobUnknown) {
					return newError(http.StatusBadRequest, CodeManifestBlobUnknown, "manifest references a blob unknown to registry", map[string]string{"digest": desc.Digest.String()})
				}
				return err
			}
		}
	case kindIndex:
		for _, desc := range doc.Manifests {
			if _, err := h.store.GetManifest(ctx, rt.name, desc.Digest); err != nil {
				if errors.Is(err, ErrManifestUnknown) {
					return newError(http.StatusBadRequest, CodeManifestBlobUnknown, "index references a manifest unknown to registry", map[string]string{"digest": desc.Digest.String()})
				}
				return err
			}
		}
	}
	m := Manifest{Digest: d, MediaType: mediaType, Content: b, Blobs: blobDigests}
	if doc.Subject != nil && kindOf(mediaType) != kindOther {
		m.Subject = doc.Subject.Digest
		at := doc.ArtifactType
		if at == "" && doc.Config != nil {
			at = doc.Config.MediaType
		}
		m.Referrer = &ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b)), ArtifactType: at, Annotations: doc.Annotations}
	}
	if err := h.store.PutManifest(ctx, rt.name, m, tag); err != nil {
		if errors.Is(err, ErrBlobUnknown) {
			return newError(http.StatusBadRequest, CodeManifestBlobUnknown, "manifest references a blob unknown to registry", err.Error())
		}
		return err
	}
	if m.Subject != "" {
		w.Header().Set("OCI-Subject", m.Subject.String())
	}
	w.Header().Set("Location", "/v2/"+rt.name+"/manifests/"+d.String())
	w.Header().Set("Docker-Content-Digest", d.String())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// resolve turns a manifest reference (tag or digest) into a digest.
func (h *Handler) resolve(r *http.Request, rt route) (digest.Digest, bool, error) {
	if strings.Contains(rt.arg, ":") {
		d, err := parseDigest(rt.arg)
		return d, true, err
	}
	if !ValidTag(rt.arg) {
		return "", false, fmt.Errorf("tag %q: %w", rt.arg, ErrManifestUnknown)
	}
	d, err := h.store.ResolveTag(r.Context(), rt.name, rt.arg)
	return d, false, err
}

func (h *Handler) getManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	d, _, err := h.resolve(r, rt)
	if err != nil {
		return err
	}
	m, err := h.store.GetManifest(r.Context(), rt.name, d)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", m.MediaType)
	w.Header().Set("Docker-Content-Digest", m.Digest.String())
	w.Header().Set("ETag", `"`+m.Digest.String()+`"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(m.Content)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(m.Content)
	}
	return nil
}

func (h *Handler) deleteManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	d, byDigest, err := h.resolve(r, rt)
	if err != nil {
		return err
	}
	if byDigest {
		err = h.store.DeleteManifest(r.Context(), rt.name, d)
	} else {
		err = h.store.DeleteTag(r.Context(), rt.name, rt.arg)
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func (h *Handler) listTags(w http.ResponseWriter, r *http.Request, rt route) error {
	q := r.URL.Query()
	n := -1
	if s := q.Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			return newError(http.StatusBadRequest, CodeUnsupported, "invalid n", map[string]string{"n": s})
		}
		n = v
	}
	tags, err := h.store.Tags(r.Context(), rt.name)
	if err != nil {
		return err
	}
	if last := q.Get("last"); last != "" {
		i := sort.SearchStrings(tags, last)
		if i < len(tags) && tags[i] == last {
			i++
		}
		tags = tags[i:]
	}
	if n >= 0 && n < len(tags) {
		tags = tags[:n]
		if n > 0 {
			next := url.Values{"n": {strconv.Itoa(n)}, "last": {tags[n-1]}}
			w.Header().Set("Link", fmt.Sprintf(`</v2/%s/tags/list?%s>; rel="next"`, rt.name, next.Encode()))
		}
	}
	if tags == nil {
		tags = []string{}
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{rt.name, tags})
}

func (h *Handler) referrers(w http.ResponseWriter, r *http.Request, rt route) error {
	d, err := parseDigest(rt.arg)
	if err != nil {
		return err
	}
	descs, err := h.store.Referrers(r.Context(), rt.name, d)
	if err != nil {
		return err
	}
	if at := r.URL.Query().Get("artifactType"); at != "" {
		kept := descs[:0]
		for _, desc := range descs {
			if desc.ArtifactType == at {
				kept = append(kept, desc)
			}
		}
		descs = kept
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	if descs == nil {
		descs = []ocispec.Descriptor{}
	}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: descs}
	idx.SchemaVersion = 2
	w.Header().Set("Content-Type", ocispec.MediaTypeImageIndex)
	w.WriteHeader(http.StatusOK)
	return json.NewEncoder(w).Encode(idx)
}
