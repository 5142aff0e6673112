package runtime

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

const sealedEnv = "_BERTH_RUNTIME_SEALED"

const seals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE

// isSealed reports whether this process runs from a binary that cannot be written through
// /proc/self/exe: a sealed memfd, or a file on a read-only mount.
func isSealed() bool {
	fd, err := unix.Open("/proc/self/exe", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	if s, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0); err == nil && s&seals == seals {
		return true
	}
	var st unix.Statfs_t
	return unix.Fstatfs(fd, &st) == nil && st.Flags&unix.ST_RDONLY != 0
}

// EnsureSealed re-executes the runtime from a read-only view of its binary unless it already
// runs from one, so that a container process can never write the runtime's binary on the host
// through /proc/self/exe (CVE-2019-5736). The view is a detached, read-only bind mount of the
// binary (open_tree + mount_setattr): it is in no mount namespace, costs no copy, and vanishes
// when the last process running from it exits. Where that is refused, a sealed memfd copy is
// used. It returns only on failure or when already sealed.
func EnsureSealed() error {
	reexeced := os.Getenv(sealedEnv) != ""
	if reexeced {
		os.Unsetenv(sealedEnv)
	}
	if isSealed() {
		return nil
	}
	if reexeced {
		// Executing again would loop: the view we made is not read-only after all.
		return errors.New("seal runtime binary: still writable after re-executing from a sealed copy")
	}
	fd, err := readOnlyExe()
	if err != nil {
		if fd, err = memfdExe(); err != nil {
			return err
		}
	}
	defer unix.Close(fd)
	env := append(os.Environ(), sealedEnv+"=1")
	argv, err := syscall.SlicePtrFromStrings(os.Args)
	if err != nil {
		return err
	}
	envv, err := syscall.SlicePtrFromStrings(env)
	if err != nil {
		return err
	}
	empty := []byte{0}
	_, _, errno := unix.Syscall6(unix.SYS_EXECVEAT, uintptr(fd), uintptr(unsafe.Pointer(&empty[0])),
		uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&envv[0])), unix.AT_EMPTY_PATH, 0)
	return fmt.Errorf("seal runtime binary: exec: %w", errno)
}

// readOnlyExe returns an O_PATH fd of this binary on a detached read-only bind mount.
func readOnlyExe() (int, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return -1, err
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, exe, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("open_tree %s: %w", exe, err)
	}
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, attr); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("mount_setattr: %w", err)
	}
	return fd, nil
}

// memfdExe returns a sealed memfd copy of this binary.
func memfdExe() (int, error) {
	src, err := os.Open("/proc/self/exe")
	if err != nil {
		return -1, fmt.Errorf("seal runtime binary: %w", err)
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return -1, err
	}
	fd, err := unix.MemfdCreate("berth-runtime", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return -1, fmt.Errorf("seal runtime binary: memfd: %w", err)
	}
	for off := int64(0); off < fi.Size(); {
		n, err := unix.Sendfile(fd, int(src.Fd()), nil, int(fi.Size()-off))
		if err != nil || n == 0 {
			unix.Close(fd)
			return -1, fmt.Errorf("seal runtime binary: copy: %v", err)
		}
		off += int64(n)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("seal runtime binary: %w", err)
	}
	return fd, nil
}
