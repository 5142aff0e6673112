package cri

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/moby/moby/api/types/container"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"berth/internal/daemon"
	"berth/internal/errdefs"
)

// Kinds of record.
const (
	kindSandbox   = "sandbox"
	kindContainer = "container"
)

// record is the CRI's own record of a sandbox or a container (daemon.Container.Extra).
type record struct {
	Kind string `json:"kind"`

	// A sandbox's.
	Metadata       *runtimeapi.PodSandboxMetadata `json:"metadata,omitempty"`
	RuntimeHandler string                         `json:"runtimeHandler,omitempty"`
	LogDirectory   string                         `json:"logDirectory,omitempty"`
	Namespaces     *runtimeapi.NamespaceOption    `json:"namespaces,omitempty"`
	CgroupParent   string                         `json:"cgroupParent,omitempty"`
	// CNINetwork is the CNI network the pod is attached to ("": loopback only, or the
	// host's network).
	CNINetwork string `json:"cniNetwork,omitempty"`

	// A container's.
	SandboxID         string                        `json:"sandboxID,omitempty"`
	ContainerMetadata *runtimeapi.ContainerMetadata `json:"containerMetadata,omitempty"`
	Image             string                        `json:"image,omitempty"`
	// UserImage is the image as the pod spec names it (kubelet sends the image's ID as
	// Image, and the name as user_specified_image).
	UserImage string              `json:"userImage,omitempty"`
	LogPath   string              `json:"logPath,omitempty"`
	Mounts    []*runtimeapi.Mount `json:"mounts,omitempty"`

	Annotations map[string]string `json:"annotations,omitempty"`
}

// object is a daemon container of the CRI namespace with its record.
type object struct {
	daemon.Record
	rec record
}

// objects reads the CRI's sandboxes (kind kindSandbox) or containers, newest first.
func (s *Server) objects(kind string) []object {
	var out []object
	for _, r := range s.d.RecordsIn(Namespace) {
		var rec record
		if json.Unmarshal(r.Extra, &rec) != nil || rec.Kind != kind {
			continue
		}
		out = append(out, object{Record: r, rec: rec})
	}
	return out
}

// object finds one sandbox or container by ID (or unique ID prefix, as crictl allows).
func (s *Server) object(kind, id string) (object, error) {
	what := "sandbox"
	if kind == kindContainer {
		what = "container"
	}
	if id == "" {
		return object{}, status.Errorf(codes.InvalidArgument, "%s ID is empty", what)
	}
	r, err := s.d.RecordIn(Namespace, id)
	if err != nil {
		if errors.Is(err, errdefs.ErrNotFound) {
			return object{}, status.Errorf(codes.NotFound, "%s %q not found", what, id)
		}
		return object{}, err
	}
	var rec record
	if json.Unmarshal(r.Extra, &rec) != nil || rec.Kind != kind {
		return object{}, status.Errorf(codes.NotFound, "%s %q not found", what, id)
	}
	return object{Record: r, rec: rec}, nil
}

// sandboxName is the daemon container name of a sandbox, as dockershim and cri-dockerd name them.
func sandboxName(m *runtimeapi.PodSandboxMetadata) string {
	return fmt.Sprintf("k8s_POD_%s_%s_%s_%d", m.Name, m.Namespace, m.Uid, m.Attempt)
}

// RunPodSandbox makes the pod's holder (berth-init --pause on an empty rootfs) with the
// pod's namespaces, hostname, DNS, sysctls and cgroup parent, and starts it.
func (s *Server) RunPodSandbox(ctx context.Context, req *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	cfg := req.GetConfig()
	m := cfg.GetMetadata()
	if m == nil || m.Name == "" || m.Namespace == "" || m.Uid == "" {
		return nil, status.Error(codes.InvalidArgument, "sandbox config must have metadata with a name, a namespace and a uid")
	}
	if req.RuntimeHandler != "" && req.RuntimeHandler != RuntimeName && req.RuntimeHandler != "runc" {
		return nil, status.Errorf(codes.InvalidArgument, "runtime handler %q: berth has only %q", req.RuntimeHandler, RuntimeName)
	}
	linux := cfg.GetLinux()
	sc := linux.GetSecurityContext()
	nsOpts := sc.GetNamespaceOptions()
	if nsOpts == nil {
		nsOpts = &runtimeapi.NamespaceOption{}
	}
	hostNet := nsOpts.Network == runtimeapi.NamespaceMode_NODE
	c := &container.Config{Image: "berth-pause", Labels: maps.Clone(cfg.Labels)}
	hc := &container.HostConfig{
		NetworkMode: "none",
		IpcMode:     "shareable",
		Sysctls:     maps.Clone(linux.GetSysctls()),
		Privileged:  sc.GetPrivileged(),
		LogConfig:   container.LogConfig{Type: "none"},
	}
	hc.CgroupParent = linux.GetCgroupParent()
	if hostNet {
		hc.NetworkMode = "host"
	} else {
		c.Hostname = cfg.Hostname
	}
	if nsOpts.Ipc == runtimeapi.NamespaceMode_NODE {
		hc.IpcMode = "host"
	}
	if nsOpts.Pid == runtimeapi.NamespaceMode_NODE {
		hc.PidMode = "host"
	}
	if dns := cfg.GetDnsConfig(); dns != nil {
		for _, a := range dns.Servers {
			ip, err := netip.ParseAddr(a)
			if err != nil {
				return nil, status.Errorf(codes.InvalidArgument, "dns server %q: %v", a, err)
			}
			hc.DNS = append(hc.DNS, ip)
		}
		hc.DNSSearch, hc.DNSOptions = dns.Searches, dns.Options
	}
	var netConf *libcni.NetworkConfigList
	if !hostNet {
		var err error
		netConf, err = s.net.config()
		if errors.Is(err, errNoCNIConfig) {
			s.log.Debug("cri: the pod has loopback only", "pod", sandboxName(m), "reason", err)
		} else if err != nil {
			return nil, status.Errorf(codes.FailedPrecondition, "pod network: %v", err)
		}
	}
	rec := record{Kind: kindSandbox, Metadata: m, RuntimeHandler: req.RuntimeHandler,
		LogDirectory: cfg.LogDirectory, Namespaces: nsOpts, CgroupParent: hc.CgroupParent, Annotations: cfg.Annotations}
	if netConf != nil {
		rec.CNINetwork = netConf.Name
	}
	extra, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	res, err := s.d.Create(ctx, daemon.CreateRequest{Name: sandboxName(m), Config: c, HostConfig: hc, Holder: true, Extra: extra})
	if err != nil {
		if errors.As(err, new(*daemon.NameInUseError)) {
			return nil, status.Errorf(codes.AlreadyExists, "sandbox name %q is in use: %v", sandboxName(m), err)
		}
		return nil, fmt.Errorf("create sandbox %s: %w", sandboxName(m), err)
	}
	if err := s.d.Start(ctx, res.ID); err != nil {
		s.removeQuietly(res.ID)
		return nil, fmt.Errorf("start sandbox %s: %w", sandboxName(m), err)
	}
	if netConf != nil {
		r, err := s.d.RecordIn(Namespace, res.ID)
		if err == nil && r.NetNS == "" {
			err = fmt.Errorf("the holder has no network namespace")
		}
		if err == nil {
			err = s.net.setUp(ctx, netConf, runtimeConf(res.ID, r.NetNS, m, cfg.PortMappings))
		}
		if err != nil {
			s.removeQuietly(res.ID)
			return nil, fmt.Errorf("pod network of sandbox %s: %w", sandboxName(m), err)
		}
	}
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: res.ID}, nil
}

// removeQuietly removes a container that failed half-way, with its own deadline (the
// request's may be over).
func (s *Server) removeQuietly(id string) {
	ctx, cancel := context.WithTimeout(daemon.WithNamespace(context.Background(), Namespace), cleanupTimeout)
	defer cancel()
	if err := s.d.Remove(ctx, id, daemon.RemoveOptions{Force: true}); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		s.log.Warn("cri: remove after a failure", "id", id, "err", err)
	}
}

// StopPodSandbox kills the pod's containers and stops its holder. A sandbox that is not
// there, or stopped already, is not an error.
func (s *Server) StopPodSandbox(ctx context.Context, req *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	sb, err := s.object(kindSandbox, req.PodSandboxId)
	if status.Code(err) == codes.NotFound {
		return &runtimeapi.StopPodSandboxResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	for _, c := range s.objects(kindContainer) {
		if c.rec.SandboxID == sb.ID {
			if err := s.stopContainer(ctx, c.ID, 0); err != nil {
				return nil, fmt.Errorf("stop container %s of sandbox %s: %w", c.ID, sb.ID, err)
			}
		}
	}
	if err := s.net.tearDown(ctx, sb.rec.CNINetwork, sb.ID, sb.NetNS); err != nil {
		return nil, fmt.Errorf("stop sandbox %s: %w", sb.ID, err)
	}
	if err := s.stopContainer(ctx, sb.ID, 10); err != nil {
		return nil, fmt.Errorf("stop sandbox %s: %w", sb.ID, err)
	}
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

// stopContainer stops a daemon container of the namespace: its stop signal, SIGKILL after
// timeout seconds; one that is not running or not there is fine.
func (s *Server) stopContainer(ctx context.Context, id string, timeout int) error {
	err := s.d.Stop(ctx, id, "", &timeout)
	if errors.Is(err, errdefs.ErrNotModified) || errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	return err
}

// RemovePodSandbox removes the pod's containers and its holder, running or not. A sandbox
// that is not there is not an error.
func (s *Server) RemovePodSandbox(ctx context.Context, req *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	sb, err := s.object(kindSandbox, req.PodSandboxId)
	if status.Code(err) == codes.NotFound {
		return &runtimeapi.RemovePodSandboxResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	for _, c := range s.objects(kindContainer) {
		if c.rec.SandboxID == sb.ID {
			if err := s.removeContainer(ctx, c.ID); err != nil {
				return nil, fmt.Errorf("remove container %s of sandbox %s: %w", c.ID, sb.ID, err)
			}
		}
	}
	if err := s.net.tearDown(ctx, sb.rec.CNINetwork, sb.ID, sb.NetNS); err != nil {
		return nil, fmt.Errorf("remove sandbox %s: %w", sb.ID, err)
	}
	if err := s.removeContainer(ctx, sb.ID); err != nil {
		return nil, fmt.Errorf("remove sandbox %s: %w", sb.ID, err)
	}
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

func (s *Server) removeContainer(ctx context.Context, id string) error {
	err := s.d.Remove(ctx, id, daemon.RemoveOptions{Force: true})
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	return err
}

func sandboxState(o object) runtimeapi.PodSandboxState {
	if o.State.Running {
		return runtimeapi.PodSandboxState_SANDBOX_READY
	}
	return runtimeapi.PodSandboxState_SANDBOX_NOTREADY
}

// PodSandboxStatus reports a sandbox: ready while its holder runs.
func (s *Server) PodSandboxStatus(ctx context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	sb, err := s.object(kindSandbox, req.PodSandboxId)
	if err != nil {
		return nil, err
	}
	netStatus := &runtimeapi.PodSandboxNetworkStatus{}
	for i, a := range s.net.addresses(sb.rec.CNINetwork, sb.ID) {
		if i == 0 {
			netStatus.Ip = a.String()
		} else {
			netStatus.AdditionalIps = append(netStatus.AdditionalIps, &runtimeapi.PodIP{Ip: a.String()})
		}
	}
	st := &runtimeapi.PodSandboxStatus{
		Id: sb.ID, Metadata: sb.rec.Metadata, State: sandboxState(sb), CreatedAt: sb.Created.UnixNano(),
		Network:        netStatus,
		Linux:          &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{Options: sb.rec.Namespaces}},
		Labels:         sb.Labels,
		Annotations:    sb.rec.Annotations,
		RuntimeHandler: sb.rec.RuntimeHandler,
	}
	resp := &runtimeapi.PodSandboxStatusResponse{Status: st}
	if req.Verbose {
		info, _ := json.Marshal(map[string]any{"pid": sb.State.Pid, "name": sb.Name, "record": sb.rec})
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

// ListPodSandbox lists the sandboxes, filtered by ID (or prefix), state and labels.
func (s *Server) ListPodSandbox(ctx context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	f := req.GetFilter()
	out := []*runtimeapi.PodSandbox{}
	for _, sb := range s.objects(kindSandbox) {
		if f != nil {
			if f.Id != "" && !strings.HasPrefix(sb.ID, f.Id) {
				continue
			}
			if f.State != nil && f.State.State != sandboxState(sb) {
				continue
			}
			if !matchLabels(sb.Labels, f.LabelSelector) {
				continue
			}
		}
		out = append(out, &runtimeapi.PodSandbox{Id: sb.ID, Metadata: sb.rec.Metadata, State: sandboxState(sb),
			CreatedAt: sb.Created.UnixNano(), Labels: sb.Labels, Annotations: sb.rec.Annotations, RuntimeHandler: sb.rec.RuntimeHandler})
	}
	return &runtimeapi.ListPodSandboxResponse{Items: out}, nil
}

func matchLabels(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}
