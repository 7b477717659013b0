// Command testserver serves a registry on a directory over plain HTTP, for
// the OCI conformance suite (make conformance). caisd serves the same
// handler; this binary needs no pool.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/cais-platform/cais/registry"
	"github.com/cais-platform/cais/registry/disk"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on (loopback)")
	dir := flag.String("dir", "", "storage directory")
	flag.Parse()
	if err := run(*addr, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "testserver:", err)
		os.Exit(1)
	}
}

func run(addr, dir string) error {
	st, err := disk.Open(dir)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	fmt.Println(ln.Addr().String())
	srv := &http.Server{Handler: registry.New(st, registry.Options{Log: log}), ReadHeaderTimeout: 10 * time.Second}
	return srv.Serve(ln)
}
