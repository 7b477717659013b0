package dockerapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/cais-platform/cais/engine/containerfs"
	"github.com/cais-platform/cais/errdefs"
)

// pathStatHeader carries a path's stat in archive responses.
const pathStatHeader = "X-Docker-Container-Path-Stat"

// pathError words a missing path as Docker does.
func pathError(err error, ref string) error {
	var pe *containerfs.PathError
	if errors.As(err, &pe) && errors.Is(err, containerfs.ErrNoSuchPath) {
		return fmt.Errorf("Could not find the file %s in container %s: %w", pe.Path, ref, errdefs.ErrNotFound)
	}
	return err
}

// maxCopyIn bounds what one docker cp into a container may write.
const maxCopyIn = 64 << 30

func (s *Server) headArchive(w http.ResponseWriter, r *http.Request) {
	p, err := containerfs.CleanPath(r.URL.Query().Get("path"))
	if err != nil {
		writeError(w, err)
		return
	}
	root, release, err := s.e.ContainerRoot(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	defer release()
	st, err := containerfs.Stat(root, p)
	if err != nil {
		writeError(w, pathError(err, r.PathValue("id")))
		return
	}
	w.Header().Set(pathStatHeader, st.Header())
	w.WriteHeader(http.StatusOK)
}

func (s *Server) getArchive(w http.ResponseWriter, r *http.Request) {
	p, err := containerfs.CleanPath(r.URL.Query().Get("path"))
	if err != nil {
		writeError(w, err)
		return
	}
	root, release, err := s.e.ContainerRoot(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	defer release()
	started := false
	err = containerfs.Archive(r.Context(), w, root, p, func(st containerfs.PathStat) {
		started = true
		w.Header().Set(pathStatHeader, st.Header())
		w.Header().Set("Content-Type", "application/x-tar")
		w.WriteHeader(http.StatusOK)
	})
	if err != nil {
		if !started {
			writeError(w, pathError(err, r.PathValue("id")))
			return
		}
		s.log.Warn("docker cp from a container", "container", r.PathValue("id"), "path", p, "err", err)
	}
}

func (s *Server) putArchive(w http.ResponseWriter, r *http.Request) {
	p, err := containerfs.CleanPath(r.URL.Query().Get("path"))
	if err != nil {
		writeError(w, err)
		return
	}
	root, release, err := s.e.ContainerRoot(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	defer release()
	opts := containerfs.ExtractOptions{KeepOwners: boolValue(r, "copyUIDGID"), MaxSize: maxCopyIn}
	if err := containerfs.Extract(r.Context(), r.Body, root, p, opts); err != nil {
		writeError(w, pathError(err, r.PathValue("id")))
		return
	}
	w.WriteHeader(http.StatusOK)
}
