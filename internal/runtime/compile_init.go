package runtime

import (
	"path"
	"sort"
	"strings"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"berth/internal/runtime/child"
)

// joinOrder is the order in which namespaces given by path are joined: the user namespace first
// (it grants the rights to join the others), the mount namespace last.
var joinOrder = []specs.LinuxNamespaceType{specs.UserNamespace, specs.IPCNamespace, specs.UTSNamespace,
	specs.NetworkNamespace, specs.CgroupNamespace, specs.MountNamespace}

func (c *compiler) record(kind uint32) uintptr {
	r := &child.Record{Kind: kind}
	return c.b.Mem(unsafe.Pointer(r), r)
}

// compileInit builds the program of a container's init. It returns the clone flags and whether
// the child stops for create hooks.
func (c *compiler) compileInit(pl *processPlan, o CreateOpts, run bool) (uintptr, bool, error) {
	s := c.spec
	b := c.b
	var flags uintptr
	for _, ns := range s.Linux.Namespaces {
		if ns.Path != "" {
			continue
		}
		switch ns.Type {
		case specs.CgroupNamespace, specs.TimeNamespace:
			// cgroup: unshared after the parent placed the child in its cgroup;
			// time: made on the cloning thread
		default:
			flags |= cloneFlags[ns.Type]
		}
	}
	b.Special("reset signal handlers", child.KindResetSignals)
	b.Sys("make the init non-dumpable", unix.SYS_PRCTL, unix.PR_SET_DUMPABLE, 0)
	buf := b.Buf(8)
	b.Special("wait for the runtime", child.KindReadByte, uintptr(c.syncFD), buf)
	for _, t := range joinOrder {
		if fd, ok := c.joinFDs[t]; ok {
			b.Sys("join "+string(t)+" namespace "+nsPath(s, t), unix.SYS_SETNS, uintptr(fd), cloneFlags[t])
		}
	}
	c.becomeNSRoot()
	// The parent joins the child to its cgroups while the child sets up its mounts (a cgroup v1
	// move can cost an RCU grace period); the child waits for that before it makes its cgroup
	// namespace, which must be rooted at the container's cgroup.
	cgroupWait := func() {
		b.Special("wait for the cgroup join", child.KindReadByte, uintptr(c.syncFD), buf)
		if hasNS(s, specs.CgroupNamespace) && nsPath(s, specs.CgroupNamespace) == "" {
			b.Sys("create cgroup namespace", unix.SYS_UNSHARE, unix.CLONE_NEWCGROUP)
		}
	}
	earlyCgroup := c.cgroupV2Dir != "" && hasNS(s, specs.CgroupNamespace)
	if earlyCgroup {
		cgroupWait()
	}
	b.Sys("create session", unix.SYS_SETSID)
	b.Sys("clear umask", unix.SYS_UMASK, 0)
	if s.Hostname != "" {
		b.Sys("set hostname "+s.Hostname, unix.SYS_SETHOSTNAME, b.Str(s.Hostname), uintptr(len(s.Hostname)))
	}
	if s.Domainname != "" {
		b.Sys("set domainname "+s.Domainname, unix.SYS_SETDOMAINNAME, b.Str(s.Domainname), uintptr(len(s.Domainname)))
	}
	c.sysctls()
	var console int32 = -1
	if c.newMntNS {
		if err := c.mountAll(&console, s.Process.Terminal); err != nil {
			return 0, false, err
		}
	} else if s.Process.Terminal {
		// No rootfs of our own (a joined mount namespace): use the devpts at /dev/pts.
		console = c.consoleAt(child.AtFDCWD)
	}
	if !earlyCgroup {
		cgroupWait()
	}
	//lint:ignore SA1019 prestart hooks are deprecated but still in the spec, and engines use them
	hookWait := s.Hooks != nil && (len(s.Hooks.Prestart) > 0 || len(s.Hooks.CreateRuntime) > 0 || len(s.Hooks.CreateContainer) > 0)
	if hookWait {
		b.Sys("report hook point", unix.SYS_SENDTO, uintptr(c.syncFD), c.record(child.StatusHooks), unsafe.Sizeof(child.Record{}), unix.MSG_NOSIGNAL, 0, 0)
		b.Special("wait for create hooks", child.KindReadByte, uintptr(c.syncFD), buf)
	}
	if c.newMntNS {
		c.compileMkCwd(s.Process.Cwd)
		c.pivot(o.NoPivot)
	} else {
		// No mount namespace: nothing can be mounted, but the process still runs in its rootfs.
		b.Sys("chroot to rootfs "+c.rootfs, unix.SYS_CHROOT, b.Str(c.rootfs))
		b.Sys("change directory to /", unix.SYS_CHDIR, b.Str("/"))
	}
	c.compileCwd(s.Process.Cwd)
	if console >= 0 {
		c.attachConsole(console)
	}
	c.compileCloseFDs(pl)
	c.compileIdentity(pl)
	c.compileExecCheck(pl)
	b.Sys("report ready", unix.SYS_SENDTO, uintptr(c.syncFD), c.record(child.StatusReady), unsafe.Sizeof(child.Record{}), unix.MSG_NOSIGNAL, 0, 0)
	if !run {
		// From here on (after start) nobody reads the sync socket: failures also go to the
		// process's stderr, where the engine's logs see them.
		b.LoudFromHere()
	}
	if run {
		b.Special("wait for start", child.KindReadByte, uintptr(c.syncFD), buf)
	} else {
		// Not through a slot: RLIMIT_NOFILE may be below the slots by now.
		b.Special("wait for start (open and write exec fifo)", child.KindWriteByteAt, uintptr(c.stateDir), b.Str(execFifo), b.Str("0"))
	}
	c.compileExec(pl)
	return flags, hookWait, nil
}

// becomeNSRoot makes the child root of its user namespace, if it has one: the ids it was cloned
// with are not mapped there.
func (c *compiler) becomeNSRoot() {
	if c.userns {
		c.b.Sys("become root in the user namespace (gid)", unix.SYS_SETRESGID, 0, 0, 0)
		c.b.Sys("become root in the user namespace (uid)", unix.SYS_SETRESUID, 0, 0, 0)
	}
}

// attachConsole makes the pty peer the process's stdio and controlling terminal.
func (c *compiler) attachConsole(peer int32) {
	b := c.b
	for fd := uintptr(0); fd < 3; fd++ {
		b.Sys("attach console", unix.SYS_DUP3, uintptr(peer), fd, 0)
	}
	b.Sys("set controlling terminal", unix.SYS_IOCTL, 0, unix.TIOCSCTTY, 0)
	b.Close(peer)
}

// sysctls writes each sysctl through the host's procfs fd, refusing symlinks, magic links and
// mount crossings on the way (so an over-mounted /proc cannot redirect the write: CVE-2025-52881).
func (c *compiler) sysctls() {
	keys := make([]string, 0, len(c.spec.Linux.Sysctl))
	for k := range c.spec.Linux.Sysctl {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := c.spec.Linux.Sysctl[k]
		p := path.Join("sys", strings.ReplaceAll(k, ".", "/"))
		_, fd := c.b.SysFD("open sysctl "+k, unix.SYS_OPENAT2, uintptr(c.hostProc), c.b.Str(p),
			c.how(unix.O_WRONLY, 0, unix.RESOLVE_BENEATH|unix.RESOLVE_NO_SYMLINKS|unix.RESOLVE_NO_MAGICLINKS|unix.RESOLVE_NO_XDEV), unsafe.Sizeof(unix.OpenHow{}))
		c.b.Sys("write sysctl "+k+"="+v, unix.SYS_WRITE, uintptr(fd), c.b.Str(v), uintptr(len(v)))
		c.b.Close(fd)
	}
}
