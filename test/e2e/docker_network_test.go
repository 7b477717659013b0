package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cais-platform/cais/image/bootstrap"
	"github.com/cais-platform/cais/test/clustertest"
)

// startDockerNet is startDocker with the default bridge network on a
// Linux bridge of the test's own, so tests running at once on the host
// do not share one.
func startDockerNet(t *testing.T, bridge string) *dockerNode {
	t.Helper()
	for _, bin := range []string{"docker", "runc", "iptables"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed (make deps)", bin)
		}
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("busybox-static is not installed (make deps)")
	}
	if os.Geteuid() != 0 {
		t.Skip("container networking needs root")
	}
	c := clustertest.New(t)
	n := c.Start(clustertest.NodeOptions{Args: []string{"--bridge", bridge}})
	d := &dockerNode{t: t, n: n, socket: n.DockerSocket}
	d.env = append(os.Environ(), "DOCKER_HOST=unix://"+n.DockerSocket, "DOCKER_CONFIG="+filepath.Join(c.Dir(), "docker-config"), "DOCKER_BUILDKIT=0", "DOCKER_CLI_HINTS=false")
	tar := filepath.Join(c.Dir(), "busybox.tar")
	f, err := os.Create(tar)
	if err != nil {
		t.Fatal(err)
	}
	if err := bootstrap.BusyboxArchive(context.Background(), f, "/bin/busybox"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	d.must("load", "-i", tar)
	t.Cleanup(func() {
		r := d.run("ps", "-aq")
		for _, id := range strings.Fields(r.Stdout) {
			d.run("rm", "-f", id)
		}
		d.run("network", "prune", "-f")
	})
	return d
}

// httpGet fetches url, retrying while the server comes up.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	var last error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		resp, err := client.Get(url)
		if err != nil {
			last = err
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode == http.StatusOK {
			return string(b)
		}
		last = fmt.Errorf("status %s, err %v", resp.Status, err)
	}
	t.Fatalf("GET %s: %v", url, last)
	return ""
}

// hostAddr is an IPv4 address of the host other than loopback.
func hostAddr(t *testing.T) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && !strings.HasPrefix(ipn.IP.String(), "172.") {
			return ipn.IP.String()
		}
	}
	return ""
}

// hostState is what must not outlive the containers and networks: the
// links and the iptables rules that name the test's bridges.
func hostState(t *testing.T, names ...string) string {
	t.Helper()
	var out []string
	links, _ := exec.Command("ip", "-o", "link").Output()
	rules, _ := exec.Command("iptables-save").Output()
	for _, l := range strings.Split(string(links)+string(rules), "\n") {
		for _, n := range names {
			if n != "" && strings.Contains(l, n) {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, "\n")
}

// stopAndCheck stops caisd, which takes down the networks no container is
// on, and checks that nothing of them is left.
func stopAndCheck(t *testing.T, d *dockerNode, bridge string) {
	t.Helper()
	if out := d.must("ps", "-aq"); out != "" {
		t.Fatalf("containers left: %q", out)
	}
	d.n.Stop()
	if left := hostState(t, bridge); left != "" {
		t.Fatalf("left after caisd stopped:\n%s", left)
	}
	checkChainsGone(t)
}

// checkChainsGone checks that cais's iptables chains went with the last
// network, unless another caisd on the host has one up.
func checkChainsGone(t *testing.T) {
	t.Helper()
	left := ""
	// Another caisd on the host may be setting a network up or down:
	// its bridge and its chains do not come and go at the same instant.
	for i := 0; i < 20; i++ {
		links, _ := exec.Command("ip", "-o", "link", "show", "type", "bridge").Output()
		if strings.TrimSpace(string(links)) != "" {
			return // another network (another test's, or a user's) is up
		}
		if left = hostState(t, "CAIS"); left == "" {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("cais's chains left with no network up:\n%s", left)
}

// TestDockerNetworkPublish: a web server in a container on the default
// bridge, published with -p, answers on the host's address and on
// 127.0.0.1; docker ps, port and inspect show the binding; a second
// container asking for the same port gets Docker's error; -P picks a
// free port for an exposed one; the container reaches the outside
// through NAT (the host's address); after caisd restarts, the port still
// answers; after rm -f nothing is left.
func TestDockerNetworkPublish(t *testing.T) {
	const bridge, port = "cnet-e2e-pub", "18431"
	d := startDockerNet(t, bridge)
	d.must("run", "-d", "--name", "web", "-p", port+":80", "busybox", "sh", "-c",
		"mkdir -p /www && echo hello from cais > /www/index.html && exec httpd -f -p 80 -h /www")
	if got := httpGet(t, "http://127.0.0.1:"+port+"/"); got != "hello from cais\n" {
		t.Fatalf("GET on 127.0.0.1: %q", got)
	}
	addr := hostAddr(t)
	if addr != "" {
		if got := httpGet(t, "http://"+addr+":"+port+"/"); got != "hello from cais\n" {
			t.Fatalf("GET on %s: %q", addr, got)
		}
	}
	if out := d.must("ps", "--format", "{{.Names}} {{.Ports}}"); !strings.Contains(out, "web 0.0.0.0:"+port+"->80/tcp") {
		t.Fatalf("docker ps: %q", out)
	}
	if out := d.must("port", "web"); out != "80/tcp -> 0.0.0.0:"+port+"\n" {
		t.Fatalf("docker port: %q", out)
	}
	var ports map[string][]map[string]string
	if err := json.Unmarshal([]byte(d.must("inspect", "-f", "{{json .NetworkSettings.Ports}}", "web")), &ports); err != nil {
		t.Fatal(err)
	}
	if b := ports["80/tcp"]; len(b) != 1 || b[0]["HostIp"] != "0.0.0.0" || b[0]["HostPort"] != port {
		t.Fatalf("NetworkSettings.Ports: %v", ports)
	}
	ip := strings.TrimSpace(d.must("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web"))
	if net.ParseIP(ip) == nil {
		t.Fatalf("NetworkSettings.IPAddress %q", ip)
	}

	r := d.run("run", "-d", "--name", "web2", "-p", port+":80", "busybox", "httpd", "-f", "-p", "80")
	if r.Code == 0 || !strings.Contains(r.Stderr, "Bind for 0.0.0.0:"+port+" failed: port is already allocated") {
		t.Fatalf("a second -p %s: exit %d, stderr %q", port, r.Code, r.Stderr)
	}
	d.must("rm", "-f", "web2")

	d.must("run", "-d", "--name", "any", "--expose", "8080", "-P", "busybox", "httpd", "-f", "-p", "8080", "-h", "/")
	out := d.must("port", "any", "8080/tcp")
	_, hp, ok := strings.Cut(strings.TrimSpace(out), "0.0.0.0:")
	if !ok || hp == "" || hp == "0" {
		t.Fatalf("docker port any 8080/tcp: %q", out)
	}
	d.must("rm", "-f", "any")

	if addr != "" {
		// Out through NAT: the container reaches the host's own address,
		// the published port of the web server included.
		if out := d.must("run", "--rm", "busybox", "wget", "-qO-", "http://"+addr+":"+port+"/"); out != "hello from cais\n" {
			t.Fatalf("wget from a container: %q", out)
		}
	}

	// A restart of caisd keeps the container, its address and its rules.
	d.n.Stop()
	if got := httpGet(t, "http://127.0.0.1:"+port+"/"); got != "hello from cais\n" {
		t.Fatalf("GET while caisd is down: %q", got)
	}
	d.n.Restart()
	if got := httpGet(t, "http://127.0.0.1:"+port+"/"); got != "hello from cais\n" {
		t.Fatalf("GET after the restart: %q", got)
	}
	if ip2 := strings.TrimSpace(d.must("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web")); ip2 != ip {
		t.Fatalf("address %s after the restart, %s before", ip2, ip)
	}

	d.must("rm", "-f", "web")
	if left := hostState(t, ip+"/", ip+":"); left != "" {
		t.Fatalf("left after rm -f:\n%s", left)
	}
	// The default network stays set up for the next container until
	// caisd stops.
	stopAndCheck(t, d, bridge)
}

// TestDockerNetworkUser: containers on a user network reach each other
// by name and alias through the network's DNS server; the default bridge
// has no names; network ls, inspect, connect, disconnect, rm (refused
// while in use) and prune behave as Docker's; nothing is left after.
func TestDockerNetworkUser(t *testing.T) {
	const bridge = "cnet-e2e-usr"
	d := startDockerNet(t, bridge)
	id := strings.TrimSpace(d.must("network", "create", "--subnet", "10.231.7.0/24", "e2enet"))
	if len(id) != 64 {
		t.Fatalf("network create printed %q", id)
	}
	if out := d.must("network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}"); !strings.Contains(out, "e2enet bridge local") || !strings.Contains(out, "bridge bridge local") ||
		!strings.Contains(out, "host host local") || !strings.Contains(out, "none null local") {
		t.Fatalf("network ls:\n%s", out)
	}
	if out := d.must("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}", "e2enet"); out != "10.231.7.0/24 10.231.7.1\n" {
		t.Fatalf("network inspect: %q", out)
	}
	d.must("run", "-d", "--name", "srv", "--network", "e2enet", "--network-alias", "db", "busybox", "sh", "-c",
		"echo served > /index.html && exec httpd -f -p 80 -h /")
	if out := d.must("inspect", "-f", "{{.NetworkSettings.Networks.e2enet.IPAddress}}", "srv"); out != "10.231.7.2\n" {
		t.Fatalf("srv's address: %q", out)
	}
	for _, name := range []string{"srv", "db"} {
		var out string
		// httpd may still be starting.
		for i := 0; i < 20; i++ {
			r := d.run("run", "--rm", "--network", "e2enet", "busybox", "wget", "-qO-", "http://"+name+"/")
			if out = r.Stdout; r.Code == 0 {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		if out != "served\n" {
			t.Fatalf("wget http://%s/ from the network: %q", name, out)
		}
	}
	// --network container:srv shares srv's namespace: its server is on
	// 127.0.0.1, and it resolves srv's network's names.
	if out := d.must("run", "--rm", "--network", "container:srv", "busybox", "sh", "-c", "wget -qO- http://127.0.0.1/ && wget -qO- http://db/"); out != "served\nserved\n" {
		t.Fatalf("--network container:srv: %q", out)
	}
	if out := d.must("run", "--rm", "--network", "e2enet", "--ip", "10.231.7.77", "busybox", "ip", "-4", "-o", "addr", "show", "eth0"); !strings.Contains(out, "10.231.7.77/24") {
		t.Fatalf("--ip: %q", out)
	}
	// Unknown names fail (quickly: this host has no resolver it can
	// reach), and the default bridge knows no names.
	start := time.Now()
	if r := d.run("run", "--rm", "--network", "e2enet", "busybox", "nslookup", "nonexistent.invalid"); r.Code == 0 {
		t.Fatalf("nslookup of an unknown name succeeded: %q", r.Stdout)
	}
	if el := time.Since(start); el > 20*time.Second {
		t.Fatalf("nslookup of an unknown name took %v", el)
	}
	if r := d.run("run", "--rm", "busybox", "ping", "-c1", "-W1", "srv"); r.Code == 0 {
		t.Fatalf("the default bridge resolved srv: %q", r.Stdout)
	}

	// connect and disconnect a running container.
	d.must("run", "-d", "--name", "other", "busybox", "sleep", "300")
	d.must("network", "connect", "e2enet", "other")
	if out := d.must("exec", "other", "ping", "-c1", "-W2", "srv"); !strings.Contains(out, "1 packets received") {
		t.Fatalf("ping srv after connect: %q", out)
	}
	d.must("network", "disconnect", "e2enet", "other")
	if out := d.must("exec", "other", "ip", "-o", "link"); strings.Contains(out, "eth1") {
		t.Fatalf("eth1 left after disconnect: %q", out)
	}

	r := d.run("network", "rm", "e2enet")
	if r.Code == 0 || !strings.Contains(r.Stderr, "error while removing network: network e2enet has 1 active endpoint (srv)") {
		t.Fatalf("network rm in use: exit %d, stderr %q", r.Code, r.Stderr)
	}
	if r := d.run("network", "rm", "bridge"); r.Code == 0 || !strings.Contains(r.Stderr, "bridge is a pre-defined network and cannot be removed") {
		t.Fatalf("network rm bridge: exit %d, stderr %q", r.Code, r.Stderr)
	}
	d.must("rm", "-f", "srv", "other")
	d.must("network", "rm", "e2enet")
	d.must("network", "create", "leftover")
	if out := d.must("network", "prune", "-f"); !strings.Contains(out, "leftover") {
		t.Fatalf("network prune: %q", out)
	}
	if left := hostState(t, "br-"+id[:12], "10.231.7."); left != "" {
		t.Fatalf("left after rm -f and network rm:\n%s", left)
	}
	stopAndCheck(t, d, bridge)
}

// TestDockerNetworkNone: --network none has lo only; --network host
// shares the host's interfaces.
func TestDockerNetworkNone(t *testing.T) {
	d := startDockerNet(t, "cnet-e2e-none")
	out := d.must("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 1 || !strings.Contains(lines[0], ": lo:") {
		t.Fatalf("--network none has links:\n%s", out)
	}
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback != 0 || len(i.HardwareAddr) == 0 {
			continue
		}
		// The host's interface, seen from the container.
		out = d.must("run", "--rm", "--network", "host", "busybox", "cat", "/sys/class/net/"+i.Name+"/address")
		if strings.TrimSpace(out) != i.HardwareAddr.String() {
			t.Fatalf("--network host: %s has address %q, on the host %s", i.Name, out, i.HardwareAddr)
		}
		break
	}
}
