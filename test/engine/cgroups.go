package engine

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

// CgroupBase is the deepest of the caller's own cgroups, as an absolute cgroup path. A
// cgroup below it is nested under the caller's cgroup in every hierarchy, which holds only
// when the caller's cgroups lie on one path (an error says so otherwise).
func CgroupBase() (string, error) {
	ms, err := bundle.CgroupMounts()
	if err != nil {
		return "", err
	}
	if len(ms) == 0 {
		return "", errors.New("no cgroup hierarchy mounted")
	}
	base := ""
	own := make([]string, len(ms))
	for i, m := range ms {
		rel, err := filepath.Rel(m.Mountpoint, m.Own)
		if err != nil {
			return "", err
		}
		own[i] = filepath.Join("/", rel)
		if len(own[i]) > len(base) {
			base = own[i]
		}
	}
	for _, o := range own {
		if o != "/" && base != o && !strings.HasPrefix(base, o+"/") {
			return "", fmt.Errorf("our cgroups are not nested in each other (%s vs %s): no cgroup parent lies under all of them", o, base)
		}
	}
	return base, nil
}

// CgroupParent is a cgroup made for an engine's containers: <CgroupBase>/<name> in every
// mounted hierarchy, with the missing directories between the caller's cgroup and it.
type CgroupParent struct {
	// Path is the absolute cgroup path, for --cgroup-parent and daemon.json.
	Path string
	// dirs are Path's directories in each hierarchy; made the ones created, parents first.
	dirs, made []string
}

// NewCgroupParent makes <CgroupBase>/<name>.
func NewCgroupParent(name string) (*CgroupParent, error) {
	base, err := CgroupBase()
	if err != nil {
		return nil, err
	}
	ms, err := bundle.CgroupMounts()
	if err != nil {
		return nil, err
	}
	c := &CgroupParent{Path: filepath.Join(base, name)}
	for _, m := range ms {
		dir := filepath.Join(m.Mountpoint, c.Path)
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
				c.Remove()
				return nil, fmt.Errorf("mkdir %s: %w", d, err)
			}
			c.made = append(c.made, d)
		}
		c.dirs = append(c.dirs, dir)
	}
	return c, nil
}

// Remove removes the cgroup tree in every hierarchy and the ancestors NewCgroupParent made,
// when nobody else uses them. The cgroups engines leave inside are not leaks; a process still
// in one is: it is reported and killed (it is one of the caller's containers). It returns what
// it found wrong.
func (c *CgroupParent) Remove() []string {
	var problems []string
	killed := map[int]bool{}
	for _, d := range c.dirs {
		problems = append(problems, removeCgroupTree(d, killed)...)
	}
	for i := len(c.made) - 1; i >= 0; i-- {
		// An ancestor someone else has used meanwhile stays.
		if err := unix.Rmdir(c.made[i]); err != nil && err != unix.ENOENT && err != unix.EBUSY && err != unix.ENOTEMPTY {
			problems = append(problems, fmt.Sprintf("remove cgroup %s: %v", c.made[i], err))
		}
	}
	return problems
}

func removeCgroupTree(dir string, killed map[int]bool) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var problems []string
	for _, e := range ents {
		if e.IsDir() {
			problems = append(problems, removeCgroupTree(filepath.Join(dir, e.Name()), killed)...)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := unix.Rmdir(dir)
		if err == nil || err == unix.ENOENT {
			return problems
		}
		if err != unix.EBUSY || time.Now().After(deadline) {
			return append(problems, fmt.Sprintf("remove cgroup %s: %v", dir, err))
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs")); len(bytes.TrimSpace(b)) > 0 {
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 1 && !killed[pid] {
					killed[pid] = true
					problems = append(problems, fmt.Sprintf("process %d (%s) left in cgroup %s: killed it", pid, Cmdline(pid), dir))
					unix.Kill(pid, unix.SIGKILL)
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}
