package dockerapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cais-platform/cais/engine"
	"github.com/cais-platform/cais/engine/jsonlog"
	"github.com/cais-platform/cais/engine/mux"
)

// createBody is the body of POST /containers/create: the Config fields at
// the top level, HostConfig and NetworkingConfig beside them.
type createBody struct {
	engine.Config
	HostConfig       *engine.HostConfig `json:"HostConfig"`
	NetworkingConfig json.RawMessage    `json:"NetworkingConfig"`
}

// DecodeCreate decodes and checks a create request.
func DecodeCreate(name string, body []byte) (engine.CreateRequest, error) {
	var b createBody
	if err := json.Unmarshal(body, &b); err != nil {
		return engine.CreateRequest{}, invalid("invalid JSON: %v", err)
	}
	req := engine.CreateRequest{Name: name, Config: b.Config}
	if b.HostConfig != nil {
		req.HostConfig = *b.HostConfig
	}
	eps, err := decodeEndpoints(b.NetworkingConfig)
	if err != nil {
		return req, err
	}
	req.EndpointsConfig = eps
	if name != "" {
		if err := engine.ValidateName(name); err != nil {
			return req, err
		}
	}
	if req.HostConfig.Memory < 0 || req.HostConfig.NanoCPUs < 0 {
		return req, invalid("invalid resource limits")
	}
	return req, nil
}

func (s *Server) createContainer(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r, 4<<20)
	if err != nil {
		writeError(w, err)
		return
	}
	req, err := DecodeCreate(r.URL.Query().Get("name"), body)
	if err != nil {
		writeError(w, err)
		return
	}
	id, warnings, err := s.e.Create(r.Context(), req)
	if err != nil {
		writeError(w, err)
		return
	}
	if warnings == nil {
		warnings = []string{}
	}
	writeJSON(w, http.StatusCreated, map[string]any{"Id": id, "Warnings": warnings})
}

// containerSummary is one line of docker ps.
type containerSummary struct {
	ID              string            `json:"Id"`
	Names           []string          `json:"Names"`
	Image           string            `json:"Image"`
	ImageID         string            `json:"ImageID"`
	Command         string            `json:"Command"`
	Created         int64             `json:"Created"`
	Ports           []portSummary     `json:"Ports"`
	Labels          map[string]string `json:"Labels"`
	State           string            `json:"State"`
	Status          string            `json:"Status"`
	HostConfig      map[string]string `json:"HostConfig"`
	NetworkSettings map[string]any    `json:"NetworkSettings"`
	Mounts          []any             `json:"Mounts"`
}

type portSummary struct {
	IP          string `json:"IP,omitempty"`
	PrivatePort int    `json:"PrivatePort"`
	PublicPort  int    `json:"PublicPort,omitempty"`
	Type        string `json:"Type"`
}

// Summarize makes a container's docker ps line.
func Summarize(c engine.Container, now time.Time) containerSummary {
	labels := c.Config.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	ports := portSummaries(c)
	return containerSummary{
		ID: c.ID, Names: []string{"/" + c.Name}, Image: engine.ImageName(c.Config.Image), ImageID: c.Image,
		Command: commandLine(c.Path, c.Args), Created: c.Created.Unix(), Ports: ports, Labels: labels,
		State: string(c.State.Status), Status: StatusLine(c.State, now),
		HostConfig:      map[string]string{"NetworkMode": c.HostConfig.NetworkMode},
		NetworkSettings: map[string]any{"Networks": nonNilNetworks(c.NetworkSettings.Networks)},
		Mounts:          mountsAny(MountsJSON(c.MountPoints, nil)),
	}
}

func commandLine(path string, args []string) string {
	parts := append([]string{path}, args...)
	return strings.Join(parts, " ")
}

// StatusLine is docker ps's STATUS column.
func StatusLine(st engine.State, now time.Time) string {
	switch st.Status {
	case engine.Running:
		return "Up " + HumanDuration(now.Sub(st.StartedAt))
	case engine.Restarting:
		return fmt.Sprintf("Restarting (%d) %s ago", st.ExitCode, HumanDuration(now.Sub(st.FinishedAt)))
	case engine.Exited:
		if st.FinishedAt.IsZero() {
			return fmt.Sprintf("Exited (%d)", st.ExitCode)
		}
		return fmt.Sprintf("Exited (%d) %s ago", st.ExitCode, HumanDuration(now.Sub(st.FinishedAt)))
	case engine.Created:
		return "Created"
	}
	return string(st.Status)
}

// HumanDuration says how long d is, as Docker's ps does.
func HumanDuration(d time.Duration) string {
	if s := int(d.Seconds()); s < 1 {
		return "Less than a second"
	} else if s == 1 {
		return "1 second"
	} else if s < 60 {
		return fmt.Sprintf("%d seconds", s)
	} else if m := int(d.Minutes()); m == 1 {
		return "About a minute"
	} else if m < 60 {
		return fmt.Sprintf("%d minutes", m)
	} else if h := int(d.Round(time.Hour).Hours()); h == 1 {
		return "About an hour"
	} else if h < 48 {
		return fmt.Sprintf("%d hours", h)
	} else if h < 24*7*2 {
		return fmt.Sprintf("%d days", h/24)
	} else if h < 24*30*2 {
		return fmt.Sprintf("%d weeks", h/24/7)
	} else if h < 24*365*2 {
		return fmt.Sprintf("%d months", h/24/30)
	} else {
		return fmt.Sprintf("%d years", int(d.Hours())/24/365)
	}
}

// Filters are docker's ?filters= argument: {"name":{"x":true}} (or the
// old {"name":["x"]}).
type Filters map[string][]string

// ParseFilters decodes a filters argument.
func ParseFilters(s string) (Filters, error) {
	f := Filters{}
	if s == "" {
		return f, nil
	}
	var m map[string]map[string]bool
	if err := json.Unmarshal([]byte(s), &m); err == nil {
		for k, vs := range m {
			for v, ok := range vs {
				if ok {
					f[k] = append(f[k], v)
				}
			}
		}
		return f, nil
	}
	var l map[string][]string
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return nil, invalid("invalid filter: %v", err)
	}
	return Filters(l), nil
}

func (f Filters) match(key string, test func(string) bool) bool {
	vs, ok := f[key]
	if !ok {
		return true
	}
	for _, v := range vs {
		if test(v) {
			return true
		}
	}
	return false
}

func (s *Server) listContainers(w http.ResponseWriter, r *http.Request) {
	f, err := ParseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		writeError(w, err)
		return
	}
	for k := range f {
		switch k {
		case "name", "id", "status", "label", "ancestor", "exited":
		default:
			writeError(w, invalid("invalid filter '%s'", k))
			return
		}
	}
	all := boolValue(r, "all")
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	now := time.Now()
	out := []containerSummary{}
	for _, c := range s.e.List() {
		if !all && !c.State.Running() && len(f["status"]) == 0 {
			continue
		}
		ok := f.match("name", func(v string) bool { return strings.Contains(c.Name, strings.TrimPrefix(v, "/")) }) &&
			f.match("id", func(v string) bool { return strings.HasPrefix(c.ID, v) }) &&
			f.match("status", func(v string) bool { return v == string(c.State.Status) }) &&
			f.match("exited", func(v string) bool { return c.State.Status == engine.Exited && v == strconv.Itoa(c.State.ExitCode) }) &&
			f.match("ancestor", func(v string) bool {
				return engine.ImageName(v) == engine.ImageName(c.Config.Image) || strings.HasPrefix(strings.TrimPrefix(c.Image, "sha256:"), strings.TrimPrefix(v, "sha256:"))
			}) &&
			f.match("label", func(v string) bool {
				k, val, hasVal := strings.Cut(v, "=")
				got, ok := c.Config.Labels[k]
				return ok && (!hasVal || got == val)
			})
		if !ok {
			continue
		}
		out = append(out, Summarize(c, now))
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// Inspect is docker inspect's view of a container.
func Inspect(c engine.Container, dir string) map[string]any {
	st := c.State
	hc := c.HostConfig
	if hc.Binds == nil {
		hc.Binds = nil
	}
	cfg := c.Config
	if cfg.Hostname == "" {
		cfg.Hostname = engine.ShortID(c.ID)
	}
	mounts := MountsJSON(c.MountPoints, nil)
	return map[string]any{
		"Id": c.ID, "Created": c.Created.Format(time.RFC3339Nano), "Path": c.Path, "Args": nonNil(c.Args),
		"State": map[string]any{
			"Status": st.Status, "Running": st.Status == engine.Running, "Paused": false,
			"Restarting": st.Status == engine.Restarting, "OOMKilled": st.OOMKilled, "Dead": st.Status == engine.Dead,
			"Pid": st.Pid, "ExitCode": st.ExitCode, "Error": st.Error,
			"StartedAt": st.StartedAt.Format(time.RFC3339Nano), "FinishedAt": st.FinishedAt.Format(time.RFC3339Nano),
		},
		"Image":          c.Image,
		"ResolvConfPath": dir + "/resolv.conf", "HostnamePath": dir + "/hostname", "HostsPath": dir + "/hosts",
		"LogPath": c.LogPath, "Name": "/" + c.Name, "RestartCount": c.RestartCount,
		"Driver": "overlay2", "Platform": "linux", "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "",
		"ExecIDs": nil, "HostConfig": hc,
		"GraphDriver": map[string]any{"Name": "overlay2", "Data": map[string]string{
			"MergedDir": dir + "/rootfs", "UpperDir": dir + "/upper", "WorkDir": dir + "/work",
		}},
		"Mounts": mounts, "Config": cfg,
		"NetworkSettings": inspectNetworkSettings(c),
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (s *Server) inspectContainer(w http.ResponseWriter, r *http.Request) {
	c, err := s.e.Get(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	out := Inspect(c, s.e.Dir(c.ID))
	out["Mounts"] = MountsJSON(c.MountPoints, s.e.Volumes())
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) startContainer(w http.ResponseWriter, r *http.Request) {
	if err := s.e.Start(r.Context(), r.PathValue("id")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func stopArgs(r *http.Request) (*int, string, error) {
	var timeout *int
	if t := r.URL.Query().Get("t"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil {
			return nil, "", invalid("invalid value for t: %s", t)
		}
		timeout = &n
	}
	return timeout, r.URL.Query().Get("signal"), nil
}

func (s *Server) stopContainer(w http.ResponseWriter, r *http.Request) {
	timeout, sig, err := stopArgs(r)
	if err == nil {
		err = s.e.Stop(r.Context(), r.PathValue("id"), timeout, sig)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) restartContainer(w http.ResponseWriter, r *http.Request) {
	timeout, sig, err := stopArgs(r)
	if err == nil {
		err = s.e.Stop(r.Context(), r.PathValue("id"), timeout, sig)
		if err == engine.ErrNotModified {
			err = nil
		}
	}
	if err == nil {
		err = s.e.Start(r.Context(), r.PathValue("id"))
	}
	if err != nil && err != engine.ErrNotModified {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) killContainer(w http.ResponseWriter, r *http.Request) {
	var sig syscall.Signal
	if v := r.URL.Query().Get("signal"); v != "" {
		var err error
		if sig, err = engine.ParseSignal(v); err != nil {
			writeError(w, err)
			return
		}
	}
	if err := s.e.Kill(r.Context(), r.PathValue("id"), sig); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) waitContainer(w http.ResponseWriter, r *http.Request) {
	cond := engine.WaitCondition(r.URL.Query().Get("condition"))
	switch cond {
	case "", "not-running", "next-exit", "removed":
	default:
		writeError(w, invalid("invalid condition: %q", cond))
		return
	}
	// Headers go out as soon as the wait is set up: docker run waits for
	// them before it starts the container.
	fw := newFlushWriter(w)
	st, err := s.e.Wait(r.Context(), r.PathValue("id"), cond, func() {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		if fw.f != nil {
			fw.f.Flush()
		}
	})
	if err != nil {
		if _, lookupErr := s.e.Get(r.PathValue("id")); lookupErr != nil && r.Context().Err() == nil && cond != "removed" {
			writeError(w, lookupErr)
			return
		}
		if r.Context().Err() != nil {
			return
		}
		json.NewEncoder(fw).Encode(map[string]any{"StatusCode": -1, "Error": map[string]string{"Message": err.Error()}})
		return
	}
	resp := map[string]any{"StatusCode": st.ExitCode, "Error": nil}
	if st.Error != "" {
		resp["Error"] = map[string]string{"Message": st.Error}
	}
	json.NewEncoder(fw).Encode(resp)
}

func (s *Server) removeContainer(w http.ResponseWriter, r *http.Request) {
	if err := s.e.Remove(r.Context(), r.PathValue("id"), engine.RemoveOptions{Force: boolValue(r, "force"), RemoveVolumes: boolValue(r, "v")}); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ParseTail reads docker logs --tail: "all" (or empty) is -1.
func ParseTail(s string) (int, error) {
	if s == "" || s == "all" {
		return -1, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, invalid("invalid value for tail: %s", s)
	}
	return n, nil
}

// parseTime reads a since/until argument: Unix seconds with an optional
// fraction, as the CLI sends them.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	sec, frac, _ := strings.Cut(s, ".")
	n, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return time.Time{}, invalid("invalid time %q", s)
	}
	var ns int64
	if frac != "" {
		frac = (frac + "000000000")[:9]
		ns, _ = strconv.ParseInt(frac, 10, 64)
	}
	return time.Unix(n, ns), nil
}

func (s *Server) containerLogs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	c, err := s.e.Get(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	opts := engine.LogsOptions{Stdout: boolValue(r, "stdout"), Stderr: boolValue(r, "stderr"), Follow: boolValue(r, "follow")}
	if !opts.Stdout && !opts.Stderr {
		writeError(w, invalid("Bad parameters: you must choose at least one stream"))
		return
	}
	if opts.Tail, err = ParseTail(q.Get("tail")); err == nil {
		if opts.Since, err = parseTime(q.Get("since")); err == nil {
			opts.Until, err = parseTime(q.Get("until"))
		}
	}
	if err != nil {
		writeError(w, err)
		return
	}
	timestamps := boolValue(r, "timestamps")
	tty := c.Config.Tty
	if tty {
		w.Header().Set("Content-Type", "application/vnd.docker.raw-stream")
	} else {
		w.Header().Set("Content-Type", "application/vnd.docker.multiplexed-stream")
	}
	w.WriteHeader(http.StatusOK)
	fw := newFlushWriter(w)
	fw.f.Flush()
	mw := mux.NewWriter(fw)
	err = s.e.Logs(r.Context(), c.ID, opts, func(en jsonlog.Entry) error {
		line := en.Log
		if timestamps {
			line = en.Time.Format("2006-01-02T15:04:05.000000000Z07:00") + " " + line
		}
		if tty {
			_, err := fw.Write([]byte(line))
			return err
		}
		id := mux.Stdout
		if en.Stream == "stderr" {
			id = mux.Stderr
		}
		return mw.WriteFrame(id, []byte(line))
	})
	if err != nil {
		s.log.Debug("logs", "err", err)
	}
}

func (s *Server) topContainer(w http.ResponseWriter, r *http.Request) {
	res, err := s.e.Top(r.Context(), r.PathValue("id"), r.URL.Query().Get("ps_args"))
	if err != nil {
		writeError(w, err)
		return
	}
	procs := res.Processes
	if procs == nil {
		procs = [][]string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"Titles": res.Headers, "Processes": procs})
}

func (s *Server) resizeContainer(w http.ResponseWriter, r *http.Request) {
	h, wd, err := sizeArgs(r)
	if err == nil {
		err = s.e.Resize(r.Context(), r.PathValue("id"), h, wd)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func sizeArgs(r *http.Request) (uint16, uint16, error) {
	h, err1 := strconv.ParseUint(r.URL.Query().Get("h"), 10, 16)
	w, err2 := strconv.ParseUint(r.URL.Query().Get("w"), 10, 16)
	if err1 != nil || err2 != nil {
		return 0, 0, invalid("invalid terminal size")
	}
	return uint16(h), uint16(w), nil
}

func (s *Server) containerStats(w http.ResponseWriter, r *http.Request) {
	stream := r.URL.Query().Get("stream") == "" || boolValue(r, "stream")
	var prev *statsJSON
	w.Header().Set("Content-Type", "application/json")
	fw := newFlushWriter(w)
	wrote := false
	for {
		st, c, err := s.e.Stats(r.Context(), r.PathValue("id"))
		if err != nil {
			if !wrote {
				writeError(w, err)
			}
			return
		}
		cur := makeStats(c, st, time.Now())
		if prev != nil {
			cur.PreCPUStats = prev.CPUStats
			cur.PreRead = prev.Read
		}
		if !wrote {
			w.WriteHeader(http.StatusOK)
			wrote = true
		}
		// A single sample (stream=false, one-shot) goes out at once: the
		// docker CLI gives up on a container whose first sample takes
		// more than 2 seconds, which two samples taken by runc half a
		// second apart can on a loaded machine. Without a previous
		// sample the CPU percentage reads 0.
		json.NewEncoder(fw).Encode(cur)
		if !stream {
			return
		}
		prev = &cur
		select {
		case <-r.Context().Done():
			return
		case <-time.After(time.Second):
		}
	}
}
