package volume_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/volume"
)

func TestLayoutTypeAndBrickCount(t *testing.T) {
	tests := []struct {
		name      string
		layout    volume.Layout
		bricks    int
		wantType  string
		wantCount string
	}{
		{"single brick", volume.Layout{}, 1, "Distribute", "1"},
		{"distribute", volume.Layout{}, 2, "Distribute", "2"},
		{"replicate", volume.Layout{Replica: 3}, 3, "Replicate", "1 x 3 = 3"},
		{"replica 2", volume.Layout{Replica: 2}, 2, "Replicate", "1 x 2 = 2"},
		{"distributed replicate", volume.Layout{Replica: 3}, 6, "Distributed-Replicate", "2 x 3 = 6"},
		{"stripe", volume.Layout{Stripe: 4}, 4, "Stripe", "1 x 4 = 4"},
		{"distributed stripe", volume.Layout{Stripe: 2}, 4, "Distributed-Stripe", "2 x 2 = 4"},
		{"striped replicate", volume.Layout{Stripe: 2, Replica: 3}, 6, "Striped-Replicate", "1 x 2 x 3 = 6"},
		{"distributed striped replicate", volume.Layout{Stripe: 2, Replica: 3}, 12, "Distributed-Striped-Replicate", "2 x 2 x 3 = 12"},
		{"disperse", volume.Layout{Disperse: 6, Redundancy: 2}, 6, "Disperse", "1 x (4 + 2) = 6"},
		{"distributed disperse", volume.Layout{Disperse: 6, Redundancy: 2}, 12, "Distributed-Disperse", "2 x (4 + 2) = 12"},
		{"disperse 3", volume.Layout{Disperse: 3, Redundancy: 1}, 3, "Disperse", "1 x (2 + 1) = 3"},
		{"arbiter", volume.Layout{Replica: 3, Arbiter: 1}, 3, "Replicate", "1 x (2 + 1) = 3"},
		{"distributed arbiter", volume.Layout{Replica: 3, Arbiter: 1}, 6, "Distributed-Replicate", "2 x (2 + 1) = 6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.layout.Type(tt.bricks); got != tt.wantType {
				t.Errorf("Type(%d) = %q, want %q", tt.bricks, got, tt.wantType)
			}
			if got := tt.layout.BrickCount(tt.bricks); got != tt.wantCount {
				t.Errorf("BrickCount(%d) = %q, want %q", tt.bricks, got, tt.wantCount)
			}
			if err := tt.layout.Check(tt.bricks); err != nil {
				t.Errorf("Check(%d) = %v; the table holds valid layouts only", tt.bricks, err)
			}
		})
	}
}

func TestLayoutSets(t *testing.T) {
	var bricks []volume.Brick
	for i := range 12 {
		bricks = append(bricks, volume.Brick{ID: fmt.Sprint(i)})
	}
	tests := []struct {
		layout   volume.Layout
		sets     int
		setSize  int
		nBricks  int
		firstIDs []string
	}{
		{volume.Layout{}, 12, 1, 12, []string{"0"}},
		{volume.Layout{Replica: 3}, 4, 3, 12, []string{"0", "1", "2"}},
		{volume.Layout{Stripe: 2, Replica: 3}, 2, 6, 12, []string{"0", "1", "2", "3", "4", "5"}},
		{volume.Layout{Disperse: 4, Redundancy: 1}, 3, 4, 12, []string{"0", "1", "2", "3"}},
		// A trailing partial set is not a set.
		{volume.Layout{Replica: 5}, 2, 5, 12, []string{"0", "1", "2", "3", "4"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%+v", tt.layout), func(t *testing.T) {
			sets := tt.layout.Sets(bricks[:tt.nBricks])
			if len(sets) != tt.sets {
				t.Fatalf("got %d sets, want %d", len(sets), tt.sets)
			}
			for i, s := range sets {
				if len(s) != tt.setSize {
					t.Errorf("set %d has %d bricks, want %d", i, len(s), tt.setSize)
				}
				if s[0].ID != fmt.Sprint(i*tt.setSize) {
					t.Errorf("set %d starts at brick %s, want %d", i, s[0].ID, i*tt.setSize)
				}
			}
			var first []string
			for _, b := range sets[0] {
				first = append(first, b.ID)
			}
			if !slices.Equal(first, tt.firstIDs) {
				t.Errorf("first set = %v, want %v", first, tt.firstIDs)
			}
		})
	}
}

func TestLayoutCheck(t *testing.T) {
	tests := []struct {
		name    string
		layout  volume.Layout
		bricks  int
		wantErr string // "" means valid
	}{
		{"no bricks", volume.Layout{}, 0, "No bricks specified"},
		{"distribute", volume.Layout{}, 5, ""},
		{"replica 1", volume.Layout{Replica: 1}, 1, "replica count should be greater than 1"},
		{"stripe 1", volume.Layout{Stripe: 1}, 1, "stripe count should be greater than 1"},
		{"replica not multiple", volume.Layout{Replica: 3}, 4, "not a multiple of replica count"},
		{"stripe not multiple", volume.Layout{Stripe: 2}, 3, "not a multiple of stripe count"},
		{"stripe replica not multiple", volume.Layout{Stripe: 2, Replica: 2}, 6, "stripe count x replica count (2 x 2)"},
		{"disperse not multiple", volume.Layout{Disperse: 3, Redundancy: 1}, 4, "not a multiple of disperse count"},
		{"disperse and replica", volume.Layout{Disperse: 4, Redundancy: 1, Replica: 2}, 4, "replicated-dispersed"},
		{"disperse and stripe", volume.Layout{Disperse: 4, Redundancy: 1, Stripe: 2}, 4, "striped-dispersed"},
		{"disperse 2", volume.Layout{Disperse: 2, Redundancy: 1}, 2, "disperse count must be greater than 2"},
		{"redundancy 0", volume.Layout{Disperse: 4}, 4, "redundancy must be"},
		{"redundancy half", volume.Layout{Disperse: 4, Redundancy: 2}, 4, "less than 2"},
		{"redundancy max", volume.Layout{Disperse: 5, Redundancy: 2}, 5, ""},
		{"arbiter 2", volume.Layout{Replica: 3, Arbiter: 2}, 3, "For arbiter configuration"},
		{"arbiter with replica 4", volume.Layout{Replica: 4, Arbiter: 1}, 4, "For arbiter configuration"},
		{"arbiter", volume.Layout{Replica: 3, Arbiter: 1}, 9, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.layout.Check(tt.bricks)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Check(%d) = %v, want nil", tt.bricks, err)
				}
				return
			}
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("Check(%d) = %v, want an error wrapping ErrInvalid", tt.bricks, err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Check(%d) = %q, want it to mention %q", tt.bricks, err, tt.wantErr)
			}
		})
	}
}

// TestDefaultRedundancy checks the table gluster's CLI applies when
// "disperse N" is given without a redundancy.
func TestDefaultRedundancy(t *testing.T) {
	tests := []struct {
		disperse    int
		redundancy  int
		wantOptimal bool
	}{
		{3, 1, true},
		{4, 1, false},
		{5, 1, true},
		{6, 2, true},
		{7, 3, true},
		{8, 1, false},
		{9, 1, true},
		{10, 2, true},
		{11, 3, true},
		{12, 4, true},
		{16, 1, false},
		{17, 1, true},
		{20, 4, true},
	}
	for _, tt := range tests {
		r, optimal := volume.DefaultRedundancy(tt.disperse)
		if r != tt.redundancy || optimal != tt.wantOptimal {
			t.Errorf("DefaultRedundancy(%d) = %d, %v; want %d, %v", tt.disperse, r, optimal, tt.redundancy, tt.wantOptimal)
		}
	}
}

// TestDefaultRedundancyAlwaysValid checks the defaults against the layout
// rules: whatever is picked must make a valid disperse set, and an optimal
// pick must leave a power-of-two data count.
func TestDefaultRedundancyAlwaysValid(t *testing.T) {
	for d := 3; d <= 4096; d++ {
		r, optimal := volume.DefaultRedundancy(d)
		l := volume.Layout{Disperse: d, Redundancy: r}
		if err := l.Check(d); err != nil {
			t.Fatalf("disperse %d: default redundancy %d makes an invalid layout: %v", d, r, err)
		}
		data := d - r
		if optimal && data&(data-1) != 0 {
			t.Fatalf("disperse %d: redundancy %d reported optimal but data count %d is not a power of two", d, r, data)
		}
		if !optimal && r != 1 {
			t.Fatalf("disperse %d: not optimal must fall back to redundancy 1, got %d", d, r)
		}
	}
}

func TestCheckName(t *testing.T) {
	tests := []struct {
		name    string
		wantErr string // "" means valid
	}{
		{"gv0", ""},
		{"my_vol-1", ""},
		{"A", ""},
		{"-", "begins with a hyphen"},
		{"vol-", ""},
		{strings.Repeat("a", 256), ""},
		{strings.Repeat("a", 257), "exceeds 256 characters"},
		{"", "empty"},
		{"-vol", "begins with a hyphen"},
		{"my.vol", "should not contain '.'"},
		{"my vol", "should not contain ' '"},
		{"my/vol", "should not contain '/'"},
		{"vol\x00", "should not contain"},
		{"volé", "should not contain 'é'"},
		{"volume", "cannot be the name of a volume"},
		{"all", "cannot be the name of a volume"},
		{"force", "cannot be the name of a volume"},
		{"help", "cannot be the name of a volume"},
		{"end-volume", "cannot be the name of a volume"},
		{"snap-max-hard-limit", "cannot be the name of a volume"},
		{"activate-on-create", "cannot be the name of a volume"},
		// Reserved names are matched exactly.
		{"Volume", ""},
		{"volumes", ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%.20q", tt.name), func(t *testing.T) {
			err := volume.CheckName(tt.name)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckName(%q) = %v, want nil", tt.name, err)
				}
				return
			}
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("CheckName(%q) = %v, want ErrInvalid", tt.name, err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("CheckName(%q) = %q, want it to mention %q", tt.name, err, tt.wantErr)
			}
		})
	}
}

func TestVolumeOptionsKeepOrder(t *testing.T) {
	var v volume.Volume
	v.SetOption("a", "1")
	v.SetOption("b", "2")
	v.SetOption("c", "3")
	v.SetOption("a", "10") // replaced in place, not moved to the end
	want := []volume.Option{{Key: "a", Value: "10"}, {Key: "b", Value: "2"}, {Key: "c", Value: "3"}}
	if !slices.Equal(v.Options, want) {
		t.Fatalf("after set a,b,c,a: %v, want %v", v.Options, want)
	}
	if val, ok := v.Option("a"); !ok || val != "10" {
		t.Errorf("Option(a) = %q, %v; want 10, true", val, ok)
	}
	if _, ok := v.Option("zzz"); ok {
		t.Error("Option(zzz) reported set")
	}
	if !v.ResetOption("b") {
		t.Error("ResetOption(b) = false, want true")
	}
	if v.ResetOption("b") {
		t.Error("second ResetOption(b) = true, want false")
	}
	if v.ResetOption("missing") {
		t.Error("ResetOption(missing) = true, want false")
	}
	v.SetOption("b", "20") // set again: now the newest
	want = []volume.Option{{Key: "a", Value: "10"}, {Key: "c", Value: "3"}, {Key: "b", Value: "20"}}
	if !slices.Equal(v.Options, want) {
		t.Fatalf("after reset b and set b: %v, want %v", v.Options, want)
	}
	if !v.ResetOption("a") || !v.ResetOption("b") || !v.ResetOption("c") {
		t.Fatal("resetting every option failed")
	}
	if len(v.Options) != 0 {
		t.Errorf("options left after resetting all: %v", v.Options)
	}
}

func TestBricksOn(t *testing.T) {
	v := volume.Volume{Bricks: []volume.Brick{
		{ID: "1", Node: "n1"}, {ID: "2", Node: "n2"}, {ID: "3", Node: "n1"},
	}}
	var got []string
	for _, b := range v.BricksOn("n1") {
		got = append(got, b.ID)
	}
	if !slices.Equal(got, []string{"1", "3"}) {
		t.Errorf("BricksOn(n1) = %v, want [1 3]", got)
	}
	if b := v.BricksOn("n3"); len(b) != 0 {
		t.Errorf("BricksOn(n3) = %v, want none", b)
	}
}

func TestBrickName(t *testing.T) {
	b := volume.Brick{Host: "server1", Path: "/data/brick1"}
	if got := b.Name(); got != "server1:/data/brick1" {
		t.Errorf("Name() = %q", got)
	}
	r := volume.BrickRef{Host: "10.0.0.1", Path: "/b"}
	if got := r.Name(); got != "10.0.0.1:/b" {
		t.Errorf("BrickRef.Name() = %q", got)
	}
}

// brickCountTotal multiplies out a "Number of Bricks" string and returns
// the product and the total it claims.
func brickCountTotal(t *testing.T, s string) (product, total int) {
	t.Helper()
	var a, b, c, n int
	switch {
	case !strings.Contains(s, "="):
		if _, err := fmt.Sscanf(s, "%d", &n); err != nil {
			t.Fatalf("brick count %q: %v", s, err)
		}
		return n, n
	case strings.Contains(s, "("):
		if _, err := fmt.Sscanf(s, "%d x (%d + %d) = %d", &a, &b, &c, &n); err != nil {
			t.Fatalf("brick count %q: %v", s, err)
		}
		return a * (b + c), n
	case strings.Count(s, "x") == 2:
		if _, err := fmt.Sscanf(s, "%d x %d x %d = %d", &a, &b, &c, &n); err != nil {
			t.Fatalf("brick count %q: %v", s, err)
		}
		return a * b * c, n
	default:
		if _, err := fmt.Sscanf(s, "%d x %d = %d", &a, &b, &n); err != nil {
			t.Fatalf("brick count %q: %v", s, err)
		}
		return a * b, n
	}
}

// TestBrickCountArithmetic: the "Number of Bricks" of every layout the
// grammar accepts adds up to the number of bricks.
func TestBrickCountArithmetic(t *testing.T) {
	for _, c := range validCreates {
		r, err := volume.ParseCreateArgs(c.words())
		if err != nil {
			t.Fatal(err)
		}
		n := len(r.Bricks)
		s := r.Layout.BrickCount(n)
		if product, total := brickCountTotal(t, s); product != n || total != n {
			t.Errorf("%s: BrickCount(%d) = %q", c.name, n, s)
		}
	}
}

// TestStripedArbiter: "stripe 2 replica 2 arbiter 1" is accepted, but the
// layout code treats the whole stripe set as one arbiter set.
func TestStripedArbiter(t *testing.T) {
	r, err := volume.ParseCreateArgs(strings.Fields("gv0 stripe 2 replica 2 arbiter 1 " + brickWords(6)))
	if err != nil {
		if !errors.Is(err, errdefs.ErrInvalid) {
			t.Fatalf("error %v does not wrap ErrInvalid", err)
		}
		return // refusing the combination is a correct answer
	}
	if product, total := brickCountTotal(t, r.Layout.BrickCount(6)); product != 6 || total != 6 {
		t.Errorf("BrickCount(6) = %q", r.Layout.BrickCount(6))
	}
	var pb []volume.PlacedBrick
	for i, b := range r.Bricks {
		pb = append(pb, volume.PlacedBrick{BrickRef: b, Node: fmt.Sprint(i)})
	}
	v := volume.New(r, pb, func() string { return "id" })
	for i, b := range v.Bricks {
		if want := i%r.Layout.Replica == r.Layout.Replica-1; b.Arbiter != want {
			t.Errorf("brick %d: arbiter %v, want %v (one arbiter per replica set of %d)", i+1, b.Arbiter, want, r.Layout.Replica)
		}
	}
}
