package firewall

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/nftables/expr"

	"berth/internal/errdefs"
)

func TestTagRoundTrip(t *testing.T) {
	nets := []Network{
		{Bridge: "berth0", Subnet: netip.MustParsePrefix("10.214.1.0/24")},
		{Bridge: "br-1", Subnet: netip.MustParsePrefix("10.214.0.0/16"), Internal: true},
	}
	for _, n := range nets {
		got, p, ok := parseTag(networkTag(n))
		if !ok || p != nil || got == nil || *got != n {
			t.Errorf("parseTag(networkTag(%+v)) = %+v, %+v, %v", n, got, p, ok)
		}
	}
	ports := []PortMapping{
		{Proto: TCP, HostPort: 8080, ContainerIP: netip.MustParseAddr("10.214.1.2"), ContainerPort: 80},
		{Proto: UDP, HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 53, ContainerIP: netip.MustParseAddr("10.214.1.3"), ContainerPort: 5353},
	}
	for _, p := range ports {
		n, got, ok := parseTag(portTag(p))
		if !ok || n != nil || got == nil || *got != p {
			t.Errorf("parseTag(portTag(%+v)) = %+v, %+v, %v", p, n, got, ok)
		}
	}
}

func TestParseTagRejects(t *testing.T) {
	for _, s := range []string{
		"", tagBase, "berth:net", "berth:net br0", "berth:net br0 10.214.1.1/24", "berth:net br0 10.214.1.0/24 public",
		"berth:net br0 fd00::/64", "berth:port tcp 0.0.0.0:80", "berth:port sctp 0.0.0.0:80 10.214.1.2:80",
		"berth:port tcp 0.0.0.0:0 10.214.1.2:80", "someone else's comment",
	} {
		if n, p, ok := parseTag(s); ok {
			t.Errorf("parseTag(%q) = %+v, %+v, true", s, n, p)
		}
	}
}

func TestPortKey(t *testing.T) {
	c := netip.MustParseAddr("10.214.1.2")
	any1 := PortMapping{Proto: TCP, HostPort: 80, ContainerIP: c, ContainerPort: 80}
	any2 := PortMapping{Proto: TCP, HostIP: netip.IPv4Unspecified(), HostPort: 80, ContainerIP: c, ContainerPort: 81}
	if any1.key() != any2.key() {
		t.Errorf("0.0.0.0 and zero Addr differ: %s, %s", any1.key(), any2.key())
	}
	udp := any1
	udp.Proto = UDP
	if udp.key() == any1.key() {
		t.Error("tcp and udp share a key")
	}
}

func TestValidate(t *testing.T) {
	c := netip.MustParseAddr("10.214.1.2")
	bad := []PortMapping{
		{Proto: "icmp", HostPort: 1, ContainerIP: c, ContainerPort: 1},
		{Proto: TCP, HostPort: 0, ContainerIP: c, ContainerPort: 1},
		{Proto: TCP, HostPort: 1, ContainerIP: c, ContainerPort: 0},
		{Proto: TCP, HostPort: 1, ContainerPort: 1},
		{Proto: TCP, HostPort: 1, ContainerIP: netip.MustParseAddr("fd00::1"), ContainerPort: 1},
		{Proto: TCP, HostIP: netip.MustParseAddr("::1"), HostPort: 1, ContainerIP: c, ContainerPort: 1},
	}
	for _, p := range bad {
		if err := p.validate(); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("validate(%+v) = %v, want invalid", p, err)
		}
	}
	badNets := []Network{
		{Bridge: "", Subnet: netip.MustParsePrefix("10.214.1.0/24")},
		{Bridge: "a-name-far-too-long", Subnet: netip.MustParsePrefix("10.214.1.0/24")},
		{Bridge: "br 0", Subnet: netip.MustParsePrefix("10.214.1.0/24")},
		{Bridge: "br0", Subnet: netip.MustParsePrefix("10.214.1.1/24")},
		{Bridge: "br0", Subnet: netip.MustParsePrefix("fd00::/64")},
		{Bridge: "br0"},
	}
	for _, n := range badNets {
		if err := n.validate(); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("validate(%+v) = %v, want invalid", n, err)
		}
	}
}

func TestRequiredSysctls(t *testing.T) {
	s := RequiredSysctls("berth0")
	want := []Sysctl{
		{"/proc/sys/net/ipv4/ip_forward", "1"},
		{"/proc/sys/net/ipv4/conf/berth0/route_localnet", "1"},
	}
	if len(s) != len(want) || s[0] != want[0] || s[1] != want[1] {
		t.Errorf("RequiredSysctls = %v", s)
	}
}

func TestNetworkRules(t *testing.T) {
	n := Network{Bridge: "br0", Subnet: netip.MustParsePrefix("10.214.1.0/24")}
	count := func(r map[string][][]expr.Any) (total int) {
		for _, rs := range r {
			total += len(rs)
		}
		return total
	}
	open := networkRules(n)
	n.Internal = true
	internal := networkRules(n)
	// internal: no outbound masquerade, two more drops
	if len(open[chainMasquerade]) != 3 || len(internal[chainMasquerade]) != 2 {
		t.Errorf("masquerade rules: %d open, %d internal", len(open[chainMasquerade]), len(internal[chainMasquerade]))
	}
	if len(internal[chainNetworks]) != 3 || count(internal) != count(open)+1 {
		t.Errorf("internal rules: %d networks, %d total vs %d", len(internal[chainNetworks]), count(internal), count(open))
	}
}

func TestPrefixMask(t *testing.T) {
	for _, tc := range []struct {
		p    string
		mask []byte
	}{{"10.214.1.0/24", []byte{255, 255, 255, 0}}, {"127.0.0.0/8", []byte{255, 0, 0, 0}}, {"10.214.1.2/32", []byte{255, 255, 255, 255}}, {"0.0.0.0/0", []byte{0, 0, 0, 0}}} {
		e := saddrIn(netip.MustParsePrefix(tc.p))
		if got := e[1].(*expr.Bitwise).Mask; string(got) != string(tc.mask) {
			t.Errorf("%s: mask %v, want %v", tc.p, got, tc.mask)
		}
	}
}
