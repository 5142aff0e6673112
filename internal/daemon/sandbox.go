package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	nettypes "github.com/moby/moby/api/types/network"
	"golang.org/x/sys/unix"

	"berth/internal/errdefs"
	"berth/internal/network"
	"berth/internal/network/firewall"
)

// Endpoint is a container's membership of a bridge network: what the user asked for, kept
// while the container exists, and what it got while it runs.
type Endpoint struct {
	NetworkID string
	// Aliases are the user's extra DNS names on this network (--network-alias).
	Aliases []string `json:",omitempty"`
	// IPv4 is the address the user asked for (--ip).
	IPv4 netip.Addr `json:",omitzero"`
	// MacAddress is the address the user asked for (--mac-address).
	MacAddress string `json:",omitempty"`

	// While the container runs:
	EndpointID string       `json:",omitempty"`
	Address    netip.Prefix `json:",omitzero"`
	Gateway    netip.Addr   `json:",omitzero"`
	Mac        string       `json:",omitempty"`
	HostVeth   string       `json:",omitempty"`
	IfName     string       `json:",omitempty"`
}

// bridged reports whether a network mode puts the container on bridge networks (the default
// bridge or user-defined ones), in a namespace berthd makes.
func bridged(mode container.NetworkMode) bool {
	return mode != "host" && mode != "none" && !mode.IsContainer() && mode != ""
}

func (d *Daemon) netnsPath(c *Container) string {
	return filepath.Join(d.cfg.ExecRoot, "netns", c.ID)
}

// vethName is the host end's name for a container's endpoint on a network: stable, so that
// a leftover can be recognized, and unique enough in the host.
func vethName(containerID, networkID string) string {
	h := sha256.Sum256([]byte(containerID + "/" + networkID))
	return "veth" + hex.EncodeToString(h[:])[:7]
}

// macFor is Docker's generated MAC address: 02:42 and the IPv4 address.
func macFor(a netip.Addr) net.HardwareAddr {
	b := a.As4()
	return net.HardwareAddr{0x02, 0x42, b[0], b[1], b[2], b[3]}
}

// configureEndpoints records the networks a new container joins (its network mode and any
// other endpoint of the create request), checking them. Called before the record exists.
func (d *Daemon) configureEndpoints(c *Container, req *nettypes.NetworkingConfig) error {
	hc := c.HostConfig
	mode := hc.NetworkMode
	if !bridged(mode) {
		return nil
	}
	var cfgs map[string]*nettypes.EndpointSettings
	if req != nil {
		cfgs = req.EndpointsConfig
	}
	// A missing network is a bad parameter of the create, not a 404: the docker CLI takes a
	// 404 from create for a missing image and tries to pull it.
	primary, err := d.NetworkByRef(string(mode))
	if err != nil {
		return errdefs.Invalid("%s", err.Error())
	}
	if primary.Driver != "bridge" {
		return errdefs.Invalid("network mode %s: %s is a %s network", mode, primary.Name, primary.Driver)
	}
	// The mode names the network as the user wrote it; the record keeps its name.
	hc.NetworkMode = container.NetworkMode(primary.Name)
	c.Networks = map[string]*Endpoint{}
	add := func(nw *Network, es *nettypes.EndpointSettings) error {
		ep, err := newEndpoint(nw, es)
		if err != nil {
			return err
		}
		c.Networks[nw.Name] = ep
		return nil
	}
	var primaryCfg *nettypes.EndpointSettings
	for ref, es := range cfgs {
		if ref == string(mode) || ref == primary.Name || ref == primary.ID || ref == "default" {
			primaryCfg = es
		}
	}
	if err := add(primary, primaryCfg); err != nil {
		return err
	}
	for ref, es := range cfgs {
		if ref == "default" || ref == string(mode) {
			continue
		}
		nw, err := d.NetworkByRef(ref)
		if err != nil {
			return errdefs.Invalid("%s", err.Error())
		}
		if nw.Name == primary.Name {
			continue
		}
		if nw.Driver != "bridge" {
			return errdefs.Invalid("container cannot be connected to network %s (%s) and %s", nw.Name, nw.Driver, primary.Name)
		}
		if err := add(nw, es); err != nil {
			return err
		}
	}
	for _, ep := range c.Networks {
		if ep.MacAddress != "" {
			if _, err := net.ParseMAC(ep.MacAddress); err != nil {
				return errdefs.Invalid("invalid MAC address %s", ep.MacAddress)
			}
		}
	}
	return nil
}

// newEndpoint is a container's endpoint on nw with the user's settings (aliases, --ip,
// --mac-address), checked.
func newEndpoint(nw *Network, es *nettypes.EndpointSettings) (*Endpoint, error) {
	ep := &Endpoint{NetworkID: nw.ID}
	if es == nil {
		return ep, nil
	}
	if len(es.Aliases) > 0 {
		if !nw.UserDefined() {
			return nil, errdefs.Invalid("network-scoped alias is supported only for containers in user defined networks")
		}
		ep.Aliases = slices.Clone(es.Aliases)
	}
	if es.IPAMConfig != nil && es.IPAMConfig.IPv4Address.IsValid() {
		a := es.IPAMConfig.IPv4Address
		if !nw.UserDefined() {
			return nil, errdefs.Invalid("user specified IP address is supported on user defined networks only")
		}
		if !a.Is4() || !nw.Subnet.Contains(a) {
			return nil, errdefs.Invalid("invalid IP address %s: it is not in network %s's subnet %s", a, nw.Name, nw.Subnet)
		}
		ep.IPv4 = a
	}
	if es.IPAMConfig != nil && es.IPAMConfig.IPv6Address.IsValid() {
		return nil, errdefs.Invalid("IPv6 addresses are not supported by berth yet")
	}
	if len(es.MacAddress) > 0 {
		ep.MacAddress = es.MacAddress.String()
	}
	return ep, nil
}

// setupNetwork gives a starting container on bridge networks its namespace, one veth per
// network (eth0 on its network mode's, with the default route), addresses from IPAM, its
// published ports and, on user-defined networks, the embedded DNS server. Each piece is
// recorded in c before it is made, so that on error start's teardownNetwork removes them
// all. Called with c.op held.
func (d *Daemon) setupNetwork(c *Container) error {
	c.mu.Lock()
	if !bridged(c.HostConfig.NetworkMode) || len(c.Networks) == 0 {
		mode := c.HostConfig.NetworkMode
		c.mu.Unlock()
		if bridged(mode) || mode == "none" {
			// Disconnected from every network, or none: a namespace with only lo, up (as
			// Docker's; AttachVeth sets it up where a network is attached).
			if err := d.makeNetNS(c); err != nil {
				return err
			}
			return network.LoopbackUp(d.netnsPath(c))
		}
		return nil
	}
	names := sortedEndpoints(c)
	eps := map[string]Endpoint{}
	for name, ep := range c.Networks {
		eps[name] = *ep
	}
	c.mu.Unlock()
	if err := d.makeNetNS(c); err != nil {
		return err
	}
	// On error, start's teardownNetwork removes what was made: everything is recorded in c
	// before it is made.
	n := d.nets
	gatewaySet, userNet := false, false
	var primary netip.Addr
	for i, name := range names {
		ep := eps[name]
		nw, ok := n.network(ep.NetworkID)
		if !ok {
			return errdefs.NotFound("network %s not found", name)
		}
		addr, err := n.ipam.Allocate(nw.ID, c.ID, ep.IPv4)
		if err != nil {
			return fmt.Errorf("network %s: %w", nw.Name, err)
		}
		mac := macFor(addr.Addr())
		if ep.MacAddress != "" {
			mac, _ = net.ParseMAC(ep.MacAddress)
		}
		var gw netip.Addr
		if !gatewaySet && !nw.Internal {
			gw, gatewaySet = nw.Gateway, true
		}
		ep.IfName = "eth" + strconv.Itoa(i)
		ep.HostVeth = vethName(c.ID, nw.ID)
		ep.Address, ep.Gateway, ep.Mac, ep.EndpointID = addr, nw.Gateway, mac.String(), newID()
		// Recorded before the veth exists: a teardown after a failure finds what to remove.
		d.setEndpoint(c, name, ep)
		n.host.DetachVeth(ep.HostVeth) // a leftover of a crash would be a name conflict
		if err := n.host.AttachVeth(network.Endpoint{
			Bridge: nw.Bridge, NetNS: d.netnsPath(c), IfName: ep.IfName, Address: addr,
			Gateway: gw, MTU: nw.MTU, HostVeth: ep.HostVeth, MAC: mac,
		}); err != nil {
			return fmt.Errorf("network %s: %w", nw.Name, err)
		}
		if i == 0 {
			primary = addr.Addr()
		}
		if nw.UserDefined() {
			userNet = true
		}
	}
	if err := d.publishPorts(c, primary); err != nil {
		return err
	}
	if userNet {
		if err := n.dns.Attach(c.ID, d.netnsPath(c)); err != nil {
			return fmt.Errorf("embedded DNS: %w", err)
		}
	}
	return d.writeHosts(c)
}

// makeNetNS makes the container's namespace, bind-mounted under the exec root so that it
// outlives berthd.
func (d *Daemon) makeNetNS(c *Container) error {
	path := d.netnsPath(c)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	network.RemoveNetNS(path) // a leftover of a crash
	if err := network.NewNetNS(path); err != nil {
		return fmt.Errorf("network namespace: %w", err)
	}
	c.mu.Lock()
	c.NetNS = path
	c.mu.Unlock()
	return nil
}

func (d *Daemon) setEndpoint(c *Container, name string, ep Endpoint) {
	c.mu.Lock()
	if cur, ok := c.Networks[name]; ok {
		*cur = ep
	}
	c.mu.Unlock()
}

// teardownNetwork removes what setupNetwork made for a container: DNS, published ports,
// veths, the namespace and the addresses, and clears them in the record, which the caller
// saves (handleExit and a failed start save it next; a removal deletes it). Idempotent;
// called without locks.
func (d *Daemon) teardownNetwork(c *Container) {
	n := d.nets
	if n == nil {
		// No networks, but a none container's namespace.
		c.mu.Lock()
		path := c.NetNS
		c.NetNS = ""
		c.mu.Unlock()
		d.removeNetNS(c, path)
		return
	}
	c.mu.Lock()
	path, ports := c.NetNS, c.Ports
	var veths []string
	addressed := false
	for _, ep := range c.Networks {
		if ep.HostVeth != "" {
			veths = append(veths, ep.HostVeth)
		}
		addressed = addressed || ep.Address.IsValid()
	}
	c.mu.Unlock()
	if path == "" && len(ports) == 0 && len(veths) == 0 && !addressed {
		return
	}
	n.dns.Detach(c.ID)
	for _, p := range ports {
		if err := n.fw.RemovePort(p); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			d.log.Warn("remove published port", "id", c.ID, "port", p.String(), "err", err)
		}
		n.releasePort(p)
	}
	for _, v := range veths {
		if err := n.host.DetachVeth(v); err != nil {
			d.log.Warn("remove veth", "id", c.ID, "veth", v, "err", err)
		}
	}
	d.removeNetNS(c, path)
	if _, err := n.ipam.ReleaseOwner(c.ID); err != nil {
		d.log.Warn("release addresses", "id", c.ID, "err", err)
	}
	c.mu.Lock()
	c.NetNS, c.Ports = "", nil
	for _, ep := range c.Networks {
		ep.EndpointID, ep.Address, ep.Gateway, ep.Mac, ep.HostVeth, ep.IfName = "", netip.Prefix{}, netip.Addr{}, "", "", ""
	}
	c.mu.Unlock()
}

// removeNetNS removes the network namespace berthd made for c at path ("": none).
func (d *Daemon) removeNetNS(c *Container, path string) {
	if path == "" {
		return
	}
	if err := network.RemoveNetNS(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		d.log.Warn("remove network namespace", "id", c.ID, "err", err)
	}
}

// portKey identifies a reserved host port.
func portKey(p firewall.PortMapping) string {
	return fmt.Sprintf("%s/%s/%d", p.Proto, p.HostIP, p.HostPort)
}

// reservePort binds a socket to the host address and port of a mapping (port 0: the kernel
// picks a free one) and keeps it, so that no other process takes the port while it is
// published; the traffic itself is DNATed before it reaches the socket. It returns the port.
func (n *nets) reservePort(p firewall.PortMapping) (uint16, error) {
	typ := unix.SOCK_STREAM
	if p.Proto == firewall.UDP {
		typ = unix.SOCK_DGRAM
	}
	fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("reserve port: %w", err)
	}
	sa := &unix.SockaddrInet4{Port: int(p.HostPort)}
	if p.HostIP.IsValid() {
		sa.Addr = p.HostIP.As4()
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		host := "0.0.0.0"
		if p.HostIP.IsValid() {
			host = p.HostIP.String()
		}
		if errors.Is(err, unix.EADDRINUSE) {
			return 0, errdefs.Conflict("Bind for %s:%d failed: port is already allocated", host, p.HostPort)
		}
		if errors.Is(err, unix.EADDRNOTAVAIL) {
			return 0, errdefs.Invalid("Bind for %s:%d failed: %s is not an address of this host", host, p.HostPort, host)
		}
		return 0, fmt.Errorf("bind for %s:%d: %w", host, p.HostPort, err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return 0, err
	}
	p.HostPort = uint16(got.(*unix.SockaddrInet4).Port)
	n.portMu.Lock()
	n.ports[portKey(p)] = fd
	n.portMu.Unlock()
	return p.HostPort, nil
}

func (n *nets) releasePort(p firewall.PortMapping) {
	n.portMu.Lock()
	if fd, ok := n.ports[portKey(p)]; ok {
		closeFd(fd)
		delete(n.ports, portKey(p))
	}
	n.portMu.Unlock()
}

func closeFd(fd int) { unix.Close(fd) }

// wantedPort is one host binding to make: hostPorts lists the candidates (one port, a range,
// or none for an ephemeral port).
type wantedPort struct {
	proto     firewall.Proto
	hostIP    netip.Addr
	hostPorts [2]uint16 // first, last; 0,0 = ephemeral
	port      uint16
}

// wantedPorts turns -p and -P into the bindings to make, checking them.
func (d *Daemon) wantedPorts(c *Container) ([]wantedPort, error) {
	hc := c.HostConfig
	var out []wantedPort
	defIP := netip.Addr{}
	if d.cfg.IP != "" {
		defIP, _ = netip.ParseAddr(d.cfg.IP)
	}
	keys := make([]nettypes.Port, 0, len(hc.PortBindings))
	for p := range hc.PortBindings {
		keys = append(keys, p)
	}
	if hc.PublishAllPorts {
		for p := range c.Config.ExposedPorts {
			if _, ok := hc.PortBindings[p]; !ok {
				keys = append(keys, p)
			}
		}
	}
	slices.SortFunc(keys, func(a, b nettypes.Port) int { return strings.Compare(a.String(), b.String()) })
	for _, p := range keys {
		proto := firewall.Proto(p.Proto())
		if proto != firewall.TCP && proto != firewall.UDP {
			return nil, errdefs.Invalid("published port %s: berth publishes tcp and udp ports only", p)
		}
		bindings, ok := hc.PortBindings[p]
		if !ok || len(bindings) == 0 {
			bindings = []nettypes.PortBinding{{}}
		}
		for _, b := range bindings {
			w := wantedPort{proto: proto, hostIP: b.HostIP, port: p.Num()}
			if w.hostIP.IsValid() && w.hostIP.Is6() {
				if w.hostIP.IsUnspecified() {
					continue // "::": the IPv6 half of a dual binding; berth publishes IPv4 only
				}
				return nil, errdefs.Invalid("published port %s on %s: IPv6 host addresses are not supported by berth yet", p, w.hostIP)
			}
			if !w.hostIP.IsValid() || w.hostIP.IsUnspecified() {
				w.hostIP = defIP
			}
			if w.hostIP.IsValid() && w.hostIP.IsUnspecified() {
				w.hostIP = netip.Addr{} // every address: one form, as the firewall lists it
			}
			if b.HostPort != "" {
				r, err := nettypes.ParsePortRange(b.HostPort)
				if err != nil {
					return nil, errdefs.Invalid("invalid host port %q for %s: %v", b.HostPort, p, err)
				}
				w.hostPorts = [2]uint16{r.Start(), r.End()}
			}
			out = append(out, w)
		}
	}
	return out, nil
}

// publishPorts reserves the host ports of the container's -p and -P and writes their rules,
// DNAT to the container's address on its first network.
func (d *Daemon) publishPorts(c *Container, addr netip.Addr) error {
	c.mu.Lock()
	wanted, err := d.wantedPorts(c)
	c.mu.Unlock()
	if err != nil || len(wanted) == 0 {
		return err
	}
	if !addr.IsValid() {
		return errdefs.Invalid("cannot publish ports: the container has no network address")
	}
	n := d.nets
	for _, w := range wanted {
		m := firewall.PortMapping{Proto: w.proto, HostIP: w.hostIP, ContainerIP: addr, ContainerPort: w.port}
		var lastErr error
		for hp := int(w.hostPorts[0]); hp <= int(w.hostPorts[1]); hp++ {
			m.HostPort = uint16(hp)
			port, err := n.reservePort(m)
			if err == nil {
				m.HostPort, lastErr = port, nil
				break
			}
			lastErr = err
		}
		if lastErr != nil {
			return lastErr
		}
		if err := n.fw.AddPort(m); err != nil {
			n.releasePort(m)
			if errors.Is(err, errdefs.ErrConflict) {
				return errdefs.Conflict("Bind for %s failed: port is already allocated", hostPortString(m))
			}
			return err
		}
		c.mu.Lock()
		c.Ports = append(c.Ports, m)
		c.mu.Unlock()
	}
	return nil
}

func hostPortString(m firewall.PortMapping) string {
	h := "0.0.0.0"
	if m.HostIP.IsValid() {
		h = m.HostIP.String()
	}
	return h + ":" + strconv.Itoa(int(m.HostPort))
}

// writeHosts rewrites the container's /etc/hosts for its addresses (before it starts or when
// it joins a network).
func (d *Daemon) writeHosts(c *Container) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, err := d.hostsContent(c)
	if err != nil {
		return err
	}
	return writeFileInPlace(c.HostsPath, b)
}

// writeFileInPlace replaces a file's content without replacing the file, so that a bind
// mount of it in a running container sees the change.
func writeFileInPlace(path string, b []byte) error {
	return os.WriteFile(path, b, 0o644)
}

// reconcileNetworks runs after the containers are reconciled: running containers get their
// port reservations and DNS back; what no running container owns is removed: namespaces,
// rules of ports, leases and veths.
func (d *Daemon) reconcileNetworks() {
	n := d.nets
	if n == nil {
		return
	}
	userDefined := n.userDefinedIDs()
	running := map[string]*Container{}
	ownedVeths := map[string]bool{}
	ownedPorts := map[string]bool{}
	for _, c := range d.List() {
		c.mu.Lock()
		alive := c.State.Running && c.NetNS != ""
		hasNet := c.NetNS != "" || len(c.Ports) > 0
		var ports []firewall.PortMapping
		userNet := false
		if alive {
			running[c.ID] = c
			ports = slices.Clone(c.Ports)
			for _, ep := range c.Networks {
				if ep.HostVeth != "" {
					ownedVeths[ep.HostVeth] = true
				}
				if ep.Address.IsValid() && userDefined[ep.NetworkID] {
					userNet = true
				}
			}
		}
		c.mu.Unlock()
		switch {
		case alive:
			for _, p := range ports {
				ownedPorts[portKey(p)] = true
				if _, err := n.reservePort(p); err != nil {
					d.log.Warn("reserve published port again", "id", c.ID, "port", p.String(), "err", err)
				}
				if err := n.fw.AddPort(p); err != nil {
					d.log.Warn("publish port again", "id", c.ID, "port", p.String(), "err", err)
				}
			}
			if userNet {
				if err := n.dns.Attach(c.ID, d.netnsPath(c)); err != nil {
					d.log.Warn("embedded DNS", "id", c.ID, "err", err)
				}
			}
		case hasNet:
			d.teardownNetwork(c)
			c.mu.Lock()
			if err := c.save(d); err != nil {
				d.log.Error("save container record", "id", c.ID, "err", err)
			}
			c.mu.Unlock()
		}
	}
	if ents, err := os.ReadDir(filepath.Join(d.cfg.ExecRoot, "netns")); err == nil {
		for _, e := range ents {
			if running[e.Name()] == nil {
				d.log.Info("removing a stale network namespace", "id", e.Name())
				network.RemoveNetNS(filepath.Join(d.cfg.ExecRoot, "netns", e.Name()))
			}
		}
	}
	if st, err := n.fw.List(); err == nil {
		for _, p := range st.Ports {
			if !ownedPorts[portKey(p)] {
				d.log.Info("removing a stale published port", "port", p.String())
				n.fw.RemovePort(p)
			}
		}
	}
	for _, nw := range d.Networks() {
		if nw.Driver != "bridge" {
			continue
		}
		leases, _ := n.ipam.Leases(nw.ID)
		for addr, owner := range leases {
			if running[owner] == nil {
				n.ipam.Release(nw.ID, addr)
			}
		}
		ports, _ := n.host.BridgePorts(nw.Bridge)
		for _, v := range ports {
			if strings.HasPrefix(v, "veth") && !ownedVeths[v] {
				d.log.Info("removing a stale veth", "veth", v)
				n.host.DetachVeth(v)
			}
		}
	}
}

// Connect joins a container to a bridge network; a running container gets its interface at
// once.
func (d *Daemon) Connect(ctx context.Context, netRef, ref string, es *nettypes.EndpointSettings) error {
	nw, err := d.NetworkByRef(netRef)
	if err != nil {
		return err
	}
	c, err := d.get(ctx, ref)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	mode := c.HostConfig.NetworkMode
	_, already := c.Networks[nw.Name]
	running := c.State.Running
	c.mu.Unlock()
	switch {
	case nw.Driver != "bridge" || !bridged(mode):
		return errdefs.Forbidden("container %s: a container sharing its network namespace with the host or another container, or on the none network, cannot be connected to other networks", ShortID(c.ID))
	case already:
		return errdefs.Forbidden("endpoint with name %s already exists in network %s", trimSlash(c.Name), nw.Name)
	}
	ep, err := newEndpoint(nw, es)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.Networks == nil {
		c.Networks = map[string]*Endpoint{}
	}
	c.Networks[nw.Name] = ep
	ifIndex := len(c.Networks) - 1
	c.mu.Unlock()
	if running {
		if err := d.attachRunning(c, nw, ep, ifIndex); err != nil {
			c.mu.Lock()
			delete(c.Networks, nw.Name)
			c.mu.Unlock()
			return err
		}
		if err := d.writeHosts(c); err != nil {
			d.log.Warn("update /etc/hosts", "id", c.ID, "err", err)
		}
	}
	return d.savedNetworkChange(c, nw, events.ActionConnect)
}

// savedNetworkChange records a container's connect or disconnect and then tells the event
// stream.
func (d *Daemon) savedNetworkChange(c *Container, nw *Network, action events.Action) error {
	c.mu.Lock()
	err := c.saveSync(d)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	d.Event(events.NetworkEventType, action, nw.ID, map[string]string{"name": nw.Name, "type": "bridge", "container": c.ID})
	return nil
}

// attachRunning gives a running container an interface on one more network.
func (d *Daemon) attachRunning(c *Container, nw *Network, ep *Endpoint, ifIndex int) (err error) {
	n := d.nets
	c.mu.Lock()
	used := map[string]bool{}
	for _, o := range c.Networks {
		used[o.IfName] = true
	}
	userDefined := n.userDefinedIDs()
	userNet := false
	for _, o := range c.Networks {
		if userDefined[o.NetworkID] && o.Address.IsValid() {
			userNet = true
		}
	}
	nsPath := c.NetNS
	c.mu.Unlock()
	if nsPath == "" {
		return errdefs.Conflict("container %s has no network namespace of berth's", ShortID(c.ID))
	}
	for used["eth"+strconv.Itoa(ifIndex)] {
		ifIndex++
	}
	addr, err := n.ipam.Allocate(nw.ID, c.ID, ep.IPv4)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			n.ipam.Release(nw.ID, addr.Addr())
		}
	}()
	mac := macFor(addr.Addr())
	veth := vethName(c.ID, nw.ID)
	if err := n.host.AttachVeth(network.Endpoint{Bridge: nw.Bridge, NetNS: nsPath, IfName: "eth" + strconv.Itoa(ifIndex), Address: addr, MTU: nw.MTU, HostVeth: veth, MAC: mac}); err != nil {
		return err
	}
	c.mu.Lock()
	ep.IfName, ep.HostVeth, ep.Address, ep.Gateway, ep.Mac, ep.EndpointID = "eth"+strconv.Itoa(ifIndex), veth, addr, nw.Gateway, mac.String(), newID()
	c.mu.Unlock()
	if nw.UserDefined() && !userNet {
		if err := n.dns.Attach(c.ID, nsPath); err != nil {
			n.host.DetachVeth(veth)
			return err
		}
	}
	return nil
}

// Disconnect removes a container from a network; a running container loses its interface.
func (d *Daemon) Disconnect(ctx context.Context, netRef, ref string, force bool) error {
	nw, err := d.NetworkByRef(netRef)
	if err != nil {
		return err
	}
	c, err := d.get(ctx, ref)
	if err != nil {
		return err
	}
	userDefined := d.nets.userDefinedIDs()
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	ep, ok := c.Networks[nw.Name]
	if !ok {
		c.mu.Unlock()
		if nw.Driver != "bridge" {
			return errdefs.Forbidden("container cannot be disconnected from host network or connected to host network")
		}
		return errdefs.Forbidden("container %s is not connected to network %s", ShortID(c.ID), nw.Name)
	}
	veth, addr := ep.HostVeth, ep.Address
	delete(c.Networks, nw.Name)
	userLeft := false
	for _, o := range c.Networks {
		if userDefined[o.NetworkID] && o.Address.IsValid() {
			userLeft = true
		}
	}
	running := c.State.Running
	c.mu.Unlock()
	if running && veth != "" {
		if err := d.nets.host.DetachVeth(veth); err != nil {
			return err
		}
		if addr.IsValid() {
			d.nets.ipam.Release(nw.ID, addr.Addr())
		}
		if !userLeft {
			d.nets.dns.Detach(c.ID)
		}
		if err := d.writeHosts(c); err != nil {
			d.log.Warn("update /etc/hosts", "id", c.ID, "err", err)
		}
	}
	return d.savedNetworkChange(c, nw, events.ActionDisconnect)
}

// network returns a copy of the bridge network with that ID.
func (n *nets) network(id string) (*Network, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	nw, ok := n.byID[id]
	if !ok {
		return nil, false
	}
	cp := *nw
	return &cp, true
}

// userDefinedIDs is the set of the user-defined networks' IDs.
func (n *nets) userDefinedIDs() map[string]bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := map[string]bool{}
	for id, nw := range n.byID {
		if nw.UserDefined() {
			out[id] = true
		}
	}
	return out
}

// dnsView answers the embedded DNS server's questions from the containers' records: a
// container finds, on the user-defined networks it is on, the running containers by name,
// alias and short ID.
type dnsView struct{ d *Daemon }

// userNetworksOf returns the IDs of the user-defined networks where the container has an
// address.
func (v dnsView) userNetworksOf(id string) map[string]bool {
	c, err := v.d.getAny(id)
	if err != nil {
		return nil
	}
	user := v.d.nets.userDefinedIDs()
	out := map[string]bool{}
	c.mu.Lock()
	for _, ep := range c.Networks {
		if ep.Address.IsValid() && user[ep.NetworkID] {
			out[ep.NetworkID] = true
		}
	}
	c.mu.Unlock()
	return out
}

// LookupIPv4 implements dns.Resolver.
func (v dnsView) LookupIPv4(asker, name string) ([]netip.Addr, bool) {
	nets := v.userNetworksOf(asker)
	if len(nets) == 0 {
		return nil, false
	}
	var out []netip.Addr
	for _, c := range v.d.List() {
		c.mu.Lock()
		for netName, ep := range c.Networks {
			if !nets[ep.NetworkID] || !ep.Address.IsValid() {
				continue
			}
			names := append([]string{trimSlash(c.Name), ShortID(c.ID)}, ep.Aliases...)
			for _, nm := range names {
				nm = strings.ToLower(nm)
				if nm == name || nm+"."+strings.ToLower(netName) == name {
					out = append(out, ep.Address.Addr())
					break
				}
			}
		}
		c.mu.Unlock()
	}
	return out, len(out) > 0
}

// LookupPTR implements dns.Resolver.
func (v dnsView) LookupPTR(asker string, addr netip.Addr) ([]string, bool) {
	nets := v.userNetworksOf(asker)
	if len(nets) == 0 {
		return nil, false
	}
	for _, c := range v.d.List() {
		c.mu.Lock()
		for netName, ep := range c.Networks {
			if nets[ep.NetworkID] && ep.Address.IsValid() && ep.Address.Addr() == addr {
				name := trimSlash(c.Name) + "." + netName
				c.mu.Unlock()
				return []string{name}, true
			}
		}
		c.mu.Unlock()
	}
	return nil, false
}

// holdsNetwork reports whether the record says the container runs or has a namespace of
// berth's.
func (c *Container) holdsNetwork() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.State.Running || c.NetNS != ""
}

// UpstreamsFor implements dns.UpstreamChooser: a container's --dns servers (or daemon.json's
// dns) are where its other names go, as with Docker; a container only on internal networks
// gets no forwarding at all (it has no way out).
func (v dnsView) UpstreamsFor(id string) ([]netip.AddrPort, bool) {
	c, err := v.d.getAny(id)
	if err != nil {
		return nil, false
	}
	c.mu.Lock()
	servers := slices.Clone(c.HostConfig.DNS)
	var nets []string
	for _, ep := range c.Networks {
		if ep.Address.IsValid() {
			nets = append(nets, ep.NetworkID)
		}
	}
	c.mu.Unlock()
	internal := len(nets) > 0
	v.d.nets.mu.Lock()
	for _, id := range nets {
		if nw, ok := v.d.nets.byID[id]; !ok || !nw.Internal {
			internal = false
		}
	}
	v.d.nets.mu.Unlock()
	if internal {
		return []netip.AddrPort{}, true
	}
	if len(servers) == 0 {
		for _, s := range v.d.cfg.DNS {
			if a, err := netip.ParseAddr(s); err == nil {
				servers = append(servers, a)
			}
		}
	}
	if len(servers) == 0 {
		return nil, false
	}
	out := make([]netip.AddrPort, 0, len(servers))
	for _, a := range servers {
		out = append(out, netip.AddrPortFrom(a, 53))
	}
	return out, true
}
