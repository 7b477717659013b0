package dockerapi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/cais-platform/cais/engine"
)

// hijack takes over the connection of an attach or exec start, answering
// 101 UPGRADED when the client asked for an upgrade (as the docker CLI
// does) and 200 otherwise, with the content type of the stream that
// follows: raw for a terminal, multiplexed without one.
func hijack(w http.ResponseWriter, r *http.Request, tty bool) (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("connection cannot be hijacked")
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	ct := "application/vnd.docker.multiplexed-stream"
	if tty {
		ct = "application/vnd.docker.raw-stream"
	}
	if strings.EqualFold(r.Header.Get("Upgrade"), "tcp") || strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade") {
		fmt.Fprintf(rw, "HTTP/1.1 101 UPGRADED\r\nContent-Type: %s\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nApi-Version: %s\r\n\r\n", ct, APIVersion)
	} else {
		fmt.Fprintf(rw, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nApi-Version: %s\r\n\r\n", ct, APIVersion)
	}
	if err := rw.Flush(); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, rw, nil
}

// connReader reads what the client sends after the request: first what
// the HTTP server buffered, then the connection.
func connReader(rw *bufio.ReadWriter) io.Reader { return rw.Reader }

func (s *Server) attachContainer(w http.ResponseWriter, r *http.Request) {
	c, err := s.e.Get(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	opts := engine.AttachOptions{Stdin: boolValue(r, "stdin"), Stdout: boolValue(r, "stdout"), Stderr: boolValue(r, "stderr")}
	logs, stream := boolValue(r, "logs"), boolValue(r, "stream")
	if !c.State.Running() && c.State.Status != engine.Created && stream && !logs {
		writeError(w, fmt.Errorf("You cannot attach to a stopped container, start it first: %w", errStateConflict))
		return
	}
	conn, rw, err := hijack(w, r, c.Config.Tty)
	if err != nil {
		s.log.Warn("attach: hijack", "err", err)
		return
	}
	defer conn.Close()
	if !stream {
		return
	}
	// The request's context ends with the hijack: the stream's life is
	// the connection's.
	err = s.e.Attach(context.Background(), c.ID, opts, engine.Stream{In: connReader(rw), Out: conn})
	if err != nil {
		s.log.Debug("attach ended", "container", c.ID, "err", err)
	}
}

func (s *Server) createExec(w http.ResponseWriter, r *http.Request) {
	var cfg engine.ExecConfig
	if err := decodeBody(r, &cfg); err != nil {
		writeError(w, err)
		return
	}
	id, err := s.e.ExecCreate(r.Context(), r.PathValue("id"), cfg)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"Id": id})
}

func (s *Server) startExec(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Detach      bool
		Tty         bool
		ConsoleSize *[2]uint
	}
	if r.ContentLength != 0 {
		if err := decodeBody(r, &req); err != nil {
			writeError(w, err)
			return
		}
	}
	x, err := s.e.ExecInspect(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	if c, err := s.e.Get(x.ContainerID); err != nil || c.State.Status != engine.Running {
		writeError(w, fmt.Errorf("container %s is not running: %w", x.ContainerID, errStateConflict))
		return
	}
	var size [2]uint
	if req.ConsoleSize != nil {
		size = *req.ConsoleSize
	}
	if req.Detach {
		if err := s.e.ExecStart(r.Context(), x.ID, true, size, engine.Stream{}); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	conn, rw, err := hijack(w, r, x.Config.Tty)
	if err != nil {
		s.log.Warn("exec: hijack", "err", err)
		return
	}
	defer conn.Close()
	if err := s.e.ExecStart(context.Background(), x.ID, false, size, engine.Stream{In: connReader(rw), Out: conn}); err != nil {
		// The stream has begun: the error goes in it, as Docker sends it.
		msg := err.Error() + "\r\n"
		if x.Config.Tty {
			io.WriteString(conn, msg)
		} else {
			writeSystemFrame(conn, msg)
		}
	}
}

func writeSystemFrame(w io.Writer, msg string) {
	h := []byte{3, 0, 0, 0, 0, 0, 0, 0}
	n := len(msg)
	h[4], h[5], h[6], h[7] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	w.Write(append(h, msg...))
}

func (s *Server) resizeExec(w http.ResponseWriter, r *http.Request) {
	h, wd, err := sizeArgs(r)
	if err == nil {
		err = s.e.ExecResize(r.Context(), r.PathValue("id"), h, wd)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) inspectExec(w http.ResponseWriter, r *http.Request) {
	x, err := s.e.ExecInspect(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	var entry string
	var args []string
	if len(x.Config.Cmd) > 0 {
		entry, args = x.Config.Cmd[0], x.Config.Cmd[1:]
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"ID": x.ID, "Running": x.Running, "ExitCode": x.ExitCode, "CanRemove": false,
		"ContainerID": x.ContainerID, "DetachKeys": "", "Pid": x.Pid,
		"OpenStdin": x.Config.AttachStdin, "OpenStdout": x.Config.AttachStdout, "OpenStderr": x.Config.AttachStderr,
		"ProcessConfig": map[string]any{"tty": x.Config.Tty, "entrypoint": entry, "arguments": nonNil(args), "privileged": x.Config.Privileged, "user": x.Config.User},
	})
}
