package builder

import (
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/cais-platform/cais/dockerfile"
)

func TestCacheKey(t *testing.T) {
	parent := digest.FromString("parent")
	step := dockerfile.Step{Kind: dockerfile.StepRun, CreatedBy: "/bin/sh -c make", Args: []string{"/bin/sh", "-c", "make"}, Env: []string{"A=1"}}
	k := cacheKey(parent, &step, "")
	if cacheKey(parent, &step, "") != k {
		t.Fatal("the same step gave two keys")
	}
	other := step
	other.Env = []string{"A=2"}
	copyStep := dockerfile.Step{Kind: dockerfile.StepCopy, CreatedBy: "COPY a in /", Copy: &dockerfile.CopySpec{Sources: []string{"a"}, Dest: "/", FromStage: -1}}
	keys := map[string]string{
		"step":         k,
		"other parent": cacheKey(digest.FromString("other"), &step, ""),
		"scratch":      cacheKey("", &step, ""),
		"other env":    cacheKey(parent, &other, ""),
		"copy":         cacheKey(parent, &copyStep, "sum1"),
		"copy changed": cacheKey(parent, &copyStep, "sum2"),
	}
	seen := map[string]string{}
	for name, key := range keys {
		if prev, dup := seen[key]; dup {
			t.Errorf("%s and %s share a cache key", name, prev)
		}
		seen[key] = name
	}
}
