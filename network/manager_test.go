package network

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/cais-platform/cais/errdefs"
)

// The network records: what needs no bridge, no namespace and no
// iptables (those are exercised by the e2e tests, as root).
func TestManagerNetworks(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	m, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range m.List() {
		names = append(names, n.Name+"/"+n.Driver)
	}
	if strings.Join(names, " ") != "bridge/bridge host/host none/null" {
		t.Fatalf("predefined networks: %v", names)
	}
	br, _ := m.Get("bridge")
	if br.Bridge != DefaultBridgeName || !br.Subnet.IsValid() || br.Gateway != FirstHost(br.Subnet) || br.DNS() {
		t.Fatalf("default bridge %+v", br)
	}

	n, err := m.Create(ctx, CreateOptions{Name: "app", Subnet: "10.77.0.0/24", Labels: map[string]string{"a": "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if n.Gateway.String() != "10.77.0.1" || n.Bridge != "br-"+n.ID[:12] || !n.DNS() {
		t.Fatalf("created %+v", n)
	}
	auto, err := m.Create(ctx, CreateOptions{Name: "auto"})
	if err != nil {
		t.Fatal(err)
	}
	if auto.Subnet.Overlaps(br.Subnet) || auto.Subnet.Overlaps(n.Subnet) {
		t.Fatalf("auto subnet %v overlaps", auto.Subnet)
	}
	for _, c := range []struct {
		o    CreateOptions
		kind error
		msg  string
	}{
		{CreateOptions{Name: "app"}, errdefs.ErrExists, "network with name app already exists"},
		{CreateOptions{Name: "other", Subnet: "10.77.0.128/25"}, errdefs.ErrExists, "Pool overlaps with other one"},
		{CreateOptions{Name: "x", Driver: "overlay"}, errdefs.ErrNotFound, `plugin "overlay" not found`},
		{CreateOptions{Name: "x", Driver: "host"}, errdefs.ErrExists, `only one instance of "host" network is allowed`},
		{CreateOptions{Name: "bad name"}, errdefs.ErrInvalid, "invalid network name"},
		{CreateOptions{Name: "x", Subnet: "10.1.0.0/24", Gateway: "10.2.0.1"}, errdefs.ErrInvalid, "invalid gateway"},
		{CreateOptions{Name: "x", Options: map[string]string{"com.docker.network.bridge.name": "a-very-long-bridge-name"}}, errdefs.ErrInvalid, "longer than 15"},
	} {
		_, err := m.Create(ctx, c.o)
		if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("Create(%+v) = %v, want %q", c.o, err, c.msg)
		}
	}
	// By ID prefix, as docker does.
	if got, err := m.Get(n.ID[:6]); err != nil || got.Name != "app" {
		t.Fatalf("Get by prefix: %v %v", got.Name, err)
	}
	if _, err := m.Get("nosuch"); !errors.Is(err, errdefs.ErrNotFound) || err.Error() != "network nosuch not found: not found" {
		t.Fatalf("Get(nosuch) = %v", err)
	}
	if err := m.Remove(ctx, "bridge"); !errors.Is(err, errdefs.ErrForbidden) || !strings.Contains(err.Error(), "bridge is a pre-defined network and cannot be removed") {
		t.Fatalf("Remove(bridge) = %v", err)
	}
	// A network with an endpoint is refused, with the endpoint's name.
	m.mu.Lock()
	cid := strings.Repeat("ab", 32)
	m.nets[n.ID].Endpoints[cid] = &Endpoint{Name: "web", Aliases: []string{"www"}, IP: netip.MustParseAddr("10.77.0.2")}
	m.mu.Unlock()
	if err := m.Remove(ctx, "app"); !errors.Is(err, errdefs.ErrForbidden) || !strings.Contains(err.Error(), "error while removing network: network app has 1 active endpoint (web)") {
		t.Fatalf("Remove(app) in use = %v", err)
	}
	for _, name := range []string{"WEB", "www", cid[:12]} {
		if got := m.resolve(n.ID, name); len(got) != 1 || got[0].String() != "10.77.0.2" {
			t.Errorf("resolve(%s) = %v", name, got)
		}
	}
	for _, name := range []string{"we", cid[:11], "app"} {
		if got := m.resolve(n.ID, name); len(got) != 0 {
			t.Errorf("resolve(%s) = %v", name, got)
		}
	}
	pruned, err := m.Prune(ctx)
	if err != nil || strings.Join(pruned, ",") != "auto" {
		t.Fatalf("Prune = %v, %v", pruned, err)
	}

	// The networks survive a reopen, with another default bridge name.
	m2, err := Open(Options{Dir: dir, DefaultBridge: "cais9"})
	if err != nil {
		t.Fatal(err)
	}
	if len(m2.List()) != 4 {
		t.Fatalf("after reopen: %d networks", len(m2.List()))
	}
	if br2, _ := m2.Get("bridge"); br2.ID != br.ID || br2.Bridge != "cais9" || br2.Subnet != br.Subnet {
		t.Fatalf("default bridge after reopen: %+v", br2)
	}
	if got, _ := m2.Get("app"); got.Endpoints[cid] == nil || got.Labels["a"] != "b" {
		t.Fatalf("app after reopen: %+v", got)
	}
}
