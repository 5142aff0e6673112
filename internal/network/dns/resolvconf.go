package dns

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"
)

// Upstreams returns the nameservers of resolv.conf content, in order, each
// once, on port 53: the daemon's upstream servers. Lines other than
// "nameserver ADDR", comments and unparsable addresses are skipped; IPv6
// addresses (with their zone) are kept, as the daemon's namespace may
// reach them. All are kept, not only glibc's first three.
func Upstreams(resolvConf []byte) []netip.AddrPort {
	var out []netip.AddrPort
	for line := range bytes.Lines(resolvConf) {
		f := strings.Fields(string(line))
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(f[1])
		if err != nil {
			continue
		}
		ap := netip.AddrPortFrom(a.Unmap(), 53)
		if !slices.Contains(out, ap) {
			out = append(out, ap)
		}
	}
	return out
}
