package jsonlog

import (
	"bytes"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestCopySplitsLines(t *testing.T) {
	var b bytes.Buffer
	w := NewWriter(&b)
	w.now = func() time.Time { return time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC) }
	var teed bytes.Buffer
	in := "hi\nthere\npartial"
	if err := w.Copy("stdout", iotest.OneByteReader(strings.NewReader(in)), func(p []byte) { teed.Write(p) }); err != nil {
		t.Fatal(err)
	}
	if teed.String() != in {
		t.Fatalf("tee got %q", teed.String())
	}
	want := `{"log":"hi\n","stream":"stdout","time":"2025-01-02T03:04:05.000000006Z"}
{"log":"there\n","stream":"stdout","time":"2025-01-02T03:04:05.000000006Z"}
{"log":"partial","stream":"stdout","time":"2025-01-02T03:04:05.000000006Z"}
`
	if b.String() != want {
		t.Fatalf("log:\n%s\nwant:\n%s", b.String(), want)
	}
	entries, off, err := Tail(bytes.NewReader(b.Bytes()), 2, nil)
	if err != nil || len(entries) != 2 || entries[0].Log != "there\n" || entries[1].Log != "partial" || off != int64(b.Len()) {
		t.Fatalf("tail: %+v %d %v", entries, off, err)
	}
}

func TestLongLineSplit(t *testing.T) {
	var b bytes.Buffer
	w := NewWriter(&b)
	long := strings.Repeat("a", MaxLine+5) + "\n"
	if err := w.Copy("stderr", strings.NewReader(long), nil); err != nil {
		t.Fatal(err)
	}
	entries, _, _ := Tail(&b, -1, nil)
	if len(entries) != 2 || len(entries[0].Log) != MaxLine || entries[1].Log != "aaaaa\n" || entries[0].Stream != "stderr" {
		t.Fatalf("entries: %d", len(entries))
	}
}

func TestReadSkipsTornLines(t *testing.T) {
	in := `{"log":"a\n","stream":"stdout","time":"2025-01-02T03:04:05Z"}
garbage
{"log":"b\n","stream":"bogus","time":"2025-01-02T03:04:05Z"}
{"log":"c\n","stream":"stderr","time":"2025-01-02T03:04:05Z"}
{"log":"torn`
	entries, off, err := Tail(strings.NewReader(in), -1, func(e Entry) bool { return true })
	if err != nil || len(entries) != 2 || entries[1].Log != "c\n" {
		t.Fatalf("%+v %v", entries, err)
	}
	if off != int64(strings.LastIndex(in, "\n")+1) {
		t.Fatalf("offset %d", off)
	}
}

func FuzzParseEntry(f *testing.F) {
	f.Add([]byte(`{"log":"hi\n","stream":"stdout","time":"2025-01-02T03:04:05.000000006Z"}`))
	f.Add([]byte(`{"log":1}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := ParseEntry(in)
		if err == nil && e.Stream != "stdout" && e.Stream != "stderr" {
			t.Fatalf("stream %q accepted", e.Stream)
		}
	})
}
