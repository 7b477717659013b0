package daemon

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/cais-platform/cais/dockerapi"
	"github.com/cais-platform/cais/engine"
)

// containers is the node's container engine and its Docker API server.
type containers struct {
	engine *engine.Engine
	server *http.Server
}

func (c *Config) engineDir() string { return filepath.Join(c.DataDir, "engine") }

// startContainers opens the container engine (adopting the containers
// whose monitors outlived the last caisd) and serves the Docker Engine API
// on the docker socket. With no socket configured it does nothing.
func (d *Daemon) startContainers() (*containers, error) {
	if d.cfg.DockerSocket == "" {
		return nil, nil
	}
	log := d.log.With("component", "engine")
	e, err := engine.Open(engine.Options{Root: d.cfg.engineDir(), Exe: d.exe, Runc: d.cfg.Runc, VolumeDrivers: d.volumeDrivers(), DefaultBridge: d.cfg.Bridge, Log: log})
	if err != nil {
		return nil, fmt.Errorf("container engine: %w", err)
	}
	ln, err := listenUnix(d.cfg.DockerSocket)
	if err != nil {
		e.Close()
		return nil, fmt.Errorf("docker API socket (change it with --docker-socket, or disable it with --docker-socket ''): %w", err)
	}
	api := dockerapi.New(dockerapi.Options{Engine: e, Log: d.log.With("component", "dockerapi"), Version: Version, Root: d.cfg.engineDir(),
		Registries: d.registryClient()})
	srv := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			log.Error("docker API stopped", "err", err)
		}
	}()
	d.log.Info("docker API ready", "socket", d.cfg.DockerSocket)
	return &containers{engine: e, server: srv}, nil
}

// stop stops serving; the containers keep running under their monitors.
func (c *containers) stop() {
	if c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c.server.Shutdown(ctx)
	c.server.Close()
	c.engine.Close()
}
