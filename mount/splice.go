package mount

import (
	"os"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/hanwen/go-fuse/v2/splice"
	"golang.org/x/sys/unix"
)

// A read of a file whose copy is on a brick of this machine is answered
// from the copy's descriptor (fop.LocalFDReader): go-fuse splices the
// data from it through a pipe into the reply, so it is copied once, from
// the copy's pages into the kernel's pages of the FUSE file, where a
// pread into the mount's buffer and the reply's write copy it twice.
// go-fuse puts the reply's header and data in one pipe with a page to
// spare; a read that does not fit one (pipe-max-size, 1 MiB unless
// raised) is read with pread.

// spliceSlack is what a spliced reply needs in its pipe beside the data:
// the reply's header, and the page go-fuse keeps free.
const spliceSlack = 16 + 4096

// MaxSplicedRead is the largest read a reply can splice, a multiple of
// the page size: the mount asks the kernel for reads no larger
// (max_read), so that a sequential reader's are all spliced.
func MaxSplicedRead() int {
	page := os.Getpagesize()
	return (splice.MaxPipeSize() - spliceSlack) / page * page
}

// splicedRead is a read's data, to be spliced from fd at off.
type splicedRead struct {
	fd   int
	off  int64
	size int
	// slow reads the data the other way when the splice cannot be made
	// and a pread from fd fails (the brick's protocol fails over).
	slow func() ([]byte, fuse.Status)
}

var _ fuse.ReadResult = (*splicedRead)(nil)

// Seekable names the data for go-fuse's splice.
func (r *splicedRead) Seekable() (fd uintptr, off int64, sz int) {
	return uintptr(r.fd), r.off, r.size
}

// Bytes reads the data into buf, when go-fuse does not splice it.
func (r *splicedRead) Bytes(buf []byte) ([]byte, fuse.Status) {
	if len(buf) > r.size {
		buf = buf[:r.size]
	}
	n := 0
	for n < len(buf) {
		m, err := unix.Pread(r.fd, buf[n:], r.off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return r.slow()
		}
		if m == 0 {
			break
		}
		n += m
	}
	return buf[:n], fuse.OK
}

func (r *splicedRead) Size() int { return r.size }

// Done closes the descriptor, once go-fuse has sent the reply.
func (r *splicedRead) Done() {
	if r.fd >= 0 {
		syscall.Close(r.fd)
		r.fd = -1
	}
}
