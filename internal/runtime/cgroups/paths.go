package cgroups

import (
	"bufio"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

	"berth/internal/mountinfo"
)

// v1Controllers are the cgroup v1 hierarchies a container joins, in the
// order resources are written (cpuset first so the cpus/mems exist before
// anything else; freezer last). "name=systemd" and "misc" are joined only.
var v1Controllers = []string{
	"cpuset", "devices", "memory", "cpu", "cpuacct", "pids", "blkio",
	"hugetlb", "net_cls", "net_prio", "perf_event", "freezer", "rdma",
	"misc", "name=systemd",
}

// knownV1 lists every v1 controller name the kernel may show in mount
// options (used to tell controllers from other mount options).
var knownV1 = map[string]bool{
	"cpuset": true, "cpu": true, "cpuacct": true, "blkio": true, "memory": true,
	"devices": true, "freezer": true, "net_cls": true, "perf_event": true,
	"net_prio": true, "hugetlb": true, "pids": true, "rdma": true, "misc": true,
	"debug": true,
}

// cgroupMount is one cgroup or cgroup2 mount from /proc/self/mountinfo.
type cgroupMount struct {
	Mountpoint  string
	Root        string   // root of the mount within the hierarchy
	V2          bool     // fstype cgroup2
	Controllers []string // v1 only: controllers and "name=..." of the hierarchy
}

// parseProcCgroup parses /proc/<pid>/cgroup text into controller -> path.
// Co-mounted controllers ("cpu,cpuacct") get one key each, named
// hierarchies keep their "name=" prefix, and the cgroup v2 entry ("0::/x")
// is stored under the key "".
func parseProcCgroup(text string) (map[string]string, error) {
	out := make(map[string]string)
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("invalid /proc/self/cgroup line %q", line)
		}
		p := strings.TrimSuffix(parts[2], " (deleted)")
		if !strings.HasPrefix(p, "/") {
			return nil, fmt.Errorf("invalid cgroup path in /proc/self/cgroup line %q", line)
		}
		if parts[0] == "0" && parts[1] == "" {
			out[""] = p
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c != "" {
				out[c] = p
			}
		}
	}
	return out, sc.Err()
}

// parseMountinfo returns the cgroup and cgroup2 mounts listed in
// /proc/self/mountinfo text, in file order.
func parseMountinfo(text string) ([]cgroupMount, error) {
	var out []cgroupMount
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		// id parent maj:min root mountpoint options [optional...] - fstype source superopts
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			return nil, fmt.Errorf("invalid mountinfo line %q", line)
		}
		fields := strings.Fields(pre)
		tail := strings.Fields(post)
		if len(fields) < 6 || len(tail) < 1 {
			return nil, fmt.Errorf("invalid mountinfo line %q", line)
		}
		fstype := tail[0]
		if fstype != "cgroup" && fstype != "cgroup2" {
			continue
		}
		m := cgroupMount{
			Root:       mountinfo.Unescape(fields[3]),
			Mountpoint: mountinfo.Unescape(fields[4]),
			V2:         fstype == "cgroup2",
		}
		if !m.V2 && len(tail) >= 3 {
			for _, opt := range strings.Split(tail[2], ",") {
				if knownV1[opt] || strings.HasPrefix(opt, "name=") {
					m.Controllers = append(m.Controllers, opt)
				}
			}
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// host is what path resolution needs to know about the machine.
type host struct {
	mode Mode
	// v1 maps a controller (or "name=systemd") to its first mount.
	v1 map[string]cgroupMount
	// v2 is the unified hierarchy (Unified: /sys/fs/cgroup; Hybrid:
	// /sys/fs/cgroup/unified); nil if there is none.
	v2 *cgroupMount
	// own is the calling process's cgroup per controller ("" for v2).
	own map[string]string
}

// newHost builds a host from the mode and the text of /proc/self/cgroup and
// /proc/self/mountinfo.
func newHost(mode Mode, procCgroup, mountinfo string) (*host, error) {
	own, err := parseProcCgroup(procCgroup)
	if err != nil {
		return nil, err
	}
	mounts, err := parseMountinfo(mountinfo)
	if err != nil {
		return nil, err
	}
	h := &host{mode: mode, v1: make(map[string]cgroupMount), own: own}
	for _, m := range mounts {
		if m.V2 {
			if h.v2 != nil {
				continue
			}
			switch mode {
			case Unified:
				if m.Mountpoint != unifiedMountpoint {
					continue
				}
			case Hybrid:
				if m.Mountpoint != hybridMountpoint {
					continue
				}
			default:
				continue
			}
			mm := m
			h.v2 = &mm
			continue
		}
		if mode == Unified {
			continue
		}
		for _, c := range m.Controllers {
			if _, dup := h.v1[c]; !dup {
				h.v1[c] = m
			}
		}
	}
	if (mode == Unified || mode == Hybrid) && h.v2 == nil {
		return nil, fmt.Errorf("cgroup2 mount for %s mode not found in mountinfo", mode)
	}
	return h, nil
}

// cleanRel normalises a relative cgroups path so it cannot climb out of the
// directory it is joined to ("../../x" becomes "x").
func cleanRel(p string) string {
	return strings.TrimPrefix(path.Clean("/"+p), "/")
}

// containerCgroup returns the cgroup (hierarchy-relative, as in
// /proc/self/cgroup) for a container: cgroupsPath absolute -> as is;
// relative -> below own; "" -> own/<id>.
func containerCgroup(cgroupsPath, id, own string) (string, error) {
	switch {
	case cgroupsPath == "":
		if id == "" || strings.Contains(id, "/") || id == "." || id == ".." {
			return "", fmt.Errorf("invalid container id %q for the default cgroup path", id)
		}
		return path.Join(own, id), nil
	case strings.HasPrefix(cgroupsPath, "/"):
		return path.Clean(cgroupsPath), nil
	default:
		rel := cleanRel(cgroupsPath)
		if rel == "" {
			return "", fmt.Errorf("cgroupsPath %q names the runtime's own cgroup", cgroupsPath)
		}
		return path.Join(own, rel), nil
	}
}

// mountDir maps a hierarchy-relative cgroup to a directory under mount m.
// Absolute cgroupsPaths are taken from the root visible at the mount point;
// paths derived from /proc/self/cgroup are made relative to the mount root.
func mountDir(m cgroupMount, cg string, absolute bool) (string, error) {
	if absolute || m.Root == "/" {
		return path.Join(m.Mountpoint, cg), nil
	}
	if cg != m.Root && !strings.HasPrefix(cg, m.Root+"/") {
		return "", fmt.Errorf("cgroup %s is outside the mount %s (root %s)", cg, m.Mountpoint, m.Root)
	}
	return path.Join(m.Mountpoint, strings.TrimPrefix(cg, m.Root)), nil
}

// resolve computes controller -> directory for a container (v2 key "").
// mounts maps each key to the mount point of its hierarchy.
func (h *host) resolve(cgroupsPath, id string) (paths, mounts map[string]string, err error) {
	if strings.Contains(cgroupsPath, ":") && !strings.HasPrefix(cgroupsPath, "/") {
		return nil, nil, fmt.Errorf("cgroupsPath %q looks like a systemd slice:prefix:name path; berth manages cgroupfs directly and needs a filesystem path", cgroupsPath)
	}
	absolute := strings.HasPrefix(cgroupsPath, "/")
	paths = make(map[string]string)
	mounts = make(map[string]string)
	add := func(key string, m cgroupMount) error {
		own, ok := h.own[key]
		if !ok && !absolute {
			return fmt.Errorf("controller %q is mounted at %s but missing from /proc/self/cgroup", displayKey(key), m.Mountpoint)
		}
		cg, err := containerCgroup(cgroupsPath, id, own)
		if err != nil {
			return err
		}
		dir, err := mountDir(m, cg, absolute)
		if err != nil {
			return err
		}
		if dir == m.Mountpoint {
			return fmt.Errorf("cgroupsPath %q resolves to the root of the %s hierarchy", cgroupsPath, displayKey(key))
		}
		paths[key] = dir
		mounts[key] = m.Mountpoint
		return nil
	}
	if h.mode != Unified {
		for _, c := range v1Controllers {
			m, ok := h.v1[c]
			if !ok {
				continue
			}
			if err := add(c, m); err != nil {
				return nil, nil, err
			}
		}
		if len(paths) == 0 {
			return nil, nil, errors.New("no cgroup v1 hierarchies are mounted")
		}
	}
	if h.v2 != nil {
		if err := add("", *h.v2); err != nil {
			return nil, nil, err
		}
	}
	return paths, mounts, nil
}

func displayKey(k string) string {
	if k == "" {
		return "cgroup2"
	}
	return k
}

// uniqueDirs returns the distinct directories of paths, sorted.
func uniqueDirs(paths map[string]string) []string {
	seen := make(map[string]bool)
	var out []string
	for _, d := range paths {
		if d != "" && !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	sort.Strings(out)
	return out
}
