package network

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/cais-platform/cais/errdefs"
)

func TestPortRequests(t *testing.T) {
	reqs, err := PortRequests(map[string][]Binding{
		"80/tcp": {{HostPort: "8080"}, {HostIP: "127.0.0.1", HostPort: "8081"}},
		"53/udp": {{HostPort: "5300-5310"}},
		"443":    nil,
	}, []string{"80/tcp", "9000/tcp"}, true)
	if err != nil {
		t.Fatal(err)
	}
	want := []PortRequest{
		{Proto: "udp", ContainerPort: 53, HostPortStart: 5300, HostPortEnd: 5310},
		{Proto: "tcp", ContainerPort: 80, HostPortStart: 8080, HostPortEnd: 8080},
		{Proto: "tcp", ContainerPort: 80, HostIP: netip.MustParseAddr("127.0.0.1"), HostPortStart: 8081, HostPortEnd: 8081},
		{Proto: "tcp", ContainerPort: 443},
		{Proto: "tcp", ContainerPort: 9000}, // -P: exposed, not bound
	}
	if !reflect.DeepEqual(reqs, want) {
		t.Fatalf("PortRequests =\n%+v\nwant\n%+v", reqs, want)
	}
	for _, bad := range []map[string][]Binding{
		{"80/icmp": nil}, {"0/tcp": nil}, {"x": nil}, {"80": {{HostPort: "99999"}}},
		{"80": {{HostPort: "9-8"}}}, {"80": {{HostIP: "::1"}}}, {"80": {{HostIP: "nonsense"}}},
	} {
		if _, err := PortRequests(bad, nil, false); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("PortRequests(%v) = %v, want invalid", bad, err)
		}
	}
}

func TestAllocatePorts(t *testing.T) {
	eph := PortRange{40000, 40003}
	taken := []PortMapping{
		{Proto: "tcp", ContainerPort: 80, HostPort: 8080},                                           // every address
		{Proto: "tcp", ContainerPort: 80, HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 9090}, // one address
		{Proto: "tcp", ContainerPort: 1, HostPort: 40000},
	}
	busy := func(proto string, ip netip.Addr, port uint16) bool { return port != 40001 } // a host process holds 40001
	got, err := AllocatePorts([]PortRequest{
		{Proto: "udp", ContainerPort: 53, HostPortStart: 8080, HostPortEnd: 8080},                                          // other protocol: free
		{Proto: "tcp", ContainerPort: 80, HostIP: netip.MustParseAddr("10.0.0.1"), HostPortStart: 9090, HostPortEnd: 9090}, // other address: free
		{Proto: "tcp", ContainerPort: 81},                                         // ephemeral: 40000 taken, 40001 busy
		{Proto: "tcp", ContainerPort: 82},                                         // and the one just given
		{Proto: "tcp", ContainerPort: 83, HostPortStart: 8080, HostPortEnd: 8082}, // range: first free
	}, taken, eph, busy)
	if err != nil {
		t.Fatal(err)
	}
	var ports []uint16
	for _, m := range got {
		ports = append(ports, m.HostPort)
	}
	if !reflect.DeepEqual(ports, []uint16{8080, 9090, 40002, 40003, 8081}) {
		t.Fatalf("host ports %v", ports)
	}
	// Docker's errors.
	_, err = AllocatePorts([]PortRequest{{Proto: "tcp", ContainerPort: 80, HostPortStart: 8080, HostPortEnd: 8080}}, taken, eph, nil)
	if !errors.Is(err, errdefs.ErrExists) || !strings.Contains(err.Error(), "Bind for 0.0.0.0:8080 failed: port is already allocated") {
		t.Fatalf("taken port: %v", err)
	}
	_, err = AllocatePorts([]PortRequest{{Proto: "tcp", ContainerPort: 80, HostIP: netip.MustParseAddr("127.0.0.1"), HostPortStart: 8080, HostPortEnd: 8080}}, taken, eph, nil)
	if err == nil || !strings.Contains(err.Error(), "Bind for 127.0.0.1:8080 failed: port is already allocated") {
		t.Fatalf("taken on every address: %v", err)
	}
	_, err = AllocatePorts([]PortRequest{{Proto: "tcp", ContainerPort: 80, HostPortStart: 40001, HostPortEnd: 40001}}, nil, eph, busy)
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("port a host process holds: %v", err)
	}
	// Two requests for one port in the same call collide too.
	_, err = AllocatePorts([]PortRequest{{Proto: "tcp", ContainerPort: 80, HostPortStart: 7000, HostPortEnd: 7000}, {Proto: "tcp", ContainerPort: 81, HostPortStart: 7000, HostPortEnd: 7000}}, nil, eph, nil)
	if !errors.Is(err, errdefs.ErrExists) {
		t.Fatalf("same port twice: %v", err)
	}
}

func TestRules(t *testing.T) {
	subnet := netip.MustParsePrefix("172.18.0.0/16")
	rules := BridgeRules("br0", subnet, false)
	has := func(rules []Rule, table, chain, spec string) bool {
		for _, r := range rules {
			if r.Table == table && r.Chain == chain && strings.Join(r.Spec, " ") == spec {
				return true
			}
		}
		return false
	}
	for _, w := range [][3]string{
		{"nat", ChainPost, "-s 172.18.0.0/16 ! -o br0 -j MASQUERADE"},
		{"nat", ChainPost, "-s 127.0.0.0/8 -o br0 -j MASQUERADE"},
		{"filter", ChainForward, "-i br0 ! -o br0 -j ACCEPT"},
		{"filter", ChainIsolation2, "-o br0 -j DROP"},
	} {
		if !has(rules, w[0], w[1], w[2]) {
			t.Errorf("bridge rules lack -t %s -A %s %s", w[0], w[1], w[2])
		}
	}
	internal := BridgeRules("br0", subnet, true)
	if has(internal, "nat", ChainPost, "-s 172.18.0.0/16 ! -o br0 -j MASQUERADE") || has(internal, "filter", ChainForward, "-i br0 ! -o br0 -j ACCEPT") {
		t.Errorf("an internal network reaches out: %v", internal)
	}
	ip := netip.MustParseAddr("172.18.0.2")
	pr := PortRules("br0", ip, []PortMapping{
		{Proto: "tcp", ContainerPort: 80, HostPort: 8080},
		{Proto: "udp", ContainerPort: 53, HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 5353},
	})
	for _, w := range [][3]string{
		{"nat", ChainDNAT, "-p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.18.0.2:80"},
		{"nat", ChainDNAT, "-d 127.0.0.1/32 -p udp -m udp --dport 5353 -j DNAT --to-destination 172.18.0.2:53"},
		{"filter", ChainForward, "-d 172.18.0.2/32 ! -i br0 -o br0 -p tcp -m tcp --dport 80 -j ACCEPT"},
	} {
		if !has(pr, w[0], w[1], w[2]) {
			t.Errorf("port rules lack -t %s -A %s %s: %v", w[0], w[1], w[2], pr)
		}
	}
	// Every chain a rule is put in or jumps to is one of cais's or a
	// built-in one, and each of cais's is created before it is jumped to.
	made := map[string]bool{"PREROUTING": true, "OUTPUT": true, "POSTROUTING": true, "FORWARD": true}
	for _, c := range BaseChains() {
		made[c.Name] = true
		if c.Jump.Chain != "" && !made[c.Jump.Chain] {
			t.Errorf("chain %s jumped to from %s before that exists", c.Name, c.Jump.Chain)
		}
	}
	for _, r := range append(rules, pr...) {
		if !made[r.Chain] {
			t.Errorf("rule in unknown chain %s", r.Chain)
		}
	}
}

// FuzzPortRequests feeds docker run -p's parsing what an API client could
// send: a port key and one binding.
func FuzzPortRequests(f *testing.F) {
	f.Add("80/tcp", "", "8080")
	f.Add("53/udp", "127.0.0.1", "5300-5310")
	f.Add("x", "::1", "-1")
	f.Fuzz(func(t *testing.T, key, hostIP, hostPort string) {
		reqs, err := PortRequests(map[string][]Binding{key: {{HostIP: hostIP, HostPort: hostPort}}}, []string{key}, true)
		if err != nil {
			return
		}
		for _, r := range reqs {
			if r.ContainerPort == 0 || r.HostPortEnd < r.HostPortStart || r.HostIP.IsValid() && !r.HostIP.Is4() {
				t.Fatalf("bad request %+v from %q %q %q", r, key, hostIP, hostPort)
			}
		}
		AllocatePorts(reqs, nil, PortRange{40000, 40010}, nil)
	})
}
