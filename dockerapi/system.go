package dockerapi

import (
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/cais-platform/cais/engine"
	"github.com/cais-platform/cais/engine/events"
	"github.com/cais-platform/cais/engine/volumes"
	"github.com/cais-platform/cais/image/reference"
)

// DiskUsage is the body of GET /system/df, docker system df's source.
type DiskUsage struct {
	LayersSize int64            `json:"LayersSize"`
	Images     []map[string]any `json:"Images"`
	Containers []map[string]any `json:"Containers"`
	Volumes    []volumeJSON     `json:"Volumes"`
	BuildCache []any            `json:"BuildCache"`
}

// SharedSizes returns, for images given as lists of (layer digest, size),
// the size of each image's layers that another image uses too, and the
// size of all distinct layers. It does no I/O.
func SharedSizes(images [][]LayerSize) (shared []int64, total int64) {
	users := map[string]int{}
	for _, ls := range images {
		seen := map[string]bool{}
		for _, l := range ls {
			if !seen[l.Digest] {
				seen[l.Digest] = true
				users[l.Digest]++
			}
		}
	}
	counted := map[string]bool{}
	shared = make([]int64, len(images))
	for i, ls := range images {
		seen := map[string]bool{}
		for _, l := range ls {
			if seen[l.Digest] {
				continue
			}
			seen[l.Digest] = true
			if users[l.Digest] > 1 {
				shared[i] += l.Size
			}
			if !counted[l.Digest] {
				counted[l.Digest] = true
				total += l.Size
			}
		}
	}
	return shared, total
}

// LayerSize is one layer of an image.
type LayerSize struct {
	Digest string
	Size   int64
}

func (s *Server) systemDF(w http.ResponseWriter, r *http.Request) {
	du := DiskUsage{Images: []map[string]any{}, Containers: []map[string]any{}, Volumes: []volumeJSON{}, BuildCache: []any{}}
	imgs, err := s.e.Images().List()
	if err != nil {
		writeError(w, err)
		return
	}
	var infos []imageInfo
	var layers [][]LayerSize
	imageSize := map[string]int64{}
	for _, img := range imgs {
		info, err := s.imageInfo(img)
		if err != nil {
			continue
		}
		_, m, err := s.e.Images().Manifest(img.Target)
		if err != nil {
			continue
		}
		var ls []LayerSize
		for _, l := range m.Layers {
			ls = append(ls, LayerSize{Digest: l.Digest.String(), Size: l.Size})
		}
		infos = append(infos, info)
		layers = append(layers, ls)
		imageSize[string(img.ID)] = info.size
	}
	shared, total := SharedSizes(layers)
	du.LayersSize = total
	for i, info := range infos {
		labels := info.config.Config.Labels
		if labels == nil {
			labels = map[string]string{}
		}
		du.Images = append(du.Images, map[string]any{
			"Id": string(info.img.ID), "ParentId": "", "RepoTags": familiarNames(info.img.Names), "RepoDigests": []string{},
			"Created": created(info.config).Unix(), "Size": info.size, "SharedSize": shared[i], "VirtualSize": info.size,
			"Labels": labels, "Containers": len(s.e.ImageInUse(string(info.img.ID))),
		})
	}
	now := time.Now()
	for _, c := range s.e.List() {
		sum := Summarize(c, now)
		rw := volumes.DirSize(filepath.Join(s.e.Dir(c.ID), "upper"))
		du.Containers = append(du.Containers, map[string]any{
			"Id": sum.ID, "Names": sum.Names, "Image": sum.Image, "ImageID": sum.ImageID, "Command": sum.Command,
			"Created": sum.Created, "Ports": sum.Ports, "Labels": sum.Labels, "State": sum.State, "Status": sum.Status,
			"Mounts": sum.Mounts, "SizeRw": rw, "SizeRootFs": rw + imageSize[c.Image],
		})
	}
	vs := s.e.Volumes()
	for _, v := range vs.List() {
		j := toVolumeJSON(v)
		size := int64(-1)
		if v.Driver == "local" {
			size = volumes.DirSize(v.Mountpoint)
		}
		j.UsageData = &volumeUsage{Size: size, RefCount: int64(len(vs.Refs(v.Name)))}
		du.Volumes = append(du.Volumes, j)
	}
	writeJSON(w, http.StatusOK, du)
}

// pruneFilter is what container and image prune filters select: until
// (created before) and label / label! (with or without a value).
type pruneFilter struct {
	until     time.Time
	labels    []string
	notLabels []string
}

func parsePruneFilter(r *http.Request, extra ...string) (pruneFilter, Filters, error) {
	var pf pruneFilter
	f, err := ParseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		return pf, nil, err
	}
	for k := range f {
		ok := k == "until" || k == "label" || k == "label!"
		for _, e := range extra {
			ok = ok || k == e
		}
		if !ok {
			return pf, nil, invalid("invalid filter '%s'", k)
		}
	}
	for _, u := range f["until"] {
		d, derr := time.ParseDuration(u)
		switch {
		case derr == nil:
			pf.until = time.Now().Add(-d)
		default:
			t, terr := parseTime(u)
			if terr != nil {
				if t, terr = time.Parse(time.RFC3339, u); terr != nil {
					return pf, nil, invalid("invalid until filter %q", u)
				}
			}
			pf.until = t
		}
	}
	pf.labels, pf.notLabels = f["label"], f["label!"]
	return pf, f, nil
}

// Keep reports whether the filter spares an object created at created
// with labels.
func (pf pruneFilter) Keep(created time.Time, labels map[string]string) bool {
	has := func(l string) bool {
		k, v, withValue := strings.Cut(l, "=")
		got, ok := labels[k]
		return ok && (!withValue || got == v)
	}
	if !pf.until.IsZero() && !created.Before(pf.until) {
		return true
	}
	for _, l := range pf.labels {
		if !has(l) {
			return true
		}
	}
	for _, l := range pf.notLabels {
		if has(l) {
			return true
		}
	}
	return false
}

// pruneContainers is docker container prune: stopped containers go.
func (s *Server) pruneContainers(w http.ResponseWriter, r *http.Request) {
	pf, _, err := parsePruneFilter(r)
	if err != nil {
		writeError(w, err)
		return
	}
	deleted := []string{}
	var space int64
	for _, c := range s.e.List() {
		if c.State.Running() || pf.Keep(c.Created, c.Config.Labels) {
			continue
		}
		size := volumes.DirSize(filepath.Join(s.e.Dir(c.ID), "upper"))
		if err := s.e.Remove(r.Context(), c.ID, engine.RemoveOptions{}); err != nil {
			s.log.Warn("container prune", "container", c.ID, "err", err)
			continue
		}
		deleted = append(deleted, c.ID)
		space += size
	}
	writeJSON(w, http.StatusOK, map[string]any{"ContainersDeleted": deleted, "SpaceReclaimed": space})
}

// pruneImages is docker image prune: dangling images no container uses,
// or with dangling=false (prune -a) every image no container uses.
func (s *Server) pruneImages(w http.ResponseWriter, r *http.Request) {
	pf, f, err := parsePruneFilter(r, "dangling")
	if err != nil {
		writeError(w, err)
		return
	}
	danglingOnly := true
	for _, v := range f["dangling"] {
		danglingOnly = !(v == "false" || v == "0")
	}
	imgs, err := s.e.Images().List()
	if err != nil {
		writeError(w, err)
		return
	}
	deleted := []map[string]string{}
	var space int64
	for _, img := range imgs {
		if danglingOnly && len(img.Names) > 0 || len(s.e.ImageInUse(string(img.ID))) > 0 {
			continue
		}
		info, err := s.imageInfo(img)
		if err != nil || pf.Keep(created(info.config), info.config.Config.Labels) {
			continue
		}
		removed, err := s.e.Images().DeleteImage(r.Context(), img.Target.Digest)
		if err != nil {
			s.log.Warn("image prune", "image", img.ID, "err", err)
			continue
		}
		for _, rm := range removed {
			if rm.Untagged != "" {
				if ref, err := reference.ParseNormalized(rm.Untagged); err == nil {
					rm.Untagged = ref.Familiar()
				}
				deleted = append(deleted, map[string]string{"Untagged": rm.Untagged})
				s.e.Publish(events.Image, "untag", string(img.ID), map[string]string{"name": rm.Untagged})
			}
			if rm.Deleted != "" {
				deleted = append(deleted, map[string]string{"Deleted": rm.Deleted})
				s.e.Publish(events.Image, "delete", rm.Deleted, map[string]string{"name": rm.Deleted})
			}
		}
		space += info.size
	}
	writeJSON(w, http.StatusOK, map[string]any{"ImagesDeleted": deleted, "SpaceReclaimed": space})
}
