package berthtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"berth/internal/network"
	"berth/internal/network/firewall"
)

// makeHostNetNS makes the namespace a test's berthd runs in: lo up, and a link with addr (the host's "own address" for published ports).
func makeHostNetNS(path, addr string) (err error) {
	if err := network.NewNetNS(path); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			network.RemoveNetNS(path)
		}
	}()
	nl, closeNL, err := netlinkIn(path)
	if err != nil {
		return err
	}
	defer closeNL()
	lo, err := nl.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := nl.LinkSetUp(lo); err != nil {
		return err
	}
	// A veth pair with both ends here (no dummy module on every kernel): hostif0 carries
	// the address, its peer gives it a carrier.
	dummy := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "hostif0"}, PeerName: "hostif1"}
	if err := nl.LinkAdd(dummy); err != nil {
		return fmt.Errorf("host link: %w", err)
	}
	if peer, err := nl.LinkByName("hostif1"); err == nil {
		nl.LinkSetUp(peer)
	}
	a, err := netlink.ParseAddr(addr)
	if err != nil {
		return err
	}
	if err := nl.AddrAdd(dummy, a); err != nil {
		return err
	}
	return nl.LinkSetUp(dummy)
}

func netlinkIn(path string) (*netlink.Handle, func(), error) {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return nil, nil, err
	}
	nl, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		return nil, nil, err
	}
	return nl, func() { nl.Close(); ns.Close() }, nil
}

// HostCmd is a command run in berthd's network namespace (as a process of the "host").
func (d *Daemon) HostCmd(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + d.NetNS, "--", name}, args...)...)
}

// Host runs a command in berthd's network namespace and returns its combined output and
// exit code (-1 if it could not run).
func (d *Daemon) Host(timeout time.Duration, name string, args ...string) (string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := d.HostCmd(ctx, name, args...).CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		return string(out) + err.Error(), -1
	}
	return string(out), 0
}

// Links lists the links of berthd's network namespace: name -> type.
func (d *Daemon) Links() (map[string]string, error) {
	nl, closeNL, err := netlinkIn(d.NetNS)
	if err != nil {
		return nil, err
	}
	defer closeNL()
	links, err := nl.LinkList()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, l := range links {
		out[l.Attrs().Name] = l.Type()
	}
	return out, nil
}

// networkLeaks lists what berthd's networking holds that no container should hold any more:
// veths, published ports, IPAM leases, bridges of removed networks. Called when every
// container and user network has been removed.
func (d *Daemon) networkLeaks() []string {
	var out []string
	links, err := d.Links()
	if err != nil {
		return []string{"list links: " + err.Error()}
	}
	for name, typ := range links {
		switch {
		case typ == "veth" && strings.HasPrefix(name, "veth"):
			out = append(out, "veth "+name)
		case strings.HasPrefix(name, "br-"):
			out = append(out, "bridge "+name+" of a removed network")
		}
	}
	fw, err := firewall.New(d.NetNS)
	if err == nil {
		st, err := fw.List()
		fw.Close()
		if err == nil {
			for _, p := range st.Ports {
				out = append(out, "published port "+p.String())
			}
			for _, n := range st.Networks {
				if strings.HasPrefix(n.Bridge, "br-") {
					out = append(out, "rules of removed network "+n.Bridge)
				}
			}
		}
	}
	var ipam struct {
		Networks map[string]struct {
			Leases map[string]string `json:"leases"`
		} `json:"networks"`
	}
	if b, err := os.ReadFile(filepath.Join(d.DataRoot, "network", "ipam.json")); err == nil {
		if err := json.Unmarshal(b, &ipam); err == nil {
			for id, n := range ipam.Networks {
				for a, owner := range n.Leases {
					out = append(out, fmt.Sprintf("IPAM lease %s on %s for %s", a, id[:12], owner))
				}
			}
		}
	}
	return out
}

// LinkToRemote makes a second namespace, "another host", joined to berthd's by a veth pair
// with addresses 198.19.0.1 (berthd's side) and 198.19.0.2 (the remote's), and removes it
// at the end of the test. It returns the remote namespace's path.
func (d *Daemon) LinkToRemote() string {
	t := d.t
	t.Helper()
	path := filepath.Join(d.Dir, "remote.netns")
	if err := network.NewNetNS(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { network.RemoveNetNS(path) })
	hnl, closeH, err := netlinkIn(d.NetNS)
	if err != nil {
		t.Fatal(err)
	}
	defer closeH()
	rns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer rns.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "toremote"}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(rns))}
	if err := hnl.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	set := func(nl *netlink.Handle, name, addr string) {
		l, err := nl.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := netlink.ParseAddr(addr)
		if err := nl.AddrAdd(l, a); err != nil {
			t.Fatal(err)
		}
		if err := nl.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	set(hnl, "toremote", "198.19.0.1/24")
	rnl, closeR, err := netlinkIn(path)
	if err != nil {
		t.Fatal(err)
	}
	defer closeR()
	set(rnl, "eth0", "198.19.0.2/24")
	lo, _ := rnl.LinkByName("lo")
	rnl.LinkSetUp(lo)
	// Replies to the host's own address (198.18.0.1) go back through the veth.
	if err := rnl.RouteAdd(&netlink.Route{Dst: &net.IPNet{IP: net.IPv4(198, 18, 0, 0), Mask: net.CIDRMask(24, 32)}, Gw: net.IPv4(198, 19, 0, 1)}); err != nil {
		t.Fatal(err)
	}
	return path
}
