package server

import (
	"errors"
	"os"
	"syscall"
	"unsafe"
)

// Raw system calls the syscall package does not wrap; golang.org/x/sys/unix would pull in
// reflect (through encoding/binary) for three calls.

const prSetChildSubreaper = 36

func setChildSubreaper() error {
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); e != 0 {
		return e
	}
	return nil
}

type winsize struct{ row, col, x, y uint16 }

func setWinsize(fd uintptr, h, w uint16) error {
	ws := winsize{row: h, col: w}
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCSWINSZ, uintptr(unsafe.Pointer(&ws))); e != 0 {
		return e
	}
	return nil
}

// pipe returns a pipe whose two ends are close-on-exec; the shim's end (read end if shimReads,
// else write end) is non-blocking, so that the Go poller serves it.
func pipe(shimReads bool) (r, w *os.File, err error) {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return nil, nil, err
	}
	shimEnd := p[1]
	if shimReads {
		shimEnd = p[0]
	}
	if err := syscall.SetNonblock(shimEnd, true); err != nil {
		syscall.Close(p[0])
		syscall.Close(p[1])
		return nil, nil, err
	}
	return os.NewFile(uintptr(p[0]), "pipe-r"), os.NewFile(uintptr(p[1]), "pipe-w"), nil
}

// listenUnix binds a stream socket to name (relative to the working directory, so that the
// path length limit of sun_path applies to name only) and listens on it. The returned file is
// non-blocking: accept through acceptFD.
func listenUnix(name string, backlog int) (*os.File, error) {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	if err := syscall.Unlink(name); err != nil && err != syscall.ENOENT {
		syscall.Close(fd)
		return nil, err
	}
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: name}); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	if err := syscall.Listen(fd, backlog); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

// acceptFD waits for and accepts one connection on the listening socket l. The connection is
// non-blocking and close-on-exec.
func acceptFD(l *os.File) (*os.File, error) {
	rc, err := l.SyscallConn()
	if err != nil {
		return nil, err
	}
	var nfd int
	var aerr error
	err = rc.Read(func(fd uintptr) bool {
		for {
			nfd, _, aerr = syscall.Accept4(int(fd), syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK)
			if aerr != syscall.EINTR && aerr != syscall.ECONNABORTED {
				return aerr != syscall.EAGAIN
			}
		}
	})
	if err != nil {
		return nil, err
	}
	if aerr != nil {
		return nil, aerr
	}
	return os.NewFile(uintptr(nfd), "conn"), nil
}

// recvFD receives one file descriptor sent with SCM_RIGHTS on the connection c (how runc and
// berth-runtime pass a pty master to --console-socket). Extra descriptors are closed.
func recvFD(c *os.File) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	buf := make([]byte, 256)
	oob := make([]byte, syscall.CmsgSpace(4*4))
	var oobn int
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		_, oobn, _, _, rerr = syscall.Recvmsg(int(fd), buf, oob, syscall.MSG_CMSG_CLOEXEC)
		return rerr != syscall.EAGAIN && rerr != syscall.EINTR
	})
	if err != nil {
		return -1, err
	}
	if rerr != nil {
		return -1, rerr
	}
	msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return -1, err
	}
	got := -1
	for i := range msgs {
		fds, err := syscall.ParseUnixRights(&msgs[i])
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if got < 0 {
				got = fd
			} else {
				syscall.Close(fd)
			}
		}
	}
	if got < 0 {
		return -1, errors.New("no file descriptor received")
	}
	return got, nil
}
