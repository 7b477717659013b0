package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/cais-platform/cais/image/distribution"
	"github.com/cais-platform/cais/pki"
	"github.com/cais-platform/cais/registry"
	"github.com/cais-platform/cais/registry/disk"
	"github.com/cais-platform/cais/registry/htpasswd"
)

// registryServer is the node's OCI image registry (issue 5).
type registryServer struct {
	server *http.Server
	url    string
}

func (c *Config) registryDir() string {
	if c.RegistryDir != "" {
		return c.RegistryDir
	}
	return filepath.Join(c.DataDir, "registry")
}

func (c *Config) defaultRegistryUsers() string { return filepath.Join(c.DataDir, "registry-users") }

// loopbackHost reports whether host names only this machine.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// startRegistry serves the OCI distribution API on --registry-addr, with
// its content in DATA-DIR/registry. On a loopback address it speaks plain
// HTTP (docker and the other clients accept that for 127.0.0.0/8 and
// localhost); on any other address, TLS with the node's certificate from
// the pool CA. With no address configured it does nothing.
func (d *Daemon) startRegistry() (*registryServer, error) {
	addr := d.cfg.RegistryAddr
	if addr == "" {
		return nil, nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--registry-addr %q: %w", addr, err)
	}
	log := d.log.With("component", "registry")
	st, err := disk.Open(d.cfg.registryDir())
	if err != nil {
		return nil, err
	}
	opts := registry.Options{Log: log}
	users := d.cfg.RegistryUsers
	if users == "" {
		if _, err := os.Stat(d.cfg.defaultRegistryUsers()); err == nil {
			users = d.cfg.defaultRegistryUsers()
		}
	}
	if users != "" {
		f, err := htpasswd.Open(users)
		if err != nil {
			return nil, fmt.Errorf("registry users: %w", err)
		}
		opts.Auth = &registry.BasicAuth{Users: f, AnonymousPull: d.cfg.RegistryAnonymousPull}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("registry: listen on %s: %w (choose another with --registry-addr, or disable it with --registry-addr '')", addr, err)
	}
	scheme := "http"
	if !loopbackHost(host) {
		scheme = "https"
		ln = tls.NewListener(ln, &tls.Config{GetConfigForClient: func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
			c, err := d.serverTLS(hi)
			if err != nil {
				return nil, err
			}
			c.ClientAuth = tls.NoClientCert
			return c, nil
		}})
	}
	srv := &http.Server{
		Handler:           registry.New(st, opts),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go func() {
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			log.Error("registry stopped", "err", err)
		}
	}()
	url := scheme + "://" + ln.Addr().String()
	log.Info("registry ready", "url", url, "dir", d.cfg.registryDir(), "users", users, "anonymous_pull", d.cfg.RegistryAnonymousPull)
	return &registryServer{server: srv, url: url}, nil
}

// stop stops serving; uploads in progress are cut.
func (r *registryServer) stop() {
	if r == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r.server.Shutdown(ctx)
	r.server.Close()
}

// registryClient is how the engine reaches registries: the insecure
// registries and mirrors of the flags, and registries' certificates
// verified against the system's authorities plus the pool CA (so a cais
// registry on another node, serving TLS with its node certificate, is
// trusted).
func (d *Daemon) registryClient() *distribution.Client {
	caFile := pki.Files{Dir: d.cfg.tlsDir()}.CA()
	return distribution.New(distribution.Config{
		Insecure:  d.cfg.InsecureRegistries,
		Mirrors:   d.cfg.RegistryMirrors,
		UserAgent: "cais/" + Version,
		Log:       d.log.With("component", "distribution"),
		RootCAs: func() (*x509.CertPool, error) {
			pool, err := x509.SystemCertPool()
			if err != nil {
				pool = x509.NewCertPool()
			}
			b, err := os.ReadFile(caFile)
			if errors.Is(err, os.ErrNotExist) {
				return pool, nil // not yet in a pool
			}
			if err != nil {
				return nil, err
			}
			pool.AppendCertsFromPEM(b)
			return pool, nil
		},
	})
}
