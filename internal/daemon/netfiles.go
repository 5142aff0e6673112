package daemon

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
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
			return errdefs.Invalid("invalid extra host: %q", h)
		}
		ip = strings.TrimSuffix(strings.TrimPrefix(ip, "["), "]")
		if ip == "host-gateway" {
			return errdefs.Invalid("invalid extra host %q: host-gateway needs the bridge network", h)
		}
		if _, err := netip.ParseAddr(ip); err != nil {
			return errdefs.Invalid("invalid IP address in add-host: %q", ip)
		}
		fmt.Fprintf(&hosts, "%s\t%s\n", ip, name)
	}
	if err := os.WriteFile(c.HostsPath, hosts.Bytes(), 0o644); err != nil {
		return err
	}
	return os.WriteFile(c.ResolvConfPath, resolvConf(c), 0o644)
}

// resolvConf is the host's resolv.conf with --dns, --dns-search and --dns-option applied.
// Outside the host's network namespace, loopback nameservers cannot answer, so they are
// dropped (with Google's public servers as the fallback when none remains, as dockerd).
func resolvConf(c *Container) []byte {
	hc := c.HostConfig
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
