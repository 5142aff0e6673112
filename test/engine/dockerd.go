package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// DockerdOptions say how to start a private dockerd.
type DockerdOptions struct {
	// Dir is the daemon's private directory (made when missing): daemon.json, data root,
	// exec root, socket, pid file, log and the CLI's configuration. The socket path in it
	// must fit in a unix socket address.
	Dir string
	// Dockerd and Docker are the daemon and CLI binaries ("dockerd" and "docker" when empty).
	Dockerd, Docker string
	// Env is the environment of the daemon and the CLI (BaseEnv() when nil).
	Env []string
	// StorageDriver is the --storage-driver, when set.
	StorageDriver string
	// CgroupParent is the --cgroup-parent of the containers, when set.
	CgroupParent string
	// Runtimes are OCI runtimes to register, "name=path" each (--add-runtime).
	Runtimes []string
}

// Dockerd is a private dockerd, and the containerd it starts: its own data root, exec root,
// socket, pid file and daemon.json, no bridge and no iptables, the cgroupfs driver.
type Dockerd struct {
	Dir    string
	Socket string
	Log    string // the daemon's standard output and error
	Docker string // the CLI binary
	// Env is the environment of the CLI: the options' Env with DOCKER_HOST (this daemon's
	// socket) and DOCKER_CONFIG (in Dir).
	Env []string

	cmd    *exec.Cmd
	exited chan struct{}
}

// StartDockerd starts a private dockerd; it does not wait for it to be ready (WaitReady).
// When the daemon has started and the error is about something later, the Dockerd is
// returned with it, to be stopped.
func StartDockerd(o DockerdOptions) (*Dockerd, error) {
	if o.Dockerd == "" {
		o.Dockerd = "dockerd"
	}
	if o.Docker == "" {
		o.Docker = "docker"
	}
	if o.Env == nil {
		o.Env = BaseEnv()
	}
	d := &Dockerd{
		Dir:    o.Dir,
		Socket: filepath.Join(o.Dir, "docker.sock"),
		Log:    filepath.Join(o.Dir, "dockerd.log"),
		Docker: o.Docker,
		exited: make(chan struct{}),
	}
	if len(d.Socket) >= 108 {
		return nil, fmt.Errorf("dockerd socket path %s is %d bytes, more than a unix socket takes: use a shorter directory", d.Socket, len(d.Socket))
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, err
	}
	conf := filepath.Join(o.Dir, "daemon.json")
	if err := os.WriteFile(conf, daemonJSON(o.Dir), 0o644); err != nil {
		return nil, err
	}
	args := []string{
		"--config-file", conf,
		"--data-root", filepath.Join(o.Dir, "data"),
		"--exec-root", filepath.Join(o.Dir, "exec"),
		"--host", "unix://" + d.Socket,
		"--pidfile", filepath.Join(o.Dir, "docker.pid"),
		"--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false",
		"--exec-opt", "native.cgroupdriver=cgroupfs",
	}
	if o.StorageDriver != "" {
		args = append(args, "--storage-driver", o.StorageDriver)
	}
	if o.CgroupParent != "" {
		args = append(args, "--cgroup-parent", o.CgroupParent)
	}
	for _, r := range o.Runtimes {
		args = append(args, "--add-runtime", r)
	}
	logf, err := os.Create(d.Log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	d.cmd = exec.Command(o.Dockerd, args...)
	d.cmd.Env = o.Env
	d.cmd.Dir = o.Dir
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	// If the caller dies, dockerd shuts down (and stops its containerd).
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", o.Dockerd, err)
	}
	go func() { d.cmd.Wait(); close(d.exited) }()
	d.Env = append(append([]string{}, o.Env...), "DOCKER_HOST=unix://"+d.Socket, "DOCKER_CONFIG="+filepath.Join(o.Dir, "cli"))
	return d, nil
}

// daemonJSON keeps dockerd's identity key (by default /etc/docker/key.json) in dir: other
// tests (CVE-2019-19921) watch the host's /etc.
func daemonJSON(dir string) []byte {
	b, _ := json.Marshal(map[string]string{"deprecated-key-path": filepath.Join(dir, "key.json")})
	return b
}

// PID is the process ID of the dockerd this package started.
func (d *Dockerd) PID() int { return d.cmd.Process.Pid }

// WaitReady runs `docker args...` against the daemon until it succeeds and returns its
// standard output. It fails when dockerd exits, ctx ends or timeout passes first.
func (d *Dockerd) WaitReady(ctx context.Context, timeout time.Duration, args ...string) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-d.exited:
			return "", fmt.Errorf("dockerd exited: %v", d.cmd.ProcessState)
		default:
		}
		cmd := exec.CommandContext(ctx, d.Docker, args...)
		cmd.Env, cmd.Dir = d.Env, d.Dir
		out, err := cmd.Output()
		if err == nil {
			return string(out), nil
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, Tail(string(ee.Stderr), 2000))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return "", fmt.Errorf("dockerd not ready after %v: %v %s", timeout, err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Stop stops dockerd: SIGTERM to the PID it started (dockerd then stops its containers and
// its containerd and unmounts its roots), and SIGKILL when it has not exited after timeout.
// It waits for the exit and reports whether it had to kill. Processes dockerd started may
// take a moment longer to go (AwaitProcessesGone).
func (d *Dockerd) Stop(timeout time.Duration) (killed bool) {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		return false
	case <-time.After(timeout):
		d.cmd.Process.Kill()
		<-d.exited
		return true
	}
}

// LogTail is the last n bytes of the daemon's log.
func (d *Dockerd) LogTail(n int) string {
	b, _ := os.ReadFile(d.Log)
	return "dockerd log:\n" + Tail(string(b), n)
}

// Remove unmounts what is left under Dir and removes it (after Stop). It returns the
// number of mounts it found and the first error.
func (d *Dockerd) Remove() (mounts int, err error) {
	mounts, left := UnmountUnder(d.Dir)
	if len(left) > 0 {
		return mounts, fmt.Errorf("cannot unmount %q", left)
	}
	return mounts, os.RemoveAll(d.Dir)
}
