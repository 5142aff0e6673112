package runtime

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"golang.org/x/sys/unix"

	"berth/internal/runtime/caps"
)

// ParseSignal accepts "SIGKILL", "KILL", "kill" or "9".
func ParseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("invalid signal %q", s)
		}
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	if rest, ok := strings.CutPrefix(name, "SIGRTMIN+"); ok {
		if n, err := strconv.Atoi(rest); err == nil && 34+n <= 64 {
			return unix.Signal(34 + n), nil
		}
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

// PsTable runs ps with psArgs and prints its header and the lines of the given pids.
func PsTable(w io.Writer, pids []int, psArgs []string) error {
	out, err := exec.Command("ps", psArgs...).Output()
	if err != nil {
		return fmt.Errorf("ps %s: %w", strings.Join(psArgs, " "), err)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) == 0 {
		return nil
	}
	col := -1
	for i, h := range strings.Fields(lines[0]) {
		if h == "PID" {
			col = i
		}
	}
	if col < 0 {
		return fmt.Errorf("ps output has no PID column")
	}
	want := map[int]bool{}
	for _, p := range pids {
		want[p] = true
	}
	fmt.Fprintln(w, lines[0])
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) <= col {
			continue
		}
		if p, err := strconv.Atoi(f[col]); err == nil && want[p] {
			fmt.Fprintln(w, l)
		}
	}
	return nil
}

// OOMEvents returns a channel that receives a value for every OOM kill in the container (from
// memory.oom_control on v1 or memory.events on v2, polled).
func (r *Runtime) OOMEvents(id string) <-chan struct{} {
	ch := make(chan struct{}, 8)
	c, err := r.Load(id)
	if err != nil {
		return ch
	}
	dir := c.CgroupPaths["memory"]
	file, key := "memory.oom_control", "oom_kill"
	if dir == "" {
		dir, file = c.CgroupPaths[""], "memory.events"
	}
	if dir == "" {
		return ch
	}
	read := func() uint64 {
		data, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			return 0
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 2 && f[0] == key {
				n, _ := strconv.ParseUint(f[1], 10, 64)
				return n
			}
		}
		return 0
	}
	go func() {
		last := read()
		for {
			time.Sleep(200 * time.Millisecond)
			n := read()
			for ; last < n; last++ {
				ch <- struct{}{}
			}
		}
	}()
	return ch
}

// Features describes what this runtime implements (runtime-spec features.md).
func Features() *features.Features {
	var opts []string
	for k := range setFlags {
		opts = append(opts, k)
	}
	for k := range clearFlags {
		opts = append(opts, k)
	}
	for k := range propagationFlags {
		opts = append(opts, k)
	}
	for k := range recursiveAttrs {
		opts = append(opts, k)
	}
	opts = append(opts, "tmpcopyup")
	sort.Strings(opts)
	var ns []string
	for t := range cloneFlags {
		ns = append(ns, string(t))
	}
	sort.Strings(ns)
	t := true
	return &features.Features{
		OCIVersionMin: "1.0.0",
		OCIVersionMax: specs.Version,
		Hooks:         []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"},
		MountOptions:  opts,
		Linux: &features.Linux{
			Namespaces:   ns,
			Capabilities: caps.Names(caps.All()),
			Cgroup:       &features.Cgroup{V1: &t, V2: &t, Systemd: new(bool), SystemdUser: new(bool)},
			Seccomp: &features.Seccomp{Enabled: &t,
				Actions:   []string{"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"},
				Operators: []string{"SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"},
				Archs:     []string{"SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32"},
			},
			MountExtensions: &features.MountExtensions{IDMap: &features.IDMap{Enabled: new(bool)}},
		},
		Annotations: map[string]string{"org.opencontainers.runtime-spec.features.v1.runtime": "berth-runtime"},
	}
}

// DefaultSpec is the config.json that `spec` writes (the same as runc's).
func DefaultSpec(rootless bool) *specs.Spec {
	capsList := []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
	s := &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: "rootfs", Readonly: true},
		Process: &specs.Process{
			Terminal: true,
			User:     specs.User{},
			Args:     []string{"sh"},
			Env:      []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"},
			Cwd:      "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding: capsList, Effective: capsList, Permitted: capsList,
			},
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
			NoNewPrivileges: true,
		},
		Hostname: "runc",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
		},
		Linux: &specs.Linux{
			MaskedPaths: []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
			Resources:     &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}},
			Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace},
				{Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.MountNamespace}},
		},
	}
	if rootless {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: uint32(os.Getuid()), Size: 1}}
		s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: uint32(os.Getgid()), Size: 1}}
		s.Linux.Resources = nil
	}
	return s
}
