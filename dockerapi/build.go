package dockerapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cais-platform/cais/builder"
	"github.com/cais-platform/cais/engine"
	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/image/distribution"
	"github.com/cais-platform/cais/image/imageconfig"
	"github.com/cais-platform/cais/image/reference"
)

// buildService is the builder behind POST /build and POST /commit; b is
// nil when it could not be set up.
type buildService struct{ b *builder.Builder }

// newBuildService sets up the builder in ROOT/build.
func newBuildService(opts Options) buildService {
	if opts.Root == "" || opts.Engine == nil {
		return buildService{}
	}
	b, err := builder.New(builder.Options{Engine: opts.Engine, Dir: filepath.Join(opts.Root, "build"), Log: opts.Log.With("component", "builder")})
	if err != nil {
		opts.Log.Error("the builder is not available", "err", err)
		return buildService{}
	}
	return buildService{b: b}
}

// maxBuildContext bounds an unpacked build context.
const maxBuildContext = 8 << 30

// DecodeBuildOptions reads POST /build's query as Docker's classic
// builder does: t (repeated), dockerfile, buildargs and labels (JSON
// objects), nocache, rm (default on), forcerm, q, target, memory,
// memswap, cpushares, cpuquota, cpuperiod, cpusetcpus, networkmode,
// extrahosts. It does no I/O.
func DecodeBuildOptions(q map[string][]string) (builder.BuildOptions, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	flag := func(k string, def bool) bool {
		v, ok := q[k]
		if !ok || len(v) == 0 {
			return def
		}
		switch strings.ToLower(strings.TrimSpace(v[0])) {
		case "", "0", "no", "false", "none":
			return false
		}
		return true
	}
	opts := builder.BuildOptions{
		Dockerfile: get("dockerfile"), NoCache: flag("nocache", false), Remove: flag("rm", true), AlwaysPull: flag("pull", false),
		ForceRemove: flag("forcerm", false), Quiet: flag("q", false), Target: get("target"),
		MaxContext: maxBuildContext,
	}
	if get("remote") != "" {
		return opts, invalid("remote build contexts are not supported; send the context as the request body")
	}
	if v := get("version"); v == "2" {
		return opts, invalid("BuildKit is not supported by cais; build with DOCKER_BUILDKIT=0")
	}
	for _, t := range q["t"] {
		ref, err := reference.ParseNormalized(t)
		if err != nil {
			return opts, invalid("invalid tag %q: %v", t, errdefs.Message(err))
		}
		if ref.Digest() != "" {
			return opts, invalid("invalid tag %q: a tag cannot have a digest", t)
		}
		opts.Tags = append(opts.Tags, ref.WithDefaultTag())
	}
	if v := get("buildargs"); v != "" {
		var args map[string]*string
		if err := json.Unmarshal([]byte(v), &args); err != nil {
			return opts, invalid("invalid buildargs: %v", err)
		}
		opts.BuildArgs = map[string]string{}
		for k, p := range args {
			if p != nil {
				opts.BuildArgs[k] = *p
			}
		}
	}
	if v := get("labels"); v != "" {
		if err := json.Unmarshal([]byte(v), &opts.Labels); err != nil {
			return opts, invalid("invalid labels: %v", err)
		}
	}
	h := &opts.Host
	var err error
	ints := []struct {
		name string
		dst  *int64
	}{{"memory", &h.Memory}, {"memswap", &h.MemorySwap}, {"cpushares", &h.CPUShares}, {"cpuquota", &h.CPUQuota}, {"cpuperiod", &h.CPUPeriod}}
	for _, f := range ints {
		if v := get(f.name); v != "" {
			if *f.dst, err = strconv.ParseInt(v, 10, 64); err != nil {
				return opts, invalid("invalid %s %q", f.name, v)
			}
		}
	}
	h.CpusetCpus = get("cpusetcpus")
	h.NetworkMode = get("networkmode")
	if v := get("extrahosts"); v != "" {
		h.ExtraHosts = strings.Split(v, ",")
	}
	return opts, nil
}

// buildStream writes the JSON messages of a build's output: each write a
// {"stream": …} message, as the docker CLI prints them.
type buildStream struct{ enc *json.Encoder }

func (b buildStream) Write(p []byte) (int, error) {
	if err := b.enc.Encode(jsonMessage{Stream: string(p)}); err != nil {
		return 0, err
	}
	return len(p), nil
}

// buildErrorMessage is Docker's error message in a stream; code (the
// exit code of a failed RUN) is what docker build exits with.
type buildErrorMessage struct {
	Error       string           `json:"error"`
	ErrorDetail buildErrorDetail `json:"errorDetail"`
}

type buildErrorDetail struct {
	Code    int    `json:"code,omitempty"`
	Message string `json:"message"`
}

func (s *Server) postBuild(w http.ResponseWriter, r *http.Request) {
	if s.build.b == nil {
		writeError(w, fmt.Errorf("the builder is not available: %w", errdefs.ErrUnavailable))
		return
	}
	opts, err := DecodeBuildOptions(r.URL.Query())
	if err != nil {
		writeError(w, err)
		return
	}
	auths, err := DecodeRegistryConfig(r.Header.Get("X-Registry-Config"))
	if err != nil {
		writeError(w, err)
		return
	}
	opts.Pull = s.buildPull(auths)
	ctx := r.Context()
	job, err := s.build.b.Prepare(ctx, r.Body, opts)
	if err != nil {
		writeError(w, err)
		return
	}
	defer job.Close()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(newFlushWriter(w))
	res, err := job.Run(ctx, buildStream{enc})
	if err != nil {
		msg := buildErrorMessage{Error: errdefs.Message(err), ErrorDetail: buildErrorDetail{Message: errdefs.Message(err)}}
		var se *builder.StepError
		if errors.As(err, &se) {
			msg.ErrorDetail.Code = se.Code
		}
		s.log.Info("build failed", "err", err)
		enc.Encode(msg)
		return
	}
	enc.Encode(jsonMessage{Aux: map[string]string{"ID": string(res.ID)}})
	s.log.Info("built image", "id", res.ID, "tags", res.Tagged)
}

// postCommit is docker commit: POST /commit?container=…&repo=…&tag=…
// with the config to change as the body.
func (s *Server) postCommit(w http.ResponseWriter, r *http.Request) {
	if s.build.b == nil {
		writeError(w, fmt.Errorf("the builder is not available: %w", errdefs.ErrUnavailable))
		return
	}
	q := r.URL.Query()
	opts := builder.CommitOptions{Container: q.Get("container"), Comment: q.Get("comment"), Author: q.Get("author"), Changes: q["changes"]}
	if opts.Container == "" {
		writeError(w, invalid("No container specified"))
		return
	}
	if repo := q.Get("repo"); repo != "" {
		ref, err := reference.ParseNormalized(repo)
		if err == nil && q.Get("tag") != "" {
			ref, err = ref.WithTag(q.Get("tag"))
		}
		if err != nil {
			writeError(w, invalid("%s", errdefs.Message(err)))
			return
		}
		ref = ref.WithDefaultTag()
		opts.Ref = &ref
	}
	body, err := readBody(r, 4<<20)
	if err != nil {
		writeError(w, err)
		return
	}
	if len(strings.TrimSpace(string(body))) > 0 && strings.TrimSpace(string(body)) != "null" {
		var cfg engine.Config
		if err := json.Unmarshal(body, &cfg); err != nil {
			writeError(w, invalid("invalid JSON: %v", err))
			return
		}
		ic := imageconfig.Config{User: cfg.User, ExposedPorts: cfg.ExposedPorts, Env: cfg.Env, Entrypoint: cfg.Entrypoint, Cmd: cfg.Cmd,
			Volumes: cfg.Volumes, WorkingDir: cfg.WorkingDir, Labels: cfg.Labels, StopSignal: cfg.StopSignal}
		opts.Config = &ic
	}
	id, err := s.build.b.Commit(r.Context(), opts)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"Id": string(id)})
}

// maxRegistryConfig bounds an X-Registry-Config header.
const maxRegistryConfig = 1 << 20

// DecodeRegistryConfig reads the X-Registry-Config header of POST /build:
// the credentials of every registry the docker CLI knows (base64 JSON of
// {"registry": {"username": …, "password": …, "auth": …}}). An empty
// header is none. It does no I/O.
func DecodeRegistryConfig(h string) (map[string]distribution.AuthConfig, error) {
	out := map[string]distribution.AuthConfig{}
	if h == "" {
		return out, nil
	}
	if len(h) > maxRegistryConfig {
		return nil, invalid("X-Registry-Config header larger than %d bytes", maxRegistryConfig)
	}
	var b []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.URLEncoding, base64.RawURLEncoding, base64.StdEncoding, base64.RawStdEncoding} {
		if b, err = enc.DecodeString(h); err == nil {
			break
		}
	}
	if err != nil {
		return nil, invalid("invalid X-Registry-Config header: %v", err)
	}
	var raw map[string]distribution.AuthConfig
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, invalid("invalid X-Registry-Config header: %v", err)
	}
	for k, a := range raw {
		if a, err = a.Normalize(); err != nil {
			return nil, err
		}
		out[registryKey(k)] = a
	}
	return out, nil
}

// registryKey is the host a credentials key names: "https://index.
// docker.io/v1/" is Docker Hub, other keys may carry a scheme and a path.
func registryKey(k string) string {
	if k == "https://index.docker.io/v1/" {
		return "docker.io"
	}
	k = strings.TrimPrefix(strings.TrimPrefix(k, "https://"), "http://")
	host, _, _ := strings.Cut(k, "/")
	return host
}

// buildPull is how a build pulls a base image: with the registries'
// client and the credentials the CLI sent, its progress as text lines.
func (s *Server) buildPull(auths map[string]distribution.AuthConfig) builder.PullFunc {
	if s.registries == nil {
		return nil
	}
	return func(ctx context.Context, ref reference.Reference, out io.Writer) error {
		platform, _ := parsePlatform("")
		_, err := s.registries.Pull(ctx, s.e.Images(), ref, auths[ref.Domain()], platform, func(e distribution.Event) {
			if e.Total > 0 || e.Current > 0 {
				return // byte counts: the CLI's progress bars, not lines
			}
			if e.ID != "" {
				fmt.Fprintf(out, "%s: %s\n", e.ID, e.Status)
			} else {
				fmt.Fprintf(out, "%s\n", e.Status)
			}
		})
		return err
	}
}

// postBuildPrune is docker builder prune: the layer cache is emptied.
func (s *Server) postBuildPrune(w http.ResponseWriter, r *http.Request) {
	if s.build.b == nil {
		writeError(w, fmt.Errorf("the builder is not available: %w", errdefs.ErrUnavailable))
		return
	}
	res, err := s.build.b.PruneCache(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	deleted := res.Keys
	if deleted == nil {
		deleted = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"CachesDeleted": deleted, "SpaceReclaimed": res.Bytes})
}
