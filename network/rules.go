package network

import (
	"net/netip"
	"strconv"
)

// Rule is one iptables rule: its table, chain and specification (the
// arguments after "-A CHAIN").
type Rule struct {
	Table string
	Chain string
	Spec  []string
}

// The chains cais keeps its rules in, jumped to from the built-in ones,
// as Docker's DOCKER, DOCKER-FORWARD and DOCKER-ISOLATION-STAGE-1/2.
const (
	ChainDNAT       = "CAIS"
	ChainPost       = "CAIS-POSTROUTING"
	ChainForward    = "CAIS-FORWARD"
	ChainIsolation1 = "CAIS-ISOLATION-STAGE-1"
	ChainIsolation2 = "CAIS-ISOLATION-STAGE-2"
)

// Chain is a chain of cais's own, with the rule that jumps to it.
type Chain struct {
	Table string
	Name  string
	// Jump is inserted first in its chain (a built-in one, or one of
	// cais's created before); a chain only jumped to by network rules has
	// none (Jump.Chain is empty).
	Jump Rule
}

// BaseChains are cais's chains in the order they are created: every
// published port is DNATed from locally addressed packets, arriving
// (PREROUTING) or sent by the host itself (OUTPUT, 127.0.0.1 included);
// traffic leaving a network is masqueraded; forwarding is accepted per
// network, after the isolation stages drop traffic between two networks.
func BaseChains() []Chain {
	return []Chain{
		{Table: "nat", Name: ChainDNAT, Jump: Rule{"nat", "PREROUTING", []string{"-m", "addrtype", "--dst-type", "LOCAL", "-j", ChainDNAT}}},
		{Table: "nat", Name: ChainDNAT, Jump: Rule{"nat", "OUTPUT", []string{"-m", "addrtype", "--dst-type", "LOCAL", "-j", ChainDNAT}}},
		{Table: "nat", Name: ChainPost, Jump: Rule{"nat", "POSTROUTING", []string{"-j", ChainPost}}},
		{Table: "filter", Name: ChainForward, Jump: Rule{"filter", "FORWARD", []string{"-j", ChainForward}}},
		{Table: "filter", Name: ChainIsolation1, Jump: Rule{"filter", ChainForward, []string{"-j", ChainIsolation1}}},
		{Table: "filter", Name: ChainIsolation2},
	}
}

// BridgeRules are the rules of a bridge network: masquerade what leaves
// it for elsewhere (unless internal), what the host sends it from
// 127.0.0.0/8 (published ports reached on the loopback address) and what
// its containers send back into it through a published port (hairpin:
// the reply must come back through the host to be un-DNATed); accept
// forwarding out of it, between its containers and replies into it;
// isolate it from the other networks.
func BridgeRules(bridge string, subnet netip.Prefix, internal bool) []Rule {
	s := subnet.String()
	rules := []Rule{
		{"nat", ChainPost, []string{"-s", "127.0.0.0/8", "-o", bridge, "-j", "MASQUERADE"}},
		{"nat", ChainPost, []string{"-s", s, "-o", bridge, "-m", "conntrack", "--ctstate", "DNAT", "-j", "MASQUERADE"}},
		{"filter", ChainIsolation1, []string{"-i", bridge, "!", "-o", bridge, "-j", ChainIsolation2}},
		{"filter", ChainIsolation2, []string{"-o", bridge, "-j", "DROP"}},
		{"filter", ChainForward, []string{"-i", bridge, "-o", bridge, "-j", "ACCEPT"}},
	}
	if internal {
		return rules
	}
	return append(rules,
		Rule{"nat", ChainPost, []string{"-s", s, "!", "-o", bridge, "-j", "MASQUERADE"}},
		Rule{"filter", ChainForward, []string{"-i", bridge, "!", "-o", bridge, "-j", "ACCEPT"}},
		Rule{"filter", ChainForward, []string{"-o", bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"}},
	)
}

// PortRules are the rules publishing ports of the endpoint ip on bridge:
// DNAT from the host's addresses (or the one asked for), from outside
// and from the containers alike, and accept the forwarded connection.
func PortRules(bridge string, ip netip.Addr, ports []PortMapping) []Rule {
	var rules []Rule
	for _, m := range ports {
		var dnat []string
		if m.HostIP.IsValid() {
			dnat = append(dnat, "-d", m.HostIP.String()+"/32")
		}
		dnat = append(dnat, "-p", m.Proto, "-m", m.Proto, "--dport", strconv.Itoa(int(m.HostPort)),
			"-j", "DNAT", "--to-destination", netip.AddrPortFrom(ip, m.ContainerPort).String())
		rules = append(rules,
			Rule{"nat", ChainDNAT, dnat},
			Rule{"filter", ChainForward, []string{"-d", ip.String() + "/32", "!", "-i", bridge, "-o", bridge, "-p", m.Proto, "-m", m.Proto, "--dport", strconv.Itoa(int(m.ContainerPort)), "-j", "ACCEPT"}},
		)
	}
	return rules
}
