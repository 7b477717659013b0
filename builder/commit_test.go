package builder

import (
	"slices"
	"strings"
	"testing"

	"github.com/cais-platform/cais/image/imageconfig"
)

func TestApplyChanges(t *testing.T) {
	base := imageconfig.Config{Env: []string{"PATH=/bin"}, Cmd: []string{"sh"}}
	got, err := ApplyChanges(base, []string{`CMD ["cat", "/x"]`, "ENV A=1 B=$A", "EXPOSE 80", "WORKDIR /w", "USER nobody", "LABEL k=v"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Cmd, []string{"cat", "/x"}) || !slices.Equal(got.Env, []string{"PATH=/bin", "A=1", "B=1"}) || got.WorkingDir != "/w" || got.User != "nobody" || got.Labels["k"] != "v" {
		t.Errorf("config %+v", got)
	}
	if _, ok := got.ExposedPorts["80/tcp"]; !ok {
		t.Errorf("ports %v", got.ExposedPorts)
	}
	if !slices.Equal(base.Env, []string{"PATH=/bin"}) {
		t.Errorf("the base config changed: %v", base.Env)
	}
	for _, bad := range []string{"RUN rm -rf /", "FROM busybox", "COPY a b", "FOO bar"} {
		if _, err := ApplyChanges(base, []string{bad}); err == nil {
			t.Errorf("change %q accepted", bad)
		}
	}
	if _, err := ApplyChanges(base, []string{"RUN true"}); err == nil || !strings.Contains(err.Error(), "RUN is not a valid change command") {
		t.Errorf("RUN: %v", err)
	}
}

func FuzzApplyChanges(f *testing.F) {
	f.Add("CMD [\"a\"]\nENV X=1")
	f.Add("ONBUILD RUN x")
	f.Add("LABEL \"a b\"=c\nVOLUME [\"/v\"]")
	f.Fuzz(func(t *testing.T, changes string) {
		ApplyChanges(imageconfig.Config{Env: []string{"PATH=/bin"}}, strings.Split(changes, "\n"))
	})
}
