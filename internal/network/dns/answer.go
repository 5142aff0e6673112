package dns

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	miekg "github.com/miekg/dns"
)

// respond decides the answer to req, asked by container over TCP or UDP:
// berth's own records for the names the Resolver knows, the upstream
// servers' answer for everything else. A nil answer means drop the query
// (it is not one, or the server is shutting down).
func (s *Server) respond(ctx context.Context, container string, req *miekg.Msg, overTCP bool) *miekg.Msg {
	if req.Response {
		return nil // never answer answers: no loops, no reflection
	}
	if req.Opcode != miekg.OpcodeQuery {
		return reply(req, miekg.RcodeNotImplemented)
	}
	if len(req.Question) != 1 {
		return reply(req, miekg.RcodeFormatError)
	}
	q := req.Question[0]
	if q.Qclass == miekg.ClassINET {
		name := strings.ToLower(strings.TrimSuffix(q.Name, "."))
		switch q.Qtype {
		case miekg.TypeA, miekg.TypeAAAA:
			if addrs, ok := s.resolver.LookupIPv4(container, name); ok {
				return answerA(req, addrs)
			}
		case miekg.TypePTR:
			if addr, ok := parsePTR(name); ok {
				if names, ok := s.resolver.LookupPTR(container, addr); ok {
					return answerPTR(req, names)
				}
			}
		}
	}
	return s.forward(ctx, s.upstreamsFor(container), req, overTCP)
}

// reply is an empty answer to req with rcode, recursion available (the
// server forwards) and the client's EDNS0 acknowledged.
func reply(req *miekg.Msg, rcode int) *miekg.Msg {
	resp := new(miekg.Msg)
	resp.SetRcode(req, rcode)
	resp.RecursionAvailable = true
	if req.IsEdns0() != nil {
		resp.SetEdns0(ednsSize, false)
	}
	return resp
}

// answerA answers an A or AAAA query for a name berth knows: its IPv4
// addresses, shuffled as Docker does to spread the clients of an alias; an
// empty answer to AAAA.
func answerA(req *miekg.Msg, addrs []netip.Addr) *miekg.Msg {
	resp := reply(req, miekg.RcodeSuccess)
	resp.Authoritative = true
	q := req.Question[0]
	if q.Qtype != miekg.TypeA {
		return resp
	}
	for _, a := range addrs {
		a = a.Unmap()
		if !a.Is4() {
			continue
		}
		resp.Answer = append(resp.Answer, &miekg.A{
			Hdr: miekg.RR_Header{Name: q.Name, Rrtype: miekg.TypeA, Class: miekg.ClassINET, Ttl: ttl},
			A:   a.AsSlice(),
		})
	}
	rand.Shuffle(len(resp.Answer), func(i, j int) {
		resp.Answer[i], resp.Answer[j] = resp.Answer[j], resp.Answer[i]
	})
	return resp
}

// answerPTR answers a PTR query for an address berth knows.
func answerPTR(req *miekg.Msg, names []string) *miekg.Msg {
	resp := reply(req, miekg.RcodeSuccess)
	resp.Authoritative = true
	q := req.Question[0]
	for _, n := range names {
		resp.Answer = append(resp.Answer, &miekg.PTR{
			Hdr: miekg.RR_Header{Name: q.Name, Rrtype: miekg.TypePTR, Class: miekg.ClassINET, Ttl: ttl},
			Ptr: miekg.Fqdn(n),
		})
	}
	return resp
}

// parsePTR returns the IPv4 address named by an in-addr.arpa name
// ("4.3.2.1.in-addr.arpa" is 1.2.3.4); false for any other name, a partial
// one (a network's zone) or octets written other than canonically.
func parsePTR(name string) (netip.Addr, bool) {
	rest, ok := strings.CutSuffix(name, ".in-addr.arpa")
	if !ok {
		return netip.Addr{}, false
	}
	labels := strings.Split(rest, ".")
	if len(labels) != 4 {
		return netip.Addr{}, false
	}
	var b [4]byte
	for i, l := range labels {
		if l == "" || len(l) > 1 && l[0] == '0' {
			return netip.Addr{}, false
		}
		v, err := strconv.ParseUint(l, 10, 8)
		if err != nil {
			return netip.Addr{}, false
		}
		b[3-i] = byte(v)
	}
	return netip.AddrFrom4(b), true
}

// forward asks the upstream servers (the container's) in order and relays the first answer
// that is neither SERVFAIL nor REFUSED (those are tried on the next
// server, as Docker does), under the client's query ID. With no answer at
// all, the client gets SERVFAIL (or the last failure an upstream gave).
func (s *Server) forward(ctx context.Context, upstreams []netip.AddrPort, req *miekg.Msg, overTCP bool) *miekg.Msg {
	var last *miekg.Msg
	for _, u := range upstreams {
		if ctx.Err() != nil {
			return nil
		}
		r, err := s.exchange(ctx, u, req, overTCP)
		if err != nil {
			s.log.Debug("dns: forward", "upstream", u, "name", req.Question[0].Name, "err", err)
			continue
		}
		last = r
		if r.Rcode != miekg.RcodeServerFailure && r.Rcode != miekg.RcodeRefused {
			break
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if last == nil {
		return reply(req, miekg.RcodeServerFailure)
	}
	last.Id = req.Id
	return last
}

// exchange asks one upstream server: over TCP if the client asked over
// TCP, else over UDP and again over TCP if the UDP answer was truncated
// (the truncated one is kept if TCP fails).
func (s *Server) exchange(ctx context.Context, upstream netip.AddrPort, req *miekg.Msg, overTCP bool) (*miekg.Msg, error) {
	if overTCP {
		return s.exchangeOnce(ctx, "tcp", upstream, req)
	}
	r, err := s.exchangeOnce(ctx, "udp", upstream, req)
	if err != nil || !r.Truncated {
		return r, err
	}
	if full, err := s.exchangeOnce(ctx, "tcp", upstream, req); err == nil {
		return full, nil
	}
	return r, nil
}

// aLongTimeAgo is a deadline that makes blocked I/O return at once.
var aLongTimeAgo = time.Unix(1, 0)

// exchangeOnce sends req unchanged but for a fresh query ID to upstream
// over network ("udp" or "tcp"), from a new socket in the calling
// goroutine's namespace (berthd's), and waits for the matching answer for
// at most the server's timeout, or until ctx is cancelled.
func (s *Server) exchangeOnce(ctx context.Context, network string, upstream netip.AddrPort, req *miekg.Msg) (*miekg.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, network, upstream.String())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	dl, _ := ctx.Deadline()
	c.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(aLongTimeAgo) })
	defer stop()

	q := req.Copy()
	q.Id = miekg.Id()
	conn := &miekg.Conn{Conn: c, UDPSize: miekg.MaxMsgSize}
	if err := conn.WriteMsg(q); err != nil {
		return nil, ctxErr(ctx, err)
	}
	for {
		r, err := conn.ReadMsg()
		if err != nil {
			if network == "udp" && ctx.Err() == nil && !isNetError(err) {
				continue // garbage on the socket: wait for the real answer
			}
			return nil, ctxErr(ctx, err)
		}
		if r.Id == q.Id && r.Response && sameQuestion(r, q) {
			return r, nil
		}
		if network != "udp" {
			return nil, fmt.Errorf("answer does not match the query (id %d, %v)", r.Id, r.Question)
		}
	}
}

// sameQuestion reports whether r answers q's question (names compared
// without case, as 0x20-randomizing servers may change it). An answer
// without question (some servers' FORMERR) matches.
func sameQuestion(r, q *miekg.Msg) bool {
	if len(r.Question) == 0 {
		return true
	}
	if len(r.Question) != len(q.Question) {
		return false
	}
	for i, rq := range r.Question {
		qq := q.Question[i]
		if rq.Qtype != qq.Qtype || rq.Qclass != qq.Qclass || !strings.EqualFold(rq.Name, qq.Name) {
			return false
		}
	}
	return true
}

func isNetError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne)
}

// ctxErr prefers the context's reason (timeout, shutdown) to the I/O error
// it caused.
func ctxErr(ctx context.Context, err error) error {
	if ce := ctx.Err(); ce != nil {
		return ce
	}
	return err
}
