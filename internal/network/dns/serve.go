package dns

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"time"

	miekg "github.com/miekg/dns"
)

// serveUDP reads queries until the socket is closed; each is answered by
// its own goroutine, so a slow forward does not hold up the others.
func (a *attachment) serveUDP() {
	defer a.wg.Done()
	buf := make([]byte, miekg.MaxMsgSize)
	for {
		n, from, err := a.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			a.s.log.Warn("dns: udp read", "container", a.container, "err", err)
			// A persistent error must not spin.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if n < 12 { // shorter than a header
			continue
		}
		select {
		case a.inflight <- struct{}{}:
		default:
			continue // overloaded: the client retries
		}
		p := make([]byte, n)
		copy(p, buf[:n])
		a.wg.Go(func() {
			defer func() { <-a.inflight }()
			req := new(miekg.Msg)
			if err := req.Unpack(p); err != nil {
				return // malformed: dropped
			}
			resp := a.s.respond(a.ctx, a.container, req, false)
			if resp == nil {
				return
			}
			resp.Truncate(udpSize(req))
			out, err := resp.Pack()
			if err != nil {
				a.s.log.Warn("dns: pack answer", "container", a.container, "err", err)
				return
			}
			a.udp.WriteToUDPAddrPort(out, from)
		})
	}
}

// udpSize is the largest UDP answer the client of req accepts.
func udpSize(req *miekg.Msg) int {
	if opt := req.IsEdns0(); opt != nil && int(opt.UDPSize()) > miekg.MinMsgSize {
		return int(opt.UDPSize())
	}
	return miekg.MinMsgSize
}

// serveTCP accepts connections until the listener is closed.
func (a *attachment) serveTCP() {
	defer a.wg.Done()
	for {
		c, err := a.tcp.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			a.s.log.Warn("dns: tcp accept", "container", a.container, "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if !a.track(c) {
			c.Close()
			continue
		}
		a.wg.Go(func() { a.serveConn(c) })
	}
}

// serveConn answers the queries of one TCP connection in turn (RFC 7766
// allows it) until the client closes it, stays idle, or sends something
// that is not a DNS message.
func (a *attachment) serveConn(c net.Conn) {
	defer a.untrack(c)
	defer c.Close()
	var hdr [2]byte
	for {
		c.SetReadDeadline(time.Now().Add(tcpIdleTimeout))
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		p := make([]byte, binary.BigEndian.Uint16(hdr[:]))
		if _, err := io.ReadFull(c, p); err != nil {
			return
		}
		req := new(miekg.Msg)
		if err := req.Unpack(p); err != nil {
			return
		}
		select {
		case a.inflight <- struct{}{}:
		case <-a.ctx.Done():
			return
		}
		resp := a.s.respond(a.ctx, a.container, req, true)
		<-a.inflight
		if resp == nil {
			continue
		}
		resp.Truncate(miekg.MaxMsgSize)
		out, err := resp.Pack()
		if err != nil {
			a.s.log.Warn("dns: pack answer", "container", a.container, "err", err)
			return
		}
		msg := make([]byte, 2+len(out))
		binary.BigEndian.PutUint16(msg, uint16(len(out)))
		copy(msg[2:], out)
		c.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := c.Write(msg); err != nil {
			return
		}
	}
}
