package network

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/cais-platform/cais/errdefs"
)

func TestChooseSubnet(t *testing.T) {
	used := []netip.Prefix{
		netip.MustParsePrefix("172.17.0.0/16"),   // another network
		netip.MustParsePrefix("172.18.5.0/24"),   // a host route inside the next pool
		netip.MustParsePrefix("192.0.2.0/24"),    // unrelated
		netip.MustParsePrefix("10.0.0.0/8"),      // unrelated
		netip.MustParsePrefix("172.20.0.0/14"),   // covers 172.20–23
		netip.MustParsePrefix("172.19.128.0/17"), // half of 172.19
	}
	got, err := ChooseSubnet(DefaultPools(), used)
	if err != nil || got != netip.MustParsePrefix("172.24.0.0/16") {
		t.Fatalf("ChooseSubnet = %v, %v; want 172.24.0.0/16", got, err)
	}
	// Everything taken: Docker's error.
	_, err = ChooseSubnet(DefaultPools(), []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")})
	if !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("all taken: %v", err)
	}
	if n := len(DefaultPools()); n != 15+16 {
		t.Fatalf("%d default pools, want 31", n)
	}
}

func TestParseSubnet(t *testing.T) {
	for s, ok := range map[string]bool{
		"10.1.2.0/24": true, "10.1.2.3/24": false, "10.1.2.0/31": false, "fd00::/64": false, "nonsense": false, "10.0.0.0/8": true,
	} {
		if _, err := ParseSubnet(s); (err == nil) != ok {
			t.Errorf("ParseSubnet(%q) = %v, want ok %v", s, err, ok)
		}
	}
}

func TestAllocate(t *testing.T) {
	subnet := netip.MustParsePrefix("10.9.0.0/29") // .1 gateway, .2–.6 hosts, .7 broadcast
	gw := FirstHost(subnet)
	if gw != netip.MustParseAddr("10.9.0.1") {
		t.Fatalf("gateway %v", gw)
	}
	inUse := map[netip.Addr]bool{}
	var got []netip.Addr
	for {
		a, err := Allocate(subnet, gw, inUse, netip.Addr{})
		if err != nil {
			if !errors.Is(err, errdefs.ErrUnavailable) {
				t.Fatal(err)
			}
			break
		}
		inUse[a] = true
		got = append(got, a)
	}
	if len(got) != 5 || got[0] != netip.MustParseAddr("10.9.0.2") || got[4] != netip.MustParseAddr("10.9.0.6") {
		t.Fatalf("allocated %v", got)
	}
	// A released address is given again, the lowest first.
	delete(inUse, netip.MustParseAddr("10.9.0.4"))
	if a, err := Allocate(subnet, gw, inUse, netip.Addr{}); err != nil || a != netip.MustParseAddr("10.9.0.4") {
		t.Fatalf("after release: %v, %v", a, err)
	}
	// Asked-for addresses.
	for want, kind := range map[string]error{
		"10.9.0.4": nil, "10.9.0.1": errdefs.ErrExists, "10.9.0.2": errdefs.ErrExists,
		"10.9.0.0": errdefs.ErrInvalid, "10.9.0.7": errdefs.ErrInvalid, "10.9.1.2": errdefs.ErrInvalid,
	} {
		_, err := Allocate(subnet, gw, map[netip.Addr]bool{netip.MustParseAddr("10.9.0.2"): true}, netip.MustParseAddr(want))
		if kind == nil && err != nil || kind != nil && !errors.Is(err, kind) {
			t.Errorf("Allocate(%s) = %v, want %v", want, err, kind)
		}
	}
	if m := MACAddress(netip.MustParseAddr("172.17.0.2")); m != "02:42:ac:11:00:02" {
		t.Fatalf("MAC %s", m)
	}
}
