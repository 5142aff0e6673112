package runtime

import (
	"strings"

	"golang.org/x/sys/unix"
)

var rlimitNumbers = map[string]int{
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_CPU": unix.RLIMIT_CPU,
	"RLIMIT_DATA": unix.RLIMIT_DATA, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK, "RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE,
	"RLIMIT_NICE": unix.RLIMIT_NICE, "RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_NPROC": unix.RLIMIT_NPROC,
	"RLIMIT_RSS": unix.RLIMIT_RSS, "RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO, "RLIMIT_RTTIME": unix.RLIMIT_RTTIME,
	"RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING, "RLIMIT_STACK": unix.RLIMIT_STACK,
}

var propagationFlags = map[string]uintptr{
	"private": unix.MS_PRIVATE, "rprivate": unix.MS_PRIVATE | unix.MS_REC,
	"shared": unix.MS_SHARED, "rshared": unix.MS_SHARED | unix.MS_REC,
	"slave": unix.MS_SLAVE, "rslave": unix.MS_SLAVE | unix.MS_REC,
	"unbindable": unix.MS_UNBINDABLE, "runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// mountOpts is a parsed list of mount options.
type mountOpts struct {
	flags       uintptr // MS_* set
	clear       uintptr // MS_* explicitly cleared (rw, suid, dev, exec, ...)
	propagation uintptr
	recAttrSet  uint64 // MOUNT_ATTR_* set recursively (rro, rnosuid, ...)
	recAttrClr  uint64
	data        []string
	tmpcopyup   bool
}

var setFlags = map[string]uintptr{
	"bind": unix.MS_BIND, "rbind": unix.MS_BIND | unix.MS_REC, "dirsync": unix.MS_DIRSYNC,
	"iversion": unix.MS_I_VERSION, "lazytime": unix.MS_LAZYTIME, "mand": unix.MS_MANDLOCK,
	"noatime": unix.MS_NOATIME, "nodev": unix.MS_NODEV, "nodiratime": unix.MS_NODIRATIME,
	"noexec": unix.MS_NOEXEC, "nosuid": unix.MS_NOSUID, "relatime": unix.MS_RELATIME,
	"remount": unix.MS_REMOUNT, "ro": unix.MS_RDONLY, "silent": unix.MS_SILENT,
	"strictatime": unix.MS_STRICTATIME, "sync": unix.MS_SYNCHRONOUS, "nosymfollow": unix.MS_NOSYMFOLLOW,
}

var clearFlags = map[string]uintptr{
	"async": unix.MS_SYNCHRONOUS, "atime": unix.MS_NOATIME, "dev": unix.MS_NODEV,
	"diratime": unix.MS_NODIRATIME, "exec": unix.MS_NOEXEC, "loud": unix.MS_SILENT,
	"noiversion": unix.MS_I_VERSION, "nolazytime": unix.MS_LAZYTIME, "nomand": unix.MS_MANDLOCK,
	"norelatime": unix.MS_RELATIME, "nostrictatime": unix.MS_STRICTATIME, "rw": unix.MS_RDONLY,
	"suid": unix.MS_NOSUID, "symfollow": unix.MS_NOSYMFOLLOW, "defaults": 0,
}

type recAttr struct {
	attr  uint64
	clear bool
}

var recursiveAttrs = map[string]recAttr{
	"rro": {unix.MOUNT_ATTR_RDONLY, false}, "rrw": {unix.MOUNT_ATTR_RDONLY, true},
	"rnosuid": {unix.MOUNT_ATTR_NOSUID, false}, "rsuid": {unix.MOUNT_ATTR_NOSUID, true},
	"rnodev": {unix.MOUNT_ATTR_NODEV, false}, "rdev": {unix.MOUNT_ATTR_NODEV, true},
	"rnoexec": {unix.MOUNT_ATTR_NOEXEC, false}, "rexec": {unix.MOUNT_ATTR_NOEXEC, true},
	"rnodiratime": {unix.MOUNT_ATTR_NODIRATIME, false}, "rdiratime": {unix.MOUNT_ATTR_NODIRATIME, true},
	"rnosymfollow": {unix.MOUNT_ATTR_NOSYMFOLLOW, false}, "rsymfollow": {unix.MOUNT_ATTR_NOSYMFOLLOW, true},
}

func parseMountOptions(opts []string) mountOpts {
	var m mountOpts
	for _, o := range opts {
		if f, ok := setFlags[o]; ok {
			m.flags |= f
			m.clear &^= f
			continue
		}
		if f, ok := clearFlags[o]; ok {
			m.flags &^= f
			m.clear |= f
			continue
		}
		if f, ok := propagationFlags[o]; ok {
			m.propagation = f
			continue
		}
		if r, ok := recursiveAttrs[o]; ok {
			if r.clear {
				m.recAttrClr |= r.attr
			} else {
				m.recAttrSet |= r.attr
			}
			continue
		}
		switch o {
		case "tmpcopyup":
			m.tmpcopyup = true
			continue
		case "idmap", "ridmap":
			continue
		}
		m.data = append(m.data, o)
	}
	return m
}

func (m mountOpts) dataString() string { return strings.Join(m.data, ",") }

// mountAttrs converts MS_* flags to MOUNT_ATTR_* bits for mount_setattr.
func mountAttrs(flags uintptr) (set uint64) {
	if flags&unix.MS_RDONLY != 0 {
		set |= unix.MOUNT_ATTR_RDONLY
	}
	if flags&unix.MS_NOSUID != 0 {
		set |= unix.MOUNT_ATTR_NOSUID
	}
	if flags&unix.MS_NODEV != 0 {
		set |= unix.MOUNT_ATTR_NODEV
	}
	if flags&unix.MS_NOEXEC != 0 {
		set |= unix.MOUNT_ATTR_NOEXEC
	}
	if flags&unix.MS_NODIRATIME != 0 {
		set |= unix.MOUNT_ATTR_NODIRATIME
	}
	if flags&unix.MS_NOSYMFOLLOW != 0 {
		set |= unix.MOUNT_ATTR_NOSYMFOLLOW
	}
	return set
}

// atimeAttr returns the MOUNT_ATTR__ATIME mode selected by flags, and whether one was.
func atimeAttr(flags uintptr) (uint64, bool) {
	switch {
	case flags&unix.MS_NOATIME != 0:
		return unix.MOUNT_ATTR_NOATIME, true
	case flags&unix.MS_STRICTATIME != 0:
		return unix.MOUNT_ATTR_STRICTATIME, true
	case flags&unix.MS_RELATIME != 0:
		return unix.MOUNT_ATTR_RELATIME, true
	}
	return 0, false
}
