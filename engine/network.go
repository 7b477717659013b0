package engine

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/network"
)

// NetworkSettings are a container's networks (Docker's
// "NetworkSettings"): those it is connected to, with their addresses
// while it runs, and its published ports.
type NetworkSettings struct {
	// Networks are the networks the container joins when it starts, by
	// name.
	Networks map[string]*EndpointSettings `json:"Networks"`
	// Ports are the published ports of the current run, by "80/tcp".
	Ports map[string][]PortBinding `json:"Ports,omitempty"`
	// SandboxKey is the network namespace of the current run.
	SandboxKey string `json:"SandboxKey,omitempty"`
}

// EndpointSettings is a container's endpoint on a network (Docker's,
// in NetworkingConfig.EndpointsConfig and NetworkSettings.Networks).
type EndpointSettings struct {
	IPAMConfig  *EndpointIPAMConfig `json:"IPAMConfig"`
	Aliases     []string            `json:"Aliases"`
	DNSNames    []string            `json:"DNSNames"`
	NetworkID   string              `json:"NetworkID"`
	EndpointID  string              `json:"EndpointID"`
	Gateway     string              `json:"Gateway"`
	IPAddress   string              `json:"IPAddress"`
	IPPrefixLen int                 `json:"IPPrefixLen"`
	MacAddress  string              `json:"MacAddress"`
}

// EndpointIPAMConfig is the address asked for (docker run --ip).
type EndpointIPAMConfig struct {
	IPv4Address string `json:"IPv4Address,omitempty"`
}

// Networks returns the network manager.
func (e *Engine) Networks() *network.Manager { return e.net }

// isNetworkMode reports whether mode joins the container to networks
// (bridge or a user network) rather than host, none or another
// container's namespace.
func isNetworkMode(mode string) bool {
	return mode != "host" && mode != "none" && !strings.HasPrefix(mode, "container:")
}

// initNetworks fills a new container's NetworkSettings from its network
// mode and the endpoint configs of the create request, checking the
// networks exist.
func (e *Engine) initNetworks(c *Container, endpoints map[string]*EndpointSettings) error {
	mode := c.HostConfig.NetworkMode
	c.NetworkSettings = NetworkSettings{Networks: map[string]*EndpointSettings{}}
	if ref, ok := strings.CutPrefix(mode, "container:"); ok {
		if _, err := e.lookup(ref); err != nil {
			return err
		}
	}
	if !isNetworkMode(mode) {
		if len(endpoints) > 1 {
			return fmt.Errorf("conflicting options: only one network may be given with --network %s: %w", mode, errdefs.ErrInvalid)
		}
		if mode == "host" || mode == "none" {
			c.NetworkSettings.Networks[mode] = &EndpointSettings{}
			if n, err := e.net.Get(mode); err == nil {
				c.NetworkSettings.Networks[mode].NetworkID = n.ID
			}
		}
		return nil
	}
	// The CLI names the network of --network default (or none given)
	// "default".
	if cfg, ok := endpoints["default"]; ok {
		endpoints = maps.Clone(endpoints)
		delete(endpoints, "default")
		if endpoints[mode] == nil {
			endpoints[mode] = cfg
		}
	}
	names := []string{mode}
	for name := range endpoints {
		if name != mode {
			names = append(names, name)
		}
	}
	sort.Strings(names[1:])
	for _, name := range names {
		n, err := e.net.Get(name)
		if err != nil {
			// Not a 404, which the CLI would take for a missing image.
			return fmt.Errorf("network %s not found: %w", name, errdefs.ErrInvalid)
		}
		es := &EndpointSettings{NetworkID: n.ID}
		if cfg := endpoints[name]; cfg != nil {
			es.Aliases = cfg.Aliases
			es.IPAMConfig = cfg.IPAMConfig
		}
		if n.Predefined && len(es.Aliases) > 0 {
			return fmt.Errorf("network-scoped aliases are only supported for user-defined networks: %w", errdefs.ErrInvalid)
		}
		if es.IPAMConfig != nil && es.IPAMConfig.IPv4Address != "" {
			if n.Predefined {
				return fmt.Errorf("user specified IP address is supported on user defined networks only: %w", errdefs.ErrInvalid)
			}
			if _, err := netip.ParseAddr(es.IPAMConfig.IPv4Address); err != nil {
				return fmt.Errorf("invalid IPv4 address: %s: %w", es.IPAMConfig.IPv4Address, errdefs.ErrInvalid)
			}
		}
		c.NetworkSettings.Networks[n.Name] = es
	}
	return nil
}

// connectNetworks gives a starting container its network namespace,
// joined to its networks (the network mode's first: it has the default
// route and the published ports), and returns the namespace's path ("" for
// host and none, whose namespace runc makes or shares).
func (e *Engine) connectNetworks(ctx context.Context, c *container, snap Container) (string, error) {
	if ref, ok := strings.CutPrefix(snap.HostConfig.NetworkMode, "container:"); ok {
		// --network container:X joins X's namespace, as a pod's
		// containers share the pod's.
		other, err := e.Get(ref)
		if err != nil {
			return "", err
		}
		if other.State.Status != Running || other.NetworkSettings.SandboxKey == "" {
			return "", fmt.Errorf("cannot join network of a non running container: %s: %w", ref, errdefs.ErrState)
		}
		return other.NetworkSettings.SandboxKey, nil
	}
	if !isNetworkMode(snap.HostConfig.NetworkMode) {
		return "", nil
	}
	path, err := e.net.CreateSandbox(ctx, c.ID)
	if err != nil {
		return "", err
	}
	names := joinOrder(snap)
	ports, err := portRequests(snap)
	if err != nil {
		e.disconnectNetworks(c)
		return "", err
	}
	settings := map[string]*EndpointSettings{}
	var published []network.PortMapping
	for i, name := range names {
		es := EndpointSettings{}
		if old := snap.NetworkSettings.Networks[name]; old != nil {
			es = *old
		}
		req := network.JoinRequest{Network: name, ContainerID: c.ID, Sandbox: path, Name: snap.Name,
			Aliases: es.Aliases, DefaultRoute: i == 0}
		if i == 0 {
			req.Ports = ports
		}
		if es.IPAMConfig != nil && es.IPAMConfig.IPv4Address != "" {
			req.IP, _ = netip.ParseAddr(es.IPAMConfig.IPv4Address)
		}
		ep, n, err := e.net.Join(ctx, req)
		if err != nil {
			e.disconnectNetworks(c)
			return "", err
		}
		fillEndpoint(&es, ep, n, c.ID)
		settings[n.Name] = &es
		if i == 0 {
			published = ep.Ports
		}
	}
	e.setState(c, func(c *container) {
		c.NetworkSettings.Networks = settings
		c.NetworkSettings.SandboxKey = path
		c.NetworkSettings.Ports = publishedPorts(snap.Config.ExposedPorts, published)
	})
	return path, nil
}

// joinOrder lists a container's networks in the order it joins them:
// that of its network mode first, the others by name.
func joinOrder(c Container) []string {
	var names []string
	for name := range c.NetworkSettings.Networks {
		if name != c.HostConfig.NetworkMode {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	if _, ok := c.NetworkSettings.Networks[c.HostConfig.NetworkMode]; ok {
		names = append([]string{c.HostConfig.NetworkMode}, names...)
	}
	return names
}

// fillEndpoint records a joined endpoint in its settings.
func fillEndpoint(es *EndpointSettings, ep network.Endpoint, n network.Network, id string) {
	es.NetworkID, es.EndpointID = n.ID, ep.ID
	es.Gateway, es.IPAddress, es.IPPrefixLen = n.Gateway.String(), ep.IP.String(), n.Subnet.Bits()
	es.MacAddress = ep.MAC
	es.DNSNames = nil
	if n.DNS() {
		es.DNSNames = append(append([]string{ep.Name}, ep.Aliases...), ShortID(id))
	}
}

// publishedPorts is inspect's NetworkSettings.Ports: every exposed or
// published port, with its host bindings (none for an exposed port that
// is not published).
func publishedPorts(exposed map[string]struct{}, ports []network.PortMapping) map[string][]PortBinding {
	out := map[string][]PortBinding{}
	for p := range exposed {
		if port, proto, err := network.ParsePort(p); err == nil {
			out[strconv.Itoa(int(port))+"/"+proto] = nil
		}
	}
	for _, m := range ports {
		out[m.Key()] = append(out[m.Key()], PortBinding{HostIP: m.HostIPString(), HostPort: strconv.Itoa(int(m.HostPort))})
	}
	return out
}

// portRequests are the ports a container publishes (-p, and -P's exposed
// ports).
func portRequests(c Container) ([]network.PortRequest, error) {
	bindings := map[string][]network.Binding{}
	for k, bs := range c.HostConfig.PortBindings {
		list := []network.Binding{}
		for _, b := range bs {
			list = append(list, network.Binding{HostIP: b.HostIP, HostPort: b.HostPort})
		}
		bindings[k] = list
	}
	var exposed []string
	for p := range c.Config.ExposedPorts {
		exposed = append(exposed, p)
	}
	sort.Strings(exposed)
	return network.PortRequests(bindings, exposed, c.HostConfig.PublishAllPorts)
}

// disconnectNetworks removes a stopped container's endpoints and network
// namespace, keeping the networks it joins at its next start.
func (e *Engine) disconnectNetworks(c *container) {
	ctx := context.Background()
	e.net.LeaveAll(ctx, c.ID)
	if err := e.net.DeleteSandbox(ctx, c.ID); err != nil {
		e.log.Warn("cannot remove the network namespace", "container", c.ID, "err", err)
	}
	e.mu.Lock()
	if c.NetworkSettings.SandboxKey == "" {
		e.mu.Unlock()
		return
	}
	e.mu.Unlock()
	e.setState(c, func(c *container) {
		c.NetworkSettings.SandboxKey = ""
		c.NetworkSettings.Ports = nil
		nets := map[string]*EndpointSettings{}
		for name, es := range c.NetworkSettings.Networks {
			// Settings are replaced, never changed in place: snapshots
			// share them.
			nets[name] = &EndpointSettings{IPAMConfig: es.IPAMConfig, Aliases: es.Aliases, NetworkID: es.NetworkID}
		}
		c.NetworkSettings.Networks = nets
	})
}

// writeNetworkEtc adds the container's addresses to its /etc/hosts and,
// on a user network, names the network's DNS server in its resolv.conf.
func (e *Engine) writeNetworkEtc(c *container, etc map[string]string) error {
	e.mu.Lock()
	snap := c.snapshot()
	e.mu.Unlock()
	if ref, ok := strings.CutPrefix(snap.HostConfig.NetworkMode, "container:"); ok {
		// The other container's names and resolver, as in Docker.
		other, err := e.Get(ref)
		if err != nil {
			return err
		}
		for _, f := range []string{"hosts", "resolv.conf"} {
			if b, err := os.ReadFile(filepath.Join(e.dir(other.ID), f)); err == nil && etc["/etc/"+f] != "" {
				if err := os.WriteFile(etc["/etc/"+f], b, 0o644); err != nil {
					return err
				}
			}
		}
		return nil
	}
	ns, hostname := snap.NetworkSettings, snap.Config.Hostname
	order := joinOrder(snap)
	if !isNetworkMode(snap.HostConfig.NetworkMode) || len(order) == 0 {
		return nil
	}
	mode := order[0]
	if hostname == "" {
		hostname = ShortID(c.ID)
	}
	if p := etc["/etc/hosts"]; p != "" {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		if es := ns.Networks[mode]; es.IPAddress != "" {
			if _, err := fmt.Fprintf(f, "%s\t%s\n", es.IPAddress, hostname); err != nil {
				return err
			}
		}
	}
	n, err := e.net.Get(mode)
	if err != nil || !n.DNS() {
		return nil
	}
	if p := etc["/etc/resolv.conf"]; p != "" {
		return writeResolvConf(p, n.Gateway)
	}
	return nil
}

// writeResolvConf names a network's DNS server in a container's
// resolv.conf, keeping its search and options lines. The file is
// rewritten in place: it is bind-mounted into the running container.
func writeResolvConf(p string, server netip.Addr) error {
	old, _ := os.ReadFile(p)
	conf := "# Generated by cais: the network's DNS server answers containers' names\n# and forwards the rest to the host's resolvers.\nnameserver " + server.String() + "\n"
	for _, l := range strings.Split(string(old), "\n") {
		if f := strings.Fields(l); len(f) > 0 && (f[0] == "search" || f[0] == "options") {
			conf += l + "\n"
		}
	}
	return os.WriteFile(filepath.Clean(p), []byte(conf), 0o644)
}

// ConnectNetwork connects a container to a network (docker network
// connect): at once if it runs, at its next start otherwise.
func (e *Engine) ConnectNetwork(ctx context.Context, ref, netRef string, cfg *EndpointSettings) error {
	c, err := e.lookup(ref)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	n, err := e.net.Get(netRef)
	if err != nil {
		return err
	}
	e.mu.Lock()
	snap := c.snapshot()
	e.mu.Unlock()
	if n.Driver == network.DriverHost || snap.HostConfig.NetworkMode == "host" {
		return fmt.Errorf("container cannot be disconnected from host network or connected to host network: %w", errdefs.ErrForbidden)
	}
	if strings.HasPrefix(snap.HostConfig.NetworkMode, "container:") {
		return fmt.Errorf("container sharing network namespace with another container or host cannot be connected to any other network: %w", errdefs.ErrForbidden)
	}
	if n.Driver == network.DriverNull || !isNetworkMode(snap.HostConfig.NetworkMode) {
		return fmt.Errorf("container cannot be connected to multiple networks with one of the networks in private (none) mode: %w", errdefs.ErrForbidden)
	}
	if _, ok := snap.NetworkSettings.Networks[n.Name]; ok {
		return fmt.Errorf("endpoint with name %s already exists in network %s: %w", snap.Name, n.Name, errdefs.ErrForbidden)
	}
	es := EndpointSettings{NetworkID: n.ID}
	if cfg != nil {
		es.Aliases, es.IPAMConfig = cfg.Aliases, cfg.IPAMConfig
	}
	if snap.State.Status == Running && snap.NetworkSettings.SandboxKey != "" {
		req := network.JoinRequest{Network: n.ID, ContainerID: c.ID, Sandbox: snap.NetworkSettings.SandboxKey, Name: snap.Name, Aliases: es.Aliases}
		if es.IPAMConfig != nil && es.IPAMConfig.IPv4Address != "" {
			if req.IP, err = netip.ParseAddr(es.IPAMConfig.IPv4Address); err != nil {
				return fmt.Errorf("invalid IPv4 address: %s: %w", es.IPAMConfig.IPv4Address, errdefs.ErrInvalid)
			}
		}
		ep, nn, err := e.net.Join(ctx, req)
		if err != nil {
			return err
		}
		fillEndpoint(&es, ep, nn, c.ID)
		// A container whose first network has no DNS server (the
		// default bridge) resolves names through this one's from now.
		if order := joinOrder(snap); nn.DNS() && len(order) > 0 {
			if first, err := e.net.Get(order[0]); err == nil && !first.DNS() {
				if err := writeResolvConf(filepath.Join(e.dir(c.ID), "resolv.conf"), nn.Gateway); err != nil {
					e.log.Warn("cannot update resolv.conf", "container", snap.Name, "err", err)
				}
			}
		}
	}
	e.setState(c, func(c *container) {
		nets := map[string]*EndpointSettings{n.Name: &es}
		for name, other := range c.NetworkSettings.Networks {
			nets[name] = other
		}
		c.NetworkSettings.Networks = nets
	})
	return nil
}

// DisconnectNetwork disconnects a container from a network (docker
// network disconnect).
func (e *Engine) DisconnectNetwork(ctx context.Context, ref, netRef string, force bool) error {
	n, err := e.net.Get(netRef)
	if err != nil {
		return err
	}
	c, err := e.lookup(ref)
	if err != nil {
		if force {
			// A container gone already: drop what the network kept of it.
			for _, ep := range n.Endpoints {
				if ep.Name == strings.TrimPrefix(ref, "/") || strings.HasPrefix(ep.ContainerID, ref) {
					return e.net.Leave(ctx, n.ID, ep.ContainerID)
				}
			}
		}
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	e.mu.Lock()
	snap := c.snapshot()
	e.mu.Unlock()
	if n.Driver == network.DriverHost {
		return fmt.Errorf("container cannot be disconnected from host network or connected to host network: %w", errdefs.ErrForbidden)
	}
	if _, ok := snap.NetworkSettings.Networks[n.Name]; !ok {
		return fmt.Errorf("container %s is not connected to network %s: %w", snap.ID, n.Name, errdefs.ErrForbidden)
	}
	if _, ok := n.Endpoints[c.ID]; ok {
		if err := e.net.Leave(ctx, n.ID, c.ID); err != nil {
			return err
		}
	}
	e.setState(c, func(c *container) {
		nets := map[string]*EndpointSettings{}
		for name, es := range c.NetworkSettings.Networks {
			if name != n.Name {
				nets[name] = es
			}
		}
		c.NetworkSettings.Networks = nets
	})
	return nil
}

// restoreNetworks, after the containers are loaded, removes the endpoints
// of those that stopped while caisd was down and sets the running ones'
// networks up again.
func (e *Engine) restoreNetworks() {
	running := map[string]bool{}
	for _, c := range e.List() {
		if c.State.Running() {
			running[c.ID] = true
		}
	}
	if err := e.net.Restore(context.Background(), func(id string) bool { return running[id] }); err != nil {
		e.log.Warn("cannot restore the networks", "err", err)
	}
}
