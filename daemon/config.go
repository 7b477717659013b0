package daemon

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/cais-platform/cais/image/distribution"
	"github.com/cais-platform/cais/pool"
)

// Config is caisd's configuration, from its flags.
type Config struct {
	// Addr is the IP address the daemon, its etcd member and its bricks
	// listen on. Default: the host's primary address.
	Addr string
	// Port is the management API port (TLS). Default 24007.
	Port int
	// DataDir holds the node's identity, certificates, etcd data and brick
	// state. Default /var/lib/cais.
	DataDir string
	// Socket is the local API socket, root only. Default DataDir/caisd.sock.
	Socket string
	// Hostname is how the node names itself to peers. Default: Addr.
	Hostname string

	// EtcdClientPort and EtcdPeerPort are the embedded member's ports.
	EtcdClientPort int
	EtcdPeerPort   int
	// EtcdEndpoints, when set, use an external etcd cluster instead of an
	// embedded member; EtcdCA/Cert/Key are its client TLS files, if any.
	EtcdEndpoints []string
	EtcdCA        string
	EtcdCert      string
	EtcdKey       string
	// EtcdPrefix is the key prefix of the pool's state.
	EtcdPrefix string
	// Voters is how many etcd members vote (3 to 5), for a new pool.
	Voters int

	// JoinToken makes a new node wait to be probed by the pool it names
	// instead of founding a pool of its own.
	JoinToken string

	// BrickPortBase is the first port bricks listen on. Default 49152.
	BrickPortBase int

	// LogLevel is debug, info, warn or error.
	LogLevel string

	// DockerSocket is where the Docker Engine API listens (root only);
	// empty disables the container engine. Default /run/cais/docker.sock.
	DockerSocket string
	// Runc is the OCI runtime binary containers run with. Default "runc".
	Runc string
	// Bridge is the Linux bridge of the default "bridge" network
	// (dockerd's --bridge); empty is cais0.
	Bridge string

	// RegistryAddr is where the OCI image registry listens (HOST:PORT);
	// empty, the default, disables it. Plain HTTP on loopback addresses,
	// TLS with the pool CA on any other. Content in DataDir/registry.
	RegistryAddr string
	// RegistryDir holds the registry's content. Default DataDir/registry.
	RegistryDir string
	// RegistryUsers is the registry's users file (see registry/htpasswd,
	// `cais registry user add`); set, pushes need a user's credentials.
	// Default DataDir/registry-users if that file exists.
	RegistryUsers string
	// RegistryAnonymousPull are the repository patterns anyone may pull
	// from when RegistryUsers is in force ("**" for all).
	RegistryAnonymousPull []string

	// InsecureRegistries are registries the engine pulls from and pushes
	// to over plain HTTP or unverified TLS (HOST:PORT, HOST or CIDR);
	// loopback registries always are.
	InsecureRegistries []string
	// RegistryMirrors are pull-through mirrors of Docker Hub (URLs),
	// tried before it.
	RegistryMirrors []string
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Addr:           "",
		Port:           24007,
		DataDir:        "/var/lib/cais",
		EtcdClientPort: 2379,
		EtcdPeerPort:   2380,
		EtcdPrefix:     "/cais/",
		Voters:         3,
		BrickPortBase:  49152,
		LogLevel:       "info",
		DockerSocket:   "/run/cais/docker.sock",
		Runc:           "runc",
	}
}

// Validate fills derived defaults and checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.Addr == "" {
		c.Addr = HostAddr()
	}
	ip := net.ParseIP(c.Addr)
	if ip == nil {
		errs = append(errs, fmt.Errorf("--addr %q is not an IP address", c.Addr))
	} else {
		c.Addr = ip.String()
	}
	if c.Hostname == "" {
		c.Hostname = c.Addr
	}
	for _, p := range []struct {
		name string
		v    int
	}{{"--port", c.Port}, {"--etcd-client-port", c.EtcdClientPort}, {"--etcd-peer-port", c.EtcdPeerPort}, {"--brick-port-base", c.BrickPortBase}} {
		if p.v <= 0 || p.v > 65535 {
			errs = append(errs, fmt.Errorf("%s %d is not a port number", p.name, p.v))
		}
	}
	if c.DataDir == "" || !filepath.IsAbs(c.DataDir) {
		errs = append(errs, fmt.Errorf("--data-dir %q must be an absolute path", c.DataDir))
	}
	if c.Socket == "" {
		c.Socket = filepath.Join(c.DataDir, "caisd.sock")
	}
	if len(c.Socket) > 100 {
		errs = append(errs, fmt.Errorf("socket path %s is longer than a unix socket allows; use a shorter --data-dir or --socket", c.Socket))
	}
	if len(c.DockerSocket) > 100 {
		errs = append(errs, fmt.Errorf("--docker-socket %s is longer than a unix socket allows", c.DockerSocket))
	}
	if c.Voters < 1 || c.Voters > 5 {
		errs = append(errs, fmt.Errorf("--etcd-voters %d: must be between 1 and 5", c.Voters))
	}
	if c.JoinToken != "" {
		if _, err := pool.ParseToken(c.JoinToken); err != nil {
			errs = append(errs, fmt.Errorf("--join-token: %w", err))
		}
	}
	if !strings.HasPrefix(c.EtcdPrefix, "/") {
		errs = append(errs, fmt.Errorf("--etcd-prefix %q must start with /", c.EtcdPrefix))
	}
	if !strings.HasSuffix(c.EtcdPrefix, "/") {
		c.EtcdPrefix += "/"
	}
	if err := (distribution.Config{Insecure: c.InsecureRegistries, Mirrors: c.RegistryMirrors}).Validate(); err != nil {
		errs = append(errs, err)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("--log-level %q: use debug, info, warn or error", c.LogLevel))
	}
	return errors.Join(errs...)
}

// External reports whether the pool uses an external etcd.
func (c *Config) External() bool { return len(c.EtcdEndpoints) > 0 }

// HostAddr guesses the host's primary IPv4 address: the first global
// address of an interface that is up, else 127.0.0.1.
func HostAddr() string {
	ifs, err := net.Interfaces()
	if err != nil {
		return "127.0.0.1"
	}
	for _, i := range ifs {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
				return n.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

func (c *Config) tlsDir() string       { return filepath.Join(c.DataDir, "tls") }
func (c *Config) etcdDir() string      { return filepath.Join(c.DataDir, "etcd") }
func (c *Config) runDir() string       { return filepath.Join(c.DataDir, "run", "bricks") }
func (c *Config) logDir() string       { return filepath.Join(c.DataDir, "log") }
func (c *Config) identityPath() string { return filepath.Join(c.DataDir, "node.json") }

func mkdirs(c *Config) error {
	for _, d := range []string{c.DataDir, c.tlsDir(), c.logDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	return nil
}
