package fop

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// cachedPages counts the pages of the file open as fd in [off, off+n)
// that are in the page cache (mincore of a mapping of it).
func cachedPages(t *testing.T, fd int, off int64, n int) int {
	t.Helper()
	m, err := unix.Mmap(fd, off, n, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	page := os.Getpagesize()
	vec := make([]byte, (n+page-1)/page)
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(n), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatal(e)
	}
	c := 0
	for _, v := range vec {
		c += int(v & 1)
	}
	return c
}

// Big aligned writes through a local descriptor go around the page cache;
// small or unaligned ones go through it; and what is read afterwards is
// what was written last either way.
func TestDirectWrites(t *testing.T) {
	p := filepath.Join(t.TempDir(), "copy")
	fd, err := unix.Open(p, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	var stx unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_DIOALIGN, &stx); err != nil || stx.Mask&unix.STATX_DIOALIGN == 0 || stx.Dio_offset_align == 0 {
		unix.Close(fd)
		t.Skipf("%s: no direct I/O here", p)
	}
	f := &localFile{fd: fd, readable: true, writable: true}
	l := &localFDs{conn: 1, fds: map[uint64]*localFile{7: f}}
	defer l.drop(7)
	write := func(data []byte, off int64) {
		t.Helper()
		r, err, known, ok := l.pwrite(1, 7, data, off)
		if err != nil || !known || !ok || r.Written != uint32(len(data)) {
			t.Fatalf("write of %d at %d: %+v %v %v %v", len(data), off, r, err, known, ok)
		}
	}
	const mib = 1 << 20
	big := pageAligned(2*mib, 'a')
	write(big, 0)
	if c := cachedPages(t, fd, 0, 2*mib); c != 0 {
		t.Fatalf("%d pages of a 2 MiB aligned write in the page cache, want none (O_DIRECT)", c)
	}
	// Unaligned in the file, and too small: through the page cache.
	write(pageAligned(directMin, 'b'), 100)
	write(pageAligned(4096, 'c'), mib)
	if c := cachedPages(t, fd, 0, 2*mib); c == 0 {
		t.Fatal("unaligned and small writes left nothing in the page cache")
	}
	// A direct write over cached pages: the pages go, the data is the
	// new one.
	write(pageAligned(mib, 'd'), 0)
	want := bytes.Repeat([]byte{'d'}, mib)
	want = append(want, big[mib:]...)
	copy(want[mib:], bytes.Repeat([]byte{'c'}, 4096)) // written at 1 MiB before, not overwritten
	got := make([]byte, 2*mib)
	if _, err := unix.Pread(fd, got, 0); err != nil {
		t.Fatal(err)
	}
	// 'b' covered [100, 100+directMin), all under the last 'd' MiB.
	if !bytes.Equal(got, want) {
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("byte %d is %q, want %q", i, got[i], want[i])
			}
		}
	}
	if f.direct.fd < 0 {
		t.Fatal("direct writes stopped")
	}
}

// A copy open with O_DSYNC is written with O_DSYNC around the page cache
// too.
func TestDirectWritesKeepSync(t *testing.T) {
	p := filepath.Join(t.TempDir(), "copy")
	fd, err := unix.Open(p, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC|unix.O_DSYNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var d directFD
	if !d.open(fd) {
		t.Skipf("%s: no direct I/O here", p)
	}
	defer d.close()
	fl, err := unix.FcntlInt(uintptr(d.fd), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	if fl&unix.O_DSYNC == 0 || fl&unix.O_DIRECT == 0 {
		t.Fatalf("direct descriptor's flags %#o, want O_DIRECT and O_DSYNC", fl)
	}
}

// pageAligned returns n bytes of b at a page boundary.
func pageAligned(n int, b byte) []byte {
	page := os.Getpagesize()
	buf := make([]byte, n+page)
	off := (page - int(uintptr(unsafe.Pointer(&buf[0])))%page) % page
	out := buf[off : off+n]
	for i := range out {
		out[i] = b
	}
	return out
}
