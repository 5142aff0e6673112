package cri

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"berth/internal/daemon"
)

// cniIfName is the pod's interface, as kubelet deployments name it.
const cniIfName = "eth0"

// podNetwork attaches pods to their CNI network (daemon.json's cni-conf-dir and
// cni-bin-dirs) through libcni. What an ADD made is kept in libcni's cache under the data
// root (the result and the config it was made with), so a DEL after a config change, a
// berthd restart or the holder's death undoes exactly that; a cache entry is present
// while the pod's network is set up.
type podNetwork struct {
	confDir string
	cni     *libcni.CNIConfig
	// attached holds a file per sandbox from before its ADD until its DEL succeeded: a
	// pod whose ADD was interrupted (a crash before libcni cached it, a stop racing it)
	// is still torn down, and one torn down is not again.
	attached string
}

func newPodNetwork(cfg daemon.Config) *podNetwork {
	return &podNetwork{
		confDir:  cfg.CNIConfDir,
		cni:      libcni.NewCNIConfigWithCacheDir(cfg.CNIBinDirs, filepath.Join(cfg.DataRoot, "cni"), nil),
		attached: filepath.Join(cfg.DataRoot, "cni", "pods"),
	}
}

// errNoCNIConfig: the conf dir has no network configuration.
var errNoCNIConfig = errors.New("no network config")

// config loads the pods' network: the first configuration file of the conf dir in
// lexical order (.conflist, .conf or .json), as containerd chooses it.
func (n *podNetwork) config() (*libcni.NetworkConfigList, error) {
	files, err := libcni.ConfFiles(n.confDir, []string{".conflist", ".conf", ".json"})
	if err != nil {
		return nil, fmt.Errorf("cni config in %s: %w", n.confDir, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%w in %s", errNoCNIConfig, n.confDir)
	}
	slices.Sort(files)
	f := files[0]
	var list *libcni.NetworkConfigList
	if strings.HasSuffix(f, ".conflist") {
		list, err = libcni.NetworkConfFromFile(f)
	} else {
		list, err = singlePluginList(f)
	}
	if err != nil {
		return nil, fmt.Errorf("cni config %s: %w", f, err)
	}
	return list, nil
}

// singlePluginList reads a .conf (or .json) file, one plugin's configuration, as the
// list of that one plugin (containerd still reads them; libcni's own conversion is
// deprecated).
func singlePluginList(f string) (*libcni.NetworkConfigList, error) {
	b, err := os.ReadFile(f)
	if err != nil {
		return nil, err
	}
	var conf struct {
		Name       string `json:"name"`
		CNIVersion string `json:"cniVersion"`
	}
	if err := json.Unmarshal(b, &conf); err != nil {
		return nil, err
	}
	wrapped, err := json.Marshal(map[string]any{"name": conf.Name, "cniVersion": conf.CNIVersion, "plugins": []json.RawMessage{b}})
	if err != nil {
		return nil, err
	}
	return libcni.NetworkConfFromBytes(wrapped)
}

// portMapping is an entry of the portMappings capability (the portmap plugin's).
type portMapping struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// runtimeConf is what CNI is told of a pod: its sandbox ID, network namespace (netns ""
// when it is gone) and kubelet's pod arguments, and its port mappings.
func runtimeConf(sandboxID, netns string, m *runtimeapi.PodSandboxMetadata, ports []*runtimeapi.PortMapping) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{ContainerID: sandboxID, NetNS: netns, IfName: cniIfName}
	if m != nil {
		rt.Args = [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", m.Namespace},
			{"K8S_POD_NAME", m.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", sandboxID},
			{"K8S_POD_UID", m.Uid},
		}
	}
	var pm []portMapping
	for _, p := range ports {
		// As containerd: only mappings with a host port go to the portmap plugin.
		if p.HostPort <= 0 {
			continue
		}
		pm = append(pm, portMapping{HostPort: p.HostPort, ContainerPort: p.ContainerPort,
			Protocol: strings.ToLower(p.Protocol.String()), HostIP: p.HostIp})
	}
	if len(pm) > 0 {
		rt.CapabilityArgs = map[string]any{"portMappings": pm}
	}
	return rt
}

// setUp attaches the pod's namespace to the network (CNI ADD). On failure whatever the
// plugins made is deleted again.
func (n *podNetwork) setUp(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	if err := os.MkdirAll(n.attached, 0o700); err != nil {
		return fmt.Errorf("cni network %s: %w", list.Name, err)
	}
	if err := os.WriteFile(filepath.Join(n.attached, rt.ContainerID), []byte(list.Name), 0o600); err != nil {
		return fmt.Errorf("cni network %s: %w", list.Name, err)
	}
	if _, err := n.cni.AddNetworkList(ctx, list, rt); err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if derr := n.cni.DelNetworkList(dctx, list, rt); derr != nil {
			err = fmt.Errorf("%w (and undoing it: %v)", err, derr)
		} else {
			os.Remove(filepath.Join(n.attached, rt.ContainerID))
		}
		return fmt.Errorf("cni network %s: %w", list.Name, err)
	}
	return nil
}

// tearDown detaches a pod from the network it was attached to (CNI DEL with the cached
// config and arguments of its ADD, or, when the ADD never got as far as libcni's cache,
// the current config if it is still that network). A pod not attached (never was, or
// torn down already) is no error, and runs no plugin. netns "" when the namespace is
// gone: the plugins then release what they keep on the host (addresses, port mappings).
func (n *podNetwork) tearDown(ctx context.Context, network, sandboxID, netns string) error {
	if network == "" {
		return nil
	}
	mark := filepath.Join(n.attached, sandboxID)
	if _, err := os.Stat(mark); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	rt := &libcni.RuntimeConf{ContainerID: sandboxID, NetNS: netns, IfName: cniIfName}
	b, cached, err := n.cni.GetNetworkListCachedConfig(&libcni.NetworkConfigList{Name: network}, rt)
	if err != nil {
		return fmt.Errorf("cni network %s of %s: %w", network, sandboxID, err)
	}
	var list *libcni.NetworkConfigList
	if b != nil {
		if list, err = libcni.NetworkConfFromBytes(b); err != nil {
			return fmt.Errorf("cni network %s of %s: cached config: %w", network, sandboxID, err)
		}
		rt = cached
	} else if list, err = n.config(); err != nil || list.Name != network {
		// Nothing cached and the network's config is gone: nothing left to run.
		os.Remove(mark)
		return nil
	}
	if err := n.cni.DelNetworkList(ctx, list, rt); err != nil {
		return fmt.Errorf("cni network %s of %s: %w", network, sandboxID, err)
	}
	os.Remove(mark)
	return nil
}

// addresses are the pod's IPs from its ADD's cached result, IPv4 first; none when it is
// not attached.
func (n *podNetwork) addresses(network, sandboxID string) []netip.Addr {
	if network == "" {
		return nil
	}
	res, err := n.cni.GetNetworkListCachedResult(&libcni.NetworkConfigList{Name: network, CNIVersion: types100.ImplementedSpecVersion},
		&libcni.RuntimeConf{ContainerID: sandboxID, IfName: cniIfName})
	if err != nil || res == nil {
		return nil
	}
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, ip := range r.IPs {
		if a, ok := netip.AddrFromSlice(ip.Address.IP); ok {
			out = append(out, a.Unmap())
		}
	}
	slices.SortStableFunc(out, func(a, b netip.Addr) int {
		switch {
		case a.Is4() && !b.Is4():
			return -1
		case !a.Is4() && b.Is4():
			return 1
		}
		return 0
	})
	return out
}
