package cri_test

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"berth/test/berthtest"
)

// cniBinDir is where Debian's containernetworking-plugins installs the plugins.
const cniBinDir = "/usr/lib/cni"

// podNet is a CNI network of a test daemon: a conflist in its own conf dir (bridge with
// host-local addresses in a data dir of the test, and portmap), all in the daemon's own
// network namespace, which its cleanup deletes with the bridge, veths and rules.
type podNet struct {
	ConfDir, IPAMDir string
	Subnet           netip.Prefix
}

// cniOptions makes the conf dir and returns the daemon options that use it.
func cniOptions(t *testing.T) (berthtest.Options, *podNet) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(cniBinDir, "bridge")); err != nil {
		t.Fatalf("CNI plugins: %v (apt-get install containernetworking-plugins; hack/install-deps.sh does)", err)
	}
	dir := t.TempDir()
	n := &podNet{ConfDir: filepath.Join(dir, "net.d"), IPAMDir: filepath.Join(dir, "ipam"), Subnet: netip.MustParsePrefix("10.88.0.0/24")}
	conf := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "berth-test-pods",
  "plugins": [
    {"type": "bridge", "bridge": "cni-pods0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": %q, "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}`, n.IPAMDir, n.Subnet)
	if err := os.MkdirAll(n.ConfDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The first file in lexical order is the network; a later one is not used.
	if err := os.WriteFile(filepath.Join(n.ConfDir, "10-pods.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(n.ConfDir, "20-unused.conflist"), []byte(`{"cniVersion": "1.0.0", "name": "unused", "plugins": [{"type": "nonexistent"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return berthtest.Options{DaemonJSON: fmt.Sprintf(`"cni-conf-dir": %q, "cni-bin-dirs": [%q]`, n.ConfDir, cniBinDir)}, n
}

// leases are the addresses host-local has handed out.
func (n *podNet) leases() []string {
	var out []string
	ents, _ := os.ReadDir(filepath.Join(n.IPAMDir, "berth-test-pods"))
	for _, e := range ents {
		if _, err := netip.ParseAddr(e.Name()); err == nil {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestPodNetwork: with a CNI network configured the runtime reports the network ready, a
// pod gets an address of the network (PodSandboxStatus), its port is reachable at that
// address and through its host port (portmap, also on 127.0.0.1), and stopping the pod
// releases the address and removes its veth; a pod whose holder died while berthd was
// down (killed) is still torn down when kubelet stops it. Without a config the network is
// not ready and pods have loopback only.
func TestPodNetwork(t *testing.T) {
	requireRoot(t)
	opts, n := cniOptions(t)
	d := berthtest.Start(t, opts)
	rt, img := clients(t, d)
	ctx := ctxT(t)
	d.Busybox("busybox")
	is, err := img.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: "busybox"}})
	if err != nil || is.Image == nil {
		t.Fatalf("image status: %v %v", is, err)
	}

	st, err := rt.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range st.Status.Conditions {
		if !c.Status {
			t.Errorf("condition %s not ready: %s %s", c.Type, c.Reason, c.Message)
		}
	}

	sbCfg := sandboxConfig("netpod")
	sbCfg.PortMappings = []*runtimeapi.PortMapping{
		{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: 12000},
		{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 81}, // no host port: not mapped
	}
	run, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sbCfg})
	if err != nil {
		t.Fatalf("run sandbox: %v\n%s", err, d.LogTail(3000))
	}
	sb := run.PodSandboxId
	ss, err := rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb})
	if err != nil {
		t.Fatal(err)
	}
	ip, err := netip.ParseAddr(ss.Status.GetNetwork().GetIp())
	if err != nil || !n.Subnet.Contains(ip) {
		t.Fatalf("pod IP %q (%v) is not in %s", ss.Status.GetNetwork().GetIp(), err, n.Subnet)
	}
	if l := n.leases(); len(l) != 1 || l[0] != ip.String() {
		t.Errorf("host-local leases %v, want [%s]", l, ip)
	}
	cfg := containerConfig("web", "sh", "-c", "mkdir /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www")
	// As kubelet names the image: its ID, and the pod spec's name as user_specified_image.
	cfg.Image = &runtimeapi.ImageSpec{Image: is.Image.Id, UserSpecifiedImage: "busybox"}
	created, err := rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb, Config: cfg, SandboxConfig: sbCfg})
	if err != nil {
		t.Fatalf("create: %v\n%s", err, d.LogTail(3000))
	}
	if _, err := rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: created.ContainerId}); err != nil {
		t.Fatalf("start: %v\n%s", err, d.LogTail(3000))
	}
	// kubelet shows the status' image name in the pod's status: the pod spec's.
	cs, err := rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: created.ContainerId})
	if err != nil || cs.Status.Image.GetImage() != "busybox" || cs.Status.ImageId != is.Image.Id {
		t.Errorf("container status image %v, image ID %q (%v); want busybox, %s", cs.GetStatus().GetImage(), cs.GetStatus().GetImageId(), err, is.Image.Id)
	}
	// The pod's own view: eth0 with that address, a default route.
	ex, err := rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: created.ContainerId, Cmd: []string{"sh", "-c", "ip -4 -o addr show eth0; ip route"}})
	if err != nil || !strings.Contains(string(ex.Stdout), ip.String()+"/24") || !strings.Contains(string(ex.Stdout), "default via") {
		t.Errorf("pod's interfaces: %v %q %q", err, ex.GetStdout(), ex.GetStderr())
	}
	for _, url := range []string{"http://" + ip.String() + ":80/", "http://" + d.HostAddr + ":12000/", "http://127.0.0.1:12000/"} {
		var out string
		var code int
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			out, code = d.Host(5*time.Second, "wget", "-q", "-O", "-", url)
			if code == 0 || time.Now().After(deadline) {
				break
			}
		}
		if code != 0 || out != "netpod-host\n" {
			t.Errorf("GET %s: exit %d, %q", url, code, out)
		}
	}
	veths := func() []string {
		out, _ := exec.Command("nsenter", "--net="+d.NetNS, "ip", "-o", "link", "show", "master", "cni-pods0").Output()
		return strings.Fields(string(out))
	}
	if len(veths()) == 0 {
		t.Errorf("no veth on the bridge")
	}

	if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb}); err != nil {
		t.Fatalf("stop: %v\n%s", err, d.LogTail(3000))
	}
	if l := n.leases(); len(l) != 0 {
		t.Errorf("leases after stop: %v", l)
	}
	if v := veths(); len(v) != 0 {
		t.Errorf("veths after stop: %v", v)
	}
	if out, code := d.Host(5*time.Second, "wget", "-q", "-O", "-", "http://127.0.0.1:12000/"); code == 0 {
		t.Errorf("the host port still answers after stop: %q", out)
	}
	ss, err = rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb})
	if err != nil || ss.Status.GetNetwork().GetIp() != "" {
		t.Errorf("status after stop: IP %q, %v", ss.GetStatus().GetNetwork().GetIp(), err)
	}
	// Idempotent: a second stop, then the removal, tear nothing down twice.
	if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb}); err != nil {
		t.Errorf("second stop: %v", err)
	}
	if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb}); err != nil {
		t.Errorf("remove: %v", err)
	}

	// A crash: berthd is killed, the pod's holder dies while it is down; the restarted
	// berthd still releases the address when kubelet stops the pod.
	run, err = rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sandboxConfig("crashpod")})
	if err != nil {
		t.Fatalf("run sandbox: %v\n%s", err, d.LogTail(3000))
	}
	sb = run.PodSandboxId
	if l := n.leases(); len(l) != 1 {
		t.Fatalf("leases of the second pod: %v", l)
	}
	vs, err := rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	pid := holderPID(t, vs.Info["info"])
	d.Kill9()
	if err := exec.Command("kill", "-9", pid).Run(); err != nil {
		t.Fatalf("kill the holder %s: %v", pid, err)
	}
	d.Restart()
	rt, _ = clients(t, d)
	waitFor(t, "the holder's exit to be seen", func() bool {
		ss, err := rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb})
		return err == nil && ss.Status.State == runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	})
	if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb}); err != nil {
		t.Fatalf("stop after the crash: %v\n%s", err, d.LogTail(3000))
	}
	if l := n.leases(); len(l) != 0 {
		t.Errorf("leases after the crashed pod's stop: %v", l)
	}
	if v := veths(); len(v) != 0 {
		t.Errorf("veths after the crashed pod's stop: %v", v)
	}
	if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb}); err != nil {
		t.Errorf("remove: %v", err)
	}

	// An ADD that never reached libcni's cache (berthd killed after the plugins ran): the
	// stop still runs DEL, with the network's current config.
	run, err = rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sandboxConfig("uncached")})
	if err != nil {
		t.Fatalf("run sandbox: %v\n%s", err, d.LogTail(3000))
	}
	cached, _ := filepath.Glob(filepath.Join(d.DataRoot, "cni", "results", "*"+run.PodSandboxId+"*"))
	if len(cached) == 0 || len(n.leases()) != 1 {
		t.Fatalf("cache %v, leases %v", cached, n.leases())
	}
	for _, f := range cached {
		os.Remove(f)
	}
	if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: run.PodSandboxId}); err != nil {
		t.Fatalf("stop: %v\n%s", err, d.LogTail(3000))
	}
	if l := n.leases(); len(l) != 0 {
		t.Errorf("leases after the stop of a pod whose ADD was not cached: %v", l)
	}
	if v := veths(); len(v) != 0 {
		t.Errorf("veths after the stop of a pod whose ADD was not cached: %v", v)
	}
}

// TestNoPodNetwork: without a CNI config the network is not ready (kubelet then runs only
// host-network pods) and a pod still runs, with loopback only.
func TestNoPodNetwork(t *testing.T) {
	requireRoot(t)
	d := berthtest.Start(t, berthtest.Options{DaemonJSON: fmt.Sprintf(`"cni-conf-dir": %q`, t.TempDir())})
	rt, _ := clients(t, d)
	ctx := ctxT(t)
	st, err := rt.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range st.Status.Conditions {
		if c.Type == runtimeapi.NetworkReady && (c.Status || c.Reason != "NetworkPluginNotReady" || !strings.Contains(c.Message, "no network config")) {
			t.Errorf("network condition without a config: %v", c)
		}
	}
	run, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sandboxConfig("lonely")})
	if err != nil {
		t.Fatalf("run sandbox: %v\n%s", err, d.LogTail(3000))
	}
	ss, err := rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: run.PodSandboxId})
	if err != nil || ss.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY || ss.Status.Network.GetIp() != "" {
		t.Errorf("status: %v %v", ss, err)
	}
}
