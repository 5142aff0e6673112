// Package dns owns the embedded DNS server berthd runs for containers on
// user-defined networks, as Docker's 127.0.0.11 resolver: the sockets at
// 127.0.0.11:53 (UDP and TCP) in each attached container's network
// namespace, the answers for the names berth knows (A, AAAA, PTR) and the
// forwarding of every other query to the host's resolvers.
//
// The sockets are made inside the container's namespace but served by
// goroutines in berthd's own, so forwarding to the upstream servers happens
// from the daemon's namespace: a loopback upstream on the host
// (systemd-resolved's 127.0.0.53) works, and containers on internal
// networks still resolve external names through the daemon.
//
// The package does not decide which names exist or who sees them (a
// Resolver, given by berthd, does), does not write a container's
// resolv.conf, and writes no firewall rules.
//
// Limitations: the server binds exactly 127.0.0.11:53 (no port
// redirection), so a process in the container can serve port 53 on its own
// interface addresses but not on the wildcard address (0.0.0.0:53), which
// conflicts with the server's sockets. IPv4 only: AAAA queries for known
// names get an empty answer, and ip6.arpa queries are forwarded.
package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Resolver answers for the names berth knows. container identifies the
// asking container (its view: the networks it is on). Both methods are
// called concurrently, from the goroutines serving queries: they must not
// wait on a lock held by a caller of Server.Detach or Server.Close, which
// wait for those goroutines.
type Resolver interface {
	// LookupIPv4 returns the IPv4 addresses of name (already lowercased,
	// without trailing dot) as the container sees it; ok false if berth
	// does not know the name (then the query is forwarded to the upstream
	// servers). A known name with no addresses gets an empty answer.
	LookupIPv4(container, name string) (addrs []netip.Addr, ok bool)
	// LookupPTR returns names for addr (for in-addr.arpa queries), with or
	// without trailing dot; ok false if unknown (then the query is
	// forwarded).
	LookupPTR(container string, addr netip.Addr) (names []string, ok bool)
}

// UpstreamChooser is an optional interface of a Resolver: the upstream servers of one
// container, as Docker forwards a container's queries to its own --dns servers; ok true
// with an empty list forwards nothing (a container only on internal networks resolves no
// outside name); ok false means the server's list.
type UpstreamChooser interface {
	UpstreamsFor(container string) (upstreams []netip.AddrPort, ok bool)
}

// Config is what a Server needs.
type Config struct {
	// Resolver answers for berth's names. Required.
	Resolver Resolver
	// Upstreams are the host's resolvers, queried in order from berthd's
	// own network namespace for the names berth does not know. With none,
	// those queries get SERVFAIL.
	Upstreams []netip.AddrPort
	// Logger receives the serving errors and, at debug level, failed
	// forwards. May be nil.
	Logger *slog.Logger
}

// Listening address in every attached namespace.
var listenAddr = netip.MustParseAddrPort("127.0.0.11:53")

const (
	// ttl of the records berth answers with, as Docker's.
	ttl = 600
	// upstreamTimeout bounds one exchange with one upstream server.
	upstreamTimeout = 2 * time.Second
	// tcpIdleTimeout closes a client's TCP connection that sends nothing.
	tcpIdleTimeout = 10 * time.Second
	// writeTimeout bounds the write of one answer to a TCP client.
	writeTimeout = 5 * time.Second
	// maxInflight bounds the queries served at once for one container
	// (Docker's limit); a UDP query beyond it is dropped.
	maxInflight = 1024
	// maxTCPConns bounds the open TCP connections of one container; a
	// connection beyond it is closed at once.
	maxTCPConns = 64
	// ednsSize is the UDP payload size berth advertises in its own answers.
	ednsSize = 1232
)

// Server is the embedded DNS server: one Resolver and one list of upstream
// servers, serving any number of containers, each in its own namespace.
type Server struct {
	resolver  Resolver
	log       *slog.Logger
	upstreams atomic.Pointer[[]netip.AddrPort]
	timeout   time.Duration // per upstream exchange; tests shorten it

	mu       sync.Mutex // serializes Attach, Detach and Close
	attached map[string]*attachment
	closed   bool
}

// New returns a server that serves no container yet.
func New(cfg Config) *Server {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		resolver: cfg.Resolver,
		log:      log,
		timeout:  upstreamTimeout,
		attached: make(map[string]*attachment),
	}
	s.SetUpstreams(cfg.Upstreams)
	return s
}

// SetUpstreams replaces the upstream servers (when the daemon rereads
// /etc/resolv.conf). Queries already being forwarded keep the old list.
func (s *Server) SetUpstreams(upstreams []netip.AddrPort) {
	u := slices.Clone(upstreams)
	s.upstreams.Store(&u)
}

// upstreamsFor returns the list in force for a container: its own if the Resolver chooses
// one, else the server's.
func (s *Server) upstreamsFor(container string) []netip.AddrPort {
	if uc, ok := s.resolver.(UpstreamChooser); ok {
		if u, ok := uc.UpstreamsFor(container); ok {
			return u
		}
	}
	return *s.upstreams.Load()
}

// Attach starts serving container on 127.0.0.11:53, UDP and TCP, inside
// the network namespace at nsPath (a bind-mounted namespace file or
// /proc/<pid>/ns/net). The namespace's loopback interface is brought up if
// it is down. The sockets are made in that namespace and served from
// berthd's own. Attaching a container again stops its old listeners first
// (if the new ones then fail, the container is left detached). A missing
// nsPath is a not-found error; an address in use in the namespace is a
// conflict.
func (s *Server) Attach(container, nsPath string) error {
	if s.resolver == nil {
		return errors.New("dns: no resolver configured")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("dns: attach %s: server closed", container)
	}
	if old := s.attached[container]; old != nil {
		delete(s.attached, container)
		old.shutdown()
	}
	udp, tcp, err := listenIn(nsPath)
	if err != nil {
		return fmt.Errorf("dns: attach %s: %w", container, err)
	}
	a := newAttachment(s, container, udp, tcp)
	s.attached[container] = a
	a.start()
	s.log.Debug("dns: attached", "container", container, "netns", nsPath)
	return nil
}

// Detach stops serving container: it closes its sockets and waits for the
// queries in flight to end (forwards are cancelled). Detaching a container
// that is not attached does nothing.
func (s *Server) Detach(container string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.attached[container]; a != nil {
		delete(s.attached, container)
		a.shutdown()
		s.log.Debug("dns: detached", "container", container)
	}
}

// Close detaches every container; later Attach calls fail.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	var wg sync.WaitGroup
	for c, a := range s.attached {
		delete(s.attached, c)
		wg.Go(a.shutdown)
	}
	wg.Wait()
}

// attachment is one container's listeners and the goroutines serving them.
type attachment struct {
	s         *Server
	container string
	udp       *net.UDPConn
	tcp       *net.TCPListener
	ctx       context.Context // cancelled by shutdown: ends forwards
	cancel    context.CancelFunc
	inflight  chan struct{} // one token per query being served
	wg        sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // open TCP client connections
	closed bool
}

func newAttachment(s *Server, container string, udp *net.UDPConn, tcp *net.TCPListener) *attachment {
	ctx, cancel := context.WithCancel(context.Background())
	return &attachment{
		s:         s,
		container: container,
		udp:       udp,
		tcp:       tcp,
		ctx:       ctx,
		cancel:    cancel,
		inflight:  make(chan struct{}, maxInflight),
		conns:     make(map[net.Conn]struct{}),
	}
}

func (a *attachment) start() {
	a.wg.Add(2)
	go a.serveUDP()
	go a.serveTCP()
}

// shutdown closes the sockets, cancels the forwards and waits for every
// goroutine of the attachment to return.
func (a *attachment) shutdown() {
	a.mu.Lock()
	a.closed = true
	for c := range a.conns {
		c.Close()
	}
	a.mu.Unlock()
	a.cancel()
	a.udp.Close()
	a.tcp.Close()
	a.wg.Wait()
}

// track records an accepted TCP connection; false if shutting down or at
// the connection limit (the caller closes it).
func (a *attachment) track(c net.Conn) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed || len(a.conns) >= maxTCPConns {
		return false
	}
	a.conns[c] = struct{}{}
	return true
}

func (a *attachment) untrack(c net.Conn) {
	a.mu.Lock()
	delete(a.conns, c)
	a.mu.Unlock()
}
