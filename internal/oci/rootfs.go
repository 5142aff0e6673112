package oci

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"

	"berth/internal/errdefs"
)

// maxEtcFile bounds what is read of an image's /etc/passwd or /etc/group.
const maxEtcFile = 16 << 20

// openRoot opens the rootfs directory as an O_PATH handle.
func openRoot(rootfs string) (int, error) {
	fd, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open rootfs %s: %w", rootfs, err)
	}
	return fd, nil
}

// openInRoot opens p (an absolute or relative path inside the container) below the rootfs
// directory rootFD, resolving symlinks and ".." as if rootFD were "/" (openat2
// RESOLVE_IN_ROOT), so that an image cannot point us at a host file. On kernels without
// openat2 it falls back to securejoin (racy against a concurrently changing rootfs, which an
// image at create or start is not) and opens the last component without following it.
func openInRoot(rootFD int, rootfs, p string, flags int) (int, error) {
	rel := strings.TrimLeft(path.Clean("/"+p), "/")
	if rel == "" {
		rel = "."
	}
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	for range 16 {
		fd, err := unix.Openat2(rootFD, rel, &how)
		switch err {
		case nil:
			return fd, nil
		case unix.EAGAIN, unix.EINTR:
			continue // a rename raced with the lookup
		case unix.ENOSYS, unix.EPERM:
			// no openat2 (or a seccomp filter refusing it)
			full, jerr := securejoin.SecureJoin(rootfs, rel)
			if jerr != nil {
				return -1, jerr
			}
			return unix.Open(full, flags|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		default:
			return -1, err
		}
	}
	return -1, unix.EAGAIN
}

// readRootFile reads a small regular file of the rootfs; (nil, nil) when it does not exist.
func readRootFile(rootFD int, rootfs, p string) ([]byte, error) {
	// O_NONBLOCK: a FIFO planted at p must not block us; it is refused below.
	fd, err := openInRoot(rootFD, rootfs, p, unix.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open %s in rootfs: %w", p, err)
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat %s in rootfs: %w", p, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, errdefs.Invalid("%s in the container's rootfs is not a regular file", p)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxEtcFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s in rootfs: %w", p, err)
	}
	if len(data) > maxEtcFile {
		return nil, errdefs.Invalid("%s in the container's rootfs is larger than %d bytes", p, maxEtcFile)
	}
	return data, nil
}

// CreateWorkingDir makes the directory dir (an absolute path inside the container) in the
// rootfs if it is missing, as dockerd does at start before handing the spec to the runtime:
// every missing component is created with mode 0755 and owned by uid:gid; components that exist
// are left as they are. Every step is resolved inside the rootfs (symlinks in the image cannot
// lead out of it). A component that exists and is not a directory is an error of kind
// errdefs.ErrInvalid ("Cannot mkdir: <dir> is not a directory").
//
// dockerd itself makes the directory owned by the (remapped) root user; pass the container's
// user to have it owned by the user instead, as BuildKit's WORKDIR does.
func CreateWorkingDir(rootfs, dir string, uid, gid uint32) error {
	if dir == "" || dir == "/" {
		return nil
	}
	if !path.IsAbs(dir) {
		return errdefs.Invalid("the working directory '%s' is invalid, it needs to be an absolute path", dir)
	}
	rootFD, err := openRoot(rootfs)
	if err != nil {
		return err
	}
	defer unix.Close(rootFD)
	parts := strings.Split(strings.TrimLeft(path.Clean(dir), "/"), "/")
	parent := -1
	defer func() {
		if parent >= 0 {
			unix.Close(parent)
		}
	}()
	for i := range parts {
		prefix := strings.Join(parts[:i+1], "/")
		fd, err := openInRoot(rootFD, rootfs, prefix, unix.O_PATH|unix.O_DIRECTORY)
		if errors.Is(err, unix.ENOTDIR) {
			return errdefs.Invalid("Cannot mkdir: %s is not a directory", dir)
		}
		if errors.Is(err, unix.ENOENT) {
			fd, err = mkdirIn(rootFD, parent, parts[i], uid, gid)
			if errors.Is(err, unix.EEXIST) {
				// made concurrently, or a dangling symlink: resolve it once more
				fd, err = openInRoot(rootFD, rootfs, prefix, unix.O_PATH|unix.O_DIRECTORY)
			}
		}
		if err != nil {
			if errors.Is(err, unix.ENOTDIR) {
				return errdefs.Invalid("Cannot mkdir: %s is not a directory", dir)
			}
			return fmt.Errorf("create working directory %s: /%s: %w", dir, prefix, err)
		}
		if parent >= 0 {
			unix.Close(parent)
		}
		parent = fd
	}
	return nil
}

// mkdirIn creates name in the directory parent (the rootfs itself when parent < 0), chowns it
// to uid:gid and returns an O_PATH handle of the new directory.
func mkdirIn(rootFD, parent int, name string, uid, gid uint32) (int, error) {
	dirFD := parent
	if dirFD < 0 {
		dirFD = rootFD
	}
	// dirFD is an O_PATH handle: *at calls work on it.
	if err := unix.Mkdirat(dirFD, name, 0o755); err != nil {
		return -1, err
	}
	fd, err := unix.Openat(dirFD, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.Fchownat(fd, "", int(uid), int(gid), unix.AT_EMPTY_PATH); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}
