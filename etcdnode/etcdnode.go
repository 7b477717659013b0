// Package etcdnode runs the etcd member embedded in each caisd, connects to
// the pool's etcd (embedded or external) and keeps the membership healthy:
// the first Voters nodes vote, later ones are learners that get promoted
// when a voter leaves.
//
// New members always join as learners and are promoted once in sync, as
// etcd recommends: adding a voter that never starts would cost the pool its
// quorum.
package etcdnode

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Config describes the local embedded member.
type Config struct {
	Name       string // member name: the node's UUID
	DataDir    string
	Addr       string
	ClientPort int
	PeerPort   int
	// TLS material, as files (etcd reads them itself).
	CAFile, CertFile, KeyFile string
	// InitialCluster is "name=peerURL,..."; used only when DataDir is empty.
	InitialCluster string
	// Existing is true when joining a running cluster.
	Existing bool
	// ClusterToken keeps pools apart (the pool ID).
	ClusterToken string
	LogFile      string
	// Waiting, if set, is called every WaitReport while the member waits
	// for its cluster (a quorum of members) with the peer URLs of the
	// other members it knows of, so the caller can say what it waits for.
	Waiting func(waited time.Duration, others []string)
}

// WaitReport is how often Start reports that it still waits.
const WaitReport = 10 * time.Second

// closeWait bounds the close of a member that never became ready: without
// a quorum etcd's Close can block for as long as the quorum stays away.
const closeWait = 5 * time.Second

// ClientURL is the client URL of a member listening on addr.
func ClientURL(addr string, port int) string {
	return "https://" + net.JoinHostPort(addr, strconv.Itoa(port))
}

// PeerURL is the peer URL of a member listening on addr.
func PeerURL(addr string, port int) string {
	return "https://" + net.JoinHostPort(addr, strconv.Itoa(port))
}

// Embedded is a running embedded etcd member.
type Embedded struct {
	e *embed.Etcd
}

// Start starts the member and waits until it has joined its cluster.
func Start(ctx context.Context, c Config) (*Embedded, error) {
	cfg := embed.NewConfig()
	cfg.Name = c.Name
	cfg.Dir = c.DataDir
	cu, err := url.Parse(ClientURL(c.Addr, c.ClientPort))
	if err != nil {
		return nil, fmt.Errorf("etcd client URL: %w", err)
	}
	pu, err := url.Parse(PeerURL(c.Addr, c.PeerPort))
	if err != nil {
		return nil, fmt.Errorf("etcd peer URL: %w", err)
	}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = c.InitialCluster
	if cfg.InitialCluster == "" {
		cfg.InitialCluster = c.Name + "=" + pu.String()
	}
	cfg.ClusterState = embed.ClusterStateFlagNew
	if c.Existing {
		cfg.ClusterState = embed.ClusterStateFlagExisting
	}
	cfg.InitialClusterToken = c.ClusterToken
	tlsInfo := transport.TLSInfo{CertFile: c.CertFile, KeyFile: c.KeyFile, TrustedCAFile: c.CAFile, ClientCertAuth: true}
	cfg.ClientTLSInfo, cfg.PeerTLSInfo = tlsInfo, tlsInfo
	// Peers are checked against the pool CA, not against their source
	// address: several nodes on one host reach each other from whichever
	// local address the kernel picks.
	cfg.PeerTLSInfo.SkipClientSANVerify = true
	cfg.Logger = "zap"
	cfg.LogLevel = "warn"
	if c.LogFile != "" {
		cfg.LogOutputs = []string{c.LogFile}
	}
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = "1h"
	cfg.Metrics = "basic"
	// Nodes past the voters stay learners; etcd allows one by default.
	cfg.MaxLearners = 1000
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd in %s: %w", c.DataDir, err)
	}
	m := &Embedded{e: e}
	began := time.Now()
	tick := time.NewTicker(WaitReport)
	defer tick.Stop()
	for {
		select {
		case <-e.Server.ReadyNotify():
			return m, nil
		case err := <-e.Err():
			m.closeBounded()
			return nil, fmt.Errorf("embedded etcd failed: %w", err)
		case <-e.Server.StopNotify():
			m.closeBounded()
			return nil, fmt.Errorf("embedded etcd stopped while starting (was this node removed from the pool?)")
		case <-ctx.Done():
			m.closeBounded()
			return nil, fmt.Errorf("embedded etcd did not join its cluster (a quorum of the pool's members) in %s: %w", time.Since(began).Round(time.Second), ctx.Err())
		case <-tick.C:
			if c.Waiting != nil {
				c.Waiting(time.Since(began), m.others())
			}
		}
	}
}

// others returns the peer URLs of the cluster's other members as this
// member knows them (from its own log, so without a quorum too).
func (m *Embedded) others() []string {
	var out []string
	self := m.e.Server.MemberID()
	for _, mb := range m.e.Server.Cluster().Members() {
		if mb.ID != self {
			out = append(out, strings.Join(mb.PeerURLs, ","))
		}
	}
	sort.Strings(out)
	return out
}

// closeBounded closes a member that never became ready, waiting at most
// closeWait.
func (m *Embedded) closeBounded() {
	ctx, cancel := context.WithTimeout(context.Background(), closeWait)
	defer cancel()
	_ = m.closeWithin(ctx)
}

// closeWithin closes the member, waiting for the close until ctx ends.
func (m *Embedded) closeWithin(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		m.e.Close()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("etcd member still closing: %w", ctx.Err())
	}
}

// Close stops the member and waits until it has stopped. With other
// members' clients holding watch streams on it, that takes etcd's request
// timeout (over 5 seconds): etcd waits for those streams to end.
func (m *Embedded) Close() { m.e.Close() }

// Stop is Close for a process about to exit: it hands leadership to
// another member first, then waits for the close until ctx ends and
// returns then even if etcd is still waiting on other members' streams.
// Nothing is lost by exiting then: etcd syncs its log before it
// acknowledges a write.
func (m *Embedded) Stop(ctx context.Context) error {
	// Without a transfer (a single member, or none in reach) the others
	// elect a leader after their election timeout.
	_ = m.e.Server.TryTransferLeadershipOnShutdown()
	return m.closeWithin(ctx)
}

// Done is closed when the member stops (for instance, after being removed).
func (m *Embedded) Done() <-chan struct{} { return m.e.Server.StopNotify() }

// IsLeader reports whether this member leads the cluster.
func (m *Embedded) IsLeader() bool { return m.e.Server.Leader() == m.e.Server.MemberID() }

// ID is this member's ID.
func (m *Embedded) ID() uint64 { return uint64(m.e.Server.MemberID()) }

// Dial connects an etcd client. tlsCfg may be nil for a plain-text external
// cluster.
func Dial(ctx context.Context, endpoints []string, tlsCfg *tls.Config) (*clientv3.Client, error) {
	c, err := clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		DialTimeout:          5 * time.Second,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		TLS:                  tlsCfg,
		Logger:               zap.NewNop(),
		Context:              ctx,
	})
	if err != nil {
		return nil, fmt.Errorf("connect to etcd at %s: %w", strings.Join(endpoints, ","), err)
	}
	return c, nil
}

// Member is the part of an etcd member the policy looks at.
type Member struct {
	ID         uint64
	Name       string
	PeerURLs   []string
	ClientURLs []string
	Learner    bool
}

// Members lists the cluster's members.
func Members(ctx context.Context, c *clientv3.Client) ([]Member, error) {
	resp, err := c.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("list etcd members: %w", err)
	}
	return convert(resp.Members), nil
}

func convert(ms []*etcdserverpb.Member) []Member {
	out := make([]Member, 0, len(ms))
	for _, m := range ms {
		out = append(out, Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, Learner: m.IsLearner})
	}
	return out
}

// AddLearner adds a non-voting member and returns the cluster's
// initial-cluster string for it, naming it name.
//
// etcd refuses membership changes until the leader has been in touch with
// every voter for a few seconds (its strict reconfiguration check); right
// after a promotion that takes a moment, so AddLearner waits it out.
func AddLearner(ctx context.Context, c *clientv3.Client, name, peerURL string) (id uint64, initialCluster string, err error) {
	var resp *clientv3.MemberAddResponse
	for {
		resp, err = c.MemberAddAsLearner(ctx, []string{peerURL})
		if err == nil {
			break
		}
		if !errors.Is(err, rpctypes.ErrUnhealthy) {
			return 0, "", fmt.Errorf("add etcd learner %s: %w", peerURL, err)
		}
		select {
		case <-ctx.Done():
			return 0, "", fmt.Errorf("add etcd learner %s: the etcd cluster stayed unhealthy: %w", peerURL, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
	ms := convert(resp.Members)
	return resp.Member.ID, InitialCluster(ms, resp.Member.ID, name), nil
}

// PromoteIfDue promotes learner id if the cluster has fewer than voters
// voting members, retrying until the learner has caught up or ctx ends.
func PromoteIfDue(ctx context.Context, c *clientv3.Client, id uint64, voters int) error {
	for {
		ms, err := Members(ctx, c)
		if err != nil {
			return err
		}
		n := 0
		for _, m := range ms {
			if !m.Learner {
				n++
			}
		}
		if n >= voters {
			return nil
		}
		if _, err := c.MemberPromote(ctx, id); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("promote etcd learner %x: %w", id, ctx.Err())
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// Remove removes a member, waiting out etcd's strict reconfiguration
// check as AddLearner does. A member that is already gone is not an error.
func Remove(ctx context.Context, c *clientv3.Client, id uint64) error {
	for {
		_, err := c.MemberRemove(ctx, id)
		if err == nil || errors.Is(err, rpctypes.ErrMemberNotFound) {
			return nil
		}
		// The call may have gone to the member being removed, which stops
		// as soon as it applies its removal and answers "server stopped":
		// ask the others whether it is gone.
		if gone, lerr := memberGone(ctx, c, id); lerr == nil && gone {
			return nil
		}
		if !errors.Is(err, rpctypes.ErrUnhealthy) && !errors.Is(err, rpctypes.ErrStopped) {
			return fmt.Errorf("remove etcd member %x: %w", id, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("remove etcd member %x: the etcd cluster stayed unhealthy: %w", id, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func memberGone(ctx context.Context, c *clientv3.Client, id uint64) (bool, error) {
	var err error
	for i := 0; i < 10; i++ {
		var ms []Member
		if ms, err = Members(ctx, c); err == nil {
			for _, m := range ms {
				if m.ID == id {
					return false, nil
				}
			}
			return true, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return false, err
}

// InitialCluster renders "name=url,..." for a member joining ms; newID is
// the joining member, which has no name yet.
func InitialCluster(ms []Member, newID uint64, newName string) string {
	var parts []string
	for _, m := range ms {
		name := m.Name
		if m.ID == newID {
			name = newName
		}
		if name == "" {
			continue // another member added but not started: etcd ignores it
		}
		for _, u := range m.PeerURLs {
			parts = append(parts, name+"="+u)
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// VoterClientURLs are the client URLs to use: learners refuse most requests.
func VoterClientURLs(ms []Member) []string {
	var out []string
	for _, m := range ms {
		if !m.Learner && m.Name != "" {
			out = append(out, m.ClientURLs...)
		}
	}
	sort.Strings(out)
	return out
}

// PlanPromotion decides which learner, if any, to promote so the cluster
// has min(voters, members) voting members. Started learners (with a name)
// are taken in ID order, so every node would pick the same one.
func PlanPromotion(ms []Member, voters int) (uint64, bool) {
	n := 0
	var learners []Member
	for _, m := range ms {
		if m.Learner {
			if m.Name != "" {
				learners = append(learners, m)
			}
			continue
		}
		n++
	}
	if n >= voters || len(learners) == 0 {
		return 0, false
	}
	sort.Slice(learners, func(i, j int) bool { return learners[i].ID < learners[j].ID })
	return learners[0].ID, true
}

// Maintain runs until ctx ends: while this member leads, it promotes
// learners up to the voter count; on every node it points the client at
// the voting members.
func Maintain(ctx context.Context, log *slog.Logger, m *Embedded, c *clientv3.Client, voters func() int) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		ms, err := Members(cctx, c)
		if err == nil {
			if eps := VoterClientURLs(ms); len(eps) > 0 && !sameSet(eps, c.Endpoints()) {
				c.SetEndpoints(eps...)
			}
			if m != nil && m.IsLeader() {
				if id, ok := PlanPromotion(ms, voters()); ok {
					if _, err := c.MemberPromote(cctx, id); err != nil {
						log.Debug("learner not ready for promotion", "member", fmt.Sprintf("%x", id), "err", err)
					} else {
						log.Info("promoted etcd learner to voter", "member", fmt.Sprintf("%x", id))
					}
				}
			}
		}
		cancel()
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = append([]string(nil), a...), append([]string(nil), b...)
	sort.Strings(a)
	sort.Strings(b)
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// DataDir is where a node keeps its member's data.
func DataDir(nodeDir string) string { return filepath.Join(nodeDir, "etcd") }
