package monitor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeState(t *testing.T, root, id, state string) string {
	t.Helper()
	dir := filepath.Join(root, id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte(state), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// deleteStopped removes a stopped container's cgroups and runc state, and
// leaves to runc delete what it does not expect.
func TestDeleteStopped(t *testing.T) {
	root := t.TempDir()
	for _, tc := range []struct{ state, err string }{
		{`{"cgroup_paths":{"memory":"/tmp/elsewhere"}}`, `unexpected cgroup path "/tmp/elsewhere"`},
		{`{"cgroup_paths":{"memory":"/sys/fs/cgroup/../../etc"}}`, "unexpected cgroup path"},
		{`{"cgroup_paths":{},"intel_rdt_path":"/sys/fs/resctrl/x"}`, "Intel RDT"},
		{`{"cgroup_paths":`, "runc state of c"},
	} {
		dir := writeState(t, root, "c", tc.state)
		err := deleteStopped(root, "c")
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: %v, want %q", tc.state, err, tc.err)
		}
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("%s: the state went though the delete was refused", tc.state)
		}
	}
	if err := deleteStopped(root, "missing"); err == nil {
		t.Error("a container without state: no error")
	}

	// A real cgroup, where this runs as root on cgroup v1.
	cg := filepath.Join("/sys/fs/cgroup/pids", "cais-monitor-test-"+filepath.Base(root))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Logf("no pids cgroup to make (%v): the state alone", err)
		cg = ""
	}
	paths := `{}`
	if cg != "" {
		t.Cleanup(func() { os.Remove(cg) })
		paths = `{"pids":"` + cg + `","":"` + cg + `"}`
	}
	dir := writeState(t, root, "d", `{"cgroup_paths":`+paths+`}`)
	if err := deleteStopped(root, "d"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("state left: %v", err)
	}
	if cg != "" {
		if _, err := os.Stat(cg); !os.IsNotExist(err) {
			t.Errorf("cgroup left: %v", err)
		}
	}
}
