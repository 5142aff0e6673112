package cri

import (
	"context"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ContainerStats reports a container's CPU, memory and writable layer usage.
func (s *Server) ContainerStats(ctx context.Context, req *runtimeapi.ContainerStatsRequest) (*runtimeapi.ContainerStatsResponse, error) {
	c, err := s.object(kindContainer, req.ContainerId)
	if err != nil {
		return nil, err
	}
	st, _, err := s.containerStats(ctx, c)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ContainerStatsResponse{Stats: st}, nil
}

// ListContainerStats reports the usage of the containers that match the filter.
func (s *Server) ListContainerStats(ctx context.Context, req *runtimeapi.ListContainerStatsRequest) (*runtimeapi.ListContainerStatsResponse, error) {
	f := req.GetFilter()
	out := []*runtimeapi.ContainerStats{}
	for _, c := range s.objects(kindContainer) {
		if f != nil && (f.Id != "" && !strings.HasPrefix(c.ID, f.Id) ||
			f.PodSandboxId != "" && !strings.HasPrefix(c.rec.SandboxID, f.PodSandboxId) ||
			!matchLabels(c.Labels, f.LabelSelector)) {
			continue
		}
		st, _, err := s.containerStats(ctx, c)
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, st)
	}
	return &runtimeapi.ListContainerStatsResponse{Stats: out}, nil
}

// containerStats is a container's usage and its number of processes.
func (s *Server) containerStats(ctx context.Context, c object) (*runtimeapi.ContainerStats, uint64, error) {
	u, err := s.d.UsageOf(ctx, c.ID)
	if err != nil {
		return nil, 0, err
	}
	now := time.Now().UnixNano()
	cpu, mem := cpuMemory(u.Stats, now)
	return &runtimeapi.ContainerStats{
		Attributes: &runtimeapi.ContainerAttributes{Id: c.ID, Metadata: c.rec.ContainerMetadata, Labels: c.Labels, Annotations: c.rec.Annotations},
		Cpu:        cpu,
		Memory:     mem,
		WritableLayer: &runtimeapi.FilesystemUsage{Timestamp: now, FsId: &runtimeapi.FilesystemIdentifier{Mountpoint: u.WritableDir},
			UsedBytes: &runtimeapi.UInt64Value{Value: u.WritableBytes}, InodesUsed: &runtimeapi.UInt64Value{Value: u.WritableInodes}},
	}, u.Stats.PidsStats.Current, nil
}

// cpuMemory is a sample's CPU and memory usage in the CRI's terms: the working set is the
// usage less the inactive page cache, as cAdvisor counts it.
func cpuMemory(st *container.StatsResponse, now int64) (*runtimeapi.CpuUsage, *runtimeapi.MemoryUsage) {
	m := st.MemoryStats
	inactive := m.Stats["total_inactive_file"]
	if v, ok := m.Stats["inactive_file"]; ok && inactive == 0 {
		inactive = v
	}
	ws := m.Usage
	if ws > inactive {
		ws -= inactive
	} else {
		ws = 0
	}
	rss := m.Stats["total_rss"]
	if v, ok := m.Stats["anon"]; ok && rss == 0 {
		rss = v
	}
	faults, major := m.Stats["total_pgfault"], m.Stats["total_pgmajfault"]
	if v, ok := m.Stats["pgfault"]; ok && faults == 0 {
		faults, major = v, m.Stats["pgmajfault"]
	}
	mem := &runtimeapi.MemoryUsage{Timestamp: now, WorkingSetBytes: &runtimeapi.UInt64Value{Value: ws},
		UsageBytes: &runtimeapi.UInt64Value{Value: m.Usage}, RssBytes: &runtimeapi.UInt64Value{Value: rss},
		PageFaults: &runtimeapi.UInt64Value{Value: faults}, MajorPageFaults: &runtimeapi.UInt64Value{Value: major}}
	if m.Limit > ws {
		mem.AvailableBytes = &runtimeapi.UInt64Value{Value: m.Limit - ws}
	}
	cpu := &runtimeapi.CpuUsage{Timestamp: now, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: st.CPUStats.CPUUsage.TotalUsage}}
	return cpu, mem
}

// PodSandboxStats reports a pod's usage: its holder's and its containers' together, and
// each container's.
func (s *Server) PodSandboxStats(ctx context.Context, req *runtimeapi.PodSandboxStatsRequest) (*runtimeapi.PodSandboxStatsResponse, error) {
	sb, err := s.object(kindSandbox, req.PodSandboxId)
	if err != nil {
		return nil, err
	}
	st, err := s.sandboxStats(ctx, sb)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.PodSandboxStatsResponse{Stats: st}, nil
}

// ListPodSandboxStats reports the usage of the pods that match the filter.
func (s *Server) ListPodSandboxStats(ctx context.Context, req *runtimeapi.ListPodSandboxStatsRequest) (*runtimeapi.ListPodSandboxStatsResponse, error) {
	f := req.GetFilter()
	out := []*runtimeapi.PodSandboxStats{}
	for _, sb := range s.objects(kindSandbox) {
		if f != nil && (f.Id != "" && !strings.HasPrefix(sb.ID, f.Id) || !matchLabels(sb.Labels, f.LabelSelector)) {
			continue
		}
		st, err := s.sandboxStats(ctx, sb)
		if err != nil {
			continue
		}
		out = append(out, st)
	}
	return &runtimeapi.ListPodSandboxStatsResponse{Stats: out}, nil
}

func (s *Server) sandboxStats(ctx context.Context, sb object) (*runtimeapi.PodSandboxStats, error) {
	u, err := s.d.UsageOf(ctx, sb.ID)
	if err != nil {
		return nil, err
	}
	now := time.Now().UnixNano()
	cpu, mem := cpuMemory(u.Stats, now)
	linux := &runtimeapi.LinuxPodSandboxStats{Cpu: cpu, Memory: mem,
		Process: &runtimeapi.ProcessUsage{Timestamp: now, ProcessCount: &runtimeapi.UInt64Value{Value: u.Stats.PidsStats.Current}}}
	net := &runtimeapi.NetworkUsage{Timestamp: now}
	for name, n := range u.Stats.Networks {
		iface := &runtimeapi.NetworkInterfaceUsage{Name: name, RxBytes: &runtimeapi.UInt64Value{Value: n.RxBytes},
			RxErrors: &runtimeapi.UInt64Value{Value: n.RxErrors}, TxBytes: &runtimeapi.UInt64Value{Value: n.TxBytes},
			TxErrors: &runtimeapi.UInt64Value{Value: n.TxErrors}}
		if name == "eth0" || net.DefaultInterface == nil {
			net.DefaultInterface = iface
		} else {
			net.Interfaces = append(net.Interfaces, iface)
		}
	}
	linux.Network = net
	for _, c := range s.objects(kindContainer) {
		if c.rec.SandboxID != sb.ID {
			continue
		}
		cs, pids, err := s.containerStats(ctx, c)
		if err != nil {
			continue
		}
		linux.Containers = append(linux.Containers, cs)
		add(&cpu.UsageCoreNanoSeconds, cs.Cpu.UsageCoreNanoSeconds)
		add(&mem.WorkingSetBytes, cs.Memory.WorkingSetBytes)
		add(&mem.UsageBytes, cs.Memory.UsageBytes)
		add(&mem.RssBytes, cs.Memory.RssBytes)
		add(&linux.Process.ProcessCount, &runtimeapi.UInt64Value{Value: pids})
	}
	return &runtimeapi.PodSandboxStats{
		Attributes: &runtimeapi.PodSandboxAttributes{Id: sb.ID, Metadata: sb.rec.Metadata, Labels: sb.Labels, Annotations: sb.rec.Annotations},
		Linux:      linux,
	}, nil
}

func add(dst **runtimeapi.UInt64Value, v *runtimeapi.UInt64Value) {
	if v == nil {
		return
	}
	if *dst == nil {
		*dst = &runtimeapi.UInt64Value{}
	}
	(*dst).Value += v.Value
}
