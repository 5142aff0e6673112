package cgroups

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// v2Manager manages a container's cgroup in the unified hierarchy.
type v2Manager struct {
	mu      sync.Mutex
	dir     string
	mount   string           // mount point (New only; found with statfs otherwise)
	created []string         // directories Create made, parents first
	enable  map[string]error // why a controller could not be enabled
}

func (m *v2Manager) Version() int { return 2 }

func (m *v2Manager) Paths() map[string]string { return map[string]string{"": m.dir} }

func (m *v2Manager) OpenDirFD() (int, error) {
	fd, err := unix.Open(m.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", m.dir, err)
	}
	return fd, nil
}

func (m *v2Manager) top() string { return mountPoint(m.dir, m.mount, true) }

// neededV2 lists the controllers res needs enabled (pseudo-controllers
// devices and freezer need nothing).
func neededV2(res *specs.LinuxResources) []string {
	var out []string
	add := func(ok bool, c string) {
		if ok {
			out = append(out, c)
		}
	}
	c, mem := res.CPU, res.Memory
	add(c != nil && (c.Shares != nil || c.Quota != nil || c.Period != nil || c.Burst != nil || c.Idle != nil), "cpu")
	add(c != nil && (c.Cpus != "" || c.Mems != ""), "cpuset")
	add(mem != nil && (mem.Limit != nil || mem.Reservation != nil || mem.Swap != nil), "memory")
	add(res.Pids != nil && res.Pids.Limit != nil, "pids")
	add(res.BlockIO != nil && blockIOSet(res.BlockIO), "io")
	add(len(res.HugepageLimits) > 0, "hugetlb")
	add(len(res.Rdma) > 0, "rdma")
	for _, k := range sortedKeys(res.Unified) {
		ctrl, _, _ := strings.Cut(k, ".")
		if ctrl != "cgroup" && ctrl != "" {
			out = append(out, ctrl)
		}
	}
	return dedup(out)
}

func dedup(s []string) []string {
	seen := make(map[string]bool)
	out := s[:0]
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// enableControllers writes "+ctrl" to cgroup.subtree_control of every
// ancestor of leaf from top down (only controllers listed in the
// ancestor's cgroup.controllers and not yet enabled). Failures are returned
// per controller and reported when the controller's files are written.
func enableControllers(top, leaf string, ctrls []string) map[string]error {
	errs := make(map[string]error)
	if len(ctrls) == 0 {
		return errs
	}
	rel, err := filepath.Rel(top, leaf)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		for _, c := range ctrls {
			errs[c] = fmt.Errorf("%s is not below the cgroup2 mount %s", leaf, top)
		}
		return errs
	}
	parts := strings.Split(rel, "/")
	dir := top
	for i := 0; i < len(parts); i++ {
		availS, err1 := readFile(dir, "cgroup.controllers")
		enabledS, err2 := readFile(dir, "cgroup.subtree_control")
		avail, enabled := fieldSet(availS), fieldSet(enabledS)
		for _, c := range ctrls {
			switch {
			case errs[c] != nil || enabled[c]:
			case err1 != nil:
				errs[c] = err1
			case err2 != nil:
				errs[c] = err2
			case !avail[c]:
				errs[c] = fmt.Errorf("%s is not in %s", c, filepath.Join(dir, "cgroup.controllers"))
			default:
				if err := writeFile(dir, "cgroup.subtree_control", "+"+c); err != nil {
					errs[c] = err
				}
			}
		}
		dir = filepath.Join(dir, parts[i])
	}
	for c, e := range errs {
		if e == nil {
			delete(errs, c)
		}
	}
	return errs
}

func fieldSet(s string) map[string]bool {
	out := make(map[string]bool)
	for _, f := range strings.Fields(s) {
		out[f] = true
	}
	return out
}

// validateV2 rejects what cgroup v2 cannot do before anything is created.
func validateV2(res *specs.LinuxResources) error {
	if c := res.CPU; c != nil {
		if (c.RealtimeRuntime != nil && *c.RealtimeRuntime != 0) || (c.RealtimePeriod != nil && *c.RealtimePeriod != 0) {
			return errors.New("realtime CPU limits (cpu.realtimeRuntime, cpu.realtimePeriod) are not supported on cgroup v2")
		}
	}
	for _, k := range sortedKeys(res.Unified) {
		if err := validateUnifiedKey(k); err != nil {
			return err
		}
	}
	if err := checkHugePageLimits(res.HugepageLimits); err != nil {
		return err
	}
	if m := res.Memory; m != nil && m.Swappiness != nil && int64(*m.Swappiness) != -1 && *m.Swappiness > 100 {
		return fmt.Errorf("invalid memory swappiness %d (valid range is 0-100)", *m.Swappiness)
	}
	return nil
}

func (m *v2Manager) Create(res *specs.LinuxResources) (retErr error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if res == nil {
		res = &specs.LinuxResources{}
	}
	if err := validateV2(res); err != nil {
		return err
	}
	var created []string
	defer func() { keepCreated(&m.created, created, retErr) }()
	if err := mkdirTracked(m.dir, &created); err != nil {
		return err
	}
	m.enable = enableControllers(m.top(), m.dir, neededV2(res))
	return m.set(res, true)
}

func (m *v2Manager) Set(res *specs.LinuxResources) error {
	if res == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := validateV2(res); err != nil {
		return err
	}
	m.enable = enableControllers(m.top(), m.dir, neededV2(res))
	return m.set(res, false)
}

// wrap turns ENOENT from a controller file into "controller not available"
// with the reason it could not be enabled.
func (m *v2Manager) wrap(err error, what, ctrl string) error {
	if err == nil || !errors.Is(err, unix.ENOENT) {
		return err
	}
	if why := m.enable[ctrl]; why != nil {
		return fmt.Errorf("%s requested but the %s controller is not available in %s (enabling it failed: %v): %w", what, ctrl, m.dir, why, err)
	}
	return notEnabled(err, what, ctrl, m.dir)
}

func (m *v2Manager) set(res *specs.LinuxResources, creating bool) error {
	dir := m.dir
	if res.Pids != nil && res.Pids.Limit != nil {
		if err := writeFile(dir, "pids.max", PidsLimitValue(*res.Pids.Limit)); err != nil {
			return m.wrap(err, "pids limit", "pids")
		}
	}
	if res.Memory != nil {
		if err := m.wrap(setMemoryV2(dir, res.Memory, creating), "memory limits", "memory"); err != nil {
			return err
		}
	}
	if res.BlockIO != nil {
		if err := m.wrap(setIOV2(dir, res.BlockIO), "blockIO limits", "io"); err != nil {
			return err
		}
	}
	if res.CPU != nil {
		if err := m.wrap(setCPUV2(dir, res.CPU), "cpu limits", "cpu"); err != nil {
			return err
		}
		if c := res.CPU; c.Cpus != "" || c.Mems != "" {
			if err := m.wrap(setCpuset(dir, c), "cpuset limits", "cpuset"); err != nil {
				return err
			}
		}
	}
	if creating || res.Devices != nil {
		if err := attachDeviceFilter(dir, res.Devices); err != nil {
			return err
		}
	}
	if len(res.HugepageLimits) > 0 {
		if err := m.wrap(setHugetlb(dir, res.HugepageLimits, ".max", ".rsvd.max"), "hugetlb limits", "hugetlb"); err != nil {
			return err
		}
	}
	if len(res.Rdma) > 0 {
		if err := m.wrap(setRdma(dir, res.Rdma), "rdma limits", "rdma"); err != nil {
			return err
		}
	}
	// linux.resources.network has no cgroup v2 equivalent; runc ignores it too.
	return m.setUnified(res.Unified)
}

// setUnified writes linux.resources.unified verbatim (one write per line,
// so multi-line values like several io.max entries work), sorted by key.
// validateV2 has checked the keys.
func (m *v2Manager) setUnified(u map[string]string) error {
	for _, k := range sortedKeys(u) {
		lines := strings.Split(u[k], "\n")
		for _, line := range lines {
			if line == "" && len(lines) > 1 {
				continue
			}
			if err := writeFile(m.dir, k, line); err != nil {
				if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EPERM) {
					ctrl, _, _ := strings.Cut(k, ".")
					if why := m.enable[ctrl]; why != nil {
						return fmt.Errorf("unified resource %q can't be set: controller %q not available (%v): %w", k, ctrl, why, err)
					}
				}
				return fmt.Errorf("unable to set unified resource %q: %w", k, err)
			}
		}
	}
	return nil
}

func setCPUV2(dir string, c *specs.LinuxCPU) error {
	if c.Shares != nil && *c.Shares != 0 {
		if err := writeFile(dir, "cpu.weight", strconv.FormatUint(SharesToWeight(*c.Shares), 10)); err != nil {
			return err
		}
	}
	var burstPending bool
	if c.Burst != nil {
		if err := writeFile(dir, "cpu.max.burst", strconv.FormatUint(*c.Burst, 10)); err != nil {
			if !errors.Is(err, unix.EINVAL) {
				return err
			}
			burstPending = true // burst > current quota; retry after cpu.max
		}
	}
	quota := ""
	if c.Quota != nil && *c.Quota != 0 {
		quota = "max"
		if *c.Quota > 0 {
			quota = strconv.FormatInt(*c.Quota, 10)
		}
	}
	period := ""
	if c.Period != nil && *c.Period != 0 {
		period = strconv.FormatUint(*c.Period, 10)
	}
	var cpuMax string
	switch {
	case quota != "" && period != "":
		cpuMax = quota + " " + period
	case quota != "":
		cpuMax = quota // the kernel keeps the current period
	case period != "":
		cur, err := readFile(dir, "cpu.max")
		if err != nil {
			return err
		}
		f := strings.Fields(cur)
		if len(f) == 0 {
			return fmt.Errorf("parse %s: empty", filepath.Join(dir, "cpu.max"))
		}
		cpuMax = f[0] + " " + period
	}
	if cpuMax != "" {
		if err := writeFile(dir, "cpu.max", cpuMax); err != nil {
			return err
		}
	}
	if burstPending {
		if err := writeFile(dir, "cpu.max.burst", strconv.FormatUint(*c.Burst, 10)); err != nil {
			return err
		}
	}
	if c.Idle != nil {
		if err := writeFile(dir, "cpu.idle", strconv.FormatInt(*c.Idle, 10)); err != nil {
			return err
		}
	}
	return nil
}

// v2Limit formats a memory value: -1 is "max".
func v2Limit(v int64) string {
	if v == -1 {
		return "max"
	}
	return strconv.FormatInt(v, 10)
}

func setMemoryV2(dir string, mem *specs.LinuxMemory, creating bool) error {
	var limit, swap int64
	if mem.Limit != nil {
		limit = *mem.Limit
	}
	if mem.Swap != nil {
		swap = *mem.Swap
	}
	if !creating && mem.CheckBeforeUpdate != nil && *mem.CheckBeforeUpdate {
		if err := checkMemoryUsage(dir, "memory.current", limit, swap); err != nil {
			return err
		}
	}
	if limit != 0 || swap != 0 {
		v2swap, err := SwapToV2(swap, limit)
		if err != nil {
			return err
		}
		swapStr := ""
		switch {
		case v2swap == -1:
			swapStr = "max"
		case v2swap > 0:
			swapStr = strconv.FormatInt(v2swap, 10)
		case v2swap == 0 && swap > 0:
			swapStr = "0" // memory == memory+swap: no swap
		}
		if swapStr != "" {
			if err := writeFile(dir, "memory.swap.max", swapStr); err != nil {
				// Without swap accounting, "no limit" and "no swap" are
				// what the container gets anyway (runc is lenient too).
				if !(errors.Is(err, unix.ENOENT) && (swapStr == "max" || swapStr == "0")) {
					return err
				}
			}
		}
		if limit != 0 {
			if err := writeFile(dir, "memory.max", v2Limit(limit)); err != nil {
				return err
			}
		}
	}
	if mem.Reservation != nil && *mem.Reservation != 0 {
		if err := writeFile(dir, "memory.low", v2Limit(*mem.Reservation)); err != nil {
			return err
		}
	}
	// swappiness, disableOOMKiller and kernel memory have no v2 files;
	// runc ignores them on v2 as well.
	return nil
}

func setIOV2(dir string, b *specs.LinuxBlockIO) error {
	// BFQ takes the v1 weight range as is; otherwise convert for io.weight.
	writeWeight := func(prefix string, w uint16) error {
		err := writeFile(dir, "io.bfq.weight", prefix+strconv.FormatUint(uint64(w), 10))
		if err == nil || !errors.Is(err, unix.ENOENT) {
			return err
		}
		return writeFile(dir, "io.weight", prefix+strconv.FormatUint(BlkioWeightToIOWeight(w), 10))
	}
	if b.Weight != nil && *b.Weight != 0 {
		if err := writeWeight("", *b.Weight); err != nil {
			return err
		}
	}
	for _, wd := range b.WeightDevice {
		if wd.Weight != nil && *wd.Weight != 0 {
			if err := writeWeight(fmt.Sprintf("%d:%d ", wd.Major, wd.Minor), *wd.Weight); err != nil {
				return err
			}
		}
	}
	// leafWeight has no v2 equivalent (ignored, like runc).
	for _, t := range []struct {
		key  string
		devs []specs.LinuxThrottleDevice
	}{
		{"rbps", b.ThrottleReadBpsDevice},
		{"wbps", b.ThrottleWriteBpsDevice},
		{"riops", b.ThrottleReadIOPSDevice},
		{"wiops", b.ThrottleWriteIOPSDevice},
	} {
		for _, d := range t.devs {
			if err := writeFile(dir, "io.max", fmt.Sprintf("%d:%d %s=%d", d.Major, d.Minor, t.key, d.Rate)); err != nil {
				return err
			}
		}
	}
	return nil
}

// ---- processes ----

func (m *v2Manager) Apply(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("invalid pid %d", pid)
	}
	if err := writePid(m.dir, pid); err != nil {
		return fmt.Errorf("join pid %d to cgroup: %w", pid, err)
	}
	return nil
}

func (m *v2Manager) Pids() ([]int, error) { return readPidsRecursive(m.dir) }

// ---- freezer ----

func (m *v2Manager) Freeze() (retErr error) {
	if err := writeFile(m.dir, "cgroup.freeze", "1"); err != nil {
		return fmt.Errorf("freezer not supported: %w", err)
	}
	defer func() {
		if retErr != nil {
			_ = writeFile(m.dir, "cgroup.freeze", "0")
		}
	}()
	return waitFor(func() (bool, error) { return m.eventsFrozen(true) }, 10*time.Second, "cgroup "+m.dir+" to freeze")
}

func (m *v2Manager) Thaw() error {
	if err := writeFile(m.dir, "cgroup.freeze", "0"); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil // no freezer: nothing can be frozen
		}
		return err
	}
	return waitFor(func() (bool, error) { return m.eventsFrozen(false) }, 10*time.Second, "cgroup "+m.dir+" to thaw")
}

// eventsFrozen reports whether cgroup.events says "frozen <want>".
func (m *v2Manager) eventsFrozen(want bool) (bool, error) {
	kv, err := readKeyValues(m.dir, "cgroup.events")
	if err != nil {
		return false, err
	}
	return (kv["frozen"] == 1) == want, nil
}

func (m *v2Manager) Frozen() (bool, error) {
	s, err := readFile(m.dir, "cgroup.freeze")
	if err != nil {
		if isNotExist(err) {
			return false, nil
		}
		return false, err
	}
	if strings.TrimSpace(s) != "1" {
		return false, nil
	}
	if err := waitFor(func() (bool, error) { return m.eventsFrozen(true) }, 10*time.Second, "cgroup "+m.dir+" to freeze"); err != nil {
		return false, err
	}
	return true, nil
}

// ---- destroy ----

func (m *v2Manager) Destroy() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := removeLeaf(m.dir); err != nil {
		return err
	}
	removeCreatedParents(m.created, map[string]bool{m.dir: true})
	m.created = nil
	return nil
}

// ---- stats ----

func (m *v2Manager) OOMKillCount() (uint64, error) {
	kv, err := readKeyValues(m.dir, "memory.events")
	if err != nil {
		if isNotExist(err) {
			return 0, nil // memory controller not enabled
		}
		return 0, err
	}
	return kv["oom_kill"], nil
}

func (m *v2Manager) Stats() (*Stats, error) {
	dir := m.dir
	st := newStats()
	if err := statCPUV2(dir, st); err != nil {
		return nil, err
	}
	if err := statMemoryV2(dir, st); err != nil {
		return nil, err
	}
	if exists(filepath.Join(dir, "pids.current")) {
		if err := statPids(dir, st); err != nil {
			return nil, err
		}
	} else {
		// pids controller not enabled: count the processes.
		n, err := countPidsRecursive(dir)
		if err != nil {
			return nil, err
		}
		st.Pids.Current = n
	}
	if s, err := readFile(dir, "io.stat"); err == nil {
		if st.Blkio, err = parseIoStatV2(s, filepath.Join(dir, "io.stat")); err != nil {
			return nil, err
		}
	} else if !isNotExist(err) {
		return nil, err
	}
	if err := statHugetlbV2(dir, st); err != nil {
		return nil, err
	}
	if s, err := readFile(dir, "cpuset.cpus.effective"); err == nil {
		st.CPUSet.CPUs, _ = parseCPUList(s)
	}
	if s, err := readFile(dir, "cpuset.mems.effective"); err == nil {
		st.CPUSet.Mems, _ = parseCPUList(s)
	}
	return st, nil
}

func statCPUV2(dir string, st *Stats) error {
	kv, err := readKeyValues(dir, "cpu.stat")
	if err != nil {
		if isNotExist(err) {
			return nil
		}
		return err
	}
	st.CPU.Usage.Total = kv["usage_usec"] * 1000
	st.CPU.Usage.User = kv["user_usec"] * 1000
	st.CPU.Usage.Kernel = kv["system_usec"] * 1000
	st.CPU.Throttling = Throttling{
		Periods:          kv["nr_periods"],
		ThrottledPeriods: kv["nr_throttled"],
		ThrottledTime:    kv["throttled_usec"] * 1000,
	}
	return nil
}

func statMemoryV2(dir string, st *Stats) error {
	raw, err := readKeyValues(dir, "memory.stat")
	if err != nil {
		if isNotExist(err) {
			return nil // memory controller not enabled
		}
		return err
	}
	st.Memory.Raw = raw
	st.Memory.Cache = raw["file"]
	read := func(prefix string, dst *MemoryEntry) (bool, error) {
		usage, err := readUint(dir, prefix+".current")
		if err != nil {
			if isNotExist(err) {
				return false, nil
			}
			return false, err
		}
		dst.Usage = usage
		if dst.Limit, err = readUint(dir, prefix+".max"); err != nil && !isNotExist(err) {
			return false, err
		}
		if dst.Max, err = readUint(dir, prefix+".peak"); err != nil && !isNotExist(err) {
			return false, err
		}
		return true, nil
	}
	if _, err := read("memory", &st.Memory.Usage); err != nil {
		return err
	}
	var swap MemoryEntry
	ok, err := read("memory.swap", &swap)
	if err != nil {
		return err
	}
	if ok {
		// Report memory+swap like v1 does (runc does the same).
		swap.Usage += st.Memory.Usage.Usage
		if swap.Limit != math.MaxUint64 {
			swap.Limit += st.Memory.Usage.Limit
		}
		swap.Max = 0
		st.Memory.Swap = swap
	}
	return nil
}

// statHugetlbV2 reads hugetlb.<size>.current and the "max" count of
// hugetlb.<size>.events; sizes without files (controller off) are skipped.
func statHugetlbV2(dir string, st *Stats) error {
	sizes, err := hugePageSizes()
	if err != nil {
		return err
	}
	for _, size := range sizes {
		var h Hugetlb
		if h.Usage, err = readUint(dir, "hugetlb."+size+".current"); err != nil {
			if isNotExist(err) {
				continue
			}
			return err
		}
		if kv, err := readKeyValues(dir, "hugetlb."+size+".events"); err == nil {
			h.Failcnt = kv["max"]
		} else if !isNotExist(err) {
			return err
		}
		st.Hugetlb[size] = h
	}
	return nil
}
