// Package api declares the JSON bodies of caisd's REST API, shared by the
// daemon and its clients (the cais CLI and other daemons).
//
// Paths, all under /v1:
//
//	GET    /version
//	GET    /peers                         peer status (other members)
//	POST   /peers                         peer probe          ProbeRequest
//	DELETE /peers/{host}?force=1          peer detach
//	GET    /pool                          pool list (members, this node first)
//	GET    /pool/token                    the join token
//	POST   /pool/token/rotate             a new join token
//	POST   /pool/credentials              an administrator certificate
//	GET    /volumes                       volume info (all)
//	POST   /volumes                       volume create       volume.CreateRequest
//	GET    /volumes/{name}                volume info
//	DELETE /volumes/{name}                volume delete
//	POST   /volumes/{name}/start?force=1  volume start
//	POST   /volumes/{name}/stop?force=1   volume stop
//	GET    /volumes/{name}/status         volume status
//	GET    /volumes/{name}/options[?key=] volume get
//	PUT    /volumes/{name}/options        volume set          SetOptionRequest
//	DELETE /volumes/{name}/options[?key=] volume reset
//
// Node-to-node calls live under /v1/internal and need a node certificate.
// Errors come back as ErrorBody with a matching HTTP status.
package api

import (
	"time"

	"github.com/cais-platform/cais/volume"
)

// ErrorBody is every error response.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what went wrong; Code is an errdefs code.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Version answers GET /version.
type Version struct {
	Version    string `json:"version"`
	GoVersion  string `json:"goVersion"`
	APIVersion string `json:"apiVersion"`
	NodeUUID   string `json:"nodeUUID"`
	// State is "member" or "waiting" (started with a join token, not yet probed).
	State  string `json:"state"`
	PoolID string `json:"poolID,omitempty"`
}

// Node states.
const (
	StateMember  = "member"
	StateWaiting = "waiting"
)

// ProbeRequest asks a member to add a node.
type ProbeRequest struct {
	Host string `json:"host"`
	Port int    `json:"port,omitempty"`
}

// ProbeResponse reports a probe.
type ProbeResponse struct {
	// Message is printed after "peer probe: success".
	Message string `json:"message,omitempty"`
	UUID    string `json:"uuid"`
}

// Peer is one entry of peer status and pool list.
type Peer struct {
	UUID      string `json:"uuid"`
	Hostname  string `json:"hostname"`
	Addr      string `json:"addr"`
	Port      int    `json:"port"`
	Connected bool   `json:"connected"`
	// Self marks the node that answered (pool list prints it as localhost).
	Self bool `json:"self,omitempty"`
	// EtcdRole is voter, learner or external.
	EtcdRole string `json:"etcdRole,omitempty"`
}

// Token answers GET /pool/token.
type Token struct {
	Token string `json:"token"`
}

// Credentials is an administrator's TLS material.
type Credentials struct {
	CA   string `json:"ca"`
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

// CredentialsRequest names the administrator.
type CredentialsRequest struct {
	Name string `json:"name"`
	// Days of validity; 0 means 365.
	Days int `json:"days,omitempty"`
}

// CreateResponse reports a created volume.
type CreateResponse struct {
	Volume   volume.Volume `json:"volume"`
	Warnings []string      `json:"warnings,omitempty"`
}

// OpResponse reports start, stop, delete, set and reset.
type OpResponse struct {
	// Warnings name nodes or bricks that did not follow; the operation
	// itself was applied.
	Warnings []string `json:"warnings,omitempty"`
}

// BrickStatus is one row of volume status.
type BrickStatus struct {
	Brick volume.Brick `json:"brick"`
	Port  int          `json:"port"`
	// Socket is the brick's Unix socket for clients on the brick's own
	// machine (no TLS; root only), when it serves one.
	Socket string `json:"socket,omitempty"`
	PID    int    `json:"pid"`
	Online bool   `json:"online"`
	Error  string `json:"error,omitempty"`
}

// VolumeStatus answers GET /volumes/{name}/status.
type VolumeStatus struct {
	Name   string        `json:"name"`
	Status volume.Status `json:"status"`
	Bricks []BrickStatus `json:"bricks"`
}

// OptionValue is one row of volume get.
type OptionValue struct {
	Key          string `json:"key"`
	Value        string `json:"value"`
	Reconfigured bool   `json:"reconfigured"`
}

// SetOptionRequest is volume set.
type SetOptionRequest struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// --- node to node ---

// JoinOffer is sent by a member to a waiting node (step 1 of a join).
type JoinOffer struct {
	PoolID   string `json:"poolID"`
	CA       string `json:"ca"`
	Hostname string `json:"hostname"`
	Prober   string `json:"prober"`
}

// JoinReply is the waiting node's answer: its request and the proof that it
// holds the token.
type JoinReply struct {
	UUID  string `json:"uuid"`
	Addr  string `json:"addr"`
	Port  int    `json:"port"`
	CSR   string `json:"csr"`
	Proof string `json:"proof"`
	// Etcd ports the node will listen on when embedded.
	EtcdClientPort int  `json:"etcdClientPort"`
	EtcdPeerPort   int  `json:"etcdPeerPort"`
	ExternalEtcd   bool `json:"externalEtcd"`
}

// JoinAccept completes a join.
type JoinAccept struct {
	PoolID string `json:"poolID"`
	Cert   string `json:"cert"`
	CA     string `json:"ca"`
	// InitialCluster and Endpoints describe the embedded etcd cluster;
	// ExternalEtcd says the pool uses an external one instead.
	InitialCluster string   `json:"initialCluster,omitempty"`
	Endpoints      []string `json:"endpoints,omitempty"`
	ExternalEtcd   bool     `json:"externalEtcd"`
}

// StageRequest asks a node to check (and for create, prepare) its bricks.
type StageRequest struct {
	Op       string         `json:"op"` // "create", "start", "release"
	VolumeID string         `json:"volumeID"`
	Bricks   []volume.Brick `json:"bricks"`
	Force    bool           `json:"force"`
	// Created maps, for "release", brick IDs to the topmost directory the
	// create stage made for them.
	Created map[string]string `json:"created,omitempty"`
}

// StageResponse maps brick IDs to the topmost directory the stage created.
type StageResponse struct {
	Created map[string]string `json:"created,omitempty"`
}

// LeaveRequest tells a detached node to forget its pool.
type LeaveRequest struct {
	PoolID string `json:"poolID"`
}

// Health is GET /internal/health.
type Health struct {
	UUID string    `json:"uuid"`
	Time time.Time `json:"time"`
}

// HealRequest launches a heal: POST /volumes/{name}/heal. Full crawls the
// whole volume instead of the bricks' indexes.
type HealRequest struct {
	Full bool `json:"full"`
}

// HealInfo answers GET /volumes/{name}/heal/info: per brick, the entries
// its index names.
type HealInfo struct {
	Volume string      `json:"volume"`
	Bricks []HealBrick `json:"bricks"`
}

// HealBrick is one brick of heal info.
type HealBrick struct {
	Brick     string      `json:"brick"`
	Connected bool        `json:"connected"`
	Error     string      `json:"error,omitempty"`
	Entries   []HealEntry `json:"entries"`
}

// HealEntry is a file that needs healing: its path when known, else its
// GFID.
type HealEntry struct {
	Path       string `json:"path"`
	GFID       string `json:"gfid"`
	SplitBrain bool   `json:"splitBrain,omitempty"`
}

// HealStats is what a node's self-heal daemon did for a volume.
type HealStats struct {
	Node     string `json:"node"`
	Hostname string `json:"hostname,omitempty"`
	// Crawls counts index crawls; the fields below are of the last crawl
	// that found something to heal, or of the last full crawl.
	Crawls     int64     `json:"crawls"`
	Type       string    `json:"type"` // INDEX or FULL
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	Healed     int64     `json:"healed"`
	SplitBrain int64     `json:"splitBrain"`
	Failed     int64     `json:"failed"`
	// Total counts every entry healed since the daemon started.
	Total int64 `json:"total"`
}

// SplitBrainRequest resolves split-brain: POST
// /volumes/{name}/heal/split-brain. Policy is bigger-file, latest-mtime
// (File required) or source-brick (Brick HOST:PATH required; without File,
// every split-brain file of that brick's set).
type SplitBrainRequest struct {
	Policy string `json:"policy"`
	File   string `json:"file,omitempty"`
	Brick  string `json:"brick,omitempty"`
}

// SplitBrainResponse lists the files healed.
type SplitBrainResponse struct {
	Healed []string `json:"healed"`
}
