package containerfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"berth/internal/errdefs"

	"github.com/moby/moby/api/types/container"
	"golang.org/x/sys/unix"
)

// maxSymlinks bounds the symbolic links followed in one resolution (as
// moby's FollowSymlinkInScope).
const maxSymlinks = 255

// Stat describes the file at path in the container, as HEAD
// /containers/{id}/archive's X-Docker-Container-Path-Stat header: the
// last component is not followed if it is a symbolic link (unless path
// ends with "/" or "/."), whose LinkTarget is then the container path it
// resolves to (as far as it exists). A relative path is taken from the
// container's root.
//
// A missing file is an errdefs.ErrNotFound error "Could not find the file
// <path> in container <name>".
func Stat(v View, p string) (container.PathStat, error) {
	f, err := open(v)
	if err != nil {
		return container.PathStat{}, err
	}
	defer f.close()
	st, fd, err := f.stat(p)
	if err != nil {
		return container.PathStat{}, v.pathErr(p, err)
	}
	unix.Close(fd)
	return st, nil
}

// absPath is a client's path as dockerd takes it: absolute in the
// container, cleaned, but a trailing "/" or "/." kept.
func absPath(p string) string {
	return preserveTrailing(path.Join("/", p), p)
}

// preserveTrailing appends to the cleaned path a trailing "/." or "/" the
// original had (moby's PreserveTrailingDotOrSeparator).
func preserveTrailing(cleaned, orig string) string {
	if path.Base(cleaned) != "." && path.Base(orig) == "." {
		if !strings.HasSuffix(cleaned, "/") {
			cleaned += "/"
		}
		cleaned += "."
	}
	if !strings.HasSuffix(cleaned, "/") && strings.HasSuffix(orig, "/") {
		cleaned += "/"
	}
	return cleaned
}

// stat opens the file at p (O_PATH, last component not followed but with
// a trailing "/" or "/.") and describes it. The caller closes fd.
func (f *fsys) stat(p string) (st container.PathStat, fd int, err error) {
	abs := absPath(p)
	fd, err = openInRoot(f.rootfd, relPath(abs), unix.O_PATH|unix.O_NOFOLLOW)
	if err != nil {
		return st, -1, &os.PathError{Op: "lstat", Path: abs, Err: err}
	}
	var ust unix.Stat_t
	if err := unix.Fstat(fd, &ust); err != nil {
		unix.Close(fd)
		return st, -1, &os.PathError{Op: "lstat", Path: abs, Err: err}
	}
	st = container.PathStat{
		Name:  path.Base(abs),
		Size:  ust.Size,
		Mode:  fileMode(ust.Mode),
		Mtime: time.Unix(ust.Mtim.Sec, ust.Mtim.Nsec),
	}
	if st.Mode&fs.ModeSymlink != 0 {
		if st.LinkTarget, err = f.followScope(abs); err != nil {
			unix.Close(fd)
			return st, -1, err
		}
	}
	return st, fd, nil
}

// followScope resolves every symbolic link of the container path p, the
// last one included, inside the container; components that do not exist
// are kept as they are (moby's FollowSymlinkInScope).
func (f *fsys) followScope(p string) (string, error) {
	resolved := "/"
	todo := p
	for links := 0; todo != ""; {
		var elem string
		elem, todo, _ = strings.Cut(todo, "/")
		switch elem {
		case "", ".":
			continue
		case "..":
			resolved = path.Dir(resolved)
			continue
		}
		next := path.Join(resolved, elem)
		target, isLink, err := f.readlink(resolved, elem)
		if err != nil {
			return "", fmt.Errorf("resolve %s: %w", p, err)
		}
		if !isLink {
			resolved = next
			continue
		}
		if links++; links > maxSymlinks {
			return "", fmt.Errorf("resolve %s: %w", p, unix.ELOOP)
		}
		if strings.HasPrefix(target, "/") {
			resolved = "/"
		}
		todo = target + "/" + todo
	}
	return resolved, nil
}

// readlink returns the target of name in the container directory dir if
// it is a symbolic link. A missing name (or dir) is not one.
func (f *fsys) readlink(dir, name string) (string, bool, error) {
	dfd, err := openInRoot(f.rootfd, relPath(dir), unix.O_PATH|unix.O_DIRECTORY)
	if err == unix.ENOENT || err == unix.ENOTDIR {
		return "", false, nil
	}
	if err != nil {
		return "", false, os.NewSyscallError("openat2", err)
	}
	defer unix.Close(dfd)
	var st unix.Stat_t
	err = unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.ENOENT || err == unix.ENOTDIR {
		return "", false, nil
	}
	if err != nil {
		return "", false, os.NewSyscallError("fstatat", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		return "", false, nil
	}
	target, err := readlinkat(dfd, name)
	return target, err == nil, err
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

// fileMode converts a stat mode to Go's FileMode bits (as os.Lstat).
func fileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	}
	if m&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// pathErr maps a missing file to dockerd's not-found error.
func (v View) pathErr(p string, err error) error {
	if errors.Is(err, unix.ENOENT) {
		return errdefs.NotFound("Could not find the file %s in container %s", p, v.Container)
	}
	return err
}
