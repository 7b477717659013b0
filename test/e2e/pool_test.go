package e2e

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cais-platform/cais/test/clustertest"
)

func contains(t *testing.T, got, want string) {
	t.Helper()
	if !strings.Contains(got, want) {
		t.Fatalf("output does not contain %q:\n%s", want, got)
	}
}

func fails(t *testing.T, r clustertest.Result, want string) {
	t.Helper()
	if r.Code == 0 {
		t.Fatalf("command succeeded, want failure with %q:\nstdout: %s", want, r.Stdout)
	}
	if !strings.Contains(r.Stderr, want) {
		t.Fatalf("stderr does not contain %q:\n%s", want, r.Stderr)
	}
}

// The seed's pool steps: peer probe, peer status, pool list.
func TestPeerProbeStatusPoolList(t *testing.T) {
	c := clustertest.New(t)
	n1 := c.Start(clustertest.NodeOptions{})
	out := n1.MustCLI("peer", "status")
	if out != "Number of Peers: 0\n" {
		t.Fatalf("peer status of a lone node: %q", out)
	}
	token := strings.TrimSpace(n1.MustCLI("pool", "token"))
	if !regexp.MustCompile(`^CAIS1-[0-9a-f]{64}-[a-z2-7]{32}$`).MatchString(token) {
		t.Fatalf("token %q", token)
	}
	n2 := c.Start(clustertest.NodeOptions{JoinToken: token, Waiting: true})
	if got := n1.MustCLI("peer", "probe", n2.Addr); got != "peer probe: success\n" {
		t.Fatalf("probe: %q", got)
	}
	n2.WaitReady(false)
	out = n1.MustCLI("peer", "status")
	uuid2 := strings.TrimSpace(strings.TrimPrefix(regexp.MustCompile(`node: (\S+)`).FindString(n2.MustCLI("version")), "node: "))
	want := fmt.Sprintf("Number of Peers: 1\n\nHostname: %s\nUuid: %s\nState: Peer in Cluster (Connected)\n", n2.Addr, uuid2)
	if out != want {
		t.Fatalf("peer status:\n%q\nwant\n%q", out, want)
	}
	// Probing again is a no-op, as in gluster.
	contains(t, n1.MustCLI("peer", "probe", n2.Addr), fmt.Sprintf("Host %s port %d already in peer list", n2.Addr, clustertest.APIPort))
	// pool list from the new node: the first node by name, itself as localhost, last.
	out = n2.MustCLI("pool", "list")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	w := max(9, len(n1.Addr))
	if len(lines) != 3 || lines[0] != fmt.Sprintf("UUID\t\t\t\t\t%-*s\tState", w, "Hostname") {
		t.Fatalf("pool list:\n%s", out)
	}
	if !strings.HasSuffix(lines[1], fmt.Sprintf("\t%-*s\tConnected ", w, n1.Addr)) {
		t.Fatalf("pool list row 1: %q", lines[1])
	}
	if lines[2] != fmt.Sprintf("%s\t%-*s\tConnected ", uuid2, w, "localhost") {
		t.Fatalf("pool list row 2: %q", lines[2])
	}
	// --json on read commands.
	var peers []struct {
		UUID      string `json:"uuid"`
		Connected bool   `json:"connected"`
		Self      bool   `json:"self"`
	}
	if err := json.Unmarshal([]byte(n1.MustCLI("pool", "list", "--json")), &peers); err != nil || len(peers) != 2 {
		t.Fatalf("pool list --json: %v %v", err, peers)
	}
}

func TestProbeRefusals(t *testing.T) {
	c := clustertest.New(t)
	n1 := c.Start(clustertest.NodeOptions{})
	token := strings.TrimSpace(n1.MustCLI("pool", "token"))

	// Itself.
	fails(t, n1.CLI("peer", "probe", n1.Addr), "peer probe: failed: Probe on localhost not needed")
	// Nobody listening there.
	fails(t, n1.CLI("peer", "probe", c.Addr(9)), "peer probe: failed: Probe returned with Transport endpoint is not connected")
	// An unresolvable name.
	fails(t, n1.CLI("peer", "probe", "no-such-host.invalid"), "is an invalid address")

	// A node started without a token founds its own pool: it is a member
	// of another pool and refuses.
	n2 := c.Start(clustertest.NodeOptions{})
	fails(t, n1.CLI("peer", "probe", n2.Addr), "is either already part of another cluster or having volumes configured")

	// A node waiting for another pool's token refuses this pool.
	otherToken := strings.TrimSpace(n2.MustCLI("pool", "token"))
	n3 := c.Start(clustertest.NodeOptions{JoinToken: otherToken, Waiting: true})
	fails(t, n1.CLI("peer", "probe", n3.Addr), "waits to join another pool")

	// A node with the right CA fingerprint but a wrong secret cannot prove
	// it holds the token: the pool refuses it.
	bad := token[:len(token)-32] + strings.Repeat("a", 32)
	n4 := c.Start(clustertest.NodeOptions{JoinToken: bad, Waiting: true})
	fails(t, n1.CLI("peer", "probe", n4.Addr), "does not hold this pool's join token")
	// A waiting node is not a member: its API says so.
	fails(t, n4.CLI("volume", "info"), "not a member of a pool yet")

	// A rotated token: nodes waiting with the old one cannot join.
	newToken := strings.TrimSpace(n1.MustCLI("pool", "token", "--rotate"))
	if newToken == token {
		t.Fatal("rotate returned the same token")
	}
	n5 := c.Start(clustertest.NodeOptions{JoinToken: token, Waiting: true})
	fails(t, n1.CLI("peer", "probe", n5.Addr), "does not hold this pool's join token")

	// None of them got in.
	if got := n1.MustCLI("peer", "status"); got != "Number of Peers: 0\n" {
		t.Fatalf("peer status after refusals:\n%s", got)
	}
	// And the right token still works.
	n6 := c.Start(clustertest.NodeOptions{JoinToken: newToken, Waiting: true})
	n1.MustCLI("peer", "probe", n6.Addr)
}

// Every TCP request needs a certificate from the pool CA.
func TestAPIAuthentication(t *testing.T) {
	c := clustertest.New(t)
	n1 := c.Start(clustertest.NodeOptions{})
	url := "https://" + net.JoinHostPort(n1.Addr, strconv.Itoa(clustertest.APIPort))
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for _, path := range []string{"/v1/volumes", "/v1/pool/token", "/v1/peers", "/v1/version", "/v1/nonexistent"} {
		resp, err := hc.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("GET %s without a certificate: %d %s", path, resp.StatusCode, body)
		}
		if strings.Contains(string(body), "CAIS1-") || !strings.Contains(string(body), "authentication required") {
			t.Fatalf("GET %s: body %s", path, body)
		}
	}
	// The CLI over TCP without credentials says what to do.
	r := c.Run("--server", n1.Addr+":"+strconv.Itoa(clustertest.APIPort), "--credentials", filepath.Join(c.Dir(), "none"), "volume", "list")
	fails(t, r, "cais pool credentials")
	// With credentials issued over the root socket, it works.
	creds := filepath.Join(c.Dir(), "admin")
	n1.MustCLI("pool", "credentials", "--out", creds)
	r = c.Run("--server", n1.Addr+":"+strconv.Itoa(clustertest.APIPort), "--credentials", creds, "pool", "list")
	if r.Code != 0 || !strings.Contains(r.Stdout, "localhost") {
		t.Fatalf("pool list over TLS: %+v", r)
	}
	// A certificate from another pool's CA is refused with 401.
	n2 := c.Start(clustertest.NodeOptions{})
	other := filepath.Join(c.Dir(), "other")
	n2.MustCLI("pool", "credentials", "--out", other)
	cert, err := tls.LoadX509KeyPair(filepath.Join(other, "cert.pem"), filepath.Join(other, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	hc2 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}}}}
	resp, err := hc2.Get(url + "/v1/volumes")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("foreign certificate: %d", resp.StatusCode)
	}
	// An administrator certificate cannot make node-to-node calls.
	admin, err := tls.LoadX509KeyPair(filepath.Join(creds, "cert.pem"), filepath.Join(creds, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	hc3 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{admin}}}}
	resp, err = hc3.Post(url+"/v1/internal/stage", "application/json", strings.NewReader(`{"op":"release"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("admin calling internal API: %d", resp.StatusCode)
	}
}

func TestPeerDetach(t *testing.T) {
	c := clustertest.New(t)
	nodes := c.Pool(3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	n1.MustCLI("volume", "create", "v", n1.Brick("b1"), n2.Brick("b2"))
	fails(t, n1.CLI("peer", "detach", n2.Addr), "peer detach: failed: Peer "+n2.Addr+" hosts one or more bricks")
	fails(t, n1.CLI("peer", "detach", n2.Addr, "force"), "hosts one or more bricks")
	fails(t, n1.CLI("peer", "detach", c.Addr(9)), "is not part of cluster")
	fails(t, n1.CLI("peer", "detach", n1.Addr), "is localhost")
	if got := n1.MustCLI("peer", "detach", n3.Addr); got != "peer detach: success\n" {
		t.Fatalf("detach: %q", got)
	}
	contains(t, n1.MustCLI("peer", "status"), "Number of Peers: 1\n")
	contains(t, n2.MustCLI("peer", "status"), "Number of Peers: 1\n")
	// The detached node forgets the pool. It was started with a join
	// token, so it waits to be probed again (without one it would found a
	// pool of its own, as a fresh glusterd is a pool of one).
	clustertest.Eventually(t, 30*time.Second, func() error {
		r := n3.CLI("version")
		if !strings.Contains(r.Stdout, "state: waiting") {
			return fmt.Errorf("detached node: %+v", r)
		}
		return nil
	})
	// It can be probed back in.
	n1.MustCLI("peer", "probe", n3.Addr)
	n3.WaitReady(false)
	contains(t, n3.MustCLI("peer", "status"), "Number of Peers: 2\n")
	n1.MustCLI("peer", "detach", n3.Addr)
	// Deleting the volume frees n2 for detach.
	n1.MustCLI("volume", "delete", "v")
	n1.MustCLI("peer", "detach", n2.Addr)
	contains(t, n1.MustCLI("peer", "status"), "Number of Peers: 0\n")
	// The lone remaining node still works.
	n1.MustCLI("volume", "create", "w", n1.Brick("w1"))
}

// Later nodes join etcd as learners; the first three vote.
func TestEtcdVotersAndLearners(t *testing.T) {
	c := clustertest.New(t)
	nodes := c.Pool(4)
	clustertest.Eventually(t, 30*time.Second, func() error {
		var peers []struct {
			Hostname string `json:"hostname"`
			EtcdRole string `json:"etcdRole"`
		}
		if err := json.Unmarshal([]byte(nodes[0].MustCLI("pool", "list", "--json")), &peers); err != nil {
			return err
		}
		roles := map[string]int{}
		for _, p := range peers {
			roles[p.EtcdRole]++
		}
		if roles["voter"] != 3 || roles["learner"] != 1 {
			return fmt.Errorf("roles %v", roles)
		}
		return nil
	})
}

// A node restarted while the rest of its pool is down waits for the
// pool's etcd quorum: its API answers at once that it waits, its log says
// for whom, and it serves as soon as the others are back.
func TestRestartWaitsForQuorum(t *testing.T) {
	c := clustertest.New(t)
	nodes := c.Pool(2)
	n1, n2 := nodes[0], nodes[1]
	n1.MustCLI("volume", "create", "v", n1.Brick("b1"), n2.Brick("b2"))
	n2.Stop()
	n1.Stop()
	n1.StartAgain()
	clustertest.Eventually(t, 15*time.Second, func() error {
		r := n1.CLI("pool", "list")
		if r.Code == 0 || !strings.Contains(r.Stderr, "waiting for the pool's etcd quorum") {
			return fmt.Errorf("pool list while n2 is down: %+v", r)
		}
		return nil
	})
	start := time.Now()
	if r := n1.CLI("volume", "list"); r.Code == 0 || time.Since(start) > 5*time.Second {
		t.Fatalf("volume list without a quorum: %+v after %s", r, time.Since(start))
	}
	clustertest.Eventually(t, 30*time.Second, func() error {
		if !strings.Contains(n1.Log(), "other_members=[https://"+n2.Addr+":") {
			return fmt.Errorf("no warning naming %s in the log", n2.Addr)
		}
		return nil
	})
	// Stopped while it waits, it stops cleanly; started again, it waits
	// again, and serves once n2 is back.
	n1.Stop()
	contains(t, n1.Log(), "caisd stopped while waiting for its pool")
	n1.StartAgain()
	n2.StartAgain()
	n1.WaitReady(false)
	n2.WaitReady(false)
	contains(t, n1.MustCLI("volume", "list"), "v\n")
}
