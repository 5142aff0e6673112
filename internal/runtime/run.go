package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"berth/internal/atomicfile"
	"berth/internal/runtime/child"
	"berth/internal/runtime/seccomp"
)

// Run creates and starts a container. Unless detach is set it waits for the process and returns
// its exit code (128+signal when killed), then deletes the container.
func (r *Runtime) Run(ctx context.Context, o CreateOpts, detach bool) (int, error) {
	if detach {
		c, err := r.create(ctx, o)
		if err != nil {
			return 1, err
		}
		if err := r.start(ctx, c); err != nil {
			r.destroy(ctx, c)
			return 1, err
		}
		return 0, nil
	}
	sigs, stopSigs := notifyForwarded()
	defer stopSigs()
	s, err := r.spawnInit(ctx, o, true)
	if err != nil {
		return 1, err
	}
	defer s.close()
	c := s.c
	fail := func(err error) (int, error) {
		r.destroy(ctx, c)
		return 1, err
	}
	if h := c.spec.Hooks; h != nil && len(h.StartContainer) > 0 {
		if err := r.runHooksIn(ctx, s.pid, c.spec, "startContainer", h.StartContainer, r.StateOf(c)); err != nil {
			return fail(err)
		}
	}
	var restore func()
	if s.master != nil {
		if o.ConsoleSocket != "" {
			if err := sendConsole(o.ConsoleSocket, s.master); err != nil {
				return fail(err)
			}
		} else {
			restore = attachTerminal(s.master)
		}
	}
	defer func() {
		if restore != nil {
			restore()
		}
	}()
	if err := release(s.sync); err != nil {
		return fail(err)
	}
	if err := awaitExec(s.sync, s.builder, nil); err != nil {
		return fail(err)
	}
	if h := c.spec.Hooks; h != nil && len(h.Poststart) > 0 {
		r.runHooksWarn(ctx, "poststart", h.Poststart, r.StateOf(c))
	}
	mark("exec done")
	code := waitForward(s.pid, sigs, s.master)
	if restore != nil {
		restore()
		restore = nil
	}
	mark("exited")
	if err := r.destroy(ctx, c); err != nil {
		r.logger().Warn("delete container", "id", c.ID, "err", err)
	}
	mark("deleted")
	return code, nil
}

// forwardedSignals are relayed to the container's process by run and exec: every signal a user
// or supervisor sends, not the synchronous ones nor SIGCHLD, SIGPIPE and SIGURG (the Go runtime's).
var forwardedSignals = []os.Signal{unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGABRT, unix.SIGUSR1,
	unix.SIGUSR2, unix.SIGALRM, unix.SIGTERM, unix.SIGSTKFLT, unix.SIGCONT, unix.SIGTSTP, unix.SIGTTIN,
	unix.SIGTTOU, unix.SIGXCPU, unix.SIGXFSZ, unix.SIGVTALRM, unix.SIGPROF, unix.SIGWINCH, unix.SIGIO,
	unix.SIGPWR, unix.SIGSYS}

// notifyForwarded relays forwardedSignals to sigs. Registering costs ~1 ms of start-up, so it
// is done on another goroutine while the container's process is being set up; stop waits for it
// and undoes it.
func notifyForwarded() (sigs chan os.Signal, stop func()) {
	sigs = make(chan os.Signal, 64)
	notified := make(chan struct{})
	go func() {
		signal.Notify(sigs, forwardedSignals...)
		close(notified)
	}()
	return sigs, func() {
		<-notified
		signal.Stop(sigs)
	}
}

// awaitExec reads the child's messages until its end of the socket closes at execve. An error
// record is returned as the failure it describes; fds go to onFD (closed when onFD is nil).
func awaitExec(sock int, b *child.Builder, onFD func(fd int, tag byte) error) error {
	for {
		rec, fd, tag, err := readMessage(sock)
		if fd >= 0 {
			if onFD == nil {
				unix.Close(fd)
			} else if err := onFD(fd, tag); err != nil {
				return err
			}
			continue
		}
		if err != nil || rec == nil {
			return nil
		}
		if rec.Kind == child.StatusError {
			return b.Describe(*rec)
		}
	}
}

// waitForward reaps pid, forwarding the signals this process receives, and returns the exit code.
func waitForward(pid int, sigs chan os.Signal, master *os.File) int {
	done := reap(pid)
	for {
		select {
		case ws := <-done:
			if ws.Signaled() {
				return 128 + int(ws.Signal())
			}
			return ws.ExitStatus()
		case sig := <-sigs:
			s := sig.(unix.Signal)
			switch s {
			case unix.SIGCHLD, unix.SIGURG, unix.SIGPIPE:
				continue
			case unix.SIGWINCH:
				if master != nil {
					resizeFrom(master, os.Stdin)
				}
				continue
			}
			unix.Kill(pid, s)
		}
	}
}

func resizeFrom(master *os.File, from *os.File) {
	ws, err := unix.IoctlGetWinsize(int(from.Fd()), unix.TIOCGWINSZ)
	if err == nil {
		unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, ws)
	}
}

// attachTerminal copies between this process's stdio and the pty master.
func attachTerminal(master *os.File) func() {
	var restore func()
	if term.IsTerminal(int(os.Stdin.Fd())) {
		if st, err := term.MakeRaw(int(os.Stdin.Fd())); err == nil {
			restore = func() { term.Restore(int(os.Stdin.Fd()), st) }
		}
		resizeFrom(master, os.Stdin)
	}
	go io.Copy(master, os.Stdin)
	done := make(chan struct{})
	go func() {
		io.Copy(os.Stdout, master)
		close(done)
	}()
	return func() {
		// let the output written before the exit reach us (EIO once every peer fd is closed)
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
		if restore != nil {
			restore()
		}
	}
}

// ExecOpts are the options of exec.
type ExecOpts struct {
	Process       *specs.Process
	PidFile       string
	ConsoleSocket string
	Detach        bool
	PreserveFDs   int
}

// Exec runs a new process in a running container (as Load returned it: the caller builds the
// process from its spec). Unless detached it waits and returns the exit code.
func (r *Runtime) Exec(ctx context.Context, c *Container, o ExecOpts) (int, error) {
	switch st := r.Status(c); st {
	case StatusStopped:
		return 1, fmt.Errorf("cannot exec in a stopped container")
	case StatusPaused:
		return 1, fmt.Errorf("cannot exec in a paused container")
	}
	p := o.Process
	if err := validateProcess(p); err != nil {
		return 1, err
	}
	if p.Terminal && o.ConsoleSocket == "" && o.Detach {
		return 1, errors.New("cannot allocate a terminal without --console-socket when detached")
	}
	s, err := c.Spec()
	if err != nil {
		return 1, err
	}
	pl, err := planProcess(p, c.Rootfs, o.PreserveFDs)
	if err != nil {
		return 1, err
	}
	if s.Linux.Seccomp != nil {
		if pl.seccomp, err = seccomp.CompileCached(s.Linux.Seccomp, filepath.Join(r.Root, ".seccomp-cache")); err != nil {
			return 1, fmt.Errorf("seccomp: %w", err)
		}
	}
	mark("process planned")
	var sigs chan os.Signal
	if !o.Detach {
		var stopSigs func()
		sigs, stopSigs = notifyForwarded()
		defer stopSigs()
	}
	pidfd, err := unix.PidfdOpen(c.Pid, 0)
	if err != nil {
		return 1, fmt.Errorf("container %s is not running", c.ID)
	}
	defer unix.Close(pidfd)
	nsPid := -1
	if hasNS(s, specs.PIDNamespace) {
		if nsPid, err = unix.Open(fmt.Sprintf("/proc/%d/ns/pid", c.Pid), unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
			return 1, fmt.Errorf("container pid namespace: %w", err)
		}
		defer unix.Close(nsPid)
	}
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 1, err
	}
	defer unix.Close(sp[0])
	comp := &compiler{spec: s, syncFD: sp[1], userns: hasNS(s, specs.UserNamespace)}
	comp.b = child.NewBuilder(int32(maxFD()+8), sp[1])
	b := comp.b
	b.Special("reset signal handlers", child.KindResetSignals)
	b.Sys("make the process non-dumpable", unix.SYS_PRCTL, unix.PR_SET_DUMPABLE, 0)
	buf := b.Buf(8)
	b.Special("wait for the runtime", child.KindReadByte, uintptr(sp[1]), buf)
	var flags uintptr
	for _, ns := range s.Linux.Namespaces {
		if ns.Type != specs.PIDNamespace {
			flags |= cloneFlags[ns.Type]
		}
	}
	if flags != 0 {
		b.Sys("join the container's namespaces", unix.SYS_SETNS, uintptr(pidfd), flags)
	}
	comp.becomeNSRoot()
	if p.Terminal {
		b.Sys("create session", unix.SYS_SETSID)
		comp.attachConsole(comp.consoleAt(child.AtFDCWD))
	}
	comp.compileCwd(p.Cwd)
	comp.compileCloseFDs(pl)
	comp.compileIdentity(pl)
	comp.compileExecCheck(pl)
	comp.compileExec(pl)
	before := func() error {
		if nsPid >= 0 {
			if err := unix.Setns(nsPid, unix.CLONE_NEWPID); err != nil {
				return fmt.Errorf("join pid namespace: %w", err)
			}
		}
		return nil
	}
	pid, err := child.Spawn(b.Finish(), 0, before)
	unix.Close(sp[1])
	if err != nil {
		return 1, err
	}
	mark("cloned")
	kill := func() {
		unix.Kill(pid, unix.SIGKILL)
		var ws unix.WaitStatus
		unix.Wait4(pid, &ws, 0, nil)
	}
	if cg, err := r.cgroup(c); err == nil {
		if err := cg.Apply(pid); err != nil {
			kill()
			return 1, fmt.Errorf("cgroup: %w", err)
		}
	}
	mark("cgroup applied")
	if p.OOMScoreAdj != nil {
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid), []byte(strconv.Itoa(*p.OOMScoreAdj)), 0); err != nil {
			kill()
			return 1, fmt.Errorf("set oom_score_adj: %w", err)
		}
	}
	if err := release(sp[0]); err != nil {
		kill()
		return 1, err
	}
	var master *os.File
	err = awaitExec(sp[0], b, func(fd int, tag byte) error {
		if tag == fdTagSeccomp {
			defer unix.Close(fd)
			return r.sendSeccompListener(c, pid, fd)
		}
		master = os.NewFile(uintptr(fd), "/dev/ptmx")
		return nil
	})
	if err != nil {
		kill()
		if master != nil {
			master.Close()
		}
		return 1, err
	}
	mark("exec done")
	if master != nil {
		defer master.Close()
		if o.ConsoleSocket != "" {
			if err := sendConsole(o.ConsoleSocket, master); err != nil {
				kill()
				return 1, err
			}
		} else if !o.Detach {
			finish := attachTerminal(master)
			code := waitForward(pid, sigs, master)
			finish()
			return code, nil
		}
	}
	if o.PidFile != "" {
		if err := atomicfile.WriteFile(o.PidFile, []byte(strconv.Itoa(pid)), 0o644, atomicfile.Renamed); err != nil {
			kill()
			return 1, fmt.Errorf("pid file: %w", err)
		}
	}
	if o.Detach {
		return 0, nil
	}
	return waitForward(pid, sigs, master), nil
}
