package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"berth/test/bench/harness"
	"berth/test/engine"
)

// eng is one engine under measurement, in its own network namespace, driven through its
// CRI socket.
type eng struct {
	*harness.Engine
	netns        string // its network namespace (a file in Dir)
	sock         string // its CRI socket
	cgroupParent string // every pod's
	cniDir       string // its CNI conf dir
	ipamDir      string // host-local's data dir
	cniCache     string // containerd: the directory bind-mounted on /var/lib/cni ("" when not mounted)
	// madeCNICacheDir: /var/lib/cni did not exist, the bench made it (and removes it).
	madeCNICacheDir bool

	conn *grpc.ClientConn
	rt   runtimeapi.RuntimeServiceClient
	img  runtimeapi.ImageServiceClient

	podNet string // what the pods' network is: the first pod's address

	samples map[string][]time.Duration // by operation (the ops in sequences)
}

// newEng makes the engine's directory (harness.NewEngine), its network namespace and its
// CNI conf dir.
func newEng(name, dir, sock, cgroupParent string) (*eng, error) {
	h, err := bench.NewEngine(name, dir, sock)
	if err != nil {
		return nil, err
	}
	e := &eng{Engine: h, sock: sock, cgroupParent: cgroupParent, netns: filepath.Join(dir, "host.netns"), samples: map[string][]time.Duration{}}
	if err := harness.MakeNetNS(e.netns); err != nil {
		e.netns = ""
		return e, fmt.Errorf("network namespace: %w", err)
	}
	e.cniDir, e.ipamDir = filepath.Join(dir, "net.d"), filepath.Join(dir, "ipam")
	if err := writeCNIConf(e.cniDir, e.ipamDir); err != nil {
		return e, err
	}
	return e, nil
}

// writeCNIConf writes the pods' network, the same for both engines: bridge (cni0 in the
// engine's namespace, the gateway, masquerading) with host-local addresses of -subnet kept
// in ipamDir, and portmap.
func writeCNIConf(confDir, ipamDir string) error {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       netName,
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
				"ipam": map[string]any{
					"type": "host-local", "dataDir": ipamDir,
					"ranges": [][]map[string]string{{{"subnet": *flagSubnet}}},
					"routes": []map[string]string{{"dst": "0.0.0.0/0"}},
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(confDir, "10-"+netName+".conflist"), append(b, '\n'), 0o644)
}

// dial connects the bench's client to the engine's CRI socket and waits up to timeout for
// Version to answer (the socket may come after the daemon's other one); log is the daemon's,
// shown when it does not.
func (e *eng) dial(ctx context.Context, log string, timeout time.Duration) (*runtimeapi.VersionResponse, error) {
	conn, err := grpc.NewClient("unix://"+e.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	e.conn = conn
	e.rt, e.img = runtimeapi.NewRuntimeServiceClient(conn), runtimeapi.NewImageServiceClient(conn)
	deadline := time.Now().Add(timeout)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		v, err := e.rt.Version(cctx, &runtimeapi.VersionRequest{})
		cancel()
		if err == nil {
			return v, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			b, _ := os.ReadFile(log)
			return nil, fmt.Errorf("CRI Version on %s: %v after %v\n%s", e.sock, err, timeout, engine.Tail(string(b), 2000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// --- berthd ---

// startBerth starts a private berthd in its own network namespace (harness.Engine.StartBerthd,
// with the CNI keys in daemon.json) and connects to its CRI socket.
func startBerth(ctx context.Context, dir, cgroupParent string) (*eng, error) {
	e, err := newEng("berth", dir, filepath.Join(dir, "exec", "cri.sock"), cgroupParent)
	if err != nil {
		return e, err
	}
	err = e.StartBerthd(ctx, harness.BerthOptions{Bin: *flagBin, Docker: *flagDocker, CgroupParent: cgroupParent, Debug: *flagDebug, NetNS: e.netns,
		Config: map[string]any{"cni-conf-dir": e.cniDir, "cni-bin-dirs": []string{*flagCNIBin}}})
	if err != nil {
		return e, err
	}
	cv, err := e.dial(ctx, filepath.Join(dir, "berthd.log"), 30*time.Second)
	if err != nil {
		return e, err
	}
	e.Version += fmt.Sprintf(", CRI %s %s (API %s)", cv.RuntimeName, cv.RuntimeVersion, cv.RuntimeApiVersion)
	return e, nil
}

// --- containerd ---

// startContainerd starts a private containerd in its own network namespace with its own
// config.toml (containerdConfig), bind-mounts a directory of its own on /var/lib/cni (in the
// bench's mount namespace: libcni's cache, which containerd 1.6 keeps there), and connects
// to its socket.
func startContainerd(ctx context.Context, dir, cgroupParent string) (*eng, error) {
	for _, b := range []string{*flagContainerd, *flagCtr, "containerd-shim-runc-v2", *flagRunc} {
		if _, err := exec.LookPath(b); err != nil {
			return nil, fmt.Errorf("%v (apt-get install -y containerd runc)", err)
		}
	}
	e, err := newEng("containerd", dir, filepath.Join(dir, "containerd.sock"), cgroupParent)
	if err != nil {
		return e, err
	}
	cache := filepath.Join(dir, "cni-cache")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return e, err
	}
	if _, err := os.Stat("/var/lib/cni"); errors.Is(err, os.ErrNotExist) {
		if err := os.Mkdir("/var/lib/cni", 0o755); err != nil {
			return e, err
		}
		e.madeCNICacheDir = true
	}
	if err := syscall.Mount(cache, "/var/lib/cni", "", syscall.MS_BIND, ""); err != nil {
		e.unmountCNICache()
		return e, fmt.Errorf("bind %s on /var/lib/cni: %v", cache, err)
	}
	e.cniCache = cache
	e.Remove = func() int { return e.unmountCNICache() + e.RemoveDir() }

	confPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(confPath, []byte(containerdConfig(e)), 0o644); err != nil {
		return e, err
	}
	e.CLI = *flagCtr
	e.Global = []string{"--address", e.sock, "--namespace", "k8s.io"}
	e.Env = engine.BaseEnv()
	d, err := e.StartDaemon([]string{*flagContainerd, "--config", confPath}, filepath.Join(dir, "containerd.log"), e.netns, 30*time.Second)
	if err != nil {
		return e, err
	}
	cv, err := e.dial(ctx, d.Log, 60*time.Second)
	if err != nil {
		return e, err
	}
	e.Version = fmt.Sprintf("%s, %s, CRI %s %s (API %s)", harness.ToolVersion(*flagContainerd), harness.ToolVersion(*flagRunc),
		cv.RuntimeName, cv.RuntimeVersion, cv.RuntimeApiVersion)
	return e, nil
}

// containerdConfig is the engine's config.toml: everything it keeps in its directory (root,
// state, sockets, /opt's plugin path, runc's root, the pods' network namespaces), the CRI
// plugin with the pause stand-in as sandbox image, oom_score_adj restricted to containerd's
// own (the sandbox's -998 is refused without CAP_SYS_RESOURCE, which this machine's root
// lacks; berthd clamps it the same way), runc through containerd-shim-runc-v2 with
// the cgroupfs driver, and the engine's CNI conf dir.
func containerdConfig(e *eng) string {
	d := e.Dir
	level := "info"
	if *flagDebug {
		level = "debug"
	}
	return fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = %q

[ttrpc]
  address = %q

[debug]
  level = %q

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = %q
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = %q
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    netns_mounts_under_state_dir = true
    systemd_cgroup = false
    disable_apparmor = true
    restrict_oom_score_adj = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          BinaryName = %q
          Root = %q
          SystemdCgroup = false
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = %q
      conf_dir = %q
      max_conf_num = 1
`, filepath.Join(d, "root"), filepath.Join(d, "state"), e.sock, e.sock+".ttrpc", level,
		filepath.Join(d, "opt"), pauseImage, runcPath(), filepath.Join(d, "runc"), *flagCNIBin, e.cniDir)
}

func runcPath() string {
	if p, err := exec.LookPath(*flagRunc); err == nil {
		return p
	}
	return *flagRunc
}

// unmountCNICache undoes the bind mount on /var/lib/cni; it returns the leftovers.
func (e *eng) unmountCNICache() int {
	n := 0
	if e.cniCache != "" {
		if ents, _ := os.ReadDir(filepath.Join(e.cniCache, "results")); len(ents) > 0 {
			logf("LEFTOVER: containerd: %d entries in libcni's cache (pods not torn down)", len(ents))
			n++
		}
		if err := syscall.Unmount("/var/lib/cni", syscall.MNT_DETACH); err != nil {
			logf("LEFTOVER: unmount /var/lib/cni: %v", err)
			return n + 1
		}
		e.cniCache = ""
	}
	if e.madeCNICacheDir {
		if err := os.Remove("/var/lib/cni"); err != nil {
			logf("LEFTOVER: %v", err)
			n++
		}
		e.madeCNICacheDir = false
	}
	return n
}

// --- prepare and cleanup ---

// prepare loads the images (berthd: busybox; containerd: busybox and the pause stand-in),
// checks that the runtime and the network are ready, and runs one pod with
// a container, which must get an address of the CNI network.
func prepare(ctx context.Context, e *eng, in *inputs) error {
	if e.Name == "berth" {
		if _, err := e.Out(ctx, "load", "-i", in.busybox); err != nil {
			return err
		}
	} else {
		for _, img := range []string{in.busybox, in.pause} {
			if _, err := e.Out(ctx, "images", "import", img); err != nil {
				return err
			}
		}
	}
	// containerd's CRI plugin learns of imported images through events: wait for it.
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := e.img.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: busyboxImage}})
		if err == nil && st.Image != nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ImageStatus %s after the import: %v, %v", busyboxImage, st, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	st, err := e.rt.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		return fmt.Errorf("runtime status: %v", err)
	}
	for _, c := range st.GetStatus().GetConditions() {
		if !c.Status {
			return fmt.Errorf("runtime status: %s is false: %s %s", c.Type, c.Reason, c.Message)
		}
	}

	// One pod with a container, its address checked.
	cfg := e.podConfig("bench-check-")
	pod, err := e.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		return fmt.Errorf("RunPodSandbox: %v", err)
	}
	defer e.removePod(pod.PodSandboxId)
	ps, err := e.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: pod.PodSandboxId})
	if err != nil {
		return fmt.Errorf("PodSandboxStatus: %v", err)
	}
	ip := ps.GetStatus().GetNetwork().GetIp()
	if ip == "" {
		return fmt.Errorf("the pod has no address on the CNI network (PodSandboxStatus network %v)", ps.GetStatus().GetNetwork())
	}
	e.podNet = "pods on the CNI network (first pod's address " + ip + ")"
	c, err := e.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pod.PodSandboxId, Config: containerConfig("bench-check-"), SandboxConfig: cfg})
	if err != nil {
		return fmt.Errorf("CreateContainer: %v", err)
	}
	if _, err := e.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
		return fmt.Errorf("StartContainer: %v", err)
	}
	cs, err := e.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: c.ContainerId})
	if err != nil {
		return fmt.Errorf("ContainerStatus: %v", err)
	}
	if s := cs.GetStatus().GetState(); s != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return fmt.Errorf("the container is %v, not running", s)
	}
	return nil
}

// removePod stops and removes a pod, untimed, with its own deadline; errors are failures of
// the engine.
func (e *eng) removePod(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := e.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		e.Check(err, "StopPodSandbox (cleanup)")
	}
	if _, err := e.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		e.Check(err, "RemovePodSandbox (cleanup)")
	}
}

// Cleanup stops and removes the pods left (an interrupted run leaves some) through the
// engine, and ends it: processes under its directory (shims) or in its namespace are
// leftovers; then the namespace, the mount on /var/lib/cni and the directory go.
func (e *eng) Cleanup() int {
	if e.rt != nil && e.Stop != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if l, err := e.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err != nil {
			logf("%s: ListPodSandbox: %v", e.Name, err)
		} else {
			if n := len(l.Items); n > 0 {
				logf("%s: removing %d pods left by the measurements", e.Name, n)
			}
			for _, p := range l.Items {
				e.removePod(p.Id)
			}
		}
		cancel()
	}
	if e.conn != nil {
		e.conn.Close()
	}
	return e.Shutdown(func() int {
		if e.netns == "" {
			return 0
		}
		return e.RemoveNetNS(e.netns)
	})
}
