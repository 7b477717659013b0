package volumes

import (
	"encoding/json"
	"errors"
	"path"
	"strings"
	"testing"

	"github.com/cais-platform/cais/errdefs"
)

// A -v value or a --mount entry comes from the API's user: parsing never
// panics, fails only with invalid-request errors, and what it accepts has
// a clean absolute destination other than "/", and a bind an absolute
// source.
func FuzzPlan(f *testing.F) {
	f.Add("/srv:/data:ro", `{"Type":"volume","Source":"v1","Target":"/x"}`, "/run", "size=1m")
	f.Add("data:/d:nocopy", `{"Type":"tmpfs","Target":"/t","TmpfsOptions":{"SizeBytes":1,"Mode":511,"Options":[["exec"]]}}`, "/a/../b", "")
	f.Add("/c", `{"Type":"bind","Source":"/h/../x","Target":"/c/./d","BindOptions":{"Propagation":"rshared"}}`, "/", "ro")
	f.Add("a:b:c:d", `{}`, "", ",")
	f.Fuzz(func(t *testing.T, bind, mountJSON, tmpfsDst, tmpfsOpts string) {
		var m Mount
		var mounts []Mount
		if json.Unmarshal([]byte(mountJSON), &m) == nil {
			mounts = append(mounts, m)
		}
		mps, err := Plan(PlanInput{Binds: []string{bind}, Mounts: mounts, Tmpfs: map[string]string{tmpfsDst: tmpfsOpts}, Volumes: map[string]struct{}{"/vol": {}}})
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("error of the wrong kind: %v", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, mp := range mps {
			d := mp.Destination
			if !path.IsAbs(d) || path.Clean(d) != d || d == "/" || seen[d] || strings.IndexByte(d, 0) >= 0 {
				t.Fatalf("bad destination %q in %+v", d, mps)
			}
			seen[d] = true
			if mp.Type == TypeBind && (!path.IsAbs(mp.Source) || path.Clean(mp.Source) != mp.Source) {
				t.Fatalf("bad bind source %q", mp.Source)
			}
			if mp.Type == TypeVolume && !mp.Anonymous && ValidateName(mp.Name) != nil {
				t.Fatalf("bad volume name %q", mp.Name)
			}
		}
	})
}
