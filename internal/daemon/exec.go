package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"berth/internal/errdefs"
	"berth/internal/oci"
)

// Exec is an exec session (docker exec): created, then started once.
type Exec struct {
	ID          string
	ContainerID string
	Config      container.ExecCreateRequest

	mu       sync.Mutex
	running  bool
	started  bool
	exitCode *int
	pid      int
	// console is the exec's pty master while it runs with a TTY.
	console *os.File
	done    chan struct{}
	// dir holds the runtime's pid file while the exec runs; proc is the runtime's process.
	dir  string
	proc *os.Process
}

// ExecCreate registers an exec session on a running container.
func (d *Daemon) ExecCreate(ctx context.Context, ref string, cfg container.ExecCreateRequest) (string, error) {
	c, err := d.get(ctx, ref)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	running, paused, restarting := c.State.Running, c.State.Paused, c.State.Restarting
	c.mu.Unlock()
	switch {
	case !running:
		return "", errdefs.Conflict("container %s is not running", c.ID)
	case paused:
		return "", errdefs.Conflict("container %s is paused, unpause the container before exec", c.ID)
	case restarting:
		return "", errdefs.Conflict("container %s is restarting, wait until the container is running", c.ID)
	}
	if len(cfg.Cmd) == 0 {
		return "", errdefs.Invalid("No exec command specified")
	}
	if _, err := ParseDetachKeys(cfg.DetachKeys); err != nil {
		return "", err
	}
	e := &Exec{ID: newID(), ContainerID: c.ID, Config: cfg, done: make(chan struct{})}
	d.mu.Lock()
	d.execs[e.ID] = e
	d.mu.Unlock()
	c.mu.Lock()
	c.execs[e.ID] = e
	c.mu.Unlock()
	d.containerEvent(c, events.Action("exec_create: "+execCommand(cfg.Cmd)), map[string]string{"execID": e.ID})
	return e.ID, nil
}

func execCommand(cmd []string) string {
	s := ""
	for i, a := range cmd {
		if i > 0 {
			s += " "
		}
		s += a
	}
	return s
}

// GetExec finds an exec session.
func (d *Daemon) GetExec(id string) (*Exec, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	e, ok := d.execs[id]
	if !ok {
		return nil, errdefs.NotFound("No such exec instance: %s", id)
	}
	return e, nil
}

// ExecInspect is GET /exec/{id}/json.
func (d *Daemon) ExecInspect(id string) (container.ExecInspectResponse, error) {
	e, err := d.GetExec(id)
	if err != nil {
		return container.ExecInspectResponse{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	r := container.ExecInspectResponse{
		ID:          e.ID,
		Running:     e.running,
		ExitCode:    e.exitCode,
		OpenStdin:   e.Config.AttachStdin,
		OpenStdout:  e.Config.AttachStdout,
		OpenStderr:  e.Config.AttachStderr,
		ContainerID: e.ContainerID,
		Pid:         e.pid,
		ProcessConfig: &container.ExecProcessConfig{
			Tty:        e.Config.Tty,
			Entrypoint: e.Config.Cmd[0],
			Arguments:  slices.Clone(e.Config.Cmd[1:]),
			Privileged: &e.Config.Privileged,
			User:       e.Config.User,
		},
		CanRemove: !e.running && e.started,
	}
	if keys, err := ParseDetachKeys(e.Config.DetachKeys); err == nil {
		r.DetachKeys = keys
	}
	return r, nil
}

// ExecStart runs an exec session. With conn (attached), stdio flows through it and
// ExecStart returns when the process exits; without (detached) it returns once started.
func (d *Daemon) ExecStart(ctx context.Context, id string, conn Conn, tty bool) (err error) {
	e, err := d.GetExec(id)
	if err != nil {
		return err
	}
	e.mu.Lock()
	if e.started {
		e.mu.Unlock()
		return errdefs.Conflict("Error: Exec command %s has already run", id)
	}
	e.started = true
	e.mu.Unlock()
	c, err := d.getAny(e.ContainerID)
	if err != nil {
		return err
	}
	defer func() {
		// An exec that could not start still ends, with dockerd's code (126, 127 missing).
		if err != nil && e.exitCodeValue() == -1 {
			code := startErrorCode(err)
			if code == 128 {
				code = 126
			}
			d.finishExec(c, e, code)
		}
	}()
	c.mu.Lock()
	running := c.State.Running
	c.mu.Unlock()
	if !running {
		return errdefs.Conflict("container %s is not running", c.ID)
	}
	proc, err := d.execProcess(c, e.Config)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(d.shimDir(c), "exec-")
	if err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	cleanup := func() { os.RemoveAll(dir) }
	b, _ := json.Marshal(proc)
	procFile := filepath.Join(dir, "process.json")
	if err := os.WriteFile(procFile, b, 0o600); err != nil {
		cleanup()
		return err
	}
	// The runtime's own errors also go to runtime.log: a failed start (no pid file) is
	// told apart from the process's exit code by it.
	args := []string{"--root", d.runtimeRoot(), "--log", filepath.Join(dir, "runtime.log"), "exec", "--process", procFile, "--pid-file", filepath.Join(dir, "pid")}
	var consoleL *net.UnixListener
	runtimeDir := ""
	if e.Config.Tty {
		sock, runtimeSock := filepath.Join(dir, "c.sock"), ""
		if consoleL, runtimeSock, err = listenConsole(dir); err != nil {
			cleanup()
			return fmt.Errorf("exec console socket: %w", err)
		}
		if runtimeSock != sock {
			runtimeDir = dir
		}
		args = append(args, "--console-socket", runtimeSock)
	}
	args = append(args, c.ID)
	cmd := exec.Command(d.cfg.RuntimeBinary, args...)
	cmd.Dir = runtimeDir
	var stdinW io.WriteCloser
	var outR, errR io.ReadCloser
	if !e.Config.Tty {
		if conn != nil && e.Config.AttachStdin {
			if stdinW, err = cmd.StdinPipe(); err != nil {
				cleanup()
				return err
			}
		}
		if conn != nil && e.Config.AttachStdout {
			if outR, err = cmd.StdoutPipe(); err != nil {
				cleanup()
				return err
			}
		}
		if conn != nil && e.Config.AttachStderr {
			if errR, err = cmd.StderrPipe(); err != nil {
				cleanup()
				return err
			}
		}
	}
	stderrBuf := LimitedBuffer{Max: 4096}
	if errR == nil && !e.Config.Tty {
		cmd.Stderr = &stderrBuf
	}
	if err := cmd.Start(); err != nil {
		if consoleL != nil {
			consoleL.Close()
		}
		cleanup()
		return fmt.Errorf("exec: %w", err)
	}
	e.mu.Lock()
	e.running = true
	e.dir, e.proc = dir, cmd.Process
	e.mu.Unlock()
	d.containerEvent(c, events.Action("exec_start: "+execCommand(e.Config.Cmd)), map[string]string{"execID": e.ID})

	var console *os.File
	if consoleL != nil {
		console, err = receiveConsole(consoleL)
		consoleL.Close()
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			cleanup()
			d.finishExec(c, e, 126)
			return fmt.Errorf("exec console: %w", err)
		}
		e.mu.Lock()
		e.console = console
		e.mu.Unlock()
		if sz := e.Config.ConsoleSize; sz != nil && sz[0] > 0 && sz[1] > 0 {
			unix.IoctlSetWinsize(int(console.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: uint16(sz[0]), Col: uint16(sz[1])})
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "pid")); err == nil {
		pid, _ := strconv.Atoi(string(b))
		e.mu.Lock()
		e.pid = pid
		e.mu.Unlock()
	}

	startFailed := false
	finish := func() {
		err := cmd.Wait()
		code := 0
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					code = 128 + int(ws.Signal())
				}
			} else {
				code = 126
			}
		}
		if console != nil {
			console.Close()
		}
		if code != 0 {
			// No pid file: the runtime failed before the process ran (dockerd's 126/127).
			if _, err := os.Stat(filepath.Join(dir, "pid")); errors.Is(err, os.ErrNotExist) {
				if msg, _ := os.ReadFile(filepath.Join(dir, "runtime.log")); len(msg) > 0 {
					code = startErrorCode(classifyStartError(errors.New(string(msg)), e.Config.Cmd[0]))
					if code == 128 {
						code = 126
					}
					startFailed = true
				}
			}
		}
		cleanup()
		d.finishExec(c, e, code)
	}
	if conn == nil {
		go func() {
			// Detached: nobody reads the output.
			if console != nil {
				io.Copy(io.Discard, console)
			}
			finish()
		}()
		return nil
	}
	var keys []byte
	if e.Config.Tty {
		keys, _ = ParseDetachKeys(e.Config.DetachKeys)
	}
	var wg sync.WaitGroup
	if console != nil {
		// The terminal is drained until the process exits, whether the client reads, went
		// away or detached; after a detach the process runs on, as with dockerd.
		outDone := make(chan struct{})
		go func() {
			buf := make([]byte, 32<<10)
			var dst io.Writer = conn
			for {
				n, err := console.Read(buf)
				if n > 0 && dst != io.Discard {
					if _, werr := dst.Write(buf[:n]); werr != nil {
						dst = io.Discard
					}
				}
				if err != nil {
					close(outDone)
					return
				}
			}
		}()
		detached := make(chan struct{})
		if e.Config.AttachStdin {
			go func() {
				if errors.Is(copyDetach(console, conn, keys), ErrDetached) {
					close(detached)
				}
			}()
		}
		select {
		case <-outDone:
		case <-detached:
			go func() { <-outDone; finish() }()
			return nil
		}
	} else {
		var mu sync.Mutex
		w := logWriter(conn, false)
		pipe := func(r io.Reader, stream string) {
			defer wg.Done()
			buf := make([]byte, 32<<10)
			for {
				n, err := r.Read(buf)
				if n > 0 {
					mu.Lock()
					w(stream, buf[:n])
					mu.Unlock()
				}
				if err != nil {
					return
				}
			}
		}
		if outR != nil {
			wg.Add(1)
			go pipe(outR, "stdout")
		}
		if errR != nil {
			wg.Add(1)
			go pipe(errR, "stderr")
		}
		if stdinW != nil {
			go func() {
				copyDetach(stdinW, conn, keys)
				stdinW.Close()
			}()
		}
	}
	wg.Wait()
	finish()
	if msg := stderrBuf.String(); msg != "" && startFailed {
		return fmt.Errorf("exec failed: %s", msg)
	}
	return nil
}

func (e *Exec) exitCodeValue() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.exitCode == nil {
		return -1
	}
	return *e.exitCode
}

func (d *Daemon) finishExec(c *Container, e *Exec, code int) {
	e.mu.Lock()
	e.running = false
	e.exitCode = &code
	e.console = nil
	e.mu.Unlock()
	close(e.done)
	d.containerEvent(c, events.Action("exec_die"), map[string]string{"execID": e.ID, "exitCode": strconv.Itoa(code)})
	// Docker keeps finished execs for inspection a while; drop them after five minutes.
	time.AfterFunc(5*time.Minute, func() {
		d.mu.Lock()
		delete(d.execs, e.ID)
		d.mu.Unlock()
		c.mu.Lock()
		delete(c.execs, e.ID)
		c.mu.Unlock()
	})
}

// ExecResize sets an exec session's terminal size.
func (d *Daemon) ExecResize(id string, h, w uint) error {
	e, err := d.GetExec(id)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.console == nil {
		if !e.running {
			return errdefs.Conflict("Exec %s is not running", id)
		}
		return nil
	}
	return unix.IoctlSetWinsize(int(e.console.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: uint16(h), Col: uint16(w)})
}

// execProcess is the exec's process: the container's process with the exec's command,
// environment, user, directory and terminal.
func (d *Daemon) execProcess(c *Container, cfg container.ExecCreateRequest) (*specs.Process, error) {
	b, err := os.ReadFile(filepath.Join(d.shimDir(c), "config.json"))
	if err != nil {
		return nil, fmt.Errorf("exec: read the container's spec: %w", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return nil, fmt.Errorf("exec: the container's spec: %w", err)
	}
	if spec.Process == nil {
		return nil, fmt.Errorf("exec: the container's spec has no process")
	}
	p := *spec.Process
	p.Args = cfg.Cmd
	p.Terminal = cfg.Tty
	p.ConsoleSize = nil
	env := slices.Clone(p.Env)
	for _, e := range cfg.Env {
		k, _, _ := strings.Cut(e, "=")
		env = slices.DeleteFunc(env, func(x string) bool { xk, _, _ := strings.Cut(x, "="); return xk == k })
		env = append(env, e)
	}
	if cfg.Tty && !slices.ContainsFunc(env, func(x string) bool { return strings.HasPrefix(x, "TERM=") }) {
		env = append(env, "TERM=xterm")
	}
	p.Env = env
	if cfg.WorkingDir != "" {
		p.Cwd = cfg.WorkingDir
	}
	if cfg.User != "" {
		u, err := oci.ResolveUser(c.Rootfs, cfg.User, c.HostConfig.GroupAdd)
		if err != nil {
			return nil, errdefs.InvalidWrap(err, "exec")
		}
		p.User = u.User
	}
	if cfg.Privileged {
		caps, err := oci.Capabilities(nil, nil, true)
		if err != nil {
			return nil, err
		}
		p.Capabilities = &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}
	}
	return &p, nil
}

// listenConsole listens on dir/c.sock for the runtime's pty master. It returns the path the
// runtime must use: a path too long for sockaddr_un is bound through /proc/self/fd/<dir fd>
// and given to the runtime relative to dir (its working directory then).
func listenConsole(dir string) (*net.UnixListener, string, error) {
	sock := filepath.Join(dir, "c.sock")
	if len(sock) < 108 {
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
		return l, sock, err
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: "/proc/self/fd/" + strconv.Itoa(fd) + "/c.sock", Net: "unix"})
	if err != nil {
		return nil, "", err
	}
	// The fd path means nothing once fd is closed: never unlink through it.
	l.SetUnlinkOnClose(false)
	return l, "c.sock", nil
}

// receiveConsole accepts one connection and receives the pty master sent with SCM_RIGHTS.
func receiveConsole(l *net.UnixListener) (*os.File, error) {
	l.SetDeadline(time.Now().Add(30 * time.Second))
	conn, err := l.AcceptUnix()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) == 0 {
		return nil, fmt.Errorf("no console fd received: %v", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) == 0 {
		return nil, fmt.Errorf("no console fd received: %v", err)
	}
	for _, fd := range fds[1:] {
		unix.Close(fd)
	}
	unix.CloseOnExec(fds[0])
	return os.NewFile(uintptr(fds[0]), "console"), nil
}

// LimitedBuffer keeps the first Max bytes written to it; every write succeeds.
type LimitedBuffer struct {
	Max int

	mu  sync.Mutex
	buf []byte
}

func (b *LimitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.Max - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// Bytes is a copy of what was kept.
func (b *LimitedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.buf)
}

func (b *LimitedBuffer) String() string { return string(b.Bytes()) }

// kill kills an exec's process (a health probe past its timeout): the process in the
// container, whose pid the runtime wrote by now; the runtime then reaps it and exits. Only
// when there is no pid yet is the runtime's own process killed.
func (e *Exec) kill() {
	e.mu.Lock()
	dir, proc, pid := e.dir, e.proc, e.pid
	e.mu.Unlock()
	if pid == 0 && dir != "" {
		if b, err := os.ReadFile(filepath.Join(dir, "pid")); err == nil {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
	}
	if pid > 0 {
		killPid(pid)
		return
	}
	if proc != nil {
		proc.Kill()
	}
}

// dropExec forgets an exec session.
func (d *Daemon) dropExec(c *Container, id string) {
	d.mu.Lock()
	delete(d.execs, id)
	d.mu.Unlock()
	c.mu.Lock()
	delete(c.execs, id)
	c.mu.Unlock()
}

// ExecKill kills a running exec session's process (an exec past its caller's timeout).
func (d *Daemon) ExecKill(id string) error {
	e, err := d.GetExec(id)
	if err != nil {
		return err
	}
	e.kill()
	return nil
}

// ExitCode is the exit code of an ended exec session's process, -1 while it runs.
func (e *Exec) ExitCode() int { return e.exitCodeValue() }

// StreamConn is a Conn over separate streams, for front ends that are not Docker's: stdin
// is read from In (nil: none), the stdcopy frames the daemon writes go decoded to Out and
// Err (raw to Out with a TTY). Out and Err are written from one goroutine at a time.
type StreamConn struct {
	In       io.Reader
	Out, Err io.Writer
	TTY      bool

	mu      sync.Mutex
	pending []byte
}

func (s *StreamConn) Read(b []byte) (int, error) {
	if s.In == nil {
		return 0, io.EOF
	}
	return s.In.Read(b)
}

func (s *StreamConn) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.TTY {
		if s.Out == nil {
			return len(b), nil
		}
		return s.Out.Write(b)
	}
	s.pending = append(s.pending, b...)
	for len(s.pending) >= 8 {
		n := int(s.pending[4])<<24 | int(s.pending[5])<<16 | int(s.pending[6])<<8 | int(s.pending[7])
		if len(s.pending) < 8+n {
			break
		}
		w := s.Out
		if s.pending[0] == 2 {
			w = s.Err
		}
		if w != nil {
			if _, err := w.Write(s.pending[8 : 8+n]); err != nil {
				return 0, err
			}
		}
		s.pending = s.pending[8+n:]
	}
	return len(b), nil
}

func (s *StreamConn) Close() error      { return nil }
func (s *StreamConn) CloseWrite() error { return nil }
