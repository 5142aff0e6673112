package bundle

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// CgroupMount is one mounted cgroup hierarchy and the calling process's
// cgroup in it.
type CgroupMount struct {
	// Mountpoint is where the hierarchy is mounted, e.g. /sys/fs/cgroup/memory.
	Mountpoint string
	// Version is 1 or 2.
	Version int
	// Controllers is the /proc/self/cgroup controller field ("memory",
	// "cpu,cpuacct", "name=systemd"; "" for cgroup v2).
	Controllers string
	// Own is the directory of the caller's cgroup in this hierarchy (under Mountpoint).
	Own string
}

// CgroupMounts lists the cgroup hierarchies mounted in the caller's mount
// namespace, with the caller's own cgroup directory in each.
func CgroupMounts() ([]CgroupMount, error) {
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	type mnt struct{ root, point, fstype, super string }
	var mounts []mnt
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 36 35 98:0 /root /mnt rw,noatime master:1 - ext3 /dev/root rw,errors=continue
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		a, b := strings.Fields(pre), strings.Fields(post)
		if len(a) < 5 || len(b) < 3 || (b[0] != "cgroup" && b[0] != "cgroup2") {
			continue
		}
		mounts = append(mounts, mnt{root: UnescapeMountinfo(a[3]), point: UnescapeMountinfo(a[4]), fstype: b[0], super: b[2]})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	var res []CgroupMount
	for _, line := range strings.Split(strings.TrimSpace(string(self)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		ctrls, path := parts[1], parts[2]
		for _, m := range mounts {
			if ctrls == "" && parts[0] == "0" {
				if m.fstype != "cgroup2" {
					continue
				}
			} else if m.fstype != "cgroup" || !hasAll(m.super, ctrls) {
				continue
			}
			rel, err := filepath.Rel(m.root, path)
			if err != nil || strings.HasPrefix(rel, "..") {
				continue // our cgroup is not visible in this mount
			}
			v := 1
			if m.fstype == "cgroup2" {
				v = 2
			}
			res = append(res, CgroupMount{Mountpoint: m.point, Version: v, Controllers: ctrls, Own: filepath.Join(m.point, rel)})
			break
		}
	}
	return res, nil
}

// CgroupDirs returns the existing cgroupfs directories that correspond to
// cgroupsPath (as in linux.cgroupsPath, cgroupfs driver) in every mounted
// hierarchy: a relative path is taken relative to the caller's own cgroup (as
// runc does), an absolute one relative to the hierarchy's root.
func CgroupDirs(cgroupsPath string) ([]string, error) {
	ms, err := CgroupMounts()
	if err != nil {
		return nil, err
	}
	var dirs []string
	for _, m := range ms {
		var d string
		if filepath.IsAbs(cgroupsPath) {
			d = filepath.Join(m.Mountpoint, cgroupsPath)
		} else {
			d = filepath.Join(m.Own, cgroupsPath)
		}
		if _, err := os.Stat(d); err == nil {
			dirs = append(dirs, d)
		} else if !errors.Is(err, os.ErrNotExist) {
			return dirs, err
		}
	}
	return dirs, nil
}

func hasAll(superOpts, ctrls string) bool {
	opts := strings.Split(superOpts, ",")
	for _, c := range strings.Split(ctrls, ",") {
		found := false
		for _, o := range opts {
			if o == c {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// UnescapeMountinfo undoes the octal escapes (\040 for a space, ...) of /proc/*/mountinfo paths.
func UnescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			v := 0
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + int(c-'0')
			}
			if ok {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// RemoveCgroupParent removes the parent cgroup that bundles nest their containers under
// (CgroupParent()) in every hierarchy, if it is empty: runtimes remove a container's own cgroup
// but, like runc, not the parents they created for it. Call it once all containers are gone.
func RemoveCgroupParent() {
	dirs, _ := CgroupDirs(CgroupParent())
	for _, d := range dirs {
		os.Remove(d) // fails, harmlessly, while another run still uses it
	}
}

// DiffLines returns the lines only in a and the lines only in b (each sorted), counting
// duplicates: what changed between two snapshots of host state such as mount lists.
func DiffLines(a, b []string) (onlyA, onlyB []string) {
	count := map[string]int{}
	for _, l := range a {
		count[l]++
	}
	for _, l := range b {
		count[l]--
	}
	for l, n := range count {
		for ; n > 0; n-- {
			onlyA = append(onlyA, l)
		}
		for ; n < 0; n++ {
			onlyB = append(onlyB, l)
		}
	}
	sort.Strings(onlyA)
	sort.Strings(onlyB)
	return onlyA, onlyB
}
