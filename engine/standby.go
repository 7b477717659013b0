package engine

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/cais-platform/cais/engine/monitor"
)

// standby is a monitor process started ahead of the next container start
// (caisd monitor --standby), so that a start does not wait for a process
// to come up: the start hands it the container's directory.
type standby struct {
	cmd  *exec.Cmd
	sync *os.File // read end: "ok" or an error, as from any monitor
	ctl  *os.File // write end: the container's directory, one line
}

// spare holds at most one standby monitor.
type spare struct {
	mu       sync.Mutex
	next     *standby
	spawning bool
	closed   bool
}

// takeStandby returns the standby monitor, if there is one.
func (e *Engine) takeStandby() *standby {
	e.spare.mu.Lock()
	defer e.spare.mu.Unlock()
	sb := e.spare.next
	e.spare.next = nil
	return sb
}

// ensureStandby starts making a standby monitor in the background if
// there is none. A start calls it once runc has run: making one (a
// process start, 40 ms of CPU) beside runc slowed runc down.
func (e *Engine) ensureStandby() {
	e.spare.mu.Lock()
	refill := e.spare.next == nil && !e.spare.spawning && !e.spare.closed
	if refill {
		e.spare.spawning = true
	}
	e.spare.mu.Unlock()
	if refill {
		go e.refillStandby()
	}
}

func (e *Engine) refillStandby() {
	sb, err := e.spawnStandby()
	e.spare.mu.Lock()
	defer e.spare.mu.Unlock()
	e.spare.spawning = false
	if err != nil {
		e.log.Warn("cannot start a standby container monitor", "err", err)
		return
	}
	if e.spare.closed || e.spare.next != nil {
		sb.release()
		return
	}
	e.spare.next = sb
}

// spawnStandby starts a monitor that waits for the container it is to run:
// the spare, or one for a start that found no spare.
func (e *Engine) spawnStandby() (*standby, error) {
	syncR, syncW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		syncR.Close()
		syncW.Close()
		return nil, err
	}
	cmd := exec.Command(e.opts.Exe, "monitor", "--standby")
	cmd.ExtraFiles = []*os.File{syncW, ctlR} // descriptors 3 and 4
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/"
	err = cmd.Start()
	syncW.Close()
	ctlR.Close()
	if err != nil {
		syncR.Close()
		ctlW.Close()
		return nil, fmt.Errorf("start a container monitor: %w", err)
	}
	go cmd.Wait() //nolint:errcheck // reaped; a monitor's end is reported in exit.json
	return &standby{cmd: cmd, sync: syncR, ctl: ctlW}, nil
}

// assign hands the standby the container in dir and waits for its report.
func (sb *standby) assign(dir string) (assigned bool, err error) {
	defer sb.sync.Close()
	_, werr := io.WriteString(sb.ctl, dir+"\n")
	sb.ctl.Close()
	if werr != nil {
		return false, werr // it is gone: start another
	}
	return true, readMonitorReport(sb.sync, dir)
}

// release ends an unused standby: it reads the end of its control pipe.
func (sb *standby) release() {
	sb.ctl.Close()
	sb.sync.Close()
}

// closeStandby ends the standby monitor; no other is made.
func (e *Engine) closeStandby() {
	e.spare.mu.Lock()
	defer e.spare.mu.Unlock()
	e.spare.closed = true
	if e.spare.next != nil {
		e.spare.next.release()
		e.spare.next = nil
	}
}

// readMonitorReport reads a monitor's first report: "ok" once it has
// made the container ready to start, or why it could not.
func readMonitorReport(r io.Reader, dir string) error {
	b, _ := io.ReadAll(io.LimitReader(r, 64<<10))
	msg := strings.TrimSpace(string(b))
	if msg != "ok" {
		if msg == "" {
			msg = "the container's monitor exited; see " + filepath.Join(dir, monitor.LogName)
		}
		return fmt.Errorf("%s", msg)
	}
	return nil
}
