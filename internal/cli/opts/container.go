package opts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/docker/go-connections/nat"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/spf13/pflag"
)

// ContainerOptions are the container flags of run and create.
type ContainerOptions struct {
	attach            *List
	volumes           *List
	tmpfs             *List
	mounts            Mounts
	blkioWeightDevice WeightDevices
	deviceReadBps     *ThrottleDevices
	deviceWriteBps    *ThrottleDevices
	deviceReadIOps    *ThrottleDevices
	deviceWriteIOps   *ThrottleDevices
	links             *List
	aliases           *List
	linkLocalIPs      *List
	env               *List
	labels            *List
	deviceCgroupRules *List
	devices           *List
	gpus              GPUs
	ulimits           *Ulimits
	sysctls           *Map
	annotations       *Map
	publish           *List
	expose            *List
	dns               *List
	dnsSearch         *List
	dnsOptions        *List
	extraHosts        *List
	volumesFrom       *List
	envFile           *List
	capAdd            *List
	capDrop           *List
	groupAdd          *List
	securityOpt       *List
	storageOpt        *List
	labelsFile        *List
	loggingOpts       *List
	netMode           Networks

	privileged          bool
	pidMode             string
	utsMode             string
	usernsMode          string
	cgroupnsMode        string
	publishAll          bool
	stdin               bool
	tty                 bool
	oomKillDisable      bool
	oomScoreAdj         int
	containerIDFile     string
	entrypoint          string
	hostname            string
	domainname          string
	memory              MemBytes
	memoryReservation   MemBytes
	memorySwap          MemSwapBytes
	user                string
	workingDir          string
	cpuCount            int64
	cpuShares           int64
	cpuPercent          int64
	cpuPeriod           int64
	cpuRealtimePeriod   int64
	cpuRealtimeRuntime  int64
	cpuQuota            int64
	cpus                NanoCPUs
	cpusetCpus          string
	cpusetMems          string
	blkioWeight         uint16
	ioMaxBandwidth      MemBytes
	ioMaxIOps           uint64
	swappiness          int64
	macAddress          string
	ipv4Address         string
	ipv6Address         string
	ipcMode             string
	pidsLimit           int64
	restartPolicy       string
	readonlyRootfs      bool
	loggingDriver       string
	cgroupParent        string
	volumeDriver        string
	stopSignal          string
	stopTimeout         int
	isolation           string
	shmSize             MemBytes
	noHealthcheck       bool
	healthCmd           string
	healthInterval      time.Duration
	healthTimeout       time.Duration
	healthStartPeriod   time.Duration
	healthStartInterval time.Duration
	healthRetries       int
	runtime             string
	autoRemove          bool
	init                bool
	useAPISocket        bool
}

// AddContainerFlags defines the container flags of run and create on fs (docker's names,
// shorthands and help texts) and returns the options they fill.
func AddContainerFlags(fs *pflag.FlagSet) *ContainerOptions {
	o := &ContainerOptions{
		attach:            NewList(ValidateAttach),
		volumes:           NewList(nil),
		tmpfs:             NewList(nil),
		deviceReadBps:     NewThrottleDevices(false),
		deviceWriteBps:    NewThrottleDevices(false),
		deviceReadIOps:    NewThrottleDevices(true),
		deviceWriteIOps:   NewThrottleDevices(true),
		links:             NewList(ValidateLink),
		aliases:           NewList(nil),
		linkLocalIPs:      NewList(nil),
		env:               NewList(ValidateEnv),
		labels:            NewList(ValidateLabel),
		deviceCgroupRules: NewList(ValidateDeviceCgroupRule),
		devices:           NewList(nil),
		ulimits:           NewUlimits(),
		sysctls:           NewMap(ValidateSysctl),
		annotations:       NewMap(nil),
		publish:           NewList(nil),
		expose:            NewList(nil),
		dns:               NewList(ValidateIPAddress),
		dnsSearch:         NewList(ValidateDNSSearch),
		dnsOptions:        NewList(nil),
		extraHosts:        NewList(ValidateExtraHost),
		volumesFrom:       NewList(nil),
		envFile:           NewList(nil),
		capAdd:            NewList(nil),
		capDrop:           NewList(nil),
		groupAdd:          NewList(nil),
		securityOpt:       NewList(nil),
		storageOpt:        NewList(nil),
		labelsFile:        NewList(nil),
		loggingOpts:       NewList(nil),
	}

	// General purpose.
	fs.VarP(o.attach, "attach", "a", "Attach to STDIN, STDOUT or STDERR")
	fs.Var(o.deviceCgroupRules, "device-cgroup-rule", "Add a rule to the cgroup allowed devices list")
	fs.Var(o.devices, "device", "Add a host device to the container")
	fs.Var(&o.gpus, "gpus", "GPU devices to add to the container ('all' to pass all GPUs)")
	fs.VarP(o.env, "env", "e", "Set environment variables")
	fs.Var(o.envFile, "env-file", "Read in a file of environment variables")
	fs.StringVar(&o.entrypoint, "entrypoint", "", "Overwrite the default ENTRYPOINT of the image")
	fs.Var(o.groupAdd, "group-add", "Add additional groups to join")
	fs.StringVarP(&o.hostname, "hostname", "h", "", "Container host name")
	fs.StringVar(&o.domainname, "domainname", "", "Container NIS domain name")
	fs.BoolVarP(&o.stdin, "interactive", "i", false, "Keep STDIN open even if not attached")
	fs.VarP(o.labels, "label", "l", "Set meta data on a container")
	fs.Var(o.labelsFile, "label-file", "Read in a line delimited file of labels")
	fs.BoolVar(&o.readonlyRootfs, "read-only", false, "Mount the container's root filesystem as read only")
	fs.StringVar(&o.restartPolicy, "restart", "no", "Restart policy to apply when a container exits")
	fs.StringVar(&o.stopSignal, "stop-signal", "", "Signal to stop the container")
	fs.IntVar(&o.stopTimeout, "stop-timeout", 0, "Timeout (in seconds) to stop a container")
	fs.Var(o.sysctls, "sysctl", "Sysctl options")
	fs.BoolVarP(&o.tty, "tty", "t", false, "Allocate a pseudo-TTY")
	fs.Var(o.ulimits, "ulimit", "Ulimit options")
	fs.StringVarP(&o.user, "user", "u", "", "Username or UID (format: <name|uid>[:<group|gid>])")
	fs.StringVarP(&o.workingDir, "workdir", "w", "", "Working directory inside the container")
	fs.BoolVar(&o.autoRemove, "rm", false, "Automatically remove the container and its associated anonymous volumes when it exits")
	fs.BoolVar(&o.useAPISocket, "use-api-socket", false, "Bind mount Docker API socket and required auth")

	// Security.
	fs.Var(o.capAdd, "cap-add", "Add Linux capabilities")
	fs.Var(o.capDrop, "cap-drop", "Drop Linux capabilities")
	fs.BoolVar(&o.privileged, "privileged", false, "Give extended privileges to this container")
	fs.Var(o.securityOpt, "security-opt", "Security Options")
	fs.StringVar(&o.usernsMode, "userns", "", "User namespace to use")
	fs.StringVar(&o.cgroupnsMode, "cgroupns", "", `Cgroup namespace to use (host|private)
'host':    Run the container in the Docker host's cgroup namespace
'private': Run the container in its own private cgroup namespace
'':        Use the cgroup namespace as configured by the
           default-cgroupns-mode option on the daemon (default)`)

	// Network and published ports.
	fs.Var(o.extraHosts, "add-host", "Add a custom host-to-IP mapping (host:ip)")
	fs.Var(o.dns, "dns", "Set custom DNS servers")
	fs.Var(o.dnsOptions, "dns-opt", "Set DNS options")
	fs.Var(o.dnsOptions, "dns-option", "Set DNS options")
	_ = fs.MarkHidden("dns-opt")
	fs.Var(o.dnsSearch, "dns-search", "Set custom DNS search domains")
	fs.Var(o.expose, "expose", "Expose a port or a range of ports")
	fs.StringVar(&o.ipv4Address, "ip", "", "IPv4 address (e.g., 172.30.100.104)")
	fs.StringVar(&o.ipv6Address, "ip6", "", "IPv6 address (e.g., 2001:db8::33)")
	fs.Var(o.links, "link", "Add link to another container")
	fs.Var(o.linkLocalIPs, "link-local-ip", "Container IPv4/IPv6 link-local addresses")
	fs.StringVar(&o.macAddress, "mac-address", "", "Container MAC address (e.g., 92:d0:c6:0a:29:33)")
	fs.VarP(o.publish, "publish", "p", "Publish a container's port(s) to the host")
	fs.BoolVarP(&o.publishAll, "publish-all", "P", false, "Publish all exposed ports to random ports")
	fs.Var(&o.netMode, "net", "Connect a container to a network")
	fs.Var(&o.netMode, "network", "Connect a container to a network")
	_ = fs.MarkHidden("net")
	fs.Var(o.aliases, "net-alias", "Add network-scoped alias for the container")
	fs.Var(o.aliases, "network-alias", "Add network-scoped alias for the container")
	_ = fs.MarkHidden("net-alias")

	// Logging and storage.
	fs.StringVar(&o.loggingDriver, "log-driver", "", "Logging driver for the container")
	fs.StringVar(&o.volumeDriver, "volume-driver", "", "Optional volume driver for the container")
	fs.Var(o.loggingOpts, "log-opt", "Log driver options")
	fs.Var(o.storageOpt, "storage-opt", "Storage driver options for the container")
	fs.Var(o.tmpfs, "tmpfs", "Mount a tmpfs directory")
	fs.Var(o.volumesFrom, "volumes-from", "Mount volumes from the specified container(s)")
	fs.VarP(o.volumes, "volume", "v", "Bind mount a volume")
	fs.Var(&o.mounts, "mount", "Attach a filesystem mount to the container")

	// Health checks.
	fs.StringVar(&o.healthCmd, "health-cmd", "", "Command to run to check health")
	fs.DurationVar(&o.healthInterval, "health-interval", 0, "Time between running the check (ms|s|m|h) (default 0s)")
	fs.IntVar(&o.healthRetries, "health-retries", 0, "Consecutive failures needed to report unhealthy")
	fs.DurationVar(&o.healthTimeout, "health-timeout", 0, "Maximum time to allow one check to run (ms|s|m|h) (default 0s)")
	fs.DurationVar(&o.healthStartPeriod, "health-start-period", 0, "Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)")
	fs.DurationVar(&o.healthStartInterval, "health-start-interval", 0, "Time between running the check during the start period (ms|s|m|h) (default 0s)")
	fs.BoolVar(&o.noHealthcheck, "no-healthcheck", false, "Disable any container-specified HEALTHCHECK")

	// Resources.
	fs.Uint16Var(&o.blkioWeight, "blkio-weight", 0, "Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)")
	fs.Var(&o.blkioWeightDevice, "blkio-weight-device", "Block IO weight (relative device weight)")
	fs.StringVar(&o.containerIDFile, "cidfile", "", "Write the container ID to the file")
	fs.StringVar(&o.cpusetCpus, "cpuset-cpus", "", "CPUs in which to allow execution (0-3, 0,1)")
	fs.StringVar(&o.cpusetMems, "cpuset-mems", "", "MEMs in which to allow execution (0-3, 0,1)")
	fs.Int64Var(&o.cpuCount, "cpu-count", 0, "CPU count (Windows only)")
	fs.Int64Var(&o.cpuPercent, "cpu-percent", 0, "CPU percent (Windows only)")
	fs.Int64Var(&o.cpuPeriod, "cpu-period", 0, "Limit CPU CFS (Completely Fair Scheduler) period")
	fs.Int64Var(&o.cpuQuota, "cpu-quota", 0, "Limit CPU CFS (Completely Fair Scheduler) quota")
	fs.Int64Var(&o.cpuRealtimePeriod, "cpu-rt-period", 0, "Limit CPU real-time period in microseconds")
	fs.Int64Var(&o.cpuRealtimeRuntime, "cpu-rt-runtime", 0, "Limit CPU real-time runtime in microseconds")
	fs.Int64VarP(&o.cpuShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	fs.Var(&o.cpus, "cpus", "Number of CPUs")
	fs.Var(o.deviceReadBps, "device-read-bps", "Limit read rate (bytes per second) from a device")
	fs.Var(o.deviceReadIOps, "device-read-iops", "Limit read rate (IO per second) from a device")
	fs.Var(o.deviceWriteBps, "device-write-bps", "Limit write rate (bytes per second) to a device")
	fs.Var(o.deviceWriteIOps, "device-write-iops", "Limit write rate (IO per second) to a device")
	fs.Var(&o.ioMaxBandwidth, "io-maxbandwidth", "Maximum IO bandwidth limit for the system drive (Windows only)")
	fs.Uint64Var(&o.ioMaxIOps, "io-maxiops", 0, "Maximum IOps limit for the system drive (Windows only)")
	var kernelMemory MemBytes
	fs.Var(&kernelMemory, "kernel-memory", "Kernel memory limit")
	fs.VarP(&o.memory, "memory", "m", "Memory limit")
	fs.Var(&o.memoryReservation, "memory-reservation", "Memory soft limit")
	fs.Var(&o.memorySwap, "memory-swap", "Swap limit equal to memory plus swap: '-1' to enable unlimited swap")
	fs.Int64Var(&o.swappiness, "memory-swappiness", -1, "Tune container memory swappiness (0 to 100)")
	fs.BoolVar(&o.oomKillDisable, "oom-kill-disable", false, "Disable OOM Killer")
	fs.IntVar(&o.oomScoreAdj, "oom-score-adj", 0, "Tune host's OOM preferences (-1000 to 1000)")
	fs.Int64Var(&o.pidsLimit, "pids-limit", 0, "Tune container pids limit (set -1 for unlimited)")

	// Low-level execution.
	fs.StringVar(&o.cgroupParent, "cgroup-parent", "", "Optional parent cgroup for the container")
	fs.StringVar(&o.ipcMode, "ipc", "", "IPC mode to use")
	fs.StringVar(&o.isolation, "isolation", "", "Container isolation technology")
	fs.StringVar(&o.pidMode, "pid", "", "PID namespace to use")
	fs.Var(&o.shmSize, "shm-size", "Size of /dev/shm")
	fs.StringVar(&o.utsMode, "uts", "", "UTS namespace to use")
	fs.StringVar(&o.runtime, "runtime", "", "Runtime to use for this container")
	fs.BoolVar(&o.init, "init", false, "Run an init inside the container that forwards signals and reaps processes")
	fs.Var(o.annotations, "annotation", "Add an annotation to the container (passed through to the OCI runtime)")
	return o
}

// ContainerConfig is what a create request carries.
type ContainerConfig struct {
	Config           *container.Config
	HostConfig       *container.HostConfig
	NetworkingConfig *network.NetworkingConfig
}

// Attached reports whether -a named any stream.
func (o *ContainerOptions) Attached() bool { return o.attach.Len() > 0 }

// Parse builds the create request of image with the command args from the flags set on fs,
// as docker's CLI does.
func (o *ContainerOptions) Parse(fs *pflag.FlagSet, image string, args []string) (*ContainerConfig, error) {
	attachStdin, attachStdout, attachStderr := o.attach.Has("stdin"), o.attach.Has("stdout"), o.attach.Has("stderr")
	if o.macAddress != "" {
		if _, err := net.ParseMAC(strings.TrimSpace(o.macAddress)); err != nil {
			return nil, fmt.Errorf("%s is not a valid mac address", o.macAddress)
		}
	}
	if o.stdin {
		attachStdin = true
	}
	// Without -a, stdout and stderr are attached.
	if o.attach.Len() == 0 {
		attachStdout, attachStderr = true, true
	}
	if o.swappiness != -1 && (o.swappiness < 0 || o.swappiness > 100) {
		return nil, fmt.Errorf("invalid value: %d. Valid memory swappiness range is 0-100", o.swappiness)
	}

	var binds []string
	volumes := map[string]struct{}{}
	for _, spec := range o.volumes.Values() {
		volumes[spec] = struct{}{}
	}
	for _, spec := range o.volumes.Values() {
		v, err := ParseVolumeSpec(spec)
		if err != nil {
			return nil, err
		}
		if v.Source == "" {
			continue
		}
		bind := spec
		if v.Bind {
			if host, target, ok := strings.Cut(spec, ":"); ok {
				if !filepath.IsAbs(host) && strings.HasPrefix(host, ".") {
					if abs, err := filepath.Abs(host); err == nil {
						host = abs
					}
				}
				bind = host + ":" + target
			}
		}
		// Binds and named volumes go to HostConfig.Binds, not to the image-like Volumes.
		binds = append(binds, bind)
		delete(volumes, spec)
	}

	tmpfs := map[string]string{}
	for _, t := range o.tmpfs.Values() {
		k, v, _ := strings.Cut(t, ":")
		tmpfs[k] = v
	}

	var entrypoint []string
	if o.entrypoint != "" {
		entrypoint = []string{o.entrypoint}
	} else if fs.Changed("entrypoint") {
		// --entrypoint= resets the image's entrypoint.
		entrypoint = []string{""}
	}
	var cmd []string
	if len(args) > 0 {
		cmd = args
	}

	exposed, bindings, err := ParsePorts(o.publish.Values(), o.expose.Values())
	if err != nil {
		return nil, err
	}

	var deviceMappings []container.DeviceMapping
	var cdiDevices []string
	for _, d := range o.devices.Values() {
		if isCDIName(d) {
			cdiDevices = append(cdiDevices, d)
			continue
		}
		valid, err := validateDevicePath(d)
		if err != nil {
			return nil, err
		}
		dm, err := ParseDevice(valid)
		if err != nil {
			return nil, err
		}
		deviceMappings = append(deviceMappings, dm)
	}
	if deviceMappings == nil {
		deviceMappings = []container.DeviceMapping{}
	}

	env, err := ReadEnv(o.envFile.Values(), o.env.Values())
	if err != nil {
		return nil, err
	}
	labels, err := ReadLabels(o.labelsFile.Values(), o.labels.Values())
	if err != nil {
		return nil, err
	}

	pidMode := container.PidMode(o.pidMode)
	if !pidMode.Valid() {
		return nil, errors.New("--pid: invalid PID mode")
	}
	utsMode := container.UTSMode(o.utsMode)
	if !utsMode.Valid() {
		return nil, errors.New("--uts: invalid UTS mode")
	}
	usernsMode := container.UsernsMode(o.usernsMode)
	if !usernsMode.Valid() {
		return nil, errors.New("--userns: invalid USER mode")
	}
	cgroupnsMode := container.CgroupnsMode(o.cgroupnsMode)
	if !cgroupnsMode.Valid() {
		return nil, errors.New("--cgroupns: invalid CGROUP mode")
	}
	restart, err := ParseRestartPolicy(o.restartPolicy)
	if err != nil {
		return nil, err
	}
	logOpts := KVStringsToMap(o.loggingOpts.Values())
	if o.loggingDriver == "none" && o.loggingOpts.Len() > 0 {
		return nil, fmt.Errorf("invalid logging opts for driver %s", o.loggingDriver)
	}
	securityOpts, err := ParseSecurityOpts(o.securityOpt.Values())
	if err != nil {
		return nil, err
	}
	securityOpts, maskedPaths, readonlyPaths := systemPaths(securityOpts)
	storageOpts := map[string]string{}
	for _, s := range o.storageOpt.Values() {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return nil, errors.New("invalid storage option")
		}
		storageOpts[k] = v
	}

	health, err := o.healthConfig()
	if err != nil {
		return nil, err
	}

	deviceRequests := o.gpus.Values()
	if len(cdiDevices) > 0 {
		deviceRequests = append(deviceRequests, container.DeviceRequest{Driver: "cdi", DeviceIDs: cdiDevices})
	}

	swappiness := o.swappiness
	oomKillDisable := o.oomKillDisable
	pidsLimit := o.pidsLimit
	resources := container.Resources{
		CgroupParent:         o.cgroupParent,
		Memory:               o.memory.Value(),
		MemoryReservation:    o.memoryReservation.Value(),
		MemorySwap:           o.memorySwap.Value(),
		MemorySwappiness:     &swappiness,
		OomKillDisable:       &oomKillDisable,
		NanoCPUs:             o.cpus.Value(),
		CPUCount:             o.cpuCount,
		CPUPercent:           o.cpuPercent,
		CPUShares:            o.cpuShares,
		CPUPeriod:            o.cpuPeriod,
		CpusetCpus:           o.cpusetCpus,
		CpusetMems:           o.cpusetMems,
		CPUQuota:             o.cpuQuota,
		CPURealtimePeriod:    o.cpuRealtimePeriod,
		CPURealtimeRuntime:   o.cpuRealtimeRuntime,
		PidsLimit:            &pidsLimit,
		BlkioWeight:          o.blkioWeight,
		BlkioWeightDevice:    o.blkioWeightDevice.List(),
		BlkioDeviceReadBps:   o.deviceReadBps.List(),
		BlkioDeviceWriteBps:  o.deviceWriteBps.List(),
		BlkioDeviceReadIOps:  o.deviceReadIOps.List(),
		BlkioDeviceWriteIOps: o.deviceWriteIOps.List(),
		IOMaximumIOps:        o.ioMaxIOps,
		IOMaximumBandwidth:   uint64(o.ioMaxBandwidth),
		Ulimits:              o.ulimits.List(),
		DeviceCgroupRules:    o.deviceCgroupRules.Values(),
		Devices:              deviceMappings,
		DeviceRequests:       deviceRequests,
	}

	config := &container.Config{
		Hostname:     o.hostname,
		Domainname:   o.domainname,
		ExposedPorts: exposed,
		User:         o.user,
		Tty:          o.tty,
		OpenStdin:    o.stdin,
		AttachStdin:  attachStdin,
		AttachStdout: attachStdout,
		AttachStderr: attachStderr,
		Env:          env,
		Cmd:          cmd,
		Image:        image,
		Volumes:      volumes,
		Entrypoint:   entrypoint,
		WorkingDir:   o.workingDir,
		Labels:       KVStringsToMap(labels),
		StopSignal:   o.stopSignal,
		Healthcheck:  health,
	}
	if fs.Changed("stop-timeout") {
		t := o.stopTimeout
		config.StopTimeout = &t
	}

	dns, err := toAddrs(o.dns.ValuesOrEmpty())
	if err != nil {
		return nil, err
	}
	hostConfig := &container.HostConfig{
		Binds:           binds,
		ContainerIDFile: o.containerIDFile,
		OomScoreAdj:     o.oomScoreAdj,
		AutoRemove:      o.autoRemove,
		Privileged:      o.privileged,
		PortBindings:    bindings,
		Links:           o.links.Values(),
		PublishAllPorts: o.publishAll,
		DNS:             dns,
		DNSSearch:       o.dnsSearch.ValuesOrEmpty(),
		DNSOptions:      o.dnsOptions.ValuesOrEmpty(),
		ExtraHosts:      o.extraHosts.Values(),
		VolumesFrom:     o.volumesFrom.Values(),
		IpcMode:         container.IpcMode(o.ipcMode),
		NetworkMode:     container.NetworkMode(o.netMode.NetworkMode()),
		PidMode:         pidMode,
		UTSMode:         utsMode,
		UsernsMode:      usernsMode,
		CgroupnsMode:    cgroupnsMode,
		CapAdd:          o.capAdd.Values(),
		CapDrop:         o.capDrop.Values(),
		GroupAdd:        o.groupAdd.Values(),
		RestartPolicy:   restart,
		SecurityOpt:     securityOpts,
		StorageOpt:      storageOpts,
		ReadonlyRootfs:  o.readonlyRootfs,
		LogConfig:       container.LogConfig{Type: o.loggingDriver, Config: logOpts},
		VolumeDriver:    o.volumeDriver,
		Isolation:       container.Isolation(o.isolation),
		ShmSize:         o.shmSize.Value(),
		Resources:       resources,
		Tmpfs:           tmpfs,
		Sysctls:         o.sysctls.Values(),
		Runtime:         o.runtime,
		Mounts:          o.mounts.Values(),
		MaskedPaths:     maskedPaths,
		ReadonlyPaths:   readonlyPaths,
		Annotations:     o.annotations.Values(),
	}
	if o.autoRemove && !hostConfig.RestartPolicy.IsNone() {
		return nil, errors.New("conflicting options: cannot specify both --restart and --rm")
	}
	if fs.Changed("init") {
		init := o.init
		hostConfig.Init = &init
	}
	// Stdin attached in the foreground closes when the client goes.
	if config.OpenStdin && config.AttachStdin {
		config.StdinOnce = true
	}
	endpoints, err := o.endpoints()
	if err != nil {
		return nil, err
	}
	return &ContainerConfig{
		Config:           config,
		HostConfig:       hostConfig,
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: endpoints},
	}, nil
}

// healthConfig is the Healthcheck of the --health-* and --no-healthcheck flags (nil when
// none is set).
func (o *ContainerOptions) healthConfig() (*container.HealthConfig, error) {
	have := o.healthCmd != "" || o.healthInterval != 0 || o.healthTimeout != 0 ||
		o.healthStartPeriod != 0 || o.healthRetries != 0 || o.healthStartInterval != 0
	if o.noHealthcheck {
		if have {
			return nil, errors.New("--no-healthcheck conflicts with --health-* options")
		}
		return &container.HealthConfig{Test: []string{"NONE"}}, nil
	}
	if !have {
		return nil, nil
	}
	for _, c := range []struct {
		name string
		neg  bool
	}{
		{"--health-interval", o.healthInterval < 0},
		{"--health-timeout", o.healthTimeout < 0},
		{"--health-retries", o.healthRetries < 0},
		{"--health-start-period", o.healthStartPeriod < 0},
		{"--health-start-interval", o.healthStartInterval < 0},
	} {
		if c.neg {
			return nil, fmt.Errorf("%s cannot be negative", c.name)
		}
	}
	var probe []string
	if o.healthCmd != "" {
		probe = []string{"CMD-SHELL", o.healthCmd}
	}
	return &container.HealthConfig{
		Test:          probe,
		Interval:      o.healthInterval,
		Timeout:       o.healthTimeout,
		StartPeriod:   o.healthStartPeriod,
		StartInterval: o.healthStartInterval,
		Retries:       o.healthRetries,
	}, nil
}

// endpoints are the EndpointsConfig of the --network flags and of --network-alias,
// --link, --ip, --ip6, --mac-address and --link-local-ip (which apply to the first network).
func (o *ContainerOptions) endpoints() (map[string]*network.EndpointSettings, error) {
	nets := o.netMode.Values()
	endpoints := map[string]*network.EndpointSettings{}
	if len(nets) == 0 {
		na := NetworkAttachment{Target: "default"}
		if err := o.applyTo(&na); err != nil {
			return nil, err
		}
		ep, err := endpointSettings(na)
		if err != nil {
			return nil, err
		}
		endpoints["default"] = ep
		return endpoints, nil
	}
	var userDefined, builtin bool
	for i, na := range nets {
		if container.NetworkMode(na.Target).IsUserDefined() {
			userDefined = true
		} else {
			builtin = true
		}
		if i == 0 {
			if err := o.applyTo(&na); err != nil {
				return nil, err
			}
		}
		ep, err := endpointSettings(na)
		if err != nil {
			return nil, err
		}
		if _, dup := endpoints[na.Target]; dup {
			return nil, fmt.Errorf("network %q is specified multiple times", na.Target)
		}
		// One network without options: the daemon makes its endpoint itself.
		if i == 0 && len(nets) == 1 && reflect.DeepEqual(*ep, network.EndpointSettings{}) {
			continue
		}
		endpoints[na.Target] = ep
	}
	if userDefined && builtin {
		return nil, errors.New("conflicting options: cannot attach both user-defined and non-user-defined network-modes")
	}
	return endpoints, nil
}

// applyTo applies the single-network flags to the first network.
func (o *ContainerOptions) applyTo(na *NetworkAttachment) error {
	if len(na.Aliases) > 0 && o.aliases.Len() > 0 {
		return errors.New("conflicting options: cannot specify both --network-alias and per-network alias")
	}
	if len(na.Links) > 0 && o.links.Len() > 0 {
		return errors.New("conflicting options: cannot specify both --link and per-network links")
	}
	if na.IPv4Address != "" && o.ipv4Address != "" {
		return errors.New("conflicting options: cannot specify both --ip and per-network IPv4 address")
	}
	if na.IPv6Address != "" && o.ipv6Address != "" {
		return errors.New("conflicting options: cannot specify both --ip6 and per-network IPv6 address")
	}
	if na.MacAddress != "" && o.macAddress != "" {
		return errors.New("conflicting options: cannot specify both --mac-address and per-network MAC address")
	}
	if len(na.LinkLocalIPs) > 0 && o.linkLocalIPs.Len() > 0 {
		return errors.New("conflicting options: cannot specify both --link-local-ip and per-network link-local IP addresses")
	}
	if o.aliases.Len() > 0 {
		na.Aliases = append([]string(nil), o.aliases.Values()...)
	}
	// On a user-defined network --link is an endpoint option (an alias); on the default
	// bridge it stays a legacy link in HostConfig.
	if container.NetworkMode(na.Target).IsUserDefined() && o.links.Len() > 0 {
		na.Links = append([]string(nil), o.links.Values()...)
	}
	if o.ipv4Address != "" {
		na.IPv4Address = o.ipv4Address
	}
	if o.ipv6Address != "" {
		na.IPv6Address = o.ipv6Address
	}
	if o.macAddress != "" {
		na.MacAddress = o.macAddress
	}
	if o.linkLocalIPs.Len() > 0 {
		na.LinkLocalIPs = append([]string(nil), o.linkLocalIPs.Values()...)
	}
	return nil
}

func endpointSettings(na NetworkAttachment) (*network.EndpointSettings, error) {
	if strings.TrimSpace(na.Target) == "" {
		return nil, errors.New("no name set for network")
	}
	if !container.NetworkMode(na.Target).IsUserDefined() {
		if len(na.Aliases) > 0 {
			return nil, errors.New("network-scoped aliases are only supported for user-defined networks")
		}
		if len(na.Links) > 0 {
			return nil, errors.New("links are only supported for user-defined networks")
		}
	}
	ep := &network.EndpointSettings{GwPriority: na.GwPriority}
	ep.Aliases = append(ep.Aliases, na.Aliases...)
	if len(na.DriverOpts) > 0 {
		ep.DriverOpts = na.DriverOpts
	}
	if len(na.Links) > 0 {
		ep.Links = na.Links
	}
	if na.IPv4Address != "" || na.IPv6Address != "" || len(na.LinkLocalIPs) > 0 {
		ipam := &network.EndpointIPAMConfig{}
		var err error
		if na.IPv4Address != "" {
			if ipam.IPv4Address, err = netip.ParseAddr(na.IPv4Address); err != nil {
				return nil, fmt.Errorf("invalid IPv4 address: %s", na.IPv4Address)
			}
		}
		if na.IPv6Address != "" {
			if ipam.IPv6Address, err = netip.ParseAddr(na.IPv6Address); err != nil {
				return nil, fmt.Errorf("invalid IPv6 address: %s", na.IPv6Address)
			}
		}
		if ipam.LinkLocalIPs, err = toAddrs(na.LinkLocalIPs); err != nil {
			return nil, err
		}
		ep.IPAMConfig = ipam
	}
	if na.MacAddress != "" {
		hw, err := net.ParseMAC(strings.TrimSpace(na.MacAddress))
		if err != nil {
			return nil, fmt.Errorf("%s is not a valid mac address", na.MacAddress)
		}
		ep.MacAddress = network.HardwareAddr(hw)
	}
	return ep, nil
}

func toAddrs(ips []string) ([]netip.Addr, error) {
	if ips == nil {
		return nil, nil
	}
	out := make([]netip.Addr, 0, len(ips))
	for _, ip := range ips {
		a, err := netip.ParseAddr(strings.TrimSpace(ip))
		if err != nil {
			return nil, fmt.Errorf("invalid IP address: %s", ip)
		}
		out = append(out, a)
	}
	return out, nil
}

// ParsePorts parses -p values ("[ip:][host:]container[/proto]" or the long form
// "target=80,published=8080,protocol=udp") and --expose values ("80", "8000-8010/udp")
// into the exposed ports and the port bindings.
func ParsePorts(publish, expose []string) (network.PortSet, network.PortMap, error) {
	var specs []string
	for _, p := range publish {
		if !strings.Contains(p, "=") {
			specs = append(specs, p)
			continue
		}
		params := map[string]string{"protocol": "tcp"}
		for _, param := range strings.Split(p, ",") {
			k, v, ok := strings.Cut(param, "=")
			if !ok || k == "" {
				return nil, nil, fmt.Errorf("invalid publish opts format (should be name=value but got '%s')", param)
			}
			params[k] = v
		}
		specs = append(specs, fmt.Sprintf("%s:%s/%s", params["published"], params["target"], params["protocol"]))
	}
	ports, natBindings, err := nat.ParsePortSpecs(specs)
	if err != nil {
		return nil, nil, err
	}
	bindings := network.PortMap{}
	for port, bs := range natBindings {
		p, err := network.ParsePort(string(port))
		if err != nil {
			return nil, nil, err
		}
		bindings[p] = []network.PortBinding{}
		for _, b := range bs {
			var ip netip.Addr
			if b.HostIP != "" {
				if ip, err = netip.ParseAddr(b.HostIP); err != nil {
					return nil, nil, err
				}
			}
			bindings[p] = append(bindings[p], network.PortBinding{HostIP: ip, HostPort: b.HostPort})
		}
	}
	exposed := network.PortSet{}
	for port := range ports {
		p, err := network.ParsePort(string(port))
		if err != nil {
			return nil, nil, err
		}
		exposed[p] = struct{}{}
	}
	for _, e := range expose {
		pr, err := network.ParsePortRange(e)
		if err != nil {
			return nil, nil, fmt.Errorf("invalid range format for --expose: %w", err)
		}
		for p := range pr.All() {
			exposed[p] = struct{}{}
		}
	}
	return exposed, bindings, nil
}

// ParseDevice parses a validated --device value into a device mapping.
func ParseDevice(device string) (container.DeviceMapping, error) {
	var src, dst string
	perms := "rwm"
	arr := strings.SplitN(device, ":", 4)
	switch len(arr) {
	case 3:
		perms = arr[2]
		fallthrough
	case 2:
		if validDeviceMode(arr[1]) {
			perms = arr[1]
		} else {
			dst = arr[1]
		}
		fallthrough
	case 1:
		src = arr[0]
	default:
		return container.DeviceMapping{}, fmt.Errorf("invalid device specification: %s", device)
	}
	if dst == "" {
		dst = src
	}
	return container.DeviceMapping{PathOnHost: src, PathInContainer: dst, CgroupPermissions: perms}, nil
}

// ParseRestartPolicy parses --restart ("no", "always", "unless-stopped",
// "on-failure[:max-retries]").
func ParseRestartPolicy(policy string) (container.RestartPolicy, error) {
	p := container.RestartPolicy{}
	k, v, ok := strings.Cut(policy, ":")
	if ok && k == "" {
		return p, errors.New("invalid restart policy format: no policy provided before colon")
	}
	if v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return p, errors.New("invalid restart policy format: maximum retry count must be an integer")
		}
		p.MaximumRetryCount = n
	}
	p.Name = container.RestartPolicyMode(k)
	return p, nil
}

// ParseSecurityOpts checks --security-opt values; "seccomp=<file>" is replaced by the
// file's contents (compacted JSON), as docker sends it.
func ParseSecurityOpts(in []string) ([]string, error) {
	if in == nil {
		return nil, nil
	}
	out := make([]string, len(in))
	copy(out, in)
	for i, opt := range out {
		k, v, ok := strings.Cut(opt, "=")
		if !ok && k != "no-new-privileges" {
			k, v, ok = strings.Cut(opt, ":")
		}
		if (!ok || v == "") && k != "no-new-privileges" {
			return nil, fmt.Errorf("invalid --security-opt: %q", opt)
		}
		if k != "seccomp" || v == "unconfined" || v == "builtin" {
			continue
		}
		b, err := os.ReadFile(v)
		if err != nil {
			return nil, fmt.Errorf("opening seccomp profile (%s) failed: %w", v, err)
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, b); err != nil {
			return nil, fmt.Errorf("compacting json for seccomp profile (%s) failed: %w", v, err)
		}
		out[i] = "seccomp=" + buf.String()
	}
	return out, nil
}

// systemPaths handles "systempaths=unconfined" on the client, as docker does: it is
// dropped from the options and empties MaskedPaths and ReadonlyPaths.
func systemPaths(opts []string) (filtered, masked, readonly []string) {
	if opts != nil {
		filtered = []string{}
	}
	for _, o := range opts {
		if o == "systempaths=unconfined" {
			masked, readonly = []string{}, []string{}
			continue
		}
		filtered = append(filtered, o)
	}
	return filtered, masked, readonly
}

// VolumeSpec is a parsed -v value.
type VolumeSpec struct {
	Source, Target string
	ReadOnly       bool
	// Bind is set when Source is a host path (starts with ".", "/" or "~"); otherwise a
	// non-empty Source names a volume.
	Bind bool
}

// ParseVolumeSpec parses a -v value ("target", "source:target[:options]"); the daemon
// validates the rest.
func ParseVolumeSpec(spec string) (VolumeSpec, error) {
	var v VolumeSpec
	if spec == "" {
		return v, errors.New("invalid empty volume spec")
	}
	parts := strings.Split(spec, ":")
	if len(spec) <= 2 {
		parts = []string{spec}
	}
	for i, p := range parts {
		if p == "" {
			return v, fmt.Errorf("invalid spec: %s: empty section between colons", spec)
		}
		switch i {
		case 0:
			if len(parts) == 1 {
				v.Target = p
			} else {
				v.Source = p
			}
		case 1:
			v.Target = p
		case 2:
			for _, opt := range strings.Split(p, ",") {
				switch opt {
				case "ro":
					v.ReadOnly = true
				case "rw":
					v.ReadOnly = false
				}
			}
		}
		// More parts are left to the daemon to refuse, as docker does.
	}
	if v.Source != "" {
		switch v.Source[0] {
		case '.', '/', '~':
			v.Bind = true
		}
	}
	return v, nil
}
