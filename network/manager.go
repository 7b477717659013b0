package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cais-platform/cais/errdefs"
)

// Drivers of the networks.
const (
	DriverBridge = "bridge"
	DriverHost   = "host"
	DriverNull   = "null"
)

// DefaultBridgeName is the Linux bridge of the default "bridge" network
// unless Options say otherwise (Docker's is docker0).
const DefaultBridgeName = "cais0"

// Network is a network's configuration and its endpoints, persisted in
// DIR/networks.json.
type Network struct {
	ID      string            `json:"Id"`
	Name    string            `json:"Name"`
	Driver  string            `json:"Driver"`
	Created time.Time         `json:"Created"`
	Subnet  netip.Prefix      `json:"Subnet"`
	Gateway netip.Addr        `json:"Gateway"`
	Bridge  string            `json:"Bridge,omitempty"`
	Labels  map[string]string `json:"Labels,omitempty"`
	Options map[string]string `json:"Options,omitempty"`
	// UserSubnet says the subnet was asked for (--subnet); otherwise one
	// is chosen again when it meets a host route before first use.
	UserSubnet bool `json:"UserSubnet,omitempty"`
	Internal   bool `json:"Internal,omitempty"`
	// Predefined are bridge, host and none, which cannot be removed.
	Predefined bool `json:"Predefined,omitempty"`
	// Endpoints are the containers attached, by container ID.
	Endpoints map[string]*Endpoint `json:"Endpoints,omitempty"`
}

// DNS says whether the network answers its containers' names: user
// bridge networks do, the default one does not, as in Docker.
func (n *Network) DNS() bool { return n.Driver == DriverBridge && !n.Predefined }

// Endpoint is a container's interface on a network.
type Endpoint struct {
	ID          string        `json:"Id"`
	ContainerID string        `json:"ContainerID"`
	Name        string        `json:"Name"`
	Aliases     []string      `json:"Aliases,omitempty"`
	IP          netip.Addr    `json:"IP"`
	MAC         string        `json:"MAC"`
	HostIf      string        `json:"HostIf"`
	IfName      string        `json:"IfName"`
	Sandbox     string        `json:"Sandbox"`
	Ports       []PortMapping `json:"Ports,omitempty"`
}

// Options configure a Manager.
type Options struct {
	// Dir holds networks.json and the network namespaces (netns/).
	Dir string
	// DefaultBridge is the Linux bridge of the "bridge" network; empty
	// keeps the one it has (cais0 for a new one).
	DefaultBridge string
	Log           *slog.Logger
}

// Manager keeps the networks, and attaches network namespaces (a
// container's, or a pod's shared by its containers) to them. A network's
// bridge, iptables rules and DNS server are set up when its first
// container joins, and taken down when it is removed or when caisd stops
// with no container on it.
// Its methods are safe for concurrent use.
type Manager struct {
	opts Options
	log  *slog.Logger

	mu   sync.Mutex
	nets map[string]*Network // by ID
	fw   *firewall
	dns  map[string]*dnsServer // by network ID
	// active holds the networks this process has set up (bridge, rules,
	// DNS): a container joining one of them adds only its veth.
	active map[string]bool

	// A stopped container's veth is deleted in the background (the kernel
	// takes 10-20 ms); its address stays taken until then.
	relMu     sync.Mutex
	releasing map[netip.Addr]int // by address: deletions under way
	vethWG    sync.WaitGroup
}

// Open reads the networks and makes the predefined ones (bridge, host,
// none) if missing. It changes nothing on the host: see Restore.
func Open(opts Options) (*Manager, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	m := &Manager{opts: opts, log: opts.Log, nets: map[string]*Network{}, dns: map[string]*dnsServer{}, active: map[string]bool{}, releasing: map[netip.Addr]int{}}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(m.stateFile())
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	if err == nil {
		var list []*Network
		if err := json.Unmarshal(b, &list); err != nil {
			return nil, fmt.Errorf("%s: %w", m.stateFile(), err)
		}
		for _, n := range list {
			if n.Endpoints == nil {
				n.Endpoints = map[string]*Endpoint{}
			}
			m.nets[n.ID] = n
		}
	}
	for _, p := range []struct{ name, driver string }{{"bridge", DriverBridge}, {"host", DriverHost}, {"none", DriverNull}} {
		if n := m.byName(p.name); n != nil {
			if n.Driver == DriverBridge && opts.DefaultBridge != "" && n.Bridge != opts.DefaultBridge {
				// caisd was started with another --bridge: the default
				// network moves to it once no container is on the old one.
				if len(n.Endpoints) == 0 {
					n.Bridge = opts.DefaultBridge
					n.Options["com.docker.network.bridge.name"] = n.Bridge
				} else {
					m.log.Warn("the default network keeps its bridge while containers are on it", "bridge", n.Bridge, "asked", opts.DefaultBridge)
				}
			}
			continue
		}
		n := &Network{ID: newID(), Name: p.name, Driver: p.driver, Created: time.Now().UTC(), Predefined: true, Endpoints: map[string]*Endpoint{}}
		if p.driver == DriverBridge {
			n.Bridge = opts.DefaultBridge
			if n.Bridge == "" {
				n.Bridge = DefaultBridgeName
			}
			n.Options = map[string]string{"com.docker.network.bridge.name": n.Bridge, "com.docker.network.bridge.default_bridge": "true"}
			if err := m.chooseSubnet(n); err != nil {
				return nil, err
			}
		}
		m.nets[n.ID] = n
	}
	if err := m.save(); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Manager) stateFile() string { return filepath.Join(m.opts.Dir, "networks.json") }

// SandboxPath is where the network namespace of sandbox id is mounted.
func (m *Manager) SandboxPath(id string) string { return filepath.Join(m.opts.Dir, "netns", id) }

// save persists the networks; call with m.mu held (or before sharing).
func (m *Manager) save() error {
	list := make([]*Network, 0, len(m.nets))
	for _, n := range m.nets {
		list = append(list, n)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Created.Before(list[j].Created) })
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	tmp := m.stateFile() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, m.stateFile())
}

func (m *Manager) saveLogged() {
	if err := m.save(); err != nil {
		m.log.Error("cannot save the networks", "err", err)
	}
}

func newID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (m *Manager) byName(name string) *Network {
	for _, n := range m.nets {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// lookup finds a network by name, ID or unique ID prefix, as Docker does.
func (m *Manager) lookup(ref string) (*Network, error) {
	if n, ok := m.nets[ref]; ok {
		return n, nil
	}
	if n := m.byName(ref); n != nil {
		return n, nil
	}
	var found *Network
	matches := 0
	for id, n := range m.nets {
		if ref != "" && strings.HasPrefix(id, ref) {
			found = n
			matches++
		}
	}
	if matches > 1 {
		return nil, fmt.Errorf("network %s is ambiguous (%d matches found based on ID prefix): %w", ref, matches, errdefs.ErrInvalid)
	}
	if found == nil {
		return nil, fmt.Errorf("network %s not found: %w", ref, errdefs.ErrNotFound)
	}
	return found, nil
}

// clone copies a network, so callers never share the manager's.
func clone(n *Network) Network {
	c := *n
	c.Endpoints = map[string]*Endpoint{}
	for k, ep := range n.Endpoints {
		e := *ep
		e.Aliases = append([]string(nil), ep.Aliases...)
		e.Ports = append([]PortMapping(nil), ep.Ports...)
		c.Endpoints[k] = &e
	}
	return c
}

// Get returns a copy of the network ref names.
func (m *Manager) Get(ref string) (Network, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookup(ref)
	if err != nil {
		return Network{}, err
	}
	return clone(n), nil
}

// List returns copies of the networks, oldest first.
func (m *Manager) List() []Network {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Network, 0, len(m.nets))
	for _, n := range m.nets {
		out = append(out, clone(n))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out
}

// CreateOptions are docker network create's.
type CreateOptions struct {
	Name     string
	Driver   string
	Subnet   string
	Gateway  string
	Internal bool
	Labels   map[string]string
	Options  map[string]string
}

var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// Create makes a bridge network. Its bridge is created when its first
// container joins.
func (m *Manager) Create(ctx context.Context, o CreateOptions) (Network, error) {
	if o.Driver == "" {
		o.Driver = DriverBridge
	}
	switch o.Driver {
	case DriverBridge:
	case DriverHost, DriverNull:
		return Network{}, fmt.Errorf("only one instance of \"%s\" network is allowed: %w", o.Driver, errdefs.ErrExists)
	default:
		return Network{}, fmt.Errorf("plugin \"%s\" not found: %w", o.Driver, errdefs.ErrNotFound)
	}
	if !validName.MatchString(o.Name) {
		return Network{}, fmt.Errorf("invalid network name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed: %w", o.Name, errdefs.ErrInvalid)
	}
	n := &Network{ID: newID(), Name: o.Name, Driver: o.Driver, Created: time.Now().UTC(), Internal: o.Internal,
		Labels: o.Labels, Options: o.Options, Endpoints: map[string]*Endpoint{}}
	n.Bridge = "br-" + n.ID[:12]
	if name := o.Options["com.docker.network.bridge.name"]; name != "" {
		if len(name) > 15 {
			return Network{}, fmt.Errorf("bridge name %q is longer than 15 characters: %w", name, errdefs.ErrInvalid)
		}
		n.Bridge = name
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.byName(o.Name) != nil {
		return Network{}, fmt.Errorf("network with name %s already exists: %w", o.Name, errdefs.ErrExists)
	}
	for _, other := range m.nets {
		if other.Bridge != "" && other.Bridge == n.Bridge {
			return Network{}, fmt.Errorf("bridge %s is used by network %s: %w", n.Bridge, other.Name, errdefs.ErrExists)
		}
	}
	if o.Subnet != "" {
		p, err := ParseSubnet(o.Subnet)
		if err != nil {
			return Network{}, err
		}
		for _, other := range m.nets {
			if other.Subnet.IsValid() && other.Subnet.Overlaps(p) {
				return Network{}, fmt.Errorf("invalid pool request: Pool overlaps with other one on this address space: %w", errdefs.ErrExists)
			}
		}
		n.Subnet, n.UserSubnet = p, true
		n.Gateway = FirstHost(p)
		if o.Gateway != "" {
			gw, err := netip.ParseAddr(o.Gateway)
			if err != nil || !p.Contains(gw) || gw == p.Addr() || gw == lastAddr(p) {
				return Network{}, fmt.Errorf("invalid gateway %s for subnet %s: %w", o.Gateway, p, errdefs.ErrInvalid)
			}
			n.Gateway = gw
		}
	} else {
		if o.Gateway != "" {
			return Network{}, fmt.Errorf("invalid pool request: gateway %s given without a subnet: %w", o.Gateway, errdefs.ErrInvalid)
		}
		if err := m.chooseSubnet(n); err != nil {
			return Network{}, err
		}
	}
	m.nets[n.ID] = n
	if err := m.save(); err != nil {
		delete(m.nets, n.ID)
		return Network{}, err
	}
	m.log.Info("network created", "name", n.Name, "subnet", n.Subnet, "bridge", n.Bridge)
	return clone(n), nil
}

// chooseSubnet gives n the first default pool no other network and no
// host route uses.
func (m *Manager) chooseSubnet(n *Network) error {
	skip := map[string]bool{}
	var used []netip.Prefix
	for _, other := range m.nets {
		if other != n && other.Subnet.IsValid() {
			used = append(used, other.Subnet)
			skip[other.Bridge] = true
		}
	}
	routes, err := hostRoutes(skip)
	if err != nil {
		return err
	}
	p, err := ChooseSubnet(DefaultPools(), append(used, routes...))
	if err != nil {
		return err
	}
	n.Subnet, n.Gateway = p, FirstHost(p)
	return nil
}

// Remove deletes a network no container is attached to.
func (m *Manager) Remove(ctx context.Context, ref string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookup(ref)
	if err != nil {
		return err
	}
	if n.Predefined {
		return fmt.Errorf("%s is a pre-defined network and cannot be removed: %w", n.Name, errdefs.ErrForbidden)
	}
	if len(n.Endpoints) > 0 {
		return fmt.Errorf("error while removing network: %s: %w", activeEndpoints(n), errdefs.ErrForbidden)
	}
	m.deactivate(n)
	delete(m.nets, n.ID)
	m.log.Info("network removed", "name", n.Name)
	return m.save()
}

// activeEndpoints is Docker's "network X has 1 active endpoint (name)".
func activeEndpoints(n *Network) string {
	var names []string
	for _, ep := range n.Endpoints {
		names = append(names, ep.Name)
	}
	sort.Strings(names)
	s := "s"
	if len(names) == 1 {
		s = ""
	}
	return fmt.Sprintf("network %s has %d active endpoint%s (%s)", n.Name, len(names), s, strings.Join(names, ", "))
}

// Prune removes the user networks without containers and returns their
// names.
func (m *Manager) Prune(ctx context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for id, n := range m.nets {
		if n.Predefined || len(n.Endpoints) > 0 {
			continue
		}
		m.deactivate(n)
		delete(m.nets, id)
		out = append(out, n.Name)
	}
	sort.Strings(out)
	return out, m.save()
}

// CreateSandbox makes the network namespace of sandbox id (a container,
// or a pod whose containers share it): lo only, until it joins networks.
// Give its path to runc as the container's network namespace.
func (m *Manager) CreateSandbox(ctx context.Context, id string) (string, error) {
	p := m.SandboxPath(id)
	if _, err := os.Stat(p); err == nil {
		deleteNetNS(p) // left by a crash: start afresh
	}
	if err := createNetNS(p); err != nil {
		return "", err
	}
	return p, nil
}

// DeleteSandbox removes the network namespace of sandbox id, after its
// endpoints (LeaveAll).
func (m *Manager) DeleteSandbox(ctx context.Context, id string) error {
	return deleteNetNS(m.SandboxPath(id))
}

// JoinRequest attaches a sandbox to a network.
type JoinRequest struct {
	Network     string
	ContainerID string
	// Sandbox is the network namespace's path (CreateSandbox).
	Sandbox string
	// Name and Aliases are what the network's DNS answers with the
	// endpoint's address (with the short container ID).
	Name    string
	Aliases []string
	// IP is the address asked for (--ip); invalid: any.
	IP netip.Addr
	// Ports are published from the host to this endpoint.
	Ports []PortRequest
	// DefaultRoute makes the network the sandbox's way out.
	DefaultRoute bool
}

// Join attaches a sandbox to a network: an address, a veth pair on the
// network's bridge (created with its rules and DNS server if this is the
// first endpoint), the published ports' rules.
func (m *Manager) Join(ctx context.Context, r JoinRequest) (Endpoint, Network, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookup(r.Network)
	if err != nil {
		return Endpoint{}, Network{}, err
	}
	if n.Driver != DriverBridge {
		return Endpoint{}, Network{}, fmt.Errorf("network %s: a %s network is joined by the container's network mode, not as an endpoint: %w", n.Name, n.Driver, errdefs.ErrInvalid)
	}
	if _, ok := n.Endpoints[r.ContainerID]; ok {
		return Endpoint{}, Network{}, fmt.Errorf("endpoint with name %s already exists in network %s: %w", r.Name, n.Name, errdefs.ErrExists)
	}
	if r.IP.IsValid() && !n.UserSubnet {
		return Endpoint{}, Network{}, fmt.Errorf("user specified IP address is supported only when connecting to networks with user configured subnets: %w", errdefs.ErrInvalid)
	}
	inUse := map[netip.Addr]bool{}
	for _, ep := range n.Endpoints {
		inUse[ep.IP] = true
	}
	m.relMu.Lock()
	for a := range m.releasing {
		inUse[a] = true
	}
	m.relMu.Unlock()
	if len(n.Endpoints) == 0 && !n.UserSubnet && !linkExists(n.Bridge) {
		// The subnet chosen may have been taken by a host route since.
		if err := m.chooseSubnet(n); err != nil {
			return Endpoint{}, Network{}, err
		}
	}
	ip, err := Allocate(n.Subnet, n.Gateway, inUse, r.IP)
	if err != nil {
		return Endpoint{}, Network{}, err
	}
	var taken []PortMapping
	ifNames := map[string]bool{}
	for _, other := range m.nets {
		for cid, ep := range other.Endpoints {
			taken = append(taken, ep.Ports...)
			if cid == r.ContainerID {
				ifNames[ep.IfName] = true
			}
		}
	}
	epID := newID()
	ports, err := AllocatePorts(r.Ports, taken, ephemeralRange(), hostPortFree)
	if err != nil {
		return Endpoint{}, Network{}, fmt.Errorf("driver failed programming external connectivity on endpoint %s (%s): %w", r.Name, epID, err)
	}
	ifName := ""
	for i := 0; ; i++ {
		if name := "eth" + strconv.Itoa(i); !ifNames[name] {
			ifName = name
			break
		}
	}
	ep := &Endpoint{ID: epID, ContainerID: r.ContainerID, Name: r.Name, Aliases: r.Aliases, IP: ip, MAC: MACAddress(ip),
		IfName: ifName, Sandbox: r.Sandbox, Ports: ports}
	ep.HostIf = "veth" + ep.ID[:7]
	if len(n.Endpoints) == 0 {
		if ports := bridgePorts(n.Bridge); len(ports) > 0 {
			// Two caisd sharing a bridge would hand out the same
			// addresses and tear it down under each other.
			return Endpoint{}, Network{}, fmt.Errorf("network %s: bridge %s is in use by another caisd or program on this host (%s attached); give this caisd a bridge of its own (caisd --bridge NAME): %w",
				n.Name, n.Bridge, strings.Join(ports, ", "), errdefs.ErrConflict)
		}
	}
	if !m.active[n.ID] || !linkExists(n.Bridge) {
		// Not set up yet; or the bridge went (deleted by hand, or by
		// another caisd given the same bridge name).
		if err := m.activate(n); err != nil {
			if len(n.Endpoints) == 0 {
				m.deactivate(n)
			}
			return Endpoint{}, Network{}, err
		}
	}
	err = addVeth(vethConfig{nsPath: r.Sandbox, bridge: n.Bridge, hostName: ep.HostIf, ifName: ifName,
		addr: netip.PrefixFrom(ip, n.Subnet.Bits()), mac: ep.MAC, gateway: n.Gateway, defaultRoute: r.DefaultRoute})
	if err == nil {
		err = m.fw.apply(PortRules(n.Bridge, ip, ports))
	}
	if err != nil {
		m.fw.withdraw(PortRules(n.Bridge, ip, ports), false)
		deleteLink(ep.HostIf)
		if len(n.Endpoints) == 0 {
			m.deactivate(n)
		}
		return Endpoint{}, Network{}, err
	}
	n.Endpoints[r.ContainerID] = ep
	m.saveLogged()
	m.log.Debug("endpoint joined", "network", n.Name, "container", r.Name, "ip", ip, "ports", len(ports))
	return *ep, clone(n), nil
}

// Leave detaches a container from a network: its veth and its ports'
// rules. The network stays set up for the next container (until it is
// removed, or caisd stops).
func (m *Manager) Leave(ctx context.Context, network, containerID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookup(network)
	if err != nil {
		return err
	}
	if _, ok := n.Endpoints[containerID]; !ok {
		return fmt.Errorf("container %s is not connected to network %s: %w", containerID, n.Name, errdefs.ErrNotFound)
	}
	m.leave(n, containerID, false)
	m.saveLogged()
	return nil
}

// LeaveAll detaches a container from every network it is on.
func (m *Manager) LeaveAll(ctx context.Context, containerID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := false
	for _, n := range m.nets {
		if _, ok := n.Endpoints[containerID]; ok {
			m.leave(n, containerID, true)
			changed = true
		}
	}
	if changed {
		m.saveLogged()
	}
}

// leave removes an endpoint: its port rules, then its veth, in the
// background with background (the address stays taken until the veth is
// gone).
func (m *Manager) leave(n *Network, containerID string, background bool) {
	ep := n.Endpoints[containerID]
	if m.fw != nil {
		if err := m.fw.withdraw(PortRules(n.Bridge, ep.IP, ep.Ports), false); err != nil {
			m.log.Warn("cannot remove port rules", "network", n.Name, "err", err)
		}
	}
	delete(n.Endpoints, containerID)
	if !background {
		if err := deleteLink(ep.HostIf); err != nil {
			m.log.Warn("cannot remove veth", "link", ep.HostIf, "err", err)
		}
		return
	}
	m.relMu.Lock()
	m.releasing[ep.IP]++
	m.relMu.Unlock()
	m.vethWG.Add(1)
	go func() {
		defer m.vethWG.Done()
		if err := deleteLink(ep.HostIf); err != nil {
			m.log.Warn("cannot remove veth", "link", ep.HostIf, "err", err)
		}
		m.relMu.Lock()
		if m.releasing[ep.IP]--; m.releasing[ep.IP] <= 0 {
			delete(m.releasing, ep.IP)
		}
		m.relMu.Unlock()
	}()
}

// activate sets a bridge network up on the host: the bridge, its rules,
// its DNS server.
func (m *Manager) activate(n *Network) error {
	if m.fw == nil {
		fw, err := newFirewall()
		if err != nil {
			return err
		}
		m.fw = fw
	}
	if err := ensureBridge(n.Bridge, netip.PrefixFrom(n.Gateway, n.Subnet.Bits())); err != nil {
		return err
	}
	if err := m.fw.apply(BridgeRules(n.Bridge, n.Subnet, n.Internal)); err != nil {
		return err
	}
	if n.DNS() && m.dns[n.ID] == nil {
		id := n.ID
		s, err := startDNS(n.Gateway, func(name string) []netip.Addr { return m.resolve(id, name) }, m.log.With("network", n.Name))
		if err != nil {
			return err
		}
		m.dns[n.ID] = s
	}
	m.active[n.ID] = true
	return nil
}

// deactivate undoes activate; what is missing already is skipped.
func (m *Manager) deactivate(n *Network) {
	delete(m.active, n.ID)
	m.vethWG.Wait() // veths still being deleted hold the bridge
	if s := m.dns[n.ID]; s != nil {
		s.close()
		delete(m.dns, n.ID)
	}
	if n.Driver != DriverBridge {
		return
	}
	if m.fw == nil {
		if !linkExists(n.Bridge) {
			return
		}
		fw, err := newFirewall()
		if err != nil {
			m.log.Warn("cannot remove network rules", "network", n.Name, "err", err)
			return
		}
		m.fw = fw
	}
	if ports := bridgePorts(n.Bridge); len(ports) > 0 {
		// Not ours alone: whoever attached them takes it down.
		m.log.Warn("bridge left up: other links are attached", "bridge", n.Bridge, "links", ports)
		return
	}
	if err := deleteLink(n.Bridge); err != nil {
		m.log.Warn("cannot remove bridge", "bridge", n.Bridge, "err", err)
	}
	if err := m.fw.withdraw(BridgeRules(n.Bridge, n.Subnet, n.Internal), true); err != nil {
		m.log.Warn("cannot remove network rules", "network", n.Name, "err", err)
	}
}

// resolve answers a DNS name on network id: a container's name, alias or
// short ID.
func (m *Manager) resolve(id, name string) []netip.Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.nets[id]
	if n == nil {
		return nil
	}
	var out []netip.Addr
	for cid, ep := range n.Endpoints {
		match := strings.EqualFold(ep.Name, name) || len(name) == 12 && strings.HasPrefix(cid, name)
		for _, a := range ep.Aliases {
			match = match || strings.EqualFold(a, name)
		}
		if match {
			out = append(out, ep.IP)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}

// Restore brings the host in line with the networks after caisd starts:
// endpoints of containers that are no longer running are removed (with
// their sandboxes), and the networks that still have endpoints get their
// bridge, rules and DNS server back.
func (m *Manager) Restore(ctx context.Context, running func(containerID string) bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var first error
	for _, n := range m.nets {
		for cid, ep := range n.Endpoints {
			if !running(cid) {
				m.leave(n, cid, false)
				deleteNetNS(ep.Sandbox)
			}
		}
		if len(n.Endpoints) == 0 {
			if linkExists(n.Bridge) {
				m.deactivate(n) // left by a caisd that did not stop cleanly
			}
			continue
		}
		if err := m.activate(n); err != nil {
			if first == nil {
				first = fmt.Errorf("network %s: %w", n.Name, err)
			}
			continue
		}
		for _, ep := range n.Endpoints {
			if err := m.fw.apply(PortRules(n.Bridge, ep.IP, ep.Ports)); err != nil && first == nil {
				first = err
			}
		}
	}
	m.saveLogged()
	return first
}

// TearDown takes every network down and removes every endpoint with its
// namespace: for what a caisd that was killed left (a test harness, after
// killing it); the containers, if any still run, lose their networking.
func (m *Manager) TearDown() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range m.nets {
		for cid, ep := range n.Endpoints {
			m.leave(n, cid, false)
			deleteNetNS(ep.Sandbox)
		}
		if n.Driver == DriverBridge && linkExists(n.Bridge) {
			m.deactivate(n)
		}
	}
	m.saveLogged()
	ents, _ := os.ReadDir(filepath.Join(m.opts.Dir, "netns"))
	for _, e := range ents {
		deleteNetNS(filepath.Join(m.opts.Dir, "netns", e.Name()))
	}
}

// Close stops the DNS servers and takes down the networks no container
// is on; the others' bridges and rules stay for the containers, which
// keep running.
func (m *Manager) Close() {
	m.vethWG.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, s := range m.dns {
		s.close()
		delete(m.dns, id)
	}
	for _, n := range m.nets {
		if n.Driver == DriverBridge && len(n.Endpoints) == 0 && linkExists(n.Bridge) {
			m.deactivate(n)
		}
	}
}

// ephemeralRange is the host's ip_local_port_range (Docker's default
// 32768–60999 if unreadable).
func ephemeralRange() PortRange {
	r := PortRange{32768, 60999}
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return r
	}
	f := strings.Fields(string(b))
	if len(f) == 2 {
		lo, err1 := strconv.Atoi(f[0])
		hi, err2 := strconv.Atoi(f[1])
		if err1 == nil && err2 == nil && lo > 0 && hi <= 65535 && lo <= hi {
			r = PortRange{uint16(lo), uint16(hi)}
		}
	}
	return r
}

// hostPortFree says whether a host process could take the port, by
// binding it for a moment.
func hostPortFree(proto string, ip netip.Addr, port uint16) bool {
	host := "0.0.0.0"
	if ip.IsValid() {
		host = ip.String()
	}
	addr := net.JoinHostPort(host, strconv.Itoa(int(port)))
	switch proto {
	case "tcp":
		l, err := net.Listen("tcp4", addr)
		if err != nil {
			return false
		}
		l.Close()
	case "udp":
		c, err := net.ListenPacket("udp4", addr)
		if err != nil {
			return false
		}
		c.Close()
	}
	return true
}
