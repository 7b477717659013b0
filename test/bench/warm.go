package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// A virtual machine whose balloon device reports free pages to its
// hypervisor (virtio-balloon's free page reporting, feature bit 5) gives
// back the memory a cache drop frees: a couple of seconds later the host
// unmaps it, and the next write of each such page by the guest's CPU
// costs a fault on the host. A disk's reads fill the page cache by DMA,
// which the host's device emulation backs on its own thread, so the disk
// column never pays it; a FUSE file system's page cache is filled by the
// CPU (the reply copied in), so its reads pay it for every page. perf on
// this machine, a cold 1 GiB read of a Replica 3 volume: 59% of all
// samples in the copy into the FUSE pages right after a drop, 12% once
// the memory had been touched. After the drop before a sequential write
// or read the bench writes once to enough anonymous memory and frees it,
// so that the pages the workload gets are backed again: what is measured
// is the file systems, not the hypervisor's memory reclaim. The page
// cache stays dropped.

// balloonFeatureReporting is VIRTIO_BALLOON_F_REPORTING.
const balloonFeatureReporting = 5

// virtioIDBalloon is the virtio device ID of a memory balloon.
const virtioIDBalloon = 0x5

// hasFeature reports whether a virtio device's features file (one '0' or
// '1' per bit, bit 0 first) has bit set.
func hasFeature(features string, bit int) bool {
	features = strings.TrimSpace(features)
	return bit < len(features) && features[bit] == '1'
}

// freePageReporting reports whether a virtio balloon of this machine
// reports free pages to the host, and names it.
func freePageReporting() (string, bool) {
	devs, _ := filepath.Glob("/sys/bus/virtio/devices/*")
	for _, d := range devs {
		id, err := os.ReadFile(filepath.Join(d, "device"))
		if err != nil {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(string(id)), 0, 32)
		if err != nil || n != virtioIDBalloon {
			continue
		}
		f, err := os.ReadFile(filepath.Join(d, "features"))
		if err == nil && hasFeature(string(f), balloonFeatureReporting) {
			return filepath.Base(d), true
		}
	}
	return "", false
}

// memAvailable is /proc/meminfo's MemAvailable, in bytes.
func memAvailable() (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	return parseMemAvailable(b)
}

func parseMemAvailable(b []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemAvailable:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("MemAvailable %q: %w", f[1], err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no MemAvailable in /proc/meminfo")
}

// warmMemory writes one byte to every page of size bytes of anonymous
// memory (at most half of what is available) and frees it.
func warmMemory(size int64) error {
	if avail, err := memAvailable(); err == nil {
		size = min(size, avail/2)
	}
	page := int64(os.Getpagesize())
	size = size / page * page
	if size <= 0 {
		return nil
	}
	b, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("warm %d bytes of memory: %w", size, err)
	}
	for i := int64(0); i < size; i += page {
		b[i] = 1
	}
	return unix.Munmap(b)
}
