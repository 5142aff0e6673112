package oci

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth/internal/errdefs"
	"berth/internal/runtime"
	"berth/internal/runtime/caps"
)

// testRootfs is a rootfs with /etc/passwd and /etc/group only.
func testRootfs(t *testing.T) string {
	t.Helper()
	rootfs := t.TempDir()
	writeFile(t, filepath.Join(rootfs, "etc", "passwd"), testPasswd)
	writeFile(t, filepath.Join(rootfs, "etc", "group"), testGroup)
	return rootfs
}

func testInput(t *testing.T, rootfs string) Input {
	return Input{
		ID:          "0123456789abcdef",
		Hostname:    "0123456789ab",
		Config:      &container.Config{Cmd: []string{"sh", "-c", "true"}, Env: []string{"PATH=/bin:/usr/bin", "FOO=bar"}},
		HostConfig:  &container.HostConfig{},
		Rootfs:      rootfs,
		CgroupsPath: "/berth/0123456789abcdef",
		SysInfo:     fullSysInfo(),
	}
}

func generate(t *testing.T, in Input) *specs.Spec {
	t.Helper()
	s, err := Generate(in)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	// What berth-runtime refuses must never come out.
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runtime.ParseSpec(data); err != nil {
		t.Fatalf("berth-runtime refuses the spec: %v\n%s", err, data)
	}
	return s
}

func findMount(s *specs.Spec, dest string) *specs.Mount {
	for i := range s.Mounts {
		if s.Mounts[i].Destination == dest {
			return &s.Mounts[i]
		}
	}
	return nil
}

func nsTypes(s *specs.Spec) map[specs.LinuxNamespaceType]string {
	m := map[specs.LinuxNamespaceType]string{}
	for _, n := range s.Linux.Namespaces {
		m[n.Type] = n.Path
	}
	return m
}

func envOf(s *specs.Spec, key string) (string, bool) {
	for _, e := range s.Process.Env {
		if k, v, _ := strings.Cut(e, "="); k == key {
			return v, true
		}
	}
	return "", false
}

func TestGenerateDefaults(t *testing.T) {
	s := generate(t, testInput(t, testRootfs(t)))
	if !reflect.DeepEqual(s.Process.Args, []string{"sh", "-c", "true"}) || s.Process.Cwd != "/" || s.Process.Terminal {
		t.Errorf("process %+v", s.Process)
	}
	wantEnv := []string{"PATH=/bin:/usr/bin", "HOSTNAME=0123456789ab", "FOO=bar", "HOME=/root"}
	if !reflect.DeepEqual(s.Process.Env, wantEnv) {
		t.Errorf("env %q, want %q", s.Process.Env, wantEnv)
	}
	if s.Process.User.UID != 0 || !reflect.DeepEqual(s.Process.User.AdditionalGids, []uint32{0}) {
		t.Errorf("user %+v", s.Process.User)
	}
	c := s.Process.Capabilities
	if !reflect.DeepEqual(c.Bounding, caps.DockerDefault()) || !reflect.DeepEqual(c.Effective, c.Bounding) ||
		!reflect.DeepEqual(c.Permitted, c.Bounding) || len(c.Inheritable) != 0 || len(c.Ambient) != 0 {
		t.Errorf("capabilities %+v", c)
	}
	if s.Process.NoNewPrivileges || s.Process.OOMScoreAdj == nil || *s.Process.OOMScoreAdj != 0 || len(s.Process.Rlimits) != 0 {
		t.Errorf("nnp %v oom %v rlimits %v", s.Process.NoNewPrivileges, s.Process.OOMScoreAdj, s.Process.Rlimits)
	}
	if s.Hostname != "0123456789ab" || s.Root.Path == "" || s.Root.Readonly || s.Linux.CgroupsPath != "/berth/0123456789abcdef" {
		t.Errorf("hostname %q root %+v cgroups %q", s.Hostname, s.Root, s.Linux.CgroupsPath)
	}
	var dests []string
	for _, m := range s.Mounts {
		dests = append(dests, m.Destination)
	}
	if want := []string{"/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm"}; !reflect.DeepEqual(dests, want) {
		t.Errorf("mounts %q, want %q", dests, want)
	}
	if shm := findMount(s, "/dev/shm"); !slices.Contains(shm.Options, "size=67108864") {
		t.Errorf("/dev/shm %+v", shm)
	}
	if m := findMount(s, "/sys"); !slices.Contains(m.Options, "ro") {
		t.Errorf("/sys %+v", m)
	}
	if m := findMount(s, "/sys/fs/cgroup"); !slices.Contains(m.Options, "ro") {
		t.Errorf("/sys/fs/cgroup %+v", m)
	}
	ns := nsTypes(s)
	for _, typ := range []specs.LinuxNamespaceType{specs.MountNamespace, specs.NetworkNamespace, specs.UTSNamespace, specs.PIDNamespace, specs.IPCNamespace} {
		if p, ok := ns[typ]; !ok || p != "" {
			t.Errorf("namespace %s: %q %v", typ, p, ok)
		}
	}
	if _, ok := ns[specs.CgroupNamespace]; ok || len(ns) != 5 {
		t.Errorf("namespaces %+v (cgroup v1 default is the host's cgroup namespace)", s.Linux.Namespaces)
	}
	if !slices.Contains(s.Linux.MaskedPaths, "/proc/kcore") || !slices.Contains(s.Linux.MaskedPaths, "/proc/interrupts") ||
		!reflect.DeepEqual(s.Linux.ReadonlyPaths, defaultReadonlyPaths) {
		t.Errorf("masked %q readonly %q", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	if !reflect.DeepEqual(s.Linux.Resources.Devices, defaultDeviceRules()) || len(s.Linux.Devices) != 0 {
		t.Errorf("devices %+v %+v", s.Linux.Resources.Devices, s.Linux.Devices)
	}
	r := s.Linux.Resources
	if r.Memory != nil || r.CPU != nil || r.Pids != nil || r.BlockIO != nil {
		t.Errorf("resources %+v", r)
	}
	if s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActErrno || len(s.Linux.Seccomp.Syscalls) == 0 {
		t.Errorf("seccomp %+v", s.Linux.Seccomp)
	}
	if s.Linux.Sysctl["net.ipv4.ip_unprivileged_port_start"] != "0" {
		t.Errorf("sysctls %v", s.Linux.Sysctl)
	}
	if s.Linux.RootfsPropagation != "" || s.Annotations != nil {
		t.Errorf("propagation %q annotations %v", s.Linux.RootfsPropagation, s.Annotations)
	}
}

func TestGenerate(t *testing.T) {
	bindSrc := t.TempDir()
	tests := []struct {
		name  string
		in    func(*Input)
		check func(*testing.T, *specs.Spec)
		err   string
	}{
		{name: "entrypoint and cmd", in: func(in *Input) {
			in.Config.Entrypoint = []string{"/entry", "-x"}
			in.Config.Cmd = []string{"a"}
			in.Config.WorkingDir = "/srv"
		}, check: func(t *testing.T, s *specs.Spec) {
			if !reflect.DeepEqual(s.Process.Args, []string{"/entry", "-x", "a"}) || s.Process.Cwd != "/srv" {
				t.Errorf("args %q cwd %q", s.Process.Args, s.Process.Cwd)
			}
		}},
		{name: "tty", in: func(in *Input) {
			in.Config.Tty = true
			in.HostConfig.ConsoleSize = [2]uint{40, 120}
			in.Config.Env = []string{"HOME=/custom", "TERM=dumb", "HOSTNAME"}
		}, check: func(t *testing.T, s *specs.Spec) {
			want := []string{"PATH=" + DefaultPathEnv, "TERM=dumb", "HOME=/custom"}
			if !s.Process.Terminal || !reflect.DeepEqual(s.Process.Env, want) || s.Process.ConsoleSize == nil || s.Process.ConsoleSize.Width != 120 {
				t.Errorf("terminal %v env %q console %+v", s.Process.Terminal, s.Process.Env, s.Process.ConsoleSize)
			}
		}},
		{name: "user by name", in: func(in *Input) {
			in.Config.User = "app"
			in.HostConfig.GroupAdd = []string{"video"}
		}, check: func(t *testing.T, s *specs.Spec) {
			u := s.Process.User
			if u.UID != 1000 || u.GID != 1000 || !reflect.DeepEqual(u.AdditionalGids, []uint32{1000, 29, 50, 44}) {
				t.Errorf("user %+v", u)
			}
			if h, _ := envOf(s, "HOME"); h != "/home/app" {
				t.Errorf("HOME %q", h)
			}
		}},
		{name: "unknown user", in: func(in *Input) { in.Config.User = "ghost" }, err: "unable to find user ghost: no matching entries in passwd file"},
		{name: "privileged", in: func(in *Input) {
			in.HostConfig.Privileged = true
			in.HostConfig.SecurityOpt = []string{"seccomp=builtin"}
			in.HostConfig.ReadonlyRootfs = true
		}, check: func(t *testing.T, s *specs.Spec) {
			if !reflect.DeepEqual(s.Process.Capabilities.Bounding, allCaps()) {
				t.Errorf("caps %q", s.Process.Capabilities.Bounding)
			}
			if s.Linux.Seccomp != nil || s.Linux.MaskedPaths != nil || s.Linux.ReadonlyPaths != nil {
				t.Errorf("seccomp %v masked %q ro %q", s.Linux.Seccomp != nil, s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
			}
			if slices.Contains(findMount(s, "/sys").Options, "ro") || slices.Contains(findMount(s, "/sys/fs/cgroup").Options, "ro") {
				t.Errorf("/sys or cgroups read-only: %+v %+v", findMount(s, "/sys"), findMount(s, "/sys/fs/cgroup"))
			}
			if len(s.Linux.Devices) == 0 || !reflect.DeepEqual(s.Linux.Resources.Devices, []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}) {
				t.Errorf("devices %d rules %+v", len(s.Linux.Devices), s.Linux.Resources.Devices)
			}
			for _, d := range s.Linux.Devices {
				if d.Path == "/dev/console" || strings.HasPrefix(d.Path, "/dev/pts/") {
					t.Errorf("host device %s passed", d.Path)
				}
			}
		}},
		{name: "cap drop all", in: func(in *Input) {
			in.HostConfig.CapDrop = []string{"ALL"}
			in.HostConfig.CapAdd = []string{"chown"}
		}, check: func(t *testing.T, s *specs.Spec) {
			if !reflect.DeepEqual(s.Process.Capabilities.Bounding, []string{"CAP_CHOWN"}) {
				t.Errorf("caps %q", s.Process.Capabilities.Bounding)
			}
		}},
		{name: "security opts", in: func(in *Input) {
			in.HostConfig.SecurityOpt = []string{"no-new-privileges", "seccomp=unconfined", "apparmor=unconfined", "label=level:s0"}
		}, check: func(t *testing.T, s *specs.Spec) {
			if !s.Process.NoNewPrivileges || s.Linux.Seccomp != nil || s.Process.ApparmorProfile != "" || s.Process.SelinuxLabel != "" {
				t.Errorf("nnp %v seccomp %v", s.Process.NoNewPrivileges, s.Linux.Seccomp)
			}
		}},
		{name: "daemon no-new-privileges overridden", in: func(in *Input) {
			in.NoNewPrivileges = true
			in.HostConfig.SecurityOpt = []string{"no-new-privileges=false"}
		}, check: func(t *testing.T, s *specs.Spec) {
			if s.Process.NoNewPrivileges {
				t.Error("no-new-privileges=false ignored")
			}
		}},
		{name: "seccomp profile json", in: func(in *Input) {
			in.HostConfig.SecurityOpt = []string{`seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["chmod"],"action":"SCMP_ACT_ERRNO"}]}`}
		}, check: func(t *testing.T, s *specs.Spec) {
			sc := s.Linux.Seccomp
			if sc == nil || sc.DefaultAction != specs.ActAllow || len(sc.Syscalls) != 1 || sc.Syscalls[0].Names[0] != "chmod" {
				t.Errorf("seccomp %+v", sc)
			}
		}},
		{name: "daemon seccomp unconfined", in: func(in *Input) { in.SeccompProfile = SeccompUnconfined }, check: func(t *testing.T, s *specs.Spec) {
			if s.Linux.Seccomp != nil {
				t.Error("seccomp set")
			}
		}},
		{name: "builtin beats daemon default", in: func(in *Input) {
			in.SeccompProfile = SeccompUnconfined
			in.HostConfig.SecurityOpt = []string{"seccomp=builtin"}
		}, check: func(t *testing.T, s *specs.Spec) {
			if s.Linux.Seccomp == nil {
				t.Error("no seccomp")
			}
		}},
		{name: "seccomp follows capabilities", in: func(in *Input) { in.HostConfig.CapAdd = []string{"SYS_ADMIN"} }, check: func(t *testing.T, s *specs.Spec) {
			found := false
			for _, sc := range s.Linux.Seccomp.Syscalls {
				if slices.Contains(sc.Names, "mount") && sc.Action == specs.ActAllow {
					found = true
				}
			}
			if !found {
				t.Error("CAP_SYS_ADMIN does not allow mount in the default profile")
			}
		}},
		{name: "readonly rootfs", in: func(in *Input) {
			in.HostConfig.ReadonlyRootfs = true
			in.HostsPath = filepath.Join(bindSrc)
		}, check: func(t *testing.T, s *specs.Spec) {
			if !s.Root.Readonly || !slices.Contains(findMount(s, "/etc/hosts").Options, "ro") {
				t.Errorf("root %+v hosts %+v", s.Root, findMount(s, "/etc/hosts"))
			}
			for _, d := range []string{"/proc", "/dev", "/dev/shm", "/dev/mqueue", "/dev/pts"} {
				if slices.Contains(findMount(s, d).Options, "ro") {
					t.Errorf("%s read-only", d)
				}
			}
		}},
		{name: "etc files", in: func(in *Input) {
			in.HostsPath, in.HostnamePath, in.ResolvConfPath = bindSrc+"/hosts", bindSrc+"/hostname", bindSrc+"/resolv.conf"
			in.Mounts = []Mount{{Type: mount.TypeBind, Source: bindSrc, Destination: "/etc/resolv.conf", ReadOnly: true}}
		}, check: func(t *testing.T, s *specs.Spec) {
			if m := findMount(s, "/etc/hosts"); m == nil || m.Source != bindSrc+"/hosts" || !reflect.DeepEqual(m.Options, []string{"rbind", "rprivate"}) {
				t.Errorf("/etc/hosts %+v", m)
			}
			if m := findMount(s, "/etc/resolv.conf"); m == nil || m.Source != bindSrc {
				t.Errorf("own /etc/resolv.conf replaced: %+v", m)
			}
		}},
		{name: "tmpfs", in: func(in *Input) {
			in.HostConfig.Tmpfs = map[string]string{"/run": "size=1m,exec", "/tmp": ""}
			in.Mounts = []Mount{{Type: mount.TypeTmpfs, Destination: "/cache", ReadOnly: true, Options: []string{"mode=700"}}}
		}, check: func(t *testing.T, s *specs.Spec) {
			if m := findMount(s, "/run"); m == nil || m.Type != "tmpfs" || !reflect.DeepEqual(m.Options, []string{"nosuid", "nodev", "rprivate", "size=1m", "exec"}) {
				t.Errorf("/run %+v", m)
			}
			if m := findMount(s, "/tmp"); m == nil || !reflect.DeepEqual(m.Options, []string{"noexec", "nosuid", "nodev", "rprivate"}) {
				t.Errorf("/tmp %+v", m)
			}
			if m := findMount(s, "/cache"); m == nil || !reflect.DeepEqual(m.Options, []string{"noexec", "nosuid", "nodev", "rprivate", "mode=700", "ro"}) {
				t.Errorf("/cache %+v", m)
			}
		}},
		{name: "own /dev and /dev/shm", in: func(in *Input) {
			in.HostConfig.Tmpfs = map[string]string{"/dev": ""}
		}, check: func(t *testing.T, s *specs.Spec) {
			for _, m := range s.Mounts {
				if strings.HasPrefix(m.Destination, "/dev/") {
					t.Errorf("default %s kept under a mounted /dev", m.Destination)
				}
			}
		}},
		{name: "binds sorted", in: func(in *Input) {
			in.Mounts = []Mount{
				{Type: mount.TypeBind, Source: bindSrc, Destination: "/data/sub/deep"},
				{Type: mount.TypeVolume, Source: bindSrc, Destination: "/data", ReadOnly: true},
				{Type: mount.TypeBind, Source: bindSrc, Destination: "/x", Options: []string{"nosuid", "noexec"}, NonRecursive: true},
			}
		}, check: func(t *testing.T, s *specs.Spec) {
			n := len(s.Mounts)
			got := []string{s.Mounts[n-3].Destination, s.Mounts[n-2].Destination, s.Mounts[n-1].Destination}
			if !reflect.DeepEqual(got, []string{"/data", "/x", "/data/sub/deep"}) {
				t.Errorf("order %q", got)
			}
			if m := findMount(s, "/data"); !reflect.DeepEqual(m.Options, []string{"rbind", "ro", "rro", "rprivate"}) || m.Type != "bind" {
				t.Errorf("/data %+v", m)
			}
			if m := findMount(s, "/x"); !reflect.DeepEqual(m.Options, []string{"bind", "rprivate", "nosuid", "noexec"}) {
				t.Errorf("/x %+v", m)
			}
		}},
		{name: "duplicate mount", in: func(in *Input) {
			in.HostConfig.Tmpfs = map[string]string{"/data": ""}
			in.Mounts = []Mount{{Type: mount.TypeBind, Source: bindSrc, Destination: "/data/"}}
		}, err: "Duplicate mount point: /data"},
		{name: "bind on proc", in: func(in *Input) {
			in.Mounts = []Mount{{Type: mount.TypeBind, Source: bindSrc, Destination: "/proc/sys/kernel"}}
		}, err: "mounts on /proc are not allowed"},
		{name: "bind relative source", in: func(in *Input) {
			in.Mounts = []Mount{{Type: mount.TypeBind, Source: "vol", Destination: "/v"}}
		}, err: "must be an absolute host path"},
		{name: "shm size and ipc none", in: func(in *Input) { in.HostConfig.IpcMode = "none" }, check: func(t *testing.T, s *specs.Spec) {
			if findMount(s, "/dev/shm") != nil {
				t.Error("/dev/shm with IpcMode none")
			}
			if _, ok := nsTypes(s)[specs.IPCNamespace]; !ok {
				t.Error("no IPC namespace with IpcMode none")
			}
		}},
		{name: "shm size", in: func(in *Input) { in.HostConfig.ShmSize = 2 << 20 }, check: func(t *testing.T, s *specs.Spec) {
			if !slices.Contains(findMount(s, "/dev/shm").Options, "size=2097152") {
				t.Errorf("/dev/shm %+v", findMount(s, "/dev/shm"))
			}
		}},
		{name: "ipc host", in: func(in *Input) { in.HostConfig.IpcMode = "host" }, check: func(t *testing.T, s *specs.Spec) {
			if _, ok := nsTypes(s)[specs.IPCNamespace]; ok {
				t.Error("IPC namespace with IpcMode host")
			}
			if m := findMount(s, "/dev/shm"); m == nil || m.Type != "bind" || m.Source != "/dev/shm" {
				t.Errorf("/dev/shm %+v", m)
			}
		}},
		{name: "ipc shareable with shm path", in: func(in *Input) {
			in.HostConfig.IpcMode = "shareable"
			in.ShmPath = bindSrc
		}, check: func(t *testing.T, s *specs.Spec) {
			if m := findMount(s, "/dev/shm"); m == nil || m.Type != "bind" || m.Source != bindSrc {
				t.Errorf("/dev/shm %+v", m)
			}
		}},
		{name: "namespaces joined", in: func(in *Input) {
			in.HostConfig.NetworkMode = "container:abc"
			in.HostConfig.PidMode = "container:abc"
			in.HostConfig.IpcMode = "container:abc"
			in.Hostname = ""
			in.Namespaces = NamespacePaths{Network: "/proc/42/ns/net", PID: "/proc/42/ns/pid", IPC: "/proc/42/ns/ipc"}
			in.HostConfig.Init = boolp(true) // no init in another container's pid namespace
		}, check: func(t *testing.T, s *specs.Spec) {
			ns := nsTypes(s)
			if ns[specs.NetworkNamespace] != "/proc/42/ns/net" || ns[specs.PIDNamespace] != "/proc/42/ns/pid" || ns[specs.IPCNamespace] != "/proc/42/ns/ipc" {
				t.Errorf("namespaces %+v", s.Linux.Namespaces)
			}
			if s.Process.Args[0] != "sh" {
				t.Errorf("args %q", s.Process.Args)
			}
			if _, ok := s.Linux.Sysctl["net.ipv4.ip_unprivileged_port_start"]; ok {
				t.Error("default network sysctls in a joined network namespace")
			}
		}},
		{name: "network container with the daemon's hostname", in: func(in *Input) {
			in.HostConfig.NetworkMode = "container:abc"
			in.Namespaces.Network = "/proc/42/ns/net"
			in.Config.Hostname = "other"
			in.Hostname = ""
		}, check: func(t *testing.T, s *specs.Spec) {
			if s.Hostname != "other" {
				t.Errorf("hostname %q", s.Hostname)
			}
		}},
		{name: "joined namespace without path", in: func(in *Input) {
			in.HostConfig.PidMode = "container:abc"
		}, err: "needs the path of the namespace to join"},
		{name: "host namespaces", in: func(in *Input) {
			in.HostConfig.NetworkMode = "host"
			in.HostConfig.PidMode = "host"
			in.HostConfig.UTSMode = "host"
			in.Config.Domainname = "example.org"
		}, check: func(t *testing.T, s *specs.Spec) {
			ns := nsTypes(s)
			for _, typ := range []specs.LinuxNamespaceType{specs.NetworkNamespace, specs.PIDNamespace, specs.UTSNamespace} {
				if _, ok := ns[typ]; ok {
					t.Errorf("namespace %s with host mode", typ)
				}
			}
			if s.Hostname != "" || s.Domainname != "" || len(s.Linux.Sysctl) != 0 {
				t.Errorf("hostname %q domainname %q sysctls %v", s.Hostname, s.Domainname, s.Linux.Sysctl)
			}
		}},
		{name: "network none and netns path", in: func(in *Input) {
			in.HostConfig.NetworkMode = "bridge"
			in.Namespaces.Network = "/run/berth/netns/abc"
			in.Config.Domainname = "example.org"
		}, check: func(t *testing.T, s *specs.Spec) {
			if nsTypes(s)[specs.NetworkNamespace] != "/run/berth/netns/abc" || s.Domainname != "example.org" {
				t.Errorf("namespaces %+v domainname %q", s.Linux.Namespaces, s.Domainname)
			}
		}},
		{name: "cgroupns private", in: func(in *Input) { in.HostConfig.CgroupnsMode = "private" }, check: func(t *testing.T, s *specs.Spec) {
			if _, ok := nsTypes(s)[specs.CgroupNamespace]; !ok {
				t.Error("no cgroup namespace")
			}
		}},
		{name: "cgroupns default on v2", in: func(in *Input) { in.SysInfo.CgroupUnified = true }, check: func(t *testing.T, s *specs.Spec) {
			if _, ok := nsTypes(s)[specs.CgroupNamespace]; !ok {
				t.Error("no cgroup namespace on cgroup v2")
			}
		}},
		{name: "init", in: func(in *Input) {
			in.HostConfig.Init = boolp(true)
			in.InitPath = "/bin/sh"
		}, check: func(t *testing.T, s *specs.Spec) {
			if !reflect.DeepEqual(s.Process.Args, []string{"/sbin/docker-init", "--", "sh", "-c", "true"}) {
				t.Errorf("args %q", s.Process.Args)
			}
			if m := findMount(s, "/sbin/docker-init"); m == nil || m.Source != "/bin/sh" || !reflect.DeepEqual(m.Options, []string{"bind", "ro"}) {
				t.Errorf("init mount %+v", m)
			}
		}},
		{name: "init missing", in: func(in *Input) { in.HostConfig.Init = boolp(true) }, err: "no init binary"},
		{name: "resources", in: func(in *Input) {
			r := &in.HostConfig.Resources
			r.Memory = 64 << 20
			r.MemoryReservation = 32 << 20
			r.MemorySwappiness = i64p(10)
			r.OomKillDisable = boolp(true)
			r.NanoCPUs = 1500000000
			r.CPUShares = 512
			r.CpusetCpus = "0-1"
			r.CpusetMems = "0"
			r.PidsLimit = i64p(42)
			r.BlkioWeight = 300
			r.Ulimits = []*container.Ulimit{{Name: "nofile", Soft: 100, Hard: 200}, {Name: "core", Soft: -1, Hard: -1}}
			in.DefaultUlimits = []*container.Ulimit{{Name: "nofile", Soft: 1, Hard: 1}, {Name: "nproc", Soft: 50, Hard: 60}}
			in.HostConfig.OomScoreAdj = 500
		}, check: func(t *testing.T, s *specs.Spec) {
			r := s.Linux.Resources
			if m := r.Memory; m == nil || *m.Limit != 64<<20 || *m.Swap != 128<<20 || *m.Reservation != 32<<20 || *m.Swappiness != 10 || !*m.DisableOOMKiller {
				t.Errorf("memory %+v", r.Memory)
			}
			if c := r.CPU; c == nil || *c.Period != 100000 || *c.Quota != 150000 || *c.Shares != 512 || c.Cpus != "0-1" || c.Mems != "0" {
				t.Errorf("cpu %+v", r.CPU)
			}
			if r.Pids == nil || *r.Pids.Limit != 42 || r.BlockIO == nil || *r.BlockIO.Weight != 300 {
				t.Errorf("pids %+v blkio %+v", r.Pids, r.BlockIO)
			}
			want := []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 100, Hard: 200}, {Type: "RLIMIT_CORE", Soft: ^uint64(0), Hard: ^uint64(0)}, {Type: "RLIMIT_NPROC", Soft: 50, Hard: 60}}
			if !reflect.DeepEqual(s.Process.Rlimits, want) || *s.Process.OOMScoreAdj != 500 {
				t.Errorf("rlimits %+v oom %d", s.Process.Rlimits, *s.Process.OOMScoreAdj)
			}
		}},
		{name: "cpu period quota and unlimited", in: func(in *Input) {
			r := &in.HostConfig.Resources
			r.Memory = 64 << 20
			r.MemorySwap = -1
			r.CPUPeriod = 50000
			r.CPUQuota = 25000
			r.PidsLimit = i64p(0)
		}, check: func(t *testing.T, s *specs.Spec) {
			r := s.Linux.Resources
			if r.Memory.Swap != nil || *r.CPU.Period != 50000 || *r.CPU.Quota != 25000 || *r.Pids.Limit != -1 {
				t.Errorf("memory %+v cpu %+v pids %+v", r.Memory, r.CPU, r.Pids)
			}
		}},
		{name: "devices", in: func(in *Input) {
			in.HostConfig.Devices = []container.DeviceMapping{{PathOnHost: "/dev/null", PathInContainer: "/dev/xnull", CgroupPermissions: "rw"}}
			in.HostConfig.DeviceCgroupRules = []string{"c 42:* rmw"}
		}, check: func(t *testing.T, s *specs.Spec) {
			if len(s.Linux.Devices) != 1 || s.Linux.Devices[0].Path != "/dev/xnull" {
				t.Errorf("devices %+v", s.Linux.Devices)
			}
			rules := s.Linux.Resources.Devices
			n := len(rules)
			if n != len(defaultDeviceRules())+2 || rules[n-2].Access != "rw" || *rules[n-1].Major != 42 || *rules[n-1].Minor != -1 {
				t.Errorf("rules %+v", rules)
			}
		}},
		{name: "missing device", in: func(in *Input) {
			in.HostConfig.Devices = []container.DeviceMapping{{PathOnHost: "/dev/nope", CgroupPermissions: "rwm"}}
		}, err: "error gathering device information"},
		{name: "sysctls", in: func(in *Input) {
			in.HostConfig.Sysctls = map[string]string{"net.ipv4.ip_unprivileged_port_start": "1024", "kernel.shmmax": "1000"}
		}, check: func(t *testing.T, s *specs.Spec) {
			if s.Linux.Sysctl["net.ipv4.ip_unprivileged_port_start"] != "1024" || s.Linux.Sysctl["kernel.shmmax"] != "1000" {
				t.Errorf("sysctls %v", s.Linux.Sysctl)
			}
		}},
		{name: "masked paths override", in: func(in *Input) {
			in.HostConfig.MaskedPaths = []string{}
			in.HostConfig.ReadonlyPaths = []string{"/proc/sys"}
		}, check: func(t *testing.T, s *specs.Spec) {
			if len(s.Linux.MaskedPaths) != 0 || !reflect.DeepEqual(s.Linux.ReadonlyPaths, []string{"/proc/sys"}) {
				t.Errorf("masked %q ro %q", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
			}
		}},
		{name: "writable cgroups", in: func(in *Input) { in.HostConfig.SecurityOpt = []string{"writable-cgroups=true"} }, check: func(t *testing.T, s *specs.Spec) {
			if slices.Contains(findMount(s, "/sys/fs/cgroup").Options, "ro") {
				t.Error("cgroups read-only")
			}
		}},
		{name: "annotations", in: func(in *Input) { in.HostConfig.Annotations = map[string]string{"a": "b"} }, check: func(t *testing.T, s *specs.Spec) {
			if s.Annotations["a"] != "b" {
				t.Errorf("annotations %v", s.Annotations)
			}
		}},
		{name: "invalid config is refused", in: func(in *Input) { in.HostConfig.Memory = 1 }, err: "Minimum memory limit allowed is 6MB"},
		{name: "hostname from config", in: func(in *Input) {
			in.Hostname = ""
			in.Config.Hostname = "web"
		}, check: func(t *testing.T, s *specs.Spec) {
			if h, _ := envOf(s, "HOSTNAME"); s.Hostname != "web" || h != "web" {
				t.Errorf("hostname %q env %q", s.Hostname, h)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := testInput(t, testRootfs(t))
			if tt.in != nil {
				tt.in(&in)
			}
			hcBefore, _ := json.Marshal(in.HostConfig)
			if tt.err != "" {
				_, err := Generate(in)
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			s := generate(t, in)
			if tt.check != nil {
				tt.check(t, s)
			}
			if hcAfter, _ := json.Marshal(in.HostConfig); string(hcAfter) != string(hcBefore) {
				t.Errorf("Generate changed the HostConfig:\n%s\n%s", hcBefore, hcAfter)
			}
		})
	}
}

func TestGenerateErrorsAreInvalid(t *testing.T) {
	in := testInput(t, testRootfs(t))
	in.HostConfig.CapAdd = []string{"CAP_NOPE"}
	_, err := Generate(in)
	if !errors.Is(err, errdefs.ErrInvalid) || err.Error() != `invalid CapAdd: unknown capability: "CAP_NOPE"` {
		t.Errorf("got %v", err)
	}
	if _, err := Generate(Input{Config: &container.Config{}}); err == nil {
		t.Error("no HostConfig accepted")
	}
}

func TestHostSysInfo(t *testing.T) {
	si, err := HostSysInfo()
	if err != nil {
		t.Fatal(err)
	}
	if si.NCPU < 1 || si.Cpus == "" || si.Mems == "" {
		t.Errorf("sysinfo %+v", si)
	}
	if _, err := parseUintList(si.Cpus); err != nil {
		t.Errorf("cpus %q: %v", si.Cpus, err)
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.limit_in_bytes"); err == nil && (!si.MemoryLimit || si.CgroupUnified) {
		t.Errorf("cgroup v1 memory controller not seen: %+v", si)
	}
}
