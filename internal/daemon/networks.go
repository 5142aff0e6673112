package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/events"

	"berth/internal/atomicfile"
	"berth/internal/errdefs"
	"berth/internal/network"
	"berth/internal/network/dns"
	"berth/internal/network/firewall"
)

// Network is a network berthd knows: the predefined bridge, host and none, and the
// user-defined bridge networks.
type Network struct {
	ID      string
	Name    string
	Driver  string // bridge, host or null
	Created time.Time
	// Bridge is the interface of a bridge network (berth0, br-<id>).
	Bridge   string       `json:",omitempty"`
	Subnet   netip.Prefix `json:",omitzero"`
	Gateway  netip.Addr   `json:",omitzero"`
	IPRange  netip.Prefix `json:",omitzero"`
	Internal bool         `json:",omitempty"`
	// Attachable is only recorded (swarm's flag).
	Attachable bool              `json:",omitempty"`
	Labels     map[string]string `json:",omitempty"`
	Options    map[string]string `json:",omitempty"`
	MTU        int               `json:",omitempty"`
	// Default marks the default "bridge" network: no names in its DNS, as Docker's.
	Default bool `json:",omitempty"`
}

// UserDefined reports whether the network is a user-defined bridge network (containers
// on it find each other by name).
func (n *Network) UserDefined() bool { return n.Driver == "bridge" && !n.Default }

// Predefined reports whether the network is one of bridge, host and none.
func (n *Network) Predefined() bool { return n.Default || n.Driver == "host" || n.Driver == "null" }

// predefinedID is the ID of the host and none networks, stable across restarts.
func predefinedID(name string) string {
	h := sha256.Sum256([]byte("berth-network:" + name))
	return hex.EncodeToString(h[:])
}

var (
	hostNetwork = &Network{ID: predefinedID("host"), Name: "host", Driver: "host"}
	noneNetwork = &Network{ID: predefinedID("none"), Name: "none", Driver: "null"}
)

// networksFile is the record of the bridge networks, under <data-root>/network.
const networksFile = "networks.json"

// nets is what berthd holds of its networks: the records, the IPAM store, the host's bridges
// and veths, berth's nftables table, the embedded DNS server and the sockets that reserve
// published host ports.
type nets struct {
	// opMu serializes network create and remove. mu guards byID and the records' file; it is
	// held briefly and nothing else is locked under it (container locks come before it).
	opMu sync.Mutex
	mu   sync.Mutex
	dir  string
	byID map[string]*Network

	ipam *network.IPAM
	host *network.Host
	fw   *firewall.Firewall
	dns  *dns.Server

	portMu sync.Mutex
	ports  map[string]int // reserved host ports: mapping key -> bound socket
}

// openNetworks loads the network records and makes sure the kernel has what they need:
// berth's table, the default bridge and the bridges of user networks, with their rules.
func (d *Daemon) openNetworks() (err error) {
	dir := filepath.Join(d.root, "network")
	n := &nets{dir: dir, byID: map[string]*Network{}, ports: map[string]int{}}
	if n.ipam, err = network.OpenIPAM(dir); err != nil {
		return err
	}
	if n.host, err = network.OpenHost(""); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			n.host.Close()
		}
	}()
	if n.fw, err = firewall.New(""); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			n.fw.Close()
		}
	}()
	b, rerr := os.ReadFile(filepath.Join(dir, networksFile))
	switch {
	case errors.Is(rerr, os.ErrNotExist):
	case rerr != nil:
		return fmt.Errorf("read networks: %w", rerr)
	default:
		var recs []*Network
		if err := json.Unmarshal(b, &recs); err != nil {
			return fmt.Errorf("read %s: %w: %v", filepath.Join(dir, networksFile), errdefs.ErrCorrupt, err)
		}
		for _, r := range recs {
			n.byID[r.ID] = r
		}
	}
	if err := n.fw.EnsureBase(); err != nil {
		return fmt.Errorf("firewall: %w", err)
	}
	if err := applySysctls(firewall.RequiredSysctls("")); err != nil {
		return err
	}
	d.nets = n
	if d.cfg.Bridge != "none" {
		if err := d.ensureDefaultBridge(); err != nil {
			return fmt.Errorf("default bridge network: %w", err)
		}
	}
	for _, nw := range n.byID {
		if err := n.ensureInfra(nw); err != nil {
			d.log.Error("network: bring up", "network", nw.Name, "err", err)
		}
	}
	hostConf, _ := os.ReadFile("/etc/resolv.conf")
	n.dns = dns.New(dns.Config{Resolver: dnsView{d}, Upstreams: dns.Upstreams(hostConf), Logger: d.log.With("component", "dns")})
	return nil
}

var _ dns.UpstreamChooser = dnsView{}

// closeNetworks releases berthd's handles; the kernel objects stay for the containers.
func (d *Daemon) closeNetworks() {
	if d.nets == nil {
		return
	}
	d.nets.dns.Close()
	d.nets.portMu.Lock()
	for k, fd := range d.nets.ports {
		closeFd(fd)
		delete(d.nets.ports, k)
	}
	d.nets.portMu.Unlock()
	d.nets.fw.Close()
	d.nets.host.Close()
}

func applySysctls(list []firewall.Sysctl) error {
	for _, s := range list {
		if b, err := os.ReadFile(s.Path); err == nil && strings.TrimSpace(string(b)) == s.Value {
			continue
		}
		if err := os.WriteFile(s.Path, []byte(s.Value), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", s.Path, s.Value, err)
		}
	}
	return nil
}

// save writes the records durably. Called with n.mu held.
func (n *nets) save() error {
	recs := make([]*Network, 0, len(n.byID))
	for _, r := range n.byID {
		recs = append(recs, r)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Created.Before(recs[j].Created) })
	b, err := json.MarshalIndent(recs, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(n.dir, networksFile), b, 0o600, atomicfile.Durable)
}

// ensureInfra makes the bridge of a bridge network exist with its address, sysctls and rules.
func (n *nets) ensureInfra(nw *Network) error {
	if nw.Driver != "bridge" {
		return nil
	}
	if err := n.host.EnsureBridge(nw.Bridge, netip.PrefixFrom(nw.Gateway, nw.Subnet.Bits()), nw.MTU); err != nil {
		return err
	}
	if err := applySysctls(firewall.RequiredSysctls(nw.Bridge)); err != nil {
		return err
	}
	return n.fw.AddNetwork(nw.Bridge, nw.Subnet, nw.Internal)
}

// removeInfra deletes the bridge and rules of a network. Missing pieces are not errors.
func (n *nets) removeInfra(nw *Network) error {
	if err := n.fw.RemoveNetwork(nw.Bridge); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return err
	}
	return n.host.RemoveBridge(nw.Bridge)
}

// pools are the address pools of daemon.json, or Docker's defaults.
func (d *Daemon) pools() []network.Pool {
	if len(d.cfg.DefaultAddressPools) == 0 {
		return network.DefaultPools
	}
	var out []network.Pool
	for _, p := range d.cfg.DefaultAddressPools {
		out = append(out, network.Pool{Base: p.Base, Size: p.Size})
	}
	return out
}

// avoidRoutes are the host's routes and the subnets of berth's networks, which a chosen
// subnet must not overlap.
func (n *nets) avoidRoutes() []netip.Prefix {
	routes, _ := n.host.Routes()
	return routes
}

// ensureDefaultBridge makes the default "bridge" network's record (its subnet from bip, or
// chosen away from the host's routes) and follows a change of bip when nothing uses the old
// subnet.
func (d *Daemon) ensureDefaultBridge() error {
	n := d.nets
	name := d.cfg.Bridge
	if name == "" {
		name = "berth0"
	}
	var bip netip.Prefix
	if d.cfg.BIP != "" {
		var err error
		if bip, err = netip.ParsePrefix(d.cfg.BIP); err != nil || !bip.Addr().Is4() {
			return fmt.Errorf("bip %q: want an IPv4 address with its prefix length, such as 172.17.0.1/16", d.cfg.BIP)
		}
	}
	var cur *Network
	for _, nw := range n.byID {
		if nw.Default {
			cur = nw
		}
	}
	if cur != nil && (cur.Bridge != name || (bip.IsValid() && (cur.Subnet != bip.Masked() || cur.Gateway != bip.Addr())) || (cur.MTU != d.cfg.MTU)) {
		// The configuration changed: the old network goes if no running container holds an
		// address on it.
		leases, _ := n.ipam.Leases(cur.ID)
		for addr, owner := range leases {
			if c, err := d.getAny(owner); err == nil && c.holdsNetwork() {
				d.log.Error("the default bridge's configuration changed, but running containers use it: keeping the old one until they stop", "bridge", cur.Bridge, "subnet", cur.Subnet)
				return n.ensureInfra(cur)
			}
			n.ipam.Release(cur.ID, addr)
		}
		if err := n.removeInfra(cur); err != nil {
			return err
		}
		if err := n.ipam.RemoveNetwork(cur.ID); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			return err
		}
		delete(n.byID, cur.ID)
		cur = nil
	}
	if cur != nil {
		return nil
	}
	req := network.SubnetRequest{Pools: d.pools(), Avoid: n.avoidRoutes()}
	if bip.IsValid() {
		req.Subnet, req.Gateway = bip.Masked(), bip.Addr()
	}
	nw := &Network{ID: newID(), Name: "bridge", Driver: "bridge", Created: time.Now().UTC(), Bridge: name, MTU: d.cfg.MTU, Default: true}
	sub, err := n.ipam.AddNetwork(nw.ID, req)
	if err != nil {
		return err
	}
	nw.Subnet, nw.Gateway = sub.Subnet, sub.Gateway
	n.byID[nw.ID] = nw
	if err := n.save(); err != nil {
		delete(n.byID, nw.ID)
		n.ipam.RemoveNetwork(nw.ID)
		return err
	}
	return nil
}

// defaultBridge is the default bridge network, nil when disabled.
func (d *Daemon) defaultBridge() *Network {
	d.nets.mu.Lock()
	defer d.nets.mu.Unlock()
	for _, nw := range d.nets.byID {
		if nw.Default {
			return nw
		}
	}
	return nil
}

// NetworkByRef finds a network by name, full ID or unique ID prefix, as dockerd does.
func (d *Daemon) NetworkByRef(ref string) (*Network, error) {
	switch ref {
	case "host":
		return hostNetwork, nil
	case "none":
		return noneNetwork, nil
	}
	all := d.Networks()
	for _, nw := range all {
		if nw.ID == ref || nw.Name == ref {
			return nw, nil
		}
	}
	var found *Network
	if ref != "" {
		for _, nw := range all {
			if strings.HasPrefix(nw.ID, ref) {
				if found != nil {
					return nil, errdefs.Invalid("network %s is ambiguous (%d matches found based on ID prefix)", ref, 2)
				}
				found = nw
			}
		}
	}
	if found == nil {
		return nil, errdefs.NotFound("network %s not found", ref)
	}
	return found, nil
}

// Networks lists every network, the predefined ones included, oldest first.
func (d *Daemon) Networks() []*Network {
	d.nets.mu.Lock()
	out := []*Network{}
	for _, nw := range d.nets.byID {
		cp := *nw
		out = append(out, &cp)
	}
	d.nets.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	h, none := *hostNetwork, *noneNetwork
	h.Created, none.Created = d.started, d.started
	return append(out, &h, &none)
}

// NetworkCreateRequest is POST /networks/create, in berth's terms.
type NetworkCreateRequest struct {
	Name       string
	Driver     string
	Internal   bool
	Attachable bool
	EnableIPv6 bool
	Subnet     string
	IPRange    string
	Gateway    string
	// MoreIPAM: more than one IPAM config was given.
	MoreIPAM bool
	Labels   map[string]string
	Options  map[string]string
}

// bridge driver options that berth applies; others are recorded as given.
const (
	optBridgeName = "com.docker.network.bridge.name"
	optMTU        = "com.docker.network.driver.mtu"
)

var validNetworkName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// CreateNetwork makes a user-defined bridge network: its subnet, bridge and rules. On any
// error nothing is left.
func (d *Daemon) CreateNetwork(ctx context.Context, req NetworkCreateRequest) (nw *Network, err error) {
	switch {
	case req.Name == "":
		return nil, errdefs.Invalid("network name cannot be empty")
	case req.Name == "bridge" || req.Name == "host" || req.Name == "none" || req.Name == "default":
		return nil, errdefs.Forbidden("%s is a pre-defined network and cannot be created", req.Name)
	case !validNetworkName.MatchString(req.Name):
		return nil, errdefs.Invalid("invalid network name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", req.Name)
	case req.Driver != "" && req.Driver != "bridge":
		return nil, errdefs.NotFound("plugin %q not found: berth has the bridge driver only", req.Driver)
	case req.EnableIPv6:
		return nil, errdefs.Invalid("IPv6 networks are not supported by berth yet")
	case req.MoreIPAM:
		return nil, errdefs.Invalid("only one IPv4 IPAM configuration is supported per network")
	}
	sreq := network.SubnetRequest{Pools: d.pools()}
	parse := func(what, s string, p *netip.Prefix) error {
		if s == "" {
			return nil
		}
		v, err := netip.ParsePrefix(s)
		if err != nil {
			return errdefs.Invalid("invalid %s %s: %v", what, s, err)
		}
		if !v.Addr().Is4() {
			return errdefs.Invalid("invalid %s %s: IPv6 is not supported by berth yet", what, s)
		}
		*p = v
		return nil
	}
	if err := parse("subnet", req.Subnet, &sreq.Subnet); err != nil {
		return nil, err
	}
	if err := parse("ip-range", req.IPRange, &sreq.IPRange); err != nil {
		return nil, err
	}
	if req.Gateway != "" {
		g, err := netip.ParseAddr(req.Gateway)
		if err != nil || !g.Is4() {
			return nil, errdefs.Invalid("invalid gateway address %s", req.Gateway)
		}
		sreq.Gateway = g
	}
	if !sreq.Subnet.IsValid() && (sreq.IPRange.IsValid() || sreq.Gateway.IsValid()) {
		return nil, errdefs.Invalid("ip-range and gateway need a subnet")
	}
	nw = &Network{
		ID: newID(), Name: req.Name, Driver: "bridge", Created: time.Now().UTC(),
		Internal: req.Internal, Attachable: req.Attachable, Labels: req.Labels, Options: req.Options,
	}
	if v := req.Options[optMTU]; v != "" {
		if nw.MTU, err = strconv.Atoi(v); err != nil || nw.MTU < 68 {
			return nil, errdefs.Invalid("invalid %s %q", optMTU, v)
		}
	}
	nw.Bridge = "br-" + nw.ID[:12]
	if v := req.Options[optBridgeName]; v != "" {
		if len(v) > 15 || strings.ContainsAny(v, " /:") {
			return nil, errdefs.Invalid("invalid bridge name %q", v)
		}
		nw.Bridge = v
	}
	n := d.nets
	n.opMu.Lock()
	defer n.opMu.Unlock()
	n.mu.Lock()
	others := make([]*Network, 0, len(n.byID))
	for _, o := range n.byID {
		others = append(others, o)
	}
	n.mu.Unlock()
	for _, o := range others {
		if o.Name == req.Name {
			return nil, errdefs.Conflict("network with name %s already exists", req.Name)
		}
		if o.Bridge == nw.Bridge {
			return nil, errdefs.Conflict("bridge %s is used by network %s", nw.Bridge, o.Name)
		}
	}
	if !sreq.Subnet.IsValid() {
		sreq.Avoid = n.avoidRoutes()
	}
	sub, err := n.ipam.AddNetwork(nw.ID, sreq)
	if err != nil {
		if errors.Is(err, errdefs.ErrConflict) && sreq.Subnet.IsValid() {
			return nil, errdefs.Conflict("invalid pool request: Pool overlaps with other one on this address space (%v)", err)
		}
		return nil, err
	}
	defer func() {
		if err != nil {
			n.ipam.RemoveNetwork(nw.ID)
		}
	}()
	nw.Subnet, nw.Gateway, nw.IPRange = sub.Subnet, sub.Gateway, sub.IPRange
	if err = n.ensureInfra(nw); err != nil {
		n.removeInfra(nw)
		return nil, err
	}
	n.mu.Lock()
	n.byID[nw.ID] = nw
	if err = n.save(); err != nil {
		delete(n.byID, nw.ID)
	}
	n.mu.Unlock()
	if err != nil {
		n.removeInfra(nw)
		return nil, err
	}
	d.Event(events.NetworkEventType, events.ActionCreate, nw.ID, map[string]string{"name": nw.Name, "type": "bridge"})
	cp := *nw
	return &cp, nil
}

// RemoveNetwork removes a user-defined network that no running container is on.
func (d *Daemon) RemoveNetwork(ctx context.Context, ref string) error {
	nw, err := d.NetworkByRef(ref)
	if err != nil {
		return err
	}
	if nw.Predefined() {
		return errdefs.Forbidden("%s is a pre-defined network and cannot be removed", nw.Name)
	}
	n := d.nets
	n.opMu.Lock()
	defer n.opMu.Unlock()
	if users := d.activeEndpoints(nw.ID); len(users) > 0 {
		return errdefs.Forbidden("error while removing network: network %s has active endpoints (%s)", nw.Name, strings.Join(users, ", "))
	}
	if err := n.removeInfra(nw); err != nil {
		return err
	}
	if err := n.ipam.RemoveNetwork(nw.ID); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return err
	}
	n.mu.Lock()
	delete(n.byID, nw.ID)
	err = n.save()
	n.mu.Unlock()
	if err != nil {
		return err
	}
	d.Event(events.NetworkEventType, events.ActionDestroy, nw.ID, map[string]string{"name": nw.Name, "type": "bridge"})
	return nil
}

// activeEndpoints names the running containers with an endpoint on the network.
func (d *Daemon) activeEndpoints(id string) []string {
	var out []string
	for _, e := range d.NetworkEndpoints(id) {
		out = append(out, e.Name)
	}
	sort.Strings(out)
	return out
}

// NetworkEndpoint is a running container's endpoint on a network, for network inspect.
type NetworkEndpoint struct {
	ContainerID string
	Name        string
	Endpoint    Endpoint
}

// NetworkEndpoints lists the running containers' endpoints on a network.
func (d *Daemon) NetworkEndpoints(id string) []NetworkEndpoint {
	var out []NetworkEndpoint
	for _, c := range d.List() {
		c.mu.Lock()
		for _, ep := range c.Networks {
			if ep.NetworkID == id && ep.Address.IsValid() {
				out = append(out, NetworkEndpoint{ContainerID: c.ID, Name: trimSlash(c.Name), Endpoint: *ep})
			}
		}
		if (id == hostNetwork.ID && c.HostConfig.NetworkMode == "host" || id == noneNetwork.ID && c.HostConfig.NetworkMode == "none") && c.State.Running {
			out = append(out, NetworkEndpoint{ContainerID: c.ID, Name: trimSlash(c.Name)})
		}
		c.mu.Unlock()
	}
	return out
}

// PruneNetworks removes the user-defined networks without active endpoints that match the
// filters (label, label!, until).
func (d *Daemon) PruneNetworks(ctx context.Context, f Filters) ([]string, error) {
	for k := range f {
		if k != "label" && k != "label!" && k != "until" {
			return nil, errdefs.Invalid("invalid filter '%s'", k)
		}
	}
	until, err := untilFilter(f)
	if err != nil {
		return nil, errdefs.InvalidWrap(err, "invalid filter 'until'")
	}
	out := []string{}
	for _, nw := range d.Networks() {
		if nw.Predefined() || !matchLabels(nw.Labels, f) || (!until.IsZero() && !nw.Created.Before(until)) {
			continue
		}
		if err := d.RemoveNetwork(ctx, nw.ID); err != nil {
			if errors.Is(err, errdefs.ErrForbidden) || errors.Is(err, errdefs.ErrNotFound) {
				continue
			}
			return out, err
		}
		out = append(out, nw.Name)
	}
	return out, nil
}

// sortedEndpoints returns the names of the container's networks, the one of its network mode
// first (it gets the default route and the published ports), then by name. Called with c.mu
// held.
func sortedEndpoints(c *Container) []string {
	names := make([]string, 0, len(c.Networks))
	for name := range c.Networks {
		names = append(names, name)
	}
	mode := string(c.HostConfig.NetworkMode)
	slices.SortFunc(names, func(a, b string) int {
		switch {
		case a == mode:
			return -1
		case b == mode:
			return 1
		}
		return strings.Compare(a, b)
	})
	return names
}
