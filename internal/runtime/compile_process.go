package runtime

import (
	"bufio"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"unsafe"

	securejoin "github.com/cyphar/filepath-securejoin"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"berth/internal/runtime/caps"
	"berth/internal/runtime/child"
	"berth/internal/runtime/seccomp"
)

// processPlan is what the parent decided about the process before compiling it.
type processPlan struct {
	proc        *specs.Process
	env         []string
	candidates  []string // executable paths to try, in order
	preserveFDs int      // fds 3..3+n-1 stay open
	seccomp     *seccomp.Program
	warnings    []string
}

// planProcess resolves env defaults and the executable candidates against the rootfs on the host.
// rootfs may be "" when the container's root is not reachable from the host (then PATH is used
// as-is and the kernel decides).
func planProcess(proc *specs.Process, rootfs string, preserveFDs int) (*processPlan, error) {
	pl := &processPlan{proc: proc, preserveFDs: preserveFDs}
	env := append([]string{}, proc.Env...)
	if getenv(env, "HOME") == "" {
		home := "/"
		if rootfs != "" {
			if h := lookupHome(rootfs, proc.User.UID); h != "" {
				home = h
			}
		}
		env = append(env, "HOME="+home)
	}
	if lfds := os.Getenv("LISTEN_FDS"); lfds != "" {
		if n, err := strconv.Atoi(lfds); err == nil && n > 0 {
			env = append(env, "LISTEN_FDS="+lfds, "LISTEN_PID=1")
			if pl.preserveFDs < n {
				pl.preserveFDs = n
			}
		}
	}
	pl.env = env
	if len(proc.Args) == 0 {
		return nil, invalidf("process.args must not be empty")
	}
	arg0 := proc.Args[0]
	if strings.Contains(arg0, "/") {
		pl.candidates = []string{arg0}
	} else {
		for _, dir := range strings.Split(getenv(env, "PATH"), ":") {
			if dir == "" {
				dir = "."
			}
			pl.candidates = append(pl.candidates, path.Join(dir, arg0))
		}
		if len(pl.candidates) == 0 || getenv(env, "PATH") == "" {
			return nil, fmt.Errorf("exec: %q: executable file not found in $PATH", arg0)
		}
	}
	return pl, nil
}

func getenv(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v
		}
	}
	return ""
}

// lookupHostUser returns the host's name for uid from /etc/passwd (no NSS: the runtime is
// linked statically).
func lookupHostUser(uid int) string {
	data, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return strconv.Itoa(uid)
	}
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Split(l, ":")
		if len(f) > 2 && f[2] == strconv.Itoa(uid) {
			return f[0]
		}
	}
	return strconv.Itoa(uid)
}

// lookupHome reads the home directory of uid from the rootfs's /etc/passwd.
func lookupHome(rootfs string, uid uint32) string {
	p, err := securejoin.SecureJoin(rootfs, "/etc/passwd")
	if err != nil {
		return ""
	}
	f, err := os.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) >= 6 && fields[2] == strconv.FormatUint(uint64(uid), 10) {
			return fields[5]
		}
	}
	return ""
}

// compileIdentity appends the rlimits, user, capabilities, no_new_privs and seccomp steps, ending
// with the process's own umask. It is shared by create and exec. (oomScoreAdj is written by the
// parent, through /proc/<pid>.)
func (c *compiler) compileIdentity(pl *processPlan) {
	b := c.b
	p := pl.proc
	for _, r := range p.Rlimits {
		lim := &unix.Rlimit{Cur: r.Soft, Max: r.Hard}
		b.Sys("set "+r.Type, unix.SYS_PRLIMIT64, 0, uintptr(rlimitNumbers[r.Type]), b.Mem(unsafe.Pointer(lim), lim), 0)
	}
	var sets caps.Sets
	changeCaps := p.Capabilities != nil
	if changeCaps {
		var warn []string
		sets, warn = caps.FromSpec(p.Capabilities)
		pl.warnings = append(pl.warnings, warn...)
	}
	loadSeccomp := func() {
		if pl.seccomp == nil || len(pl.seccomp.Filter) == 0 {
			return
		}
		prog := &unix.SockFprog{Len: uint16(len(pl.seccomp.Filter)), Filter: &pl.seccomp.Filter[0]}
		b.Mem(unsafe.Pointer(&pl.seccomp.Filter[0]), pl.seccomp.Filter)
		if pl.seccomp.NeedsListener {
			_, l := b.SysFD("load seccomp filter", unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(pl.seccomp.Flags), b.Mem(unsafe.Pointer(prog), prog))
			c.sendFD("send seccomp listener", l, fdTagSeccomp)
			b.Close(l)
		} else {
			b.Sys("load seccomp filter", unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(pl.seccomp.Flags), b.Mem(unsafe.Pointer(prog), prog))
		}
	}
	if !p.NoNewPrivileges {
		// Without no_new_privs the filter needs CAP_SYS_ADMIN: load it before dropping caps.
		loadSeccomp()
	}
	if changeCaps || p.User.UID != 0 {
		b.Sys("set keepcaps", unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 1)
	}
	if changeCaps {
		for _, n := range sets.BoundingDrop() {
			b.Sys("drop "+caps.Name(n)+" from the bounding set", unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(n))
		}
	}
	// user
	gids := append([]uint32{}, p.User.AdditionalGids...)
	if len(gids) > 0 || !c.userns {
		if len(gids) == 0 {
			b.Sys("clear supplementary groups", unix.SYS_SETGROUPS, 0, 0)
		} else {
			b.Sys("set supplementary groups", unix.SYS_SETGROUPS, uintptr(len(gids)), b.Mem(unsafe.Pointer(&gids[0]), gids))
		}
	}
	b.Sys(fmt.Sprintf("set gid %d", p.User.GID), unix.SYS_SETRESGID, uintptr(p.User.GID), uintptr(p.User.GID), uintptr(p.User.GID))
	b.Sys(fmt.Sprintf("set uid %d", p.User.UID), unix.SYS_SETRESUID, uintptr(p.User.UID), uintptr(p.User.UID), uintptr(p.User.UID))
	if changeCaps {
		hdr := caps.CapsetHeader()
		data := sets.CapsetData()
		b.Sys("set capabilities", unix.SYS_CAPSET, b.Mem(unsafe.Pointer(&hdr), &hdr), b.Mem(unsafe.Pointer(&data[0]), &data))
		b.Sys("clear ambient capabilities", unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
		for _, n := range caps.Numbers(sets.Ambient) {
			b.Sys("raise ambient "+caps.Name(n), unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(n), 0, 0)
		}
	}
	if changeCaps || p.User.UID != 0 {
		b.Sys("clear keepcaps", unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 0)
	}
	if p.NoNewPrivileges {
		b.Sys("set no_new_privs", unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
		loadSeccomp()
	}
	umask := uintptr(0o022)
	if p.User.Umask != nil {
		umask = uintptr(*p.User.Umask)
	}
	b.Sys("set umask", unix.SYS_UMASK, umask)
}

// compileMkCwd creates the working directory in the rootfs if it is missing, as runc does.
func (c *compiler) compileMkCwd(cwd string) {
	c.mkdirAll(relPath(cwd), false, "working directory "+cwd)
}

// compileCwd changes into the process's working directory and checks that it is inside the
// container's root (a leaked fd as cwd: CVE-2024-21626).
func (c *compiler) compileCwd(cwd string) {
	c.b.Sys("change directory to "+cwd, unix.SYS_CHDIR, c.b.Str(cwd))
	c.b.Special("check that "+cwd+" is inside the container", child.KindCheckCwd)
}

// compileExecCheck fails early (at create) when the executable cannot be found or is a directory.
func (c *compiler) compileExecCheck(pl *processPlan) {
	b := c.b
	arg0 := pl.proc.Args[0]
	notFound := fmt.Sprintf("exec: %q: executable file not found in $PATH", arg0)
	if strings.Contains(arg0, "/") {
		notFound = fmt.Sprintf("exec %s", arg0)
	}
	var skips []int
	for i, cand := range pl.candidates {
		last := i == len(pl.candidates)-1
		op := b.Sys(notFound, unix.SYS_FACCESSAT, child.AtFDCWD, b.Str(cand), unix.X_OK)
		// By path, not through an fd: the program's fd slots may be above a lowered
		// RLIMIT_NOFILE by now.
		b.Special(fmt.Sprintf("exec %s: is a directory", cand), child.KindFailIfPathMode, b.Str(cand), unix.S_IFDIR)
		sk := b.Special("found "+cand, child.KindSkip, 0)
		if !last {
			// A candidate that is not there skips its own remaining ops, up to the next one.
			b.Ignore(op, sk-op, unix.ENOENT, unix.ENOTDIR, unix.EACCES)
		}
		skips = append(skips, sk)
	}
	for _, sk := range skips {
		b.SetSkip(sk, b.Len())
	}
}

// compileCloseFDs marks every inherited fd above the preserved ones close-on-exec. It runs before
// the seccomp filter is loaded, which may not allow close_range.
func (c *compiler) compileCloseFDs(pl *processPlan) {
	c.b.Sys("mark inherited fds close-on-exec", unix.SYS_CLOSE_RANGE, uintptr(3+pl.preserveFDs), ^uintptr(0)>>32, unix.CLOSE_RANGE_CLOEXEC)
}

// compileExec execs the first candidate that works.
func (c *compiler) compileExec(pl *processPlan) {
	b := c.b
	argv := b.StrArray(pl.proc.Args)
	envp := b.StrArray(pl.env)
	for i, cand := range pl.candidates {
		op := b.Sys("exec "+cand, unix.SYS_EXECVE, b.Str(cand), argv, envp)
		if i < len(pl.candidates)-1 {
			b.Ignore(op, 0, unix.ENOENT, unix.ENOTDIR, unix.EACCES)
		}
	}
}
