// Package network_test holds the root-only tests of internal/network's
// kernel side: persistent network namespaces, a bridge, and containers
// joined to it by veth pairs that can ping each other and their gateway.
// Each test makes its own namespace to play the host, so the real host's
// links, routes and addresses are never touched; only names starting "bt"
// and addresses in 10.213.0.0/16 are used, and every test checks that it
// leaves no namespace mount and no link behind.
package network_test

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"berth/internal/errdefs"
	"berth/internal/network"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func TestMain(m *testing.M) {
	if os.Getuid() != 0 {
		fmt.Fprintln(os.Stderr, "network integration tests need root")
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// mounted reports whether path is a mount point in this process.
func mounted(t *testing.T, path string) bool {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && fields[4] == path {
			return true
		}
	}
	return false
}

// newNS makes a namespace at dir/name and removes it at the end of the
// test, checking that no mount or file is left.
func newNS(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := network.NewNetNS(p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := network.RemoveNetNS(p); err != nil {
			t.Errorf("RemoveNetNS(%s): %v", p, err)
		}
		if mounted(t, p) {
			t.Errorf("%s is still mounted", p)
		}
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists: %v", p, err)
		}
	})
	return p
}

// openHost opens a Host on a test namespace.
func openHost(t *testing.T, path string) *network.Host {
	t.Helper()
	h, err := network.OpenHost(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// nl opens a netlink handle in the namespace at path, for checks.
func nl(t *testing.T, path string) *netlink.Handle {
	t.Helper()
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// linkNames lists the links of the namespace at path, sorted.
func linkNames(t *testing.T, path string) []string {
	t.Helper()
	var links []netlink.Link
	var err error
	for range 5 {
		if links, err = nl(t, path).LinkList(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range links {
		names = append(names, l.Attrs().Name)
	}
	sort.Strings(names)
	return names
}

func wantLinks(t *testing.T, path string, want ...string) {
	t.Helper()
	sort.Strings(want)
	if got := linkNames(t, path); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("links in %s: got %v, want %v", filepath.Base(path), got, want)
	}
}

// ping sends pings from the namespace at path to addr with busybox, a few
// times (the first may be lost to ARP), and fails the test if none is
// answered.
func ping(t *testing.T, path string, addr netip.Addr) {
	t.Helper()
	var out []byte
	var err error
	for range 3 {
		out, err = exec.Command("nsenter", "--net="+path, "/bin/busybox", "ping", "-c", "1", "-W", "2", addr.String()).CombinedOutput()
		if err == nil {
			return
		}
	}
	t.Fatalf("ping %s from %s: %v\n%s", addr, filepath.Base(path), err, out)
}

// noPing checks that addr does not answer from the namespace at path.
func noPing(t *testing.T, path string, addr netip.Addr) {
	t.Helper()
	if out, err := exec.Command("nsenter", "--net="+path, "/bin/busybox", "ping", "-c", "1", "-W", "1", addr.String()).CombinedOutput(); err == nil {
		t.Fatalf("ping %s from %s answered after detach:\n%s", addr, filepath.Base(path), out)
	}
}

var (
	gw     = netip.MustParsePrefix("10.213.1.1/24")
	c1Addr = netip.MustParsePrefix("10.213.1.2/24")
	c2Addr = netip.MustParsePrefix("10.213.1.3/24")
)

func TestTwoContainersOnABridge(t *testing.T) {
	dir := t.TempDir()
	hostNS := newNS(t, dir, "host")
	c1 := newNS(t, dir, "c1")
	c2 := newNS(t, dir, "c2")
	h := openHost(t, hostNS)

	if err := h.EnsureBridge("btbr0", gw, 1400); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.RemoveBridge("btbr0") })
	for _, c := range []struct {
		ns   string
		addr netip.Prefix
		veth string
	}{{c1, c1Addr, "btv1"}, {c2, c2Addr, "btv2"}} {
		err := h.AttachVeth(network.Endpoint{Bridge: "btbr0", NetNS: c.ns, Address: c.addr, Gateway: gw.Addr(), MTU: 1400, HostVeth: c.veth})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.DetachVeth(c.veth) })
	}

	// The container end: eth0, addressed, up, the MTU, lo up, the
	// default route via the gateway.
	cnl := nl(t, c1)
	eth0, err := cnl.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if eth0.Attrs().MTU != 1400 || eth0.Attrs().Flags&(1<<0) == 0 {
		t.Errorf("eth0: mtu %d flags %v; want 1400, up", eth0.Attrs().MTU, eth0.Attrs().Flags)
	}
	addrs, err := cnl.AddrList(eth0, netlink.FAMILY_V4)
	if err != nil || len(addrs) != 1 || addrs[0].IPNet.String() != c1Addr.String() {
		t.Errorf("eth0 addresses: %v, %v; want %s", addrs, err, c1Addr)
	}
	lo, err := cnl.LinkByName("lo")
	if err != nil || lo.Attrs().Flags&(1<<0) == 0 {
		t.Errorf("lo not up: %v", err)
	}
	routes, err := cnl.RouteList(eth0, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	hasDefault := false
	for _, r := range routes {
		if (r.Dst == nil || r.Dst.String() == "0.0.0.0/0") && r.Gw.String() == gw.Addr().String() {
			hasDefault = true
		}
	}
	if !hasDefault {
		t.Errorf("no default route via %s in c1: %v", gw.Addr(), routes)
	}
	// The host end is a port of the bridge with the same MTU.
	hnl := nl(t, hostNS)
	br, _ := hnl.LinkByName("btbr0")
	v1, err := hnl.LinkByName("btv1")
	if err != nil || v1.Attrs().MasterIndex != br.Attrs().Index || v1.Attrs().MTU != 1400 {
		t.Errorf("btv1: %v, %v; want a port of btbr0 with mtu 1400", v1, err)
	}
	wantLinks(t, hostNS, "lo", "btbr0", "btv1", "btv2")
	wantLinks(t, c1, "lo", "eth0")

	ping(t, c1, c2Addr.Addr())
	ping(t, c2, c1Addr.Addr())
	ping(t, c1, gw.Addr())
	ping(t, hostNS, c2Addr.Addr())

	// Detach is idempotent and takes the container end with it.
	for _, v := range []string{"btv1", "btv2", "btv1"} {
		if err := h.DetachVeth(v); err != nil {
			t.Fatalf("DetachVeth(%s): %v", v, err)
		}
	}
	wantLinks(t, hostNS, "lo", "btbr0")
	wantLinks(t, c1, "lo")
	wantLinks(t, c2, "lo")
	noPing(t, hostNS, c1Addr.Addr())

	for range 2 {
		if err := h.RemoveBridge("btbr0"); err != nil {
			t.Fatal(err)
		}
	}
	wantLinks(t, hostNS, "lo")
}

func TestEnsureBridgeIdempotent(t *testing.T) {
	hostNS := newNS(t, t.TempDir(), "host")
	h := openHost(t, hostNS)
	t.Cleanup(func() { h.RemoveBridge("btbr1") })
	for range 2 {
		if err := h.EnsureBridge("btbr1", netip.MustParsePrefix("10.213.2.1/24"), 0); err != nil {
			t.Fatal(err)
		}
	}
	hnl := nl(t, hostNS)
	br, err := hnl.LinkByName("btbr1")
	if err != nil {
		t.Fatal(err)
	}
	addrs, _ := hnl.AddrList(br, netlink.FAMILY_V4)
	if len(addrs) != 1 || addrs[0].IPNet.String() != "10.213.2.1/24" || br.Attrs().Flags&(1<<0) == 0 {
		t.Fatalf("btbr1: addresses %v, flags %v; want one address, up", addrs, br.Attrs().Flags)
	}
	// A new MTU is applied to an existing bridge.
	if err := h.EnsureBridge("btbr1", netip.MustParsePrefix("10.213.2.1/24"), 1300); err != nil {
		t.Fatal(err)
	}
	if br, _ = hnl.LinkByName("btbr1"); br.Attrs().MTU != 1300 {
		t.Fatalf("mtu %d, want 1300", br.Attrs().MTU)
	}

	// A link of that name that is not a bridge is refused, and kept (a
	// veth: the dummy driver may not be loaded); a bridge is not a veth.
	if err := hnl.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "btnotbr0"}, PeerName: "btnotbr1"}); err != nil {
		t.Fatal(err)
	}
	if err := h.EnsureBridge("btnotbr0", netip.MustParsePrefix("10.213.3.1/24"), 0); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("EnsureBridge on a veth: got %v, want conflict", err)
	}
	if err := h.RemoveBridge("btnotbr0"); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("RemoveBridge on a veth: got %v, want conflict", err)
	}
	if err := h.DetachVeth("btbr1"); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("DetachVeth on a bridge: got %v, want conflict", err)
	}
	wantLinks(t, hostNS, "lo", "btbr1", "btnotbr0", "btnotbr1")
	if err := h.DetachVeth("btnotbr0"); err != nil {
		t.Fatal(err)
	}
	if err := h.RemoveBridge("btbr1"); err != nil {
		t.Fatal(err)
	}
	wantLinks(t, hostNS, "lo")
}

func TestAttachVethFailuresLeaveNothing(t *testing.T) {
	dir := t.TempDir()
	hostNS := newNS(t, dir, "host")
	c1 := newNS(t, dir, "c1")
	c2 := newNS(t, dir, "c2")
	h := openHost(t, hostNS)
	ep := network.Endpoint{Bridge: "btbr2", NetNS: c1, Address: c1Addr, Gateway: gw.Addr(), HostVeth: "btv1"}

	if err := h.AttachVeth(ep); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("no bridge: got %v, want not found", err)
	}
	if err := h.EnsureBridge("btbr2", gw, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.RemoveBridge("btbr2") })
	bad := ep
	bad.NetNS = filepath.Join(dir, "missing")
	if err := h.AttachVeth(bad); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("missing netns: got %v, want not found", err)
	}
	bad = ep
	bad.Gateway = netip.MustParseAddr("10.213.99.1") // unreachable: the route fails
	if err := h.AttachVeth(bad); err == nil {
		t.Fatal("unreachable gateway accepted")
	}
	wantLinks(t, hostNS, "lo", "btbr2")
	wantLinks(t, c1, "lo")

	if err := h.AttachVeth(ep); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.DetachVeth("btv1") })
	// The same host veth name again is a conflict and leaves the first.
	dup := network.Endpoint{Bridge: "btbr2", NetNS: c2, Address: c2Addr, Gateway: gw.Addr(), HostVeth: "btv1"}
	if err := h.AttachVeth(dup); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("duplicate host veth: got %v, want conflict", err)
	}
	wantLinks(t, hostNS, "lo", "btbr2", "btv1")
	wantLinks(t, c2, "lo")
	ping(t, c1, gw.Addr())

	if err := h.DetachVeth("btv1"); err != nil {
		t.Fatal(err)
	}
	if err := h.RemoveBridge("btbr2"); err != nil {
		t.Fatal(err)
	}
	wantLinks(t, hostNS, "lo")
	wantLinks(t, c1, "lo")
}

// threadNamespaces returns the network namespaces of this process's
// threads.
func threadNamespaces(t *testing.T) map[string]bool {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, task := range tasks {
		l, err := os.Readlink(filepath.Join("/proc/self/task", task.Name(), "ns/net"))
		if err == nil {
			out[l] = true
		}
	}
	return out
}

func TestNetNSLifecycle(t *testing.T) {
	before := threadNamespaces(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "ns")
	if err := network.NewNetNS(p); err != nil {
		t.Fatal(err)
	}
	if !mounted(t, p) {
		t.Fatalf("%s is not a mount point", p)
	}
	if err := network.NewNetNS(p); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("second NewNetNS: got %v, want conflict", err)
	}
	if !mounted(t, p) {
		t.Fatalf("a refused NewNetNS removed %s", p)
	}
	// Every thread is back in the namespace it started in.
	after := threadNamespaces(t)
	for ns := range after {
		if !before[ns] {
			t.Fatalf("a thread is left in namespace %s (before: %v)", ns, before)
		}
	}
	// The namespace is new and empty.
	wantLinks(t, p, "lo")
	for range 2 {
		if err := network.RemoveNetNS(p); err != nil {
			t.Fatal(err)
		}
	}
	if mounted(t, p) {
		t.Fatalf("%s still mounted", p)
	}
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s still exists", p)
	}
	if err := network.NewNetNS(filepath.Join(dir, "no", "such", "dir")); err == nil {
		t.Fatal("NewNetNS in a missing directory succeeded")
	}
}

func TestIPAMWithHostRoutes(t *testing.T) {
	dir := t.TempDir()
	hostNS := newNS(t, dir, "host")
	c1 := newNS(t, dir, "c1")
	h := openHost(t, hostNS)
	// A bridge on 10.213.0.0/24 puts that route in the "host".
	if err := h.EnsureBridge("btother", netip.MustParsePrefix("10.213.0.1/24"), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.RemoveBridge("btother") })
	routes, err := h.Routes()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range routes {
		found = found || r == netip.MustParsePrefix("10.213.0.0/24")
	}
	if !found {
		t.Fatalf("routes %v lack 10.213.0.0/24", routes)
	}

	state := filepath.Join(dir, "state")
	m, err := network.OpenIPAM(state)
	if err != nil {
		t.Fatal(err)
	}
	pool := []network.Pool{{Base: netip.MustParsePrefix("10.213.0.0/16"), Size: 24}}
	sub, err := m.AddNetwork("bridge", network.SubnetRequest{Pools: pool, Avoid: routes})
	if err != nil {
		t.Fatal(err)
	}
	if sub.Subnet != netip.MustParsePrefix("10.213.1.0/24") {
		t.Fatalf("chose %s, want 10.213.1.0/24", sub.Subnet)
	}
	if err := h.EnsureBridge("btbr3", sub.GatewayCIDR(), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.RemoveBridge("btbr3") })
	addr, err := m.Allocate("bridge", "c1", netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AttachVeth(network.Endpoint{Bridge: "btbr3", NetNS: c1, Address: addr, Gateway: sub.Gateway, HostVeth: "btv3"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.DetachVeth("btv3") })
	ping(t, c1, sub.Gateway)

	// A restarted daemon sees the same network and lease, and gives the
	// next container another address; a second network avoids both.
	m2, err := network.OpenIPAM(state)
	if err != nil {
		t.Fatal(err)
	}
	leases, err := m2.Leases("bridge")
	if err != nil || leases[addr.Addr()] != "c1" || len(leases) != 1 {
		t.Fatalf("reopened leases: %v, %v", leases, err)
	}
	next, err := m2.Allocate("bridge", "c2", netip.Addr{})
	if err != nil || next == addr {
		t.Fatalf("after reopen: got %s, %v", next, err)
	}
	other, err := m2.AddNetwork("user", network.SubnetRequest{Pools: pool, Avoid: routes})
	if err != nil || other.Subnet != netip.MustParsePrefix("10.213.2.0/24") {
		t.Fatalf("second network: %+v, %v", other, err)
	}

	if err := h.DetachVeth("btv3"); err != nil {
		t.Fatal(err)
	}
	for _, br := range []string{"btbr3", "btother"} {
		if err := h.RemoveBridge(br); err != nil {
			t.Fatal(err)
		}
	}
	wantLinks(t, hostNS, "lo")
	wantLinks(t, c1, "lo")
}
