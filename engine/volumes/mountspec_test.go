package volumes

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/cais-platform/cais/errdefs"
)

func TestParseBind(t *testing.T) {
	for spec, want := range map[string]MountPoint{
		"/srv:/data:ro":      {Type: TypeBind, Source: "/srv", Destination: "/data", RW: false, Mode: "ro", Propagation: "rprivate", CreateSource: true},
		"/srv/:/data/x/../y": {Type: TypeBind, Source: "/srv", Destination: "/data/y", RW: true, Propagation: "rprivate", CreateSource: true},
		"data:/data":         {Type: TypeVolume, Name: "data", Destination: "/data", RW: true},
		"data:/data:nocopy":  {Type: TypeVolume, Name: "data", Destination: "/data", RW: true, Mode: "nocopy", NoCopy: true},
		"/cache":             {Type: TypeVolume, Destination: "/cache", RW: true, Anonymous: true},
		"/a:/b:rshared,ro":   {Type: TypeBind, Source: "/a", Destination: "/b", Mode: "rshared,ro", Propagation: "rshared", CreateSource: true},
	} {
		got, err := ParseBind(spec)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ParseBind(%q) = %+v, %v; want %+v", spec, got, err, want)
		}
	}
	for spec, msg := range map[string]string{
		"data:rel":        "mount path must be absolute",
		"/a:/":            "destination can't be '/'",
		"x:/data":         "includes invalid characters for a local volume name",
		"-x:/data":        "includes invalid characters",
		"/a:/b:bogus":     "invalid mode: bogus",
		"/a:/b:c:d":       "too many colons",
		":/b":             "empty section",
		"data:/d:rshared": "invalid mode: rshared",
		"/a:/b:nocopy":    "invalid mode: nocopy",
	} {
		_, err := ParseBind(spec)
		if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseBind(%q) = %v; want an invalid-request error with %q", spec, err, msg)
		}
	}
}

func TestParseMount(t *testing.T) {
	mp, err := ParseMount(Mount{Type: "volume", Source: "data", Target: "/d", ReadOnly: true, VolumeOptions: &VolumeOptions{NoCopy: true, DriverConfig: &DriverConfig{Name: "cais", Options: map[string]string{"volume": "v"}}}})
	if err != nil || mp.Name != "data" || mp.RW || !mp.NoCopy || mp.DriverConfig.Name != "cais" {
		t.Errorf("volume mount: %+v %v", mp, err)
	}
	mp, err = ParseMount(Mount{Type: "tmpfs", Target: "/t", TmpfsOptions: &TmpfsOptions{SizeBytes: 1 << 20, Mode: 0o1777}})
	if err != nil || !reflect.DeepEqual(mp.Options, []string{"nosuid", "nodev", "noexec", "size=1048576", "mode=1777"}) {
		t.Errorf("tmpfs mount: %+v %v", mp, err)
	}
	mp, err = ParseMount(Mount{Type: "bind", Source: "/h", Target: "/c", BindOptions: &BindOptions{Propagation: "rslave"}})
	if err != nil || mp.Source != "/h" || mp.Propagation != "rslave" || mp.CreateSource {
		t.Errorf("bind mount: %+v %v", mp, err)
	}
	for name, m := range map[string]Mount{
		"no target":        {Type: "volume", Source: "x1"},
		"relative target":  {Type: "volume", Target: "d"},
		"bind no source":   {Type: "bind", Target: "/d"},
		"bind relative":    {Type: "bind", Source: "h", Target: "/d"},
		"tmpfs source":     {Type: "tmpfs", Source: "x", Target: "/d"},
		"unknown type":     {Type: "npipe", Target: "/d"},
		"no type":          {Target: "/d"},
		"volume subpath":   {Type: "volume", Source: "ab", Target: "/d", VolumeOptions: &VolumeOptions{Subpath: "x"}},
		"bind with volopt": {Type: "bind", Source: "/h", Target: "/d", VolumeOptions: &VolumeOptions{}},
		"bad propagation":  {Type: "bind", Source: "/h", Target: "/d", BindOptions: &BindOptions{Propagation: "x"}},
		"tmpfs bad option": {Type: "tmpfs", Target: "/d", TmpfsOptions: &TmpfsOptions{Options: [][]string{{"a,b"}}}},
	} {
		if _, err := ParseMount(m); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%s: %v, want an invalid-request error", name, err)
		}
	}
}

func TestPlan(t *testing.T) {
	mps, err := Plan(PlanInput{
		Binds:   []string{"data:/var/lib/data", "/host:/etc/app:ro"},
		Mounts:  []Mount{{Type: "volume", Target: "/anon"}},
		Tmpfs:   map[string]string{"/run": "size=1m"},
		Volumes: map[string]struct{}{"/var/lib/data": {}, "/image/vol": {}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range mps {
		got = append(got, m.Type+":"+m.Name+":"+m.Destination)
	}
	// By depth, then in the order given: binds, mounts, tmpfs, declared.
	want := []string{"volume::/anon", "tmpfs::/run", "bind::/etc/app", "volume::/image/vol", "volume:data:/var/lib/data"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("plan %v, want %v", got, want)
	}
	if !mps[0].Anonymous || !mps[3].Anonymous || mps[4].Anonymous {
		t.Errorf("anonymous flags: %+v", mps)
	}
	_, err = Plan(PlanInput{Binds: []string{"a1:/d"}, Mounts: []Mount{{Type: "tmpfs", Target: "/d/"}}})
	if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "Duplicate mount point: /d") {
		t.Errorf("duplicate: %v", err)
	}
}

func TestParseLocalOptions(t *testing.T) {
	m, err := ParseLocalOptions(map[string]string{"type": "tmpfs", "device": "tmpfs", "o": "size=1m,ro,uid=1000"})
	if err != nil || m.Type != "tmpfs" || m.Data != "size=1m,uid=1000" || m.Flags == 0 {
		t.Errorf("%+v %v", m, err)
	}
	if m, err := ParseLocalOptions(nil); m != nil || err != nil {
		t.Errorf("no options: %+v %v", m, err)
	}
	for _, o := range []map[string]string{{"type": "tmpfs"}, {"bogus": "1"}, {"type": "none", "device": "/x", "o": "bind"}} {
		if _, err := ParseLocalOptions(o); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%v: %v", o, err)
		}
	}
}

func TestPoolVolume(t *testing.T) {
	if n, err := PoolVolume(map[string]string{"volume": "distvol"}); n != "distvol" || err != nil {
		t.Errorf("%q %v", n, err)
	}
	for _, o := range []map[string]string{nil, {"vol": "x"}, {"volume": ""}} {
		if _, err := PoolVolume(o); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%v: %v", o, err)
		}
	}
}
