package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// buildContext writes files (name -> content; a "->" prefix makes a
// symlink) into a new directory.
func buildContext(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(content, "->"); ok {
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// tarOf is a tar archive of the given files.
func tarOf(t *testing.T, files map[string]string) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, content := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(content))
	}
	tw.Close()
	return buf.String()
}

var builtRE = regexp.MustCompile(`Successfully built ([0-9a-f]{12})`)

func builtID(t *testing.T, out string) string {
	t.Helper()
	m := builtRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no 'Successfully built' in the output:\n%s", out)
	}
	return m[1]
}

func TestDockerBuild(t *testing.T) {
	d := startDocker(t)

	t.Run("every instruction, then the cache", func(t *testing.T) {
		d.t = t
		ctx := buildContext(t, map[string]string{
			"Dockerfile": `ARG BASE=busybox
FROM ${BASE} AS base
LABEL org.example.test="build"
ARG GREETING=hello
ENV APP_HOME=/app MSG="${GREETING} world"
WORKDIR $APP_HOME
COPY hello.txt ./
COPY dir/ sub/
ADD files.tar /opt/
COPY . /ctx/
RUN echo "built by RUN" > run.txt && rm /etc/group && echo "step output"
RUN ["/bin/sh", "-c", "echo exec form > exec.txt"]
EXPOSE 8080/tcp
VOLUME /data
USER nobody
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo $MSG; pwd; id -u; cat hello.txt run.txt exec.txt sub/inner.txt /opt/fromtar.txt; ls /ctx; test -e /etc/group || echo no group"]
`,
			".dockerignore": "ignored.txt\n",
			"hello.txt":     "hello from the context\n",
			"ignored.txt":   "must not be sent\n",
			"dir/inner.txt": "inner file\n",
			"files.tar":     tarOf(t, map[string]string{"fromtar.txt": "unpacked by ADD\n"}),
		})
		out := d.must("build", "-t", "buildall", ctx)
		for _, want := range []string{"Step 1/17 : ARG BASE=busybox", "Step 2/17 : FROM ${BASE} AS base", "step output", " ---> Running in ", " ---> Removed intermediate container ", "Successfully tagged buildall:latest"} {
			if !strings.Contains(out, want) {
				t.Errorf("docker build output lacks %q:\n%s", want, out)
			}
		}
		id := builtID(t, out)
		if strings.Contains(out, "Using cache") {
			t.Errorf("the first build used the cache:\n%s", out)
		}
		iid := filepath.Join(t.TempDir(), "iid")
		out2 := d.must("build", "--iidfile", iid, "-t", "buildall", ctx)
		if n := strings.Count(out2, " ---> Using cache"); n != 15 {
			t.Errorf("the second build used the cache %d times, want 15:\n%s", n, out2)
		}
		if id2 := builtID(t, out2); id2 != id {
			t.Errorf("the second build made %s, the first %s", id2, id)
		}
		// The CLI takes the ID from the stream's aux message.
		if b, _ := os.ReadFile(iid); !regexp.MustCompile(`^sha256:` + id + `[0-9a-f]{52}$`).Match(b) {
			t.Errorf("--iidfile holds %q, want the ID of %s", b, id)
		}
		got := d.must("run", "--rm", "buildall")
		want := "hello world\n/app\n65534\nhello from the context\nbuilt by RUN\nexec form\ninner file\nunpacked by ADD\nDockerfile\ndir\nfiles.tar\nhello.txt\nno group\n"
		if got != want {
			t.Errorf("docker run buildall printed\n%q, want\n%q", got, want)
		}
		var insp []struct {
			Config struct {
				ExposedPorts map[string]any
				Volumes      map[string]any
				Labels       map[string]string
				User         string
				WorkingDir   string
			}
		}
		if err := json.Unmarshal([]byte(d.must("image", "inspect", "buildall")), &insp); err != nil || len(insp) != 1 {
			t.Fatalf("image inspect: %v", err)
		}
		c := insp[0].Config
		if c.ExposedPorts["8080/tcp"] == nil || c.Volumes["/data"] == nil || c.Labels["org.example.test"] != "build" || c.User != "nobody" || c.WorkingDir != "/app" {
			t.Errorf("image config %+v", c)
		}
		// The steps after VOLUME left no anonymous volume behind.
		if vols := d.must("volume", "ls", "-q"); vols != "" {
			t.Errorf("the builds left volumes: %q", vols)
		}
		// A changed file misses the cache from its COPY on.
		os.WriteFile(filepath.Join(ctx, "hello.txt"), []byte("changed\n"), 0o644)
		out3 := d.must("build", "-t", "buildall", ctx)
		if n := strings.Count(out3, " ---> Using cache"); n != 4 {
			t.Errorf("after a change the build used the cache %d times, want 4 (LABEL, ARG, ENV, WORKDIR):\n%s", n, out3)
		}
	})

	t.Run("options and the other instructions", func(t *testing.T) {
		d.t = t
		ctx := buildContext(t, map[string]string{
			"build/other.Dockerfile": `FROM busybox AS first
SHELL ["/bin/sh", "-e", "-c"]
MAINTAINER someone@example.com
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s CMD true
ONBUILD RUN echo triggered by the child
COPY --chown=nobody:nogroup --chmod=750 wild*.txt /w/
FROM busybox AS second
RUN false
`,
			"wild1.txt": "1", "wild2.txt": "2", "other.txt": "not copied",
		})
		iid := filepath.Join(t.TempDir(), "iid")
		out := d.must("build", "-q", "--iidfile", iid, "--no-cache", "--target", "first", "--label", "team=storage", "-f", filepath.Join(ctx, "build/other.Dockerfile"), "-t", "opts", ctx)
		if !strings.HasPrefix(strings.TrimSpace(out), "sha256:") || strings.Contains(out, "Step") {
			t.Errorf("docker build -q printed %q", out)
		}
		// With -q the CLI writes what it printed, as with Docker.
		if b, err := os.ReadFile(iid); err != nil || strings.TrimSpace(string(b)) != strings.TrimSpace(out) {
			t.Errorf("--iidfile holds %q (%v), -q printed %q", b, err, out)
		}
		if got := d.must("run", "--rm", "opts", "sh", "-c", "stat -c '%U:%G %a %n' /w/*"); got != "nobody:nogroup 750 /w/wild1.txt\nnobody:nogroup 750 /w/wild2.txt\n" {
			t.Errorf("the copied files: %q", got)
		}
		var insp []struct {
			Author string
			Config struct {
				StopSignal  string
				Shell       []string
				OnBuild     []string
				Labels      map[string]string
				Healthcheck struct {
					Test     []string
					Interval time.Duration
				}
			}
		}
		if err := json.Unmarshal([]byte(d.must("image", "inspect", "opts")), &insp); err != nil || len(insp) != 1 {
			t.Fatalf("image inspect: %v", err)
		}
		c := insp[0].Config
		if insp[0].Author != "someone@example.com" || c.StopSignal != "SIGINT" || strings.Join(c.Shell, " ") != "/bin/sh -e -c" ||
			strings.Join(c.OnBuild, ";") != "RUN echo triggered by the child" || c.Labels["team"] != "storage" ||
			strings.Join(c.Healthcheck.Test, " ") != "CMD-SHELL true" || c.Healthcheck.Interval != 5*time.Second {
			t.Errorf("image %+v", insp[0])
		}
		child := buildContext(t, map[string]string{"Dockerfile": "FROM opts\nCMD [\"true\"]\n"})
		if out := d.must("build", child); !strings.Contains(out, "Step 1/2 : FROM opts\n# Executing 1 build trigger\n ---> Running in ") ||
			!strings.Contains(out, "triggered by the child") || !strings.Contains(out, "Step 2/2 : CMD") {
			t.Errorf("the ONBUILD trigger did not run as part of FROM:\n%s", out)
		}
	})

	t.Run("multi-stage", func(t *testing.T) {
		d.t = t
		ctx := buildContext(t, map[string]string{"Dockerfile": `FROM busybox AS compile
RUN mkdir -p /out && echo compiled > /out/app.txt
FROM scratch
COPY --from=compile /out/app.txt /app.txt
COPY --from=compile /bin/busybox /bin/busybox
COPY --from=busybox /etc/group /group
CMD ["/bin/busybox", "cat", "/app.txt"]
`})
		d.must("build", "-t", "multistage:v1", ctx)
		if got := d.must("run", "--rm", "multistage:v1"); got != "compiled\n" {
			t.Errorf("docker run multistage printed %q", got)
		}
		hist := strings.Split(strings.TrimSpace(d.must("history", "--no-trunc", "--format", "{{.Size}} {{.CreatedBy}}", "multistage:v1")), "\n")
		if got := d.must("run", "--rm", "multistage:v1", "/bin/busybox", "cat", "/group"); got != "root:x:0:\nnogroup:x:65534:\n" {
			t.Errorf("COPY --from=busybox copied %q", got)
		}
		if len(hist) != 4 || !strings.HasPrefix(hist[0], "0B ") || !strings.Contains(hist[2], "MB /bin/sh -c #(nop) COPY /bin/busybox in /bin/busybox") || !strings.Contains(hist[3], "kB /bin/sh -c #(nop) COPY /out/app.txt in /app.txt") {
			t.Errorf("history of the scratch image: %q", hist)
		}
	})

	t.Run("failing RUN", func(t *testing.T) {
		d.t = t
		ctx := buildContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN echo before\nRUN false\n"})
		r := d.expect(1, nil, "The command '/bin/sh -c false' returned a non-zero code: 1", "build", ctx)
		if !strings.Contains(r.Stdout, "Step 3/3 : RUN false") {
			t.Errorf("stdout %q", r.Stdout)
		}
	})

	t.Run("a failed build keeps its cache", func(t *testing.T) {
		d.t = t
		ctx := buildContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN echo one > /one\nRUN exit 3\n"})
		d.expect(3, nil, "The command '/bin/sh -c exit 3' returned a non-zero code: 3", "build", ctx)
		os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte("FROM busybox\nRUN echo one > /one\nRUN cat /one\n"), 0o644)
		out := d.must("build", ctx)
		if n := strings.Count(out, " ---> Using cache"); n != 1 {
			t.Errorf("the build after the fix used the cache %d times, want 1:\n%s", n, out)
		}
		// A RUN that changes no file adds no layer.
		if sizes := strings.Fields(d.must("history", "--format", "{{.Size}}", builtID(t, out))); len(sizes) < 2 || sizes[0] != "0B" || sizes[1] == "0B" {
			t.Errorf("layer sizes %q: want 0B for 'RUN cat /one', more for 'RUN echo one > /one'", sizes)
		}
	})

	t.Run("ADD from a URL", func(t *testing.T) {
		d.t = t
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "fetched over http\n")
		}))
		defer srv.Close()
		ctx := buildContext(t, map[string]string{"Dockerfile": "FROM busybox\nADD " + srv.URL + "/files/remote.txt /srv/\nCMD [\"sh\", \"-c\", \"cat /srv/remote.txt; stat -c %a /srv/remote.txt\"]\n"})
		d.must("build", "-t", "addurl", ctx)
		if got := d.must("run", "--rm", "addurl"); got != "fetched over http\n600\n" {
			t.Errorf("docker run addurl printed %q", got)
		}
	})

	t.Run("unknown instruction", func(t *testing.T) {
		d.t = t
		ctx := buildContext(t, map[string]string{"Dockerfile": "FROM busybox\nFOO bar\n"})
		d.expect(1, nil, "unknown instruction: FOO", "build", ctx)
	})

	t.Run("escaping context", func(t *testing.T) {
		d.t = t
		ctx := buildContext(t, map[string]string{"Dockerfile": "FROM busybox\nCOPY etc/passwd /stolen\n", "etc": "->/etc"})
		d.expect(1, nil, "absolute symlinks are not allowed in the build context", "build", ctx)
		ctx = buildContext(t, map[string]string{"Dockerfile": "FROM busybox\nCOPY ../secret /stolen\n"})
		d.expect(1, nil, "forbidden path outside the build context: ../secret", "build", ctx)
		// A raw API client sending "../" entries.
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, e := range []struct{ name, body string }{{"Dockerfile", "FROM busybox\n"}, {"../escaped", "x"}} {
			tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg})
			tw.Write([]byte(e.body))
		}
		tw.Close()
		hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", d.socket)
		}}, Timeout: 30 * time.Second}
		resp, err := hc.Post("http://docker/v1.44/build?t=escape", "application/x-tar", &buf)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "forbidden path outside the build context") {
			t.Errorf("POST /build with ../escaped: %s %s", resp.Status, body)
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(d.socket), "escaped")); err == nil {
			t.Error("the context wrote outside its directory")
		}
	})

	t.Run("commit", func(t *testing.T) {
		d.t = t
		d.must("run", "--name", "tocommit", "busybox", "sh", "-c", "echo committed > /committed.txt && rm /etc/passwd")
		id := strings.TrimSpace(d.must("commit", "-m", "saved by the test", "-a", "Tess Ter", "-c", `CMD ["cat", "/committed.txt"]`, "-c", "ENV COMMITTED=yes", "tocommit", "committed:v1"))
		if !strings.HasPrefix(id, "sha256:") {
			t.Errorf("docker commit printed %q", id)
		}
		if got := d.must("history", "--no-trunc", "--format", "{{.Comment}}|{{.CreatedBy}}", "committed:v1"); !strings.HasPrefix(got, "saved by the test|sh -c echo committed > /committed.txt && rm /etc/passwd\n") {
			t.Errorf("history of the committed image: %q", got)
		}
		if got := strings.TrimSpace(d.must("image", "inspect", "-f", "{{.Author}}", "committed:v1")); got != "Tess Ter" {
			t.Errorf("author %q", got)
		}
		if got := d.must("run", "--rm", "committed:v1"); got != "committed\n" {
			t.Errorf("docker run committed:v1 printed %q", got)
		}
		if got := d.must("run", "--rm", "committed:v1", "sh", "-c", "echo $COMMITTED; test -e /etc/passwd || echo passwd gone"); got != "yes\npasswd gone\n" {
			t.Errorf("docker run committed:v1 sh printed %q", got)
		}
		d.expect(1, nil, "No such container: nosuch", "commit", "nosuch", "x:y")
	})

	d.t = t
	d.must("version")
}

// A base image missing from the store is pulled, with the credentials of
// docker login.
func TestDockerBuildPull(t *testing.T) {
	d, reg := startDockerRegistry(t)
	if r := d.cmd(strings.NewReader("s3cret\n"), "login", reg, "-u", "alice", "--password-stdin"); r.Code != 0 {
		t.Fatalf("docker login: %+v", r)
	}
	base := reg + "/base/bb:1"
	d.must("tag", "busybox", base)
	d.must("push", base)
	d.must("rmi", base)
	ctx := buildContext(t, map[string]string{"Dockerfile": "FROM " + base + "\nRUN echo pulled base > /base.txt\nCMD [\"cat\", \"/base.txt\"]\n"})
	out := d.must("build", "-t", "frompulled", ctx)
	if !strings.Contains(out, "Status: Downloaded newer image for "+base) {
		t.Errorf("the build did not pull its base:\n%s", out)
	}
	if got := d.must("run", "--rm", "frompulled"); got != "pulled base\n" {
		t.Errorf("docker run frompulled printed %q", got)
	}
	// --pull pulls again even though the image is there now.
	if out := d.must("build", "--pull", "-t", "frompulled", ctx); !strings.Contains(out, "Status: Image is up to date for "+base) {
		t.Errorf("--pull did not pull:\n%s", out)
	}
}

// docker builder prune empties the layer cache.
func TestDockerBuilderPrune(t *testing.T) {
	d := startDocker(t)
	ctx := buildContext(t, map[string]string{"Dockerfile": "FROM busybox\nENV A=1\nRUN echo one > /one\n"})
	d.must("build", ctx)
	if out := d.must("build", ctx); strings.Count(out, "Using cache") != 2 {
		t.Fatalf("the second build did not use the cache:\n%s", out)
	}
	if out := d.must("builder", "prune", "-f"); !strings.Contains(out, "Total reclaimed space:") || strings.Contains(out, "Total reclaimed space: 0B") {
		t.Errorf("docker builder prune printed %q", out)
	}
	if out := d.must("build", ctx); strings.Contains(out, "Using cache") {
		t.Errorf("the build after the prune used the cache:\n%s", out)
	}
}
