package dockerapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cais-platform/cais/engine"
	"github.com/cais-platform/cais/errdefs"
)

// createJSON is the body docker 28 sends for
// docker run -d --name web -e A=1 --memory 20m --cpus 0.5 --pids-limit 10 -v /srv:/data:ro --restart on-failure:3 -p 8080:80 busybox sleep 100
const createJSON = `{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,
"ExposedPorts":{"80/tcp":{}},"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":["A=1"],"Cmd":["sleep","100"],
"Image":"busybox","Volumes":{},"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":{},
"HostConfig":{"Binds":["/srv:/data:ro"],"ContainerIDFile":"","LogConfig":{"Type":"","Config":{}},"NetworkMode":"bridge",
"PortBindings":{"80/tcp":[{"HostIp":"","HostPort":"8080"}]},"RestartPolicy":{"Name":"on-failure","MaximumRetryCount":3},
"AutoRemove":false,"VolumeDriver":"","VolumesFrom":null,"ConsoleSize":[40,120],"CapAdd":null,"CapDrop":null,"CgroupnsMode":"",
"Dns":[],"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,"GroupAdd":null,"IpcMode":"","Cgroup":"","Links":null,"OomScoreAdj":0,
"PidMode":"","Privileged":false,"PublishAllPorts":false,"ReadonlyRootfs":false,"SecurityOpt":null,"UTSMode":"","UsernsMode":"",
"ShmSize":0,"Isolation":"","CpuShares":0,"Memory":20971520,"NanoCpus":500000000,"CgroupParent":"","BlkioWeight":0,
"BlkioWeightDevice":[],"BlkioDeviceReadBps":[],"BlkioDeviceWriteBps":[],"BlkioDeviceReadIOps":[],"BlkioDeviceWriteIOps":[],
"CpuPeriod":0,"CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":"","Devices":[],
"DeviceCgroupRules":null,"DeviceRequests":null,"MemoryReservation":0,"MemorySwap":0,"MemorySwappiness":null,
"OomKillDisable":null,"PidsLimit":10,"Ulimits":[],"CpuCount":0,"CpuPercent":0,"IOMaximumIOps":0,"IOMaximumBandwidth":0,
"MaskedPaths":null,"ReadonlyPaths":null},"NetworkingConfig":{"EndpointsConfig":{}}}`

func TestDecodeCreate(t *testing.T) {
	req, err := DecodeCreate("web", []byte(createJSON))
	if err != nil {
		t.Fatal(err)
	}
	h := req.HostConfig
	if req.Name != "web" || req.Config.Image != "busybox" || !slices.Equal(req.Config.Cmd, []string{"sleep", "100"}) || !slices.Equal(req.Config.Env, []string{"A=1"}) {
		t.Errorf("config %+v", req.Config)
	}
	if h.Memory != 20<<20 || h.NanoCPUs != 5e8 || *h.PidsLimit != 10 || h.RestartPolicy.Name != "on-failure" || h.RestartPolicy.MaximumRetryCount != 3 {
		t.Errorf("host config %+v", h)
	}
	if h.PortBindings["80/tcp"][0].HostPort != "8080" || !slices.Equal(h.Binds, []string{"/srv:/data:ro"}) || h.ConsoleSize != [2]uint{40, 120} {
		t.Errorf("ports %+v binds %v", h.PortBindings, h.Binds)
	}
	// The create request makes a spec with those limits.
	spec, err := engine.Spec(engine.SpecInput{ID: "abc", Config: req.Config, Host: h, NoFile: engine.Rlimit{Hard: 1024}})
	if err != nil {
		t.Fatal(err)
	}
	if *spec.Linux.Resources.Memory.Limit != 20<<20 || *spec.Linux.Resources.CPU.Quota != 50000 || *spec.Linux.Resources.Pids.Limit != 10 {
		t.Errorf("resources %+v", spec.Linux.Resources)
	}
	for _, bad := range []struct{ name, body string }{
		{"web", `{"Image":`},
		{"web", `[]`},
		{"bad name!", `{"Image":"busybox"}`},
		{"web", `{"Image":"busybox","HostConfig":{"Memory":-1}}`},
	} {
		if _, err := DecodeCreate(bad.name, []byte(bad.body)); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%s %s: %v", bad.name, bad.body, err)
		}
	}
}

func TestPingAndVersionPrefix(t *testing.T) {
	s := New(Options{Version: "0.1.0"})
	for _, method := range []string{http.MethodHead, http.MethodGet} {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(method, "/_ping", nil))
		h := rec.Header()
		if rec.Code != 200 || h.Get("Api-Version") != APIVersion || h.Get("Ostype") != "linux" || h.Get("Docker-Experimental") != "false" || h.Get("Builder-Version") == "" {
			t.Errorf("%s /_ping: %d %v", method, rec.Code, h)
		}
		if method == http.MethodGet && rec.Body.String() != "OK" {
			t.Errorf("body %q", rec.Body.String())
		}
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/v1.50/_ping", nil))
	if rec.Code != 200 {
		t.Errorf("/v1.50/_ping: %d", rec.Code)
	}
	for path, want := range map[string]string{
		"/v1.12/_ping": "client version 1.12 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version",
		"/v1.99/_ping": "client version 1.99 is too new. Maximum supported API version is " + APIVersion,
	} {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		var body map[string]string
		json.Unmarshal(rec.Body.Bytes(), &body)
		if rec.Code != 400 || body["message"] != want {
			t.Errorf("%s: %d %q", path, rec.Code, rec.Body.String())
		}
	}
}

func TestErrorBodies(t *testing.T) {
	for _, c := range []struct {
		err    error
		status int
		msg    string
	}{
		{errors.New("No such container: x: " + "x"), 500, "No such container: x: x"},
		{wrap("No such container: x", errdefs.ErrNotFound), 404, "No such container: x"},
		{conflict("unable to delete %s (must be forced)", "abc"), 409, "conflict: unable to delete abc (must be forced)"},
		{invalid("invalid filter '%s'", "x"), 400, "invalid filter 'x'"},
	} {
		rec := httptest.NewRecorder()
		writeError(rec, c.err)
		var body map[string]string
		json.Unmarshal(rec.Body.Bytes(), &body)
		if rec.Code != c.status || body["message"] != c.msg || rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%v: %d %q", c.err, rec.Code, rec.Body.String())
		}
	}
	rec := httptest.NewRecorder()
	writeError(rec, engine.ErrNotModified)
	if rec.Code != 304 {
		t.Errorf("not modified: %d", rec.Code)
	}
}

func wrap(msg string, kind error) error { return &apiError{msg: msg, kind: kind} }

func TestStatusLine(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		st   engine.State
		want string
	}{
		{engine.State{Status: engine.Created}, "Created"},
		{engine.State{Status: engine.Running, StartedAt: now.Add(-3 * time.Second)}, "Up 3 seconds"},
		{engine.State{Status: engine.Running, StartedAt: now.Add(-90 * time.Second)}, "Up About a minute"},
		{engine.State{Status: engine.Exited, ExitCode: 137, FinishedAt: now.Add(-2 * time.Hour)}, "Exited (137) 2 hours ago"},
		{engine.State{Status: engine.Exited, FinishedAt: now.Add(-100 * time.Millisecond)}, "Exited (0) Less than a second ago"},
	} {
		if got := StatusLine(c.st, now); got != c.want {
			t.Errorf("%+v: %q, want %q", c.st, got, c.want)
		}
	}
}

func TestFiltersAndTail(t *testing.T) {
	f, err := ParseFilters(`{"name":{"web":true},"status":{"exited":true,"running":false}}`)
	if err != nil || !slices.Equal(f["name"], []string{"web"}) || !slices.Equal(f["status"], []string{"exited"}) {
		t.Errorf("%v %v", f, err)
	}
	if f, err := ParseFilters(`{"label":["a=b"]}`); err != nil || f["label"][0] != "a=b" {
		t.Errorf("legacy form: %v %v", f, err)
	}
	if _, err := ParseFilters(`{"name":`); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("bad filters: %v", err)
	}
	for in, want := range map[string]int{"": -1, "all": -1, "0": 0, "5": 5} {
		if got, err := ParseTail(in); err != nil || got != want {
			t.Errorf("tail %q: %d %v", in, got, err)
		}
	}
	if _, err := ParseTail("-3"); err == nil {
		t.Error("tail -3 accepted")
	}
	if !versionLess("1.9", "1.24") || versionLess("1.51", "1.51") || !versionLess("1.50", "1.51") {
		t.Error("versionLess")
	}
	if got, _ := parseTime("1700000000.5"); got.UnixNano() != 1700000000500000000 {
		t.Errorf("parseTime: %v", got)
	}
}

func TestSummarize(t *testing.T) {
	now := time.Now()
	c := engine.Container{ID: strings.Repeat("a", 64), Name: "web", Path: "sleep", Args: []string{"100"}, Config: engine.Config{Image: "busybox", ExposedPorts: map[string]struct{}{"80/tcp": {}}},
		State: engine.State{Status: engine.Running, StartedAt: now}, HostConfig: engine.HostConfig{NetworkMode: "bridge"}}
	s := Summarize(c, now)
	b, _ := json.Marshal(s)
	for _, want := range []string{`"Names":["/web"]`, `"Command":"sleep 100"`, `"State":"running"`, `"Status":"Up Less than a second"`, `"Ports":[{"PrivatePort":80,"Type":"tcp"}]`, `"NetworkMode":"bridge"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("summary lacks %s: %s", want, b)
		}
	}
}

func FuzzDecodeCreate(f *testing.F) {
	f.Add("web", []byte(createJSON))
	f.Add("", []byte(`{"Image":"busybox","HostConfig":{"PidsLimit":-1,"Ulimits":[{"Name":"nofile","Soft":1,"Hard":2}]}}`))
	f.Fuzz(func(t *testing.T, name string, body []byte) {
		req, err := DecodeCreate(name, body)
		if err != nil {
			return
		}
		// Whatever decodes, spec generation must not panic.
		engine.Spec(engine.SpecInput{ID: "x", Config: req.Config, Host: req.HostConfig, NoFile: engine.Rlimit{Hard: 1024}})
	})
}

func FuzzParseFilters(f *testing.F) {
	f.Add(`{"name":{"web":true}}`)
	f.Add(`{"label":["a=b"]}`)
	f.Fuzz(func(t *testing.T, s string) {
		ParseFilters(s)
	})
}
