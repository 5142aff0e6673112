package oci_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"

	"berth/internal/oci"
	"berth/internal/runtime/caps"
	"berth/test/bundle"
)

// statusScript prints the capability, seccomp and no_new_privs lines of the shell's status.
const statusScript = `grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|Seccomp|NoNewPrivs):' /proc/self/status`

func capMask(names []string) string {
	bits, unknown := caps.Parse(names)
	if len(unknown) > 0 {
		panic(fmt.Sprint("unknown capabilities ", unknown))
	}
	return fmt.Sprintf("%016x", bits)
}

func TestDefaultCapabilitiesAndSeccomp(t *testing.T) {
	out := newCtr(t, statusScript).runOK()
	want := capMask(caps.DockerDefault())
	for field, v := range map[string]string{"CapEff": want, "CapPrm": want, "CapBnd": want, "CapInh": "0000000000000000", "CapAmb": "0000000000000000", "Seccomp": "2", "NoNewPrivs": "0"} {
		if got := statusField(out, field); got != v {
			t.Errorf("%s = %q, want %q\n%s", field, got, v, out)
		}
	}
}

func TestCapDropAllAndAdd(t *testing.T) {
	t.Run("drop-all", func(t *testing.T) {
		c := newCtr(t, statusScript)
		c.in.HostConfig.CapDrop = []string{"ALL"}
		out := c.runOK()
		if got := statusField(out, "CapEff"); got != "0000000000000000" || statusField(out, "CapBnd") != got {
			t.Errorf("cap-drop ALL:\n%s", out)
		}
	})
	t.Run("drop-all-add-one", func(t *testing.T) {
		c := newCtr(t, statusScript)
		c.in.HostConfig.CapDrop = []string{"all"}
		c.in.HostConfig.CapAdd = []string{"net_admin"}
		out := c.runOK()
		if got, want := statusField(out, "CapEff"), capMask([]string{"CAP_NET_ADMIN"}); got != want {
			t.Errorf("CapEff %s, want %s", got, want)
		}
	})
	t.Run("add-drop", func(t *testing.T) {
		c := newCtr(t, statusScript)
		c.in.HostConfig.CapAdd = []string{"SYS_PTRACE"}
		c.in.HostConfig.CapDrop = []string{"cap_chown"}
		out := c.runOK()
		want, _ := oci.Capabilities([]string{"SYS_PTRACE"}, []string{"cap_chown"}, false)
		if got := statusField(out, "CapEff"); got != capMask(want) {
			t.Errorf("CapEff %s, want %s", got, capMask(want))
		}
	})
}

func TestPrivileged(t *testing.T) {
	c := newCtr(t, statusScript+`
awk '$5 == "/sys" || $5 == "/sys/fs/cgroup" { split($6, o, ","); print $5, o[1] }' /proc/self/mountinfo
awk '$5 == "/proc/kcore" { print "masked" }' /proc/self/mountinfo
[ -c /dev/kmsg ] && echo kmsg
touch /sys/fs/cgroup/x 2>/dev/null; echo done`)
	c.in.HostConfig.Privileged = true
	out := c.runOK()
	privCaps, err := oci.Capabilities(nil, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	// every capability of the kernel that the test (the daemon) has in its own bounding set
	all := capMask(privCaps)
	if got := statusField(out, "CapEff"); got != all || statusField(out, "CapBnd") != all {
		t.Errorf("CapEff %s, want %s", got, all)
	}
	if statusField(out, "Seccomp") != "0" {
		t.Errorf("privileged container has a seccomp filter:\n%s", out)
	}
	if !strings.Contains(out, "/sys rw\n") {
		t.Errorf("/sys not writable:\n%s", out)
	}
	if strings.Contains(out, "masked") {
		t.Errorf("masked paths in a privileged container:\n%s", out)
	}
	if _, err := os.Stat("/dev/kmsg"); err == nil && !strings.Contains(out, "kmsg") {
		t.Errorf("host device /dev/kmsg missing:\n%s", out)
	}
}

func TestSeccompProfiles(t *testing.T) {
	t.Run("unconfined", func(t *testing.T) {
		c := newCtr(t, statusScript)
		c.in.HostConfig.SecurityOpt = []string{"seccomp=unconfined"}
		if got := statusField(c.runOK(), "Seccomp"); got != "0" {
			t.Errorf("Seccomp %s", got)
		}
	})
	t.Run("custom-json", func(t *testing.T) {
		c := newCtr(t, statusScript+"; mkdir /tmp/d 2>/dev/null && echo made || echo denied")
		c.in.HostConfig.SecurityOpt = []string{`seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}`}
		out := c.runOK()
		if statusField(out, "Seccomp") != "2" || !strings.Contains(out, "denied") {
			t.Errorf("custom profile not applied:\n%s", out)
		}
	})
	t.Run("default-denies-unshare", func(t *testing.T) {
		c := newCtr(t, "unshare -U true 2>/dev/null && echo allowed || echo denied")
		if out := c.runOK(); out != "denied\n" {
			t.Errorf("unshare in the default profile: %q", out)
		}
	})
}

func TestNoNewPrivileges(t *testing.T) {
	c := newCtr(t, statusScript)
	c.in.HostConfig.SecurityOpt = []string{"no-new-privileges"}
	if got := statusField(c.runOK(), "NoNewPrivs"); got != "1" {
		t.Errorf("NoNewPrivs %s", got)
	}
	c = newCtr(t, statusScript)
	c.in.NoNewPrivileges = true // the daemon's default
	c.in.HostConfig.SecurityOpt = []string{"no-new-privileges=false"}
	if got := statusField(c.runOK(), "NoNewPrivs"); got != "0" {
		t.Errorf("NoNewPrivs %s with no-new-privileges=false", got)
	}
}

func TestMaskedAndReadonlyPaths(t *testing.T) {
	var script, want strings.Builder
	for _, p := range []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/interrupts"} {
		if _, err := os.Stat(p); err == nil {
			fmt.Fprintf(&script, "echo %s $(wc -c < %s);", p, p)
			fmt.Fprintf(&want, "%s 0\n", p)
		}
	}
	for _, p := range []string{"/sys/firmware", "/proc/scsi", "/proc/acpi"} {
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			fmt.Fprintf(&script, "echo %s $(ls -A %s | wc -l);", p, p)
			fmt.Fprintf(&want, "%s 0\n", p)
		}
	}
	script.WriteString("echo x > /proc/sys/kernel/domainname 2>/dev/null && echo proc-sys-writable || echo proc-sys-ro;")
	want.WriteString("proc-sys-ro\n")
	script.WriteString("echo 1 > /proc/sysrq-trigger 2>/dev/null && echo sysrq-writable || echo sysrq-ro")
	want.WriteString("sysrq-ro\n")
	c := newCtr(t, script.String())
	if out := c.runOK(); out != want.String() {
		t.Errorf("got:\n%s\nwant:\n%s", out, want.String())
	}
	// HostConfig.MaskedPaths overrides the default list
	c = newCtr(t, "wc -c < /proc/cpuinfo; [ $(wc -c < /proc/timer_list) -gt 0 ] && echo timer_list-readable")
	c.in.HostConfig.MaskedPaths = []string{"/proc/cpuinfo"}
	if out := c.runOK(); out != "0\ntimer_list-readable\n" {
		t.Errorf("MaskedPaths override: %q", out)
	}
}

func TestReadonlyRootfsAndTmpfs(t *testing.T) {
	c := newCtr(t, `touch /x 2>/dev/null && echo root-rw || echo root-ro
echo hi > /data/f && cat /data/f
stat -c %a /data
awk '$5 == "/data" { print $6; print $NF }' /proc/self/mountinfo
awk '$5 == "/run" { print "run", $NF }' /proc/self/mountinfo
dd if=/dev/zero of=/data/big bs=1024 count=2048 2>/dev/null && echo big-fits || echo big-refused
cp /bin/busybox /run/true && /run/true && echo run-exec`)
	c.in.HostConfig.ReadonlyRootfs = true
	c.in.HostConfig.Tmpfs = map[string]string{"/data": "size=1m,mode=700", "/run": "exec"}
	out := c.runOK()
	l := lines(out)
	if len(l) != 8 {
		t.Fatalf("output:\n%s", out)
	}
	if l[0] != "root-ro" || l[1] != "hi" || l[2] != "700" || l[6] != "big-refused" || l[7] != "run-exec" {
		t.Errorf("output:\n%s", out)
	}
	for _, o := range []string{"rw", "nosuid", "nodev", "noexec"} {
		if !strings.Contains(","+l[3]+",", ","+o+",") {
			t.Errorf("/data mount options %q lack %s", l[3], o)
		}
	}
	if !strings.Contains(l[4], "size=1024k") || !strings.Contains(l[4], "mode=700") {
		t.Errorf("/data tmpfs options %q", l[4])
	}
}

func TestUserByNameWithGroups(t *testing.T) {
	passwd := "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:App:/home/app:/bin/sh\n"
	group := "root:x:0:\napp:x:1000:\naudio:x:29:app\nstaff:x:50:other,app\nvideo:x:44:\n"
	c := newCtr(t, `id -u; id -g; id -G; echo "$HOME"; grep CapEff /proc/self/status`,
		bundle.WithFile("etc/passwd", passwd), bundle.WithFile("etc/group", group))
	c.in.Config.User = "app"
	c.in.HostConfig.GroupAdd = []string{"video", "4242"}
	out := c.runOK()
	// (the kernel sorts supplementary groups)
	if want := "1000\n1000\n1000 29 44 50 4242\n/home/app\nCapEff:\t0000000000000000\n"; out != want {
		t.Errorf("got:\n%s\nwant:\n%s", out, want)
	}

	c = newCtr(t, `id -u; id -g; id -G; echo "$HOME"`, bundle.WithFile("etc/passwd", passwd), bundle.WithFile("etc/group", group))
	c.in.Config.User = "1234:app"
	if out := c.runOK(); out != "1234\n1000\n1000\n/\n" {
		t.Errorf("uid:group: %q", out)
	}

	c = newCtr(t, "true", bundle.WithFile("etc/passwd", passwd))
	c.in.Config.User = "ghost"
	if _, err := oci.Generate(c.in); err == nil || err.Error() != "unable to find user ghost: no matching entries in passwd file" {
		t.Errorf("unknown user: %v", err)
	}
}

func TestWorkingDir(t *testing.T) {
	passwd := "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"
	c := newCtr(t, `pwd; stat -c %u:%g .; touch f && echo writable`, bundle.WithFile("etc/passwd", passwd))
	c.in.Config.User = "app"
	c.in.Config.WorkingDir = "/srv/app"
	if err := oci.CreateWorkingDir(c.b.Rootfs, "/srv/app", 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if out := c.runOK(); out != "/srv/app\n1000:1000\nwritable\n" {
		t.Errorf("got %q", out)
	}
}

// cgroupScript prints the memory limit, the memory+swap (v1) or swap (v2) limit, pids.max and
// the CFS quota of the container's cgroups as mounted at /sys/fs/cgroup.
const cgroupScript = `if [ -f /sys/fs/cgroup/memory/memory.limit_in_bytes ]; then
  cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us; echo v1
else
  cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory.swap.max /sys/fs/cgroup/pids.max; cut -d' ' -f1 /sys/fs/cgroup/cpu.max; echo v2
fi`

func TestMemoryPidsAndCPULimits(t *testing.T) {
	c := newCtr(t, cgroupScript)
	c.in.HostConfig.Memory = 64 << 20
	c.in.HostConfig.PidsLimit = func(v int64) *int64 { return &v }(42)
	c.in.HostConfig.NanoCPUs = 5e8
	out := c.runOK()
	l := lines(out)
	if len(l) != 5 {
		t.Fatalf("output:\n%s", out)
	}
	swap := strconv.Itoa(128 << 20) // v1: memory+swap is twice the memory
	if l[4] == "v2" {
		swap = strconv.Itoa(64 << 20) // v2: swap alone
	}
	if l[0] != strconv.Itoa(64<<20) || l[2] != "42" || l[3] != "50000" {
		t.Errorf("memory %s pids %s quota %s:\n%s", l[0], l[2], l[3], out)
	}
	si, _ := oci.HostSysInfo()
	if si.SwapLimit && l[1] != swap {
		t.Errorf("swap limit %s, want %s", l[1], swap)
	}
}

func TestShmSizeAndIpcModes(t *testing.T) {
	script := `awk '$5 == "/dev/shm" { print $NF }' /proc/self/mountinfo`
	c := newCtr(t, script)
	if out := c.runOK(); !strings.Contains(out, "size=65536k") {
		t.Errorf("default /dev/shm: %q", out)
	}
	c = newCtr(t, script)
	c.in.HostConfig.ShmSize = 2 << 20
	if out := c.runOK(); !strings.Contains(out, "size=2048k") {
		t.Errorf("/dev/shm with ShmSize 2m: %q", out)
	}
	c = newCtr(t, script+"; echo end")
	c.in.HostConfig.IpcMode = container.IPCModeNone
	if out := c.runOK(); out != "end\n" {
		t.Errorf("/dev/shm with IpcMode none: %q", out)
	}
}

func TestInitAsPID1(t *testing.T) {
	c := newCtr(t, `tr '\0' ' ' < /proc/1/cmdline; echo; echo $$`)
	c.in.HostConfig.Init = func(b bool) *bool { return &b }(true)
	c.in.InitPath = initBinary(t)
	t.Logf("init: %s", c.in.InitPath)
	l := lines(c.runOK())
	if len(l) != 2 || !strings.Contains(l[0], oci.InitPathInContainer+" -- sh -c") || l[1] == "1" {
		t.Errorf("PID 1 is not the init: %q", l)
	}
}

func TestHostnameSysctlsUlimits(t *testing.T) {
	c := newCtr(t, `hostname; echo "$HOSTNAME"; cat /proc/sys/kernel/domainname
cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/ip_unprivileged_port_start
ulimit -n; ulimit -Hn
ls /sys/class/net`)
	c.in.Config.Domainname = "example.org"
	c.in.HostConfig.Sysctls = map[string]string{"net.ipv4.ip_forward": "1"}
	c.in.HostConfig.Ulimits = []*container.Ulimit{{Name: "nofile", Soft: 1000, Hard: 2000}}
	want := fmt.Sprintf("%s\n%s\nexample.org\n1\n0\n1000\n2000\nlo\n", c.b.ID[:12], c.b.ID[:12])
	if out := c.runOK(); out != want {
		t.Errorf("got:\n%s\nwant:\n%s", out, want)
	}
}

func TestDevicesAndBinds(t *testing.T) {
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("from host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newCtr(t, `echo x > /dev/xnull && ls -l /dev/xnull | cut -c1
cat /data/f; touch /data/g 2>/dev/null && echo data-rw || echo data-ro
touch /rw/g && echo rw-ok
head -c 1 /dev/zero >/dev/null && echo zero-ok`)
	c.in.HostConfig.Devices = []container.DeviceMapping{{PathOnHost: "/dev/null", PathInContainer: "/dev/xnull", CgroupPermissions: "rwm"}}
	c.in.Mounts = []oci.Mount{
		{Type: mount.TypeBind, Source: src, Destination: "/data", ReadOnly: true},
		{Type: mount.TypeVolume, Source: src, Destination: "/rw"},
	}
	if out := c.runOK(); out != "c\nfrom host\ndata-ro\nrw-ok\nzero-ok\n" {
		t.Errorf("got %q", out)
	}
	if _, err := os.Stat(filepath.Join(src, "g")); err != nil {
		t.Errorf("write through the read-write bind: %v", err)
	}
}
