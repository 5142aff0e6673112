package oci

import (
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth/internal/errdefs"
)

// InitPathInContainer is where the --init binary is mounted.
const InitPathInContainer = "/sbin/docker-init"

// DefaultPathEnv is PATH when the image and the container set none.
const DefaultPathEnv = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// NamespacePaths are the namespaces the daemon resolved for a container to join. A mode that
// joins another container's namespace (container:<id>) needs its path here; an empty path means
// a namespace of the container's own (or the host's, for the "host" modes of HostConfig).
type NamespacePaths struct {
	// Network is the network namespace to join: /proc/<pid>/ns/net of the container of
	// NetworkMode container:<id>, or a namespace the daemon made for a bridge network (a
	// bind-mounted netns file). "" for any other mode means a new, empty network namespace.
	Network string
	// PID is /proc/<pid>/ns/pid of the container of PidMode container:<id>.
	PID string
	// IPC is /proc/<pid>/ns/ipc of the container of IpcMode container:<id>.
	IPC string
}

// Input is everything Generate needs. Config, HostConfig and Rootfs are required.
type Input struct {
	// ID is the container's ID.
	ID string
	// Hostname overrides Config.Hostname (the daemon's default: the first 12 characters of
	// the ID, or the host's name with NetworkMode host). It is ignored with UTSMode host.
	Hostname string
	// Config is the container's config with the image's folded in.
	Config *container.Config
	// HostConfig is the container's host config (Adapt is applied to a copy).
	HostConfig *container.HostConfig
	// Rootfs is the host path of the container's mounted root filesystem.
	Rootfs string
	// Mounts are the binds, volumes and tmpfs mounts of HostConfig.Binds and HostConfig.Mounts,
	// resolved by the daemon. (HostConfig.Tmpfs is read here.)
	Mounts []Mount
	// Namespaces are the namespace paths the daemon resolved.
	Namespaces NamespacePaths
	// CgroupsPath is linux.cgroupsPath (cgroupfs form, e.g. /berth/<id>).
	CgroupsPath string
	// InitPath is the host path of the init binary for HostConfig.Init; it is mounted
	// read-only at /sbin/docker-init and run as PID 1 with "--" and the command after it.
	InitPath string
	// HostsPath, HostnamePath and ResolvConfPath are files the daemon wrote for the container,
	// bound on /etc/hosts, /etc/hostname and /etc/resolv.conf ("" skips one). A mount of the
	// container's own on the same destination wins.
	HostsPath, HostnamePath, ResolvConfPath string
	// ShmPath is a host directory (a tmpfs) to bind on /dev/shm, for IpcMode shareable and
	// container:<id>, so that other containers can share it. Empty: a tmpfs of the container's
	// own (and the host's /dev/shm with IpcMode host).
	ShmPath string
	// SeccompProfile is the daemon's default seccomp profile (--seccomp-profile): its JSON, or
	// SeccompUnconfined; "" is Docker's default profile.
	SeccompProfile string
	// NoNewPrivileges is the daemon's default (--no-new-privileges); security-opt overrides it.
	NoNewPrivileges bool
	// DefaultUlimits are the daemon's default ulimits; the container's own override them by name.
	DefaultUlimits []*container.Ulimit
	// SysInfo describes the host; nil means this host.
	SysInfo *SysInfo
}

// Generate returns the runtime spec of a container, as dockerd's createSpec builds it. It checks
// the settings again, as dockerd does at start (Validate less the create-only checks), and
// resolves the user in the rootfs; it does not change the rootfs: call CreateWorkingDir with
// the spec's user before starting the container. Errors the container's settings caused are of
// kind errdefs.ErrInvalid.
func Generate(in Input) (*specs.Spec, error) {
	if in.Config == nil || in.HostConfig == nil {
		return nil, errors.New("oci: Generate needs a Config and a HostConfig")
	}
	if in.Rootfs == "" {
		return nil, errors.New("oci: Generate needs the rootfs path")
	}
	si, err := cachedSysInfo(in.SysInfo)
	if err != nil {
		return nil, err
	}
	cfg := in.Config
	hcCopy := *in.HostConfig
	hc := &hcCopy
	Adapt(hc, si)
	if err := validate(cfg, hc, si, false); err != nil {
		return nil, err
	}
	so, err := ParseSecurityOpt(hc.SecurityOpt)
	if err != nil {
		return nil, errdefs.Invalid("%s", err.Error())
	}

	s := &specs.Spec{
		Version:     specs.Version,
		Root:        &specs.Root{Path: in.Rootfs, Readonly: hc.ReadonlyRootfs},
		Process:     &specs.Process{Terminal: cfg.Tty},
		Linux:       &specs.Linux{CgroupsPath: in.CgroupsPath, Sysctl: map[string]string{}},
		Annotations: copyMap(hc.Annotations),
	}
	if err := setProcess(s, in, cfg, hc, so); err != nil {
		return nil, err
	}
	if err := setNamespaces(s, in, cfg, hc); err != nil {
		return nil, err
	}
	if err := setMounts(s, in, hc, so); err != nil {
		return nil, err
	}
	if err := setDevicesAndResources(s, hc); err != nil {
		return nil, err
	}
	setSysctls(s, hc)
	if !hc.Privileged {
		s.Linux.MaskedPaths = append([]string(nil), hc.MaskedPaths...)
		s.Linux.ReadonlyPaths = append([]string(nil), hc.ReadonlyPaths...)
	}
	if s.Linux.Seccomp, err = seccompProfile(so.Seccomp, in.SeccompProfile, hc.Privileged, s.Process.Capabilities.Bounding); err != nil {
		return nil, errdefs.InvalidWrap(err, "security-opt seccomp")
	}
	if len(s.Linux.Sysctl) == 0 {
		s.Linux.Sysctl = nil
	}
	return s, nil
}

func copyMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// setProcess fills process: args (with the init), env, cwd, user, capabilities, rlimits,
// no_new_privileges, the OOM score and the console size.
func setProcess(s *specs.Spec, in Input, cfg *container.Config, hc *container.HostConfig, so *SecurityOptions) error {
	p := s.Process
	args, err := command(cfg)
	if err != nil {
		return errdefs.Invalid("%s", err.Error())
	}
	if hc.Init != nil && *hc.Init && hc.PidMode.IsPrivate() {
		if in.InitPath == "" {
			return errors.New("oci: --init requested but the daemon has no init binary")
		}
		args = append([]string{InitPathInContainer, "--"}, args...)
	}
	p.Args = args
	p.Cwd = cfg.WorkingDir
	if p.Cwd == "" {
		p.Cwd = "/"
	}
	if cs := hc.ConsoleSize; cfg.Tty && (cs[0] > 0 || cs[1] > 0) {
		p.ConsoleSize = &specs.Box{Height: cs[0], Width: cs[1]}
	}

	user, err := ResolveUser(in.Rootfs, cfg.User, hc.GroupAdd)
	if err != nil {
		return err
	}
	p.User = user.User

	env := []string{"PATH=" + DefaultPathEnv, "HOSTNAME=" + hostname(in, cfg)}
	if cfg.Tty {
		env = append(env, "TERM=xterm")
	}
	env = replaceOrAppendEnv(env, cfg.Env)
	if !hasEnv(env, "HOME") {
		env = append(env, "HOME="+user.Home)
	}
	p.Env = env

	capList, err := Capabilities(hc.CapAdd, hc.CapDrop, hc.Privileged)
	if err != nil {
		return errdefs.Invalid("%s", err.Error())
	}
	p.Capabilities = &specs.LinuxCapabilities{
		Bounding:  capList,
		Effective: append([]string(nil), capList...),
		Permitted: append([]string(nil), capList...),
	}

	p.NoNewPrivileges = in.NoNewPrivileges
	if so.NoNewPrivileges != nil {
		p.NoNewPrivileges = *so.NoNewPrivileges
	}
	p.Rlimits = rlimits(in.DefaultUlimits, hc.Ulimits)
	score := hc.OomScoreAdj
	p.OOMScoreAdj = &score
	return nil
}

// hostname is the container's hostname: Input.Hostname, else Config.Hostname.
func hostname(in Input, cfg *container.Config) string {
	if in.Hostname != "" {
		return in.Hostname
	}
	return cfg.Hostname
}

// replaceOrAppendEnv overrides defaults with overrides by name; an override without "=" unsets
// the variable (dockerd's ReplaceOrAppendEnvValues).
func replaceOrAppendEnv(defaults, overrides []string) []string {
	out := append([]string(nil), defaults...)
	index := map[string]int{}
	for i, e := range out {
		k, _, _ := strings.Cut(e, "=")
		index[k] = i
	}
	for _, v := range overrides {
		k, _, hasValue := strings.Cut(v, "=")
		i, exists := index[k]
		switch {
		case !hasValue:
			if exists {
				out[i] = ""
			}
		case exists:
			out[i] = v
		default:
			out = append(out, v)
			index[k] = len(out) - 1
		}
	}
	kept := out[:0]
	for _, e := range out {
		if e != "" {
			kept = append(kept, e)
		}
	}
	return kept
}

func hasEnv(env []string, key string) bool {
	for _, e := range env {
		if k, _, _ := strings.Cut(e, "="); k == key {
			return true
		}
	}
	return false
}

// rlimits merges the daemon's default ulimits with the container's (which win by name) into
// RLIMIT_* entries; -1 is unlimited.
func rlimits(defaults, own []*container.Ulimit) []specs.POSIXRlimit {
	var out []specs.POSIXRlimit
	seen := map[string]bool{}
	for _, list := range [][]*container.Ulimit{own, defaults} {
		for _, u := range list {
			if u == nil || seen[u.Name] {
				continue
			}
			seen[u.Name] = true
			out = append(out, specs.POSIXRlimit{Type: "RLIMIT_" + strings.ToUpper(u.Name), Soft: uint64(u.Soft), Hard: uint64(u.Hard)})
		}
	}
	return out
}

// setNamespaces lists the namespaces as dockerd's WithNamespaces, and sets the hostname and
// domain name when the container has a UTS namespace of its own.
func setNamespaces(s *specs.Spec, in Input, cfg *container.Config, hc *container.HostConfig) error {
	ns := []specs.LinuxNamespace{{Type: specs.MountNamespace}}
	join := func(typ specs.LinuxNamespaceType, p, mode string) error {
		if p == "" {
			return fmt.Errorf("oci: %s mode %s needs the path of the namespace to join", typ, mode)
		}
		if !path.IsAbs(p) {
			return fmt.Errorf("oci: %s namespace path %q is not absolute", typ, p)
		}
		ns = append(ns, specs.LinuxNamespace{Type: typ, Path: p})
		return nil
	}
	switch nm := hc.NetworkMode; {
	case nm.IsHost():
	case nm.IsContainer():
		if err := join(specs.NetworkNamespace, in.Namespaces.Network, string(nm)); err != nil {
			return err
		}
	default:
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: in.Namespaces.Network})
	}
	if !hc.UTSMode.IsHost() {
		ns = append(ns, specs.LinuxNamespace{Type: specs.UTSNamespace})
		s.Hostname = hostname(in, cfg)
		s.Domainname = cfg.Domainname
	}
	switch pm := hc.PidMode; {
	case pm.IsHost():
	case pm.IsContainer():
		if err := join(specs.PIDNamespace, in.Namespaces.PID, string(pm)); err != nil {
			return err
		}
	default:
		ns = append(ns, specs.LinuxNamespace{Type: specs.PIDNamespace})
	}
	switch im := hc.IpcMode; {
	case im.IsHost():
	case im.IsContainer():
		if err := join(specs.IPCNamespace, in.Namespaces.IPC, string(im)); err != nil {
			return err
		}
	default:
		ns = append(ns, specs.LinuxNamespace{Type: specs.IPCNamespace})
	}
	if hc.CgroupnsMode.IsPrivate() {
		ns = append(ns, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	s.Linux.Namespaces = ns
	return nil
}

// setMounts builds the mount list as dockerd's WithMounts: the default mounts (minus those a
// mount of the container replaces, everything under /dev if it mounts /dev, and /dev/shm with
// IpcMode none), the init binary, then the container's mounts sorted parents first.
func setMounts(s *specs.Spec, in Input, hc *container.HostConfig, so *SecurityOptions) error {
	var user []specs.Mount
	rootProp := ""
	addBind := func(m Mount) error {
		if err := validateMountDestination(m.Destination, mount.TypeBind); err != nil {
			return errdefs.Invalid("%s", err.Error())
		}
		if !path.IsAbs(m.Source) {
			return errdefs.Invalid("invalid mount source %q for %s: must be an absolute host path", m.Source, m.Destination)
		}
		opts, err := bindMountOptions(m)
		if err != nil {
			return errdefs.Invalid("%s", err.Error())
		}
		switch m.Propagation {
		case mount.PropagationShared, mount.PropagationRShared:
			if err := checkSourcePropagation(m.Source, m.Propagation); err != nil {
				return err
			}
			if rootProp != "shared" && rootProp != "rshared" {
				rootProp = "shared"
			}
		case mount.PropagationSlave, mount.PropagationRSlave:
			if err := checkSourcePropagation(m.Source, m.Propagation); err != nil {
				return err
			}
			if rootProp == "" {
				rootProp = "rslave"
			}
		}
		user = append(user, specs.Mount{Destination: path.Clean(m.Destination), Type: "bind", Source: m.Source, Options: opts})
		return nil
	}
	addTmpfs := func(dest string, opts []string) error {
		if err := validateMountDestination(dest, mount.TypeTmpfs); err != nil {
			return errdefs.Invalid("%s", err.Error())
		}
		merged, err := tmpfsOptions(opts)
		if err != nil {
			return errdefs.Invalid("%s", err.Error())
		}
		user = append(user, specs.Mount{Destination: path.Clean(dest), Type: "tmpfs", Source: "tmpfs", Options: merged})
		return nil
	}

	own := map[string]bool{}
	for _, m := range in.Mounts {
		own[path.Clean(m.Destination)] = true
	}
	for dest := range hc.Tmpfs {
		own[path.Clean(dest)] = true
	}
	// The daemon's files for /etc, unless the container mounts its own there.
	for _, f := range []struct{ src, dest string }{
		{in.ResolvConfPath, "/etc/resolv.conf"}, {in.HostnamePath, "/etc/hostname"}, {in.HostsPath, "/etc/hosts"},
	} {
		if f.src == "" || own[f.dest] {
			continue
		}
		if err := addBind(Mount{Type: mount.TypeBind, Source: f.src, Destination: f.dest, ReadOnly: hc.ReadonlyRootfs}); err != nil {
			return err
		}
	}
	// /dev/shm shared with other containers or the host.
	shm := in.ShmPath
	if shm == "" && hc.IpcMode.IsHost() {
		shm = "/dev/shm"
	}
	if shm != "" && !hc.IpcMode.IsPrivate() && !hc.IpcMode.IsNone() && !own["/dev/shm"] {
		if err := addBind(Mount{Type: mount.TypeBind, Source: shm, Destination: "/dev/shm", Options: []string{"nosuid", "nodev", "noexec"}}); err != nil {
			return err
		}
	}
	dests := make([]string, 0, len(hc.Tmpfs))
	for dest := range hc.Tmpfs {
		dests = append(dests, dest)
	}
	sort.Strings(dests)
	for _, dest := range dests {
		var opts []string
		if data := hc.Tmpfs[dest]; data != "" {
			opts = strings.Split(data, ",")
		}
		if err := addTmpfs(dest, opts); err != nil {
			return err
		}
	}
	for _, m := range in.Mounts {
		switch m.Type {
		case mount.TypeTmpfs:
			opts := append([]string(nil), m.Options...)
			if m.ReadOnly {
				opts = append(opts, "ro")
			}
			if err := addTmpfs(m.Destination, opts); err != nil {
				return err
			}
		case mount.TypeBind, mount.TypeVolume, "":
			if err := addBind(m); err != nil {
				return err
			}
		default:
			return errdefs.Invalid("mount type %q is not supported (%s)", m.Type, m.Destination)
		}
	}
	sort.SliceStable(user, func(i, j int) bool { return mountDepth(user[i].Destination) < mountDepth(user[j].Destination) })
	seen := map[string]bool{}
	for _, m := range user {
		if seen[m.Destination] {
			return errdefs.Invalid("Duplicate mount point: %s", m.Destination)
		}
		seen[m.Destination] = true
	}

	var mounts []specs.Mount
	ownDev := seen["/dev"]
	writableCgroups := hc.Privileged
	if so.WritableCgroups != nil {
		writableCgroups = *so.WritableCgroups
	}
	for _, m := range defaultMounts() {
		if seen[m.Destination] || (ownDev && strings.HasPrefix(m.Destination, "/dev/")) {
			continue
		}
		switch m.Destination {
		case "/dev/shm":
			if hc.IpcMode.IsNone() {
				continue
			}
			m.Options = append(m.Options, fmt.Sprintf("size=%d", hc.ShmSize))
		case "/sys":
			if hc.Privileged {
				m.Options = withoutOption(m.Options, "ro")
			}
		case "/sys/fs/cgroup":
			if writableCgroups {
				m.Options = withoutOption(m.Options, "ro")
			}
		}
		if hc.ReadonlyRootfs && m.Destination != "/proc" && !strings.HasPrefix(m.Destination, "/dev") && !hasOption(m.Options, "ro") && !(m.Type == "cgroup" && writableCgroups) && !(m.Type == "sysfs" && hc.Privileged) {
			m.Options = append(m.Options, "ro")
		}
		mounts = append(mounts, m)
	}
	if hc.Init != nil && *hc.Init && hc.PidMode.IsPrivate() {
		if _, err := os.Stat(in.InitPath); err != nil {
			return fmt.Errorf("oci: init binary: %w", err)
		}
		mounts = append(mounts, specs.Mount{Destination: InitPathInContainer, Type: "bind", Source: in.InitPath, Options: []string{"bind", "ro"}})
	}
	s.Mounts = append(mounts, user...)
	s.Linux.RootfsPropagation = rootProp
	return nil
}

func hasOption(opts []string, o string) bool {
	for _, x := range opts {
		if x == o {
			return true
		}
	}
	return false
}

func withoutOption(opts []string, o string) []string {
	var out []string
	for _, x := range opts {
		if x != o {
			out = append(out, x)
		}
	}
	return out
}

// setDevicesAndResources sets linux.devices and linux.resources as dockerd's WithDevices and
// WithResources: a privileged container gets every host device and may use any; another gets
// Docker's default rules plus its --device mappings and --device-cgroup-rule rules.
func setDevicesAndResources(s *specs.Spec, hc *container.HostConfig) error {
	res, err := resources(&hc.Resources)
	if err != nil {
		return err
	}
	var devs []specs.LinuxDevice
	rules := defaultDeviceRules()
	if hc.Privileged {
		if devs, err = hostDevices(); err != nil {
			return err
		}
		for _, d := range hc.Devices {
			if d.PathInContainer == "" || d.PathInContainer == d.PathOnHost {
				continue // already there
			}
			more, _, err := devicesFromMapping(d)
			if err != nil {
				return errdefs.Invalid("%s", err.Error())
			}
			devs = append(devs, more...)
		}
		rules = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	} else {
		for _, d := range hc.Devices {
			more, moreRules, err := devicesFromMapping(d)
			if err != nil {
				return errdefs.Invalid("%s", err.Error())
			}
			devs = append(devs, more...)
			rules = append(rules, moreRules...)
		}
		for _, r := range hc.DeviceCgroupRules {
			rule, err := parseDeviceCgroupRule(r)
			if err != nil {
				return errdefs.Invalid("%s", err.Error())
			}
			rules = append(rules, rule)
		}
	}
	s.Linux.Devices = devs
	res.Devices = rules
	s.Linux.Resources = res
	return nil
}

// setSysctls sets dockerd's default sysctls for a container with a network namespace of its own
// (unprivileged ping and ports below 1024), then the container's.
func setSysctls(s *specs.Spec, hc *container.HostConfig) {
	if hc.NetworkMode.IsPrivate() {
		for k, v := range map[string]string{
			"net.ipv4.ping_group_range":           "0 2147483647",
			"net.ipv4.ip_unprivileged_port_start": "0",
		} {
			if _, err := os.Stat("/proc/sys/" + strings.ReplaceAll(k, ".", "/")); err == nil {
				s.Linux.Sysctl[k] = v
			}
		}
	}
	for k, v := range hc.Sysctls {
		s.Linux.Sysctl[k] = v
	}
}
