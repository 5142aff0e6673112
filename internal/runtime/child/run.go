// Package child owns the code that runs inside a freshly cloned container process before it
// execs the user's program: a tiny interpreter over a Program of precomputed system calls.
//
// The child is a raw clone(2) of a multithreaded Go process. It must never allocate, take a
// runtime lock, grow its stack or enter the scheduler, so everything it executes here is
// //go:nosplit and uses only raw system calls; the linker proves the nosplit stack bound. All
// decisions (which mounts, which fds, which strings) are made by the parent, in ordinary Go, when it
// builds the Program (see program.go). This package must not grow any logic that needs the Go
// runtime on the child side.
package child

import (
	"syscall"
	"unsafe"
)

// Op kinds.
const (
	// KindSyscall runs Nr with Args.
	KindSyscall uint32 = iota
	// KindIfMode fstat()s fd Args[0]; if (st_mode & S_IFMT) == Args[1] it skips Args[2] ops.
	KindIfMode
	// KindCheckCharDev fstat()s fd Args[0] and fails unless it is a character device with rdev Args[1].
	KindCheckCharDev
	// KindCheckCwd calls getcwd and fails unless the working directory is reachable from the
	// root (CVE-2024-21626).
	KindCheckCwd
	// KindResetSignals sets every signal's disposition to SIG_DFL and unblocks all signals.
	KindResetSignals
	// KindReadByte reads one byte from fd Args[0] into the buffer at Args[1]; EOF is a failure.
	KindReadByte
	// KindExit calls exit_group(Args[0]).
	KindExit
	// KindSkip skips Args[0] ops.
	KindSkip
	// KindFailIfMode fstat()s fd Args[0] and fails if (st_mode & S_IFMT) == Args[1].
	KindFailIfMode
	// KindFailIfFSType fstatfs()s fd Args[0] and fails if f_type == Args[1].
	KindFailIfFSType
	// KindFailIfPathMode stat()s the path at Args[0] (following symlinks) and fails if
	// (st_mode & S_IFMT) == Args[1]. It needs no fd, so it works after RLIMIT_NOFILE is
	// lowered below the program's fd slots.
	KindFailIfPathMode
	// KindWriteByteAt opens the path at Args[1] relative to fd Args[0] with O_WRONLY|O_CLOEXEC
	// (blocking on a FIFO until a reader opens it), writes the byte at Args[2] and closes it.
	// The fd stays in the kernel's lowest free slot, so it works under any RLIMIT_NOFILE.
	KindWriteByteAt
)

// Op is one step of the child's program. Its layout is plain data: the child only reads it.
type Op struct {
	Kind uint32
	// Out, when >= 0, is the fixed fd number the syscall's result (an fd) is moved to (with
	// O_CLOEXEC), so that later ops can name it as a constant.
	Out  int32
	Nr   uintptr
	Args [6]uintptr
	// Ignore lists errnos that are not failures (0 ends the list).
	Ignore [3]uint16
	// SkipOK ops are skipped after a success, SkipErr ops after an ignored errno.
	SkipOK  uint16
	SkipErr uint16
}

// Status record kinds sent to the parent over the sync socket.
const (
	StatusError uint32 = 1 // Op, Errno set
	StatusReady uint32 = 2 // setup done, waiting for start
	StatusHooks uint32 = 3 // rootfs mounted, waiting while the parent runs create hooks
)

// Record is what the child sends on the sync socket. Errno 0 with StatusError means a check op failed.
type Record struct {
	Kind  uint32
	Op    uint32
	Errno uint32
	_     uint32
}

// Exec describes the program run by Run; the parent keeps it alive until the child has execed
// or exited.
type Exec struct {
	Ops []Op
	// SyncFD is the child's end of the sync socket, where failures are reported.
	SyncFD uintptr
	// Failures of ops from LoudFrom on (when > 0) are also written to fd 2, the process's own
	// stderr: after start nobody reads the sync socket any more (runc does the same).
	LoudFrom int
	Msgs     [][]byte // per op: "berth-runtime: <description>: "
	ErrText  [][]byte // per errno: "<strerror>\n"
	// scratch is written by the child only (non-pointer data: no write barriers).
	errRec Record
	sigact [4]uint64
	sigset uint64
	stat   syscall.Stat_t
	statfs syscall.Statfs_t
	cwd    [4096]byte
}

// errCheck is reported as the errno of a failed check op.
const errCheck = syscall.EINVAL

// Run executes the program and never returns. It is called in the child right after clone(2).
//
//go:nosplit
//go:norace
func Run(p *Exec) {
	n := len(p.Ops)
	for i := 0; i < n; {
		op := &p.Ops[i]
		var r1 uintptr
		var errno syscall.Errno
		switch op.Kind {
		case KindSyscall:
			r1, _, errno = syscall.RawSyscall6(op.Nr, op.Args[0], op.Args[1], op.Args[2], op.Args[3], op.Args[4], op.Args[5])
		case KindIfMode:
			_, _, errno = syscall.RawSyscall(syscall.SYS_FSTAT, op.Args[0], uintptr(unsafe.Pointer(&p.stat)), 0)
			if errno == 0 && uintptr(p.stat.Mode&syscall.S_IFMT) == op.Args[1] {
				i += 1 + int(op.Args[2])
				continue
			}
		case KindCheckCharDev:
			_, _, errno = syscall.RawSyscall(syscall.SYS_FSTAT, op.Args[0], uintptr(unsafe.Pointer(&p.stat)), 0)
			if errno == 0 && (p.stat.Mode&syscall.S_IFMT != syscall.S_IFCHR || uintptr(p.stat.Rdev) != op.Args[1]) {
				errno = errCheck
			}
		case KindCheckCwd:
			_, _, errno = syscall.RawSyscall(syscall.SYS_GETCWD, uintptr(unsafe.Pointer(&p.cwd[0])), uintptr(len(p.cwd)), 0)
			if errno == 0 && p.cwd[0] != '/' {
				errno = syscall.ENOENT
			}
		case KindResetSignals:
			// sigaction{handler=SIG_DFL, flags=0, restorer=0, mask=0}
			p.sigact = [4]uint64{}
			for sig := uintptr(1); sig <= 64; sig++ {
				if sig == uintptr(syscall.SIGKILL) || sig == uintptr(syscall.SIGSTOP) {
					continue
				}
				syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, sig, uintptr(unsafe.Pointer(&p.sigact)), 0, 8, 0, 0)
			}
			p.sigset = 0
			_, _, errno = syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, 2 /* SIG_SETMASK */, uintptr(unsafe.Pointer(&p.sigset)), 0, 8, 0, 0)
		case KindWriteByteAt:
			var fd uintptr
			fd, _, errno = syscall.RawSyscall6(syscall.SYS_OPENAT, op.Args[0], op.Args[1], syscall.O_WRONLY|syscall.O_CLOEXEC, 0, 0, 0)
			if errno == 0 {
				r1, _, errno = syscall.RawSyscall(syscall.SYS_WRITE, fd, op.Args[2], 1)
				if errno == 0 && r1 != 1 {
					errno = syscall.EPIPE
				}
				syscall.RawSyscall(syscall.SYS_CLOSE, fd, 0, 0)
			}
		case KindReadByte:
			r1, _, errno = syscall.RawSyscall(syscall.SYS_READ, op.Args[0], op.Args[1], 1)
			if errno == 0 && r1 != 1 {
				errno = syscall.EPIPE
			}
		case KindSkip:
			i += 1 + int(op.Args[0])
			continue
		case KindFailIfMode:
			_, _, errno = syscall.RawSyscall(syscall.SYS_FSTAT, op.Args[0], uintptr(unsafe.Pointer(&p.stat)), 0)
			if errno == 0 && uintptr(p.stat.Mode&syscall.S_IFMT) == op.Args[1] {
				errno = errCheck
			}
		case KindFailIfPathMode:
			_, _, errno = syscall.RawSyscall6(syscall.SYS_NEWFSTATAT, AtFDCWD, op.Args[0], uintptr(unsafe.Pointer(&p.stat)), 0, 0, 0)
			if errno == 0 && uintptr(p.stat.Mode&syscall.S_IFMT) == op.Args[1] {
				errno = errCheck
			}
		case KindFailIfFSType:
			_, _, errno = syscall.RawSyscall(syscall.SYS_FSTATFS, op.Args[0], uintptr(unsafe.Pointer(&p.statfs)), 0)
			if errno == 0 && uintptr(p.statfs.Type) == op.Args[1] {
				errno = errCheck
			}
		case KindExit:
			syscall.RawSyscall(syscall.SYS_EXIT_GROUP, op.Args[0], 0, 0)
		}
		if errno != 0 {
			if ignored(op, errno) {
				i += 1 + int(op.SkipErr)
				continue
			}
			fail(p, i, errno)
		}
		if op.Out >= 0 && op.Kind == KindSyscall {
			if int32(r1) != op.Out {
				_, _, errno = syscall.RawSyscall6(syscall.SYS_DUP3, r1, uintptr(op.Out), syscall.O_CLOEXEC, 0, 0, 0)
				syscall.RawSyscall(syscall.SYS_CLOSE, r1, 0, 0)
				if errno != 0 {
					fail(p, i, errno)
				}
			}
		}
		i += 1 + int(op.SkipOK)
	}
	syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
}

//go:nosplit
//go:norace
func ignored(op *Op, errno syscall.Errno) bool {
	for _, e := range op.Ignore {
		if e == 0 {
			return false
		}
		if syscall.Errno(e) == errno {
			return true
		}
	}
	return false
}

// fail reports op i's errno to the parent and exits.
//
//go:nosplit
//go:norace
func fail(p *Exec, i int, errno syscall.Errno) {
	p.errRec.Kind = StatusError
	p.errRec.Op = uint32(i)
	p.errRec.Errno = uint32(errno)
	if p.LoudFrom > 0 && i >= p.LoudFrom && i < len(p.Msgs) && len(p.Msgs[i]) > 0 {
		m := p.Msgs[i]
		syscall.RawSyscall(syscall.SYS_WRITE, 2, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)))
		if int(errno) < len(p.ErrText) && len(p.ErrText[errno]) > 0 {
			t := p.ErrText[errno]
			syscall.RawSyscall(syscall.SYS_WRITE, 2, uintptr(unsafe.Pointer(&t[0])), uintptr(len(t)))
		}
	}
	syscall.RawSyscall6(syscall.SYS_SENDTO, p.SyncFD, uintptr(unsafe.Pointer(&p.errRec)), unsafe.Sizeof(p.errRec), syscall.MSG_NOSIGNAL, 0, 0)
	syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 1, 0, 0)
}
