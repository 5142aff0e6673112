package oci

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/blkiodev"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"

	"golang.org/x/sys/unix"

	"berth/internal/errdefs"
	"berth/internal/runtime/caps"
)

// fullSysInfo is a host that supports everything, with 2 CPUs and one memory node.
func fullSysInfo() *SysInfo {
	return &SysInfo{
		NCPU: 2, Cpus: "0-1", Mems: "0",
		MemoryLimit: true, SwapLimit: true, MemoryReservation: true, OomKillDisable: true,
		MemorySwappiness: true, CPUShares: true, CPUCfs: true, CPURealtime: true, Cpuset: true,
		PidsLimit: true, BlkioWeight: true, BlkioWeightDevice: true, BlkioThrottle: true,
		CgroupNamespaces: true, Seccomp: true,
	}
}

func i64p(v int64) *int64 { return &v }
func boolp(v bool) *bool  { return &v }

func TestValidate(t *testing.T) {
	cmd := func() *container.Config { return &container.Config{Cmd: []string{"sh"}} }
	tests := []struct {
		name string
		cfg  func(*container.Config)
		hc   func(*container.HostConfig)
		want string // "" = valid
	}{
		{name: "empty is valid"},
		{name: "no command", cfg: func(c *container.Config) { c.Cmd = nil }, want: "No command specified"},
		{name: "entrypoint reset", cfg: func(c *container.Config) { c.Cmd = nil; c.Entrypoint = []string{""} }, want: "No command specified"},
		{name: "relative workdir", cfg: func(c *container.Config) { c.WorkingDir = "app" }, want: "the working directory 'app' is invalid, it needs to be an absolute path"},
		{name: "bad stop signal", cfg: func(c *container.Config) { c.StopSignal = "SIGFOO" }, want: "Invalid signal: SIGFOO"},
		{name: "stop signal name", cfg: func(c *container.Config) { c.StopSignal = "term" }},
		{name: "stop signal rt", cfg: func(c *container.Config) { c.StopSignal = "SIGRTMIN+3" }},
		{name: "empty env name", cfg: func(c *container.Config) { c.Env = []string{"=x"} }, want: "invalid environment variable: =x"},
		{name: "health interval", cfg: func(c *container.Config) { c.Healthcheck = &container.HealthConfig{Interval: time.Microsecond} }, want: "Interval in Healthcheck cannot be less than 1ms"},
		{name: "health retries", cfg: func(c *container.Config) { c.Healthcheck = &container.HealthConfig{Retries: -1} }, want: "Retries in Healthcheck cannot be negative"},
		{name: "long hostname", cfg: func(c *container.Config) { c.Hostname = strings.Repeat("h", 65) }, want: "longer than 64 characters"},

		{name: "memory too small", hc: func(h *container.HostConfig) { h.Memory = 1 << 20 }, want: "Minimum memory limit allowed is 6MB"},
		{name: "memory negative", hc: func(h *container.HostConfig) { h.Memory = -1 }, want: "Minimum memory limit allowed is 6MB"},
		{name: "swap below memory", hc: func(h *container.HostConfig) { h.Memory = 64 << 20; h.MemorySwap = 32 << 20 }, want: "Minimum memoryswap limit should be larger than memory limit, see usage"},
		{name: "swap without memory", hc: func(h *container.HostConfig) { h.MemorySwap = 64 << 20 }, want: "You should always set the Memory limit when using Memoryswap limit, see usage"},
		{name: "swap unlimited", hc: func(h *container.HostConfig) { h.Memory = 64 << 20; h.MemorySwap = -1 }},
		{name: "swap below -1", hc: func(h *container.HostConfig) { h.Memory = 64 << 20; h.MemorySwap = -2 }, want: "invalid memory swap -2"},
		{name: "swappiness", hc: func(h *container.HostConfig) { h.MemorySwappiness = i64p(101) }, want: "Invalid value: 101, valid memory swappiness range is 0-100"},
		{name: "reservation small", hc: func(h *container.HostConfig) { h.MemoryReservation = 1024 }, want: "Minimum memory reservation allowed is 6MB"},
		{name: "reservation above limit", hc: func(h *container.HostConfig) { h.Memory = 8 << 20; h.MemoryReservation = 16 << 20 }, want: "Minimum memory limit can not be less than memory reservation limit, see usage"},
		{name: "nano and period", hc: func(h *container.HostConfig) { h.NanoCPUs = 1e9; h.CPUPeriod = 50000 }, want: "Conflicting options: Nano CPUs and CPU Period cannot both be set"},
		{name: "nano and quota", hc: func(h *container.HostConfig) { h.NanoCPUs = 1e9; h.CPUQuota = 50000 }, want: "Conflicting options: Nano CPUs and CPU Quota cannot both be set"},
		{name: "too many cpus", hc: func(h *container.HostConfig) { h.NanoCPUs = 3e9 }, want: "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"},
		{name: "negative cpus", hc: func(h *container.HostConfig) { h.NanoCPUs = -1 }, want: "Range of CPUs is from 0.01 to 2.00"},
		{name: "two cpus", hc: func(h *container.HostConfig) { h.NanoCPUs = 2e9 }},
		{name: "negative shares", hc: func(h *container.HostConfig) { h.CPUShares = -2 }, want: "invalid CPU shares (-2)"},
		{name: "period range", hc: func(h *container.HostConfig) { h.CPUPeriod = 999 }, want: "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"},
		{name: "quota small", hc: func(h *container.HostConfig) { h.CPUQuota = 999 }, want: "CPU cfs quota can not be less than 1ms (i.e. 1000)"},
		{name: "quota unlimited", hc: func(h *container.HostConfig) { h.CPUQuota = -1 }},
		{name: "rt runtime above period", hc: func(h *container.HostConfig) { h.CPURealtimePeriod = 1000; h.CPURealtimeRuntime = 2000 }, want: "cpu real-time runtime cannot be higher than cpu real-time period"},
		{name: "cpuset format", hc: func(h *container.HostConfig) { h.CpusetCpus = "0-x" }, want: "Invalid value 0-x for cpuset cpus: invalid format: 0-x"},
		{name: "cpuset reversed", hc: func(h *container.HostConfig) { h.CpusetCpus = "1-0" }, want: "invalid format"},
		{name: "cpuset negative", hc: func(h *container.HostConfig) { h.CpusetCpus = "-1" }, want: "invalid format"},
		{name: "cpuset unavailable", hc: func(h *container.HostConfig) { h.CpusetCpus = "0-3" }, want: "Requested CPUs are not available - requested 0-3, available: 0-1"},
		{name: "cpuset ok", hc: func(h *container.HostConfig) { h.CpusetCpus = "1"; h.CpusetMems = "0" }},
		{name: "mems unavailable", hc: func(h *container.HostConfig) { h.CpusetMems = "1" }, want: "Requested memory nodes are not available - requested 1, available: 0"},
		{name: "blkio weight", hc: func(h *container.HostConfig) { h.BlkioWeight = 5 }, want: "Range of blkio weight is from 10 to 1000"},
		{name: "blkio throttle relative", hc: func(h *container.HostConfig) {
			h.BlkioDeviceReadBps = []*blkiodev.ThrottleDevice{{Path: "sda", Rate: 1}}
		}, want: "path must be absolute"},
		{name: "io maximum", hc: func(h *container.HostConfig) { h.IOMaximumIOps = 5 }, want: "Invalid QoS settings"},
		{name: "shm negative", hc: func(h *container.HostConfig) { h.ShmSize = -1 }, want: "SHM size can not be less than 0"},
		{name: "oom score", hc: func(h *container.HostConfig) { h.OomScoreAdj = 1001 }, want: "Invalid value 1001, range for oom score adj is [-1000, 1000]"},

		{name: "restart unknown", hc: func(h *container.HostConfig) { h.RestartPolicy.Name = "sometimes" }, want: "invalid restart policy: unknown policy 'sometimes'"},
		{name: "restart retries", hc: func(h *container.HostConfig) {
			h.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyAlways, MaximumRetryCount: 3}
		}, want: "invalid restart policy: maximum retry count can only be used with 'on-failure'"},
		{name: "restart negative", hc: func(h *container.HostConfig) {
			h.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyOnFailure, MaximumRetryCount: -1}
		}, want: "maximum retry count cannot be negative"},
		{name: "restart on-failure", hc: func(h *container.HostConfig) {
			h.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyOnFailure, MaximumRetryCount: 3}
		}},
		{name: "autoremove restart", hc: func(h *container.HostConfig) {
			h.AutoRemove = true
			h.RestartPolicy.Name = container.RestartPolicyAlways
		}, want: "can't create 'AutoRemove' container with restart policy"},

		{name: "cap add unknown", hc: func(h *container.HostConfig) { h.CapAdd = []string{"foo"} }, want: `invalid CapAdd: unknown capability: "CAP_FOO"`},
		{name: "cap drop unknown", hc: func(h *container.HostConfig) { h.CapDrop = []string{"CAP_BAR"} }, want: `invalid CapDrop: unknown capability: "CAP_BAR"`},
		{name: "cap names", hc: func(h *container.HostConfig) { h.CapAdd = []string{"net_admin", "CAP_SYS_ADMIN", "all"} }},

		{name: "security-opt no separator", hc: func(h *container.HostConfig) { h.SecurityOpt = []string{"foo"} }, want: `invalid --security-opt 1: "foo"`},
		{name: "security-opt unknown key", hc: func(h *container.HostConfig) { h.SecurityOpt = []string{"foo=bar"} }, want: `invalid --security-opt 2: "foo=bar"`},
		{name: "security-opt nnp bad", hc: func(h *container.HostConfig) { h.SecurityOpt = []string{"no-new-privileges=maybe"} }, want: `invalid --security-opt 2: "no-new-privileges=maybe"`},
		{name: "security-opt ok", hc: func(h *container.HostConfig) {
			h.SecurityOpt = []string{"no-new-privileges", "no-new-privileges:false", "apparmor=docker-default", "label=disable", "label:type:svirt_t", "seccomp=unconfined", "writable-cgroups=true"}
		}},
		{name: "seccomp bad json", hc: func(h *container.HostConfig) { h.SecurityOpt = []string{`seccomp={"defaultAction":`} }, want: "Decoding seccomp profile failed"},

		{name: "sysctl net host", hc: func(h *container.HostConfig) {
			h.NetworkMode = network.NetworkHost
			h.Sysctls = map[string]string{"net.ipv4.ip_forward": "1"}
		}, want: `sysctl "net.ipv4.ip_forward" not allowed in host network namespace`},
		{name: "sysctl net own", hc: func(h *container.HostConfig) { h.Sysctls = map[string]string{"net.ipv4.ip_forward": "1"} }},
		{name: "sysctl ipc host", hc: func(h *container.HostConfig) {
			h.IpcMode = container.IPCModeHost
			h.Sysctls = map[string]string{"kernel.shmmax": "1"}
		}, want: `sysctl "kernel.shmmax" is not allowed in the hosts ipc namespace`},
		{name: "sysctl mqueue", hc: func(h *container.HostConfig) { h.Sysctls = map[string]string{"fs.mqueue.msg_max": "20"} }},
		{name: "sysctl not namespaced", hc: func(h *container.HostConfig) { h.Sysctls = map[string]string{"kernel.pid_max": "1"} }, want: `sysctl "kernel.pid_max" is not in a separate kernel namespace`},
		{name: "sysctl domainname uts host", hc: func(h *container.HostConfig) {
			h.UTSMode = "host"
			h.Sysctls = map[string]string{"kernel.domainname": "x"}
		}, want: `sysctl "kernel.domainname" is not in a separate kernel namespace`},
		{name: "sysctl hostname", hc: func(h *container.HostConfig) { h.Sysctls = map[string]string{"kernel.hostname": "x"} }, want: `conflicts with the OCI "hostname" field`},

		{name: "ulimit name", hc: func(h *container.HostConfig) { h.Ulimits = []*container.Ulimit{{Name: "foo", Soft: 1, Hard: 1}} }, want: "invalid ulimit type: foo"},
		{name: "ulimit soft above hard", hc: func(h *container.HostConfig) { h.Ulimits = []*container.Ulimit{{Name: "nofile", Soft: 10, Hard: 5}} }, want: "ulimit soft limit must be less than or equal to hard limit: 10 > 5"},
		{name: "ulimit unlimited", hc: func(h *container.HostConfig) { h.Ulimits = []*container.Ulimit{{Name: "core", Soft: -1, Hard: -1}} }},

		{name: "tmpfs option", hc: func(h *container.HostConfig) { h.Tmpfs = map[string]string{"/run": "foo"} }, want: `invalid tmpfs option ["foo"]`},
		{name: "tmpfs size value", hc: func(h *container.HostConfig) { h.Tmpfs = map[string]string{"/run": "size=lots"} }, want: `invalid tmpfs option "size=lots"`},
		{name: "tmpfs relative", hc: func(h *container.HostConfig) { h.Tmpfs = map[string]string{"run": ""} }, want: "invalid mount path: 'run' mount path must be absolute"},
		{name: "tmpfs root", hc: func(h *container.HostConfig) { h.Tmpfs = map[string]string{"/": ""} }, want: "invalid specification: destination can't be '/'"},
		{name: "tmpfs ok", hc: func(h *container.HostConfig) { h.Tmpfs = map[string]string{"/run": "size=64m,mode=1777,exec,uid=1000"} }},
		{name: "mount on proc", hc: func(h *container.HostConfig) {
			h.Mounts = []mount.Mount{{Type: mount.TypeBind, Source: "/x", Target: "/proc/sys"}}
		}, want: "mounts on /proc are not allowed"},
		{name: "mount bad propagation", hc: func(h *container.HostConfig) {
			h.Mounts = []mount.Mount{{Type: mount.TypeBind, Source: "/x", Target: "/x", BindOptions: &mount.BindOptions{Propagation: "sideways"}}}
		}, want: "invalid propagation mode: sideways"},

		{name: "device relative", hc: func(h *container.HostConfig) { h.Devices = []container.DeviceMapping{{PathOnHost: "dev/null"}} }, want: "dev/null is not an absolute path"},
		{name: "device mode", hc: func(h *container.HostConfig) {
			h.Devices = []container.DeviceMapping{{PathOnHost: "/dev/null", PathInContainer: "/dev/n", CgroupPermissions: "rwx"}}
		}, want: "bad mode specified: rwx"},
		{name: "device outside dev", hc: func(h *container.HostConfig) {
			h.Devices = []container.DeviceMapping{{PathOnHost: "/dev/null", PathInContainer: "/null", CgroupPermissions: "rwm"}}
		}, want: "devices must be under /dev"},
		{name: "device ok", hc: func(h *container.HostConfig) {
			h.Devices = []container.DeviceMapping{{PathOnHost: "/dev/null", PathInContainer: "/dev/mynull", CgroupPermissions: "rw"}}
		}},
		{name: "device cgroup rule", hc: func(h *container.HostConfig) { h.DeviceCgroupRules = []string{"c 1:3 rwx"} }, want: "invalid device cgroup rule format: 'c 1:3 rwx'"},
		{name: "device cgroup rule ok", hc: func(h *container.HostConfig) { h.DeviceCgroupRules = []string{"c *:* m", "b 8:0 rw"} }},
		{name: "gpus", hc: func(h *container.HostConfig) {
			h.DeviceRequests = []container.DeviceRequest{{Count: -1, Capabilities: [][]string{{"gpu"}}}}
		}, want: `could not select device driver "" with capabilities: [[gpu]]`},

		{name: "network container empty", hc: func(h *container.HostConfig) { h.NetworkMode = "container:" }, want: "Invalid network mode: invalid container format container:<name|id>"},
		{name: "network container hostname", cfg: func(c *container.Config) { c.Hostname = "h" }, hc: func(h *container.HostConfig) { h.NetworkMode = "container:abc" }, want: "conflicting options: hostname and the network mode"},
		{name: "network container dns", hc: func(h *container.HostConfig) {
			h.NetworkMode = "container:abc"
			h.DNS = append(h.DNS, mustAddr(t, "1.1.1.1"))
		}, want: "conflicting options: dns and the network mode"},
		{name: "network container ports", hc: func(h *container.HostConfig) { h.NetworkMode = "container:abc"; h.PublishAllPorts = true }, want: "conflicting options: port publishing and the container type network mode"},
		{name: "ipc mode", hc: func(h *container.HostConfig) { h.IpcMode = "bogus" }, want: "invalid IPC mode: bogus"},
		{name: "ipc container empty", hc: func(h *container.HostConfig) { h.IpcMode = "container:" }, want: "invalid IPC mode: container:"},
		{name: "pid mode", hc: func(h *container.HostConfig) { h.PidMode = "container:" }, want: "invalid PID mode: container:"},
		{name: "uts mode", hc: func(h *container.HostConfig) { h.UTSMode = "private" }, want: "invalid UTS mode: private"},
		{name: "uts host hostname", cfg: func(c *container.Config) { c.Hostname = "h" }, hc: func(h *container.HostConfig) { h.UTSMode = "host" }, want: "conflicting options: hostname and the UTS mode"},
		{name: "cgroupns mode", hc: func(h *container.HostConfig) { h.CgroupnsMode = "shared" }, want: "invalid cgroup namespace mode: shared"},
		{name: "userns mode", hc: func(h *container.HostConfig) { h.UsernsMode = "private" }, want: "invalid USER mode: private"},
		{name: "isolation", hc: func(h *container.HostConfig) { h.Isolation = "hyperv" }, want: "invalid isolation 'hyperv' on linux"},
		{name: "masked relative", hc: func(h *container.HostConfig) { h.MaskedPaths = []string{"proc/kcore"} }, want: "must be absolute"},
		{name: "annotation key", hc: func(h *container.HostConfig) { h.Annotations = map[string]string{" ": "x"} }, want: "the empty string is not permitted as an annotation key"},
	}
	si := fullSysInfo()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := cmd()
			hc := &container.HostConfig{}
			if tt.cfg != nil {
				tt.cfg(cfg)
			}
			if tt.hc != nil {
				tt.hc(hc)
			}
			err := Validate(cfg, hc, si)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("error %q is not of kind invalid", err)
			}
		})
	}
}

func TestValidateUnavailableCapability(t *testing.T) {
	// A capability the kernel has no number for, or that the daemon lacks in its own bounding
	// set, is refused with dockerd's second message; find one on this machine, if any.
	for n := 0; n <= caps.MaxKnown; n++ {
		if availableCaps()&(1<<uint(n)) != 0 {
			continue
		}
		name := caps.Name(n)
		err := Validate(&container.Config{Cmd: []string{"sh"}}, &container.HostConfig{CapAdd: []string{name}}, fullSysInfo())
		want := fmt.Sprintf("invalid CapAdd: capability not supported by your kernel or not available in the current environment: %q", name)
		if err == nil || err.Error() != want {
			t.Errorf("got %v, want %q", err, want)
		}
		return
	}
	t.Skip("every known capability is available here")
}

func TestValidateNanoCPUsWithoutCFS(t *testing.T) {
	si := fullSysInfo()
	si.CPUCfs = false
	err := Validate(&container.Config{Cmd: []string{"sh"}}, &container.HostConfig{Resources: container.Resources{NanoCPUs: 1e9}}, si)
	if err == nil || !strings.Contains(err.Error(), "NanoCPUs can not be set, as your kernel does not support CPU CFS scheduler") {
		t.Errorf("got %v", err)
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]int{"SIGTERM": 15, "term": 15, "9": 9, "SIGRTMIN+1": 35, "RTMAX-1": 63, "SIGUSR1": 10} {
		got, err := ParseSignal(in)
		if err != nil || int(got) != want {
			t.Errorf("ParseSignal(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "65", "SIGNOPE", "SIGRTMIN+40", "-1"} {
		if _, err := ParseSignal(in); err == nil {
			t.Errorf("ParseSignal(%q) succeeded", in)
		}
	}
	// berthd parses stop and kill signals with it too.
	for in, want := range map[string]unix.Signal{"KILL": unix.SIGKILL, "RTMIN+2": 36, "SIGRTMAX": 64, "rtmin": 34} {
		if got, err := ParseSignal(in); err != nil || got != want {
			t.Errorf("%s: %v %v, want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"0", "65", "NOPE", "RTMIN+40"} {
		if _, err := ParseSignal(in); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%s: %v, want invalid", in, err)
		}
	}
}

func TestParseUintList(t *testing.T) {
	for in, ok := range map[string]bool{"0": true, "0-3,5": true, "0,0": true, "": false, "a": false, "1-": false, "-1": false, "3-1": false, "01": false, "0-99999999": false} {
		_, err := parseUintList(in)
		if (err == nil) != ok {
			t.Errorf("parseUintList(%q): %v, want ok=%v", in, err, ok)
		}
	}
	if err := checkCpuset("0-3", "0-1,2-3", "cpus", "CPUs"); err != nil {
		t.Errorf("range across available ranges: %v", err)
	}
}

func TestAdapt(t *testing.T) {
	t.Run("defaults v1", func(t *testing.T) {
		hc := &container.HostConfig{Resources: container.Resources{Memory: 64 << 20, MemorySwappiness: i64p(-1)}}
		w := Adapt(hc, fullSysInfo())
		if len(w) != 0 {
			t.Errorf("warnings %q", w)
		}
		if hc.MemorySwap != 128<<20 || hc.ShmSize != 64<<20 || hc.IpcMode != "private" || hc.CgroupnsMode != "host" ||
			hc.OomKillDisable == nil || *hc.OomKillDisable || hc.MemorySwappiness != nil {
			t.Errorf("adapted: %+v", hc)
		}
		if len(hc.MaskedPaths) < len(defaultMaskedPaths) || len(hc.ReadonlyPaths) != 5 {
			t.Errorf("masked %q readonly %q", hc.MaskedPaths, hc.ReadonlyPaths)
		}
		// idempotent
		before := *hc
		Adapt(hc, fullSysInfo())
		if hc.MemorySwap != before.MemorySwap || hc.ShmSize != before.ShmSize {
			t.Errorf("second Adapt changed %+v", hc)
		}
	})
	t.Run("cgroup v2", func(t *testing.T) {
		si := fullSysInfo()
		si.CgroupUnified = true
		hc := &container.HostConfig{Privileged: true}
		Adapt(hc, si)
		if hc.CgroupnsMode != "private" || hc.MaskedPaths != nil || hc.ReadonlyPaths != nil {
			t.Errorf("adapted: %+v", hc)
		}
	})
	t.Run("unsupported", func(t *testing.T) {
		hc := &container.HostConfig{Resources: container.Resources{
			Memory: 64 << 20, PidsLimit: i64p(10), BlkioWeight: 300, OomKillDisable: boolp(true),
			CPUShares: 512, CpusetCpus: "0",
		}}
		w := Adapt(hc, &SysInfo{NCPU: 2, MemoryLimit: true})
		joined := strings.Join(w, "\n")
		for _, want := range []string{"Memory limited without swap", "PIDs limit discarded", "Weight discarded", "OomKillDisable discarded", "Shares discarded", "Cpuset discarded"} {
			if !strings.Contains(joined, want) {
				t.Errorf("warnings lack %q:\n%s", want, joined)
			}
		}
		if hc.MemorySwap != -1 || hc.PidsLimit != nil || hc.BlkioWeight != 0 || hc.OomKillDisable != nil || hc.CPUShares != 0 || hc.CpusetCpus != "" {
			t.Errorf("not discarded: %+v", hc.Resources)
		}
	})
}

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
