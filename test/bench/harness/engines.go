package harness

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"berth/test/engine"
)

// The benches of container engines (test/bench/engine, test/bench/network,
// test/bench/build) measure berthd against its peers (dockerd, podman), each engine private
// to the bench (its own directory, daemon and store) and driven by its stock command-line
// tool. What follows is what they share: the engine's CLI, its failures, and its end.

// Bench is a bench of container engines: how its engines report and fail.
type Bench struct {
	Name string // the command's name: its messages start with "Name: "
	// MaxFailures is how many failed commands drop an engine from the measurements.
	MaxFailures int
	// ErrTail is how much of a failed command's standard error and output (in that order,
	// joined by ErrSep) its error keeps.
	ErrTail int
	ErrSep  string
	Keep    *bool // -keep: the engines' logs are copied next to their directories

	stopping  atomic.Bool
	loadStart string
}

// Logf prints a message of the bench to standard error.
func (b *Bench) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, b.Name+": "+format+"\n", args...)
}

// Stopping reports whether the bench was interrupted (SIGINT, SIGTERM): it stops measuring
// and cleans up.
func (b *Bench) Stopping() bool { return b.stopping.Load() }

// Engine is one engine under measurement, driven through its command-line tool. A bench's
// engine type embeds it (a *Engine) with what it measures.
type Engine struct {
	Bench   *Bench
	Name    string   // its row or column in the report: berth, dockerd, podman
	CLI     string   // docker or podman
	Env     []string // the CLI's environment
	Dir     string   // the engine's private directory: all its processes name a path in it
	Global  []string // flags before the command (podman's private store)
	Version string   // what runs, for the report
	PID     int      // the daemon's (berthd, dockerd); 0 without one (podman)

	Stop   func() int // stops the daemon after the containers are gone; returns leftovers
	Remove func() int // unmounts and removes Dir; returns leftovers
	Logs   []string   // the daemons' logs, kept (copied next to Dir) with -keep

	Fails    int
	Dropped  bool // after Bench.MaxFailures failures, or when it could not be prepared
	FirstErr string
}

// Base is the engine itself: what RunEngines reaches through a bench's engine type.
func (e *Engine) Base() *Engine { return e }

// NewEngine makes an engine's directory (sock, when not "", is the path of the daemon's
// socket in it, which must fit in a unix socket address); Remove removes it (RemoveDir).
func (b *Bench) NewEngine(name, dir, sock string) (*Engine, error) {
	if len(sock) >= 108 {
		return nil, fmt.Errorf("socket path %s is %d bytes, more than a unix socket takes: use a shorter -workdir", sock, len(sock))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	e := &Engine{Bench: b, Name: name, Dir: dir}
	e.Remove = e.RemoveDir
	return e, nil
}

// Check records a failure, unless the bench is stopping (the interrupt killed the command);
// it reports whether err is nil.
func (e *Engine) Check(err error, what string) bool {
	if err == nil {
		return true
	}
	if e.Bench.Stopping() {
		return false
	}
	e.Fails++
	msg := fmt.Sprintf("%s: %v", what, err)
	if e.FirstErr == "" {
		e.FirstErr = msg
	}
	e.Bench.Logf("%s: %s", e.Name, msg)
	if e.Fails >= e.Bench.MaxFailures && !e.Dropped {
		e.Bench.Logf("%s: %d failures, dropping it", e.Name, e.Fails)
		e.Dropped = true
	}
	return false
}

// Command is the CLI with the global flags and args, in the engine's directory and
// environment.
func (e *Engine) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, e.CLI, append(slices.Clone(e.Global), args...)...)
	cmd.Env, cmd.Dir = e.Env, e.Dir
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// CommandTimeout is the time limit of Run and Out.
const CommandTimeout = 2 * time.Minute

// RunFor runs the CLI with args (time limit: timeout) and returns its standard output
// (trimmed) and how long it ran, from the fork to the exit; the error has the tail of its
// standard error and output.
func (e *Engine) RunFor(ctx context.Context, timeout time.Duration, args ...string) (string, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := e.Command(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	t0 := time.Now()
	err := cmd.Run()
	d := time.Since(t0)
	if err != nil {
		return out.String(), d, fmt.Errorf("%s %s: %v: %s", filepath.Base(e.CLI), strings.Join(args, " "), err,
			engine.Tail(strings.TrimSpace(errb.String()+e.Bench.ErrSep+out.String()), e.Bench.ErrTail))
	}
	return strings.TrimSpace(out.String()), d, nil
}

// Run is RunFor with CommandTimeout.
func (e *Engine) Run(ctx context.Context, args ...string) (string, time.Duration, error) {
	return e.RunFor(ctx, CommandTimeout, args...)
}

// Out is Run without the duration.
func (e *Engine) Out(ctx context.Context, args ...string) (string, error) {
	out, _, err := e.Run(ctx, args...)
	return out, err
}

// RmArgs is `rm --force ids...` (podman: without a stop timeout).
func (e *Engine) RmArgs(ids ...string) []string {
	args := []string{"rm", "--force"}
	if e.Name == "podman" {
		args = append(args, "--time", "0")
	}
	return append(args, ids...)
}

// NormID is an image or container ID without its "sha256:" (podman prints none).
func NormID(id string) string { return strings.TrimPrefix(strings.TrimSpace(id), "sha256:") }

// ListIDs is `images --all --quiet --no-trunc` (what is "images") or `ps --all --quiet
// --no-trunc` (what is "ps"): the IDs (NormID), each once.
func (e *Engine) ListIDs(ctx context.Context, what ...string) ([]string, error) {
	out, err := e.Out(ctx, append(what, "--all", "--quiet", "--no-trunc")...)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, f := range strings.Fields(out) {
		if id := NormID(f); !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// RemoveContainers removes every container through the engine and returns how many there
// were; the error (logged) is that it could not list them.
func (e *Engine) RemoveContainers(ctx context.Context) (int, error) {
	ids, err := e.ListIDs(ctx, "ps")
	if err != nil {
		e.Bench.Logf("%s: %v", e.Name, err)
		return 0, err
	}
	if len(ids) > 0 {
		if _, err := e.Out(ctx, e.RmArgs(ids...)...); err != nil {
			e.Bench.Logf("%s: %v", e.Name, err)
		}
	}
	return len(ids), nil
}

// RemoveAll removes every container and then, when the engine has any image, image through
// the engine; it returns how many containers there were.
func (e *Engine) RemoveAll(image string) int {
	ctx := context.Background()
	n, err := e.RemoveContainers(ctx)
	if err != nil {
		return n
	}
	if out, err := e.Out(ctx, "images", "--quiet"); err == nil && out != "" {
		if _, err := e.Out(ctx, "rmi", "--force", image); err != nil {
			e.Bench.Logf("%s: %v", e.Name, err)
		}
	}
	return n
}

// Shutdown is the end of an engine, after its containers are removed: Stop stops the
// daemon, processes still under Dir are reported and killed, then between (when not nil)
// runs, the logs are kept with -keep, and Remove removes the rest. Containers are not
// leftovers (an interrupted run leaves some); processes, mounts and directories that survive
// the engine's own cleanup are. It returns the leftovers.
func (e *Engine) Shutdown(between func() int) int {
	leftovers := 0
	if e.Stop != nil {
		leftovers += e.Stop()
	}
	for _, pid := range engine.AwaitProcessesGone(e.Dir, 15*time.Second) {
		e.Bench.Logf("LEFTOVER: %s: process %d: %s", e.Name, pid, engine.Cmdline(pid))
		syscall.Kill(pid, syscall.SIGKILL)
		leftovers++
	}
	if between != nil {
		leftovers += between()
	}
	if *e.Bench.Keep {
		KeepLogs(e.Name, e.Dir, e.Logs, e.Bench.Logf)
	}
	if e.Remove != nil {
		leftovers += e.Remove()
	}
	return leftovers
}

// RemoveDir unmounts what is left under Dir and removes it; it returns the leftovers.
func (e *Engine) RemoveDir() int {
	n := UnmountUnder(e.Dir, e.Bench.Logf)
	if n > 0 {
		e.Bench.Logf("LEFTOVER: %s: %d mounts under %s", e.Name, n, e.Dir)
	}
	if err := os.RemoveAll(e.Dir); err != nil {
		e.Bench.Logf("LEFTOVER: %v", err)
		n++
	}
	return n
}
