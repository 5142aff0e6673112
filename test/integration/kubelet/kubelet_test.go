// Package kubelet_test runs a real kubelet (k8s.io/kubernetes v1.36.3, built from the Go
// module proxy by hack/build-kubelet.sh) standalone on berthd's CRI endpoint: the CRI
// issue's third acceptance point.
//
// TestStaticPod puts a two-container static pod (a ticker and busybox httpd sharing a
// memory emptyDir) in kubelet's manifest folder and sees it Running and ready on kubelet's
// /pods endpoint with the image it names and a CNI address (bridge + host-local + portmap)
// that the sandbox's status also gives; httpd answers kubelet's readiness probe and the test
// at that address; commands run in both containers through kubelet's /run (ExecSync), the
// emptyDir read-only in one; each container's logs are readable through kubelet's
// /containerLogs and are in the CRI format in kubelet's pod log files. Then it removes the
// manifest and sees every container and sandbox, the address, the veths, the mounts (the
// containers' and the emptyDir's), the cgroups, the pod's directories, log files and
// symlinks gone, and no CRI call failing in kubelet's log.
//
// Opt-in (`make kubelet-test`): the test runs when BERTH_KUBELET names a kubelet binary,
// or when BERTH_KUBELET_TEST=1 (it then builds one with hack/build-kubelet.sh, about 4
// minutes cold). It needs root. BERTH_KUBELET_LOG=path keeps a copy of kubelet's log.
//
// What kubelet would change on the machine is kept in the test: it runs in berthd's network
// namespace (its ports, iptables chains, the CNI bridge and the pods' veths live and die
// there); its root dir, certificates, pod logs, volume plugin dir, CNI configuration and
// address store are under the test's temporary directory; its pods' cgroups are under
// berthd's cgroup-parent (kubelet gives none with cgroupsPerQOS off; berthtest nests
// berthd's under the test's own cgroups); and it has a mount namespace of its own in which
// the six kernel settings it wants (vm.overcommit_memory=1, kernel.panic=10,
// kernel.panic_on_oops=1, ...) read as it wants them, so that it never writes the host's
// (protectKernelDefaults makes it fail rather than write). Its root dir is a shared bind
// mount made before it starts, so what it mounts there (the emptyDir's tmpfs) reaches
// berthd's mount namespace, as on a node. The one path it insists on outside is
// /var/log/containers (its symlinks to the pods' logs): made if missing, removed again
// when empty.
package kubelet_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"berth/test/berthtest"
	"berth/test/bundle"
	"berth/test/engine"
)

const (
	// image is the pods' image: busybox, imported into berthd under a Kubernetes name (there
	// is no registry to pull from; the containers say imagePullPolicy: Never).
	image = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
	// podSubnet is the CNI network's range.
	podSubnet = "10.88.0.0/16"
	// cniBinDir is where Debian's containernetworking-plugins installs the plugins.
	cniBinDir = "/usr/lib/cni"
	// nodeName is kubelet's node name (--hostname-override); static pods are named
	// <name>-<node>.
	nodeName = "berth-node"
	// containerLogsDir is kubelet's fixed directory of symlinks to container logs.
	containerLogsDir = "/var/log/containers"
)

// kernelSettings are the sysctls kubelet's container manager wants (setupKernelTunables),
// with the values it wants: shown to kubelet in its own mount namespace, never written.
var kernelSettings = map[string]string{
	"vm/overcommit_memory":      "1",
	"vm/panic_on_oom":           "0",
	"kernel/panic":              "10",
	"kernel/panic_on_oops":      "1",
	"kernel/keys/root_maxkeys":  "1000000",
	"kernel/keys/root_maxbytes": "25000000",
}

// kubeletBinary is $BERTH_KUBELET, or the one hack/build-kubelet.sh builds when
// BERTH_KUBELET_TEST=1; otherwise the test skips.
func kubeletBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("BERTH_KUBELET"); p != "" {
		if !filepath.IsAbs(p) {
			p = filepath.Join(berthtest.Root(), p)
		}
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("BERTH_KUBELET: %v", err)
		}
		return p
	}
	if os.Getenv("BERTH_KUBELET_TEST") != "1" {
		t.Skip("opt-in: BERTH_KUBELET=path/to/kubelet or BERTH_KUBELET_TEST=1 (make kubelet-test)")
	}
	cmd := exec.Command(filepath.Join(berthtest.Root(), "hack", "build-kubelet.sh"))
	cmd.Dir = berthtest.Root()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/build-kubelet.sh: %v\n%s", err, out)
	}
	return filepath.Join(berthtest.Root(), "_output", "kubelet", "bin", "kubelet")
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// podList is what kubelet's /pods endpoint answers (a v1.PodList), as far as the test reads it.
type podList struct {
	Items []json.RawMessage `json:"items"`
}

type pod struct {
	// raw is the pod as kubelet gave it.
	raw      json.RawMessage
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
		UID       string `json:"uid"`
	} `json:"metadata"`
	Status struct {
		Phase      string `json:"phase"`
		Reason     string `json:"reason"`
		Message    string `json:"message"`
		PodIP      string `json:"podIP"`
		Conditions []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
		} `json:"conditions"`
		ContainerStatuses []containerStatus `json:"containerStatuses"`
	} `json:"status"`
}

type containerStatus struct {
	Name         string `json:"name"`
	Ready        bool   `json:"ready"`
	RestartCount int    `json:"restartCount"`
	ContainerID  string `json:"containerID"`
	Image        string `json:"image"`
	ImageID      string `json:"imageID"`
	State        struct {
		Running *struct {
			StartedAt string `json:"startedAt"`
		} `json:"running"`
		Waiting *struct {
			Reason  string `json:"reason"`
			Message string `json:"message"`
		} `json:"waiting"`
		Terminated *struct {
			ExitCode int    `json:"exitCode"`
			Reason   string `json:"reason"`
			Message  string `json:"message"`
		} `json:"terminated"`
	} `json:"state"`
}

func (p *pod) running() bool {
	if p.Status.Phase != "Running" || len(p.Status.ContainerStatuses) != 2 {
		return false
	}
	for _, c := range p.Status.ContainerStatuses {
		if !c.Ready || c.State.Running == nil {
			return false
		}
	}
	return true
}

// dialIn dials from the network namespace at nsPath (berthd's, where kubelet listens on
// 127.0.0.1): the socket is made on a thread switched into it, and stays there.
func dialIn(nsPath string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			runtime.LockOSThread()
			orig, err := netns.Get()
			if err != nil {
				runtime.UnlockOSThread()
				ch <- result{nil, err}
				return
			}
			defer orig.Close()
			target, err := netns.GetFromPath(nsPath)
			if err != nil {
				runtime.UnlockOSThread()
				ch <- result{nil, err}
				return
			}
			defer target.Close()
			if err := netns.Set(target); err != nil {
				runtime.UnlockOSThread()
				ch <- result{nil, err}
				return
			}
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			// A thread that cannot go back stays locked and dies with the goroutine.
			if netns.Set(orig) == nil {
				runtime.UnlockOSThread()
			}
			ch <- result{c, err}
		}()
		r := <-ch
		return r.c, r.err
	}
}

// kubeletAPI is kubelet's server (https://127.0.0.1:10250, anonymous, AlwaysAllow, its
// self-signed certificate) and plain HTTP in berthd's network namespace.
type kubeletAPI struct {
	c *http.Client
}

func newKubeletAPI(nsPath string) *kubeletAPI {
	tr := &http.Transport{
		DialContext:       dialIn(nsPath),
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		DisableKeepAlives: true,
	}
	return &kubeletAPI{c: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

func (k *kubeletAPI) get(url string) (string, error) {
	return k.do(http.MethodGet, url, "GET "+url)
}

// run runs a command in a container through kubelet's /run endpoint (ExecSync of the
// runtime; kubelet splits cmd at spaces): the output, or an error with it.
func (k *kubeletAPI) run(ns, pod, container, cmd string) (string, error) {
	u := fmt.Sprintf("https://127.0.0.1:10250/run/%s/%s/%s?cmd=%s", ns, pod, container, url.QueryEscape(cmd))
	return k.do(http.MethodPost, u, fmt.Sprintf("POST /run/%s/%s/%s %q", ns, pod, container, cmd))
}

// do sends a request without a body: the answer's body, or an error naming what (with
// the body) when the status is not 200.
func (k *kubeletAPI) do(method, u, what string) (string, error) {
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := k.c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("%s: %s: %s", what, resp.Status, strings.TrimSpace(string(b)))
	}
	return string(b), nil
}

func (k *kubeletAPI) pods() ([]pod, error) {
	body, err := k.get("https://127.0.0.1:10250/pods")
	if err != nil {
		return nil, err
	}
	var l podList
	if err := json.Unmarshal([]byte(body), &l); err != nil {
		return nil, fmt.Errorf("/pods: %v: %.200s", err, body)
	}
	out := make([]pod, len(l.Items))
	for i, raw := range l.Items {
		if err := json.Unmarshal(raw, &out[i]); err != nil {
			return nil, fmt.Errorf("/pods: %v: %.200s", err, raw)
		}
		out[i].raw = raw
	}
	return out, nil
}

func (k *kubeletAPI) pod(name string) (*pod, error) {
	ps, err := k.pods()
	if err != nil {
		return nil, err
	}
	for i := range ps {
		if ps[i].Metadata.Name == name {
			return &ps[i], nil
		}
	}
	return nil, nil
}

// kubelet is a running kubelet.
type kubelet struct {
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
}

func (k *kubelet) logTail(n int) string {
	b, _ := os.ReadFile(k.logPath)
	return engine.Tail(string(b), n)
}

func (k *kubelet) running() bool {
	select {
	case <-k.exited:
		return false
	default:
		return true
	}
}

// stop ends kubelet (its PID only): SIGTERM, SIGKILL after 30 s.
func (k *kubelet) stop(t *testing.T) {
	if !k.running() {
		return
	}
	k.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-k.exited:
	case <-time.After(30 * time.Second):
		t.Errorf("kubelet did not exit within 30 s of SIGTERM")
		k.cmd.Process.Kill()
		<-k.exited
	}
}

// mountsUnder lists the mount points at or below dir (deepest first), minus skip.
func mountsUnder(t *testing.T, dir string, skip ...string) []string {
	t.Helper()
	ps, err := engine.MountsUnder(dir)
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(ps, func(p string) bool { return slices.Contains(skip, p) })
}

// podCgroup is a process's cgroup directory in one hierarchy, and berthd's cgroup-parent
// there (the test's own cgroup/bundle.CgroupParent()).
type podCgroup struct{ dir, parent string }

// cgroupDirs lists process pid's cgroup directories in the mounted hierarchies.
func cgroupDirs(pid string) ([]podCgroup, error) {
	mounts, err := bundle.CgroupMounts()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile("/proc/" + pid + "/cgroup")
	if err != nil {
		return nil, err
	}
	var out []podCgroup
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) != 3 {
			continue
		}
		for _, m := range mounts {
			if m.Controllers == f[1] && (f[1] != "" || f[0] == "0") {
				out = append(out, podCgroup{dir: filepath.Join(m.Mountpoint, f[2]), parent: filepath.Join(m.Own, bundle.CgroupParent())})
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no mounted cgroup hierarchy in %q", b)
	}
	return out, nil
}

// waitFor polls cond every 500 ms until it says done or timeout passes; it returns the last
// state it reported.
func waitFor(timeout time.Duration, cond func() (done bool, state string)) (bool, string) {
	deadline := time.Now().Add(timeout)
	for {
		done, state := cond()
		if done || time.Now().After(deadline) {
			return done, state
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// verbosePID is the process ID in the verbose info of a sandbox's or container's status.
func verbosePID(t *testing.T, info string) string {
	t.Helper()
	m := regexp.MustCompile(`"pid":\s*(\d+)`).FindStringSubmatch(info)
	if m == nil || m[1] == "0" {
		t.Fatalf("no pid in the verbose status: %s", info)
	}
	return m[1]
}

// podProcesses lists the processes in the network namespace of process holder: pid -> command.
func podProcesses(t *testing.T, holder string) map[string]string {
	t.Helper()
	ns, err := os.Readlink("/proc/" + holder + "/ns/net")
	if err != nil {
		t.Fatalf("the holder's network namespace: %v", err)
	}
	out := map[string]string{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if n, err := os.Readlink("/proc/" + e.Name() + "/ns/net"); err == nil && n == ns {
			out[e.Name()] = engine.Cmdline(mustAtoi(e.Name()))
		}
	}
	return out
}

func mustAtoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// criLine is one line of the CRI log format: <RFC3339Nano> <stream> <F|P> <text>.
var criLine = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d) (stdout|stderr) [FP] `)

func TestStaticPod(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (berthd, kubelet)")
	}
	bin := kubeletBinary(t)
	if _, err := os.Stat(filepath.Join(cniBinDir, "bridge")); err != nil {
		t.Fatalf("CNI plugins: %v (apt-get install containernetworking-plugins; hack/install-deps.sh does)", err)
	}
	for _, tool := range []string{"nsenter", "unshare", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
	}
	suffix := randHex(3)
	dir := t.TempDir()

	// The CNI network: a unique name, host-local's store in the test's directory.
	netName := "berth-kubelet-" + suffix
	confDir, ipamDir := filepath.Join(dir, "net.d"), filepath.Join(dir, "ipam")
	conflist := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [
    {"type": "bridge", "bridge": "cni-kubelet0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": %q, "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}`, netName, ipamDir, podSubnet)
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(confDir, "10-pods.conflist"), []byte(conflist), 0o644); err != nil {
		t.Fatal(err)
	}
	leases := func() []string {
		var out []string
		ents, _ := os.ReadDir(filepath.Join(ipamDir, netName))
		for _, e := range ents {
			if _, err := netip.ParseAddr(e.Name()); err == nil {
				out = append(out, e.Name())
			}
		}
		return out
	}

	d := berthtest.Start(t, berthtest.Options{DaemonJSON: fmt.Sprintf(`"cni-conf-dir": %q, "cni-bin-dirs": [%q]`, confDir, cniBinDir)})
	// CNI's host-global stores, in case a plugin used them despite the config.
	t.Cleanup(func() {
		for _, p := range []string{filepath.Join("/var/lib/cni/networks", netName)} {
			if _, err := os.Stat(p); err == nil {
				t.Errorf("LEAK: %s (CNI's host-global store) was used", p)
				os.RemoveAll(p)
			}
		}
	})
	criSock := filepath.Join(d.ExecRoot, "cri.sock")
	conn, err := grpc.NewClient("unix://"+criSock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	d.Busybox(image)

	// What is mounted under berthd's directory before kubelet (berthd's network namespace):
	// the same must be all that is left at the end.
	baseMounts := mountsUnder(t, d.Dir)

	// kubelet's directories. The root dir is a shared mount before kubelet starts (kubelet
	// makes it rshared itself otherwise, in its own mount namespace here, unseen by berthd).
	root := filepath.Join(dir, "root")
	manifests := filepath.Join(dir, "manifests")
	podLogs := filepath.Join(dir, "pod-logs")
	sysctls := filepath.Join(dir, "sysctl")
	for _, p := range []string{root, manifests, podLogs, sysctls, filepath.Join(dir, "volume-plugins")} {
		if err := os.MkdirAll(p, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mount(root, root, "", syscall.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount kubelet's root dir: %v", err)
	}
	// Before berthd's own cleanup, after the CRI objects are gone (registered below).
	t.Cleanup(func() {
		if n, left := engine.UnmountUnder(root); len(left) > 0 {
			t.Errorf("unmount kubelet's root dir: %d unmounted, %v left", n, left)
		}
	})
	if err := syscall.Mount("", root, "", syscall.MS_SHARED|syscall.MS_REC, ""); err != nil {
		t.Fatalf("make kubelet's root dir shared: %v", err)
	}
	// Whatever a failed run left of the CRI's objects, before berthd's cleanup (which sees
	// the Docker API's namespace only).
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if l, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{}); err == nil {
			for _, c := range l.Containers {
				t.Logf("cleanup: removing container %s (%s)", c.Id, c.Metadata.GetName())
				rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: c.Id})
			}
		}
		if l, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err == nil {
			for _, sb := range l.Items {
				t.Logf("cleanup: removing sandbox %s (%s)", sb.Id, sb.Metadata.GetName())
				rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id})
				rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id})
			}
		}
	})
	_, err = os.Stat(containerLogsDir)
	hadContainerLogsDir := err == nil
	podName := "berth-kubelet-" + suffix
	fullName := podName + "-" + nodeName
	t.Cleanup(func() {
		ents, _ := os.ReadDir(containerLogsDir)
		for _, e := range ents {
			// The test checks they are gone after the pod; these are a failed run's.
			if strings.HasPrefix(e.Name(), fullName+"_") {
				t.Logf("cleanup: removing %s/%s", containerLogsDir, e.Name())
				os.Remove(filepath.Join(containerLogsDir, e.Name()))
			}
		}
		if !hadContainerLogsDir {
			os.Remove(containerLogsDir) // only when empty
		}
	})

	// The six kernel settings, as kubelet wants to read them.
	var binds []string
	for _, name := range slices.Sorted(maps.Keys(kernelSettings)) {
		f := filepath.Join(sysctls, strings.ReplaceAll(name, "/", "."))
		if err := os.WriteFile(f, []byte(kernelSettings[name]+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		binds = append(binds, fmt.Sprintf("mount --bind '%s' /proc/sys/%s", f, name))
	}

	config := filepath.Join(dir, "kubelet.yaml")
	oomAdj, _ := os.ReadFile("/proc/self/oom_score_adj")
	kubeletConfig := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
staticPodPath: %s
fileCheckFrequency: 2s
syncFrequency: 10s
failCgroupV1: false
failSwapOn: false
cgroupsPerQOS: false
cgroupDriver: cgroupfs
enforceNodeAllocatable: []
address: 127.0.0.1
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
evictionHard:
  memory.available: "0%%"
  nodefs.available: "0%%"
  nodefs.inodesFree: "0%%"
  imagefs.available: "0%%"
  imagefs.inodesFree: "0%%"
mergeDefaultEvictionSettings: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
podLogsDir: %s
volumePluginDir: %s
protectKernelDefaults: true
oomScoreAdj: %s
`, manifests, podLogs, filepath.Join(dir, "volume-plugins"), strings.TrimSpace(string(oomAdj)))
	if err := os.WriteFile(config, []byte(kubeletConfig), 0o644); err != nil {
		t.Fatal(err)
	}

	// kubelet: in berthd's network namespace, in a mount namespace of its own (a copy of
	// the host's, the root dir's shared mount still shared with it) with /proc private and
	// the kernel settings bound over /proc/sys.
	script := "set -e; mount --make-rprivate /proc; " + strings.Join(binds, "; ") + `; exec "$@"`
	args := []string{"--mount", "--propagation", "unchanged", "--", "/bin/sh", "-c", script, "kubelet",
		bin,
		"--config", config,
		"--root-dir", root,
		"--cert-dir", filepath.Join(root, "pki"),
		"--container-runtime-endpoint", "unix://" + criSock,
		"--hostname-override", nodeName,
		// berthd's namespace has no default route to find one by.
		"--node-ip", d.HostAddr,
		"--v", "2",
	}
	kl := &kubelet{logPath: filepath.Join(dir, "kubelet.log"), exited: make(chan struct{})}
	logf, err := os.Create(kl.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	kl.cmd = d.HostCmd(context.Background(), "unshare", args...)
	kl.cmd.Stdout, kl.cmd.Stderr = logf, logf
	kl.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	kl.cmd.Env = engine.BaseEnv()
	start := time.Now()
	if err := kl.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { kl.cmd.Wait(); close(kl.exited) }()
	t.Cleanup(func() {
		kl.stop(t)
		if p := os.Getenv("BERTH_KUBELET_LOG"); p != "" {
			if b, err := os.ReadFile(kl.logPath); err == nil {
				os.WriteFile(p, b, 0o644)
			}
		}
		if t.Failed() {
			t.Logf("kubelet log (%s):\n%s", kl.logPath, kl.logTail(30000))
		}
	})
	api := newKubeletAPI(d.NetNS)

	ok, state := waitFor(90*time.Second, func() (bool, string) {
		if !kl.running() {
			return true, "kubelet exited"
		}
		body, err := api.get("http://127.0.0.1:10248/healthz")
		if err != nil {
			return false, err.Error()
		}
		return body == "ok", body
	})
	if !ok || !kl.running() {
		t.Fatalf("kubelet not healthy after %s: %s\nkubelet log:\n%s\nberthd log:\n%s", time.Since(start).Round(time.Second), state, kl.logTail(20000), d.LogTail(4000))
	}
	t.Logf("kubelet healthy after %s", time.Since(start).Round(time.Millisecond))
	if b, _ := os.ReadFile(kl.logPath); !regexp.MustCompile(`Container runtime initialized.*containerRuntime="berth"`).Match(b) {
		t.Errorf("kubelet's log does not say it initialized the berth runtime")
	}

	// The static pod: a ticker writing a line a second to stdout, and busybox httpd serving
	// what the ticker wrote into their shared emptyDir (a tmpfs kubelet mounts in its root
	// dir; read-only for httpd), with a readiness probe (kubelet, from berthd's network
	// namespace, to the pod's address).
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: default
  labels:
    app: berth-kubelet-test
spec:
  terminationGracePeriodSeconds: 5
  volumes:
  - name: www
    emptyDir:
      medium: Memory
      sizeLimit: 1Mi
  containers:
  - name: ticker
    image: %s
    imagePullPolicy: Never
    command: ["sh", "-c", "hostname > /www/index.html; i=0; while true; do i=$((i+1)); echo tick $i; sleep 1; done"]
    volumeMounts:
    - name: www
      mountPath: /www
  - name: web
    image: %s
    imagePullPolicy: Never
    command: ["sh", "-c", "echo serving on 80 && exec httpd -f -vv -p 80 -h /www"]
    ports:
    - containerPort: 80
    volumeMounts:
    - name: www
      mountPath: /www
      readOnly: true
    readinessProbe:
      httpGet:
        path: /
        port: 80
      periodSeconds: 1
`, podName, image, image)
	manifestPath := filepath.Join(manifests, "pod.yaml")
	// kubelet ignores dot files: write, then rename into place.
	if err := os.WriteFile(filepath.Join(manifests, ".pod.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(manifests, ".pod.yaml"), manifestPath); err != nil {
		t.Fatal(err)
	}
	placed := time.Now()

	var p *pod
	ok, state = waitFor(3*time.Minute, func() (bool, string) {
		if !kl.running() {
			return true, "kubelet exited"
		}
		var err error
		if p, err = api.pod(fullName); err != nil {
			return false, err.Error()
		}
		if p == nil {
			return false, "not listed"
		}
		b, _ := json.Marshal(p.Status)
		return p.running(), string(b)
	})
	if !ok || p == nil || !p.running() {
		t.Fatalf("pod %s not running and ready after %s: %s\nkubelet log:\n%s\nberthd log:\n%s", fullName, time.Since(placed).Round(time.Second), state, kl.logTail(30000), d.LogTail(6000))
	}
	t.Logf("pod %s running and ready %s after the manifest was placed: %s", fullName, time.Since(placed).Round(time.Millisecond), p.raw)
	uid := p.Metadata.UID
	for _, c := range p.Status.ContainerStatuses {
		if c.Image != image || !strings.HasPrefix(c.ContainerID, "berth://") || c.ImageID == "" || c.RestartCount != 0 {
			t.Errorf("container status %s: image %q (want %q), imageID %q, containerID %q, restarts %d", c.Name, c.Image, image, c.ImageID, c.ContainerID, c.RestartCount)
		}
	}

	// Its address: from the CNI network, as the sandbox's status says, leased by host-local.
	ip, err := netip.ParseAddr(p.Status.PodIP)
	if err != nil || !netip.MustParsePrefix(podSubnet).Contains(ip) {
		t.Errorf("pod IP %q (%v) is not in %s", p.Status.PodIP, err, podSubnet)
	}
	sbs, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil || len(sbs.Items) != 1 {
		t.Fatalf("sandboxes: %v %v", sbs, err)
	}
	sb := sbs.Items[0]
	if sb.Metadata.GetName() != fullName || sb.Metadata.GetNamespace() != "default" || sb.Metadata.GetUid() != uid || sb.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Errorf("sandbox %v", sb)
	}
	sst, err := rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb.Id, Verbose: true})
	if err != nil || sst.Status.GetNetwork().GetIp() != p.Status.PodIP {
		t.Errorf("sandbox status: network %v (%v), kubelet says pod IP %s", sst.GetStatus().GetNetwork(), err, p.Status.PodIP)
	}
	if l := leases(); len(l) != 1 || l[0] != p.Status.PodIP {
		t.Errorf("host-local leases %v, want [%s]", l, p.Status.PodIP)
	}
	cs, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil || len(cs.Containers) != 2 {
		t.Fatalf("containers: %v %v", cs, err)
	}
	for _, c := range cs.Containers {
		if c.PodSandboxId != sb.Id || c.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Errorf("container %s: sandbox %s state %s", c.Metadata.GetName(), c.PodSandboxId, c.State)
		}
		// What kubelet's containerStatuses[].image and imageID come from.
		if st, err := rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: c.Id}); err == nil {
			t.Logf("CRI ContainerStatus %s: image %v, image_ref %q, image_id %q", c.Metadata.GetName(), st.Status.GetImage(), st.Status.GetImageRef(), st.Status.GetImageId())
		}
	}
	// The holder's and the containers' processes (those in the pod's network namespace) are
	// in cgroups of their own below berthd's cgroup-parent (bundle.CgroupParent(), nested
	// under the test's cgroups), in every hierarchy: with cgroupsPerQOS off, kubelet gives
	// the sandbox no cgroup_parent (its podContainerManagerNoop), so berthd's default applies.
	holder := verbosePID(t, sst.GetInfo()["info"])
	procs := podProcesses(t, holder)
	if len(procs) < 3 {
		t.Errorf("processes in the pod's network namespace: %v, want the holder, sh and httpd", procs)
	}
	podCgroups := map[string]bool{}
	for pid, what := range procs {
		dirs, err := cgroupDirs(pid)
		if err != nil {
			t.Errorf("%s (pid %s): %v", what, pid, err)
			continue
		}
		for _, c := range dirs {
			if !strings.HasPrefix(c.dir, c.parent+"/") {
				t.Errorf("%s (pid %s) is in cgroup %s, not under berthd's cgroup-parent %s", what, pid, c.dir, c.parent)
			}
			podCgroups[c.dir] = true
		}
	}

	// The web container answers at the pod's address (from berthd's network namespace, the
	// node's), with the pod's hostname the ticker wrote.
	body, err := api.get("http://" + net.JoinHostPort(p.Status.PodIP, "80") + "/")
	if err != nil || strings.TrimSpace(body) != fullName {
		t.Errorf("GET http://%s/: %q %v (want the pod's hostname %s)", p.Status.PodIP, body, err, fullName)
	}

	// Commands in the containers through kubelet (/run: the runtime's ExecSync): the
	// emptyDir is shared, and read-only in web as its volumeMount says.
	if out, err := api.run("default", fullName, "web", "cat /www/index.html"); err != nil || strings.TrimSpace(out) != fullName {
		t.Errorf("cat /www/index.html in web: %q %v", out, err)
	}
	if out, err := api.run("default", fullName, "web", "touch /www/x"); err == nil || !strings.Contains(out, "Read-only file system") {
		t.Errorf("touch /www/x in web (read-only emptyDir): %q %v", out, err)
	}
	if out, err := api.run("default", fullName, "ticker", "touch /www/y"); err != nil {
		t.Errorf("touch /www/y in ticker: %q %v", out, err)
	}

	// Stats: kubelet's summary (from the runtime's ListContainerStats and the cgroups) has
	// both containers with CPU and memory usage.
	ok, state = waitFor(30*time.Second, func() (bool, string) {
		out, err := api.get("https://127.0.0.1:10250/stats/summary")
		if err != nil {
			return false, err.Error()
		}
		var sum struct {
			Pods []struct {
				PodRef struct {
					Name string `json:"name"`
				} `json:"podRef"`
				Containers []struct {
					Name string `json:"name"`
					CPU  struct {
						UsageCoreNanoSeconds uint64 `json:"usageCoreNanoSeconds"`
					} `json:"cpu"`
					Memory struct {
						WorkingSetBytes uint64 `json:"workingSetBytes"`
					} `json:"memory"`
				} `json:"containers"`
			} `json:"pods"`
		}
		if err := json.Unmarshal([]byte(out), &sum); err != nil {
			return false, err.Error()
		}
		var names []string
		for _, ps := range sum.Pods {
			if ps.PodRef.Name != fullName {
				continue
			}
			for _, c := range ps.Containers {
				if c.CPU.UsageCoreNanoSeconds > 0 && c.Memory.WorkingSetBytes > 0 {
					names = append(names, c.Name)
				}
			}
		}
		slices.Sort(names)
		return slices.Equal(names, []string{"ticker", "web"}), out
	})
	if !ok {
		t.Errorf("kubelet's stats summary lacks the CPU and memory usage of ticker and web: %s", engine.Tail(state, 3000))
	}

	// Logs: through kubelet's /containerLogs (which reads the CRI log files through the
	// runtime's ContainerStatus) and in the files.
	logURL := "https://127.0.0.1:10250/containerLogs/default/" + fullName + "/"
	ok, state = waitFor(30*time.Second, func() (bool, string) {
		out, err := api.get(logURL + "ticker")
		if err != nil {
			return false, err.Error()
		}
		return strings.Contains(out, "tick 1\n") && strings.Contains(out, "tick 3\n"), out
	})
	if !ok {
		t.Errorf("ticker's logs through kubelet: %s", engine.Tail(state, 2000))
	}
	ok, state = waitFor(30*time.Second, func() (bool, string) {
		out, err := api.get(logURL + "web")
		if err != nil {
			return false, err.Error()
		}
		// httpd -vv logs each request (the probe's and ours) on stderr.
		return strings.Contains(out, "serving on 80\n") && strings.Contains(out, "url:/\n"), out
	})
	if !ok {
		t.Errorf("web's logs through kubelet: %s", engine.Tail(state, 2000))
	}
	podLogDir := filepath.Join(podLogs, "default_"+fullName+"_"+uid)
	for _, c := range []struct{ name, want string }{{"ticker", "stdout F tick 2"}, {"web", "stdout F serving on 80"}} {
		b, err := os.ReadFile(filepath.Join(podLogDir, c.name, "0.log"))
		if err != nil {
			t.Errorf("%s's log file: %v", c.name, err)
			continue
		}
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		for _, l := range lines {
			if !criLine.MatchString(l) {
				t.Errorf("%s's log file: line %q is not in the CRI format", c.name, l)
				break
			}
		}
		if !strings.Contains(string(b), c.want) {
			t.Errorf("%s's log file lacks %q: %s", c.name, c.want, engine.Tail(string(b), 1000))
		}
	}
	if ents, _ := os.ReadDir(containerLogsDir); !slices.ContainsFunc(ents, func(e os.DirEntry) bool { return strings.HasPrefix(e.Name(), fullName+"_default_ticker-") }) {
		t.Errorf("no symlink %s/%s_default_ticker-*.log", containerLogsDir, fullName)
	}

	// The pod's mounts: in berthd's directories (the containers' root filesystems, ...) and
	// the emptyDir's tmpfs in kubelet's root dir, which berthd sees (shared propagation).
	if m := mountsUnder(t, d.Dir, baseMounts...); len(m) == 0 {
		t.Errorf("no mounts of the pod under %s", d.Dir)
	}
	www := filepath.Join(root, "pods", uid, "volumes", "kubernetes.io~empty-dir", "www")
	if m := mountsUnder(t, root, root); !slices.Contains(m, www) {
		t.Errorf("mounts under kubelet's root dir: %v, want the emptyDir's %s", m, www)
	}

	// Remove the manifest: kubelet stops the pod, then its garbage collection removes the
	// containers and the sandbox (every minute).
	if err := os.Remove(manifestPath); err != nil {
		t.Fatal(err)
	}
	removed := time.Now()
	ok, state = waitFor(4*time.Minute, func() (bool, string) {
		if !kl.running() {
			return true, "kubelet exited"
		}
		var left []string
		if p, err := api.pod(fullName); err != nil || p != nil {
			left = append(left, fmt.Sprintf("kubelet lists the pod (%v)", err))
		}
		if l, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{}); err != nil || len(l.Containers) > 0 {
			var s []string
			for _, c := range l.GetContainers() {
				s = append(s, c.Metadata.GetName()+":"+c.State.String())
			}
			left = append(left, fmt.Sprintf("containers %v (%v)", s, err))
		}
		if l, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err != nil || len(l.Items) > 0 {
			var s []string
			for _, sb := range l.GetItems() {
				s = append(s, sb.Metadata.GetName()+":"+sb.State.String())
			}
			left = append(left, fmt.Sprintf("sandboxes %v (%v)", s, err))
		}
		if l := leases(); len(l) > 0 {
			left = append(left, fmt.Sprintf("leases %v", l))
		}
		if _, err := os.Stat(filepath.Join(root, "pods", uid)); err == nil {
			left = append(left, "kubelet's pod directory")
		}
		if _, err := os.Stat(podLogDir); err == nil {
			left = append(left, "the pod's log directory")
		}
		return len(left) == 0, strings.Join(left, "; ")
	})
	if !ok || !kl.running() {
		t.Fatalf("%s after the manifest was removed: %s\nkubelet log:\n%s\nberthd log:\n%s", time.Since(removed).Round(time.Second), state, kl.logTail(30000), d.LogTail(6000))
	}
	t.Logf("pod, containers, sandbox, address and directories gone %s after the manifest was removed", time.Since(removed).Round(time.Millisecond))

	// Nothing else of the pod is left: mounts, veths, cgroups, log symlinks.
	if m := mountsUnder(t, d.Dir, baseMounts...); len(m) > 0 {
		t.Errorf("mounts left under %s: %v", d.Dir, m)
	}
	if m := mountsUnder(t, root, root); len(m) > 0 {
		t.Errorf("mounts left under kubelet's root dir: %v", m)
	}
	if m := mountsUnder(t, podLogs); len(m) > 0 {
		t.Errorf("mounts left under the pod logs dir: %v", m)
	}
	links, err := d.Links()
	if err != nil {
		t.Fatal(err)
	}
	for name, typ := range links {
		if typ == "veth" && name != "hostif0" && name != "hostif1" {
			t.Errorf("veth %s left in berthd's network namespace", name)
		}
	}
	for dir := range podCgroups {
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("cgroup %s of the pod is left", dir)
		}
	}
	ents, _ := os.ReadDir(containerLogsDir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), fullName+"_") {
			t.Errorf("symlink left: %s/%s", containerLogsDir, e.Name())
		}
	}
	// kubelet's log: no CRI call failed.
	b, _ := os.ReadFile(kl.logPath)
	var failed []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "rpc error") {
			failed = append(failed, l)
		}
	}
	// NotFound is what kubelet gets for what it has removed itself (its container deletor
	// and garbage collector both remove a dead pod's containers), Canceled what it cancelled
	// itself; any other error is a CRI call berth failed.
	var other []string
	for _, l := range failed {
		if !strings.Contains(l, "code = NotFound") && !strings.Contains(l, "code = Canceled") {
			other = append(other, l)
		}
	}
	if len(other) > 0 {
		t.Errorf("kubelet logged %d CRI errors besides NotFound:\n%s", len(other), engine.Tail(strings.Join(other, "\n"), 8000))
	}
	t.Logf("kubelet logged %d CRI errors, %d of them NotFound or Canceled", len(failed), len(failed)-len(other))
}
