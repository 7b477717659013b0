package rpc_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"runtime"
	"testing"

	"github.com/cais-platform/cais/rpc"
)

const headerLen = 16 // the header after the length field, as documented on the package

func sameFrame(a, b rpc.Frame) bool {
	return a.Kind == b.Kind && a.Flags == b.Flags && a.Op == b.Op && a.Status == b.Status && a.XID == b.XID && bytes.Equal(a.Payload, b.Payload)
}

func TestFrameRoundTrip(t *testing.T) {
	frames := []rpc.Frame{
		{Kind: rpc.KindCall, Op: rpc.OpPing, XID: 1},
		{Kind: rpc.KindCall, Op: 0xffff, XID: math.MaxUint64, Payload: []byte("hello")},
		{Kind: rpc.KindReply, Flags: 0x80, Op: 7, Status: 2, XID: 42, Payload: []byte{0}},
		{Kind: rpc.KindReply, Status: math.MaxUint32, XID: 1 << 40, Payload: bytes.Repeat([]byte{0xab}, 70000)},
		{Kind: rpc.KindCall, Op: 3, XID: 9, Payload: make([]byte, rpc.MaxPayload)},
	}
	var stream []byte
	for _, f := range frames {
		before := len(stream)
		var err error
		stream, err = rpc.AppendFrame(stream, f)
		if err != nil {
			t.Fatalf("AppendFrame(%d-byte payload): %v", len(f.Payload), err)
		}
		enc := stream[before:]
		if len(enc) != 4+headerLen+len(f.Payload) {
			t.Fatalf("frame with %d-byte payload encoded in %d bytes", len(f.Payload), len(enc))
		}
		if n := binary.BigEndian.Uint32(enc); int(n) != headerLen+len(f.Payload) {
			t.Errorf("length field %d, want %d", n, headerLen+len(f.Payload))
		}
		// The wire layout, field by field.
		if enc[4] != f.Kind || enc[5] != f.Flags || binary.BigEndian.Uint16(enc[6:]) != f.Op ||
			binary.BigEndian.Uint32(enc[8:]) != f.Status || binary.BigEndian.Uint64(enc[12:]) != f.XID {
			t.Errorf("header of %+v encoded as % x", f, enc[:20])
		}
	}
	r := bytes.NewReader(stream)
	for i, want := range frames {
		got, err := rpc.ReadFrame(r)
		if err != nil {
			t.Fatalf("ReadFrame %d: %v", i, err)
		}
		if !sameFrame(got, want) {
			t.Errorf("frame %d: read op %d xid %d (%d bytes), want op %d xid %d (%d bytes)", i, got.Op, got.XID, len(got.Payload), want.Op, want.XID, len(want.Payload))
		}
		if len(want.Payload) == 0 && got.Payload != nil {
			t.Errorf("frame %d: empty payload read as %#v, want nil", i, got.Payload)
		}
	}
	if _, err := rpc.ReadFrame(r); err != io.EOF {
		t.Errorf("ReadFrame at the end of the stream = %v, want io.EOF", err)
	}
}

func TestAppendFrameKeepsBuffer(t *testing.T) {
	prefix := []byte("prefix")
	buf, err := rpc.AppendFrame(bytes.Clone(prefix), rpc.Frame{Kind: rpc.KindCall, XID: 5, Payload: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(buf, prefix) {
		t.Fatalf("AppendFrame lost the buffer it appends to: %q", buf)
	}
	f, err := rpc.ReadFrame(bytes.NewReader(buf[len(prefix):]))
	if err != nil || f.XID != 5 || string(f.Payload) != "x" {
		t.Errorf("ReadFrame = %+v, %v", f, err)
	}
}

func TestAppendFrameOversize(t *testing.T) {
	prefix := []byte("keep")
	buf, err := rpc.AppendFrame(prefix, rpc.Frame{Kind: rpc.KindCall, Payload: make([]byte, rpc.MaxPayload+1)})
	if !errors.Is(err, rpc.ErrFrame) {
		t.Fatalf("AppendFrame of an oversize payload = %v, want ErrFrame", err)
	}
	if !bytes.Equal(buf, prefix) {
		t.Errorf("AppendFrame changed the buffer on error: %d bytes", len(buf))
	}
}

// lengthOnly is a stream that holds a length field and then as many bytes
// as asked for.
func lengthOnly(n uint32, body int) []byte {
	b := binary.BigEndian.AppendUint32(nil, n)
	b = append(b, rpc.KindCall)
	return append(b, make([]byte, max(body-1, 0))...)
}

func TestReadFrameBadLength(t *testing.T) {
	tests := []struct {
		name string
		n    uint32
	}{
		{"zero", 0},
		{"one", 1},
		{"shorter than a header", headerLen - 1},
		{"one over the limit", headerLen + rpc.MaxPayload + 1},
		{"huge", math.MaxUint32},
		{"top bit", 1 << 31},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := lengthOnly(tt.n, 64)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := rpc.ReadFrame(bytes.NewReader(in))
			runtime.ReadMemStats(&after)
			if !errors.Is(err, rpc.ErrFrame) {
				t.Fatalf("ReadFrame with length %d = %v, want ErrFrame", tt.n, err)
			}
			// Refusing must not cost an allocation of the claimed size.
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
				t.Errorf("ReadFrame allocated %d bytes refusing length %d", grew, tt.n)
			}
		})
	}
}

func TestReadFrameTruncated(t *testing.T) {
	full, err := rpc.AppendFrame(nil, rpc.Frame{Kind: rpc.KindReply, XID: 3, Payload: []byte("0123456789")})
	if err != nil {
		t.Fatal(err)
	}
	for cut := 0; cut < len(full); cut++ {
		_, err := rpc.ReadFrame(bytes.NewReader(full[:cut]))
		switch {
		case cut == 0:
			if err != io.EOF {
				t.Errorf("ReadFrame of nothing = %v, want io.EOF", err)
			}
		case cut < 4:
			// Inside the length field: a plain short read.
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("cut at %d: %v, want io.ErrUnexpectedEOF", cut, err)
			}
		default:
			if !errors.Is(err, rpc.ErrFrame) || !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("cut at %d: %v, want ErrFrame wrapping io.ErrUnexpectedEOF", cut, err)
			}
		}
	}
}

// errReader fails after its data.
type errReader struct {
	data []byte
	err  error
}

func (r *errReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestReadFrameReaderError(t *testing.T) {
	boom := errors.New("boom")
	full, _ := rpc.AppendFrame(nil, rpc.Frame{Kind: rpc.KindCall, Payload: []byte("abc")})
	_, err := rpc.ReadFrame(&errReader{data: full[:10], err: boom})
	if !errors.Is(err, boom) || !errors.Is(err, rpc.ErrFrame) {
		t.Errorf("ReadFrame with a failing reader mid-frame = %v, want ErrFrame wrapping the reader's error", err)
	}
	_, err = rpc.ReadFrame(&errReader{err: boom})
	if !errors.Is(err, boom) {
		t.Errorf("ReadFrame with a failing reader = %v, want the reader's error", err)
	}
}

func TestDecodeBody(t *testing.T) {
	t.Run("bad kinds", func(t *testing.T) {
		for _, kind := range []uint8{0, 4, 0xff} {
			buf, err := rpc.AppendFrame(nil, rpc.Frame{Kind: kind, XID: 1})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := rpc.ReadFrame(bytes.NewReader(buf)); !errors.Is(err, rpc.ErrFrame) {
				t.Errorf("ReadFrame of kind %d = %v, want ErrFrame", kind, err)
			}
			if _, err := rpc.DecodeBody(buf[4:]); !errors.Is(err, rpc.ErrFrame) {
				t.Errorf("DecodeBody of kind %d = %v, want ErrFrame", kind, err)
			}
		}
	})
	t.Run("short", func(t *testing.T) {
		for n := range headerLen {
			body := make([]byte, n)
			if n > 0 {
				body[0] = rpc.KindCall
			}
			if _, err := rpc.DecodeBody(body); !errors.Is(err, rpc.ErrFrame) {
				t.Errorf("DecodeBody of %d bytes = %v, want ErrFrame", n, err)
			}
		}
	})
	t.Run("header only", func(t *testing.T) {
		body := make([]byte, headerLen)
		body[0] = rpc.KindReply
		f, err := rpc.DecodeBody(body)
		if err != nil || f.Kind != rpc.KindReply || f.Payload != nil {
			t.Errorf("DecodeBody(header only) = %+v, %v", f, err)
		}
	})
}

func FuzzDecodeBody(f *testing.F) {
	for _, fr := range []rpc.Frame{
		{Kind: rpc.KindCall, Op: rpc.OpPing, XID: 1},
		{Kind: rpc.KindReply, Status: 2, XID: 77, Payload: []byte("payload")},
		{Kind: rpc.KindCall, Flags: 1, Op: 0xffff, XID: math.MaxUint64, Payload: []byte{0}},
		{Kind: 0, XID: 1},
		{Kind: rpc.KindEvent, Op: 170, Payload: []byte("event")},
		{Kind: 4, XID: 1},
	} {
		buf, err := rpc.AppendFrame(nil, fr)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(buf[4:])
	}
	f.Add([]byte{})
	f.Add([]byte{rpc.KindCall})
	f.Add(make([]byte, headerLen-1))
	f.Fuzz(func(t *testing.T, body []byte) {
		fr, err := rpc.DecodeBody(body)
		if err != nil {
			if !errors.Is(err, rpc.ErrFrame) {
				t.Fatalf("DecodeBody error %v does not wrap ErrFrame", err)
			}
			return
		}
		if fr.Kind != rpc.KindCall && fr.Kind != rpc.KindReply && fr.Kind != rpc.KindEvent {
			t.Fatalf("DecodeBody accepted kind %d", fr.Kind)
		}
		enc, err := rpc.AppendFrame(nil, fr)
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", fr, err)
		}
		if !bytes.Equal(enc[4:], body) {
			t.Fatalf("re-encoded body differs:\n in  % x\n out % x", body, enc[4:])
		}
	})
}

func FuzzReadFrame(f *testing.F) {
	var stream []byte
	for _, fr := range []rpc.Frame{
		{Kind: rpc.KindCall, Op: rpc.OpPing, XID: 1},
		{Kind: rpc.KindReply, Status: 2, XID: 77, Payload: []byte("payload")},
	} {
		buf, _ := rpc.AppendFrame(nil, fr)
		f.Add(buf)
		stream = append(stream, buf...)
	}
	f.Add(stream)
	f.Add([]byte{})
	f.Add([]byte{0, 0})
	f.Add(lengthOnly(math.MaxUint32, 8))
	f.Add(lengthOnly(headerLen-1, 20))
	f.Add(lengthOnly(headerLen+100, 20))
	big, _ := rpc.AppendFrame(nil, rpc.Frame{Kind: rpc.KindReply, XID: 3, Payload: bytes.Repeat([]byte{9}, 70<<10)})
	f.Add(big)
	f.Add(big[:len(big)-1])
	pool := rpc.NewBufPool(128 << 10) // payloads over 64 KiB go into it
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, withPool := range []bool{false, true} {
			readFrames(t, data, withPool, pool)
		}
	})
}

// readFrames reads frames from data until an error, checking each.
func readFrames(t *testing.T, data []byte, withPool bool, pool *rpc.BufPool) {
	r := bytes.NewReader(data)
	for {
		off := len(data) - r.Len()
		var fr rpc.Frame
		var err error
		if withPool {
			fr, err = rpc.ReadFramePool(r, pool)
		} else {
			fr, err = rpc.ReadFrame(r)
		}
		if err != nil {
			if err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, rpc.ErrFrame) {
				t.Fatalf("ReadFrame error %v is neither ErrFrame nor an io error", err)
			}
			if err == io.EOF && off != len(data) {
				t.Fatalf("io.EOF with %d bytes left", len(data)-off)
			}
			return
		}
		// A frame read is exactly the bytes it re-encodes to.
		enc, err := rpc.AppendFrame(nil, fr)
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", fr, err)
		}
		end := len(data) - r.Len()
		if !bytes.Equal(enc, data[off:end]) {
			t.Fatalf("frame read from % x re-encodes as % x", data[off:end], enc)
		}
		pool.Put(fr.Payload)
	}
}
