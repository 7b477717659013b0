package network

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/cais-platform/cais/errdefs"
)

// PortRequest is one container port to publish (docker run -p, or -P for
// an exposed port): on HostIP (unspecified: every address) at a host port
// in [HostPortStart, HostPortEnd], 0 meaning any free ephemeral port.
type PortRequest struct {
	Proto         string
	ContainerPort uint16
	HostIP        netip.Addr
	HostPortStart uint16
	HostPortEnd   uint16
}

// PortMapping is a published port: HostIP:HostPort on the host reaches
// ContainerPort of the endpoint.
type PortMapping struct {
	Proto         string     `json:"Proto"`
	ContainerPort uint16     `json:"ContainerPort"`
	HostIP        netip.Addr `json:"HostIP"`
	HostPort      uint16     `json:"HostPort"`
}

// HostIPString is the host address as Docker shows it: 0.0.0.0 for every
// address.
func (m PortMapping) HostIPString() string {
	if !m.HostIP.IsValid() {
		return "0.0.0.0"
	}
	return m.HostIP.String()
}

// Key is the container port in Docker's "80/tcp" form.
func (m PortMapping) Key() string { return fmt.Sprintf("%d/%s", m.ContainerPort, m.Proto) }

// Binding is one host address and port of a HostConfig.PortBindings
// entry, as the Docker API has it.
type Binding struct {
	HostIP   string
	HostPort string
}

// ParsePort reads a Docker port key: "80", "80/tcp", "53/udp".
func ParsePort(key string) (uint16, string, error) {
	num, proto, _ := strings.Cut(key, "/")
	if proto == "" {
		proto = "tcp"
	}
	proto = strings.ToLower(proto)
	if proto != "tcp" && proto != "udp" && proto != "sctp" {
		return 0, "", fmt.Errorf("invalid proto: %s: %w", proto, errdefs.ErrInvalid)
	}
	n, err := strconv.ParseUint(num, 10, 16)
	if err != nil || n == 0 {
		return 0, "", fmt.Errorf("invalid containerPort: %s: %w", num, errdefs.ErrInvalid)
	}
	return uint16(n), proto, nil
}

// PortRequests turns a container's port bindings, and with publishAll its
// exposed ports that have none, into requests, sorted by container port.
// It does no I/O.
func PortRequests(bindings map[string][]Binding, exposed []string, publishAll bool) ([]PortRequest, error) {
	var out []PortRequest
	bound := map[string]bool{}
	for key, bs := range bindings {
		port, proto, err := ParsePort(key)
		if err != nil {
			return nil, err
		}
		bound[fmt.Sprintf("%d/%s", port, proto)] = true
		if len(bs) == 0 {
			bs = []Binding{{}}
		}
		for _, b := range bs {
			r := PortRequest{Proto: proto, ContainerPort: port}
			if b.HostIP != "" {
				ip, err := netip.ParseAddr(b.HostIP)
				if err != nil || !ip.Is4() {
					return nil, fmt.Errorf("invalid IP address: %s: %w", b.HostIP, errdefs.ErrInvalid)
				}
				if !ip.IsUnspecified() {
					r.HostIP = ip
				}
			}
			if b.HostPort != "" {
				lo, hi, isRange := strings.Cut(b.HostPort, "-")
				if !isRange {
					hi = lo
				}
				l, err1 := strconv.ParseUint(lo, 10, 16)
				h, err2 := strconv.ParseUint(hi, 10, 16)
				if err1 != nil || err2 != nil || h < l {
					return nil, fmt.Errorf("invalid hostPort: %s: %w", b.HostPort, errdefs.ErrInvalid)
				}
				r.HostPortStart, r.HostPortEnd = uint16(l), uint16(h)
			}
			out = append(out, r)
		}
	}
	if publishAll {
		for _, key := range exposed {
			port, proto, err := ParsePort(key)
			if err != nil {
				return nil, err
			}
			if !bound[fmt.Sprintf("%d/%s", port, proto)] {
				out = append(out, PortRequest{Proto: proto, ContainerPort: port})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].ContainerPort != out[j].ContainerPort {
			return out[i].ContainerPort < out[j].ContainerPort
		}
		return out[i].Proto < out[j].Proto
	})
	return out, nil
}

// PortRange is the ephemeral range host ports are picked from when none
// is asked for (the host's ip_local_port_range).
type PortRange struct{ Start, End uint16 }

// conflicts reports whether a mapping on (proto, ip, port) collides with
// taken: the same port and protocol on the same or an unspecified address.
func conflicts(taken []PortMapping, proto string, ip netip.Addr, port uint16) bool {
	for _, t := range taken {
		if t.Proto == proto && t.HostPort == port && (!t.HostIP.IsValid() || !ip.IsValid() || t.HostIP == ip) {
			return true
		}
	}
	return false
}

// AllocatePorts chooses the host port of each request, given the mappings
// taken already and a probe that says whether the host has a port free
// (nil: every port is). A fixed port that is taken fails with Docker's
// "port is already allocated"; a range or an ephemeral request takes its
// first free port. It does no I/O but through free.
func AllocatePorts(reqs []PortRequest, taken []PortMapping, eph PortRange, free func(proto string, ip netip.Addr, port uint16) bool) ([]PortMapping, error) {
	if free == nil {
		free = func(string, netip.Addr, uint16) bool { return true }
	}
	all := append([]PortMapping(nil), taken...)
	var out []PortMapping
	for _, r := range reqs {
		start, end := r.HostPortStart, r.HostPortEnd
		fixed := start != 0 && start == end
		if start == 0 {
			start, end = eph.Start, eph.End
		}
		chosen := uint16(0)
		for p := uint32(start); p <= uint32(end); p++ {
			if !conflicts(all, r.Proto, r.HostIP, uint16(p)) && (fixed || free(r.Proto, r.HostIP, uint16(p))) {
				chosen = uint16(p)
				break
			}
		}
		ip := "0.0.0.0"
		if r.HostIP.IsValid() {
			ip = r.HostIP.String()
		}
		if chosen == 0 {
			if fixed {
				return nil, fmt.Errorf("Bind for %s:%d failed: port is already allocated: %w", ip, start, errdefs.ErrExists)
			}
			return nil, fmt.Errorf("Bind for %s:%d-%d failed: no free port in the range: %w", ip, start, end, errdefs.ErrExists)
		}
		if fixed && !free(r.Proto, r.HostIP, chosen) {
			return nil, fmt.Errorf("Error starting userland proxy: listen %s4 %s:%d: bind: address already in use: %w", r.Proto, ip, chosen, errdefs.ErrExists)
		}
		m := PortMapping{Proto: r.Proto, ContainerPort: r.ContainerPort, HostIP: r.HostIP, HostPort: chosen}
		all = append(all, m)
		out = append(out, m)
	}
	return out, nil
}
