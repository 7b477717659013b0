package dockerapi

import (
	"net/http"
	"path/filepath"
	"time"

	"github.com/cais-platform/cais/engine/volumes"
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
