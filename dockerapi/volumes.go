package dockerapi

import (
	"net/http"
	"strings"
	"time"

	"github.com/cais-platform/cais/engine/volumes"
)

// volumeJSON is a volume as the Docker API shows it.
type volumeJSON struct {
	CreatedAt  string            `json:"CreatedAt"`
	Driver     string            `json:"Driver"`
	Labels     map[string]string `json:"Labels"`
	Mountpoint string            `json:"Mountpoint"`
	Name       string            `json:"Name"`
	Options    map[string]string `json:"Options"`
	Scope      string            `json:"Scope"`
	UsageData  *volumeUsage      `json:"UsageData,omitempty"`
}

type volumeUsage struct {
	Size     int64 `json:"Size"`
	RefCount int64 `json:"RefCount"`
}

func toVolumeJSON(v volumes.Volume) volumeJSON {
	j := volumeJSON{
		CreatedAt: v.CreatedAt.Format(time.RFC3339), Driver: v.Driver, Labels: v.Labels, Mountpoint: v.Mountpoint,
		Name: v.Name, Options: v.Options, Scope: "local",
	}
	// Docker shows null for none.
	if len(j.Labels) == 0 {
		j.Labels = nil
	}
	if len(j.Options) == 0 {
		j.Options = nil
	}
	return j
}

// VolumeMatches applies docker volume ls filters (dangling, name, label,
// driver) to a volume referenced by refs containers.
func VolumeMatches(f Filters, v volumes.Volume, refs int) bool {
	return f.match("name", func(s string) bool { return strings.Contains(v.Name, s) }) &&
		f.match("driver", func(s string) bool { return v.Driver == s }) &&
		f.match("dangling", func(s string) bool {
			switch strings.ToLower(s) {
			case "true", "1":
				return refs == 0
			case "false", "0":
				return refs > 0
			}
			return false
		}) &&
		f.match("label", func(s string) bool {
			k, val, hasVal := strings.Cut(s, "=")
			got, ok := v.Labels[k]
			return ok && (!hasVal || got == val)
		})
}

func checkVolumeFilters(f Filters, allowed ...string) error {
	for k := range f {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok {
			return invalid("invalid filter '%s'", k)
		}
	}
	return nil
}

func (s *Server) listVolumes(w http.ResponseWriter, r *http.Request) {
	f, err := ParseFilters(r.URL.Query().Get("filters"))
	if err == nil {
		err = checkVolumeFilters(f, "name", "driver", "dangling", "label")
	}
	if err != nil {
		writeError(w, err)
		return
	}
	vs := s.e.Volumes()
	out := []volumeJSON{}
	for _, v := range vs.List() {
		if VolumeMatches(f, v, len(vs.Refs(v.Name))) {
			out = append(out, toVolumeJSON(v))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"Volumes": out, "Warnings": []string{}})
}

func (s *Server) createVolume(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name       string            `json:"Name"`
		Driver     string            `json:"Driver"`
		DriverOpts map[string]string `json:"DriverOpts"`
		Labels     map[string]string `json:"Labels"`
	}
	if err := decodeBody(r, &body); err != nil {
		writeError(w, err)
		return
	}
	v, err := s.e.Volumes().Create(r.Context(), volumes.CreateOptions{Name: body.Name, Driver: body.Driver, Labels: body.Labels, Options: body.DriverOpts})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, toVolumeJSON(v))
}

func (s *Server) inspectVolume(w http.ResponseWriter, r *http.Request) {
	v, err := s.e.Volumes().Get(r.PathValue("name"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, toVolumeJSON(v))
}

func (s *Server) removeVolume(w http.ResponseWriter, r *http.Request) {
	if err := s.e.Volumes().Remove(r.Context(), r.PathValue("name"), boolValue(r, "force")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) pruneVolumes(w http.ResponseWriter, r *http.Request) {
	f, err := ParseFilters(r.URL.Query().Get("filters"))
	if err == nil {
		err = checkVolumeFilters(f, "label", "label!", "all")
	}
	if err != nil {
		writeError(w, err)
		return
	}
	all := false
	for _, v := range f["all"] {
		all = all || v == "true" || v == "1"
	}
	delete(f, "all")
	notLabels := f["label!"]
	delete(f, "label!")
	removed, space := s.e.Volumes().Prune(r.Context(), all, func(v volumes.Volume) bool {
		for _, l := range notLabels {
			k, val, hasVal := strings.Cut(l, "=")
			if got, ok := v.Labels[k]; ok && (!hasVal || got == val) {
				return false
			}
		}
		return VolumeMatches(f, v, 0)
	})
	if removed == nil {
		removed = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"VolumesDeleted": removed, "SpaceReclaimed": space})
}

// MountsJSON shows a container's mounts as inspect and ps do; vols, if
// given, supplies the volumes' host directories.
func MountsJSON(mps []volumes.MountPoint, vols *volumes.Store) []map[string]any {
	out := []map[string]any{}
	for _, mp := range mps {
		m := map[string]any{"Type": mp.Type, "Source": mp.Source, "Destination": mp.Destination, "Mode": mp.Mode, "RW": mp.RW, "Propagation": mp.Propagation}
		if mp.Type == volumes.TypeVolume {
			m["Name"], m["Driver"] = mp.Name, mp.Driver
			if vols != nil {
				if v, err := vols.Get(mp.Name); err == nil {
					m["Source"] = v.Mountpoint
				}
			}
		}
		out = append(out, m)
	}
	return out
}

func mountsAny(ms []map[string]any) []any {
	out := make([]any, len(ms))
	for i, m := range ms {
		out[i] = m
	}
	return out
}
