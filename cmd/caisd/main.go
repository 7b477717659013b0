// Command caisd is the cais node daemon. See the README for its flags.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/cais-platform/cais/brick"
	"github.com/cais-platform/cais/daemon"
	"github.com/cais-platform/cais/engine/monitor"
	"github.com/cais-platform/cais/image/bootstrap"
	"github.com/cais-platform/cais/pki"
)

func main() {
	if err := root().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "caisd:", err)
		os.Exit(1)
	}
}

func root() *cobra.Command {
	cfg := daemon.DefaultConfig()
	cmd := &cobra.Command{
		Use:           "caisd",
		Short:         "cais node daemon: pool membership, cluster state, bricks and the REST API",
		Version:       daemon.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := newLogger(cfg.LogLevel)
			d, err := daemon.New(cfg, log)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return d.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Addr, "addr", cfg.Addr, "IP address to listen on (default: the host's primary address)")
	f.IntVar(&cfg.Port, "port", cfg.Port, "management API port (TLS)")
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the node's identity, certificates, etcd data and brick state")
	f.StringVar(&cfg.Socket, "socket", "", "local API socket (default DATA-DIR/caisd.sock)")
	f.StringVar(&cfg.Hostname, "hostname", "", "name this node gives itself in the pool (default: --addr)")
	f.IntVar(&cfg.EtcdClientPort, "etcd-client-port", cfg.EtcdClientPort, "embedded etcd client port")
	f.IntVar(&cfg.EtcdPeerPort, "etcd-peer-port", cfg.EtcdPeerPort, "embedded etcd peer port")
	f.StringSliceVar(&cfg.EtcdEndpoints, "etcd-endpoints", nil, "use this external etcd cluster (comma-separated URLs) instead of an embedded member")
	f.StringVar(&cfg.EtcdCA, "etcd-cacert", "", "CA certificate of the external etcd")
	f.StringVar(&cfg.EtcdCert, "etcd-cert", "", "client certificate for the external etcd")
	f.StringVar(&cfg.EtcdKey, "etcd-key", "", "client key for the external etcd")
	f.StringVar(&cfg.EtcdPrefix, "etcd-prefix", cfg.EtcdPrefix, "key prefix of the pool's state in etcd")
	f.IntVar(&cfg.Voters, "etcd-voters", cfg.Voters, "voting etcd members of a new pool (1 to 5); later nodes join as learners")
	f.StringVar(&cfg.JoinToken, "join-token", "", "wait to be probed by the pool this token names (from 'cais pool token')")
	f.IntVar(&cfg.BrickPortBase, "brick-port-base", cfg.BrickPortBase, "first port for brick servers")
	f.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
	f.StringVar(&cfg.DockerSocket, "docker-socket", cfg.DockerSocket, "Docker Engine API socket for the docker CLI (empty: no container engine)")
	f.StringVar(&cfg.Runc, "runc", cfg.Runc, "OCI runtime binary that runs containers")
	f.StringVar(&cfg.Bridge, "bridge", "cais0", "Linux bridge of the default \"bridge\" network, made when a container first joins it")
	f.StringVar(&cfg.RegistryDir, "registry-dir", "", "the registry's content (default DATA-DIR/registry)")
	f.StringVar(&cfg.RegistryUsers, "registry-users", "", "registry users file, from 'cais registry user add' (default DATA-DIR/registry-users if it exists); with it, pushes need credentials")
	f.StringSliceVar(&cfg.RegistryAnonymousPull, "registry-anonymous-pull", nil, "repository patterns anyone may pull from when users are configured (e.g. 'library/*,public/**'; '**' for all)")
	f.StringSliceVar(&cfg.InsecureRegistries, "insecure-registry", nil, "registry (HOST:PORT, HOST or CIDR) the engine may reach over plain HTTP or unverified TLS; loopback ones always are (repeatable)")
	f.StringSliceVar(&cfg.RegistryMirrors, "registry-mirror", nil, "pull-through mirror of Docker Hub (URL) the engine tries first (repeatable)")
	f.StringVar(&cfg.RegistryAddr, "registry-addr", cfg.RegistryAddr, "HOST:PORT of the OCI image registry, e.g. 127.0.0.1:5000 (empty: no registry; plain HTTP only on loopback, TLS with the pool CA elsewhere)")
	cmd.AddCommand(brickCmd(), monitorCmd(), busyboxCmd())
	return cmd
}

// brickCmd runs one brick server; caisd starts it, users do not.
func brickCmd() *cobra.Command {
	var cfg brick.ServerConfig
	var tlsDir, shareDir string
	cmd := &cobra.Command{
		Use:    "brick",
		Short:  "serve one brick (started by caisd)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := newLogger("info").With("volume", cfg.Volume, "brick", cfg.Path)
			ca, cert, key, err := (pki.Files{Dir: tlsDir}).Load()
			if err != nil {
				return fmt.Errorf("load node certificates: %w", err)
			}
			if cfg.TLS, err = brick.ServerTLS(ca, cert, key); err != nil {
				return err
			}
			// The data path allocates a buffer per request: a higher
			// collection target trades a few MB for less GC work.
			debug.SetGCPercent(brick.GCPercent)
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			go brick.ShareCPUs(ctx, log, shareDir, cfg.BrickID, 10*time.Second)
			return brick.Serve(ctx, log, cfg, nil)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Volume, "volume", "", "volume name")
	f.StringVar(&cfg.VolumeID, "volume-id", "", "volume ID")
	f.StringVar(&cfg.BrickID, "brick-id", "", "brick ID")
	f.StringVar(&cfg.Path, "brick-path", "", "brick directory")
	f.StringVar(&cfg.Listen, "listen", "", "IP:PORT to serve on")
	f.StringVar(&cfg.LocalSocket, "local-socket", "", "Unix socket to serve this machine's root clients on, without TLS")
	f.StringVar(&tlsDir, "tls-dir", "", "directory with ca.pem, cert.pem and key.pem")
	f.StringVar(&shareDir, "cpu-share-dir", "", "the supervisor's run directory: the node's CPUs are shared among the bricks it lists (brick.ShareCPUs)")
	for _, n := range []string{"volume", "volume-id", "brick-id", "brick-path", "listen", "tls-dir"} {
		_ = cmd.MarkFlagRequired(n)
	}
	return cmd
}

// monitorCmd runs one container's monitor; caisd starts it, users do not.
func monitorCmd() *cobra.Command {
	var standby bool
	cmd := &cobra.Command{
		Use:    "monitor",
		Short:  "run one container (started by caisd)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !standby {
				return errors.New("caisd monitor: only caisd starts monitors (with --standby and its pipes)")
			}
			// The container outlives caisd and this monitor ignores the
			// signals of the terminal caisd may have been started from.
			signal.Ignore(syscall.SIGINT, syscall.SIGHUP, syscall.SIGPIPE)
			return monitor.Standby(context.Background(), newLogger("info"))
		},
	}
	cmd.Flags().BoolVar(&standby, "standby", false, "wait for the container's directory on file descriptor 4")
	return cmd
}

// busyboxCmd writes the busybox base image as a docker save archive.
func busyboxCmd() *cobra.Command {
	var bin, out string
	cmd := &cobra.Command{
		Use:   "busybox-image",
		Short: "write a busybox image (from a static busybox) as a docker save archive, for docker load",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			if out != "" && out != "-" {
				f, err := os.Create(out)
				if err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			return bootstrap.BusyboxArchive(cmd.Context(), w, bin)
		},
	}
	cmd.Flags().StringVar(&bin, "busybox", "/bin/busybox", "static busybox binary (Debian's busybox-static)")
	cmd.Flags().StringVarP(&out, "output", "o", "-", "archive to write")
	return cmd
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}
