package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"berth/internal/errdefs"
)

// Host is the network namespace bridges and the host ends of veth pairs
// live in: berthd's own namespace in production (OpenHost("")), a
// namespace a test made in tests. Its methods talk netlink through a socket
// opened in that namespace, so they never depend on the calling thread's
// namespace.
type Host struct {
	path string
	ns   netns.NsHandle
	nl   *netlink.Handle
}

// OpenHost opens the namespace at nsPath ("" for the daemon's own).
func OpenHost(nsPath string) (*Host, error) {
	ns, err := openNS(nsPath)
	if err != nil {
		return nil, err
	}
	nl, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("netlink in %s: %w", nsPath, err)
	}
	return &Host{path: nsPath, ns: ns, nl: nl}, nil
}

// Close releases the netlink socket and namespace handle.
func (h *Host) Close() error {
	h.nl.Close()
	return h.ns.Close()
}

// retryDump repeats a netlink dump the kernel interrupted (the tables
// changed under it), a few times, rather than use a partial answer.
func retryDump[T any](f func() (T, error)) (T, error) {
	var v T
	var err error
	for range 5 {
		v, err = f()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return v, err
		}
	}
	return v, err
}

// Routes returns the destinations of the namespace's IPv4 routes, in all
// tables, for ChooseSubnet to avoid. Default routes are left out.
func (h *Host) Routes() ([]netip.Prefix, error) {
	routes, err := retryDump(func() ([]netlink.Route, error) {
		return h.nl.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	var out []netip.Prefix
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		p, ok := ipNetToPrefix(r.Dst)
		if !ok || p.Bits() == 0 {
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

func ipNetToPrefix(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones).Masked(), true
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// ifAddr is an interface address with its subnet's broadcast, as Docker
// sets it.
func ifAddr(p netip.Prefix) *netlink.Addr {
	a := &netlink.Addr{IPNet: prefixToIPNet(p)}
	if p.Bits() < 31 {
		a.Broadcast = broadcast(p).AsSlice()
	}
	return a
}

func notFoundLink(err error) bool {
	var lnf netlink.LinkNotFoundError
	return errors.As(err, &lnf) || errors.Is(err, unix.ENODEV)
}

// EnsureBridge makes the bridge name exist, carry gateway (the gateway
// address with the subnet's length), have mtu (0 keeps the kernel's) and
// be up. It is idempotent; a link of that name that is not a bridge is a
// conflict. Addresses the bridge already has are left alone.
func (h *Host) EnsureBridge(name string, gateway netip.Prefix, mtu int) error {
	if !gateway.IsValid() || !gateway.Addr().Is4() {
		return errdefs.Invalid("bridge %s: gateway %s is not an IPv4 CIDR", name, gateway)
	}
	link, err := h.nl.LinkByName(name)
	switch {
	case notFoundLink(err):
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: mtu}}
		if err := h.nl.LinkAdd(br); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("bridge %s: add: %w", name, err)
		}
		if link, err = h.nl.LinkByName(name); err != nil {
			return fmt.Errorf("bridge %s: %w", name, err)
		}
	case err != nil:
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	if link.Type() != "bridge" {
		return errdefs.Conflict("link %s exists and is a %s, not a bridge", name, link.Type())
	}
	if mtu > 0 && link.Attrs().MTU != mtu {
		if err := h.nl.LinkSetMTU(link, mtu); err != nil {
			return fmt.Errorf("bridge %s: set mtu %d: %w", name, mtu, err)
		}
	}
	if err := h.nl.AddrAdd(link, ifAddr(gateway)); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("bridge %s: add address %s: %w", name, gateway, err)
	}
	if err := h.nl.LinkSetUp(link); err != nil {
		return fmt.Errorf("bridge %s: up: %w", name, err)
	}
	return nil
}

// RemoveBridge deletes the bridge name; a missing one is not an error, a
// link of that name that is not a bridge is a conflict. Ports still on it
// are detached by the kernel, not deleted.
func (h *Host) RemoveBridge(name string) error {
	link, err := h.nl.LinkByName(name)
	if notFoundLink(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	if link.Type() != "bridge" {
		return errdefs.Conflict("link %s is a %s, not a bridge", name, link.Type())
	}
	if err := h.nl.LinkDel(link); err != nil && !notFoundLink(err) {
		return fmt.Errorf("bridge %s: delete: %w", name, err)
	}
	return nil
}

// Endpoint says how a container joins a bridge.
type Endpoint struct {
	Bridge   string       // bridge in the host namespace
	NetNS    string       // path of the container's network namespace
	IfName   string       // name of the container end; "eth0" when empty
	Address  netip.Prefix // the container's address with the subnet's length
	Gateway  netip.Addr   // default route; none when invalid (an internal network)
	MTU      int          // both ends; 0 keeps the kernel's (or the bridge's)
	HostVeth string       // name of the host end, unique in the host namespace
	// MAC is the container end's hardware address; nil lets the kernel choose.
	MAC net.HardwareAddr
}

// AttachVeth joins a container's namespace to a bridge: a veth pair whose
// host end is a port of the bridge, up, and whose other end is made inside
// the container's namespace under ep.IfName, addressed, up, with lo up and
// a default route via the gateway. On failure nothing is left behind.
func (h *Host) AttachVeth(ep Endpoint) (err error) {
	if ep.IfName == "" {
		ep.IfName = "eth0"
	}
	if ep.HostVeth == "" || len(ep.HostVeth) >= unix.IFNAMSIZ || len(ep.IfName) >= unix.IFNAMSIZ {
		return errdefs.Invalid("veth names %q/%q: want 1 to %d bytes", ep.HostVeth, ep.IfName, unix.IFNAMSIZ-1)
	}
	if !ep.Address.IsValid() || !ep.Address.Addr().Is4() {
		return errdefs.Invalid("endpoint address %s is not an IPv4 CIDR", ep.Address)
	}
	br, err := h.nl.LinkByName(ep.Bridge)
	if notFoundLink(err) {
		return errdefs.NotFound("bridge %s does not exist", ep.Bridge)
	}
	if err != nil {
		return fmt.Errorf("bridge %s: %w", ep.Bridge, err)
	}
	if br.Type() != "bridge" {
		return errdefs.Invalid("link %s is a %s, not a bridge", ep.Bridge, br.Type())
	}
	mtu := ep.MTU
	if mtu == 0 {
		mtu = br.Attrs().MTU
	}
	cns, err := openNS(ep.NetNS)
	if err != nil {
		return err
	}
	defer cns.Close()
	cnl, err := netlink.NewHandleAt(cns)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", ep.NetNS, err)
	}
	defer cnl.Close()

	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: ep.HostVeth, MTU: mtu, MasterIndex: br.Attrs().Index},
		PeerName:      ep.IfName,
		PeerMTU:       uint32(mtu),
		PeerNamespace: netlink.NsFd(int(cns)),
	}
	if len(ep.MAC) > 0 {
		veth.PeerHardwareAddr = ep.MAC
	}
	if err := h.nl.LinkAdd(veth); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return errdefs.Conflict("veth %s or %s in %s already exists", ep.HostVeth, ep.IfName, ep.NetNS)
		}
		return fmt.Errorf("veth %s: add: %w", ep.HostVeth, err)
	}
	defer func() {
		if err != nil {
			// Deleting either end deletes the pair.
			h.DetachVeth(ep.HostVeth)
		}
	}()

	peer, err := cnl.LinkByName(ep.IfName)
	if err != nil {
		return fmt.Errorf("veth %s in %s: %w", ep.IfName, ep.NetNS, err)
	}
	if err := cnl.AddrAdd(peer, ifAddr(ep.Address)); err != nil {
		return fmt.Errorf("veth %s: address %s: %w", ep.IfName, ep.Address, err)
	}
	if err := cnl.LinkSetUp(peer); err != nil {
		return fmt.Errorf("veth %s: up: %w", ep.IfName, err)
	}
	lo, err := cnl.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("lo in %s: %w", ep.NetNS, err)
	}
	if err := cnl.LinkSetUp(lo); err != nil {
		return fmt.Errorf("lo in %s: up: %w", ep.NetNS, err)
	}
	if ep.Gateway.IsValid() {
		r := &netlink.Route{LinkIndex: peer.Attrs().Index, Gw: ep.Gateway.AsSlice(), Scope: netlink.SCOPE_UNIVERSE}
		if err := cnl.RouteAdd(r); err != nil {
			return fmt.Errorf("default route via %s in %s: %w", ep.Gateway, ep.NetNS, err)
		}
	}
	host, err := h.nl.LinkByName(ep.HostVeth)
	if err != nil {
		return fmt.Errorf("veth %s: %w", ep.HostVeth, err)
	}
	// Hairpin mode: a container reaching its own published port is DNATed back to itself,
	// and the bridge must send the frame back out of the port it came in on.
	if err := h.nl.LinkSetHairpin(host, true); err != nil {
		return fmt.Errorf("veth %s: hairpin: %w", ep.HostVeth, err)
	}
	if err := h.nl.LinkSetUp(host); err != nil {
		return fmt.Errorf("veth %s: up: %w", ep.HostVeth, err)
	}
	return nil
}

// DetachVeth deletes the host end of a veth pair (and with it the
// container end). A missing link is not an error.
func (h *Host) DetachVeth(hostVeth string) error {
	link, err := h.nl.LinkByName(hostVeth)
	if notFoundLink(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("veth %s: %w", hostVeth, err)
	}
	if link.Type() != "veth" {
		return errdefs.Conflict("link %s is a %s, not a veth", hostVeth, link.Type())
	}
	if err := h.nl.LinkDel(link); err != nil && !notFoundLink(err) {
		return fmt.Errorf("veth %s: delete: %w", hostVeth, err)
	}
	return nil
}

// BridgePorts lists the names of the links whose master is the bridge name.
func (h *Host) BridgePorts(name string) ([]string, error) {
	br, err := h.nl.LinkByName(name)
	if notFoundLink(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bridge %s: %w", name, err)
	}
	links, err := retryDump(h.nl.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var out []string
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index {
			out = append(out, l.Attrs().Name)
		}
	}
	return out, nil
}
