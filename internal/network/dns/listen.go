package dns

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"berth/internal/errdefs"
)

// listenIn makes the UDP socket and TCP listener at listenAddr inside the
// namespace at nsPath, bringing its loopback interface up first. The
// sockets stay in that namespace whichever thread later uses them; they
// are close-on-exec, as every socket Go makes.
func listenIn(nsPath string) (*net.UDPConn, *net.TCPListener, error) {
	target, err := netns.GetFromPath(nsPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, errdefs.NotFound("netns %s does not exist", nsPath)
		}
		return nil, nil, fmt.Errorf("netns %s: %w", nsPath, err)
	}
	defer target.Close()
	if err := loopbackUp(target); err != nil {
		return nil, nil, fmt.Errorf("netns %s: %w", nsPath, err)
	}

	type result struct {
		udp *net.UDPConn
		tcp *net.TCPListener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread is unlocked only once it is back in its original
		// namespace; if it cannot get back, the goroutine ends locked and
		// the runtime throws the thread away.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			ch <- result{err: fmt.Errorf("current netns: %w", err)}
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			ch <- result{err: fmt.Errorf("enter netns: %w", err)}
			return
		}
		udp, tcp, lerr := bind()
		if err := netns.Set(orig); err != nil {
			if lerr == nil {
				udp.Close()
				tcp.Close()
			}
			ch <- result{err: fmt.Errorf("return to original netns: %w", err)}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{udp, tcp, lerr}
	}()
	r := <-ch
	if r.err != nil {
		return nil, nil, fmt.Errorf("netns %s: %w", nsPath, r.err)
	}
	return r.udp, r.tcp, nil
}

// bind makes both sockets in the calling thread's namespace.
func bind() (*net.UDPConn, *net.TCPListener, error) {
	udp, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(listenAddr))
	if err != nil {
		return nil, nil, bindErr(err)
	}
	tcp, err := net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(listenAddr))
	if err != nil {
		udp.Close()
		return nil, nil, bindErr(err)
	}
	return udp, tcp, nil
}

func bindErr(err error) error {
	if errors.Is(err, unix.EADDRINUSE) {
		return errdefs.Conflict("%s is in use: %v", listenAddr, err)
	}
	return err
}

// loopbackUp sets the namespace's lo up (a new namespace's is down), over
// a netlink socket opened in that namespace.
func loopbackUp(ns netns.NsHandle) error {
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	if lo.Attrs().Flags&net.FlagUp != 0 {
		return nil
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	return nil
}
