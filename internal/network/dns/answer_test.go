package dns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	miekg "github.com/miekg/dns"

	"berth/internal/errdefs"
)

// fakeResolver knows names per container, as berthd would per network.
type fakeResolver struct {
	names map[string]map[string][]netip.Addr // container -> name -> addrs
	ptrs  map[string]map[netip.Addr][]string // container -> addr -> names
}

func (r *fakeResolver) LookupIPv4(container, name string) ([]netip.Addr, bool) {
	a, ok := r.names[container][name]
	return a, ok
}

func (r *fakeResolver) LookupPTR(container string, addr netip.Addr) ([]string, bool) {
	n, ok := r.ptrs[container][addr]
	return n, ok
}

var (
	webAddr  = netip.MustParseAddr("10.214.1.2")
	dbAddr   = netip.MustParseAddr("10.214.1.3")
	aliasA   = netip.MustParseAddr("10.214.1.4")
	aliasB   = netip.MustParseAddr("10.214.1.5")
	otherWeb = netip.MustParseAddr("10.214.2.2")
)

func testResolver() *fakeResolver {
	return &fakeResolver{
		names: map[string]map[string][]netip.Addr{
			"c1": {
				"web":     {webAddr},
				"db":      {dbAddr},
				"alias":   {aliasA, aliasB},
				"nothing": {},
			},
			"c2": {"web": {otherWeb}},
		},
		ptrs: map[string]map[netip.Addr][]string{
			"c1": {webAddr: {"web", "web.net1."}},
		},
	}
}

func query(name string, qtype uint16) *miekg.Msg {
	m := new(miekg.Msg)
	m.SetQuestion(name, qtype)
	return m
}

func aAddrs(t *testing.T, m *miekg.Msg) []netip.Addr {
	t.Helper()
	var out []netip.Addr
	for _, rr := range m.Answer {
		a, ok := rr.(*miekg.A)
		if !ok {
			t.Fatalf("answer %v is not A", rr)
		}
		ip, _ := netip.AddrFromSlice(a.A)
		out = append(out, ip.Unmap())
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

func TestRespondKnown(t *testing.T) {
	s := New(Config{Resolver: testResolver()})
	ctx := context.Background()

	// A of a known name, asked in mixed case: the answer keeps the case.
	req := query("WeB.", miekg.TypeA)
	resp := s.respond(ctx, "c1", req, false)
	if resp.Id != req.Id || !resp.Response || resp.Rcode != miekg.RcodeSuccess || !resp.Authoritative || !resp.RecursionAvailable {
		t.Fatalf("A web: header %+v", resp.MsgHdr)
	}
	if got := aAddrs(t, resp); !slices.Equal(got, []netip.Addr{webAddr}) {
		t.Fatalf("A web = %v", got)
	}
	if h := resp.Answer[0].Header(); h.Name != "WeB." || h.Ttl != 600 || h.Class != miekg.ClassINET {
		t.Errorf("A web header %+v", h)
	}
	if len(resp.Question) != 1 || resp.Question[0] != req.Question[0] {
		t.Errorf("question not echoed: %v", resp.Question)
	}

	// Several addresses (an alias): all of them.
	resp = s.respond(ctx, "c1", query("alias.", miekg.TypeA), false)
	if got := aAddrs(t, resp); !slices.Equal(got, []netip.Addr{aliasA, aliasB}) {
		t.Errorf("A alias = %v", got)
	}

	// A known name without addresses, and AAAA of a known name: empty NOERROR.
	for _, q := range []*miekg.Msg{query("nothing.", miekg.TypeA), query("web.", miekg.TypeAAAA)} {
		resp = s.respond(ctx, "c1", q, false)
		if resp.Rcode != miekg.RcodeSuccess || len(resp.Answer) != 0 || !resp.Authoritative {
			t.Errorf("%v: %v", q.Question[0], resp)
		}
	}

	// Each container has its own view.
	resp = s.respond(ctx, "c2", query("web.", miekg.TypeA), false)
	if got := aAddrs(t, resp); !slices.Equal(got, []netip.Addr{otherWeb}) {
		t.Errorf("c2 A web = %v", got)
	}

	// PTR of a known address: fully qualified names.
	resp = s.respond(ctx, "c1", query("2.1.214.10.in-addr.arpa.", miekg.TypePTR), false)
	var names []string
	for _, rr := range resp.Answer {
		p := rr.(*miekg.PTR)
		names = append(names, p.Ptr)
		if p.Hdr.Ttl != 600 || p.Hdr.Name != "2.1.214.10.in-addr.arpa." {
			t.Errorf("PTR header %+v", p.Hdr)
		}
	}
	if !slices.Equal(names, []string{"web.", "web.net1."}) || resp.Rcode != miekg.RcodeSuccess {
		t.Errorf("PTR = %v (%s)", names, miekg.RcodeToString[resp.Rcode])
	}

	// EDNS0 in the query is acknowledged.
	req = query("web.", miekg.TypeA)
	req.SetEdns0(4096, false)
	if resp = s.respond(ctx, "c1", req, false); resp.IsEdns0() == nil {
		t.Errorf("no OPT in answer to EDNS0 query")
	}
}

func TestRespondRejects(t *testing.T) {
	s := New(Config{Resolver: testResolver()})
	ctx := context.Background()

	ans := query("web.", miekg.TypeA)
	ans.Response = true
	if resp := s.respond(ctx, "c1", ans, false); resp != nil {
		t.Errorf("answered an answer: %v", resp)
	}

	upd := query("web.", miekg.TypeA)
	upd.Opcode = miekg.OpcodeUpdate
	if resp := s.respond(ctx, "c1", upd, false); resp.Rcode != miekg.RcodeNotImplemented {
		t.Errorf("update: %s", miekg.RcodeToString[resp.Rcode])
	}

	two := query("web.", miekg.TypeA)
	two.Question = append(two.Question, miekg.Question{Name: "db.", Qtype: miekg.TypeA, Qclass: miekg.ClassINET})
	if resp := s.respond(ctx, "c1", two, false); resp.Rcode != miekg.RcodeFormatError {
		t.Errorf("two questions: %s", miekg.RcodeToString[resp.Rcode])
	}

	// Not berth's, no upstreams: SERVFAIL, for unknown names (dotted or
	// not), unknown containers, other types and classes, unknown PTRs.
	for _, c := range []struct {
		container string
		q         *miekg.Msg
	}{
		{"c1", query("example.com.", miekg.TypeA)},
		{"c1", query("unknown.", miekg.TypeA)},
		{"c3", query("web.", miekg.TypeA)},
		{"c1", query("web.", miekg.TypeMX)},
		{"c1", query("9.9.9.10.in-addr.arpa.", miekg.TypePTR)},
		{"c1", query("1.214.10.in-addr.arpa.", miekg.TypePTR)},
		{"c1", func() *miekg.Msg { m := query("web.", miekg.TypeA); m.Question[0].Qclass = miekg.ClassCHAOS; return m }()},
	} {
		resp := s.respond(ctx, c.container, c.q, false)
		if resp.Rcode != miekg.RcodeServerFailure || resp.Id != c.q.Id || !resp.RecursionAvailable {
			t.Errorf("%s %v: %v", c.container, c.q.Question[0], resp)
		}
	}
}

func TestParsePTR(t *testing.T) {
	good := map[string]string{
		"4.3.2.1.in-addr.arpa":         "1.2.3.4",
		"0.0.0.0.in-addr.arpa":         "0.0.0.0",
		"255.0.214.10.in-addr.arpa":    "10.214.0.255",
		"11.0.0.127.in-addr.arpa":      "127.0.0.11",
		"100.200.250.251.in-addr.arpa": "251.250.200.100",
	}
	for name, want := range good {
		if a, ok := parsePTR(name); !ok || a != netip.MustParseAddr(want) {
			t.Errorf("parsePTR(%q) = %v, %v", name, a, ok)
		}
	}
	for _, name := range []string{
		"", "in-addr.arpa", "3.2.1.in-addr.arpa", "5.4.3.2.1.in-addr.arpa", "256.3.2.1.in-addr.arpa",
		"04.3.2.1.in-addr.arpa", "+4.3.2.1.in-addr.arpa", "a.3.2.1.in-addr.arpa", "4..2.1.in-addr.arpa",
		"4.3.2.1.ip6.arpa", "4.3.2.1.in-addr.arpa.example", "web",
	} {
		if a, ok := parsePTR(name); ok {
			t.Errorf("parsePTR(%q) = %v, true", name, a)
		}
	}
}

// upstream is a fake host resolver on 127.0.0.1, UDP and TCP on one port.
type upstream struct {
	addr netip.AddrPort
	mu   sync.Mutex
	seen []string // "udp name" or "tcp name", in order
}

func (u *upstream) log() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.seen)
}

// startUpstream serves handle (which may be nil: the default answers
// every A query with 192.0.2.1 and "big." with many records, truncated
// over UDP).
func startUpstream(t *testing.T, handle func(w miekg.ResponseWriter, r *miekg.Msg, tcp bool) bool) *upstream {
	t.Helper()
	u := &upstream{}
	var pc net.PacketConn
	var ln net.Listener
	for range 20 {
		var err error
		pc, err = net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err = net.Listen("tcp4", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		pc = nil
	}
	if pc == nil {
		t.Fatal("no port free for UDP and TCP")
	}
	u.addr = pc.LocalAddr().(*net.UDPAddr).AddrPort()
	h := miekg.HandlerFunc(func(w miekg.ResponseWriter, r *miekg.Msg) {
		_, tcp := w.RemoteAddr().(*net.TCPAddr)
		proto := "udp"
		if tcp {
			proto = "tcp"
		}
		u.mu.Lock()
		u.seen = append(u.seen, proto+" "+r.Question[0].Name)
		u.mu.Unlock()
		if handle != nil && handle(w, r, tcp) {
			return
		}
		m := new(miekg.Msg)
		m.SetReply(r)
		switch q := r.Question[0]; {
		case q.Name == "nx.example.":
			m.Rcode = miekg.RcodeNameError
		case q.Name == "big.example." && !tcp:
			m.Truncated = true
		case q.Name == "big.example.":
			for i := range 60 {
				m.Answer = append(m.Answer, &miekg.A{
					Hdr: miekg.RR_Header{Name: q.Name, Rrtype: miekg.TypeA, Class: miekg.ClassINET, Ttl: 60},
					A:   net.IPv4(198, 51, 100, byte(i)),
				})
			}
		case q.Qtype == miekg.TypeA:
			m.Answer = append(m.Answer, &miekg.A{
				Hdr: miekg.RR_Header{Name: q.Name, Rrtype: miekg.TypeA, Class: miekg.ClassINET, Ttl: 60},
				A:   net.IPv4(192, 0, 2, 1),
			})
		}
		w.WriteMsg(m)
	})
	for _, srv := range []*miekg.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		started := make(chan struct{})
		done := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() {
			defer close(done)
			srv.ActivateAndServe()
		}()
		<-started
		t.Cleanup(func() {
			srv.Shutdown()
			<-done
		})
	}
	return u
}

// deadUpstream is an address where nothing listens (UDP and TCP refused).
func deadUpstream(t *testing.T) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	pc.Close()
	return a
}

// silentUpstream reads nothing and answers nothing.
func silentUpstream(t *testing.T) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

func TestForward(t *testing.T) {
	up := startUpstream(t, nil)
	s := New(Config{Resolver: testResolver(), Upstreams: []netip.AddrPort{up.addr}})
	ctx := context.Background()

	// An unknown name, a name without dots, another type of a known name:
	// the upstream's answer, under the client's ID.
	for _, q := range []*miekg.Msg{query("example.com.", miekg.TypeA), query("printer.", miekg.TypeA)} {
		resp := s.respond(ctx, "c1", q, false)
		if resp.Id != q.Id || resp.Rcode != miekg.RcodeSuccess || len(resp.Answer) != 1 || resp.Answer[0].(*miekg.A).A.String() != "192.0.2.1" {
			t.Errorf("%v: %v", q.Question[0], resp)
		}
	}
	resp := s.respond(ctx, "c1", query("nx.example.", miekg.TypeA), false)
	if resp.Rcode != miekg.RcodeNameError {
		t.Errorf("NXDOMAIN not relayed: %v", resp)
	}
	resp = s.respond(ctx, "c1", query("web.", miekg.TypeTXT), false)
	if resp.Rcode != miekg.RcodeSuccess || len(resp.Answer) != 0 {
		t.Errorf("TXT web: %v", resp)
	}
	// Over TCP when the client asked over TCP; again over TCP when the UDP
	// answer is truncated.
	resp = s.respond(ctx, "c1", query("tcp.example.", miekg.TypeA), true)
	if resp.Rcode != miekg.RcodeSuccess || len(resp.Answer) != 1 {
		t.Errorf("over TCP: %v", resp)
	}
	resp = s.respond(ctx, "c1", query("big.example.", miekg.TypeA), false)
	if len(resp.Answer) != 60 || resp.Truncated {
		t.Errorf("big: %d answers, truncated %v", len(resp.Answer), resp.Truncated)
	}
	want := []string{"udp example.com.", "udp printer.", "udp nx.example.", "udp web.", "tcp tcp.example.", "udp big.example.", "tcp big.example."}
	if got := up.log(); !slices.Equal(got, want) {
		t.Errorf("upstream saw %v, want %v", got, want)
	}
}

func TestForwardFailover(t *testing.T) {
	good := startUpstream(t, nil)
	failing := startUpstream(t, func(w miekg.ResponseWriter, r *miekg.Msg, _ bool) bool {
		m := new(miekg.Msg)
		m.SetRcode(r, miekg.RcodeServerFailure)
		w.WriteMsg(m)
		return true
	})
	s := New(Config{Resolver: testResolver()})
	s.timeout = 300 * time.Millisecond
	ctx := context.Background()
	ask := func() *miekg.Msg { return s.respond(ctx, "c1", query("example.com.", miekg.TypeA), false) }

	// Dead, silent and failing servers are skipped for the next.
	s.SetUpstreams([]netip.AddrPort{deadUpstream(t), silentUpstream(t), failing.addr, good.addr})
	start := time.Now()
	if resp := ask(); resp.Rcode != miekg.RcodeSuccess || len(resp.Answer) != 1 {
		t.Errorf("failover: %v", resp)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("failover took %v", d)
	}
	// Nothing answers: SERVFAIL. Only failures: the last one.
	s.SetUpstreams([]netip.AddrPort{deadUpstream(t), silentUpstream(t)})
	if resp := ask(); resp.Rcode != miekg.RcodeServerFailure {
		t.Errorf("all dead: %v", resp)
	}
	s.SetUpstreams([]netip.AddrPort{failing.addr})
	if resp := ask(); resp.Rcode != miekg.RcodeServerFailure || len(failing.log()) != 2 {
		t.Errorf("failing: %v, upstream saw %v", resp, failing.log())
	}
	s.SetUpstreams(nil)
	if resp := ask(); resp.Rcode != miekg.RcodeServerFailure {
		t.Errorf("none: %v", resp)
	}
}

func TestForwardCancelled(t *testing.T) {
	s := New(Config{Resolver: testResolver(), Upstreams: []netip.AddrPort{silentUpstream(t)}})
	s.timeout = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan *miekg.Msg)
	go func() { done <- s.respond(ctx, "c1", query("example.com.", miekg.TypeA), false) }()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case resp := <-done:
		if resp != nil {
			t.Errorf("answer after cancel: %v", resp)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("forward not cancelled")
	}
}

func TestAttachErrors(t *testing.T) {
	s := New(Config{Resolver: testResolver()})
	defer s.Close()
	err := s.Attach("c1", filepath.Join(t.TempDir(), "missing"))
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("missing netns: %v", err)
	}
	s.Detach("c1") // not attached: nothing happens
	s.Close()
	// Never the test's own namespace: a missing path, refused before use.
	missing := filepath.Join(t.TempDir(), "missing")
	if err := s.Attach("c1", missing); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("attach after close: %v", err)
	}
	if err := New(Config{}).Attach("c1", missing); err == nil || errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("attach without resolver: %v", err)
	}
}

// choosingResolver gives c1 its own upstreams and c2 none at all.
type choosingResolver struct {
	*fakeResolver
	own []netip.AddrPort
}

func (r choosingResolver) UpstreamsFor(container string) ([]netip.AddrPort, bool) {
	switch container {
	case "c1":
		return r.own, true
	case "c2":
		return nil, true
	}
	return nil, false
}

func TestForwardPerContainer(t *testing.T) {
	host, own := startUpstream(t, nil), startUpstream(t, nil)
	s := New(Config{Resolver: choosingResolver{testResolver(), []netip.AddrPort{own.addr}}, Upstreams: []netip.AddrPort{host.addr}})
	ctx := context.Background()
	if resp := s.respond(ctx, "c1", query("one.example.", miekg.TypeA), false); resp.Rcode != miekg.RcodeSuccess {
		t.Errorf("c1 (own upstreams): %v", resp)
	}
	if resp := s.respond(ctx, "c2", query("two.example.", miekg.TypeA), false); resp.Rcode != miekg.RcodeServerFailure {
		t.Errorf("c2 (no upstreams): %v", resp)
	}
	if resp := s.respond(ctx, "c3", query("three.example.", miekg.TypeA), false); resp.Rcode != miekg.RcodeSuccess {
		t.Errorf("c3 (the server's upstreams): %v", resp)
	}
	if got := own.log(); !slices.Equal(got, []string{"udp one.example."}) {
		t.Errorf("the container's upstream saw %v", got)
	}
	if got := host.log(); !slices.Equal(got, []string{"udp three.example."}) {
		t.Errorf("the host's upstream saw %v", got)
	}
}
