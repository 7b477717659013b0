package pool

import "net"

// MatchAddr returns the first item whose address is one of ips: how a host
// name given by an administrator is matched to a pool member.
func MatchAddr[T any](items []T, ips []net.IP, addr func(T) string) (T, bool) {
	for _, ip := range ips {
		for _, it := range items {
			if a := net.ParseIP(addr(it)); a != nil && a.Equal(ip) {
				return it, true
			}
		}
	}
	var zero T
	return zero, false
}
