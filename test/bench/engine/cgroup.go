package main

import (
	"bytes"
	"errors"
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

// cgroupParent is the bench's cgroup: <own>/<name>, where <own> is the deepest of this
// process's own cgroups (on this host the memory hierarchy's; the others' are its
// ancestors), made in every mounted hierarchy. Each engine's containers (and podman's
// conmons) go under path/<engine>, an absolute cgroup path that every engine and runtime
// reads the same way, nested under this process's cgroup in every hierarchy.
type cgroupParent struct {
	path string // the absolute cgroup path
	// dirs are the directories of path in each hierarchy; made lists the ones this bench
	// created, with the missing ancestors between its own cgroup and path, parents first.
	dirs, made []string
}

func newCgroupParent(name string) (*cgroupParent, error) {
	ms, err := bundle.CgroupMounts()
	if err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return nil, errors.New("no cgroup hierarchy mounted")
	}
	// The cgroup path of our own cgroup in each hierarchy (its mount root is /: the host's).
	own := make([]string, len(ms))
	base := ""
	for i, m := range ms {
		rel, err := filepath.Rel(m.Mountpoint, m.Own)
		if err != nil {
			return nil, err
		}
		own[i] = filepath.Join("/", rel)
		if len(own[i]) > len(base) {
			base = own[i]
		}
	}
	for i := range ms {
		if own[i] != "/" && base != own[i] && !strings.HasPrefix(base, own[i]+"/") {
			return nil, fmt.Errorf("our cgroups are not nested in each other (%s vs %s): no parent lies under all of them", own[i], base)
		}
	}
	c := &cgroupParent{path: filepath.Join(base, name)}
	for _, m := range ms {
		dir := filepath.Join(m.Mountpoint, c.path)
		var missing []string
		for d := dir; d != m.Own && strings.HasPrefix(d, m.Own+"/"); d = filepath.Dir(d) {
			if _, err := os.Stat(d); err == nil {
				break
			}
			missing = append(missing, d)
		}
		slices.Reverse(missing)
		for _, d := range missing {
			if err := unix.Mkdir(d, 0o755); err != nil && err != unix.EEXIST {
				c.remove()
				return nil, fmt.Errorf("mkdir %s: %w", d, err)
			}
			c.made = append(c.made, d)
		}
		c.dirs = append(c.dirs, dir)
	}
	return c, nil
}

// remove removes the bench's cgroup tree in every hierarchy (a process still in it is one
// of the bench's containers: reported and killed) and the ancestors it made, when empty. It
// returns the number of leftovers.
func (c *cgroupParent) remove() int {
	n := 0
	for _, d := range c.dirs {
		n += removeCgroupTree(d, map[int]bool{})
	}
	for i := len(c.made) - 1; i >= 0; i-- {
		// An ancestor someone else has used meanwhile stays.
		if err := unix.Rmdir(c.made[i]); err != nil && err != unix.ENOENT && err != unix.EBUSY && err != unix.ENOTEMPTY {
			logf("LEFTOVER: cgroup %s: %v", c.made[i], err)
			n++
		}
	}
	return n
}

// removeCgroupTree removes dir and its sub-cgroups. The cgroups the engines leave (podman's
// conmon cgroup, runc's parents) are not leftovers; processes in them are, and are killed
// (once each: killed).
func removeCgroupTree(dir string, killed map[int]bool) int {
	n := 0
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	for _, e := range ents {
		if e.IsDir() {
			n += removeCgroupTree(filepath.Join(dir, e.Name()), killed)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := unix.Rmdir(dir)
		if err == nil || err == unix.ENOENT {
			return n
		}
		if err != unix.EBUSY || time.Now().After(deadline) {
			logf("LEFTOVER: cgroup %s: %v", dir, err)
			return n + 1
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs")); len(bytes.TrimSpace(b)) > 0 {
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 1 && !killed[pid] {
					killed[pid] = true
					logf("LEFTOVER: process %d (%s) in cgroup %s: killing it", pid, exeName(pid), dir)
					killPID(pid)
					n++
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}
