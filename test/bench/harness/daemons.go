package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"berth/test/engine"
)

// The engines the benches start: berthd from a copy of the tree's binaries, a private
// dockerd and a private podman (test/engine).

// Daemon is a daemon a bench started: in a session of its own (as test/berthtest starts
// berthd), sent SIGTERM when the bench dies, its output in Log.
type Daemon struct {
	Name   string // its executable's name, for messages
	Log    string
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartDaemon starts argv in dir, with its output in logPath, in the network namespace bound
// at netns (nsenter execs the daemon: the PID is the daemon's), or in a new one of its own
// when netns is "" (berthd makes its default bridge and nftables table at start, which must
// not land in the machine's namespace).
func StartDaemon(argv []string, dir, logPath, netns string) (*Daemon, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	attr := &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGTERM}
	var cmd *exec.Cmd
	if netns == "" {
		cmd = exec.Command(argv[0], argv[1:]...)
		attr.Cloneflags = syscall.CLONE_NEWNET
	} else {
		cmd = exec.Command("nsenter", append([]string{"--net=" + netns, "--"}, argv...)...)
	}
	cmd.Env = engine.BaseEnv()
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &Daemon{Name: filepath.Base(argv[0]), Log: logPath, cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(d.exited) }()
	return d, nil
}

// Stop sends the daemon SIGTERM and waits for it to exit, for up to grace, then kills it
// (a leftover, logged with logf); it returns the leftovers.
func (d *Daemon) Stop(grace time.Duration, logf func(string, ...any)) int {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		return 0
	case <-time.After(grace):
		logf("LEFTOVER: %s did not exit %v after SIGTERM: killed it", d.Name, grace)
		d.cmd.Process.Kill()
		<-d.exited
		return 1
	}
}

func (d *Daemon) logTail() string {
	b, _ := os.ReadFile(d.Log)
	return engine.Tail(string(b), 2000)
}

// StartDaemon starts the engine's daemon (StartDaemon, in Dir) and makes it the engine's:
// its PID, its log, and Stop (SIGTERM, SIGKILL after grace).
func (e *Engine) StartDaemon(argv []string, logPath, netns string, grace time.Duration) (*Daemon, error) {
	d, err := StartDaemon(argv, e.Dir, logPath, netns)
	if err != nil {
		return nil, err
	}
	e.PID = d.cmd.Process.Pid
	e.Logs = append(e.Logs, logPath)
	e.Stop = func() int { return d.Stop(grace, e.Bench.Logf) }
	return d, nil
}

// NetNSDockerd says how to start a private dockerd in a network namespace
// (StartDockerdIn).
type NetNSDockerd struct {
	Dockerd, Docker string   // the binaries
	CgroupParent    string   // --cgroup-parent
	NetNS           string   // the namespace it runs in
	Config          []string // daemon.json keys and values beyond the key path, in pairs
	Args            []string // flags beyond the common ones (networking)
}

// StartDockerdIn starts a private dockerd in the engine's directory and the namespace o
// names, as test/engine.StartDockerd does (its own data root, exec root, socket, pid file,
// daemon.json with the identity key in the directory, cgroupfs, overlay2, the cgroup
// parent), sets the engine's CLI and environment, waits until it answers and returns its
// version line.
func (e *Engine) StartDockerdIn(ctx context.Context, o NetNSDockerd) (string, error) {
	sock := filepath.Join(e.Dir, "docker.sock")
	e.CLI = o.Docker
	e.Env = engine.BaseEnv("DOCKER_HOST=unix://"+sock, "DOCKER_CONFIG="+filepath.Join(e.Dir, "cli"))
	// The identity key in the directory (by default /etc/docker/key.json: other tests
	// watch /etc).
	conf := map[string]string{"deprecated-key-path": filepath.Join(e.Dir, "key.json")}
	for i := 0; i+1 < len(o.Config); i += 2 {
		conf[o.Config[i]] = o.Config[i+1]
	}
	confPath := filepath.Join(e.Dir, "daemon.json")
	b, _ := json.Marshal(conf)
	if err := os.WriteFile(confPath, b, 0o644); err != nil {
		return "", err
	}
	d, err := e.StartDaemon(append([]string{o.Dockerd,
		"--config-file", confPath,
		"--data-root", filepath.Join(e.Dir, "data"),
		"--exec-root", filepath.Join(e.Dir, "exec"),
		"--host", "unix://" + sock,
		"--pidfile", filepath.Join(e.Dir, "docker.pid"),
		"--exec-opt", "native.cgroupdriver=cgroupfs",
		"--storage-driver", "overlay2",
		"--cgroup-parent", o.CgroupParent,
	}, o.Args...), filepath.Join(e.Dir, "dockerd.log"), o.NetNS, 40*time.Second)
	if err != nil {
		return "", err
	}
	return e.WaitReady(ctx, d, 60*time.Second, "dockerd {{.Server.Version}} (API {{.Server.APIVersion}}), docker CLI {{.Client.Version}}")
}

// WaitReady runs `version --format format` until it answers, for up to timeout, and returns
// its output; it fails when the daemon d exits first.
func (e *Engine) WaitReady(ctx context.Context, d *Daemon, timeout time.Duration, format string) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		v, err := e.Out(ctx, "version", "--format", format)
		if err == nil {
			return v, nil
		}
		select {
		case <-d.exited:
			return "", fmt.Errorf("%s exited at start: %s", d.Name, d.logTail())
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return "", fmt.Errorf("%s not ready after %v: %v\n%s", d.Name, timeout, err, d.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// --- berthd ---

// BerthOptions say how to start a private berthd.
type BerthOptions struct {
	Bin          string   // the directory with berthd, berth-shim, berth-runtime and berth-init
	Docker       string   // the docker CLI
	CgroupParent string   // the containers' cgroup parent (daemon.json)
	Debug        bool     // berthd --debug
	NetNS        string   // the network namespace it runs in (StartDaemon)
	Env          []string // the CLI's environment besides DOCKER_HOST and DOCKER_CONFIG
	// Config are daemon.json keys beyond the cgroup parent (the CRI bench's CNI keys).
	Config map[string]any
}

// StartBerth starts a private berthd in dir (NewEngine, StartBerthd). It returns no engine
// when berthd did not start (what it left in dir goes with the bench's directory).
func (b *Bench) StartBerth(ctx context.Context, dir string, o BerthOptions) (*Engine, error) {
	e, err := b.NewEngine("berth", dir, filepath.Join(dir, "berth.sock"))
	if err != nil {
		return nil, err
	}
	if err := e.StartBerthd(ctx, o); err != nil {
		if e.Stop == nil {
			return nil, err
		}
		return e, err
	}
	return e, nil
}

// StartBerthd starts the engine's berthd the way test/berthtest does (its own data root,
// exec root, socket and daemon.json with the cgroup parent, in Dir), from a copy of o.Bin
// (so that a build during the bench does not change what it measures), and waits up to 30 s
// for it to answer. Version is "berthd <version> (<o.Bin>), docker CLI <version>".
func (e *Engine) StartBerthd(ctx context.Context, o BerthOptions) error {
	bin := filepath.Join(e.Dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	for _, b := range []string{"berthd", "berth-shim", "berth-runtime", "berth-init"} {
		if err := CopyFile(filepath.Join(o.Bin, b), filepath.Join(bin, b)); err != nil {
			return fmt.Errorf("%v (make build first)", err)
		}
	}
	sock := filepath.Join(e.Dir, "berth.sock")
	conf := filepath.Join(e.Dir, "daemon.json")
	keys := map[string]any{"cgroup-parent": o.CgroupParent}
	maps.Copy(keys, o.Config)
	b, err := json.MarshalIndent(keys, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(conf, append(b, '\n'), 0o644); err != nil {
		return err
	}
	e.CLI = o.Docker
	e.Env = engine.BaseEnv(append([]string{"DOCKER_HOST=unix://" + sock, "DOCKER_CONFIG=" + filepath.Join(e.Dir, "cli")}, o.Env...)...)
	argv := []string{filepath.Join(bin, "berthd"), "-H", "unix://" + sock,
		"--data-root", filepath.Join(e.Dir, "data"), "--exec-root", filepath.Join(e.Dir, "exec"), "--config-file", conf}
	if o.Debug {
		argv = append(argv, "--debug")
	}
	d, err := e.StartDaemon(argv, filepath.Join(e.Dir, "berthd.log"), o.NetNS, 30*time.Second)
	if err != nil {
		return err
	}
	v, err := e.WaitReady(ctx, d, 30*time.Second, "{{.Server.Version}} {{.Client.Version}}")
	if err != nil {
		return err
	}
	sv, cv, _ := strings.Cut(v, " ")
	e.Version = fmt.Sprintf("berthd %s (%s), docker CLI %s", sv, o.Bin, cv)
	return nil
}

// --- dockerd ---

// DockerdOptions say how to start a private dockerd.
type DockerdOptions struct {
	Dockerd, Docker string // the daemon and the CLI
	CgroupParent    string
	Env             []string // the CLI's environment besides test/engine's
	Note            string   // what Version says after the daemon's and the CLI's versions
}

// StartDockerd starts a private dockerd in dir (test/engine.StartDockerd: its own data root,
// exec root, socket, no bridge, no iptables, cgroupfs) with overlay2 and the cgroup parent,
// and waits for it. When a binary it needs is missing, it returns no engine. Version has
// dockerd's, the CLI's, containerd's and runc's versions.
func (b *Bench) StartDockerd(ctx context.Context, dir string, o DockerdOptions) (*Engine, error) {
	for _, bin := range []string{o.Dockerd, o.Docker, "containerd", "containerd-shim-runc-v2"} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, err
		}
	}
	d, err := engine.StartDockerd(engine.DockerdOptions{
		Dir: dir, Dockerd: o.Dockerd, Docker: o.Docker, StorageDriver: "overlay2", CgroupParent: o.CgroupParent,
	})
	if d == nil {
		return nil, err
	}
	e := &Engine{
		Bench: b, Name: "dockerd", CLI: d.Docker, Env: append(slices.Clone(d.Env), o.Env...), Dir: dir,
		PID: d.PID(), Logs: []string{d.Log},
	}
	e.Stop = func() int {
		if grace := 40 * time.Second; d.Stop(grace) {
			b.Logf("LEFTOVER: dockerd did not exit %v after SIGTERM: killed it", grace)
			return 1
		}
		return 0
	}
	e.Remove = func() int {
		if _, err := d.Remove(); err != nil {
			b.Logf("LEFTOVER: %v", err)
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
	e.Version = strings.TrimSpace(v) + o.Note + ", " + ToolVersion("containerd") + ", " + ToolVersion("runc")
	return e, nil
}

// --- podman ---

// PodmanUlimits are the rlimits of podman's containers: what this machine can grant (no
// CAP_SYS_RESOURCE), for containers.conf's default_ulimits.
var PodmanUlimits = []string{"nofile=20000:20000", "nproc=32768:32768"}

// NewPodman sets up a private podman in dir (test/engine.NewPodman: its own store, run root,
// configuration) with the OCI runtime and PodmanUlimits. When a binary it needs is missing,
// it returns no engine. Version is podman's.
func (b *Bench) NewPodman(dir, podman, runtime string) (*Engine, error) {
	bin, err := exec.LookPath(podman)
	if err != nil {
		return nil, err
	}
	rt, err := exec.LookPath(runtime)
	if err != nil {
		return nil, err
	}
	p, err := engine.NewPodman(engine.PodmanOptions{Dir: dir, Runtime: rt, Ulimits: PodmanUlimits})
	if err != nil {
		return nil, err
	}
	e := &Engine{Bench: b, Name: "podman", CLI: bin, Env: p.Env, Dir: dir, Global: p.Flags, Version: ToolVersion(bin)}
	e.Remove = func() int {
		if _, err := p.Reset(); err != nil {
			b.Logf("LEFTOVER: %v", err)
		}
		return e.RemoveDir()
	}
	return e, nil
}

// ToolVersion is the first line of `name --version` (or of why it failed).
func ToolVersion(name string) string {
	out, err := exec.Command(name, "--version").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			out = []byte(name + ": " + strings.TrimSpace(string(ee.Stderr)))
		} else {
			out = []byte(name + ": " + err.Error())
		}
	}
	l, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return l
}
