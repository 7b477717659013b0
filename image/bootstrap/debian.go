package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// DebianOptions says which Debian debootstrap lays out.
type DebianOptions struct {
	// Suite is the release: bookworm, trixie, stable, …
	Suite string
	// Mirror is the archive to download from; debootstrap's default
	// (deb.debian.org) when empty.
	Mirror string
	// Variant is debootstrap's --variant: minbase (the default here:
	// essential packages and apt, as Docker's debian images) or buildd.
	Variant string
	// Debootstrap is the program; "debootstrap" from PATH when empty.
	Debootstrap string
	// Log receives debootstrap's output.
	Log io.Writer
}

var suiteRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// Validate checks the options without running anything.
func (o DebianOptions) Validate() error {
	if !suiteRE.MatchString(o.Suite) {
		return fmt.Errorf("invalid Debian suite %q: a release name such as bookworm or stable", o.Suite)
	}
	switch o.Variant {
	case "", "minbase", "buildd":
	default:
		return fmt.Errorf("invalid debootstrap variant %q: minbase or buildd", o.Variant)
	}
	if o.Mirror != "" && !strings.HasPrefix(o.Mirror, "http://") && !strings.HasPrefix(o.Mirror, "https://") && !strings.HasPrefix(o.Mirror, "file:/") {
		return fmt.Errorf("invalid mirror %q: an http://, https:// or file:/ URL", o.Mirror)
	}
	return nil
}

// DebianRootfs runs debootstrap into dir (which must be empty or absent)
// and tidies the tree into an image's root file system: no device nodes
// in /dev (the engine gives each container its own), no downloaded
// packages or package lists, no host name or resolver of the build host.
func DebianRootfs(ctx context.Context, dir string, o DebianOptions) error {
	if err := o.Validate(); err != nil {
		return err
	}
	prog := o.Debootstrap
	if prog == "" {
		prog = "debootstrap"
	}
	if _, err := exec.LookPath(prog); err != nil {
		return fmt.Errorf("debootstrap is not installed (apt-get install debootstrap): %w", err)
	}
	if os.Geteuid() != 0 {
		return errors.New("debootstrap needs root (it makes device nodes and runs package scripts in a chroot)")
	}
	variant := o.Variant
	if variant == "" {
		variant = "minbase"
	}
	args := []string{"--variant=" + variant, o.Suite, dir}
	if o.Mirror != "" {
		args = append(args, o.Mirror)
	}
	cmd := exec.CommandContext(ctx, prog, args...)
	log := o.Log
	if log == nil {
		log = io.Discard
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("debootstrap %s (see its output above; %s/debootstrap/debootstrap.log has the details): %w", strings.Join(args, " "), dir, err)
	}
	return tidyRootfs(dir)
}

// tidyRootfs removes what a root file system made on this host must not
// carry into an image.
func tidyRootfs(dir string) error {
	var globs = []string{
		"dev/*",
		"var/cache/apt/archives/*.deb",
		"var/cache/apt/*.bin",
		"var/lib/apt/lists/*_*",
		"var/log/*.log",
		"var/log/apt/*",
		"etc/hostname",
		"root/.bash_history",
		"tmp/*",
	}
	for _, g := range globs {
		matches, err := filepath.Glob(filepath.Join(dir, g))
		if err != nil {
			return err
		}
		for _, m := range matches {
			if err := os.RemoveAll(m); err != nil {
				return fmt.Errorf("tidy root file system: %w", err)
			}
		}
	}
	// The engine mounts each container's own resolv.conf and hosts; an
	// empty file is what an image carries.
	// It is removed first: a symlink there would lead the write out of
	// the tree.
	resolv := filepath.Join(dir, "etc/resolv.conf")
	if err := os.Remove(resolv); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("tidy root file system: %w", err)
	}
	if err := os.WriteFile(resolv, nil, 0o644); err != nil {
		return fmt.Errorf("tidy root file system: %w", err)
	}
	return nil
}

// DebianChanges are the image settings of a Debian base image, as
// Dockerfile instructions (docker import --change).
func DebianChanges() []string {
	return []string{
		"ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		`CMD ["bash"]`,
	}
}
