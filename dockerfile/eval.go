package dockerfile

import (
	"fmt"
	"maps"
	"path"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/image/imageconfig"
)

// Config is the image config a build changes (package imageconfig, the
// type the image store keeps).
type Config = imageconfig.Config

// defaultShell runs shell forms on Linux; never modified.
var defaultShell = []string{"/bin/sh", "-c"}

// DefaultShell returns the shell of shell forms when SHELL sets none.
func DefaultShell() []string { return slices.Clone(defaultShell) }

// StepKind says what a builder does for a step.
type StepKind int

// Step kinds.
const (
	// StepConfig changes only the config (ENV, CMD, LABEL, …).
	StepConfig StepKind = iota
	// StepRun runs Args with Env in a container of the image so far and
	// commits what it changed.
	StepRun
	// StepCopy copies Copy's sources into the image and commits.
	StepCopy
	// StepWorkdir makes the directory Config.WorkingDir if missing (as the
	// user of the config) and commits.
	StepWorkdir
)

// CopySpec is a COPY or ADD with its words expanded.
type CopySpec struct {
	// Add: URLs are fetched and local archives unpacked.
	Add bool
	// Sources are relative to the context, the stage or the image.
	Sources []string
	// Dest is absolute; a trailing "/" means a directory.
	Dest string
	// FromStage is the index of the stage --from names, or -1.
	FromStage int
	// FromImage is the image --from names when it is not a stage.
	FromImage string
	// Chown and Chmod are the flags' values, expanded.
	Chown, Chmod string
}

// Step is one thing the builder does.
type Step struct {
	Kind StepKind
	// Node is the instruction (or ONBUILD trigger) the step comes from.
	Node *Node
	// CreatedBy is the history line, as Docker's classic builder writes it.
	CreatedBy string
	// Args and Env are the command and environment of a StepRun. Env
	// holds the config's environment and the build arguments in scope,
	// which RUN sees but the image does not keep.
	Args []string
	Env  []string
	// Copy is set for a StepCopy.
	Copy *CopySpec
	// Config is the image config after the step.
	Config Config
}

// StagePlan is a stage evaluated: its base and its steps.
type StagePlan struct {
	Index int
	Name  string
	// Base is the expanded FROM: an image reference, "scratch", or the
	// name of an earlier stage (then BaseStage is its index, else -1).
	Base      string
	BaseStage int
	Platform  string
	// Author is MAINTAINER's value.
	Author string
	Steps  []Step
	// Config is the final config.
	Config Config
}

// maxPorts bounds the ports a stage's EXPOSE lines expand to.
const maxPorts = 1 << 14

// predefinedArgs may be passed without an ARG; RUN sees them, history does
// not.
var predefinedArgs = []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"}

// platformArgs are the automatic platform arguments: visible to FROM, and
// to a stage that declares them (ARG TARGETARCH). Builds run for the
// platform they run on.
func platformArgs() map[string]string {
	arch := runtime.GOARCH
	return map[string]string{
		"TARGETPLATFORM": "linux/" + arch, "TARGETOS": "linux", "TARGETARCH": arch, "TARGETVARIANT": "",
		"BUILDPLATFORM": "linux/" + arch, "BUILDOS": "linux", "BUILDARCH": arch, "BUILDVARIANT": "",
	}
}

// Evaluator turns a Dockerfile and build arguments into stage plans. It
// does no I/O: the builder gives it each stage's base config and performs
// the steps it returns.
type Evaluator struct {
	df        *Dockerfile
	buildArgs map[string]string
	meta      map[string]string // meta ARG values, build args applied
	used      map[string]bool
}

// NewEvaluator prepares the evaluation of df with the build arguments
// (docker build --build-arg).
func NewEvaluator(df *Dockerfile, buildArgs map[string]string) (*Evaluator, error) {
	e := &Evaluator{df: df, buildArgs: maps.Clone(buildArgs), meta: platformArgs(), used: map[string]bool{}}
	for _, a := range df.MetaArgs {
		for _, d := range a.Args {
			if v, ok := e.buildArgs[d.Key]; ok {
				e.meta[d.Key] = v
				e.used[d.Key] = true
				continue
			}
			if d.Value != nil {
				v, err := Expand(*d.Value, MapLookup(e.meta), df.EscapeToken)
				if err != nil {
					return nil, lineErr(a.node, err)
				}
				e.meta[d.Key] = v
			}
		}
	}
	return e, nil
}

func lineErr(n *Node, err error) error {
	return fmt.Errorf("dockerfile line %d: %s: %w", n.StartLine, strings.ToUpper(n.Cmd), err)
}

// Base expands stage i's FROM with the meta arguments. It returns the
// index of the earlier stage it names, or -1 for an image.
func (e *Evaluator) Base(i int) (name, platform string, stage int, err error) {
	st := e.df.Stages[i]
	lookup := MapLookup(e.meta)
	name, err = Expand(st.BaseName, lookup, e.df.EscapeToken)
	if err != nil {
		return "", "", -1, lineErr(st.Node, err)
	}
	if name == "" {
		return "", "", -1, lineErr(st.Node, fmt.Errorf("base name (%s) should not be blank: %w", st.BaseName, errdefs.ErrInvalid))
	}
	platform, err = Expand(st.Platform, lookup, e.df.EscapeToken)
	if err != nil {
		return "", "", -1, lineErr(st.Node, err)
	}
	return name, platform, e.stageIndex(name, i), nil
}

// stageIndex finds an earlier stage by name or index.
func (e *Evaluator) stageIndex(name string, before int) int {
	for j := 0; j < before; j++ {
		if e.df.Stages[j].Name != "" && strings.EqualFold(e.df.Stages[j].Name, name) {
			return j
		}
	}
	if n, err := strconv.Atoi(name); err == nil && n >= 0 && n < before {
		return n
	}
	return -1
}

// UnusedArgs lists the build arguments no ARG consumed (Docker warns
// "[Warning] One or more build-args [...] were not consumed").
func (e *Evaluator) UnusedArgs() []string {
	var out []string
	for k := range e.buildArgs {
		if !e.used[k] && !slices.Contains(predefinedArgs, k) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// stageState is the evaluation state of one stage.
type stageState struct {
	e      *Evaluator
	ports  int // EXPOSE ports expanded so far
	plan   *StagePlan
	cfg    Config
	args   map[string]string // ARGs in scope with a value
	argOrd []string
	cmdSet bool // CMD set in this stage
}

func (s *stageState) lookup(name string) (string, bool) {
	if v, ok := s.cfg.GetEnv(name); ok {
		return v, true
	}
	v, ok := s.args[name]
	return v, ok
}

func (s *stageState) expand(n *Node, word string) (string, error) {
	v, err := Expand(word, s.lookup, s.e.df.EscapeToken)
	if err != nil {
		return "", lineErr(n, err)
	}
	return v, nil
}

// Eval evaluates stage i on a base image config (the zero Config for
// scratch). ONBUILD triggers of the base run first.
func (e *Evaluator) Eval(i int, baseConfig Config) (*StagePlan, error) {
	st := e.df.Stages[i]
	name, platform, baseStage, err := e.Base(i)
	if err != nil {
		return nil, err
	}
	s := &stageState{
		e:    e,
		plan: &StagePlan{Index: i, Name: st.Name, Base: name, BaseStage: baseStage, Platform: platform},
		cfg:  baseConfig.Clone(),
		args: map[string]string{},
	}
	if len(s.cfg.OnBuild) > MaxInstructions {
		return nil, fmt.Errorf("base image has %d ONBUILD triggers, more than %d: %w", len(s.cfg.OnBuild), MaxInstructions, errdefs.ErrInvalid)
	}
	triggers := s.cfg.OnBuild
	s.cfg.OnBuild = nil
	for _, t := range triggers {
		n, err := parseInstruction(t, e.df.EscapeToken, st.Node.StartLine, true)
		if err != nil {
			return nil, fmt.Errorf("ONBUILD trigger %q of the base image: %w", t, err)
		}
		inst, err := typeInstruction(n)
		if err != nil {
			return nil, fmt.Errorf("ONBUILD trigger %q of the base image: %w", t, err)
		}
		if err := s.apply(inst); err != nil {
			return nil, err
		}
	}
	for _, inst := range st.Instructions {
		if err := s.apply(inst); err != nil {
			return nil, err
		}
	}
	s.plan.Config = s.cfg.Clone()
	return s.plan, nil
}

func (s *stageState) nop(n *Node, text string) {
	s.step(Step{Kind: StepConfig, Node: n, CreatedBy: "/bin/sh -c #(nop) " + text})
}

func (s *stageState) step(st Step) {
	st.Config = s.cfg.Clone()
	s.plan.Steps = append(s.plan.Steps, st)
}

// shellForm prefixes a shell-form command with the shell.
func (s *stageState) shellForm(cmd []string, shell bool) []string {
	if !shell {
		return slices.Clone(cmd)
	}
	sh := s.cfg.Shell
	if len(sh) == 0 {
		sh = defaultShell
	}
	return append(slices.Clone(sh), cmd...)
}

func (s *stageState) apply(inst Instruction) error {
	n := inst.Source()
	switch c := inst.(type) {
	case *EnvCmd:
		var parts []string
		for _, kv := range c.Vars {
			k, err := s.expand(n, kv.Key)
			if err != nil {
				return err
			}
			v, err := s.expand(n, kv.Value)
			if err != nil {
				return err
			}
			if k == "" {
				return lineErr(n, fmt.Errorf("ENV names can not be blank: %w", errdefs.ErrInvalid))
			}
			s.cfg.SetEnv(k, v)
			parts = append(parts, k+"="+v)
		}
		s.nop(n, "ENV "+strings.Join(parts, " "))
	case *ArgCmd:
		for _, d := range c.Args {
			var value string
			has := false
			if v, ok := s.e.buildArgs[d.Key]; ok {
				value, has = v, true
				s.e.used[d.Key] = true
			} else if d.Value != nil {
				v, err := s.expand(n, *d.Value)
				if err != nil {
					return err
				}
				value, has = v, true
			} else if v, ok := s.e.meta[d.Key]; ok {
				value, has = v, true
			}
			if has {
				if _, seen := s.args[d.Key]; !seen {
					s.argOrd = append(s.argOrd, d.Key)
				}
				s.args[d.Key] = value
			}
		}
		s.nop(n, n.Original)
	case *LabelCmd:
		if s.cfg.Labels == nil {
			s.cfg.Labels = map[string]string{}
		}
		var parts []string
		for _, kv := range c.Labels {
			k, err := s.expand(n, kv.Key)
			if err != nil {
				return err
			}
			v, err := s.expand(n, kv.Value)
			if err != nil {
				return err
			}
			s.cfg.Labels[k] = v
			parts = append(parts, strconv.Quote(k)+"="+strconv.Quote(v))
		}
		s.nop(n, "LABEL "+strings.Join(parts, " "))
	case *WorkdirCmd:
		p, err := s.expand(n, c.Path)
		if err != nil {
			return err
		}
		if !path.IsAbs(p) {
			p = path.Join("/", s.cfg.WorkingDir, p)
		}
		s.cfg.WorkingDir = path.Clean(p)
		s.step(Step{Kind: StepWorkdir, Node: n, CreatedBy: "/bin/sh -c #(nop) WORKDIR " + s.cfg.WorkingDir})
	case *UserCmd:
		u, err := s.expand(n, c.User)
		if err != nil {
			return err
		}
		s.cfg.User = u
		s.nop(n, "USER "+u)
	case *ExposeCmd:
		if s.cfg.ExposedPorts == nil {
			s.cfg.ExposedPorts = map[string]struct{}{}
		}
		var all []string
		for _, w := range c.Ports {
			p, err := s.expand(n, w)
			if err != nil {
				return err
			}
			ports, err := ParsePorts(p)
			if err != nil {
				return lineErr(n, err)
			}
			s.ports += len(ports)
			if s.ports > maxPorts {
				return lineErr(n, fmt.Errorf("more than %d exposed ports: %w", maxPorts, errdefs.ErrInvalid))
			}
			for _, port := range ports {
				if _, dup := s.cfg.ExposedPorts[port]; !dup {
					all = append(all, port)
				}
				s.cfg.ExposedPorts[port] = struct{}{}
			}
		}
		s.nop(n, "EXPOSE "+strings.Join(all, " "))
	case *VolumeCmd:
		if s.cfg.Volumes == nil {
			s.cfg.Volumes = map[string]struct{}{}
		}
		var vols []string
		for _, w := range c.Volumes {
			v, err := s.expand(n, w)
			if err != nil {
				return err
			}
			if strings.TrimSpace(v) == "" {
				return lineErr(n, fmt.Errorf("VOLUME specified can not be an empty string: %w", errdefs.ErrInvalid))
			}
			s.cfg.Volumes[v] = struct{}{}
			vols = append(vols, v)
		}
		s.nop(n, "VOLUME "+fmt.Sprintf("%q", vols))
	case *StopSignalCmd:
		sig, err := s.expand(n, c.Signal)
		if err != nil {
			return err
		}
		if !validSignal(sig) {
			return lineErr(n, fmt.Errorf("Invalid signal: %s: %w", sig, errdefs.ErrInvalid))
		}
		s.cfg.StopSignal = sig
		s.nop(n, "STOPSIGNAL "+sig)
	case *CmdCmd:
		s.cfg.Cmd = s.shellForm(c.Command, c.Shell)
		s.cmdSet = true
		s.nop(n, "CMD "+jsonList(s.cfg.Cmd))
	case *EntrypointCmd:
		s.cfg.Entrypoint = s.shellForm(c.Command, c.Shell)
		if c.Shell && len(c.Command) == 1 && c.Command[0] == "" {
			s.cfg.Entrypoint = nil
		}
		if !s.cmdSet {
			s.cfg.Cmd = nil // a CMD inherited from the base does not survive a new ENTRYPOINT
		}
		s.nop(n, "ENTRYPOINT "+jsonList(s.cfg.Entrypoint))
	case *ShellCmd:
		s.cfg.Shell = slices.Clone(c.Shell)
		s.nop(n, "SHELL "+jsonList(c.Shell))
	case *HealthcheckCmd:
		h := *c.Health
		h.Test = slices.Clone(h.Test)
		s.cfg.Healthcheck = &h
		s.nop(n, "HEALTHCHECK &{"+jsonList(h.Test)+"}")
	case *OnbuildCmd:
		s.cfg.OnBuild = append(s.cfg.OnBuild, c.Expression)
		s.nop(n, "ONBUILD "+c.Expression)
	case *MaintainerCmd:
		m, err := s.expand(n, c.Maintainer)
		if err != nil {
			return err
		}
		s.plan.Author = m
		s.nop(n, "MAINTAINER "+m)
	case *RunCmd:
		args := s.shellForm(c.Command, c.Shell)
		env := slices.Clone(s.cfg.Env)
		var argEnv []string
		for _, k := range s.argOrd {
			if _, inEnv := s.cfg.GetEnv(k); !inEnv {
				argEnv = append(argEnv, k+"="+s.args[k])
			}
		}
		env = append(env, argEnv...)
		for _, k := range predefinedArgs {
			if v, ok := s.e.buildArgs[k]; ok {
				if _, declared := s.args[k]; !declared {
					env = append(env, k+"="+v)
				}
			}
		}
		createdBy := strings.Join(args, " ")
		if len(argEnv) > 0 {
			createdBy = "|" + strconv.Itoa(len(argEnv)) + " " + strings.Join(argEnv, " ") + " " + createdBy
		}
		s.step(Step{Kind: StepRun, Node: n, CreatedBy: createdBy, Args: args, Env: env})
	case *CopyCmd:
		spec := &CopySpec{Add: c.Add, FromStage: -1}
		for _, src := range c.Sources {
			v, err := s.expand(n, src)
			if err != nil {
				return err
			}
			spec.Sources = append(spec.Sources, v)
		}
		dest, err := s.expand(n, c.Dest)
		if err != nil {
			return err
		}
		if dest == "" {
			return lineErr(n, fmt.Errorf("no destination: %w", errdefs.ErrInvalid))
		}
		dir := strings.HasSuffix(dest, "/") || dest == "." || strings.HasSuffix(dest, "/.")
		if !path.IsAbs(dest) {
			dest = path.Join("/", s.cfg.WorkingDir, dest)
		}
		dest = path.Clean(dest)
		if dir && dest != "/" {
			dest += "/"
		}
		spec.Dest = dest
		if spec.Chown, err = s.expand(n, c.Chown); err != nil {
			return err
		}
		if spec.Chmod, err = s.expand(n, c.Chmod); err != nil {
			return err
		}
		if spec.Chmod != "" {
			if _, err := strconv.ParseUint(spec.Chmod, 8, 32); err != nil {
				return lineErr(n, fmt.Errorf("invalid chmod parameter %q: %w", spec.Chmod, errdefs.ErrInvalid))
			}
		}
		if c.From != "" {
			if c.Add {
				return lineErr(n, fmt.Errorf("ADD does not support --from: %w", errdefs.ErrInvalid))
			}
			from, err := s.expand(n, c.From)
			if err != nil {
				return err
			}
			if from == "" {
				return lineErr(n, fmt.Errorf("--from cannot be empty: %w", errdefs.ErrInvalid))
			}
			if strings.EqualFold(from, s.plan.Name) && s.plan.Name != "" {
				return lineErr(n, fmt.Errorf("%s refers to the current stage: %w", from, errdefs.ErrInvalid))
			}
			if j := s.e.stageIndex(from, s.plan.Index); j >= 0 {
				spec.FromStage = j
			} else {
				spec.FromImage = from
			}
		}
		word := "COPY"
		if c.Add {
			word = "ADD"
		}
		s.step(Step{Kind: StepCopy, Node: n, CreatedBy: "/bin/sh -c #(nop) " + word + " " + strings.Join(spec.Sources, " ") + " in " + spec.Dest, Copy: spec})
	default:
		return lineErr(n, fmt.Errorf("unsupported instruction: %w", errdefs.ErrInvalid))
	}
	return nil
}

func jsonList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, " ") + "]"
}

// validSignal accepts a number or a signal name (with or without "SIG").
func validSignal(s string) bool {
	if n, err := strconv.Atoi(s); err == nil {
		return n > 0 && n < 65
	}
	name := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if strings.HasPrefix(name, "RTMIN") || strings.HasPrefix(name, "RTMAX") {
		return true
	}
	switch name {
	case "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "IOT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2", "PIPE", "ALRM", "TERM",
		"STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "POLL", "PWR", "SYS":
		return true
	}
	return false
}

// ParsePorts expands an EXPOSE word: "80", "80/udp", "8000-8002/tcp".
func ParsePorts(s string) ([]string, error) {
	spec, proto, _ := strings.Cut(s, "/")
	if proto == "" {
		proto = "tcp"
	}
	proto = strings.ToLower(proto)
	switch proto {
	case "tcp", "udp", "sctp":
	default:
		return nil, fmt.Errorf("invalid proto: %s: %w", proto, errdefs.ErrInvalid)
	}
	lo, hi, isRange := strings.Cut(spec, "-")
	start, err := strconv.ParseUint(lo, 10, 16)
	if err != nil || start == 0 {
		return nil, fmt.Errorf("invalid containerPort: %s: %w", spec, errdefs.ErrInvalid)
	}
	end := start
	if isRange {
		if end, err = strconv.ParseUint(hi, 10, 16); err != nil || end < start {
			return nil, fmt.Errorf("invalid range specified for containerPort: %s: %w", spec, errdefs.ErrInvalid)
		}
	}
	if end-start > 1<<12 {
		return nil, fmt.Errorf("port range %s too large: %w", spec, errdefs.ErrInvalid)
	}
	var out []string
	for p := start; p <= end; p++ {
		out = append(out, strconv.FormatUint(p, 10)+"/"+proto)
	}
	return out, nil
}
