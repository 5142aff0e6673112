package archive

import (
	"archive/tar"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Metadata of extracted files. Owner first, then mode (chown clears setuid
// bits), then extended attributes (chown also clears file capabilities),
// then times.

// setFileMeta sets the owner, mode, extended attributes and times of the
// regular file open at fd.
func setFileMeta(fd int, hdr *tar.Header) error {
	if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
		return os.NewSyscallError("fchown", err)
	}
	if err := unix.Fchmod(fd, modeOf(hdr)); err != nil {
		return os.NewSyscallError("fchmod", err)
	}
	err := setXattrs(hdr, func(key string, val []byte) error { return unix.Fsetxattr(fd, key, val, 0) })
	if err != nil {
		return err
	}
	return setTimes(fd, "", hdr)
}

// setMetaAt sets the owner, mode (but of a symbolic link) and extended
// attributes of base in the directory dirfd, never following a symbolic
// link there; base "" is dirfd itself.
func setMetaAt(dirfd int, base string, hdr *tar.Header) error {
	if err := unix.Fchownat(dirfd, base, hdr.Uid, hdr.Gid, atFlags(base)); err != nil {
		return os.NewSyscallError("fchownat", err)
	}
	if hdr.Typeflag != tar.TypeSymlink {
		if err := chmodAt(dirfd, base, modeOf(hdr)); err != nil {
			return err
		}
	}
	return setXattrs(hdr, func(key string, val []byte) error {
		return unix.Lsetxattr(procPath(dirfd, base), key, val, 0)
	})
}

// chmodAt sets the mode of base in dirfd (or of dirfd itself), which is
// not a symbolic link, without following one there.
func chmodAt(dirfd int, base string, mode uint32) error {
	err := unix.Fchmodat(dirfd, base, mode, atFlags(base))
	if err == unix.EOPNOTSUPP || err == unix.ENOSYS {
		// No fchmodat2 before Linux 6.6.
		err = chmodProc(dirfd, base, mode)
	}
	if err != nil {
		return os.NewSyscallError("fchmodat", err)
	}
	return nil
}

// chmodProc sets the mode through the /proc magic link of an O_PATH
// descriptor of the file, opened without following a symbolic link.
func chmodProc(dirfd int, base string, mode uint32) error {
	fd := dirfd
	if base != "" {
		var err error
		if fd, err = unix.Openat(dirfd, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0); err != nil {
			return err
		}
		defer unix.Close(fd)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return unix.EOPNOTSUPP
	}
	return unix.Chmod(fdPath(fd), mode)
}

// setXattrs sets the SCHILY.xattr.* records of hdr with set. Attributes
// the file system does not support are skipped in the trusted and security
// namespaces.
func setXattrs(hdr *tar.Header, set func(key string, val []byte) error) error {
	for k, v := range hdr.PAXRecords {
		key, ok := strings.CutPrefix(k, xattrPAXPrefix)
		if !ok {
			continue
		}
		err := set(key, []byte(v))
		if err != nil && isNotSupported(err) &&
			(strings.HasPrefix(key, "trusted.") || strings.HasPrefix(key, "security.")) {
			continue
		}
		if err != nil {
			return fmt.Errorf("xattr %s: %w", key, os.NewSyscallError("setxattr", err))
		}
	}
	return nil
}

// setTimes sets the access and modification times of base in the
// directory fd or, if base is "", of fd itself.
func setTimes(fd int, base string, hdr *tar.Header) error {
	ts := timesOf(hdr)
	if err := unix.UtimesNanoAt(fd, base, ts[:], atFlags(base)); err != nil {
		return os.NewSyscallError("utimensat", err)
	}
	return nil
}

// atFlags are the flags of *at calls on base, "" being the descriptor
// itself.
func atFlags(base string) int {
	if base == "" {
		return unix.AT_EMPTY_PATH
	}
	return unix.AT_SYMLINK_NOFOLLOW
}

func modeOf(hdr *tar.Header) uint32 { return uint32(hdr.Mode) & 0o7777 }

func timesOf(hdr *tar.Header) [2]unix.Timespec {
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	return [2]unix.Timespec{timespec(atime), timespec(hdr.ModTime)}
}

func timespec(t time.Time) unix.Timespec {
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}
