package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cais-platform/cais/image/bootstrap"
	"github.com/cais-platform/cais/test/clustertest"
)

// dockerOn drives the docker CLI against a node of a cluster, with the
// busybox image loaded, and removes its containers when the test ends.
func dockerOn(t *testing.T, c *clustertest.Cluster, n *clustertest.Node) *dockerNode {
	t.Helper()
	d := &dockerNode{t: t, n: n, socket: n.DockerSocket}
	d.env = append(os.Environ(), "DOCKER_HOST=unix://"+n.DockerSocket, "DOCKER_CONFIG="+filepath.Join(c.Dir(), "docker-config"), "DOCKER_BUILDKIT=0", "DOCKER_CLI_HINTS=false")
	tarPath := filepath.Join(c.Dir(), fmt.Sprintf("busybox-%d.tar", n.Index))
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
		for _, id := range strings.Fields(d.run("ps", "-aq").Stdout) {
			d.run("rm", "-f", id)
		}
	})
	return d
}

func skipWithoutDocker(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"docker", "runc"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skip(bin + " is not installed")
		}
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("busybox-static is not installed (make deps)")
	}
}

// api is a plain HTTP client of a node's docker socket.
func (d *dockerNode) api() *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", d.socket)
	}}}
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

func TestDockerVolumes(t *testing.T) {
	skipWithoutDocker(t)
	d := startDocker(t)

	t.Run("named", func(t *testing.T) {
		d.t = t
		d.expect(0, ptr("data\n"), "", "volume", "create", "--label", "app=web", "data")
		d.must("run", "--network", "none", "--rm", "-v", "data:/data", "busybox", "sh", "-c", "echo hello > /data/f")
		d.expect(0, ptr("hello\n"), "", "run", "--network", "none", "--rm", "-v", "data:/data:ro", "busybox", "cat", "/data/f")
		d.expect(1, nil, "Read-only file system", "run", "--network", "none", "--rm", "-v", "data:/data:ro", "busybox", "touch", "/data/g")
		d.expect(0, ptr("data\n"), "", "volume", "ls", "-q", "--filter", "label=app=web")
		d.expect(0, ptr("data\n"), "", "volume", "ls", "-q", "--filter", "dangling=true")
		mp := strings.TrimSpace(d.must("volume", "inspect", "-f", "{{.Driver}} {{.Mountpoint}} {{.Labels.app}}", "data"))
		if want := "local " + filepath.Join(d.n.DataDir, "engine", "volumes", "data", "_data") + " web"; mp != want {
			t.Errorf("inspect: %q, want %q", mp, want)
		}
		// In use: refused, with Docker's message naming the container.
		id := strings.TrimSpace(d.must("run", "--network", "none", "-d", "--name", "holder", "-v", "data:/data", "busybox", "sleep", "100"))
		d.expect(1, nil, "remove data: volume is in use - ["+id+"]", "volume", "rm", "data")
		d.expect(0, ptr(""), "", "volume", "ls", "-q", "--filter", "dangling=true")
		if out := d.must("inspect", "-f", "{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}} {{.RW}}{{end}}", "holder"); out != "volume data /data true\n" {
			t.Errorf("inspect mounts: %q", out)
		}
		d.must("rm", "-f", "holder")
		d.expect(0, ptr("data\n"), "", "volume", "rm", "data")
		d.expect(1, nil, "get data: no such volume", "volume", "inspect", "data")
		d.expect(125, nil, "includes invalid characters for a local volume name", "run", "--network", "none", "--rm", "-v", "-bad:/x", "busybox", "true")
	})

	t.Run("copy from the image", func(t *testing.T) {
		d.t = t
		// A new volume mounted over a directory of the image starts with
		// its content; later mounts see the volume's own.
		out := d.must("run", "--network", "none", "--rm", "-v", "etc:/etc", "busybox", "sh", "-c", "cat /etc/passwd | head -1; echo changed > /etc/passwd")
		if !strings.HasPrefix(out, "root:x:0:0:") {
			t.Errorf("passwd in a new volume: %q", out)
		}
		d.expect(0, ptr("changed\n"), "", "run", "--network", "none", "--rm", "-v", "etc:/x", "busybox", "cat", "/x/passwd")
		// nocopy leaves it empty; the engine's /etc files still show.
		d.expect(1, nil, "/etc/passwd: No such file or directory", "run", "--network", "none", "--rm", "-v", "empty:/etc:nocopy", "busybox", "ls", "/etc/passwd")
		d.expect(0, ptr("/etc/hosts\n"), "", "run", "--network", "none", "--rm", "-v", "empty:/etc:nocopy", "busybox", "ls", "/etc/hosts")
	})

	t.Run("anonymous and mount", func(t *testing.T) {
		d.t = t
		d.must("run", "--network", "none", "--name", "anon", "-v", "/cache", "busybox", "sh", "-c", "echo x > /cache/f")
		name := strings.TrimSpace(d.must("inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}", "anon"))
		if !hex64.MatchString(name) {
			t.Fatalf("anonymous volume name %q", name)
		}
		d.expect(0, ptr(name+"\n"), "", "volume", "ls", "-q", "--filter", "label=com.docker.volume.anonymous")
		d.must("rm", "-v", "anon")
		d.expect(1, nil, "no such volume", "volume", "inspect", name)
		// --rm removes them too.
		before := d.must("volume", "ls", "-q")
		d.must("run", "--network", "none", "--rm", "-v", "/cache", "busybox", "true")
		d.expect(0, ptr(before), "", "volume", "ls", "-q")

		d.expect(0, ptr("hi\n"), "", "run", "--network", "none", "--rm", "--mount", "type=volume,source=mv,target=/m", "busybox", "sh", "-c", "echo hi > /m/f; cat /m/f")
		d.expect(1, nil, "Read-only file system", "run", "--network", "none", "--rm", "--mount", "type=volume,source=mv,target=/m,readonly", "busybox", "touch", "/m/g")
		if out := d.must("run", "--network", "none", "--rm", "--mount", "type=tmpfs,target=/t,tmpfs-size=1m", "--tmpfs", "/u:size=2m", "busybox", "sh", "-c", "grep -E ' /[tu] ' /proc/mounts | cut -d' ' -f2,3"); out != "/t tmpfs\n/u tmpfs\n" {
			t.Errorf("tmpfs mounts: %q", out)
		}
		missing := filepath.Join(t.TempDir(), "nosuch")
		d.expect(125, ptr(""), "bind source path does not exist: "+missing, "run", "--network", "none", "--rm", "--mount", "type=bind,source="+missing+",target=/b", "busybox", "true")
		host := t.TempDir()
		d.must("run", "--network", "none", "--rm", "--mount", "type=bind,source="+host+",target=/b", "busybox", "sh", "-c", "echo bound > /b/f")
		if b, _ := os.ReadFile(filepath.Join(host, "f")); string(b) != "bound\n" {
			t.Errorf("bind mount wrote %q", b)
		}
		d.expect(1, nil, "Duplicate mount point: /d", "create", "--network", "none", "-v", "a1:/d", "--tmpfs", "/d", "busybox")
	})

	t.Run("prune and restart", func(t *testing.T) {
		d.t = t
		d.must("volume", "create", "keep")
		d.must("run", "--network", "none", "--rm", "-v", "keep:/k", "busybox", "sh", "-c", "echo kept > /k/f")
		d.must("create", "--network", "none", "--name", "user", "-v", "/anon", "busybox")
		d.must("volume", "prune", "-f")
		if out := d.must("volume", "ls", "-q"); !strings.Contains(out, "keep\n") || len(strings.Fields(out)) != 5 {
			t.Errorf("after prune (user's anonymous volume, empty, etc, keep, mv): %q", out)
		}
		d.n.Stop()
		d.n.Restart()
		d.expect(0, ptr("kept\n"), "", "run", "--network", "none", "--rm", "-v", "keep:/k", "busybox", "cat", "/k/f")
		d.must("rm", "user")
		r := d.must("volume", "prune", "-af")
		if !strings.Contains(r, "keep") || !strings.Contains(r, "Total reclaimed space:") {
			t.Errorf("prune -a: %q", r)
		}
		d.expect(0, ptr(""), "", "volume", "ls", "-q")
	})
}

// tarBytes makes an archive of the given entries (a file's body is its
// name unless Linkname is set for links).
func tarBytes(t *testing.T, ents ...tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range ents {
		h.Mode = 0o644
		var body []byte
		if h.Typeflag == tar.TypeReg {
			body = []byte("pwned\n")
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	tw.Close()
	return buf.Bytes()
}

func TestDockerCp(t *testing.T) {
	skipWithoutDocker(t)
	d := startDocker(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in.txt"), []byte("into the container\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "tree/sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "tree/sub/a"), []byte("a\n"), 0o644)

	d.must("run", "--network", "none", "-d", "--name", "cp1", "-v", "cpvol:/vol", "busybox", "sleep", "100")
	d.must("cp", filepath.Join(dir, "in.txt"), "cp1:/tmp/")
	d.expect(0, ptr("into the container\n"), "", "exec", "cp1", "cat", "/tmp/in.txt")
	d.must("cp", filepath.Join(dir, "tree"), "cp1:/vol/tree")
	d.expect(0, ptr("a\n"), "", "exec", "cp1", "cat", "/vol/tree/sub/a")
	out := filepath.Join(dir, "out")
	os.MkdirAll(out, 0o755)
	d.must("cp", "cp1:/etc/passwd", out)
	if b, _ := os.ReadFile(filepath.Join(out, "passwd")); !strings.HasPrefix(string(b), "root:x:0:0") {
		t.Errorf("copied out: %q", b)
	}
	d.must("cp", "cp1:/vol/tree", filepath.Join(out, "tree"))
	if b, _ := os.ReadFile(filepath.Join(out, "tree/sub/a")); string(b) != "a\n" {
		t.Errorf("copied a directory out: %q", b)
	}
	d.expect(1, nil, "Could not find the file /nosuch in container cp1", "cp", "cp1:/nosuch", out)

	// Untrusted archives through the API.
	hc := d.api()
	put := func(path string, body []byte) (int, string) {
		req, _ := http.NewRequest(http.MethodPut, "http://docker/v1.51/containers/cp1/archive?path="+path, bytes.NewReader(body))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]string
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m["message"]
	}
	marker := "cais-cp-escape-" + strconv.Itoa(os.Getpid())
	for name, tc := range map[string]struct {
		body []byte
		msg  string
	}{
		"dot-dot": {tarBytes(t, tar.Header{Name: "../../../../tmp/" + marker, Typeflag: tar.TypeReg}), "path escapes the target directory"},
		"device":  {tarBytes(t, tar.Header{Name: "sda", Typeflag: tar.TypeBlock, Devmajor: 8}), "device nodes are not allowed"},
		"hard link out": {tarBytes(t, tar.Header{Name: "pw", Typeflag: tar.TypeLink, Linkname: "../../../etc/shadow"}),
			"path escapes the target directory"},
	} {
		code, msg := put("/tmp", tc.body)
		if code != 400 || !strings.Contains(msg, tc.msg) {
			t.Errorf("%s: %d %q, want 400 with %q", name, code, msg, tc.msg)
		}
	}
	// A symlink to / and a file through it: it lands in the container's
	// own /tmp, not the host's.
	code, msg := put("/", tarBytes(t, tar.Header{Name: "esc", Typeflag: tar.TypeSymlink, Linkname: "/"}, tar.Header{Name: "esc/tmp/" + marker, Typeflag: tar.TypeReg}))
	if code != 200 {
		t.Errorf("symlink archive: %d %s", code, msg)
	}
	if _, err := os.Stat("/tmp/" + marker); err == nil {
		os.Remove("/tmp/" + marker)
		t.Fatalf("docker cp wrote /tmp/%s on the host", marker)
	}
	d.expect(0, ptr("pwned\n"), "", "exec", "cp1", "cat", "/tmp/"+marker)
	// HEAD: the path's stat.
	req, _ := http.NewRequest(http.MethodHead, "http://docker/v1.51/containers/cp1/archive?path=/esc", nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	raw, _ := base64.StdEncoding.DecodeString(resp.Header.Get("X-Docker-Container-Path-Stat"))
	var st struct {
		Name       string `json:"name"`
		Mode       uint32 `json:"mode"`
		LinkTarget string `json:"linkTarget"`
	}
	json.Unmarshal(raw, &st)
	if resp.StatusCode != 200 || st.Name != "esc" || st.LinkTarget != "/" || os.FileMode(st.Mode)&os.ModeSymlink == 0 {
		t.Errorf("HEAD archive: %d %s", resp.StatusCode, raw)
	}
	// A stopped container: its root file system is mounted for the copy.
	d.must("stop", "-t", "0", "cp1")
	d.must("cp", filepath.Join(dir, "in.txt"), "cp1:/stopped.txt")
	r := d.run("cp", "cp1:/stopped.txt", "-")
	if r.Code != 0 || !strings.Contains(r.Stdout, "into the container") || !strings.Contains(r.Stdout, "stopped.txt") {
		t.Errorf("cp from a stopped container to stdout: %+v", r)
	}
}

func TestDockerEvents(t *testing.T) {
	skipWithoutDocker(t)
	d := startDocker(t)
	since := strconv.FormatInt(time.Now().Unix()-1, 10)

	// Live: docker events streams as things happen.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	live := exec.CommandContext(ctx, "docker", "events", "--filter", "type=volume", "--format", "{{.Type}} {{.Action}} {{.Actor.ID}}")
	live.Env = d.env
	stdout, _ := live.StdoutPipe()
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	defer live.Wait()
	defer cancel()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	time.Sleep(300 * time.Millisecond)
	d.must("volume", "create", "evvol")
	select {
	case l := <-lines:
		if l != "volume create evvol" {
			t.Errorf("live event %q", l)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("no live event within 10s")
	}

	d.expect(3, nil, "", "run", "--network", "none", "--name", "ev", "-v", "evvol:/v", "busybox", "sh", "-c", "exit 3")
	d.must("run", "--network", "none", "-d", "--name", "ev2", "busybox", "sleep", "100")
	d.must("exec", "ev2", "true")
	// sleep as PID 1 ignores SIGTERM: SIGKILL follows a second later.
	d.must("stop", "-t", "1", "ev2")
	d.must("rm", "ev", "ev2")
	until := strconv.FormatInt(time.Now().Unix()+1, 10)
	out := d.must("events", "--since", since, "--until", until, "--filter", "container=ev", "--format", `{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{index .Actor.Attributes "exitCode"}}`)
	if want := "container create ev \ncontainer start ev \ncontainer die ev 3\ncontainer destroy ev \n"; out != want {
		t.Errorf("events of ev:\n%s\nwant\n%s", out, want)
	}
	out = d.must("events", "--since", since, "--until", until, "--filter", "container=ev2", "--format", "{{.Action}}")
	if want := "create\nstart\nexec_start: true\nexec_die\nkill\nkill\ndie\nstop\ndestroy\n"; out != want {
		t.Errorf("events of ev2:\n%s\nwant\n%s", out, want)
	}
	out = d.must("events", "--since", since, "--until", until, "--filter", "type=volume", "--format", "{{.Action}} {{.Actor.ID}}")
	if want := "create evvol\nmount evvol\nunmount evvol\n"; out != want {
		t.Errorf("volume events:\n%s\nwant\n%s", out, want)
	}
	// Image events.
	d.must("tag", "busybox", "evtag:1")
	d.must("rmi", "evtag:1")
	out = d.must("events", "--since", since, "--until", strconv.FormatInt(time.Now().Unix()+1, 10), "--filter", "type=image", "--format", "{{.Action}} {{.Actor.Attributes.name}}")
	if want := "tag evtag:1\nuntag evtag:1\n"; !strings.HasSuffix(out, want) {
		t.Errorf("image events:\n%s\nwant them to end with\n%s", out, want)
	}
	d.expect(1, nil, "invalid filter 'bogus'", "events", "--since", since, "--until", until, "--filter", "bogus=1")
}

func TestDockerSystemDF(t *testing.T) {
	skipWithoutDocker(t)
	d := startDocker(t)
	d.must("run", "--network", "none", "-d", "--name", "df1", "-v", "dfvol:/v", "busybox", "sh", "-c", "head -c 100000 /dev/zero > /v/f; head -c 50000 /dev/zero > /big; sleep 100")
	d.must("create", "--network", "none", "--name", "df2", "busybox")
	clustertest.Eventually(t, 10*time.Second, func() error {
		if out := d.must("exec", "df1", "ls", "/big"); out != "/big\n" {
			return fmt.Errorf("not yet written")
		}
		return nil
	})
	out := d.must("system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}}")
	if want := "Images 1 1\nContainers 2 1\nLocal Volumes 1 1\nBuild Cache 0 0\n"; out != want {
		t.Errorf("system df:\n%s\nwant\n%s", out, want)
	}
	v := d.must("system", "df", "-v", "--format", "{{range .Volumes}}{{.Name}} {{.Size}} {{.Links}}{{end}}")
	if v != "dfvol 100kB 1" {
		t.Errorf("system df -v volumes: %q", v)
	}
	c := d.must("system", "df", "-v", "--format", "{{range .Containers}}{{.Names}}={{.Size}} {{end}}")
	if !strings.Contains(c, "df1=50kB") || !strings.Contains(c, "df2=0B") {
		t.Errorf("system df -v containers: %q", c)
	}
	// docker system prune: the stopped container goes, the running one
	// and the image it uses stay.
	id2 := strings.TrimSpace(d.must("inspect", "-f", "{{.Id}}", "df2"))
	if out := d.must("system", "prune", "-f"); !strings.Contains(out, "Deleted Containers:\n"+id2+"\n") || !strings.Contains(out, "Total reclaimed space:") {
		t.Errorf("system prune: %q", out)
	}
	d.expect(0, ptr("df1\n"), "", "ps", "-a", "--format", "{{.Names}}")
	d.expect(0, ptr("busybox\n"), "", "images", "--format", "{{.Repository}}")
}

// Two containers on two nodes of one pool share a cais volume.
func TestDockerCaisVolume(t *testing.T) {
	skipWithoutDocker(t)
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
	c := clustertest.New(t)
	nodes := c.Pool(2)
	n1, n2 := nodes[0], nodes[1]
	n1.MustCLI("volume", "create", "distvol", n1.Brick("dv1"), n2.Brick("dv2"))
	n1.MustCLI("volume", "start", "distvol")
	n1.MustCLI("volume", "create", "idle", n1.Brick("idle1"))
	d1, d2 := dockerOn(t, c, n1), dockerOn(t, c, n2)
	t.Cleanup(func() {
		// Whatever is still mounted (a failed test) must not outlive it.
		for _, n := range nodes {
			ms, _ := filepath.Glob(filepath.Join(n.DataDir, "engine", "volumes", "*", "_data"))
			for _, m := range ms {
				syscall.Unmount(m, syscall.MNT_DETACH)
			}
		}
	})

	d1.expect(0, ptr("shared\n"), "", "volume", "create", "-d", "cais", "-o", "volume=distvol", "shared")
	d2.expect(0, ptr("shared\n"), "", "volume", "create", "-d", "cais", "-o", "volume=distvol", "shared")
	d1.expect(1, nil, "cais volume nosuch does not exist", "volume", "create", "-d", "cais", "-o", "volume=nosuch", "bad1")
	d1.expect(1, nil, "cais volume idle is not started", "volume", "create", "-d", "cais", "-o", "volume=idle", "bad2")
	d1.expect(1, nil, "-o volume=NAME", "volume", "create", "-d", "cais", "bad3")

	d1.must("run", "--network", "none", "--rm", "-v", "shared:/data", "busybox", "sh", "-c", "echo written on node 1 > /data/hello")
	d2.expect(0, ptr("written on node 1\n"), "", "run", "--network", "none", "--rm", "-v", "shared:/data", "busybox", "cat", "/data/hello")
	// The file is on the pool's bricks.
	b1, _ := os.ReadFile(filepath.Join(brickPath(n1.Brick("dv1")), "hello"))
	b2, _ := os.ReadFile(filepath.Join(brickPath(n2.Brick("dv2")), "hello"))
	if string(b1)+string(b2) != "written on node 1\n" {
		t.Errorf("bricks hold %q and %q", b1, b2)
	}

	// Two containers of one node share one mount, gone after the last.
	mnt := strings.TrimSpace(d1.must("volume", "inspect", "-f", "{{.Mountpoint}}", "shared"))
	d1.must("run", "--network", "none", "-d", "--name", "a", "-v", "shared:/data", "busybox", "sleep", "100")
	d1.must("run", "--network", "none", "-d", "--name", "b", "-v", "shared:/data", "busybox", "sleep", "100")
	if n := fuseMounts(t, mnt); n != 1 {
		t.Errorf("%d FUSE mounts at %s with two containers, want 1", n, mnt)
	}
	d2.must("run", "--network", "none", "--rm", "-v", "shared:/data", "busybox", "sh", "-c", "echo from node 2 > /data/back")
	d1.expect(0, ptr("from node 2\n"), "", "exec", "b", "cat", "/data/back")
	d1.must("rm", "-f", "a")
	if n := fuseMounts(t, mnt); n != 1 {
		t.Errorf("%d FUSE mounts with one container left, want 1", n)
	}
	d1.must("rm", "-f", "b")
	if n := fuseMounts(t, mnt); n != 0 {
		t.Errorf("%d FUSE mounts after the last container, want 0", n)
	}
	d1.must("volume", "rm", "shared")
	// The pool volume keeps its files.
	if b, _ := os.ReadFile(filepath.Join(brickPath(n1.Brick("dv1")), "back")); len(b) == 0 {
		if b, _ = os.ReadFile(filepath.Join(brickPath(n2.Brick("dv2")), "back")); string(b) != "from node 2\n" {
			t.Errorf("back on the bricks: %q", b)
		}
	}
}

// fuseMounts counts the cais FUSE mounts at mnt.
func fuseMounts(t *testing.T, mnt string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && f[4] == mnt && strings.Contains(l, "fuse.cais") {
			n++
		}
	}
	return n
}
