package firewall

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"

	"berth/internal/errdefs"
)

// Chains of berth's table. The base chains (hooked) hold only the fixed rules EnsureBase writes;
// the rules of networks and ports go in the regular chains they jump to.
const (
	chainPrerouting  = "prerouting"  // nat, dstnat: local destinations -> publish
	chainOutput      = "output"      // nat, dstnat: local destinations -> publish
	chainPostrouting = "postrouting" // nat, srcnat: -> masquerade
	chainForward     = "forward"     // filter: established, networks, isolation, ports

	chainPublish    = "publish"     // DNAT of published ports
	chainMasquerade = "masquerade"  // per network: outbound, localhost and hairpin masquerade
	chainNetworks   = "networks"    // per network: bridge-local accept, internal drops
	chainIsolateSrc = "isolate-src" // per network: from this bridge -> isolate-dst
	chainIsolateDst = "isolate-dst" // per network: to this (another) bridge: drop
	chainPorts      = "ports"       // per port: accept forwarding to the container
)

var regularChains = []string{chainPublish, chainMasquerade, chainNetworks, chainIsolateSrc, chainIsolateDst, chainPorts}

// Firewall edits berth's table in one network namespace. Its methods are safe for concurrent use
// within one process; it keeps no state of its own beyond the kernel's.
type Firewall struct {
	mu    sync.Mutex
	netns *os.File // nil: the namespace of the calling thread at each call
	table *nftables.Table
}

// New returns a Firewall acting in the network namespace at netnsPath (e.g. /proc/1/ns/net or a
// bind mount under /run/netns); "" means the caller's namespace. Call Close when done.
func New(netnsPath string) (*Firewall, error) {
	fw := &Firewall{table: &nftables.Table{Name: TableName, Family: nftables.TableFamilyIPv4}}
	if netnsPath != "" {
		f, err := os.Open(netnsPath)
		if err != nil {
			return nil, fmt.Errorf("firewall: open netns: %w", err)
		}
		var st unix.Statfs_t
		if err := unix.Fstatfs(int(f.Fd()), &st); err != nil || (st.Type != unix.NSFS_MAGIC && st.Type != unix.PROC_SUPER_MAGIC) {
			_ = f.Close()
			return nil, errdefs.Invalid("firewall: %s is not a network namespace", netnsPath)
		}
		fw.netns = f
	}
	return fw, nil
}

// Close releases the namespace handle. The rules stay.
func (fw *Firewall) Close() error {
	if fw.netns == nil {
		return nil
	}
	return fw.netns.Close()
}

func (fw *Firewall) conn() (*nftables.Conn, error) {
	var opts []nftables.ConnOption
	if fw.netns != nil {
		opts = append(opts, nftables.WithNetNSFd(int(fw.netns.Fd())))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("firewall: netlink: %w", err)
	}
	return c, nil
}

type baseChain struct {
	name         string
	typ          nftables.ChainType
	hook         *nftables.ChainHook
	prio         *nftables.ChainPriority
	rules        [][]expr.Any
	policyAccept bool // policy accept (filter chains)
}

func baseChains() []baseChain {
	return []baseChain{
		{chainPrerouting, nftables.ChainTypeNAT, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest,
			[][]expr.Any{cat(daddrLocal(), jump(chainPublish))}, false},
		{chainOutput, nftables.ChainTypeNAT, nftables.ChainHookOutput, nftables.ChainPriorityNATDest,
			[][]expr.Any{cat(daddrLocal(), jump(chainPublish))}, false},
		{chainPostrouting, nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource,
			[][]expr.Any{jump(chainMasquerade)}, false},
		{chainForward, nftables.ChainTypeFilter, nftables.ChainHookForward, nftables.ChainPriorityFilter,
			[][]expr.Any{
				cat(ctEstablished(), verdict(expr.VerdictAccept)),
				jump(chainNetworks),
				jump(chainIsolateSrc),
				jump(chainPorts),
			}, true},
	}
}

// EnsureBase creates berth's table and chains, or completes them after a crash; the rules of
// networks and ports already there are kept. It is idempotent. See RequiredSysctls for the
// settings the rules rely on.
func (fw *Firewall) EnsureBase() error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	c, err := fw.conn()
	if err != nil {
		return err
	}
	existing := map[string]*nftables.Chain{}
	if chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyIPv4); err == nil {
		for _, ch := range chains {
			if ch.Table.Name == TableName {
				existing[ch.Name] = ch
			}
		}
	}
	c.AddTable(fw.table)
	for _, name := range regularChains {
		c.AddChain(&nftables.Chain{Name: name, Table: fw.table})
	}
	for _, b := range baseChains() {
		ch := &nftables.Chain{Name: b.name, Table: fw.table, Type: b.typ, Hooknum: b.hook, Priority: b.prio}
		if b.policyAccept {
			p := nftables.ChainPolicyAccept
			ch.Policy = &p
		}
		if old := existing[b.name]; old != nil {
			rules, err := c.GetRules(fw.table, old)
			if err == nil && len(rules) == len(b.rules) && allTagged(rules, tagBase) {
				continue
			}
			c.FlushChain(old) // half-made by an interrupted EnsureBase: write it again
		}
		c.AddChain(ch)
		for _, e := range b.rules {
			c.AddRule(&nftables.Rule{Table: fw.table, Chain: ch, Exprs: e, UserData: comment(tagBase)})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("firewall: create table %s: %w", TableName, err)
	}
	return nil
}

func comment(s string) []byte { return userdata.AppendString(nil, userdata.TypeComment, s) }

func ruleTag(r *nftables.Rule) string {
	s, _ := userdata.GetString(r.UserData, userdata.TypeComment)
	return s
}

func allTagged(rules []*nftables.Rule, tag string) bool {
	for _, r := range rules {
		if ruleTag(r) != tag {
			return false
		}
	}
	return true
}

// Reset deletes berth's table and everything in it. Nothing else is touched. It is not an
// error if the table does not exist.
func (fw *Firewall) Reset() error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	c, err := fw.conn()
	if err != nil {
		return err
	}
	if _, err := c.ListTableOfFamily(TableName, nftables.TableFamilyIPv4); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("firewall: list table: %w", err)
	}
	c.DelTable(fw.table)
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("firewall: delete table %s: %w", TableName, err)
	}
	return nil
}

// State is what berth's table holds, as read back from the kernel.
type State struct {
	Networks []Network
	Ports    []PortMapping
}

type taggedRule struct {
	rule *nftables.Rule
	net  *Network
	port *PortMapping
}

// rules returns the object rules of every regular chain. A missing table is ErrNotFound.
// withRules runs fn, under the lock, with a connection and berth's rules as the kernel has them.
func (fw *Firewall) withRules(fn func(c *nftables.Conn, rs []taggedRule) error) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	c, err := fw.conn()
	if err != nil {
		return err
	}
	rs, err := fw.rules(c)
	if err != nil {
		return err
	}
	return fn(c, rs)
}

func (fw *Firewall) rules(c *nftables.Conn) ([]taggedRule, error) {
	if _, err := c.ListTableOfFamily(TableName, nftables.TableFamilyIPv4); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, errdefs.NotFound("firewall: no table %s (EnsureBase not called)", TableName)
		}
		return nil, fmt.Errorf("firewall: list table: %w", err)
	}
	var out []taggedRule
	for _, name := range regularChains {
		rs, err := c.GetRules(fw.table, &nftables.Chain{Name: name, Table: fw.table})
		if err != nil {
			return nil, fmt.Errorf("firewall: list chain %s: %w", name, err)
		}
		for _, r := range rs {
			n, p, _ := parseTag(ruleTag(r))
			out = append(out, taggedRule{rule: r, net: n, port: p})
		}
	}
	return out, nil
}

// List reads berth's networks and ports back from the kernel's rules. A missing table gives an
// empty State.
func (fw *Firewall) List() (State, error) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	c, err := fw.conn()
	if err != nil {
		return State{}, err
	}
	rs, err := fw.rules(c)
	if errors.Is(err, errdefs.ErrNotFound) {
		return State{}, nil
	}
	if err != nil {
		return State{}, err
	}
	return stateOf(rs), nil
}

func stateOf(rs []taggedRule) State {
	var s State
	for _, r := range rs {
		if r.net != nil && !slices.Contains(s.Networks, *r.net) {
			s.Networks = append(s.Networks, *r.net)
		}
		if r.port != nil && !slices.Contains(s.Ports, *r.port) {
			s.Ports = append(s.Ports, *r.port)
		}
	}
	return s
}

// add writes rules into chains in one atomic batch.
func (fw *Firewall) add(c *nftables.Conn, tag string, rules map[string][][]expr.Any) error {
	for _, name := range regularChains {
		for _, e := range rules[name] {
			c.AddRule(&nftables.Rule{Table: fw.table, Chain: &nftables.Chain{Name: name, Table: fw.table},
				Exprs: e, UserData: comment(tag)})
		}
	}
	return c.Flush()
}

// del removes the rules for which match is true, in one atomic batch. It reports whether there
// were any.
func (fw *Firewall) del(c *nftables.Conn, rs []taggedRule, match func(taggedRule) bool) (bool, error) {
	found := false
	for _, r := range rs {
		if match(r) {
			found = true
			if err := c.DelRule(r.rule); err != nil {
				return false, err
			}
		}
	}
	if !found {
		return false, nil
	}
	return true, c.Flush()
}

// AddNetwork writes the rules of a bridge network: masquerade of traffic from subnet leaving
// through other interfaces (unless internal), masquerade of host connections from 127.0.0.0/8 and
// of hairpin connections to published ports, forwarding within the bridge, no forwarding between
// berth bridges, and for an internal network no forwarding to or from any other interface.
// Adding the same network again is a no-op; a different one on the same bridge, or an overlapping
// subnet, is a conflict.
func (fw *Firewall) AddNetwork(bridge string, subnet netip.Prefix, internal bool) error {
	n := Network{Bridge: bridge, Subnet: subnet, Internal: internal}
	if err := n.validate(); err != nil {
		return err
	}
	return fw.withRules(func(c *nftables.Conn, rs []taggedRule) error {
		for _, old := range stateOf(rs).Networks {
			switch {
			case old == n:
				return nil
			case old.Bridge == n.Bridge:
				return errdefs.Conflict("firewall: bridge %s already has network %s", old.Bridge, old.Subnet)
			case old.Subnet.Overlaps(n.Subnet):
				return errdefs.Conflict("firewall: subnet %s overlaps %s on %s", n.Subnet, old.Subnet, old.Bridge)
			}
		}
		if err := fw.add(c, networkTag(n), networkRules(n)); err != nil {
			return fmt.Errorf("firewall: add network %s: %w", n.Bridge, err)
		}
		return nil
	})
}

func networkRules(n Network) map[string][][]expr.Any {
	accept, drop := verdict(expr.VerdictAccept), verdict(expr.VerdictDrop)
	r := map[string][][]expr.Any{
		chainNetworks:   {cat(iif(expr.CmpOpEq, n.Bridge), oif(expr.CmpOpEq, n.Bridge), accept)},
		chainIsolateSrc: {cat(iif(expr.CmpOpEq, n.Bridge), jump(chainIsolateDst))},
		chainIsolateDst: {cat(oif(expr.CmpOpEq, n.Bridge), drop)},
		chainMasquerade: {
			// host connections to 127.0.0.1:port DNATed to a container (needs route_localnet)
			cat(oif(expr.CmpOpEq, n.Bridge), saddrIn(loopback), masquerade()),
			// hairpin: a container reaching a published port served on its own bridge. Not
			// matched on iifname: with br_netfilter the DNATed frame is bridged, and its
			// postrouting hook has no input interface.
			cat(oif(expr.CmpOpEq, n.Bridge), saddrIn(n.Subnet), ctDNAT(), masquerade()),
		},
	}
	if n.Internal {
		r[chainNetworks] = append(r[chainNetworks],
			cat(iif(expr.CmpOpEq, n.Bridge), drop),
			cat(oif(expr.CmpOpEq, n.Bridge), drop))
	} else {
		r[chainMasquerade] = append(r[chainMasquerade],
			cat(saddrIn(n.Subnet), oif(expr.CmpOpNeq, n.Bridge), masquerade()))
	}
	return r
}

var loopback = netip.MustParsePrefix("127.0.0.0/8")

// RemoveNetwork deletes the rules of the network on bridge. ErrNotFound if there are none.
func (fw *Firewall) RemoveNetwork(bridge string) error {
	return fw.withRules(func(c *nftables.Conn, rs []taggedRule) error {
		found, err := fw.del(c, rs, func(r taggedRule) bool { return r.net != nil && r.net.Bridge == bridge })
		if err != nil {
			return fmt.Errorf("firewall: remove network %s: %w", bridge, err)
		}
		if !found {
			return errdefs.NotFound("firewall: no network on bridge %s", bridge)
		}
		return nil
	})
}

// AddPort publishes a port: DNAT of traffic to a local address (HostIP, or any when zero) and
// HostPort, arriving from outside (prerouting) or made by the host itself (output, 127.0.0.1
// included), and acceptance of the forwarded traffic. Adding the same mapping again is a no-op;
// a different one on the same protocol, host address and port is a conflict.
func (fw *Firewall) AddPort(p PortMapping) error {
	if err := p.validate(); err != nil {
		return err
	}
	p.HostIP = p.hostIP()
	return fw.withRules(func(c *nftables.Conn, rs []taggedRule) error {
		for _, old := range stateOf(rs).Ports {
			if old == p {
				return nil
			}
			if old.key() == p.key() || (old.Proto == p.Proto && old.HostPort == p.HostPort &&
				(!old.HostIP.IsValid() || !p.HostIP.IsValid())) {
				return errdefs.Conflict("firewall: %s conflicts with published %s", p, old)
			}
		}
		if err := fw.add(c, portTag(p), portRules(p)); err != nil {
			return fmt.Errorf("firewall: add port %s: %w", p, err)
		}
		return nil
	})
}

func portRules(p PortMapping) map[string][][]expr.Any {
	var match []expr.Any
	if p.HostIP.IsValid() {
		match = daddrIs(p.HostIP)
	}
	return map[string][][]expr.Any{
		chainPublish: {cat(match, dport(p.Proto, p.HostPort), dnatTo(p.ContainerIP, p.ContainerPort))},
		chainPorts:   {cat(daddrIs(p.ContainerIP), dport(p.Proto, p.ContainerPort), verdict(expr.VerdictAccept))},
	}
}

// RemovePort deletes the rules of the mapping with p's protocol, host address and host port (the
// container side of p is not compared). ErrNotFound if there are none.
func (fw *Firewall) RemovePort(p PortMapping) error {
	return fw.withRules(func(c *nftables.Conn, rs []taggedRule) error {
		found, err := fw.del(c, rs, func(r taggedRule) bool { return r.port != nil && r.port.key() == p.key() })
		if err != nil {
			return fmt.Errorf("firewall: remove port %s: %w", p, err)
		}
		if !found {
			return errdefs.NotFound("firewall: port %s not published", p.key())
		}
		return nil
	})
}
