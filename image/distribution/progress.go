package distribution

import (
	"io"
	"time"

	"github.com/opencontainers/go-digest"
)

// Event is one step of a pull or push, as Docker's progress stream shows
// it: "<ID>: <Status>", with byte counts while a blob moves.
type Event struct {
	// ID is a layer's short digest, a tag, or empty for a line of its own.
	ID string
	// Status is Docker's wording: "Pulling fs layer", "Download complete",
	// "Pushed", "Digest: sha256:…".
	Status string
	// Current and Total count bytes of "Downloading" and "Pushing".
	Current, Total int64
	// Aux is the push's result ({Tag, Digest, Size}), sent as the
	// stream's "aux" object.
	Aux *PushResult
}

// ProgressFunc receives events; nil discards them. A pull downloads
// several layers at once: it may be called from several goroutines.
type ProgressFunc func(Event)

func (f ProgressFunc) emit(e Event) {
	if f != nil {
		f(e)
	}
}

// ShortID is how Docker names a layer in progress lines: the first 12
// hexadecimal digits of its digest.
func ShortID(d digest.Digest) string {
	e := d.Encoded()
	if len(e) > 12 {
		e = e[:12]
	}
	return e
}

// progressReader reports bytes read, at most every interval.
type progressReader struct {
	r        io.Reader
	emit     ProgressFunc
	id       string
	status   string
	n, total int64
	last     time.Time
}

const progressInterval = 100 * time.Millisecond

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if now := time.Now(); now.Sub(p.last) >= progressInterval || err == io.EOF && n > 0 {
		p.last = now
		p.emit.emit(Event{ID: p.id, Status: p.status, Current: p.n, Total: p.total})
	}
	return n, err
}
