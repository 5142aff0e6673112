package daemon

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	units "github.com/docker/go-units"
	"golang.org/x/sys/unix"
)

var cgroupV2 = sync.OnceValue(func() bool {
	var st unix.Statfs_t
	return unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
})

func ramInBytes(s string) (int64, error) { return units.RAMInBytes(s) }

// ownCgroups maps each v1 controller (and "" for v2) to this process's cgroup path.
func ownCgroups(pid string) map[string]string {
	f, err := os.Open("/proc/" + pid + "/cgroup")
	if err != nil {
		return nil
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			out[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[strings.TrimPrefix(c, "name=")] = parts[2]
		}
	}
	return out
}

// cgroupDir is the host directory of a container's cgroup for a controller ("" on v2),
// from the running container's /proc/<pid>/cgroup.
func cgroupDir(pid int, controller string) string {
	paths := ownCgroups(strconv.Itoa(pid))
	if cgroupV2() {
		return filepath.Join("/sys/fs/cgroup", paths[""])
	}
	p, ok := paths[controller]
	if !ok {
		return ""
	}
	mnt := controller
	switch controller {
	case "cpu", "cpuacct":
		mnt = "cpu,cpuacct"
	}
	dir := filepath.Join("/sys/fs/cgroup", mnt)
	if _, err := os.Stat(dir); err != nil {
		dir = filepath.Join("/sys/fs/cgroup", controller)
	}
	return filepath.Join(dir, p)
}

// oomFile is the file the shim reads the container's OOM kill count from, for a container
// whose cgroupsPath is rel (relative to the shim's cgroup, which is berthd's) or absolute.
func oomFile(rel string) string {
	own := ownCgroups("self")
	if cgroupV2() {
		base := rel
		if !filepath.IsAbs(rel) {
			base = filepath.Join(own[""], rel)
		}
		return filepath.Join("/sys/fs/cgroup", base, "memory.events")
	}
	base := rel
	if !filepath.IsAbs(rel) {
		base = filepath.Join(own["memory"], rel)
	}
	return filepath.Join("/sys/fs/cgroup/memory", base, "memory.oom_control")
}
