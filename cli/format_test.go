package cli_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cais-platform/cais/api"
	"github.com/cais-platform/cais/cli"
	"github.com/cais-platform/cais/volume"
)

// render runs a printer into a string.
func render(print func(w *strings.Builder)) string {
	var b strings.Builder
	print(&b)
	return b.String()
}

func checkGolden(t *testing.T, got, want string) {
	t.Helper()
	if got == want {
		return
	}
	gl, wl := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range max(len(gl), len(wl)) {
		var g, w string
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if g != w {
			t.Errorf("line %d:\n  got  %q\n  want %q", i+1, g, w)
		}
	}
	t.Fatalf("output differs:\n%s", got)
}

func TestPeerStatus(t *testing.T) {
	t.Run("no peers", func(t *testing.T) {
		got := render(func(w *strings.Builder) { cli.PeerStatus(w, nil) })
		checkGolden(t, got, "Number of Peers: 0\n")
	})
	t.Run("peers", func(t *testing.T) {
		peers := []api.Peer{
			{UUID: "2f0c0a4e-9d6b-4e1a-9a51-3c2b1d0e0001", Hostname: "server2", Addr: "10.0.0.2", Connected: true},
			{UUID: "2f0c0a4e-9d6b-4e1a-9a51-3c2b1d0e0002", Hostname: "10.0.0.3", Addr: "10.0.0.3"},
			{UUID: "2f0c0a4e-9d6b-4e1a-9a51-3c2b1d0e0003", Hostname: "server4", Connected: true},
		}
		got := render(func(w *strings.Builder) { cli.PeerStatus(w, peers) })
		want := "Number of Peers: 3\n" +
			"\n" +
			"Hostname: server2\n" +
			"Uuid: 2f0c0a4e-9d6b-4e1a-9a51-3c2b1d0e0001\n" +
			"State: Peer in Cluster (Connected)\n" +
			"Other names:\n" +
			"10.0.0.2\n" +
			"\n" +
			"Hostname: 10.0.0.3\n" +
			"Uuid: 2f0c0a4e-9d6b-4e1a-9a51-3c2b1d0e0002\n" +
			"State: Peer in Cluster (Disconnected)\n" +
			"\n" +
			"Hostname: server4\n" +
			"Uuid: 2f0c0a4e-9d6b-4e1a-9a51-3c2b1d0e0003\n" +
			"State: Peer in Cluster (Connected)\n"
		checkGolden(t, got, want)
	})
}

func TestPoolList(t *testing.T) {
	t.Run("short names", func(t *testing.T) {
		peers := []api.Peer{
			{UUID: "aaaaaaaa-0000-4000-8000-000000000001", Hostname: "server1", Self: true, Connected: true},
			{UUID: "aaaaaaaa-0000-4000-8000-000000000002", Hostname: "server2"},
		}
		got := render(func(w *strings.Builder) { cli.PoolList(w, peers) })
		want := "UUID\t\t\t\t\tHostname \tState\n" +
			"aaaaaaaa-0000-4000-8000-000000000001\tlocalhost\tConnected \n" +
			"aaaaaaaa-0000-4000-8000-000000000002\tserver2  \tDisconnected \n"
		checkGolden(t, got, want)
	})
	t.Run("long name widens the column", func(t *testing.T) {
		peers := []api.Peer{
			{UUID: "u1", Hostname: "n1", Self: true, Connected: true},
			{UUID: "u2", Hostname: "storage-node-12.example.com", Connected: true},
		}
		got := render(func(w *strings.Builder) { cli.PoolList(w, peers) })
		want := "UUID\t\t\t\t\tHostname                   \tState\n" +
			"u1\tlocalhost                  \tConnected \n" +
			"u2\tstorage-node-12.example.com\tConnected \n"
		checkGolden(t, got, want)
	})
	t.Run("empty", func(t *testing.T) {
		got := render(func(w *strings.Builder) { cli.PoolList(w, nil) })
		checkGolden(t, got, "UUID\t\t\t\t\tHostname \tState\n")
	})
}

func TestVolumeInfo(t *testing.T) {
	dist := volume.Volume{
		Name: "gv0", ID: "7d1f6c2a-1111-4222-8333-444455556666", Status: volume.Started,
		Transport: "tcp",
		Bricks: []volume.Brick{
			{Host: "server1", Path: "/data/brick1/gv0"},
			{Host: "server2", Path: "/data/brick1/gv0"},
		},
		Options: volume.DefaultReconfigured(volume.Layout{}),
	}
	dist.SetOption("network.ping-timeout", "10") // newest: printed first
	arb := volume.Volume{
		Name: "gv1", ID: "7d1f6c2a-1111-4222-8333-444455557777", Status: volume.Created,
		Layout: volume.Layout{Replica: 3, Arbiter: 1}, Transport: "tcp", SnapshotCount: 2,
		Bricks: []volume.Brick{
			{Host: "server1", Path: "/b"},
			{Host: "server2", Path: "/b"},
			{Host: "server3", Path: "/arbiter", Arbiter: true},
		},
	}
	t.Run("distribute", func(t *testing.T) {
		got := render(func(w *strings.Builder) { cli.VolumeInfo(w, []volume.Volume{dist}) })
		want := " \n" +
			"Volume Name: gv0\n" +
			"Type: Distribute\n" +
			"Volume ID: 7d1f6c2a-1111-4222-8333-444455556666\n" +
			"Status: Started\n" +
			"Snapshot Count: 0\n" +
			"Number of Bricks: 2\n" +
			"Transport-type: tcp\n" +
			"Bricks:\n" +
			"Brick1: server1:/data/brick1/gv0\n" +
			"Brick2: server2:/data/brick1/gv0\n" +
			"Options Reconfigured:\n" +
			"network.ping-timeout: 10\n" +
			"storage.fips-mode-rchecksum: on\n" +
			"transport.address-family: inet\n" +
			"nfs.disable: on\n"
		checkGolden(t, got, want)
	})
	t.Run("arbiter and two volumes", func(t *testing.T) {
		got := render(func(w *strings.Builder) { cli.VolumeInfo(w, []volume.Volume{arb, dist}) })
		want := " \n" +
			"Volume Name: gv1\n" +
			"Type: Replicate\n" +
			"Volume ID: 7d1f6c2a-1111-4222-8333-444455557777\n" +
			"Status: Created\n" +
			"Snapshot Count: 2\n" +
			"Number of Bricks: 1 x (2 + 1) = 3\n" +
			"Transport-type: tcp\n" +
			"Bricks:\n" +
			"Brick1: server1:/b\n" +
			"Brick2: server2:/b\n" +
			"Brick3: server3:/arbiter (arbiter)\n" +
			" \n" +
			"Volume Name: gv0\n"
		if !strings.HasPrefix(got, want) {
			checkGolden(t, got[:min(len(got), len(want))], want)
		}
		if strings.Contains(got[:len(want)], "Options Reconfigured") {
			t.Error("a volume without options prints an Options Reconfigured section")
		}
	})
	t.Run("none", func(t *testing.T) {
		if got := render(func(w *strings.Builder) { cli.VolumeInfo(w, nil) }); got != "" {
			t.Errorf("VolumeInfo(nil) = %q", got)
		}
	})
}

const statusHeader = "Status of volume: gv0\n" +
	"Cais process                                TCP Port  RDMA Port  Online  Pid\n" +
	"------------------------------------------------------------------------------\n"

const statusFooter = " \n" +
	"Task Status of Volume gv0\n" +
	"------------------------------------------------------------------------------\n" +
	"There are no active volume tasks\n" +
	" \n"

func TestVolumeStatus(t *testing.T) {
	st := api.VolumeStatus{Name: "gv0", Status: volume.Started, Bricks: []api.BrickStatus{
		{Brick: volume.Brick{Host: "server1", Path: "/data/b1"}, Port: 49152, PID: 1234, Online: true},
		{Brick: volume.Brick{Host: "server2", Path: "/data/b2"}},
		{Brick: volume.Brick{Host: "storage-node-01.example.com", Path: "/data/glusterfs/volume1/brick1"}, Port: 49153, PID: 99, Online: true},
		// Online without a port is not serving: printed as offline, with its pid.
		{Brick: volume.Brick{Host: "server3", Path: "/data/b3"}, PID: 55, Online: true},
	}}
	got := render(func(w *strings.Builder) { cli.VolumeStatus(w, st) })
	want := statusHeader +
		"Brick server1:/data/b1                      49152     0          Y       1234 \n" +
		"Brick server2:/data/b2                      N/A       N/A        N       N/A  \n" +
		"Brick storage-node-01.example.com:/data/glu\n" +
		"sterfs/volume1/brick1                       49153     0          Y       99   \n" +
		"Brick server3:/data/b3                      N/A       N/A        N       55   \n" +
		statusFooter
	checkGolden(t, got, want)

	empty := render(func(w *strings.Builder) { cli.VolumeStatus(w, api.VolumeStatus{Name: "gv0"}) })
	checkGolden(t, empty, statusHeader+statusFooter)
}

// TestVolumeStatusWrapping: whatever the length of a brick's name, it is
// cut in 43-character lines and the columns start at the same place.
func TestVolumeStatusWrapping(t *testing.T) {
	const width = 43
	// n is the length of "Brick h:/ppp...".
	for _, n := range []int{10, 42, 43, 44, 85, 86, 87, 200} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			path := "/" + strings.Repeat("p", n-len("Brick h:/"))
			b := volume.Brick{Host: "h", Path: path}
			name := "Brick " + b.Name()
			if len(name) != n {
				t.Fatalf("test name is %d long, want %d", len(name), n)
			}
			st := api.VolumeStatus{Name: "gv0", Bricks: []api.BrickStatus{{Brick: b, Port: 1, PID: 2, Online: true}}}
			got := render(func(w *strings.Builder) { cli.VolumeStatus(w, st) })
			rows := strings.Split(strings.TrimSuffix(strings.TrimPrefix(got, statusHeader), statusFooter), "\n")
			rows = rows[:len(rows)-1] // after the last newline
			wantRows := (len(name)-1)/width + 1
			if len(rows) != wantRows {
				t.Fatalf("name of %d characters printed on %d lines, want %d:\n%s", len(name), len(rows), wantRows, got)
			}
			var joined string
			for _, r := range rows[:len(rows)-1] {
				if len(r) != width {
					t.Errorf("continued line %q is %d characters, want %d", r, len(r), width)
				}
				joined += r
			}
			last := rows[len(rows)-1]
			if len(last) < width+1 || last[width] != ' ' || !strings.HasPrefix(last[width+1:], "1         0          Y       2    ") {
				t.Errorf("last line %q does not have its columns at %d", last, width+1)
			}
			joined += strings.TrimRight(last[:width], " ")
			if joined != name {
				t.Errorf("lines join to %q, want %q", joined, name)
			}
		})
	}
}

func TestOptions(t *testing.T) {
	opts := []api.OptionValue{
		{Key: "cluster.quorum-type", Value: "auto"},
		{Key: "auth.reject", Value: "(null)"},
		{Key: "cluster.quorum-count", Value: "(null)", Reconfigured: true},
		{Key: "performance.write-behind-window-size", Value: "1MB", Reconfigured: true},
		{Key: "user.a-very-long-key-name-that-overflows-its-column", Value: "x"},
	}
	got := render(func(w *strings.Builder) { cli.Options(w, opts) })
	want := "Option                                   Value                                  \n" +
		"------                                   -----                                  \n" +
		"cluster.quorum-type                      auto                                   \n" +
		"auth.reject                              (null) (DEFAULT)                       \n" +
		"cluster.quorum-count                     (null)                                 \n" +
		"performance.write-behind-window-size     1MB                                    \n" +
		"user.a-very-long-key-name-that-overflows-its-column x                                      \n"
	checkGolden(t, got, want)
}

func TestVolumeList(t *testing.T) {
	got := render(func(w *strings.Builder) {
		cli.VolumeList(w, []volume.Volume{{Name: "gv0"}, {Name: "gv1"}})
	})
	checkGolden(t, got, "gv0\ngv1\n")
	if got := render(func(w *strings.Builder) { cli.VolumeList(w, nil) }); got != "" {
		t.Errorf("VolumeList(nil) = %q", got)
	}
}

// mount(8) calls /sbin/mount.cais SPEC DIR -o OPTIONS; gluster's
// backup-volfile-servers list is colon-separated.
func TestMountHelperArgs(t *testing.T) {
	got := cli.MountHelperArgs([]string{"server1:/distvol", "/mnt", "-o", "rw,_netdev,ro,acl,log-file=/var/log/x.log,backup-volfile-servers=server2:server3,selinux,transport=tcp,local-io=off,passthrough=no"})
	want := []string{"mount", "--ro", "--acl", "--log-file", "/var/log/x.log", "--backup-volfile-servers", "server2,server3", "--selinux", "--transport", "tcp", "--local-io=false", "--passthrough=false", "server1:/distvol", "/mnt"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("MountHelperArgs = %q, want %q", got, want)
	}
}
