package runtime

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"berth/internal/mountinfo"
	"berth/internal/runtime/child"
)

// compiler turns a spec into a child program. Every method appends ops; none touches the system
// except through the fds it was given.
type compiler struct {
	b      *child.Builder
	spec   *specs.Spec
	rootfs string // absolute host path of the rootfs
	// fds inherited by the child (open in the parent when it clones)
	syncFD   int
	hostProc int // O_PATH fd of the host's /proc, verified as procfs
	hostNull int // O_PATH fd of the host's /dev/null, verified as char 1:3
	stateDir int // O_PATH fd of the container's state dir (exec fifo)
	joinFDs  map[specs.LinuxNamespaceType]int
	userns   bool // a user namespace is created or joined
	newMntNS bool
	// rootFD is the slot holding the rootfs after it is bind-mounted on itself
	rootFD int32
	// cgroupBinds maps a path under /sys/fs/cgroup to a host cgroup directory (v1)
	cgroupBinds []cgroupBind
	cgroupV2Dir string
	devNames    map[string]bool
}

type cgroupBind struct {
	name, hostDir string
}

const (
	resolveInRoot = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS
)

func (c *compiler) how(flags uint64, mode uint64, resolve uint64) uintptr {
	h := &unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Mode: mode, Resolve: resolve}
	return c.b.Mem(unsafe.Pointer(h), h)
}

// openInRoot appends openat2(dirfd, rel, flags, RESOLVE_IN_ROOT) and returns the op and the slot.
func (c *compiler) openInRoot(desc string, dirfd int32, rel string, flags uint64, resolve uint64) (int, int32) {
	if rel == "" {
		rel = "."
	}
	return c.b.SysFD(desc, unix.SYS_OPENAT2, uintptr(dirfd), c.b.Str(rel), c.how(flags, 0, resolve), unsafe.Sizeof(unix.OpenHow{}))
}

// relPath turns a container path into a path relative to the rootfs ("" for "/").
func relPath(p string) string {
	return strings.TrimPrefix(path.Clean("/"+p), "/")
}

// mkdirAll appends ops that create dir (relative to the root fd) with its parents, resolving
// symlinks inside the root. If file is true the last component is made a regular file.
func (c *compiler) mkdirAll(rel string, file bool, what string) {
	if rel == "" {
		return
	}
	// Fast path: it exists already. On ENOENT skip the close and the jump over the creation.
	first, s := c.openInRoot("look up "+what, c.rootFD, rel, unix.O_PATH, resolveInRoot)
	c.b.Ignore(first, 2, unix.ENOENT)
	c.b.Close(s)
	skip := c.b.Special("skip creation of "+what, child.KindSkip, 0)
	parts := strings.Split(rel, "/")
	for i, name := range parts {
		parent := c.rootFD
		if i > 0 {
			_, parent = c.openInRoot("open "+strings.Join(parts[:i], "/")+" in rootfs", c.rootFD, strings.Join(parts[:i], "/"), unix.O_PATH|unix.O_DIRECTORY, resolveInRoot)
		}
		var op int
		if file && i == len(parts)-1 {
			op = c.b.Sys("create "+what, unix.SYS_MKNODAT, uintptr(parent), c.b.Str(name), unix.S_IFREG|0o644, 0)
		} else {
			op = c.b.Sys("create directory /"+strings.Join(parts[:i+1], "/"), unix.SYS_MKDIRAT, uintptr(parent), c.b.Str(name), 0o755)
		}
		c.b.Ignore(op, 0, unix.EEXIST)
		if i > 0 {
			c.b.Close(parent)
		}
	}
	c.b.SetSkip(skip, c.b.Len())
}

// target appends ops that create the mount target dest (dir or file) and return a slot holding
// an O_PATH fd of it. noSymlinks refuses any symlink on the way (procfs and sysfs targets).
func (c *compiler) target(dest string, file bool, noSymlinks bool) int32 {
	rel := relPath(dest)
	c.mkdirAll(rel, file, "mount target "+dest)
	resolve := uint64(resolveInRoot)
	if noSymlinks {
		resolve |= unix.RESOLVE_NO_SYMLINKS
	}
	_, s := c.openInRoot("open mount target "+dest+" in rootfs", c.rootFD, rel, unix.O_PATH, resolve)
	if !allowedProcBind[path.Clean(dest)] {
		// The target may resolve into the container's procfs through symlinks in the
		// image (CVE-2019-19921, CVE-2023-27561): refuse to mount anything there.
		c.b.Special("refuse mount target "+dest+": it resolves into /proc", child.KindFailIfFSType, uintptr(s), unix.PROC_SUPER_MAGIC)
	}
	return s
}

func fdPath(fd int32) string { return fmt.Sprintf("/proc/self/fd/%d", fd) }

// mountAll appends the rootfs setup: propagation, the rootfs bind, every spec mount, devices,
// console, masked and readonly paths. It ends with the root still at the host's root.
func (c *compiler) mountAll(consoleSlot *int32, terminal bool) error {
	s := c.spec
	b := c.b
	prop := uintptr(unix.MS_SLAVE | unix.MS_REC)
	parent := "" // the mount the rootfs is on, made private
	if s.Linux.RootfsPropagation != "" {
		prop = propagationFlags[s.Linux.RootfsPropagation]
		switch prop &^ unix.MS_REC {
		case unix.MS_UNBINDABLE:
			// the host side must not see container mounts: keep the root private below the rootfs
			prop = unix.MS_PRIVATE | unix.MS_REC
		case unix.MS_SHARED:
			// As runc: the host's mounts keep their peers, so that a shared bind of one
			// (rshared, kubelet's Bidirectional) propagates both ways; the mount the rootfs is
			// on is made private, so that the container's own mounts stay in the container
			// (pivot_root needs it too).
			mp, err := mountPointOf(c.rootfs)
			if err != nil {
				return fmt.Errorf("rootfs %s: %w", c.rootfs, err)
			}
			parent = mp
		}
	}
	b.Sys("make / "+propName(prop), unix.SYS_MOUNT, 0, b.Str("/"), 0, prop, 0)
	if parent != "" {
		b.Sys("make the rootfs's mount "+parent+" private", unix.SYS_MOUNT, 0, b.Str(parent), 0, unix.MS_PRIVATE, 0)
	}
	// The rootfs's parent must be private for pivot_root.
	b.Sys("bind rootfs "+c.rootfs+" onto itself", unix.SYS_MOUNT, b.Str(c.rootfs), b.Str(c.rootfs), b.Str("bind"), unix.MS_BIND|unix.MS_REC, 0)
	_, c.rootFD = b.SysFD("open rootfs "+c.rootfs, unix.SYS_OPENAT, child.AtFDCWD, b.Str(c.rootfs), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)

	ptsMounted := false
	for _, m := range s.Mounts {
		if err := c.mount(m); err != nil {
			return err
		}
		if path.Clean(m.Destination) == "/dev/pts" {
			ptsMounted = true
		}
	}
	c.devices(ptsMounted)
	if terminal {
		*consoleSlot = c.console()
	}
	if len(s.Linux.MaskedPaths) > 0 {
		// The host's /dev/null as seen in our copy of the host's mount namespace; the
		// container's own /dev/null is under its control (CVE-2025-31133).
		_, null := b.SysFD("open /dev/null", unix.SYS_OPENAT, child.AtFDCWD, b.Str("/dev/null"), unix.O_PATH|unix.O_CLOEXEC, 0)
		b.Special("check /dev/null is the null device", child.KindCheckCharDev, uintptr(null), uintptr(unix.Mkdev(1, 3)))
		c.hostNull = int(null)
		for _, p := range s.Linux.MaskedPaths {
			c.maskPath(p)
		}
		b.Close(null)
	}
	for _, p := range s.Linux.ReadonlyPaths {
		c.readonlyPath(p)
	}
	return nil
}

func propName(f uintptr) string {
	for k, v := range propagationFlags {
		if v == f {
			return k
		}
	}
	return fmt.Sprintf("propagation %#x", f)
}

func (c *compiler) mount(m specs.Mount) error {
	b := c.b
	o := parseMountOptions(m.Options)
	typ := m.Type
	if o.flags&unix.MS_BIND != 0 || typ == "bind" {
		return c.bindMount(m, o)
	}
	switch typ {
	case "cgroup", "cgroup2":
		return c.cgroupMount(m, o)
	case "":
		return invalidf("mount %s: no type and not a bind mount", m.Destination)
	}
	dest := path.Clean(m.Destination)
	noSymlinks := typ == "proc" || typ == "sysfs"
	if strings.HasPrefix(dest+"/", "/proc/") && dest != "/proc" && typ != "tmpfs" {
		return invalidf("mount %s of type %s: mounts over /proc subpaths are not allowed", dest, typ)
	}
	t := c.target(dest, false, noSymlinks)
	desc := fmt.Sprintf("mount %s on %s", typ, dest)
	src := m.Source
	if src == "" {
		src = typ
	}
	i := b.Sys(desc, unix.SYS_MOUNT, b.Str(src), b.Str(fdPath(t)), b.Str(typ), o.flags&^unix.MS_REMOUNT, b.Str(o.dataString()))
	if typ == "sysfs" && c.userns {
		// sysfs cannot be mounted in a user namespace that does not own the network
		// namespace: fall back to a recursive bind of the host's /sys, as runc does.
		b.Ignore(i, 0, unix.EPERM)
		b.SkipOK(i, 3)
		_, slot := b.SysFD("bind host /sys (sysfs mount refused in user namespace)", unix.SYS_OPEN_TREE, child.AtFDCWD, b.Str("/sys"), unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
		b.Sys("move /sys bind onto "+dest, unix.SYS_MOVE_MOUNT, uintptr(slot), b.Str(""), uintptr(t), b.Str(""), unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
		b.Close(slot)
	}
	if typ == "devpts" && c.userns {
		// gid=5 may not be mapped in the user namespace: retry without it, as runc does.
		var data []string
		for _, d := range o.data {
			if !strings.HasPrefix(d, "gid=") {
				data = append(data, d)
			}
		}
		b.Ignore(i, 0, unix.EINVAL)
		b.SkipOK(i, 1)
		b.Sys(desc+" (without gid)", unix.SYS_MOUNT, b.Str(src), b.Str(fdPath(t)), b.Str(typ), o.flags&^unix.MS_REMOUNT, b.Str(strings.Join(data, ",")))
	}
	b.Close(t)
	if o.propagation != 0 || o.recAttrSet != 0 || o.recAttrClr != 0 {
		_, t2 := c.openInRoot("reopen "+dest, c.rootFD, relPath(dest), unix.O_PATH, resolveInRoot)
		if o.propagation != 0 {
			b.Sys(fmt.Sprintf("set propagation of %s to %s", dest, propName(o.propagation)), unix.SYS_MOUNT, 0, b.Str(fdPath(t2)), 0, o.propagation, 0)
		}
		if o.recAttrSet != 0 || o.recAttrClr != 0 {
			attr := &unix.MountAttr{Attr_set: o.recAttrSet, Attr_clr: o.recAttrClr}
			b.Sys("set recursive attributes of "+dest, unix.SYS_MOUNT_SETATTR, uintptr(t2), b.Str(""), unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, b.Mem(unsafe.Pointer(attr), attr), unsafe.Sizeof(*attr))
		}
		b.Close(t2)
	}
	return nil
}

// bindMount clones the source tree with open_tree, sets its attributes with mount_setattr and
// moves it onto the target fd: no window in which the target path is re-resolved.
func (c *compiler) bindMount(m specs.Mount, o mountOpts) error {
	b := c.b
	dest := path.Clean(m.Destination)
	src := m.Source
	if !filepath.IsAbs(src) {
		return invalidf("bind mount %s: source %q must be an absolute path", dest, src)
	}
	var st unix.Stat_t
	if err := unix.Stat(src, &st); err != nil {
		return fmt.Errorf("bind mount source %s for %s: %w", src, dest, err)
	}
	isFile := st.Mode&unix.S_IFMT != unix.S_IFDIR
	if strings.HasPrefix(dest+"/", "/proc/") {
		if !allowedProcBind[dest] {
			return invalidf("bind mount over %s is not allowed: only some /proc files may be replaced", dest)
		}
	}
	t := c.target(dest, isFile, dest == "/proc" || strings.HasPrefix(dest, "/proc/"))
	flags := uintptr(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC)
	if o.flags&unix.MS_REC != 0 {
		flags |= unix.AT_RECURSIVE
	}
	_, tree := b.SysFD(fmt.Sprintf("open bind source %s for %s", src, dest), unix.SYS_OPEN_TREE, child.AtFDCWD, b.Str(src), flags)
	set := mountAttrs(o.flags)
	clr := mountAttrs(o.clear)
	if at, ok := atimeAttr(o.flags); ok {
		set |= at
		clr |= unix.MOUNT_ATTR__ATIME
	}
	// The flags (ro, nosuid, ...) apply to the bind's top mount only, as runc's remount
	// does (rro and friends are recAttrSet); the propagation to the whole tree with r*.
	if set != 0 || clr != 0 {
		attr := &unix.MountAttr{Attr_set: set, Attr_clr: clr}
		i := b.Sys("set attributes of bind mount "+dest, unix.SYS_MOUNT_SETATTR, uintptr(tree), b.Str(""), unix.AT_EMPTY_PATH, b.Mem(unsafe.Pointer(attr), attr), unsafe.Sizeof(*attr))
		if clr != 0 {
			// Clearing a flag the source mount has locked (in a user namespace) is refused:
			// retry setting only.
			b.Ignore(i, 0, unix.EPERM)
			b.SkipOK(i, 1)
			attr2 := &unix.MountAttr{Attr_set: set}
			b.Sys("set attributes of bind mount "+dest, unix.SYS_MOUNT_SETATTR, uintptr(tree), b.Str(""), unix.AT_EMPTY_PATH, b.Mem(unsafe.Pointer(attr2), attr2), unsafe.Sizeof(*attr2))
		}
	}
	if o.propagation != 0 {
		attr := &unix.MountAttr{Propagation: uint64(o.propagation &^ unix.MS_REC)}
		recursive := uintptr(0)
		if o.propagation&unix.MS_REC != 0 {
			recursive = unix.AT_RECURSIVE
		}
		b.Sys("set propagation of bind mount "+dest, unix.SYS_MOUNT_SETATTR, uintptr(tree), b.Str(""), unix.AT_EMPTY_PATH|recursive, b.Mem(unsafe.Pointer(attr), attr), unsafe.Sizeof(*attr))
	}
	if o.recAttrSet != 0 || o.recAttrClr != 0 {
		attr := &unix.MountAttr{Attr_set: o.recAttrSet, Attr_clr: o.recAttrClr}
		b.Sys("set recursive attributes of bind mount "+dest, unix.SYS_MOUNT_SETATTR, uintptr(tree), b.Str(""), unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, b.Mem(unsafe.Pointer(attr), attr), unsafe.Sizeof(*attr))
	}
	b.Sys(fmt.Sprintf("bind mount %s on %s", src, dest), unix.SYS_MOVE_MOUNT, uintptr(tree), b.Str(""), uintptr(t), b.Str(""), unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
	b.Close(tree)
	b.Close(t)
	return nil
}

// allowedProcBind lists the /proc files a bind mount may replace (lxcfs and friends), as runc.
var allowedProcBind = map[string]bool{
	"/proc/cpuinfo": true, "/proc/diskstats": true, "/proc/meminfo": true, "/proc/stat": true,
	"/proc/swaps": true, "/proc/uptime": true, "/proc/loadavg": true, "/proc/slabinfo": true,
	"/proc/net/dev": true, "/proc/sys/kernel/ns_last_pid": true,
}

// cgroupMount mounts a read-only view of the container's own cgroups at the destination:
// cgroup2 for a v2 host, a tmpfs with one bind per v1 hierarchy otherwise.
func (c *compiler) cgroupMount(m specs.Mount, o mountOpts) error {
	b := c.b
	dest := path.Clean(m.Destination)
	ro := o.flags&unix.MS_RDONLY != 0
	if c.cgroupV2Dir != "" {
		t := c.target(dest, false, true)
		if hasNS(c.spec, specs.CgroupNamespace) {
			b.Sys("mount cgroup2 on "+dest, unix.SYS_MOUNT, b.Str("cgroup2"), b.Str(fdPath(t)), b.Str("cgroup2"), o.flags, 0)
		} else {
			c.bindTree(c.cgroupV2Dir, t, dest, ro)
		}
		b.Close(t)
		return nil
	}
	t := c.target(dest, false, true)
	b.Sys("mount tmpfs on "+dest, unix.SYS_MOUNT, b.Str("tmpfs"), b.Str(fdPath(t)), b.Str("tmpfs"), unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, b.Str("mode=755"))
	b.Close(t)
	for _, cb := range c.cgroupBinds {
		sub := path.Join(dest, cb.name)
		st := c.target(sub, false, true)
		c.bindTree(cb.hostDir, st, sub, ro)
		b.Close(st)
		if strings.Contains(cb.name, ",") {
			// cpu,cpuacct -> symlinks cpu and cpuacct
			_, dfd := c.openInRoot("open "+dest, c.rootFD, relPath(dest), unix.O_PATH|unix.O_DIRECTORY, resolveInRoot)
			for _, n := range strings.Split(cb.name, ",") {
				i := b.Sys("symlink "+path.Join(dest, n), unix.SYS_SYMLINKAT, b.Str(cb.name), uintptr(dfd), b.Str(n))
				b.Ignore(i, 0, unix.EEXIST)
			}
			b.Close(dfd)
		}
	}
	if ro {
		_, t2 := c.openInRoot("reopen "+dest, c.rootFD, relPath(dest), unix.O_PATH, resolveInRoot)
		attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		b.Sys("make "+dest+" read-only", unix.SYS_MOUNT_SETATTR, uintptr(t2), b.Str(""), unix.AT_EMPTY_PATH, b.Mem(unsafe.Pointer(attr), attr), unsafe.Sizeof(*attr))
		b.Close(t2)
	}
	return nil
}

func (c *compiler) bindTree(src string, target int32, dest string, ro bool) {
	b := c.b
	_, tree := b.SysFD("open "+src, unix.SYS_OPEN_TREE, child.AtFDCWD, b.Str(src), unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC}
	if ro {
		attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
	}
	b.Sys("set attributes of "+dest, unix.SYS_MOUNT_SETATTR, uintptr(tree), b.Str(""), unix.AT_EMPTY_PATH, b.Mem(unsafe.Pointer(attr), attr), unsafe.Sizeof(*attr))
	b.Sys("bind "+src+" on "+dest, unix.SYS_MOVE_MOUNT, uintptr(tree), b.Str(""), uintptr(target), b.Str(""), unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
	b.Close(tree)
}

type devNode struct {
	path         string
	typ          uint32
	major, minor int64
	mode         uint32
	uid, gid     uint32
}

var defaultDevices = []devNode{
	{"/dev/null", unix.S_IFCHR, 1, 3, 0o666, 0, 0},
	{"/dev/zero", unix.S_IFCHR, 1, 5, 0o666, 0, 0},
	{"/dev/full", unix.S_IFCHR, 1, 7, 0o666, 0, 0},
	{"/dev/random", unix.S_IFCHR, 1, 8, 0o666, 0, 0},
	{"/dev/urandom", unix.S_IFCHR, 1, 9, 0o666, 0, 0},
	{"/dev/tty", unix.S_IFCHR, 5, 0, 0o666, 0, 0},
}

// devices creates the default and configured device nodes (bind-mounted from the host in a
// user namespace, where mknod is refused) and /dev's standard symlinks.
func (c *compiler) devices(ptsMounted bool) {
	b := c.b
	nodes := append([]devNode{}, defaultDevices...)
	for _, d := range c.spec.Linux.Devices {
		n := devNode{path: path.Clean(d.Path), major: d.Major, minor: d.Minor, mode: 0o666}
		switch d.Type {
		case "c", "u":
			n.typ = unix.S_IFCHR
		case "b":
			n.typ = unix.S_IFBLK
		case "p":
			n.typ = unix.S_IFIFO
		}
		if d.FileMode != nil {
			n.mode = uint32(d.FileMode.Perm())
		}
		if d.UID != nil {
			n.uid = *d.UID
		}
		if d.GID != nil {
			n.gid = *d.GID
		}
		replaced := false
		for i := range nodes {
			if nodes[i].path == n.path {
				nodes[i] = n
				replaced = true
			}
		}
		if !replaced {
			nodes = append(nodes, n)
		}
	}
	c.devNames = map[string]bool{}
	// Each directory that holds nodes is made and opened once: nothing mounts over it meanwhile.
	dirFDs := map[string]int32{}
	var opened []int32
	for _, n := range nodes {
		c.devNames[n.path] = true
		rel := relPath(n.path)
		dir, name := path.Split(rel)
		dir = strings.TrimSuffix(dir, "/")
		dfd, ok := dirFDs[dir]
		if !ok {
			c.mkdirAll(dir, false, "directory for "+n.path)
			_, dfd = c.openInRoot("open "+path.Dir(n.path), c.rootFD, dir, unix.O_PATH|unix.O_DIRECTORY, resolveInRoot)
			dirFDs[dir] = dfd
			opened = append(opened, dfd)
		}
		if c.userns {
			i := b.Sys("create "+n.path, unix.SYS_MKNODAT, uintptr(dfd), b.Str(name), unix.S_IFREG|0o644, 0)
			b.Ignore(i, 0, unix.EEXIST)
			_, t := b.SysFD("open "+n.path, unix.SYS_OPENAT, uintptr(dfd), b.Str(name), unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			b.Special("refuse symlink at "+n.path, child.KindFailIfMode, uintptr(t), unix.S_IFLNK)
			_, tree := b.SysFD("open host "+n.path, unix.SYS_OPEN_TREE, child.AtFDCWD, b.Str(n.path), unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
			b.Sys("bind host "+n.path, unix.SYS_MOVE_MOUNT, uintptr(tree), b.Str(""), uintptr(t), b.Str(""), unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
			b.Close(tree)
			b.Close(t)
		} else {
			i := b.Sys("create device "+n.path, unix.SYS_MKNODAT, uintptr(dfd), b.Str(name), uintptr(n.typ|n.mode), uintptr(unix.Mkdev(uint32(n.major), uint32(n.minor))))
			b.Ignore(i, 0, unix.EEXIST)
			b.Sys("chown "+n.path, unix.SYS_FCHOWNAT, uintptr(dfd), b.Str(name), uintptr(n.uid), uintptr(n.gid), unix.AT_SYMLINK_NOFOLLOW)
		}
	}
	// symlinks (the default nodes are in /dev: it is open)
	dev := dirFDs["dev"]
	links := [][2]string{{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"}}
	if _, err := os.Stat("/proc/kcore"); err == nil && hasMountAt(c.spec, "/proc") {
		links = append(links, [2]string{"/proc/kcore", "core"})
	}
	for _, l := range links {
		i := b.Sys("symlink /dev/"+l[1], unix.SYS_SYMLINKAT, b.Str(l[0]), uintptr(dev), b.Str(l[1]))
		b.Ignore(i, 0, unix.EEXIST)
	}
	if ptsMounted {
		i := b.Sys("remove /dev/ptmx", unix.SYS_UNLINKAT, uintptr(dev), b.Str("ptmx"), 0)
		b.Ignore(i, 0, unix.ENOENT)
		b.Sys("symlink /dev/ptmx", unix.SYS_SYMLINKAT, b.Str("pts/ptmx"), uintptr(dev), b.Str("ptmx"))
	}
	for _, fd := range opened {
		b.Close(fd)
	}
}

func hasMountAt(s *specs.Spec, dest string) bool {
	for _, m := range s.Mounts {
		if path.Clean(m.Destination) == dest {
			return true
		}
	}
	return false
}

// console opens a new pty in the container's devpts, binds its peer onto /dev/console (created
// without following symlinks: CVE-2025-52565) and returns the slot of the peer. The master is
// sent to the parent over the sync socket.
func (c *compiler) console() int32 {
	_, master := c.openInRoot("open /dev/pts/ptmx", c.rootFD, "dev/pts/ptmx", unix.O_RDWR|unix.O_NOCTTY, resolveInRoot)
	return c.ptyFrom(master, true)
}

// consoleAt opens a pty from the devpts at /dev/pts of the current mount namespace.
func (c *compiler) consoleAt(dirfd uintptr) int32 {
	_, master := c.b.SysFD("open /dev/pts/ptmx", unix.SYS_OPENAT, dirfd, c.b.Str("/dev/pts/ptmx"), unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	return c.ptyFrom(master, false)
}

// ptyFrom unlocks the pty master, opens its peer (returned), optionally binds the peer onto the
// rootfs's /dev/console, and sends the master to the parent.
func (c *compiler) ptyFrom(master int32, bindConsole bool) int32 {
	b := c.b
	zero := new(int32)
	b.Sys("unlock pty", unix.SYS_IOCTL, uintptr(master), unix.TIOCSPTLCK, b.Mem(unsafe.Pointer(zero), zero))
	_, peer := b.SysFD("open pty peer", unix.SYS_IOCTL, uintptr(master), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if cs := c.spec.Process.ConsoleSize; cs != nil {
		ws := &unix.Winsize{Row: uint16(cs.Height), Col: uint16(cs.Width)}
		b.Sys("set console size", unix.SYS_IOCTL, uintptr(master), unix.TIOCSWINSZ, b.Mem(unsafe.Pointer(ws), ws))
	}
	if !bindConsole {
		c.sendFD("send pty master", master, fdTagConsole)
		b.Close(master)
		return peer
	}
	_, dev := c.openInRoot("open /dev", c.rootFD, "dev", unix.O_PATH|unix.O_DIRECTORY, resolveInRoot)
	i := b.Sys("create /dev/console", unix.SYS_MKNODAT, uintptr(dev), b.Str("console"), unix.S_IFREG|0o600, 0)
	b.Ignore(i, 0, unix.EEXIST)
	_, t := b.SysFD("open /dev/console", unix.SYS_OPENAT, uintptr(dev), b.Str("console"), unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	b.Special("refuse a symlink at /dev/console", child.KindFailIfMode, uintptr(t), unix.S_IFLNK)
	b.Sys("bind pty on /dev/console", unix.SYS_MOUNT, b.Str(fdPath(peer)), b.Str(fdPath(t)), 0, unix.MS_BIND, 0)
	b.Close(t)
	b.Close(dev)
	c.sendFD("send pty master", master, fdTagConsole)
	b.Close(master)
	return peer
}

// Tags of the fds the child sends to the parent.
const (
	fdTagConsole = 'F'
	fdTagSeccomp = 'S'
)

// sendFD appends a sendmsg of fd over the sync socket, tagged with what it is.
func (c *compiler) sendFD(desc string, fd int32, tag byte) {
	b := c.b
	data := []byte{tag}
	iov := &unix.Iovec{Base: &data[0], Len: 1}
	oob := unix.UnixRights(int(fd))
	msg := &unix.Msghdr{Iov: iov, Iovlen: 1, Control: &oob[0]}
	msg.SetControllen(len(oob))
	b.Mem(unsafe.Pointer(iov), data)
	b.Mem(unsafe.Pointer(&oob[0]), oob)
	b.Sys(desc, unix.SYS_SENDMSG, uintptr(c.syncFD), b.Mem(unsafe.Pointer(msg), msg), unix.MSG_NOSIGNAL)
}

// maskPath hides a path: files get the host's /dev/null bound over them (never the container's,
// which the container controls: CVE-2025-31133), directories a read-only tmpfs.
func (c *compiler) maskPath(p string) {
	b := c.b
	rel := relPath(p)
	open, t := c.openInRoot("open masked path "+p, c.rootFD, rel, unix.O_PATH|unix.O_NOFOLLOW, resolveInRoot|unix.RESOLVE_NO_SYMLINKS)
	ifDir := b.Special("check type of "+p, child.KindIfMode, uintptr(t), unix.S_IFDIR, 0)
	_, tree := b.SysFD("clone host /dev/null", unix.SYS_OPEN_TREE, uintptr(c.hostNull), b.Str(""), unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
	b.Sys("mask "+p, unix.SYS_MOVE_MOUNT, uintptr(tree), b.Str(""), uintptr(t), b.Str(""), unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
	b.Close(tree)
	skip := b.Special("skip", child.KindSkip, 0)
	b.SetSkip(ifDir, b.Len())
	b.Sys("mask directory "+p, unix.SYS_MOUNT, b.Str("tmpfs"), b.Str(fdPath(t)), b.Str("tmpfs"), unix.MS_RDONLY, 0)
	b.SetSkip(skip, b.Len())
	b.Close(t)
	b.Ignore(open, b.Len()-open-1, unix.ENOENT)
}

// readonlyPath binds a path read-only over itself.
func (c *compiler) readonlyPath(p string) {
	b := c.b
	rel := relPath(p)
	open, t := c.openInRoot("open read-only path "+p, c.rootFD, rel, unix.O_PATH|unix.O_NOFOLLOW, resolveInRoot|unix.RESOLVE_NO_SYMLINKS)
	_, tree := b.SysFD("clone "+p, unix.SYS_OPEN_TREE, uintptr(t), b.Str(""), unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH|unix.AT_RECURSIVE)
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC}
	b.Sys("make "+p+" read-only", unix.SYS_MOUNT_SETATTR, uintptr(tree), b.Str(""), unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, b.Mem(unsafe.Pointer(attr), attr), unsafe.Sizeof(*attr))
	b.Sys("bind "+p+" read-only", unix.SYS_MOVE_MOUNT, uintptr(tree), b.Str(""), uintptr(t), b.Str(""), unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
	b.Close(tree)
	b.Close(t)
	b.Ignore(open, b.Len()-open-1, unix.ENOENT)
}

// pivot switches the root to the rootfs (pivot_root, or MS_MOVE + chroot with noPivot) and
// applies the read-only root and rootfs propagation.
func (c *compiler) pivot(noPivot bool) {
	b := c.b
	b.Sys("change directory to rootfs", unix.SYS_FCHDIR, uintptr(c.rootFD))
	if noPivot {
		b.Sys("move rootfs to /", unix.SYS_MOUNT, b.Str("."), b.Str("/"), 0, unix.MS_MOVE, 0)
		b.Sys("chroot to rootfs", unix.SYS_CHROOT, b.Str("."))
	} else {
		// As runc: the old root is made rslave and unmounted through an fd opened on it
		// before the pivot. After pivot_root(".", ".") the kernel gives no promise about
		// what "." is, and when it is the new root, making it rslave would turn the
		// container's shared binds (kubelet's Bidirectional) into slaves.
		_, oldRoot := b.SysFD("open the old root", unix.SYS_OPENAT, child.AtFDCWD, b.Str("/"), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		b.Sys("pivot_root", unix.SYS_PIVOT_ROOT, b.Str("."), b.Str("."))
		b.Sys("change directory to the old root", unix.SYS_FCHDIR, uintptr(oldRoot))
		b.Close(oldRoot)
		b.Sys("make old root rslave", unix.SYS_MOUNT, 0, b.Str("."), 0, unix.MS_SLAVE|unix.MS_REC, 0)
		b.Sys("unmount old root", unix.SYS_UMOUNT2, b.Str("."), unix.MNT_DETACH)
	}
	b.Sys("change directory to /", unix.SYS_CHDIR, b.Str("/"))
	if c.spec.Root.Readonly {
		attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		b.Sys("make rootfs read-only", unix.SYS_MOUNT_SETATTR, child.AtFDCWD, b.Str("/"), 0, b.Mem(unsafe.Pointer(attr), attr), unsafe.Sizeof(*attr))
	}
	if p := c.spec.Linux.RootfsPropagation; p != "" {
		b.Sys("set rootfs propagation "+p, unix.SYS_MOUNT, 0, b.Str("/"), 0, propagationFlags[p], 0)
	}
	b.Close(c.rootFD)
}

// mountPointOf is the mount point that path (symlinks resolved) is on, from the caller's
// /proc/self/mountinfo: the child, in a copy of the caller's mount namespace, finds it at the
// same place.
func mountPointOf(p string) (string, error) {
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", err
	}
	mounts, err := mountinfo.Read()
	if err != nil {
		return "", err
	}
	m, ok := mountinfo.Containing(mounts, real)
	if !ok {
		return "", fmt.Errorf("no mount point found for %s", p)
	}
	return m.Point, nil
}
