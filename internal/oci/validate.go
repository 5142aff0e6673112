package oci

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"golang.org/x/sys/unix"

	"berth/internal/errdefs"
)

// Limits dockerd enforces.
const (
	linuxMinMemory    = 6 << 20 // 6 MiB
	maxOomScoreAdj    = 1000
	minCPUPeriod      = 1000
	maxCPUPeriod      = 1000000
	minCPUQuota       = 1000
	minBlkioWeight    = 10
	maxBlkioWeight    = 1000
	maxHostnameLength = 64 // HOST_NAME_MAX
)

// Validate checks a container's Config and HostConfig as dockerd does at create, with dockerd's
// messages where it has them. cfg is the config with the image's folded in (Entrypoint, Cmd,
// Env, WorkingDir, User, ...) but before the daemon fills in a default hostname (a hostname
// conflicts with NetworkMode container:<id> and UTSMode host); hc should have been through Adapt
// (Validate does not change it). si describes the host; nil means this host. Every error is of
// kind errdefs.ErrInvalid.
func Validate(cfg *container.Config, hc *container.HostConfig, si *SysInfo) error {
	return validate(cfg, hc, si, true)
}

// ExposeConflict is dockerd's check of a create request's own exposed ports (before the
// image's config is folded in: an image's EXPOSE is no conflict) against a network mode
// container:<id>.
func ExposeConflict(cfg *container.Config, hc *container.HostConfig) error {
	// A malformed mode (no container named) is Validate's to report, as dockerd does first.
	if hc != nil && hc.NetworkMode.IsContainer() && hc.NetworkMode.ConnectedContainer() != "" && len(cfg.ExposedPorts) > 0 {
		return errdefs.Invalid("conflicting options: port exposing and the container type network mode")
	}
	return nil
}

// validate is Validate; at start (create false) the checks between Config and HostConfig that
// dockerd makes only when a container is created are skipped: by then the daemon may have put
// the hostname of the container whose network namespace is joined into Config.Hostname.
func validate(cfg *container.Config, hc *container.HostConfig, si *SysInfo, create bool) error {
	if cfg == nil {
		cfg = &container.Config{}
	}
	if hc == nil {
		hc = &container.HostConfig{}
	}
	si, err := cachedSysInfo(si)
	if err != nil {
		return err
	}
	for _, check := range []func() error{
		func() error { return validateConfig(cfg) },
		func() error { return validateModes(cfg, hc, create) },
		func() error { return validateResources(&hc.Resources, si) },
		func() error { return validateHostConfig(hc) },
		func() error { return validateSysctls(hc) },
	} {
		if err := check(); err != nil {
			if errors.Is(err, errdefs.ErrInvalid) {
				return err
			}
			return errdefs.Invalid("%s", err.Error())
		}
	}
	return nil
}

func validateConfig(cfg *container.Config) error {
	if cfg.WorkingDir != "" && !path.IsAbs(cfg.WorkingDir) {
		return fmt.Errorf("the working directory '%s' is invalid, it needs to be an absolute path", cfg.WorkingDir)
	}
	if cfg.StopSignal != "" {
		if _, err := ParseSignal(cfg.StopSignal); err != nil {
			return err
		}
	}
	for _, e := range cfg.Env {
		if k, _, _ := strings.Cut(e, "="); k == "" {
			return fmt.Errorf("invalid environment variable: %s", e)
		}
	}
	if hc := cfg.Healthcheck; hc != nil {
		if hc.Interval != 0 && hc.Interval < container.MinimumDuration {
			return errdefs.Invalid("Interval in Healthcheck cannot be less than %s", container.MinimumDuration)
		}
		if hc.Timeout != 0 && hc.Timeout < container.MinimumDuration {
			return errdefs.Invalid("Timeout in Healthcheck cannot be less than %s", container.MinimumDuration)
		}
		if hc.Retries < 0 {
			return errdefs.Invalid("Retries in Healthcheck cannot be negative")
		}
		if hc.StartPeriod != 0 && hc.StartPeriod < container.MinimumDuration {
			return fmt.Errorf("StartPeriod in Healthcheck cannot be less than %s", container.MinimumDuration)
		}
		if hc.StartInterval != 0 && hc.StartInterval < container.MinimumDuration {
			return fmt.Errorf("StartInterval in Healthcheck cannot be less than %s", container.MinimumDuration)
		}
	}
	if _, err := command(cfg); err != nil {
		return err
	}
	if len(cfg.Hostname) > maxHostnameLength {
		return fmt.Errorf("invalid hostname %q: longer than %d characters", cfg.Hostname, maxHostnameLength)
	}
	if len(cfg.Domainname) > maxHostnameLength {
		return fmt.Errorf("invalid domainname %q: longer than %d characters", cfg.Domainname, maxHostnameLength)
	}
	return nil
}

// command returns the container's process args: Entrypoint then Cmd (an Entrypoint of [""]
// resets it, as dockerd does).
func command(cfg *container.Config) ([]string, error) {
	ep := cfg.Entrypoint
	if len(ep) == 1 && ep[0] == "" {
		ep = nil
	}
	args := append(append([]string{}, ep...), cfg.Cmd...)
	if len(args) == 0 {
		return nil, errdefs.Invalid("No command specified")
	}
	return args, nil
}

func validateModes(cfg *container.Config, hc *container.HostConfig, create bool) error {
	nm := hc.NetworkMode
	if k, v, ok := strings.Cut(string(nm), ":"); ok && k == "container" && v == "" || string(nm) == "container" {
		return errdefs.Invalid("Invalid network mode: invalid container format container:<name|id>")
	}
	if nm.IsContainer() && create {
		switch {
		case cfg.Hostname != "":
			return fmt.Errorf("conflicting options: hostname and the network mode")
		case len(hc.Links) > 0:
			return fmt.Errorf("conflicting options: container type network can't be used with links. This would result in undefined behavior")
		case len(hc.DNS) > 0:
			return fmt.Errorf("conflicting options: dns and the network mode")
		case len(hc.ExtraHosts) > 0:
			return fmt.Errorf("conflicting options: custom host-to-IP mapping and the network mode")
		case len(hc.PortBindings) > 0 || hc.PublishAllPorts:
			return fmt.Errorf("conflicting options: port publishing and the container type network mode")
		}
		// Ports the request exposes conflict too, but cfg has the image's folded in, and an
		// image's EXPOSE does not: the daemon checks the request's own (ExposeConflict).
	}
	if !hc.IpcMode.Valid() || (hc.IpcMode.IsContainer() && hc.IpcMode.Container() == "") {
		return fmt.Errorf("invalid IPC mode: %v", hc.IpcMode)
	}
	if !hc.PidMode.Valid() {
		return fmt.Errorf("invalid PID mode: %v", hc.PidMode)
	}
	if !hc.UTSMode.Valid() {
		return fmt.Errorf("invalid UTS mode: %v", hc.UTSMode)
	}
	if hc.UTSMode.IsHost() && cfg.Hostname != "" && create {
		return fmt.Errorf("conflicting options: hostname and the UTS mode")
	}
	if !hc.CgroupnsMode.Valid() {
		return fmt.Errorf("invalid cgroup namespace mode: %v", hc.CgroupnsMode)
	}
	if !hc.UsernsMode.Valid() {
		return fmt.Errorf("invalid USER mode: %v: user namespaces are not supported", hc.UsernsMode)
	}
	if !hc.Isolation.IsValid() {
		return fmt.Errorf("invalid isolation '%s' on linux", hc.Isolation)
	}
	return nil
}

func validateResources(r *container.Resources, si *SysInfo) error {
	if r.Memory != 0 && r.Memory < linuxMinMemory {
		return errdefs.Invalid("Minimum memory limit allowed is 6MB")
	}
	if r.Memory > 0 && r.MemorySwap > 0 && r.MemorySwap < r.Memory {
		return errdefs.Invalid("Minimum memoryswap limit should be larger than memory limit, see usage")
	}
	if r.Memory == 0 && r.MemorySwap > 0 {
		return errdefs.Invalid("You should always set the Memory limit when using Memoryswap limit, see usage")
	}
	if r.MemorySwap < -1 {
		return fmt.Errorf("invalid memory swap %d: use -1 for unlimited swap", r.MemorySwap)
	}
	if s := r.MemorySwappiness; s != nil && *s != -1 && (*s < 0 || *s > 100) {
		return errdefs.Invalid("Invalid value: %v, valid memory swappiness range is 0-100", *s)
	}
	if r.MemoryReservation < 0 || (r.MemoryReservation > 0 && r.MemoryReservation < linuxMinMemory) {
		return errdefs.Invalid("Minimum memory reservation allowed is 6MB")
	}
	if r.Memory > 0 && r.MemoryReservation > 0 && r.Memory < r.MemoryReservation {
		return errdefs.Invalid("Minimum memory limit can not be less than memory reservation limit, see usage")
	}
	if r.NanoCPUs > 0 && r.CPUPeriod > 0 {
		return errdefs.Invalid("Conflicting options: Nano CPUs and CPU Period cannot both be set")
	}
	if r.NanoCPUs > 0 && r.CPUQuota > 0 {
		return errdefs.Invalid("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
	}
	if r.NanoCPUs > 0 && !si.CPUCfs {
		return fmt.Errorf("NanoCPUs can not be set, as your kernel does not support CPU CFS scheduler or the cgroup is not mounted")
	}
	if r.NanoCPUs < 0 || r.NanoCPUs > int64(si.NCPU)*1e9 {
		return errdefs.Invalid("Range of CPUs is from 0.01 to %d.00, as there are only %d CPUs available", si.NCPU, si.NCPU)
	}
	if r.CPUShares < 0 {
		return fmt.Errorf("invalid CPU shares (%d): value must be a positive integer", r.CPUShares)
	}
	if r.CPUPeriod != 0 && (r.CPUPeriod < minCPUPeriod || r.CPUPeriod > maxCPUPeriod) {
		return fmt.Errorf("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
	}
	if (r.CPUQuota > 0 && r.CPUQuota < minCPUQuota) || r.CPUQuota < -1 {
		return fmt.Errorf("CPU cfs quota can not be less than 1ms (i.e. 1000)")
	}
	if r.CPURealtimePeriod < 0 || r.CPURealtimeRuntime < -1 {
		return fmt.Errorf("invalid CPU real-time period or runtime: values can not be negative")
	}
	if (r.CPURealtimePeriod > 0 || r.CPURealtimeRuntime > 0) && !si.CPURealtime {
		return errdefs.Invalid("Your kernel does not support CPU real-time scheduler")
	}
	if r.CPURealtimePeriod != 0 && r.CPURealtimeRuntime != 0 && r.CPURealtimeRuntime > r.CPURealtimePeriod {
		return fmt.Errorf("cpu real-time runtime cannot be higher than cpu real-time period")
	}
	if r.CPUCount != 0 || r.CPUPercent != 0 {
		return fmt.Errorf("invalid CPU count or percent: only Windows supports them")
	}
	if err := checkCpuset(r.CpusetCpus, si.Cpus, "cpus", "CPUs"); err != nil {
		return err
	}
	if err := checkCpuset(r.CpusetMems, si.Mems, "mems", "memory nodes"); err != nil {
		return err
	}
	if r.BlkioWeight > 0 && (r.BlkioWeight < minBlkioWeight || r.BlkioWeight > maxBlkioWeight) {
		return errdefs.Invalid("Range of blkio weight is from 10 to 1000")
	}
	for _, wd := range r.BlkioWeightDevice {
		if wd == nil || !path.IsAbs(wd.Path) {
			return fmt.Errorf("invalid blkio weight device: path must be absolute")
		}
		if wd.Weight != 0 && (wd.Weight < minBlkioWeight || wd.Weight > maxBlkioWeight) {
			return errdefs.Invalid("Range of blkio weight is from 10 to 1000")
		}
	}
	for _, list := range [][]*blkioThrottle{throttles(r.BlkioDeviceReadBps), throttles(r.BlkioDeviceWriteBps), throttles(r.BlkioDeviceReadIOps), throttles(r.BlkioDeviceWriteIOps)} {
		for _, t := range list {
			if !path.IsAbs(t.path) {
				return fmt.Errorf("invalid blkio throttle device %q: path must be absolute", t.path)
			}
		}
	}
	if r.IOMaximumBandwidth != 0 || r.IOMaximumIOps != 0 {
		return errdefs.Invalid("Invalid QoS settings: linux does not support Maximum IO Bandwidth or Maximum IO IOps")
	}
	for _, d := range r.Devices {
		if err := validateDeviceMapping(d); err != nil {
			return err
		}
	}
	for _, rule := range r.DeviceCgroupRules {
		if _, err := parseDeviceCgroupRule(rule); err != nil {
			return err
		}
	}
	for _, req := range r.DeviceRequests {
		return fmt.Errorf("could not select device driver %q with capabilities: %v", req.Driver, req.Capabilities)
	}
	for _, u := range r.Ulimits {
		if err := validateUlimit(u); err != nil {
			return err
		}
	}
	return nil
}

func validateUlimit(u *container.Ulimit) error {
	if u == nil {
		return fmt.Errorf("invalid ulimit: null")
	}
	if u.Soft < -1 || u.Hard < -1 {
		return fmt.Errorf("invalid ulimit %s: values can not be below -1 (unlimited)", u.Name)
	}
	if _, err := units.ParseUlimit(fmt.Sprintf("%s=%d:%d", u.Name, u.Soft, u.Hard)); err != nil {
		return err
	}
	return nil
}

// checkCpuset checks that a requested cpuset list only names available CPUs (or nodes).
func checkCpuset(requested, available, key, what string) error {
	if requested == "" {
		return nil
	}
	req, err := parseUintList(requested)
	if err != nil {
		return errdefs.InvalidWrap(err, "Invalid value %s for cpuset %s", requested, key)
	}
	if available == "" {
		return nil
	}
	avail, err := parseUintList(available)
	if err != nil {
		return nil // the host's own list is odd: let the kernel decide
	}
	for _, r := range req {
		ok := false
		for _, a := range avail {
			if r[0] >= a[0] && r[1] <= a[1] {
				ok = true
				break
			}
		}
		if !ok {
			// a range may span several available ones ("0-3" of "0-1,2-3")
			ok = true
			for n := r[0]; n <= r[1] && ok; n++ {
				ok = false
				for _, a := range avail {
					if n >= a[0] && n <= a[1] {
						ok = true
						break
					}
				}
			}
		}
		if !ok {
			return errdefs.Invalid("Requested %s are not available - requested %s, available: %s", what, requested, available)
		}
	}
	return nil
}

// maxCpusetID bounds the numbers of a cpuset list.
const maxCpusetID = 1 << 16

// parseUintList parses a cpuset list ("0-2,4") into ranges.
func parseUintList(val string) ([][2]int, error) {
	bad := fmt.Errorf("invalid format: %s", val)
	var out [][2]int
	for _, r := range strings.Split(val, ",") {
		lo, hi, isRange := strings.Cut(r, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 || lo != strconv.Itoa(a) {
			return nil, bad
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a || hi != strconv.Itoa(b) {
				return nil, bad
			}
		}
		if b > maxCpusetID {
			return nil, fmt.Errorf("value of out range, maximum is %d", maxCpusetID)
		}
		out = append(out, [2]int{a, b})
	}
	return out, nil
}

func validateHostConfig(hc *container.HostConfig) error {
	if err := container.ValidateRestartPolicy(hc.RestartPolicy); err != nil {
		return err
	}
	if hc.AutoRemove && !hc.RestartPolicy.IsNone() {
		return fmt.Errorf("can't create 'AutoRemove' container with restart policy")
	}
	if hc.ShmSize < 0 {
		return fmt.Errorf("SHM size can not be less than 0")
	}
	if hc.OomScoreAdj < -maxOomScoreAdj || hc.OomScoreAdj > maxOomScoreAdj {
		return errdefs.Invalid("Invalid value %d, range for oom score adj is [-1000, 1000]", hc.OomScoreAdj)
	}
	if err := validateCaps(hc.CapAdd, hc.CapDrop); err != nil {
		return err
	}
	so, err := ParseSecurityOpt(hc.SecurityOpt)
	if err != nil {
		return err
	}
	if err := validateSeccompJSON(so.Seccomp); err != nil {
		return err
	}
	dests := make([]string, 0, len(hc.Tmpfs))
	for dest := range hc.Tmpfs {
		dests = append(dests, dest)
	}
	sort.Strings(dests)
	for _, dest := range dests {
		if err := validateMountDestination(dest, mount.TypeTmpfs); err != nil {
			return err
		}
		var opts []string
		if data := hc.Tmpfs[dest]; data != "" {
			opts = strings.Split(data, ",")
		}
		if _, err := tmpfsOptions(opts); err != nil {
			return err
		}
	}
	for _, m := range hc.Mounts {
		if m.Target == "" {
			return fmt.Errorf("invalid mount config: Target must not be empty")
		}
		if err := validateMountDestination(m.Target, m.Type); err != nil {
			return err
		}
		if m.Type == mount.TypeTmpfs {
			if _, err := tmpfsOptions(TmpfsData(m.TmpfsOptions, m.ReadOnly)); err != nil {
				return err
			}
		}
		if m.BindOptions != nil && m.BindOptions.Propagation != "" && !propagations[m.BindOptions.Propagation] {
			return fmt.Errorf("invalid propagation mode: %s", m.BindOptions.Propagation)
		}
	}
	for _, p := range hc.MaskedPaths {
		if !path.IsAbs(p) {
			return fmt.Errorf("invalid masked path %q: must be absolute", p)
		}
	}
	for _, p := range hc.ReadonlyPaths {
		if !path.IsAbs(p) {
			return fmt.Errorf("invalid read-only path %q: must be absolute", p)
		}
	}
	for _, g := range hc.GroupAdd {
		if g == "" {
			return fmt.Errorf("invalid group in GroupAdd: the empty string")
		}
	}
	for k := range hc.Annotations {
		if strings.TrimSpace(k) == "" {
			return fmt.Errorf("invalid Annotations: the empty string is not permitted as an annotation key")
		}
	}
	return nil
}

// ipcSysctls are the sysctls of the IPC namespace (besides fs.mqueue.*).
var ipcSysctls = map[string]bool{
	"kernel.msgmax": true, "kernel.msgmnb": true, "kernel.msgmni": true, "kernel.sem": true,
	"kernel.shmall": true, "kernel.shmmax": true, "kernel.shmmni": true, "kernel.shm_rmid_forced": true,
}

// validateSysctls checks that each sysctl belongs to a namespace the container has of its own,
// with runc's messages (dockerd leaves this to the runtime, which fails at start).
func validateSysctls(hc *container.HostConfig) error {
	keys := make([]string, 0, len(hc.Sysctls))
	for k := range hc.Sysctls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, s := range keys {
		switch {
		case ipcSysctls[s] || strings.HasPrefix(s, "fs.mqueue."):
			if hc.IpcMode.IsHost() {
				return fmt.Errorf("sysctl %q is not allowed in the hosts ipc namespace", s)
			}
		case strings.HasPrefix(s, "net."):
			if hc.NetworkMode.IsHost() {
				return fmt.Errorf("sysctl %q not allowed in host network namespace", s)
			}
		case s == "kernel.domainname" && !hc.UTSMode.IsHost():
		case s == "kernel.hostname" && !hc.UTSMode.IsHost():
			return fmt.Errorf(`sysctl "kernel.hostname" is not allowed as it conflicts with the OCI "hostname" field`)
		default:
			return fmt.Errorf("sysctl %q is not in a separate kernel namespace", s)
		}
		if strings.Contains(s, "..") || strings.ContainsAny(s, "/ \t\n") {
			return fmt.Errorf("sysctl %q is not a valid name", s)
		}
	}
	return nil
}

// ParseSignal parses a stop signal as dockerd does: a name with or without SIG ("TERM",
// "SIGTERM", case-insensitive) or a number.
func ParseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, errdefs.Invalid("Invalid signal: %s", s)
		}
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	switch name {
	case "SIGRTMIN":
		return unix.Signal(34), nil
	case "SIGRTMAX":
		return unix.Signal(64), nil
	}
	if strings.HasPrefix(name, "SIGRTMIN+") || strings.HasPrefix(name, "SIGRTMAX-") {
		off, err := strconv.Atoi(name[9:])
		if err == nil && off >= 0 {
			base, sign := 34, 1
			if strings.HasPrefix(name, "SIGRTMAX-") {
				base, sign = 64, -1
			}
			if n := base + sign*off; n >= 34 && n <= 64 {
				return unix.Signal(n), nil
			}
		}
		return 0, errdefs.Invalid("Invalid signal: %s", s)
	}
	sig := unix.SignalNum(name)
	if sig == 0 {
		return 0, errdefs.Invalid("Invalid signal: %s", s)
	}
	return sig, nil
}
