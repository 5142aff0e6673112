package dns

import (
	"bufio"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	miekg "github.com/miekg/dns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"berth/internal/errdefs"
	"berth/internal/network"
)

// The scenarios below run as root against the kernel: each builds its own
// network namespaces (never touching the test's own), serves them, asks
// from inside them, and checks that the namespaces, mounts, sockets and
// goroutines are gone afterwards.

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
}

// newNS makes a network namespace for the test and removes it at the end,
// checking that neither the file nor its mount is left.
func newNS(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "netns")
	if err := network.NewNetNS(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := network.RemoveNetNS(path); err != nil {
			t.Error(err)
		}
		if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("netns file %s left: %v", path, err)
		}
		if mounted(t, path) {
			t.Errorf("netns %s still mounted", path)
		}
	})
	return path
}

// mounted reports whether path is a mount point of the test's mount namespace.
func mounted(t *testing.T, path string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 4 && fields[4] == path {
			return true
		}
	}
	return false
}

// dialIn opens a client socket to 127.0.0.11:53 inside the namespace; the
// socket stays there whichever thread uses it afterwards.
func dialIn(nsPath, proto string) (net.Conn, error) {
	var c net.Conn
	err := network.RunInNetNS(nsPath, func() error {
		var err error
		c, err = net.DialTimeout(proto, "127.0.0.11:53", 2*time.Second)
		return err
	})
	return c, err
}

// client is a container's stub resolver, over one socket in its namespace.
type client struct {
	t    *testing.T
	conn *miekg.Conn
}

func newClient(t *testing.T, nsPath, proto string) *client {
	t.Helper()
	c, err := dialIn(nsPath, proto)
	if err != nil {
		t.Fatalf("dial %s in %s: %v", proto, nsPath, err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, conn: &miekg.Conn{Conn: c, UDPSize: miekg.MaxMsgSize}}
}

// exchange sends m and returns the answer with its ID.
func (c *client) exchange(m *miekg.Msg, timeout time.Duration) (*miekg.Msg, error) {
	c.conn.SetDeadline(time.Now().Add(timeout))
	if err := c.conn.WriteMsg(m); err != nil {
		return nil, err
	}
	for {
		r, err := c.conn.ReadMsg()
		if err != nil {
			return nil, err
		}
		if r.Id == m.Id {
			return r, nil
		}
	}
}

func (c *client) ask(name string, qtype uint16) *miekg.Msg {
	c.t.Helper()
	q := query(name, qtype)
	r, err := c.exchange(q, 3*time.Second)
	if err != nil {
		c.t.Fatalf("%s %s: %v", name, miekg.TypeToString[qtype], err)
	}
	return r
}

// threadsInOwnNS checks that every thread of the test process is in the
// process's namespace: none was left in a container's.
func threadsInOwnNS(t *testing.T) {
	t.Helper()
	own, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		ns, err := os.Readlink("/proc/self/task/" + task.Name() + "/ns/net")
		if err != nil {
			continue // the thread has exited
		}
		if ns != own {
			t.Errorf("thread %s is in %s, not %s", task.Name(), ns, own)
		}
	}
}

func loUp(t *testing.T, nsPath string) bool {
	t.Helper()
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	return lo.Attrs().Flags&net.FlagUp != 0
}

func cloexec(t *testing.T, c syscall.Conn) bool {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var flags int
	var ferr error
	if err := rc.Control(func(fd uintptr) { flags, ferr = unix.FcntlInt(fd, unix.F_GETFD, 0) }); err != nil {
		t.Fatal(err)
	}
	if ferr != nil {
		t.Fatal(ferr)
	}
	return flags&unix.FD_CLOEXEC != 0
}

// waitGoroutines waits for the goroutine count to come back to at most n.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), n, buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestEmbeddedDNS(t *testing.T) {
	needRoot(t)
	up := startUpstream(t, func(_ miekg.ResponseWriter, r *miekg.Msg, _ bool) bool {
		if r.Question[0].Name == "slow.example." {
			time.Sleep(time.Second)
		}
		return false
	})
	ns1, ns2 := newNS(t), newNS(t)
	if loUp(t, ns1) {
		t.Fatal("lo of a new namespace is already up")
	}
	baseline := runtime.NumGoroutine()

	s := New(Config{Resolver: testResolver(), Upstreams: []netip.AddrPort{up.addr}})
	t.Cleanup(s.Close)
	if err := s.Attach("c1", ns1); err != nil {
		t.Fatal(err)
	}
	if err := s.Attach("c2", ns2); err != nil {
		t.Fatal(err)
	}
	// One namespace holds one server: a second container there conflicts.
	if err := s.Attach("c3", ns2); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("second attach in one namespace: %v", err)
	}
	threadsInOwnNS(t)
	if !loUp(t, ns1) || !loUp(t, ns2) {
		t.Fatal("Attach did not bring lo up")
	}
	for _, a := range s.attached {
		if !cloexec(t, a.udp) || !cloexec(t, a.tcp) {
			t.Fatal("socket without close-on-exec")
		}
	}

	udp1 := newClient(t, ns1, "udp")
	tcp1 := newClient(t, ns1, "tcp")

	t.Run("A", func(t *testing.T) {
		udp1.t = t
		r := udp1.ask("web.", miekg.TypeA)
		if got := aAddrs(t, r); !slices.Equal(got, []netip.Addr{webAddr}) || !r.Authoritative || !r.RecursionAvailable {
			t.Errorf("A web: %v", r)
		}
		if ttl := r.Answer[0].Header().Ttl; ttl != 600 {
			t.Errorf("ttl %d", ttl)
		}
		r = newClient(t, ns2, "udp").ask("web.", miekg.TypeA)
		if got := aAddrs(t, r); !slices.Equal(got, []netip.Addr{otherWeb}) {
			t.Errorf("c2 sees web as %v", got)
		}
		r = udp1.ask("web.", miekg.TypeAAAA)
		if r.Rcode != miekg.RcodeSuccess || len(r.Answer) != 0 {
			t.Errorf("AAAA web: %v", r)
		}
	})

	t.Run("PTR", func(t *testing.T) {
		udp1.t = t
		r := udp1.ask("2.1.214.10.in-addr.arpa.", miekg.TypePTR)
		if len(r.Answer) != 2 || r.Answer[0].(*miekg.PTR).Ptr != "web." || r.Answer[1].(*miekg.PTR).Ptr != "web.net1." {
			t.Errorf("PTR: %v", r)
		}
	})

	t.Run("forward", func(t *testing.T) {
		udp1.t = t
		r := udp1.ask("Example.COM.", miekg.TypeA)
		if r.Rcode != miekg.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].(*miekg.A).A.String() != "192.0.2.1" {
			t.Errorf("forwarded: %v", r)
		}
		r = udp1.ask("nx.example.", miekg.TypeA)
		if r.Rcode != miekg.RcodeNameError {
			t.Errorf("NXDOMAIN: %v", r)
		}
		if log := up.log(); !slices.Contains(log, "udp Example.COM.") {
			t.Errorf("upstream saw %v", log)
		}
	})

	t.Run("TCP", func(t *testing.T) {
		tcp1.t = t
		// Several queries on one connection, known and forwarded.
		if got := aAddrs(t, tcp1.ask("db.", miekg.TypeA)); !slices.Equal(got, []netip.Addr{dbAddr}) {
			t.Errorf("A db over TCP: %v", got)
		}
		r := tcp1.ask("tcp.example.", miekg.TypeA)
		if r.Rcode != miekg.RcodeSuccess || len(r.Answer) != 1 {
			t.Errorf("forwarded over TCP: %v", r)
		}
		if log := up.log(); !slices.Contains(log, "tcp tcp.example.") {
			t.Errorf("upstream saw %v", log)
		}
	})

	t.Run("truncated", func(t *testing.T) {
		udp1.t, tcp1.t = t, t
		r := udp1.ask("big.example.", miekg.TypeA)
		if !r.Truncated || len(r.Answer) == 0 || len(r.Answer) >= 60 {
			t.Errorf("over UDP: truncated %v, %d answers", r.Truncated, len(r.Answer))
		}
		if log := up.log(); !slices.Contains(log, "tcp big.example.") {
			t.Errorf("no retry over TCP upstream: %v", log)
		}
		if r := tcp1.ask("big.example.", miekg.TypeA); r.Truncated || len(r.Answer) != 60 {
			t.Errorf("over TCP: truncated %v, %d answers", r.Truncated, len(r.Answer))
		}
	})

	t.Run("slow upstream", func(t *testing.T) {
		slow := newClient(t, ns1, "udp")
		done := make(chan *miekg.Msg, 1)
		go func() {
			r, err := slow.exchange(query("slow.example.", miekg.TypeA), 5*time.Second)
			if err != nil {
				t.Error(err)
			}
			done <- r
		}()
		time.Sleep(100 * time.Millisecond)
		start := time.Now()
		udp1.t = t
		udp1.ask("web.", miekg.TypeA)
		udp1.ask("fast.example.", miekg.TypeA)
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Errorf("queries behind a slow one took %v", d)
		}
		select {
		case r := <-done:
			if r == nil || len(r.Answer) != 1 {
				t.Errorf("slow: %v", r)
			}
		case <-time.After(5 * time.Second):
			t.Error("slow query never answered")
		}
	})

	t.Run("malformed", func(t *testing.T) {
		raw, err := dialIn(ns1, "udp")
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		resp := query("web.", miekg.TypeA)
		resp.Response = true
		answer, _ := resp.Pack()
		header := answer[:12]
		for _, p := range [][]byte{{1, 2, 3}, header[:11], []byte("not a dns message at all, really"), answer, append(slices.Clone(header[:4]), 0, 1, 0, 0, 0, 0, 0, 0, 7)} {
			if _, err := raw.Write(p); err != nil {
				t.Fatal(err)
			}
		}
		raw.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		buf := make([]byte, 512)
		if n, err := raw.Read(buf); err == nil {
			t.Errorf("answer to garbage: %x", buf[:n])
		}
		// A TCP client sending garbage is disconnected.
		rawTCP, err := dialIn(ns1, "tcp")
		if err != nil {
			t.Fatal(err)
		}
		defer rawTCP.Close()
		rawTCP.Write([]byte{0, 5, 1, 2, 3, 4, 5})
		rawTCP.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := rawTCP.Read(buf); err != io.EOF && !errors.Is(err, unix.ECONNRESET) {
			t.Errorf("TCP garbage: read %v, want EOF", err)
		}
		udp1.t = t
		if got := aAddrs(t, udp1.ask("web.", miekg.TypeA)); !slices.Equal(got, []netip.Addr{webAddr}) {
			t.Errorf("after garbage: %v", got)
		}
	})

	t.Run("dead upstream", func(t *testing.T) {
		udp1.t = t
		s.SetUpstreams([]netip.AddrPort{deadUpstream(t)})
		defer s.SetUpstreams([]netip.AddrPort{up.addr})
		if r := udp1.ask("example.org.", miekg.TypeA); r.Rcode != miekg.RcodeServerFailure {
			t.Errorf("dead upstream: %v", r)
		}
		// berth's own names still answer.
		if r := udp1.ask("web.", miekg.TypeA); len(r.Answer) != 1 {
			t.Errorf("A web: %v", r)
		}
	})

	t.Run("reattach", func(t *testing.T) {
		n := runtime.NumGoroutine()
		if err := s.Attach("c1", ns1); err != nil {
			t.Fatal(err)
		}
		threadsInOwnNS(t)
		waitGoroutines(t, n)
		if got := aAddrs(t, newClient(t, ns1, "udp").ask("web.", miekg.TypeA)); !slices.Equal(got, []netip.Addr{webAddr}) {
			t.Errorf("after reattach: %v", got)
		}
	})

	t.Run("detach", func(t *testing.T) {
		s.Detach("c1")
		s.Detach("c1")
		if c, err := dialIn(ns1, "tcp"); !errors.Is(err, unix.ECONNREFUSED) {
			if c != nil {
				c.Close()
			}
			t.Errorf("TCP after detach: %v", err)
		}
		c := newClient(t, ns1, "udp")
		if _, err := c.exchange(query("web.", miekg.TypeA), time.Second); !errors.Is(err, unix.ECONNREFUSED) {
			t.Errorf("UDP after detach: %v", err)
		}
		// The other container is still served.
		if got := aAddrs(t, newClient(t, ns2, "tcp").ask("web.", miekg.TypeA)); !slices.Equal(got, []netip.Addr{otherWeb}) {
			t.Errorf("c2 after c1's detach: %v", got)
		}
	})

	s.Close()
	if len(s.attached) != 0 {
		t.Errorf("attached after Close: %v", s.attached)
	}
	if c, err := dialIn(ns2, "tcp"); err == nil {
		c.Close()
		t.Error("c2 still served after Close")
	}
	waitGoroutines(t, baseline)
}
