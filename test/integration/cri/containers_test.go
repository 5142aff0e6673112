package cri_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"berth/test/berthtest"
)

// crictl is cri-tools' crictl (built with critest).
func crictl(t *testing.T) string {
	t.Helper()
	critest(t)
	return filepath.Join(berthtest.Root(), "_output", "cri-tools", "bin", "crictl")
}

// hog allocates ~100 MB in a shell variable.
const hog = `x=$(head -c 100000000 /dev/zero | tr "\0" a); echo survived ${#x}`

func containerConfig(name string, cmd ...string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: "busybox"},
		Command:  cmd,
		LogPath:  name + "/0.log",
	}
}

// waitFor polls cond for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestContainers: a pod's containers are created and started in the sandbox's namespaces
// with the request's command, env, mounts and resources; their output is in the CRI log
// format at kubelet's path (reopened after a rename); ExecSync, exec and port forward
// through the streaming server (crictl as the client), stats, resource updates, an OOM
// kill reported as OOMKilled/137, oom_score_adj clamped to berthd's own, stop and
// removal; bad input gets NotFound, InvalidArgument and AlreadyExists with nothing made.
func TestContainers(t *testing.T) {
	requireRoot(t)
	crictlBin := crictl(t)
	d := berthtest.Start(t, berthtest.Options{})
	rt, _ := clients(t, d)
	ctx := ctxT(t)
	d.Busybox("busybox")

	logDir := filepath.Join(d.Dir, "pod-logs")
	www := filepath.Join(d.Dir, "www")
	if err := os.MkdirAll(www, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(www, "index.html"), []byte("hello from the pod\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sbCfg := sandboxConfig("web")
	sbCfg.LogDirectory = logDir
	run, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sbCfg})
	if err != nil {
		t.Fatalf("run sandbox: %v\n%s", err, d.LogTail(3000))
	}
	sb := run.PodSandboxId

	cfg := containerConfig("server", "sh", "-c", "echo hello; echo oops >&2; printf 'no newline'; echo >&2; exec httpd -f -p 8080 -h /www")
	cfg.Envs = []*runtimeapi.KeyValue{{Key: "FOO", Value: []byte("bar")}}
	cfg.Labels = map[string]string{"role": "server"}
	cfg.Mounts = []*runtimeapi.Mount{{ContainerPath: "/www", HostPath: www, Readonly: true}}
	cfg.Linux = &runtimeapi.LinuxContainerConfig{Resources: &runtimeapi.LinuxContainerResources{OomScoreAdj: -999}}
	created, err := rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb, Config: cfg, SandboxConfig: sbCfg})
	if err != nil {
		t.Fatalf("create: %v\n%s", err, d.LogTail(3000))
	}
	id := created.ContainerId
	st, err := rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil || st.Status.State != runtimeapi.ContainerState_CONTAINER_CREATED || st.Status.Metadata.Name != "server" ||
		st.Status.LogPath != filepath.Join(logDir, "server/0.log") {
		t.Fatalf("status after create: %v %v", st, err)
	}
	if _, err := rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("start: %v\n%s", err, d.LogTail(3000))
	}
	if st, err = rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id}); err != nil ||
		st.Status.State != runtimeapi.ContainerState_CONTAINER_RUNNING || st.Status.StartedAt == 0 {
		t.Fatalf("status after start: %v %v", st, err)
	}
	list, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: sb,
		LabelSelector: map[string]string{"role": "server"}}})
	if err != nil || len(list.Containers) != 1 || list.Containers[0].Id != id {
		t.Errorf("list: %v %v", list, err)
	}

	// The CRI log: one line per message, "<time> <stream> F|P <text>".
	logPath := filepath.Join(logDir, "server", "0.log")
	line := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z (stdout|stderr) [FP] `)
	var logText string
	waitFor(t, "the container's log", func() bool {
		b, _ := os.ReadFile(logPath)
		logText = string(b)
		return strings.Contains(logText, "stderr F \n")
	})
	for _, want := range []string{"stdout F hello\n", "stderr F oops\n"} {
		if !strings.Contains(logText, want) {
			t.Errorf("log %q lacks %q", logText, want)
		}
	}
	for _, l := range strings.Split(strings.TrimSuffix(logText, "\n"), "\n") {
		if !line.MatchString(l) {
			t.Errorf("log line %q is not in the CRI format", l)
		}
	}

	// ExecSync: env, the pod's hostname, the mount, the exit code.
	ex, err := rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"sh", "-c",
		"echo $FOO; hostname; cat /www/index.html; echo to-stderr >&2; cat /proc/$(pidof httpd)/oom_score_adj; grep nameserver /etc/resolv.conf; exit 3"}})
	own, _ := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil || ex.ExitCode != 3 || string(ex.Stdout) != "bar\nweb-host\nhello from the pod\n"+string(own)+"nameserver 10.10.10.10\n" ||
		string(ex.Stderr) != "to-stderr\n" {
		t.Errorf("exec sync: %v, stdout %q stderr %q, %v", ex, ex.GetStdout(), ex.GetStderr(), err)
	}
	start := time.Now()
	_, err = rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"sleep", "30"}, Timeout: 1})
	if status.Code(err) != codes.DeadlineExceeded || time.Since(start) > 15*time.Second {
		t.Errorf("exec sync past its timeout: %v after %s", err, time.Since(start))
	}
	if ex, err := rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"sh", "-c", "pgrep sleep || true"}}); err != nil || len(ex.Stdout) != 0 {
		ps, _ := rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"ps", "-o", "pid,ppid,stat,args"}})
		t.Errorf("the timed-out exec's process is still there: %q %v\n%s", ex.GetStdout(), err, ps.GetStdout())
	}

	// exec and port forward through the streaming server, with crictl.
	cri := func(timeout time.Duration, args ...string) (string, int) {
		return d.Host(timeout, crictlBin, append([]string{"-r", "unix://" + socket(d), "-i", "unix://" + socket(d)}, args...)...)
	}
	// crictl exits 1 and names the command's exit code.
	if out, code := cri(time.Minute, "exec", id, "sh", "-c", "echo streamed; echo $FOO >&2; exit 5"); code != 1 ||
		!strings.Contains(out, "streamed") || !strings.Contains(out, "bar") || !strings.Contains(out, "exit code 5") {
		t.Errorf("crictl exec: exit %d: %s", code, out)
	}
	if out, code := cri(time.Minute, "exec", "-i", id, "cat"); code != 0 {
		t.Errorf("crictl exec -i with empty stdin: exit %d: %s", code, out)
	}
	pfCtx, pfCancel := context.WithCancel(ctx)
	pf := d.HostCmd(pfCtx, crictlBin, "-r", "unix://"+socket(d), "port-forward", sb, "18080:8080")
	pfOut := &strings.Builder{}
	pf.Stdout, pf.Stderr = pfOut, pfOut
	if err := pf.Start(); err != nil {
		t.Fatal(err)
	}
	var page string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		out, code := d.Host(5*time.Second, "wget", "-q", "-O", "-", "http://127.0.0.1:18080/index.html")
		if page = out; code == 0 {
			break
		}
	}
	pfCancel()
	pf.Wait()
	if page != "hello from the pod\n" {
		t.Errorf("page through port-forward: %q (%s)", page, pfOut)
	}

	// Stats.
	cs, err := rt.ContainerStats(ctx, &runtimeapi.ContainerStatsRequest{ContainerId: id})
	if err != nil || cs.Stats.Memory.GetWorkingSetBytes().GetValue() == 0 || cs.Stats.Cpu.GetUsageCoreNanoSeconds().GetValue() == 0 ||
		cs.Stats.WritableLayer.GetFsId().GetMountpoint() == "" || cs.Stats.Attributes.Id != id {
		t.Errorf("container stats: %v %v", cs, err)
	}
	ps, err := rt.PodSandboxStats(ctx, &runtimeapi.PodSandboxStatsRequest{PodSandboxId: sb})
	if err != nil || len(ps.Stats.GetLinux().GetContainers()) != 1 || ps.Stats.Linux.Process.GetProcessCount().GetValue() < 2 {
		t.Errorf("pod stats: %v %v", ps, err)
	}
	if l, err := rt.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{}); err != nil || len(l.Stats) != 1 {
		t.Errorf("list container stats: %v %v", l, err)
	}

	// Resources: a new memory limit, seen in the container's cgroup.
	if _, err := rt.UpdateContainerResources(ctx, &runtimeapi.UpdateContainerResourcesRequest{ContainerId: id,
		Linux: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 64 << 20}}); err != nil {
		t.Errorf("update resources: %v", err)
	}
	ex, err = rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"sh", "-c",
		"cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"}})
	if err != nil || strings.TrimSpace(string(ex.Stdout)) != strconv.Itoa(64<<20) {
		t.Errorf("memory limit after update: %q %v", ex.GetStdout(), err)
	}

	// kubelet's rotation: rename the log, reopen, and the output goes to a new file.
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.ReopenContainerLog(ctx, &runtimeapi.ReopenContainerLogRequest{ContainerId: id}); err != nil {
		t.Fatalf("reopen log: %v", err)
	}
	if ex, err := rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"sh", "-c", "echo after-rotation > /proc/$(pidof httpd)/fd/1"}}); err != nil || ex.ExitCode != 0 {
		t.Fatalf("write to the container's stdout: %v %v", ex, err)
	}
	waitFor(t, "the reopened log", func() bool {
		b, _ := os.ReadFile(logPath)
		// The server's printf without a newline waited for the end of its line.
		return strings.Contains(string(b), "stdout F no newlineafter-rotation\n")
	})

	// An OOM kill: exit code 137, reason OOMKilled.
	oomCfg := containerConfig("oom", "sh", "-c", "sleep 1; "+hog)
	oomCfg.Linux = &runtimeapi.LinuxContainerConfig{Resources: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 32 << 20}}
	oc, err := rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb, Config: oomCfg, SandboxConfig: sbCfg})
	if err != nil {
		t.Fatalf("create oom: %v", err)
	}
	if _, err := rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: oc.ContainerId}); err != nil {
		t.Fatalf("start oom: %v", err)
	}
	waitFor(t, "the OOM kill", func() bool {
		st, err := rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: oc.ContainerId})
		return err == nil && st.Status.State == runtimeapi.ContainerState_CONTAINER_EXITED
	})
	st, _ = rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: oc.ContainerId})
	if st.Status.ExitCode != 137 || st.Status.Reason != "OOMKilled" || st.Status.FinishedAt == 0 {
		t.Errorf("OOM-killed container: exit %d reason %q finished %d", st.Status.ExitCode, st.Status.Reason, st.Status.FinishedAt)
	}
	if _, err := rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: oc.ContainerId}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("second start: %v", err)
	}

	// Bad input: nothing is made.
	bad := []struct {
		what string
		req  *runtimeapi.CreateContainerRequest
		code codes.Code
		msg  string
	}{
		{"missing sandbox", &runtimeapi.CreateContainerRequest{PodSandboxId: strings.Repeat("a", 64), Config: containerConfig("x", "true")}, codes.NotFound, "not found"},
		{"missing image", &runtimeapi.CreateContainerRequest{PodSandboxId: sb, Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "noimage"}, Image: &runtimeapi.ImageSpec{Image: "no-such-image:1"}}}, codes.NotFound, "no-such-image"},
		{"relative mount", &runtimeapi.CreateContainerRequest{PodSandboxId: sb, Config: func() *runtimeapi.ContainerConfig {
			c := containerConfig("badmount", "true")
			c.Mounts = []*runtimeapi.Mount{{ContainerPath: "relative/path", HostPath: www}}
			return c
		}()}, codes.InvalidArgument, "relative/path"},
		{"duplicate name", &runtimeapi.CreateContainerRequest{PodSandboxId: sb, Config: containerConfig("server", "true")}, codes.AlreadyExists, "server"},
		{"no metadata", &runtimeapi.CreateContainerRequest{PodSandboxId: sb, Config: &runtimeapi.ContainerConfig{Image: &runtimeapi.ImageSpec{Image: "busybox"}}}, codes.InvalidArgument, "metadata"},
	}
	for _, b := range bad {
		_, err := rt.CreateContainer(ctx, b.req)
		if status.Code(err) != b.code || !strings.Contains(err.Error(), b.msg) {
			t.Errorf("%s: %v, want %v with %q", b.what, err, b.code, b.msg)
		}
	}
	if l, _ := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{}); len(l.GetContainers()) != 2 {
		t.Errorf("containers after the refused creates: %v", l)
	}
	if out := d.Must("ps", "-aq"); strings.TrimSpace(out) != "" {
		t.Errorf("docker ps sees CRI containers: %q", out)
	}
	// Asked for (`berth ps --namespace k8s` sends X-Berth-Namespace), the Docker API lists
	// the pod's holder and containers; a malformed namespace is a 400.
	apiGet := func(ns string) (int, string) {
		hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", d.Socket)
		}}}
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://berth/containers/json?all=1", nil)
		req.Header.Set("X-Berth-Namespace", ns)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := apiGet("k8s"); code != 200 || !strings.Contains(body, id) || !strings.Contains(body, sb) || !strings.Contains(body, "k8s_server_web_default_uid-web_0") {
		t.Errorf("containers of namespace k8s through the Docker API: %d %.500s", code, body)
	}
	if code, body := apiGet("Bad Namespace"); code != 400 || !strings.Contains(body, "invalid namespace") {
		t.Errorf("a malformed namespace: %d %s", code, body)
	}

	// Stop with a timeout, then remove the pod: everything goes but kubelet's logs.
	if _, err := rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 10}); err != nil {
		t.Errorf("stop: %v", err)
	}
	if st, err = rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id}); err != nil ||
		st.Status.State != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Errorf("status after stop: %v %v", st, err)
	}
	if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb}); err != nil {
		t.Fatalf("stop sandbox: %v", err)
	}
	if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb}); err != nil {
		t.Fatalf("remove sandbox: %v", err)
	}
	if l, _ := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{}); len(l.GetContainers()) != 0 {
		t.Errorf("containers after the pod's removal: %v", l)
	}
	if _, err := os.Stat(logPath + ".1"); err != nil {
		t.Errorf("kubelet's rotated log: %v", err)
	}
}
