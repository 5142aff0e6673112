// Package berthtest starts private berthds for integration tests and drives them with the
// stock docker CLI: each daemon has its own data root, exec root and socket under one
// directory, its containers' cgroups under the test run's parent, its own network namespace
// (the "host" its bridges, veths, rules and published ports live in), and its cleanup checks
// that nothing is left (containers, mounts, shims, runtime state, veths, rules, leases).
package berthtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"berth/internal/network"
	"berth/test/bundle"
	"berth/test/engine"
	"berth/test/imagetest"
)

// Root is the repository root.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var buildOnce sync.Once
var buildErr error

// Binaries builds what a berthd needs into bin/ (berthd, berth-shim, berth-runtime,
// berth-init; not the berth CLI, which the tests do not use) once per test binary and
// returns its directory.
func Binaries(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		cmd := exec.Command("go", "build", "-trimpath", "-o", "bin/", "./cmd/berthd", "./cmd/berth-shim", "./cmd/berth-runtime", "./cmd/berth-init")
		cmd.Dir = Root()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build berthd and its helpers: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(Root(), "bin")
}

// Docker is the docker 28 CLI (at /usr/local/bin/docker here; `docker` in PATH otherwise).
func Docker(t testing.TB) string {
	for _, p := range []string{"/usr/local/bin/docker", "/usr/bin/docker"} {
		if out, err := exec.Command(p, "--version").Output(); err == nil && strings.Contains(string(out), "version 2") {
			return p
		}
	}
	p, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("the docker CLI is not installed")
	}
	return p
}

// Daemon is a private berthd.
type Daemon struct {
	t         testing.TB
	Dir       string
	Socket    string
	DataRoot  string
	ExecRoot  string
	Bin       string
	DockerCLI string
	Env       []string
	Config    string
	// NetNS is the network namespace berthd runs in: the host, as far as its containers
	// know. HostAddr is an address of that host besides 127.0.0.1 (on a dummy link).
	NetNS    string
	HostAddr string
	cmd      *exec.Cmd
	exited   chan struct{}
	log      *os.File
	// orphans are the children of the berthds Kill9 killed, now the test process's.
	orphans []orphan
	// dataTmpfs: DataRoot is a tmpfs that Start mounted (Options.DataRootSize).
	dataTmpfs bool
}

// Options tune Start.
type Options struct {
	// DaemonJSON is extra daemon.json content (keys and values, without braces).
	DaemonJSON string
	// DataRootSize, when set, makes the data root a tmpfs of that many bytes (mounted by
	// Start, unmounted by the cleanup): a small disk to fill.
	DataRootSize int64
}

// Start starts a berthd and registers its cleanup.
func Start(t testing.TB, o Options) *Daemon {
	t.Helper()
	bin := Binaries(t)
	dir, err := os.MkdirTemp("/var/tmp", "bt-")
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{
		t:         t,
		Dir:       dir,
		Socket:    filepath.Join(dir, "berth.sock"),
		DataRoot:  filepath.Join(dir, "data"),
		ExecRoot:  filepath.Join(dir, "exec"),
		Bin:       bin,
		DockerCLI: Docker(t),
		Config:    filepath.Join(dir, "daemon.json"),
	}
	d.Env = engine.BaseEnv("DOCKER_HOST=unix://"+d.Socket, "DOCKER_CONFIG="+filepath.Join(dir, "cli"))
	extra := ""
	if o.DaemonJSON != "" {
		extra = ",\n" + o.DaemonJSON
	}
	conf := fmt.Sprintf(`{"cgroup-parent": %q%s}`, bundle.CgroupParent(), extra)
	if err := os.WriteFile(d.Config, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.cleanup)
	d.NetNS = filepath.Join(dir, "host.netns")
	d.HostAddr = "198.18.0.1"
	if err := makeHostNetNS(d.NetNS, d.HostAddr+"/24"); err != nil {
		t.Fatalf("network namespace for berthd: %v", err)
	}
	if o.DataRootSize > 0 {
		if err := os.Mkdir(d.DataRoot, 0o710); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mount("tmpfs", d.DataRoot, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0710", o.DataRootSize)); err != nil {
			t.Fatalf("mount a tmpfs on the data root: %v", err)
		}
		d.dataTmpfs = true
	}
	d.startProcess()
	return d
}

func (d *Daemon) startProcess() {
	t := d.t
	t.Helper()
	log, err := os.OpenFile(filepath.Join(d.Dir, "berthd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	d.log = log
	// nsenter joins the namespace and execs berthd: the same process.
	d.cmd = exec.Command("nsenter", "--net="+d.NetNS, "--", filepath.Join(d.Bin, "berthd"), "--debug", "-H", "unix://"+d.Socket,
		"--data-root", d.DataRoot, "--exec-root", d.ExecRoot, "--config-file", d.Config)
	d.cmd.Stdout, d.cmd.Stderr = log, log
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.exited = make(chan struct{})
	cmd, exited := d.cmd, d.exited
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, _, code := d.run(nil, "version", "--format", "{{.Server.Version}}"); code == 0 {
			return
		}
		select {
		case <-exited:
			t.Fatalf("berthd exited at start:\n%s", d.LogTail(40))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("berthd not ready after 30 s:\n%s", d.LogTail(40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// PID is berthd's process ID.
func (d *Daemon) PID() int { return d.cmd.Process.Pid }

// Kill9 kills berthd with SIGKILL and waits for it to be gone. Its shims keep running,
// reparented to the test process, which Kill9 makes a child subreaper (orphans.go); cleanup
// reaps them once they have exited.
func (d *Daemon) Kill9() {
	if err := d.kill9(); err != nil {
		d.t.Fatalf("kill berthd: %v", err)
	}
	<-d.exited
	endSubreaper()
	d.log.Close()
}

// Restart starts berthd again after Kill9 or Stop.
func (d *Daemon) Restart() {
	d.startProcess()
}

// StopDaemon stops berthd with SIGTERM (containers keep running).
func (d *Daemon) StopDaemon() {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		d.cmd.Process.Signal(syscall.SIGKILL)
		<-d.exited
		d.t.Errorf("berthd did not stop within 30 s of SIGTERM")
	}
	d.log.Close()
}

func (d *Daemon) running() bool {
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// LogTail is the end of berthd's log.
func (d *Daemon) LogTail(n int) string {
	b, _ := os.ReadFile(filepath.Join(d.Dir, "berthd.log"))
	return engine.Tail(string(b), n)
}

func (d *Daemon) run(stdin []byte, args ...string) (string, string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.DockerCLI, args...)
	cmd.Env = d.Env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else {
			code = -1
			errb.WriteString(err.Error())
		}
	}
	return out.String(), errb.String(), code
}

// Docker runs the docker CLI against this daemon: stdout, stderr and the exit code.
func (d *Daemon) Docker(args ...string) (string, string, int) {
	return d.run(nil, args...)
}

// DockerIn is Docker with stdin.
func (d *Daemon) DockerIn(stdin []byte, args ...string) (string, string, int) {
	return d.run(stdin, args...)
}

// Must runs the docker CLI and fails the test unless it exits 0; it returns stdout trimmed.
func (d *Daemon) Must(args ...string) string {
	d.t.Helper()
	out, errOut, code := d.run(nil, args...)
	if code != 0 {
		d.t.Fatalf("docker %s: exit %d\nstdout: %s\nstderr: %s\nberthd log:\n%s", strings.Join(args, " "), code, out, errOut, d.LogTail(20))
	}
	return strings.TrimSpace(out)
}

// Cmd is an exec.Cmd of the docker CLI against this daemon (for streams and terminals).
func (d *Daemon) Cmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, d.DockerCLI, args...)
	cmd.Env = d.Env
	return cmd
}

var (
	rootfsOnce sync.Once
	rootfsTar  []byte
	rootfsErr  error
)

// BusyboxTar is a busybox-static root filesystem as a tarball (made once per test binary).
func BusyboxTar(t testing.TB) []byte {
	t.Helper()
	rootfsOnce.Do(func() {
		dir, err := os.MkdirTemp("", "busybox-rootfs-")
		if err != nil {
			rootfsErr = err
			return
		}
		defer os.RemoveAll(dir)
		imagetest.BusyboxRootfs(t, filepath.Join(dir, "rootfs"))
		imagetest.TarDir(t, filepath.Join(dir, "rootfs"), filepath.Join(dir, "rootfs.tar"))
		rootfsTar, rootfsErr = os.ReadFile(filepath.Join(dir, "rootfs.tar"))
	})
	if rootfsErr != nil {
		t.Fatal(rootfsErr)
	}
	return rootfsTar
}

// Busybox imports the busybox rootfs as image name (CMD ["sh"]) and returns name.
func (d *Daemon) Busybox(name string) string {
	d.t.Helper()
	out, errOut, code := d.run(BusyboxTar(d.t), "import", "--change", `CMD ["sh"]`, "-", name)
	if code != 0 {
		d.t.Fatalf("docker import: exit %d: %s %s\n%s", code, out, errOut, d.LogTail(20))
	}
	return name
}

// cleanup removes every container and volume through the API, stops berthd and checks that
// nothing is left behind.
func (d *Daemon) cleanup() {
	t := d.t
	if d.cmd == nil {
		// Start failed before berthd ran.
		network.RemoveNetNS(d.NetNS)
		os.RemoveAll(d.Dir)
		return
	}
	if !d.running() {
		d.startProcess()
	}
	if ids := d.Must("ps", "-aq", "--no-trunc"); ids != "" {
		args := append([]string{"rm", "-f", "-v"}, strings.Fields(ids)...)
		if _, errOut, code := d.run(nil, args...); code != 0 {
			t.Errorf("cleanup: docker rm -f: %s", errOut)
		}
	}
	d.run(nil, "volume", "prune", "-a", "-f")
	d.run(nil, "network", "prune", "-f")
	for _, leak := range d.networkLeaks() {
		t.Errorf("LEAK: %s", leak)
	}
	d.StopDaemon()
	// Shims of removed containers exit on their own; none may remain.
	if pids := engine.AwaitProcessesGone(d.Dir, 10*time.Second); len(pids) > 0 {
		for _, p := range pids {
			t.Errorf("LEAK: process %d (%s) still uses %s", p, engine.Cmdline(p), d.Dir)
			syscall.Kill(p, syscall.SIGKILL)
		}
	}
	if left := d.reapOrphans(10 * time.Second); len(left) > 0 {
		for _, p := range left {
			t.Errorf("LEAK: process %d (%s), orphaned by Kill9, did not exit", p, engine.Cmdline(p))
			syscall.Kill(p, syscall.SIGKILL)
		}
		d.reapOrphans(5 * time.Second)
	}
	if ents, _ := os.ReadDir(filepath.Join(d.ExecRoot, "runtime")); len(ents) > 0 {
		for _, e := range ents {
			// Dot entries are the runtime's own caches (.seccomp-cache), not containers.
			if !strings.HasPrefix(e.Name(), ".") {
				t.Errorf("LEAK: runtime state %s", e.Name())
			}
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(d.ExecRoot, "shims")); len(ents) > 0 {
		for _, e := range ents {
			t.Errorf("LEAK: shim directory %s", e.Name())
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(d.DataRoot, "containers")); len(ents) > 0 {
		for _, e := range ents {
			t.Errorf("LEAK: container directory %s", e.Name())
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(d.ExecRoot, "netns")); len(ents) > 0 {
		for _, e := range ents {
			t.Errorf("LEAK: network namespace %s", e.Name())
		}
	}
	if err := network.RemoveNetNS(d.NetNS); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("remove berthd's network namespace: %v", err)
	}
	if d.dataTmpfs {
		// The data root's own tmpfs is not a leak; anything mounted under d.Dir besides it is.
		points, _ := engine.MountsUnder(d.Dir)
		for _, p := range points {
			if p != d.DataRoot {
				t.Errorf("LEAK: mount %s", p)
				syscall.Unmount(p, syscall.MNT_DETACH)
			}
		}
		if err := syscall.Unmount(d.DataRoot, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount the data root's tmpfs: %v", err)
		}
	}
	if n, left := engine.UnmountUnder(d.Dir); n > 0 || len(left) > 0 {
		t.Errorf("LEAK: %d mounts were left under %s (%v still mounted)", n, d.Dir, left)
	}
	if t.Failed() {
		t.Logf("berthd log:\n%s", d.LogTail(60))
	}
	os.RemoveAll(d.Dir)
}
