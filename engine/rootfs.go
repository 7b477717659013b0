package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/image/reference"
)

// mountRootfs mounts the container's root file system at dir/rootfs: an
// overlay of the image's layers (unpacked once each, shared by every
// container of the image) under the container's own upper directory.
func (e *Engine) mountRootfs(ctx context.Context, c Container, dir string) error {
	rootfs := filepath.Join(dir, "rootfs")
	upper := filepath.Join(dir, "upper")
	work := filepath.Join(dir, "work")
	for _, d := range []string{rootfs, upper, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if mounted(rootfs) {
		return nil
	}
	img, err := e.images.Find(c.Image)
	if err != nil {
		return fmt.Errorf("image %s of container %s: %w", c.Image, c.Name, err)
	}
	lowers, err := e.images.Layers(ctx, img.Target)
	if err != nil {
		return fmt.Errorf("unpack the layers of %s: %w", c.Config.Image, err)
	}
	if len(lowers) == 0 {
		empty := filepath.Join(dir, "empty")
		if err := os.MkdirAll(empty, 0o755); err != nil {
			return err
		}
		lowers = []string{empty}
	}
	opts := "lowerdir=" + strings.Join(lowers, ":") + ",upperdir=" + upper + ",workdir=" + work
	if len(opts) >= unix.Getpagesize() {
		return fmt.Errorf("image %s has too many layers to mount (%d)", c.Config.Image, len(lowers))
	}
	if err := unix.Mount("overlay", rootfs, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mount the container's root file system: %w", err)
	}
	return nil
}

// mounted reports whether path is a mount point.
func mounted(path string) bool {
	var st, parent unix.Stat_t
	if unix.Lstat(path, &st) != nil || unix.Lstat(filepath.Dir(path), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}

// writeEtcFiles writes the container's /etc/hosts, /etc/hostname and
// /etc/resolv.conf (bind-mounted into it) and returns them by
// destination.
func (e *Engine) writeEtcFiles(c Container, dir string) (map[string]string, error) {
	hostname := c.Config.Hostname
	if hostname == "" {
		hostname = ShortID(c.ID)
	}
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
	if c.HostConfig.NetworkMode == "host" {
		if b, err := os.ReadFile("/etc/hosts"); err == nil {
			hosts = string(b)
		}
	}
	for _, h := range c.HostConfig.ExtraHosts {
		if name, ip, ok := strings.Cut(h, ":"); ok {
			hosts += ip + "\t" + name + "\n"
		}
	}
	resolv := "nameserver 127.0.0.53\n"
	if b, err := os.ReadFile("/etc/resolv.conf"); err == nil {
		resolv = string(b)
	}
	files := map[string]string{
		"/etc/hosts":       hosts,
		"/etc/hostname":    hostname + "\n",
		"/etc/resolv.conf": resolv,
	}
	out := map[string]string{}
	for dst, content := range files {
		p := filepath.Join(dir, filepath.Base(dst))
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return nil, err
		}
		out[dst] = p
	}
	return out, nil
}

// ImageName returns how docker shows the image a container was created
// from: the name the user gave, normalized to its familiar form.
func ImageName(s string) string {
	if r, err := reference.ParseNormalized(s); err == nil {
		return r.Familiar()
	}
	return s
}
