package volume_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/volume"
)

func TestValidate(t *testing.T) {
	o := volume.NewOptions()
	tests := []struct {
		key, value string
		want       string // canonical value; ignored when wantErr is set
		wantErr    string
	}{
		// Booleans, in every spelling gluster takes, become on/off ...
		{"performance.read-ahead", "on", "on", ""},
		{"performance.read-ahead", "ON", "on", ""},
		{"performance.read-ahead", "yes", "on", ""},
		{"performance.read-ahead", "true", "on", ""},
		{"performance.read-ahead", "enable", "on", ""},
		{"performance.read-ahead", "1", "on", ""},
		{"performance.read-ahead", "off", "off", ""},
		{"performance.read-ahead", "No", "off", ""},
		{"performance.read-ahead", "FALSE", "off", ""},
		{"performance.read-ahead", "disable", "off", ""},
		{"performance.read-ahead", "0", "off", ""},
		{"performance.read-ahead", "maybe", "", "use on or off"},
		{"performance.read-ahead", "", "", "use on or off"},
		{"performance.read-ahead", "2", "", "use on or off"},
		// ... except where the default is spelled true/false.
		{"cluster.choose-local", "on", "true", ""},
		{"cluster.choose-local", "disable", "false", ""},
		{"cluster.choose-local", "TRUE", "true", ""},
		// Integers, within their ranges.
		{"network.ping-timeout", "10", "10", ""},
		{"network.ping-timeout", "0", "0", ""},
		{"network.ping-timeout", "1013", "1013", ""},
		{"network.ping-timeout", "042", "42", ""},
		{"network.ping-timeout", "+7", "7", ""},
		{"network.ping-timeout", "1014", "", "out of range 0 to 1013"},
		{"network.ping-timeout", "-1", "", "out of range"},
		{"network.ping-timeout", "ten", "", "not an integer"},
		{"network.ping-timeout", "1.5", "", "not an integer"},
		{"network.ping-timeout", "99999999999999999999", "", "not an integer"},
		{"storage.owner-uid", "-1", "-1", ""},
		{"storage.owner-uid", "-2", "", "out of range"},
		{"cluster.heal-timeout", "4", "", "out of range 5 to"},
		{"performance.io-thread-count", "64", "64", ""},
		{"performance.io-thread-count", "0", "", "out of range 1 to 64"},
		// Sizes keep the administrator's spelling.
		{"cluster.stripe-block-size", "128KB", "128KB", ""},
		{"cluster.stripe-block-size", "16KB", "16KB", ""},
		{"cluster.stripe-block-size", "16383", "", "out of range"},
		{"cluster.stripe-block-size", "1m", "1m", ""},
		{"cluster.stripe-block-size", "1TB", "1TB", ""},
		{"cluster.stripe-block-size", "1025GB", "", "out of range"},
		{"performance.cache-size", "32MB", "32MB", ""},
		{"performance.cache-size", "1G", "1G", ""},
		{"performance.cache-size", "0", "0", ""},
		{"performance.cache-size", "33GB", "", "out of range"},
		{"performance.cache-size", "1.5GB", "", "not a size"},
		{"performance.cache-size", "-1MB", "", "not a size"},
		{"performance.cache-size", "32 XB", "", "not a size"},
		{"performance.cache-size", "99999999999PB", "", "not a size"},
		{"performance.cache-size", "99999999999999999999", "", "not a size"},
		{"features.shard-block-size", "4MB", "4MB", ""},
		{"features.shard-block-size", "4095KB", "", "out of range"},
		{"performance.write-behind-window-size", "512KB", "512KB", ""},
		// Percentages or sizes.
		{"cluster.min-free-disk", "10%", "10%", ""},
		{"cluster.min-free-disk", "0%", "0%", ""},
		{"cluster.min-free-disk", "100%", "100%", ""},
		{"cluster.min-free-disk", "2.5%", "2.5%", ""},
		{"cluster.min-free-disk", "101%", "", "between 0% and 100%"},
		{"cluster.min-free-disk", "-1%", "", "between 0% and 100%"},
		{"cluster.min-free-disk", "ten%", "", "between 0% and 100%"},
		{"cluster.min-free-disk", "%", "", "between 0% and 100%"},
		{"cluster.min-free-disk", "5GB", "5GB", ""},
		{"cluster.min-free-disk", "lots", "", "a percentage like 10% or a size like 5GB"},
		{"storage.reserve", "1", "1", ""},
		// Enumerations, case-insensitive, canonicalised.
		{"cluster.lookup-unhashed", "AUTO", "auto", ""},
		{"cluster.lookup-unhashed", "Off", "off", ""},
		{"cluster.lookup-unhashed", "no", "", "use one of on, off, auto"},
		{"cluster.favorite-child-policy", "MTime", "mtime", ""},
		{"cluster.rebal-throttle", "Aggressive", "aggressive", ""},
		{"cluster.quorum-type", "fixed", "fixed", ""},
		{"cluster.quorum-type", "majority", "", "use one of none, auto, fixed"},
		{"transport.address-family", "INET6", "inet6", ""},
		// Log levels, upper-cased.
		{"diagnostics.brick-log-level", "debug", "DEBUG", ""},
		{"diagnostics.brick-log-level", "Warning", "WARNING", ""},
		{"diagnostics.client-log-level", "trace", "TRACE", ""},
		{"diagnostics.client-log-level", "none", "NONE", ""},
		{"diagnostics.client-log-level", "warn", "", "use DEBUG, INFO"},
		{"diagnostics.client-log-level", "", "", "use DEBUG, INFO"},
		// Address lists.
		{"auth.allow", "*", "*", ""},
		{"auth.allow", "192.168.1.*", "192.168.1.*", ""},
		{"auth.allow", "10.0.0.0/8,host.example.com", "10.0.0.0/8,host.example.com", ""},
		{"auth.allow", "10.0.0.1, 10.0.0.2", "10.0.0.1, 10.0.0.2", ""},
		{"auth.allow", "fe80::1", "fe80::1", ""},
		{"auth.allow", "2001:db8::/32", "2001:db8::/32", ""},
		{"auth.allow", "server-[0-9]?", "server-[0-9]?", ""},
		{"auth.reject", "", "", "is not an address"},
		{"auth.reject", "10.0.0.1,,10.0.0.2", "", `"" is not an address`},
		{"auth.reject", "a b", "", `"a b" is not an address`},
		{"auth.reject", "host;rm", "", "is not an address"},
		// user.* keys are free-form.
		{"user.anything", "free text, with spaces: 100%", "free text, with spaces: 100%", ""},
		{"user.smb", "", "", ""},
		{"user.x", "a\nb", "", "control characters"},
		{"user.x", "a\x00b", "", "control characters"},
		{"user.x", strings.Repeat("v", 4096), strings.Repeat("v", 4096), ""},
		{"user.x", strings.Repeat("v", 4097), "", "too long"},
		{"user.", "v", "", "does not exist"},
		{"user.a b", "v", "", "does not exist"},
		{"User.x", "v", "", "does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.value[:min(len(tt.value), 30)], func(t *testing.T) {
			got, err := o.Validate(tt.key, tt.value)
			if tt.wantErr != "" {
				if !errors.Is(err, errdefs.ErrInvalid) {
					t.Fatalf("Validate(%q, %q) = %q, %v; want an ErrInvalid error", tt.key, tt.value, got, err)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("Validate(%q, %q) = %q, want it to mention %q", tt.key, tt.value, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate(%q, %q) = %v", tt.key, tt.value, err)
			}
			if got != tt.want {
				t.Errorf("Validate(%q, %q) = %q, want %q", tt.key, tt.value, got, tt.want)
			}
			// A canonical value is accepted as it is.
			again, err := o.Validate(tt.key, got)
			if err != nil || again != got {
				t.Errorf("Validate(%q, %q) of the canonical value = %q, %v", tt.key, got, again, err)
			}
		})
	}
}

// TestValidatePercentNaN: "NaN%" passes the range check because every
// comparison with NaN is false.
func TestValidatePercentNaN(t *testing.T) {
	o := volume.NewOptions()
	for _, v := range []string{"NaN%", "nan%"} {
		if got, err := o.Validate("cluster.min-free-disk", v); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("Validate(cluster.min-free-disk, %q) = %q, %v; want ErrInvalid", v, got, err)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"4096", 4096, true},
		{"10b", 10, true},
		{"128KB", 128 << 10, true},
		{"128kb", 128 << 10, true},
		{"128k", 128 << 10, true},
		{"32MB", 32 << 20, true},
		{"32M", 32 << 20, true},
		{"1G", 1 << 30, true},
		{"1gb", 1 << 30, true},
		{"2TB", 2 << 40, true},
		{"3p", 3 << 50, true},
		{" 1 MB ", 1 << 20, true},
		{"4096PB", 1 << 62, true},
		{"4097PB", 0, false},
		{"4611686018427387904", 1 << 62, true},
		{"4611686018427387905", 0, false},
		{"9223372036854775807", 0, false},
		{"9223372036854775808", 0, false},
		{"8589934592G", 0, false},
		{"", 0, false},
		{"MB", 0, false},
		{"1.5G", 0, false},
		{"-1", 0, false},
		{"1 2", 0, false},
		{"1EB", 0, false},
		{"0x10", 0, false},
	}
	for _, tt := range tests {
		got, err := volume.ParseSize(tt.in)
		if !tt.ok {
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("ParseSize(%q) = %d, %v; want ErrInvalid", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestParseBool(t *testing.T) {
	for _, s := range []string{"on", "yes", "true", "enable", "1", "On", "YES", "True", "ENABLE"} {
		if b, err := volume.ParseBool(s); err != nil || !b {
			t.Errorf("ParseBool(%q) = %v, %v; want true", s, b, err)
		}
	}
	for _, s := range []string{"off", "no", "false", "disable", "0", "OFF", "No", "False"} {
		if b, err := volume.ParseBool(s); err != nil || b {
			t.Errorf("ParseBool(%q) = %v, %v; want false", s, b, err)
		}
	}
	for _, s := range []string{"", "y", "n", "2", "onn", " on"} {
		if _, err := volume.ParseBool(s); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("ParseBool(%q) = %v; want ErrInvalid", s, err)
		}
	}
}

func TestValidateUnknownKey(t *testing.T) {
	o := volume.NewOptions()
	tests := []struct {
		key      string
		wantHint string // "" means no suggestion
	}{
		{"network.ping-timeot", "network.ping-timeout"},
		{"network.pingtimeout", "network.ping-timeout"},
		{"performance.cache-sise", "performance.cache-size"},
		{"nfs.disabled", "nfs.disable"},
		{"features.quotas", "features.quota"},
		{"completely.unrelated-key", ""},
		{"zzz", ""},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			_, err := o.Validate(tt.key, "on")
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("Validate(%q) = %v, want ErrInvalid", tt.key, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.key+" does not exist") {
				t.Errorf("error %q does not say %s does not exist", msg, tt.key)
			}
			if tt.wantHint == "" {
				if strings.Contains(msg, "Did you mean") {
					t.Errorf("error %q suggests something for a far-off key", msg)
				}
				return
			}
			if !strings.Contains(msg, "\nDid you mean "+tt.wantHint+"?") {
				t.Errorf("error %q does not suggest %s", msg, tt.wantHint)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	o := volume.NewOptions()
	tests := []struct{ in, want string }{
		{"ping-timeout", "network.ping-timeout"},
		{"read-ahead", "performance.read-ahead"},
		{"disable", "nfs.disable"},
		{"owner-uid", "storage.owner-uid"},
		{"quorum-type", "cluster.quorum-type"},
		// Ambiguous: cluster.eager-lock and disperse.eager-lock.
		{"eager-lock", "eager-lock"},
		// Ambiguous: server.event-threads and client.event-threads.
		{"event-threads", "event-threads"},
		// Only whole sections count: "timeout" is no key's last part.
		{"timeout", "timeout"},
		{"no-such-option", "no-such-option"},
		{"network.ping-timeout", "network.ping-timeout"},
		{"bogus.ping-timeout", "bogus.ping-timeout"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := o.Resolve(tt.in); got != tt.want {
			t.Errorf("Resolve(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestOptionsTable(t *testing.T) {
	o := volume.NewOptions()
	keys := o.Keys()
	if len(keys) == 0 {
		t.Fatal("no option keys")
	}
	if !slices.IsSorted(keys) {
		t.Error("Keys() is not sorted")
	}
	if len(slices.Compact(slices.Clone(keys))) != len(keys) {
		t.Error("Keys() has duplicates")
	}
	keys[0] = "mutated"
	if o.Keys()[0] == "mutated" {
		t.Error("Keys() returns the table's own slice")
	}
	for _, k := range o.Keys() {
		s, ok := o.Spec(k)
		if !ok || s.Key != k {
			t.Errorf("Spec(%q) = %+v, %v", k, s, ok)
			continue
		}
		if s.Doc == "" {
			t.Errorf("%s has no description", k)
		}
		if strings.Count(k, ".") != 1 {
			t.Errorf("key %q is not SECTION.NAME", k)
		}
		// Every default must be a value `volume set` would take back
		// (gluster prints "(null)" for options with no default).
		if s.Default == "(null)" {
			continue
		}
		if _, err := o.Validate(k, s.Default); err != nil {
			t.Errorf("default of %s is not valid: %v", k, err)
		}
		if s.Kind == volume.KindEnum && !slices.Contains(s.Enum, s.Default) {
			t.Errorf("default %q of %s is not one of %v", s.Default, k, s.Enum)
		}
	}
	if _, ok := o.Spec("no.such-key"); ok {
		t.Error("Spec of an unknown key succeeded")
	}
}

func TestGet(t *testing.T) {
	o := volume.NewOptions()
	vol := func(l volume.Layout, opts ...volume.Option) *volume.Volume {
		return &volume.Volume{Name: "gv0", Layout: l, Options: opts}
	}
	tests := []struct {
		name       string
		v          *volume.Volume
		key        string
		want       string
		wantReconf bool
	}{
		{"quorum-type replica 3", vol(volume.Layout{Replica: 3}), "cluster.quorum-type", "auto", false},
		{"quorum-type arbiter", vol(volume.Layout{Replica: 3, Arbiter: 1}), "cluster.quorum-type", "auto", false},
		{"quorum-type replica 5", vol(volume.Layout{Replica: 5}), "cluster.quorum-type", "auto", false},
		{"quorum-type replica 2", vol(volume.Layout{Replica: 2}), "cluster.quorum-type", "auto", false},
		{"quorum-type replica 4", vol(volume.Layout{Replica: 4}), "cluster.quorum-type", "auto", false},
		{"quorum-type distribute", vol(volume.Layout{}), "cluster.quorum-type", "none", false},
		{"quorum-type disperse", vol(volume.Layout{Disperse: 3, Redundancy: 1}), "cluster.quorum-type", "none", false},
		{"quorum-type reconfigured", vol(volume.Layout{Replica: 3}, volume.Option{Key: "cluster.quorum-type", Value: "fixed"}), "cluster.quorum-type", "fixed", true},
		{"client-io-threads replica", vol(volume.Layout{Replica: 2}), "performance.client-io-threads", "off", false},
		{"client-io-threads distribute", vol(volume.Layout{}), "performance.client-io-threads", "on", false},
		{"reconfigured", vol(volume.Layout{}, volume.Option{Key: "network.ping-timeout", Value: "10"}), "network.ping-timeout", "10", true},
		{"user key", vol(volume.Layout{}, volume.Option{Key: "user.note", Value: "hello"}), "user.note", "hello", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reconf, err := o.Get(tt.v, tt.key)
			if err != nil || got != tt.want || reconf != tt.wantReconf {
				t.Errorf("Get(%s) = %q, %v, %v; want %q, %v", tt.key, got, reconf, err, tt.want, tt.wantReconf)
			}
		})
	}
	t.Run("unknown key", func(t *testing.T) {
		_, _, err := o.Get(vol(volume.Layout{}), "no.such-option")
		if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "does not exist") {
			t.Errorf("Get(no.such-option) = %v, want ErrNotFound ... does not exist", err)
		}
	})
	t.Run("unset user key", func(t *testing.T) {
		if _, _, err := o.Get(vol(volume.Layout{}), "user.unset"); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("Get(user.unset) = %v, want ErrNotFound", err)
		}
	})
	t.Run("defaults of a distribute volume", func(t *testing.T) {
		v := vol(volume.Layout{})
		for _, k := range o.Keys() {
			s, _ := o.Spec(k)
			got, reconf, err := o.Get(v, k)
			if err != nil || reconf {
				t.Errorf("Get(%s) = %v, reconfigured %v", k, err, reconf)
			}
			want := s.Default
			if k == "cluster.quorum-type" {
				want = "none"
			}
			if got != want {
				t.Errorf("Get(%s) = %q, want the default %q", k, got, want)
			}
		}
	})
}

func TestCheckOptionFor(t *testing.T) {
	tests := []struct {
		name    string
		layout  volume.Layout
		key     string
		value   string
		wantErr string // "" means accepted and set
	}{
		{"quorum-count within replica", volume.Layout{Replica: 3}, "cluster.quorum-count", "2", ""},
		{"quorum-count equal to replica", volume.Layout{Replica: 3}, "cluster.quorum-count", "3", ""},
		{"quorum-count over replica", volume.Layout{Replica: 3}, "cluster.quorum-count", "4", "4 in cluster.quorum-count 4 is out of range [1 - 3]"},
		{"quorum-count on distribute", volume.Layout{}, "cluster.quorum-count", "1", "Cannot set cluster.quorum-count for a non-replicate volume"},
		{"quorum-type on replica", volume.Layout{Replica: 2}, "cluster.quorum-type", "auto", ""},
		{"quorum-type on distribute", volume.Layout{}, "cluster.quorum-type", "auto", "non-replicate volume"},
		{"quorum-type on disperse", volume.Layout{Disperse: 3, Redundancy: 1}, "cluster.quorum-type", "auto", "non-replicate volume"},
		{"self-heal-daemon on distribute", volume.Layout{}, "cluster.self-heal-daemon", "off", "non-replicate volume"},
		{"heal-timeout on stripe", volume.Layout{Stripe: 2}, "cluster.heal-timeout", "60", "non-replicate volume"},
		{"favorite-child-policy on replica", volume.Layout{Replica: 3}, "cluster.favorite-child-policy", "mtime", ""},
		{"cluster eager-lock on distribute", volume.Layout{}, "cluster.eager-lock", "off", "non-replicate volume"},
		{"disperse eager-lock on disperse", volume.Layout{Disperse: 6, Redundancy: 2}, "disperse.eager-lock", "off", ""},
		{"disperse eager-lock on replica", volume.Layout{Replica: 3}, "disperse.eager-lock", "off", "Cannot set disperse.eager-lock for a non-disperse volume"},
		{"background-heals on distribute", volume.Layout{}, "disperse.background-heals", "4", "non-disperse volume"},
		{"stripe-block-size on stripe", volume.Layout{Stripe: 2}, "cluster.stripe-block-size", "256KB", ""},
		{"stripe-block-size on striped replica", volume.Layout{Stripe: 2, Replica: 2}, "cluster.stripe-block-size", "256KB", ""},
		{"stripe-block-size on replica", volume.Layout{Replica: 2}, "cluster.stripe-block-size", "256KB", "Cannot set cluster.stripe-block-size for a non-stripe volume"},
		{"quota", volume.Layout{}, "features.quota", "on", "volume quota VOLNAME enable|disable"},
		{"quota on replica", volume.Layout{Replica: 3}, "features.quota", "off", "volume quota"},
		{"layout-independent option", volume.Layout{}, "network.ping-timeout", "10", ""},
		{"user option", volume.Layout{Disperse: 3, Redundancy: 1}, "user.x", "y", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &volume.Volume{Layout: tt.layout, Options: []volume.Option{{Key: "nfs.disable", Value: "on"}}}
			err := volume.CheckOptionFor(v, tt.key, tt.value)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckOptionFor(%s=%s) = %v", tt.key, tt.value, err)
				}
				if got, ok := v.Option(tt.key); !ok || got != tt.value {
					t.Errorf("after CheckOptionFor, option %s = %q, %v; want %q", tt.key, got, ok, tt.value)
				}
				if len(v.Options) != 2 || v.Options[1].Key != tt.key {
					t.Errorf("options = %v, want the new one appended", v.Options)
				}
				return
			}
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("CheckOptionFor(%s=%s) = %v, want ErrInvalid", tt.key, tt.value, err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("CheckOptionFor(%s=%s) = %q, want it to mention %q", tt.key, tt.value, err, tt.wantErr)
			}
			if _, ok := v.Option(tt.key); ok {
				t.Errorf("a refused option was set anyway")
			}
		})
	}
}

func TestDefaultReconfigured(t *testing.T) {
	o := volume.NewOptions()
	keys := func(opts []volume.Option) []string {
		var out []string
		for _, x := range opts {
			out = append(out, x.Key)
		}
		return out
	}
	common := []string{"nfs.disable", "transport.address-family", "storage.fips-mode-rchecksum"}
	tests := []struct {
		name   string
		layout volume.Layout
		want   []string // in the order they are set
	}{
		{"distribute", volume.Layout{}, common},
		{"stripe", volume.Layout{Stripe: 2}, common},
		{"disperse", volume.Layout{Disperse: 3, Redundancy: 1}, common},
		{"replicate", volume.Layout{Replica: 3}, append(append([]string{"performance.client-io-threads"}, common...), "cluster.granular-entry-heal")},
		{"arbiter", volume.Layout{Replica: 3, Arbiter: 1}, append(append([]string{"performance.client-io-threads"}, common...), "cluster.granular-entry-heal")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := volume.DefaultReconfigured(tt.layout)
			if got := keys(opts); !slices.Equal(got, tt.want) {
				t.Fatalf("keys = %v, want %v", got, tt.want)
			}
			v := volume.Volume{Layout: tt.layout}
			for _, x := range opts {
				// Each value must be what `volume set` would store ...
				canon, err := o.Validate(x.Key, x.Value)
				if err != nil || canon != x.Value {
					t.Errorf("%s=%s: Validate = %q, %v; want the value unchanged", x.Key, x.Value, canon, err)
				}
				// ... and allowed for the layout.
				if err := volume.CheckOptionFor(&v, x.Key, x.Value); err != nil {
					t.Errorf("%s=%s not allowed for its own layout: %v", x.Key, x.Value, err)
				}
			}
		})
	}
	rep := volume.DefaultReconfigured(volume.Layout{Replica: 2})
	if rep[0].Value != "off" || rep[len(rep)-1].Value != "on" {
		t.Errorf("replica defaults = %v, want client-io-threads off and granular-entry-heal on", rep)
	}
}

// BoolOption reads a set option with ParseBool's spellings, and the
// default when it is unset or not a boolean.
func TestBoolOption(t *testing.T) {
	v := volume.Volume{}
	if !v.BoolOption("cluster.choose-local", true) || v.BoolOption("cluster.choose-local", false) {
		t.Fatal("an unset option is not its default")
	}
	for val, want := range map[string]bool{"off": false, "disable": false, "0": false, "on": true, "enable": true} {
		v.SetOption("cluster.choose-local", val)
		if got := v.BoolOption("cluster.choose-local", !want); got != want {
			t.Errorf("%q: %v, want %v", val, got, want)
		}
	}
	v.SetOption("cluster.choose-local", "maybe")
	if !v.BoolOption("cluster.choose-local", true) {
		t.Error("a value that is not a boolean is not the default")
	}
}
