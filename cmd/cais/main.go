// Command cais is the cais CLI; it talks to caisd over its REST API.
package main

import (
	"os"

	"github.com/cais-platform/cais/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
