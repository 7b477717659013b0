// Package rpc is the binary protocol between cais clients and brick
// servers: length-prefixed frames carrying calls and replies matched by a
// transaction ID, so many calls are in flight on one connection.
//
// A frame on the wire:
//
//	uint32  length of the rest of the frame (header after this field + payload)
//	uint8   kind: 1 call, 2 reply, 3 event
//	uint8   flags: FlagNoReply on a call; other bits reserved, 0
//	uint16  operation
//	uint32  status: 0 or an errno, in replies
//	uint64  transaction ID
//	...     payload, at most MaxPayload bytes
//
// A call with FlagNoReply is one whose caller wants no reply (a file's
// release): the server handles it and sends nothing back. A server that
// predates the flag replies anyway, and the client drops a reply no one
// waits for.
//
// An event is a one-way message from a server to a client that asked for
// events (OpSubscribe): a brick telling mounts that another client changed
// a file, say. Its transaction ID is 0 and nothing answers it.
//
// All integers are big-endian. A decoder never trusts the length: frames
// over the limit or shorter than a header are errors, never allocations.
package rpc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frame kinds.
const (
	KindCall  = 1
	KindReply = 2
	KindEvent = 3
)

// FlagNoReply, on a call, asks the server not to reply.
const FlagNoReply = 1

// Limits.
const (
	headerLen  = 16 // after the length field
	MaxPayload = 16 << 20
)

// ErrFrame is returned for malformed frames.
var ErrFrame = errors.New("malformed frame")

// Frame is one call or reply.
type Frame struct {
	Kind    uint8
	Flags   uint8
	Op      uint16
	Status  uint32
	XID     uint64
	Payload []byte
}

// AppendFrame encodes f after buf.
func AppendFrame(buf []byte, f Frame) ([]byte, error) {
	if len(f.Payload) > MaxPayload {
		return buf, fmt.Errorf("%w: payload of %d bytes exceeds %d", ErrFrame, len(f.Payload), MaxPayload)
	}
	buf = binary.BigEndian.AppendUint32(buf, uint32(headerLen+len(f.Payload)))
	buf = append(buf, f.Kind, f.Flags)
	buf = binary.BigEndian.AppendUint16(buf, f.Op)
	buf = binary.BigEndian.AppendUint32(buf, f.Status)
	buf = binary.BigEndian.AppendUint64(buf, f.XID)
	return append(buf, f.Payload...), nil
}

// ReadFrame reads one frame from r.
func ReadFrame(r io.Reader) (Frame, error) {
	f, _, err := readFrame(r, nil)
	return f, err
}

// ReadFramePool is ReadFrame with a payload over 64 KiB read into a
// buffer from pool, when pool has one of that size.
func ReadFramePool(r io.Reader, pool *BufPool) (Frame, error) {
	var alloc func(int) []byte
	if pool != nil {
		alloc = pool.Get
	}
	f, _, err := readFrame(r, alloc)
	return f, err
}

// readFrame reads one frame from r. A payload over 64 KiB goes into a
// buffer from alloc, when alloc is not nil and has one at hand (it
// returns nil when it has none); readFrame returns that buffer, which is
// the payload, with the frame.
func readFrame(r io.Reader, alloc func(n int) []byte) (Frame, []byte, error) {
	var lenBuf [4]byte
	if _, err := io.ReadFull(r, lenBuf[:]); err != nil {
		return Frame{}, nil, err
	}
	n := binary.BigEndian.Uint32(lenBuf[:])
	if n < headerLen || n > headerLen+MaxPayload {
		return Frame{}, nil, fmt.Errorf("%w: length %d", ErrFrame, n)
	}
	var head [headerLen]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return Frame{}, nil, truncated(err)
	}
	f, err := DecodeBody(head[:])
	if err != nil {
		return Frame{}, nil, err
	}
	m := int(n) - headerLen
	if m == 0 {
		return f, nil, nil
	}
	const first = 64 << 10
	if m > first && alloc != nil {
		if lent := alloc(m); lent != nil {
			if _, err := io.ReadFull(r, lent); err != nil {
				return Frame{}, nil, truncated(err)
			}
			f.Payload = lent
			return f, lent, nil
		}
	}
	// Memory follows the bytes that arrive, not what the length field
	// claims: the first 64 KiB are read before the whole payload's buffer
	// is made, so a peer cannot pin 16 MiB by sending a header alone, and
	// a big payload is read straight into its buffer, without regrowing.
	body := make([]byte, min(m, first))
	if _, err := io.ReadFull(r, body); err != nil {
		return Frame{}, nil, truncated(err)
	}
	if m > len(body) {
		whole := make([]byte, m)
		copy(whole, body)
		if _, err := io.ReadFull(r, whole[len(body):]); err != nil {
			return Frame{}, nil, truncated(err)
		}
		body = whole
	}
	f.Payload = body
	return f, nil, nil
}

func truncated(err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%w: truncated: %w", ErrFrame, err)
}

// AppendHeader appends a frame's length and header for a payload of
// payloadLen bytes that the caller sends right after it (so a big payload
// is not copied into the frame).
func AppendHeader(buf []byte, f Frame, payloadLen int) ([]byte, error) {
	if payloadLen > MaxPayload {
		return buf, fmt.Errorf("%w: payload of %d bytes exceeds %d", ErrFrame, payloadLen, MaxPayload)
	}
	buf = binary.BigEndian.AppendUint32(buf, uint32(headerLen+payloadLen))
	buf = append(buf, f.Kind, f.Flags)
	buf = binary.BigEndian.AppendUint16(buf, f.Op)
	buf = binary.BigEndian.AppendUint32(buf, f.Status)
	return binary.BigEndian.AppendUint64(buf, f.XID), nil
}

// DecodeBody decodes a frame's bytes after the length field.
func DecodeBody(body []byte) (Frame, error) {
	if len(body) < headerLen {
		return Frame{}, fmt.Errorf("%w: %d bytes is shorter than a header", ErrFrame, len(body))
	}
	f := Frame{
		Kind:    body[0],
		Flags:   body[1],
		Op:      binary.BigEndian.Uint16(body[2:4]),
		Status:  binary.BigEndian.Uint32(body[4:8]),
		XID:     binary.BigEndian.Uint64(body[8:16]),
		Payload: body[headerLen:],
	}
	if f.Kind != KindCall && f.Kind != KindReply && f.Kind != KindEvent {
		return Frame{}, fmt.Errorf("%w: kind %d", ErrFrame, f.Kind)
	}
	if len(f.Payload) == 0 {
		f.Payload = nil
	}
	return f, nil
}
