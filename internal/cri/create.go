package cri

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"berth/internal/daemon"
	"berth/internal/oci"
)

// containerName is the daemon container name of a pod's container, as dockershim and
// cri-dockerd name them.
func containerName(m *runtimeapi.ContainerMetadata, sb *runtimeapi.PodSandboxMetadata) string {
	return fmt.Sprintf("k8s_%s_%s_%s_%s_%d", m.Name, sb.Name, sb.Namespace, sb.Uid, m.Attempt)
}

// CreateContainer makes a container of a pod: a daemon container in the sandbox's network,
// IPC and UTS namespaces (its PID namespace too when the pod shares one), with the pod's
// cgroup parent, its log in the CRI format at the sandbox's log directory, and the
// request's command, environment, mounts, devices, resources and security context.
func (s *Server) CreateContainer(ctx context.Context, req *runtimeapi.CreateContainerRequest) (*runtimeapi.CreateContainerResponse, error) {
	cfg := req.GetConfig()
	m := cfg.GetMetadata()
	if m == nil || m.Name == "" {
		return nil, status.Error(codes.InvalidArgument, "container config must have metadata with a name")
	}
	if cfg.GetImage().GetImage() == "" {
		return nil, status.Error(codes.InvalidArgument, "container config must name an image")
	}
	sb, err := s.object(kindSandbox, req.PodSandboxId)
	if err != nil {
		return nil, err
	}
	if !sb.State.Running {
		return nil, status.Errorf(codes.FailedPrecondition, "sandbox %s is not ready", sb.ID)
	}
	c, hc, err := s.containerConfig(sb, req.GetSandboxConfig(), cfg)
	if err != nil {
		return nil, err
	}
	rec := record{Kind: kindContainer, SandboxID: sb.ID, ContainerMetadata: m, Image: cfg.Image.Image,
		UserImage: cfg.Image.UserSpecifiedImage, Annotations: cfg.Annotations, Mounts: cfg.Mounts}
	logPath := ""
	if cfg.LogPath != "" && sb.rec.LogDirectory != "" {
		logPath = filepath.Join(sb.rec.LogDirectory, cfg.LogPath)
		rec.LogPath = logPath
	}
	extra, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	name := containerName(m, sb.rec.Metadata)
	res, err := s.d.Create(ctx, daemon.CreateRequest{Name: name, Config: c, HostConfig: hc, Extra: extra, CRILogPath: logPath})
	if err != nil {
		if errors.As(err, new(*daemon.NameInUseError)) {
			return nil, status.Errorf(codes.AlreadyExists, "container name %q is in use: %v", name, err)
		}
		return nil, fmt.Errorf("create container %s: %w", name, err)
	}
	return &runtimeapi.CreateContainerResponse{ContainerId: res.ID}, nil
}

// containerConfig turns a CRI container config into the daemon's.
func (s *Server) containerConfig(sb object, sbCfg *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) (*container.Config, *container.HostConfig, error) {
	c := &container.Config{
		Image:      cfg.Image.Image,
		Entrypoint: cfg.Command,
		Cmd:        cfg.Args,
		WorkingDir: cfg.WorkingDir,
		Tty:        cfg.Tty,
		OpenStdin:  cfg.Stdin,
		StdinOnce:  cfg.StdinOnce,
		Labels:     maps.Clone(cfg.Labels),
	}
	if len(cfg.Command) > 0 && len(cfg.Args) == 0 {
		// A command without args drops the image's CMD too (Docker's --entrypoint does).
		c.Cmd = nil
	}
	for _, kv := range cfg.Envs {
		if kv.Key == "" {
			return nil, nil, status.Error(codes.InvalidArgument, "environment variable with an empty name")
		}
		c.Env = append(c.Env, kv.Key+"="+string(kv.Value))
	}
	ns := sb.rec.Namespaces
	if ns == nil {
		ns = &runtimeapi.NamespaceOption{}
	}
	hc := &container.HostConfig{
		NetworkMode: container.NetworkMode("container:" + sb.ID),
		IpcMode:     container.IpcMode("container:" + sb.ID),
		LogConfig:   container.LogConfig{Type: "none"},
	}
	hc.CgroupParent = sb.rec.CgroupParent
	if ns.Network == runtimeapi.NamespaceMode_NODE {
		hc.NetworkMode, hc.UTSMode = "host", "host"
	}
	if ns.Ipc == runtimeapi.NamespaceMode_NODE {
		hc.IpcMode = "host"
	}
	lc := cfg.GetLinux()
	if own := lc.GetSecurityContext().GetNamespaceOptions(); own != nil {
		ns = own // the container's own options decide its PID namespace
	}
	switch ns.Pid {
	case runtimeapi.NamespaceMode_POD:
		hc.PidMode = container.PidMode("container:" + sb.ID)
	case runtimeapi.NamespaceMode_NODE:
		hc.PidMode = "host"
	case runtimeapi.NamespaceMode_TARGET:
		if ns.TargetId == "" {
			return nil, nil, status.Error(codes.InvalidArgument, "pid namespace mode TARGET without a target container")
		}
		hc.PidMode = container.PidMode("container:" + ns.TargetId)
	}
	for _, mt := range cfg.Mounts {
		m, err := criMount(mt)
		if err != nil {
			return nil, nil, err
		}
		hc.Mounts = append(hc.Mounts, m)
	}
	for _, dev := range cfg.Devices {
		if dev.HostPath == "" || dev.ContainerPath == "" {
			return nil, nil, status.Errorf(codes.InvalidArgument, "device %q -> %q: both paths are needed", dev.HostPath, dev.ContainerPath)
		}
		perms := dev.Permissions
		if perms == "" {
			perms = "rwm"
		}
		hc.Devices = append(hc.Devices, container.DeviceMapping{PathOnHost: dev.HostPath, PathInContainer: dev.ContainerPath, CgroupPermissions: perms})
	}
	if r := lc.GetResources(); r != nil {
		setResources(&hc.Resources, r)
		hc.OomScoreAdj = clampOOMScoreAdj(int(r.OomScoreAdj))
	}
	if err := securityContext(c, hc, lc.GetSecurityContext()); err != nil {
		return nil, nil, err
	}
	return c, hc, nil
}

// criMount is a CRI mount as a daemon bind mount. A missing host path is made by the
// daemon's create (as containerd and kubelet's hostPath do); SELinux relabelling is accepted
// and has nothing to do without SELinux.
func criMount(mt *runtimeapi.Mount) (mount.Mount, error) {
	if mt.Image != nil && mt.Image.Image != "" {
		return mount.Mount{}, status.Errorf(codes.InvalidArgument, "mount %s: image volumes are not supported", mt.ContainerPath)
	}
	if mt.ContainerPath == "" || !filepath.IsAbs(mt.ContainerPath) {
		return mount.Mount{}, status.Errorf(codes.InvalidArgument, "mount %q: the container path must be absolute", mt.ContainerPath)
	}
	if mt.HostPath == "" || !filepath.IsAbs(mt.HostPath) {
		return mount.Mount{}, status.Errorf(codes.InvalidArgument, "mount %q: the host path %q must be absolute", mt.ContainerPath, mt.HostPath)
	}
	if mt.RecursiveReadOnly && !mt.Readonly {
		return mount.Mount{}, status.Errorf(codes.InvalidArgument, "mount %s: recursive read-only needs a read-only mount", mt.ContainerPath)
	}
	prop := mount.PropagationRPrivate
	switch mt.Propagation {
	case runtimeapi.MountPropagation_PROPAGATION_PRIVATE:
	case runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
		prop = mount.PropagationRSlave
	case runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL:
		prop = mount.PropagationRShared
	default:
		return mount.Mount{}, status.Errorf(codes.InvalidArgument, "mount %s: unknown propagation %v", mt.ContainerPath, mt.Propagation)
	}
	if mt.RecursiveReadOnly && prop != mount.PropagationRPrivate {
		return mount.Mount{}, status.Errorf(codes.InvalidArgument, "mount %s: recursive read-only needs private propagation", mt.ContainerPath)
	}
	return mount.Mount{Type: mount.TypeBind, Source: mt.HostPath, Target: mt.ContainerPath, ReadOnly: mt.Readonly,
		BindOptions: &mount.BindOptions{Propagation: prop, ReadOnlyNonRecursive: mt.Readonly && !mt.RecursiveReadOnly, CreateMountpoint: true}}, nil
}

// setResources copies a CRI container's resources to the daemon's.
func setResources(dst *container.Resources, r *runtimeapi.LinuxContainerResources) {
	dst.CPUPeriod, dst.CPUQuota, dst.CPUShares = r.CpuPeriod, r.CpuQuota, r.CpuShares
	dst.Memory = r.MemoryLimitInBytes
	if r.MemorySwapLimitInBytes > 0 {
		dst.MemorySwap = r.MemorySwapLimitInBytes
	}
	dst.CpusetCpus, dst.CpusetMems = r.CpusetCpus, r.CpusetMems
}

// ownOOMScoreAdj is berthd's own oom_score_adj, read once: without CAP_SYS_RESOURCE the
// kernel refuses a lower value for a child.
var ownOOMScoreAdj = sync.OnceValue(func() int {
	b, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return -1000
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1000
	}
	return n
})

// clampOOMScoreAdj raises a wanted oom_score_adj to berthd's own when it is lower
// (containerd's restrict_oom_score_adj): kubelet asks for values like -997 that a daemon
// without CAP_SYS_RESOURCE cannot give.
func clampOOMScoreAdj(want int) int {
	return max(want, ownOOMScoreAdj(), -1000)
}

// securityContext applies a CRI container security context: user and groups, privileged,
// capabilities, read-only rootfs, no_new_privs, seccomp, masked and read-only paths.
func securityContext(c *container.Config, hc *container.HostConfig, sc *runtimeapi.LinuxContainerSecurityContext) error {
	if sc == nil {
		// The CRI's default seccomp profile is Unconfined (kubelet asks for RuntimeDefault).
		hc.SecurityOpt = append(hc.SecurityOpt, "seccomp="+oci.SeccompUnconfined)
		return nil
	}
	switch {
	case sc.RunAsUser != nil:
		c.User = strconv.FormatInt(sc.RunAsUser.Value, 10)
	case sc.RunAsUsername != "":
		c.User = sc.RunAsUsername
	}
	if sc.RunAsGroup != nil {
		if c.User == "" {
			return status.Error(codes.InvalidArgument, "run-as group is set without a run-as user")
		}
		c.User += ":" + strconv.FormatInt(sc.RunAsGroup.Value, 10)
	}
	for _, g := range sc.SupplementalGroups {
		hc.GroupAdd = append(hc.GroupAdd, strconv.FormatInt(g, 10))
	}
	hc.Privileged = sc.Privileged
	hc.ReadonlyRootfs = sc.ReadonlyRootfs
	if caps := sc.Capabilities; caps != nil && !sc.Privileged {
		hc.CapAdd = capNames(caps.AddCapabilities)
		hc.CapDrop = capNames(caps.DropCapabilities)
	}
	if sc.NoNewPrivs {
		hc.SecurityOpt = append(hc.SecurityOpt, "no-new-privileges")
	}
	if !sc.Privileged {
		if len(sc.MaskedPaths) > 0 {
			hc.MaskedPaths = sc.MaskedPaths
		}
		if len(sc.ReadonlyPaths) > 0 {
			hc.ReadonlyPaths = sc.ReadonlyPaths
		}
	}
	profile, err := seccompOpt(sc.Seccomp)
	if err != nil {
		return err
	}
	hc.SecurityOpt = append(hc.SecurityOpt, "seccomp="+profile)
	return nil
}

// capNames gives CRI capability names (with or without CAP_, or ALL) in Docker's form.
func capNames(in []string) []string {
	out := make([]string, 0, len(in))
	for _, c := range in {
		c = strings.ToUpper(c)
		if c != "ALL" && !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		out = append(out, c)
	}
	return out
}

// seccompOpt is the security-opt seccomp value of a CRI profile: RuntimeDefault is Docker's
// default profile, Unconfined (or none: the CRI's default) none, Localhost the profile
// file's JSON.
func seccompOpt(p *runtimeapi.SecurityProfile) (string, error) {
	if p == nil {
		return oci.SeccompUnconfined, nil
	}
	switch p.ProfileType {
	case runtimeapi.SecurityProfile_Unconfined:
		return oci.SeccompUnconfined, nil
	case runtimeapi.SecurityProfile_RuntimeDefault:
		return oci.SeccompBuiltin, nil
	case runtimeapi.SecurityProfile_Localhost:
		if !filepath.IsAbs(p.LocalhostRef) {
			return "", status.Errorf(codes.InvalidArgument, "seccomp profile %q: the path must be absolute", p.LocalhostRef)
		}
		b, err := os.ReadFile(p.LocalhostRef)
		if err != nil {
			return "", status.Errorf(codes.InvalidArgument, "seccomp profile: %v", err)
		}
		return string(b), nil
	}
	return "", status.Errorf(codes.InvalidArgument, "seccomp profile type %v is not known", p.ProfileType)
}

// StartContainer starts a created container.
func (s *Server) StartContainer(ctx context.Context, req *runtimeapi.StartContainerRequest) (*runtimeapi.StartContainerResponse, error) {
	c, err := s.object(kindContainer, req.ContainerId)
	if err != nil {
		return nil, err
	}
	if c.State.Running || !c.State.StartedAt.IsZero() {
		return nil, status.Errorf(codes.FailedPrecondition, "container %s was started already", c.ID)
	}
	if err := s.d.Start(ctx, c.ID); err != nil {
		return nil, fmt.Errorf("start container %s: %w", c.ID, err)
	}
	return &runtimeapi.StartContainerResponse{}, nil
}

// UpdateContainerResources changes a container's CPU and memory limits.
func (s *Server) UpdateContainerResources(ctx context.Context, req *runtimeapi.UpdateContainerResourcesRequest) (*runtimeapi.UpdateContainerResourcesResponse, error) {
	c, err := s.object(kindContainer, req.ContainerId)
	if err != nil {
		return nil, err
	}
	r := req.GetLinux()
	if r == nil {
		return &runtimeapi.UpdateContainerResourcesResponse{}, nil
	}
	var u container.UpdateConfig
	setResources(&u.Resources, r)
	if _, err := s.d.Update(ctx, c.ID, u); err != nil {
		return nil, fmt.Errorf("update container %s: %w", c.ID, err)
	}
	return &runtimeapi.UpdateContainerResourcesResponse{}, nil
}

// ReopenContainerLog makes the container's shim open its log file anew (kubelet renamed
// it to rotate it).
func (s *Server) ReopenContainerLog(ctx context.Context, req *runtimeapi.ReopenContainerLogRequest) (*runtimeapi.ReopenContainerLogResponse, error) {
	c, err := s.object(kindContainer, req.ContainerId)
	if err != nil {
		return nil, err
	}
	if !c.State.Running {
		return nil, status.Errorf(codes.FailedPrecondition, "container %s is not running", c.ID)
	}
	if err := s.d.ReopenLog(ctx, c.ID); err != nil {
		return nil, fmt.Errorf("reopen the log of container %s: %w", c.ID, err)
	}
	return &runtimeapi.ReopenContainerLogResponse{}, nil
}
