package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigFileKeys: every field of Config with a json name is a daemon.json key (the
// CRI's and CNI's among them), and unknown keys are refused by name.
func TestConfigFileKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "daemon.json")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c, err := LoadConfigFile(write(`{"cri-socket": "/run/x/cri.sock", "cri-stream-address": "127.0.0.1:0",
		"cni-conf-dir": "/etc/cni/net.d", "cni-bin-dirs": ["/usr/lib/cni"],
		"registry-hosts": {"registry.k8s.io": ["http://127.0.0.1:5000/v2/registry.k8s.io"]}}`), false)
	if err != nil {
		t.Fatal(err)
	}
	if c.CRISocket != "/run/x/cri.sock" || c.CNIConfDir != "/etc/cni/net.d" || len(c.CNIBinDirs) != 1 || len(c.RegistryHosts["registry.k8s.io"]) != 1 {
		t.Fatalf("config: %+v", c)
	}
	if _, err := LoadConfigFile(write(`{"cni-conf": "/x", "bogus": 1}`), false); err == nil || !strings.Contains(err.Error(), "[bogus cni-conf]") {
		t.Fatalf("unknown keys: %v", err)
	}
}

// TestCheckRegistries: registry-hosts' hosts and mirror URLs are checked.
func TestCheckRegistries(t *testing.T) {
	good := map[string][]string{
		"registry.k8s.io": {"http://127.0.0.1:5000/v2/registry.k8s.io", "https://mirror.example"},
		"localhost:5000":  {"http://127.0.0.1:5001/v2"},
	}
	if err := checkRegistries(nil, nil, good); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []map[string][]string{
		{"https://registry.k8s.io": {"http://127.0.0.1:5000"}},
		{"registry.k8s.io/x": {"http://127.0.0.1:5000"}},
		{"": {"http://127.0.0.1:5000"}},
		{"registry.k8s.io": {"ftp://127.0.0.1:5000"}},
		{"registry.k8s.io": {"http://127.0.0.1:5000/mirror"}},
		{"registry.k8s.io": {"127.0.0.1:5000"}},
	} {
		if err := checkRegistries(nil, nil, bad); err == nil || !strings.Contains(err.Error(), "registry-hosts") {
			t.Errorf("%v: %v", bad, err)
		}
	}
}
