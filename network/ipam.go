package network

import (
	"fmt"
	"net/netip"

	"github.com/cais-platform/cais/errdefs"
)

// DefaultPools are the subnets a network without --subnet is given, in
// order, as Docker's default address pools: 172.17–31.0.0/16, then
// 192.168.0–240.0/20.
func DefaultPools() []netip.Prefix {
	var out []netip.Prefix
	for b := 17; b <= 31; b++ {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{172, byte(b), 0, 0}), 16))
	}
	for c := 0; c <= 240; c += 16 {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(c), 0}), 20))
	}
	return out
}

// ChooseSubnet returns the first candidate that overlaps none of used
// (host routes and other networks' subnets).
func ChooseSubnet(candidates, used []netip.Prefix) (netip.Prefix, error) {
	for _, c := range candidates {
		free := true
		for _, u := range used {
			if c.Overlaps(u) {
				free = false
				break
			}
		}
		if free {
			return c, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network: %w", errdefs.ErrUnavailable)
}

// ParseSubnet reads --subnet: an IPv4 CIDR whose host bits are zero and
// which leaves room for a gateway and one container.
func ParseSubnet(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid subnet %s : invalid CIDR address: %s: %w", s, s, errdefs.ErrInvalid)
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("invalid subnet %s: only IPv4 subnets are supported: %w", s, errdefs.ErrInvalid)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("invalid subnet %s: it should be %s: %w", s, p.Masked(), errdefs.ErrInvalid)
	}
	if p.Bits() > 30 {
		return netip.Prefix{}, fmt.Errorf("invalid subnet %s: too small for a gateway and a container: %w", s, errdefs.ErrInvalid)
	}
	return p, nil
}

// FirstHost is the gateway Docker gives a subnet: its first address.
func FirstHost(p netip.Prefix) netip.Addr { return p.Masked().Addr().Next() }

// lastAddr is the subnet's broadcast address.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Allocate picks an address for an endpoint in subnet: want if it is
// valid, else the lowest one that is not the network address, the
// gateway, the broadcast address or in use. It does no I/O.
func Allocate(subnet netip.Prefix, gateway netip.Addr, inUse map[netip.Addr]bool, want netip.Addr) (netip.Addr, error) {
	bcast := lastAddr(subnet)
	if want.IsValid() {
		if !subnet.Contains(want) || want == subnet.Masked().Addr() || want == bcast {
			return netip.Addr{}, fmt.Errorf("invalid endpoint settings:\nno configured subnet or ip-range contain the IP address %s: %w", want, errdefs.ErrInvalid)
		}
		if want == gateway || inUse[want] {
			return netip.Addr{}, fmt.Errorf("Address already in use: %w", errdefs.ErrExists)
		}
		return want, nil
	}
	for a := subnet.Masked().Addr().Next(); a.IsValid() && a != bcast && subnet.Contains(a); a = a.Next() {
		if a != gateway && !inUse[a] {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no available IPv4 addresses on the network's address pool %s: %w", subnet, errdefs.ErrUnavailable)
}

// MACAddress is the address Docker gives an endpoint: 02:42 followed by
// its IPv4 address.
func MACAddress(ip netip.Addr) string {
	a := ip.As4()
	return fmt.Sprintf("02:42:%02x:%02x:%02x:%02x", a[0], a[1], a[2], a[3])
}
