package shim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"berth/internal/shim/wire"
)

// Config describes the shim of one container (berth-shim's flags).
type Config struct {
	Binary      string // berth-shim
	ID          string // runtime container id (64 hex digits)
	Bundle      string // OCI bundle directory
	Dir         string // the shim's state directory; must exist (berthd: <exec-root>/shims/<id>)
	Runtime     string // OCI runtime binary
	RuntimeRoot string // the runtime's --root
	LogPath     string // the container's log ("": none)
	LogFormat   string // "json-file" ("" too) or "cri"
	LogMaxSize  int64  // bytes; 0: unlimited
	LogMaxFile  int    // files kept, current one included; 0 means 1
	TTY         bool   // process.terminal is set in the bundle
	Stdin       bool   // keep the container's stdin open
	StdinOnce   bool   // close it when the first attached client with stdin closes its side
	OOMFile     string // memory.events (cgroup v2) or memory.oom_control (v1) of the container
}

// Args is the shim's command line (without the binary).
func (c Config) Args() []string {
	args := []string{"--id", c.ID, "--bundle", c.Bundle, "--dir", c.Dir, "--runtime", c.Runtime,
		"--runtime-root", c.RuntimeRoot}
	if c.LogPath != "" {
		args = append(args, "--log-path", c.LogPath, "--log-max-size", strconv.FormatInt(c.LogMaxSize, 10))
		if c.LogFormat != "" {
			args = append(args, "--log-format", c.LogFormat)
		}
		if c.LogMaxFile > 0 {
			args = append(args, "--log-max-file", strconv.Itoa(c.LogMaxFile))
		}
	}
	if c.TTY {
		args = append(args, "--tty")
	}
	if c.Stdin {
		args = append(args, "--stdin")
	}
	if c.StdinOnce {
		args = append(args, "--stdin-once")
	}
	if c.OOMFile != "" {
		args = append(args, "--oom-file", c.OOMFile)
	}
	return args
}

// Spawn starts the shim of a container, detached (its own session, stdio on /dev/null), and
// waits until it serves its socket. The caller owns the returned command and must Wait for it
// (the shim exits after its container, or after a failed start or a Shutdown); it outlives the
// caller otherwise. A shim that fails before it is ready has been waited for already; the error
// carries its message or its shim.log. ctx bounds the wait for readiness only: cancelling it
// then kills the shim.
func Spawn(ctx context.Context, cfg Config) (*Client, *exec.Cmd, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("spawn shim: %w", err)
	}
	cmd := exec.Command(cfg.Binary, cfg.Args()...)
	cmd.ExtraFiles = []*os.File{pw} // fd 3: readiness
	// One P is all a shim needs (it waits on I/O), and each P costs memory (per-P caches, more
	// threads): about 150 kB of a ~2 MB shim. The shim does not pass this on to the runtime.
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	pw.Close()
	if err != nil {
		pr.Close()
		return nil, nil, fmt.Errorf("spawn shim: %w", err)
	}
	type result struct {
		msg string
		err error
	}
	ready := make(chan result, 1)
	go func() {
		defer pr.Close()
		b, err := io.ReadAll(io.LimitReader(pr, 64*1024))
		ready <- result{string(b), err}
	}()
	var r result
	select {
	case r = <-ready:
	case <-ctx.Done():
		cmd.Process.Kill()
		cmd.Wait()
		return nil, nil, fmt.Errorf("spawn shim: %w", ctx.Err())
	}
	line := strings.TrimSpace(r.msg)
	if line == wire.ReplyOK {
		return Connect(cfg.Dir), cmd, nil
	}
	werr := cmd.Wait()
	if msg, ok := strings.CutPrefix(line, wire.ReplyError+" "); ok {
		return nil, nil, fmt.Errorf("spawn shim: %w", &Error{Request: "spawn", Message: msg})
	}
	status := "exited"
	if werr != nil {
		status = werr.Error()
	}
	log := shimLog(cfg.Dir)
	if log == "" {
		log = "(no shim.log)"
	}
	if line != "" {
		log = "unexpected readiness message " + strconv.Quote(line) + "; " + log
	}
	return nil, nil, fmt.Errorf("spawn shim: %w", errors.New("berth-shim "+status+" before it was ready: "+log))
}

// shimLog returns the end of a shim's own log.
func shimLog(dir string) string {
	data, err := os.ReadFile(filepath.Join(dir, wire.LogName))
	if err != nil {
		return ""
	}
	if len(data) > 4096 {
		data = data[len(data)-4096:]
	}
	return strings.TrimSpace(string(data))
}
