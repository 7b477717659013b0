package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Addresses and ports of the bench's cais pool: away from GlusterFS
// (24007, 49152-49251 as the bench runs it), the test suite (127.1xx.x.x)
// and manual runs (127.0.0.50-59).
var caisNodes = []struct {
	addr                             string
	port, brickBase, etcdC, etcdPeer int
}{
	{"127.0.0.60", 24160, 51160, 23960, 23961},
	{"127.0.0.61", 24161, 51180, 23970, 23971},
}

// caisPool is a two-node pool of real caisd processes.
type caisPool struct {
	bin       string // directory holding cais and caisd
	dir       string
	transport string // cais mount --transport
	log       *slog.Logger
	cl        *cleanups
	nodes     []caisNode
}

type caisNode struct {
	addr, socket string
	port         int
	d            *daemon
}

func (p *caisPool) cli(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	argv := append([]string{"--socket", p.nodes[0].socket, "--mode=script"}, args...)
	return run(ctx, filepath.Join(p.bin, "cais"), argv...)
}

// start starts both daemons and probes the second into the first's pool.
func (p *caisPool) start(ctx context.Context) error {
	for i, n := range caisNodes {
		data := filepath.Join(p.dir, fmt.Sprintf("n%d", i+1))
		argv := []string{filepath.Join(p.bin, "caisd"), "--addr", n.addr, "--port", strconv.Itoa(n.port),
			"--brick-port-base", strconv.Itoa(n.brickBase), "--etcd-client-port", strconv.Itoa(n.etcdC),
			"--etcd-peer-port", strconv.Itoa(n.etcdPeer), "--data-dir", data,
			"--docker-socket", ""} // no container engine: the storage bench needs none
		want := "state: member"
		if i > 0 {
			tok, err := p.cli(ctx, "pool", "token")
			if err != nil {
				return err
			}
			argv = append(argv, "--join-token", strings.TrimSpace(tok))
			want = "state: waiting"
		}
		d, err := startDaemon("caisd "+n.addr, filepath.Join(p.dir, fmt.Sprintf("caisd-%d.log", i+1)), argv...)
		if err != nil {
			return err
		}
		p.cl.push("stop "+d.name, func() error { return d.stop(15 * time.Second) })
		node := caisNode{addr: n.addr, port: n.port, socket: filepath.Join(data, "caisd.sock"), d: d}
		p.nodes = append(p.nodes, node)
		if err := p.waitState(ctx, node, want); err != nil {
			return err
		}
	}
	for _, n := range p.nodes[1:] {
		if _, err := p.cli(ctx, "peer", "probe", fmt.Sprintf("%s:%d", n.addr, n.port)); err != nil {
			return err
		}
	}
	return nil
}

func (p *caisPool) waitState(ctx context.Context, n caisNode, want string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := run(ctx, filepath.Join(p.bin, "cais"), "--socket", n.socket, "version")
		if err == nil && strings.Contains(out, want) {
			return nil
		}
		select {
		case <-n.d.exited:
			return fmt.Errorf("caisd %s exited; see %s", n.addr, p.dir)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("caisd %s not in %q after 60s (last: %v %s)", n.addr, want, err, out)
		}
	}
}

// volume creates and starts a volume of layout l, bricks spread over the
// nodes in turn, and mounts it at mnt with cais mount; it returns the
// mount process.
func (p *caisPool) volume(ctx context.Context, l layout, bricksDir, mnt string) (*daemon, error) {
	name := "cais-bench-" + l.key
	var bricks []string
	for i := 0; i < l.bricks; i++ {
		n := p.nodes[i%len(p.nodes)]
		bricks = append(bricks, fmt.Sprintf("%s:%s/%s-b%d", n.addr, bricksDir, name, i+1))
	}
	var err error
	for try := 0; try < 30; try++ { // the probed peer may take a moment to be in the pool
		if _, err = p.cli(ctx, l.createArgs(name, bricks)...); err == nil {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil {
		return nil, err
	}
	p.cl.push("delete cais volume "+name, func() error {
		_, err := p.cli(context.Background(), "volume", "delete", name)
		return err
	})
	if _, err := p.cli(ctx, "volume", "start", name); err != nil {
		return nil, err
	}
	p.cl.push("stop cais volume "+name, func() error {
		_, err := p.cli(context.Background(), "volume", "stop", name, "force")
		return err
	})
	if err := p.waitOnline(ctx, name); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return nil, err
	}
	argv := []string{filepath.Join(p.bin, "cais"), "--socket", p.nodes[0].socket, "mount", "--foreground",
		"--transport", p.transport, "--log-file", filepath.Join(p.dir, "mount-"+l.key+".log"), p.nodes[0].addr + ":/" + name, mnt}
	d, err := startDaemon("cais mount "+name, filepath.Join(p.dir, "mount-"+l.key+".out"), argv...)
	if err != nil {
		return nil, err
	}
	p.cl.push("unmount "+mnt, func() error { return stopMount(mnt, d) })
	if err := waitMounted(ctx, mnt, "fuse.cais", d.exited, 60*time.Second); err != nil {
		b, _ := os.ReadFile(filepath.Join(p.dir, "mount-"+l.key+".out"))
		return nil, fmt.Errorf("%w: %s", err, strings.TrimSpace(string(b)))
	}
	return d, nil
}

func (p *caisPool) waitOnline(ctx context.Context, name string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := p.cli(ctx, "volume", "status", name, "--json")
		if err == nil {
			var st struct {
				Bricks []struct {
					Online bool `json:"online"`
				} `json:"bricks"`
			}
			if json.Unmarshal([]byte(out), &st) == nil && len(st.Bricks) > 0 {
				up := 0
				for _, b := range st.Bricks {
					if b.Online {
						up++
					}
				}
				if up == len(st.Bricks) {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bricks of %s not online after 60s: %v %s", name, err, out)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// stopMount unmounts a FUSE mount and waits for its server process.
func stopMount(mnt string, d *daemon) error {
	err := unmount(mnt)
	if d != nil && !d.waitExit(10*time.Second) {
		if err2 := d.stop(5 * time.Second); err == nil {
			err = err2
		}
	}
	return err
}
