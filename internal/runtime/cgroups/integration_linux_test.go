package cgroups

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// These tests create real cgroups, always below the test process's own
// cgroups (relative paths) and always remove them, even on failure.

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

func uniqueName(t *testing.T) string {
	return fmt.Sprintf("berth-cgtest-%d-%d", os.Getpid(), time.Now().UnixNano())
}

func i64p(v int64) *int64     { return &v }
func u64p(v uint64) *uint64   { return &v }
func strTrim(b []byte) string { return strings.TrimSpace(string(b)) }

func readTrim(t *testing.T, dir, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return strTrim(b)
}

func expectFile(t *testing.T, dir, file, want string) {
	t.Helper()
	if got := readTrim(t, dir, file); got != want {
		t.Errorf("%s/%s = %q, want %q", dir, file, got, want)
	}
}

// cleanupManager destroys m at the end of the test and, as a safety net,
// removes whatever is left of its directories and of parent (a directory
// the test created to hold them).
func cleanupManager(t *testing.T, m Manager, parents []string) {
	paths := m.Paths()
	t.Cleanup(func() {
		if err := m.Destroy(); err != nil {
			t.Errorf("cleanup Destroy: %v", err)
		}
		for _, d := range paths {
			_ = removeCgroup(d)
		}
		for _, p := range parents {
			_ = unix.Rmdir(p)
		}
	})
}

// startProcess starts cmd and makes sure it is killed and reaped.
func startProcess(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
}

func killWait(cmd *exec.Cmd) {
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
}

// blockDevice returns major:minor of a whole disk (for blkio throttles).
func blockDevice() (int64, int64, bool) {
	ents, _ := os.ReadDir("/sys/block")
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, "loop") || strings.HasPrefix(n, "ram") || strings.HasPrefix(n, "zram") {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/sys/block", n, "dev"))
		if err != nil {
			continue
		}
		maj, min, ok := strings.Cut(strTrim(b), ":")
		if !ok {
			continue
		}
		a, err1 := strconv.ParseInt(maj, 10, 64)
		c, err2 := strconv.ParseInt(min, 10, 64)
		if err1 == nil && err2 == nil {
			return a, c, true
		}
	}
	return 0, 0, false
}

func assertGone(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still exists after Destroy (stat: %v)", d, err)
		}
	}
}

// newTestV1 makes a v1 (or hybrid) manager below the test's own cgroups,
// cleaned up at the end of the test, and returns it with its paths and their
// parent directories.
func newTestV1(t *testing.T, id string) (Manager, map[string]string, []string) {
	t.Helper()
	requireRoot(t)
	if DetectMode() == Unified {
		t.Skip("host is cgroup v2 only")
	}
	m, err := New(uniqueName(t)+"/ctr", id)
	if err != nil {
		t.Fatal(err)
	}
	paths := m.Paths()
	var parents []string
	for _, d := range paths {
		parents = append(parents, filepath.Dir(d))
	}
	cleanupManager(t, m, parents)
	return m, paths, parents
}

func TestIntegrationV1(t *testing.T) {
	m, paths, parents := newTestV1(t, "ignored")
	if m.Version() != 1 || paths["memory"] == "" || paths["devices"] == "" {
		t.Fatalf("unexpected manager: v%d %v", m.Version(), paths)
	}
	if DetectMode() == Hybrid && paths[""] == "" {
		t.Fatalf("hybrid host but no unified path: %v", paths)
	}

	const mib = 1 << 20
	devices := append([]specs.LinuxDeviceCgroup{rule(false, "a", wildcard, wildcard, "rwm")}, defaultRules()...)
	res := &specs.LinuxResources{
		Devices: devices,
		Memory:  &specs.LinuxMemory{Limit: i64p(64 * mib), Swap: i64p(128 * mib), Reservation: i64p(32 * mib), Swappiness: u64p(20)},
		CPU:     &specs.LinuxCPU{Shares: u64p(512), Quota: i64p(50000), Period: u64p(100000), Cpus: "0", Mems: "0"},
		Pids:    &specs.LinuxPids{Limit: i64p(32)},
	}
	major, minor, haveDisk := blockDevice()
	if haveDisk && paths["blkio"] != "" {
		res.BlockIO = &specs.LinuxBlockIO{ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{
			{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: major, Minor: minor}, Rate: mib},
		}}
	}
	if err := m.Create(res); err != nil {
		t.Fatal(err)
	}
	for _, d := range uniqueDirs(paths) {
		if _, err := os.Stat(d); err != nil {
			t.Fatalf("Create did not make %s: %v", d, err)
		}
	}
	mem, cpu, cpuset := paths["memory"], paths["cpu"], paths["cpuset"]
	expectFile(t, mem, "memory.limit_in_bytes", strconv.Itoa(64*mib))
	if exists(filepath.Join(mem, "memory.memsw.limit_in_bytes")) {
		expectFile(t, mem, "memory.memsw.limit_in_bytes", strconv.Itoa(128*mib))
	}
	expectFile(t, mem, "memory.soft_limit_in_bytes", strconv.Itoa(32*mib))
	expectFile(t, mem, "memory.swappiness", "20")
	expectFile(t, cpu, "cpu.shares", "512")
	expectFile(t, cpu, "cpu.cfs_quota_us", "50000")
	expectFile(t, cpu, "cpu.cfs_period_us", "100000")
	expectFile(t, cpuset, "cpuset.cpus", "0")
	expectFile(t, cpuset, "cpuset.mems", "0")
	expectFile(t, paths["pids"], "pids.max", "32")
	if res.BlockIO != nil {
		expectFile(t, paths["blkio"], "blkio.throttle.read_bps_device", fmt.Sprintf("%d:%d %d", major, minor, mib))
	}
	list := readTrim(t, paths["devices"], "devices.list")
	if strings.Contains(list, "a *:*") || !strings.Contains(list, "c 1:3 rwm") || !strings.Contains(list, "c 136:* rwm") {
		t.Errorf("devices.list:\n%s", list)
	}

	cmd := exec.Command("sleep", "1000")
	startProcess(t, cmd)
	pid := cmd.Process.Pid
	if err := m.Apply(pid); err != nil {
		t.Fatal(err)
	}
	for key, d := range paths {
		procs := readTrim(t, d, "cgroup.procs")
		if !slices.Contains(strings.Fields(procs), strconv.Itoa(pid)) {
			t.Errorf("pid %d not in %s (%q) cgroup.procs: %q", pid, d, key, procs)
		}
	}
	if pids, err := m.Pids(); err != nil || !slices.Equal(pids, []int{pid}) {
		t.Errorf("Pids = %v, %v; want [%d]", pids, err, pid)
	}

	if err := m.Freeze(); err != nil {
		t.Fatal(err)
	}
	if frozen, err := m.Frozen(); err != nil || !frozen {
		t.Errorf("Frozen after Freeze = %v, %v", frozen, err)
	}
	expectFile(t, paths["freezer"], "freezer.state", "FROZEN")
	if err := m.Thaw(); err != nil {
		t.Fatal(err)
	}
	if frozen, err := m.Frozen(); err != nil || frozen {
		t.Errorf("Frozen after Thaw = %v, %v", frozen, err)
	}

	st, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Pids.Current != 1 || st.Pids.Limit != 32 || st.Memory.Usage.Limit != 64*mib || len(st.Memory.Raw) == 0 {
		t.Errorf("stats: pids %+v, memory usage %+v, raw %d keys", st.Pids, st.Memory.Usage, len(st.Memory.Raw))
	}
	if len(st.CPUSet.CPUs) != 1 || len(st.CPU.Usage.Percpu) == 0 {
		t.Errorf("stats: cpuset %+v, cpu %+v", st.CPUSet, st.CPU)
	}
	if b, err := json.Marshal(st); err != nil || !bytes.Contains(b, []byte(`"pids":{"current":1,"limit":32}`)) {
		t.Errorf("stats JSON %s, %v", b, err)
	}
	if n, err := m.OOMKillCount(); err != nil || n != 0 {
		t.Errorf("OOMKillCount = %d, %v", n, err)
	}

	// Update: raise (memsw must go first), then lower (limit first).
	if err := m.Set(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64p(256 * mib), Swap: i64p(512 * mib)}}); err != nil {
		t.Fatal(err)
	}
	expectFile(t, mem, "memory.limit_in_bytes", strconv.Itoa(256*mib))
	if err := m.Set(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64p(16 * mib), Swap: i64p(32 * mib)}}); err != nil {
		t.Fatal(err)
	}
	expectFile(t, mem, "memory.limit_in_bytes", strconv.Itoa(16*mib))
	if exists(filepath.Join(mem, "memory.memsw.limit_in_bytes")) {
		expectFile(t, mem, "memory.memsw.limit_in_bytes", strconv.Itoa(32*mib))
	}
	// nil fields are left alone; Devices replaces the policy.
	if err := m.Set(&specs.LinuxResources{
		Pids:    &specs.LinuxPids{Limit: i64p(-1)},
		CPU:     &specs.LinuxCPU{Shares: u64p(1024)},
		Devices: []specs.LinuxDeviceCgroup{rule(true, "c", 1, 9, "rwm")},
	}); err != nil {
		t.Fatal(err)
	}
	expectFile(t, paths["pids"], "pids.max", "max")
	expectFile(t, cpu, "cpu.shares", "1024")
	expectFile(t, cpu, "cpu.cfs_quota_us", "50000")
	expectFile(t, mem, "memory.limit_in_bytes", strconv.Itoa(16*mib))
	expectFile(t, paths["devices"], "devices.list", "c 1:9 rwm")
	if err := m.Set(&specs.LinuxResources{Unified: map[string]string{"pids.max": "1"}}); err != ErrV1NoUnified {
		t.Errorf("Set unified on v1: %v", err)
	}

	// A manager rebuilt from the saved paths sees the same cgroup.
	loaded, err := Load(paths)
	if err != nil {
		t.Fatal(err)
	}
	if pids, err := loaded.Pids(); err != nil || !slices.Equal(pids, []int{pid}) {
		t.Errorf("loaded Pids = %v, %v", pids, err)
	}

	killWait(cmd)
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, uniqueDirs(paths)...)
	assertGone(t, parents...) // created by Create, so removed too
	if err := m.Destroy(); err != nil {
		t.Errorf("second Destroy: %v", err)
	}
	if err := loaded.Destroy(); err != nil {
		t.Errorf("Destroy of a loaded manager after removal: %v", err)
	}
}

// A failed Create leaves nothing behind.
func TestIntegrationV1CreateRollback(t *testing.T) {
	m, paths, parents := newTestV1(t, "x")
	err := m.Create(&specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: u64p(1 << 30)}})
	if err == nil || !strings.Contains(err.Error(), "maximum allowed cpu-shares") {
		t.Fatalf("Create with too many shares: %v", err)
	}
	assertGone(t, uniqueDirs(paths)...)
	assertGone(t, parents...)
}

// v2 manager on whatever cgroup2 mount the host has (the hybrid unified
// hierarchy on v1 hosts), below the test's own v2 cgroup.
func newTestV2(t *testing.T) (*v2Manager, *host) {
	t.Helper()
	h, err := probeHost(DetectMode())
	if err != nil {
		t.Fatal(err)
	}
	if h.v2 == nil {
		t.Skip("no cgroup2 hierarchy mounted")
	}
	h2 := &host{mode: Unified, v2: h.v2, own: map[string]string{"": h.own[""]}}
	name := uniqueName(t)
	m, err := newManager(h2, name+"/ctr", "x")
	if err != nil {
		t.Fatal(err)
	}
	vm := m.(*v2Manager)
	cleanupManager(t, vm, []string{filepath.Dir(vm.dir)})
	return vm, h2
}

func attachedPrograms(t *testing.T, dir string) int {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	q, err := link.QueryPrograms(link.QueryOptions{Target: int(f.Fd()), Attach: ebpf.AttachCGroupDevice})
	if err != nil {
		t.Fatal(err)
	}
	return len(q.Programs)
}

// runIn runs argv directly inside the cgroup (clone3 CLONE_INTO_CGROUP).
func runIn(t *testing.T, m Manager, argv ...string) (string, error) {
	t.Helper()
	fd, err := m.OpenDirFD()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestIntegrationV2DeviceFilter(t *testing.T) {
	requireRoot(t)
	m, _ := newTestV2(t)
	res := &specs.LinuxResources{
		Devices: []specs.LinuxDeviceCgroup{
			rule(true, "a", wildcard, wildcard, "rwm"),
			rule(false, "c", 1, 3, "r"), // no reading /dev/null
		},
		Unified: map[string]string{"cgroup.max.descendants": "3"},
	}
	if err := m.Create(res); err != nil {
		t.Fatal(err)
	}
	expectFile(t, m.dir, "cgroup.max.descendants", "3")
	if n := attachedPrograms(t, m.dir); n != 1 {
		t.Errorf("%d device programs attached, want 1", n)
	}

	// Join with Apply: a shell that waits for us, then tries the devices.
	cmd := exec.Command("sh", "-c", `read _; head -c1 /dev/null; echo "null=$?"; head -c1 /dev/zero | wc -c`)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	startProcess(t, cmd)
	if err := m.Apply(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if pids, err := m.Pids(); err != nil || !slices.Contains(pids, cmd.Process.Pid) {
		t.Errorf("Pids = %v, %v", pids, err)
	}
	stdin.Write([]byte("\n"))
	stdin.Close()
	_ = cmd.Wait()
	got := out.String()
	if !strings.Contains(got, "Operation not permitted") || !strings.Contains(got, "null=1") || !strings.Contains(got, "\n1\n") {
		t.Errorf("inside the cgroup, want /dev/null read denied (EPERM) and /dev/zero readable; got:\n%s", got)
	}

	// Join with CLONE_INTO_CGROUP.
	if out, err := runIn(t, m, "cat", "/dev/null"); err == nil || !strings.Contains(out, "Operation not permitted") {
		t.Errorf("cat /dev/null in cgroup: %v %q", err, out)
	}
	if out, err := runIn(t, m, "sh", "-c", "head -c1 /dev/zero | wc -c; echo x > /dev/null"); err != nil || strTrim([]byte(out)) != "1" {
		t.Errorf("/dev/zero read and /dev/null write in cgroup: %v %q", err, out)
	}

	// Freeze / thaw a process inside.
	sleeper := exec.Command("sleep", "1000")
	fd, err := m.OpenDirFD()
	if err != nil {
		t.Fatal(err)
	}
	sleeper.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	startProcess(t, sleeper)
	unix.Close(fd)
	if err := m.Freeze(); err != nil {
		t.Fatal(err)
	}
	if frozen, err := m.Frozen(); err != nil || !frozen {
		t.Errorf("Frozen after Freeze = %v, %v", frozen, err)
	}
	if err := m.Thaw(); err != nil {
		t.Fatal(err)
	}
	if frozen, err := m.Frozen(); err != nil || frozen {
		t.Errorf("Frozen after Thaw = %v, %v", frozen, err)
	}
	st, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Pids.Current != 1 {
		t.Errorf("stats pids %+v", st.Pids)
	}

	// Replace the filter: runc's default list (deny all + defaults).
	if err := m.Set(&specs.LinuxResources{Devices: append([]specs.LinuxDeviceCgroup{rule(false, "a", wildcard, wildcard, "rwm")}, defaultRules()...)}); err != nil {
		t.Fatal(err)
	}
	if n := attachedPrograms(t, m.dir); n != 1 {
		t.Errorf("%d device programs attached after Set, want 1", n)
	}
	if out, err := runIn(t, m, "cat", "/dev/null"); err != nil {
		t.Errorf("cat /dev/null with default rules: %v %q", err, out)
	}
	if maj, min, ok := blockDevice(); ok {
		dev := ""
		ents, _ := os.ReadDir("/dev")
		for _, e := range ents {
			var s unix.Stat_t
			if unix.Stat("/dev/"+e.Name(), &s) == nil && s.Mode&unix.S_IFMT == unix.S_IFBLK &&
				int64(unix.Major(s.Rdev)) == maj && int64(unix.Minor(s.Rdev)) == min {
				dev = "/dev/" + e.Name()
				break
			}
		}
		if dev != "" {
			if out, err := runIn(t, m, "head", "-c1", dev); err == nil || !strings.Contains(out, "Operation not permitted") {
				t.Errorf("reading %s with default rules: %v %q", dev, err, out)
			}
		}
	}

	// A controller the hierarchy does not offer gives a clear error.
	if avail, _ := readFile(mountPoint(m.dir, "", true), "cgroup.controllers"); !fieldSet(avail)["pids"] {
		err := m.Set(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64p(10)}})
		if err == nil || !strings.Contains(err.Error(), "pids limit requested but the pids controller is not available") {
			t.Errorf("pids limit without the pids controller: %v", err)
		}
	}

	killWait(sleeper)
	dirs := []string{m.dir, filepath.Dir(m.dir)}
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, dirs...)
}

// Hybrid hosts whose v1 mounts lack hugetlb but whose cgroup2 offers it:
// hugetlb limits go to the unified directory.
func TestIntegrationHybridHugetlb(t *testing.T) {
	requireRoot(t)
	if DetectMode() != Hybrid {
		t.Skip("not a hybrid host")
	}
	h, err := probeHost(Hybrid)
	if err != nil {
		t.Fatal(err)
	}
	top := h.v2.Mountpoint
	avail, _ := readFile(top, "cgroup.controllers")
	sizes, _ := hugePageSizes()
	if _, ok := h.v1["hugetlb"]; ok || !fieldSet(avail)["hugetlb"] || h.own[""] != "/" || !slices.Contains(sizes, "2MB") {
		t.Skip("needs hugetlb in cgroup2 only, our v2 cgroup at its root, and 2MB pages")
	}
	// Enabling hugetlb at the cgroup2 root is the one change outside our
	// own directories; undo it if it was not enabled before.
	before, err := readFile(top, "cgroup.subtree_control")
	if err != nil {
		t.Fatal(err)
	}
	if !fieldSet(before)["hugetlb"] {
		t.Cleanup(func() {
			if err := writeFile(top, "cgroup.subtree_control", "-hugetlb"); err != nil {
				t.Errorf("restore %s/cgroup.subtree_control: %v", top, err)
			}
		})
	}
	m, err := newManager(h, uniqueName(t)+"/ctr", "x")
	if err != nil {
		t.Fatal(err)
	}
	paths := m.Paths()
	cleanupManager(t, m, []string{filepath.Dir(paths[""]), filepath.Dir(paths["memory"]), filepath.Dir(paths["pids"])})
	const limit = 4 << 20
	if err := m.Create(&specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: limit}}}); err != nil {
		t.Fatal(err)
	}
	expectFile(t, paths[""], "hugetlb.2MB.max", strconv.Itoa(limit))
	if exists(filepath.Join(paths[""], "hugetlb.2MB.rsvd.max")) {
		expectFile(t, paths[""], "hugetlb.2MB.rsvd.max", strconv.Itoa(limit))
	}
	st, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Hugetlb["2MB"]; !ok {
		t.Errorf("no 2MB hugetlb stats: %+v", st.Hugetlb)
	}
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, paths[""], filepath.Dir(paths[""]))
}
