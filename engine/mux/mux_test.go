package mux

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	var b bytes.Buffer
	m := NewWriter(&b)
	io.WriteString(m.Stream(Stdout), "hi\n")
	io.WriteString(m.Stream(Stderr), "oops\n")
	io.WriteString(m.Stream(Stdout), "")
	m.WriteFrame(Exit, []byte(`{"code":3}`))
	want := "\x01\x00\x00\x00\x00\x00\x00\x03hi\n\x02\x00\x00\x00\x00\x00\x00\x05oops\n"
	if !strings.HasPrefix(b.String(), want) {
		t.Fatalf("frames %q, want prefix %q", b.String(), want)
	}
	var out, errOut bytes.Buffer
	exit, err := Demux(&b, &out, &errOut)
	if err != nil || out.String() != "hi\n" || errOut.String() != "oops\n" || string(exit) != `{"code":3}` {
		t.Fatalf("demux: %q %q %q %v", out.String(), errOut.String(), exit, err)
	}
}

func TestLargeWriteSplits(t *testing.T) {
	var b bytes.Buffer
	m := NewWriter(&b)
	big := bytes.Repeat([]byte("x"), MaxFrame+10)
	if err := m.WriteFrame(Stdout, big); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := Demux(&b, &out, nil); err != nil || out.Len() != len(big) {
		t.Fatalf("got %d bytes, %v", out.Len(), err)
	}
}

func TestBadFrames(t *testing.T) {
	for _, in := range []string{
		"\x05\x00\x00\x00\x00\x00\x00\x01x", // unknown stream
		"\x01\x01\x00\x00\x00\x00\x00\x01x", // nonzero padding
		"\x01\x00\x00\x00\x7f\xff\xff\xffx", // too long
	} {
		if _, _, err := ReadFrame(strings.NewReader(in), nil); !errors.Is(err, ErrFrame) {
			t.Errorf("%q: %v, want ErrFrame", in, err)
		}
	}
	if _, _, err := ReadFrame(strings.NewReader("\x01\x00\x00\x00\x00\x00\x00\x05ab"), nil); err != io.ErrUnexpectedEOF {
		t.Errorf("truncated: %v", err)
	}
	if _, err := Demux(strings.NewReader("\x03\x00\x00\x00\x00\x00\x00\x04boom"), nil, nil); err == nil || err.Error() != "boom" {
		t.Errorf("system frame: %v", err)
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte("\x01\x00\x00\x00\x00\x00\x00\x03hi\n"))
	f.Add([]byte("\x02\x00\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		for {
			s, p, err := ReadFrame(r, nil)
			if err != nil {
				return
			}
			if s > Exit || len(p) > MaxFrame {
				t.Fatalf("frame %d of %d bytes", s, len(p))
			}
		}
	})
}
