package bootstrap

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDebianOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		o   DebianOptions
		err string
	}{
		{DebianOptions{Suite: "bookworm"}, ""},
		{DebianOptions{Suite: "stable", Variant: "buildd", Mirror: "http://deb.debian.org/debian"}, ""},
		{DebianOptions{Suite: "bookworm", Mirror: "file:/srv/mirror"}, ""},
		{DebianOptions{Suite: ""}, "invalid Debian suite"},
		{DebianOptions{Suite: "../etc"}, "invalid Debian suite"},
		{DebianOptions{Suite: "bookworm --keyring=/x"}, "invalid Debian suite"},
		{DebianOptions{Suite: "bookworm", Variant: "fakechroot"}, "invalid debootstrap variant"},
		{DebianOptions{Suite: "bookworm", Mirror: "--no-check-gpg"}, "invalid mirror"},
	} {
		err := tc.o.Validate()
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%+v: %v, want %q", tc.o, err, tc.err)
		}
	}
}

// tidyRootfs empties /dev and the package caches and never writes through
// a symlink out of the tree.
func TestTidyRootfs(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	host := filepath.Join(outside, "resolv.conf")
	if err := os.WriteFile(host, []byte("nameserver 10.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"dev/null", "var/cache/apt/archives/bash_5.2_amd64.deb", "var/lib/apt/lists/deb.debian.org_dists_bookworm_InRelease", "etc/hostname", "etc/passwd", "var/cache/apt/archives/partial/.keep"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(host, filepath.Join(dir, "etc/resolv.conf")); err != nil {
		t.Fatal(err)
	}
	if err := tidyRootfs(dir); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{"dev/null", "var/cache/apt/archives/bash_5.2_amd64.deb", "var/lib/apt/lists/deb.debian.org_dists_bookworm_InRelease", "etc/hostname"} {
		if _, err := os.Lstat(filepath.Join(dir, gone)); !os.IsNotExist(err) {
			t.Errorf("%s still there (%v)", gone, err)
		}
	}
	for _, kept := range []string{"dev", "etc/passwd", "var/cache/apt/archives/partial/.keep"} {
		if _, err := os.Lstat(filepath.Join(dir, kept)); err != nil {
			t.Errorf("%s: %v", kept, err)
		}
	}
	if b, _ := os.ReadFile(host); string(b) != "nameserver 10.0.0.1\n" {
		t.Errorf("the file outside the tree changed: %q", b)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "etc/resolv.conf")); err != nil || !fi.Mode().IsRegular() || fi.Size() != 0 {
		t.Errorf("resolv.conf: %v %v", fi, err)
	}
}
