package dockerfile

import (
	"errors"
	"strings"
	"testing"

	"github.com/cais-platform/cais/errdefs"
)

// FuzzParse parses, types and evaluates arbitrary Dockerfiles: no panic,
// and every failure of the text itself is an errdefs.ErrInvalid.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		multiStage,
		"FROM busybox\nRUN echo hi\n",
		"# escape=`\nFROM a\nRUN x `\n y\n",
		"# syntax=docker/dockerfile:1\nFROM a AS b\nCOPY --from=b [\"a\", \"b\"]\n",
		"FROM a\nENV A=${B:-${C:+x}} D='e' F=\"g h\"\n",
		"FROM a\nONBUILD RUN x\nHEALTHCHECK --interval=1s CMD [\"a\"]\n",
		"FROM a\nFOO bar\n",
		"FROM a\nRUN a \\\n\n# c\n  b\n",
		"ARG X=1\nFROM a:$X\nARG X\nEXPOSE ${X}-3/udp\n",
		"FROM a\nLABEL a=b \"c d\"=e\nVOLUME [\"/a\", \"/b\"]\nSTOPSIGNAL 9\nUSER u:g\nSHELL [\"sh\",\"-c\"]\n",
		"FROM a\nWORKDIR a\nWORKDIR ../b\nCOPY --chown=$U:${G:?g} . .\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		res, err := Parse(strings.NewReader(src))
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("Parse error %v is not ErrInvalid", err)
			}
			return
		}
		for _, n := range res.Nodes {
			if n.StartLine < 1 || n.EndLine < n.StartLine {
				t.Fatalf("node %q lines %d-%d", n.Cmd, n.StartLine, n.EndLine)
			}
		}
		df, err := ParseStages(res)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("ParseStages error %v is not ErrInvalid", err)
			}
			return
		}
		e, err := NewEvaluator(df, map[string]string{"X": "1"})
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("NewEvaluator error %v is not ErrInvalid", err)
			}
			return
		}
		for i := range df.Stages {
			p, err := e.Eval(i, Config{Env: []string{"PATH=/bin"}, OnBuild: []string{"RUN true"}})
			if err != nil {
				if !errors.Is(err, errdefs.ErrInvalid) {
					t.Fatalf("Eval error %v is not ErrInvalid", err)
				}
				continue
			}
			for _, s := range p.Steps {
				if s.Copy != nil && !strings.HasPrefix(s.Copy.Dest, "/") {
					t.Fatalf("copy destination %q is not absolute", s.Copy.Dest)
				}
				if s.Kind == StepRun && len(s.Args) == 0 {
					t.Fatalf("RUN without argv")
				}
			}
			if p.Config.WorkingDir != "" && !strings.HasPrefix(p.Config.WorkingDir, "/") {
				t.Fatalf("workdir %q is not absolute", p.Config.WorkingDir)
			}
		}
	})
}
