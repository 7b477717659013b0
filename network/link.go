package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// createNetNS makes a new network namespace and bind-mounts it at path,
// as ip netns add does, so it lives without a process in it.
func createNetNS(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", path, err)
	}
	f.Close()
	errc := make(chan error, 1)
	// The thread that unshares is never handed back to the Go scheduler:
	// the goroutine exits with it locked, and the runtime ends it.
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare the network namespace: %w", err)
			return
		}
		src := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		if err := unix.Mount(src, path, "", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("bind-mount the network namespace at %s: %w", path, err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// deleteNetNS unmounts and removes a namespace made by createNetNS; a
// missing one is no error.
func deleteNetNS(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount the network namespace %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// ensureBridge creates the bridge with the gateway address if missing,
// and brings it up. The host must forward IPv4 and let 127.0.0.1 be
// routed to the bridge (published ports reached on the loopback address).
func ensureBridge(name string, gateway netip.Prefix) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) {
			return fmt.Errorf("bridge %s: %w", name, err)
		}
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name, TxQLen: -1}}
		if err := netlink.LinkAdd(br); err != nil {
			return fmt.Errorf("create bridge %s: %w", name, err)
		}
		if l, err = netlink.LinkByName(name); err != nil {
			return fmt.Errorf("bridge %s: %w", name, err)
		}
	}
	addr := &netlink.Addr{IPNet: ipNet(gateway)}
	if err := netlink.AddrReplace(l, addr); err != nil {
		return fmt.Errorf("bridge %s: address %s: %w", name, gateway, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("bridge %s: up: %w", name, err)
	}
	for _, s := range []struct{ path, value string }{
		{"/proc/sys/net/ipv4/ip_forward", "1"},
		{"/proc/sys/net/ipv4/conf/" + name + "/route_localnet", "1"},
	} {
		if err := os.WriteFile(s.path, []byte(s.value), 0o644); err != nil {
			return fmt.Errorf("sysctl %s: %w", s.path, err)
		}
	}
	return nil
}

// deleteLink removes a link (a bridge, or a veth with its peer); a
// missing one is no error.
func deleteLink(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return err
	}
	if err := netlink.LinkDel(l); err != nil {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}

// bridgePorts lists the links attached to a bridge (none if it does not
// exist).
func bridgePorts(name string) []string {
	br, err := netlink.LinkByName(name)
	if err != nil {
		return nil
	}
	links, err := netlink.LinkList()
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index {
			out = append(out, l.Attrs().Name)
		}
	}
	return out
}

// linkExists reports whether the host has a link of that name.
func linkExists(name string) bool {
	_, err := netlink.LinkByName(name)
	return err == nil
}

// vethConfig is one endpoint's interface: a veth pair, hostName on the
// bridge, ifName in the namespace with addr, mac and (for the first
// interface) the default route through gateway.
type vethConfig struct {
	nsPath       string
	bridge       string
	hostName     string
	ifName       string
	addr         netip.Prefix
	mac          string
	gateway      netip.Addr
	defaultRoute bool
}

// addVeth creates and configures an endpoint's interfaces.
func addVeth(c vethConfig) (err error) {
	ns, err := netns.GetFromPath(c.nsPath)
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", c.nsPath, err)
	}
	defer ns.Close()
	br, err := netlink.LinkByName(c.bridge)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", c.bridge, err)
	}
	mac, err := net.ParseMAC(c.mac)
	if err != nil {
		return err
	}
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: c.hostName, MasterIndex: br.Attrs().Index, TxQLen: -1},
		PeerName:         c.ifName,
		PeerHardwareAddr: mac,
		PeerNamespace:    netlink.NsFd(int(ns)),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("create veth %s: %w", c.hostName, err)
	}
	defer func() {
		if err != nil {
			deleteLink(c.hostName)
		}
	}()
	host, err := netlink.LinkByName(c.hostName)
	if err != nil {
		return err
	}
	// Hairpin: a container reaching its own published port is sent
	// back out of the port it came in by.
	if err := netlink.LinkSetHairpin(host, true); err != nil {
		return fmt.Errorf("veth %s hairpin: %w", c.hostName, err)
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return fmt.Errorf("veth %s up: %w", c.hostName, err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", c.nsPath, err)
	}
	defer h.Close()
	if lo, err := h.LinkByName("lo"); err == nil {
		if err := h.LinkSetUp(lo); err != nil {
			return fmt.Errorf("lo up: %w", err)
		}
	}
	in, err := h.LinkByName(c.ifName)
	if err != nil {
		return fmt.Errorf("%s in the container: %w", c.ifName, err)
	}
	if err := h.AddrAdd(in, &netlink.Addr{IPNet: ipNet(c.addr)}); err != nil {
		return fmt.Errorf("%s address %s: %w", c.ifName, c.addr, err)
	}
	if err := h.LinkSetUp(in); err != nil {
		return fmt.Errorf("%s up: %w", c.ifName, err)
	}
	if c.defaultRoute {
		gw := c.gateway.AsSlice()
		if err := h.RouteAdd(&netlink.Route{LinkIndex: in.Attrs().Index, Gw: net.IP(gw)}); err != nil {
			return fmt.Errorf("default route via %s: %w", c.gateway, err)
		}
	}
	return nil
}

// hostRoutes lists the IPv4 destinations the host routes, except those
// through the named links (the networks' own bridges) and the default.
func hostRoutes(skip map[string]bool) ([]netip.Prefix, error) {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	var out []netip.Prefix
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		if l, err := netlink.LinkByIndex(r.LinkIndex); err == nil && skip[l.Attrs().Name] {
			continue
		}
		ones, _ := r.Dst.Mask.Size()
		if a, ok := netip.AddrFromSlice(r.Dst.IP.To4()); ok {
			p := netip.PrefixFrom(a, ones)
			if p.Bits() > 0 {
				out = append(out, p.Masked())
			}
		}
	}
	return out, nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), 32)}
}
