package archive

import (
	"errors"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// System call helpers shared by extraction and tree writing. They work on
// descriptors and single path components, never on host paths.

// resolveInRoot opens path (relative, possibly through symbolic links)
// inside the tree rooted at rootfd: symbolic links, absolute or not, cannot
// leave it.
func resolveInRoot(rootfd int, path string, flags int) (int, error) {
	how := unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	for {
		fd, err := unix.Openat2(rootfd, path, &how)
		// EAGAIN: a rename somewhere in the tree raced the lookup.
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		return fd, err
	}
}

// readNames lists the names in the directory open at fd, without "." and
// "..", in directory order. buf is the getdents buffer; it is grown and
// returned for reuse.
func readNames(fd int, buf []byte, names []string) ([]string, []byte, error) {
	if len(buf) == 0 {
		buf = make([]byte, 32<<10)
	}
	if _, err := unix.Seek(fd, 0, 0); err != nil {
		return names, buf, os.NewSyscallError("lseek", err)
	}
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return names, buf, os.NewSyscallError("getdents", err)
		}
		if n <= 0 {
			return names, buf, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

// removeAllAt removes name in the directory dirfd and, if it is a
// directory, everything under it. It never follows symbolic links. A
// missing name is not an error.
func removeAllAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR {
		return os.NewSyscallError("unlinkat", err)
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == unix.ENOENT {
		return nil
	}
	if err != nil {
		return os.NewSyscallError("openat", err)
	}
	names, _, err := readNames(fd, nil, nil)
	for _, n := range names {
		if err != nil {
			break
		}
		err = removeAllAt(fd, n)
	}
	unix.Close(fd)
	if err != nil {
		return err
	}
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return os.NewSyscallError("unlinkat", err)
	}
	return nil
}

// fdReader reads from a file descriptor it does not own.
type fdReader int

func (r fdReader) Read(b []byte) (int, error) {
	for {
		n, err := unix.Read(int(r), b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, os.NewSyscallError("read", err)
		}
		if n == 0 && len(b) > 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

// procPath names name in the directory open at dirfd through /proc, for the
// system calls that have no *at form. The last component is not followed by
// the l* calls it is used with; name "" names the directory itself.
func procPath(dirfd int, name string) string {
	p := fdPath(dirfd)
	if name == "" {
		return p + "/."
	}
	return p + "/" + name
}

// isNotSupported reports whether err says the file system does not support
// an extended attribute.
func isNotSupported(err error) bool {
	return errors.Is(err, unix.ENOTSUP) // EOPNOTSUPP is the same number on Linux
}

// fdPath is the /proc magic link of fd.
func fdPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }
