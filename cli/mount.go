package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/cais-platform/cais/api"
	"github.com/cais-platform/cais/brick"
	"github.com/cais-platform/cais/client"
	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/mount"
	"github.com/cais-platform/cais/pki"
	"github.com/cais-platform/cais/volgraph"
	"github.com/cais-platform/cais/volume"

	"github.com/cais-platform/cais/rpc"
)

// mountFlags are cais mount's options.
type mountFlags struct {
	readOnly  bool
	opts      mount.Options
	logFile   string
	backups   []string
	transport string
	// localIO: reads and writes of a copy on a brick of this machine go
	// to it directly (fop.OpLocalFD).
	localIO bool
	// passthrough lets the kernel read and write local single-copy files
	// itself (mount.Options.Passthrough).
	passthrough bool
}

// Transports a mount reaches bricks by (--transport).
const (
	// transportAuto: bricks on this machine through their Unix sockets
	// (brick.DialLocal), the others with TLS over TCP.
	transportAuto = "auto"
	// transportTCP: every brick with TLS over TCP.
	transportTCP = "tcp"
)

func (a *app) mountCmd() *cobra.Command {
	var foreground bool
	var mf mountFlags
	cmd := &cobra.Command{
		Use:   "mount HOST:/VOLNAME MOUNTPOINT",
		Short: "mount a volume through FUSE (as mount -t cais does)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return a.usage(cmd)
			}
			spec, mnt := args[0], args[1]
			host, vol, ok := strings.Cut(spec, ":/")
			if !ok || host == "" || vol == "" || strings.Contains(vol, "/") {
				fmt.Fprintf(a.errOut, "mount: %s is not HOST:/VOLNAME\n", spec)
				return &ExitError{Code: 1}
			}
			if os.Geteuid() != 0 {
				fmt.Fprintln(a.errOut, "mount: only root can mount cais volumes")
				return &ExitError{Code: 1}
			}
			if _, err := os.Stat("/dev/fuse"); err != nil {
				fmt.Fprintln(a.errOut, "mount: /dev/fuse is missing: load the fuse module (modprobe fuse) or give the container the device")
				return &ExitError{Code: 1}
			}
			if fi, err := os.Stat(mnt); err != nil || !fi.IsDir() {
				fmt.Fprintf(a.errOut, "mount: mount point %s does not exist or is not a directory\n", mnt)
				return &ExitError{Code: 1}
			}
			if mf.transport != transportAuto && mf.transport != transportTCP {
				fmt.Fprintf(a.errOut, "mount: transport %q is not %s or %s\n", mf.transport, transportAuto, transportTCP)
				return &ExitError{Code: 1}
			}
			if !foreground {
				return a.mountBackground(args, mnt, mf)
			}
			return a.serveMount(host, vol, spec, mnt, mf)
		},
	}
	cmd.Flags().BoolVarP(&foreground, "foreground", "f", false, "stay in the foreground")
	cmd.Flags().BoolVar(&mf.readOnly, "ro", false, "mount read-only")
	cmd.Flags().BoolVar(&mf.opts.ACL, "acl", false, "support POSIX ACLs (setfacl, getfacl), as gluster's acl option; the kernel checks the mode bits only")
	cmd.Flags().BoolVar(&mf.opts.SELinux, "selinux", false, "support SELinux labels (security.selinux), as gluster's selinux option")
	cmd.Flags().StringVar(&mf.logFile, "log-file", "", "log of the mount process (default /var/log/cais/mnt-<mountpoint>.log)")
	cmd.Flags().StringSliceVar(&mf.backups, "backup-volfile-servers", nil, "servers to ask for the volume when HOST cannot be reached (gluster's option; HOST1:HOST2 in mount -o)")
	cmd.Flags().StringVar(&mf.transport, "transport", transportAuto, "how to reach the bricks: auto (those on this machine through their Unix sockets, the others with TLS over TCP) or tcp (all with TLS over TCP)")
	cmd.Flags().BoolVar(&mf.localIO, "local-io", true, "read and write files whose copy is on a brick of this machine straight in that copy (with --transport auto)")
	cmd.Flags().BoolVar(&mf.passthrough, "passthrough", true, "let the kernel write files whose only copy is on a brick of this machine itself (FUSE passthrough, Linux 6.9 and later; with --local-io)")
	return cmd
}

// mountBackground starts the mount process on its own and waits until the
// mount is there, as mount(8) expects of a helper.
func (a *app) mountBackground(args []string, mnt string, mf mountFlags) error {
	self, err := os.Executable()
	if err != nil {
		return a.fail("mount", err)
	}
	argv := []string{"--socket", a.socket, "--credentials", a.credentials, "mount", "--foreground"}
	if a.server != "" {
		argv = append(argv, "--server", a.server)
	}
	if mf.readOnly {
		argv = append(argv, "--ro")
	}
	if mf.opts.ACL {
		argv = append(argv, "--acl")
	}
	if mf.opts.SELinux {
		argv = append(argv, "--selinux")
	}
	if mf.logFile != "" {
		argv = append(argv, "--log-file", mf.logFile)
	}
	if len(mf.backups) > 0 {
		argv = append(argv, "--backup-volfile-servers", strings.Join(mf.backups, ","))
	}
	argv = append(argv, "--transport", mf.transport)
	if !mf.localIO {
		argv = append(argv, "--local-io=false")
	}
	if !mf.passthrough {
		argv = append(argv, "--passthrough=false")
	}
	argv = append(argv, args...)
	c := exec.Command(self, argv...)
	errPipe, err := os.CreateTemp("", "cais-mount")
	if err != nil {
		return a.fail("mount", err)
	}
	defer os.Remove(errPipe.Name())
	defer errPipe.Close()
	c.Stderr = errPipe
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		return a.fail("mount", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- c.Wait() }()
	deadline := time.After(60 * time.Second)
	for {
		if isMounted(mnt) {
			return nil
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(errPipe.Name())
			fmt.Fprint(a.errOut, string(b))
			return &ExitError{Code: 1}
		case <-deadline:
			_ = c.Process.Kill()
			fmt.Fprintf(a.errOut, "mount: %s did not appear within 60s\n", mnt)
			return &ExitError{Code: 1}
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func isMounted(mnt string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	abs := mnt
	if p, err := os.Readlink("/proc/self/cwd"); err == nil && !strings.HasPrefix(mnt, "/") {
		abs = p + "/" + mnt
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == strings.TrimSuffix(abs, "/") && strings.Contains(line, "fuse.cais") {
			return true
		}
	}
	return false
}

// serveMount connects to the volume's bricks and serves the FUSE mount
// until it is unmounted.
func (a *app) serveMount(host, volName, spec, mnt string, mf mountFlags) error {
	mopts, logFile, readOnly := mf.opts, mf.logFile, mf.readOnly
	if logFile == "" {
		logFile = "/var/log/cais/mnt-" + strings.ReplaceAll(strings.Trim(mnt, "/"), "/", "-") + ".log"
	}
	_ = os.MkdirAll("/var/log/cais", 0o755)
	lf, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return a.fail("mount", err)
	}
	defer lf.Close()
	log := slog.New(slog.NewTextHandler(lf, nil)).With("volume", volName, "mountpoint", mnt)

	var v volume.Volume
	var st api.VolumeStatus
	var pool []api.Peer
	var creds api.Credentials
	// With no local daemon, ask the named server over TLS, then the
	// backup volfile servers in turn while the ones before cannot be
	// reached.
	servers := []string{a.server}
	if a.server == "" {
		if _, err := os.Stat(a.socket); err != nil {
			servers = append([]string{host}, mf.backups...)
		}
	}
	fetch := func(ctx context.Context, c *client.Client) error {
		var err error
		if v, err = c.Volume(ctx, volName); err != nil {
			return err
		}
		if v.Layout.Stripe > 1 || v.Layout.Disperse > 0 {
			return fmt.Errorf("volume %s is %s: this release mounts Distribute, Replicate and Distributed-Replicate volumes (stripe and disperse arrive with the next data-path work)", volName, v.Layout.Type(len(v.Bricks)))
		}
		if st, err = c.VolumeStatus(ctx, volName); err != nil {
			return err
		}
		if pool, err = c.Pool(ctx); err != nil {
			return err
		}
		creds, err = c.Credentials(ctx, "mount "+host+" "+volName, 30)
		return err
	}
	for i, srv := range servers {
		a.server = srv
		c, cerr := a.connect()
		if cerr == nil {
			ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
			cerr = fetch(ctx, c)
			cancel()
			c.Close()
		}
		if cerr == nil {
			break
		}
		if i+1 < len(servers) && errors.Is(cerr, errdefs.ErrUnavailable) {
			log.Warn("volfile server unreachable, trying the next", "server", srv, "err", cerr)
			continue
		}
		return a.fail("mount", cerr)
	}
	tlsCfg, err := pki.ClientTLS([]byte(creds.CA), []byte(creds.Cert), []byte(creds.Key))
	if err != nil {
		return a.fail("mount", err)
	}
	addrs := brickAddrs(pool, st)
	if missing := offline(v, addrs); len(missing) > 0 {
		if v.Layout.Replica <= 1 {
			fmt.Fprintf(a.errOut, "mount: brick %s is offline\n", missing[0])
			return &ExitError{Code: 1}
		}
		for _, set := range v.Layout.Sets(v.Bricks) {
			var down []string
			for _, b := range set {
				if addrs[b.ID] == "" {
					down = append(down, b.Name())
				}
			}
			if len(down) == len(set) {
				fmt.Fprintf(a.errOut, "mount: every brick of a replica set is offline (%s): wait for them, or see 'cais volume status %s'\n", strings.Join(down, ", "), volName)
				return &ExitError{Code: 1}
			}
		}
		fmt.Fprintf(a.errOut, "mount: warning: bricks offline, their replicas serve meanwhile: %s\n", strings.Join(missing, ", "))
	}
	debug.SetGCPercent(brick.GCPercent)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	// With features.cache-invalidation the bricks tell the mount what
	// other clients change, and the kernel keeps entries and attributes
	// for performance.md-cache-timeout (mount.Cache).
	timeout, inval := volgraph.CacheTimeout(&v)
	cache := mount.NewCache()
	local := mf.transport == transportAuto
	gcfg := volgraph.Config{Volume: v, Addrs: addrs, Sockets: brickSockets(st, local), NoLocalIO: !mf.localIO, Dial: func(ctx context.Context, addr string) (net.Conn, error) {
		return rpc.DialTLS(ctx, dialer, addr, tlsCfg)
	}, Log: log}
	if inval {
		gcfg.Upcalls = cache
		go cache.Run(ctx)
	}
	g, err := volgraph.Build(gcfg)
	if err != nil {
		return a.fail("mount", err)
	}
	defer g.Close()
	go a.followBricks(ctx, volName, g, pool, tlsCfg, local, log)
	mopts.ReleaseRead = g.Buffers.Put
	// Only files of one copy can be handed to the kernel: a replicated
	// volume's writes must reach each.
	mopts.Passthrough = mf.localIO && mf.passthrough && v.Layout.Replica <= 1
	// With upcalls the mount knows each file's set-ID bits and clears
	// them itself on writes, and the kernel stops asking for
	// security.capability before each one.
	mopts.KillPriv = inval
	var caps uint64
	if inval {
		caps = mount.HandleKillPriv
	}
	root := cache.Root(g.Root, mopts)
	opts := &fs.Options{
		EntryTimeout:    &timeout,
		AttrTimeout:     &timeout,
		NegativeTimeout: &timeout,
		// Mode 0000 is a mode like any other (open(O_CREAT, 0) makes one):
		// go-fuse would otherwise show it as 0644.
		NullPermissions: true,
		MountOptions: fuse.MountOptions{
			FsName:      spec,
			Name:        "cais",
			AllowOther:  true,
			DirectMount: true, // root mounts with mount(2); no fusermount needed
			MaxWrite:    1 << 20,
			// Sequential readers get 1 MiB reads ahead of them, not 128 KiB.
			MaxReadAhead: 1 << 20,
			// fcntl and flock locks go to the bricks, so that every mount
			// sees them (mount/locks.go).
			EnableLocks:       true,
			ExtraCapabilities: caps,
			// With upcalls the mount drops a file's pages when another
			// client changes it (mount.Cache); a change of modification
			// time alone need not.
			ExplicitDataCacheControl: inval,
			// The kernel checks permissions against the attributes, as for
			// a local file system.
			Options: append(append([]string{"default_permissions"}, maxReadOpt()...), roOpt(readOnly)...),
		},
	}
	server, err := fs.Mount(mnt, root, opts)
	if err != nil {
		// The kernel's mount may be made already (the first request
		// failed: every brick of the root's set down): a failed mount
		// leaves no dead mount point behind.
		if isMounted(mnt) {
			if uerr := syscall.Unmount(mnt, syscall.MNT_DETACH); uerr != nil {
				log.Warn("cannot undo the failed mount", "err", uerr)
			}
		}
		return a.fail("mount", err)
	}
	mount.SpareProcs()
	if err := mount.SetReadAhead(mnt, mount.ReadAheadKB); err != nil {
		log.Warn("sequential reads go 128 KiB at a time", "err", err)
	}
	log.Info("mounted", "bricks", len(v.Bricks), "type", v.Layout.Type(len(v.Bricks)))
	// From now on the mount runs unattended: what the runtime itself
	// prints (a crash's stack) goes to the log file too.
	if err := unix.Dup3(int(lf.Fd()), 2, 0); err != nil {
		log.Warn("cannot send stderr to the log file", "err", err)
	}
	go func() {
		<-ctx.Done()
		_ = server.Unmount()
	}()
	server.Wait()
	log.Info("unmounted")
	return nil
}

// maxReadOpt caps the kernel's reads at the largest a reply can splice
// from a local copy (mount.MaxSplicedRead: 1 MiB less a page on most
// machines), unless that is small (pipe-max-size lowered): reads are
// then read with pread, 1 MiB at a time.
func maxReadOpt() []string {
	n := mount.MaxSplicedRead()
	if n < 256<<10 || n >= 1<<20 {
		return nil
	}
	return []string{"max_read=" + strconv.Itoa(n)}
}

func roOpt(ro bool) []string {
	if ro {
		return []string{"ro"}
	}
	return nil
}

// brickAddrs maps each online brick to HOST:PORT.
func brickAddrs(pool []api.Peer, st api.VolumeStatus) map[string]string {
	nodes := map[string]string{}
	for _, p := range pool {
		nodes[p.UUID] = p.Addr
	}
	out := map[string]string{}
	for _, b := range st.Bricks {
		if b.Online && b.Port > 0 && nodes[b.Brick.Node] != "" {
			out[b.Brick.ID] = net.JoinHostPort(nodes[b.Brick.Node], strconv.Itoa(b.Port))
		}
	}
	return out
}

// brickSockets maps each online brick that serves a local socket on its
// node to that socket, when local is set; a brick on another machine
// has none here, which the mount finds out on its first connection.
func brickSockets(st api.VolumeStatus, local bool) map[string]string {
	out := map[string]string{}
	if !local {
		return out
	}
	for _, b := range st.Bricks {
		if b.Online && b.Socket != "" {
			out[b.Brick.ID] = b.Socket
		}
	}
	return out
}

func offline(v volume.Volume, addrs map[string]string) []string {
	var out []string
	for _, b := range v.Bricks {
		if addrs[b.ID] == "" {
			out = append(out, b.Name())
		}
	}
	return out
}

// followBricks asks the pool every few seconds where the volume's bricks
// serve, so a brick that restarts on another port is reached there. It
// asks the daemon it mounted through, or, while that one is down, the
// other pool members over TLS with the mount's certificate.
func (a *app) followBricks(ctx context.Context, volName string, g *volgraph.Graph, pool []api.Peer, tlsCfg *tls.Config, local bool, log *slog.Logger) {
	t := time.NewTicker(3 * time.Second)
	defer t.Stop()
	clients := func() []*client.Client {
		var out []*client.Client
		if c, err := a.connect(); err == nil {
			out = append(out, c)
		}
		for _, p := range pool {
			if !p.Self {
				out = append(out, client.NewTLS(net.JoinHostPort(p.Addr, strconv.Itoa(p.Port)), tlsCfg))
			}
		}
		return out
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, c := range clients() {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			st, err := c.VolumeStatus(cctx, volName)
			var peers []api.Peer
			if err == nil {
				peers, err = c.Pool(cctx)
			}
			cancel()
			c.Close()
			if err != nil {
				continue
			}
			for id, addr := range brickAddrs(peers, st) {
				if g.SetAddr(id, addr) {
					log.Info("brick address", "brick", id, "addr", addr)
				}
			}
			socks := brickSockets(st, local)
			for _, b := range st.Bricks {
				if g.SetSocket(b.Brick.ID, socks[b.Brick.ID]) {
					log.Info("brick local socket", "brick", b.Brick.ID, "socket", socks[b.Brick.ID])
				}
			}
			if len(peers) > 0 {
				pool = peers
			}
			break
		}
	}
}
