package engine

import (
	"time"

	"github.com/cais-platform/cais/engine/volumes"
)

// Config is what a container runs: the image's config overlaid with what
// the user asked for. Field names and JSON names are the Docker Engine
// API's (the "Config" of a create request and of inspect).
type Config struct {
	Hostname     string              `json:"Hostname"`
	Domainname   string              `json:"Domainname"`
	User         string              `json:"User"`
	AttachStdin  bool                `json:"AttachStdin"`
	AttachStdout bool                `json:"AttachStdout"`
	AttachStderr bool                `json:"AttachStderr"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"`
	Tty          bool                `json:"Tty"`
	OpenStdin    bool                `json:"OpenStdin"`
	StdinOnce    bool                `json:"StdinOnce"`
	Env          []string            `json:"Env"`
	Cmd          []string            `json:"Cmd"`
	Image        string              `json:"Image"`
	Volumes      map[string]struct{} `json:"Volumes"`
	WorkingDir   string              `json:"WorkingDir"`
	Entrypoint   []string            `json:"Entrypoint"`
	Labels       map[string]string   `json:"Labels"`
	StopSignal   string              `json:"StopSignal,omitempty"`
	StopTimeout  *int                `json:"StopTimeout,omitempty"`
}

// HostConfig is how the host runs the container: resources, mounts,
// network and restart policy (Docker's "HostConfig").
type HostConfig struct {
	Binds          []string                 `json:"Binds"`
	NetworkMode    string                   `json:"NetworkMode"`
	PortBindings   map[string][]PortBinding `json:"PortBindings"`
	RestartPolicy  RestartPolicy            `json:"RestartPolicy"`
	AutoRemove     bool                     `json:"AutoRemove"`
	Privileged     bool                     `json:"Privileged"`
	ReadonlyRootfs bool                     `json:"ReadonlyRootfs"`
	CapAdd         []string                 `json:"CapAdd"`
	CapDrop        []string                 `json:"CapDrop"`
	Init           *bool                    `json:"Init,omitempty"`
	ShmSize        int64                    `json:"ShmSize"`
	Tmpfs          map[string]string        `json:"Tmpfs,omitempty"`
	ExtraHosts     []string                 `json:"ExtraHosts"`
	// SecurityOpt are --security-opt values (ParseSecurityOpts).
	SecurityOpt []string `json:"SecurityOpt"`
	// Devices are host devices given to the container (--device).
	Devices []DeviceMapping `json:"Devices"`
	// ConsoleSize is the terminal\'s initial height and width.
	ConsoleSize [2]uint `json:"ConsoleSize"`
	// Mounts are --mount entries (package engine/volumes).
	Mounts []volumes.Mount `json:"Mounts,omitempty"`
	// PublishAllPorts publishes every exposed port on a free host port
	// (docker run -P).
	PublishAllPorts bool `json:"PublishAllPorts"`

	Memory            int64    `json:"Memory"`
	MemorySwap        int64    `json:"MemorySwap"`
	MemoryReservation int64    `json:"MemoryReservation"`
	NanoCPUs          int64    `json:"NanoCpus"`
	CPUShares         int64    `json:"CpuShares"`
	CPUPeriod         int64    `json:"CpuPeriod"`
	CPUQuota          int64    `json:"CpuQuota"`
	CpusetCpus        string   `json:"CpusetCpus"`
	PidsLimit         *int64   `json:"PidsLimit"`
	OomKillDisable    *bool    `json:"OomKillDisable"`
	Ulimits           []Ulimit `json:"Ulimits"`
}

// PortBinding is a host address and port a container port is published on.
type PortBinding struct {
	HostIP   string `json:"HostIp"`
	HostPort string `json:"HostPort"`
}

// RestartPolicy says whether to start a container again when it exits:
// "no" (or ""), "always", "unless-stopped", "on-failure" (with at most
// MaximumRetryCount restarts, 0 meaning no limit).
type RestartPolicy struct {
	Name              string `json:"Name"`
	MaximumRetryCount int    `json:"MaximumRetryCount"`
}

// Ulimit is a resource limit (docker run --ulimit nofile=1024:2048).
type Ulimit struct {
	Name string `json:"Name"`
	Soft int64  `json:"Soft"`
	Hard int64  `json:"Hard"`
}

// Status is a container's lifecycle state, as Docker names it.
type Status string

// Statuses.
const (
	Created    Status = "created"
	Running    Status = "running"
	Restarting Status = "restarting"
	Exited     Status = "exited"
	Removing   Status = "removing"
	Dead       Status = "dead"
)

// State is a container's runtime state (Docker's "State").
type State struct {
	Status     Status    `json:"Status"`
	Pid        int       `json:"Pid"`
	ExitCode   int       `json:"ExitCode"`
	Error      string    `json:"Error"`
	OOMKilled  bool      `json:"OOMKilled"`
	StartedAt  time.Time `json:"StartedAt"`
	FinishedAt time.Time `json:"FinishedAt"`
	// StoppedByUser is set by stop and kill: unless-stopped and
	// on-failure do not restart such a container.
	StoppedByUser bool `json:"StoppedByUser,omitempty"`
}

// Running reports whether the container's process is up.
func (s State) Running() bool { return s.Status == Running || s.Status == Restarting }
