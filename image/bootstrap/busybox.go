// Package bootstrap makes base images without a registry: a busybox image
// from a static busybox binary (Debian's busybox-static), so a machine
// without internet access has an image to run.
//
//	f, _ := os.Create("busybox.tar")
//	bootstrap.BusyboxArchive(ctx, f, "/bin/busybox") // then: docker load -i busybox.tar
package bootstrap

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/image/layer"
	"github.com/cais-platform/cais/image/reference"
	"github.com/cais-platform/cais/image/store"
)

// BusyboxName is the name the image gets.
const BusyboxName = "busybox:latest"

// epoch is the time of every file and of the image, so the same busybox
// binary always gives the same image ID.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// BusyboxRootfs lays out a root file system in dir: /bin/busybox (a copy
// of the static binary at busybox), a symlink for each of its applets,
// /etc/passwd and /etc/group with root and nobody, and the usual empty
// directories.
func BusyboxRootfs(dir, busybox string) error {
	out, err := exec.Command(busybox, "--list-full").Output()
	if err != nil {
		return fmt.Errorf("%s --list-full (is it a busybox binary?): %w", busybox, err)
	}
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "tmp", "var/tmp", "proc", "sys", "dev", "home"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	for _, d := range []string{"tmp", "var/tmp"} {
		if err := os.Chmod(filepath.Join(dir, d), 0o1777); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(dir, "root"), 0o700); err != nil {
		return err
	}
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), bin, 0o755); err != nil {
		return err
	}
	for _, applet := range strings.Fields(string(out)) {
		applet = filepath.Clean("/" + applet)[1:]
		if applet == "bin/busybox" || applet == "" || strings.Contains(applet, "..") {
			continue
		}
		p := filepath.Join(dir, applet)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		rel, _ := filepath.Rel(filepath.Dir(p), filepath.Join(dir, "bin/busybox"))
		if err := os.Symlink(rel, p); err != nil && !os.IsExist(err) {
			return err
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
		"etc/group":  "root:x:0:\nnogroup:x:65534:\n",
	}
	for p, content := range files {
		if err := os.WriteFile(filepath.Join(dir, p), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		ts := []unix.Timespec{unix.NsecToTimespec(epoch.UnixNano()), unix.NsecToTimespec(epoch.UnixNano())}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	})
}

// Busybox builds the busybox image into st and tags it busybox:latest.
func Busybox(ctx context.Context, st *store.Store, busybox string) (digest.Digest, error) {
	dir, err := os.MkdirTemp("", "cais-busybox")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	if err := BusyboxRootfs(dir, busybox); err != nil {
		return "", err
	}
	var tar bytes.Buffer
	if err := layer.Pack(ctx, &tar, dir, layer.PackOptions{Owner: &layer.Owner{}}); err != nil {
		return "", err
	}
	desc, diffID, err := st.AddLayer(ctx, &tar)
	if err != nil {
		return "", err
	}
	created := epoch
	cfg := store.ImageConfig{
		Created: &created, Architecture: runtime.GOARCH, OS: "linux",
		Config: store.ContainerConfig{
			Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cmd: []string{"sh"},
		},
		RootFS:  ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
		History: []ocispec.History{{Created: &created, CreatedBy: "cais bootstrap: busybox-static", Comment: "made from " + busybox}},
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return "", err
	}
	target, err := st.Commit(ctx, b, []ocispec.Descriptor{desc}, true)
	if err != nil {
		return "", err
	}
	ref, err := reference.ParseDockerRef(BusyboxName)
	if err != nil {
		return "", err
	}
	if err := st.Tag(ctx, ref, target); err != nil {
		return "", err
	}
	return digest.FromBytes(b), nil
}

// BusyboxArchive writes the busybox image as a docker save archive, for
// docker load.
func BusyboxArchive(ctx context.Context, w io.Writer, busybox string) error {
	dir, err := os.MkdirTemp("", "cais-busybox-store")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		return err
	}
	if _, err := Busybox(ctx, st, busybox); err != nil {
		return err
	}
	return st.Save(ctx, w, []string{BusyboxName})
}
