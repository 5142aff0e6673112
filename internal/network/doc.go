// Package network owns a container's place on a network: the subnets of
// berth's networks and the addresses given out in them (IPAM, persisted in
// the daemon's state directory), the bridges those networks live on, the
// persistent network namespaces containers run in, and the veth pairs that
// join one to the other.
//
// Every kernel operation acts in a network namespace the caller names (a
// Host opened on a namespace path, or on berthd's own namespace), so tests
// build their own "host" namespace and never touch the real one. The package
// does not write firewall rules (internal/network/firewall does), does not
// know about containers beyond an owner string, and does not decide policy:
// berthd says which network, which address and which names to use.
//
// IPv4 only for now; IPv6 is rejected as invalid input.
package network
