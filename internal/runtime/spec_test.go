package runtime

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseSpecErrors(t *testing.T) {
	cases := []struct{ name, json, want string }{
		{"syntax", "{\n \"ociVersion\": \"1.0.0\",\n \"root\": {\"path\": \"rootfs\"\n}", "malformed JSON at line 4"},
		{"type", `{"ociVersion":"1.0.0","process":{"args":"sh"}}`, `field "process.args"`},
		{"no version", `{"root":{"path":"r"},"linux":{}}`, "ociVersion is missing"},
		{"no root", `{"ociVersion":"1.0.2","linux":{}}`, "root.path is missing"},
		{"bad ns", `{"ociVersion":"1.0.2","root":{"path":"r"},"linux":{"namespaces":[{"type":"bogus"}]}}`, `unknown namespace type "bogus"`},
		{"dup ns", `{"ociVersion":"1.0.2","root":{"path":"r"},"linux":{"namespaces":[{"type":"pid"},{"type":"pid"}]}}`, `listed twice`},
		{"hostname", `{"ociVersion":"1.0.2","root":{"path":"r"},"hostname":"h","linux":{}}`, "hostname requires a new uts namespace"},
		{"relative mount", `{"ociVersion":"1.0.2","root":{"path":"r"},"mounts":[{"destination":"tmp","type":"tmpfs"}],"linux":{}}`, "is not absolute"},
		{"sysctl", `{"ociVersion":"1.0.2","root":{"path":"r"},"linux":{"sysctl":{"kernel.panic":"1"}}}`, "not namespaced"},
		{"rlimit", `{"ociVersion":"1.0.2","root":{"path":"r"},"process":{"args":["sh"],"cwd":"/","rlimits":[{"type":"RLIMIT_BOGUS","soft":1,"hard":1}]},"linux":{}}`, "unknown rlimit type"},
		{"cwd", `{"ociVersion":"1.0.2","root":{"path":"r"},"process":{"args":["sh"],"cwd":"rel"},"linux":{}}`, "must be an absolute path"},
		{"trailing", `{"ociVersion":"1.0.2","root":{"path":"r"},"linux":{}} {}`, "after top-level value"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseSpec([]byte(c.json))
			if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
	if _, err := ParseSpec([]byte(`{"ociVersion":"1.0.2","root":{"path":"r"},"process":{"args":["sh"],"cwd":"/"},"linux":{"namespaces":[{"type":"uts"}]},"hostname":"x"}`)); err != nil {
		t.Fatal(err)
	}
}

func TestParseMountOptions(t *testing.T) {
	o := parseMountOptions([]string{"rbind", "ro", "nosuid", "rslave", "rnoexec", "size=64k", "mode=755", "rw", "noatime"})
	if o.flags&unix.MS_BIND == 0 || o.flags&unix.MS_REC == 0 || o.flags&unix.MS_NOSUID == 0 || o.flags&unix.MS_NOATIME == 0 {
		t.Fatalf("flags %#x", o.flags)
	}
	if o.flags&unix.MS_RDONLY != 0 || o.clear&unix.MS_RDONLY == 0 {
		t.Fatalf("rw after ro must clear ro: flags %#x clear %#x", o.flags, o.clear)
	}
	if o.propagation != unix.MS_SLAVE|unix.MS_REC || o.recAttrSet != unix.MOUNT_ATTR_NOEXEC {
		t.Fatalf("propagation %#x rec %#x", o.propagation, o.recAttrSet)
	}
	if o.dataString() != "size=64k,mode=755" {
		t.Fatalf("data %q", o.dataString())
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]unix.Signal{"9": unix.SIGKILL, "KILL": unix.SIGKILL, "sigterm": unix.SIGTERM, "SIGUSR1": unix.SIGUSR1, "RTMIN+2": 36} {
		got, err := ParseSignal(in)
		if err != nil || got != want {
			t.Errorf("%s: got %v %v", in, got, err)
		}
	}
	for _, bad := range []string{"0", "65", "SIGFOO", ""} {
		if _, err := ParseSignal(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestCompileInitProgram(t *testing.T) {
	s := DefaultSpec(false)
	s.Process.Terminal = false
	c := &compiler{spec: s, rootfs: "/nonexistent-rootfs", syncFD: 5, hostProc: 6, stateDir: 7, newMntNS: true}
	c.cgroupBinds = []cgroupBind{{name: "memory", hostDir: "/sys/fs/cgroup/memory/x"}, {name: "cpu,cpuacct", hostDir: "/sys/fs/cgroup/cpu,cpuacct/x"}}
	c.b = childBuilderForTest()
	pl, err := planProcess(s.Process, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	flags, hooks, err := c.compileInit(pl, CreateOpts{}, false)
	if err != nil {
		t.Fatal(err)
	}
	if flags&unix.CLONE_NEWPID == 0 || flags&unix.CLONE_NEWNS == 0 || hooks {
		t.Fatalf("flags %#x hooks %v", flags, hooks)
	}
	descs := strings.Join(c.b.Descriptions(), "\n")
	for _, want := range []string{"mount proc on /proc", "mount sysfs on /sys", "create device /dev/null", "mask /proc/kcore",
		"make /proc/sys read-only", "pivot_root", "make rootfs read-only", "set RLIMIT_NOFILE", "drop CAP_SYS_ADMIN from the bounding set",
		"set no_new_privs", "wait for start (open and write exec fifo)", "exec /usr/local/sbin/sh", "exec /bin/sh",
		"check that / is inside the container", "bind /sys/fs/cgroup/memory/x on /sys/fs/cgroup/memory", "symlink /sys/fs/cgroup/cpu"} {
		if !strings.Contains(descs, want) {
			t.Errorf("program lacks %q", want)
		}
	}
	// ordering: mounts before pivot, pivot before identity, ready before exec
	idx := func(s string) int { return strings.Index(descs, s) }
	if !(idx("mount proc") < idx("pivot_root") && idx("pivot_root") < idx("set uid") && idx("report ready") < strings.LastIndex(descs, "exec /bin/sh")) {
		t.Errorf("ops out of order:\n%s", descs)
	}
}

func TestProcMountsRefused(t *testing.T) {
	s := DefaultSpec(false)
	c := &compiler{spec: s, rootfs: "/r", newMntNS: true}
	c.b = childBuilderForTest()
	if err := c.mount(specMount("/proc/sys", "sysfs")); err == nil || !strings.Contains(err.Error(), "/proc subpaths") {
		t.Fatalf("sysfs over /proc/sys: %v", err)
	}
	if err := c.bindMount(specMount("/proc/self", "bind"), parseMountOptions([]string{"bind"})); err == nil {
		t.Fatalf("bind over /proc/self must be refused")
	}
}
