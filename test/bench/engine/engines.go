package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"berth/test/bench/harness"
	"berth/test/engine"
)

// eng is one engine under measurement, driven through its command-line tool.
type eng struct {
	name string // table row: berth, dockerd, podman
	// shim is the executable of the engine's process per running container: berth-shim,
	// containerd-shim-runc-v2, conmon.
	shim    string
	cli     string   // docker or podman
	env     []string // the CLI's environment
	dir     string   // the engine's private directory: all its processes name a path in it
	global  []string // flags before the command (podman's private store)
	runArgs []string // flags of every `run` before the image
	version string
	// daemons are the engine's long-lived processes besides the shims (berthd; dockerd and
	// its containerd), nil for podman.
	daemons func() []int
	stop    func() int // stops the daemon after the containers are gone; returns leftovers
	remove  func() int // unmounts and removes dir; returns leftovers
	logs    []string   // the daemons' logs, kept (copied next to dir) with -keep

	fails    int
	dropped  bool
	firstErr string

	run, floor, exec, runDetached []time.Duration
	idle                          *idleResult
}

const maxFailures = 2

// check records a failure; it reports whether err is nil.
func (e *eng) check(err error, what string) bool {
	if err == nil {
		return true
	}
	e.fails++
	msg := fmt.Sprintf("%s: %v", what, err)
	if e.firstErr == "" {
		e.firstErr = msg
	}
	logf("%s: %s", e.name, msg)
	if e.fails >= maxFailures && !e.dropped {
		logf("%s: %d failures, dropping it", e.name, e.fails)
		e.dropped = true
	}
	return false
}

// command is the CLI with args, in the engine's directory and environment.
func (e *eng) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, e.cli, append(append([]string{}, e.global...), args...)...)
	cmd.Env, cmd.Dir = e.env, e.dir
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// do runs the CLI with args and returns its standard output (trimmed) and how long it ran,
// from the fork to the exit; the error has its standard error.
func (e *eng) do(ctx context.Context, stdin io.Reader, args ...string) (string, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := e.command(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errb
	t0 := time.Now()
	err := cmd.Run()
	d := time.Since(t0)
	if err != nil {
		return out.String(), d, fmt.Errorf("%s %s: %v: %s", filepath.Base(e.cli), strings.Join(args, " "), err,
			engine.Tail(strings.TrimSpace(errb.String()+" "+out.String()), 1500))
	}
	return strings.TrimSpace(out.String()), d, nil
}

// prepare imports the busybox root filesystem as the bench's image and runs it once.
func (e *eng) prepare(ctx context.Context, rootfs string) error {
	if _, _, err := e.do(ctx, nil, "import", rootfs, image); err != nil {
		return err
	}
	if out, _, err := e.do(ctx, nil, e.runCmd("--rm", image, "sh", "-c", "echo ok")...); err != nil {
		return err
	} else if out != "ok" {
		return fmt.Errorf("run --rm %s sh -c 'echo ok': output %q", image, out)
	}
	return nil
}

// runCmd is `run <runArgs> args...`.
func (e *eng) runCmd(args ...string) []string {
	return append(append([]string{"run"}, e.runArgs...), args...)
}

// removeAll removes every container and the image through the engine; it returns the
// number of containers that were left to remove.
func (e *eng) removeAll() int {
	ctx := context.Background()
	ids, _, err := e.do(ctx, nil, "ps", "--all", "--quiet", "--no-trunc")
	if err != nil {
		logf("%s: %v", e.name, err)
		return 1
	}
	n := len(strings.Fields(ids))
	if n > 0 {
		args := []string{"rm", "--force"}
		if e.name == "podman" {
			args = append(args, "--time", "0")
		}
		if _, _, err := e.do(ctx, nil, append(args, strings.Fields(ids)...)...); err != nil {
			logf("%s: %v", e.name, err)
		}
	}
	if out, _, err := e.do(ctx, nil, "images", "--quiet"); err == nil && out != "" {
		if _, _, err := e.do(ctx, nil, "rmi", "--force", image); err != nil {
			logf("%s: %v", e.name, err)
		}
	}
	return n
}

// cleanup removes the engine's containers and image, stops it, and removes what is left of
// it. Containers left by the measurements are not leftovers (an interrupted run leaves
// some); processes, mounts and directories that survive the engine's own cleanup are.
func (e *eng) cleanup() int {
	if n := e.removeAll(); n > 0 {
		logf("%s: removed %d containers left by the measurements", e.name, n)
	}
	leftovers := 0
	if e.stop != nil {
		leftovers += e.stop()
	}
	for _, pid := range engine.AwaitProcessesGone(e.dir, 15*time.Second) {
		logf("LEFTOVER: %s: process %d: %s", e.name, pid, engine.Cmdline(pid))
		killPID(pid)
		leftovers++
	}
	if *flagKeep {
		harness.KeepLogs(e.name, e.dir, e.logs, logf)
	}
	if e.remove != nil {
		leftovers += e.remove()
	}
	return leftovers
}

// killPID SIGKILLs a process this bench started (found under its own directory).
func killPID(pid int) { syscall.Kill(pid, syscall.SIGKILL) }

// cliVersion is `<cli> version` in the engine's format.
func (e *eng) cliVersion(ctx context.Context, format string) string {
	v, _, err := e.do(ctx, nil, "version", "--format", format)
	if err != nil {
		return "?"
	}
	return v
}

// --- berthd ---

// startBerth starts a private berthd the way test/berthtest does (its own data root, exec
// root, socket and daemon.json with the cgroup parent), from a copy of -bin, and waits for
// it to answer.
func startBerth(ctx context.Context, dir, cgroupParent string) (*eng, error) {
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return nil, err
	}
	for _, b := range []string{"berthd", "berth-shim", "berth-runtime", "berth-init"} {
		if err := harness.CopyFile(filepath.Join(*flagBin, b), filepath.Join(bin, b)); err != nil {
			return nil, fmt.Errorf("%v (make build first)", err)
		}
	}
	sock := filepath.Join(dir, "berth.sock")
	conf := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("{\"cgroup-parent\": %q}\n", cgroupParent)), 0o644); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "berthd.log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	args := []string{"-H", "unix://" + sock, "--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"), "--config-file", conf}
	if *flagDebug {
		args = append(args, "--debug")
	}
	cmd := exec.Command(filepath.Join(bin, "berthd"), args...)
	cmd.Env = engine.BaseEnv()
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = lf, lf
	// Its own session, as berthtest starts it; SIGTERM if the bench dies. Its own network
	// namespace too: berthd makes its default bridge and nftables table at start, which
	// must not land in the machine's namespace (the runs use --network none, as dockerd's).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGTERM, Cloneflags: syscall.CLONE_NEWNET}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	e := &eng{
		name: "berth", shim: "berth-shim", cli: *flagDocker, dir: dir,
		env:     engine.BaseEnv("DOCKER_HOST=unix://"+sock, "DOCKER_CONFIG="+filepath.Join(dir, "cli")),
		runArgs: []string{"--network", "none"},
		daemons: func() []int { return []int{cmd.Process.Pid} },
		logs:    []string{logPath},
	}
	e.stop = func() int {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
			return 0
		case <-time.After(30 * time.Second):
			logf("LEFTOVER: berthd did not exit 30 s after SIGTERM: killed it")
			cmd.Process.Kill()
			<-exited
			return 1
		}
	}
	e.remove = func() int { return removeDir(dir) }
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, _, err := e.do(ctx, nil, "version", "--format", "{{.Server.Version}}")
		if err == nil {
			e.version = fmt.Sprintf("berthd %s (%s), docker CLI %s", v, *flagBin, e.cliVersion(ctx, "{{.Client.Version}}"))
			return e, nil
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			return e, fmt.Errorf("berthd exited at start: %s", engine.Tail(string(b), 2000))
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return e, fmt.Errorf("berthd not ready after 30 s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// removeDir unmounts what is left under dir and removes it.
func removeDir(dir string) int {
	n := harness.UnmountUnder(dir, logf)
	if n > 0 {
		logf("LEFTOVER: %d mounts under %s", n, dir)
	}
	if err := os.RemoveAll(dir); err != nil {
		logf("LEFTOVER: %v", err)
		n++
	}
	return n
}

// --- dockerd ---

// startDockerd starts a private dockerd (test/engine: its own data root, exec root, socket,
// no bridge, no iptables, cgroupfs) with overlay2 and the cgroup parent, and waits for it.
func startDockerd(ctx context.Context, dir, cgroupParent string) (*eng, error) {
	for _, b := range []string{*flagDockerd, *flagDocker, "containerd", "containerd-shim-runc-v2"} {
		if _, err := exec.LookPath(b); err != nil {
			return nil, err
		}
	}
	d, err := engine.StartDockerd(engine.DockerdOptions{
		Dir: dir, Dockerd: *flagDockerd, Docker: *flagDocker, StorageDriver: "overlay2", CgroupParent: cgroupParent,
	})
	if d == nil {
		return nil, err
	}
	e := &eng{
		name: "dockerd", shim: "containerd-shim-runc-v2", cli: d.Docker, env: d.Env, dir: dir,
		runArgs: []string{"--network", "none"},
		daemons: func() []int {
			return append([]int{d.PID()}, processesOf(dir, "containerd")...)
		},
		logs: []string{d.Log},
	}
	e.stop = func() int {
		if d.Stop(40 * time.Second) {
			logf("LEFTOVER: dockerd did not exit 40 s after SIGTERM: killed it")
			return 1
		}
		return 0
	}
	e.remove = func() int {
		if _, err := d.Remove(); err != nil {
			logf("LEFTOVER: %v", err)
			return 1
		}
		return 0
	}
	if err != nil {
		return e, err
	}
	v, err := d.WaitReady(ctx, 60*time.Second, "version", "--format", "dockerd {{.Server.Version}} (API {{.Server.APIVersion}}), docker CLI {{.Client.Version}}")
	if err != nil {
		return e, fmt.Errorf("%v\n%s", err, d.LogTail(2000))
	}
	e.version = strings.TrimSpace(v) + ", " + firstLine(toolVersion("containerd", "--version")) + ", " + firstLine(toolVersion("runc", "--version"))
	return e, nil
}

// --- podman ---

// newPodman sets up a private podman (test/engine: its own store, run root, configuration),
// with -podman-runtime and the rlimits this machine can grant (no CAP_SYS_RESOURCE).
func newPodman(dir, cgroupParent string) (*eng, error) {
	bin, err := exec.LookPath(*flagPodman)
	if err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("conmon"); err != nil {
		return nil, err
	}
	rt, err := exec.LookPath(*flagRuntime)
	if err != nil {
		return nil, err
	}
	p, err := engine.NewPodman(engine.PodmanOptions{
		Dir: dir, Runtime: rt, Ulimits: []string{"nofile=20000:20000", "nproc=32768:32768"},
	})
	if err != nil {
		return nil, err
	}
	e := &eng{
		name: "podman", shim: "conmon", cli: bin, env: p.Env, dir: dir, global: p.Flags,
		runArgs: []string{"--network", "none", "--cgroup-parent", cgroupParent},
		version: fmt.Sprintf("%s, %s, %s", firstLine(toolVersion(bin, "--version")), firstLine(toolVersion("conmon", "--version")),
			firstLine(toolVersion(rt, "--version"))),
	}
	e.remove = func() int {
		if _, err := p.Reset(); err != nil {
			logf("LEFTOVER: %v", err)
		}
		return removeDir(dir)
	}
	return e, nil
}

func toolVersion(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return name + ": " + strings.TrimSpace(string(ee.Stderr))
		}
		return name + ": " + err.Error()
	}
	return strings.TrimSpace(string(out))
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
