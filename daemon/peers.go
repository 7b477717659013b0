package daemon

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cais-platform/cais/api"
	"github.com/cais-platform/cais/client"
	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/etcdnode"
	"github.com/cais-platform/cais/pki"
	"github.com/cais-platform/cais/pool"
	"github.com/cais-platform/cais/state"
)

// resolve turns a host name or address into IP addresses.
func resolve(ctx context.Context, host string) ([]net.IP, error) {
	if ip := net.ParseIP(host); ip != nil {
		return []net.IP{ip}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("cannot resolve %s: %w", host, err)
	}
	var v4, v6 []net.IP
	for _, a := range addrs {
		if a.IP.To4() != nil {
			v4 = append(v4, a.IP)
		} else {
			v6 = append(v6, a.IP)
		}
	}
	return append(v4, v6...), nil
}

// findPeer returns the member a host name or address names.
func findPeer(ctx context.Context, peers []state.Peer, host string) (state.Peer, bool) {
	for _, p := range peers {
		if strings.EqualFold(p.Hostname, host) || p.Addr == host {
			return p, true
		}
	}
	ips, err := resolve(ctx, host)
	if err != nil {
		return state.Peer{}, false
	}
	return pool.MatchAddr(peers, ips, func(p state.Peer) string { return p.Addr })
}

func (d *Daemon) getPeers(w http.ResponseWriter, r *http.Request, c caller) error {
	all, err := d.poolMembers(r.Context())
	if err != nil {
		return err
	}
	out := []api.Peer{}
	for _, p := range all {
		if !p.Self {
			out = append(out, p)
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (d *Daemon) getPool(w http.ResponseWriter, r *http.Request, c caller) error {
	all, err := d.poolMembers(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, all)
	return nil
}

// poolMembers lists the members with their liveness, others sorted by
// name and this node last, as gluster's pool list prints them.
func (d *Daemon) poolMembers(ctx context.Context) ([]api.Peer, error) {
	m, id := d.current()
	peers, err := m.store.Peers(ctx)
	if err != nil {
		return nil, err
	}
	alive, err := m.store.Alive(ctx)
	if err != nil {
		return nil, err
	}
	roles := map[uint64]string{}
	if m.etcd != nil {
		if ms, err := etcdnode.Members(ctx, m.cli); err == nil {
			for _, em := range ms {
				roles[em.ID] = "voter"
				if em.Learner {
					roles[em.ID] = "learner"
				}
			}
		}
	}
	out := make([]api.Peer, 0, len(peers))
	for _, p := range peers {
		role := roles[p.EtcdMemberID]
		if m.etcd == nil {
			role = "external"
		}
		out = append(out, api.Peer{UUID: p.UUID, Hostname: p.Hostname, Addr: p.Addr, Port: p.Port,
			Connected: alive[p.UUID] || p.UUID == id.UUID, Self: p.UUID == id.UUID, EtcdRole: role})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Self != out[j].Self {
			return out[j].Self
		}
		return out[i].Hostname < out[j].Hostname
	})
	return out, nil
}

func (d *Daemon) isSelf(ctx context.Context, host string, port int) bool {
	if port != d.cfg.Port {
		return false
	}
	if strings.EqualFold(host, d.cfg.Hostname) || host == d.cfg.Addr {
		return true
	}
	ips, err := resolve(ctx, host)
	if err != nil {
		return false
	}
	for _, ip := range ips {
		if ip.String() == d.cfg.Addr {
			return true
		}
	}
	return false
}

// postPeer is `peer probe`: it adds a waiting node to the pool (see package
// pool for the exchange).
func (d *Daemon) postPeer(w http.ResponseWriter, r *http.Request, c caller) error {
	var req api.ProbeRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	host := strings.TrimSpace(req.Host)
	if host == "" || len(host) > 253 || strings.ContainsAny(host, " /\t\n@") {
		return fmt.Errorf("%q is an invalid address: %w", req.Host, errdefs.ErrInvalid)
	}
	port := req.Port
	if port == 0 {
		port = d.cfg.Port
	}
	if port < 0 || port > 65535 {
		return fmt.Errorf("port %d is invalid: %w", port, errdefs.ErrInvalid)
	}
	ctx := r.Context()
	m, id := d.current()
	ips, err := resolve(ctx, host)
	if err != nil || len(ips) == 0 {
		return fmt.Errorf("%s is an invalid address: %v: %w", host, err, errdefs.ErrInvalid)
	}
	if d.isSelf(ctx, host, port) {
		return fmt.Errorf("Probe on localhost not needed: %w", errdefs.ErrInvalid)
	}
	peers, err := m.store.Peers(ctx)
	if err != nil {
		return err
	}
	if p, ok := findPeer(ctx, peers, host); ok && p.Port == port {
		writeJSON(w, http.StatusOK, api.ProbeResponse{Message: fmt.Sprintf("Host %s port %d already in peer list", host, port), UUID: p.UUID})
		return nil
	}
	unlock, err := d.lockVolume(ctx, m, "_pool")
	if err != nil {
		return err
	}
	defer unlock()

	target := net.JoinHostPort(ips[0].String(), strconv.Itoa(port))
	var serverKey crypto.PublicKey
	jc := d.joinClient(m, target, host, func(k crypto.PublicKey) { serverKey = k })
	defer jc.Close()
	var reply api.JoinReply
	octx, cancel := context.WithTimeout(ctx, 15*time.Second)
	err = jc.Do(octx, http.MethodPost, "/v1/internal/join/offer", api.JoinOffer{PoolID: id.PoolID, CA: string(m.caPEM), Hostname: host, Prober: d.cfg.Hostname}, &reply)
	cancel()
	if err != nil {
		var ce *client.Error
		if errors.As(err, &ce) {
			return err
		}
		return fmt.Errorf("Probe returned with Transport endpoint is not connected (%s: %v): %w", target, errors.Unwrap(err), errdefs.ErrUnavailable)
	}
	secret, err := m.store.Secret(ctx)
	if err != nil {
		return err
	}
	csr, err := pki.ParseCSR([]byte(reply.CSR))
	if err != nil {
		return fmt.Errorf("%s sent a bad certificate request: %v: %w", host, err, errdefs.ErrInvalid)
	}
	if !pool.CheckProof(secret, reply.UUID, []byte(reply.CSR), reply.Proof) {
		return fmt.Errorf("%s does not hold this pool's join token, so it cannot join: start caisd there with --join-token TOKEN (TOKEN from 'cais pool token' on a member): %w", host, errdefs.ErrForbidden)
	}
	if serverKey == nil || !pki.SamePublicKey(serverKey, csr.PublicKey) {
		return fmt.Errorf("%s answered with a key that does not match its certificate request: %w", host, errdefs.ErrForbidden)
	}
	if _, err := uuid.Parse(reply.UUID); err != nil {
		return fmt.Errorf("%s sent an invalid node UUID %q: %w", host, reply.UUID, errdefs.ErrInvalid)
	}
	for _, p := range peers {
		if p.UUID == reply.UUID {
			return fmt.Errorf("Peer uuid (host %s) is same as the uuid of member %s: %w", host, p.Hostname, errdefs.ErrExists)
		}
	}
	if net.ParseIP(reply.Addr) == nil || reply.Port <= 0 || reply.Port > 65535 {
		return fmt.Errorf("%s sent an invalid address %q port %d: %w", host, reply.Addr, reply.Port, errdefs.ErrInvalid)
	}
	if reply.ExternalEtcd != d.cfg.External() {
		if d.cfg.External() {
			return fmt.Errorf("this pool keeps its state in an external etcd; start caisd on %s with the same --etcd-endpoints: %w", host, errdefs.ErrState)
		}
		return fmt.Errorf("%s was started with --etcd-endpoints but this pool runs embedded etcd; start it without: %w", host, errdefs.ErrState)
	}
	caCert, caKey, err := m.store.CA(ctx)
	if err != nil {
		return err
	}
	ca, err := pki.ParseCA(caCert, caKey)
	if err != nil {
		return err
	}
	certPEM, err := ca.Issue(csr.PublicKey, nodeCertIdentity(reply.UUID, reply.Addr, host), 10*365*24*time.Hour)
	if err != nil {
		return err
	}
	peer := state.Peer{UUID: reply.UUID, Hostname: host, Addr: reply.Addr, Port: reply.Port, Joined: time.Now().UTC()}
	accept := api.JoinAccept{PoolID: id.PoolID, Cert: string(certPEM), CA: string(m.caPEM), ExternalEtcd: d.cfg.External()}
	if m.etcd != nil {
		peer.EtcdPeerURL = etcdnode.PeerURL(reply.Addr, reply.EtcdPeerPort)
		peer.EtcdClientURL = etcdnode.ClientURL(reply.Addr, reply.EtcdClientPort)
		actx, cancel := context.WithTimeout(ctx, 20*time.Second)
		memberID, initial, err := etcdnode.AddLearner(actx, m.cli, reply.UUID, peer.EtcdPeerURL)
		cancel()
		if err != nil {
			return fmt.Errorf("%v: %w", err, errdefs.ErrUnavailable)
		}
		peer.EtcdMemberID = memberID
		accept.InitialCluster = initial
		if ms, err := etcdnode.Members(ctx, m.cli); err == nil {
			accept.Endpoints = etcdnode.VoterClientURLs(ms)
		}
	} else {
		accept.Endpoints = d.cfg.EtcdEndpoints
	}
	rollback := func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if peer.EtcdMemberID != 0 {
			if err := etcdnode.Remove(rctx, m.cli, peer.EtcdMemberID); err != nil {
				d.log.Error("cannot undo etcd member add", "err", err)
			}
		}
		_ = m.store.DeletePeer(rctx, peer.UUID)
	}
	if err := m.store.PutPeer(ctx, peer); err != nil {
		rollback()
		return err
	}
	actx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := jc.Do(actx, http.MethodPost, "/v1/internal/join/accept", accept, nil); err != nil {
		rollback()
		return fmt.Errorf("%s could not join: %w", host, err)
	}
	if peer.EtcdMemberID != 0 {
		// The first nodes vote: promote now, so the pool is as the
		// administrator expects when the probe returns.
		pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		if err := etcdnode.PromoteIfDue(pctx, m.cli, peer.EtcdMemberID, d.voters(ctx, m)); err != nil {
			d.log.Warn("new member not promoted yet; it will be in the background", "host", host, "err", err)
		}
		cancel()
	}
	d.log.Info("peer joined", "host", host, "uuid", reply.UUID)
	writeJSON(w, http.StatusOK, api.ProbeResponse{UUID: reply.UUID})
	return nil
}

// joinClient calls a node that has no pool certificate yet. The node's
// certificate cannot be verified; its key is reported so the caller can
// pin it to the one in the node's proven certificate request.
func (d *Daemon) joinClient(m *member, target, host string, seen func(crypto.PublicKey)) *client.Client {
	cfg := &tls.Config{
		Certificates:       []tls.Certificate{m.cert},
		InsecureSkipVerify: true, // the peer is authenticated by its join proof and pinned key
		MinVersion:         tls.VersionTLS13,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no server certificate")
			}
			seen(cs.PeerCertificates[0].PublicKey)
			return nil
		},
	}
	c := client.NewTLS(target, cfg)
	c.Where = host
	return c
}

// joinOffer is step 1 on the waiting node.
func (d *Daemon) joinOffer(w http.ResponseWriter, r *http.Request, c caller) error {
	var offer api.JoinOffer
	if err := readJSON(r, &offer); err != nil {
		return err
	}
	if c.peerCert == nil {
		return fmt.Errorf("a join offer must come with the prober's node certificate: %w", errdefs.ErrUnauthenticated)
	}
	d.joinMu.Lock()
	defer d.joinMu.Unlock()
	m, id := d.current()
	if m != nil {
		if offer.PoolID == id.PoolID {
			return fmt.Errorf("%s is already a member of this pool: %w", offer.Hostname, errdefs.ErrExists)
		}
		return fmt.Errorf("%s is either already part of another cluster or having volumes configured (it belongs to pool %s): %w", offer.Hostname, id.PoolID, errdefs.ErrExists)
	}
	if d.cfg.JoinToken == "" {
		return fmt.Errorf("%s was not started with a join token: start it with 'caisd --join-token TOKEN' (TOKEN from 'cais pool token' on a member): %w", offer.Hostname, errdefs.ErrForbidden)
	}
	tok, err := pool.ParseToken(d.cfg.JoinToken)
	if err != nil {
		return err
	}
	caCert, err := pki.ParseCert([]byte(offer.CA))
	if err != nil {
		return fmt.Errorf("join offer: %v: %w", err, errdefs.ErrInvalid)
	}
	if fp := pki.Fingerprint(caCert); fp != tok.CAFingerprint {
		return fmt.Errorf("%s waits to join another pool: its join token names CA %s…, the probing pool's CA is %s…: %w", offer.Hostname, tok.CAFingerprint[:12], fp[:12], errdefs.ErrForbidden)
	}
	if err := pki.VerifyChain(c.peerCert, []byte(offer.CA)); err != nil || pki.RoleOf(c.peerCert) != pki.RoleNode {
		return fmt.Errorf("the prober's certificate is not a node certificate of the pool it claims: %w", errdefs.ErrForbidden)
	}
	csr, err := pki.CSR(d.nodeKey, id.UUID)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.pending = &pendingJoin{offerCA: []byte(offer.CA), poolID: offer.PoolID, hostname: offer.Hostname}
	d.mu.Unlock()
	writeJSON(w, http.StatusOK, api.JoinReply{
		UUID: id.UUID, Addr: d.cfg.Addr, Port: d.cfg.Port, CSR: string(csr),
		Proof:          pool.Proof(tok.Secret, id.UUID, csr),
		EtcdClientPort: d.cfg.EtcdClientPort, EtcdPeerPort: d.cfg.EtcdPeerPort, ExternalEtcd: d.cfg.External(),
	})
	return nil
}

// joinAccept is step 3 on the waiting node: it stores its certificate and
// starts as a member.
func (d *Daemon) joinAccept(w http.ResponseWriter, r *http.Request, c caller) error {
	var acc api.JoinAccept
	if err := readJSON(r, &acc); err != nil {
		return err
	}
	d.joinMu.Lock()
	defer d.joinMu.Unlock()
	m, id := d.current()
	d.mu.RLock()
	pending := d.pending
	d.mu.RUnlock()
	if m != nil {
		return fmt.Errorf("this node is already a member of pool %s: %w", id.PoolID, errdefs.ErrExists)
	}
	if pending == nil || acc.PoolID != pending.poolID || !pki.Equal([]byte(acc.CA), pending.offerCA) {
		return fmt.Errorf("no join offer from this pool is pending: %w", errdefs.ErrState)
	}
	if c.peerCert == nil || pki.VerifyChain(c.peerCert, pending.offerCA) != nil {
		return fmt.Errorf("the caller is not a member of the pool that made the offer: %w", errdefs.ErrForbidden)
	}
	cert, err := pki.ParseCert([]byte(acc.Cert))
	if err != nil {
		return fmt.Errorf("join accept: %v: %w", err, errdefs.ErrInvalid)
	}
	if !pki.SamePublicKey(cert.PublicKey, d.nodeKey.Public()) || verifyIssued(cert, pending.offerCA) != nil {
		return fmt.Errorf("the certificate sent is not for this node's key or not from the pool's CA: %w", errdefs.ErrForbidden)
	}
	if acc.ExternalEtcd != d.cfg.External() {
		return fmt.Errorf("etcd mode mismatch between this node and the pool: %w", errdefs.ErrState)
	}
	keyPEM, err := pki.EncodeKey(d.nodeKey)
	if err != nil {
		return err
	}
	if err := (pki.Files{Dir: d.cfg.tlsDir()}).Write([]byte(acc.CA), []byte(acc.Cert), keyPEM); err != nil {
		return err
	}
	id.PoolID = acc.PoolID
	id.Addr = d.cfg.Addr
	id.InitialCluster = acc.InitialCluster
	id.Endpoints = acc.Endpoints
	id.ExternalEtcd = acc.ExternalEtcd
	d.mu.Lock()
	d.id = id
	d.mu.Unlock()
	if err := saveIdentity(&d.cfg, id); err != nil {
		d.resetPoolState()
		return err
	}
	if err := d.startMember(d.ctx); err != nil {
		d.resetPoolState()
		return fmt.Errorf("start as a pool member: %w", err)
	}
	d.log.Info("joined pool", "pool", acc.PoolID, "as", pending.hostname)
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

func verifyIssued(cert *x509.Certificate, caPEM []byte) error {
	return pki.VerifyChain(cert, caPEM)
}

// deletePeer is `peer detach`.
func (d *Daemon) deletePeer(w http.ResponseWriter, r *http.Request, c caller) error {
	host := r.PathValue("host")
	force := r.URL.Query().Get("force") != ""
	ctx := r.Context()
	m, id := d.current()
	peers, err := m.store.Peers(ctx)
	if err != nil {
		return err
	}
	p, ok := findPeer(ctx, peers, host)
	if !ok {
		return fmt.Errorf("%s is not part of cluster: %w", host, errdefs.ErrNotFound)
	}
	if p.UUID == id.UUID {
		return fmt.Errorf("%s is localhost: %w", host, errdefs.ErrInvalid)
	}
	vols, _, err := m.store.Volumes(ctx)
	if err != nil {
		return err
	}
	for _, v := range vols {
		if len(v.BricksOn(p.UUID)) > 0 {
			return fmt.Errorf("Peer %s hosts one or more bricks (volume %s). If the peer is in not recoverable state then use either replace-brick or remove-brick command with force to remove all bricks from the peer and attempt the peer detach again: %w", host, v.Name, errdefs.ErrState)
		}
	}
	alive, err := m.store.Alive(ctx)
	if err != nil {
		return err
	}
	if !alive[p.UUID] && !force {
		return fmt.Errorf("%s is not connected; use 'peer detach %s force' to remove it anyway: %w", host, host, errdefs.ErrState)
	}
	unlock, err := d.lockVolume(ctx, m, "_pool")
	if err != nil {
		return err
	}
	defer unlock()
	// The record goes first, in a transaction that re-checks for bricks;
	// if etcd then refuses to drop the member, the record comes back.
	if err := m.store.DeletePeer(ctx, p.UUID); err != nil {
		return err
	}
	if p.EtcdMemberID != 0 {
		// Ask the members that stay, not the one that goes.
		var keep []string
		for _, ep := range m.cli.Endpoints() {
			if ep != p.EtcdClientURL {
				keep = append(keep, ep)
			}
		}
		if len(keep) > 0 {
			m.cli.SetEndpoints(keep...)
		}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := etcdnode.Remove(rctx, m.cli, p.EtcdMemberID)
		cancel()
		if err != nil {
			if perr := m.store.PutPeer(context.WithoutCancel(ctx), p); perr != nil {
				d.log.Error("cannot restore peer record after failed detach", "peer", host, "err", perr)
			}
			return fmt.Errorf("%v: %w", err, errdefs.ErrUnavailable)
		}
	}
	if alive[p.UUID] {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		pc := m.peerClient(p)
		if err := pc.Do(lctx, http.MethodPost, "/v1/internal/leave", api.LeaveRequest{PoolID: id.PoolID}, nil); err != nil {
			d.log.Warn("detached peer did not acknowledge", "peer", host, "err", err)
		}
		pc.Close()
		cancel()
	}
	d.log.Info("peer detached", "host", host, "uuid", p.UUID)
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

// leave runs on a detached node: it forgets the pool and starts over as its
// flags say (waiting with a token, or founding a new pool).
func (d *Daemon) leave(w http.ResponseWriter, r *http.Request, c caller) error {
	var req api.LeaveRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	_, id := d.current()
	if req.PoolID != id.PoolID {
		return fmt.Errorf("leave request names another pool: %w", errdefs.ErrInvalid)
	}
	writeJSON(w, http.StatusOK, struct{}{})
	go func() {
		d.joinMu.Lock()
		defer d.joinMu.Unlock()
		d.log.Info("detached from the pool; forgetting it", "pool", id.PoolID)
		d.stopMember(true)
		d.resetPoolState()
		if d.cfg.JoinToken == "" {
			if err := d.bootstrap(d.ctx); err != nil {
				d.log.Error("cannot found a new pool after detach", "err", err)
			}
		}
	}()
	return nil
}

func (d *Daemon) getToken(w http.ResponseWriter, r *http.Request, c caller) error {
	m, _ := d.current()
	secret, err := m.store.Secret(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.Token{Token: pool.Token{CAFingerprint: pki.Fingerprint(m.ca), Secret: secret}.String()})
	return nil
}

func (d *Daemon) rotateToken(w http.ResponseWriter, r *http.Request, c caller) error {
	m, _ := d.current()
	secret, err := pool.NewSecret()
	if err != nil {
		return err
	}
	if err := m.store.SetSecret(r.Context(), secret); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.Token{Token: pool.Token{CAFingerprint: pki.Fingerprint(m.ca), Secret: secret}.String()})
	return nil
}

// postCredentials issues an administrator certificate for `cais --server`.
func (d *Daemon) postCredentials(w http.ResponseWriter, r *http.Request, c caller) error {
	var req api.CredentialsRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if c.role != pki.RoleAdmin {
		return fmt.Errorf("only an administrator can issue credentials: %w", errdefs.ErrForbidden)
	}
	if req.Name == "" {
		req.Name = "admin"
	}
	if len(req.Name) > 64 || strings.ContainsAny(req.Name, "/\n\x00") {
		return fmt.Errorf("credentials name %q is invalid: %w", req.Name, errdefs.ErrInvalid)
	}
	if req.Days <= 0 {
		req.Days = 365
	}
	if req.Days > 3650 {
		return fmt.Errorf("credentials can be valid for at most 3650 days: %w", errdefs.ErrInvalid)
	}
	m, _ := d.current()
	caCert, caKey, err := m.store.CA(r.Context())
	if err != nil {
		return err
	}
	ca, err := pki.ParseCA(caCert, caKey)
	if err != nil {
		return err
	}
	key, err := pki.NewKey()
	if err != nil {
		return err
	}
	certPEM, err := ca.Issue(key.Public(), pki.Identity{CommonName: req.Name, Role: pki.RoleAdmin}, time.Duration(req.Days)*24*time.Hour)
	if err != nil {
		return err
	}
	keyPEM, err := pki.EncodeKey(key)
	if err != nil {
		return err
	}
	d.log.Info("issued administrator credentials", "name", req.Name, "by", c.name)
	writeJSON(w, http.StatusOK, api.Credentials{CA: string(m.caPEM), Cert: string(certPEM), Key: string(keyPEM)})
	return nil
}
