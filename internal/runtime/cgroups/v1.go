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

// v1Manager manages the cgroup v1 hierarchies of a container, plus (hybrid
// hosts) the directory with the same path in the cgroup2 hierarchy.
type v1Manager struct {
	mu           sync.Mutex
	paths        map[string]string // controller -> leaf directory
	mounts       map[string]string // controller -> mount point (New only; "" unknown)
	unified      string            // hybrid: v2 leaf directory
	unifiedMount string            // hybrid: v2 mount point (New only)
	created      []string          // directories Create made, parents first
}

func (m *v1Manager) Version() int { return 1 }

func (m *v1Manager) OpenDirFD() (int, error) { return -1, ErrNotUnified }

func (m *v1Manager) Paths() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.all()
}

// all returns controller -> directory, with the hybrid unified directory
// under "".
func (m *v1Manager) all() map[string]string {
	out := make(map[string]string, len(m.paths)+1)
	for k, v := range m.paths {
		out[k] = v
	}
	if m.unified != "" {
		out[""] = m.unified
	}
	return out
}

// leaves returns every leaf directory (v1 and hybrid v2), sorted.
func (m *v1Manager) leaves() []string { return uniqueDirs(m.all()) }

// hugetlbV2 reports whether hugetlb limits go to the unified hierarchy:
// hybrid host, no v1 hugetlb hierarchy, hugetlb available in cgroup2.
func (m *v1Manager) hugetlbV2() bool {
	if m.paths["hugetlb"] != "" || m.unified == "" {
		return false
	}
	s, err := readFile(mountPoint(m.unified, m.unifiedMount, true), "cgroup.controllers")
	if err != nil {
		return false
	}
	for _, c := range strings.Fields(s) {
		if c == "hugetlb" {
			return true
		}
	}
	return false
}

// check reports the first resource asked for whose controller is missing.
func (m *v1Manager) check(res *specs.LinuxResources) error {
	need := func(ok bool, what, ctrl string) error {
		if ok && m.paths[ctrl] == "" {
			return missingController(what, ctrl)
		}
		return nil
	}
	c, mem, n := res.CPU, res.Memory, res.Network
	hugetlbOK := len(res.HugepageLimits) == 0 || m.paths["hugetlb"] != "" || m.hugetlbV2()
	if !hugetlbOK {
		return missingController("hugetlb limits", "hugetlb")
	}
	return errors.Join(
		need(c != nil && (c.Shares != nil || c.Quota != nil || c.Period != nil || c.Burst != nil ||
			c.RealtimeRuntime != nil || c.RealtimePeriod != nil || c.Idle != nil), "cpu limits", "cpu"),
		need(c != nil && (c.Cpus != "" || c.Mems != ""), "cpuset limits", "cpuset"),
		need(mem != nil && (mem.Limit != nil || mem.Reservation != nil || mem.Swap != nil ||
			mem.Swappiness != nil || (mem.DisableOOMKiller != nil && *mem.DisableOOMKiller)), "memory limits", "memory"),
		need(res.Pids != nil && res.Pids.Limit != nil, "pids limit", "pids"),
		need(res.BlockIO != nil && blockIOSet(res.BlockIO), "blkio limits", "blkio"),
		need(n != nil && n.ClassID != nil, "net_cls classID", "net_cls"),
		need(n != nil && len(n.Priorities) > 0, "net_prio priorities", "net_prio"),
		need(len(res.Rdma) > 0, "rdma limits", "rdma"),
		need(res.Devices != nil, "device rules", "devices"),
	)
}

func blockIOSet(b *specs.LinuxBlockIO) bool {
	return b.Weight != nil || b.LeafWeight != nil || len(b.WeightDevice) > 0 ||
		len(b.ThrottleReadBpsDevice) > 0 || len(b.ThrottleWriteBpsDevice) > 0 ||
		len(b.ThrottleReadIOPSDevice) > 0 || len(b.ThrottleWriteIOPSDevice) > 0
}

func (m *v1Manager) Create(res *specs.LinuxResources) (retErr error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if res == nil {
		res = &specs.LinuxResources{}
	}
	if len(res.Unified) > 0 {
		return ErrV1NoUnified
	}
	if m.paths["devices"] == "" {
		// Like runc: running without device restrictions is not an option.
		return errors.New("the devices cgroup controller is not mounted; refusing to create a container without device restrictions")
	}
	if err := m.check(res); err != nil {
		return err
	}
	var created []string
	defer func() { keepCreated(&m.created, created, retErr) }()
	for _, dir := range m.leaves() {
		if err := mkdirTracked(dir, &created); err != nil {
			return err
		}
	}
	cpuset := m.paths["cpuset"]
	var cpusetParent [2]string
	if cpuset != "" {
		var err error
		if cpusetParent, err = cpusetCopyParents(cpuset, m.mounts["cpuset"]); err != nil {
			return err
		}
	}
	if err := m.set(res, true); err != nil {
		return err
	}
	if cpuset != "" {
		// Without cpus and mems no task can join the cpuset cgroup.
		_, err := cpusetInherit(cpuset, cpusetParent)
		return err
	}
	return nil
}

func (m *v1Manager) Set(res *specs.LinuxResources) error {
	if res == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(res.Unified) > 0 {
		return ErrV1NoUnified
	}
	if err := m.check(res); err != nil {
		return err
	}
	return m.set(res, false)
}

// set writes res; creating means Create (device rules always written).
func (m *v1Manager) set(res *specs.LinuxResources, creating bool) error {
	p := m.paths
	if c := res.CPU; c != nil && p["cpuset"] != "" {
		if err := setCpuset(p["cpuset"], c); err != nil {
			return err
		}
	}
	if creating || res.Devices != nil {
		if err := setDevicesV1(p["devices"], res.Devices); err != nil {
			return err
		}
	}
	if res.Memory != nil && p["memory"] != "" {
		if err := setMemoryV1(p["memory"], res.Memory, creating); err != nil {
			return err
		}
	}
	if res.CPU != nil && p["cpu"] != "" {
		if err := setCPUV1(p["cpu"], res.CPU); err != nil {
			return err
		}
	}
	if res.Pids != nil && res.Pids.Limit != nil {
		if err := writeFile(p["pids"], "pids.max", PidsLimitValue(*res.Pids.Limit)); err != nil {
			return err
		}
	}
	if res.BlockIO != nil && p["blkio"] != "" {
		if err := setBlkioV1(p["blkio"], res.BlockIO); err != nil {
			return err
		}
	}
	if len(res.HugepageLimits) > 0 {
		if err := checkHugePageLimits(res.HugepageLimits); err != nil {
			return err
		}
		if p["hugetlb"] != "" {
			if err := setHugetlb(p["hugetlb"], res.HugepageLimits, ".limit_in_bytes", ".rsvd.limit_in_bytes"); err != nil {
				return err
			}
		} else {
			// Hybrid host with hugetlb in cgroup2 only (check() made sure).
			top := mountPoint(m.unified, m.unifiedMount, true)
			if errs := enableControllers(top, m.unified, []string{"hugetlb"}); errs["hugetlb"] != nil {
				return fmt.Errorf("hugetlb limits requested but the hugetlb controller cannot be enabled for %s: %w", m.unified, errs["hugetlb"])
			}
			if err := setHugetlb(m.unified, res.HugepageLimits, ".max", ".rsvd.max"); err != nil {
				return err
			}
		}
	}
	if n := res.Network; n != nil {
		if n.ClassID != nil {
			if err := writeFile(p["net_cls"], "net_cls.classid", strconv.FormatUint(uint64(*n.ClassID), 10)); err != nil {
				return err
			}
		}
		for _, prio := range n.Priorities {
			if err := writeFile(p["net_prio"], "net_prio.ifpriomap", fmt.Sprintf("%s %d", prio.Name, prio.Priority)); err != nil {
				return err
			}
		}
	}
	if len(res.Rdma) > 0 {
		if err := setRdma(p["rdma"], res.Rdma); err != nil {
			return err
		}
	}
	return nil
}

// ---- cpuset ----

// cpusetFiles must not be empty in a cpuset cgroup a task joins.
var cpusetFiles = [2]string{"cpuset.cpus", "cpuset.mems"}

// cpusetCopyParents makes every existing ancestor of leaf below the cpuset
// mount point (mount, found with statfs when "") have cpus and mems (copied
// from its parent when empty); otherwise nothing can join the leaf. Walks
// top-down, and returns the values of leaf's parent when it is not the
// mount point (else "", unknown).
func cpusetCopyParents(leaf, mount string) ([2]string, error) {
	top := mountPoint(leaf, mount, false)
	var chain []string
	for d := filepath.Dir(leaf); d != top && strings.HasPrefix(d, top+"/"); d = filepath.Dir(d) {
		chain = append(chain, d)
	}
	var vals [2]string
	for i := len(chain) - 1; i >= 0; i-- {
		var err error
		if vals, err = cpusetInherit(chain[i], vals); err != nil {
			return vals, err
		}
	}
	return vals, nil
}

// cpusetInherit gives dir's empty cpuset.cpus and cpuset.mems the values of
// its parent (those in parent; read from the parent where "") and returns
// dir's values.
func cpusetInherit(dir string, parent [2]string) ([2]string, error) {
	var vals [2]string
	for i, f := range cpusetFiles {
		cur, err := readFile(dir, f)
		if err != nil {
			return vals, err
		}
		if vals[i] = strings.TrimSpace(cur); vals[i] != "" {
			continue
		}
		if vals[i] = parent[i]; vals[i] == "" {
			pv, err := readFile(filepath.Dir(dir), f)
			if err != nil {
				return vals, err
			}
			vals[i] = strings.TrimSpace(pv)
		}
		if err := writeFile(dir, f, vals[i]); err != nil {
			return vals, err
		}
	}
	return vals, nil
}

// setCpuset writes cpuset.cpus and cpuset.mems (the same files in v1 and v2).
func setCpuset(dir string, c *specs.LinuxCPU) error {
	if c.Cpus != "" {
		if err := writeFile(dir, "cpuset.cpus", c.Cpus); err != nil {
			return err
		}
	}
	if c.Mems != "" {
		if err := writeFile(dir, "cpuset.mems", c.Mems); err != nil {
			return err
		}
	}
	return nil
}

// ---- devices ----

// setDevicesV1 writes "a" to devices.deny (deny everything), then each rule
// in order: allow rules to devices.allow, deny rules to devices.deny. The
// kernel takes one rule per write(2); each file is opened once for all of
// them (as crun does).
func setDevicesV1(dir string, rules []specs.LinuxDeviceCgroup) error {
	lines := make([]string, len(rules))
	for i, r := range rules {
		s, err := DeviceRuleString(r)
		if err != nil {
			return fmt.Errorf("device rule %d: %w", i, err)
		}
		lines[i] = s
	}
	deny, err := openWrite(dir, "devices.deny")
	if err != nil {
		return err
	}
	defer deny.close()
	if err := deny.write("a"); err != nil {
		return err
	}
	var allow *cgroupFile // opened for the first allow rule
	defer func() {
		if allow != nil {
			allow.close()
		}
	}()
	for i, r := range rules {
		f := deny
		if r.Allow {
			if allow == nil {
				if allow, err = openWrite(dir, "devices.allow"); err != nil {
					return err
				}
			}
			f = allow
		}
		if err := f.write(lines[i]); err != nil {
			return err
		}
	}
	return nil
}

// ---- memory ----

func setMemoryV1(dir string, mem *specs.LinuxMemory, creating bool) error {
	const (
		limitFile = "memory.limit_in_bytes"
		swapFile  = "memory.memsw.limit_in_bytes"
	)
	var limit, swap int64 // 0 = leave alone
	if mem.Limit != nil {
		limit = *mem.Limit
	}
	if mem.Swap != nil {
		swap = *mem.Swap
	}
	memsw := exists(filepath.Join(dir, swapFile))
	if limit == -1 && mem.Swap == nil && memsw {
		// Unlimited memory without a swap value: unlimited swap too.
		swap = -1
	}
	if swap != 0 && !memsw {
		// Swap accounting is off. Nothing to do for "no limit" or "no
		// swap" (runc is lenient about these on v2 as well).
		if swap == -1 || swap == limit {
			swap = 0
		} else {
			return fmt.Errorf("memory.swap requested but swap accounting is not enabled in the kernel (%s missing)", filepath.Join(dir, swapFile))
		}
	}
	if limit > 0 && swap > 0 && swap < limit {
		return fmt.Errorf("memory+swap limit (%d) must be >= memory limit (%d)", swap, limit)
	}
	if !creating && mem.CheckBeforeUpdate != nil && *mem.CheckBeforeUpdate {
		if err := checkMemoryUsage(dir, "memory.usage_in_bytes", limit, swap); err != nil {
			return err
		}
	}
	writeLimit := func() error {
		if limit == 0 {
			return nil
		}
		err := writeFile(dir, limitFile, strconv.FormatInt(limit, 10))
		if err != nil && errors.Is(err, unix.EBUSY) {
			usage, _ := readUint(dir, "memory.usage_in_bytes")
			peak, _ := readUint(dir, "memory.max_usage_in_bytes")
			return fmt.Errorf("unable to set memory limit to %d (current usage: %d, peak usage: %d): %w", limit, usage, peak, err)
		}
		return err
	}
	writeSwap := func() error {
		if swap == 0 {
			return nil
		}
		return writeFile(dir, swapFile, strconv.FormatInt(swap, 10))
	}
	// The kernel keeps memsw >= limit at all times, so the order matters:
	// raise memsw first when the new memsw exceeds the current limit
	// (growing), lower the limit first otherwise (shrinking).
	first, second := writeLimit, writeSwap
	if limit != 0 && swap != 0 {
		cur, err := readUint(dir, limitFile)
		if err != nil {
			return err
		}
		if swapFirst(cur, swap) {
			first, second = writeSwap, writeLimit
		}
	}
	if err := first(); err != nil {
		return err
	}
	if err := second(); err != nil {
		return err
	}
	// Kernel and KernelTCP are ignored (obsolete since Linux 5.4; runc ignores them too).
	if mem.Reservation != nil && *mem.Reservation != 0 {
		if err := writeFile(dir, "memory.soft_limit_in_bytes", strconv.FormatInt(*mem.Reservation, 10)); err != nil {
			return err
		}
	}
	if s := mem.Swappiness; s != nil && int64(*s) != -1 {
		if *s > 100 {
			return fmt.Errorf("invalid memory swappiness %d (valid range is 0-100)", *s)
		}
		if err := writeFile(dir, "memory.swappiness", strconv.FormatUint(*s, 10)); err != nil {
			return err
		}
	}
	if d := mem.DisableOOMKiller; d != nil && (*d || !creating) {
		v := "0"
		if *d {
			v = "1"
		}
		if err := writeFile(dir, "memory.oom_control", v); err != nil {
			return err
		}
	}
	return nil
}

// swapFirst decides the v1 write order when both the memory limit and
// memory+swap change: memsw must stay >= the limit after each write, so
// memsw goes first when it grows past the current limit (or becomes
// unlimited), the limit goes first otherwise.
func swapFirst(curLimit uint64, swap int64) bool {
	return swap == -1 || curLimit < uint64(swap)
}

// checkMemoryUsage refuses a new limit at or below the current usage
// (linux.resources.memory.checkBeforeUpdate).
func checkMemoryUsage(dir, usageFile string, limit, swap int64) error {
	usage, err := readUint(dir, usageFile)
	if err != nil {
		return nil // best effort, like runc
	}
	if swap > 0 && uint64(swap) <= usage {
		return fmt.Errorf("rejecting memory+swap limit %d <= usage %d", swap, usage)
	}
	if limit > 0 && uint64(limit) <= usage {
		return fmt.Errorf("rejecting memory limit %d <= usage %d", limit, usage)
	}
	return nil
}

// ---- cpu ----

func setCPUV1(dir string, c *specs.LinuxCPU) error {
	if c.Shares != nil && *c.Shares != 0 {
		shares := *c.Shares
		if err := writeFile(dir, "cpu.shares", strconv.FormatUint(shares, 10)); err != nil {
			return err
		}
		got, err := readUint(dir, "cpu.shares")
		if err != nil {
			return err
		}
		if shares > got {
			return fmt.Errorf("the maximum allowed cpu-shares is %d", got)
		} else if shares < got {
			return fmt.Errorf("the minimum allowed cpu-shares is %d", got)
		}
	}
	// cpu.cfs_burst_us must stay <= quota: try it first, and again after
	// the quota if the kernel refused it then.
	var burstPending bool
	if c.Burst != nil {
		if err := writeFile(dir, "cpu.cfs_burst_us", strconv.FormatUint(*c.Burst, 10)); err != nil {
			if !errors.Is(err, unix.EINVAL) {
				return err
			}
			burstPending = true
		}
	}
	var periodPending string
	if c.Period != nil && *c.Period != 0 {
		period := strconv.FormatUint(*c.Period, 10)
		if err := writeFile(dir, "cpu.cfs_period_us", period); err != nil {
			// A smaller period can be refused (EINVAL) while the old quota
			// is in place; retry after writing the quota.
			if !errors.Is(err, unix.EINVAL) || c.Quota == nil || *c.Quota == 0 {
				return err
			}
			periodPending = period
		}
	}
	if c.Quota != nil && *c.Quota != 0 {
		if err := writeFile(dir, "cpu.cfs_quota_us", strconv.FormatInt(*c.Quota, 10)); err != nil {
			return err
		}
		if periodPending != "" {
			if err := writeFile(dir, "cpu.cfs_period_us", periodPending); err != nil {
				return err
			}
		}
	}
	if burstPending {
		if err := writeFile(dir, "cpu.cfs_burst_us", strconv.FormatUint(*c.Burst, 10)); err != nil {
			return err
		}
	}
	if c.RealtimePeriod != nil && *c.RealtimePeriod != 0 {
		if err := writeFile(dir, "cpu.rt_period_us", strconv.FormatUint(*c.RealtimePeriod, 10)); err != nil {
			return err
		}
	}
	if c.RealtimeRuntime != nil && *c.RealtimeRuntime != 0 {
		if err := writeFile(dir, "cpu.rt_runtime_us", strconv.FormatInt(*c.RealtimeRuntime, 10)); err != nil {
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

// ---- blkio ----

func setBlkioV1(dir string, b *specs.LinuxBlockIO) error {
	weightFile, weightDevFile := "blkio.weight", "blkio.weight_device"
	if !exists(filepath.Join(dir, weightFile)) {
		weightFile, weightDevFile = "blkio.bfq.weight", "blkio.bfq.weight_device"
		if !exists(filepath.Join(dir, weightFile)) {
			weightFile, weightDevFile = "", ""
		}
	}
	noWeight := func(what string) error {
		return fmt.Errorf("blkio %s requested but %s has neither blkio.weight nor blkio.bfq.weight (no CFQ/BFQ I/O scheduler)", what, dir)
	}
	if b.Weight != nil && *b.Weight != 0 {
		if weightFile == "" {
			return noWeight("weight")
		}
		if err := writeFile(dir, weightFile, strconv.FormatUint(uint64(*b.Weight), 10)); err != nil {
			return err
		}
	}
	if b.LeafWeight != nil && *b.LeafWeight != 0 {
		if err := writeFile(dir, "blkio.leaf_weight", strconv.FormatUint(uint64(*b.LeafWeight), 10)); err != nil {
			return err
		}
	}
	for _, wd := range b.WeightDevice {
		if wd.Weight != nil && *wd.Weight != 0 {
			if weightDevFile == "" {
				return noWeight("weightDevice")
			}
			if err := writeFile(dir, weightDevFile, fmt.Sprintf("%d:%d %d", wd.Major, wd.Minor, *wd.Weight)); err != nil {
				return err
			}
		}
		if wd.LeafWeight != nil && *wd.LeafWeight != 0 {
			if err := writeFile(dir, "blkio.leaf_weight_device", fmt.Sprintf("%d:%d %d", wd.Major, wd.Minor, *wd.LeafWeight)); err != nil {
				return err
			}
		}
	}
	for _, t := range []struct {
		file string
		devs []specs.LinuxThrottleDevice
	}{
		{"blkio.throttle.read_bps_device", b.ThrottleReadBpsDevice},
		{"blkio.throttle.write_bps_device", b.ThrottleWriteBpsDevice},
		{"blkio.throttle.read_iops_device", b.ThrottleReadIOPSDevice},
		{"blkio.throttle.write_iops_device", b.ThrottleWriteIOPSDevice},
	} {
		for _, d := range t.devs {
			if err := writeFile(dir, t.file, fmt.Sprintf("%d:%d %d", d.Major, d.Minor, d.Rate)); err != nil {
				return err
			}
		}
	}
	return nil
}

// ---- hugetlb and rdma (same formats on v1 and v2, different suffixes) ----

// checkHugePageLimits rejects limits for page sizes the kernel does not have.
func checkHugePageLimits(limits []specs.LinuxHugepageLimit) error {
	if len(limits) == 0 {
		return nil
	}
	sizes, err := hugePageSizes()
	if err != nil {
		return err
	}
	for _, l := range limits {
		if err := checkHugePageSize(l.Pagesize, sizes); err != nil {
			return err
		}
	}
	return nil
}

// setHugetlb writes limits checked with checkHugePageLimits.
func setHugetlb(dir string, limits []specs.LinuxHugepageLimit, suffix, rsvdSuffix string) error {
	rsvd := true
	for _, l := range limits {
		val := strconv.FormatUint(l.Limit, 10)
		if err := writeFile(dir, "hugetlb."+l.Pagesize+suffix, val); err != nil {
			return notEnabled(err, "hugetlb limits", "hugetlb", dir)
		}
		// The spec asks for reservation limits where the kernel has them.
		if rsvd {
			if err := writeFile(dir, "hugetlb."+l.Pagesize+rsvdSuffix, val); err != nil {
				if !errors.Is(err, unix.ENOENT) {
					return err
				}
				rsvd = false
			}
		}
	}
	return nil
}

func setRdma(dir string, rdma map[string]specs.LinuxRdma) error {
	for _, dev := range sortedKeys(rdma) {
		l := rdma[dev]
		line := dev
		if l.HcaHandles != nil {
			line += " hca_handle=" + strconv.FormatUint(uint64(*l.HcaHandles), 10)
		}
		if l.HcaObjects != nil {
			line += " hca_object=" + strconv.FormatUint(uint64(*l.HcaObjects), 10)
		}
		if line == dev {
			continue
		}
		if err := writeFile(dir, "rdma.max", line); err != nil {
			return notEnabled(err, "rdma limits", "rdma", dir)
		}
	}
	return nil
}

// ---- processes ----

func (m *v1Manager) Apply(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("invalid pid %d", pid)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, dir := range m.leaves() {
		if err := writePid(dir, pid); err != nil {
			return fmt.Errorf("join pid %d to cgroup: %w", pid, err)
		}
	}
	return nil
}

// procsDir is the hierarchy Pids reads (they all hold the same processes).
func (m *v1Manager) procsDir() string {
	for _, c := range []string{"devices", "freezer", "pids", "memory", "cpu"} {
		if d := m.paths[c]; d != "" {
			return d
		}
	}
	if l := m.leaves(); len(l) > 0 {
		return l[0]
	}
	return ""
}

func (m *v1Manager) Pids() ([]int, error) {
	m.mu.Lock()
	dir := m.procsDir()
	m.mu.Unlock()
	if dir == "" {
		return nil, errors.New("no cgroup to list processes from")
	}
	return readPidsRecursive(dir)
}

// ---- freezer ----

func (m *v1Manager) freezerDir() (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if d := m.paths["freezer"]; d != "" {
		return d, nil
	}
	return "", errors.New("cannot freeze or thaw: the freezer cgroup controller is not mounted")
}

func (m *v1Manager) Freeze() (retErr error) {
	dir, err := m.freezerDir()
	if err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			// Never leave a half-frozen (FREEZING) cgroup behind.
			_ = writeFile(dir, "freezer.state", "THAWED")
		}
	}()
	// A v1 cgroup can get stuck in FREEZING while tasks keep forking;
	// re-issue FROZEN, with an occasional thaw to break livelocks (runc's
	// strategy).
	for i := 0; i < 1000; i++ {
		if i%50 == 49 {
			_ = writeFile(dir, "freezer.state", "THAWED")
			time.Sleep(10 * time.Millisecond)
		}
		if err := writeFile(dir, "freezer.state", "FROZEN"); err != nil {
			return err
		}
		if i > 0 {
			time.Sleep(time.Millisecond)
		}
		state, err := readFile(dir, "freezer.state")
		if err != nil {
			return err
		}
		switch s := strings.TrimSpace(state); s {
		case "FROZEN":
			return nil
		case "FREEZING":
			continue
		default:
			return fmt.Errorf("unexpected freezer state %q in %s while freezing", s, dir)
		}
	}
	return fmt.Errorf("unable to freeze %s: still FREEZING", dir)
}

func (m *v1Manager) Thaw() error {
	dir, err := m.freezerDir()
	if err != nil {
		return err
	}
	if err := writeFile(dir, "freezer.state", "THAWED"); err != nil {
		return err
	}
	return waitFor(func() (bool, error) {
		s, err := readFile(dir, "freezer.state")
		return strings.TrimSpace(s) == "THAWED", err
	}, 5*time.Second, "the freezer cgroup "+dir+" to thaw")
}

func (m *v1Manager) Frozen() (bool, error) {
	dir, err := m.freezerDir()
	if err != nil {
		return false, err
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, err := readFile(dir, "freezer.state")
		if err != nil {
			return false, err
		}
		switch strings.TrimSpace(s) {
		case "THAWED":
			return false, nil
		case "FROZEN":
			// Frozen because of an ancestor is not "paused" by us.
			self, err := readFile(dir, "freezer.self_freezing")
			if err != nil {
				if isNotExist(err) {
					return true, nil
				}
				return false, err
			}
			return strings.TrimSpace(self) == "1", nil
		case "FREEZING":
			if time.Now().After(deadline) {
				return false, fmt.Errorf("freezer cgroup %s stuck in FREEZING", dir)
			}
			time.Sleep(time.Millisecond)
		default:
			return false, fmt.Errorf("unknown freezer state %q in %s", strings.TrimSpace(s), dir)
		}
	}
}

// waitFor polls cond until it is true or the timeout passes.
func waitFor(cond func() (bool, error), timeout time.Duration, what string) error {
	deadline := time.Now().Add(timeout)
	delay := time.Millisecond
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(delay)
		delay = min(delay*2, 20*time.Millisecond)
	}
}

// ---- destroy ----

func (m *v1Manager) Destroy() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	leaves := m.leaves()
	leafSet := make(map[string]bool, len(leaves))
	var errs []error
	for _, d := range leaves {
		leafSet[d] = true
		if err := removeLeaf(d); err != nil {
			errs = append(errs, err)
		}
	}
	removeCreatedParents(m.created, leafSet)
	if len(errs) == 0 {
		m.created = nil
	}
	return errors.Join(errs...)
}

// removeLeaf removes a container's cgroup directory after checking that it
// really is a cgroup below a hierarchy root (a corrupt state file must not
// make Destroy delete a whole hierarchy or an ordinary directory).
func removeLeaf(dir string) error {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil {
		return nil // gone already
	}
	if st.Type != unix.CGROUP_SUPER_MAGIC && st.Type != unix.CGROUP2_SUPER_MAGIC {
		return fmt.Errorf("refusing to remove %s: not a cgroup directory", dir)
	}
	pv1, pv2 := isCgroupFS(filepath.Dir(dir))
	if !pv1 && !pv2 {
		return fmt.Errorf("refusing to remove %s: it is the root of a cgroup hierarchy", dir)
	}
	return removeCgroup(dir)
}

// ---- stats ----

func (m *v1Manager) OOMKillCount() (uint64, error) {
	m.mu.Lock()
	dir := m.paths["memory"]
	m.mu.Unlock()
	if dir == "" {
		return 0, nil
	}
	kv, err := readKeyValues(dir, "memory.oom_control")
	if err != nil {
		return 0, err
	}
	return kv["oom_kill"], nil
}

func (m *v1Manager) Stats() (*Stats, error) {
	m.mu.Lock()
	p := make(map[string]string, len(m.paths))
	for k, v := range m.paths {
		p[k] = v
	}
	unified := m.unified
	m.mu.Unlock()

	st := newStats()
	if d := p["cpu"]; d != "" {
		if err := statCPUThrottlingV1(d, st); err != nil {
			return nil, err
		}
	}
	if d := p["cpuacct"]; d != "" {
		if err := statCpuacct(d, st); err != nil {
			return nil, err
		}
	}
	if d := p["cpuset"]; d != "" {
		if err := statCpusetV1(d, st); err != nil {
			return nil, err
		}
	}
	if d := p["memory"]; d != "" {
		if err := statMemoryV1(d, st); err != nil {
			return nil, err
		}
	}
	if d := p["pids"]; d != "" {
		if err := statPids(d, st); err != nil {
			return nil, err
		}
	}
	if d := p["blkio"]; d != "" {
		if err := statBlkioV1(d, st); err != nil {
			return nil, err
		}
	}
	if d := p["hugetlb"]; d != "" {
		if err := statHugetlb(d, st, ".usage_in_bytes", ".max_usage_in_bytes", ".failcnt"); err != nil {
			return nil, err
		}
	} else if unified != "" {
		// Hybrid host: hugetlb may be enabled in cgroup2 only.
		if err := statHugetlbV2(unified, st); err != nil {
			return nil, err
		}
	}
	return st, nil
}

func statCPUThrottlingV1(dir string, st *Stats) error {
	kv, err := readKeyValues(dir, "cpu.stat")
	if err != nil {
		if isNotExist(err) {
			return nil
		}
		return err
	}
	st.CPU.Throttling = Throttling{Periods: kv["nr_periods"], ThrottledPeriods: kv["nr_throttled"], ThrottledTime: kv["throttled_time"]}
	return nil
}

func statCpuacct(dir string, st *Stats) error {
	total, err := readUint(dir, "cpuacct.usage")
	if err != nil {
		return err
	}
	st.CPU.Usage.Total = total
	if s, err := readFile(dir, "cpuacct.usage_percpu"); err == nil {
		if st.CPU.Usage.Percpu, err = parseUintList(s, filepath.Join(dir, "cpuacct.usage_percpu")); err != nil {
			return err
		}
	} else if !isNotExist(err) {
		return err
	}
	if kv, err := readKeyValues(dir, "cpuacct.stat"); err == nil {
		const nsPerTick = uint64(time.Second) / clockTicks
		st.CPU.Usage.User = kv["user"] * nsPerTick
		st.CPU.Usage.Kernel = kv["system"] * nsPerTick
	} else if !isNotExist(err) {
		return err
	}
	if s, err := readFile(dir, "cpuacct.usage_all"); err == nil {
		k, u, err := parseCpuacctUsageAll(s, filepath.Join(dir, "cpuacct.usage_all"))
		if err != nil {
			return err
		}
		st.CPU.Usage.PercpuKernel, st.CPU.Usage.PercpuUser = k, u
	} else if !isNotExist(err) {
		return err
	}
	return nil
}

// parseCpuacctUsageAll parses "cpu user system" followed by one row per CPU.
func parseCpuacctUsageAll(s, where string) (kernel, user []uint64, err error) {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "cpu") {
		return nil, nil, fmt.Errorf("parse %s: missing header", where)
	}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 3 {
			return nil, nil, fmt.Errorf("parse %s: unexpected line %q", where, l)
		}
		u, err := parseUint(f[1], where)
		if err != nil {
			return nil, nil, err
		}
		k, err := parseUint(f[2], where)
		if err != nil {
			return nil, nil, err
		}
		user, kernel = append(user, u), append(kernel, k)
	}
	return kernel, user, nil
}

func statCpusetV1(dir string, st *Stats) error {
	var err error
	if s, rerr := readFile(dir, "cpuset.cpus"); rerr == nil {
		if st.CPUSet.CPUs, err = parseCPUList(s); err != nil {
			return err
		}
	}
	if s, rerr := readFile(dir, "cpuset.mems"); rerr == nil {
		if st.CPUSet.Mems, err = parseCPUList(s); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		name string
		dst  *uint64
	}{
		{"cpuset.cpu_exclusive", &st.CPUSet.CPUExclusive},
		{"cpuset.mem_hardwall", &st.CPUSet.MemHardwall},
		{"cpuset.mem_exclusive", &st.CPUSet.MemExclusive},
		{"cpuset.memory_migrate", &st.CPUSet.MemoryMigrate},
		{"cpuset.memory_spread_page", &st.CPUSet.MemorySpreadPage},
		{"cpuset.memory_spread_slab", &st.CPUSet.MemorySpreadSlab},
		{"cpuset.memory_pressure", &st.CPUSet.MemoryPressure},
		{"cpuset.sched_load_balance", &st.CPUSet.SchedLoadBalance},
	} {
		if v, err := readUint(dir, f.name); err == nil {
			*f.dst = v
		}
	}
	if s, err := readFile(dir, "cpuset.sched_relax_domain_level"); err == nil {
		if v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64); err == nil {
			st.CPUSet.SchedRelaxDomainLevel = v
		}
	}
	return nil
}

func statMemoryV1(dir string, st *Stats) error {
	raw, err := readKeyValues(dir, "memory.stat")
	if err != nil {
		return err
	}
	st.Memory.Raw = raw
	st.Memory.Cache = raw["cache"]
	for _, e := range []struct {
		prefix string
		dst    *MemoryEntry
		opt    bool
	}{
		{"memory", &st.Memory.Usage, false},
		{"memory.memsw", &st.Memory.Swap, true},
		{"memory.kmem", &st.Memory.Kernel, true},
		{"memory.kmem.tcp", &st.Memory.KernelTCP, true},
	} {
		usage, err := readUint(dir, e.prefix+".usage_in_bytes")
		if err != nil {
			if e.opt && isNotExist(err) {
				continue
			}
			return err
		}
		e.dst.Usage = usage
		if e.dst.Max, err = readUint(dir, e.prefix+".max_usage_in_bytes"); err != nil && !isNotExist(err) {
			return err
		}
		if e.dst.Failcnt, err = readUint(dir, e.prefix+".failcnt"); err != nil && !isNotExist(err) {
			return err
		}
		if e.dst.Limit, err = readUint(dir, e.prefix+".limit_in_bytes"); err != nil && !isNotExist(err) {
			return err
		}
	}
	return nil
}

// statPids reads pids.current and pids.max (shared by v1 and v2).
func statPids(dir string, st *Stats) error {
	cur, err := readUint(dir, "pids.current")
	if err != nil {
		return err
	}
	limit, err := readUint(dir, "pids.max")
	if err != nil {
		return err
	}
	if limit == math.MaxUint64 {
		limit = 0
	}
	st.Pids = Pids{Current: cur, Limit: limit}
	return nil
}

func statBlkioV1(dir string, st *Stats) error {
	type table struct {
		file string
		dst  *[]BlkioEntry
	}
	b := &st.Blkio
	var tables []table
	switch {
	case exists(filepath.Join(dir, "blkio.io_service_bytes_recursive")): // CFQ
		tables = []table{
			{"blkio.io_service_bytes_recursive", &b.IoServiceBytesRecursive},
			{"blkio.io_serviced_recursive", &b.IoServicedRecursive},
			{"blkio.io_queued_recursive", &b.IoQueuedRecursive},
			{"blkio.io_service_time_recursive", &b.IoServiceTimeRecursive},
			{"blkio.io_wait_time_recursive", &b.IoWaitTimeRecursive},
			{"blkio.io_merged_recursive", &b.IoMergedRecursive},
			{"blkio.time_recursive", &b.IoTimeRecursive},
			{"blkio.sectors_recursive", &b.SectorsRecursive},
		}
	case exists(filepath.Join(dir, "blkio.bfq.io_service_bytes_recursive")): // BFQ
		tables = []table{
			{"blkio.bfq.io_service_bytes_recursive", &b.IoServiceBytesRecursive},
			{"blkio.bfq.io_serviced_recursive", &b.IoServicedRecursive},
		}
	default: // throttling only
		tables = []table{
			{"blkio.throttle.io_service_bytes_recursive", &b.IoServiceBytesRecursive},
			{"blkio.throttle.io_serviced_recursive", &b.IoServicedRecursive},
		}
	}
	for _, t := range tables {
		s, err := readFile(dir, t.file)
		if err != nil {
			if isNotExist(err) {
				continue
			}
			return err
		}
		if *t.dst, err = parseBlkioV1(s, filepath.Join(dir, t.file)); err != nil {
			return err
		}
	}
	return nil
}

func statHugetlb(dir string, st *Stats, usage, max, failcnt string) error {
	sizes, err := hugePageSizes()
	if err != nil {
		return err
	}
	for _, size := range sizes {
		var h Hugetlb
		if h.Usage, err = readUint(dir, "hugetlb."+size+usage); err != nil {
			if isNotExist(err) {
				continue
			}
			return err
		}
		if h.Max, err = readUint(dir, "hugetlb."+size+max); err != nil && !isNotExist(err) {
			return err
		}
		if h.Failcnt, err = readUint(dir, "hugetlb."+size+failcnt); err != nil && !isNotExist(err) {
			return err
		}
		st.Hugetlb[size] = h
	}
	return nil
}
