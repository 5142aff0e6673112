package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/distribution/reference"
	units "github.com/docker/go-units"

	"berth/internal/registry"
)

// Config is berthd's configuration: its flags, and /etc/berth/daemon.json with dockerd's keys.
type Config struct {
	// Hosts are the addresses the API listens on ("unix:///run/berth/berth.sock").
	Hosts []string `json:"hosts,omitempty"`
	// DataRoot holds images, container records, logs and volumes.
	DataRoot string `json:"data-root,omitempty"`
	// ExecRoot holds runtime state, shims' directories and bundles (a tmpfs is right).
	ExecRoot string `json:"exec-root,omitempty"`
	Debug    bool   `json:"debug,omitempty"`
	// LogDriver is the default log driver: json-file or none.
	LogDriver string            `json:"log-driver,omitempty"`
	LogOpts   map[string]string `json:"log-opts,omitempty"`
	// CgroupParent is the default cgroup parent of containers; a relative path nests under
	// berthd's own cgroup. Default "berth".
	CgroupParent string `json:"cgroup-parent,omitempty"`
	// DefaultShmSize is /dev/shm's size when a container does not say ("64M").
	DefaultShmSize string `json:"default-shm-size,omitempty"`
	// ShutdownTimeout is not used to stop containers (they outlive berthd); it bounds how long
	// berthd waits for API requests in flight when it is told to exit, in seconds.
	ShutdownTimeout int `json:"shutdown-timeout,omitempty"`

	// Bridge names the default bridge's interface ("berth0"); "none" disables the default
	// bridge network (containers then default to --network none).
	Bridge string `json:"bridge,omitempty"`
	// BIP is the default bridge's address with its prefix length ("172.17.0.1/16"); when
	// empty a subnet is chosen that overlaps no route of the host.
	BIP string `json:"bip,omitempty"`
	// MTU of the default bridge and its veths; 0 keeps the kernel's (1500).
	MTU int `json:"mtu,omitempty"`
	// DefaultAddressPools are where subnets of new networks come from.
	DefaultAddressPools []AddressPool `json:"default-address-pools,omitempty"`
	// DNS, DNSSearch and DNSOpts are the default --dns, --dns-search and --dns-option.
	DNS       []string `json:"dns,omitempty"`
	DNSSearch []string `json:"dns-search,omitempty"`
	DNSOpts   []string `json:"dns-opts,omitempty"`
	// IP is the default host address of published ports (0.0.0.0).
	IP string `json:"ip,omitempty"`

	// InsecureRegistries are registries pulled from over plain HTTP (or HTTPS without
	// certificate verification when they offer it): "host:port", "host" or a CIDR.
	// localhost and 127.0.0.0/8 are always insecure, as with dockerd.
	InsecureRegistries []string `json:"insecure-registries,omitempty"`
	// RegistryMirrors are pull-through mirrors of Docker Hub ("https://mirror.example",
	// "http://127.0.0.1:5001"), tried in order before Docker Hub itself, as dockerd's.
	RegistryMirrors []string `json:"registry-mirrors,omitempty"`
	// RegistryHosts are mirrors of any registry, as containerd's hosts.toml: per registry
	// host ("registry.k8s.io", "docker.io") the mirror URLs tried in order before the
	// registry itself, for pulls. A URL path below /v2/ is a prefix of the mirror's
	// repositories: {"registry.k8s.io": ["http://127.0.0.1:5000/v2/registry.k8s.io"]}
	// pulls registry.k8s.io/pause from the mirror's registry.k8s.io/pause.
	RegistryHosts map[string][]string `json:"registry-hosts,omitempty"`

	// CRISocket is where the CRI endpoint (RuntimeService and ImageService for kubelet)
	// listens: a unix socket path, by default cri.sock in the exec root
	// (/run/berth/cri.sock); "none" turns it off.
	CRISocket string `json:"cri-socket,omitempty"`
	// CRIStreamAddress is where the CRI's streaming server (exec, attach and port forward
	// for kubelet) listens: host:port, by default 127.0.0.1:0 (a free port on loopback).
	CRIStreamAddress string `json:"cri-stream-address,omitempty"`
	// CNIConfDir holds the CNI network configurations of CRI pods (/etc/cni/net.d): the
	// first file in lexical order (.conflist, .conf or .json) is the pods' network, as
	// with containerd. Without one, pods have loopback only and the CRI reports the
	// network not ready.
	CNIConfDir string `json:"cni-conf-dir,omitempty"`
	// CNIBinDirs are searched for CNI plugins, in order (/opt/cni/bin, then
	// /usr/lib/cni where Debian's containernetworking-plugins installs them).
	CNIBinDirs []string `json:"cni-bin-dirs,omitempty"`

	// Binaries, found next to berthd's own executable unless set (not in daemon.json).
	ShimBinary    string `json:"-"`
	RuntimeBinary string `json:"-"`
	InitBinary    string `json:"-"`
}

// AddressPool is one of daemon.json's default-address-pools: Base split into /Size subnets.
type AddressPool struct {
	Base netip.Prefix `json:"base"`
	Size int          `json:"size"`
}

// Defaults of dockerd's flags, for berth.
const (
	DefaultDataRoot   = "/var/lib/berth"
	DefaultExecRoot   = "/run/berth"
	DefaultConfigFile = "/etc/berth/daemon.json"
)

// DefaultHost is the API's address when none is given.
func DefaultHost(execRoot string) string {
	return "unix://" + filepath.Join(execRoot, "berth.sock")
}

// LoadConfigFile reads a daemon.json. A missing file is not an error when optional (the
// default path); unknown keys are refused as dockerd refuses them.
func LoadConfigFile(path string, optional bool) (*Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && optional {
		return &c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("unable to configure the daemon: %w", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return &c, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("unable to configure the daemon with file %s: %w", path, err)
	}
	known := configKeys()
	var unknown []string
	for k := range raw {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("unable to configure the daemon with file %s: the following directives don't match any configuration option: %v", path, unknown)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("unable to configure the daemon with file %s: %w", path, err)
	}
	return &c, nil
}

// configKeys are daemon.json's keys: the json names of Config's fields.
func configKeys() map[string]bool {
	known := map[string]bool{}
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			known[name] = true
		}
	}
	return known
}

// fill sets defaults and checks values.
func (c *Config) fill() error {
	if c.DataRoot == "" {
		c.DataRoot = DefaultDataRoot
	}
	if c.ExecRoot == "" {
		c.ExecRoot = DefaultExecRoot
	}
	var err error
	if c.DataRoot, err = filepath.Abs(c.DataRoot); err != nil {
		return err
	}
	if c.ExecRoot, err = filepath.Abs(c.ExecRoot); err != nil {
		return err
	}
	switch p := strings.TrimPrefix(c.CRISocket, "unix://"); {
	case p == "":
		c.CRISocket = filepath.Join(c.ExecRoot, "cri.sock")
	case p == "none":
		c.CRISocket = ""
	case !filepath.IsAbs(p):
		return fmt.Errorf("cri-socket %q: want an absolute path of a unix socket, or none", c.CRISocket)
	default:
		c.CRISocket = p
	}
	if c.CRIStreamAddress == "" {
		c.CRIStreamAddress = "127.0.0.1:0"
	}
	if _, _, err := net.SplitHostPort(c.CRIStreamAddress); err != nil {
		return fmt.Errorf("cri-stream-address %q: %w", c.CRIStreamAddress, err)
	}
	if c.LogDriver == "" {
		c.LogDriver = "json-file"
	}
	if err := checkLogConfig(c.LogDriver, c.LogOpts); err != nil {
		return err
	}
	if c.CgroupParent == "" {
		c.CgroupParent = "berth"
	}
	if c.DefaultShmSize != "" {
		if _, err := units.RAMInBytes(c.DefaultShmSize); err != nil {
			return fmt.Errorf("default-shm-size: %w", err)
		}
	}
	if err := checkRegistries(c.InsecureRegistries, c.RegistryMirrors, c.RegistryHosts); err != nil {
		return err
	}
	if c.CNIConfDir == "" {
		c.CNIConfDir = "/etc/cni/net.d"
	}
	if len(c.CNIBinDirs) == 0 {
		c.CNIBinDirs = []string{"/opt/cni/bin", "/usr/lib/cni"}
	}
	for _, d := range append([]string{c.CNIConfDir}, c.CNIBinDirs...) {
		if !filepath.IsAbs(d) {
			return fmt.Errorf("cni-conf-dir, cni-bin-dirs: %q is not an absolute path", d)
		}
	}
	if c.BIP != "" {
		if p, err := netip.ParsePrefix(c.BIP); err != nil || !p.Addr().Is4() {
			return fmt.Errorf("bip %q: want an IPv4 address with its prefix length, such as 172.17.0.1/16", c.BIP)
		}
	}
	if c.MTU != 0 && (c.MTU < 68 || c.MTU > 65535) {
		return fmt.Errorf("mtu %d: out of range", c.MTU)
	}
	for _, p := range c.DefaultAddressPools {
		if !p.Base.IsValid() || !p.Base.Addr().Is4() || p.Size < p.Base.Bits() || p.Size > 30 {
			return fmt.Errorf("default-address-pools: invalid pool %s/%d", p.Base, p.Size)
		}
	}
	for _, a := range c.DNS {
		if _, err := netip.ParseAddr(a); err != nil {
			return fmt.Errorf("dns: %q is not an IP address", a)
		}
	}
	if c.IP != "" {
		if a, err := netip.ParseAddr(c.IP); err != nil || !a.Is4() {
			return fmt.Errorf("ip: %q is not an IPv4 address", c.IP)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	dir := filepath.Dir(self)
	for _, b := range []struct {
		p    *string
		name string
	}{{&c.ShimBinary, "berth-shim"}, {&c.RuntimeBinary, "berth-runtime"}, {&c.InitBinary, "berth-init"}} {
		if *b.p == "" {
			*b.p = filepath.Join(dir, b.name)
		}
		if _, err := os.Stat(*b.p); err != nil {
			return fmt.Errorf("%s: %w (it ships next to berthd)", b.name, err)
		}
	}
	return nil
}

// checkLogConfig checks a log driver and its options as dockerd does at create.
func checkLogConfig(driver string, opts map[string]string) error {
	switch driver {
	case "json-file", "local":
	case "none":
		if len(opts) > 0 {
			return fmt.Errorf("the none log driver takes no options")
		}
		return nil
	default:
		return fmt.Errorf("logger: no log driver named '%s' is registered", driver)
	}
	for k, v := range opts {
		switch k {
		case "max-size":
			if _, err := units.RAMInBytes(v); err != nil {
				return fmt.Errorf("invalid max-size %q: %w", v, err)
			}
		case "max-file":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return fmt.Errorf("max-file %q: must be a number of at least 1", v)
			}
		case "compress":
			if v != "false" {
				return fmt.Errorf("log opt compress: berth does not compress rotated logs")
			}
		default:
			return fmt.Errorf("unknown log opt '%s' for %s log driver", k, driver)
		}
	}
	return nil
}

// registryHost is a registry's host[:port].
var registryHost = regexp.MustCompile(`^(?:` + reference.DomainRegexp.String() + `)$`)

// checkRegistries checks insecure-registries ("host[:port]" or a CIDR, no scheme or
// path) and registry-mirrors (http or https URLs), as dockerd does, and registry-hosts
// (registry hosts and their mirrors' URLs).
func checkRegistries(insecure, mirrors []string, hosts map[string][]string) error {
	for _, r := range insecure {
		if strings.Contains(r, "://") {
			return fmt.Errorf("insecure-registries: %q: give the registry as host[:port] or a CIDR, without a scheme", r)
		}
		if _, _, err := net.ParseCIDR(r); err == nil {
			continue
		}
		if r == "" || strings.ContainsAny(r, "/ ") {
			return fmt.Errorf("insecure-registries: %q is not a host[:port] or a CIDR", r)
		}
	}
	for _, m := range mirrors {
		u, err := url.Parse(m)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("registry-mirrors: %q: want an http or https URL", m)
		}
		if p := strings.Trim(u.Path, "/"); p != "" && p != "v2" {
			return fmt.Errorf("registry-mirrors: %q: a mirror is served at its root, without a path", m)
		}
	}
	for host, ms := range hosts {
		if host == "" || strings.Contains(host, "://") || strings.ContainsAny(host, "/ ") || !registryHost.MatchString(host) {
			return fmt.Errorf("registry-hosts: %q: give the registry as host[:port], without a scheme", host)
		}
		if host != strings.ToLower(host) {
			return fmt.Errorf("registry-hosts: %q: registry hosts are lower case in image names", host)
		}
		if host == "index.docker.io" || host == "registry-1.docker.io" {
			return fmt.Errorf("registry-hosts: %q: Docker Hub's images are named under docker.io; use that key", host)
		}
		for _, m := range ms {
			if _, _, err := registry.ParseMirror(m); err != nil {
				return fmt.Errorf("registry-hosts: %s: %w", host, err)
			}
		}
	}
	return nil
}
