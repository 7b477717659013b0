// Package mux frames several byte streams over one connection the way the
// Docker Engine API does for attach, logs and exec without a terminal:
// each frame is an 8-byte header, the stream's number (0 stdin, 1 stdout,
// 2 stderr, 3 a system error) then three zero bytes then the payload's
// length as a big-endian uint32, followed by the payload.
//
//	m := mux.NewWriter(conn)
//	fmt.Fprintln(m.Stream(mux.Stdout), "hi")   // one frame
//	mux.Demux(conn, os.Stdout, os.Stderr)      // the other end
//
// The engine's monitor speaks the same framing to caisd, with the extra
// stream [Exit] that carries a process's exit status.
package mux

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/cais-platform/cais/errdefs"
)

// Stream numbers.
const (
	Stdin  byte = 0
	Stdout byte = 1
	Stderr byte = 2
	// System carries an error message (Docker's systemErr stream).
	System byte = 3
	// Exit carries an exit status between the engine's monitor and caisd;
	// it never reaches a Docker client.
	Exit byte = 9
)

// HeaderLen is the size of a frame header.
const HeaderLen = 8

// MaxFrame bounds a frame's payload when reading.
const MaxFrame = 1 << 20

// Writer writes frames to one underlying writer; its streams may be used
// from several goroutines.
type Writer struct {
	mu sync.Mutex
	w  io.Writer
}

// NewWriter returns a Writer framing onto w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// WriteFrame writes p as one frame of stream (several frames if p is
// longer than MaxFrame).
func (m *Writer) WriteFrame(stream byte, p []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for first := true; first || len(p) > 0; first = false {
		n := len(p)
		if n > MaxFrame {
			n = MaxFrame
		}
		var h [HeaderLen]byte
		h[0] = stream
		binary.BigEndian.PutUint32(h[4:], uint32(n))
		if _, err := m.w.Write(h[:]); err != nil {
			return err
		}
		if _, err := m.w.Write(p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// Stream returns an io.Writer whose every Write is a frame of stream.
func (m *Writer) Stream(stream byte) io.Writer { return streamWriter{m, stream} }

type streamWriter struct {
	m  *Writer
	id byte
}

func (s streamWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := s.m.WriteFrame(s.id, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// ErrFrame is a malformed frame.
var ErrFrame = fmt.Errorf("malformed stream frame: %w", errdefs.ErrInvalid)

// ReadFrame reads one frame, its payload appended to buf[:0]. It returns
// io.EOF at a clean end between frames and io.ErrUnexpectedEOF inside one.
func ReadFrame(r io.Reader, buf []byte) (stream byte, payload []byte, err error) {
	var h [HeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	if h[1] != 0 || h[2] != 0 || h[3] != 0 {
		return 0, nil, ErrFrame
	}
	switch h[0] {
	case Stdin, Stdout, Stderr, System, Exit:
	default:
		return 0, nil, ErrFrame
	}
	n := binary.BigEndian.Uint32(h[4:])
	if n > MaxFrame {
		return 0, nil, fmt.Errorf("frame of %d bytes: %w", n, ErrFrame)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return h[0], buf, nil
}

// Demux copies the frames of r to stdout and stderr until r ends. A
// System frame ends it with that message as the error; an Exit frame's
// payload is returned as exit.
func Demux(r io.Reader, stdout, stderr io.Writer) (exit []byte, err error) {
	var buf []byte
	for {
		stream, p, err := ReadFrame(r, buf)
		if err == io.EOF {
			return exit, nil
		}
		if err != nil {
			return exit, err
		}
		buf = p
		switch stream {
		case Stdout:
			if stdout != nil {
				if _, err := stdout.Write(p); err != nil {
					return exit, err
				}
			}
		case Stderr:
			if stderr != nil {
				if _, err := stderr.Write(p); err != nil {
					return exit, err
				}
			}
		case System:
			return exit, errors.New(string(p))
		case Exit:
			exit = append([]byte(nil), p...)
		}
	}
}
