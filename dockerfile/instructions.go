package dockerfile

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cais-platform/cais/image/imageconfig"
)

// KeyValue is a name and a value, as written (not expanded).
type KeyValue struct{ Key, Value string }

// ArgDef is an ARG: a name and an optional default.
type ArgDef struct {
	Key   string
	Value *string
}

// Instruction is one typed instruction of a stage.
type Instruction interface {
	// Source returns the node the instruction came from (lines, text).
	Source() *Node
}

type base struct{ node *Node }

func (b base) Source() *Node { return b.node }

// Instructions.
type (
	// RunCmd runs a command in the image being built.
	RunCmd struct {
		base
		// Command is the exec form's argv, or the one shell-form string.
		Command []string
		// Shell is set for the shell form.
		Shell bool
	}
	// CmdCmd sets the default command.
	CmdCmd struct {
		base
		Command []string
		Shell   bool
	}
	// EntrypointCmd sets the entrypoint.
	EntrypointCmd struct {
		base
		Command []string
		Shell   bool
	}
	// CopyCmd copies files from the context, a stage or an image (COPY),
	// or also from URLs and local archives, which it unpacks (ADD).
	CopyCmd struct {
		base
		Add                bool
		Sources            []string
		Dest               string
		From, Chown, Chmod string
	}
	// EnvCmd sets environment variables.
	EnvCmd struct {
		base
		Vars []KeyValue
	}
	// ArgCmd declares build arguments.
	ArgCmd struct {
		base
		Args []ArgDef
	}
	// LabelCmd sets labels.
	LabelCmd struct {
		base
		Labels []KeyValue
	}
	// WorkdirCmd sets (and makes) the working directory.
	WorkdirCmd struct {
		base
		Path string
	}
	// UserCmd sets the user.
	UserCmd struct {
		base
		User string
	}
	// ExposeCmd declares ports.
	ExposeCmd struct {
		base
		Ports []string
	}
	// VolumeCmd declares volumes.
	VolumeCmd struct {
		base
		Volumes []string
	}
	// StopSignalCmd sets the stop signal.
	StopSignalCmd struct {
		base
		Signal string
	}
	// HealthcheckCmd sets or disables the health check.
	HealthcheckCmd struct {
		base
		Health *Healthcheck
	}
	// ShellCmd sets the shell of shell forms.
	ShellCmd struct {
		base
		Shell []string
	}
	// OnbuildCmd records a trigger for images built FROM this one.
	OnbuildCmd struct {
		base
		Expression string
	}
	// MaintainerCmd sets the author (deprecated).
	MaintainerCmd struct {
		base
		Maintainer string
	}
)

// Healthcheck is HEALTHCHECK's value, as an image config keeps it.
type Healthcheck = imageconfig.Healthcheck

// Stage is a FROM and the instructions up to the next FROM.
type Stage struct {
	// Name is the AS name in lower case, or "".
	Name string
	// BaseName is the image or stage named by FROM, not expanded.
	BaseName string
	// Platform is the --platform flag, not expanded.
	Platform string
	// Node is the FROM instruction.
	Node         *Node
	Instructions []Instruction
}

// Dockerfile is a parsed Dockerfile in stages.
type Dockerfile struct {
	// MetaArgs are the ARGs before the first FROM; only FROM lines, and
	// stages that declare them again, see them.
	MetaArgs []*ArgCmd
	Stages   []*Stage
	// EscapeToken and Warnings as the parser found them.
	EscapeToken rune
	Syntax      string
	Warnings    []string
}

var stageNameRE = regexp.MustCompile(`^[a-z][a-z0-9-_.]*$`)

// ParseStages types a parse result's instructions and groups them into
// stages.
func ParseStages(res *Result) (*Dockerfile, error) {
	df := &Dockerfile{EscapeToken: res.EscapeToken, Syntax: res.Syntax, Warnings: res.Warnings}
	names := map[string]bool{}
	var cur *Stage
	for _, n := range res.Nodes {
		if n.Cmd == "from" {
			st, err := parseFrom(n)
			if err != nil {
				return nil, err
			}
			if st.Name != "" {
				if names[st.Name] {
					return nil, parseErr(n.StartLine, "duplicate name %q", st.Name)
				}
				names[st.Name] = true
			}
			df.Stages = append(df.Stages, st)
			cur = st
			continue
		}
		inst, err := typeInstruction(n)
		if err != nil {
			return nil, err
		}
		if cur == nil {
			a, ok := inst.(*ArgCmd)
			if !ok {
				return nil, parseErr(n.StartLine, "no build stage in current context")
			}
			df.MetaArgs = append(df.MetaArgs, a)
			continue
		}
		cur.Instructions = append(cur.Instructions, inst)
	}
	if len(df.Stages) == 0 {
		return nil, parseErr(res.Nodes[len(res.Nodes)-1].StartLine, "no build stage in current context")
	}
	return df, nil
}

func parseFrom(n *Node) (*Stage, error) {
	fl, err := parseFlags(n, "platform")
	if err != nil {
		return nil, err
	}
	st := &Stage{Node: n, Platform: fl["platform"]}
	switch {
	case len(n.Args) == 1:
	case len(n.Args) == 3 && strings.EqualFold(n.Args[1], "as"):
		st.Name = strings.ToLower(n.Args[2])
		if !stageNameRE.MatchString(st.Name) {
			return nil, parseErr(n.StartLine, "invalid name for build stage: %q, name can't start with a number or contain symbols", n.Args[2])
		}
	default:
		return nil, parseErr(n.StartLine, "FROM requires either one or three arguments")
	}
	st.BaseName = n.Args[0]
	return st, nil
}

// parseFlags checks a node's flags against the allowed names and returns
// their values ("true" for a flag without a value when bools allows it).
func parseFlags(n *Node, allowed ...string) (map[string]string, error) {
	out := map[string]string{}
	for _, f := range n.Flags {
		name, value, hasValue := strings.Cut(strings.TrimPrefix(f, "--"), "=")
		switch name {
		case "mount", "network", "security":
			if n.Cmd == "run" {
				return nil, parseErr(n.StartLine, "the --%s option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled", name)
			}
		}
		ok := false
		for _, a := range allowed {
			ok = ok || a == name
		}
		if !ok {
			return nil, parseErr(n.StartLine, "Unknown flag: %s", name)
		}
		if _, dup := out[name]; dup {
			return nil, parseErr(n.StartLine, "Duplicate flag specified: %s", name)
		}
		if !hasValue {
			if name != "link" && name != "keep-git-dir" {
				return nil, parseErr(n.StartLine, "Missing a value on flag: %s", name)
			}
			value = "true"
		}
		out[name] = value
	}
	return out, nil
}

func arityErr(n *Node, format string) error {
	return parseErr(n.StartLine, format, strings.ToUpper(n.Cmd))
}

const (
	errAtLeastOne  = "%s requires at least one argument"
	errExactlyOne  = "%s requires exactly one argument"
	errAtLeastTwo  = "%s requires at least two arguments"
	errJSONOnly    = "%s requires the arguments to be in JSON form"
	errBlankNames  = "%s names can not be blank"
	errTooManyArgs = "Bad input to %s, too many arguments"
)

func typeInstruction(n *Node) (Instruction, error) {
	b := base{n}
	flags := map[string][]string{
		"copy":        {"from", "chown", "chmod", "link"},
		"add":         {"chown", "chmod", "link", "keep-git-dir", "checksum"},
		"healthcheck": {"interval", "timeout", "start-period", "start-interval", "retries"},
	}
	fl, err := parseFlags(n, flags[n.Cmd]...)
	if err != nil {
		return nil, err
	}
	switch n.Cmd {
	case "run":
		if len(n.Args) == 0 {
			return nil, arityErr(n, errAtLeastOne)
		}
		return &RunCmd{base: b, Command: n.Args, Shell: !n.JSON}, nil
	case "cmd":
		return &CmdCmd{base: b, Command: n.Args, Shell: !n.JSON}, nil
	case "entrypoint":
		return &EntrypointCmd{base: b, Command: n.Args, Shell: !n.JSON}, nil
	case "shell":
		if !n.JSON {
			return nil, arityErr(n, errJSONOnly)
		}
		if len(n.Args) == 0 {
			return nil, arityErr(n, errAtLeastOne)
		}
		return &ShellCmd{base: b, Shell: n.Args}, nil
	case "copy", "add":
		if len(n.Args) < 2 {
			return nil, arityErr(n, errAtLeastTwo)
		}
		if n.Cmd == "add" && fl["checksum"] != "" {
			return nil, parseErr(n.StartLine, "ADD --checksum requires BuildKit")
		}
		return &CopyCmd{base: b, Add: n.Cmd == "add", Sources: n.Args[:len(n.Args)-1], Dest: n.Args[len(n.Args)-1],
			From: fl["from"], Chown: fl["chown"], Chmod: fl["chmod"]}, nil
	case "env", "label":
		if len(n.Args) == 0 {
			return nil, arityErr(n, errAtLeastOne)
		}
		var kvs []KeyValue
		for i := 0; i+1 < len(n.Args); i += 2 {
			if n.Args[i] == "" {
				return nil, arityErr(n, errBlankNames)
			}
			kvs = append(kvs, KeyValue{n.Args[i], n.Args[i+1]})
		}
		if n.Cmd == "env" {
			return &EnvCmd{base: b, Vars: kvs}, nil
		}
		return &LabelCmd{base: b, Labels: kvs}, nil
	case "arg":
		if len(n.Args) == 0 {
			return nil, arityErr(n, errAtLeastOne)
		}
		a := &ArgCmd{base: b}
		for _, w := range n.Args {
			k, v, hasValue := strings.Cut(w, "=")
			if k == "" {
				return nil, arityErr(n, errBlankNames)
			}
			d := ArgDef{Key: k}
			if hasValue {
				d.Value = &v
			}
			a.Args = append(a.Args, d)
		}
		return a, nil
	case "workdir", "user", "stopsignal", "maintainer":
		if len(n.Args) != 1 {
			return nil, arityErr(n, errExactlyOne)
		}
		switch n.Cmd {
		case "workdir":
			return &WorkdirCmd{base: b, Path: n.Args[0]}, nil
		case "user":
			return &UserCmd{base: b, User: n.Args[0]}, nil
		case "stopsignal":
			return &StopSignalCmd{base: b, Signal: n.Args[0]}, nil
		}
		return &MaintainerCmd{base: b, Maintainer: n.Args[0]}, nil
	case "expose":
		if len(n.Args) == 0 {
			return nil, arityErr(n, errAtLeastOne)
		}
		return &ExposeCmd{base: b, Ports: n.Args}, nil
	case "volume":
		if len(n.Args) == 0 {
			return nil, arityErr(n, errAtLeastOne)
		}
		for _, v := range n.Args {
			if strings.TrimSpace(v) == "" {
				return nil, parseErr(n.StartLine, "VOLUME specified can not be an empty string")
			}
		}
		return &VolumeCmd{base: b, Volumes: n.Args}, nil
	case "healthcheck":
		return parseHealthcheck(n, fl)
	case "onbuild":
		if _, err := typeInstruction(n.Next); err != nil {
			return nil, err
		}
		return &OnbuildCmd{base: b, Expression: n.Next.Original}, nil
	}
	return nil, parseErr(n.StartLine, "unknown instruction: %s", strings.ToUpper(n.Cmd))
}

func parseHealthcheck(n *Node, fl map[string]string) (Instruction, error) {
	if len(n.Args) == 0 {
		return nil, arityErr(n, errAtLeastOne)
	}
	if n.Args[0] == "NONE" {
		if len(fl) > 0 {
			return nil, parseErr(n.StartLine, "HEALTHCHECK NONE does not accept options")
		}
		return &HealthcheckCmd{base: base{n}, Health: &Healthcheck{Test: []string{"NONE"}}}, nil
	}
	h := &Healthcheck{}
	if n.JSON {
		h.Test = append([]string{"CMD"}, n.Args[1:]...)
	} else {
		h.Test = []string{"CMD-SHELL", n.Args[1]}
	}
	for name, dst := range map[string]*time.Duration{"interval": &h.Interval, "timeout": &h.Timeout, "start-period": &h.StartPeriod, "start-interval": &h.StartInterval} {
		v, ok := fl[name]
		if !ok {
			continue
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			return nil, parseErr(n.StartLine, "%s", err)
		}
		if d != 0 && d < time.Millisecond {
			return nil, parseErr(n.StartLine, "Interval %q cannot be less than %s", name, time.Millisecond)
		}
		*dst = d
	}
	if v, ok := fl["retries"]; ok {
		r, err := strconv.ParseInt(v, 10, 32)
		if err != nil {
			return nil, parseErr(n.StartLine, "%s", err)
		}
		if r < 0 {
			return nil, parseErr(n.StartLine, "--retries cannot be negative (%d)", r)
		}
		h.Retries = int(r)
	}
	return &HealthcheckCmd{base: base{n}, Health: h}, nil
}

// String renders a KeyValue as key=value.
func (kv KeyValue) String() string { return fmt.Sprintf("%s=%s", kv.Key, kv.Value) }
