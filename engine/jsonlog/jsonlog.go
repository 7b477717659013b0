// Package jsonlog writes and reads container logs in Docker's json-file
// format: one JSON object per line,
//
//	{"log":"hi\n","stream":"stdout","time":"2025-01-02T03:04:05.123456789Z"}
//
// A [Writer] turns a container's output into such lines, one per line of
// output (a line longer than 16 KiB is split, as Docker splits it, and what
// is left without a newline when the stream ends is written as it is).
// [Read] decodes a log file, [Tail] keeps its last lines.
package jsonlog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/cais-platform/cais/errdefs"
)

// MaxLine is the longest message of one entry; longer lines are split.
const MaxLine = 16 << 10

// Entry is one log line.
type Entry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

// Writer appends entries to a log file; safe for concurrent use.
type Writer struct {
	mu  sync.Mutex
	w   io.Writer
	now func() time.Time
}

// NewWriter writes entries to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w, now: time.Now} }

// WriteEntry writes one entry.
func (w *Writer) WriteEntry(stream string, msg []byte) error {
	b, err := json.Marshal(Entry{Log: string(msg), Stream: stream, Time: w.now().UTC()})
	if err != nil {
		return err
	}
	b = append(b, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	_, err = w.w.Write(b)
	return err
}

// Copy reads r until it ends, writing each line (with its newline) as an
// entry of stream, and calls tee (if not nil) with every chunk read, so
// attached clients see the output as it comes.
func (w *Writer) Copy(stream string, r io.Reader, tee func([]byte)) error {
	buf := make([]byte, 32<<10)
	var line []byte
	for {
		n, err := r.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if tee != nil {
				tee(chunk)
			}
			for len(chunk) > 0 {
				i := bytes.IndexByte(chunk, '\n')
				if i < 0 {
					line = append(line, chunk...)
					chunk = nil
				} else {
					line = append(line, chunk[:i+1]...)
					chunk = chunk[i+1:]
				}
				for len(line) >= MaxLine || (len(line) > 0 && line[len(line)-1] == '\n') {
					k := len(line)
					if k > MaxLine {
						k = MaxLine
					}
					if werr := w.WriteEntry(stream, line[:k]); werr != nil {
						return werr
					}
					line = append(line[:0], line[k:]...)
				}
			}
		}
		if err != nil {
			if len(line) > 0 {
				if werr := w.WriteEntry(stream, line); werr != nil {
					return werr
				}
			}
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

// ParseEntry decodes one line of a log file.
func ParseEntry(line []byte) (Entry, error) {
	var e Entry
	if err := json.Unmarshal(line, &e); err != nil {
		return Entry{}, fmt.Errorf("log entry: %v: %w", err, errdefs.ErrInvalid)
	}
	if e.Stream != "stdout" && e.Stream != "stderr" {
		return Entry{}, fmt.Errorf("log entry: stream %q: %w", e.Stream, errdefs.ErrInvalid)
	}
	return e, nil
}

// Read calls fn with each entry of r in order; lines that do not decode
// are skipped (a line cut short by a crash, say). It returns the offset
// after the last complete line, where following the file goes on.
func Read(r io.Reader, fn func(Entry) error) (int64, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var off int64
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			off += int64(len(line))
			if e, perr := ParseEntry(line); perr == nil {
				if ferr := fn(e); ferr != nil {
					return off, ferr
				}
			}
		}
		if err == io.EOF {
			return off, nil
		}
		if err != nil {
			return off, err
		}
	}
}

// Tail returns the last n entries of r (all of them when n < 0) that
// pass keep, and the offset after the last complete line.
func Tail(r io.Reader, n int, keep func(Entry) bool) ([]Entry, int64, error) {
	var out []Entry
	off, err := Read(r, func(e Entry) error {
		if keep != nil && !keep(e) {
			return nil
		}
		out = append(out, e)
		if n >= 0 && len(out) > n {
			out = out[len(out)-n:]
		}
		return nil
	})
	return out, off, err
}
