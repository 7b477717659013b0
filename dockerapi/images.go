package dockerapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cais-platform/cais/builder"
	"github.com/cais-platform/cais/engine"
	"github.com/cais-platform/cais/engine/events"
	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/image/reference"
	"github.com/cais-platform/cais/image/store"
)

var errStateConflict = errdefs.ErrState

// imageInfo is what the image endpoints show of one stored image.
type imageInfo struct {
	img    store.Image
	config store.ImageConfig
	size   int64
}

func (s *Server) imageInfo(img store.Image) (imageInfo, error) {
	st := s.e.Images()
	_, m, err := st.Manifest(img.Target)
	if err != nil {
		return imageInfo{}, err
	}
	cfg, err := st.Config(m)
	if err != nil {
		return imageInfo{}, err
	}
	var size int64
	for _, l := range m.Layers {
		size += l.Size
	}
	return imageInfo{img: img, config: cfg, size: size}, nil
}

func familiarNames(names []string) []string {
	out := []string{}
	for _, n := range names {
		if r, err := reference.ParseNormalized(n); err == nil {
			out = append(out, r.Familiar())
		}
	}
	return out
}

func created(c store.ImageConfig) time.Time {
	if c.Created != nil {
		return *c.Created
	}
	return time.Time{}
}

func (s *Server) listImages(w http.ResponseWriter, r *http.Request) {
	f, err := ParseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		writeError(w, err)
		return
	}
	imgs, err := s.e.Images().List()
	if err != nil {
		writeError(w, err)
		return
	}
	all := boolValue(r, "all")
	out := []map[string]any{}
	for _, img := range imgs {
		info, err := s.imageInfo(img)
		if err != nil {
			continue
		}
		tags := familiarNames(img.Names)
		dangling := len(tags) == 0
		if !f.match("dangling", func(v string) bool { return (v == "true") == dangling }) {
			continue
		}
		if !f.match("reference", func(v string) bool {
			for _, t := range tags {
				if t == v || strings.HasPrefix(t, v+":") {
					return true
				}
			}
			return false
		}) {
			continue
		}
		_ = all
		labels := info.config.Config.Labels
		if labels == nil {
			labels = map[string]string{}
		}
		out = append(out, map[string]any{
			"Id": string(img.ID), "ParentId": "", "RepoTags": tags, "RepoDigests": []string{},
			"Created": created(info.config).Unix(), "Size": info.size, "SharedSize": -1,
			"Labels": labels, "Containers": len(s.e.ImageInUse(string(img.ID))),
		})
	}
	writeJSON(w, http.StatusOK, out)
}

// imageByName routes /images/NAME/json, /images/NAME/tag,
// /images/NAME/history and DELETE /images/NAME, NAME holding slashes.
func (s *Server) imageByName(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/images/")
	switch {
	case r.Method == http.MethodGet && strings.HasSuffix(rest, "/json"):
		s.inspectImage(w, r, strings.TrimSuffix(rest, "/json"))
	case r.Method == http.MethodGet && strings.HasSuffix(rest, "/history"):
		s.imageHistory(w, r, strings.TrimSuffix(rest, "/history"))
	case r.Method == http.MethodPost && strings.HasSuffix(rest, "/tag"):
		s.tagImage(w, r, strings.TrimSuffix(rest, "/tag"))
	case r.Method == http.MethodPost && strings.HasSuffix(rest, "/push"):
		s.pushImage(w, r, strings.TrimSuffix(rest, "/push"))
	case r.Method == http.MethodDelete && rest != "":
		s.removeImage(w, r, rest)
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "page not found"})
	}
}

func (s *Server) findImage(name string) (store.Image, error) {
	img, err := s.e.Images().Find(name)
	if errors.Is(err, errdefs.ErrNotFound) {
		shown := name
		if ref, perr := reference.ParseDockerRef(name); perr == nil && !reference.IsID(name) {
			shown = ref.Familiar()
		}
		return img, fmt.Errorf("No such image: %s: %w", shown, errdefs.ErrNotFound)
	}
	return img, err
}

func (s *Server) inspectImage(w http.ResponseWriter, r *http.Request, name string) {
	img, err := s.findImage(name)
	if err != nil {
		writeError(w, err)
		return
	}
	info, err := s.imageInfo(img)
	if err != nil {
		writeError(w, err)
		return
	}
	c := info.config
	layers := []string{}
	for _, d := range c.RootFS.DiffIDs {
		layers = append(layers, string(d))
	}
	cfg := c.Config
	writeJSON(w, http.StatusOK, map[string]any{
		"Id": string(img.ID), "RepoTags": familiarNames(img.Names), "RepoDigests": []string{},
		"Parent": "", "Comment": "", "Created": created(c).Format(time.RFC3339Nano), "DockerVersion": "",
		"Author": c.Author, "Config": cfg, "Architecture": c.Architecture, "Variant": c.Variant, "Os": c.OS,
		"Size": info.size, "GraphDriver": map[string]any{"Name": "overlay2", "Data": map[string]string{}},
		"RootFS":   map[string]any{"Type": "layers", "Layers": layers},
		"Metadata": map[string]any{"LastTagTime": "0001-01-01T00:00:00Z"},
	})
}

func (s *Server) imageHistory(w http.ResponseWriter, r *http.Request, name string) {
	img, err := s.findImage(name)
	if err != nil {
		writeError(w, err)
		return
	}
	info, err := s.imageInfo(img)
	if err != nil {
		writeError(w, err)
		return
	}
	out := []map[string]any{}
	h := info.config.History
	// Each history entry that is not an empty layer made the next layer.
	sizes := make([]int64, len(h))
	if _, m, err := s.e.Images().Manifest(img.Target); err == nil {
		l := 0
		for i := range h {
			if !h[i].EmptyLayer && l < len(m.Layers) {
				sizes[i] = m.Layers[l].Size
				l++
			}
		}
	}
	for i := len(h) - 1; i >= 0; i-- {
		id := "<missing>"
		tags := []string{}
		if i == len(h)-1 {
			id, tags = string(img.ID), familiarNames(img.Names)
		}
		var t int64
		if h[i].Created != nil {
			t = h[i].Created.Unix()
		}
		out = append(out, map[string]any{"Id": id, "Created": t, "CreatedBy": h[i].CreatedBy, "Tags": tags, "Size": sizes[i], "Comment": h[i].Comment})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) tagImage(w http.ResponseWriter, r *http.Request, name string) {
	img, err := s.findImage(name)
	if err != nil {
		writeError(w, err)
		return
	}
	repo, tag := r.URL.Query().Get("repo"), r.URL.Query().Get("tag")
	ref, err := reference.ParseNormalized(repo)
	if err != nil {
		writeError(w, err)
		return
	}
	if tag != "" {
		if ref, err = ref.WithTag(tag); err != nil {
			writeError(w, err)
			return
		}
	}
	ref = ref.WithDefaultTag()
	if err := s.e.Images().Tag(r.Context(), ref, img.Target); err != nil {
		writeError(w, err)
		return
	}
	s.e.Publish(events.Image, "tag", string(img.ID), map[string]string{"name": ref.Familiar()})
	w.WriteHeader(http.StatusCreated)
}

func (s *Server) removeImage(w http.ResponseWriter, r *http.Request, name string) {
	st := s.e.Images()
	force := boolValue(r, "force")
	img, err := s.findImage(name)
	if err != nil {
		writeError(w, err)
		return
	}
	users := s.e.ImageInUse(string(img.ID))
	var byName *reference.Reference
	if ref, err := reference.ParseDockerRef(name); err == nil {
		if _, err := st.Resolve(ref); err == nil {
			byName = &ref
		}
	}
	var removed []store.Removal
	if byName != nil {
		if len(img.Names) <= 1 && len(users) > 0 && !force {
			writeError(w, conflict("unable to remove repository reference %q (must force) - container %s is using its referenced image %s",
				name, engine.ShortID(users[0].ID), engine.ShortID(string(img.ID))))
			return
		}
		removed, err = st.Delete(r.Context(), *byName)
	} else {
		if !force {
			if len(img.Names) > 1 {
				writeError(w, conflict("unable to delete %s (must be forced) - image is referenced in multiple repositories", engine.ShortID(string(img.ID))))
				return
			}
			if len(users) > 0 {
				what := "stopped"
				if users[0].State.Running() {
					what = "running"
				}
				writeError(w, conflict("unable to delete %s (must be forced) - image is being used by %s container %s", engine.ShortID(string(img.ID)), what, engine.ShortID(users[0].ID)))
				return
			}
		}
		removed, err = st.DeleteImage(r.Context(), img.Target.Digest)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	for i := range removed {
		if removed[i].Untagged != "" {
			if ref, err := reference.ParseNormalized(removed[i].Untagged); err == nil {
				removed[i].Untagged = ref.Familiar()
			}
			s.e.Publish(events.Image, "untag", string(img.ID), map[string]string{"name": removed[i].Untagged})
		}
		if removed[i].Deleted != "" {
			s.e.Publish(events.Image, "delete", removed[i].Deleted, map[string]string{"name": removed[i].Deleted})
		}
	}
	if removed == nil {
		removed = []store.Removal{}
	}
	writeJSON(w, http.StatusOK, removed)
}

func (s *Server) saveImages(w http.ResponseWriter, r *http.Request) {
	names := r.URL.Query()["names"]
	if len(names) == 0 {
		writeError(w, invalid("no images named"))
		return
	}
	for _, n := range names {
		if _, err := s.findImage(n); err != nil {
			writeError(w, err)
			return
		}
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.WriteHeader(http.StatusOK)
	if err := s.e.Images().Save(r.Context(), w, names); err != nil {
		s.log.Warn("image save", "err", err)
	}
}

// jsonMessage is one line of a progress stream.
type jsonMessage struct {
	Stream      string            `json:"stream,omitempty"`
	Status      string            `json:"status,omitempty"`
	ID          string            `json:"id,omitempty"`
	Error       string            `json:"error,omitempty"`
	ErrorDetail map[string]string `json:"errorDetail,omitempty"`
	Aux         any               `json:"aux,omitempty"`
}

func (s *Server) loadImages(w http.ResponseWriter, r *http.Request) {
	loaded, err := s.e.Images().Load(r.Context(), r.Body)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	for _, l := range loaded {
		name := string(l.ID)
		if len(l.Names) > 0 {
			name = l.Names[0]
		}
		s.e.Publish(events.Image, "load", string(l.ID), map[string]string{"name": name})
		if len(l.Names) == 0 {
			enc.Encode(jsonMessage{Stream: "Loaded image ID: " + string(l.ID) + "\n"})
		}
		for _, n := range l.Names {
			enc.Encode(jsonMessage{Stream: "Loaded image: " + n + "\n"})
		}
	}
}

// createImage is docker import (fromSrc=-) and docker pull (fromImage,
// see distribution.go).
func (s *Server) createImage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("fromImage") != "" {
		s.pullImage(w, r)
		return
	}
	if q.Get("fromSrc") != "-" {
		writeError(w, invalid("import from a URL is not supported; use fromSrc=-"))
		return
	}
	var ref *reference.Reference
	if repo := q.Get("repo"); repo != "" {
		rf, err := reference.ParseNormalized(repo)
		if err == nil && q.Get("tag") != "" {
			rf, err = rf.WithTag(q.Get("tag"))
		}
		if err != nil {
			writeError(w, err)
			return
		}
		rf = rf.WithDefaultTag()
		ref = &rf
	}
	// docker import --change: Dockerfile instructions for the config,
	// checked before the archive is read.
	cfg, err := builder.ApplyChanges(store.ContainerConfig{}, q["changes"])
	if err != nil {
		writeError(w, err)
		return
	}
	id, err := s.importImage(r, ref, q.Get("message"), cfg)
	if err != nil {
		writeError(w, err)
		return
	}
	s.e.Publish(events.Image, "import", id, map[string]string{"name": id})
	writeJSON(w, http.StatusOK, jsonMessage{Status: id})
}

func (s *Server) importImage(r *http.Request, ref *reference.Reference, message string, config store.ContainerConfig) (string, error) {
	st := s.e.Images()
	ctx := r.Context()
	desc, diffID, err := st.AddLayer(ctx, r.Body)
	if err != nil {
		return "", err
	}
	now := time.Now().UTC()
	comment := "Imported from -"
	if message != "" {
		comment = message
	}
	cfg := store.ImageConfig{
		Created: &now, Architecture: runtime.GOARCH, OS: "linux", Config: config,
		RootFS:  ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
		History: []ocispec.History{{Created: &now, Comment: comment}},
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return "", err
	}
	target, err := st.Commit(ctx, b, []ocispec.Descriptor{desc}, true)
	if err != nil {
		return "", err
	}
	if ref != nil {
		err = st.Tag(ctx, *ref, target)
	} else {
		err = st.AddDangling(ctx, target)
	}
	if err != nil {
		return "", err
	}
	return string(digest.FromBytes(b)), nil
}

// readBody reads a request body of at most max bytes.
func readBody(r *http.Request, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, invalid("request body larger than %d bytes", max)
	}
	return b, nil
}
