package daemon

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cais-platform/cais/pki"
	"github.com/cais-platform/cais/volume"
)

func TestConfigValidate(t *testing.T) {
	good := DefaultConfig()
	good.Addr = "127.0.0.2"
	good.DataDir = "/var/lib/cais-test"
	if err := good.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if good.Socket != "/var/lib/cais-test/caisd.sock" || good.Hostname != "127.0.0.2" {
		t.Fatalf("derived defaults: socket %q hostname %q", good.Socket, good.Hostname)
	}
	cases := []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.Addr = "server1" }, "is not an IP address"},
		{func(c *Config) { c.Port = 70000 }, "--port 70000 is not a port number"},
		{func(c *Config) { c.DataDir = "relative/dir" }, "must be an absolute path"},
		{func(c *Config) { c.Voters = 7 }, "must be between 1 and 5"},
		{func(c *Config) { c.JoinToken = "not-a-token" }, "--join-token"},
		{func(c *Config) { c.EtcdPrefix = "cais" }, "must start with /"},
		{func(c *Config) { c.LogLevel = "loud" }, "--log-level"},
		{func(c *Config) { c.DataDir = "/" + strings.Repeat("d", 120) }, "longer than a unix socket allows"},
	}
	for _, tc := range cases {
		c := DefaultConfig()
		c.Addr = "127.0.0.2"
		tc.edit(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate() = %v, want %q", err, tc.want)
		}
	}
	// Every problem is reported at once.
	c := DefaultConfig()
	c.Addr, c.Port, c.Voters = "x", 0, 0
	if err := c.Validate(); err == nil || strings.Count(err.Error(), "\n") < 2 {
		t.Errorf("want all errors joined, got %v", err)
	}
}

func TestSpecsFor(t *testing.T) {
	vols := []volume.Volume{
		{Name: "a", ID: "ida", Status: volume.Started, Bricks: []volume.Brick{
			{ID: "a1", Node: "n1", Path: "/b/a1"}, {ID: "a2", Node: "n2", Path: "/b/a2"}, {ID: "a3", Node: "n1", Path: "/b/a3"}}},
		{Name: "b", ID: "idb", Status: volume.Stopped, Bricks: []volume.Brick{{ID: "b1", Node: "n1", Path: "/b/b1"}}},
		{Name: "c", ID: "idc", Status: volume.Created, Bricks: []volume.Brick{{ID: "c1", Node: "n1", Path: "/b/c1"}}},
	}
	got := specsFor("n1", vols)
	if len(got) != 2 || got[0].BrickID != "a1" || got[1].BrickID != "a3" || got[0].VolumeID != "ida" || got[1].Path != "/b/a3" {
		t.Fatalf("specsFor(n1) = %+v", got)
	}
	if got := specsFor("n3", vols); len(got) != 0 {
		t.Fatalf("specsFor(n3) = %+v", got)
	}
}

func TestKeyedLocks(t *testing.T) {
	var k keyedLocks
	ctx := context.Background()
	unlock, err := k.lock(ctx, "v")
	if err != nil {
		t.Fatal(err)
	}
	// Another name is independent.
	u2, err := k.lock(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	u2()
	// The same name waits, and gives up with its context.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := k.lock(short, "v"); err == nil {
		t.Fatal("second holder of the same lock")
	}
	got := make(chan struct{})
	go func() {
		u, err := k.lock(ctx, "v")
		if err == nil {
			u()
		}
		close(got)
	}()
	select {
	case <-got:
		t.Fatal("lock acquired while held")
	case <-time.After(50 * time.Millisecond):
	}
	unlock()
	select {
	case <-got:
	case <-time.After(2 * time.Second):
		t.Fatal("waiter not woken by unlock")
	}
}

func TestNodeCertIdentity(t *testing.T) {
	id := nodeCertIdentity("u1", "127.0.0.2", "server2")
	if id.Role != pki.RoleNode || id.CommonName != "u1" || len(id.IPs) != 1 || id.IPs[0].String() != "127.0.0.2" {
		t.Fatalf("identity %+v", id)
	}
	if strings.Join(id.DNSNames, ",") != "localhost,server2" {
		t.Fatalf("DNS names %v", id.DNSNames)
	}
	id = nodeCertIdentity("u1", "127.0.0.2", "10.1.2.3")
	if len(id.IPs) != 2 || id.IPs[1].String() != "10.1.2.3" {
		t.Fatalf("probed by another address: %+v", id.IPs)
	}
	id = nodeCertIdentity("u1", "127.0.0.2", "127.0.0.2")
	if len(id.IPs) != 1 {
		t.Fatalf("address twice: %+v", id.IPs)
	}
}

// A panic in the node's background work is logged and cleaned up after,
// not the end of the daemon.
func TestRecovering(t *testing.T) {
	var logged strings.Builder
	log := slog.New(slog.NewTextHandler(&logged, nil))
	cleaned := false
	recovering(log, "crawl", func() {
		var m map[string]int
		m["x"]++ // a nil map: panics
	}, func() { cleaned = true })
	if !cleaned {
		t.Error("cleanup did not run after the panic")
	}
	if out := logged.String(); !strings.Contains(out, "crawl failed") || !strings.Contains(out, "assignment to entry in nil map") || !strings.Contains(out, "TestRecovering") {
		t.Errorf("log: %s", out)
	}
	logged.Reset()
	cleaned = false
	ran := false
	recovering(log, "crawl", func() { ran = true }, func() { cleaned = true })
	if !ran || cleaned || logged.Len() != 0 {
		t.Errorf("without a panic: ran %v, cleaned %v, logged %q", ran, cleaned, logged.String())
	}
}
