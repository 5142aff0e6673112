package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/mount"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth/internal/atomicfile"
	"berth/internal/errdefs"
	"berth/internal/oci"
	"berth/internal/shim"
)

// runningTask is a started container's shim.
type runningTask struct {
	shim *shim.Client
	dir  string
	// reaped is closed when the shim process (if it is berthd's child) has been reaped.
	reaped <-chan struct{}
	// exited is closed when the container's exit has been recorded.
	exited chan struct{}
}

// Start starts a created or stopped container.
func (d *Daemon) Start(ctx context.Context, ref string) error {
	c, err := d.get(ctx, ref)
	if err != nil {
		return err
	}
	c.op.Lock()
	c.mu.Lock()
	c.ManuallyStopped = false
	c.RestartCount = 0
	c.mu.Unlock()
	err = d.start(ctx, c)
	c.mu.Lock()
	autoRemove := c.HostConfig.AutoRemove
	c.mu.Unlock()
	c.op.Unlock()
	var ns notStartable
	if err != nil && !errors.Is(err, errdefs.ErrNotModified) && !errors.As(err, &ns) && autoRemove {
		// As dockerd: an auto-remove container that cannot start is removed (docker run --rm
		// waits for that).
		if rerr := d.Remove(context.Background(), c.ID, RemoveOptions{Force: true, Volumes: true}); rerr != nil && !errors.Is(rerr, errdefs.ErrNotFound) {
			d.log.Error("auto-remove after a failed start", "id", c.ID, "err", rerr)
		}
	}
	return err
}

func (d *Daemon) shimDir(c *Container) string { return filepath.Join(d.cfg.ExecRoot, "shims", c.ID) }

// notStartable is a start refused for the container's state (being removed, dead), before
// anything was attempted: an auto-remove container is not removed for it.
type notStartable struct{ error }

func (e notStartable) Unwrap() error { return e.error }

// start runs the container under a new shim. Called with c.op held.
func (d *Daemon) start(ctx context.Context, c *Container) (err error) {
	c.mu.Lock()
	switch {
	case c.removed || c.State.Removing:
		c.mu.Unlock()
		return notStartable{errdefs.Conflict("container %s is marked for removal and cannot be started", ShortID(c.ID))}
	case c.State.Dead:
		c.mu.Unlock()
		return notStartable{errdefs.Conflict("container %s is dead and cannot be started", ShortID(c.ID))}
	case c.State.Running:
		c.mu.Unlock()
		return errdefs.NotModified("container %s is already running", ShortID(c.ID))
	}
	c.mu.Unlock()

	defer func() {
		if err != nil {
			// The network setupNetwork made (before the record is saved: it clears the
			// record's network state).
			d.teardownNetwork(c)
			c.mu.Lock()
			c.State.Error = err.Error()
			c.State.Restarting = false
			if c.State.Status == container.StateRestarting {
				c.State.Status = container.StateExited
			}
			c.State.ExitCode = startErrorCode(err)
			c.save(d)
			c.notify()
			attaches := c.attaches
			c.attaches = nil
			c.mu.Unlock()
			for _, a := range attaches {
				a.fail(err)
			}
			// Volumes buildSpec mounted for this start.
			d.unmountVolumes(c)
		}
	}()
	// The client may go away (Ctrl-C on docker start) once the start is under way: the
	// start must still finish or fail as a whole, never leave an unmanaged container.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	dir := d.shimDir(c)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clean shim directory: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	cleanDir := true
	defer func() {
		if cleanDir {
			os.RemoveAll(dir)
		}
	}()
	if err := d.setupNetwork(c); err != nil {
		return err
	}
	spec, err := d.buildSpec(ctx, c)
	if err != nil {
		return err
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "config.json"), b, 0o600, atomicfile.Renamed); err != nil {
		return err
	}
	hc := c.HostConfig
	sc := shim.Config{
		Binary:      d.cfg.ShimBinary,
		ID:          c.ID,
		Bundle:      dir,
		Dir:         dir,
		Runtime:     d.cfg.RuntimeBinary,
		RuntimeRoot: d.runtimeRoot(),
		LogPath:     c.LogPath,
		TTY:         c.Config.Tty,
		Stdin:       c.Config.OpenStdin,
		StdinOnce:   c.Config.StdinOnce,
		OOMFile:     oomFile(c.Cgroup),
	}
	if v := hc.LogConfig.Config["max-size"]; v != "" {
		sc.LogMaxSize, _ = ramInBytes(v)
	}
	sc.LogMaxFile = 1
	if v := hc.LogConfig.Config["max-file"]; v != "" {
		sc.LogMaxFile, _ = strconv.Atoi(v)
	}
	if c.CRILogPath != "" {
		// kubelet made the directory and rotates the file itself (ReopenLog).
		if err := os.MkdirAll(filepath.Dir(c.CRILogPath), 0o755); err != nil {
			return fmt.Errorf("log directory: %w", err)
		}
		sc.LogPath, sc.LogFormat, sc.LogMaxSize, sc.LogMaxFile = c.CRILogPath, "cri", 0, 1
	}
	client, cmd, err := shim.Spawn(ctx, sc)
	if err != nil {
		return fmt.Errorf("start shim: %w", err)
	}
	reaped := make(chan struct{})
	go func() { cmd.Wait(); close(reaped) }()
	c.mu.Lock()
	attaches := c.attaches
	c.attaches = nil
	c.mu.Unlock()
	for _, a := range attaches {
		a.connect(ctx, client)
	}
	pid, err := client.Start(ctx)
	if err != nil {
		// The shim exits after a failed start; make sure of it if the reply was lost.
		select {
		case <-reaped:
		case <-time.After(5 * time.Second):
			client.Shutdown(context.Background())
			cmd.Process.Kill()
			<-reaped
		}
		return classifyStartError(err, c.Path)
	}
	cleanDir = false
	c.mu.Lock()
	c.State = State{
		Status:    container.StateRunning,
		Running:   true,
		Pid:       pid,
		StartedAt: time.Now().UTC(),
		Health:    c.State.Health,
	}
	if c.Config.Healthcheck != nil && len(c.Config.Healthcheck.Test) > 0 && c.Config.Healthcheck.Test[0] != "NONE" {
		c.State.Health = &container.Health{Status: container.Starting}
	}
	c.HasBeenStartedBefore = true
	t := &runningTask{shim: client, dir: dir, reaped: reaped, exited: make(chan struct{})}
	c.run = t
	err = c.save(d)
	c.notify()
	c.mu.Unlock()
	if err != nil {
		d.log.Error("save container record", "id", c.ID, "err", err)
	}
	d.containerEvent(c, events.ActionStart, nil)
	// Health first: an exit that comes at once then stops it (handleExit stops the checks).
	d.startHealth(c)
	d.bg.Add(1)
	go d.monitor(c, t)
	return nil
}

// startErrorCode is the exit code dockerd gives a container whose start failed: 127 when its
// command does not exist, 126 when it cannot be executed.
func startErrorCode(err error) int {
	if errors.Is(err, errCommandNotFound) {
		return 127
	}
	if errors.Is(err, errCommandNotExecutable) {
		return 126
	}
	return 128
}

var (
	errCommandNotFound      = errors.New("command not found")
	errCommandNotExecutable = errors.New("command not executable")
)

// startError is a start failure caused by the container's command: invalid input (400)
// with the reason that picks the exit code.
type startError struct {
	msg    string
	reason error
}

func (e *startError) Error() string   { return e.msg }
func (e *startError) Unwrap() []error { return []error{errdefs.ErrInvalid, e.reason} }

// classifyStartError gives a runtime's start failure dockerd's status and exit code, as
// moby's translateContainerdStartErr: the user's command is at fault (400, exit 127 or 126)
// when the message is about it; anything else is the runtime's (500, exit 128).
func classifyStartError(err error, command string) error {
	msg := err.Error()
	aboutCmd := command != "" && strings.Contains(msg, command)
	switch {
	case strings.Contains(msg, "executable file not found") || (aboutCmd && strings.Contains(msg, "no such file or directory")):
		return &startError{"failed to create task for container: OCI runtime create failed: " + msg, errCommandNotFound}
	case aboutCmd && (strings.Contains(msg, "permission denied") || strings.Contains(msg, "is a directory")):
		return &startError{"failed to create task for container: OCI runtime create failed: " + msg, errCommandNotExecutable}
	case strings.Contains(msg, "not a directory"):
		return errdefs.Invalid("failed to create task for container: OCI runtime create failed: %s: check if the specified host path exists and is the expected type", msg)
	}
	return fmt.Errorf("failed to create task for container: OCI runtime create failed: %w", err)
}

func (d *Daemon) runtimeRoot() string { return filepath.Join(d.cfg.ExecRoot, "runtime") }

// buildSpec resolves what the spec needs at start (volumes mounted, namespaces of peers,
// the working directory) and generates it.
func (d *Daemon) buildSpec(ctx context.Context, c *Container) (*specs.Spec, error) {
	hc := c.HostConfig
	in := oci.Input{
		ID:             c.ID,
		Config:         c.Config,
		HostConfig:     hc,
		Rootfs:         c.Rootfs,
		HostnamePath:   c.HostnamePath,
		HostsPath:      c.HostsPath,
		ResolvConfPath: c.ResolvConfPath,
		InitPath:       d.cfg.InitBinary,
	}
	cg := filepath.Join(d.cfg.CgroupParent, c.ID)
	if hc.CgroupParent != "" {
		cg = filepath.Join(hc.CgroupParent, c.ID)
	}
	c.mu.Lock()
	c.Cgroup = cg
	c.mu.Unlock()
	in.CgroupsPath = cg
	for _, m := range c.Mounts {
		if _, ok := hc.Tmpfs[m.Destination]; ok && m.Type == mount.TypeTmpfs {
			continue // Generate reads HostConfig.Tmpfs itself
		}
		om := oci.Mount{Type: m.Type, Destination: m.Destination, ReadOnly: !m.RW, Propagation: m.Propagation, Options: m.Options, NonRecursive: m.NonRecursive,
			ReadOnlyNonRecursive: m.ReadOnlyNonRecursive}
		switch m.Type {
		case mount.TypeBind:
			om.Source = m.Source
		case mount.TypeVolume:
			src, err := d.vols.Mount(ctx, m.Name, c.ID)
			if err != nil {
				return nil, err
			}
			if m.CopyUp {
				if err := d.copyUp(c, m, src); err != nil {
					return nil, err
				}
			}
			om.Type, om.Source = mount.TypeBind, src
		}
		in.Mounts = append(in.Mounts, om)
	}
	var err error
	if err = d.namespaces(c, &in); err != nil {
		return nil, err
	}
	if wd := c.Config.WorkingDir; wd != "" {
		if err := oci.CreateWorkingDir(c.Rootfs, wd, 0, 0); err != nil {
			return nil, errdefs.InvalidWrap(err, "working directory %s", wd)
		}
	}
	return oci.Generate(in)
}

// copyUp fills a new empty volume with what the image has at the mount's destination, once.
func (d *Daemon) copyUp(c *Container, m MountPoint, data string) error {
	return d.vols.CopyUp(m.Name, c.Rootfs, m.Destination)
}

// namespaces resolves container:<name> modes to the peer's namespace files (in.Namespaces).
// A network peer also gives its hostname and its hostname, hosts and resolv.conf files, as
// dockerd does (a CRI container gets its pod's).
func (d *Daemon) namespaces(c *Container, in *oci.Input) error {
	hc := c.HostConfig
	ns := &in.Namespaces
	// peer returns the peer's /proc/<pid>/ns/ directory; with net, it also fills in what the
	// network peer shares.
	peer := func(mode string, net bool) (string, error) {
		p, err := d.GetIn(c.Namespace, mode)
		if err != nil {
			return "", err
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if !p.State.Running {
			return "", errdefs.Conflict("cannot join namespace of a non running container: container %s is not running", ShortID(p.ID))
		}
		if net {
			in.Hostname = p.Config.Hostname
			in.HostnamePath, in.HostsPath, in.ResolvConfPath = p.HostnamePath, p.HostsPath, p.ResolvConfPath
		}
		return "/proc/" + strconv.Itoa(p.State.Pid) + "/ns/", nil
	}
	switch n := string(hc.NetworkMode); {
	case c.NetNS != "" && (bridged(hc.NetworkMode) || hc.NetworkMode == "none"):
		ns.Network = c.NetNS
	case strings.HasPrefix(n, "container:"):
		dir, err := peer(strings.TrimPrefix(n, "container:"), true)
		if err != nil {
			return err
		}
		ns.Network = dir + "net"
	}
	if p := string(hc.PidMode); strings.HasPrefix(p, "container:") {
		dir, err := peer(strings.TrimPrefix(p, "container:"), false)
		if err != nil {
			return err
		}
		ns.PID = dir + "pid"
	}
	if p := string(hc.IpcMode); strings.HasPrefix(p, "container:") {
		dir, err := peer(strings.TrimPrefix(p, "container:"), false)
		if err != nil {
			return err
		}
		ns.IPC = dir + "ipc"
	}
	return nil
}

// monitor waits for the container's exit through its shim and records it.
func (d *Daemon) monitor(c *Container, t *runningTask) {
	defer d.bg.Done()
	for attempt := 0; ; attempt++ {
		exit, err := t.shim.Wait(d.ctx)
		if d.ctx.Err() != nil {
			return // berthd is shutting down; the shim keeps the container
		}
		if err == nil {
			d.handleExit(c, t, exit)
			return
		}
		if e, ok, rerr := shim.ReadExit(t.dir); rerr == nil && ok {
			d.handleExit(c, t, e)
			return
		}
		// A shim that is gone without an exit record lost the container; any other error
		// (a busy shim, a dial that failed) is retried for a while before giving up.
		if errors.Is(err, shim.ErrNoShim) || attempt >= 30 {
			d.log.Error("lost the container's shim", "id", c.ID, "err", err)
			d.handleExit(c, t, shim.Exit{Code: 255, At: time.Now()})
			return
		}
		select {
		case <-time.After(time.Second):
		case <-d.ctx.Done():
			return
		}
	}
}

// handleExit records a container's exit and applies the restart policy or auto-remove.
func (d *Daemon) handleExit(c *Container, t *runningTask, exit shim.Exit) {
	if t != nil && t.reaped != nil {
		<-t.reaped
	}
	d.stopHealth(c)
	c.mu.Lock()
	current := c.run == t
	c.mu.Unlock()
	if !current {
		return
	}
	// The network goes first, without c.mu (the DNS server's lookups take it): nothing else
	// changes c.run meanwhile, and a start sees the container still running.
	d.teardownNetwork(c)
	c.mu.Lock()
	if c.run != t {
		c.mu.Unlock()
		return
	}
	c.run = nil
	c.State.Running = false
	c.State.Paused = false
	c.State.Pid = 0
	c.State.ExitCode = exit.Code
	c.State.OOMKilled = exit.OOMKilled
	c.State.FinishedAt = exit.At.UTC()
	c.State.Status = container.StateExited
	c.exits++
	restart, delay := d.shouldRestart(c)
	if restart {
		c.State.Restarting = true
		c.State.Status = container.StateRestarting
	}
	if err := c.save(d); err != nil {
		d.log.Error("save container record", "id", c.ID, "err", err)
	}
	// Before anyone sees the exit: a start that follows (restart, rm -f's teardown) reuses
	// the shim directory and must find the volumes released.
	os.RemoveAll(d.shimDir(c))
	d.unmountVolumes(c)
	// The events before the waiters wake: docker stop's "stop" comes after "die".
	if exit.OOMKilled {
		d.containerEvent(c, events.ActionOOM, nil)
	}
	d.containerEvent(c, events.ActionDie, map[string]string{"exitCode": strconv.Itoa(exit.Code)})
	// docker restart of an auto-remove container stops it without removing it.
	autoRemove := c.HostConfig.AutoRemove && !c.restarting
	c.notify()
	c.mu.Unlock()
	if t != nil && t.exited != nil {
		close(t.exited)
	}
	switch {
	case restart:
		d.bg.Add(1)
		go d.restartAfter(c, delay)
	case autoRemove:
		d.bg.Add(1)
		go func() {
			defer d.bg.Done()
			if err := d.Remove(context.Background(), c.ID, RemoveOptions{Force: true, Volumes: true}); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
				d.log.Error("auto-remove", "id", c.ID, "err", err)
			}
		}()
	}
}

func (d *Daemon) unmountVolumes(c *Container) {
	for _, m := range c.Mounts {
		if m.Type == mount.TypeVolume {
			if err := d.vols.Unmount(context.Background(), m.Name, c.ID); err != nil {
				d.log.Warn("unmount volume", "name", m.Name, "err", err)
			}
		}
	}
}

// shouldRestart applies the restart policy to an exit (Docker's rules and backoff: 100 ms
// doubling per restart, reset after 10 s of running, at most a minute). Called with c.mu held.
func (d *Daemon) shouldRestart(c *Container) (bool, time.Duration) {
	if c.removed || c.State.Removing || c.ManuallyStopped || d.ctx.Err() != nil {
		return false, 0
	}
	p := c.HostConfig.RestartPolicy
	switch p.Name {
	case container.RestartPolicyAlways, container.RestartPolicyUnlessStopped:
	case container.RestartPolicyOnFailure:
		if c.State.ExitCode == 0 || (p.MaximumRetryCount > 0 && c.RestartCount >= p.MaximumRetryCount) {
			return false, 0
		}
	default:
		return false, 0
	}
	// The back-off (not the count) starts again after 10 s of running, as dockerd's.
	ran := c.State.FinishedAt.Sub(c.State.StartedAt)
	if ran >= 10*time.Second {
		c.backoff = 0
	}
	delay := 100 * time.Millisecond << min(c.backoff, 10)
	c.backoff++
	if delay > time.Minute {
		delay = time.Minute
	}
	return true, delay
}

// restartAfter restarts a container after the policy's delay unless it was stopped or
// removed meanwhile.
func (d *Daemon) restartAfter(c *Container, delay time.Duration) {
	defer d.bg.Done()
	select {
	case <-time.After(delay):
	case <-d.ctx.Done():
		return
	}
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	if !c.State.Restarting || c.removed || c.ManuallyStopped {
		c.mu.Unlock()
		return
	}
	c.RestartCount++
	c.mu.Unlock()
	if err := d.start(d.ctx, c); err != nil {
		d.log.Error("restart", "id", c.ID, "err", err)
		return
	}
	d.containerEvent(c, events.ActionRestart, nil)
}

// Kill sends a signal to a running container.
func (d *Daemon) Kill(ctx context.Context, ref, signal string) error {
	c, err := d.get(ctx, ref)
	if err != nil {
		return err
	}
	sig := syscall.SIGKILL
	if signal != "" {
		if sig, err = oci.ParseSignal(signal); err != nil {
			return err
		}
	}
	c.mu.Lock()
	t := c.run
	if t == nil || !c.State.Running {
		c.mu.Unlock()
		return errdefs.Conflict("cannot kill container: %s: container %s is not running", ref, c.ID)
	}
	// Only the stop signal and SIGKILL count as stopping the container: after
	// `docker kill -s HUP` the restart policy still applies.
	stopSig := syscall.SIGTERM
	if c.Config.StopSignal != "" {
		if s, err := oci.ParseSignal(c.Config.StopSignal); err == nil {
			stopSig = s
		}
	}
	if sig == syscall.SIGKILL || sig == stopSig {
		c.ManuallyStopped = true
	}
	c.save(d)
	c.mu.Unlock()
	if err := t.shim.Kill(ctx, sig, false); err != nil {
		return fmt.Errorf("cannot kill container %s: %w", ref, err)
	}
	d.containerEvent(c, events.ActionKill, map[string]string{"signal": strconv.Itoa(int(sig))})
	return nil
}

// Stop stops a container: its stop signal, then SIGKILL after the timeout (seconds; nil
// for the container's or 10, -1 to wait forever).
func (d *Daemon) Stop(ctx context.Context, ref, signal string, timeout *int) error {
	c, err := d.get(ctx, ref)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	if c.State.Restarting {
		c.ManuallyStopped = true
		c.State.Restarting = false
		c.State.Status = container.StateExited
		c.save(d)
		c.notify()
		c.mu.Unlock()
		d.containerEvent(c, events.ActionStop, nil)
		return nil
	}
	if !c.State.Running {
		c.mu.Unlock()
		return errdefs.NotModified("container %s is already stopped", ShortID(c.ID))
	}
	c.ManuallyStopped = true
	c.save(d)
	c.mu.Unlock()
	if err := d.stop(ctx, c, signal, timeout); err != nil {
		return err
	}
	d.containerEvent(c, events.ActionStop, nil)
	return nil
}

// stop signals and waits. Called with c.op held.
func (d *Daemon) stop(ctx context.Context, c *Container, signal string, timeout *int) error {
	if signal == "" {
		signal = c.Config.StopSignal
	}
	sig := syscall.SIGTERM
	if signal != "" {
		var err error
		if sig, err = oci.ParseSignal(signal); err != nil {
			return err
		}
	}
	wait := 10
	if c.Config.StopTimeout != nil {
		wait = *c.Config.StopTimeout
	}
	if timeout != nil {
		wait = *timeout
	}
	c.mu.Lock()
	t := c.run
	paused := c.State.Paused
	c.mu.Unlock()
	if t == nil {
		return nil
	}
	if wait != 0 {
		if err := t.shim.Kill(ctx, sig, false); err == nil {
			d.containerEvent(c, events.ActionKill, map[string]string{"signal": strconv.Itoa(int(sig))})
			if paused {
				d.runtime(ctx, "resume", c.ID)
			}
			var deadline <-chan time.Time
			if wait > 0 {
				deadline = time.After(time.Duration(wait) * time.Second)
			}
			if d.waitStopped(ctx, c, deadline) {
				return nil
			}
		}
	}
	if err := t.shim.Kill(ctx, syscall.SIGKILL, true); err != nil {
		// A shim that is gone has delivered the container's exit, which the monitor may
		// not have recorded yet (a container that exits on its own as it is stopped).
		if !d.waitStopped(ctx, c, time.After(5*time.Second)) {
			return fmt.Errorf("cannot stop container %s: %w", ShortID(c.ID), err)
		}
		return nil
	}
	d.containerEvent(c, events.ActionKill, map[string]string{"signal": "9"})
	if paused {
		d.runtime(ctx, "resume", c.ID)
	}
	if !d.waitStopped(ctx, c, time.After(30*time.Second)) {
		return fmt.Errorf("cannot stop container %s: it did not exit 30 s after SIGKILL", ShortID(c.ID))
	}
	return nil
}

// waitStopped waits until the container is not running, or the deadline.
func (d *Daemon) waitStopped(ctx context.Context, c *Container, deadline <-chan time.Time) bool {
	for {
		c.mu.Lock()
		if !c.State.Running {
			c.mu.Unlock()
			return true
		}
		ch := c.watch()
		c.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// Restart stops and starts a container.
func (d *Daemon) Restart(ctx context.Context, ref, signal string, timeout *int) error {
	c, err := d.get(ctx, ref)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	running := c.State.Running
	c.ManuallyStopped = true
	c.restarting = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.restarting = false
		c.mu.Unlock()
	}()
	if running {
		if err := d.stop(ctx, c, signal, timeout); err != nil {
			return err
		}
		d.containerEvent(c, events.ActionStop, nil)
	}
	c.mu.Lock()
	c.ManuallyStopped = false
	c.State.Restarting = false
	c.RestartCount = 0
	c.backoff = 0
	c.mu.Unlock()
	if err := d.start(ctx, c); err != nil {
		return err
	}
	d.containerEvent(c, events.ActionRestart, nil)
	return nil
}
