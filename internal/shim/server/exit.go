package server

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
	"time"

	"berth/internal/shim/wire"
)

// finish runs once the container's init was reaped: it drains the output, reads the OOM
// counter, deletes the runtime's container, writes the exit file, answers the waiters and stops
// serving (which ends the shim).
func (s *shim) finish(ws syscall.WaitStatus) {
	e := wire.Exit{Code: exitCode(ws), At: time.Now()}
	s.mu.Lock()
	stdin, outputs := s.stdin, s.outputs
	s.mu.Unlock()
	if stdin != nil && !s.cfg.TTY {
		stdin.Close() // writers blocked on a full pipe give up
	}
	timer := time.NewTimer(drainTimeout)
	select {
	case <-s.outputsDone:
		timer.Stop()
	case <-timer.C:
		s.logf("output still open " + drainTimeout.String() + " after the container's init exited (a process outside its pid namespace?): closing it")
		for _, f := range outputs {
			f.Close()
		}
		<-s.outputsDone
	}
	for _, f := range outputs {
		f.Close()
	}
	if s.jlog != nil {
		s.jlog.close()
	}
	if s.cfg.OOMFile != "" {
		e.OOMKilled = readOOM(s.cfg.OOMFile)
	}
	if err := s.runtimeCmd("delete", "--force", s.cfg.ID); err != nil {
		s.logf("runtime delete: " + err.Error())
	}
	if err := writeExit(e); err != nil {
		s.logf("exit file: " + err.Error())
	}
	s.mu.Lock()
	s.exit, s.state = e, stExited
	close(s.done)
	s.mu.Unlock()
	s.stopServing()
}

// readOOM reports whether the "oom_kill N" counter of a memory.events (cgroup v2) or
// memory.oom_control (v1) file is above zero.
func readOOM(path string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	for _, line := range bytes.Split(data, []byte{'\n'}) {
		if rest, ok := bytes.CutPrefix(line, []byte("oom_kill ")); ok {
			n, err := strconv.ParseUint(string(bytes.TrimSpace(rest)), 10, 64)
			return err == nil && n > 0
		}
	}
	return false
}

// writeExit writes the exit file atomically and durably: a temporary file, fsynced, renamed,
// and the directory fsynced.
func writeExit(e wire.Exit) error {
	tmp := wire.ExitName + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(append(wire.AppendExit(nil, e), '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, wire.ExitName)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open("."); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
