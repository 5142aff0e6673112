package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"berth/internal/atomicfile"
	"berth/internal/errdefs"
)

// ipamFile is the name of the IPAM store inside the state directory.
const ipamFile = "ipam.json"

// ipamVersion is the version of the store's format.
const ipamVersion = 1

// Pool is an address space subnets are carved from: Base split into
// subnets of prefix length Size.
type Pool struct {
	Base netip.Prefix
	Size int
}

// DefaultPools are Docker's default address pools: 172.17.0.0/16 through
// 172.31.0.0/16 as /16s, then 192.168.0.0/16 split in /20s.
var DefaultPools = []Pool{
	{Base: netip.MustParsePrefix("172.17.0.0/16"), Size: 16},
	{Base: netip.MustParsePrefix("172.18.0.0/15"), Size: 16},
	{Base: netip.MustParsePrefix("172.20.0.0/14"), Size: 16},
	{Base: netip.MustParsePrefix("172.24.0.0/13"), Size: 16},
	{Base: netip.MustParsePrefix("192.168.0.0/16"), Size: 20},
}

// SubnetRequest describes the address space of a network to add. A zero
// Subnet asks for one chosen from Pools (DefaultPools when empty); a zero
// Gateway means the subnet's first address; a zero IPRange means the
// whole subnet.
type SubnetRequest struct {
	Subnet  netip.Prefix
	Gateway netip.Addr
	IPRange netip.Prefix
	Pools   []Pool
	// Avoid lists prefixes a chosen subnet must not overlap, typically
	// the host's routes (Host.Routes). It does not apply to an explicit
	// Subnet.
	Avoid []netip.Prefix
}

// Subnet is a network's address space as the IPAM store holds it.
type Subnet struct {
	Name    string       `json:"name"`
	Subnet  netip.Prefix `json:"subnet"`
	Gateway netip.Addr   `json:"gateway"`
	IPRange netip.Prefix `json:"ipRange,omitzero"`
}

// GatewayCIDR is the gateway with the subnet's prefix length, the address a
// bridge carries.
func (s Subnet) GatewayCIDR() netip.Prefix {
	return netip.PrefixFrom(s.Gateway, s.Subnet.Bits())
}

type ipamNetwork struct {
	Subnet
	// Leases maps each given address to its owner (an endpoint id).
	Leases map[netip.Addr]string `json:"leases"`
	// Last is the address given out last; the next search starts after it
	// so a released address is not reused at once.
	Last netip.Addr `json:"last,omitzero"`
}

type ipamState struct {
	Version  int                     `json:"version"`
	Networks map[string]*ipamNetwork `json:"networks"`
}

// IPAM gives out subnets to networks and addresses to endpoints, and keeps
// both in a JSON file under a state directory, replaced atomically on every
// change, so that allocations survive a restart of the daemon. It is safe
// for concurrent use within one process; one process owns a state dir.
type IPAM struct {
	mu    sync.Mutex
	path  string
	state ipamState
}

// OpenIPAM opens (or starts) the IPAM store in stateDir.
func OpenIPAM(stateDir string) (*IPAM, error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("ipam: %w", err)
	}
	m := &IPAM{path: filepath.Join(stateDir, ipamFile)}
	m.state = ipamState{Version: ipamVersion, Networks: map[string]*ipamNetwork{}}
	b, err := os.ReadFile(m.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return m, nil
	case err != nil:
		return nil, fmt.Errorf("ipam: %w", err)
	}
	var st ipamState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("ipam: read %s: %w: %v", m.path, errdefs.ErrCorrupt, err)
	}
	if st.Version != ipamVersion {
		return nil, fmt.Errorf("ipam: %s has version %d, want %d: %w", m.path, st.Version, ipamVersion, errdefs.ErrCorrupt)
	}
	if st.Networks == nil {
		st.Networks = map[string]*ipamNetwork{}
	}
	for name, n := range st.Networks {
		if n.Leases == nil {
			n.Leases = map[netip.Addr]string{}
		}
		n.Name = name
	}
	m.state = st
	return m, nil
}

// commit applies fn to a copy of the state, writes the copy and only then
// makes it current: a failed write leaves memory and disk as they were.
// Changes of networks are durable (fsynced); changes of leases are only
// renamed into place: leases belong to running containers, which a crash of
// the machine ends, and the daemon releases the leases of containers it does
// not find running when it starts.
func (m *IPAM) commit(dur atomicfile.Durability, fn func(*ipamState) error) error {
	b, err := json.Marshal(&m.state)
	if err != nil {
		return err
	}
	var next ipamState
	if err := json.Unmarshal(b, &next); err != nil {
		return err
	}
	for name, n := range next.Networks {
		n.Name = name
		if n.Leases == nil {
			n.Leases = map[netip.Addr]string{}
		}
	}
	if err := fn(&next); err != nil {
		return err
	}
	out, err := json.MarshalIndent(&next, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(m.path, out, 0o600, dur); err != nil {
		return fmt.Errorf("ipam: save: %w", err)
	}
	m.state = next
	return nil
}

// AddNetwork records a network named name with the address space req asks
// for. A subnet overlapping another berth network is a conflict; so is a
// name already in use.
func (m *IPAM) AddNetwork(name string, req SubnetRequest) (Subnet, error) {
	if name == "" {
		return Subnet{}, errdefs.Invalid("ipam: empty network name")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out Subnet
	err := m.commit(atomicfile.Durable, func(st *ipamState) error {
		if _, ok := st.Networks[name]; ok {
			return errdefs.Conflict("network %s already has a subnet", name)
		}
		var used []netip.Prefix
		for _, n := range st.Networks {
			used = append(used, n.Subnet.Subnet)
		}
		sub, err := checkRequest(req)
		if err != nil {
			return err
		}
		if !sub.Subnet.IsValid() {
			pools := req.Pools
			if len(pools) == 0 {
				pools = DefaultPools
			}
			p, err := ChooseSubnet(pools, append(used, req.Avoid...))
			if err != nil {
				return err
			}
			sub.Subnet = p
		} else {
			for _, n := range st.Networks {
				if n.Subnet.Subnet.Overlaps(sub.Subnet) {
					return errdefs.Conflict("subnet %s overlaps %s of network %s", sub.Subnet, n.Subnet.Subnet, n.Name)
				}
			}
		}
		if !sub.Gateway.IsValid() {
			sub.Gateway = sub.Subnet.Addr().Next()
		}
		sub.Name = name
		if err := checkSubnet(sub); err != nil {
			return err
		}
		st.Networks[name] = &ipamNetwork{Subnet: sub, Leases: map[netip.Addr]string{}}
		out = sub
		return nil
	})
	return out, err
}

// checkRequest validates the caller's parts of a request and masks them.
func checkRequest(req SubnetRequest) (Subnet, error) {
	var s Subnet
	if req.Subnet.IsValid() {
		if !req.Subnet.Addr().Is4() {
			return s, errdefs.Invalid("subnet %s: only IPv4 is supported", req.Subnet)
		}
		if req.Subnet.Bits() > 30 {
			return s, errdefs.Invalid("subnet %s is too small", req.Subnet)
		}
		s.Subnet = req.Subnet.Masked()
	} else if req.Gateway.IsValid() || req.IPRange.IsValid() {
		return s, errdefs.Invalid("a gateway or ip-range needs an explicit subnet")
	}
	s.Gateway = req.Gateway
	if req.IPRange.IsValid() {
		s.IPRange = req.IPRange.Masked()
	}
	return s, nil
}

// checkSubnet checks that gateway and range lie inside the subnet.
func checkSubnet(s Subnet) error {
	if !s.Gateway.Is4() || !s.Subnet.Contains(s.Gateway) || s.Gateway == s.Subnet.Addr() || s.Gateway == broadcast(s.Subnet) {
		return errdefs.Invalid("gateway %s is not a host address of subnet %s", s.Gateway, s.Subnet)
	}
	if s.IPRange.IsValid() {
		if !s.IPRange.Addr().Is4() || s.IPRange.Bits() < s.Subnet.Bits() || !s.Subnet.Contains(s.IPRange.Addr()) {
			return errdefs.Invalid("ip-range %s is not inside subnet %s", s.IPRange, s.Subnet)
		}
	}
	return nil
}

// RemoveNetwork forgets a network's subnet. A network with leases is in
// use (a conflict); an unknown one is not found.
func (m *IPAM) RemoveNetwork(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.commit(atomicfile.Durable, func(st *ipamState) error {
		n, ok := st.Networks[name]
		if !ok {
			return errdefs.NotFound("network %s has no subnet", name)
		}
		if len(n.Leases) > 0 {
			return errdefs.Conflict("network %s has %d addresses in use", name, len(n.Leases))
		}
		delete(st.Networks, name)
		return nil
	})
}

// Network returns the subnet of a network.
func (m *IPAM) Network(name string) (Subnet, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.state.Networks[name]
	if !ok {
		return Subnet{}, errdefs.NotFound("network %s has no subnet", name)
	}
	return n.Subnet, nil
}

// Networks returns every network's subnet, sorted by name.
func (m *IPAM) Networks() []Subnet {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Subnet, 0, len(m.state.Networks))
	for _, n := range m.state.Networks {
		out = append(out, n.Subnet)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Leases returns a copy of a network's given addresses and their owners,
// for reconciling with the endpoints that really exist.
func (m *IPAM) Leases(name string) (map[netip.Addr]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.state.Networks[name]
	if !ok {
		return nil, errdefs.NotFound("network %s has no subnet", name)
	}
	out := make(map[netip.Addr]string, len(n.Leases))
	for a, o := range n.Leases {
		out[a] = o
	}
	return out, nil
}

// Allocate gives owner an address on network and returns it with the
// subnet's prefix length. A valid want asks for that address (--ip); it
// must lie in the subnet, not be the gateway, and be free. An owner that
// already holds an address on the network gets it back.
func (m *IPAM) Allocate(network, owner string, want netip.Addr) (netip.Prefix, error) {
	if owner == "" {
		return netip.Prefix{}, errdefs.Invalid("ipam: empty owner")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out netip.Prefix
	err := m.commit(atomicfile.Renamed, func(st *ipamState) error {
		n, ok := st.Networks[network]
		if !ok {
			return errdefs.NotFound("network %s has no subnet", network)
		}
		for a, o := range n.Leases {
			if o == owner {
				if want.IsValid() && want != a {
					return errdefs.Conflict("%s already has address %s on network %s", owner, a, network)
				}
				out = netip.PrefixFrom(a, n.Subnet.Subnet.Bits())
				return errNoChange
			}
		}
		a, err := n.pick(want)
		if err != nil {
			return err
		}
		n.Leases[a] = owner
		if !want.IsValid() {
			n.Last = a
		}
		out = netip.PrefixFrom(a, n.Subnet.Subnet.Bits())
		return nil
	})
	if errors.Is(err, errNoChange) {
		err = nil
	}
	return out, err
}

// errNoChange stops a commit without writing.
var errNoChange = errors.New("no change")

// pick chooses a free address: want if given, else the next free one
// after the last given, wrapping around the range.
func (n *ipamNetwork) pick(want netip.Addr) (netip.Addr, error) {
	sub := n.Subnet.Subnet
	usable := func(a netip.Addr) bool {
		return sub.Contains(a) && a != sub.Addr() && a != broadcast(sub) && a != n.Gateway
	}
	if want.IsValid() {
		if !usable(want) {
			return netip.Addr{}, errdefs.Invalid("address %s is not usable in subnet %s", want, sub)
		}
		if o, ok := n.Leases[want]; ok {
			return netip.Addr{}, errdefs.Conflict("address %s is already in use by %s", want, o)
		}
		return want, nil
	}
	r := sub
	if n.IPRange.IsValid() {
		r = n.IPRange
	}
	first, last := r.Addr(), broadcast(r)
	start := first
	if n.Last.IsValid() && r.Contains(n.Last) && n.Last != last {
		start = n.Last.Next()
	}
	a := start
	for {
		if _, taken := n.Leases[a]; !taken && usable(a) {
			return a, nil
		}
		if a == last {
			a = first
		} else {
			a = a.Next()
		}
		if a == start {
			return netip.Addr{}, errdefs.Conflict("no free address in %s", r)
		}
	}
}

// Release frees an address on a network. Releasing a free address, or one
// on an unknown network, does nothing.
func (m *IPAM) Release(network string, addr netip.Addr) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	err := m.commit(atomicfile.Renamed, func(st *ipamState) error {
		n, ok := st.Networks[network]
		if !ok {
			return errNoChange
		}
		if _, ok := n.Leases[addr]; !ok {
			return errNoChange
		}
		delete(n.Leases, addr)
		return nil
	})
	if errors.Is(err, errNoChange) {
		err = nil
	}
	return err
}

// ReleaseOwner frees every address owner holds, on every network, and
// returns how many it freed.
func (m *IPAM) ReleaseOwner(owner string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	count := 0
	err := m.commit(atomicfile.Renamed, func(st *ipamState) error {
		for _, n := range st.Networks {
			for a, o := range n.Leases {
				if o == owner {
					delete(n.Leases, a)
					count++
				}
			}
		}
		if count == 0 {
			return errNoChange
		}
		return nil
	})
	if errors.Is(err, errNoChange) {
		err = nil
	}
	return count, err
}

// ChooseSubnet returns the first subnet of pools, in order, that overlaps
// none of avoid (host routes, other networks). A default route (/0) in
// avoid is ignored: it overlaps everything and says nothing.
func ChooseSubnet(pools []Pool, avoid []netip.Prefix) (netip.Prefix, error) {
	for _, p := range pools {
		if !p.Base.IsValid() || !p.Base.Addr().Is4() || p.Size < p.Base.Bits() || p.Size > 30 {
			return netip.Prefix{}, errdefs.Invalid("bad address pool %s/%d", p.Base, p.Size)
		}
		base := p.Base.Masked()
		step := uint32(1) << (32 - p.Size)
		n := uint64(1) << (p.Size - base.Bits())
		cur := toU32(base.Addr())
		for i := uint64(0); i < n; i++ {
			cand := netip.PrefixFrom(fromU32(cur), p.Size)
			if !overlapsAny(cand, avoid) {
				return cand, nil
			}
			cur += step
		}
	}
	return netip.Prefix{}, errdefs.Conflict("no free subnet in the address pools")
}

func overlapsAny(p netip.Prefix, avoid []netip.Prefix) bool {
	for _, a := range avoid {
		if a.IsValid() && a.Bits() > 0 && a.Overlaps(p) {
			return true
		}
	}
	return false
}

func broadcast(p netip.Prefix) netip.Addr {
	a := toU32(p.Masked().Addr())
	return fromU32(a | (^uint32(0) >> p.Bits()))
}

func toU32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func fromU32(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
