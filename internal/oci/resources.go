package oci

import (
	"github.com/moby/moby/api/types/blkiodev"
	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth/internal/errdefs"
)

// cfsPeriod is the CFS period of a NanoCPUs limit: 100 ms in µs.
const cfsPeriod = 100000

type blkioThrottle struct {
	path string
	rate uint64
}

func throttles(list []*blkiodev.ThrottleDevice) []*blkioThrottle {
	out := make([]*blkioThrottle, 0, len(list))
	for _, t := range list {
		if t != nil {
			out = append(out, &blkioThrottle{path: t.Path, rate: t.Rate})
		}
	}
	return out
}

// resources converts HostConfig.Resources (adapted) to the spec's, as dockerd's WithResources:
// memory, CPU, pids and block I/O; devices are added by the caller.
func resources(r *container.Resources) (*specs.LinuxResources, error) {
	out := &specs.LinuxResources{}

	mem := &specs.LinuxMemory{}
	memSet := false
	if r.Memory > 0 {
		mem.Limit, memSet = &r.Memory, true
	}
	if r.MemoryReservation > 0 {
		mem.Reservation, memSet = &r.MemoryReservation, true
	}
	if r.MemorySwap > 0 {
		mem.Swap, memSet = &r.MemorySwap, true
	}
	if s := r.MemorySwappiness; s != nil && *s >= 0 {
		v := uint64(*s)
		mem.Swappiness, memSet = &v, true
	}
	if d := r.OomKillDisable; d != nil && *d {
		mem.DisableOOMKiller, memSet = d, true
	}
	if memSet {
		out.Memory = mem
	}

	cpu := &specs.LinuxCPU{}
	cpuSet := false
	if r.CPUShares > 0 {
		v := uint64(r.CPUShares)
		cpu.Shares, cpuSet = &v, true
	}
	if r.CpusetCpus != "" {
		cpu.Cpus, cpuSet = r.CpusetCpus, true
	}
	if r.CpusetMems != "" {
		cpu.Mems, cpuSet = r.CpusetMems, true
	}
	if r.NanoCPUs > 0 {
		period := uint64(cfsPeriod)
		quota := r.NanoCPUs * cfsPeriod / 1e9
		cpu.Period, cpu.Quota, cpuSet = &period, &quota, true
	}
	if r.CPUPeriod != 0 {
		period := uint64(r.CPUPeriod)
		cpu.Period, cpuSet = &period, true
	}
	if r.CPUQuota != 0 {
		q := r.CPUQuota
		cpu.Quota, cpuSet = &q, true
	}
	if r.CPURealtimePeriod != 0 {
		p := uint64(r.CPURealtimePeriod)
		cpu.RealtimePeriod, cpuSet = &p, true
	}
	if r.CPURealtimeRuntime != 0 {
		rt := r.CPURealtimeRuntime
		cpu.RealtimeRuntime, cpuSet = &rt, true
	}
	if cpuSet {
		out.CPU = cpu
	}

	if r.PidsLimit != nil {
		limit := *r.PidsLimit
		if limit <= 0 {
			// The API takes 0 and -1 for "unlimited"; runtimes want -1.
			limit = -1
		}
		out.Pids = &specs.LinuxPids{Limit: &limit}
	}

	blk := &specs.LinuxBlockIO{}
	blkSet := false
	if r.BlkioWeight > 0 {
		w := r.BlkioWeight
		blk.Weight, blkSet = &w, true
	}
	for _, wd := range r.BlkioWeightDevice {
		if wd == nil {
			continue
		}
		major, minor, err := deviceNumbers(wd.Path)
		if err != nil {
			return nil, errdefs.InvalidWrap(err, "blkio weight device")
		}
		w := wd.Weight
		d := specs.LinuxWeightDevice{Weight: &w}
		d.Major, d.Minor = major, minor
		blk.WeightDevice, blkSet = append(blk.WeightDevice, d), true
	}
	for _, t := range []struct {
		list []*blkiodev.ThrottleDevice
		dst  *[]specs.LinuxThrottleDevice
	}{
		{r.BlkioDeviceReadBps, &blk.ThrottleReadBpsDevice},
		{r.BlkioDeviceWriteBps, &blk.ThrottleWriteBpsDevice},
		{r.BlkioDeviceReadIOps, &blk.ThrottleReadIOPSDevice},
		{r.BlkioDeviceWriteIOps, &blk.ThrottleWriteIOPSDevice},
	} {
		for _, th := range throttles(t.list) {
			major, minor, err := deviceNumbers(th.path)
			if err != nil {
				return nil, errdefs.InvalidWrap(err, "blkio throttle device")
			}
			d := specs.LinuxThrottleDevice{Rate: th.rate}
			d.Major, d.Minor = major, minor
			*t.dst, blkSet = append(*t.dst, d), true
		}
	}
	if blkSet {
		out.BlockIO = blk
	}
	return out, nil
}

// Resources is the cgroup configuration of a HostConfig's resources, for `docker update` of a
// running container (berth-runtime update --resources).
func Resources(hc *container.HostConfig) (*specs.LinuxResources, error) {
	return resources(&hc.Resources)
}
