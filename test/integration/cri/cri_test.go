// Package cri_test drives berthd's CRI endpoint (internal/cri) as kubelet and the
// Kubernetes tools do: a gRPC client of k8s.io/cri-api on the daemon's cri.sock, and
// critest from cri-tools v1.36.0 (hack/build-cri-tools.sh builds it from the Go module
// proxy into _output/cri-tools, once).
//
//   - TestCritestFocused: the 13 specs of the CRI issue's first acceptance point (runtime
//     info, pod sandbox lifecycle, idempotent stops and removals, a pull that must honour a
//     1 ms deadline) all pass.
//   - TestCritestSuite: `make critest`, the whole validation suite offline.
//   - TestSandboxes: a sandbox's holder runs with the pod's own network, IPC and UTS
//     namespaces and hostname; CRI objects are not seen by the Docker API and Docker's
//     containers are not seen by the CRI; bad input gets InvalidArgument, NotFound and
//     AlreadyExists with nothing left behind.
//
// Each test has its own berthd (test/berthtest: own data root, exec root, network
// namespace and leak checks). They need root; they skip without it.
package cri_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"berth/test/berthtest"
)

func requireRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the CRI tests need root (berthd)")
	}
}

// socket is the daemon's CRI endpoint (its default: cri.sock in the exec root).
func socket(d *berthtest.Daemon) string { return filepath.Join(d.ExecRoot, "cri.sock") }

// clients connects to the daemon's CRI endpoint.
func clients(t *testing.T, d *berthtest.Daemon) (runtimeapi.RuntimeServiceClient, runtimeapi.ImageServiceClient) {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+socket(d), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	// Before the daemon's own cleanup (which sees Docker's namespace only): remove what a
	// failed test left of the CRI's.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if l, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{}); err == nil {
			for _, c := range l.Containers {
				rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: c.Id})
			}
		}
		if l, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err == nil {
			for _, sb := range l.Items {
				rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id})
				rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id})
			}
		}
	})
	return rt, runtimeapi.NewImageServiceClient(conn)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// critest builds (once) and returns cri-tools' critest.
func critest(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(berthtest.Root(), "hack", "build-cri-tools.sh"))
	cmd.Dir = berthtest.Root()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/build-cri-tools.sh: %v\n%s", err, out)
	}
	return filepath.Join(berthtest.Root(), "_output", "cri-tools", "bin", "critest")
}

// focus selects the 13 specs of the CRI issue's first acceptance point.
const focus = `Runtime info|PodSandbox runtime should support basic operations|Idempotence (StopPodSandbox|RemovePodSandbox|RemoveContainer|RemoveImage)|Idempotence StopContainer should not return an error if not found|public image should timeout`

func TestCritestFocused(t *testing.T) {
	requireRoot(t)
	bin := critest(t)
	// Runtime info wants the network ready: a CNI network.
	opts, _ := cniOptions(t)
	d := berthtest.Start(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// critest's client config file, if missing, is only a warning; point it at nothing.
	cmd := exec.CommandContext(ctx, bin, "-runtime-endpoint", "unix://"+socket(d), "-image-endpoint", "unix://"+socket(d),
		"-config", filepath.Join(d.Dir, "crictl.yaml"), "-ginkgo.focus="+focus, "-ginkgo.no-color")
	cmd.Dir = d.Dir
	out, err := cmd.CombinedOutput()
	s := string(out)
	m := regexp.MustCompile(`Ran (\d+) of \d+ Specs`).FindStringSubmatch(s)
	if err != nil || m == nil || m[1] != "13" || !strings.Contains(s, "13 Passed | 0 Failed") {
		t.Fatalf("critest: %v\n%s\nberthd:\n%s", err, tail(s, 6000), d.LogTail(4000))
	}
	t.Logf("critest: %s", m[0])
}

// TestCritestSuite is `make critest` (hack/critest.sh): the whole critest validation suite
// offline, with stand-ins of its images in a loopback registry that berthd mirrors the
// image registries to and a CNI pod network, in a private network namespace; every spec
// that runs passes, and only "public image with digest" is skipped by the target (critest
// itself skips the specs of features berth does not advertise, and AppArmor's when the
// host has none).
func TestCritestSuite(t *testing.T) {
	requireRoot(t)
	if testing.Short() {
		t.Skip("the whole critest suite takes minutes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(berthtest.Root(), "hack", "critest.sh"))
	cmd.Dir = berthtest.Root()
	out, err := cmd.CombinedOutput()
	s := string(out)
	ran := regexp.MustCompile(`Ran (\d+) of (\d+) Specs`).FindStringSubmatch(s)
	if err != nil || ran == nil || !regexp.MustCompile(`SUCCESS! -- \d+ Passed \| 0 Failed`).MatchString(s) {
		t.Fatalf("make critest: %v\n%s", err, tail(s, 12000))
	}
	if n, _ := strconv.Atoi(ran[1]); n < 99 {
		t.Fatalf("make critest ran only %s specs:\n%s", ran[1], tail(s, 6000))
	}
	t.Logf("make critest: %s", ran[0])
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func sandboxConfig(name string) *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata:    &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "default", Uid: "uid-" + name, Attempt: 1},
		Hostname:    name + "-host",
		Labels:      map[string]string{"app": name},
		Annotations: map[string]string{"note": "kept as given"},
		DnsConfig:   &runtimeapi.DNSConfig{Servers: []string{"10.10.10.10"}, Searches: []string{"example.test"}, Options: []string{"ndots:3"}},
	}
}

func TestSandboxes(t *testing.T) {
	requireRoot(t)
	d := berthtest.Start(t, berthtest.Options{})
	rt, img := clients(t, d)
	ctx := ctxT(t)

	v, err := rt.Version(ctx, &runtimeapi.VersionRequest{})
	if err != nil || v.RuntimeName != "berth" || v.RuntimeApiVersion != "v1" || v.RuntimeVersion == "" {
		t.Fatalf("version: %v %v", v, err)
	}
	run, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sandboxConfig("web")})
	if err != nil {
		t.Fatalf("run sandbox: %v\n%s", err, d.LogTail(3000))
	}
	id := run.PodSandboxId
	st, err := rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
	if err != nil || st.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY || st.Status.Metadata.Name != "web" ||
		st.Status.Labels["app"] != "web" || st.Status.Annotations["note"] != "kept as given" || st.Status.CreatedAt == 0 {
		t.Fatalf("status: %v %v", st, err)
	}
	// The holder: berth-init --pause with namespaces of its own, the pod's hostname and DNS.
	pid := holderPID(t, st.Info["info"])
	for _, ns := range []string{"net", "ipc", "uts", "mnt"} {
		mine, _ := os.Readlink("/proc/self/ns/" + ns)
		theirs, err := os.Readlink("/proc/" + pid + "/ns/" + ns)
		if err != nil || theirs == mine {
			t.Errorf("holder's %s namespace %q (%v), the test's %q", ns, theirs, err, mine)
		}
	}
	if cmdline, _ := os.ReadFile("/proc/" + pid + "/cmdline"); string(cmdline) != "/pause\x00--pause\x00" {
		t.Errorf("holder runs %q", cmdline)
	}
	if out, err := exec.Command("nsenter", "-t", pid, "--uts", "hostname").Output(); err != nil || strings.TrimSpace(string(out)) != "web-host" {
		t.Errorf("hostname %q %v", out, err)
	}
	if b, err := os.ReadFile("/proc/" + pid + "/root/etc/resolv.conf"); err != nil || !strings.Contains(string(b), "nameserver 10.10.10.10") ||
		!strings.Contains(string(b), "search example.test") || !strings.Contains(string(b), "options ndots:3") {
		t.Errorf("resolv.conf: %q %v", b, err)
	}

	// Namespaces of the store: the Docker API does not see the sandbox, the CRI does not
	// see Docker's containers.
	if out := d.Must("ps", "-aq", "--no-trunc"); strings.Contains(out, id) {
		t.Errorf("docker ps lists the sandbox: %q", out)
	}
	if _, stderr, code := d.Docker("inspect", id); code == 0 || !strings.Contains(stderr, "No such") {
		t.Errorf("docker inspect of the sandbox: %d %q", code, stderr)
	}
	d.Busybox("busybox")
	dockerID := strings.TrimSpace(d.Must("create", "--name", "docker-one", "busybox", "true"))
	list, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil || len(list.Items) != 1 || list.Items[0].Id != id {
		t.Errorf("sandboxes: %v %v", list, err)
	}
	cs, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil || len(cs.Containers) != 0 {
		t.Errorf("containers: %v %v", cs, err)
	}
	if _, err := rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: dockerID}); status.Code(err) != codes.NotFound {
		t.Errorf("status of a Docker container through the CRI: %v", err)
	}
	if _, err := rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: dockerID}); err != nil {
		t.Errorf("remove of a Docker container through the CRI: %v", err)
	}
	d.Must("inspect", dockerID) // still there
	d.Must("rm", dockerID)

	// Bad input.
	if _, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sandboxConfig("web")}); status.Code(err) != codes.AlreadyExists {
		t.Errorf("duplicate sandbox: %v", err)
	}
	if _, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: &runtimeapi.PodSandboxConfig{}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("sandbox without metadata: %v", err)
	}
	bad := sandboxConfig("bad")
	bad.DnsConfig.Servers = []string{"not-an-address"}
	if _, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: bad}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "not-an-address") {
		t.Errorf("bad DNS server: %v", err)
	}
	if _, err := rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: strings.Repeat("0", 64)}); status.Code(err) != codes.NotFound {
		t.Errorf("status of a missing sandbox: %v", err)
	}
	if list, _ := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); len(list.GetItems()) != 1 {
		t.Errorf("refused sandboxes left something: %v", list)
	}
	if st, err := img.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: "busybox"}}); err != nil || st.Image == nil ||
		!contains(st.Image.RepoTags, "docker.io/library/busybox:latest") {
		t.Errorf("image status: %v %v", st, err)
	}

	// Stop, twice; remove, twice.
	for range 2 {
		if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatalf("stop: %v", err)
		}
	}
	st, err = rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
	if err != nil || st.Status.State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Errorf("status after stop: %v %v", st, err)
	}
	if _, err := os.Stat("/proc/" + pid); err == nil {
		t.Errorf("holder %s still runs after stop", pid)
	}
	for range 2 {
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatalf("remove: %v", err)
		}
	}
	if list, _ := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); len(list.GetItems()) != 0 {
		t.Errorf("sandboxes after remove: %v", list)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// holderPID reads the holder's PID from PodSandboxStatus' verbose info.
func holderPID(t *testing.T, info string) string {
	t.Helper()
	m := regexp.MustCompile(`"pid":(\d+)`).FindStringSubmatch(info)
	if m == nil || m[1] == "0" {
		t.Fatalf("no pid in the verbose status: %s", info)
	}
	return m[1]
}
