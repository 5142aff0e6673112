package cri

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestPodNetworkConfig: the first file of the conf dir in lexical order is the network;
// a single-plugin .conf is read as a list of one; none, or a broken one, is an error.
func TestPodNetworkConfig(t *testing.T) {
	dir := t.TempDir()
	n := &podNetwork{confDir: dir}
	if _, err := n.config(); !errors.Is(err, errNoCNIConfig) {
		t.Fatalf("empty dir: %v", err)
	}
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("20-b.conflist", `{"cniVersion": "1.0.0", "name": "b", "plugins": [{"type": "bridge"}, {"type": "portmap"}]}`)
	write("10-a.conf", `{"cniVersion": "0.4.0", "name": "a", "type": "bridge", "bridge": "cni0"}`)
	write("README", `not a config`)
	list, err := n.config()
	if err != nil || list.Name != "a" || list.CNIVersion != "0.4.0" || len(list.Plugins) != 1 || list.Plugins[0].Network.Type != "bridge" ||
		!strings.Contains(string(list.Plugins[0].Bytes), `"cni0"`) {
		t.Fatalf("config: %+v %v", list, err)
	}
	os.Remove(filepath.Join(dir, "10-a.conf"))
	if list, err = n.config(); err != nil || list.Name != "b" || len(list.Plugins) != 2 {
		t.Fatalf("conflist: %+v %v", list, err)
	}
	write("00-broken.conflist", `{"name": `)
	if _, err := n.config(); err == nil || !strings.Contains(err.Error(), "00-broken.conflist") {
		t.Fatalf("broken config: %v", err)
	}
}

// TestRuntimeConf: kubelet's pod arguments, and only port mappings with a host port.
func TestRuntimeConf(t *testing.T) {
	rt := runtimeConf("sb1", "/run/netns/x", &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u"},
		[]*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_UDP, ContainerPort: 53, HostPort: 5353, HostIp: "127.0.0.1"}, {ContainerPort: 80}})
	if rt.ContainerID != "sb1" || rt.IfName != "eth0" || rt.NetNS != "/run/netns/x" || len(rt.Args) != 5 || rt.Args[1] != [2]string{"K8S_POD_NAMESPACE", "ns"} {
		t.Fatalf("runtime conf: %+v", rt)
	}
	pm, _ := rt.CapabilityArgs["portMappings"].([]portMapping)
	if len(pm) != 1 || pm[0] != (portMapping{HostPort: 5353, ContainerPort: 53, Protocol: "udp", HostIP: "127.0.0.1"}) {
		t.Fatalf("port mappings: %+v", rt.CapabilityArgs)
	}
}
