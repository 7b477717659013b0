package readahead

import "testing"

// A sequential reader gets the file asked ahead of it a window at a time;
// a jump elsewhere stops that until reads are sequential again.
func TestReadAhead(t *testing.T) {
	var h Tracker
	const mib = 1 << 20
	next(&h, 0, mib)
	if got := h.Ahead(); got != mib+Window {
		t.Fatalf("after the first read: ahead %d, want %d", got, mib+Window)
	}
	// Within the first half of the window: nothing more asked.
	for off := int64(mib); off < Window/2; off += mib {
		next(&h, off, mib)
	}
	if got := h.Ahead(); got != mib+Window {
		t.Fatalf("within the window: ahead %d, want it unchanged", got)
	}
	// Past half of it: the next window.
	next(&h, Window/2+mib, mib)
	if got, want := h.Ahead(), int64(Window/2+2*mib+Window); got != want {
		t.Fatalf("past half the window: ahead %d, want %d", got, want)
	}
	// Reads in flight together arrive out of order: still sequential.
	next(&h, Window/2, mib)
	if h.Ahead() == 0 {
		t.Fatal("a read just behind the last one reset the read-ahead")
	}
	// A jump far away is not sequential, and asks nothing.
	next(&h, 1<<40, mib)
	if got := h.Ahead(); got != 0 {
		t.Fatalf("after a jump: ahead %d, want 0", got)
	}
	// Reads going on from there are.
	next(&h, 1<<40+mib, mib)
	if got := h.Ahead(); got != 1<<40+2*mib+Window {
		t.Fatalf("sequential again: ahead %d", got)
	}
}

func next(t *Tracker, off, n int64) { t.Next(off, n) }

// Next's range: from where the last window ended (or the read's end) to
// a window past the read.
func TestNextRange(t *testing.T) {
	var tr Tracker
	from, to, ok := tr.Next(0, 1<<20)
	if !ok || from != 1<<20 || to != 1<<20+Window {
		t.Fatalf("first read: %d-%d %v", from, to, ok)
	}
	if _, _, ok := tr.Next(1<<20, 1<<20); ok {
		t.Fatal("a read within the window asked again")
	}
	from, to, ok = tr.Next(Window/2+1<<20, 1<<20)
	if !ok || from != 1<<20+Window || to != Window/2+2<<20+Window {
		t.Fatalf("past half the window: %d-%d %v", from, to, ok)
	}
}
