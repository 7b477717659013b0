package dockerfile

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/cais-platform/cais/errdefs"
)

func mustParse(t *testing.T, src string) *Result {
	t.Helper()
	res, err := Parse(strings.NewReader(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return res
}

func TestParseNodes(t *testing.T) {
	src := "# syntax=docker/dockerfile:1\n" +
		"# escape=\\\n" +
		"\n" +
		"from --platform=linux/amd64 busybox AS Build\n" +
		"# a comment\n" +
		"RUN echo a \\\n" +
		"  # comment inside\n" +
		"\n" +
		"  && echo b\n" +
		"RUN [\"echo\", \"exec form\"]\n" +
		"RUN [not json\n" +
		"COPY --from=build --chown=1:2 a b /dst/\n" +
		"COPY [\"x y\", \"/z\"]\n" +
		"ENV A=1 B=\"two words\" C=3\\ 4\n" +
		"ENV legacy value with spaces\n" +
		"ARG X Y=2\n" +
		"LABEL \"k k\"=v\n" +
		"ONBUILD run echo hi\n" +
		"HEALTHCHECK --interval=5s CMD curl -f http://localhost/\n" +
		"HEALTHCHECK NONE\n" +
		"WORKDIR /a b\n" +
		"EXPOSE 80 443/udp\r\n" +
		"CMD\n"
	res := mustParse(t, src)
	if res.Syntax != "docker/dockerfile:1" || res.EscapeToken != '\\' {
		t.Errorf("directives: %q %q", res.Syntax, res.EscapeToken)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "Empty continuation") {
		t.Errorf("warnings = %q", res.Warnings)
	}
	type want struct {
		cmd        string
		flags      []string
		args       []string
		json       bool
		start, end int
	}
	wants := []want{
		{"from", []string{"--platform=linux/amd64"}, []string{"busybox", "AS", "Build"}, false, 4, 4},
		{"run", nil, []string{"echo a   && echo b"}, false, 6, 9},
		{"run", nil, []string{"echo", "exec form"}, true, 10, 10},
		{"run", nil, []string{"[not json"}, false, 11, 11},
		{"copy", []string{"--from=build", "--chown=1:2"}, []string{"a", "b", "/dst/"}, false, 12, 12},
		{"copy", nil, []string{"x y", "/z"}, true, 13, 13},
		{"env", nil, []string{"A", "1", "B", `"two words"`, "C", `3\ 4`}, false, 14, 14},
		{"env", nil, []string{"legacy", "value with spaces"}, false, 15, 15},
		{"arg", nil, []string{"X", "Y=2"}, false, 16, 16},
		{"label", nil, []string{`"k k"`, "v"}, false, 17, 17},
		{"onbuild", nil, []string{"run echo hi"}, false, 18, 18},
		{"healthcheck", []string{"--interval=5s"}, []string{"CMD", "curl -f http://localhost/"}, false, 19, 19},
		{"healthcheck", nil, []string{"NONE"}, false, 20, 20},
		{"workdir", nil, []string{"/a b"}, false, 21, 21},
		{"expose", nil, []string{"80", "443/udp"}, false, 22, 22},
		{"cmd", nil, nil, false, 23, 23},
	}
	if len(res.Nodes) != len(wants) {
		t.Fatalf("%d nodes, want %d", len(res.Nodes), len(wants))
	}
	for i, w := range wants {
		n := res.Nodes[i]
		if n.Cmd != w.cmd || !slices.Equal(n.Flags, w.flags) || !slices.Equal(n.Args, w.args) || n.JSON != w.json || n.StartLine != w.start || n.EndLine != w.end {
			t.Errorf("node %d = %s %q %q json=%v lines %d-%d; want %s %q %q json=%v lines %d-%d",
				i, n.Cmd, n.Flags, n.Args, n.JSON, n.StartLine, n.EndLine, w.cmd, w.flags, w.args, w.json, w.start, w.end)
		}
	}
	if next := res.Nodes[10].Next; next == nil || next.Cmd != "run" || next.Args[0] != "echo hi" {
		t.Errorf("ONBUILD trigger = %+v", next)
	}
}

func TestParseEscapeBacktick(t *testing.T) {
	res := mustParse(t, "# escape=`\nFROM windows\nRUN dir c:\\ `\n  && echo done\nCOPY a\\b c:\\dst\\\n")
	if res.EscapeToken != '`' {
		t.Fatalf("escape = %q", res.EscapeToken)
	}
	if got := res.Nodes[1].Args[0]; got != `dir c:\   && echo done` {
		t.Errorf("RUN = %q", got)
	}
	if got := res.Nodes[2].Args; !slices.Equal(got, []string{`a\b`, `c:\dst\`}) {
		t.Errorf("COPY = %q", got)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"unknown", "FROM busybox\n\nFOO bar\n", "dockerfile parse error line 3: unknown instruction: FOO"},
		{"unknown lower", "FROM busybox\nrun x \\\n  y\nfrobnicate\n", "dockerfile parse error line 4: unknown instruction: FROBNICATE"},
		{"unknown after continuation", "FROM busybox\nRUN a\n&& b\n", "dockerfile parse error line 3: unknown instruction: &&"},
		{"bad escape", "# escape=x\nFROM a\n", "dockerfile parse error line 1: invalid escape token 'x' does not match ` or \\"},
		{"two escapes", "# escape=`\n# escape=\\\nFROM a\n", "dockerfile parse error line 2: only one escape parser directive can be used"},
		{"onbuild onbuild", "FROM a\nONBUILD ONBUILD RUN x\n", "dockerfile parse error line 2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"},
		{"onbuild from", "FROM a\nONBUILD FROM b\n", "dockerfile parse error line 2: FROM isn't allowed as an ONBUILD trigger"},
		{"onbuild unknown", "FROM a\nONBUILD FOO\n", "dockerfile parse error line 2: unknown instruction: FOO"},
		{"env one word", "FROM a\nENV x\n", "dockerfile parse error line 2: ENV must have two arguments"},
		{"label no equals", "FROM a\nLABEL a=b c\n", `dockerfile parse error line 2: Syntax error - can't find = in "c". Must be of the form: name=value`},
		{"healthcheck type", "FROM a\nHEALTHCHECK RUN x\n", `dockerfile parse error line 2: Unknown type "RUN" in HEALTHCHECK (try CMD)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.src))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error = %v, want %q", err, tt.want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) || !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("error %v is not a ParseError and ErrInvalid", err)
			}
		})
	}
	for _, src := range []string{"", "# only a comment\n", "\n\n  \n"} {
		if _, err := Parse(strings.NewReader(src)); !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "cannot be empty") {
			t.Errorf("Parse(%q) = %v", src, err)
		}
	}
	if _, err := Parse(strings.NewReader("FROM a\nRUN " + strings.Repeat("x", MaxSize))); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("oversized: %v", err)
	}
}

func TestDirectivesStop(t *testing.T) {
	// A directive after a comment, an empty line or an instruction is a comment.
	for _, src := range []string{"# hello\n# escape=`\nFROM a\n", "\n# escape=`\nFROM a\n", "FROM a\n# escape=`\n"} {
		if res := mustParse(t, src); res.EscapeToken != '\\' {
			t.Errorf("%q: escape = %q", src, res.EscapeToken)
		}
	}
	if res := mustParse(t, "#ESCAPE = `\nFROM a\n"); res.EscapeToken != '`' {
		t.Errorf("case-insensitive directive: %q", res.EscapeToken)
	}
}

func TestParseStagesErrors(t *testing.T) {
	tests := []struct{ src, want string }{
		{"RUN x\nFROM a\n", "dockerfile parse error line 1: no build stage in current context"},
		{"ARG A\n", "dockerfile parse error line 1: no build stage in current context"},
		{"FROM a b\n", "dockerfile parse error line 1: FROM requires either one or three arguments"},
		{"FROM a AS 1x\n", `dockerfile parse error line 1: invalid name for build stage: "1x", name can't start with a number or contain symbols`},
		{"FROM a AS x\nFROM b AS X\n", `dockerfile parse error line 2: duplicate name "x"`},
		{"FROM a\nCOPY x\n", "dockerfile parse error line 2: COPY requires at least two arguments"},
		{"FROM a\nADD x\n", "dockerfile parse error line 2: ADD requires at least two arguments"},
		{"FROM a\nRUN\n", "dockerfile parse error line 2: RUN requires at least one argument"},
		{"FROM a\nWORKDIR\n", "dockerfile parse error line 2: WORKDIR requires exactly one argument"},
		{"FROM a\nUSER\n", "dockerfile parse error line 2: USER requires exactly one argument"},
		{"FROM a\nSHELL /bin/bash -c\n", "dockerfile parse error line 2: SHELL requires the arguments to be in JSON form"},
		{"FROM a\nEXPOSE\n", "dockerfile parse error line 2: EXPOSE requires at least one argument"},
		{"FROM a\nVOLUME [\"\"]\n", "dockerfile parse error line 2: VOLUME specified can not be an empty string"},
		{"FROM a\nCOPY --frm=x a b\n", "dockerfile parse error line 2: Unknown flag: frm"},
		{"FROM a\nCOPY --from a b\n", "dockerfile parse error line 2: Missing a value on flag: from"},
		{"FROM a\nRUN --mount=type=cache,target=/x true\n", "dockerfile parse error line 2: the --mount option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled"},
		{"FROM a\nHEALTHCHECK --retries=-1 CMD x\n", "dockerfile parse error line 2: --retries cannot be negative (-1)"},
		{"FROM a\nHEALTHCHECK --interval=1us CMD x\n", `dockerfile parse error line 2: Interval "interval" cannot be less than 1ms`},
		{"FROM a\nONBUILD COPY x\n", "dockerfile parse error line 2: COPY requires at least two arguments"},
		{"FROM a\nARG =x\n", "dockerfile parse error line 2: ARG names can not be blank"},
	}
	for _, tt := range tests {
		res, err := Parse(strings.NewReader(tt.src))
		if err == nil {
			_, err = ParseStages(res)
		}
		if err == nil || err.Error() != tt.want {
			t.Errorf("%q: error = %v, want %q", tt.src, err, tt.want)
		} else if !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%q: %v is not ErrInvalid", tt.src, err)
		}
	}
}

func TestParseStages(t *testing.T) {
	df, err := ParseStages(mustParse(t, "ARG V=1\nARG B\nFROM base:$V AS Build\nRUN make\nFROM scratch\nCOPY --from=build /out /\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(df.MetaArgs) != 2 || len(df.Stages) != 2 {
		t.Fatalf("meta %d stages %d", len(df.MetaArgs), len(df.Stages))
	}
	if s := df.Stages[0]; s.Name != "build" || s.BaseName != "base:$V" || len(s.Instructions) != 1 {
		t.Errorf("stage 0 = %+v", s)
	}
	c, ok := df.Stages[1].Instructions[0].(*CopyCmd)
	if !ok || c.From != "build" || !slices.Equal(c.Sources, []string{"/out"}) || c.Dest != "/" || c.Source().StartLine != 6 {
		t.Errorf("copy = %+v", df.Stages[1].Instructions[0])
	}
}
