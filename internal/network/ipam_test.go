package network

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"berth/internal/errdefs"
)

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func mustAddr(s string) netip.Addr     { return netip.MustParseAddr(s) }

func openTestIPAM(t *testing.T, dir string) *IPAM {
	t.Helper()
	m, err := OpenIPAM(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestChooseSubnetDefaultPools(t *testing.T) {
	got, err := ChooseSubnet(DefaultPools, nil)
	if err != nil || got != mustPrefix("172.17.0.0/16") {
		t.Fatalf("empty host: got %s, %v; want 172.17.0.0/16", got, err)
	}
	// A host route inside 172.17/16 and a berth network on 172.18/16 push
	// the choice to 172.19/16; a default route is ignored.
	avoid := []netip.Prefix{mustPrefix("0.0.0.0/0"), mustPrefix("172.17.5.0/24"), mustPrefix("172.18.0.0/16")}
	got, err = ChooseSubnet(DefaultPools, avoid)
	if err != nil || got != mustPrefix("172.19.0.0/16") {
		t.Fatalf("got %s, %v; want 172.19.0.0/16", got, err)
	}
	// A route covering all of 172.16/12 leaves the /20s of 192.168/16.
	avoid = []netip.Prefix{mustPrefix("172.16.0.0/12"), mustPrefix("192.168.0.0/20")}
	got, err = ChooseSubnet(DefaultPools, avoid)
	if err != nil || got != mustPrefix("192.168.16.0/20") {
		t.Fatalf("got %s, %v; want 192.168.16.0/20", got, err)
	}
	// Everything taken.
	_, err = ChooseSubnet(DefaultPools, []netip.Prefix{mustPrefix("172.16.0.0/12"), mustPrefix("192.168.0.0/16")})
	if !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("full pools: got %v, want conflict", err)
	}
	// /24s from a custom pool.
	got, err = ChooseSubnet([]Pool{{Base: mustPrefix("10.213.0.0/16"), Size: 24}}, []netip.Prefix{mustPrefix("10.213.0.0/23")})
	if err != nil || got != mustPrefix("10.213.2.0/24") {
		t.Fatalf("got %s, %v; want 10.213.2.0/24", got, err)
	}
	if _, err := ChooseSubnet([]Pool{{Base: mustPrefix("10.0.0.0/8"), Size: 4}}, nil); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("bad pool: got %v, want invalid", err)
	}
}

func TestAddNetworkChoosesAndRejectsOverlap(t *testing.T) {
	m := openTestIPAM(t, t.TempDir())
	a, err := m.AddNetwork("bridge", SubnetRequest{Avoid: []netip.Prefix{mustPrefix("172.17.0.0/16")}})
	if err != nil {
		t.Fatal(err)
	}
	if a.Subnet != mustPrefix("172.18.0.0/16") || a.Gateway != mustAddr("172.18.0.1") || a.GatewayCIDR() != mustPrefix("172.18.0.1/16") {
		t.Fatalf("bridge: got %+v", a)
	}
	// The next chosen subnet avoids the first network.
	b, err := m.AddNetwork("user", SubnetRequest{Avoid: []netip.Prefix{mustPrefix("172.17.0.0/16")}})
	if err != nil || b.Subnet != mustPrefix("172.19.0.0/16") {
		t.Fatalf("user: got %+v, %v", b, err)
	}
	cases := []struct {
		name string
		req  SubnetRequest
		kind error
	}{
		{"bridge", SubnetRequest{Subnet: mustPrefix("10.213.9.0/24")}, errdefs.ErrConflict},
		{"overlap", SubnetRequest{Subnet: mustPrefix("172.18.3.0/24")}, errdefs.ErrConflict},
		{"v6", SubnetRequest{Subnet: mustPrefix("fd00::/64")}, errdefs.ErrInvalid},
		{"gw-outside", SubnetRequest{Subnet: mustPrefix("10.213.9.0/24"), Gateway: mustAddr("10.213.10.1")}, errdefs.ErrInvalid},
		{"gw-network", SubnetRequest{Subnet: mustPrefix("10.213.9.0/24"), Gateway: mustAddr("10.213.9.0")}, errdefs.ErrInvalid},
		{"range-outside", SubnetRequest{Subnet: mustPrefix("10.213.9.0/24"), IPRange: mustPrefix("10.213.0.0/16")}, errdefs.ErrInvalid},
		{"gw-no-subnet", SubnetRequest{Gateway: mustAddr("10.213.9.1")}, errdefs.ErrInvalid},
		{"", SubnetRequest{}, errdefs.ErrInvalid},
	}
	for _, c := range cases {
		if _, err := m.AddNetwork(c.name, c.req); !errors.Is(err, c.kind) {
			t.Errorf("AddNetwork(%q, %+v): got %v, want %v", c.name, c.req, err, c.kind)
		}
	}
	if n := len(m.Networks()); n != 2 {
		t.Fatalf("after rejected requests: %d networks, want 2", n)
	}
	// An explicit subnet is masked; gateway defaults to its first address.
	c, err := m.AddNetwork("explicit", SubnetRequest{Subnet: mustPrefix("10.213.9.77/24")})
	if err != nil || c.Subnet != mustPrefix("10.213.9.0/24") || c.Gateway != mustAddr("10.213.9.1") {
		t.Fatalf("explicit: got %+v, %v", c, err)
	}
}

func TestAllocateRelease(t *testing.T) {
	m := openTestIPAM(t, t.TempDir())
	if _, err := m.AddNetwork("n", SubnetRequest{Subnet: mustPrefix("10.213.1.0/29")}); err != nil {
		t.Fatal(err)
	}
	// /29: .0 network, .1 gateway, .7 broadcast: .2 to .6 usable.
	var got []netip.Prefix
	for _, owner := range []string{"a", "b", "c", "d", "e"} {
		p, err := m.Allocate("n", owner, netip.Addr{})
		if err != nil {
			t.Fatalf("allocate %s: %v", owner, err)
		}
		got = append(got, p)
	}
	for i, p := range got {
		want := netip.PrefixFrom(fromU32(toU32(mustAddr("10.213.1.2"))+uint32(i)), 29)
		if p != want {
			t.Fatalf("allocation %d: got %s, want %s", i, p, want)
		}
	}
	if _, err := m.Allocate("n", "f", netip.Addr{}); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("full subnet: got %v, want conflict", err)
	}
	// The same owner gets its address back.
	if p, err := m.Allocate("n", "c", netip.Addr{}); err != nil || p != got[2] {
		t.Fatalf("re-allocate c: got %s, %v", p, err)
	}
	if err := m.Release("n", mustAddr("10.213.1.3")); err != nil {
		t.Fatal(err)
	}
	if err := m.Release("n", mustAddr("10.213.1.3")); err != nil {
		t.Fatalf("second release: %v", err)
	}
	if err := m.Release("nope", mustAddr("10.213.1.3")); err != nil {
		t.Fatalf("release on unknown network: %v", err)
	}
	if p, err := m.Allocate("n", "f", netip.Addr{}); err != nil || p != mustPrefix("10.213.1.3/29") {
		t.Fatalf("after release: got %s, %v; want 10.213.1.3/29", p, err)
	}
	if err := m.RemoveNetwork("n"); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("remove in use: got %v, want conflict", err)
	}
	// b's address was released by address above.
	for _, o := range []string{"a", "c", "d", "e", "f"} {
		if n, err := m.ReleaseOwner(o); err != nil || n != 1 {
			t.Fatalf("ReleaseOwner(%s): %d, %v", o, n, err)
		}
	}
	if n, err := m.ReleaseOwner("a"); err != nil || n != 0 {
		t.Fatalf("ReleaseOwner twice: %d, %v", n, err)
	}
	if err := m.RemoveNetwork("n"); err != nil {
		t.Fatal(err)
	}
	if err := m.RemoveNetwork("n"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("remove twice: got %v, want not found", err)
	}
	if _, err := m.Allocate("n", "a", netip.Addr{}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("allocate on removed network: got %v", err)
	}
}

func TestAllocateNoImmediateReuse(t *testing.T) {
	m := openTestIPAM(t, t.TempDir())
	if _, err := m.AddNetwork("n", SubnetRequest{Subnet: mustPrefix("10.213.2.0/24")}); err != nil {
		t.Fatal(err)
	}
	a, _ := m.Allocate("n", "a", netip.Addr{})
	if err := m.Release("n", a.Addr()); err != nil {
		t.Fatal(err)
	}
	b, err := m.Allocate("n", "b", netip.Addr{})
	if err != nil || b.Addr() == a.Addr() {
		t.Fatalf("got %s after releasing %s (%v); want the next address", b, a, err)
	}
}

func TestAllocateRequestedAndRange(t *testing.T) {
	m := openTestIPAM(t, t.TempDir())
	s, err := m.AddNetwork("n", SubnetRequest{
		Subnet:  mustPrefix("10.213.0.0/16"),
		Gateway: mustAddr("10.213.0.254"),
		IPRange: mustPrefix("10.213.5.0/30"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.Gateway != mustAddr("10.213.0.254") || s.IPRange != mustPrefix("10.213.5.0/30") {
		t.Fatalf("got %+v", s)
	}
	// Dynamic addresses come from the range only (all four of a /30 in a
	// /16 are host addresses).
	for i, want := range []string{"10.213.5.0", "10.213.5.1", "10.213.5.2", "10.213.5.3"} {
		p, err := m.Allocate("n", string(rune('a'+i)), netip.Addr{})
		if err != nil || p != netip.PrefixFrom(mustAddr(want), 16) {
			t.Fatalf("allocation %d: got %s, %v; want %s/16", i, p, err, want)
		}
	}
	if _, err := m.Allocate("n", "z", netip.Addr{}); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("range full: got %v", err)
	}
	// --ip may be outside the range but inside the subnet.
	if p, err := m.Allocate("n", "ip", mustAddr("10.213.9.9")); err != nil || p != mustPrefix("10.213.9.9/16") {
		t.Fatalf("--ip: got %s, %v", p, err)
	}
	bad := []struct {
		owner string
		ip    string
		kind  error
	}{
		{"x", "10.213.9.9", errdefs.ErrConflict},    // taken
		{"x", "10.213.0.254", errdefs.ErrInvalid},   // gateway
		{"x", "10.213.0.0", errdefs.ErrInvalid},     // network address
		{"x", "10.213.255.255", errdefs.ErrInvalid}, // broadcast
		{"x", "10.214.0.5", errdefs.ErrInvalid},     // outside
		{"ip", "10.213.9.10", errdefs.ErrConflict},  // owner holds another
	}
	for _, b := range bad {
		if _, err := m.Allocate("n", b.owner, mustAddr(b.ip)); !errors.Is(err, b.kind) {
			t.Errorf("Allocate(%s, %s): got %v, want %v", b.owner, b.ip, err, b.kind)
		}
	}
}

func TestIPAMPersistence(t *testing.T) {
	dir := t.TempDir()
	m := openTestIPAM(t, dir)
	if _, err := m.AddNetwork("n", SubnetRequest{Subnet: mustPrefix("10.213.3.0/24"), IPRange: mustPrefix("10.213.3.128/25")}); err != nil {
		t.Fatal(err)
	}
	a, _ := m.Allocate("n", "a", netip.Addr{})
	b, _ := m.Allocate("n", "b", netip.Addr{})
	if err := m.Release("n", a.Addr()); err != nil {
		t.Fatal(err)
	}

	m2 := openTestIPAM(t, dir)
	s, err := m2.Network("n")
	if err != nil || s.Subnet != mustPrefix("10.213.3.0/24") || s.IPRange != mustPrefix("10.213.3.128/25") || s.Gateway != mustAddr("10.213.3.1") {
		t.Fatalf("reopened: %+v, %v", s, err)
	}
	leases, err := m2.Leases("n")
	if err != nil || len(leases) != 1 || leases[b.Addr()] != "b" {
		t.Fatalf("reopened leases: %v, %v", leases, err)
	}
	// The cursor survives too: neither a nor b is given out next.
	c, err := m2.Allocate("n", "c", netip.Addr{})
	if err != nil || c.Addr() == a.Addr() || c.Addr() == b.Addr() {
		t.Fatalf("after reopen: got %s, %v", c, err)
	}
	// No temporary files are left beside the store.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != ipamFile {
		t.Fatalf("state dir holds %v", ents)
	}
}

func TestIPAMFailedSaveChangesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	m := openTestIPAM(t, dir)
	if _, err := m.AddNetwork("n", SubnetRequest{Subnet: mustPrefix("10.213.4.0/24")}); err != nil {
		t.Fatal(err)
	}
	// With the state dir gone the save fails (even for root).
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Allocate("n", "a", netip.Addr{}); err == nil {
		t.Fatal("allocate without a state dir succeeded")
	}
	if l, _ := m.Leases("n"); len(l) != 0 {
		t.Fatalf("failed save left leases in memory: %v", l)
	}
}

func TestOpenIPAMCorrupt(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ipamFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenIPAM(dir); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Fatalf("got %v, want corrupt", err)
	}
}
