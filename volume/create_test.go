package volume_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/volume"
)

// brickWords returns n distinct bricks, one per host.
func brickWords(n int) string {
	words := make([]string, n)
	for i := range words {
		words[i] = fmt.Sprintf("host%d:/data/brick%d", i+1, i+1)
	}
	return strings.Join(words, " ")
}

// createCase is one `volume create` command line that parses.
type createCase struct {
	name       string
	args       string // %s is replaced by brickWords(bricks)
	bricks     int
	layout     volume.Layout
	force      bool
	wantWarn   string // a warning that must be given; "" means none at all
	wantBricks []volume.BrickRef
}

func (c createCase) words() []string {
	return strings.Fields(strings.ReplaceAll(c.args, "%s", brickWords(c.bricks)))
}

var validCreates = []createCase{
	{name: "one brick", args: "gv0 %s", bricks: 1},
	{name: "distribute", args: "gv0 %s", bricks: 3},
	{name: "replica 3", args: "gv0 replica 3 %s", bricks: 3, layout: volume.Layout{Replica: 3}},
	{name: "distributed replica 3", args: "gv0 replica 3 %s", bricks: 6, layout: volume.Layout{Replica: 3}},
	{name: "replica 2 warns", args: "gv0 replica 2 %s", bricks: 2, layout: volume.Layout{Replica: 2}, wantWarn: "split-brain"},
	{name: "replica 2 arbiter 1 is replica 3", args: "gv0 replica 2 arbiter 1 %s", bricks: 3, layout: volume.Layout{Replica: 3, Arbiter: 1}},
	{name: "replica 3 arbiter 1", args: "gv0 replica 3 arbiter 1 %s", bricks: 6, layout: volume.Layout{Replica: 3, Arbiter: 1}},
	{name: "stripe", args: "gv0 stripe 2 %s", bricks: 4, layout: volume.Layout{Stripe: 2}},
	{name: "stripe replica", args: "gv0 stripe 2 replica 3 %s", bricks: 12, layout: volume.Layout{Stripe: 2, Replica: 3}},
	{name: "replica before stripe", args: "gv0 replica 3 stripe 2 %s", bricks: 6, layout: volume.Layout{Stripe: 2, Replica: 3}},
	{name: "disperse 3", args: "gv0 disperse 3 %s", bricks: 3, layout: volume.Layout{Disperse: 3, Redundancy: 1}},
	{name: "disperse without count uses all bricks", args: "gv0 disperse %s", bricks: 6, layout: volume.Layout{Disperse: 6, Redundancy: 2}, wantWarn: "optimal redundancy for this configuration is 2"},
	{name: "disperse 4 is not optimal", args: "gv0 disperse 4 %s", bricks: 4, layout: volume.Layout{Disperse: 4, Redundancy: 1}, wantWarn: "isn't an optimal redundancy"},
	{name: "disperse 12 default redundancy", args: "gv0 disperse 12 %s", bricks: 12, layout: volume.Layout{Disperse: 12, Redundancy: 4}, wantWarn: "is 4"},
	{name: "distributed disperse", args: "gv0 disperse 6 redundancy 1 %s", bricks: 12, layout: volume.Layout{Disperse: 6, Redundancy: 1}},
	{name: "disperse-data and redundancy", args: "gv0 disperse-data 4 redundancy 2 %s", bricks: 6, layout: volume.Layout{Disperse: 6, Redundancy: 2}},
	{name: "disperse-data alone", args: "gv0 disperse-data 4 %s", bricks: 5, layout: volume.Layout{Disperse: 5, Redundancy: 1}},
	{name: "disperse and disperse-data", args: "gv0 disperse 6 disperse-data 4 %s", bricks: 6, layout: volume.Layout{Disperse: 6, Redundancy: 2}},
	{name: "disperse without count and redundancy", args: "gv0 disperse redundancy 2 %s", bricks: 6, layout: volume.Layout{Disperse: 6, Redundancy: 2}},
	{name: "redundancy before disperse", args: "gv0 redundancy 1 disperse 3 %s", bricks: 3, layout: volume.Layout{Disperse: 3, Redundancy: 1}},
	{name: "transport tcp", args: "gv0 transport tcp %s", bricks: 2},
	{name: "transport TCP", args: "gv0 transport TCP %s", bricks: 2},
	{name: "force", args: "gv0 replica 3 %s force", bricks: 3, layout: volume.Layout{Replica: 3}, force: true},
	{name: "everything", args: "gv0 disperse 3 redundancy 1 transport tcp %s force", bricks: 6, layout: volume.Layout{Disperse: 3, Redundancy: 1}, force: true},
	{name: "plus sign count", args: "gv0 replica +3 %s", bricks: 3, layout: volume.Layout{Replica: 3}},
	{
		name: "paths are cleaned", args: "gv0 h1:/data/b1/ h2:/data/x/../b2 h3://data//b3", layout: volume.Layout{},
		wantBricks: []volume.BrickRef{{Host: "h1", Path: "/data/b1"}, {Host: "h2", Path: "/data/b2"}, {Host: "h3", Path: "/data/b3"}},
	},
	{
		name: "same path on two hosts", args: "gv0 replica 2 h1:/b h2:/b", layout: volume.Layout{Replica: 2}, wantWarn: "split-brain",
		wantBricks: []volume.BrickRef{{Host: "h1", Path: "/b"}, {Host: "h2", Path: "/b"}},
	},
	{
		name: "brick host named like a keyword", args: "gv0 replica:/b force:/b", layout: volume.Layout{},
		wantBricks: []volume.BrickRef{{Host: "replica", Path: "/b"}, {Host: "force", Path: "/b"}},
	},
}

func TestParseCreateArgs(t *testing.T) {
	for _, tt := range validCreates {
		t.Run(tt.name, func(t *testing.T) {
			words := tt.words()
			r, err := volume.ParseCreateArgs(words)
			if err != nil {
				t.Fatalf("ParseCreateArgs(%q) = %v", words, err)
			}
			if r.Name != "gv0" {
				t.Errorf("Name = %q, want gv0", r.Name)
			}
			if r.Layout != tt.layout {
				t.Errorf("Layout = %+v, want %+v", r.Layout, tt.layout)
			}
			if r.Transport != "tcp" {
				t.Errorf("Transport = %q, want tcp", r.Transport)
			}
			if r.Force != tt.force {
				t.Errorf("Force = %v, want %v", r.Force, tt.force)
			}
			want := tt.wantBricks
			if want == nil {
				for i := range tt.bricks {
					want = append(want, volume.BrickRef{Host: fmt.Sprintf("host%d", i+1), Path: fmt.Sprintf("/data/brick%d", i+1)})
				}
			}
			if !slices.Equal(r.Bricks, want) {
				t.Errorf("Bricks = %v, want %v", r.Bricks, want)
			}
			if tt.wantWarn == "" && len(r.Warnings) > 0 {
				t.Errorf("unexpected warnings %q", r.Warnings)
			}
			if tt.wantWarn != "" && !slices.ContainsFunc(r.Warnings, func(w string) bool { return strings.Contains(w, tt.wantWarn) }) {
				t.Errorf("warnings %q do not mention %q", r.Warnings, tt.wantWarn)
			}
		})
	}
}

func TestParseCreateArgsErrors(t *testing.T) {
	longPath := "/" + strings.Repeat("d", 4001)
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no words", nil, "usage: volume create"},
		{"no bricks", []string{"gv0"}, "No bricks specified"},
		{"only force", []string{"gv0", "force"}, "No bricks specified"},
		{"reserved name", strings.Fields("volume h1:/b"), "cannot be the name of a volume"},
		{"bad name", strings.Fields("gv.0 h1:/b"), "should not contain"},
		{"replica without count", strings.Fields("gv0 replica"), "replica needs a count"},
		{"replica word count", strings.Fields("gv0 replica three h1:/b"), `replica count "three" is not a positive number`},
		{"replica zero", strings.Fields("gv0 replica 0 h1:/b"), "is not a positive number"},
		{"replica negative", strings.Fields("gv0 replica -2 h1:/b h2:/b"), "is not a positive number"},
		{"replica huge", strings.Fields("gv0 replica 4097 h1:/b"), "is not a positive number"},
		{"replica 1", strings.Fields("gv0 replica 1 h1:/b"), "replica count should be greater than 1"},
		{"stripe 1", strings.Fields("gv0 stripe 1 h1:/b"), "stripe count should be greater than 1"},
		{"replica twice", strings.Fields("gv0 replica 2 replica 2 " + brickWords(2)), "replica option given twice"},
		{"stripe twice", strings.Fields("gv0 stripe 2 stripe 2 " + brickWords(2)), "stripe option given twice"},
		{"redundancy twice", strings.Fields("gv0 disperse 3 redundancy 1 redundancy 1 " + brickWords(3)), "redundancy option given twice"},
		{"disperse-data twice", strings.Fields("gv0 disperse-data 2 disperse-data 2 " + brickWords(3)), "disperse-data option given twice"},
		{"disperse twice without count", strings.Fields("gv0 disperse disperse 3 " + brickWords(3)), "disperse option given twice"},
		{"disperse twice with count", strings.Fields("gv0 disperse 3 disperse " + brickWords(3)), "disperse option given twice"},
		{"disperse counts twice", strings.Fields("gv0 disperse 3 disperse 3 " + brickWords(3)), "disperse option given twice"},
		{"disperse zero", strings.Fields("gv0 disperse 0 " + brickWords(3)), "disperse count \"0\" is not a positive number"},
		{"arbiter first", strings.Fields("gv0 arbiter 1 replica 3 " + brickWords(3)), "arbiter option must be preceded by replica option"},
		{"arbiter twice", strings.Fields("gv0 replica 2 arbiter 1 arbiter 1 " + brickWords(3)), "arbiter option given twice"},
		{"arbiter 2", strings.Fields("gv0 replica 3 arbiter 2 " + brickWords(3)), "For arbiter configuration"},
		{"arbiter with replica 4", strings.Fields("gv0 replica 4 arbiter 1 " + brickWords(4)), "For arbiter configuration"},
		{"arbiter needs count", strings.Fields("gv0 replica 3 arbiter"), "arbiter needs a count"},
		{"transport rdma", strings.Fields("gv0 transport rdma h1:/b"), "transport rdma is not supported"},
		{"transport RDMA", strings.Fields("gv0 transport RDMA h1:/b"), "transport rdma is not supported"},
		{"transport tcp,rdma", strings.Fields("gv0 transport tcp,rdma h1:/b"), "transport tcp,rdma is not supported"},
		{"transport unknown", strings.Fields("gv0 transport udp h1:/b"), `unknown transport "udp"`},
		{"transport without type", strings.Fields("gv0 transport"), "transport needs a type"},
		{"force in the middle", strings.Fields("gv0 h1:/b force h2:/b"), "force must be the last word"},
		{"force twice", strings.Fields("gv0 h1:/b force force"), "force must be the last word"},
		{"force first", strings.Fields("gv0 force h1:/b"), "Wrong brick type: force"},
		{"keyword after bricks", strings.Fields("gv0 h1:/b h2:/b replica 2"), "Wrong brick type: replica"},
		{"duplicate brick", strings.Fields("gv0 h1:/b h1:/b"), "Found duplicate exports h1:/b"},
		{"duplicate after cleaning", strings.Fields("gv0 h1:/b h1:/b/ "), "Found duplicate exports h1:/b"},
		{"brick without colon", strings.Fields("gv0 h1"), "Wrong brick type: h1"},
		{"brick without host", strings.Fields("gv0 :/b"), "Wrong brick type"},
		{"relative brick path", strings.Fields("gv0 h1:data/b"), "Wrong brick type"},
		{"empty brick path", strings.Fields("gv0 h1:"), "Wrong brick type"},
		{"root brick", strings.Fields("gv0 h1:/"), "the root directory cannot be a brick"},
		{"root brick after cleaning", strings.Fields("gv0 h1:/data/.."), "the root directory cannot be a brick"},
		{"host with slash", strings.Fields("gv0 h/1:/b"), "Wrong brick type"},
		{"host with space", []string{"gv0", "h 1:/b"}, "Wrong brick type"},
		{"path with newline", []string{"gv0", "h1:/b\nc"}, "Wrong brick type"},
		{"path with NUL", []string{"gv0", "h1:/b\x00c"}, "Wrong brick type"},
		{"path too long", []string{"gv0", "h1:" + longPath}, "is too long"},
		{"replica not a multiple", strings.Fields("gv0 replica 3 " + brickWords(4)), "not a multiple of replica count"},
		{"stripe not a multiple", strings.Fields("gv0 stripe 2 " + brickWords(3)), "not a multiple of stripe count"},
		{"stripe replica not a multiple", strings.Fields("gv0 stripe 2 replica 2 " + brickWords(6)), "stripe count x replica count (2 x 2)"},
		{"disperse not a multiple", strings.Fields("gv0 disperse 3 " + brickWords(4)), "not a multiple of disperse count"},
		{"disperse 2", strings.Fields("gv0 disperse 2 " + brickWords(2)), "disperse count must be greater than 2"},
		{"disperse of two bricks", strings.Fields("gv0 disperse " + brickWords(2)), "disperse count must be greater than 2"},
		{"redundancy too high", strings.Fields("gv0 disperse 4 redundancy 2 " + brickWords(4)), "redundancy must be greater than or equal to 1 and less than 2"},
		{"redundancy alone", strings.Fields("gv0 redundancy 1 " + brickWords(3)), "redundancy needs disperse or disperse-data"},
		{"data plus redundancy mismatch", strings.Fields("gv0 disperse 6 disperse-data 3 redundancy 2 " + brickWords(6)), "disperse count (6) must equal disperse-data count (3) plus redundancy (2)"},
		{"replica and disperse", strings.Fields("gv0 replica 2 disperse 4 " + brickWords(4)), "replicated-dispersed volume is not supported"},
		{"stripe and disperse", strings.Fields("gv0 stripe 2 disperse 4 " + brickWords(4)), "striped-dispersed volume is not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := volume.ParseCreateArgs(tt.args)
			if err == nil {
				t.Fatalf("ParseCreateArgs(%q) succeeded, want an error mentioning %q", tt.args, tt.wantErr)
			}
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not mention %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseBrick(t *testing.T) {
	tests := []struct {
		in   string
		want volume.BrickRef
		ok   bool
	}{
		{"server1:/data/brick1", volume.BrickRef{Host: "server1", Path: "/data/brick1"}, true},
		{"10.0.0.1:/b", volume.BrickRef{Host: "10.0.0.1", Path: "/b"}, true},
		{"h:/a/./b/", volume.BrickRef{Host: "h", Path: "/a/b"}, true},
		{"h:/a:b", volume.BrickRef{Host: "h", Path: "/a:b"}, true},
		{"h:/a b", volume.BrickRef{Host: "h", Path: "/a b"}, true},
		{"h", volume.BrickRef{}, false},
		{"h:", volume.BrickRef{}, false},
		{":/b", volume.BrickRef{}, false},
		{"h:b", volume.BrickRef{}, false},
		{"h:/", volume.BrickRef{}, false},
		{"h:/..", volume.BrickRef{}, false},
		{"h\t:/b", volume.BrickRef{}, false},
	}
	for _, tt := range tests {
		got, err := volume.ParseBrick(tt.in)
		if tt.ok {
			if err != nil || got != tt.want {
				t.Errorf("ParseBrick(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
			continue
		}
		if !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("ParseBrick(%q) = %+v, %v; want ErrInvalid", tt.in, got, err)
		}
	}
}

// sameRequest compares the parts of two requests a round trip through Args
// must keep (warnings are advice, not part of the request).
func sameRequest(t *testing.T, a, b volume.CreateRequest) {
	t.Helper()
	if a.Name != b.Name || a.Layout != b.Layout || a.Transport != b.Transport || a.Force != b.Force || !slices.Equal(a.Bricks, b.Bricks) {
		t.Fatalf("requests differ after a round trip through Args:\n  %+v\n  %+v", a, b)
	}
}

func TestCreateRequestArgsRoundTrip(t *testing.T) {
	for _, tt := range validCreates {
		t.Run(tt.name, func(t *testing.T) {
			r, err := volume.ParseCreateArgs(tt.words())
			if err != nil {
				t.Fatal(err)
			}
			again, err := volume.ParseCreateArgs(r.Args())
			if err != nil {
				t.Fatalf("ParseCreateArgs(%q) (the Args of a parsed request) = %v", r.Args(), err)
			}
			sameRequest(t, r, again)
		})
	}
}

// TestCreateRequestArgsRoundTripLargeDisperse: a disperse set whose size
// comes from the brick count (or from disperse-data plus redundancy) is not
// held to the 4096 limit the explicit counts are, so the request parses but
// its own Args do not.
func TestCreateRequestArgsRoundTripLargeDisperse(t *testing.T) {
	for _, args := range [][]string{
		strings.Fields("gv0 disperse " + brickWords(4097)),
		strings.Fields("gv0 disperse-data 4096 redundancy 1 " + brickWords(4097)),
	} {
		r, err := volume.ParseCreateArgs(args)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			continue // refusing is a correct answer too
		}
		again, err := volume.ParseCreateArgs(r.Args())
		if err != nil {
			t.Fatalf("request with layout %+v parses, but its Args do not: %v", r.Layout, err)
		}
		sameRequest(t, r, again)
	}
}

func placed(specs ...string) []volume.PlacedBrick {
	var out []volume.PlacedBrick
	for _, s := range specs {
		// NODE HOST:PATH
		node, name, _ := strings.Cut(s, " ")
		host, path, _ := strings.Cut(name, ":")
		out = append(out, volume.PlacedBrick{BrickRef: volume.BrickRef{Host: host, Path: path}, Node: node})
	}
	return out
}

func TestCheckPlacement(t *testing.T) {
	existing := []volume.Volume{{
		Name: "old",
		Bricks: []volume.Brick{
			{Host: "a", Path: "/data/old", Node: "A"},
			{Host: "b", Path: "/data/old", Node: "B"},
		},
	}}
	tests := []struct {
		name     string
		layout   volume.Layout
		bricks   []volume.PlacedBrick
		force    bool
		wantKind error // nil means allowed
		wantMsg  string
	}{
		{"replica on distinct nodes", volume.Layout{Replica: 2}, placed("A a:/b1", "B b:/b1"), false, nil, ""},
		{"replica on one node", volume.Layout{Replica: 2}, placed("A a:/b1", "A a:/b2"), false, errdefs.ErrNeedsForce, "replicate volume are present on the same server"},
		{"replica on one node forced", volume.Layout{Replica: 2}, placed("A a:/b1", "A a:/b2"), true, nil, ""},
		{"two host names of one node", volume.Layout{Replica: 2}, placed("A a:/b1", "A a.example.com:/b2"), false, errdefs.ErrNeedsForce, "same server"},
		{"second set on one node", volume.Layout{Replica: 2}, placed("A a:/b1", "B b:/b1", "C c:/b1", "C c:/b2"), false, errdefs.ErrNeedsForce, "same server"},
		{"sets share nodes but not within a set", volume.Layout{Replica: 2}, placed("A a:/b1", "B b:/b1", "A a:/b2", "B b:/b2"), false, nil, ""},
		{"arbiter on one node", volume.Layout{Replica: 3, Arbiter: 1}, placed("A a:/b1", "B b:/b1", "A a:/arb"), false, errdefs.ErrNeedsForce, "replicate volume"},
		{"disperse on one node", volume.Layout{Disperse: 3, Redundancy: 1}, placed("A a:/b1", "B b:/b1", "B b:/b2"), false, errdefs.ErrNeedsForce, "disperse volume are present on the same server"},
		{"disperse on one node forced", volume.Layout{Disperse: 3, Redundancy: 1}, placed("A a:/b1", "B b:/b1", "B b:/b2"), true, nil, ""},
		{"stripe only on one node", volume.Layout{Stripe: 2}, placed("A a:/b1", "A a:/b2"), false, nil, ""},
		{"distribute on one node", volume.Layout{}, placed("A a:/b1", "A a:/b2", "A a:/b3"), false, nil, ""},
		{"same path on two nodes", volume.Layout{}, placed("A a:/b", "B b:/b"), false, nil, ""},
		{"duplicate in request", volume.Layout{}, placed("A a:/b", "A a2:/b"), false, errdefs.ErrInvalid, "Found duplicate exports a2:/b"},
		{"duplicate in request forced", volume.Layout{}, placed("A a:/b", "A a2:/b"), true, errdefs.ErrInvalid, "duplicate exports"},
		{"nested in request", volume.Layout{}, placed("A a:/b", "A a:/b/c"), true, errdefs.ErrInvalid, "Brick may be containing or be contained by brick a:/b of this command"},
		{"containing in request", volume.Layout{}, placed("A a:/b/c", "A a:/b"), true, errdefs.ErrInvalid, "contained by brick a:/b/c"},
		{"prefix but not nested", volume.Layout{}, placed("A a:/b", "A a:/bc"), false, nil, ""},
		{"equal to existing", volume.Layout{}, placed("A a:/data/old"), false, errdefs.ErrExists, "a:/data/old is already part of a volume (old)"},
		{"equal to existing forced", volume.Layout{}, placed("A a:/data/old"), true, errdefs.ErrExists, "already part of a volume"},
		{"inside existing forced", volume.Layout{}, placed("B b:/data/old/sub"), true, errdefs.ErrExists, "existing brick (b:/data/old of volume old)"},
		{"around existing forced", volume.Layout{}, placed("B b:/data"), true, errdefs.ErrExists, "existing brick (b:/data/old of volume old)"},
		{"existing path on another node", volume.Layout{}, placed("C c:/data/old"), false, nil, ""},
		{"sibling of existing", volume.Layout{}, placed("A a:/data/old2"), false, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := volume.CheckPlacement(tt.layout, tt.bricks, existing, tt.force)
			if tt.wantKind == nil {
				if err != nil {
					t.Fatalf("CheckPlacement = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tt.wantKind) {
				t.Fatalf("CheckPlacement = %v, want an error wrapping %v", err, tt.wantKind)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("CheckPlacement = %q, want it to mention %q", err, tt.wantMsg)
			}
		})
	}
}

// TestCheckPlacementStripedReplicaSets: in a striped-replicate volume the
// replica sets are Replica consecutive bricks inside each stripe set; two
// bricks of one node in different replica sets of the same stripe set
// are not "two bricks of one replica set".
func TestCheckPlacementStripedReplicaSets(t *testing.T) {
	l := volume.Layout{Stripe: 2, Replica: 2}
	if err := volume.CheckPlacement(l, placed("A a:/b1", "B b:/b1", "A a:/b2", "B b:/b2"), nil, false); err != nil {
		t.Errorf("stripe 2 replica 2 with each replica pair on two nodes: %v", err)
	}
	err := volume.CheckPlacement(l, placed("A a:/b1", "A a:/b2", "B b:/b1", "B b:/b2"), nil, false)
	if !errors.Is(err, errdefs.ErrNeedsForce) {
		t.Errorf("stripe 2 replica 2 with a replica pair on one node: %v, want ErrNeedsForce", err)
	}
}

func TestPathsOverlap(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"/data/b1", "/data/b1", true},
		{"/data/b1", "/data/b1/", true},
		{"/data/b1", "/data/b1/sub", true},
		{"/data/b1/sub", "/data/b1", true},
		{"/data", "/data/b1/deep/er", true},
		{"/data/b1", "/data/b10", false},
		{"/data/b10", "/data/b1", false},
		{"/data/b1", "/data/b2", false},
		{"/data/x/../b1", "/data/b1/c", true},
		{"/a", "/b/a", false},
	}
	for _, tt := range tests {
		if got := volume.PathsOverlap(tt.a, tt.b); got != tt.want {
			t.Errorf("PathsOverlap(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := volume.PathsOverlap(tt.b, tt.a); got != tt.want {
			t.Errorf("PathsOverlap(%q, %q) = %v, want %v (symmetry)", tt.b, tt.a, got, tt.want)
		}
	}
}

func TestPathsOverlapRoot(t *testing.T) {
	if !volume.PathsOverlap("/", "/data") || !volume.PathsOverlap("/data", "/") {
		t.Error(`PathsOverlap("/", "/data") = false; the root contains every path`)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name        string
		args        string
		wantArbiter []bool
	}{
		{"distribute", "gv0 " + brickWords(2), []bool{false, false}},
		{"replica 3", "gv0 replica 3 " + brickWords(6), []bool{false, false, false, false, false, false}},
		{"arbiter", "gv0 replica 3 arbiter 1 " + brickWords(6), []bool{false, false, true, false, false, true}},
		{"replica 2 arbiter 1", "gv0 replica 2 arbiter 1 " + brickWords(3), []bool{false, false, true}},
		{"disperse", "gv0 disperse 3 " + brickWords(3), []bool{false, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := volume.ParseCreateArgs(strings.Fields(tt.args))
			if err != nil {
				t.Fatal(err)
			}
			var pb []volume.PlacedBrick
			for i, b := range r.Bricks {
				pb = append(pb, volume.PlacedBrick{BrickRef: b, Node: fmt.Sprintf("node-%d", i)})
			}
			n := 0
			v := volume.New(r, pb, func() string { n++; return fmt.Sprintf("id-%d", n) })
			if n != len(pb)+1 {
				t.Errorf("ids called %d times, want one per brick plus one (%d)", n, len(pb)+1)
			}
			if v.Name != "gv0" || v.Status != volume.Created || v.Layout != r.Layout || v.Transport != "tcp" {
				t.Errorf("volume = %+v", v)
			}
			if !slices.Equal(v.Options, volume.DefaultReconfigured(r.Layout)) {
				t.Errorf("Options = %v, want the defaults for the layout %v", v.Options, volume.DefaultReconfigured(r.Layout))
			}
			ids := map[string]bool{v.ID: true}
			var arb []bool
			for i, b := range v.Bricks {
				if ids[b.ID] || b.ID == "" {
					t.Errorf("brick %d has ID %q, used already", i, b.ID)
				}
				ids[b.ID] = true
				if b.Host != pb[i].Host || b.Path != pb[i].Path || b.Node != pb[i].Node {
					t.Errorf("brick %d = %+v, want %+v", i, b, pb[i])
				}
				arb = append(arb, b.Arbiter)
			}
			if !slices.Equal(arb, tt.wantArbiter) {
				t.Errorf("arbiter flags = %v, want %v", arb, tt.wantArbiter)
			}
		})
	}
}

// checkParsed checks what must hold of any request ParseCreateArgs accepts.
func checkParsed(t *testing.T, r volume.CreateRequest) {
	t.Helper()
	if err := volume.CheckName(r.Name); err != nil {
		t.Fatalf("accepted name %q: %v", r.Name, err)
	}
	if err := r.Layout.Check(len(r.Bricks)); err != nil {
		t.Fatalf("accepted layout %+v for %d bricks: %v", r.Layout, len(r.Bricks), err)
	}
	if r.Transport != "tcp" {
		t.Fatalf("accepted transport %q", r.Transport)
	}
	seen := map[string]bool{}
	for _, b := range r.Bricks {
		if seen[b.Name()] {
			t.Fatalf("accepted duplicate brick %s", b.Name())
		}
		seen[b.Name()] = true
		again, err := volume.ParseBrick(b.Name())
		if err != nil || again != b {
			t.Fatalf("accepted brick %+v does not parse back: %+v, %v", b, again, err)
		}
	}
	sets := r.Layout.Sets(make([]volume.Brick, len(r.Bricks)))
	if len(sets)*r.Layout.GroupSize() != len(r.Bricks) {
		t.Fatalf("%d sets of %d do not cover %d bricks", len(sets), r.Layout.GroupSize(), len(r.Bricks))
	}
	if r.Layout.Type(len(r.Bricks)) == "" || r.Layout.BrickCount(len(r.Bricks)) == "" {
		t.Fatal("empty type or brick count")
	}
	again, err := volume.ParseCreateArgs(r.Args())
	if err != nil {
		t.Fatalf("Args %q of an accepted request do not parse: %v", r.Args(), err)
	}
	sameRequest(t, r, again)
}

func FuzzParseCreateArgs(f *testing.F) {
	for _, c := range validCreates {
		f.Add(strings.Join(c.words(), " "))
	}
	for _, s := range []string{
		"", "gv0", "gv0 force", "gv0 disperse", "gv0 disperse 3", "gv0 replica 2 arbiter 1 a:/1 b:/1 c:/1 force",
		"gv0 arbiter 1", "gv0 h:/a force h:/b", "gv0 transport rdma h:/a", "gv0 disperse-data 2 redundancy 1 a:/1 b:/1 c:/1",
		"gv0 disperse disperse-data 2 a:/1 b:/1 c:/1", "gv0 stripe 2 replica 2 a:/1 b:/1 c:/1 d:/1", "gv0 h:/a h:/a/",
		"gv0 replica 3 stripe 2 disperse redundancy 1 a:/1", "all h:/x", "gv0 h:/.. h:/x/../y",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := volume.ParseCreateArgs(strings.Fields(s))
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("ParseCreateArgs(%q) = %v, which does not wrap ErrInvalid", s, err)
			}
			return
		}
		checkParsed(t, r)
	})
}

func FuzzCreateRequestJSON(f *testing.F) {
	for _, c := range validCreates {
		r, err := volume.ParseCreateArgs(c.words())
		if err != nil {
			f.Fatal(err)
		}
		b, err := json.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{}`, `null`, `[]`, `{"name":"gv0"}`,
		`{"name":"gv0","layout":{"replica":2,"arbiter":1},"bricks":[{"host":"a","path":"/1"},{"host":"b","path":"/1"},{"host":"c","path":"/1"}]}`,
		`{"name":"gv0","layout":{"disperse":6},"transport":"TCP","bricks":[{"host":"a","path":"/1"},{"host":"b","path":"/1"},{"host":"c","path":"/1"},{"host":"d","path":"/1"},{"host":"e","path":"/1"},{"host":"f","path":"/1"}]}`,
		`{"name":"gv0","layout":{"stripe":-1,"replica":0},"bricks":[{"host":"force","path":""}],"force":true}`,
		`{"name":"gv0","transport":"rdma","bricks":[{"host":"a","path":"/1"}]}`,
		`{"name":"gv0","bricks":[{"host":"a b","path":"/1"}]}`,
		`{"name":"gv0","bricks":[{"host":"a","path":"/1 force"}]}`,
		`{"name":"gv0","layout":{"arbiter":1},"bricks":[{"host":"a","path":"/1"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var req volume.CreateRequest
		if json.Unmarshal(data, &req) != nil {
			return
		}
		r, err := volume.ParseCreateArgs(req.Args())
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("ParseCreateArgs(%q) = %v, which does not wrap ErrInvalid", req.Args(), err)
			}
			return
		}
		checkParsed(t, r)
		// What the client asked for survives, apart from the spellings the
		// grammar normalises.
		if r.Name != req.Name || r.Force != req.Force || len(r.Bricks) != len(req.Bricks) {
			t.Fatalf("request %+v parsed as %+v", req, r)
		}
		if r.Layout.Stripe != max(req.Layout.Stripe, 0) || r.Layout.Disperse != max(req.Layout.Disperse, 0) {
			t.Fatalf("layout %+v parsed as %+v", req.Layout, r.Layout)
		}
	})
}
