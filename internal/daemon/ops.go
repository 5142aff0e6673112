package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/mount"
	"golang.org/x/sys/unix"

	"berth/internal/errdefs"
	"berth/internal/shim"
)

// RemoveOptions are rm's flags.
type RemoveOptions struct {
	Force   bool // kill a running container first
	Volumes bool // remove its anonymous volumes
}

// Remove deletes a container: its shim and runtime state, rootfs mount, snapshot, lease,
// record and logs (and anonymous volumes with Volumes).
func (d *Daemon) Remove(ctx context.Context, ref string, opts RemoveOptions) error {
	c, err := d.get(ctx, ref)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	if c.removed {
		c.mu.Unlock()
		return errdefs.NotFound("No such container: %s", ref)
	}
	if c.State.Removing {
		c.mu.Unlock()
		return errdefs.Conflict("removal of container %s is already in progress", ref)
	}
	if c.State.Running && !opts.Force {
		c.mu.Unlock()
		if c.State.Paused {
			return errdefs.Conflict("cannot remove container %q: container is paused and must be unpaused first", c.Name)
		}
		return errdefs.Conflict("cannot remove container %q: container is running: stop the container before removing or force remove", c.Name)
	}
	c.ManuallyStopped = true
	c.State.Restarting = false
	running := c.State.Running
	c.mu.Unlock()
	if running {
		zero := 0
		if err := d.stop(ctx, c, "KILL", &zero); err != nil {
			return fmt.Errorf("cannot remove container %q: could not kill: %w", c.Name, err)
		}
	}
	c.mu.Lock()
	c.State.Removing = true
	c.State.Status = container.StateRemoving
	c.RemoveVolumes = opts.Volumes
	c.notify()
	c.mu.Unlock()
	// The removal is marked on disk (cheaper than rewriting the record), so that a start
	// after a crash in the middle finishes it.
	marker := []byte{}
	if opts.Volumes {
		marker = []byte("volumes")
	}
	if err := os.WriteFile(filepath.Join(c.dir(d), removingMarker), marker, 0o600); err != nil {
		d.log.Warn("mark a removal", "id", c.ID, "err", err)
	}

	if err := d.teardown(c, opts.Volumes); err != nil {
		os.Remove(filepath.Join(c.dir(d), removingMarker))
		c.mu.Lock()
		c.State.Removing = false
		c.State.Dead = true
		c.State.Status = container.StateDead
		c.State.Error = err.Error()
		c.save(d)
		c.notify()
		c.mu.Unlock()
		return fmt.Errorf("cannot remove container %q: %w", c.Name, err)
	}
	d.mu.Lock()
	delete(d.containers, c.ID)
	if d.names[c.Name] == c.ID {
		delete(d.names, c.Name)
	}
	d.mu.Unlock()
	c.mu.Lock()
	c.removed = true
	c.notify()
	attaches := c.attaches
	c.attaches = nil
	execs := c.execs
	c.execs = map[string]*Exec{}
	c.mu.Unlock()
	for _, a := range attaches {
		a.finish(nil)
	}
	d.mu.Lock()
	for id := range execs {
		delete(d.execs, id)
	}
	d.mu.Unlock()
	d.containerEvent(c, events.ActionDestroy, nil)
	return nil
}

// teardown removes what a stopped container holds. Idempotent: a second call after a
// failure (or after a crash) finishes the work.
func (d *Daemon) teardown(c *Container, volumes bool) error {
	d.teardownNetwork(c)
	// Runtime state of a container that died with its shim.
	if _, err := os.Stat(d.runtimeRoot() + "/" + c.ID); err == nil {
		d.runtime(context.Background(), "delete", "--force", c.ID)
	}
	os.RemoveAll(d.shimDir(c))
	// The rootfs mount moves with the container's directory (below); one elsewhere is
	// unmounted now.
	inDir := filepath.Dir(c.Rootfs) == c.dir(d)
	if !inDir {
		if err := unmountRootfs(c.Rootfs); err != nil {
			return err
		}
	}
	// The rootfs's snapshot and the container's directory leave the store at once (a
	// rename each); the rootfs is unmounted and the files deleted after the answer: a
	// crash in between leaves them where the next start deletes them (the snapshot
	// store's tmp/, a .removing- directory).
	removeRootfs, err := d.images.Snaps.Unlink(c.ID)
	if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return fmt.Errorf("remove rootfs: %w", err)
	}
	scheduled := false
	defer func() {
		// A failure below leaves the container (dead) with its record, but its snapshot
		// is unlinked already: its files go now, the rootfs unmounted first.
		if !scheduled && removeRootfs != nil {
			d.later(c, "rootfs", func() error {
				if err := unmountRootfs(c.Rootfs); err != nil {
					return err
				}
				return removeRootfs()
			})
		}
	}()
	if err := d.images.RemoveLease(c.ID); err != nil {
		return err
	}
	for _, m := range c.Mounts {
		if m.Type != mount.TypeVolume {
			continue
		}
		if volumes && m.Anonymous {
			if err := d.vols.Remove(context.Background(), m.Name, false); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
				d.log.Warn("remove anonymous volume", "name", m.Name, "err", err)
			}
		}
	}
	gone := filepath.Join(d.root, "containers", removingPrefix+c.ID)
	if err := removeContainerDir(gone); err != nil {
		return err
	}
	err = os.Rename(c.dir(d), gone)
	if errors.Is(err, os.ErrNotExist) && inDir {
		// Renamed before (a removal interrupted after it): the rootfs may still be mounted.
		err = unmountRootfs(c.Rootfs)
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove container directory: %w", err)
	}
	scheduled = true
	d.later(c, "rootfs and directory", func() error {
		// The rootfs first: its snapshot's files are deleted once nothing mounts them.
		if err := removeContainerDir(gone); err != nil {
			return err
		}
		if removeRootfs != nil {
			return removeRootfs()
		}
		return nil
	})
	return nil
}

// unmountRootfs detaches a container's rootfs mount; one not mounted is fine.
func unmountRootfs(rootfs string) error {
	if err := unix.Unmount(rootfs, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount rootfs: %w", err)
	}
	return nil
}

// removeContainerDir deletes a removed container's directory (.removing-<id>): its rootfs
// is unmounted first, so that the deletion never walks into the container's files.
func removeContainerDir(dir string) error {
	if err := unmountRootfs(filepath.Join(dir, "rootfs")); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove container directory: %w", err)
	}
	return nil
}

// removingMarker, in a container's directory, says that its removal is under way (the
// file holds "volumes" for rm -v): load finishes it.
const removingMarker = "removing"

// removingPrefix names a removed container's directory until its files are deleted.
const removingPrefix = ".removing-"

// later runs a removal of what a removed container left after the request that removed
// it has been answered; Close waits for it.
func (d *Daemon) later(c *Container, what string, remove func() error) {
	run := func() {
		if err := remove(); err != nil {
			d.log.Warn("remove a removed container's files", "id", c.ID, "what", what, "err", err)
		}
	}
	d.removalsMu.Lock()
	if d.closing {
		// Close is waiting for the removals: this one runs now, not after it.
		d.removalsMu.Unlock()
		run()
		return
	}
	d.removals.Add(1)
	d.removalsMu.Unlock()
	go func() {
		defer d.removals.Done()
		run()
	}()
}

// WaitResult is what POST /containers/{id}/wait answers.
type WaitResult struct {
	StatusCode int
	Error      string
}

// Wait waits for a condition: not-running (the default), next-exit or removed. ready is
// called once the wait is registered (the API sends its headers then, so that a client that
// waits before start never misses the exit).
func (d *Daemon) Wait(ctx context.Context, ref string, cond container.WaitCondition, ready func()) (WaitResult, error) {
	c, err := d.get(ctx, ref)
	if err != nil {
		return WaitResult{}, err
	}
	c.mu.Lock()
	startExits := c.exits
	c.mu.Unlock()
	if ready != nil {
		ready()
	}
	for {
		c.mu.Lock()
		done := false
		switch cond {
		case container.WaitConditionNextExit:
			done = c.exits > startExits
		case container.WaitConditionRemoved:
			done = c.removed
		default:
			done = !c.State.Running && !c.State.Restarting
		}
		if done {
			r := WaitResult{StatusCode: c.State.ExitCode}
			if c.State.Error != "" {
				r.Error = c.State.Error
			}
			c.mu.Unlock()
			return r, nil
		}
		if c.removed && cond != container.WaitConditionRemoved {
			code := c.State.ExitCode
			c.mu.Unlock()
			return WaitResult{StatusCode: code}, nil
		}
		ch := c.watch()
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return WaitResult{}, ctx.Err()
		}
	}
}

// Pause freezes a container's processes.
func (d *Daemon) Pause(ctx context.Context, ref string) error {
	return d.freeze(ctx, ref, true)
}

// Unpause thaws them.
func (d *Daemon) Unpause(ctx context.Context, ref string) error {
	return d.freeze(ctx, ref, false)
}

func (d *Daemon) freeze(ctx context.Context, ref string, pause bool) error {
	c, err := d.get(ctx, ref)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	running, paused := c.State.Running, c.State.Paused
	c.mu.Unlock()
	switch {
	case !running:
		return errdefs.Conflict("container %s is not running", c.ID)
	case pause && paused:
		return errdefs.Conflict("container %s is already paused", c.ID)
	case !pause && !paused:
		return errdefs.Conflict("container %s is not paused", c.ID)
	}
	verb, action := "pause", events.ActionPause
	if !pause {
		verb, action = "resume", events.ActionUnPause
	}
	if _, err := d.runtime(ctx, verb, c.ID); err != nil {
		return fmt.Errorf("cannot %s container %s: %w", verb, c.ID, err)
	}
	c.mu.Lock()
	c.State.Paused = pause
	c.State.Status = container.StateRunning
	if pause {
		c.State.Status = container.StatePaused
	}
	c.save(d)
	c.notify()
	c.mu.Unlock()
	d.containerEvent(c, action, nil)
	return nil
}

// Rename gives a container a new name.
func (d *Daemon) Rename(ctx context.Context, ref, name string) error {
	c, err := d.get(ctx, ref)
	if err != nil {
		return err
	}
	if name == "" {
		return errdefs.Invalid("Neither old nor new names may be empty")
	}
	newName := "/" + strings.TrimPrefix(name, "/")
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	old := c.Name
	gone := c.removed || c.State.Removing
	c.mu.Unlock()
	if gone {
		return errdefs.Conflict("container %s is marked for removal and cannot be renamed", ShortID(c.ID))
	}
	if old == newName {
		return errdefs.Invalid("Renaming a container with the same name as its current name")
	}
	d.mu.Lock()
	if err := d.reserveName(newName, c.ID); err != nil {
		d.mu.Unlock()
		return err
	}
	delete(d.names, old)
	d.mu.Unlock()
	c.mu.Lock()
	c.Name = newName
	err = c.saveSync(d)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	d.containerEvent(c, events.ActionRename, map[string]string{"oldName": old})
	return nil
}

// runtime runs berth-runtime with the daemon's root; its stderr becomes the error.
func (d *Daemon) runtime(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, d.cfg.RuntimeBinary, append([]string{"--root", d.runtimeRoot()}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return out, errors.New(msg)
		}
		return out, err
	}
	return out, nil
}

// reconcile brings the records in line with the machine after berthd (re)starts: running
// containers are re-attached to their shims, exits that happened while berthd was down are
// recorded, leftovers of crashed operations are removed, and containers whose restart
// policy says so are started.
func (d *Daemon) reconcile() {
	var toStart []*Container
	for _, c := range d.List() {
		c.mu.Lock()
		if c.State.Removing {
			c.mu.Unlock()
			d.log.Info("finishing an interrupted removal", "id", c.ID)
			if err := d.teardown(c, c.RemoveVolumes); err == nil {
				d.mu.Lock()
				delete(d.containers, c.ID)
				delete(d.names, c.Name)
				d.mu.Unlock()
			}
			continue
		}
		// The rootfs mount may be gone (a reboot); bring it back.
		if !isMountpoint(c.Rootfs) {
			if err := d.images.Snaps.Mount(c.ID, c.Rootfs); err != nil {
				d.log.Error("remount rootfs", "id", c.ID, "err", err)
			}
		}
		// A shim directory without a running record: berthd died between the start of the
		// shim and the record's update.
		_, shimErr := os.Stat(d.shimDir(c))
		wasRunning := c.State.Running || shimErr == nil
		c.mu.Unlock()
		if wasRunning {
			d.reattach(c)
		}
		c.mu.Lock()
		p := c.HostConfig.RestartPolicy.Name
		if !c.State.Running && !c.State.Dead && (p == container.RestartPolicyAlways || (p == container.RestartPolicyUnlessStopped && !c.ManuallyStopped)) {
			toStart = append(toStart, c)
		}
		c.mu.Unlock()
	}
	d.reconcileNetworks()
	for _, c := range toStart {
		c.op.Lock()
		c.mu.Lock()
		c.State.Restarting = false
		c.ManuallyStopped = false
		c.mu.Unlock()
		if err := d.start(context.Background(), c); err != nil {
			d.log.Error("start by restart policy", "id", c.ID, "err", err)
		}
		c.op.Unlock()
	}
}

// reattach finds the shim of a container that was running when berthd went down (or whose
// start berthd did not get to record).
func (d *Daemon) reattach(c *Container) {
	dir := d.shimDir(c)
	client := shim.Connect(dir)
	var st shim.State
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err = client.State(ctx)
		cancel()
		if err == nil || errors.Is(err, shim.ErrNoShim) {
			break
		}
		time.Sleep(time.Second)
	}
	c.mu.Lock()
	recorded := c.State.Running
	c.mu.Unlock()
	switch {
	case err == nil && st.Status == shim.StatusRunning:
		t := &runningTask{shim: client, dir: dir, exited: make(chan struct{})}
		c.mu.Lock()
		c.run = t
		c.State.Pid = st.Pid
		if !recorded {
			c.State = State{Status: container.StateRunning, Running: true, Pid: st.Pid, StartedAt: time.Now().UTC()}
			c.HasBeenStartedBefore = true
			c.save(d)
		}
		c.mu.Unlock()
		d.startHealth(c)
		d.bg.Add(1)
		go d.monitor(c, t)
		return
	case err == nil && st.Status == shim.StatusCreated:
		// berthd died between the shim's spawn and the start: nothing ran.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		client.Shutdown(ctx)
		cancel()
		os.RemoveAll(dir)
		if recorded {
			d.recordLostExit(c, dir)
		}
		return
	case err != nil && !errors.Is(err, shim.ErrNoShim):
		// A shim that does not answer is not a dead container: keep watching it.
		d.log.Error("the container's shim does not answer; still watching it", "id", c.ID, "err", err)
		t := &runningTask{shim: client, dir: dir, exited: make(chan struct{})}
		c.mu.Lock()
		c.run = t
		c.mu.Unlock()
		d.bg.Add(1)
		go d.monitor(c, t)
		return
	}
	if exit, ok, rerr := shim.ReadExit(dir); rerr == nil && ok {
		t := &runningTask{dir: dir, exited: make(chan struct{})}
		c.mu.Lock()
		c.run = t
		c.mu.Unlock()
		d.handleExit(c, t, exit)
		return
	}
	if !recorded {
		// A start that never got going: only its directory is left.
		os.RemoveAll(dir)
		return
	}
	d.recordLostExit(c, dir)
}

// recordLostExit records the exit of a container whose shim is gone without an exit record
// (killed, or the machine rebooted): exit code 255, as containerd reports a lost task.
func (d *Daemon) recordLostExit(c *Container, dir string) {
	d.log.Warn("container's shim is gone without an exit record", "id", c.ID)
	if _, err := os.Stat(d.runtimeRoot() + "/" + c.ID); err == nil {
		d.runtime(context.Background(), "delete", "--force", c.ID)
	}
	t := &runningTask{dir: dir, exited: make(chan struct{})}
	c.mu.Lock()
	c.run = t
	c.mu.Unlock()
	d.handleExit(c, t, shim.Exit{Code: 255, At: time.Now()})
}

func isMountpoint(p string) bool {
	var st, parent unix.Stat_t
	if unix.Lstat(p, &st) != nil || unix.Lstat(p+"/..", &parent) != nil {
		return false
	}
	if st.Dev != parent.Dev {
		return true
	}
	// Same device: an overlay on an overlay is still a different device; a bind mount of the
	// same filesystem would not be, but berth mounts overlays here.
	return false
}
