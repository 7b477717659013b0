package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/cais-platform/cais/api"
	"github.com/cais-platform/cais/volume"
)

// The formats below follow the gluster CLI's, so scripts and habits built
// on its output carry over.

// PeerStatus prints `peer status`.
func PeerStatus(w io.Writer, peers []api.Peer) {
	fmt.Fprintf(w, "Number of Peers: %d\n", len(peers))
	for _, p := range peers {
		fmt.Fprintf(w, "\nHostname: %s\nUuid: %s\nState: Peer in Cluster (%s)\n", p.Hostname, p.UUID, connected(p.Connected))
		if p.Addr != "" && p.Addr != p.Hostname {
			fmt.Fprintf(w, "Other names:\n%s\n", p.Addr)
		}
	}
}

// PoolList prints `pool list`; the answering node is shown as localhost.
func PoolList(w io.Writer, peers []api.Peer) {
	width := 9
	for _, p := range peers {
		width = max(width, len(p.Hostname))
	}
	fmt.Fprintf(w, "UUID\t\t\t\t\t%-*s\tState\n", width, "Hostname")
	for _, p := range peers {
		name := p.Hostname
		if p.Self {
			name = "localhost"
		}
		fmt.Fprintf(w, "%s\t%-*s\t%s \n", p.UUID, width, name, connected(p.Connected))
	}
}

func connected(c bool) string {
	if c {
		return "Connected"
	}
	return "Disconnected"
}

// VolumeInfo prints `volume info` for each volume.
func VolumeInfo(w io.Writer, vols []volume.Volume) {
	for _, v := range vols {
		n := len(v.Bricks)
		fmt.Fprintln(w, " ")
		fmt.Fprintf(w, "Volume Name: %s\n", v.Name)
		fmt.Fprintf(w, "Type: %s\n", v.Layout.Type(n))
		fmt.Fprintf(w, "Volume ID: %s\n", v.ID)
		fmt.Fprintf(w, "Status: %s\n", v.Status)
		fmt.Fprintf(w, "Snapshot Count: %d\n", v.SnapshotCount)
		fmt.Fprintf(w, "Number of Bricks: %s\n", v.Layout.BrickCount(n))
		fmt.Fprintf(w, "Transport-type: %s\n", v.Transport)
		fmt.Fprintln(w, "Bricks:")
		for i, b := range v.Bricks {
			suffix := ""
			if b.Arbiter {
				suffix = " (arbiter)"
			}
			fmt.Fprintf(w, "Brick%d: %s%s\n", i+1, b.Name(), suffix)
		}
		if len(v.Options) > 0 {
			fmt.Fprintln(w, "Options Reconfigured:")
			// Newest first, as gluster prints them.
			for i := len(v.Options) - 1; i >= 0; i-- {
				fmt.Fprintf(w, "%s: %s\n", v.Options[i].Key, v.Options[i].Value)
			}
		}
	}
}

const (
	statusNameWidth = 43
	statusLine      = 78
)

// VolumeStatus prints `volume status` for one volume.
func VolumeStatus(w io.Writer, st api.VolumeStatus) {
	fmt.Fprintf(w, "Status of volume: %s\n", st.Name)
	fmt.Fprintf(w, "%-*s %s  %s  %s  %s\n", statusNameWidth, "Cais process", "TCP Port", "RDMA Port", "Online", "Pid")
	fmt.Fprintln(w, strings.Repeat("-", statusLine))
	for _, b := range st.Bricks {
		name := "Brick " + b.Brick.Name()
		// Long names wrap in chunks, the last chunk carrying the columns.
		for len(name) > statusNameWidth {
			fmt.Fprintln(w, name[:statusNameWidth])
			name = name[statusNameWidth:]
		}
		fmt.Fprintf(w, "%s%s", name, strings.Repeat(" ", statusNameWidth-len(name)+1))
		if b.Online && b.Port > 0 {
			fmt.Fprintf(w, "%-10d%-11d%-8c%-5d\n", b.Port, 0, 'Y', b.PID)
		} else {
			pid := "N/A"
			if b.PID > 0 {
				pid = fmt.Sprint(b.PID)
			}
			fmt.Fprintf(w, "%-10s%-11s%-8c%-5s\n", "N/A", "N/A", 'N', pid)
		}
	}
	fmt.Fprintln(w, " ")
	fmt.Fprintf(w, "Task Status of Volume %s\n", st.Name)
	fmt.Fprintln(w, strings.Repeat("-", statusLine))
	fmt.Fprintln(w, "There are no active volume tasks")
	fmt.Fprintln(w, " ")
}

// Options prints `volume get`.
func Options(w io.Writer, opts []api.OptionValue) {
	fmt.Fprintf(w, "%-40s %-39s\n", "Option", "Value")
	fmt.Fprintf(w, "%-40s %-39s\n", "------", "-----")
	for _, o := range opts {
		val := o.Value
		if !o.Reconfigured && val == "(null)" {
			val = "(null) (DEFAULT)"
		}
		fmt.Fprintf(w, "%-40s %-39s\n", o.Key, val)
	}
}

// VolumeList prints `volume list`.
func VolumeList(w io.Writer, vols []volume.Volume) {
	for _, v := range vols {
		fmt.Fprintln(w, v.Name)
	}
}
