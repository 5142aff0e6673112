package child

import (
	"fmt"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// Spawn clones a child process with the given clone flags (SIGCHLD is added) that runs p. before,
// if not nil, runs first on the OS thread that will clone, with signals still unblocked: it may
// change that thread's pid or time namespace for children (setns/unshare). That thread is never
// given back to the Go scheduler. The Builder that made p must stay reachable until Spawn returns.
func Spawn(p *Exec, flags uintptr, before func() error) (int, error) {
	type result struct {
		pid int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// Never unlocked: the thread may carry changed namespaces; it ends with this goroutine.
		runtime.LockOSThread()
		if before != nil {
			if err := before(); err != nil {
				ch <- result{err: err}
				return
			}
		}
		var all, old unix.Sigset_t
		for i := range all.Val {
			all.Val[i] = ^uint64(0)
		}
		if err := unix.PthreadSigmask(unix.SIG_SETMASK, &all, &old); err != nil {
			ch <- result{err: fmt.Errorf("block signals: %w", err)}
			return
		}
		pid, errno := clone(p, flags|uintptr(syscall.SIGCHLD))
		_ = unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
		if errno != 0 {
			ch <- result{err: fmt.Errorf("clone: %w", errno)}
			return
		}
		ch <- result{pid: int(pid)}
	}()
	r := <-ch
	runtime.KeepAlive(p)
	return r.pid, r.err
}

// clone forks. In the child it runs the program and never returns; nothing but nosplit code may
// run in the child after the system call.
//
//go:noinline
//go:norace
//go:nocheckptr
func clone(p *Exec, flags uintptr) (uintptr, syscall.Errno) {
	r1, _, errno := syscall.RawSyscall6(syscall.SYS_CLONE, flags, 0, 0, 0, 0, 0)
	if errno != 0 || r1 != 0 {
		return r1, errno
	}
	Run(p)
	return 0, 0
}
