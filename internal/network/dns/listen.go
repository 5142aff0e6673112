package dns

import (
	"errors"
	"fmt"
	"io/fs"
	"net"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"berth/internal/errdefs"
	"berth/internal/network"
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

	var udp *net.UDPConn
	var tcp *net.TCPListener
	err = network.RunIn(target, func() error {
		var err error
		udp, tcp, err = bind()
		return err
	})
	if err != nil {
		if udp != nil {
			// Made, but the thread could not return: keep nothing.
			udp.Close()
			tcp.Close()
		}
		return nil, nil, fmt.Errorf("netns %s: %w", nsPath, err)
	}
	return udp, tcp, nil
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
