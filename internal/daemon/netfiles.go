package daemon

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"berth/internal/errdefs"
)

// writeNetworkFiles writes the container's /etc/hostname, /etc/hosts and /etc/resolv.conf
// (bind-mounted by the spec), as dockerd does. With --network host the host's own files are
// copied; with container:<id> the peer's are shared at start.
func (d *Daemon) writeNetworkFiles(c *Container) error {
	dir := c.dir(d)
	c.HostnamePath = filepath.Join(dir, "hostname")
	c.HostsPath = filepath.Join(dir, "hosts")
	c.ResolvConfPath = filepath.Join(dir, "resolv.conf")
	hc := c.HostConfig
	hostname := c.Config.Hostname
	if hc.NetworkMode == "host" {
		h, err := os.Hostname()
		if err != nil {
			return err
		}
		if hostname == "" {
			hostname = h
		}
	}
	if err := os.WriteFile(c.HostnamePath, []byte(hostname+"\n"), 0o644); err != nil {
		return err
	}
	hosts, err := d.hostsContent(c)
	if err != nil {
		return err
	}
	if err := os.WriteFile(c.HostsPath, hosts, 0o644); err != nil {
		return err
	}
	return os.WriteFile(c.ResolvConfPath, d.resolvConf(c), 0o644)
}

// hostsContent is the container's /etc/hosts: the host's own with --network host, else
// localhost, the container's addresses with its hostname, and --add-host entries
// (host-gateway is the default bridge's gateway). Called with c.mu held (or before the
// record is shared).
func (d *Daemon) hostsContent(c *Container) ([]byte, error) {
	hc := c.HostConfig
	var hosts bytes.Buffer
	if hc.NetworkMode == "host" {
		b, err := os.ReadFile("/etc/hosts")
		if err == nil {
			hosts.Write(b)
			if len(b) > 0 && b[len(b)-1] != '\n' {
				hosts.WriteByte('\n')
			}
		} else {
			hosts.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
		}
	} else {
		hosts.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
			"fe00::\tip6-localnet\nff00::\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
	}
	for _, h := range hc.ExtraHosts {
		name, ip, ok := strings.Cut(h, ":")
		if !ok {
			name, ip, ok = strings.Cut(h, "=")
		}
		if !ok || name == "" {
			return nil, errdefs.Invalid("invalid extra host: %q", h)
		}
		ip = strings.TrimSuffix(strings.TrimPrefix(ip, "["), "]")
		if ip == "host-gateway" {
			var br *Network
			if d.nets != nil {
				br = d.defaultBridge()
			}
			if br == nil {
				return nil, errdefs.Invalid("invalid extra host %q: host-gateway needs the default bridge network", h)
			}
			ip = br.Gateway.String()
		}
		if _, err := netip.ParseAddr(ip); err != nil {
			return nil, errdefs.Invalid("invalid IP address in add-host: %q", ip)
		}
		fmt.Fprintf(&hosts, "%s\t%s\n", ip, name)
	}
	if bridged(hc.NetworkMode) {
		names := c.Config.Hostname
		if c.Config.Domainname != "" {
			names = c.Config.Hostname + "." + c.Config.Domainname + " " + c.Config.Hostname
		}
		for _, n := range sortedEndpoints(c) {
			if ep := c.Networks[n]; ep.Address.IsValid() {
				fmt.Fprintf(&hosts, "%s\t%s\n", ep.Address.Addr(), names)
			}
		}
	}
	return hosts.Bytes(), nil
}

// resolvConf is the host's resolv.conf with --dns, --dns-search and --dns-option (or
// daemon.json's dns, dns-search and dns-opts) applied. Outside the host's network
// namespace, loopback nameservers cannot answer, so they are dropped (with Google's public
// servers as the fallback when none remains, as dockerd). On user-defined networks the
// nameserver is the embedded DNS server, 127.0.0.11, which forwards what it does not know
// to the host's resolvers.
func (d *Daemon) resolvConf(c *Container) []byte {
	hc := *c.HostConfig
	if len(hc.DNS) == 0 {
		for _, s := range d.cfg.DNS {
			if a, err := netip.ParseAddr(s); err == nil {
				hc.DNS = append(hc.DNS, a)
			}
		}
	}
	if len(hc.DNSSearch) == 0 {
		hc.DNSSearch = d.cfg.DNSSearch
	}
	if len(hc.DNSOptions) == 0 {
		hc.DNSOptions = d.cfg.DNSOpts
	}
	embedded := false
	if bridged(hc.NetworkMode) && d.nets != nil {
		user := d.nets.userDefinedIDs()
		for _, ep := range c.Networks {
			if user[ep.NetworkID] {
				embedded = true
			}
		}
	}
	host, _ := os.ReadFile("/etc/resolv.conf")
	var ns, search, opts []string
	sc := bufio.NewScanner(bytes.NewReader(host))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[0] {
		case "nameserver":
			ns = append(ns, f[1])
		case "search", "domain":
			search = f[1:]
		case "options":
			opts = append(opts, f[1:]...)
		}
	}
	if hc.NetworkMode != "host" {
		var kept []string
		for _, s := range ns {
			if a, err := netip.ParseAddr(s); err == nil && !a.IsLoopback() {
				kept = append(kept, s)
			}
		}
		ns = kept
	}
	if len(hc.DNS) > 0 {
		ns = nil
		for _, a := range hc.DNS {
			ns = append(ns, a.String())
		}
	}
	if len(ns) == 0 && hc.NetworkMode != "host" {
		ns = []string{"8.8.8.8", "8.8.4.4"}
	}
	if embedded {
		ns = []string{"127.0.0.11"}
		if !slices.ContainsFunc(opts, func(o string) bool { return strings.HasPrefix(o, "ndots:") }) {
			opts = append(opts, "ndots:0")
		}
	}
	if len(hc.DNSSearch) > 0 {
		search = hc.DNSSearch
		if len(search) == 1 && search[0] == "." {
			search = nil
		}
	}
	if len(hc.DNSOptions) > 0 {
		opts = hc.DNSOptions
	}
	var b bytes.Buffer
	for _, s := range ns {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	if len(opts) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(opts, " "))
	}
	return b.Bytes()
}
