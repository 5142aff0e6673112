// Command berth-init is the init process of containers run with --init (berthd mounts it at
// /sbin/docker-init, as dockerd mounts tini): run as PID 1 as `berth-init -- cmd args...`, it
// starts the command as its child in a process group of its own (the terminal's foreground
// group if stdin is a terminal), forwards every catchable signal it receives to it, reaps every
// zombie reparented to it, and exits with the child's status (128+signal if a signal killed
// it). It exits once the child has: as PID 1, its exit takes the rest of the container down.
// `berth-init --pause` is the holder of a CRI pod sandbox instead (see pause).
//
// Like berth-shim it is static and tiny: os, os/signal and syscall only.
package main

import (
	"os"
	"os/signal"
	"syscall"
	"unsafe"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func fatal(msg string) {
	os.Stderr.Write([]byte("berth-init: " + msg + "\n"))
}

// forwarded are the signals relayed to the child: all of them but SIGKILL and SIGSTOP (which
// cannot be caught), SIGCHLD (the child's own exit), 32 and 33 (reserved by C libraries), and
// SIGURG, which the Go runtime sends itself to preempt goroutines and which could not be told
// from a user's (its default action is to be ignored; the kernel sends it to a socket's owner,
// the child, directly).
func forwarded() []os.Signal {
	var sigs []os.Signal
	for s := syscall.Signal(1); s <= 64; s++ {
		switch s {
		case syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGCHLD, syscall.SIGURG, 32, 33:
			continue
		}
		sigs = append(sigs, s)
	}
	return sigs
}

func run(args []string) int {
	if len(args) == 1 && args[0] == "--pause" {
		return pause()
	}
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fatal("usage: berth-init -- command [args...]")
		return 2
	}
	path, err := lookPath(args[0])
	if err != nil {
		fatal(args[0] + ": " + err.Error())
		if err == syscall.EACCES {
			return 126
		}
		return 127
	}
	// Not PID 1 (run by hand, or in a container sharing a pid namespace): still adopt the
	// orphans of the command.
	syscall.RawSyscall(syscall.SYS_PRCTL, 36 /* PR_SET_CHILD_SUBREAPER */, 1, 0)

	sigc := make(chan os.Signal, 64)
	signal.Notify(sigc, append(forwarded(), syscall.SIGCHLD)...)

	sys := &syscall.SysProcAttr{Setpgid: true}
	if isTerminal(0) {
		// The child's group becomes the terminal's foreground group (tcsetpgrp in the child,
		// with signals blocked so that SIGTTOU does not stop it).
		sys.Foreground, sys.Ctty = true, 0
	}
	pid, err := syscall.ForkExec(path, args, &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{0, 1, 2},
		Sys:   sys,
	})
	if err != nil {
		fatal("exec " + args[0] + ": " + err.Error())
		if err == syscall.EACCES || err == syscall.ENOEXEC {
			return 126
		}
		return 127
	}
	for sig := range sigc {
		if sig != syscall.SIGCHLD {
			syscall.Kill(pid, sig.(syscall.Signal))
			continue
		}
		if code, done := reap(pid); done {
			return code
		}
	}
	return 0
}

// pause is the holder of a CRI pod sandbox (`berth-init --pause`, what Kubernetes' pause
// image does): it owns the pod's namespaces, reaps the zombies reparented to it (the pod's
// PID 1 when it shares its PID namespace) and exits 0 on SIGTERM, SIGINT or SIGHUP.
func pause() int {
	syscall.RawSyscall(syscall.SYS_PRCTL, 36 /* PR_SET_CHILD_SUBREAPER */, 1, 0)
	sigc := make(chan os.Signal, 8)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGCHLD)
	for sig := range sigc {
		if sig != syscall.SIGCHLD {
			return 0
		}
		reap(-1)
	}
	return 0
}

// reap reaps every zombie child and reports the exit code of the command once it has exited.
func reap(child int) (code int, done bool) {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return code, done
		}
		if pid == child {
			done = true
			if ws.Signaled() {
				code = 128 + int(ws.Signal())
			} else {
				code = ws.ExitStatus()
			}
		}
	}
}

func isTerminal(fd int) bool {
	var t syscall.Termios
	_, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TCGETS, uintptr(unsafe.Pointer(&t)))
	return e == 0
}

// lookPath finds the command as execvp does: a name with a slash is used as is, others are
// looked up in $PATH.
func lookPath(name string) (string, error) {
	for i := 0; i < len(name); i++ {
		if name[i] == '/' {
			return name, checkExec(name)
		}
	}
	pathEnv, ok := syscall.Getenv("PATH")
	if !ok {
		pathEnv = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	var firstErr error = syscall.ENOENT
	start := 0
	for i := 0; i <= len(pathEnv); i++ {
		if i < len(pathEnv) && pathEnv[i] != ':' {
			continue
		}
		dir := pathEnv[start:i]
		start = i + 1
		if dir == "" {
			dir = "."
		}
		p := dir + "/" + name
		err := checkExec(p)
		if err == nil {
			return p, nil
		}
		if err == syscall.EACCES && firstErr == syscall.ENOENT {
			firstErr = err
		}
	}
	return "", firstErr
}

// checkExec reports whether path is an executable regular file.
func checkExec(path string) error {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return err
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return syscall.EACCES
	}
	return syscall.Access(path, 1 /* X_OK */)
}
