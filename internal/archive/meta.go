package archive

import (
	"archive/tar"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Metadata of extracted files. Owner first, then mode (chown clears setuid
// bits), then extended attributes (chown also clears file capabilities),
// then times.

// setFileMeta sets the owner (with chown), the mode (with chmod), the
// extended attributes and the times of the regular file open at fd.
func setFileMeta(fd int, hdr *tar.Header, chown, chmod bool) error {
	if chown {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return os.NewSyscallError("fchown", err)
		}
	}
	if chmod {
		if err := unix.Fchmod(fd, modeOf(hdr)); err != nil {
			return os.NewSyscallError("fchmod", err)
		}
	}
	err := setXattrs(hdr, func(key string, val []byte) error { return unix.Fsetxattr(fd, key, val, 0) })
	if err != nil {
		return err
	}
	return setTimes(fd, "", hdr)
}

// setMetaAt sets the owner (with chown), mode (but of a symbolic link) and
// extended attributes of base in the directory dirfd, never following a
// symbolic link there; base "" is dirfd itself.
func setMetaAt(dirfd int, base string, hdr *tar.Header, chown bool) error {
	if chown {
		if err := unix.Fchownat(dirfd, base, hdr.Uid, hdr.Gid, atFlags(base)); err != nil {
			return os.NewSyscallError("fchownat", err)
		}
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

// made is what a new file gets from its creation already, so that Unpack
// skips the calls that would not change it: the owner, when the header's
// is the caller's and the directory passes no other group on; the mode,
// when it has no set-id or sticky bit and the umask takes nothing from it.
type made struct {
	// ok is false when that is not known: owner and mode are then always set.
	ok       bool
	uid, gid int
	umask    uint32
}

// newMade reads the caller's file system ids and umask. Directories with a
// default ACL (root, or any the archive gives one) give new files modes of
// their own: Unpack then sets every mode (made.ok false), as it does when
// it works on an existing tree (WhiteoutApply), where any may have one.
func newMade(rootfd int, opts UnpackOptions) made {
	if opts.Whiteouts == WhiteoutApply {
		return made{}
	}
	umask, ok := readUmask()
	if !ok {
		return made{}
	}
	if _, err := unix.Lgetxattr(procPath(rootfd, ""), aclDefaultXattr, nil); err != unix.ENODATA && !isNotSupported(err) {
		return made{}
	}
	return made{ok: true, uid: unix.Geteuid(), gid: unix.Getegid(), umask: umask}
}

// readUmask reads the process' umask from /proc (Linux 4.7 and later),
// which, unlike umask(2), leaves it as it is.
func readUmask() (uint32, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			return uint32(n), err == nil
		}
	}
	return 0, false
}

// file returns the mode to create the regular file of hdr with, in a
// directory whose new entries get group gid, and whether its owner and its
// mode must still be set.
func (m *made) file(hdr *tar.Header, gid int) (perm uint32, chown, chmod bool) {
	if !m.ok {
		return 0o600, true, true
	}
	chown = hdr.Uid != m.uid || hdr.Gid != gid
	mode := modeOf(hdr)
	if mode&^0o777 != 0 || mode&m.umask != 0 {
		return 0o600, chown, true
	}
	return mode, chown, false
}

// owned says whether an entry made in a directory whose new entries get
// group gid has the owner of hdr already, from its creation.
func (m *made) owned(hdr *tar.Header, gid int) bool {
	return m.ok && hdr.Uid == m.uid && hdr.Gid == gid
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
