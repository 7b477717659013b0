// Package readahead asks the kernel to bring a file into the page cache
// ahead of a sequential reader, a window at a time, without waiting: the
// disk works while the reader's replies travel. A brick does it for the
// reads it serves, a mount for those it reads from a local brick's copy.
package readahead

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Window is how far past a sequential reader the file is asked for;
// Slack how far a read may land from the last one's end and still count
// as sequential (a mount keeps several reads in flight, which may arrive
// out of order).
const (
	Window = 16 << 20
	Slack  = 8 << 20
)

// Tracker follows the reads of one open file. The zero value is ready.
type Tracker struct {
	// ahead is how far the file was asked for, lastEnd where the last
	// read ended.
	ahead, lastEnd atomic.Int64
}

// Next records a read of n bytes at off and returns the range to ask for
// ahead of it, once half of the last window is used; ok false when there
// is none (within the window, or not a sequential read).
func (t *Tracker) Next(off, n int64) (from, to int64, ok bool) {
	end := off + n
	last := t.lastEnd.Swap(end)
	if off != 0 && (off < last-Slack || off > last+Slack) {
		t.ahead.Store(0)
		return 0, 0, false
	}
	ahead := t.ahead.Load()
	if ahead > end+Window/2 {
		return 0, 0, false
	}
	from, to = max(ahead, end), end+Window
	if !t.ahead.CompareAndSwap(ahead, to) {
		return 0, 0, false // another read of the file asked
	}
	return from, to, true
}

// Advise records a read of fd (Next) and asks the kernel for the range
// ahead of it.
func (t *Tracker) Advise(fd int, off, n int64) {
	if from, to, ok := t.Next(off, n); ok {
		_ = unix.Fadvise(fd, from, to-from, unix.FADV_WILLNEED)
	}
}

// Ahead is how far the file has been asked for, 0 after a jump.
func (t *Tracker) Ahead() int64 { return t.ahead.Load() }
