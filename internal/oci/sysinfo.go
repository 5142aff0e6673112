package oci

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"berth/internal/mountinfo"
)

// SysInfo is what the host can enforce, as dockerd's pkg/sysinfo sees it. [Adapt] drops the
// settings the host cannot enforce (with dockerd's warnings), [Validate] checks CPU counts and
// cpusets against it, and [Generate] uses CgroupUnified for the default cgroup namespace mode.
type SysInfo struct {
	// NCPU is the number of CPUs the daemon may run on (its affinity mask).
	NCPU int
	// Cpus and Mems are the CPUs and memory nodes a cpuset may name ("0-3"), from the root
	// cpuset cgroup (or /sys/devices/system/{cpu,node}/online).
	Cpus, Mems string

	// CgroupUnified: the host runs cgroup v2 only (no v1 controller is mounted).
	CgroupUnified bool

	MemoryLimit       bool
	SwapLimit         bool
	MemoryReservation bool
	OomKillDisable    bool
	MemorySwappiness  bool
	CPUShares         bool
	CPUCfs            bool
	CPURealtime       bool
	Cpuset            bool
	PidsLimit         bool
	BlkioWeight       bool
	BlkioWeightDevice bool
	BlkioThrottle     bool // read/write bps and iops per device
	CgroupNamespaces  bool
	Seccomp           bool
}

var hostSysInfo = sync.OnceValues(HostSysInfo)

// cachedSysInfo returns si, or the host's (read once per process) when si is nil.
func cachedSysInfo(si *SysInfo) (*SysInfo, error) {
	if si != nil {
		return si, nil
	}
	return hostSysInfo()
}

// HostSysInfo reads what this host supports from its cgroup mounts, /proc and /sys.
func HostSysInfo() (*SysInfo, error) {
	si := &SysInfo{}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err == nil {
		si.NCPU = set.Count()
	}
	if si.NCPU == 0 {
		si.NCPU = 1
	}
	mounts, err := cgroupMounts()
	if err != nil {
		return nil, fmt.Errorf("sysinfo: %w", err)
	}
	exists := func(dir, file string) bool {
		if dir == "" {
			return false
		}
		_, err := os.Stat(filepath.Join(dir, file))
		return err == nil
	}
	v1 := map[string]string{} // controller -> mount point
	var v2 string
	for _, m := range mounts {
		if m.FSType == "cgroup2" {
			if v2 == "" || m.Point == "/sys/fs/cgroup" {
				v2 = m.Point
			}
			continue
		}
		for _, o := range strings.Split(m.Super, ",") {
			if _, seen := v1[o]; !seen {
				v1[o] = m.Point
			}
		}
	}
	if len(v1) > 0 && v1["memory"]+v1["cpu"]+v1["pids"]+v1["cpuset"]+v1["blkio"] != "" {
		mem := v1["memory"]
		si.MemoryLimit = exists(mem, "memory.limit_in_bytes")
		si.SwapLimit = exists(mem, "memory.memsw.limit_in_bytes")
		si.MemoryReservation = exists(mem, "memory.soft_limit_in_bytes")
		si.OomKillDisable = exists(mem, "memory.oom_control")
		si.MemorySwappiness = exists(mem, "memory.swappiness")
		cpu := v1["cpu"]
		si.CPUShares = exists(cpu, "cpu.shares")
		si.CPUCfs = exists(cpu, "cpu.cfs_quota_us")
		si.CPURealtime = exists(cpu, "cpu.rt_period_us")
		if cs := v1["cpuset"]; cs != "" {
			si.Cpuset = true
			si.Cpus = readTrim(filepath.Join(cs, "cpuset.cpus"))
			si.Mems = readTrim(filepath.Join(cs, "cpuset.mems"))
		}
		si.PidsLimit = v1["pids"] != ""
		blk := v1["blkio"]
		si.BlkioWeight = exists(blk, "blkio.weight") || exists(blk, "blkio.bfq.weight")
		si.BlkioWeightDevice = exists(blk, "blkio.weight_device") || exists(blk, "blkio.bfq.weight_device")
		si.BlkioThrottle = exists(blk, "blkio.throttle.read_bps_device")
	} else if v2 != "" {
		si.CgroupUnified = true
		ctrls := map[string]bool{}
		for _, c := range strings.Fields(readTrim(filepath.Join(v2, "cgroup.controllers"))) {
			ctrls[c] = true
		}
		si.MemoryLimit = ctrls["memory"]
		si.SwapLimit = ctrls["memory"]
		si.MemoryReservation = ctrls["memory"]
		si.CPUShares = ctrls["cpu"]
		si.CPUCfs = ctrls["cpu"]
		si.Cpuset = ctrls["cpuset"]
		if si.Cpuset {
			si.Cpus = readTrim(filepath.Join(v2, "cpuset.cpus.effective"))
			si.Mems = readTrim(filepath.Join(v2, "cpuset.mems.effective"))
		}
		si.PidsLimit = ctrls["pids"]
		si.BlkioWeight = ctrls["io"]
		si.BlkioWeightDevice = ctrls["io"]
		si.BlkioThrottle = ctrls["io"]
	}
	if si.Cpus == "" {
		si.Cpus = readTrim("/sys/devices/system/cpu/online")
	}
	if si.Mems == "" {
		si.Mems = readTrim("/sys/devices/system/node/online")
	}
	if si.Mems == "" {
		si.Mems = "0"
	}
	if _, err := os.Stat("/proc/self/ns/cgroup"); err == nil {
		si.CgroupNamespaces = true
	}
	if status, err := os.ReadFile("/proc/self/status"); err == nil {
		si.Seccomp = strings.Contains(string(status), "\nSeccomp:")
	}
	return si, nil
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func cgroupMounts() ([]mountinfo.Entry, error) {
	all, err := mountinfo.Read()
	if err != nil {
		return nil, err
	}
	var out []mountinfo.Entry
	for _, m := range all {
		if m.FSType == "cgroup" || m.FSType == "cgroup2" {
			out = append(out, m)
		}
	}
	return out, nil
}
