package dockerapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/engine"
	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/image/distribution"
)

// API versions served: the docker CLI negotiates down to APIVersion.
const (
	APIVersion    = "1.51"
	MinAPIVersion = "1.24"
)

// Options configure a Server.
type Options struct {
	Engine *engine.Engine
	Log    *slog.Logger
	// Version is the cais release reported as the server's version.
	Version string
	// Root is the engine's directory (DockerRootDir in docker info).
	Root string
	// Registries pulls and pushes images (default: Docker's defaults,
	// loopback registries insecure).
	Registries *distribution.Client
}

// Server serves the Docker Engine API.
type Server struct {
	e       *engine.Engine
	log     *slog.Logger
	version string
	root    string
	started time.Time
	mux     *http.ServeMux
	build   buildService

	registries *distribution.Client
}

// New returns a Server for an engine.
func New(opts Options) *Server {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Registries == nil {
		opts.Registries = distribution.New(distribution.Config{Log: opts.Log})
	}
	s := &Server{e: opts.Engine, log: opts.Log, version: opts.Version, root: opts.Root, started: time.Now(), mux: http.NewServeMux(), registries: opts.Registries}
	s.build = newBuildService(opts)
	s.routes()
	return s
}

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /_ping", s.ping)
	m.HandleFunc("HEAD /_ping", s.ping)
	m.HandleFunc("GET /version", s.getVersion)
	m.HandleFunc("GET /info", s.getInfo)
	m.HandleFunc("POST /auth", s.postAuth)

	m.HandleFunc("POST /containers/create", s.createContainer)
	m.HandleFunc("GET /containers/json", s.listContainers)
	m.HandleFunc("GET /containers/{id}/json", s.inspectContainer)
	m.HandleFunc("POST /containers/{id}/start", s.startContainer)
	m.HandleFunc("POST /containers/{id}/stop", s.stopContainer)
	m.HandleFunc("POST /containers/{id}/restart", s.restartContainer)
	m.HandleFunc("POST /containers/{id}/kill", s.killContainer)
	m.HandleFunc("POST /containers/{id}/wait", s.waitContainer)
	m.HandleFunc("DELETE /containers/{id}", s.removeContainer)
	m.HandleFunc("GET /containers/{id}/logs", s.containerLogs)
	m.HandleFunc("GET /containers/{id}/top", s.topContainer)
	m.HandleFunc("GET /containers/{id}/stats", s.containerStats)
	m.HandleFunc("POST /containers/{id}/attach", s.attachContainer)
	m.HandleFunc("POST /containers/{id}/resize", s.resizeContainer)
	m.HandleFunc("POST /containers/{id}/exec", s.createExec)
	m.HandleFunc("POST /exec/{id}/start", s.startExec)
	m.HandleFunc("POST /exec/{id}/resize", s.resizeExec)
	m.HandleFunc("GET /exec/{id}/json", s.inspectExec)

	m.HandleFunc("POST /build", s.postBuild)
	m.HandleFunc("POST /build/prune", s.postBuildPrune)
	m.HandleFunc("POST /commit", s.postCommit)
	m.HandleFunc("GET /networks", s.listNetworks)
	m.HandleFunc("GET /networks/{id}", s.inspectNetwork)
	m.HandleFunc("POST /networks/create", s.createNetwork)
	m.HandleFunc("POST /networks/prune", s.pruneNetworks)
	m.HandleFunc("DELETE /networks/{id}", s.removeNetwork)
	m.HandleFunc("POST /networks/{id}/connect", s.connectNetwork)
	m.HandleFunc("POST /networks/{id}/disconnect", s.disconnectNetwork)

	m.HandleFunc("GET /volumes", s.listVolumes)
	m.HandleFunc("POST /volumes/create", s.createVolume)
	m.HandleFunc("POST /volumes/prune", s.pruneVolumes)
	m.HandleFunc("GET /volumes/{name}", s.inspectVolume)
	m.HandleFunc("DELETE /volumes/{name}", s.removeVolume)
	m.HandleFunc("GET /containers/{id}/archive", s.getArchive)
	m.HandleFunc("HEAD /containers/{id}/archive", s.headArchive)
	m.HandleFunc("PUT /containers/{id}/archive", s.putArchive)
	m.HandleFunc("GET /events", s.getEvents)
	m.HandleFunc("GET /system/df", s.systemDF)
	m.HandleFunc("POST /containers/prune", s.pruneContainers)
	m.HandleFunc("POST /images/prune", s.pruneImages)

	m.HandleFunc("GET /images/json", s.listImages)
	m.HandleFunc("GET /images/get", s.saveImages)
	m.HandleFunc("POST /images/load", s.loadImages)
	m.HandleFunc("POST /images/create", s.createImage)
	// Image names hold slashes: the rest of /images/ is parsed by hand.
	m.HandleFunc("/images/", s.imageByName)
}

var versionPrefix = regexp.MustCompile(`^/v([0-9]+\.[0-9]+)(/.*)$`)

// ServeHTTP strips the /vX.Y prefix (checking the version), sets the
// headers Docker's daemon sets on every response, and routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Api-Version", APIVersion)
	h.Set("Docker-Experimental", "false")
	h.Set("Ostype", "linux")
	h.Set("Server", "Docker/"+s.version+" (linux)")
	if m := versionPrefix.FindStringSubmatch(r.URL.Path); m != nil {
		v := m[1]
		if versionLess(v, MinAPIVersion) {
			writeError(w, fmt.Errorf("client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version: %w", v, MinAPIVersion, errdefs.ErrInvalid))
			return
		}
		if versionLess(APIVersion, v) {
			writeError(w, fmt.Errorf("client version %s is too new. Maximum supported API version is %s: %w", v, APIVersion, errdefs.ErrInvalid))
			return
		}
		r.URL.Path = m[2]
		r.URL.RawPath = ""
	}
	if !s.log.Enabled(r.Context(), slog.LevelDebug) {
		s.mux.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	s.mux.ServeHTTP(w, r)
	s.log.Debug("API request", "method", r.Method, "path", r.URL.Path, "query", r.URL.RawQuery, "took", time.Since(start))
}

// versionLess compares "1.24" style versions.
func versionLess(a, b string) bool {
	am, an, _ := strings.Cut(a, ".")
	bm, bn, _ := strings.Cut(b, ".")
	x, _ := strconv.Atoi(am)
	y, _ := strconv.Atoi(bm)
	if x != y {
		return x < y
	}
	x, _ = strconv.Atoi(an)
	y, _ = strconv.Atoi(bn)
	return x < y
}

func (s *Server) ping(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Builder-Version", "1")
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	h.Set("Pragma", "no-cache")
	h.Set("Swarm", "inactive")
	if r.Method == http.MethodHead {
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Content-Length", "0")
		return
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("OK"))
}

func kernelVersion() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

func (s *Server) getVersion(w http.ResponseWriter, r *http.Request) {
	kv := kernelVersion()
	writeJSON(w, http.StatusOK, map[string]any{
		"Platform": map[string]string{"Name": "cais"},
		"Components": []map[string]any{{
			"Name": "Engine", "Version": s.version,
			"Details": map[string]string{
				"ApiVersion": APIVersion, "MinAPIVersion": MinAPIVersion, "Arch": runtime.GOARCH,
				"GoVersion": runtime.Version(), "KernelVersion": kv, "Os": "linux", "Experimental": "false",
				"GitCommit": "", "BuildTime": "",
			},
		}},
		"Version": s.version, "ApiVersion": APIVersion, "MinAPIVersion": MinAPIVersion,
		"GitCommit": "", "GoVersion": runtime.Version(), "Os": "linux", "Arch": runtime.GOARCH,
		"KernelVersion": kv, "BuildTime": "",
	})
}

func (s *Server) getInfo(w http.ResponseWriter, r *http.Request) {
	cs := s.e.List()
	var running, stopped int
	for _, c := range cs {
		if c.State.Running() {
			running++
		} else {
			stopped++
		}
	}
	imgs, _ := s.e.Images().List()
	host, _ := os.Hostname()
	var si unix.Sysinfo_t
	unix.Sysinfo(&si)
	osName := "Linux"
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
				osName = strings.Trim(v, `"`)
			}
		}
	}
	arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[runtime.GOARCH]
	if arch == "" {
		arch = runtime.GOARCH
	}
	cgroupVersion := "1"
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		cgroupVersion = "2"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"ID": "", "Containers": len(cs), "ContainersRunning": running, "ContainersPaused": 0, "ContainersStopped": stopped,
		"Images": len(imgs), "Driver": "overlay2", "DriverStatus": [][2]string{{"Backing Filesystem", "extfs"}},
		"Plugins":     map[string][]string{"Volume": {"local"}, "Network": {"bridge", "host", "none"}, "Log": {"json-file"}},
		"MemoryLimit": true, "SwapLimit": true, "CpuCfsPeriod": true, "CpuCfsQuota": true, "CPUShares": true, "CPUSet": true,
		"PidsLimit": true, "IPv4Forwarding": false, "Debug": false, "NFd": 0, "NGoroutines": runtime.NumGoroutine(),
		"OomKillDisable": true, "SystemTime": time.Now().Format(time.RFC3339Nano), "LoggingDriver": "json-file",
		"CgroupDriver": "cgroupfs", "CgroupVersion": cgroupVersion, "NEventsListener": 0, "KernelVersion": kernelVersion(),
		"OperatingSystem": osName, "OSVersion": "", "OSType": "linux", "Architecture": arch,
		"IndexServerAddress": "https://index.docker.io/v1/",
		"RegistryConfig":     s.registryConfig(),
		"NCPU":               runtime.NumCPU(), "MemTotal": int64(si.Totalram) * int64(si.Unit), "DockerRootDir": s.root,
		"Name": host, "Labels": []string{}, "ExperimentalBuild": false, "ServerVersion": s.version,
		"Runtimes":       map[string]any{"runc": map[string]string{"path": "runc"}},
		"DefaultRuntime": "runc", "Swarm": map[string]any{"LocalNodeState": "inactive", "NodeID": "", "NodeAddr": "", "ControlAvailable": false, "Error": "", "RemoteManagers": nil},
		"LiveRestoreEnabled": true, "Isolation": "", "InitBinary": "", "SecurityOptions": []string{},
		"ContainerdCommit": map[string]string{"ID": ""}, "RuncCommit": map[string]string{"ID": ""}, "InitCommit": map[string]string{"ID": ""},
		"Warnings": []string{},
	})
}

// writeJSON writes v as a JSON response.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeError writes Docker's error body with the status of the error's
// kind.
func writeError(w http.ResponseWriter, err error) {
	status := errdefs.HTTPStatus(err)
	if errors.Is(err, engine.ErrNotModified) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	var ae *apiError
	if errors.As(err, &ae) {
		writeJSON(w, status, map[string]string{"message": ae.msg})
		return
	}
	writeJSON(w, status, map[string]string{"message": errdefs.Message(err)})
}

// apiError is an error whose message is exactly what Docker says, kind
// words included ("conflict: unable to …").
type apiError struct {
	msg  string
	kind error
}

func (e *apiError) Error() string { return e.msg }
func (e *apiError) Unwrap() error { return e.kind }

func conflict(format string, args ...any) error {
	return &apiError{msg: "conflict: " + fmt.Sprintf(format, args...), kind: errdefs.ErrExists}
}

// invalid wraps a bad-parameter error.
func invalid(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, errdefs.ErrInvalid)...)
}

// boolValue reads a query flag as Docker does: "", "0", "false", "no",
// "none" are false.
func boolValue(r *http.Request, name string) bool {
	switch strings.ToLower(strings.TrimSpace(r.URL.Query().Get(name))) {
	case "", "0", "no", "false", "none":
		return false
	}
	return true
}

// decodeBody decodes a JSON request body (at most 4 MiB).
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 4<<20))
	if err := dec.Decode(v); err != nil {
		return invalid("invalid JSON: %v", err)
	}
	return nil
}

// flushWriter flushes after every write, for streams.
type flushWriter struct {
	w http.ResponseWriter
	f http.Flusher
}

func newFlushWriter(w http.ResponseWriter) flushWriter {
	f, _ := w.(http.Flusher)
	return flushWriter{w, f}
}

func (fw flushWriter) Write(p []byte) (int, error) {
	n, err := fw.w.Write(p)
	if fw.f != nil {
		fw.f.Flush()
	}
	return n, err
}
