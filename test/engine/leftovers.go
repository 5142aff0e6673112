package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"berth/test/bundle"
)

// BaseEnv is the environment of the engines and their command-line tools: PATH (this
// process's, or the usual one), HOME=/root, LANG=C, and extra.
func BaseEnv(extra ...string) []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	return append([]string{"PATH=" + path, "HOME=/root", "LANG=C"}, extra...)
}

// MountsUnder lists the mount points at or below dir in this mount namespace, deepest first.
func MountsUnder(dir string) ([]string, error) {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var points []string
	for _, line := range strings.Split(string(mi), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		if p := bundle.UnescapeMountinfo(f[4]); p == dir || strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	slices.SortStableFunc(points, func(a, b string) int { return len(b) - len(a) })
	return points, nil
}

// UnmountUnder detaches every mount at or below dir, deepest first, until none is left. It
// returns how many it detached and the mount points it could not detach.
func UnmountUnder(dir string) (n int, left []string) {
	for {
		points, err := MountsUnder(dir)
		if err != nil {
			return n, []string{fmt.Sprintf("%s (%v)", dir, err)}
		}
		if len(points) == 0 {
			return n, nil
		}
		progress := false
		for _, p := range points {
			if unix.Unmount(p, unix.MNT_DETACH) == nil {
				n++
				progress = true
			}
		}
		if !progress {
			return n, points
		}
	}
}

// ProcessesUsing lists the processes other than this one whose command line names a path
// at or below dir, or whose working directory is there: when dir is a private directory,
// the engines, their helpers (containerd, shims, conmon) and the cleanup commands they
// started for it.
func ProcessesUsing(dir string) []int {
	var pids []int
	self := os.Getpid()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		args, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		cwd, _ := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		s := string(args) + "\x00"
		if strings.Contains(s, dir+"/") || strings.Contains(s, dir+"\x00") || cwd == dir || strings.HasPrefix(cwd, dir+"/") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// AwaitProcessesGone waits up to timeout for ProcessesUsing(dir) to be empty (containerd
// and the shims take a moment to go after dockerd) and returns the processes still there.
func AwaitProcessesGone(dir string, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	for {
		left := ProcessesUsing(dir)
		if len(left) == 0 || !time.Now().Before(deadline) {
			return left
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Cmdline is the command line of process pid, its arguments separated by spaces.
func Cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// Tail is the last n bytes of s, after "..." when s is longer.
func Tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// Indent formats a command's output for a log: on new lines indented under what, cut after
// max bytes; "" when there is no output.
func Indent(what, s string, max int) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	if len(s) > max {
		s = s[:max] + "..."
	}
	return "\n    " + what + ": " + strings.ReplaceAll(s, "\n", "\n    ")
}
