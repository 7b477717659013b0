// Package fop defines the file operations a client sends to a brick over
// the rpc protocol: their operation codes and the binary encoding of their
// requests and replies.
//
// Files are named by their path relative to the brick root (every brick of
// a volume holds the same namespace) and carry a GFID, a 16-byte identity
// kept in the trusted.cais.gfid extended attribute, equal on every replica.
// Opened files are addressed by a handle the brick hands out, valid on the
// connection that opened it.
//
// Encoding: big-endian integers, byte strings as a uint32 length then the
// bytes. A Decoder never reads past its input or allocates more than the
// input holds; every decoder is fuzzed.
package fop

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrDecode is returned for a message that cannot be decoded.
var ErrDecode = errors.New("malformed message")

// MaxString bounds one byte string in a message (paths, names, xattr
// values; data of reads and writes is bounded by the rpc frame limit).
const MaxString = 16 << 20

// Encoder appends a message's fields.
type Encoder struct{ b []byte }

// Bytes returns the encoded message.
func (e *Encoder) Bytes() []byte { return e.b }

func (e *Encoder) U8(v uint8)   { e.b = append(e.b, v) }
func (e *Encoder) U32(v uint32) { e.b = binary.BigEndian.AppendUint32(e.b, v) }
func (e *Encoder) U64(v uint64) { e.b = binary.BigEndian.AppendUint64(e.b, v) }
func (e *Encoder) I64(v int64)  { e.U64(uint64(v)) }
func (e *Encoder) Bool(v bool) {
	if v {
		e.U8(1)
	} else {
		e.U8(0)
	}
}
func (e *Encoder) Bytes32(v []byte) { e.U32(uint32(len(v))); e.b = append(e.b, v...) }
func (e *Encoder) String(v string)  { e.U32(uint32(len(v))); e.b = append(e.b, v...) }
func (e *Encoder) GFID(v GFID)      { e.b = append(e.b, v[:]...) }

// Decoder reads a message's fields; the first error sticks.
type Decoder struct {
	b   []byte
	err error
}

// NewDecoder decodes b.
func NewDecoder(b []byte) *Decoder { return &Decoder{b: b} }

// Err returns the first error, or an error if input is left over.
func (d *Decoder) Err() error {
	if d.err == nil && len(d.b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrDecode, len(d.b))
	}
	return d.err
}

// More reports whether input is left: a message's optional trailing
// fields follow.
func (d *Decoder) More() bool { return d.err == nil && len(d.b) > 0 }

func (d *Decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.err = fmt.Errorf("%w: truncated (want %d bytes, have %d)", ErrDecode, n, len(d.b))
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *Decoder) U8() uint8 {
	if v := d.take(1); v != nil {
		return v[0]
	}
	return 0
}
func (d *Decoder) U32() uint32 {
	if v := d.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}
func (d *Decoder) U64() uint64 {
	if v := d.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}
func (d *Decoder) I64() int64 { return int64(d.U64()) }
func (d *Decoder) Bool() bool {
	switch v := d.U8(); v {
	case 0:
		return false
	case 1:
		return true
	default:
		if d.err == nil {
			d.err = fmt.Errorf("%w: boolean %d", ErrDecode, v)
		}
		return false
	}
}
func (d *Decoder) Bytes32() []byte {
	n := d.U32()
	if n > MaxString {
		if d.err == nil {
			d.err = fmt.Errorf("%w: string of %d bytes", ErrDecode, n)
		}
		return nil
	}
	v := d.take(int(n))
	if v == nil {
		return nil
	}
	return append([]byte(nil), v...)
}
func (d *Decoder) String() string { return string(d.Bytes32()) }

// BytesRef is Bytes32 without the copy: the result shares the input's
// memory (a write's data, used while the input lives).
func (d *Decoder) BytesRef() []byte {
	n := d.U32()
	if n > MaxString {
		if d.err == nil {
			d.err = fmt.Errorf("%w: string of %d bytes", ErrDecode, n)
		}
		return nil
	}
	v := d.take(int(n))
	if len(v) == 0 {
		return nil
	}
	return v[:len(v):len(v)]
}
func (d *Decoder) GFID() GFID {
	var g GFID
	copy(g[:], d.take(16))
	return g
}

// Message is a request or reply.
type Message interface {
	Encode(*Encoder)
	Decode(*Decoder)
}

// Marshal encodes a message.
func Marshal(m Message) []byte {
	var e Encoder
	m.Encode(&e)
	return e.Bytes()
}

// Unmarshal decodes b into m; all of b must be used.
func Unmarshal(b []byte, m Message) error {
	d := NewDecoder(b)
	m.Decode(d)
	return d.Err()
}
