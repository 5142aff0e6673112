// Package firewall_test proves berth's nftables rules on a real topology built in network
// namespaces of its own (addresses in 10.214.0.0/16 only): a "host" namespace with a bridge, a
// "container" namespace on the bridge serving HTTP with busybox httpd, and a "client" namespace
// beside the host. It needs root, ip(8) and busybox; it never touches the real host's network.
package firewall_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"

	"berth/internal/errdefs"
	"berth/internal/network/firewall"
)

const (
	bridge    = "bt-br0"
	bridgeIP  = "10.214.1.1"
	ctrIP     = "10.214.1.2"
	hostIP    = "10.214.9.1" // the host namespace's address towards the client
	clientIP  = "10.214.9.2"
	helperEnv = "BERTH_FW_HELPER"
)

var subnet = netip.MustParsePrefix("10.214.1.0/24")

// TestMain doubles as the helper run inside namespaces by `ip netns exec`.
func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helper(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// helper modes: udp-echo ADDR (serve), udp-ask ADDR MSG (print the reply), whoami ADDR (a TCP
// server that writes each peer's address back).
func helper(mode string, args []string) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, err); return 1 }
	switch mode {
	case "udp-echo":
		pc, err := net.ListenPacket("udp4", args[0])
		if err != nil {
			return fail(err)
		}
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return fail(err)
			}
			_, _ = pc.WriteTo(append([]byte("echo:"), buf[:n]...), from)
		}
	case "udp-ask":
		c, err := net.Dial("udp4", args[0])
		if err != nil {
			return fail(err)
		}
		buf := make([]byte, 1500)
		for range 10 { // UDP may be lost: ask again
			_, _ = c.Write([]byte(args[1]))
			_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			if n, err := c.Read(buf); err == nil {
				fmt.Print(string(buf[:n]))
				return 0
			}
		}
		return fail(errors.New("no udp reply"))
	case "whoami":
		l, err := net.Listen("tcp4", args[0])
		if err != nil {
			return fail(err)
		}
		for {
			c, err := l.Accept()
			if err != nil {
				return fail(err)
			}
			_, _ = fmt.Fprintln(c, c.RemoteAddr().(*net.TCPAddr).IP)
			_ = c.Close()
		}
	}
	return fail(fmt.Errorf("unknown helper mode %q", mode))
}

type topo struct {
	t                 *testing.T
	host, ctr, client string // namespace names under /run/netns
	fw                *firewall.Firewall
}

var nsSeq int

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newTopo builds the three namespaces, the bridge and veths, starts httpd in the container and
// returns a Firewall bound to the host namespace with its base and the network in place.
func newTopo(t *testing.T) *topo {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, b := range []string{"ip", "busybox"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("needs %s", b)
		}
	}
	nsSeq++
	p := fmt.Sprintf("btfw-%d-%d-", os.Getpid(), nsSeq)
	tp := &topo{t: t, host: p + "host", ctr: p + "ctr", client: p + "client"}
	for _, ns := range []string{tp.host, tp.ctr, tp.client} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			run(t, "ip", "netns", "del", ns)
			if _, err := os.Stat("/run/netns/" + ns); err == nil {
				t.Errorf("namespace %s left behind", ns)
			}
		})
	}
	h, c, cl := tp.host, tp.ctr, tp.client
	for _, args := range [][]string{
		{"-n", h, "link", "set", "lo", "up"},
		{"-n", c, "link", "set", "lo", "up"},
		{"-n", cl, "link", "set", "lo", "up"},
		{"-n", h, "link", "add", bridge, "type", "bridge"},
		{"-n", h, "addr", "add", bridgeIP + "/24", "dev", bridge},
		{"-n", h, "link", "set", bridge, "up"},
		{"-n", h, "link", "add", "bt-cv0", "type", "veth", "peer", "name", "eth0", "netns", c},
		{"-n", h, "link", "set", "bt-cv0", "master", bridge, "up"},
		// hairpin: with br_netfilter loaded a DNATed frame goes back out the port it came in by
		{"-n", h, "link", "set", "bt-cv0", "type", "bridge_slave", "hairpin", "on"},
		{"-n", c, "addr", "add", ctrIP + "/24", "dev", "eth0"},
		{"-n", c, "link", "set", "eth0", "up"},
		{"-n", c, "route", "add", "default", "via", bridgeIP},
		{"-n", h, "link", "add", "bt-hc0", "type", "veth", "peer", "name", "eth0", "netns", cl},
		{"-n", h, "addr", "add", hostIP + "/24", "dev", "bt-hc0"},
		{"-n", h, "link", "set", "bt-hc0", "up"},
		{"-n", cl, "addr", "add", clientIP + "/24", "dev", "eth0"},
		{"-n", cl, "link", "set", "eth0", "up"},
		// no route from the client to the containers' subnet: only DNAT and masquerade connect them
	} {
		run(t, "ip", args...)
	}
	for _, s := range firewall.RequiredSysctls(bridge) {
		run(t, "ip", "netns", "exec", h, "sh", "-c", fmt.Sprintf("echo %s > %s", s.Value, s.Path))
	}

	www := t.TempDir()
	if err := os.WriteFile(filepath.Join(www, "index.html"), []byte("hello from the container\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tp.start(c, "busybox", "httpd", "-f", "-p", "80", "-h", www)

	fw, err := firewall.New("/run/netns/" + h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fw.Close() })
	tp.fw = fw
	if err := fw.EnsureBase(); err != nil {
		t.Fatal(err)
	}
	if err := fw.AddNetwork(bridge, subnet, false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := fw.Reset(); err != nil {
			t.Errorf("reset: %v", err)
		}
	})
	return tp
}

// start runs a long-lived process in namespace ns, killed (by PID) at cleanup.
func (tp *topo) start(ns string, name string, args ...string) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tp.t.Fatal(err)
	}
	tp.t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
}

// startHelper runs this test binary in ns as a helper.
func (tp *topo) startHelper(ns, mode string, args ...string) {
	self, err := os.Executable()
	if err != nil {
		tp.t.Fatal(err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, self}, args...)...)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tp.t.Fatal(err)
	}
	tp.t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
}

// in runs a command in ns and returns its output and error.
func in(ns string, env []string, name string, args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// get fetches url with busybox wget from ns, retrying while servers start (up to ~5 s).
func get(ns, url string, tries int) (string, error) {
	var out string
	var err error
	for range tries {
		out, err = in(ns, nil, "timeout", "5", "busybox", "wget", "-q", "-O", "-", url) // busybox 1.35 wget -T crashes
		if err == nil {
			return out, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return out, err
}

func (tp *topo) mustGet(ns, url string) {
	tp.t.Helper()
	out, err := get(ns, url, 10)
	if err != nil || !strings.Contains(out, "hello from the container") {
		tp.t.Fatalf("GET %s from %s: %v: %q", url, ns, err, out)
	}
}

var web = firewall.PortMapping{Proto: firewall.TCP, HostPort: 8080,
	ContainerIP: netip.MustParseAddr(ctrIP), ContainerPort: 80}

func TestPublishedPortTCP(t *testing.T) {
	tp := newTopo(t)
	tp.mustGet(tp.ctr, "http://"+ctrIP+":80/") // httpd is up
	if err := tp.fw.AddPort(web); err != nil {
		t.Fatal(err)
	}
	tp.mustGet(tp.client, "http://"+hostIP+":8080/")
	tp.mustGet(tp.host, "http://127.0.0.1:8080/")
	tp.mustGet(tp.host, "http://"+hostIP+":8080/")
	tp.mustGet(tp.host, "http://"+bridgeIP+":8080/")
	tp.mustGet(tp.ctr, "http://"+hostIP+":8080/") // hairpin

	st, err := tp.fw.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Networks) != 1 || st.Networks[0] != (firewall.Network{Bridge: bridge, Subnet: subnet}) ||
		len(st.Ports) != 1 || st.Ports[0] != web {
		t.Fatalf("List = %+v", st)
	}

	if err := tp.fw.RemovePort(web); err != nil {
		t.Fatal(err)
	}
	if out, err := get(tp.client, "http://"+hostIP+":8080/", 1); err == nil {
		t.Fatalf("port still forwarded after RemovePort: %q", out)
	}
	if out, err := get(tp.host, "http://127.0.0.1:8080/", 1); err == nil {
		t.Fatalf("127.0.0.1 still forwarded after RemovePort: %q", out)
	}
	if err := tp.fw.RemovePort(web); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("second RemovePort: %v, want not found", err)
	}
	if st, _ := tp.fw.List(); len(st.Ports) != 0 {
		t.Fatalf("ports left: %+v", st.Ports)
	}
}

func TestPublishedPortHostIP(t *testing.T) {
	tp := newTopo(t)
	p := web
	p.HostIP = netip.MustParseAddr(hostIP)
	if err := tp.fw.AddPort(p); err != nil {
		t.Fatal(err)
	}
	tp.mustGet(tp.client, "http://"+hostIP+":8080/")
	if out, err := get(tp.host, "http://"+bridgeIP+":8080/", 1); err == nil {
		t.Fatalf("published on %s only, but served on %s: %q", hostIP, bridgeIP, out)
	}
	q := web // any address, same port: conflict
	if err := tp.fw.AddPort(q); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("overlapping AddPort: %v, want conflict", err)
	}
	if err := tp.fw.AddPort(p); err != nil {
		t.Fatalf("same AddPort again: %v", err)
	}
}

func TestMasquerade(t *testing.T) {
	tp := newTopo(t)
	tp.startHelper(tp.client, "whoami", clientIP+":9000")
	var out string
	var err error
	for range 25 {
		out, err = in(tp.ctr, nil, "busybox", "nc", clientIP, "9000")
		if err == nil && strings.TrimSpace(out) != "" {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := strings.TrimSpace(out); got != hostIP {
		t.Fatalf("client saw the container as %q (%v), want the host's %s", got, err, hostIP)
	}
}

func TestInternalNetwork(t *testing.T) {
	tp := newTopo(t)
	if err := tp.fw.RemoveNetwork(bridge); err != nil {
		t.Fatal(err)
	}
	if err := tp.fw.AddNetwork(bridge, subnet, true); err != nil {
		t.Fatal(err)
	}
	tp.startHelper(tp.client, "whoami", clientIP+":9000")
	// The whoami server is reachable from the host namespace, but not from the container.
	for range 25 {
		if out, err := in(tp.host, nil, "busybox", "nc", clientIP, "9000"); err == nil && strings.TrimSpace(out) == hostIP {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if out, _ := in(tp.ctr, nil, "busybox", "nc", "-w", "2", clientIP, "9000"); strings.Contains(out, ".") {
		t.Fatalf("internal network reached the outside: %q", out)
	}
	st, err := tp.fw.List()
	if err != nil || len(st.Networks) != 1 || !st.Networks[0].Internal {
		t.Fatalf("List = %+v, %v", st, err)
	}
}

func TestPublishedPortUDP(t *testing.T) {
	tp := newTopo(t)
	tp.startHelper(tp.ctr, "udp-echo", ":5353")
	if err := tp.fw.AddPort(firewall.PortMapping{Proto: firewall.UDP, HostPort: 5300,
		ContainerIP: netip.MustParseAddr(ctrIP), ContainerPort: 5353}); err != nil {
		t.Fatal(err)
	}
	out, err := in(tp.client, []string{helperEnv + "=udp-ask"}, mustExe(t), hostIP+":5300", "ping")
	if err != nil || out != "echo:ping" {
		t.Fatalf("udp through %s:5300: %v: %q", hostIP, err, out)
	}
}

func mustExe(t *testing.T) string {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return self
}

func TestResetOnlyBerth(t *testing.T) {
	tp := newTopo(t)
	if err := tp.fw.AddPort(web); err != nil {
		t.Fatal(err)
	}
	ns, err := os.Open("/run/netns/" + tp.host)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	other := c.AddTable(&nftables.Table{Name: "someone-else", Family: nftables.TableFamilyIPv4})
	c.AddChain(&nftables.Chain{Name: "input", Table: other})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := tp.fw.Reset(); err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tb := range tables {
		names = append(names, tb.Name)
	}
	if len(names) != 1 || names[0] != "someone-else" {
		t.Fatalf("tables after Reset: %v, want only someone-else", names)
	}
	if err := tp.fw.Reset(); err != nil { // idempotent
		t.Fatal(err)
	}
	if st, err := tp.fw.List(); err != nil || len(st.Networks)+len(st.Ports) != 0 {
		t.Fatalf("List after Reset = %+v, %v", st, err)
	}
}

// TestIsolation adds a second bridge network with its own container: the two cannot reach each
// other while both networks are berth's, and can once the second one's rules are gone.
func TestIsolation(t *testing.T) {
	tp := newTopo(t)
	ctr2 := tp.host[:len(tp.host)-len("host")] + "ctr2"
	run(t, "ip", "netns", "add", ctr2)
	t.Cleanup(func() { run(t, "ip", "netns", "del", ctr2) })
	h := tp.host
	for _, args := range [][]string{
		{"-n", h, "link", "add", "bt-br1", "type", "bridge"},
		{"-n", h, "addr", "add", "10.214.2.1/24", "dev", "bt-br1"},
		{"-n", h, "link", "set", "bt-br1", "up"},
		{"-n", h, "link", "add", "bt-cv1", "type", "veth", "peer", "name", "eth0", "netns", ctr2},
		{"-n", h, "link", "set", "bt-cv1", "master", "bt-br1", "up"},
		{"-n", ctr2, "addr", "add", "10.214.2.2/24", "dev", "eth0"},
		{"-n", ctr2, "link", "set", "eth0", "up"},
		{"-n", ctr2, "route", "add", "default", "via", "10.214.2.1"},
	} {
		run(t, "ip", args...)
	}
	if err := tp.fw.AddNetwork("bt-br1", netip.MustParsePrefix("10.214.2.0/24"), false); err != nil {
		t.Fatal(err)
	}
	if err := tp.fw.AddNetwork("bt-br2", netip.MustParsePrefix("10.214.2.128/25"), false); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("overlapping AddNetwork: %v, want conflict", err)
	}
	tp.mustGet(tp.ctr, "http://"+ctrIP+":80/") // httpd is up
	tp.startHelper(tp.client, "whoami", clientIP+":9000")
	var out string
	for range 25 { // the second network does reach the outside
		out, _ = in(ctr2, nil, "busybox", "nc", clientIP, "9000")
		if strings.TrimSpace(out) == hostIP {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if strings.TrimSpace(out) != hostIP {
		t.Fatalf("second network to the client: %q", out)
	}
	if out, err := get(ctr2, "http://"+ctrIP+":80/", 1); err == nil {
		t.Fatalf("second network reached the first: %q", out)
	}
	if err := tp.fw.RemoveNetwork("bt-br1"); err != nil {
		t.Fatal(err)
	}
	tp.mustGet(ctr2, "http://"+ctrIP+":80/") // the drop above was berth's
	if err := tp.fw.RemoveNetwork("bt-br1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("second RemoveNetwork: %v, want not found", err)
	}
}

// TestReopen is berthd restarting after a crash: a new Firewall on the same namespace reads the
// networks and ports back, EnsureBase keeps them and adds nothing twice, and they still work.
func TestReopen(t *testing.T) {
	tp := newTopo(t)
	if err := tp.fw.AddPort(web); err != nil {
		t.Fatal(err)
	}
	before := countRules(t, tp.host)
	fw2, err := firewall.New("/run/netns/" + tp.host)
	if err != nil {
		t.Fatal(err)
	}
	defer fw2.Close()
	if err := fw2.EnsureBase(); err != nil {
		t.Fatal(err)
	}
	if err := fw2.AddNetwork(bridge, subnet, false); err != nil { // same again: no-op
		t.Fatal(err)
	}
	if after := countRules(t, tp.host); after != before {
		t.Fatalf("%d rules after reopening, %d before", after, before)
	}
	st, err := fw2.List()
	if err != nil || len(st.Networks) != 1 || len(st.Ports) != 1 || st.Ports[0] != web {
		t.Fatalf("List after reopen = %+v, %v", st, err)
	}
	tp.mustGet(tp.client, "http://"+hostIP+":8080/")
}

func countRules(t *testing.T, ns string) int {
	f, err := os.Open("/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	tb := &nftables.Table{Name: firewall.TableName, Family: nftables.TableFamilyIPv4}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ch := range chains {
		if ch.Table.Name != firewall.TableName {
			continue
		}
		rs, err := c.GetRules(tb, ch)
		if err != nil {
			t.Fatal(err)
		}
		n += len(rs)
	}
	return n
}
