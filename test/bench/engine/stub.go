package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
)

// stubDaemon answers the Engine API calls of `docker run --rm busybox
// true` at once, running nothing: `docker run` against it is what the
// docker CLI itself costs for that command (its start, its five calls,
// its exit), the part of the time no daemon can take away.
type stubDaemon struct {
	sock string
	srv  *http.Server

	mu      sync.Mutex
	started map[string]chan struct{} // by container ID, closed by its start
	n       int
}

func startStub(sock string) (*stubDaemon, error) {
	os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("stub daemon: %w", err)
	}
	s := &stubDaemon{sock: sock, started: map[string]chan struct{}{}}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve)}
	go s.srv.Serve(ln)
	return s, nil
}

func (s *stubDaemon) close() {
	s.srv.Shutdown(context.Background())
	os.Remove(s.sock)
}

// container gives the start channel of a container, made on first use.
func (s *stubDaemon) container(id string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.started[id]
	if !ok {
		ch = make(chan struct{})
		s.started[id] = ch
	}
	return ch
}

func (s *stubDaemon) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Api-Version", "1.51")
	h.Set("Ostype", "linux")
	path := r.URL.Path
	if i := strings.Index(path[1:], "/"); strings.HasPrefix(path, "/v1.") && i > 0 {
		path = path[i+1:]
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case path == "/_ping":
		w.Write([]byte("OK"))
	case path == "/containers/create":
		s.mu.Lock()
		s.n++
		id := fmt.Sprintf("%064x", s.n)
		s.mu.Unlock()
		s.container(id)
		h.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"Id":%q,"Warnings":[]}`, id)
	case len(parts) == 3 && parts[0] == "containers" && parts[2] == "attach":
		// Upgraded, then closed at once: the container wrote nothing.
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		buf.WriteString("HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
		buf.Flush()
		<-s.container(parts[1])
		conn.Close()
	case len(parts) == 3 && parts[0] == "containers" && parts[2] == "wait":
		h.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case <-s.container(parts[1]):
		case <-r.Context().Done():
			return
		}
		w.Write([]byte(`{"Error":null,"StatusCode":0}` + "\n"))
	case len(parts) == 3 && parts[0] == "containers" && parts[2] == "start":
		ch := s.container(parts[1])
		s.mu.Lock()
		select {
		case <-ch:
		default:
			close(ch)
		}
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		h.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"message":%q}`, errors.New("the stub daemon does not serve "+r.Method+" "+r.URL.Path).Error())
	}
}
