package server

import (
	"errors"
	"os"
	"strconv"
	"syscall"
	"time"

	"berth/internal/shim/wire"
)

// consoleTimeout bounds the wait for the pty master once `run -d` succeeded: the runtime sends
// it before it returns, so it is already queued.
const consoleTimeout = 10 * time.Second

// reaper reaps every child of the shim (runtime invocations, the container's init, and any
// orphan of the container reparented to the shim) whenever SIGCHLD arrives.
func (s *shim) reaper(sigc chan os.Signal) {
	for range sigc {
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if err == syscall.EINTR {
				continue
			}
			if err != nil || pid <= 0 {
				break
			}
			s.reaped(pid, ws)
		}
	}
}

func (s *shim) reaped(pid int, ws syscall.WaitStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch, ok := s.waiting[pid]; ok {
		delete(s.waiting, pid)
		ch <- ws
		return
	}
	switch {
	case s.state == stRunning && pid == s.initPid:
		s.state = stExiting
		go s.finish(ws)
	case s.state == stStarting:
		// Maybe the init, exiting before `run -d` returned and its pid file was read.
		s.early[pid] = ws
	}
}

// exitCode is the exit status of a process, or 128+signal when a signal killed it.
func exitCode(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// spawnRuntime starts the OCI runtime with stdio as its fds 0-2 and returns a channel that
// receives its wait status.
func (s *shim) spawnRuntime(stdio [3]*os.File, args ...string) (chan syscall.WaitStatus, error) {
	argv := make([]string, 0, 5+len(args))
	argv = append(argv, s.cfg.Runtime, "--root", s.cfg.RuntimeRoot, "--log", s.cfg.Dir+"/"+wire.RuntimeLogName)
	argv = append(argv, args...)
	files := make([]uintptr, 3)
	for i, f := range stdio {
		files[i] = f.Fd() // never a pollable file: the container's ends, /dev/null, a regular file
	}
	ch := make(chan syscall.WaitStatus, 1)
	// Registered under s.mu, which the reaper needs: it cannot reap the runtime before it is
	// known.
	s.mu.Lock()
	defer s.mu.Unlock()
	pid, err := syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{Env: runtimeEnv(), Files: files})
	if err != nil {
		return nil, errors.New("run " + s.cfg.Runtime + ": " + err.Error())
	}
	s.waiting[pid] = ch
	return ch, nil
}

// runtimeEnv is the shim's environment without GOMAXPROCS, which berthd sets to 1 for the shim
// alone (internal/shim.Spawn): the runtime keeps its own default.
func runtimeEnv() []string {
	env := os.Environ()
	out := env[:0]
	for _, kv := range env {
		if len(kv) < 11 || kv[:11] != "GOMAXPROCS=" {
			out = append(out, kv)
		}
	}
	return out
}

// errFile returns an unlinked file for a runtime's stderr.
func (s *shim) errFile() (*os.File, error) {
	s.mu.Lock()
	s.errSeq++
	name := "runtime-stderr." + strconv.Itoa(s.errSeq)
	s.mu.Unlock()
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	os.Remove(name)
	return f, nil
}

// tail returns the last 4 KiB of f, trimmed to one line.
func tail(f *os.File) string {
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := st.Size() - 4096
	if off < 0 {
		off = 0
	}
	buf := make([]byte, st.Size()-off)
	n, _ := f.ReadAt(buf, off)
	return wire.OneLine(string(buf[:n]))
}

// runtimeCmd runs the runtime with args (stdio /dev/null, stderr captured) and waits for it.
// A failure carries the runtime's stderr.
func (s *shim) runtimeCmd(args ...string) error {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer null.Close()
	errf, err := s.errFile()
	if err != nil {
		return errors.New("runtime stderr: " + err.Error())
	}
	defer errf.Close()
	ch, err := s.spawnRuntime([3]*os.File{null, null, errf}, args...)
	if err != nil {
		return err
	}
	if ws := <-ch; !ws.Exited() || ws.ExitStatus() != 0 {
		if msg := tail(errf); msg != "" {
			return errors.New(msg)
		}
		return errors.New("runtime " + args[0] + ": exit status " + strconv.Itoa(exitCode(ws)))
	}
	return nil
}

// handleStart answers "start": "ok <pid>", or "error <message>" after which the shim exits.
func (s *shim) handleStart(c *os.File) {
	s.mu.Lock()
	if s.state != stCreated {
		s.mu.Unlock()
		reply(c, wire.ReplyError+" the container was started already")
		return
	}
	s.state = stStarting
	s.early = map[int]syscall.WaitStatus{}
	s.mu.Unlock()
	pid, err := s.start()
	close(s.started)
	if err != nil {
		msg := wire.OneLine(err.Error())
		s.logf("start: " + msg)
		s.mu.Lock()
		s.state, s.failMsg, s.early = stGone, "the container failed to start: "+msg, nil
		close(s.done)
		s.mu.Unlock()
		s.endOutput() // attached clients
		reply(c, wire.ReplyError+" "+msg)
		s.stopServing()
		return
	}
	reply(c, wire.ReplyOK+" "+strconv.Itoa(pid))
	dropBinaryPages() // what start needed, the idle shim does not
}

// start runs `runtime run -d` with the container's stdio and returns the init's pid. On failure
// nothing is left: no runtime state, no process, no open stdio.
func (s *shim) start() (int, error) {
	cfg := &s.cfg
	syscall.Unlink(wire.PidName)
	null, err := os.OpenFile(os.DevNull, os.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer null.Close()
	var (
		stdio       [3]*os.File
		theirs      []*os.File // the container's ends, closed once the runtime returned
		ours        []*os.File // the shim's ends, kept on success
		errR, errf  *os.File
		console     *os.File
		masterc     chan *os.File
		consolePath string
	)
	closeAll := func(fs []*os.File) {
		for _, f := range fs {
			f.Close()
		}
	}
	args := []string{"run", "-d", "--bundle", cfg.Bundle, "--pid-file", cfg.Dir + "/" + wire.PidName}
	if cfg.TTY {
		if errf, err = s.errFile(); err != nil {
			return 0, errors.New("runtime stderr: " + err.Error())
		}
		defer errf.Close()
		if console, err = listenUnix(wire.ConsoleName, 1); err != nil {
			return 0, errors.New("console socket: " + err.Error())
		}
		defer func() {
			syscall.Unlink(wire.ConsoleName)
			console.Close()
		}()
		consolePath = cfg.Dir + "/" + wire.ConsoleName
		if len(consolePath) >= 108 {
			consolePath = wire.ConsoleName // relative to the runtime's working directory, ours
		}
		args = append(args, "--console-socket", consolePath)
		masterc = make(chan *os.File, 1)
		go receiveConsole(console, masterc)
		stdio = [3]*os.File{null, null, errf}
	} else {
		outR, outW, err := pipe(true)
		if err != nil {
			return 0, errors.New("stdout pipe: " + err.Error())
		}
		errR2, errW, err := pipe(true)
		if err != nil {
			closeAll([]*os.File{outR, outW})
			return 0, errors.New("stderr pipe: " + err.Error())
		}
		errR = errR2
		stdio = [3]*os.File{null, outW, errW}
		theirs = append(theirs, outW, errW)
		ours = append(ours, outR, errR)
		if cfg.Stdin {
			inR, inW, err := pipe(false)
			if err != nil {
				closeAll(theirs)
				closeAll(ours)
				return 0, errors.New("stdin pipe: " + err.Error())
			}
			stdio[0] = inR
			theirs = append(theirs, inR)
			ours = append(ours, inW)
			s.stdin = inW
		}
		s.outputs = []*os.File{outR, errR}
	}
	args = append(args, cfg.ID)
	ch, err := s.spawnRuntime(stdio, args...)
	closeAll(theirs)
	if err != nil {
		closeAll(ours)
		return 0, err
	}
	ws := <-ch
	var master *os.File
	if ws.Exited() && ws.ExitStatus() == 0 && cfg.TTY {
		select {
		case master = <-masterc:
		case <-time.After(consoleTimeout):
		}
		if master == nil {
			s.runtimeCmd("delete", "--force", cfg.ID)
			return 0, errors.New("the runtime sent no pty master to " + consolePath)
		}
		ours = append(ours, master)
	}
	if !ws.Exited() || ws.ExitStatus() != 0 {
		var msg string
		if cfg.TTY {
			msg = tail(errf)
		} else {
			msg = readAvailable(errR)
		}
		closeAll(ours)
		// The runtime cleans up after a failed run; make sure of it.
		s.runtimeCmd("delete", "--force", cfg.ID)
		if msg == "" {
			msg = "runtime run: exit status " + strconv.Itoa(exitCode(ws))
		}
		return 0, errors.New(msg)
	}
	pid, err := readPid(wire.PidName)
	if err != nil {
		closeAll(ours)
		s.runtimeCmd("delete", "--force", cfg.ID)
		return 0, errors.New("runtime pid file: " + err.Error())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cfg.TTY {
		s.master = master
		s.outputs = []*os.File{master}
		if cfg.Stdin {
			s.stdin = master
		}
	}
	s.initPid = pid
	s.state = stRunning
	ws, dead := s.early[pid]
	s.early = nil
	s.startOutput()
	if dead {
		s.state = stExiting
		go s.finish(ws)
	}
	return pid, nil
}

// receiveConsole accepts the runtime's connection on the console socket and passes on the pty
// master it sends (nothing if the socket is closed first).
func receiveConsole(l *os.File, masterc chan<- *os.File) {
	c, err := acceptFD(l)
	if err != nil {
		return
	}
	defer c.Close()
	fd, err := recvFD(c)
	if err != nil {
		return
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return
	}
	masterc <- os.NewFile(uintptr(fd), "pty-master")
}

// readAvailable reads what a failed runtime left in the stderr pipe, one line.
func readAvailable(r *os.File) string {
	r.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 4096)
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			break
		}
	}
	return wire.OneLine(string(buf[:n]))
}

func readPid(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	f := wire.Fields(string(data))
	if len(f) != 1 {
		return 0, errors.New("no pid in " + strconv.Quote(string(data)))
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 0 {
		return 0, errors.New("no pid in " + strconv.Quote(string(data)))
	}
	return pid, nil
}
