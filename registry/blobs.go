package registry

import (
	_ "crypto/sha256" // digest algorithms the registry accepts
	_ "crypto/sha512"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/opencontainers/go-digest"
)

var uploadIDRE = regexp.MustCompile(`^[a-zA-Z0-9-]{1,64}$`)

func (h *Handler) getBlob(w http.ResponseWriter, r *http.Request, rt route) error {
	d, err := parseDigest(rt.arg)
	if err != nil {
		return err
	}
	f, _, err := h.store.OpenBlob(r.Context(), rt.name, d)
	if err != nil {
		return err
	}
	defer f.Close()
	w.Header().Set("Docker-Content-Digest", d.String())
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", `"`+d.String()+`"`)
	// ServeContent answers HEAD, Range and If-None-Match.
	http.ServeContent(w, r, "", time.Time{}, f)
	return nil
}

func (h *Handler) deleteBlob(w http.ResponseWriter, r *http.Request, rt route) error {
	d, err := parseDigest(rt.arg)
	if err != nil {
		return err
	}
	if err := h.store.DeleteBlob(r.Context(), rt.name, d); err != nil {
		return err
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// contentLength returns the request's declared body length, -1 if none.
func contentLength(r *http.Request) int64 {
	if r.ContentLength >= 0 && r.Header.Get("Content-Length") != "" {
		return r.ContentLength
	}
	return -1
}

func (h *Handler) blobCreated(w http.ResponseWriter, name string, d digest.Digest) {
	w.Header().Set("Location", "/v2/"+name+"/blobs/"+d.String())
	w.Header().Set("Docker-Content-Digest", d.String())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

func (h *Handler) uploadAccepted(w http.ResponseWriter, name, id string, size int64, status int) {
	w.Header().Set("Location", "/v2/"+name+"/blobs/uploads/"+id)
	w.Header().Set("Docker-Upload-UUID", id)
	end := size - 1
	if end < 0 {
		end = 0
	}
	w.Header().Set("Range", fmt.Sprintf("0-%d", end))
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(status)
}

// startUpload is POST /v2/<name>/blobs/uploads/: a mount (?mount=&from=),
// a monolithic upload (?digest=) or the start of a session.
func (h *Handler) startUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	q := r.URL.Query()
	if m := q.Get("mount"); m != "" {
		d, err := parseDigest(m)
		if err != nil {
			return err
		}
		if from := q.Get("from"); from != "" && ValidName(from) && h.authorize(r, from, false) == nil {
			if err := h.store.MountBlob(ctx, rt.name, from, d); err == nil {
				h.blobCreated(w, rt.name, d)
				return nil
			}
		}
		// Not mountable: fall back to a session, as the spec says.
	}
	if ds := q.Get("digest"); ds != "" {
		d, err := parseDigest(ds)
		if err != nil {
			return err
		}
		if _, err := h.store.PutBlob(ctx, rt.name, d, contentLength(r), r.Body); err != nil {
			return err
		}
		h.blobCreated(w, rt.name, d)
		return nil
	}
	id, err := h.store.NewUpload(ctx, rt.name)
	if err != nil {
		return err
	}
	h.uploadAccepted(w, rt.name, id, 0, http.StatusAccepted)
	return nil
}

func (h *Handler) uploadID(rt route) (string, error) {
	if !uploadIDRE.MatchString(rt.arg) {
		return "", fmt.Errorf("upload id %q: %w", rt.arg, ErrUploadUnknown)
	}
	return rt.arg, nil
}

func (h *Handler) uploadStatus(w http.ResponseWriter, r *http.Request, rt route) error {
	id, err := h.uploadID(rt)
	if err != nil {
		return err
	}
	size, err := h.store.UploadSize(r.Context(), rt.name, id)
	if err != nil {
		return err
	}
	h.uploadAccepted(w, rt.name, id, size, http.StatusNoContent)
	return nil
}

// appendChunk writes the request's body into the upload, checking its
// Content-Range (the chunk must start where the upload ends) and length.
func (h *Handler) appendChunk(r *http.Request, name, id string) (int64, error) {
	ctx := r.Context()
	size, err := h.store.UploadSize(ctx, name, id)
	if err != nil {
		return 0, err
	}
	want := contentLength(r)
	if cr := r.Header.Get("Content-Range"); cr != "" {
		start, length, err := ParseContentRange(cr)
		if err != nil {
			return 0, newError(http.StatusRequestedRangeNotSatisfiable, CodeBlobUploadInvalid, "malformed Content-Range", map[string]string{"Content-Range": cr})
		}
		if start != size {
			return 0, fmt.Errorf("chunk at %d, upload holds %d bytes: %w", start, size, ErrRangeInvalid)
		}
		if want >= 0 && want != length {
			return 0, newError(http.StatusBadRequest, CodeSizeInvalid, "Content-Length does not match Content-Range", nil)
		}
		want = length
	}
	if want == 0 {
		return size, nil
	}
	return h.store.AppendUpload(ctx, name, id, size, want, r.Body)
}

func (h *Handler) patchUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	id, err := h.uploadID(rt)
	if err != nil {
		return err
	}
	size, err := h.appendChunk(r, rt.name, id)
	if err != nil {
		return err
	}
	h.uploadAccepted(w, rt.name, id, size, http.StatusAccepted)
	return nil
}

// putUpload is the PUT that ends a session, with an optional last chunk.
func (h *Handler) putUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	id, err := h.uploadID(rt)
	if err != nil {
		return err
	}
	ds := r.URL.Query().Get("digest")
	if ds == "" {
		return newError(http.StatusBadRequest, CodeDigestInvalid, "digest parameter missing", nil)
	}
	d, err := parseDigest(ds)
	if err != nil {
		return err
	}
	if _, err := h.appendChunk(r, rt.name, id); err != nil {
		return err
	}
	if _, err := h.store.CommitUpload(r.Context(), rt.name, id, d); err != nil {
		return err
	}
	h.blobCreated(w, rt.name, d)
	return nil
}

func (h *Handler) cancelUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	id, err := h.uploadID(rt)
	if err != nil {
		return err
	}
	if err := h.store.CancelUpload(r.Context(), rt.name, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
