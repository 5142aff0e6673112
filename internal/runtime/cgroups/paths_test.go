package cgroups

import (
	"reflect"
	"strings"
	"testing"
)

// Text as found on a hybrid host (this project's development VM).
const hybridProcCgroup = `9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/6748b3e6
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
`

const hybridMountinfo = `22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`

// A systemd-style legacy host with co-mounted controllers and a container
// whose cgroup mounts have a non-"/" root.
const legacyProcCgroup = `12:net_cls,net_prio:/docker/abc
11:cpu,cpuacct:/docker/abc
10:memory:/docker/abc
9:devices:/docker/abc
1:name=systemd:/docker/abc
`

const legacyMountinfo = `100 90 0:40 / / rw - overlay overlay rw
110 100 0:50 /docker/abc /sys/fs/cgroup/net_cls,net_prio ro,nosuid master:1 - cgroup cgroup ro,net_cls,net_prio
111 100 0:51 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup ro,cpu,cpuacct
112 100 0:52 /docker/abc /sys/fs/cgroup/memory ro - cgroup cgroup ro,memory
113 100 0:53 /docker/abc /sys/fs/cgroup/devices ro - cgroup cgroup ro,devices
114 100 0:54 /docker/abc /sys/fs/cgroup/systemd ro - cgroup cgroup ro,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd
115 100 0:53 / /mnt/other\040devices rw - cgroup cgroup rw,devices
`

const unifiedProcCgroup = "0::/user.slice/user-1000.slice/session-3.scope\n"

const unifiedMountinfo = `25 1 8:1 / / rw - ext4 /dev/sda1 rw
30 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`

func TestParseProcCgroup(t *testing.T) {
	got, err := parseProcCgroup(legacyProcCgroup)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"net_cls": "/docker/abc", "net_prio": "/docker/abc", "cpu": "/docker/abc", "cpuacct": "/docker/abc",
		"memory": "/docker/abc", "devices": "/docker/abc", "name=systemd": "/docker/abc",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	got, err = parseProcCgroup(hybridProcCgroup)
	if err != nil {
		t.Fatal(err)
	}
	if got[""] != "/" || got["memory"] != "/process_api/6748b3e6" || got["name=systemd"] != "/" {
		t.Errorf("hybrid: got %v", got)
	}
	// Paths may contain ':'; a deleted cgroup has a suffix.
	got, err = parseProcCgroup("0::/a:b/c (deleted)\n")
	if err != nil || got[""] != "/a:b/c" {
		t.Errorf("got %v, %v", got, err)
	}
	if _, err := parseProcCgroup("garbage\n"); err == nil {
		t.Error("want error for a malformed line")
	}
}

func TestParseMountinfo(t *testing.T) {
	ms, err := parseMountinfo(legacyMountinfo)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 6 {
		t.Fatalf("got %d mounts, want 6: %+v", len(ms), ms)
	}
	if m := ms[1]; m.Mountpoint != "/sys/fs/cgroup/cpu,cpuacct" || m.Root != "/docker/abc" ||
		!reflect.DeepEqual(m.Controllers, []string{"cpu", "cpuacct"}) || m.V2 {
		t.Errorf("cpu mount: %+v", m)
	}
	if m := ms[4]; !reflect.DeepEqual(m.Controllers, []string{"name=systemd"}) {
		t.Errorf("systemd mount controllers: %v", m.Controllers)
	}
	if m := ms[5]; m.Mountpoint != "/mnt/other devices" {
		t.Errorf("octal escape not decoded: %q", m.Mountpoint)
	}
	ms, err = parseMountinfo(hybridMountinfo)
	if err != nil {
		t.Fatal(err)
	}
	if last := ms[len(ms)-1]; !last.V2 || last.Mountpoint != "/sys/fs/cgroup/unified" {
		t.Errorf("cgroup2 mount: %+v", last)
	}
}

func mustHost(t *testing.T, mode Mode, cg, mi string) *host {
	t.Helper()
	h, err := newHost(mode, cg, mi)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestResolveHybrid(t *testing.T) {
	h := mustHost(t, Hybrid, hybridProcCgroup, hybridMountinfo)

	paths, mounts, err := h.resolve("", "ctr1")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"cpu":          "/sys/fs/cgroup/cpu/ctr1",
		"cpuacct":      "/sys/fs/cgroup/cpuacct/ctr1",
		"cpuset":       "/sys/fs/cgroup/cpuset/ctr1",
		"memory":       "/sys/fs/cgroup/memory/process_api/6748b3e6/ctr1",
		"devices":      "/sys/fs/cgroup/devices/ctr1",
		"freezer":      "/sys/fs/cgroup/freezer/ctr1",
		"blkio":        "/sys/fs/cgroup/blkio/ctr1",
		"pids":         "/sys/fs/cgroup/pids/ctr1",
		"name=systemd": "/sys/fs/cgroup/systemd/ctr1",
		"":             "/sys/fs/cgroup/unified/ctr1",
	}
	if !reflect.DeepEqual(paths, want) {
		t.Errorf("default path:\n got %v\nwant %v", paths, want)
	}
	if mounts["memory"] != "/sys/fs/cgroup/memory" || mounts[""] != "/sys/fs/cgroup/unified" {
		t.Errorf("mounts: %v", mounts)
	}

	// Relative: nested under our own cgroup, cannot climb out of it.
	for _, p := range []string{"berth/ctr1", "../../berth/ctr1", "./berth//ctr1/"} {
		paths, _, err = h.resolve(p, "ignored")
		if err != nil {
			t.Fatal(err)
		}
		if paths["memory"] != "/sys/fs/cgroup/memory/process_api/6748b3e6/berth/ctr1" ||
			paths["pids"] != "/sys/fs/cgroup/pids/berth/ctr1" || paths[""] != "/sys/fs/cgroup/unified/berth/ctr1" {
			t.Errorf("%q: %v", p, paths)
		}
	}

	// Absolute: from the hierarchy root.
	paths, _, err = h.resolve("/machine/ctr1", "x")
	if err != nil {
		t.Fatal(err)
	}
	if paths["memory"] != "/sys/fs/cgroup/memory/machine/ctr1" || paths[""] != "/sys/fs/cgroup/unified/machine/ctr1" {
		t.Errorf("absolute: %v", paths)
	}
	paths, _, err = h.resolve("/a/../../b", "x")
	if err != nil || paths["cpu"] != "/sys/fs/cgroup/cpu/b" {
		t.Errorf("absolute with dots: %v %v", paths, err)
	}

	for _, bad := range []struct{ path, id string }{
		{"/", "x"},                   // hierarchy root
		{".", "x"},                   // our own cgroup
		{"", ""},                     // no id
		{"", "a/b"},                  // id with slash
		{"system.slice:berth:x", ""}, // systemd driver syntax
	} {
		if _, _, err := h.resolve(bad.path, bad.id); err == nil {
			t.Errorf("resolve(%q, %q): want error", bad.path, bad.id)
		}
	}
}

func TestResolveLegacyNonRootMount(t *testing.T) {
	h := mustHost(t, Legacy, legacyProcCgroup, legacyMountinfo)
	paths, _, err := h.resolve("sub", "x")
	if err != nil {
		t.Fatal(err)
	}
	// The mount root is /docker/abc and so is our cgroup: the container
	// goes right below the mount point. Co-mounted controllers share it.
	want := map[string]string{
		"cpu":          "/sys/fs/cgroup/cpu,cpuacct/sub",
		"cpuacct":      "/sys/fs/cgroup/cpu,cpuacct/sub",
		"memory":       "/sys/fs/cgroup/memory/sub",
		"devices":      "/sys/fs/cgroup/devices/sub",
		"net_cls":      "/sys/fs/cgroup/net_cls,net_prio/sub",
		"net_prio":     "/sys/fs/cgroup/net_cls,net_prio/sub",
		"name=systemd": "/sys/fs/cgroup/systemd/sub",
	}
	if !reflect.DeepEqual(paths, want) {
		t.Errorf("got %v\nwant %v", paths, want)
	}
	if got := uniqueDirs(paths); len(got) != 5 {
		t.Errorf("uniqueDirs: %v", got)
	}
	// Our cgroup outside the mount root is an error, not a wrong path.
	h.own["memory"] = "/elsewhere"
	if _, _, err := h.resolve("sub", "x"); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Errorf("want outside-the-mount error, got %v", err)
	}
}

func TestResolveUnified(t *testing.T) {
	h := mustHost(t, Unified, unifiedProcCgroup, unifiedMountinfo)
	paths, mounts, err := h.resolve("", "c1")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"": "/sys/fs/cgroup/user.slice/user-1000.slice/session-3.scope/c1"}
	if !reflect.DeepEqual(paths, want) || mounts[""] != "/sys/fs/cgroup" {
		t.Errorf("got %v %v", paths, mounts)
	}
	m, err := newManager(h, "/berth/c1", "c1")
	if err != nil {
		t.Fatal(err)
	}
	if m.Version() != 2 || m.Paths()[""] != "/sys/fs/cgroup/berth/c1" {
		t.Errorf("manager: v%d %v", m.Version(), m.Paths())
	}
	if _, err := newHost(Unified, unifiedProcCgroup, hybridMountinfo); err == nil {
		t.Error("want error: no cgroup2 mount at /sys/fs/cgroup")
	}
}

func TestLoad(t *testing.T) {
	m, err := Load(map[string]string{"": "/sys/fs/cgroup/x"})
	if err != nil || m.Version() != 2 {
		t.Fatalf("v2 load: %v %v", m, err)
	}
	paths := map[string]string{"memory": "/sys/fs/cgroup/memory/x", "": "/sys/fs/cgroup/unified/x"}
	m, err = Load(paths)
	if err != nil || m.Version() != 1 || !reflect.DeepEqual(m.Paths(), paths) {
		t.Fatalf("hybrid load: %v %v", m, err)
	}
	for _, bad := range []map[string]string{nil, {"memory": "relative"}, {"memory": "/a/../b"}, {"": "/"}} {
		if _, err := Load(bad); err == nil {
			t.Errorf("Load(%v): want error", bad)
		}
	}
	if _, err := m.OpenDirFD(); err != ErrNotUnified {
		t.Errorf("OpenDirFD on v1: %v", err)
	}
}
