// Package firewall owns berth's packet-filtering and NAT rules: outbound masquerade for container
// networks, isolation between networks, and published ports (DNAT). It speaks nftables over
// netlink (no nft binary) in one network namespace given at construction, and keeps every rule in
// berth's own table ("table ip berth"): it never reads, changes or flushes anyone else's tables.
//
// Every rule carries a comment (nftables user data) naming the object it belongs to, so that
// rules can be removed one object at a time and the whole state re-read from the kernel after a
// crash (List), without any state kept in memory. The package does not write sysctls: it reports
// the ones its rules rely on (RequiredSysctls) and the caller sets them in the right namespace.
// The caller must also set hairpin mode on each bridge port (IFLA_BRPORT_MODE): with br_netfilter
// loaded, a container reaching its own published port through the host's address is DNATed at
// the bridge and its frame goes back out the port it came in by.
//
// Only IPv4 for now (table ip berth); IPv6 would be a second table of family ip6 or inet.
package firewall

import (
	"fmt"
	"net/netip"
	"strings"

	"berth/internal/errdefs"
)

// TableName is the name of berth's nftables table (family ip).
const TableName = "berth"

// Proto is a transport protocol of a published port.
type Proto string

// The protocols a port can be published with.
const (
	TCP Proto = "tcp"
	UDP Proto = "udp"
)

// Network is one berth bridge network as the firewall sees it.
type Network struct {
	Bridge   string       // the bridge interface, e.g. berth0
	Subnet   netip.Prefix // the containers' IPv4 subnet
	Internal bool         // no traffic to or from interfaces other than the bridge
}

// PortMapping is one published port: traffic to HostIP:HostPort is sent to
// ContainerIP:ContainerPort.
type PortMapping struct {
	Proto         Proto
	HostIP        netip.Addr // the zero Addr (or 0.0.0.0) means every local address
	HostPort      uint16
	ContainerIP   netip.Addr
	ContainerPort uint16
}

// Sysctl is a kernel setting (a path under /proc/sys) the rules rely on.
type Sysctl struct {
	Path  string
	Value string
}

// RequiredSysctls returns the settings the caller must apply in the firewall's namespace for the
// rules of a network on bridge to work: forwarding, and route_localnet on the bridge so that
// connections to 127.0.0.1 can be DNATed to a container.
func RequiredSysctls(bridge string) []Sysctl {
	s := []Sysctl{{Path: "/proc/sys/net/ipv4/ip_forward", Value: "1"}}
	if bridge != "" {
		s = append(s, Sysctl{Path: "/proc/sys/net/ipv4/conf/" + bridge + "/route_localnet", Value: "1"})
	}
	return s
}

func (n Network) validate() error {
	if n.Bridge == "" || len(n.Bridge) >= ifNameSize || strings.ContainsAny(n.Bridge, " /\x00") {
		return errdefs.Invalid("firewall: bad bridge name %q", n.Bridge)
	}
	if !n.Subnet.IsValid() || !n.Subnet.Addr().Is4() || n.Subnet.Masked() != n.Subnet {
		return errdefs.Invalid("firewall: bad IPv4 subnet %s for bridge %s", n.Subnet, n.Bridge)
	}
	return nil
}

// hostIP returns the host address with 0.0.0.0 folded into the zero Addr.
func (p PortMapping) hostIP() netip.Addr {
	if p.HostIP.IsValid() && p.HostIP.IsUnspecified() {
		return netip.Addr{}
	}
	return p.HostIP
}

func (p PortMapping) validate() error {
	if p.Proto != TCP && p.Proto != UDP {
		return errdefs.Invalid("firewall: bad protocol %q", p.Proto)
	}
	if h := p.hostIP(); h.IsValid() && !h.Is4() {
		return errdefs.Invalid("firewall: host address %s is not IPv4", h)
	}
	if !p.ContainerIP.IsValid() || !p.ContainerIP.Is4() || p.ContainerIP.IsUnspecified() {
		return errdefs.Invalid("firewall: bad container address %s", p.ContainerIP)
	}
	if p.HostPort == 0 || p.ContainerPort == 0 {
		return errdefs.Invalid("firewall: port 0 in %s", p)
	}
	return nil
}

// key identifies a published port: one (proto, host address, host port) maps to one target.
func (p PortMapping) key() string {
	h := "*"
	if a := p.hostIP(); a.IsValid() {
		h = a.String()
	}
	return fmt.Sprintf("%s/%s/%d", p.Proto, h, p.HostPort)
}

// String formats p as proto host:port->container:port.
func (p PortMapping) String() string {
	h := "0.0.0.0"
	if a := p.hostIP(); a.IsValid() {
		h = a.String()
	}
	return fmt.Sprintf("%s %s:%d %s:%d", p.Proto, h, p.HostPort, p.ContainerIP, p.ContainerPort)
}

// Rule comments. Each names its object completely, so that List can rebuild the objects.
const (
	tagPrefix = "berth:"
	tagBase   = "berth:base"
)

func networkTag(n Network) string {
	t := fmt.Sprintf("berth:net %s %s", n.Bridge, n.Subnet)
	if n.Internal {
		t += " internal"
	}
	return t
}

func portTag(p PortMapping) string { return "berth:port " + p.String() }

// parseTag reads a comment written by networkTag or portTag. ok is false for anything else.
func parseTag(s string) (n *Network, p *PortMapping, ok bool) {
	f := strings.Fields(s)
	switch {
	case len(f) >= 3 && len(f) <= 4 && f[0] == "berth:net":
		sub, err := netip.ParsePrefix(f[2])
		if err != nil || (len(f) == 4 && f[3] != "internal") {
			return nil, nil, false
		}
		n := Network{Bridge: f[1], Subnet: sub, Internal: len(f) == 4}
		if n.validate() != nil {
			return nil, nil, false
		}
		return &n, nil, true
	case len(f) == 4 && f[0] == "berth:port":
		h, err1 := netip.ParseAddrPort(f[2])
		c, err2 := netip.ParseAddrPort(f[3])
		if err1 != nil || err2 != nil {
			return nil, nil, false
		}
		p := PortMapping{Proto: Proto(f[1]), HostIP: h.Addr(), HostPort: h.Port(), ContainerIP: c.Addr(), ContainerPort: c.Port()}
		p.HostIP = p.hostIP()
		if p.validate() != nil {
			return nil, nil, false
		}
		return nil, &p, true
	}
	return nil, nil, false
}
