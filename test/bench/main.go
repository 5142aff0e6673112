// Command bench measures OCI runtimes (berth-runtime, runc, crun) on a busybox
// bundle running /bin/true:
//
//   - lifecycle: create --pid-file + start + wait for the container process to
//     exit (pidfd_open + poll; the bench is a child subreaper, so it also
//     reaps it, as containerd-shim does) + delete;
//   - run: `run` in the foreground, exit status 0.
//
// Runtimes are interleaved within every iteration (the order rotates) so they
// share the machine's noise. Everything runs in a private mount namespace (the
// program re-executes itself) with the cgroup2 mount of a hybrid host
// unmounted, because crun 1.8 refuses hybrid cgroups, and in a cgroup
// namespace rooted at a fresh cgroup under the caller's own (see sandbox.go).
// Every runtime gets its own --root, bundle and cgroup (cgroupsPath
// "berth-bench/<runtime>").
// At exit it deletes leftover containers and cgroups, reports them, and exits
// non-zero if there were any.
//
// It also measures the baseline `unshare --fork --pid --mount --uts --ipc
// --net true` and a plain fork+exec of /bin/true.
//
// Usage (root): bench [-n 50] [-berth bin/berth-runtime] [-runc runc] [-crun crun]
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"berth/test/bench/harness"
	"berth/test/bundle"
)

const nsEnv = "BERTH_BENCH_IN_NS"

var (
	flagN        = flag.Int("n", 50, "measured iterations per runtime and lifecycle")
	flagWarmup   = flag.Int("warmup", 3, "unmeasured iterations first")
	flagBerth    = flag.String("berth", "bin/berth-runtime", "berth-runtime binary (\"\" to skip)")
	flagRunc     = flag.String("runc", "runc", "runc binary (\"\" to skip)")
	flagCrun     = flag.String("crun", "crun", "crun binary (\"\" to skip)")
	flagWorkdir  = flag.String("workdir", "/run", "directory for the temporary bundles and --root dirs")
	flagKeep     = flag.Bool("keep", false, "keep the temporary directory")
	flagBaseline = flag.Bool("baseline", true, "also measure unshare ... true and fork+exec /bin/true")
	flagKeepV2   = flag.Bool("keep-cgroup2", false, "do not unmount the cgroup2 hierarchy of a hybrid host")
	flagMaxFail  = flag.Int("max-failures", 3, "drop a runtime after this many failed iterations")
)

func main() {
	harness.Main(nsEnv, reexec, inner)
}

// reexec runs this program again in a new private mount namespace and, with
// cgroup v1 hierarchies, a cgroup namespace rooted at the sandbox.
func reexec() int {
	cmd, err := harness.Command(nsEnv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	sb, err := newSandbox()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: sandbox cgroups:", err)
		return 2
	}
	if sb.active() {
		cmd.SysProcAttr.Unshareflags |= syscall.CLONE_NEWCGROUP
		cmd.Env = append(cmd.Env, remountEnv+"=1")
	}
	code := harness.Run("bench", cmd, sb.leave)
	if sb.cleanup() > 0 && code == 0 {
		code = 1
	}
	return code
}

type runtime struct {
	name     string // column name: berth, runc, crun
	path     string
	version  string
	root     string // --root
	bundle   *bundle.Bundle
	errlog   *os.File // runtime stderr, truncated per command
	fails    int
	dropped  bool
	firstErr string

	lifecycle, create, start, wait, del, run []time.Duration
}

var stopping atomic.Bool

func inner() int {
	harness.OnInterrupt("bench", func() { stopping.Store(true) })

	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "bench: PR_SET_CHILD_SUBREAPER:", err)
		return 2
	}
	if err := setupMounts(os.Getenv(remountEnv) == "1", *flagKeepV2); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	mountsBefore := mountPoints()

	work, err := os.MkdirTemp(*flagWorkdir, "berth-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	cgParent := "berth-bench" // relative; inside our cgroup namespace's root

	var rts []*runtime
	for _, c := range []struct{ name, path string }{{"berth", *flagBerth}, {"runc", *flagRunc}, {"crun", *flagCrun}} {
		rt := &runtime{name: c.name}
		rts = append(rts, rt)
		if c.path == "" {
			rt.dropped, rt.firstErr = true, "skipped"
			continue
		}
		p, err := exec.LookPath(c.path)
		if err != nil {
			rt.dropped, rt.firstErr = true, "not found: "+c.path
			continue
		}
		rt.path, _ = filepath.Abs(p)
		out, _ := exec.Command(rt.path, "--version").Output()
		rt.version, _, _ = strings.Cut(strings.TrimSpace(string(out)), "\n")
		rt.root = filepath.Join(work, c.name, "root")
		if err := os.MkdirAll(rt.root, 0o700); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 2
		}
		rt.bundle, err = bundle.Create(filepath.Join(work, c.name, "bundle"),
			bundle.WithArgs("/bin/true"), bundle.WithTerminal(false),
			bundle.WithCgroupsPath(cgParent+"/"+c.name))
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 2
		}
		rt.errlog, err = os.Create(filepath.Join(work, c.name, "stderr"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 2
		}
	}

	var baseUnshare, baseExec []time.Duration
	total := *flagWarmup + *flagN
	for i := 0; i < total && !stopping.Load(); i++ {
		measured := i >= *flagWarmup
		order := rotate(rts, i)
		for _, rt := range order {
			if rt.dropped || stopping.Load() {
				continue
			}
			ph, err := rt.lifecycleOnce(fmt.Sprintf("lc-%d", i))
			if rt.check(err, "lifecycle") && measured {
				rt.create = append(rt.create, ph[0])
				rt.start = append(rt.start, ph[1])
				rt.wait = append(rt.wait, ph[2])
				rt.del = append(rt.del, ph[3])
				rt.lifecycle = append(rt.lifecycle, ph[0]+ph[1]+ph[2]+ph[3])
			}
		}
		for _, rt := range order {
			if rt.dropped || stopping.Load() {
				continue
			}
			d, err := rt.runOnce(fmt.Sprintf("run-%d", i))
			if rt.check(err, "run") && measured {
				rt.run = append(rt.run, d)
			}
		}
		if *flagBaseline && !stopping.Load() {
			if d, err := timeCmd("unshare", "--fork", "--pid", "--mount", "--uts", "--ipc", "--net", "true"); err == nil && measured {
				baseUnshare = append(baseUnshare, d)
			} else if err != nil && i == 0 {
				fmt.Fprintln(os.Stderr, "bench: baseline unshare:", err)
			}
			if d, err := timeCmd("/bin/true"); err == nil && measured {
				baseExec = append(baseExec, d)
			}
		}
		if (i+1)%10 == 0 {
			fmt.Fprintf(os.Stderr, "bench: %d/%d iterations\n", i+1, total)
		}
	}

	report(rts, baseUnshare, baseExec)
	leftovers := cleanup(rts, cgParent)
	// (Mounts can also disappear: copies of the host's mounts taken when the
	// namespace was made vanish when the host unmounts them; not ours.)
	if _, added := bundle.DiffLines(mountsBefore, mountPoints()); len(added) > 0 {
		for _, m := range added {
			fmt.Fprintf(os.Stderr, "bench: LEFTOVER: mount %s\n", m)
		}
		leftovers++
	}
	if *flagKeep {
		fmt.Fprintln(os.Stderr, "bench: kept", work)
	} else if err := os.RemoveAll(work); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		leftovers++
	}
	if leftovers > 0 || stopping.Load() {
		return 1
	}
	for _, rt := range rts {
		if rt.path != "" && rt.dropped {
			return 1
		}
	}
	return 0
}

func rotate(rts []*runtime, i int) []*runtime {
	k := i % len(rts)
	return append(slices.Clone(rts[k:]), rts[:k]...)
}

// check records a failure; it reports whether err is nil.
func (rt *runtime) check(err error, what string) bool {
	if err == nil {
		return true
	}
	rt.fails++
	msg := fmt.Sprintf("%s: %v", what, err)
	if rt.firstErr == "" {
		rt.firstErr = msg
	}
	fmt.Fprintf(os.Stderr, "bench: %s: %s\n", rt.name, msg)
	if rt.fails >= *flagMaxFail {
		fmt.Fprintf(os.Stderr, "bench: %s: %d failures, dropping it\n", rt.name, rt.fails)
		rt.dropped = true
	}
	return false
}

// cmd runs the runtime with --root; stdin/stdout are /dev/null and stderr a
// file (never a pipe: a created container inherits it and would keep it open).
func (rt *runtime) cmd(args ...string) error {
	if err := rt.errlog.Truncate(0); err != nil {
		return err
	}
	if _, err := rt.errlog.Seek(0, io.SeekStart); err != nil {
		return err
	}
	c := exec.Command(rt.path, append([]string{"--root", rt.root}, args...)...)
	c.Stderr = rt.errlog
	if err := c.Run(); err != nil {
		msg, _ := os.ReadFile(rt.errlog.Name())
		return fmt.Errorf("%s %s: %v: %s", rt.name, strings.Join(args, " "), err, bytes.TrimSpace(msg))
	}
	return nil
}

// lifecycleOnce returns the durations of create, start, wait and delete.
func (rt *runtime) lifecycleOnce(id string) (ph [4]time.Duration, err error) {
	pidFile := filepath.Join(rt.root, id+".pid")
	defer os.Remove(pidFile)
	t0 := time.Now()
	if err := rt.cmd("create", "--bundle", rt.bundle.Dir, "--pid-file", pidFile, id); err != nil {
		rt.forceDelete(id)
		return ph, err
	}
	t1 := time.Now()
	pidfd, pid, err := openPidFile(pidFile)
	if err != nil {
		rt.forceDelete(id)
		return ph, err
	}
	defer unix.Close(pidfd)
	if err := rt.cmd("start", id); err != nil {
		rt.forceDelete(id)
		return ph, err
	}
	t2 := time.Now()
	if err := waitPidfd(pidfd, pid, 10*time.Second); err != nil {
		rt.forceDelete(id)
		return ph, err
	}
	t3 := time.Now()
	if err := rt.cmd("delete", id); err != nil {
		rt.forceDelete(id)
		return ph, err
	}
	t4 := time.Now()
	return [4]time.Duration{t1.Sub(t0), t2.Sub(t1), t3.Sub(t2), t4.Sub(t3)}, nil
}

func (rt *runtime) runOnce(id string) (time.Duration, error) {
	t0 := time.Now()
	err := rt.cmd("run", "--bundle", rt.bundle.Dir, id)
	d := time.Since(t0)
	if err != nil {
		rt.forceDelete(id)
		return 0, err
	}
	return d, nil
}

func (rt *runtime) forceDelete(id string) {
	exec.Command(rt.path, "--root", rt.root, "delete", "--force", id).Run()
	reapZombies()
}

func openPidFile(path string) (pidfd, pid int, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return -1, 0, fmt.Errorf("pid file: %w", err)
	}
	pid, err = strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return -1, 0, fmt.Errorf("pid file %q: bad pid", data)
	}
	pidfd, err = unix.PidfdOpen(pid, 0)
	if err != nil {
		return -1, 0, fmt.Errorf("pidfd_open(%d): %w", pid, err)
	}
	return pidfd, pid, nil
}

// waitPidfd waits until the process exits, then reaps it if it is our child
// (it is, through PR_SET_CHILD_SUBREAPER, once the runtime has exited). The
// container's exit status must be 0.
func waitPidfd(pidfd, pid int, timeout time.Duration) error {
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	deadline := time.Now().Add(timeout)
	for {
		ms := int(time.Until(deadline) / time.Millisecond)
		if ms <= 0 {
			return fmt.Errorf("container process %d did not exit within %v", pid, timeout)
		}
		n, err := unix.Poll(fds, ms)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("poll pidfd: %w", err)
		}
		if n > 0 {
			break
		}
	}
	var info unix.Siginfo
	err := unix.Waitid(unix.P_PIDFD, pidfd, &info, unix.WEXITED, nil)
	if err == unix.ECHILD {
		return nil // not our child: someone else reaps it
	}
	if err != nil {
		return fmt.Errorf("waitid: %w", err)
	}
	// siginfo: si_code CLD_EXITED(1) and si_status at the start of the union.
	code := int32(info.Code)
	status := *(*int32)(unsafePointer(&info, 24))
	if code != 1 || status != 0 {
		return fmt.Errorf("container process %d: si_code %d status %d, want exit 0", pid, code, status)
	}
	return nil
}

// reapZombies reaps any exited children (orphaned container processes
// reparented to us) without blocking.
func reapZombies() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}

func timeCmd(name string, args ...string) (time.Duration, error) {
	t0 := time.Now()
	err := exec.Command(name, args...).Run()
	return time.Since(t0), err
}

// mountPoints lists "mountpoint fstype" of the bench's mount namespace.
func mountPoints() []string {
	data, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		a, b := strings.Fields(pre), strings.Fields(post)
		if ok && len(a) >= 5 && len(b) >= 1 {
			out = append(out, a[4]+" "+b[0])
		}
	}
	slices.Sort(out)
	return out
}

// cleanup deletes containers left in each runtime's root and removes the
// benchmark's cgroups; it returns the number of leftovers found.
func cleanup(rts []*runtime, cgParent string) int {
	leftovers := 0
	for _, rt := range rts {
		if rt.path == "" {
			continue
		}
		out, _ := exec.Command(rt.path, "--root", rt.root, "list", "-q").Output()
		for _, id := range strings.Fields(string(out)) {
			fmt.Fprintf(os.Stderr, "bench: LEFTOVER: %s container %s\n", rt.name, id)
			leftovers++
			rt.forceDelete(id)
		}
	}
	reapZombies()
	mounts, err := bundle.CgroupMounts()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return leftovers + 1
	}
	for _, m := range mounts {
		parent := filepath.Join(m.Own, cgParent)
		var dirs []string
		filepath.WalkDir(parent, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() && p != parent {
				dirs = append(dirs, p)
			}
			return nil
		})
		slices.Reverse(dirs) // deepest first
		for _, d := range dirs {
			fmt.Fprintf(os.Stderr, "bench: LEFTOVER: cgroup %s\n", d)
			leftovers++
			if err := os.Remove(d); err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
			}
		}
		if err := os.Remove(parent); err != nil && !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintln(os.Stderr, "bench:", err)
			leftovers++
		}
	}
	return leftovers
}
