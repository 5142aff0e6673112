package oci

import (
	"fmt"
	"os"
	"sync"

	"github.com/moby/moby/api/types/container"
)

// Default masked and read-only paths of a container (dockerd's oci.DefaultLinuxSpec).
var (
	defaultMaskedPaths = []string{
		"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
		"/proc/timer_stats", "/sys/devices/virtual/powercap", "/sys/firmware",
	}
	defaultReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// DefaultMaskedPaths returns Docker's default masked paths (a fresh slice): the fixed list plus
// /sys/devices/system/cpu/cpu<N>/thermal_throttle of each CPU that has one.
func DefaultMaskedPaths() []string {
	return append(append([]string(nil), defaultMaskedPaths...), thermalThrottlePaths()...)
}

var thermalThrottlePaths = sync.OnceValue(func() []string {
	var out []string
	ranges, err := parseUintList(readTrim("/sys/devices/system/cpu/possible"))
	if err != nil {
		return nil
	}
	for _, r := range ranges {
		for cpu := r[0]; cpu <= r[1]; cpu++ {
			p := fmt.Sprintf("/sys/devices/system/cpu/cpu%d/thermal_throttle", cpu)
			if _, err := os.Stat(p); err == nil {
				out = append(out, p)
			}
		}
	}
	return out
})

// DefaultReadonlyPaths returns Docker's default read-only paths (a fresh slice).
func DefaultReadonlyPaths() []string { return append([]string(nil), defaultReadonlyPaths...) }

// Adapt changes a HostConfig as dockerd does at create, before validating and storing it, and
// returns dockerd's warnings:
//
//   - defaults: ShmSize 64 MiB, IpcMode "private", CgroupnsMode "host" on cgroup v1 (and for
//     privileged containers there) and "private" on cgroup v2, MemorySwap twice Memory,
//     OomKillDisable false, MemorySwappiness -1 meaning unset, Docker's masked and read-only
//     paths unless privileged;
//   - resource settings this host cannot enforce (si) are dropped with a warning, as dockerd
//     drops them.
//
// si nil means this host. Adapt is idempotent; Generate applies it to a copy of its HostConfig.
func Adapt(hc *container.HostConfig, si *SysInfo) []string {
	if hc == nil {
		return nil
	}
	if si == nil {
		var err error
		if si, err = cachedSysInfo(nil); err != nil {
			si = &SysInfo{NCPU: 1}
		}
	}
	r := &hc.Resources
	if r.Memory > 0 && r.MemorySwap == 0 {
		r.MemorySwap = r.Memory * 2
	}
	if hc.ShmSize == 0 {
		hc.ShmSize = DefaultShmSize
	}
	if hc.IpcMode == "" {
		hc.IpcMode = container.IPCModePrivate
	}
	if hc.CgroupnsMode == "" {
		if si.CgroupUnified {
			hc.CgroupnsMode = container.CgroupnsModePrivate
		} else {
			hc.CgroupnsMode = container.CgroupnsModeHost
		}
	}
	if hc.OomKillDisable == nil {
		f := false
		hc.OomKillDisable = &f
	}
	if !hc.Privileged {
		if hc.MaskedPaths == nil {
			hc.MaskedPaths = DefaultMaskedPaths()
		}
		if hc.ReadonlyPaths == nil {
			hc.ReadonlyPaths = DefaultReadonlyPaths()
		}
	}

	var warnings []string
	warn := func(s string) { warnings = append(warnings, s) }
	if r.MemorySwappiness != nil && *r.MemorySwappiness == -1 {
		r.MemorySwappiness = nil
	}
	if r.Memory > 0 && !si.MemoryLimit {
		warn("Your kernel does not support memory limit capabilities or the cgroup is not mounted. Limitation discarded.")
		r.Memory = 0
		r.MemorySwap = -1
	}
	if r.Memory > 0 && r.MemorySwap != -1 && !si.SwapLimit {
		warn("Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.")
		r.MemorySwap = -1
	}
	if r.MemorySwappiness != nil && !si.MemorySwappiness {
		warn("Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. Memory swappiness discarded.")
		r.MemorySwappiness = nil
	}
	if r.MemoryReservation > 0 && !si.MemoryReservation {
		warn("Your kernel does not support memory soft limit capabilities or the cgroup is not mounted. Limitation discarded.")
		r.MemoryReservation = 0
	}
	if r.OomKillDisable != nil && !si.OomKillDisable {
		if *r.OomKillDisable {
			warn("Your kernel does not support OomKillDisable. OomKillDisable discarded.")
		}
		r.OomKillDisable = nil
	}
	if r.OomKillDisable != nil && *r.OomKillDisable && r.Memory == 0 {
		warn("OOM killer is disabled for the container, but no memory limit is set, this can result in the system running out of resources.")
	}
	if r.PidsLimit != nil && !si.PidsLimit {
		if *r.PidsLimit > 0 {
			warn("Your kernel does not support PIDs limit capabilities or the cgroup is not mounted. PIDs limit discarded.")
		}
		r.PidsLimit = nil
	}
	if r.CPUShares > 0 && !si.CPUShares {
		warn("Your kernel does not support CPU shares or the cgroup is not mounted. Shares discarded.")
		r.CPUShares = 0
	}
	if (r.CPUPeriod != 0 || r.CPUQuota != 0) && !si.CPUCfs {
		warn("Your kernel does not support CPU CFS scheduler. CPU period/quota discarded.")
		r.CPUPeriod = 0
		r.CPUQuota = 0
	}
	if (r.CpusetCpus != "" || r.CpusetMems != "") && !si.Cpuset {
		warn("Your kernel does not support cpuset or the cgroup is not mounted. Cpuset discarded.")
		r.CpusetCpus = ""
		r.CpusetMems = ""
	}
	if r.BlkioWeight > 0 && !si.BlkioWeight {
		warn("Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.")
		r.BlkioWeight = 0
	}
	if len(r.BlkioWeightDevice) > 0 && !si.BlkioWeightDevice {
		warn("Your kernel does not support Block I/O weight_device or the cgroup is not mounted. Weight-device discarded.")
		r.BlkioWeightDevice = nil
	}
	if !si.BlkioThrottle {
		if len(r.BlkioDeviceReadBps) > 0 {
			warn("Your kernel does not support BPS Block I/O read limit or the cgroup is not mounted. Block I/O BPS read limit discarded.")
			r.BlkioDeviceReadBps = nil
		}
		if len(r.BlkioDeviceWriteBps) > 0 {
			warn("Your kernel does not support BPS Block I/O write limit or the cgroup is not mounted. Block I/O BPS write limit discarded.")
			r.BlkioDeviceWriteBps = nil
		}
		if len(r.BlkioDeviceReadIOps) > 0 {
			warn("Your kernel does not support IOPS Block read limit or the cgroup is not mounted. Block I/O IOPS read limit discarded.")
			r.BlkioDeviceReadIOps = nil
		}
		if len(r.BlkioDeviceWriteIOps) > 0 {
			warn("Your kernel does not support IOPS Block write limit or the cgroup is not mounted. Block I/O IOPS write limit discarded.")
			r.BlkioDeviceWriteIOps = nil
		}
	}
	if hc.NetworkMode.IsHost() && len(hc.PortBindings) > 0 {
		warn("Published ports are discarded when using host network mode")
	}
	if hc.CgroupnsMode.IsPrivate() && !si.CgroupNamespaces {
		warn("Your kernel does not support cgroup namespaces.  Cgroup namespace setting discarded.")
	}
	return warnings
}
