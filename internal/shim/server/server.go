// Package server is berth-shim: the process that stays beside one container for its whole life
// (docs/daemon-design.md, "The shim contract"). It starts the container with the OCI runtime's
// `run -d`, becomes the parent of its init (child subreaper), copies its output to json-file logs
// and to attached clients, feeds its stdin, reaps it, and records how it exited in an exit file
// that outlives both the shim and the daemon that started it.
//
// It must stay light, since a shim runs next to every container (about 1.9 MB RSS when idle):
// this package and cmd/berth-shim import only os, os/signal, syscall, strconv, time, sync, bytes,
// errors and unicode/utf8; never fmt, net, encoding/json, log/slog or x/sys/unix (which pulls
// in reflect). It runs a handful of goroutines (accept loop, reaper, one per output stream, one
// per connection), allocates nothing per log line, and unmaps its start-up code once the
// container runs (pages.go). The daemon-side client is internal/shim; the protocol is
// internal/shim/wire.
package server

import (
	"errors"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"berth/internal/shim/wire"
)

// Config is berth-shim's command line.
type Config struct {
	ID          string // runtime container id (64 hex digits)
	Bundle      string // OCI bundle directory
	Dir         string // the shim's state directory (made by berthd)
	Runtime     string // OCI runtime binary
	RuntimeRoot string // the runtime's --root
	LogPath     string // the container's log ("": no log)
	LogFormat   string // FormatJSON (default) or FormatCRI
	LogMaxSize  int64  // rotate before the log would exceed this (0: unlimited)
	LogMaxFile  int    // log files kept, the current one included (default 1)
	TTY         bool   // the container has a terminal (process.terminal in the bundle)
	Stdin       bool   // keep the container's stdin open (a pipe, or the pty), else /dev/null
	StdinOnce   bool   // close stdin when the first attached client with stdin closes it
	OOMFile     string // memory.events (v2) or memory.oom_control (v1) of the container
}

// Validate checks what can be checked before the shim starts.
func (c *Config) Validate() error {
	if len(c.ID) != 64 {
		return errors.New("--id must be 64 hex digits")
	}
	for i := 0; i < len(c.ID); i++ {
		if x := c.ID[i]; !('0' <= x && x <= '9' || 'a' <= x && x <= 'f') {
			return errors.New("--id must be 64 hex digits")
		}
	}
	switch {
	case c.Bundle == "":
		return errors.New("--bundle is required")
	case c.Dir == "":
		return errors.New("--dir is required")
	case c.Runtime == "":
		return errors.New("--runtime is required")
	case c.RuntimeRoot == "":
		return errors.New("--runtime-root is required")
	case c.LogMaxSize < 0:
		return errors.New("--log-max-size must not be negative")
	case c.LogMaxFile < 0:
		return errors.New("--log-max-file must not be negative")
	case c.StdinOnce && !c.Stdin:
		return errors.New("--stdin-once needs --stdin")
	case c.LogFormat != "" && c.LogFormat != FormatJSON && c.LogFormat != FormatCRI:
		return errors.New("--log-format must be " + FormatJSON + " or " + FormatCRI)
	}
	return nil
}

// Lifecycle of the container as the shim sees it.
const (
	stCreated  = iota // waiting for start
	stStarting        // the runtime's run -d is running
	stRunning         // the init runs (initPid is our child)
	stExiting         // the init was reaped; output draining, runtime delete
	stExited          // the exit record is final
	stGone            // start failed or shutdown: the shim is going away without an exit record
)

// Timeouts. None of them bounds anything a healthy container or client does.
const (
	// drainTimeout bounds the wait for the end of output after the init exited: a process that
	// escaped the container (no pid namespace) may hold the pipes open forever.
	drainTimeout = 2 * time.Second
	// clientWriteTimeout bounds each write to an attached client; a client that takes longer
	// (dead, or not reading) is dropped. A slow client that keeps reading slows the container's
	// output down (backpressure), as with dockerd.
	clientWriteTimeout = 5 * time.Second
	// requestTimeout bounds the time a client takes to send its request line.
	requestTimeout = 30 * time.Second
	// lingerTimeout bounds the wait for replies in flight before the shim exits.
	lingerTimeout = 2 * time.Second
)

type shim struct {
	cfg    Config
	errLog *os.File // shim.log (also fd 2)
	jlog   *logFile // nil without --log-path
	ln     *os.File // listening socket

	closing atomic.Bool // the listener is being closed: the shim is going away

	mu      sync.Mutex
	state   int
	initPid int
	waiting map[int]chan syscall.WaitStatus // runtime invocations in flight
	early   map[int]syscall.WaitStatus      // reaped while starting, before the init pid is known
	exit    wire.Exit
	failMsg string        // why the shim is going away without an exit record (stGone)
	done    chan struct{} // closed once the state is stExited or stGone
	started chan struct{} // closed once start returned (successfully or not)
	master  *os.File      // pty master (TTY)
	stdin   *os.File      // the container's stdin as the shim writes it: pipe write end, or master
	outputs []*os.File    // output read ends (pipes, or the master)

	cmu         sync.Mutex // attached clients and the end of output
	clients     []*client
	outputsOpen int
	outputEnded bool
	outputsDone chan struct{}
	stdinOnce   sync.Once

	handlers sync.WaitGroup
	errSeq   int // runtime stderr file names
}

// Run runs the shim: it sets itself up, answers on fd 3 ("ok" or "error <message>") when ready
// (if fd 3 is open), serves requests until the container has exited or the shim was told to go,
// and returns the process exit code.
func Run(cfg Config) int {
	ready := readyFile()
	fail := func(msg string) int {
		if ready != nil {
			ready.Write([]byte(wire.ReplyError + " " + wire.OneLine(msg) + "\n"))
			ready.Close()
		}
		os.Stderr.Write([]byte("berth-shim: " + msg + "\n"))
		return 1
	}
	if err := cfg.Validate(); err != nil {
		return fail(err.Error())
	}
	if cfg.LogMaxFile == 0 {
		cfg.LogMaxFile = 1
	}
	s := &shim{
		cfg:         cfg,
		waiting:     map[int]chan syscall.WaitStatus{},
		done:        make(chan struct{}),
		started:     make(chan struct{}),
		outputsDone: make(chan struct{}),
	}
	if err := absolute(&s.cfg); err != nil {
		return fail(err.Error())
	}
	cfg = s.cfg
	if err := os.Chdir(cfg.Dir); err != nil {
		return fail("state directory: " + err.Error())
	}
	// The shim's own errors, and anything the Go runtime prints (panics), go to shim.log.
	errLog, err := os.OpenFile(wire.LogName, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return fail("open " + wire.LogName + ": " + err.Error())
	}
	s.errLog = errLog
	syscall.Dup3(int(errLog.Fd()), 2, 0)
	if err := setChildSubreaper(); err != nil {
		return fail("PR_SET_CHILD_SUBREAPER: " + err.Error())
	}
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGCHLD)
	if cfg.LogPath != "" {
		l, err := openLogFile(cfg.LogPath, cfg.LogFormat, cfg.LogMaxSize, cfg.LogMaxFile, s.logf)
		if err != nil {
			return fail("open log: " + err.Error())
		}
		s.jlog = l
	}
	ln, err := listenUnix(wire.SocketName, 64)
	if err != nil {
		return fail("listen on " + cfg.Dir + "/" + wire.SocketName + ": " + err.Error())
	}
	s.ln = ln
	if ready != nil {
		ready.Write([]byte(wire.ReplyOK + "\n"))
		ready.Close()
	}
	go s.reaper(sigc)
	for {
		c, err := acceptFD(ln)
		if err != nil {
			if s.closing.Load() {
				break
			}
			s.logf("accept: " + err.Error())
			time.Sleep(100 * time.Millisecond) // EMFILE and the like: do not spin
			continue
		}
		s.handlers.Add(1)
		go s.serve(c)
	}
	// finish or shutdown closed the listener: let the replies in flight go out.
	lingered := make(chan struct{})
	go func() { s.handlers.Wait(); close(lingered) }()
	select {
	case <-lingered:
	case <-time.After(lingerTimeout):
	}
	return 0
}

// absolute makes the paths of cfg absolute: the shim works in its state directory, and so do
// the runtimes it starts.
func absolute(cfg *Config) error {
	wd, err := os.Getwd()
	if err != nil {
		return errors.New("working directory: " + err.Error())
	}
	abs := func(p string) string {
		if p == "" || p[0] == '/' {
			return p
		}
		return wd + "/" + p
	}
	cfg.Dir, cfg.Bundle, cfg.RuntimeRoot = abs(cfg.Dir), abs(cfg.Bundle), abs(cfg.RuntimeRoot)
	cfg.LogPath, cfg.OOMFile = abs(cfg.LogPath), abs(cfg.OOMFile)
	for i := 0; i < len(cfg.Runtime); i++ {
		if cfg.Runtime[i] == '/' { // a path, not a name to look up in $PATH
			cfg.Runtime = abs(cfg.Runtime)
			return nil
		}
	}
	p, ok := lookPath(cfg.Runtime)
	if !ok {
		return errors.New("runtime " + strconv.Quote(cfg.Runtime) + " not found in $PATH")
	}
	cfg.Runtime = abs(p)
	return nil
}

// lookPath finds an executable file in $PATH, as execvp would.
func lookPath(name string) (string, bool) {
	path := os.Getenv("PATH")
	start := 0
	for i := 0; i <= len(path); i++ {
		if i < len(path) && path[i] != ':' {
			continue
		}
		dir := path[start:i]
		start = i + 1
		if dir == "" {
			dir = "."
		}
		var st syscall.Stat_t
		p := dir + "/" + name
		if syscall.Stat(p, &st) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFREG && syscall.Access(p, 1) == nil {
			return p, true
		}
	}
	return "", false
}

// readyFile returns fd 3 if it is open (berthd's readiness pipe), made close-on-exec.
func readyFile() *os.File {
	if _, _, e := syscall.RawSyscall(syscall.SYS_FCNTL, 3, syscall.F_SETFD, syscall.FD_CLOEXEC); e != 0 {
		return nil
	}
	return os.NewFile(3, "ready")
}

// logf appends a line to shim.log.
func (s *shim) logf(msg string) {
	b := make([]byte, 0, 40+len(msg))
	b = time.Now().UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, ' ')
	b = append(b, msg...)
	b = append(b, '\n')
	s.errLog.Write(b)
}

// stopServing closes the listening socket (which ends Run's accept loop) and removes it, so that
// later clients go to the exit file.
func (s *shim) stopServing() {
	s.closing.Store(true)
	syscall.Unlink(wire.SocketName)
	s.ln.Close()
}

// ---- requests ----

// serve reads one request line from c and answers it.
func (s *shim) serve(c *os.File) {
	defer s.handlers.Done()
	keep := false
	defer func() {
		if !keep {
			c.Close()
		}
	}()
	var buf [256]byte
	n := 0
	line := -1
	c.SetReadDeadline(time.Now().Add(requestTimeout))
	for line < 0 {
		if n == len(buf) {
			reply(c, wire.ReplyError+" request too long")
			return
		}
		m, err := c.Read(buf[n:])
		for i := n; i < n+m; i++ {
			if buf[i] == '\n' {
				line = i
				break
			}
		}
		n += m
		if err != nil && line < 0 {
			return
		}
	}
	c.SetReadDeadline(time.Time{})
	f := wire.Fields(string(buf[:line]))
	if len(f) == 0 {
		reply(c, wire.ReplyError+" empty request")
		return
	}
	switch f[0] {
	case wire.ReqStart:
		s.handleStart(c)
	case wire.ReqAttach:
		if len(f) != 4 {
			reply(c, wire.ReplyError+" usage: attach <stdin> <stdout> <stderr>")
			return
		}
		keep = s.handleAttach(c, f[1] == "1", f[2] == "1", f[3] == "1", buf[line+1:n])
	case wire.ReqWait:
		<-s.done
		s.mu.Lock()
		st, e, msg := s.state, s.exit, s.failMsg
		s.mu.Unlock()
		if st == stExited {
			reply(c, string(wire.AppendExit([]byte(wire.ReplyExit+" "), e)))
		} else {
			reply(c, wire.ReplyError+" "+msg)
		}
	case wire.ReqKill:
		s.handleKill(c, f[1:])
	case wire.ReqResize:
		s.handleResize(c, f[1:])
	case wire.ReqState:
		s.mu.Lock()
		st, pid, e := s.state, s.initPid, s.exit
		s.mu.Unlock()
		switch st {
		case stCreated, stStarting, stGone:
			reply(c, wire.StateCreated)
		case stRunning, stExiting:
			reply(c, wire.StateRunning+" "+strconv.Itoa(pid))
		default:
			reply(c, string(wire.AppendExit([]byte(wire.StateExited+" "), e)))
		}
	case wire.ReqReopenLog:
		if s.jlog == nil {
			reply(c, wire.ReplyError+" the container has no log file")
			return
		}
		if err := s.jlog.reopen(); err != nil {
			reply(c, wire.ReplyError+" reopen "+s.cfg.LogPath+": "+err.Error())
			return
		}
		reply(c, wire.ReplyOK)
	case wire.ReqShutdown:
		s.mu.Lock()
		if s.state != stCreated {
			s.mu.Unlock()
			reply(c, wire.ReplyError+" the container was started: the shim exits when it does")
			return
		}
		s.state, s.failMsg = stGone, "the shim was shut down before the container started"
		close(s.done)
		s.mu.Unlock()
		reply(c, wire.ReplyOK)
		s.stopServing()
	default:
		reply(c, wire.ReplyError+" unknown request "+strconv.Quote(f[0]))
	}
}

func reply(c *os.File, line string) {
	c.SetWriteDeadline(time.Now().Add(clientWriteTimeout))
	c.Write([]byte(line + "\n"))
}

func replyErr(c *os.File, err error) {
	reply(c, wire.ReplyError+" "+wire.OneLine(err.Error()))
}

func (s *shim) handleKill(c *os.File, args []string) {
	if len(args) < 1 || len(args) > 2 || len(args) == 2 && args[1] != "all" {
		reply(c, wire.ReplyError+" usage: kill <signal> [all]")
		return
	}
	sig, err := strconv.Atoi(args[0])
	if err != nil || sig <= 0 || sig > 64 {
		reply(c, wire.ReplyError+" invalid signal "+strconv.Quote(args[0]))
		return
	}
	all := len(args) == 2
	s.mu.Lock()
	if s.state != stRunning {
		s.mu.Unlock()
		reply(c, wire.ReplyError+" the container is not running")
		return
	}
	if !all {
		// The init is our child and not reaped yet (reaping takes s.mu): its pid cannot have
		// been reused.
		pid := s.initPid
		err := syscall.Kill(pid, syscall.Signal(sig))
		s.mu.Unlock()
		if err != nil {
			replyErr(c, errors.New("kill "+strconv.Itoa(pid)+": "+err.Error()))
			return
		}
		reply(c, wire.ReplyOK)
		return
	}
	s.mu.Unlock()
	if err := s.runtimeCmd("kill", "--all", s.cfg.ID, strconv.Itoa(sig)); err != nil {
		replyErr(c, err)
		return
	}
	reply(c, wire.ReplyOK)
}

func (s *shim) handleResize(c *os.File, args []string) {
	if len(args) != 2 {
		reply(c, wire.ReplyError+" usage: resize <height> <width>")
		return
	}
	h, err1 := strconv.ParseUint(args[0], 10, 16)
	w, err2 := strconv.ParseUint(args[1], 10, 16)
	if err1 != nil || err2 != nil {
		reply(c, wire.ReplyError+" invalid size")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.cfg.TTY {
		reply(c, wire.ReplyError+" the container has no terminal")
		return
	}
	if s.master == nil || s.state != stRunning {
		reply(c, wire.ReplyError+" the container is not running")
		return
	}
	// Not master.Fd(): it would put the master in blocking mode, out of the poller.
	rc, err := s.master.SyscallConn()
	if err == nil {
		cerr := rc.Control(func(fd uintptr) { err = setWinsize(fd, uint16(h), uint16(w)) })
		if err == nil {
			err = cerr
		}
	}
	if err != nil {
		replyErr(c, errors.New("resize: "+err.Error()))
		return
	}
	reply(c, wire.ReplyOK)
}
