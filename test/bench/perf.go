package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// startPerf records the target's FUSE server process with perf while a
// workload runs, when -perf names a directory, and returns the function
// that stops the recording and writes a perf report summary beside it:
// where the mount process spends its CPU, kernel and Go runtime included.
func startPerf(log *slog.Logger, dir string, t *target, group string, runNo int) func() {
	if dir == "" || t.pid == 0 {
		return func() {}
	}
	base := filepath.Join(dir, fmt.Sprintf("%s-%s-run%d", strings.ReplaceAll(t.id, "/", "-"), group, runNo))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Warn("perf", "err", err)
		return func() {}
	}
	cmd := exec.Command("perf", "record", "-q", "-g", "-F", "999", "-o", base+".data", "-p", strconv.Itoa(t.pid))
	if err := cmd.Start(); err != nil {
		log.Warn("perf record", "err", err)
		return func() {}
	}
	return func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		_ = cmd.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := run(ctx, "perf", "report", "-i", base+".data", "--stdio", "--no-children",
			"--sort", "symbol", "-g", "none", "--percent-limit", "0.5")
		if err != nil {
			log.Warn("perf report", "err", err)
			return
		}
		if err := os.WriteFile(base+".txt", []byte(out), 0o644); err != nil {
			log.Warn("perf report", "err", err)
		}
	}
}
