package cgroups

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestSharesToWeight(t *testing.T) {
	for _, c := range []struct{ shares, weight uint64 }{
		{0, 0}, {1, 1}, {2, 1}, {1024, 39}, {512, 20}, {262144, 10000}, {1 << 20, 10000},
	} {
		if got := SharesToWeight(c.shares); got != c.weight {
			t.Errorf("SharesToWeight(%d) = %d, want %d", c.shares, got, c.weight)
		}
	}
}

func TestBlkioWeightToIOWeight(t *testing.T) {
	for _, c := range []struct {
		w    uint16
		want uint64
	}{{0, 0}, {10, 1}, {500, 4950}, {1000, 10000}} {
		if got := BlkioWeightToIOWeight(c.w); got != c.want {
			t.Errorf("BlkioWeightToIOWeight(%d) = %d, want %d", c.w, got, c.want)
		}
	}
}

func TestSwapToV2(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		swap, limit, want int64
		err               bool
	}{
		{0, -1, -1, false},         // unlimited memory, no swap value: unlimited swap
		{-1, 100 * mib, -1, false}, // unlimited swap
		{0, 100 * mib, 0, false},   // swap unset: leave alone
		{300 * mib, -1, 300 * mib, false},
		{300 * mib, 100 * mib, 200 * mib, false},
		{100 * mib, 100 * mib, 0, false}, // no swap at all
		{300 * mib, 0, 0, true},          // nothing to subtract from
		{50 * mib, 100 * mib, 0, true},   // memory+swap < memory
		{300 * mib, -5, 0, true},
	} {
		got, err := SwapToV2(c.swap, c.limit)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("SwapToV2(%d, %d) = %d, %v; want %d, err=%v", c.swap, c.limit, got, err, c.want, c.err)
		}
	}
}

func TestSwapFirst(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		cur  uint64
		swap int64
		want bool
	}{
		{64 * mib, 256 * mib, true},  // growing: memsw must grow first
		{256 * mib, 64 * mib, false}, // shrinking: limit first
		{64 * mib, -1, true},         // unlimited memsw can always go first
		{64 * mib, 64 * mib, false},
	} {
		if got := swapFirst(c.cur, c.swap); got != c.want {
			t.Errorf("swapFirst(%d, %d) = %v", c.cur, c.swap, got)
		}
	}
}

func TestPidsLimitValue(t *testing.T) {
	for in, want := range map[int64]string{-1: "max", -5: "max", 0: "1", 1: "1", 100: "100"} {
		if got := PidsLimitValue(in); got != want {
			t.Errorf("PidsLimitValue(%d) = %q, want %q", in, got, want)
		}
	}
}

// fakeCgroup makes a directory of regular files standing in for a cgroup.
func fakeCgroup(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func readBack(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSetMemoryV1Files(t *testing.T) {
	ptr := func(v int64) *int64 { return &v }
	// Swap accounting off: "no swap" and "unlimited" are fine, a real swap
	// limit is an error.
	dir := fakeCgroup(t, map[string]string{"memory.limit_in_bytes": "9223372036854771712"})
	if err := setMemoryV1(dir, &specs.LinuxMemory{Limit: ptr(100), Swap: ptr(100)}, true); err != nil {
		t.Fatal(err)
	}
	if got := readBack(t, dir, "memory.limit_in_bytes"); got != "100" {
		t.Errorf("limit = %q", got)
	}
	if err := setMemoryV1(dir, &specs.LinuxMemory{Limit: ptr(-1)}, true); err != nil {
		t.Fatal(err)
	}
	err := setMemoryV1(dir, &specs.LinuxMemory{Limit: ptr(100), Swap: ptr(200)}, true)
	if err == nil || !strings.Contains(err.Error(), "swap accounting") {
		t.Errorf("want swap accounting error, got %v", err)
	}

	dir = fakeCgroup(t, map[string]string{
		"memory.limit_in_bytes": "1000", "memory.memsw.limit_in_bytes": "1000",
		"memory.soft_limit_in_bytes": "0", "memory.swappiness": "60", "memory.oom_control": "0",
	})
	swappiness := uint64(10)
	disable := true
	mem := &specs.LinuxMemory{Limit: ptr(2000), Swap: ptr(4000), Reservation: ptr(500),
		Swappiness: &swappiness, DisableOOMKiller: &disable}
	//lint:ignore SA1019 checking that the deprecated field is ignored
	mem.Kernel = ptr(1)
	err = setMemoryV1(dir, mem, true)
	if err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string]string{
		"memory.limit_in_bytes": "2000", "memory.memsw.limit_in_bytes": "4000",
		"memory.soft_limit_in_bytes": "500", "memory.swappiness": "10", "memory.oom_control": "1",
	} {
		if got := readBack(t, dir, f); got != want {
			t.Errorf("%s = %q, want %q", f, got, want)
		}
	}
	if err := setMemoryV1(dir, &specs.LinuxMemory{Limit: ptr(2000), Swap: ptr(1000)}, false); err == nil {
		t.Error("want error for memory+swap < memory")
	}
	bad := uint64(101)
	if err := setMemoryV1(dir, &specs.LinuxMemory{Swappiness: &bad}, false); err == nil {
		t.Error("want error for swappiness 101")
	}
}

func TestV1MissingController(t *testing.T) {
	// check() runs before anything is created, so no root is needed.
	m := &v1Manager{paths: map[string]string{"devices": "/nonexistent/devices", "memory": "/nonexistent/memory"}}
	err := m.Create(&specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 1 << 21}}})
	if err == nil || err.Error() != "hugetlb limits requested but the hugetlb cgroup controller is not mounted" {
		t.Errorf("hugetlb: %v", err)
	}
	limit := int64(10)
	err = m.Create(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &limit}})
	if err == nil || !strings.Contains(err.Error(), "pids limit requested but the pids cgroup controller is not mounted") {
		t.Errorf("pids: %v", err)
	}
	// Kernel memory alone needs nothing (ignored, like runc).
	//lint:ignore SA1019 checking that the deprecated field is ignored
	if err := m.check(&specs.LinuxResources{Memory: &specs.LinuxMemory{Kernel: &limit}, CPU: &specs.LinuxCPU{}}); err != nil {
		t.Errorf("kernel memory: %v", err)
	}
	if err := m.Create(&specs.LinuxResources{Unified: map[string]string{"memory.max": "1"}}); err != ErrV1NoUnified {
		t.Errorf("unified on v1: %v", err)
	}
	noDev := &v1Manager{paths: map[string]string{"memory": "/nonexistent/memory"}}
	if err := noDev.Create(nil); err == nil || !strings.Contains(err.Error(), "devices") {
		t.Errorf("missing devices controller: %v", err)
	}
}

func TestValidateV2(t *testing.T) {
	rt := int64(1000)
	if err := validateV2(&specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimeRuntime: &rt}}); err == nil {
		t.Error("want error for realtime on v2")
	}
	for _, k := range []string{"../memory.max", "memory", "a/b.c", ""} {
		if err := validateV2(&specs.LinuxResources{Unified: map[string]string{k: "1"}}); err == nil {
			t.Errorf("unified key %q: want error", k)
		}
	}
	if err := validateV2(&specs.LinuxResources{Unified: map[string]string{"cgroup.max.depth": "3"}}); err != nil {
		t.Error(err)
	}
	if err := validateV2(&specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "3MB"}}}); err == nil {
		t.Error("want error for unsupported huge page size")
	}
	got := neededV2(&specs.LinuxResources{
		CPU:     &specs.LinuxCPU{Cpus: "0"},
		Pids:    &specs.LinuxPids{Limit: &rt},
		Unified: map[string]string{"memory.high": "1", "cgroup.max.depth": "2", "memory.low": "1"},
	})
	if strings.Join(got, ",") != "cpuset,pids,memory" {
		t.Errorf("neededV2 = %v", got)
	}
}
