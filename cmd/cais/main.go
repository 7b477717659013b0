// Command cais is the cais CLI; it talks to caisd over its REST API.
package main

import (
	"os"
	"path/filepath"

	"github.com/cais-platform/cais/cli"
)

func main() {
	args := os.Args[1:]
	// Installed as /sbin/mount.cais, it is mount(8)'s helper for -t cais.
	if filepath.Base(os.Args[0]) == "mount.cais" {
		args = cli.MountHelperArgs(args)
	}
	os.Exit(cli.Main(args, os.Stdin, os.Stdout, os.Stderr))
}
