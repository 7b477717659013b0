package builder

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cais-platform/cais/dockerfile"
	"github.com/cais-platform/cais/engine"
	"github.com/cais-platform/cais/errdefs"
	"github.com/cais-platform/cais/image/imageconfig"
	"github.com/cais-platform/cais/image/reference"
)

// CommitOptions are docker commit's options.
type CommitOptions struct {
	// Container is the container's name or ID.
	Container string
	// Ref names the image; nil leaves it untagged.
	Ref *reference.Reference
	// Comment and Author go into the image's history and config.
	Comment, Author string
	// Changes are Dockerfile instructions applied to the config (docker
	// commit --change): CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD,
	// USER, VOLUME, WORKDIR.
	Changes []string
	// Config, when set, replaces the container's config fields it sets.
	Config *imageconfig.Config
}

// commitChanges are the instructions docker commit --change accepts.
var commitChanges = map[string]bool{"cmd": true, "entrypoint": true, "env": true, "expose": true, "label": true, "onbuild": true, "user": true, "volume": true, "workdir": true}

// ApplyChanges applies docker commit --change instructions to a config.
// It does no I/O.
func ApplyChanges(cfg imageconfig.Config, changes []string) (imageconfig.Config, error) {
	if len(changes) == 0 {
		return cfg, nil
	}
	var b strings.Builder
	b.WriteString("FROM scratch\n")
	for _, c := range changes {
		b.WriteString(strings.ReplaceAll(c, "\n", " "))
		b.WriteString("\n")
	}
	res, err := dockerfile.Parse(strings.NewReader(b.String()))
	if err != nil {
		return cfg, err
	}
	for _, n := range res.Nodes[1:] {
		if !commitChanges[n.Cmd] {
			return cfg, fmt.Errorf("%s is not a valid change command: %w", strings.ToUpper(n.Cmd), errdefs.ErrInvalid)
		}
	}
	df, err := dockerfile.ParseStages(res)
	if err != nil {
		return cfg, err
	}
	if len(df.Stages) != 1 {
		return cfg, fmt.Errorf("FROM is not a valid change command: %w", errdefs.ErrInvalid)
	}
	ev, err := dockerfile.NewEvaluator(df, nil)
	if err != nil {
		return cfg, err
	}
	plan, err := ev.Eval(0, cfg)
	if err != nil {
		return cfg, err
	}
	return plan.Config, nil
}

// containerImageConfig is the image config a container's config gives.
func containerImageConfig(c engine.Config) imageconfig.Config {
	return imageconfig.Config{
		User: c.User, ExposedPorts: c.ExposedPorts, Env: c.Env, Entrypoint: c.Entrypoint, Cmd: c.Cmd,
		Volumes: c.Volumes, WorkingDir: c.WorkingDir, Labels: c.Labels, StopSignal: c.StopSignal,
	}.Clone()
}

// overlay sets in cfg the fields o sets.
func overlay(cfg, o imageconfig.Config) imageconfig.Config {
	if o.User != "" {
		cfg.User = o.User
	}
	if o.ExposedPorts != nil {
		cfg.ExposedPorts = o.ExposedPorts
	}
	if o.Env != nil {
		cfg.Env = o.Env
	}
	if o.Entrypoint != nil {
		cfg.Entrypoint = o.Entrypoint
	}
	if o.Cmd != nil {
		cfg.Cmd = o.Cmd
	}
	if o.Volumes != nil {
		cfg.Volumes = o.Volumes
	}
	if o.WorkingDir != "" {
		cfg.WorkingDir = o.WorkingDir
	}
	if o.Labels != nil {
		cfg.Labels = o.Labels
	}
	if o.StopSignal != "" {
		cfg.StopSignal = o.StopSignal
	}
	if o.Healthcheck != nil {
		cfg.Healthcheck = o.Healthcheck
	}
	if o.OnBuild != nil {
		cfg.OnBuild = o.OnBuild
	}
	return cfg
}

// Commit makes an image of a container's changes (docker commit): its
// image's layers, a layer of what the container changed (when anything
// did), and its config with the changes applied. It returns the image ID.
func (b *Builder) Commit(ctx context.Context, opts CommitOptions) (digest.Digest, error) {
	c, err := b.e.Get(opts.Container)
	if err != nil {
		return "", err
	}
	base, err := b.load(c.Image)
	if err != nil {
		return "", fmt.Errorf("image of container %s: %w", c.Name, err)
	}
	cfg := containerImageConfig(c.Config)
	if opts.Config != nil {
		cfg = overlay(cfg, *opts.Config)
	}
	if cfg, err = ApplyChanges(cfg, opts.Changes); err != nil {
		return "", err
	}
	tmp, err := b.newTemp("commit")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	var desc *ocispec.Descriptor
	var diffID digest.Digest
	upper := filepath.Join(b.e.Dir(c.ID), "upper")
	if _, err := os.Stat(upper); err == nil {
		var lowers []string
		if base.id != "" {
			if lowers, err = b.images.Layers(ctx, base.target); err != nil {
				return "", err
			}
		}
		if desc, diffID, err = b.packDiff(ctx, upper, tmp, diffOptions{container: true, lowers: lowers}); err != nil {
			return "", fmt.Errorf("commit %s: %w", c.Name, err)
		}
	}
	now := time.Now().UTC()
	ic := base.config
	ic.Created = &now
	ic.Config = cfg
	if opts.Author != "" {
		ic.Author = opts.Author
	}
	ic.History = append(append([]ocispec.History(nil), base.config.History...), ocispec.History{
		Created: &now, CreatedBy: strings.TrimSpace(c.Path + " " + strings.Join(c.Args, " ")),
		Author: opts.Author, Comment: opts.Comment, EmptyLayer: desc == nil,
	})
	layers := append([]ocispec.Descriptor(nil), base.layers...)
	ic.RootFS.DiffIDs = append([]digest.Digest(nil), base.config.RootFS.DiffIDs...)
	if desc != nil {
		layers = append(layers, *desc)
		ic.RootFS.DiffIDs = append(ic.RootFS.DiffIDs, diffID)
	}
	raw, err := json.Marshal(ic)
	if err != nil {
		return "", err
	}
	img, err := commitRaw(ctx, b.images, raw, layers)
	if err != nil {
		return "", err
	}
	if opts.Ref != nil {
		err = b.images.Tag(ctx, *opts.Ref, img.target)
	} else {
		err = b.images.AddDangling(ctx, img.target)
	}
	if err != nil {
		return "", err
	}
	return img.id, nil
}
