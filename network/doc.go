// Package network gives containers their networking, the way dockerd's
// bridge driver does: a network namespace per container (or per pod, its
// containers sharing it), attached to Linux bridges by veth pairs, with
// addresses from a small IPAM, NAT to the outside, published ports and,
// on user networks, a DNS server that answers the containers' names.
//
// # Pure core, thin I/O
//
// The decisions are pure functions, tested without privileges:
// [ChooseSubnet] and [Allocate] (the IPAM: a subnet among Docker's default
// pools that meets no host route, the lowest free address in it),
// [PortRequests] and [AllocatePorts] (docker run -p and -P: which host
// port each published port gets, "port is already allocated"),
// [BaseChains], [BridgeRules] and [PortRules] (the iptables rules of a
// network and of an endpoint's ports), and [Answer] (the reply to a
// container's DNS query, or that it goes to the host's resolvers). The
// I/O that carries them out is in link.go (network namespaces, bridges
// and veths with vishvananda/netlink), iptables.go (coreos/go-iptables)
// and the DNS server in dns.go.
//
// # Using it
//
// A [Manager] keeps the networks in DIR/networks.json: the predefined
// bridge (its Linux bridge cais0 by default), host and none, and those
// [Manager.Create] makes. To give a container (or a pod) a network:
//
//	path, _ := m.CreateSandbox(ctx, id)       // a named netns, lo only
//	ep, n, _ := m.Join(ctx, network.JoinRequest{Network: "bridge",
//		ContainerID: id, Sandbox: path, Name: "web", DefaultRoute: true})
//	// run the container with LinuxNamespace{Type: "network", Path: path}
//	m.LeaveAll(ctx, id)                         // when it stops
//	m.DeleteSandbox(ctx, id)
//
// A network's bridge, its rules and its DNS server are set up by the
// first Join, and stay (a container's start and stop only add and remove
// its veth and port rules) until [Manager.Remove] or, for a network no
// container is on, [Manager.Close] when caisd stops; cais's iptables
// chains go with the last network on the host, so nothing is left behind
// once the containers are gone and caisd has stopped. After a caisd
// restart, [Manager.Restore] removes the endpoints of containers that
// stopped meanwhile, sets the others' networks up again and takes down
// what a caisd that did not stop cleanly left.
//
// # Reaching containers
//
// Published ports are DNATed from packets addressed to the host
// (PREROUTING) and from the host itself (OUTPUT), 127.0.0.1 included: the
// bridge has route_localnet set and what the host sends it from
// 127.0.0.0/8 is masqueraded, so no userland proxy is needed. A user
// network's DNS server listens on its gateway address, port 53; the
// containers' resolv.conf names it. It answers the containers' names,
// network aliases and short IDs, and forwards other names to the host's
// resolvers (SERVFAIL after two seconds when none answers).
package network
