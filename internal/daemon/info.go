package daemon

import (
	"bufio"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/moby/moby/api/types/system"
	"golang.org/x/sys/unix"
)

// Info is GET /info, with this machine's real figures.
func (d *Daemon) Info(version string) *system.Info {
	in := &system.Info{
		ID:                 d.id,
		Driver:             "overlay2",
		DriverStatus:       [][2]string{{"Backing Filesystem", backingFS(d.root)}, {"Supports d_type", "true"}, {"Using metacopy", "false"}, {"Native Overlay Diff", "true"}},
		MemoryLimit:        true,
		SwapLimit:          swapLimit(),
		CPUCfsPeriod:       true,
		CPUCfsQuota:        true,
		CPUShares:          true,
		CPUSet:             true,
		PidsLimit:          true,
		IPv4Forwarding:     readProc("/proc/sys/net/ipv4/ip_forward") == "1",
		Debug:              d.cfg.Debug,
		NFd:                countFds(),
		OomKillDisable:     !cgroupV2(),
		NGoroutines:        runtime.NumGoroutine(),
		SystemTime:         time.Now().Format(time.RFC3339Nano),
		LoggingDriver:      d.cfg.LogDriver,
		CgroupDriver:       "cgroupfs",
		CgroupVersion:      "1",
		NEventsListener:    d.events.Listeners(),
		OperatingSystem:    osName(),
		OSType:             "linux",
		Architecture:       machine(),
		IndexServerAddress: "https://index.docker.io/v1/",
		NCPU:               runtime.NumCPU(),
		DockerRootDir:      d.root,
		ServerVersion:      version,
		DefaultRuntime:     "berth",
		Runtimes:           map[string]system.RuntimeWithStatus{"berth": {Runtime: system.Runtime{Path: d.cfg.RuntimeBinary}}},
		LiveRestoreEnabled: true,
		InitBinary:         "berth-init",
		SecurityOptions:    []string{"name=seccomp,profile=builtin", "name=cgroupns"},
		Labels:             []string{},
		Warnings:           []string{},
		HTTPProxy:          os.Getenv("HTTP_PROXY"),
		HTTPSProxy:         os.Getenv("HTTPS_PROXY"),
		NoProxy:            os.Getenv("NO_PROXY"),
	}
	if cgroupV2() {
		in.CgroupVersion = "2"
	}
	var un unix.Utsname
	if unix.Uname(&un) == nil {
		in.KernelVersion = unix.ByteSliceToString(un.Release[:])
	}
	in.Name, _ = os.Hostname()
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		in.MemTotal = int64(si.Totalram) * int64(si.Unit)
	}
	for _, c := range d.ListIn(DefaultNamespace) {
		c.mu.Lock()
		in.Containers++
		switch {
		case c.State.Running && c.State.Paused:
			in.ContainersPaused++
		case c.State.Running:
			in.ContainersRunning++
		default:
			in.ContainersStopped++
		}
		c.mu.Unlock()
	}
	if ims, err := d.images.List(); err == nil {
		in.Images = len(ims)
	}
	in.Plugins.Volume = []string{"local"}
	in.Plugins.Log = []string{"json-file", "local", "none"}
	in.Plugins.Network = []string{"host", "none"}
	return in
}

func readProc(p string) string {
	b, _ := os.ReadFile(p)
	return strings.TrimSpace(string(b))
}

func countFds() int {
	ents, _ := os.ReadDir("/proc/self/fd")
	return len(ents)
}

func swapLimit() bool {
	if cgroupV2() {
		return true
	}
	_, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
	return err == nil
}

func osName() string {
	f, err := os.Open("/etc/os-release")
	if err != nil {
		return "Linux"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "Linux"
}

func machine() string {
	var un unix.Utsname
	if unix.Uname(&un) != nil {
		return runtime.GOARCH
	}
	return unix.ByteSliceToString(un.Machine[:])
}

func backingFS(path string) string {
	var st unix.Statfs_t
	if unix.Statfs(path, &st) != nil {
		return "unknown"
	}
	switch st.Type {
	case unix.EXT4_SUPER_MAGIC:
		return "extfs"
	case unix.XFS_SUPER_MAGIC:
		return "xfs"
	case unix.BTRFS_SUPER_MAGIC:
		return "btrfs"
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	}
	return "unknown"
}
