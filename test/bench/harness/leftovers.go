package harness

import (
	"os"
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
