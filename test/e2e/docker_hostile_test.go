package e2e

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// legacyArchive is a docker save archive of one image, name, whose only
// layer is layerTar.
func legacyArchive(t *testing.T, name string, layerTar []byte) []byte {
	t.Helper()
	cfg, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Cmd": []string{"true"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{fmt.Sprintf("sha256:%x", sha256.Sum256(layerTar))}},
	})
	manifest, _ := json.Marshal([]map[string]any{{"Config": "config.json", "RepoTags": []string{name}, "Layers": []string{"layer.tar"}}})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		body []byte
	}{{"layer.tar", layerTar}, {"config.json", cfg}, {"manifest.json", manifest}} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg})
		tw.Write(f.body)
	}
	tw.Close()
	return buf.Bytes()
}

// TestDockerHostileInput: archives that try to reach out of the engine's
// directories, through docker load and docker import, and names and
// Dockerfiles that are wrong, each refused with a clear error, nothing
// written outside, the daemon still serving.
func TestDockerHostileInput(t *testing.T) {
	d := startDocker(t)
	canaryDir := t.TempDir()
	canary := filepath.Join(canaryDir, "canary")
	if err := os.WriteFile(canary, []byte("intact\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	marker := "cais-hostile-" + strconv.Itoa(os.Getpid())
	layers := map[string]struct {
		tar  []byte
		want string
	}{
		"dot-dot":           {tarBytes(t, tar.Header{Name: "../../../../../tmp/" + marker, Typeflag: tar.TypeReg}), "path escapes the target directory"},
		"device":            {tarBytes(t, tar.Header{Name: "dev/sda", Typeflag: tar.TypeBlock, Devmajor: 8}), "device nodes are not allowed"},
		"hard link out":     {tarBytes(t, tar.Header{Name: "pw", Typeflag: tar.TypeLink, Linkname: canary}), "hard link target is not a file in the archive's tree"},
		"hard link dot-dot": {tarBytes(t, tar.Header{Name: "pw", Typeflag: tar.TypeLink, Linkname: "../../../../../etc/shadow"}), "path escapes the target directory"},
	}
	for name, l := range layers {
		t.Run("load/"+name, func(t *testing.T) {
			d.t = t
			r := d.cmd(bytes.NewReader(legacyArchive(t, "hostile:1", l.tar)), "load")
			if r.Code == 0 || !strings.Contains(r.Stderr, l.want) {
				t.Errorf("docker load: %+v, want an error with %q", r, l.want)
			}
			d.expect(1, nil, "No such image: hostile:1", "image", "inspect", "hostile:1")
		})
		t.Run("import/"+name, func(t *testing.T) {
			d.t = t
			r := d.cmd(bytes.NewReader(l.tar), "import", "-", "hostile:2")
			if r.Code == 0 || !strings.Contains(r.Stderr, l.want) {
				t.Errorf("docker import: %+v, want an error with %q", r, l.want)
			}
		})
	}
	// Symlinks that lead out are kept as links, inside the layer: what is
	// written through them stays in the container's tree.
	t.Run("symlink-through", func(t *testing.T) {
		d.t = t
		l := tarBytes(t, tar.Header{Name: "esc", Typeflag: tar.TypeSymlink, Linkname: canaryDir}, tar.Header{Name: "esc/canary", Typeflag: tar.TypeReg},
			tar.Header{Name: "root", Typeflag: tar.TypeSymlink, Linkname: "/"}, tar.Header{Name: "root/tmp/" + marker, Typeflag: tar.TypeReg},
			tar.Header{Name: "bin/", Typeflag: tar.TypeDir}, tar.Header{Name: "bin/sh", Typeflag: tar.TypeReg})
		r := d.cmd(bytes.NewReader(l), "import", "-", "hostile:links")
		if r.Code != 0 || !strings.HasPrefix(r.Stdout, "sha256:") {
			t.Fatalf("docker import of a layer with symlinks out: %+v", r)
		}
		d.must("rmi", "hostile:links")
	})

	// Names and references.
	d.expect(1, nil, `invalid reference format`, "tag", "busybox", "Bad/Name:1")
	d.expect(1, nil, `invalid reference format`, "pull", "busybox:tag:extra")
	d.expect(125, nil, `Invalid container name (bad/name), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`, "run", "--name", "bad/name", "busybox", "true")
	d.expect(1, nil, `invalid network name "bad/net": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`, "network", "create", "bad/net")
	// A Dockerfile with an unknown instruction.
	ctx := buildContext(t, map[string]string{"Dockerfile": "FROM busybox\nFROBNICATE now\n"})
	d.expect(1, nil, `unknown instruction: FROBNICATE`, "build", ctx)

	if b, _ := os.ReadFile(canary); string(b) != "intact\n" {
		t.Errorf("the canary outside the engine changed: %q", b)
	}
	if _, err := os.Stat("/tmp/" + marker); err == nil {
		os.Remove("/tmp/" + marker)
		t.Errorf("/tmp/%s was written by a layer", marker)
	}
	d.expect(0, ptr("busybox\n"), "", "images", "--format", "{{.Repository}}", "busybox")
}
