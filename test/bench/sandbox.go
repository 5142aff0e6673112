package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"berth/test/bundle"
)

// The benchmark runs in a "sandbox": a private mount namespace plus, on hosts
// with cgroup v1 hierarchies, a cgroup namespace rooted at a fresh cgroup
// "berth-bench-<pid>" under the caller's own cgroup in every v1 hierarchy,
// with those hierarchies re-mounted. Runtimes disagree on what a relative
// cgroupsPath means (runc: relative to its own cgroup; crun 1.8: relative to
// the hierarchy root), and in the namespace both land under our cgroups.
// (Same scheme as hack/sandbox.sh, which the validation suite uses.)

const remountEnv = "BERTH_BENCH_REMOUNT"

type sandbox struct {
	name    string
	mounts  []bundle.CgroupMount // v1 hierarchies, Own = caller's cgroup
	created []string
}

// newSandbox creates the sandbox cgroups and moves the calling process into
// them (call leave after starting the child).
func newSandbox() (*sandbox, error) {
	ms, err := bundle.CgroupMounts()
	if err != nil {
		return nil, err
	}
	sb := &sandbox{name: fmt.Sprintf("berth-bench-%d", os.Getpid())}
	for _, m := range ms {
		if m.Version != 1 {
			continue
		}
		d := filepath.Join(m.Own, sb.name)
		if err := os.Mkdir(d, 0o755); err != nil {
			sb.cleanup()
			return nil, err
		}
		sb.created = append(sb.created, d)
		sb.mounts = append(sb.mounts, m)
		if strings.Contains(","+m.Controllers+",", ",cpuset,") {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, err := os.ReadFile(filepath.Join(m.Own, f))
				if err == nil {
					err = os.WriteFile(filepath.Join(d, f), v, 0o644)
				}
				if err != nil {
					sb.cleanup()
					return nil, err
				}
			}
		}
	}
	for _, d := range sb.created {
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			sb.leave()
			sb.cleanup()
			return nil, fmt.Errorf("join %s: %w", d, err)
		}
	}
	return sb, nil
}

func (sb *sandbox) active() bool { return len(sb.created) > 0 }

// leave moves the calling process back to its original cgroups.
func (sb *sandbox) leave() {
	for _, m := range sb.mounts {
		os.WriteFile(filepath.Join(m.Own, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644)
	}
}

// cleanup kills processes left in the sandbox (they are our descendants),
// removes its cgroups and returns the number of leftovers.
func (sb *sandbox) cleanup() int {
	leftovers := 0
	for try := 0; try < 10; try++ {
		var pids []int
		for _, d := range sb.created {
			filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
				if err != nil {
					return nil
				}
				switch e.Name() {
				case "freezer.state":
					os.WriteFile(p, []byte("THAWED"), 0o644)
				case "cgroup.procs":
					data, _ := os.ReadFile(p)
					for _, f := range strings.Fields(string(data)) {
						if pid, err := strconv.Atoi(f); err == nil {
							pids = append(pids, pid)
						}
					}
				}
				return nil
			})
		}
		slices.Sort(pids)
		pids = slices.Compact(pids)
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			if try == 0 {
				cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
				fmt.Fprintf(os.Stderr, "bench: LEFTOVER: process %d %s\n", pid, strings.ReplaceAll(string(cmdline), "\x00", " "))
				leftovers++
			}
			syscall.Kill(pid, syscall.SIGKILL)
		}
		reapZombies()
		time.Sleep(200 * time.Millisecond)
	}
	for _, d := range sb.created {
		var sub []string
		filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() && p != d {
				sub = append(sub, p)
			}
			return nil
		})
		slices.Reverse(sub)
		for _, s := range sub {
			fmt.Fprintf(os.Stderr, "bench: LEFTOVER: cgroup %s\n", s)
			leftovers++
			if err := os.Remove(s); err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
			}
		}
		if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintln(os.Stderr, "bench:", err)
			leftovers++
		}
	}
	sb.created = nil
	return leftovers
}

// setupMounts runs in the child, in its new mount (and cgroup) namespace:
// it re-mounts the v1 hierarchies so that they show the namespace's root, and
// unmounts cgroup2 on a hybrid host unless keepV2.
func setupMounts(remount, keepV2 bool) error {
	var st unix.Statfs_t
	pureV2 := unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(data), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		a, b := strings.Fields(pre), strings.Fields(post)
		if len(a) < 5 || len(b) < 3 {
			continue
		}
		mp, fstype, super := a[4], b[0], b[2]
		switch {
		case fstype == "cgroup2" && !pureV2 && !keepV2:
			if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil {
				return fmt.Errorf("unmount %s: %w", mp, err)
			}
		case fstype == "cgroup" && remount:
			if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil {
				return fmt.Errorf("unmount %s: %w", mp, err)
			}
			var flags uintptr
			var opts []string
			for _, o := range strings.Split(super, ",") {
				switch o {
				case "rw":
				case "ro":
					flags |= unix.MS_RDONLY
				default:
					opts = append(opts, o)
				}
			}
			if err := unix.Mount("cgroup", mp, "cgroup", flags, strings.Join(opts, ",")); err != nil {
				return fmt.Errorf("mount cgroup %s on %s: %w", super, mp, err)
			}
		}
	}
	return nil
}
