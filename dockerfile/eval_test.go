package dockerfile

import (
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/cais-platform/cais/errdefs"
)

func evaluator(t *testing.T, src string, args map[string]string) *Evaluator {
	t.Helper()
	df, err := ParseStages(mustParse(t, src))
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEvaluator(df, args)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

const multiStage = `ARG GO=1.22
ARG UNUSED_META
FROM golang:${GO} AS build
ARG GO
ARG VERSION=dev
ENV CGO_ENABLED=0 GOFLAGS="-trimpath"
WORKDIR /src
WORKDIR app
COPY --chown=${VERSION}:0 go.mod *.go ./
RUN go build -ldflags "-X main.v=$VERSION" -o /out/app .
FROM scratch
COPY --from=build /out/app /app
COPY --from=0 /etc/ssl/certs/ /etc/ssl/certs/
COPY --from=alpine:3 /bin/busybox bin/
EXPOSE 8080 9000-9001/udp
ENV PATH=/usr/bin:/bin
USER ${UID:-1000}
LABEL org.opencontainers.image.version="${VERSION:-none}" a=b
VOLUME /data
STOPSIGNAL SIGINT
HEALTHCHECK --interval=10s --retries=3 CMD ["/app", "health"]
ENTRYPOINT ["/app"]
CMD ["serve"]
`

func TestEvalMultiStage(t *testing.T) {
	e := evaluator(t, multiStage, map[string]string{"VERSION": "1.2.3", "GO": "1.23", "NOPE": "x", "HTTP_PROXY": "http://proxy"})
	name, _, stage, err := e.Base(0)
	if err != nil || name != "golang:1.23" || stage != -1 {
		t.Fatalf("Base(0) = %q %d %v", name, stage, err)
	}
	base := Config{Env: []string{"PATH=/go/bin:/usr/bin", "GOLANG_VERSION=1.23"}, Cmd: []string{"bash"}, WorkingDir: "/go"}
	p0, err := e.Eval(0, base)
	if err != nil {
		t.Fatal(err)
	}
	if p0.Name != "build" || p0.Config.WorkingDir != "/src/app" {
		t.Errorf("stage 0: name %q workdir %q", p0.Name, p0.Config.WorkingDir)
	}
	wantEnv := []string{"PATH=/go/bin:/usr/bin", "GOLANG_VERSION=1.23", "CGO_ENABLED=0", "GOFLAGS=-trimpath"}
	if !slices.Equal(p0.Config.Env, wantEnv) {
		t.Errorf("env = %q", p0.Config.Env)
	}
	var kinds []StepKind
	for _, s := range p0.Steps {
		kinds = append(kinds, s.Kind)
	}
	if !slices.Equal(kinds, []StepKind{StepConfig, StepConfig, StepConfig, StepWorkdir, StepWorkdir, StepCopy, StepRun}) {
		t.Errorf("kinds = %v", kinds)
	}
	cp := p0.Steps[5].Copy
	if !slices.Equal(cp.Sources, []string{"go.mod", "*.go"}) || cp.Dest != "/src/app/" || cp.Chown != "1.2.3:0" || cp.FromStage != -1 {
		t.Errorf("copy = %+v", cp)
	}
	run := p0.Steps[6]
	if !slices.Equal(run.Args, []string{"/bin/sh", "-c", `go build -ldflags "-X main.v=$VERSION" -o /out/app .`}) {
		t.Errorf("run args = %q", run.Args)
	}
	if !slices.Equal(run.Env, append(slices.Clone(wantEnv), "GO=1.23", "VERSION=1.2.3", "HTTP_PROXY=http://proxy")) {
		t.Errorf("run env = %q", run.Env)
	}
	if !strings.HasPrefix(run.CreatedBy, "|2 GO=1.23 VERSION=1.2.3 /bin/sh -c go build") {
		t.Errorf("created by = %q", run.CreatedBy)
	}
	if p0.Steps[0].Config.WorkingDir != "/go" || p0.Steps[3].Config.WorkingDir != "/src" {
		t.Error("per-step configs are not snapshots")
	}

	name, _, stage, err = e.Base(1)
	if err != nil || name != "scratch" || stage != -1 {
		t.Fatalf("Base(1) = %q %d %v", name, stage, err)
	}
	p1, err := e.Eval(1, Config{})
	if err != nil {
		t.Fatal(err)
	}
	copies := []*CopySpec{p1.Steps[0].Copy, p1.Steps[1].Copy, p1.Steps[2].Copy}
	if copies[0].FromStage != 0 || copies[0].Dest != "/app" || copies[1].FromStage != 0 || copies[1].Dest != "/etc/ssl/certs/" ||
		copies[2].FromStage != -1 || copies[2].FromImage != "alpine:3" || copies[2].Dest != "/bin/" {
		t.Errorf("copies = %+v %+v %+v", copies[0], copies[1], copies[2])
	}
	c := p1.Config
	wantPorts := map[string]struct{}{"8080/tcp": {}, "9000/udp": {}, "9001/udp": {}}
	if !maps.Equal(c.ExposedPorts, wantPorts) {
		t.Errorf("ports = %v", c.ExposedPorts)
	}
	if c.User != "1000" || c.Labels["org.opencontainers.image.version"] != "none" || c.Labels["a"] != "b" {
		t.Errorf("user %q labels %v (VERSION is not declared in this stage)", c.User, c.Labels)
	}
	if _, ok := c.Volumes["/data"]; !ok || c.StopSignal != "SIGINT" {
		t.Errorf("volumes %v stopsignal %q", c.Volumes, c.StopSignal)
	}
	if h := c.Healthcheck; h == nil || !slices.Equal(h.Test, []string{"CMD", "/app", "health"}) || h.Interval.Seconds() != 10 || h.Retries != 3 {
		t.Errorf("healthcheck %+v", c.Healthcheck)
	}
	if !slices.Equal(c.Entrypoint, []string{"/app"}) || !slices.Equal(c.Cmd, []string{"serve"}) {
		t.Errorf("entrypoint %q cmd %q", c.Entrypoint, c.Cmd)
	}
	if got := e.UnusedArgs(); !slices.Equal(got, []string{"NOPE"}) {
		t.Errorf("unused = %q", got)
	}
}

func TestEvalSemantics(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		args  map[string]string
		base  Config
		check func(t *testing.T, p *StagePlan)
	}{
		{name: "entrypoint resets inherited cmd", src: "FROM a\nENTRYPOINT [\"x\"]\n", base: Config{Cmd: []string{"sh"}},
			check: func(t *testing.T, p *StagePlan) {
				if p.Config.Cmd != nil {
					t.Errorf("cmd = %q", p.Config.Cmd)
				}
			}},
		{name: "entrypoint keeps own cmd", src: "FROM a\nCMD [\"y\"]\nENTRYPOINT x\n",
			check: func(t *testing.T, p *StagePlan) {
				if !slices.Equal(p.Config.Cmd, []string{"y"}) || !slices.Equal(p.Config.Entrypoint, []string{"/bin/sh", "-c", "x"}) {
					t.Errorf("cmd %q entrypoint %q", p.Config.Cmd, p.Config.Entrypoint)
				}
			}},
		{name: "shell", src: "FROM a\nSHELL [\"/bin/bash\", \"-ec\"]\nRUN echo hi\nCMD echo\n",
			check: func(t *testing.T, p *StagePlan) {
				if !slices.Equal(p.Steps[1].Args, []string{"/bin/bash", "-ec", "echo hi"}) || !slices.Equal(p.Config.Cmd, []string{"/bin/bash", "-ec", "echo"}) {
					t.Errorf("run %q cmd %q", p.Steps[1].Args, p.Config.Cmd)
				}
			}},
		{name: "env overrides arg", src: "FROM a\nARG V=arg\nENV V=env\nRUN x\nLABEL v=$V\n",
			check: func(t *testing.T, p *StagePlan) {
				if p.Config.Labels["v"] != "env" || slices.Contains(p.Steps[2].Env, "V=arg") {
					t.Errorf("labels %v env %q", p.Config.Labels, p.Steps[2].Env)
				}
			}},
		{name: "meta arg needs redeclaring", src: "ARG M=meta\nFROM a\nLABEL before=${M:-unset}\nARG M\nLABEL after=$M\n",
			check: func(t *testing.T, p *StagePlan) {
				if p.Config.Labels["before"] != "unset" || p.Config.Labels["after"] != "meta" {
					t.Errorf("labels %v", p.Config.Labels)
				}
			}},
		{name: "build arg wins over default", src: "FROM a\nARG V=def\nWORKDIR /$V\n", args: map[string]string{"V": "cli"},
			check: func(t *testing.T, p *StagePlan) {
				if p.Config.WorkingDir != "/cli" {
					t.Errorf("workdir %q", p.Config.WorkingDir)
				}
			}},
		{name: "env from base expands", src: "FROM a\nENV PATH=$PATH:/x\nWORKDIR $HOME/w\n", base: Config{Env: []string{"PATH=/bin", "HOME=/root"}},
			check: func(t *testing.T, p *StagePlan) {
				if v, _ := p.Config.GetEnv("PATH"); v != "/bin:/x" || p.Config.WorkingDir != "/root/w" {
					t.Errorf("PATH %q workdir %q", v, p.Config.WorkingDir)
				}
			}},
		{name: "env legacy form", src: "FROM a\nENV GREETING hello  world\n",
			check: func(t *testing.T, p *StagePlan) {
				if v, _ := p.Config.GetEnv("GREETING"); v != "hello  world" {
					t.Errorf("GREETING %q", v)
				}
			}},
		{name: "onbuild triggers of base run first", src: "FROM a\nRUN b\nONBUILD RUN c\n", base: Config{OnBuild: []string{"COPY . /app", "RUN make"}},
			check: func(t *testing.T, p *StagePlan) {
				if p.Steps[0].Kind != StepCopy || p.Steps[0].Copy.Dest != "/app" || !slices.Equal(p.Steps[1].Args, []string{"/bin/sh", "-c", "make"}) {
					t.Errorf("steps %+v", p.Steps[:2])
				}
				if !slices.Equal(p.Config.OnBuild, []string{"RUN c"}) {
					t.Errorf("onbuild %q", p.Config.OnBuild)
				}
			}},
		{name: "healthcheck shell and none", src: "FROM a\nHEALTHCHECK CMD curl x\n",
			check: func(t *testing.T, p *StagePlan) {
				if !slices.Equal(p.Config.Healthcheck.Test, []string{"CMD-SHELL", "curl x"}) {
					t.Errorf("test %q", p.Config.Healthcheck.Test)
				}
			}},
		{name: "copy dest relative and dot", src: "FROM a\nWORKDIR /w\nCOPY a .\nCOPY b c\nADD --chmod=755 http://x/y /\n",
			check: func(t *testing.T, p *StagePlan) {
				if p.Steps[1].Copy.Dest != "/w/" || p.Steps[2].Copy.Dest != "/w/c" || p.Steps[3].Copy.Dest != "/" || !p.Steps[3].Copy.Add || p.Steps[3].Copy.Chmod != "755" {
					t.Errorf("dests %q %q %+v", p.Steps[1].Copy.Dest, p.Steps[2].Copy.Dest, p.Steps[3].Copy)
				}
			}},
		{name: "maintainer", src: "FROM a\nMAINTAINER me <me@x>\n",
			check: func(t *testing.T, p *StagePlan) {
				if p.Author != "me <me@x>" {
					t.Errorf("author %q", p.Author)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := evaluator(t, tt.src, tt.args)
			p, err := e.Eval(0, tt.base)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, p)
		})
	}
}

func TestEvalErrors(t *testing.T) {
	tests := []struct{ src, want string }{
		{"FROM a\nWORKDIR ${X:?need X}\n", "dockerfile line 2: WORKDIR: X: need X"},
		{"FROM a\nEXPOSE 99999\n", "dockerfile line 2: EXPOSE: invalid containerPort: 99999: invalid request"},
		{"FROM a\nEXPOSE 80/xyz\n", "dockerfile line 2: EXPOSE: invalid proto: xyz: invalid request"},
		{"FROM a\nSTOPSIGNAL SIGFOO\n", "dockerfile line 2: STOPSIGNAL: Invalid signal: SIGFOO: invalid request"},
		{"FROM a AS x\nCOPY --from=x a b\n", "dockerfile line 2: COPY: x refers to the current stage: invalid request"},
		{"FROM a\nCOPY --chmod=99 a b\n", `dockerfile line 2: COPY: invalid chmod parameter "99": invalid request`},
		{"FROM ${NONE}\n", "dockerfile line 1: FROM: base name (${NONE}) should not be blank: invalid request"},
		{"FROM a\nLABEL a=\"open\n", "dockerfile line 2: LABEL: unexpected end of statement while looking for matching double-quote"},
	}
	for _, tt := range tests {
		e := evaluator(t, tt.src, nil)
		_, err := e.Eval(0, Config{})
		if err == nil || err.Error() != tt.want || !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%q: error = %v, want %q", tt.src, err, tt.want)
		}
	}
	// A broken ONBUILD trigger in the base image.
	e := evaluator(t, "FROM a\n", nil)
	if _, err := e.Eval(0, Config{OnBuild: []string{"BOGUS x"}}); err == nil || !strings.Contains(err.Error(), "unknown instruction: BOGUS") {
		t.Errorf("bad trigger: %v", err)
	}
}

func TestParsePorts(t *testing.T) {
	got, err := ParsePorts("8000-8002/UDP")
	if err != nil || !slices.Equal(got, []string{"8000/udp", "8001/udp", "8002/udp"}) {
		t.Errorf("ParsePorts = %q %v", got, err)
	}
	for _, bad := range []string{"", "0", "a", "2-1", "1-99999", "1-65535"} {
		if _, err := ParsePorts(bad); err == nil {
			t.Errorf("ParsePorts(%q) accepted", bad)
		}
	}
}

func TestEvalPortsBounded(t *testing.T) {
	e := evaluator(t, "FROM a\nEXPOSE"+strings.Repeat(" 1-4000", 5)+"\n", nil)
	if _, err := e.Eval(0, Config{}); err == nil || !strings.Contains(err.Error(), "exposed ports") {
		t.Errorf("many ports: %v", err)
	}
}

func TestParseManyContinuations(t *testing.T) {
	src := "FROM a\nRUN x" + strings.Repeat(" \\\ny", 200000) + "\n"
	res := mustParse(t, src)
	if n := res.Nodes[1]; n.EndLine != 200002 || len(n.Args[0]) != 1+200000*2 {
		t.Errorf("end line %d, len %d", n.EndLine, len(n.Args[0]))
	}
}

func TestPlatformArgs(t *testing.T) {
	e := evaluator(t, "FROM --platform=$BUILDPLATFORM golang AS b\nARG TARGETARCH\nENV A=$TARGETARCH B=${BUILDOS:-none}\n", nil)
	_, platform, _, err := e.Base(0)
	if err != nil || platform != "linux/"+runtime.GOARCH {
		t.Fatalf("platform %q %v", platform, err)
	}
	p, err := e.Eval(0, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := p.Config.GetEnv("A"); a != runtime.GOARCH {
		t.Errorf("A = %q", a)
	}
	if b, _ := p.Config.GetEnv("B"); b != "none" {
		t.Errorf("B = %q: BUILDOS was not declared in the stage", b)
	}
}

func TestParseInstructionLimit(t *testing.T) {
	if _, err := Parse(strings.NewReader("FROM a\n" + strings.Repeat("RUN x\n", MaxInstructions-1))); err != nil {
		t.Errorf("at the limit: %v", err)
	}
	_, err := Parse(strings.NewReader("FROM a\n" + strings.Repeat("RUN x\n", MaxInstructions)))
	if err == nil || err.Error() != fmt.Sprintf("dockerfile parse error line %d: more than %d instructions", MaxInstructions+1, MaxInstructions) {
		t.Errorf("over the limit: %v", err)
	}
}
