package daemon

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"golang.org/x/sys/unix"
)

// Stats streams a container's resource usage, one sample a second (or one with !stream),
// read from its cgroups (v1 or v2) and /proc.
func (d *Daemon) Stats(ctx context.Context, ref string, stream bool, emit func(*container.StatsResponse) error) error {
	c, err := d.get(ctx, ref)
	if err != nil {
		return err
	}
	var prev *container.StatsResponse
	sample := func() *container.StatsResponse {
		c.mu.Lock()
		pid, running, name := c.State.Pid, c.State.Running, c.Name
		c.mu.Unlock()
		s := &container.StatsResponse{ID: c.ID, Name: name, OSType: "linux", Read: time.Now().UTC()}
		if running && pid > 0 {
			readStats(pid, s)
		}
		if prev != nil {
			s.PreRead = prev.Read
			s.PreCPUStats = prev.CPUStats
		}
		return s
	}
	if !stream {
		// One sample with a previous one a moment before, so the CLI can compute CPU %.
		prev = sample()
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return nil
		}
		return emit(sample())
	}
	for {
		s := sample()
		if err := emit(s); err != nil {
			return err
		}
		prev = s
		c.mu.Lock()
		gone := c.removed
		c.mu.Unlock()
		if gone {
			return nil
		}
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return nil
		}
	}
}

// readStats fills s from the cgroups of pid.
func readStats(pid int, s *container.StatsResponse) {
	s.CPUStats.OnlineCPUs = uint32(runtime.NumCPU())
	s.CPUStats.SystemUsage = systemCPUUsage()
	if cgroupV2() {
		dir := cgroupDir(pid, "")
		kv := readKV(filepath.Join(dir, "cpu.stat"))
		s.CPUStats.CPUUsage.TotalUsage = kv["usage_usec"] * 1000
		s.CPUStats.CPUUsage.UsageInUsermode = kv["user_usec"] * 1000
		s.CPUStats.CPUUsage.UsageInKernelmode = kv["system_usec"] * 1000
		s.CPUStats.ThrottlingData = container.ThrottlingData{Periods: kv["nr_periods"], ThrottledPeriods: kv["nr_throttled"], ThrottledTime: kv["throttled_usec"] * 1000}
		s.MemoryStats.Usage = readUint(filepath.Join(dir, "memory.current"))
		s.MemoryStats.Limit = readUint(filepath.Join(dir, "memory.max"))
		s.MemoryStats.Stats = readKV(filepath.Join(dir, "memory.stat"))
		s.PidsStats.Current = readUint(filepath.Join(dir, "pids.current"))
		s.PidsStats.Limit = readUint(filepath.Join(dir, "pids.max"))
	} else {
		cpu := cgroupDir(pid, "cpuacct")
		s.CPUStats.CPUUsage.TotalUsage = readUint(filepath.Join(cpu, "cpuacct.usage"))
		kv := readKV(filepath.Join(cpu, "cpuacct.stat"))
		tick := uint64(1e9 / 100)
		s.CPUStats.CPUUsage.UsageInUsermode = kv["user"] * tick
		s.CPUStats.CPUUsage.UsageInKernelmode = kv["system"] * tick
		if cpuDir := cgroupDir(pid, "cpu"); cpuDir != "" {
			t := readKV(filepath.Join(cpuDir, "cpu.stat"))
			s.CPUStats.ThrottlingData = container.ThrottlingData{Periods: t["nr_periods"], ThrottledPeriods: t["nr_throttled"], ThrottledTime: t["throttled_time"]}
		}
		mem := cgroupDir(pid, "memory")
		s.MemoryStats.Usage = readUint(filepath.Join(mem, "memory.usage_in_bytes"))
		s.MemoryStats.MaxUsage = readUint(filepath.Join(mem, "memory.max_usage_in_bytes"))
		s.MemoryStats.Failcnt = readUint(filepath.Join(mem, "memory.failcnt"))
		s.MemoryStats.Limit = readUint(filepath.Join(mem, "memory.limit_in_bytes"))
		s.MemoryStats.Stats = readKV(filepath.Join(mem, "memory.stat"))
		pids := cgroupDir(pid, "pids")
		s.PidsStats.Current = readUint(filepath.Join(pids, "pids.current"))
		s.PidsStats.Limit = readUint(filepath.Join(pids, "pids.max"))
	}
	// An unlimited cgroup reports a huge limit; the CLI divides by it, so give the host's memory.
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		total := uint64(si.Totalram) * uint64(si.Unit)
		if s.MemoryStats.Limit == 0 || s.MemoryStats.Limit > total {
			s.MemoryStats.Limit = total
		}
	}
	s.Networks = netStats(pid)
}

func readUint(path string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n
}

func readKV(path string) map[string]uint64 {
	out := map[string]uint64{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			out[k] = n
		}
	}
	return out
}

// systemCPUUsage is the host's total CPU time in nanoseconds (/proc/stat), as dockerd gives it.
func systemCPUUsage() uint64 {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 0 && fields[0] == "cpu" {
			var total uint64
			for _, v := range fields[1:8] {
				n, _ := strconv.ParseUint(v, 10, 64)
				total += n
			}
			return total * (1e9 / 100)
		}
	}
	return 0
}

// netStats reads the container's interfaces from /proc/<pid>/net/dev (loopback excluded).
func netStats(pid int) map[string]container.NetworkStats {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/net/dev")
	if err != nil {
		return nil
	}
	defer f.Close()
	out := map[string]container.NetworkStats{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		name = strings.TrimSpace(name)
		if name == "lo" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 16 {
			continue
		}
		n := func(i int) uint64 { v, _ := strconv.ParseUint(f[i], 10, 64); return v }
		out[name] = container.NetworkStats{RxBytes: n(0), RxPackets: n(1), RxErrors: n(2), RxDropped: n(3), TxBytes: n(8), TxPackets: n(9), TxErrors: n(10), TxDropped: n(11)}
	}
	return out
}

// Usage is one sample of a container's resource usage for front ends other than Docker's
// stats stream: its cgroup counters (zero while it does not run) and its writable layer.
type Usage struct {
	Stats *container.StatsResponse
	// WritableDir is the upper directory of the container's snapshot; WritableBytes and
	// WritableInodes what it holds.
	WritableDir                   string
	WritableBytes, WritableInodes uint64
}

// UsageOf samples a container's usage at once.
func (d *Daemon) UsageOf(ctx context.Context, ref string) (Usage, error) {
	c, err := d.get(ctx, ref)
	if err != nil {
		return Usage{}, err
	}
	c.mu.Lock()
	pid, running, name := c.State.Pid, c.State.Running, c.Name
	c.mu.Unlock()
	u := Usage{Stats: &container.StatsResponse{ID: c.ID, Name: name, OSType: "linux", Read: time.Now().UTC()}}
	if running && pid > 0 {
		readStats(pid, u.Stats)
	}
	if upper, err := d.images.Snaps.UpperDir(c.ID); err == nil {
		b, n := dirUsage(upper)
		u.WritableDir, u.WritableBytes, u.WritableInodes = upper, uint64(b), uint64(n)
	}
	return u, nil
}
