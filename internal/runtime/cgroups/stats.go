package cgroups

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Stats is a container's resource usage, with the JSON field names `runc
// events --stats` prints (runc's types.Stats) so it can be marshalled into
// the event's "data" as is. runc also prints "intel_rdt" and
// "network_interfaces", which do not come from cgroups.
type Stats struct {
	CPU     CPU                `json:"cpu"`
	CPUSet  CPUSet             `json:"cpuset"`
	Memory  Memory             `json:"memory"`
	Pids    Pids               `json:"pids"`
	Blkio   Blkio              `json:"blkio"`
	Hugetlb map[string]Hugetlb `json:"hugetlb"`
}

// Hugetlb is the usage of one huge page size.
type Hugetlb struct {
	Usage   uint64 `json:"usage,omitempty"`
	Max     uint64 `json:"max,omitempty"`
	Failcnt uint64 `json:"failcnt"`
}

// BlkioEntry is one line of a blkio statistic.
type BlkioEntry struct {
	Major uint64 `json:"major,omitempty"`
	Minor uint64 `json:"minor,omitempty"`
	Op    string `json:"op,omitempty"`
	Value uint64 `json:"value,omitempty"`
}

// Blkio holds the recursive block I/O statistics.
type Blkio struct {
	IoServiceBytesRecursive []BlkioEntry `json:"ioServiceBytesRecursive,omitempty"`
	IoServicedRecursive     []BlkioEntry `json:"ioServicedRecursive,omitempty"`
	IoQueuedRecursive       []BlkioEntry `json:"ioQueueRecursive,omitempty"`
	IoServiceTimeRecursive  []BlkioEntry `json:"ioServiceTimeRecursive,omitempty"`
	IoWaitTimeRecursive     []BlkioEntry `json:"ioWaitTimeRecursive,omitempty"`
	IoMergedRecursive       []BlkioEntry `json:"ioMergedRecursive,omitempty"`
	IoTimeRecursive         []BlkioEntry `json:"ioTimeRecursive,omitempty"`
	SectorsRecursive        []BlkioEntry `json:"sectorsRecursive,omitempty"`
}

// Pids is the number of tasks and the limit (0 = unlimited).
type Pids struct {
	Current uint64 `json:"current,omitempty"`
	Limit   uint64 `json:"limit,omitempty"`
}

// Throttling is CFS bandwidth throttling data (time in nanoseconds).
type Throttling struct {
	Periods          uint64 `json:"periods,omitempty"`
	ThrottledPeriods uint64 `json:"throttledPeriods,omitempty"`
	ThrottledTime    uint64 `json:"throttledTime,omitempty"`
}

// CPUUsage is CPU time in nanoseconds.
type CPUUsage struct {
	Total        uint64   `json:"total,omitempty"`
	Percpu       []uint64 `json:"percpu,omitempty"`
	PercpuKernel []uint64 `json:"percpu_kernel,omitempty"`
	PercpuUser   []uint64 `json:"percpu_user,omitempty"`
	Kernel       uint64   `json:"kernel"`
	User         uint64   `json:"user"`
}

// CPU is the cpu section.
type CPU struct {
	Usage      CPUUsage   `json:"usage,omitempty"`
	Throttling Throttling `json:"throttling,omitempty"`
}

// CPUSet is the cpuset section (v1 flags are 0 on v2).
type CPUSet struct {
	CPUs                  []uint16 `json:"cpus,omitempty"`
	CPUExclusive          uint64   `json:"cpu_exclusive"`
	Mems                  []uint16 `json:"mems,omitempty"`
	MemHardwall           uint64   `json:"mem_hardwall"`
	MemExclusive          uint64   `json:"mem_exclusive"`
	MemoryMigrate         uint64   `json:"memory_migrate"`
	MemorySpreadPage      uint64   `json:"memory_spread_page"`
	MemorySpreadSlab      uint64   `json:"memory_spread_slab"`
	MemoryPressure        uint64   `json:"memory_pressure"`
	SchedLoadBalance      uint64   `json:"sched_load_balance"`
	SchedRelaxDomainLevel int64    `json:"sched_relax_domain_level"`
}

// MemoryEntry is usage/limit data of one memory counter.
type MemoryEntry struct {
	Limit   uint64 `json:"limit"`
	Usage   uint64 `json:"usage,omitempty"`
	Max     uint64 `json:"max,omitempty"`
	Failcnt uint64 `json:"failcnt"`
}

// Memory is the memory section. Swap is memory+swap (v1 semantics, also
// reported that way on v2). Raw is memory.stat verbatim.
type Memory struct {
	Cache     uint64            `json:"cache,omitempty"`
	Usage     MemoryEntry       `json:"usage,omitempty"`
	Swap      MemoryEntry       `json:"swap,omitempty"`
	Kernel    MemoryEntry       `json:"kernel,omitempty"`
	KernelTCP MemoryEntry       `json:"kernelTCP,omitempty"`
	Raw       map[string]uint64 `json:"raw,omitempty"`
}

func newStats() *Stats {
	return &Stats{Hugetlb: make(map[string]Hugetlb), Memory: Memory{Raw: make(map[string]uint64)}}
}

// ---- helpers shared by v1 and v2 ----

// clockTicks is USER_HZ, the unit of cpuacct.stat. It is 100 on every
// Linux architecture Go supports.
const clockTicks = 100

func parseUintList(s, where string) ([]uint64, error) {
	var out []uint64
	for _, f := range strings.Fields(s) {
		v, err := parseUint(f, where)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// parseCPUList parses "0-3,8,10-11".
func parseCPUList(s string) ([]uint16, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var out []uint16
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseUint(lo, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("parse cpu list %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 16); err != nil {
				return nil, fmt.Errorf("parse cpu list %q: %w", s, err)
			}
		}
		if b < a {
			return nil, fmt.Errorf("parse cpu list %q: bad range %s", s, part)
		}
		for i := a; i <= b; i++ {
			out = append(out, uint16(i))
		}
	}
	return out, nil
}

// parseBlkioV1 parses a v1 blkio stat file ("8:0 Read 123" lines, or
// "8:0 123" for single-value files like blkio.time_recursive).
func parseBlkioV1(s, where string) ([]BlkioEntry, error) {
	var out []BlkioEntry
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || (len(f) == 2 && f[0] == "Total") {
			continue
		}
		if len(f) < 2 || len(f) > 3 {
			return nil, fmt.Errorf("parse %s: unexpected line %q", where, line)
		}
		maj, min, ok := strings.Cut(f[0], ":")
		if !ok {
			return nil, fmt.Errorf("parse %s: unexpected line %q", where, line)
		}
		var e BlkioEntry
		var err error
		if e.Major, err = strconv.ParseUint(maj, 10, 64); err != nil {
			return nil, fmt.Errorf("parse %s: %w", where, err)
		}
		if e.Minor, err = strconv.ParseUint(min, 10, 64); err != nil {
			return nil, fmt.Errorf("parse %s: %w", where, err)
		}
		val := f[1]
		if len(f) == 3 {
			e.Op, val = f[1], f[2]
		}
		if e.Value, err = parseUint(val, where); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// parseIoStatV2 maps v2 io.stat ("8:0 rbytes=1 wbytes=2 rios=3 wios=4 ...")
// onto the v1 tables runc reports (service bytes and serviced, Read/Write).
func parseIoStatV2(s, where string) (Blkio, error) {
	var b Blkio
	lines := strings.Split(s, "\n")
	sort.Strings(lines)
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		maj, min, ok := strings.Cut(f[0], ":")
		if !ok {
			continue
		}
		major, err1 := strconv.ParseUint(maj, 10, 64)
		minor, err2 := strconv.ParseUint(min, 10, 64)
		if err1 != nil || err2 != nil {
			return b, fmt.Errorf("parse %s: bad device in %q", where, line)
		}
		for _, kv := range f[1:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				continue
			}
			var table *[]BlkioEntry
			var op string
			switch k {
			case "rbytes":
				table, op = &b.IoServiceBytesRecursive, "Read"
			case "wbytes":
				table, op = &b.IoServiceBytesRecursive, "Write"
			case "rios":
				table, op = &b.IoServicedRecursive, "Read"
			case "wios":
				table, op = &b.IoServicedRecursive, "Write"
			default:
				continue
			}
			val, err := parseUint(v, where)
			if err != nil {
				return b, err
			}
			*table = append(*table, BlkioEntry{Major: major, Minor: minor, Op: op, Value: val})
		}
	}
	return b, nil
}

// hugePageSizes lists the kernel's huge page sizes in the cgroup file name
// form ("2MB", "1GB"), from /sys/kernel/mm/hugepages.
func hugePageSizes() ([]string, error) {
	ents, err := os.ReadDir("/sys/kernel/mm/hugepages")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("read /sys/kernel/mm/hugepages: %w", bareErr(err))
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return hugePageSizesFromNames(names), nil
}

func hugePageSizesFromNames(names []string) []string {
	var out []string
	for _, n := range names {
		v, ok := strings.CutPrefix(n, "hugepages-")
		if !ok {
			continue
		}
		v, ok = strings.CutSuffix(v, "kB")
		if !ok {
			continue
		}
		kb, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			continue
		}
		switch {
		case kb >= 1<<20:
			out = append(out, strconv.FormatUint(kb>>20, 10)+"GB")
		case kb >= 1<<10:
			out = append(out, strconv.FormatUint(kb>>10, 10)+"MB")
		default:
			out = append(out, strconv.FormatUint(kb, 10)+"KB")
		}
	}
	sort.Strings(out)
	return out
}

// checkHugePageSize rejects page sizes the kernel does not have, before
// anything is written (the error would otherwise be a bare ENOENT).
func checkHugePageSize(size string, sizes []string) error {
	for _, s := range sizes {
		if s == size {
			return nil
		}
	}
	return fmt.Errorf("hugepage size %q is not supported by the kernel (supported: %s)", size, strings.Join(sizes, ", "))
}

// countPidsRecursive counts the processes of dir and below (used for
// pids.current when the pids controller is not enabled on v2).
func countPidsRecursive(dir string) (uint64, error) {
	pids, err := readPidsRecursive(dir)
	return uint64(len(pids)), err
}
