package brick

import (
	"os"
	"path/filepath"
	"testing"
)

// A sequential reader gets the file asked ahead of it a window at a time;
// a jump elsewhere stops that until reads are sequential again.
func TestReadAhead(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := &handle{fd: int(f.Fd())}
	const mib = 1 << 20
	h.readAhead(0, mib)
	if got := h.ahead.Load(); got != mib+readAheadWindow {
		t.Fatalf("after the first read: ahead %d, want %d", got, mib+readAheadWindow)
	}
	// Within the first half of the window: nothing more asked.
	for off := int64(mib); off < readAheadWindow/2; off += mib {
		h.readAhead(off, mib)
	}
	if got := h.ahead.Load(); got != mib+readAheadWindow {
		t.Fatalf("within the window: ahead %d, want it unchanged", got)
	}
	// Past half of it: the next window.
	h.readAhead(readAheadWindow/2+mib, mib)
	if got, want := h.ahead.Load(), int64(readAheadWindow/2+2*mib+readAheadWindow); got != want {
		t.Fatalf("past half the window: ahead %d, want %d", got, want)
	}
	// Reads in flight together arrive out of order: still sequential.
	h.readAhead(readAheadWindow/2, mib)
	if h.ahead.Load() == 0 {
		t.Fatal("a read just behind the last one reset the read-ahead")
	}
	// A jump far away is not sequential, and asks nothing.
	h.readAhead(1<<40, mib)
	if got := h.ahead.Load(); got != 0 {
		t.Fatalf("after a jump: ahead %d, want 0", got)
	}
	// Reads going on from there are.
	h.readAhead(1<<40+mib, mib)
	if got := h.ahead.Load(); got != 1<<40+2*mib+readAheadWindow {
		t.Fatalf("sequential again: ahead %d", got)
	}
}
