package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"berth/internal/atomicfile"
	"berth/internal/runtime/cgroups"
	"berth/internal/runtime/child"
	"berth/internal/runtime/seccomp"
)

const execFifo = "exec.fifo"

// Runtime is one runtime root (runc's --root).
type Runtime struct {
	Root string
	Log  *slog.Logger
}

// CreateOpts are the options of create and run.
type CreateOpts struct {
	ID            string
	Bundle        string
	PidFile       string
	ConsoleSocket string
	PreserveFDs   int
	NoPivot       bool
	// Stdio for run: the process inherits fds 0-2 of the runtime unless a terminal is used.
}

// spawned is a container init that has been cloned and is being set up.
type spawned struct {
	c       *Container
	pid     int
	sync    int // parent's end
	builder *child.Builder
	master  *os.File // pty master received from the child
	cg      cgroups.Manager
}

func (r *Runtime) logger() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.Default()
}

// Create sets up a container whose init waits for Start.
func (r *Runtime) Create(ctx context.Context, o CreateOpts) error {
	_, err := r.create(ctx, o)
	return err
}

// create is Create, returning the container it made (what `run -d` starts).
func (r *Runtime) create(ctx context.Context, o CreateOpts) (*Container, error) {
	s, err := r.spawnInit(ctx, o, false)
	if err != nil {
		return nil, err
	}
	defer s.close()
	if s.master != nil {
		if err := sendConsole(o.ConsoleSocket, s.master); err != nil {
			r.abort(s)
			return nil, err
		}
	}
	return s.c, nil
}

func (s *spawned) close() {
	if s.sync >= 0 {
		unix.Close(s.sync)
		s.sync = -1
	}
	if s.master != nil {
		s.master.Close()
	}
}

// abort kills a half-made container and removes everything it left.
func (r *Runtime) abort(s *spawned) {
	if s.pid > 0 {
		unix.Kill(s.pid, unix.SIGKILL)
		var ws unix.WaitStatus
		unix.Wait4(s.pid, &ws, 0, nil)
	}
	if s.cg != nil {
		if err := s.cg.Destroy(); err != nil {
			r.logger().Warn("remove cgroup", "err", err)
		}
	}
	os.RemoveAll(s.c.dir)
	s.close()
}

func (r *Runtime) spawnInit(ctx context.Context, o CreateOpts, run bool) (_ *spawned, retErr error) {
	if err := ValidateID(o.ID); err != nil {
		return nil, err
	}
	bundle, err := filepath.Abs(o.Bundle)
	if err != nil {
		return nil, err
	}
	mark("start")
	spec, err := LoadSpec(bundle)
	if err != nil {
		return nil, err
	}
	if spec.Process == nil {
		return nil, invalidf("process is missing")
	}
	if spec.Process.Terminal && o.ConsoleSocket == "" && !run {
		return nil, errors.New("cannot allocate a terminal without --console-socket")
	}
	if !spec.Process.Terminal && o.ConsoleSocket != "" {
		return nil, errors.New("--console-socket is only allowed with process.terminal set")
	}
	rootfs := spec.Root.Path
	if !filepath.IsAbs(rootfs) {
		rootfs = filepath.Join(bundle, rootfs)
	}
	if fi, err := os.Stat(rootfs); err != nil || !fi.IsDir() {
		if err == nil {
			err = errors.New("not a directory")
		}
		return nil, fmt.Errorf("rootfs %s: %w", rootfs, err)
	}
	if rootfs, err = filepath.EvalSymlinks(rootfs); err != nil {
		return nil, fmt.Errorf("rootfs: %w", err)
	}
	if err := os.MkdirAll(r.Root, 0o711); err != nil {
		return nil, fmt.Errorf("runtime root %s: %w", r.Root, err)
	}
	dir := r.dir(o.ID)
	if err := os.Mkdir(dir, 0o711); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("container with id %s: %w", o.ID, ErrExist)
		}
		return nil, fmt.Errorf("state dir: %w", err)
	}
	owner := lookupHostUser(os.Getuid())
	c := &Container{ID: o.ID, Bundle: bundle, Rootfs: rootfs, Created: time.Now().UTC(), Owner: owner, spec: spec, dir: dir}
	s := &spawned{c: c, sync: -1}
	defer func() {
		if retErr != nil {
			r.abort(s)
		}
	}()
	if !run {
		if err := unix.Mkfifo(filepath.Join(dir, execFifo), 0o622); err != nil {
			return nil, fmt.Errorf("exec fifo: %w", err)
		}
		if err := os.Chmod(filepath.Join(dir, execFifo), 0o622); err != nil {
			return nil, err
		}
	}
	mark("spec loaded")
	// cgroups
	cgPath := spec.Linux.CgroupsPath
	cg, err := cgroups.New(cgPath, o.ID)
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	s.cg = cg
	if err := cg.Create(cgroupResources(spec)); err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	c.CgroupPaths = cg.Paths()

	mark("cgroup created")
	fds := &fdSet{}
	defer fds.closeAll()
	comp := &compiler{spec: spec, rootfs: rootfs, joinFDs: map[specs.LinuxNamespaceType]int{}}
	if err := fds.openHostFDs(comp, dir); err != nil {
		return nil, err
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Path == "" {
			continue
		}
		fd, err := openNamespace(ns)
		if err != nil {
			return nil, err
		}
		fds.add(fd)
		comp.joinFDs[ns.Type] = fd
	}
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	s.sync = sp[0]
	fds.add(sp[1])
	comp.syncFD = sp[1]
	comp.userns = hasNS(spec, specs.UserNamespace)
	comp.newMntNS = hasNS(spec, specs.MountNamespace) // a joined mount namespace gets the rootfs set up too, as runc does
	if cg.Version() == 2 {
		comp.cgroupV2Dir = c.CgroupPaths[""]
	} else {
		comp.cgroupBinds = cgroupBindList(c.CgroupPaths)
	}

	pl, err := planProcess(spec.Process, rootfs, o.PreserveFDs)
	if err != nil {
		return nil, err
	}
	if spec.Linux.Seccomp != nil {
		prog, err := seccomp.CompileCached(spec.Linux.Seccomp, filepath.Join(r.Root, ".seccomp-cache"))
		if err != nil {
			return nil, fmt.Errorf("seccomp: %w", err)
		}
		pl.seccomp = prog
		for _, w := range prog.Warnings {
			r.logger().Debug("seccomp: " + w)
		}
	}
	mark("process planned")
	comp.b = child.NewBuilder(int32(maxFD()+8), sp[1])
	flags, hookWait, err := comp.compileInit(pl, o, run)
	if err != nil {
		return nil, err
	}
	for _, w := range pl.warnings {
		r.logger().Debug(w)
	}
	s.builder = comp.b
	prog := comp.b.Finish()
	before := func() error { return enterForChildren(spec, comp.joinFDs) }
	mark("compiled")
	pid, err := child.Spawn(prog, flags, before)
	if err != nil {
		return nil, err
	}
	s.pid = pid
	c.Pid = pid
	if _, start, err := procStat(pid); err == nil {
		c.PidStart = start
	}
	mark("cloned")
	fds.closeAll()
	// parent side of the setup
	if hasNS(spec, specs.UserNamespace) && nsPath(spec, specs.UserNamespace) == "" {
		if err := writeIDMaps(pid, spec.Linux); err != nil {
			return nil, err
		}
	}
	if err := release(s.sync); err != nil {
		return nil, r.childError(s, err)
	}
	if err := cg.Apply(pid); err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	mark("cgroup applied")
	if spec.Process.OOMScoreAdj != nil {
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid), []byte(strconv.Itoa(*spec.Process.OOMScoreAdj)), 0); err != nil {
			return nil, fmt.Errorf("set oom_score_adj to %d: %w", *spec.Process.OOMScoreAdj, err)
		}
	}
	if err := release(s.sync); err != nil {
		return nil, r.childError(s, err)
	}
	if err := r.waitReady(ctx, s, hookWait, run); err != nil {
		return nil, err
	}
	mark("ready")
	if err := c.save(); err != nil {
		return nil, fmt.Errorf("save state: %w", err)
	}
	if o.PidFile != "" {
		if err := atomicfile.WriteFile(o.PidFile, []byte(strconv.Itoa(pid)), 0o644, atomicfile.Renamed); err != nil {
			return nil, fmt.Errorf("pid file: %w", err)
		}
	}
	return s, nil
}

// childError explains why talking to the child failed: the error it reported if it did.
func (r *Runtime) childError(s *spawned, err error) error {
	if cerr := awaitExec(s.sync, s.builder, nil); cerr != nil {
		return cerr
	}
	return fmt.Errorf("%w%s", err, exitDescription(s.pid))
}

// release lets the child past its next wait point.
func release(sync int) error {
	if _, err := unix.Write(sync, []byte{'G'}); err != nil {
		return fmt.Errorf("signal container init: %w", err)
	}
	return nil
}

// waitReady reads the child's status records until it is ready (or failed).
func (r *Runtime) waitReady(ctx context.Context, s *spawned, hookWait, run bool) error {
	for {
		rec, fd, tag, err := readMessage(s.sync)
		if err != nil {
			return fmt.Errorf("read from container init: %w", err)
		}
		if fd >= 0 {
			if tag == fdTagSeccomp {
				err := r.sendSeccompListener(s.c, s.pid, fd)
				unix.Close(fd)
				if err != nil {
					return err
				}
				continue
			}
			if s.master != nil {
				unix.Close(fd)
				continue
			}
			s.master = os.NewFile(uintptr(fd), "/dev/ptmx")
			continue
		}
		if rec == nil {
			return fmt.Errorf("container init exited during setup%s", exitDescription(s.pid))
		}
		switch rec.Kind {
		case child.StatusError:
			return s.builder.Describe(*rec)
		case child.StatusHooks:
			st := s.c.stateAs(StatusCreated, s.pid) // what runtime-tools and crun expect
			h := s.c.spec.Hooks
			if h != nil {
				//lint:ignore SA1019 prestart hooks are deprecated but still in the spec, and engines use them
				if err := runHooks(ctx, "prestart", h.Prestart, st); err != nil {
					return err
				}
				if err := runHooks(ctx, "createRuntime", h.CreateRuntime, st); err != nil {
					return err
				}
				if err := r.runHooksIn(ctx, s.pid, s.c.spec, "createContainer", h.CreateContainer, st); err != nil {
					return err
				}
			}
			if err := release(s.sync); err != nil {
				return err
			}
		case child.StatusReady:
			return nil
		default:
			return fmt.Errorf("unexpected record %d from container init", rec.Kind)
		}
	}
}

func exitDescription(pid int) string {
	var ws unix.WaitStatus
	if p, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); err == nil && p == pid {
		if ws.Signaled() {
			return fmt.Sprintf(" (killed by %v)", ws.Signal())
		}
		return fmt.Sprintf(" (exit status %d)", ws.ExitStatus())
	}
	return ""
}

// readMessage reads one message from the child: a status record, an fd with its tag, or EOF
// (nil, -1, 0, nil).
func readMessage(sock int) (*child.Record, int, byte, error) {
	buf := make([]byte, 64)
	oob := make([]byte, unix.CmsgSpace(4*4))
	reset := false
	for {
		n, oobn, _, _, err := unix.Recvmsg(sock, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err == unix.ECONNRESET && !reset {
			// The child exited with our last byte unread; what it sent before is
			// still queued.
			reset = true
			continue
		}
		if err != nil {
			return nil, -1, 0, err
		}
		if oobn > 0 {
			msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
			if err != nil {
				return nil, -1, 0, err
			}
			for _, m := range msgs {
				fds, err := unix.ParseUnixRights(&m)
				if err == nil && len(fds) > 0 {
					for _, extra := range fds[1:] {
						unix.Close(extra)
					}
					return nil, fds[0], buf[0], nil
				}
			}
		}
		if n == 0 {
			return nil, -1, 0, nil
		}
		if n < int(unsafe.Sizeof(child.Record{})) {
			return nil, -1, 0, fmt.Errorf("short record (%d bytes)", n)
		}
		rec := *(*child.Record)(unsafe.Pointer(&buf[0]))
		return &rec, -1, 0, nil
	}
}

// Start releases a created container's process.
func (r *Runtime) Start(ctx context.Context, id string) error {
	c, err := r.Load(id)
	if err != nil {
		return err
	}
	return r.start(ctx, c)
}

func (r *Runtime) start(ctx context.Context, c *Container) error {
	const stopped = "cannot start a container that has stopped"
	// The pidfd first: once the fifo is open the init may exec, exit and be reaped at once. The
	// status is worked out after it, so a live init is the process the pidfd refers to.
	pidfd, err := unix.PidfdOpen(c.Pid, 0)
	if err != nil {
		return errors.New(stopped)
	}
	defer unix.Close(pidfd)
	switch st := r.Status(c); st {
	case StatusCreated:
	case StatusStopped:
		return errors.New(stopped)
	default:
		return fmt.Errorf("cannot start an already %s container", st)
	}
	if h := c.hooks(); h != nil && len(h.StartContainer) > 0 {
		spec, err := c.Spec() // the hooks run in the container's namespaces
		if err != nil {
			return err
		}
		st := c.stateAs(StatusCreated, c.Pid)
		if err := r.runHooksIn(ctx, c.Pid, spec, "startContainer", h.StartContainer, st); err != nil {
			return err
		}
	}
	fifo := filepath.Join(c.dir, execFifo)
	fd, err := unix.Open(fifo, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open exec fifo: %w", err)
	}
	defer unix.Close(fd)
	for {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(pidfd), Events: unix.POLLIN}}
		if _, err := unix.Poll(pfd, -1); err != nil {
			if err == unix.EINTR {
				continue
			}
			return err
		}
		if pfd[0].Revents&unix.POLLIN != 0 {
			var b [1]byte
			n, err := unix.Read(fd, b[:])
			if err == unix.EAGAIN {
				continue
			}
			if err != nil || n != 1 {
				return fmt.Errorf("container init did not start")
			}
			break
		}
		if pfd[1].Revents != 0 {
			return fmt.Errorf("container init exited before start")
		}
		if pfd[0].Revents&unix.POLLHUP != 0 {
			time.Sleep(time.Millisecond)
		}
	}
	os.Remove(fifo) // the fifo's absence is what marks the container started
	mark("started")
	if h := c.hooks(); h != nil && len(h.Poststart) > 0 {
		r.runHooksWarn(ctx, "poststart", h.Poststart, r.StateOf(c))
	}
	return nil
}

// Kill sends sig to the container's init, or with all to every process in its cgroup.
func (r *Runtime) Kill(id string, sig unix.Signal, all bool) error {
	c, err := r.Load(id)
	if err != nil {
		return err
	}
	if all {
		cg, err := r.cgroup(c)
		if err != nil {
			return err
		}
		return signalAll(cg, sig)
	}
	return signalPid(c, sig)
}

func signalPid(c *Container, sig unix.Signal) error {
	pidfd, err := unix.PidfdOpen(c.Pid, 0)
	if err != nil {
		return fmt.Errorf("container %s is not running", c.ID)
	}
	defer unix.Close(pidfd)
	if !c.alive() {
		return fmt.Errorf("container %s is not running", c.ID)
	}
	if err := unix.PidfdSendSignal(pidfd, sig, nil, 0); err != nil {
		return fmt.Errorf("kill container %s: %w", c.ID, err)
	}
	return nil
}

func signalAll(cg cgroups.Manager, sig unix.Signal) error {
	frozen := false
	if sig == unix.SIGKILL {
		if err := cg.Freeze(); err == nil {
			frozen = true
		}
	}
	pids, err := cg.Pids()
	if err != nil {
		if frozen {
			cg.Thaw()
		}
		return err
	}
	for _, p := range pids {
		unix.Kill(p, sig)
	}
	if frozen {
		return cg.Thaw()
	}
	return nil
}

func (r *Runtime) cgroup(c *Container) (cgroups.Manager, error) {
	return cgroups.Load(c.CgroupPaths)
}

// Delete removes a stopped (or created) container; force kills a running one first.
func (r *Runtime) Delete(ctx context.Context, id string, force bool) error {
	c, err := r.Load(id)
	if err != nil {
		if force && errors.Is(err, ErrNotExist) {
			return nil
		}
		if !errors.Is(err, ErrNotExist) && force {
			// corrupt state: remove what there is
			return os.RemoveAll(r.dir(id))
		}
		return err
	}
	st := r.Status(c)
	switch st {
	case StatusStopped, StatusCreated:
	default:
		if !force {
			return fmt.Errorf("cannot delete container %s that is not stopped: %s", id, st)
		}
	}
	return r.destroy(ctx, c)
}

func (r *Runtime) destroy(ctx context.Context, c *Container) error {
	cg, cgErr := r.cgroup(c)
	if c.alive() {
		if cgErr == nil {
			cg.Thaw()
		}
		signalPid(c, unix.SIGKILL)
		waitExit(c, 10*time.Second)
	}
	if cgErr == nil {
		// processes of a shared pid namespace outlive the init: kill them all
		if pids, err := cg.Pids(); err == nil && len(pids) > 0 {
			signalAll(cg, unix.SIGKILL)
		}
		if err := cg.Destroy(); err != nil {
			r.logger().Warn("remove cgroup", "id", c.ID, "err", err)
		}
	}
	if h := c.hooks(); h != nil && len(h.Poststop) > 0 {
		r.runHooksWarn(ctx, "poststop", h.Poststop, c.stateAs(StatusStopped, 0))
	}
	if err := os.RemoveAll(c.dir); err != nil {
		return fmt.Errorf("remove state: %w", err)
	}
	return nil
}

// waitExit waits until the init has exited.
func waitExit(c *Container, timeout time.Duration) bool {
	pidfd, err := unix.PidfdOpen(c.Pid, 0)
	if err != nil {
		return true
	}
	defer unix.Close(pidfd)
	deadline := time.Now().Add(timeout)
	for c.alive() {
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		pfd := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		unix.Poll(pfd, int(min(left, 100*time.Millisecond)/time.Millisecond)+1)
	}
	return true
}

// Pause freezes the container.
func (r *Runtime) Pause(id string) error {
	c, err := r.Load(id)
	if err != nil {
		return err
	}
	if st := r.Status(c); st != StatusRunning && st != StatusCreated {
		return fmt.Errorf("container %s is not running: %s", id, st)
	}
	cg, err := r.cgroup(c)
	if err != nil {
		return err
	}
	return cg.Freeze()
}

// Resume thaws the container.
func (r *Runtime) Resume(id string) error {
	c, err := r.Load(id)
	if err != nil {
		return err
	}
	if st := r.Status(c); st != StatusPaused {
		return fmt.Errorf("container %s is not paused: %s", id, st)
	}
	cg, err := r.cgroup(c)
	if err != nil {
		return err
	}
	return cg.Thaw()
}

// Update changes the container's resources.
func (r *Runtime) Update(id string, res *specs.LinuxResources) error {
	c, err := r.Load(id)
	if err != nil {
		return err
	}
	spec, err := c.Spec()
	if err != nil {
		return err
	}
	if r.Status(c) == StatusStopped {
		return fmt.Errorf("container %s is stopped", id)
	}
	cg, err := r.cgroup(c)
	if err != nil {
		return err
	}
	if err := cg.Set(res); err != nil {
		return err
	}
	mergeResources(spec, res)
	return c.save()
}

// Pids lists the container's processes.
func (r *Runtime) Pids(id string) ([]int, error) {
	c, err := r.Load(id)
	if err != nil {
		return nil, err
	}
	cg, err := r.cgroup(c)
	if err != nil {
		return nil, err
	}
	return cg.Pids()
}

// Stats returns the container's cgroup statistics.
func (r *Runtime) Stats(id string) (*cgroups.Stats, error) {
	c, err := r.Load(id)
	if err != nil {
		return nil, err
	}
	if r.Status(c) == StatusStopped {
		return nil, fmt.Errorf("container %s is stopped", id)
	}
	cg, err := r.cgroup(c)
	if err != nil {
		return nil, err
	}
	return cg.Stats()
}

// maxFD is the highest fd open in this process.
func maxFD() int {
	ents, err := os.ReadDir("/proc/self/fd")
	m := 2
	if err != nil {
		return 1024
	}
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil && n > m {
			m = n
		}
	}
	return m
}

func cgroupBindList(paths map[string]string) []cgroupBind {
	seen := map[string]bool{}
	var out []cgroupBind
	for _, dir := range paths {
		rest, ok := strings.CutPrefix(dir, "/sys/fs/cgroup/")
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(rest, "/")
		if seen[name] || name == "" {
			continue
		}
		seen[name] = true
		out = append(out, cgroupBind{name: name, hostDir: dir})
	}
	return out
}

// sendSeccompListener hands a seccomp notify fd to the agent at the spec's listenerPath, with the
// container process state, as the runtime spec describes.
func (r *Runtime) sendSeccompListener(c *Container, pid, fd int) error {
	spec, err := c.Spec()
	if err != nil {
		return err
	}
	sc := spec.Linux.Seccomp
	if sc == nil || sc.ListenerPath == "" {
		return fmt.Errorf("seccomp: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath")
	}
	msg, err := json.Marshal(specs.ContainerProcessState{
		Version: specs.Version, Fds: []string{specs.SeccompFdName}, Pid: pid,
		Metadata: sc.ListenerMetadata, State: c.stateAs(StatusCreating, pid).State,
	})
	if err != nil {
		return err
	}
	conn, err := net.Dial("unix", sc.ListenerPath)
	if err != nil {
		return fmt.Errorf("seccomp listener %s: %w", sc.ListenerPath, err)
	}
	defer conn.Close()
	if _, _, err := conn.(*net.UnixConn).WriteMsgUnix(msg, unix.UnixRights(fd), nil); err != nil {
		return fmt.Errorf("seccomp listener %s: %w", sc.ListenerPath, err)
	}
	return nil
}
