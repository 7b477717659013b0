package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cais-platform/cais/image/bootstrap"
	"github.com/cais-platform/cais/image/reference"
	"github.com/cais-platform/cais/image/store"
	"github.com/cais-platform/cais/registry/htpasswd"
	"github.com/cais-platform/cais/test/clustertest"
)

// startDockerRegistry starts a caisd whose registry listens on its own
// loopback address, port 5000, with alice as its only user (pushes and
// pulls need her credentials), and loads busybox, for the docker CLI.
func startDockerRegistry(t *testing.T) (*dockerNode, string) {
	t.Helper()
	for _, bin := range []string{"docker", "runc"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed (make deps)", bin)
		}
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("busybox-static is not installed (make deps)")
	}
	c := clustertest.New(t)
	reg := c.Addr(1) + ":5000"
	users := filepath.Join(c.Dir(), "registry-users")
	if err := htpasswd.Set(users, "alice", "s3cret"); err != nil {
		t.Fatal(err)
	}
	// A mirror of Docker Hub that cannot be reached (nothing listens on
	// port 1), and an insecure registry, for docker info.
	n := c.Start(clustertest.NodeOptions{Args: []string{"--registry-addr", reg, "--registry-users", users,
		"--registry-mirror", "http://" + c.Addr(1) + ":1", "--insecure-registry", "registry.example:5000,10.9.0.0/16"}})
	d := &dockerNode{t: t, n: n, socket: n.DockerSocket}
	d.env = append(os.Environ(), "DOCKER_HOST=unix://"+n.DockerSocket, "DOCKER_CONFIG="+filepath.Join(c.Dir(), "docker-config"), "DOCKER_BUILDKIT=0", "DOCKER_CLI_HINTS=false")
	tarPath := filepath.Join(c.Dir(), "busybox.tar")
	f, err := os.Create(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := bootstrap.BusyboxArchive(context.Background(), f, "/bin/busybox"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	d.must("load", "-i", tarPath)
	t.Cleanup(func() {
		r := d.run("ps", "-aq")
		for _, id := range strings.Fields(r.Stdout) {
			d.run("rm", "-f", id)
		}
	})
	return d, reg
}

// layeredArchive writes a docker save archive of busybox with two more
// layers (/f1 and /f2), named name.
func layeredArchive(t *testing.T, path, name string) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bootstrap.Busybox(ctx, st, "/bin/busybox"); err != nil {
		t.Fatal(err)
	}
	base, err := st.Resolve(mustParse(t, bootstrap.BusyboxName))
	if err != nil {
		t.Fatal(err)
	}
	_, m, err := st.Manifest(base)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := st.Config(m)
	if err != nil {
		t.Fatal(err)
	}
	layers := m.Layers
	for i := 1; i <= 2; i++ {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		content := fmt.Sprintf("layer %d\n", i)
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("f%d", i), Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg, ModTime: time.Unix(1, 0)})
		tw.Write([]byte(content))
		tw.Close()
		desc, diffID, err := st.AddLayer(ctx, &b)
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, desc)
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, diffID)
		cfg.History = append(cfg.History, ocispec.History{CreatedBy: fmt.Sprintf("layer %d", i)})
	}
	cb, _ := json.Marshal(cfg)
	target, err := st.Commit(ctx, cb, layers, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Tag(ctx, mustParse(t, name), target); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := st.Save(ctx, f, []string{name}); err != nil {
		t.Fatal(err)
	}
}

func mustParse(t *testing.T, s string) reference.Reference {
	t.Helper()
	r, err := reference.ParseDockerRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// lines counts the lines of out that end with suffix.
func lines(out, suffix string) int {
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.HasSuffix(l, suffix) {
			n++
		}
	}
	return n
}

// TestDockerRegistry: docker login, push, pull and run-pulls against the
// registry of a caisd, through that caisd's engine, with the real docker
// CLI (issue 5, point 3).
func TestDockerRegistry(t *testing.T) {
	d, reg := startDockerRegistry(t)
	app := reg + "/app:1"

	t.Run("login", func(t *testing.T) {
		d.t = t
		info := d.must("info")
		if !strings.Contains(info, "Insecure Registries:\n  registry.example:5000\n  127.0.0.0/8\n  10.9.0.0/16\n") ||
			!strings.Contains(info, "Registry Mirrors:\n  http://"+d.n.Addr+":1/\n") {
			t.Errorf("docker info:\n%s", info)
		}
		r := d.cmd(strings.NewReader("wrong\n"), "login", reg, "-u", "alice", "--password-stdin")
		if want := "Error response from daemon: login attempt to http://" + reg + "/v2/ failed with status: 401 Unauthorized"; r.Code != 1 || !strings.Contains(r.Stderr, want) {
			t.Fatalf("bad login: %+v; want %q", r, want)
		}
		d.must("tag", "busybox", app)
		// Not logged in: the registry asks for credentials the CLI has none of.
		r = d.run("push", app)
		if r.Code != 1 || !strings.Contains(r.Stderr, "no basic auth credentials") {
			t.Fatalf("push without login: %+v", r)
		}
		r = d.cmd(strings.NewReader("s3cret\n"), "login", reg, "-u", "alice", "--password-stdin")
		if r.Code != 0 || r.Stdout != "Login Succeeded\n" {
			t.Fatalf("login: %+v", r)
		}
	})

	var pushed string
	t.Run("push", func(t *testing.T) {
		d.t = t
		out := d.must("push", app)
		t.Logf("docker push %s:\n%s", app, out)
		if !strings.HasPrefix(out, "The push refers to repository ["+reg+"/app]\n") || lines(out, ": Pushed") != 1 || !strings.Contains(out, "\n1: digest: sha256:") {
			t.Fatalf("docker push:\n%s", out)
		}
		pushed = out[strings.Index(out, "digest: ")+len("digest: "):]
		pushed = pushed[:strings.Index(pushed, " ")]
		if _, err := digest.Parse(pushed); err != nil {
			t.Fatalf("digest %q: %v", pushed, err)
		}
		out = d.must("push", app)
		if lines(out, ": Layer already exists") != 1 || lines(out, ": Pushed") != 0 || !strings.Contains(out, "1: digest: "+pushed+" size: ") {
			t.Fatalf("second push:\n%s", out)
		}
		// Another repository of the same registry: the layer is mounted.
		d.must("tag", "busybox", reg+"/copy:1")
		out = d.must("push", reg+"/copy:1")
		if lines(out, ": Mounted from app") != 1 {
			t.Fatalf("push to another repository:\n%s", out)
		}
		// Every tag of a repository.
		d.must("tag", "busybox", reg+"/app:2")
		out = d.must("push", "--all-tags", reg+"/app")
		if strings.Count(out, "The push refers to repository") != 1 || !strings.Contains(out, "\n1: digest: "+pushed) || !strings.Contains(out, "\n2: digest: "+pushed) {
			t.Fatalf("push --all-tags:\n%s", out)
		}
	})

	t.Run("pull", func(t *testing.T) {
		d.t = t
		d.must("rmi", app)
		out := d.must("pull", app)
		t.Logf("docker pull %s:\n%s", app, out)
		want := "1: Pulling from app\n"
		if !strings.HasPrefix(out, want) || !strings.Contains(out, "\nDigest: "+pushed+"\n") ||
			!strings.HasSuffix(out, "Status: Downloaded newer image for "+app+"\n"+app+"\n") {
			t.Fatalf("docker pull:\n%s", out)
		}
		out = d.must("pull", app)
		if !strings.Contains(out, "Status: Image is up to date for "+app+"\n") {
			t.Fatalf("second pull:\n%s", out)
		}
		// docker events saw the pushes and pulls.
		ev := d.must("events", "--since", "0", "--until", strconv.FormatInt(time.Now().Unix()+1, 10), "--filter", "type=image", "--format", "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}}")
		if !strings.Contains(ev, "push "+app+" "+reg+"/app\n") || !strings.Contains(ev, "pull "+app+" "+reg+"/app\n") {
			t.Errorf("docker events:\n%s", ev)
		}
		// The pulled image has the pushed digest as its name's.
		if id, bb := d.must("inspect", "-f", "{{.Id}}", app), d.must("inspect", "-f", "{{.Id}}", "busybox"); id != bb {
			t.Errorf("pulled image %s, busybox %s", id, bb)
		}
	})

	t.Run("run pulls", func(t *testing.T) {
		d.t = t
		d.must("rmi", app)
		r := d.run("run", "--rm", app, "echo", "ok")
		if r.Code != 0 || r.Stdout != "ok\n" || !strings.Contains(r.Stderr, "Unable to find image '"+app+"' locally\n") ||
			!strings.Contains(r.Stderr, "Status: Downloaded newer image for "+app) {
			t.Fatalf("docker run of an image not pulled yet: %+v", r)
		}
		r = d.run("run", "--rm", reg+"/nosuch:1", "true")
		if r.Code != 125 || !strings.Contains(r.Stderr, "Unable to find image '"+reg+"/nosuch:1' locally") ||
			!strings.Contains(r.Stderr, "Error response from daemon: manifest for "+reg+"/nosuch:1 not found") {
			t.Fatalf("docker run of an image the registry lacks: %+v", r)
		}
	})

	t.Run("layers", func(t *testing.T) {
		d.t = t
		multi := reg + "/multi:1"
		path := filepath.Join(t.TempDir(), "multi.tar")
		layeredArchive(t, path, multi)
		d.must("load", "-i", path)
		out := d.must("push", multi)
		// busybox's layer is in app and copy already: mounted from there.
		if lines(out, ": Preparing") != 3 || lines(out, ": Pushed") != 2 || lines(out, ": Mounted from app") != 1 {
			t.Fatalf("push of three layers:\n%s", out)
		}
		d.must("rmi", multi)
		out = d.must("pull", multi)
		t.Logf("docker pull %s:\n%s", multi, out)
		if lines(out, ": Pulling fs layer") != 2 || lines(out, ": Already exists") != 1 || lines(out, ": Pull complete") != 2 {
			t.Fatalf("pull of three layers:\n%s", out)
		}
		d.expect(0, ptr("layer 1\nlayer 2\n"), "", "run", "--rm", multi, "cat", "/f1", "/f2")
	})

	t.Run("logout", func(t *testing.T) {
		d.t = t
		d.must("logout", reg)
		d.must("rmi", app)
		r := d.run("pull", app)
		if r.Code != 1 || !strings.Contains(r.Stderr, "no basic auth credentials") {
			t.Fatalf("pull after logout: %+v", r)
		}
		if r := d.run("images", "-q", app); r.Stdout != "" {
			t.Errorf("image after a failed pull: %q", r.Stdout)
		}
	})

	t.Run("unreachable", func(t *testing.T) {
		d.t = t
		ln, err := net.Listen("tcp", d.n.Addr+":0")
		if err != nil {
			t.Fatal(err)
		}
		closed := ln.Addr().String()
		ln.Close()
		start := time.Now()
		r := d.run("pull", closed+"/app:1")
		if took := time.Since(start); r.Code != 1 || !strings.Contains(r.Stderr, `Error response from daemon: Get "http://`+closed+`/v2/": dial tcp `+closed+`: connect: connection refused`) || took > 10*time.Second {
			t.Fatalf("pull from a closed port: %+v after %v", r, took)
		}
		start = time.Now()
		r = d.run("pull", "busybox:1.36")
		took := time.Since(start)
		if r.Code == 0 {
			t.Logf("Docker Hub is reachable from here: pulled busybox:1.36")
			d.run("rmi", "busybox:1.36")
			return
		}
		t.Logf("docker pull busybox:1.36 (%v): %s", took, r.Stderr)
		// The mirror was tried first, and passed over.
		if !strings.Contains(d.n.Log(), `Get \"http://`+d.n.Addr+`:1/v2/\": dial tcp `+d.n.Addr+`:1: connect: connection refused`) {
			t.Errorf("the mirror was not tried")
		}
		if !strings.Contains(r.Stderr, `Error response from daemon: Get "https://registry-1.docker.io/v2/": `) || took > 15*time.Second {
			t.Fatalf("pull from Docker Hub, unreachable: %+v after %v", r, took)
		}
	})
}

// mountVolumeAt mounts HOST:/VOL at a directory of its own (two mounts of
// one volume), unmounted when the test ends.
func mountVolumeAt(t *testing.T, c *clustertest.Cluster, n *clustertest.Node, vol, name string) string {
	t.Helper()
	mnt := filepath.Join(c.Dir(), name)
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(c.Dir(), name+".log")
	n.MustCLI("mount", "--log-file", logFile, n.Addr+":/"+vol, mnt)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			t.Logf("--- mount log of %s ---\n%s", name, b)
		}
		for i := 0; i < 50; i++ {
			if err := syscall.Unmount(mnt, 0); err == nil || err == syscall.EINVAL || err == syscall.ENOENT {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		_ = syscall.Unmount(mnt, syscall.MNT_DETACH)
	})
	return mnt
}

// registryDockerOn drives node n's engine with the docker CLI.
func registryDockerOn(t *testing.T, c *clustertest.Cluster, n *clustertest.Node) *dockerNode {
	d := &dockerNode{t: t, n: n, socket: n.DockerSocket}
	d.env = append(os.Environ(), "DOCKER_HOST=unix://"+n.DockerSocket, "DOCKER_CONFIG="+filepath.Join(c.Dir(), fmt.Sprintf("docker-config-%d", n.Index)), "DOCKER_BUILDKIT=0", "DOCKER_CLI_HINTS=false")
	t.Cleanup(func() {
		r := d.run("ps", "-aq")
		for _, id := range strings.Fields(r.Stdout) {
			d.run("rm", "-f", id)
		}
	})
	return d
}

// TestRegistryOnVolume: two nodes serve one registry whose content is on
// a replicated cais volume, each through its own mount: what is pushed
// to one node's registry is pulled from the other's, both ways.
func TestRegistryOnVolume(t *testing.T) {
	needFuse(t)
	for _, bin := range []string{"docker", "runc"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed (make deps)", bin)
		}
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("busybox-static is not installed (make deps)")
	}
	c := clustertest.New(t)
	nodes := c.Pool(2)
	n1, n2 := nodes[0], nodes[1]
	b1, b2 := n1.Brick("reg1/brick"), n2.Brick("reg2/brick")
	n1.MustCLI("volume", "create", "regvol", "replica", "2", b1, b2)
	n1.MustCLI("volume", "start", "regvol")
	mnt1 := mountVolumeAt(t, c, n1, "regvol", "mnt-reg1")
	mnt2 := mountVolumeAt(t, c, n2, "regvol", "mnt-reg2")
	if err := os.Mkdir(filepath.Join(mnt1, "registry"), 0o700); err != nil {
		t.Fatal(err)
	}
	reg1, reg2 := n1.Addr+":5000", n2.Addr+":5000"
	n1.RestartWithArgs("--registry-addr", reg1, "--registry-dir", filepath.Join(mnt1, "registry"))
	n2.RestartWithArgs("--registry-addr", reg2, "--registry-dir", filepath.Join(mnt2, "registry"))
	d1, d2 := registryDockerOn(t, c, n1), registryDockerOn(t, c, n2)

	tarPath := filepath.Join(c.Dir(), "multi.tar")
	layeredArchive(t, tarPath, reg1+"/app:1")
	d1.must("load", "-i", tarPath)
	out := d1.must("push", reg1+"/app:1")
	if lines(out, ": Pushed") != 3 {
		t.Fatalf("push to node 1:\n%s", out)
	}
	pushed := out[strings.Index(out, "digest: ")+len("digest: "):]
	pushed = pushed[:strings.Index(pushed, " ")]

	// Node 2's registry has it, from node 2's mount.
	out = d2.must("pull", reg2+"/app:1")
	t.Logf("docker pull %s/app:1 on node 2:\n%s", reg2, out)
	if lines(out, ": Pull complete") != 3 || !strings.Contains(out, "Digest: "+pushed+"\n") {
		t.Fatalf("pull from node 2:\n%s", out)
	}
	d2.expect(0, ptr("layer 1\nlayer 2\n"), "", "run", "--rm", reg2+"/app:1", "cat", "/f1", "/f2")

	// And the other way.
	d2.must("tag", reg2+"/app:1", reg2+"/app:2")
	out = d2.must("push", reg2+"/app:2")
	if lines(out, ": Layer already exists") != 3 {
		t.Fatalf("push to node 2:\n%s", out)
	}
	out = d1.must("pull", reg1+"/app:2")
	if !strings.Contains(out, "Digest: "+pushed+"\n") {
		t.Fatalf("pull from node 1:\n%s", out)
	}
	// The blobs are on both bricks: the volume replicates them.
	hex := strings.TrimPrefix(pushed, "sha256:")
	var found []string
	for _, b := range []string{b1, b2} {
		filepath.WalkDir(brickPath(b), func(p string, e os.DirEntry, err error) error {
			if err == nil && e.Name() == hex && strings.HasSuffix(filepath.Dir(p), "/registry/blobs/sha256") {
				found = append(found, p)
			}
			return nil
		})
	}
	if len(found) != 2 {
		t.Errorf("manifest %s on the bricks: %v", pushed, found)
	}
}
