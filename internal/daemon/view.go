package daemon

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/storage"

	"berth/internal/errdefs"
)

// Filters are the API's filters (key -> values).
type Filters map[string][]string

// Inspect is GET /containers/{id}/json.
func (d *Daemon) Inspect(ctx context.Context, ref string, size bool) (*container.InspectResponse, error) {
	c, err := d.get(ctx, ref)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	hc := *c.HostConfig
	cfg := *c.Config
	r := &container.InspectResponse{
		ID:             c.ID,
		Created:        c.Created.Format(time.RFC3339Nano),
		Path:           c.Path,
		Args:           nonNil(c.Args),
		State:          c.stateView(),
		Image:          c.Image,
		ResolvConfPath: c.ResolvConfPath,
		HostnamePath:   c.HostnamePath,
		HostsPath:      c.HostsPath,
		LogPath:        c.LogPath,
		Name:           c.Name,
		RestartCount:   c.RestartCount,
		Driver:         "overlay2",
		Platform:       "linux",
		HostConfig:     &hc,
		Config:         &cfg,
		Mounts:         c.mountViews(),
		ExecIDs:        nil,
		GraphDriver: &storage.DriverData{Name: "overlay2", Data: map[string]string{
			"MergedDir": c.Rootfs,
		}},
		NetworkSettings: c.networkSettings(),
	}
	if upper, err := d.images.Snaps.UpperDir(c.ID); err == nil {
		r.GraphDriver.Data["UpperDir"] = upper
		r.GraphDriver.Data["WorkDir"] = filepath.Join(filepath.Dir(upper), "work")
	}
	for id := range c.execs {
		r.ExecIDs = append(r.ExecIDs, id)
	}
	if size {
		rw, rootfs := d.sizes(c)
		r.SizeRw, r.SizeRootFs = &rw, &rootfs
	}
	return r, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (c *Container) stateView() *container.State {
	s := c.State
	v := &container.State{
		Status:     s.Status,
		Running:    s.Running,
		Paused:     s.Paused,
		Restarting: s.Restarting,
		OOMKilled:  s.OOMKilled,
		Dead:       s.Dead,
		Pid:        s.Pid,
		ExitCode:   s.ExitCode,
		Error:      s.Error,
		StartedAt:  timeOrZero(s.StartedAt),
		FinishedAt: timeOrZero(s.FinishedAt),
	}
	if s.Health != nil {
		h := *s.Health
		h.Log = append([]*container.HealthcheckResult(nil), s.Health.Log...)
		v.Health = &h
	}
	if v.Status == "" {
		v.Status = container.StateCreated
	}
	return v
}

func timeOrZero(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00Z"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func (c *Container) mountViews() []container.MountPoint {
	out := []container.MountPoint{}
	for _, m := range c.Mounts {
		mp := container.MountPoint{
			Type:        m.Type,
			Name:        m.Name,
			Source:      m.Source,
			Destination: m.Destination,
			Driver:      m.Driver,
			Mode:        m.Mode,
			RW:          m.RW,
			Propagation: m.Propagation,
		}
		if m.Type == "tmpfs" {
			mp.Source = ""
		}
		out = append(out, mp)
	}
	return out
}

// networkSettings is inspect's NetworkSettings: the namespace, the published ports and an
// endpoint per network (with its address while the container runs). Called with c.mu held.
func (c *Container) networkSettings() *container.NetworkSettings {
	ns := &container.NetworkSettings{
		Networks: map[string]*network.EndpointSettings{},
		Ports:    network.PortMap{},
	}
	mode := c.HostConfig.NetworkMode
	switch {
	case mode == "host" || mode == "none":
		ns.Networks[string(mode)] = &network.EndpointSettings{NetworkID: predefinedID(string(mode))}
	case bridged(mode):
		for name, ep := range c.Networks {
			es := &network.EndpointSettings{
				NetworkID:  ep.NetworkID,
				EndpointID: ep.EndpointID,
				Aliases:    ep.Aliases,
				Gateway:    ep.Gateway,
			}
			if ep.IPv4.IsValid() {
				es.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: ep.IPv4}
			}
			if ep.Address.IsValid() {
				es.IPAddress, es.IPPrefixLen = ep.Address.Addr(), ep.Address.Bits()
				if mac, err := net.ParseMAC(ep.Mac); err == nil {
					es.MacAddress = network.HardwareAddr(mac)
				}
				es.DNSNames = append([]string{trimSlash(c.Name), ShortID(c.ID)}, ep.Aliases...)
			}
			ns.Networks[name] = es
		}
	}
	if c.State.Running && c.State.Pid > 0 && mode != "host" {
		ns.SandboxKey = "/proc/" + strconv.Itoa(c.State.Pid) + "/ns/net"
		if c.NetNS != "" {
			ns.SandboxKey = c.NetNS
		}
	}
	if c.State.Running && bridged(mode) {
		for p := range c.Config.ExposedPorts {
			ns.Ports[p] = nil
		}
		for _, m := range c.Ports {
			p, ok := network.PortFrom(m.ContainerPort, network.IPProtocol(m.Proto))
			if !ok {
				continue
			}
			host := m.HostIP
			if !host.IsValid() {
				host = netip.IPv4Unspecified()
			}
			ns.Ports[p] = append(ns.Ports[p], network.PortBinding{HostIP: host, HostPort: strconv.Itoa(int(m.HostPort))})
		}
	}
	return ns
}

// portSummaries are ps's ports: the exposed ones, with their host side when published.
// Called with c.mu held.
func (c *Container) portSummaries() []container.PortSummary {
	out := []container.PortSummary{}
	published := map[network.Port]bool{}
	if c.State.Running {
		for _, m := range c.Ports {
			host := m.HostIP
			if !host.IsValid() {
				host = netip.IPv4Unspecified()
			}
			out = append(out, container.PortSummary{IP: host, PrivatePort: m.ContainerPort, PublicPort: m.HostPort, Type: string(m.Proto)})
			if p, ok := network.PortFrom(m.ContainerPort, network.IPProtocol(m.Proto)); ok {
				published[p] = true
			}
		}
	}
	for p := range c.Config.ExposedPorts {
		if !published[p] {
			out = append(out, container.PortSummary{PrivatePort: p.Num(), Type: string(p.Proto())})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].PrivatePort != out[j].PrivatePort {
			return out[i].PrivatePort < out[j].PrivatePort
		}
		return out[i].PublicPort < out[j].PublicPort
	})
	return out
}

// sizes are the container's writable layer size and its whole rootfs size.
func (d *Daemon) sizes(c *Container) (rw, rootfs int64) {
	if upper, err := d.images.Snaps.UpperDir(c.ID); err == nil {
		rw = dirSize(upper)
	}
	if im, err := d.images.Resolve(c.Image); err == nil {
		rootfs = im.Size + rw
	}
	return rw, rootfs
}

func dirSize(dir string) int64 {
	n, _ := dirUsage(dir)
	return n
}

// dirUsage is the bytes (hard links counted once) and inodes of the tree at dir.
func dirUsage(dir string) (bytes, inodes int64) {
	seen := map[uint64]bool{}
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		inodes++
		if !fi.IsDir() {
			bytes += fi.Size()
		}
		return nil
	})
	return bytes, inodes
}

// ListOptions are GET /containers/json's parameters.
type ListOptions struct {
	All     bool
	Limit   int
	Size    bool
	Filters Filters
}

// ListSummaries is GET /containers/json.
func (d *Daemon) ListSummaries(ctx context.Context, opts ListOptions) ([]container.Summary, error) {
	for k := range opts.Filters {
		switch k {
		case "id", "name", "label", "status", "exited", "ancestor", "before", "since", "volume", "health", "is-task", "network", "expose", "publish":
		default:
			return nil, errdefs.Invalid("invalid filter '%s'", k)
		}
	}
	f := opts.Filters
	all := opts.All || opts.Limit > 0 || len(f["status"]) > 0 || len(f["exited"]) > 0
	var before, since time.Time
	if v := f["before"]; len(v) > 0 {
		c, err := d.get(ctx, v[0])
		if err != nil {
			return nil, err
		}
		before = c.Created
	}
	if v := f["since"]; len(v) > 0 {
		c, err := d.get(ctx, v[0])
		if err != nil {
			return nil, err
		}
		since = c.Created
	}
	out := []container.Summary{}
	now := time.Now()
	for _, c := range d.ListIn(NamespaceOf(ctx)) {
		c.mu.Lock()
		s := c.State
		if !all && !s.Running {
			c.mu.Unlock()
			continue
		}
		if (!before.IsZero() && !c.Created.Before(before)) || (!since.IsZero() && !c.Created.After(since)) {
			c.mu.Unlock()
			continue
		}
		if !d.matchContainer(c, f) {
			c.mu.Unlock()
			continue
		}
		sum := container.Summary{
			ID:      c.ID,
			Names:   []string{c.Name},
			Image:   c.ImageName,
			ImageID: c.Image,
			Command: strings.Join(append([]string{c.Path}, c.Args...), " "),
			Created: c.Created.Unix(),
			Ports:   c.portSummaries(),
			Labels:  c.Config.Labels,
			State:   statusOf(&s),
			Status:  s.statusText(now),
			Mounts:  c.mountViews(),
		}
		if sum.Labels == nil {
			sum.Labels = map[string]string{}
		}
		sum.HostConfig.NetworkMode = string(c.HostConfig.NetworkMode)
		if s.Health != nil {
			sum.Health = &container.HealthSummary{Status: s.Health.Status, FailingStreak: s.Health.FailingStreak}
		}
		sum.NetworkSettings = &container.NetworkSettingsSummary{Networks: c.networkSettings().Networks}
		c.mu.Unlock()
		if opts.Size {
			sum.SizeRw, sum.SizeRootFs = d.sizes(c)
		}
		out = append(out, sum)
		if opts.Limit > 0 && len(out) >= opts.Limit {
			break
		}
	}
	return out, nil
}

func statusOf(s *State) container.ContainerState {
	switch {
	case s.Removing:
		return container.StateRemoving
	case s.Dead:
		return container.StateDead
	case s.Restarting:
		return container.StateRestarting
	case s.Running && s.Paused:
		return container.StatePaused
	case s.Running:
		return container.StateRunning
	case s.StartedAt.IsZero():
		return container.StateCreated
	}
	return container.StateExited
}

// matchContainer applies the list filters. Called with c.mu held.
func (d *Daemon) matchContainer(c *Container, f Filters) bool {
	any := func(key string, match func(string) bool) bool {
		vals := f[key]
		if len(vals) == 0 {
			return true
		}
		return slices.ContainsFunc(vals, match)
	}
	if !any("id", func(v string) bool { return strings.HasPrefix(c.ID, v) }) {
		return false
	}
	if !any("name", func(v string) bool {
		// A regular expression on the name without its slash, as dockerd.
		re, err := regexp.Compile(v)
		if err != nil {
			return strings.Contains(c.Name, strings.TrimPrefix(v, "/"))
		}
		return re.MatchString(strings.TrimPrefix(c.Name, "/")) || re.MatchString(c.Name)
	}) {
		return false
	}
	if !any("status", func(v string) bool { return string(statusOf(&c.State)) == v }) {
		return false
	}
	if !any("exited", func(v string) bool {
		n, err := strconv.Atoi(v)
		return err == nil && !c.State.Running && !c.State.StartedAt.IsZero() && c.State.ExitCode == n
	}) {
		return false
	}
	if !any("ancestor", func(v string) bool {
		if c.ImageName == v || c.Image == v || strings.HasPrefix(strings.TrimPrefix(c.Image, "sha256:"), strings.TrimPrefix(v, "sha256:")) {
			return true
		}
		im, err := d.images.Resolve(v)
		return err == nil && im.ID.String() == c.Image
	}) {
		return false
	}
	if !any("volume", func(v string) bool {
		return slices.ContainsFunc(c.Mounts, func(m MountPoint) bool { return m.Name == v || m.Destination == v || m.Source == v })
	}) {
		return false
	}
	if !any("health", func(v string) bool {
		if c.State.Health == nil {
			return v == "none"
		}
		return string(c.State.Health.Status) == v
	}) {
		return false
	}
	if !any("network", func(v string) bool {
		if string(c.HostConfig.NetworkMode) == v {
			return true
		}
		for name, ep := range c.Networks {
			if name == v || ep.NetworkID == v {
				return true
			}
		}
		return false
	}) {
		return false
	}
	portMatch := func(v string, num uint16, proto string) bool {
		n, pr, hasProto := strings.Cut(v, "/")
		if hasProto && pr != proto {
			return false
		}
		r, err := network.ParsePortRange(n)
		return err == nil && num >= r.Start() && num <= r.End()
	}
	if !any("publish", func(v string) bool {
		for _, m := range c.Ports {
			if c.State.Running && portMatch(v, m.HostPort, string(m.Proto)) {
				return true
			}
		}
		return false
	}) {
		return false
	}
	if !any("expose", func(v string) bool {
		for p := range c.Config.ExposedPorts {
			if portMatch(v, p.Num(), string(p.Proto())) {
				return true
			}
		}
		return false
	}) {
		return false
	}
	if !any("is-task", func(v string) bool { return v == "false" }) {
		return false
	}
	for _, l := range f["label"] {
		k, v, hasV := strings.Cut(l, "=")
		got, ok := c.Config.Labels[k]
		if !ok || (hasV && got != v) {
			return false
		}
	}
	return true
}

// Top is GET /containers/{id}/top: ps on the host, for the container's processes.
func (d *Daemon) Top(ctx context.Context, ref, psArgs string) (container.TopResponse, error) {
	c, err := d.get(ctx, ref)
	if err != nil {
		return container.TopResponse{}, err
	}
	c.mu.Lock()
	pid, running := c.State.Pid, c.State.Running
	c.mu.Unlock()
	if !running {
		return container.TopResponse{}, errdefs.Conflict("container %s is not running", c.ID)
	}
	pids := containerPids(pid)
	if psArgs == "" {
		psArgs = "-ef"
	}
	out, err := runCmd(ctx, "ps", strings.Fields(psArgs)...)
	if err != nil {
		return container.TopResponse{}, fmt.Errorf("error running ps: %w", err)
	}
	return parsePS(out, pids)
}

// containerPids are the pids in the init's cgroup (pids, or memory on v1 hosts).
func containerPids(pid int) map[int]bool {
	out := map[int]bool{pid: true}
	for _, ctl := range []string{"pids", "memory", "freezer", "cpu"} {
		dir := cgroupDir(pid, ctl)
		if dir == "" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out[n] = true
			}
		}
		break
	}
	return out
}

func parsePS(out []byte, pids map[int]bool) (container.TopResponse, error) {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) == 0 {
		return container.TopResponse{}, fmt.Errorf("ps printed nothing")
	}
	titles := strings.Fields(lines[0])
	col := slices.Index(titles, "PID")
	if col < 0 {
		return container.TopResponse{}, errdefs.Invalid("Couldn't find PID field in ps output")
	}
	r := container.TopResponse{Titles: titles, Processes: [][]string{}}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) <= col {
			continue
		}
		p, err := strconv.Atoi(f[col])
		if err != nil || !pids[p] {
			continue
		}
		if len(f) > len(titles) {
			last := strings.Join(f[len(titles)-1:], " ")
			f = append(f[:len(titles)-1], last)
		}
		r.Processes = append(r.Processes, f)
	}
	return r, nil
}

func runCmd(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := execCommandContext(ctx, name, args...)
	return cmd.Output()
}

// Export writes a container's filesystem as a tar.
func (d *Daemon) Export(ctx context.Context, ref string, w io.Writer) error {
	c, err := d.get(ctx, ref)
	if err != nil {
		return err
	}
	return d.images.Export(ctx, w, c.ID)
}
