package runtime

import (
	"fmt"
	"os"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

var cloneFlags = map[specs.LinuxNamespaceType]uintptr{
	specs.PIDNamespace: unix.CLONE_NEWPID, specs.NetworkNamespace: unix.CLONE_NEWNET,
	specs.MountNamespace: unix.CLONE_NEWNS, specs.IPCNamespace: unix.CLONE_NEWIPC,
	specs.UTSNamespace: unix.CLONE_NEWUTS, specs.UserNamespace: unix.CLONE_NEWUSER,
	specs.CgroupNamespace: unix.CLONE_NEWCGROUP, specs.TimeNamespace: unix.CLONE_NEWTIME,
}

// fdSet holds fds the parent opened for the child; they are closed once the child is cloned.
type fdSet struct{ fds []int }

func (f *fdSet) add(fd int) { f.fds = append(f.fds, fd) }

func (f *fdSet) closeAll() {
	for _, fd := range f.fds {
		unix.Close(fd)
	}
	f.fds = nil
}

// openHostFDs opens and verifies the host objects the child uses: /proc (for sysctls) and the state directory (for the exec fifo).
func (f *fdSet) openHostFDs(c *compiler, stateDir string) error {
	proc, err := unix.Open("/proc", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /proc: %w", err)
	}
	f.add(proc)
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(proc, &sfs); err != nil || sfs.Type != unix.PROC_SUPER_MAGIC {
		return fmt.Errorf("/proc is not a procfs")
	}
	c.hostProc = proc
	sd, err := unix.Open(stateDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open state dir: %w", err)
	}
	f.add(sd)
	c.stateDir = sd
	return nil
}

// openNamespace opens a namespace path and checks that it is a namespace of the right type.
func openNamespace(ns specs.LinuxNamespace) (int, error) {
	fd, err := unix.Open(ns.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("%s namespace path %s: %w", ns.Type, ns.Path, err)
	}
	t, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("%s namespace path %s is not a namespace file", ns.Type, ns.Path)
	}
	if uintptr(t) != cloneFlags[ns.Type] {
		unix.Close(fd)
		return -1, fmt.Errorf("%s namespace path %s is a namespace of another type", ns.Type, ns.Path)
	}
	return fd, nil
}

// enterForChildren runs on the cloning thread: it joins the pid and time namespaces that the
// spec names by path and makes a new time namespace with its offsets, which all take effect for
// children only.
func enterForChildren(s *specs.Spec, join map[specs.LinuxNamespaceType]int) error {
	if fd, ok := join[specs.PIDNamespace]; ok {
		if err := unix.Setns(fd, unix.CLONE_NEWPID); err != nil {
			return fmt.Errorf("join pid namespace %s: %w", nsPath(s, specs.PIDNamespace), err)
		}
	}
	if fd, ok := join[specs.TimeNamespace]; ok {
		if err := unix.Setns(fd, unix.CLONE_NEWTIME); err != nil {
			return fmt.Errorf("join time namespace %s: %w", nsPath(s, specs.TimeNamespace), err)
		}
	} else if hasNS(s, specs.TimeNamespace) {
		if err := unix.Unshare(unix.CLONE_NEWTIME); err != nil {
			return fmt.Errorf("new time namespace: %w", err)
		}
		if len(s.Linux.TimeOffsets) > 0 {
			var sb strings.Builder
			for clock, off := range s.Linux.TimeOffsets {
				switch clock {
				case "monotonic", "boottime":
				default:
					return invalidf("timeOffsets: unknown clock %q", clock)
				}
				fmt.Fprintf(&sb, "%s %d %d\n", clock, off.Secs, off.Nanosecs)
			}
			if err := os.WriteFile("/proc/thread-self/timens_offsets", []byte(sb.String()), 0); err != nil {
				return fmt.Errorf("set time offsets: %w", err)
			}
		}
	}
	return nil
}

// writeIDMaps writes the uid and gid maps of a new user namespace.
func writeIDMaps(pid int, l *specs.Linux) error {
	format := func(ms []specs.LinuxIDMapping) string {
		var sb strings.Builder
		for _, m := range ms {
			fmt.Fprintf(&sb, "%d %d %d\n", m.ContainerID, m.HostID, m.Size)
		}
		return sb.String()
	}
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/uid_map", pid), []byte(format(l.UIDMappings)), 0); err != nil {
		return fmt.Errorf("write uid_map: %w", err)
	}
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/gid_map", pid), []byte(format(l.GIDMappings)), 0); err != nil {
		return fmt.Errorf("write gid_map: %w", err)
	}
	return nil
}
