package harness

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"berth/test/bundle"
	"berth/test/engine"
)

// The benches' end-of-run checks: what a bench left under its own directory. logf reports
// each leftover.

// MountPoints lists the mount points of this mount namespace.
func MountPoints() []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 {
			out = append(out, bundle.UnescapeMountinfo(f[4]))
		}
	}
	return out
}

// UnmountUnder detaches every mount at or under dir (deepest first) and returns how many
// there were.
func UnmountUnder(dir string, logf func(string, ...any)) int {
	n, left := engine.UnmountUnder(dir)
	for _, m := range left {
		logf("LEFTOVER: cannot unmount %s", m)
	}
	return n + len(left)
}

// KillProcessesUsing waits up to wait for the processes under dir (the bench's own
// directory: every one of them was started by the bench) to go, then reports and SIGKILLs
// those left, and returns how many there were.
func KillProcessesUsing(dir string, wait time.Duration, logf func(string, ...any)) int {
	pids := engine.AwaitProcessesGone(dir, wait)
	for _, pid := range pids {
		logf("LEFTOVER: process %d: %s", pid, engine.Cmdline(pid))
		syscall.Kill(pid, syscall.SIGKILL)
	}
	return len(pids)
}

// Before is what a bench records before it starts anything, for Sweep: the mount points
// (MountPoints) and the host paths engines may write (engine.SnapshotHostPaths, taken under
// the host lock when the bench holds it).
type Before struct {
	Mounts []string
	Host   engine.HostSnapshot
}

// Sweep is the end of a bench's run, after its engines are stopped: processes still using
// work are killed and mounts under it unmounted, the cgroup parent (if any) is removed, mounts
// added since b and host paths the engines wrote are reported and undone, and work is removed
// unless keep. It returns how many leftovers it found.
func Sweep(work string, keep bool, b Before, cg *engine.CgroupParent, logf func(string, ...any)) int {
	n := KillProcessesUsing(work, 15*time.Second, logf)
	n += UnmountUnder(work, logf)
	if cg != nil {
		for _, p := range cg.Remove() {
			logf("LEFTOVER: %s", p)
			n++
		}
	}
	if _, added := bundle.DiffLines(b.Mounts, MountPoints()); len(added) > 0 {
		for _, m := range added {
			logf("LEFTOVER: mount %s", m)
		}
		n++
	}
	for _, err := range b.Host.Restore() {
		logf("LEFTOVER: %v", err)
		n++
	}
	if keep {
		logf("kept %s", work)
	} else if err := os.RemoveAll(work); err != nil {
		logf("LEFTOVER: %v", err)
		n++
	}
	return n
}

// Begin prepares a bench's run: it records the mount points, takes the engine tests' host
// lock when lock (engines with host-wide state run), records the host paths engines may
// write, and makes the work directory (under workdir, named prefix*) and a cgroup parent
// named cgroupName. unlock releases the lock (a no-op without it); Sweep undoes the rest.
func Begin(workdir, prefix, cgroupName string, lock bool, logf func(string, ...any)) (work string, cg *engine.CgroupParent, b Before, unlock func(), err error) {
	unlock = func() {}
	b.Mounts = MountPoints()
	if lock {
		if unlock, err = engine.LockHost(func() {
			logf("waiting for a run of the engine tests to finish (%s)", engine.LockPath)
		}); err != nil {
			return "", nil, b, func() {}, err
		}
	}
	b.Host = engine.SnapshotHostPaths()
	if work, err = os.MkdirTemp(workdir, prefix); err != nil {
		unlock()
		return "", nil, b, func() {}, err
	}
	if cg, err = engine.NewCgroupParent(cgroupName); err != nil {
		os.RemoveAll(work)
		unlock()
		return "", nil, b, func() {}, fmt.Errorf("cgroups: %w", err)
	}
	return work, cg, b, unlock, nil
}

// CopyFile copies src to dst (mode 0755: the benches copy binaries and logs).
func CopyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// KeepLogs copies an engine's logs next to its directory, for a run with -keep.
func KeepLogs(name, dir string, logs []string, logf func(string, ...any)) {
	for _, l := range logs {
		if err := CopyFile(l, filepath.Join(filepath.Dir(dir), filepath.Base(l))); err != nil {
			logf("%s: keep %s: %v", name, l, err)
		}
	}
}
