// Package daemon is caisd: the node daemon that keeps a pool member's part
// of the cluster state, serves the REST API to the CLI and to other
// daemons, and runs the node's bricks.
//
// A node is in one of two states. A member belongs to a pool: it runs (or
// reaches) the pool's etcd, holds a certificate from the pool CA and serves
// every API. A waiting node was started with --join-token and has not been
// probed yet: it answers only the join calls of the pool its token names.
// A node started without a token on an empty data dir founds a pool of its
// own, as a fresh glusterd is a pool of one.
package daemon

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/cais-platform/cais/brick"
	"github.com/cais-platform/cais/client"
	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/etcdnode"
	"github.com/cais-platform/cais/pki"
	"github.com/cais-platform/cais/pool"
	"github.com/cais-platform/cais/state"
	"github.com/cais-platform/cais/unixsock"
	"github.com/cais-platform/cais/volume"
)

// Version is the cais release; set at build time with -ldflags.
var Version = "0.1.0-dev"

// Daemon is one running caisd.
type Daemon struct {
	cfg     Config
	log     *slog.Logger
	nodeKey crypto.Signer
	options *volume.Options
	exe     string
	// uuid is the node's identity; it never changes.
	uuid string

	// locks serialize this node's operations per volume (and "_pool").
	locks keyedLocks
	// joinMu serializes joining and leaving.
	joinMu sync.Mutex
	mu     sync.RWMutex
	id     identity
	member *member // nil while waiting
	// pending is the offer a waiting node accepted in step 1 of a join.
	pending *pendingJoin
	// selfSigned is the waiting node's certificate.
	selfSigned tls.Certificate

	// ctx is the daemon's lifetime.
	ctx context.Context
}

type pendingJoin struct {
	offerCA  []byte
	poolID   string
	hostname string
}

// member is everything a pool member runs.
type member struct {
	cancel context.CancelFunc
	done   sync.WaitGroup
	etcd   *etcdnode.Embedded // nil with an external etcd
	cli    *clientv3.Client
	store  *state.Store
	caPEM  []byte
	ca     *x509.Certificate
	cert   tls.Certificate
	// nodeTLS is the client configuration for calls to other daemons and
	// to bricks.
	nodeTLS *tls.Config
	sup     *brick.Supervisor

	sessMu sync.Mutex
	sess   *concurrency.Session
	sessCh chan struct{} // closed when sess is replaced

	// pub wakes the loop that publishes brick status to etcd.
	pub chan struct{}

	healer *healer
}

// publishSoon asks for the bricks' status to be published.
func (m *member) publishSoon() {
	select {
	case m.pub <- struct{}{}:
	default:
	}
}

// New prepares a daemon: it checks the configuration, creates the data
// directory and loads the node's identity.
func New(cfg Config, log *slog.Logger) (*Daemon, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := mkdirs(&cfg); err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil {
		return nil, fmt.Errorf("find caisd's own executable: %w", err)
	}
	d := &Daemon{cfg: cfg, log: log, options: volume.NewOptions(), exe: exe}
	if d.id, err = loadIdentity(&d.cfg); err != nil {
		return nil, err
	}
	d.uuid = d.id.UUID
	if d.nodeKey, err = loadNodeKey(&d.cfg); err != nil {
		return nil, err
	}
	if d.selfSigned, err = pki.SelfSigned(d.nodeKey, "cais node "+d.uuid); err != nil {
		return nil, err
	}
	return d, nil
}

// Run serves until ctx ends. Bricks keep running after Run returns; the
// next caisd on the same data dir adopts them.
func (d *Daemon) Run(ctx context.Context) error {
	d.ctx = ctx
	lock, err := lockDataDir(d.cfg.DataDir)
	if err != nil {
		return err
	}
	defer lock.Close()

	unixLn, err := listenUnix(d.cfg.Socket)
	if err != nil {
		return err
	}
	tcpLn, err := net.Listen("tcp", net.JoinHostPort(d.cfg.Addr, strconv.Itoa(d.cfg.Port)))
	if err != nil {
		unixLn.Close()
		return fmt.Errorf("listen on %s:%d: %w (is another caisd or glusterd using this port? choose one with --port)", d.cfg.Addr, d.cfg.Port, err)
	}

	if d.id.PoolID != "" && d.id.Addr != "" && d.id.Addr != d.cfg.Addr {
		unixLn.Close()
		tcpLn.Close()
		return fmt.Errorf("this node joined its pool with address %s; start caisd with --addr %s (its certificate and etcd membership are bound to it)", d.id.Addr, d.id.Addr)
	}

	// The API answers from the start: until the node is ready every call
	// gets a 503 saying what caisd waits for, instead of a connection
	// that hangs (a restarted node can wait long for its pool's quorum).
	gate := &startGate{why: "caisd is starting"}
	local := &http.Server{Handler: gate, ConnContext: localConn, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelDebug)}
	remote := &http.Server{Handler: gate, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelDebug)}
	tlsLn := tls.NewListener(tcpLn, &tls.Config{GetConfigForClient: d.serverTLS})
	errc := make(chan error, 2)
	go func() { errc <- local.Serve(unixLn) }()
	go func() { errc <- remote.Serve(tlsLn) }()
	closeAPI := func() {
		local.Close()
		remote.Close()
	}

	switch {
	case d.id.PoolID != "":
		gate.setWhy("caisd is starting: waiting for the pool's etcd quorum (see caisd's log)")
		if err := d.startMember(ctx); err != nil {
			closeAPI()
			if ctx.Err() != nil {
				// Stopped (SIGTERM, ^C) while it waited: a clean stop.
				d.log.Info("caisd stopped while waiting for its pool", "err", err)
				return nil
			}
			return err
		}
	case d.cfg.JoinToken != "":
		d.log.Info("waiting to be probed by the pool named in the join token", "addr", d.cfg.Addr, "port", d.cfg.Port)
	default:
		if err := d.bootstrap(ctx); err != nil {
			closeAPI()
			return err
		}
	}

	gate.setWhy("caisd is starting: its container engine and registry")
	ctrs, err := d.startContainers()
	if err != nil {
		d.stopMember(false)
		closeAPI()
		return err
	}
	defer func() {
		ctrs.stop()
		d.log.Info("caisd stopped")
	}()
	reg, err := d.startRegistry()
	if err != nil {
		d.stopMember(false)
		closeAPI()
		return err
	}
	defer func() {
		reg.stop()
		d.log.Debug("registry stopped")
	}()

	gate.open(d.routes())
	d.log.Info("caisd ready", "version", Version, "uuid", d.uuid, "addr", d.cfg.Addr, "port", d.cfg.Port, "socket", d.cfg.Socket)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	stopping := time.Now()
	d.log.Info("caisd stopping")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = local.Shutdown(sctx)
	_ = remote.Shutdown(sctx)
	d.log.Debug("API stopped", "took", time.Since(stopping))
	d.stopMember(false)
	d.log.Debug("pool membership stopped", "took", time.Since(stopping))
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("serve API: %w", serveErr)
	}
	return nil
}

// serverTLS picks the API's TLS configuration for the node's state. Client
// certificates are requested but checked by the handlers, so a caller with
// no or a foreign certificate gets a clear error instead of a failed
// handshake.
func (d *Daemon) serverTLS(*tls.ClientHelloInfo) (*tls.Config, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	cert := d.selfSigned
	if d.member != nil {
		cert = d.member.cert
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequestClientCert,
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{"h2", "http/1.1"},
	}, nil
}

func (d *Daemon) current() (*member, identity) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.member, d.id
}

// bootstrap founds a new pool with this node as its only member.
func (d *Daemon) bootstrap(ctx context.Context) error {
	poolID := uuid.NewString()
	ca, err := pki.NewCA(poolID)
	if err != nil {
		return err
	}
	certPEM, err := ca.Issue(d.nodeKey.Public(), withOSHostname(d.nodeIdentity(d.cfg.Hostname)), 10*365*24*time.Hour)
	if err != nil {
		return err
	}
	keyPEM, err := pki.EncodeKey(d.nodeKey)
	if err != nil {
		return err
	}
	if err := (pki.Files{Dir: d.cfg.tlsDir()}).Write(ca.CertPEM, certPEM, keyPEM); err != nil {
		return err
	}
	secret, err := pool.NewSecret()
	if err != nil {
		return err
	}
	id := d.id
	id.PoolID = poolID
	id.Addr = d.cfg.Addr
	id.ExternalEtcd = d.cfg.External()
	d.mu.Lock()
	d.id = id
	d.mu.Unlock()
	if err := d.startMember(ctx); err != nil {
		d.resetPoolState()
		return err
	}
	m, _ := d.current()
	self := d.selfPeer()
	bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ok, err := m.store.Bootstrap(bctx, state.PoolInfo{ID: poolID, Created: time.Now().UTC(), Voters: d.cfg.Voters, ExternalEtcd: d.cfg.External()}, ca.CertPEM, ca.KeyPEM, secret, self)
	if err == nil && !ok {
		err = fmt.Errorf("the etcd cluster at %v already holds a cais pool under %s: to add this node to it, start caisd with --join-token (from 'cais pool token' on a member) and probe it from a member", d.cfg.EtcdEndpoints, d.cfg.EtcdPrefix)
	}
	if err != nil {
		d.stopMember(true)
		d.resetPoolState()
		return fmt.Errorf("found a new pool: %w", err)
	}
	if err := saveIdentity(&d.cfg, id); err != nil {
		return err
	}
	d.log.Info("founded a new pool", "pool", poolID)
	return nil
}

// selfPeer is this node's peer record.
func (d *Daemon) selfPeer() state.Peer {
	p := state.Peer{UUID: d.uuid, Hostname: d.cfg.Hostname, Addr: d.cfg.Addr, Port: d.cfg.Port, Joined: time.Now().UTC()}
	if !d.cfg.External() {
		p.EtcdPeerURL = etcdnode.PeerURL(d.cfg.Addr, d.cfg.EtcdPeerPort)
		p.EtcdClientURL = etcdnode.ClientURL(d.cfg.Addr, d.cfg.EtcdClientPort)
		if m, _ := d.current(); m != nil && m.etcd != nil {
			p.EtcdMemberID = m.etcd.ID()
		}
	}
	return p
}

// nodeIdentity is what a node certificate names.
func (d *Daemon) nodeIdentity(hostname string) pki.Identity {
	return nodeCertIdentity(d.uuid, d.cfg.Addr, hostname)
}

func nodeCertIdentity(uuid, addr, hostname string) pki.Identity {
	id := pki.Identity{CommonName: uuid, Role: pki.RoleNode, IPs: []net.IP{net.ParseIP(addr)}, DNSNames: []string{"localhost"}}
	if ip := net.ParseIP(hostname); ip != nil {
		if !ip.Equal(id.IPs[0]) {
			id.IPs = append(id.IPs, ip)
		}
	} else if hostname != "" {
		id.DNSNames = append(id.DNSNames, hostname)
	}
	return id
}

// withOSHostname adds the machine's host name to a certificate identity.
func withOSHostname(id pki.Identity) pki.Identity {
	if h, err := os.Hostname(); err == nil && h != "" && h != "localhost" {
		id.DNSNames = append(id.DNSNames, h)
	}
	return id
}

// startMember starts the member's parts: etcd, the etcd client, the lease
// that says the node is alive, the brick supervisor and the watch that
// drives it.
func (d *Daemon) startMember(ctx context.Context) error {
	files := pki.Files{Dir: d.cfg.tlsDir()}
	caPEM, certPEM, keyPEM, err := files.Load()
	if err != nil {
		return fmt.Errorf("this node's pool certificates are missing from %s: %w", files.Dir, err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("load node certificate: %w", err)
	}
	caCert, err := pki.ParseCert(caPEM)
	if err != nil {
		return err
	}
	nodeTLS, err := pki.ClientTLS(caPEM, certPEM, keyPEM)
	if err != nil {
		return err
	}
	m := &member{caPEM: caPEM, ca: caCert, cert: pair, nodeTLS: nodeTLS}
	mctx, cancel := context.WithCancel(ctx)
	m.cancel = cancel
	d.mu.RLock()
	id := d.id
	d.mu.RUnlock()

	var endpoints []string
	var etcdTLS *tls.Config
	if d.cfg.External() {
		endpoints = d.cfg.EtcdEndpoints
		if d.cfg.EtcdCA != "" || d.cfg.EtcdCert != "" {
			etcdTLS, err = externalTLS(d.cfg)
			if err != nil {
				cancel()
				return err
			}
		}
	} else {
		_, statErr := os.Stat(filepath.Join(d.cfg.etcdDir(), "member"))
		// A member joining for the first time gives up after a minute; one
		// restarting waits for its pool's quorum as long as it takes
		// (the other members may be restarting too), saying so.
		sctx, scancel := ctx, context.CancelFunc(func() {})
		if statErr != nil {
			sctx, scancel = context.WithTimeout(ctx, 60*time.Second)
		}
		etcdLog := filepath.Join(d.cfg.logDir(), "etcd.log")
		e, err := etcdnode.Start(sctx, etcdnode.Config{
			Name: id.UUID, DataDir: d.cfg.etcdDir(), Addr: d.cfg.Addr,
			ClientPort: d.cfg.EtcdClientPort, PeerPort: d.cfg.EtcdPeerPort,
			CAFile: files.CA(), CertFile: files.Cert(), KeyFile: files.Key(),
			InitialCluster: id.InitialCluster, Existing: id.InitialCluster != "" && statErr != nil,
			ClusterToken: id.PoolID, LogFile: etcdLog,
			Waiting: func(waited time.Duration, others []string) {
				d.log.Warn("waiting for the pool's etcd quorum: a majority of its voting members must be up; start caisd on the other nodes",
					"waited", waited.Round(time.Second), "other_members", others, "etcd_log", etcdLog)
			},
		})
		scancel()
		if err != nil {
			cancel()
			return err
		}
		m.etcd = e
		endpoints = append([]string{etcdnode.ClientURL(d.cfg.Addr, d.cfg.EtcdClientPort)}, id.Endpoints...)
		etcdTLS = nodeTLS.Clone()
	}
	cli, err := etcdnode.Dial(mctx, dedupe(endpoints), etcdTLS)
	if err != nil {
		cancel()
		if m.etcd != nil {
			m.etcd.Close()
		}
		return err
	}
	m.cli = cli
	m.store = state.New(cli, d.cfg.EtcdPrefix)
	if m.etcd != nil {
		// A learner refuses client calls: talk to the voters from the start.
		lctx, lcancel := context.WithTimeout(ctx, 10*time.Second)
		if ms, err := etcdnode.Members(lctx, cli); err == nil {
			if eps := etcdnode.VoterClientURLs(ms); len(eps) > 0 {
				cli.SetEndpoints(eps...)
			}
		}
		lcancel()
	}
	m.sup = brick.NewSupervisor(brick.SupervisorConfig{
		Log:       d.log.With("component", "bricks"),
		Command:   d.brickCommand,
		Exe:       d.exe,
		Addr:      d.cfg.Addr,
		PortBase:  d.cfg.BrickPortBase,
		RunDir:    d.cfg.runDir(),
		LogDir:    d.cfg.logDir(),
		ClientTLS: nodeTLS,
		OnChange:  m.publishSoon,
	})
	d.mu.Lock()
	d.member = m
	d.pending = nil
	d.mu.Unlock()

	m.pub = make(chan struct{}, 1)
	m.healer = newHealer()
	m.done.Add(5)
	go func() { defer m.done.Done(); d.publishLoop(mctx, m) }()
	go func() { defer m.done.Done(); d.healLoop(mctx, m) }()
	go func() { defer m.done.Done(); d.keepSession(mctx, m) }()
	go func() { defer m.done.Done(); d.reconcileLoop(mctx, m) }()
	go func() {
		defer m.done.Done()
		if m.etcd != nil {
			etcdnode.Maintain(mctx, d.log.With("component", "etcd"), m.etcd, cli, func() int { return d.voters(mctx, m) })
		}
	}()
	if m.etcd != nil {
		go func() {
			select {
			case <-m.etcd.Done():
				if mctx.Err() == nil {
					d.log.Warn("embedded etcd member stopped; this node was probably detached from its pool")
				}
			case <-mctx.Done():
			}
		}()
	}
	return nil
}

func (d *Daemon) voters(ctx context.Context, m *member) int {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if p, err := m.store.Pool(cctx); err == nil && p.Voters > 0 {
		return p.Voters
	}
	return d.cfg.Voters
}

// stopMember stops the member's parts. With stopBricks (the node leaves
// the pool), the bricks stop too and the etcd member is closed fully;
// otherwise (caisd exits) the bricks keep serving for the next daemon to
// adopt and etcd gets two seconds to close.
func (d *Daemon) stopMember(stopBricks bool) {
	d.mu.Lock()
	m := d.member
	d.member = nil
	d.mu.Unlock()
	if m == nil {
		return
	}
	if stopBricks {
		m.sup.Ensure(context.Background(), nil)
	} else {
		m.sup.Detach()
	}
	m.cancel()
	m.done.Wait()
	m.sessMu.Lock()
	if m.sess != nil {
		// Revoke the lease: peers see this node go at once.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, _ = m.cli.Revoke(ctx, m.sess.Lease())
		cancel()
		m.sess.Orphan()
	}
	m.sessMu.Unlock()
	m.cli.Close()
	switch {
	case m.etcd == nil:
	case stopBricks:
		// Leaving the pool: its data goes next, so wait for the close.
		m.etcd.Close()
	default:
		// Exiting: other nodes' watch streams would hold etcd's close for
		// its request timeout; the process ends, the data is synced.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := m.etcd.Stop(ctx); err != nil {
			d.log.Debug("exiting with the etcd member still closing", "err", err)
		}
		cancel()
	}
}

// resetPoolState forgets the pool: certificates and etcd data go, the node
// key and UUID stay.
func (d *Daemon) resetPoolState() {
	files := pki.Files{Dir: d.cfg.tlsDir()}
	os.Remove(files.CA())
	os.Remove(files.Cert())
	os.RemoveAll(d.cfg.etcdDir())
	d.mu.Lock()
	d.id = identity{UUID: d.uuid}
	id := d.id
	d.mu.Unlock()
	if err := saveIdentity(&d.cfg, id); err != nil {
		d.log.Error("cannot save identity", "err", err)
	}
}

// keepSession holds the node's lease and its alive key, making a new lease
// whenever the old one is lost (after a partition, say).
func (d *Daemon) keepSession(ctx context.Context, m *member) {
	for ctx.Err() == nil {
		sess, err := concurrency.NewSession(m.cli, concurrency.WithTTL(5), concurrency.WithContext(ctx))
		if err != nil {
			d.log.Warn("cannot get an etcd lease; retrying", "err", err)
			sleepCtx(ctx, time.Second)
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = m.cli.Put(pctx, m.store.AliveKey(d.uuid), time.Now().UTC().Format(time.RFC3339), clientv3.WithLease(sess.Lease()))
		cancel()
		if err != nil {
			d.log.Warn("cannot publish liveness; retrying", "err", err)
			sess.Close()
			sleepCtx(ctx, time.Second)
			continue
		}
		m.sessMu.Lock()
		old := m.sessCh
		m.sess = sess
		m.sessCh = make(chan struct{})
		m.sessMu.Unlock()
		if old != nil {
			close(old)
		}
		// Re-publish the bricks' state on the new lease.
		m.publishSoon()
		select {
		case <-ctx.Done():
			return
		case <-sess.Done():
			d.log.Warn("etcd lease lost; renewing")
		}
	}
}

// session returns the current session, waiting for one if needed.
func (m *member) session(ctx context.Context) (*concurrency.Session, error) {
	for {
		m.sessMu.Lock()
		s := m.sess
		m.sessMu.Unlock()
		if s != nil {
			select {
			case <-s.Done():
			default:
				return s, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no etcd session (is the pool's etcd reachable?): %w", errdefs.ErrUnavailable)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (d *Daemon) brickCommand(s brick.Spec, port int) *exec.Cmd {
	return exec.Command(d.exe, "brick",
		"--volume", s.Volume, "--volume-id", s.VolumeID, "--brick-id", s.BrickID,
		"--brick-path", s.Path, "--listen", net.JoinHostPort(d.cfg.Addr, strconv.Itoa(port)),
		"--tls-dir", d.cfg.tlsDir(), "--cpu-share-dir", d.cfg.runDir(),
		"--local-socket", brick.SocketPath(d.cfg.runDir(), s.BrickID))
}

// specs are the bricks this node should serve for a set of volumes.
func specsFor(node string, vols []volume.Volume) []brick.Spec {
	var out []brick.Spec
	for _, v := range vols {
		if v.Status != volume.Started {
			continue
		}
		for _, b := range v.BricksOn(node) {
			out = append(out, brick.Spec{Volume: v.Name, VolumeID: v.ID, BrickID: b.ID, Path: b.Path})
		}
	}
	return out
}

// reconcileLoop makes the node's bricks follow the volumes in etcd.
func (d *Daemon) reconcileLoop(ctx context.Context, m *member) {
	for ctx.Err() == nil {
		vols, rev, err := m.store.Volumes(ctx)
		if err != nil {
			d.log.Warn("cannot read volumes; retrying", "err", err)
			sleepCtx(ctx, time.Second)
			continue
		}
		m.sup.Ensure(ctx, specsFor(d.uuid, vols))
		wch := m.cli.Watch(clientv3.WithRequireLeader(ctx), m.store.VolumesPrefix(), clientv3.WithPrefix(), clientv3.WithRev(rev+1))
		for resp := range wch {
			if resp.Err() != nil {
				break
			}
			vols, _, err := m.store.Volumes(ctx)
			if err != nil {
				break
			}
			m.sup.Ensure(ctx, specsFor(d.uuid, vols))
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
}

// publishLoop writes the bricks' status to etcd, on the node's lease. It
// is the only writer, and it writes the status as it is when it writes, so
// an older state can never land after a newer one.
func (d *Daemon) publishLoop(ctx context.Context, m *member) {
	type key struct{ vol, id string }
	published := map[key]state.BrickStatus{}
	var lease clientv3.LeaseID
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.pub:
		case <-retry.C:
		}
		m.sessMu.Lock()
		sess := m.sess
		m.sessMu.Unlock()
		if sess == nil {
			continue // keepSession publishes once it has a lease
		}
		if sess.Lease() != lease {
			lease = sess.Lease()
			published = map[key]state.BrickStatus{}
		}
		failed := false
		now := m.sup.Status()
		seen := map[key]bool{}
		for id, sv := range now {
			k := key{sv.Spec.Volume, id}
			seen[k] = true
			st := state.BrickStatus{Node: d.uuid, Port: sv.Status.Port, Socket: sv.Status.Socket, PID: sv.Status.PID, Online: sv.Status.Online, Error: sv.Status.Err}
			if old, ok := published[k]; ok {
				old.Since = st.Since // when it was published: not part of the status
				if old == st {
					continue
				}
			}
			st.Since = time.Now().UTC()
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			err := m.store.PutBrickStatus(pctx, lease, k.vol, k.id, st)
			cancel()
			if err != nil {
				d.log.Warn("cannot publish brick status", "volume", k.vol, "err", err)
				failed = true
				continue
			}
			published[k] = st
		}
		for k := range published {
			if seen[k] {
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			err := m.store.DeleteBrickStatus(pctx, k.vol, k.id)
			cancel()
			if err != nil {
				failed = true
				continue
			}
			delete(published, k)
		}
		if failed {
			retry.Reset(time.Second)
		}
	}
}

// peerClient returns an API client for another member.
func (m *member) peerClient(p state.Peer) *client.Client {
	cfg := m.nodeTLS.Clone()
	cfg.ServerName = p.Addr
	c := client.NewTLS(p.HostPort(), cfg)
	c.Where = p.Hostname
	return c
}

func externalTLS(c Config) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.EtcdCA != "" {
		b, err := os.ReadFile(c.EtcdCA)
		if err != nil {
			return nil, fmt.Errorf("--etcd-cacert: %w", err)
		}
		p := x509.NewCertPool()
		if !p.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("--etcd-cacert %s holds no certificate", c.EtcdCA)
		}
		cfg.RootCAs = p
	}
	if c.EtcdCert != "" {
		pair, err := tls.LoadX509KeyPair(c.EtcdCert, c.EtcdKey)
		if err != nil {
			return nil, fmt.Errorf("--etcd-cert/--etcd-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// lockDataDir makes sure one daemon uses a data dir at a time.
func lockDataDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "caisd.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another caisd is already running with data dir %s", dir)
	}
	return f, nil
}

// listenUnix listens on one of the daemon's root-only sockets
// (unixsock.Listen), saying which flag moves it when another daemon
// serves the path.
func listenUnix(path string) (net.Listener, error) {
	// The data dir lock covers only sockets inside the data dir: another
	// caisd with another data dir, or a dockerd, may serve this path.
	ln, err := unixsock.Listen(path)
	if errors.Is(err, errdefs.ErrExists) {
		return nil, fmt.Errorf("%w (another caisd, or dockerd?); stop it or choose another path (--socket, --docker-socket)", err)
	}
	return ln, err
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
