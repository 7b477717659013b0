package fop

import (
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A big write through a local descriptor (a copy on a brick of this
// machine) goes around the brick's page cache, with O_DIRECT, when its
// memory, offset and length keep the file's direct I/O alignment: a
// replicated volume's mount writes each copy itself, and the pages of
// two or three copies of a stream of data are memory the machine has to
// find (and, in a VM, the host to back) for data the mount's own page
// cache already holds, written to the disk at the fsync all at once.
// Smaller and unaligned writes, and every write once O_DIRECT failed
// for the file, go through the page cache as before. The kernel keeps
// the two coherent: a direct write writes back and drops the cached
// pages it covers.

// directMin is the smallest write that goes around the page cache.
const directMin = 256 << 10

// directFD is a local file's O_DIRECT descriptor, opened at its first
// big aligned write.
type directFD struct {
	tried    bool
	fd       int // -1 when there is none to be had
	memAlign uintptr
	offAlign int64
}

// fits returns the O_DIRECT descriptor of the file open as fd, opening it
// the first time, when a write of data at off may go through it.
func (d *directFD) fits(fd int, data []byte, off int64) (int, bool) {
	if len(data) < directMin || d.tried && d.fd < 0 {
		return -1, false
	}
	if !d.tried && !d.open(fd) {
		return -1, false
	}
	if uintptr(unsafe.Pointer(&data[0]))%d.memAlign != 0 || off%d.offAlign != 0 || int64(len(data))%d.offAlign != 0 {
		return -1, false
	}
	return d.fd, true
}

// open opens the file of fd again, for writing with O_DIRECT, and learns
// its alignment rules (statx STATX_DIOALIGN); false when it cannot.
func (d *directFD) open(fd int) bool {
	d.tried, d.fd = true, -1
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return false
	}
	// A file open with O_SYNC or O_DSYNC keeps it: O_DIRECT alone does
	// not make a write durable when it returns.
	sync := fl & (unix.O_SYNC | unix.O_DSYNC)
	nfd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(fd), unix.O_WRONLY|unix.O_DIRECT|unix.O_CLOEXEC|sync, 0)
	if err != nil {
		return false
	}
	var stx unix.Statx_t
	if err := unix.Statx(nfd, "", unix.AT_EMPTY_PATH, unix.STATX_DIOALIGN, &stx); err != nil ||
		stx.Mask&unix.STATX_DIOALIGN == 0 || stx.Dio_mem_align == 0 || stx.Dio_offset_align == 0 {
		unix.Close(nfd)
		return false
	}
	d.fd, d.memAlign, d.offAlign = nfd, uintptr(stx.Dio_mem_align), int64(stx.Dio_offset_align)
	return true
}

// write writes data at off through the O_DIRECT descriptor dfd and
// returns how much it wrote; a failure (the file system refusing the
// write as it is) leaves the rest to the page cache, and the file's
// later writes too.
func (d *directFD) write(dfd int, data []byte, off int64) int {
	n := 0
	for n < len(data) {
		m, err := unix.Pwrite(dfd, data[n:], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil || m <= 0 {
			d.close()
			return n
		}
		n += m
		if int64(m)%d.offAlign != 0 {
			return n // the rest is not aligned any more
		}
	}
	return n
}

// close closes the O_DIRECT descriptor, and direct writes stop.
func (d *directFD) close() {
	if d.tried && d.fd >= 0 {
		unix.Close(d.fd)
	}
	d.tried, d.fd = true, -1
}
