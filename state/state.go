// Package state is the pool's cluster state in etcd: the key layout, the
// records stored under it and the transactions that change them.
//
// Every key lives under a prefix (default "/cais/") and is laid out so a
// watch on one directory sees one kind of record:
//
//	pool/info                      PoolInfo
//	pool/ca/cert, pool/ca/key      the pool CA (PEM)
//	pool/token                     the join token's secret
//	peers/<uuid>                   Peer
//	alive/<uuid>                   present while the node's lease lives
//	volumes/<name>                 volume.Volume
//	status/bricks/<vol>/<brickID>  BrickStatus, on the owner's lease
//	locks/volumes/<name>           per-volume operation lock
//	status/heal/<vol>/<node>       HealStats, the node's self-heal crawls
//
// A volume operation is one etcd transaction on volumes/<name> guarded by
// the record's mod revision, so it applies on every node or on none; nodes
// learn of it by watching volumes/.
package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/cais-platform/cais/api"
	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/volume"
)

// ErrConflict is returned when a transaction lost a race; retry the operation.
var ErrConflict = fmt.Errorf("the cluster state changed during the operation; try again: %w", errdefs.ErrConflict)

// PoolInfo describes the pool as a whole.
type PoolInfo struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	// Voters is how many etcd members vote (3 by default, at most 5).
	Voters int `json:"voters"`
	// ExternalEtcd is set when the pool keeps its state in an etcd cluster
	// it does not run itself.
	ExternalEtcd bool `json:"externalEtcd"`
}

// Peer is a member of the pool.
type Peer struct {
	UUID string `json:"uuid"`
	// Hostname is the name the node was probed by (or its address).
	Hostname string `json:"hostname"`
	// Addr is the IP address the node listens on.
	Addr string `json:"addr"`
	Port int    `json:"port"`
	// Etcd member details; empty with an external etcd.
	EtcdMemberID  uint64    `json:"etcdMemberID,omitempty"`
	EtcdPeerURL   string    `json:"etcdPeerURL,omitempty"`
	EtcdClientURL string    `json:"etcdClientURL,omitempty"`
	Joined        time.Time `json:"joined"`
}

// HostPort is the node's API address.
func (p Peer) HostPort() string { return fmt.Sprintf("%s:%d", bracket(p.Addr), p.Port) }

func bracket(ip string) string {
	if strings.Contains(ip, ":") {
		return "[" + ip + "]"
	}
	return ip
}

// BrickStatus is a running brick as its node reports it.
type BrickStatus struct {
	Node string `json:"node"`
	Port int    `json:"port"`
	// Socket is the brick's Unix socket for clients on its node, when it
	// serves one (brick.SocketPath).
	Socket string    `json:"socket,omitempty"`
	PID    int       `json:"pid"`
	Online bool      `json:"online"`
	Error  string    `json:"error,omitempty"`
	Since  time.Time `json:"since"`
}

// Store reads and writes the cluster state.
type Store struct {
	c      *clientv3.Client
	prefix string
}

// New returns a Store over an etcd client; prefix ends in "/".
func New(c *clientv3.Client, prefix string) *Store {
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return &Store{c: c, prefix: prefix}
}

// Client returns the underlying etcd client.
func (s *Store) Client() *clientv3.Client { return s.c }

// Key helpers.
func (s *Store) key(parts ...string) string   { return s.prefix + strings.Join(parts, "/") }
func (s *Store) PoolInfoKey() string          { return s.key("pool", "info") }
func (s *Store) CACertKey() string            { return s.key("pool", "ca", "cert") }
func (s *Store) CAKeyKey() string             { return s.key("pool", "ca", "key") }
func (s *Store) TokenKey() string             { return s.key("pool", "token") }
func (s *Store) PeerKey(uuid string) string   { return s.key("peers", uuid) }
func (s *Store) PeersPrefix() string          { return s.key("peers") + "/" }
func (s *Store) AliveKey(uuid string) string  { return s.key("alive", uuid) }
func (s *Store) AlivePrefix() string          { return s.key("alive") + "/" }
func (s *Store) VolumeKey(name string) string { return s.key("volumes", name) }
func (s *Store) VolumesPrefix() string        { return s.key("volumes") + "/" }
func (s *Store) BrickStatusKey(vol, id string) string {
	return s.key("status", "bricks", vol, id)
}
func (s *Store) BrickStatusPrefix(vol string) string  { return s.key("status", "bricks", vol) + "/" }
func (s *Store) VolumeLockKey(name string) string     { return s.key("locks", "volumes", name) }
func (s *Store) HealStatsKey(vol, node string) string { return s.key("status", "heal", vol, node) }
func (s *Store) HealStatsPrefix(vol string) string    { return s.key("status", "heal", vol) + "/" }

// Bootstrap writes a new pool's records if no pool exists under the prefix.
// It reports false when a pool was already there.
func (s *Store) Bootstrap(ctx context.Context, info PoolInfo, caCert, caKey []byte, secret string, self Peer) (bool, error) {
	infoJSON, _ := json.Marshal(info)
	selfJSON, _ := json.Marshal(self)
	resp, err := s.c.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(s.PoolInfoKey()), "=", 0)).
		Then(
			clientv3.OpPut(s.PoolInfoKey(), string(infoJSON)),
			clientv3.OpPut(s.CACertKey(), string(caCert)),
			clientv3.OpPut(s.CAKeyKey(), string(caKey)),
			clientv3.OpPut(s.TokenKey(), secret),
			clientv3.OpPut(s.PeerKey(self.UUID), string(selfJSON)),
		).Commit()
	if err != nil {
		return false, fmt.Errorf("write pool records: %w", err)
	}
	return resp.Succeeded, nil
}

// Pool reads the pool description.
func (s *Store) Pool(ctx context.Context) (PoolInfo, error) {
	var p PoolInfo
	_, err := s.getJSON(ctx, s.PoolInfoKey(), &p)
	return p, err
}

// CA reads the pool CA's PEM certificate and key.
func (s *Store) CA(ctx context.Context) (cert, key []byte, err error) {
	resp, err := s.c.Get(ctx, s.key("pool", "ca")+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, nil, fmt.Errorf("read pool CA: %w", err)
	}
	for _, kv := range resp.Kvs {
		switch string(kv.Key) {
		case s.CACertKey():
			cert = kv.Value
		case s.CAKeyKey():
			key = kv.Value
		}
	}
	if cert == nil || key == nil {
		return nil, nil, fmt.Errorf("pool CA: %w", errdefs.ErrNotFound)
	}
	return cert, key, nil
}

// Secret reads the join token's secret.
func (s *Store) Secret(ctx context.Context) (string, error) {
	resp, err := s.c.Get(ctx, s.TokenKey())
	if err != nil {
		return "", fmt.Errorf("read join token: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return "", fmt.Errorf("join token: %w", errdefs.ErrNotFound)
	}
	return string(resp.Kvs[0].Value), nil
}

// SetSecret replaces the join token's secret.
func (s *Store) SetSecret(ctx context.Context, secret string) error {
	if _, err := s.c.Put(ctx, s.TokenKey(), secret); err != nil {
		return fmt.Errorf("write join token: %w", err)
	}
	return nil
}

// Peers lists the pool's members.
func (s *Store) Peers(ctx context.Context) ([]Peer, error) {
	resp, err := s.c.Get(ctx, s.PeersPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list peers: %w", err)
	}
	out := make([]Peer, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var p Peer
		if err := json.Unmarshal(kv.Value, &p); err != nil {
			return nil, fmt.Errorf("peer record %s: %w", kv.Key, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// PutPeer writes a peer record.
func (s *Store) PutPeer(ctx context.Context, p Peer) error {
	b, _ := json.Marshal(p)
	if _, err := s.c.Put(ctx, s.PeerKey(p.UUID), string(b)); err != nil {
		return fmt.Errorf("write peer %s: %w", p.Hostname, err)
	}
	return nil
}

// DeletePeer removes a peer record, provided no volume has a brick on it.
// The check and the delete are one transaction over the volumes' revisions.
func (s *Store) DeletePeer(ctx context.Context, uuid string) error {
	resp, err := s.c.Get(ctx, s.VolumesPrefix(), clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("list volumes: %w", err)
	}
	for _, kv := range resp.Kvs {
		var v volume.Volume
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return fmt.Errorf("volume record %s: %w", kv.Key, err)
		}
		if len(v.BricksOn(uuid)) > 0 {
			return fmt.Errorf("%w: the peer hosts bricks of volume %s", errdefs.ErrState, v.Name)
		}
	}
	tx, err := s.c.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(s.VolumesPrefix()).WithPrefix(), "<", resp.Header.Revision+1)).
		Then(clientv3.OpDelete(s.PeerKey(uuid)), clientv3.OpDelete(s.AliveKey(uuid))).
		Commit()
	if err != nil {
		return fmt.Errorf("delete peer: %w", err)
	}
	if !tx.Succeeded {
		return ErrConflict
	}
	return nil
}

// Alive returns the set of nodes whose lease is alive.
func (s *Store) Alive(ctx context.Context) (map[string]bool, error) {
	resp, err := s.c.Get(ctx, s.AlivePrefix(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("read node liveness: %w", err)
	}
	out := map[string]bool{}
	for _, kv := range resp.Kvs {
		out[strings.TrimPrefix(string(kv.Key), s.AlivePrefix())] = true
	}
	return out, nil
}

// Volume reads one volume and its mod revision.
func (s *Store) Volume(ctx context.Context, name string) (volume.Volume, int64, error) {
	var v volume.Volume
	rev, err := s.getJSON(ctx, s.VolumeKey(name), &v)
	if errors.Is(err, errdefs.ErrNotFound) {
		return v, 0, fmt.Errorf("volume %s does not exist: %w", name, errdefs.ErrNotFound)
	}
	return v, rev, err
}

// Volumes lists every volume, sorted by name, and the revision read at.
func (s *Store) Volumes(ctx context.Context) ([]volume.Volume, int64, error) {
	resp, err := s.c.Get(ctx, s.VolumesPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("list volumes: %w", err)
	}
	out := make([]volume.Volume, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var v volume.Volume
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return nil, 0, fmt.Errorf("volume record %s: %w", kv.Key, err)
		}
		out = append(out, v)
	}
	return out, resp.Header.Revision, nil
}

// CreateVolume stores a new volume if no volume has its name, and if no
// volume changed since revision rev (the one the caller checked brick
// overlaps against).
func (s *Store) CreateVolume(ctx context.Context, v volume.Volume, rev int64) error {
	b, _ := json.Marshal(v)
	resp, err := s.c.Txn(ctx).
		If(
			clientv3.Compare(clientv3.CreateRevision(s.VolumeKey(v.Name)), "=", 0),
			clientv3.Compare(clientv3.ModRevision(s.VolumesPrefix()).WithPrefix(), "<", rev+1),
		).
		Then(clientv3.OpPut(s.VolumeKey(v.Name), string(b))).
		Commit()
	if err != nil {
		return fmt.Errorf("store volume %s: %w", v.Name, err)
	}
	if !resp.Succeeded {
		if _, _, err := s.Volume(ctx, v.Name); err == nil {
			return fmt.Errorf("volume %s already exists: %w", v.Name, errdefs.ErrExists)
		}
		return ErrConflict
	}
	return nil
}

// UpdateVolume replaces a volume if it is still at revision rev.
func (s *Store) UpdateVolume(ctx context.Context, v volume.Volume, rev int64) error {
	b, _ := json.Marshal(v)
	resp, err := s.c.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(s.VolumeKey(v.Name)), "=", rev)).
		Then(clientv3.OpPut(s.VolumeKey(v.Name), string(b))).
		Commit()
	if err != nil {
		return fmt.Errorf("store volume %s: %w", v.Name, err)
	}
	if !resp.Succeeded {
		return ErrConflict
	}
	return nil
}

// DeleteVolume removes a volume if it is still at revision rev, with its
// brick status records.
func (s *Store) DeleteVolume(ctx context.Context, name string, rev int64) error {
	resp, err := s.c.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(s.VolumeKey(name)), "=", rev)).
		Then(clientv3.OpDelete(s.VolumeKey(name)), clientv3.OpDelete(s.BrickStatusPrefix(name), clientv3.WithPrefix())).
		Commit()
	if err != nil {
		return fmt.Errorf("delete volume %s: %w", name, err)
	}
	if !resp.Succeeded {
		return ErrConflict
	}
	return nil
}

// BrickStatuses reads the status records of a volume's bricks, by brick ID.
func (s *Store) BrickStatuses(ctx context.Context, vol string) (map[string]BrickStatus, error) {
	resp, err := s.c.Get(ctx, s.BrickStatusPrefix(vol), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("read brick status of %s: %w", vol, err)
	}
	out := map[string]BrickStatus{}
	for _, kv := range resp.Kvs {
		var st BrickStatus
		if err := json.Unmarshal(kv.Value, &st); err != nil {
			continue
		}
		out[strings.TrimPrefix(string(kv.Key), s.BrickStatusPrefix(vol))] = st
	}
	return out, nil
}

// PutBrickStatus writes a brick's status on the node's lease.
func (s *Store) PutBrickStatus(ctx context.Context, lease clientv3.LeaseID, vol, id string, st BrickStatus) error {
	b, _ := json.Marshal(st)
	if _, err := s.c.Put(ctx, s.BrickStatusKey(vol, id), string(b), clientv3.WithLease(lease)); err != nil {
		return fmt.Errorf("write brick status: %w", err)
	}
	return nil
}

// DeleteBrickStatus removes a brick's status record.
func (s *Store) DeleteBrickStatus(ctx context.Context, vol, id string) error {
	if _, err := s.c.Delete(ctx, s.BrickStatusKey(vol, id)); err != nil {
		return fmt.Errorf("delete brick status: %w", err)
	}
	return nil
}

// LockVolume serializes operations on one volume across the pool. The
// returned function releases the lock.
func (s *Store) LockVolume(ctx context.Context, sess *concurrency.Session, name string) (func(), error) {
	m := concurrency.NewMutex(sess, s.VolumeLockKey(name))
	if err := m.Lock(ctx); err != nil {
		return nil, fmt.Errorf("another operation on volume %s is in progress: %w", name, err)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = m.Unlock(ctx)
	}, nil
}

func (s *Store) getJSON(ctx context.Context, key string, into any) (int64, error) {
	resp, err := s.c.Get(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return 0, fmt.Errorf("%s: %w", key, errdefs.ErrNotFound)
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, into); err != nil {
		return 0, fmt.Errorf("decode %s: %w", key, err)
	}
	return resp.Kvs[0].ModRevision, nil
}

// HealStats is what a node's self-heal daemon did for a volume.
type HealStats = api.HealStats

// PutHealStats writes a node's heal statistics for a volume on its lease.
func (s *Store) PutHealStats(ctx context.Context, lease clientv3.LeaseID, vol string, st HealStats) error {
	b, _ := json.Marshal(st)
	if _, err := s.c.Put(ctx, s.HealStatsKey(vol, st.Node), string(b), clientv3.WithLease(lease)); err != nil {
		return fmt.Errorf("write heal statistics: %w", err)
	}
	return nil
}

// HealStats reads every node's heal statistics of a volume.
func (s *Store) HealStats(ctx context.Context, vol string) ([]HealStats, error) {
	resp, err := s.c.Get(ctx, s.HealStatsPrefix(vol), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("read heal statistics of %s: %w", vol, err)
	}
	var out []HealStats
	for _, kv := range resp.Kvs {
		var st HealStats
		if json.Unmarshal(kv.Value, &st) == nil {
			out = append(out, st)
		}
	}
	return out, nil
}
