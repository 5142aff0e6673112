package volume

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// CopyUp fills the volume name with what the image has at containerPath,
// as dockerd does the first time a container mounts a new volume over
// content of its image: the volume is mounted for the copy (and unmounted
// after), and nothing is copied unless its data directory is empty. rootfs
// is the container's root file system (the mounted overlay).
func (s *Store) CopyUp(name, rootfs, containerPath string) error {
	ref := "copy-up:" + randomName()[:16]
	dst, err := s.Mount(context.Background(), name, ref)
	if err != nil {
		return err
	}
	err = CopyUp(rootfs, containerPath, dst)
	if uerr := s.Unmount(context.Background(), name, ref); err == nil {
		err = uerr
	}
	return err
}

// CopyUp copies the directory containerPath of the root file system rootfs
// (symbolic links resolved inside rootfs, never out of it) into the empty
// directory dst: contents, and the directory's own owner, mode, extended
// attributes and times. Modes, owners, times, extended attributes
// (but trusted.overlay.*), symbolic links, hard links, devices and FIFOs
// are kept. Nothing is copied if containerPath does not exist or is not a
// directory, or if dst is not empty.
func CopyUp(rootfs, containerPath, dst string) error {
	rootfd, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("copy up: %w", &os.PathError{Op: "open", Path: rootfs, Err: err})
	}
	defer unix.Close(rootfd)
	rel := strings.TrimPrefix(path.Clean("/"+containerPath), "/")
	if rel == "" {
		rel = "."
	}
	src, err := openInRoot(rootfd, rel, unix.O_RDONLY|unix.O_DIRECTORY)
	if err == unix.ENOENT || err == unix.ENOTDIR {
		return nil
	}
	if err != nil {
		return fmt.Errorf("copy up %s: %w", containerPath, os.NewSyscallError("openat2", err))
	}
	defer unix.Close(src)
	dfd, err := unix.Open(dst, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("copy up: %w", &os.PathError{Op: "open", Path: dst, Err: err})
	}
	defer unix.Close(dfd)
	names, err := readNames(dfd)
	if err != nil {
		return fmt.Errorf("copy up: %s: %w", dst, err)
	}
	if len(names) > 0 {
		return nil
	}
	c := &copier{dstRoot: dfd, links: make(map[[2]uint64]string), buf: make([]byte, 4096)}
	var st unix.Stat_t
	if err := unix.Fstat(src, &st); err != nil {
		return fmt.Errorf("copy up %s: %w", containerPath, os.NewSyscallError("fstat", err))
	}
	if err := c.dir(src, dfd, ""); err != nil {
		return fmt.Errorf("copy up %s: %w", containerPath, err)
	}
	if err := c.meta(dfd, -1, "", src, &st); err != nil {
		return fmt.Errorf("copy up %s: %w", containerPath, err)
	}
	return nil
}

// openInRoot opens p inside the tree at rootfd: symbolic links, absolute
// or not, resolve inside it.
func openInRoot(rootfd int, p string, flags int) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	for {
		fd, err := unix.Openat2(rootfd, p, &how)
		if err != unix.EINTR && err != unix.EAGAIN {
			return fd, err
		}
	}
}

// readNames lists a directory open at fd, without "." and "..".
func readNames(fd int) ([]string, error) {
	if _, err := unix.Seek(fd, 0, io.SeekStart); err != nil {
		return nil, os.NewSyscallError("lseek", err)
	}
	buf := make([]byte, 16<<10)
	var names []string
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, os.NewSyscallError("getdents", err)
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

// copier copies a tree between descriptors, never following a symbolic
// link.
type copier struct {
	dstRoot int
	links   map[[2]uint64]string // source inode -> first destination path
	buf     []byte
}

// dir copies the entries of the directory src into dst (at rel in the
// destination).
func (c *copier) dir(src, dst int, rel string) error {
	names, err := readNames(src)
	if err != nil {
		return fmt.Errorf("%s: %w", orDot(rel), err)
	}
	for _, name := range names {
		if err := c.entry(src, dst, name, path.Join(rel, name)); err != nil {
			return err
		}
	}
	return nil
}

func orDot(rel string) string {
	if rel == "" {
		return "."
	}
	return rel
}

func (c *copier) entry(sdir, ddir int, name, rel string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(sdir, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return nil // removed since listed
		}
		return fmt.Errorf("%s: %w", rel, os.NewSyscallError("fstatat", err))
	}
	err := func() error {
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			return c.copyDir(sdir, ddir, name, rel, &st)
		case unix.S_IFREG:
			return c.copyFile(sdir, ddir, name, rel, &st)
		case unix.S_IFLNK:
			target, err := readlinkat(sdir, name)
			if err != nil {
				return err
			}
			if err := unix.Symlinkat(target, ddir, name); err != nil {
				return os.NewSyscallError("symlinkat", err)
			}
		default: // devices, FIFOs, sockets
			if err := unix.Mknodat(ddir, name, st.Mode, int(st.Rdev)); err != nil {
				return os.NewSyscallError("mknodat", err)
			}
		}
		return c.meta(ddir, sdir, name, -1, &st)
	}()
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	return nil
}

func (c *copier) copyDir(sdir, ddir int, name, rel string, st *unix.Stat_t) error {
	sfd, err := unix.Openat(sdir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("openat", err)
	}
	defer unix.Close(sfd)
	if err := unix.Mkdirat(ddir, name, 0o700); err != nil {
		return os.NewSyscallError("mkdirat", err)
	}
	dfd, err := unix.Openat(ddir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("openat", err)
	}
	defer unix.Close(dfd)
	if err := c.dir(sfd, dfd, rel); err != nil {
		return err
	}
	return c.meta(dfd, -1, "", sfd, st) // times after the contents
}

func (c *copier) copyFile(sdir, ddir int, name, rel string, st *unix.Stat_t) error {
	id := [2]uint64{uint64(st.Dev), st.Ino}
	if st.Nlink > 1 {
		if first, ok := c.links[id]; ok {
			dir, base := path.Split(first)
			pfd := c.dstRoot
			if dir != "" {
				fd, err := unix.Openat2(c.dstRoot, dir, &unix.OpenHow{
					Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
					Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS,
				})
				if err != nil {
					return fmt.Errorf("link to %s: %w", first, os.NewSyscallError("openat2", err))
				}
				defer unix.Close(fd)
				pfd = fd
			}
			if err := unix.Linkat(pfd, base, ddir, name, 0); err != nil {
				return fmt.Errorf("link to %s: %w", first, os.NewSyscallError("linkat", err))
			}
			return nil
		}
		c.links[id] = rel
	}
	sfd, err := unix.Openat(sdir, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("openat", err)
	}
	sf := os.NewFile(uintptr(sfd), rel)
	defer sf.Close()
	dfd, err := unix.Openat(ddir, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return os.NewSyscallError("openat", err)
	}
	df := os.NewFile(uintptr(dfd), rel)
	defer df.Close()
	// *os.File to *os.File: copy_file_range where the file systems allow.
	if _, err := io.Copy(df, sf); err != nil {
		return err
	}
	return c.meta(dfd, -1, "", sfd, st)
}

// meta gives a copy the owner, mode, extended attributes and times of
// its source (st): the copy is dfd itself (name "") or name in the
// directory dfd, and its source the file open at sfd (name "") or name in
// the directory sdir.
func (c *copier) meta(dfd, sdir int, name string, sfd int, st *unix.Stat_t) error {
	isLink := st.Mode&unix.S_IFMT == unix.S_IFLNK
	flags := unix.AT_SYMLINK_NOFOLLOW
	if name == "" {
		flags = unix.AT_EMPTY_PATH
	}
	if err := unix.Fchownat(dfd, name, int(st.Uid), int(st.Gid), flags); err != nil {
		return os.NewSyscallError("fchownat", err)
	}
	if !isLink {
		if err := chmodAt(dfd, name, st.Mode&0o7777); err != nil {
			return err
		}
	}
	// Extended attributes, read and written through the descriptors or,
	// for entries by name, through /proc without following the last
	// component.
	var src, dst string
	if name != "" {
		src, dst = procPath(sdir, name), procPath(dfd, name)
	}
	if err := c.copyXattrs(sfd, src, dfd, dst); err != nil {
		return err
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(dfd, name, ts, flags); err != nil {
		return os.NewSyscallError("utimensat", err)
	}
	return nil
}

// chmodAt sets the mode of name in dfd (or of dfd itself), which is not a
// symbolic link.
func chmodAt(dfd int, name string, mode uint32) error {
	if name == "" {
		if err := unix.Fchmod(dfd, mode); err != nil {
			return os.NewSyscallError("fchmod", err)
		}
		return nil
	}
	err := unix.Fchmodat(dfd, name, mode, unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.EOPNOTSUPP || err == unix.ENOSYS {
		err = unix.Chmod(procPath(dfd, name), mode) // before fchmodat2 (Linux 6.6)
	}
	if err != nil {
		return os.NewSyscallError("fchmodat", err)
	}
	return nil
}

func procPath(dirfd int, name string) string {
	return "/proc/self/fd/" + strconv.Itoa(dirfd) + "/" + name
}

func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		b := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, b)
		if err != nil {
			return "", os.NewSyscallError("readlinkat", err)
		}
		if n < size {
			return string(b[:n]), nil
		}
	}
}

// copyXattrs copies the extended attributes of a source (fd sfd, or the
// path src if not "") to a destination (fd dfd, or the path dst), but
// trusted.overlay.* ones. Attributes the destination's file system does
// not support are skipped, and so are trusted.* and security.* ones it
// refuses.
func (c *copier) copyXattrs(sfd int, src string, dfd int, dst string) error {
	list, err := c.xattr(func(b []byte) (int, error) {
		if src == "" {
			return unix.Flistxattr(sfd, b)
		}
		return unix.Llistxattr(src, b)
	})
	if err != nil || len(list) == 0 {
		return err
	}
	keys := strings.Split(strings.TrimSuffix(string(list), "\x00"), "\x00")
	for _, key := range keys {
		if strings.HasPrefix(key, "trusted.overlay.") {
			continue
		}
		val, err := c.xattr(func(b []byte) (int, error) {
			if src == "" {
				return unix.Fgetxattr(sfd, key, b)
			}
			return unix.Lgetxattr(src, key, b)
		})
		if errors.Is(err, unix.ENODATA) {
			continue
		}
		if err != nil {
			return fmt.Errorf("xattr %s: %w", key, err)
		}
		val = append([]byte(nil), val...)
		if dst == "" {
			err = unix.Fsetxattr(dfd, key, val, 0)
		} else {
			err = unix.Lsetxattr(dst, key, val, 0)
		}
		if err == unix.ENOTSUP || err == unix.EPERM && (strings.HasPrefix(key, "trusted.") || strings.HasPrefix(key, "security.")) {
			continue
		}
		if err != nil {
			return fmt.Errorf("xattr %s: %w", key, os.NewSyscallError("setxattr", err))
		}
	}
	return nil
}

// xattr runs a listxattr or getxattr call into the copier's buffer,
// growing it as needed. A file system without xattrs has none.
func (c *copier) xattr(call func([]byte) (int, error)) ([]byte, error) {
	for {
		n, err := call(c.buf)
		if err == unix.ERANGE {
			if n, err = call(nil); err != nil {
				return nil, os.NewSyscallError("xattr", err)
			}
			c.buf = make([]byte, 2*n)
			continue
		}
		if err == unix.ENOTSUP {
			return nil, nil
		}
		if err == unix.ENODATA {
			return nil, err
		}
		if err != nil {
			return nil, os.NewSyscallError("xattr", err)
		}
		return c.buf[:n], nil
	}
}
