package dockerapi

import (
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cais-platform/cais/engine"
	"github.com/cais-platform/cais/network"
)

// The network endpoints of the Docker Engine API (docker network …), and
// the networking parts of the container views.

// decodeEndpoints reads a create request's NetworkingConfig.
func decodeEndpoints(raw json.RawMessage) (map[string]*engine.EndpointSettings, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var nc struct {
		EndpointsConfig map[string]*engine.EndpointSettings `json:"EndpointsConfig"`
	}
	if err := json.Unmarshal(raw, &nc); err != nil {
		return nil, invalid("invalid NetworkingConfig: %v", err)
	}
	return nc.EndpointsConfig, nil
}

// portSummaries is docker ps's PORTS: the published ports of a running
// container, and the exposed ones that are not published.
func portSummaries(c engine.Container) []portSummary {
	out := []portSummary{}
	published := c.NetworkSettings.Ports
	if published == nil {
		published = map[string][]engine.PortBinding{}
		for p := range c.Config.ExposedPorts {
			published[p] = nil
		}
	}
	for key, bs := range published {
		port, proto, err := network.ParsePort(key)
		if err != nil {
			continue
		}
		if len(bs) == 0 {
			out = append(out, portSummary{PrivatePort: int(port), Type: proto})
		}
		for _, b := range bs {
			hp, _ := strconv.Atoi(b.HostPort)
			out = append(out, portSummary{IP: b.HostIP, PrivatePort: int(port), PublicPort: hp, Type: proto})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].PrivatePort != out[j].PrivatePort {
			return out[i].PrivatePort < out[j].PrivatePort
		}
		return out[i].PublicPort < out[j].PublicPort
	})
	return out
}

func nonNilNetworks(m map[string]*engine.EndpointSettings) map[string]*engine.EndpointSettings {
	out := map[string]*engine.EndpointSettings{}
	for k, v := range m {
		es := *v
		if es.Aliases == nil {
			es.Aliases = []string{}
		}
		out[k] = &es
	}
	return out
}

// inspectNetworkSettings is inspect's NetworkSettings; the top-level
// address fields are the default bridge's, as in Docker.
func inspectNetworkSettings(c engine.Container) map[string]any {
	ports := map[string]any{}
	if c.NetworkSettings.Ports != nil {
		for k, v := range c.NetworkSettings.Ports {
			if v == nil {
				ports[k] = nil
			} else {
				ports[k] = v
			}
		}
	} else {
		for p := range c.Config.ExposedPorts {
			ports[p] = nil
		}
	}
	ns := map[string]any{
		"Bridge": "", "SandboxID": "", "SandboxKey": c.NetworkSettings.SandboxKey, "Ports": ports, "HairpinMode": false,
		"LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "SecondaryIPAddresses": nil,
		"SecondaryIPv6Addresses": nil, "EndpointID": "", "Gateway": "", "GlobalIPv6Address": "",
		"GlobalIPv6PrefixLen": 0, "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
		"Networks": nonNilNetworks(c.NetworkSettings.Networks),
	}
	if c.NetworkSettings.SandboxKey != "" {
		ns["SandboxID"] = c.ID
	}
	if es := c.NetworkSettings.Networks["bridge"]; es != nil {
		ns["EndpointID"], ns["Gateway"], ns["IPAddress"] = es.EndpointID, es.Gateway, es.IPAddress
		ns["IPPrefixLen"], ns["MacAddress"] = es.IPPrefixLen, es.MacAddress
	}
	return ns
}

// networkResource is a network as GET /networks/{id} shows it.
type networkResource struct {
	Name       string                      `json:"Name"`
	ID         string                      `json:"Id"`
	Created    string                      `json:"Created"`
	Scope      string                      `json:"Scope"`
	Driver     string                      `json:"Driver"`
	EnableIPv4 bool                        `json:"EnableIPv4"`
	EnableIPv6 bool                        `json:"EnableIPv6"`
	IPAM       ipam                        `json:"IPAM"`
	Internal   bool                        `json:"Internal"`
	Attachable bool                        `json:"Attachable"`
	Ingress    bool                        `json:"Ingress"`
	ConfigFrom map[string]string           `json:"ConfigFrom"`
	ConfigOnly bool                        `json:"ConfigOnly"`
	Containers map[string]endpointResource `json:"Containers"`
	Options    map[string]string           `json:"Options"`
	Labels     map[string]string           `json:"Labels"`
}

type ipam struct {
	Driver  string            `json:"Driver"`
	Options map[string]string `json:"Options"`
	Config  []ipamConfig      `json:"Config"`
}

type ipamConfig struct {
	Subnet  string `json:"Subnet,omitempty"`
	IPRange string `json:"IPRange,omitempty"`
	Gateway string `json:"Gateway,omitempty"`
}

type endpointResource struct {
	Name        string `json:"Name"`
	EndpointID  string `json:"EndpointID"`
	MacAddress  string `json:"MacAddress"`
	IPv4Address string `json:"IPv4Address"`
	IPv6Address string `json:"IPv6Address"`
}

// NetworkResource is a network as the Docker API shows it; with
// containers, its endpoints are listed.
func NetworkResource(n network.Network, containers bool) networkResource {
	r := networkResource{
		Name: n.Name, ID: n.ID, Created: n.Created.Format(time.RFC3339Nano), Scope: "local", Driver: n.Driver,
		EnableIPv4: n.Driver == network.DriverBridge, IPAM: ipam{Driver: "default", Config: []ipamConfig{}},
		Internal: n.Internal, ConfigFrom: map[string]string{"Network": ""},
		Containers: map[string]endpointResource{}, Options: n.Options, Labels: n.Labels,
	}
	if n.Subnet.IsValid() {
		r.IPAM.Config = append(r.IPAM.Config, ipamConfig{Subnet: n.Subnet.String(), Gateway: n.Gateway.String()})
	}
	if r.Options == nil {
		r.Options = map[string]string{}
	}
	if r.Labels == nil {
		r.Labels = map[string]string{}
	}
	if containers {
		for cid, ep := range n.Endpoints {
			r.Containers[cid] = endpointResource{Name: ep.Name, EndpointID: ep.ID, MacAddress: ep.MAC,
				IPv4Address: ep.IP.String() + "/" + strconv.Itoa(n.Subnet.Bits())}
		}
	}
	return r
}

func (s *Server) listNetworks(w http.ResponseWriter, r *http.Request) {
	f, err := ParseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		writeError(w, err)
		return
	}
	for k := range f {
		switch k {
		case "name", "id", "driver", "label", "type", "dangling", "scope":
		default:
			writeError(w, invalid("invalid filter '%s'", k))
			return
		}
	}
	out := []networkResource{}
	for _, n := range s.e.Networks().List() {
		ok := f.match("name", func(v string) bool { return strings.Contains(n.Name, v) }) &&
			f.match("id", func(v string) bool { return strings.HasPrefix(n.ID, v) }) &&
			f.match("driver", func(v string) bool { return n.Driver == v }) &&
			f.match("scope", func(v string) bool { return v == "local" }) &&
			f.match("type", func(v string) bool { return v == "builtin" && n.Predefined || v == "custom" && !n.Predefined }) &&
			f.match("dangling", func(v string) bool { return (v == "true" || v == "1") == (len(n.Endpoints) == 0 && !n.Predefined) }) &&
			f.match("label", func(v string) bool {
				k, val, hasVal := strings.Cut(v, "=")
				got, ok := n.Labels[k]
				return ok && (!hasVal || got == val)
			})
		if ok {
			out = append(out, NetworkResource(n, false))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) inspectNetwork(w http.ResponseWriter, r *http.Request) {
	n, err := s.e.Networks().Get(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, NetworkResource(n, true))
}

// networkCreateBody is POST /networks/create's body.
type networkCreateBody struct {
	Name     string            `json:"Name"`
	Driver   string            `json:"Driver"`
	Internal bool              `json:"Internal"`
	IPAM     *ipam             `json:"IPAM"`
	Options  map[string]string `json:"Options"`
	Labels   map[string]string `json:"Labels"`
	// EnableIPv6 is refused: the networks are IPv4-only.
	EnableIPv6 *bool `json:"EnableIPv6"`
}

func (s *Server) createNetwork(w http.ResponseWriter, r *http.Request) {
	var b networkCreateBody
	if err := decodeBody(r, &b); err != nil {
		writeError(w, err)
		return
	}
	if b.EnableIPv6 != nil && *b.EnableIPv6 {
		writeError(w, invalid("IPv6 networks are not supported"))
		return
	}
	o := network.CreateOptions{Name: b.Name, Driver: b.Driver, Internal: b.Internal, Labels: b.Labels, Options: b.Options}
	if b.IPAM != nil {
		if b.IPAM.Driver != "" && b.IPAM.Driver != "default" {
			writeError(w, invalid("IPAM driver %q is not supported (only default)", b.IPAM.Driver))
			return
		}
		if len(b.IPAM.Config) > 1 {
			writeError(w, invalid("only one IPAM config (subnet) per network is supported"))
			return
		}
		if len(b.IPAM.Config) == 1 {
			c := b.IPAM.Config[0]
			if c.IPRange != "" && c.IPRange != c.Subnet {
				writeError(w, invalid("--ip-range is not supported"))
				return
			}
			o.Subnet, o.Gateway = c.Subnet, c.Gateway
		}
	}
	n, err := s.e.Networks().Create(r.Context(), o)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"Id": n.ID, "Warning": ""})
}

func (s *Server) removeNetwork(w http.ResponseWriter, r *http.Request) {
	if err := s.e.Networks().Remove(r.Context(), r.PathValue("id")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) connectNetwork(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Container      string                   `json:"Container"`
		EndpointConfig *engine.EndpointSettings `json:"EndpointConfig"`
	}
	if err := decodeBody(r, &b); err != nil {
		writeError(w, err)
		return
	}
	if err := s.e.ConnectNetwork(r.Context(), b.Container, r.PathValue("id"), b.EndpointConfig); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) disconnectNetwork(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Container string `json:"Container"`
		Force     bool   `json:"Force"`
	}
	if err := decodeBody(r, &b); err != nil {
		writeError(w, err)
		return
	}
	if err := s.e.DisconnectNetwork(r.Context(), b.Container, r.PathValue("id"), b.Force); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) pruneNetworks(w http.ResponseWriter, r *http.Request) {
	names, err := s.e.Networks().Prune(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	if names == nil {
		names = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"NetworksDeleted": names})
}
