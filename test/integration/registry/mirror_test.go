package registry_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"berth/test/berthtest"
)

// TestRegistryMirror: with registry-mirrors in daemon.json, a Docker Hub image is pulled
// from the mirror (berth's registry server in berthd's network namespace, which has no
// route to Docker Hub) and is named as a Docker Hub image.
func TestRegistryMirror(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	const mirror = "127.0.0.1:5006"
	d := berthtest.Start(t, berthtest.Options{DaemonJSON: `"registry-mirrors": ["http://` + mirror + `"]`})
	serveMirror(t, d, mirror)
	d.Busybox(mirror + "/library/mirrored:v1")
	d.Must("push", mirror+"/library/mirrored:v1")
	d.Must("rmi", mirror+"/library/mirrored:v1")

	out := d.Must("pull", "mirrored:v1")
	if !strings.Contains(out, "Downloaded newer image for mirrored:v1") {
		t.Errorf("pull through the mirror: %s", out)
	}
	if got := d.Must("inspect", "--format", "{{index .RepoDigests 0}}", "mirrored:v1"); !strings.HasPrefix(got, "mirrored@sha256:") {
		t.Errorf("RepoDigests: %s", got)
	}
	if got := d.Must("run", "--rm", "mirrored:v1", "echo", "from the mirror"); got != "from the mirror" {
		t.Errorf("run: %q", got)
	}
}

// TestRegistryHosts: with registry-hosts in daemon.json, an image of another registry
// (registry.k8s.io, unreachable from berthd's network namespace) is pulled from a mirror
// that keeps it under a prefix of its repositories (http://MIRROR/v2/registry.k8s.io, as
// containerd's override_path), and is named as that registry's image; a mirror that lacks
// it falls through to the next one.
func TestRegistryHosts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	const mirror = "127.0.0.1:5007"
	d := berthtest.Start(t, berthtest.Options{DaemonJSON: `"registry-hosts": {"registry.k8s.io": ["http://` + mirror + `/v2/empty", "http://` + mirror + `/v2/registry.k8s.io"]}`})
	serveMirror(t, d, mirror)
	pushed := mirror + "/registry.k8s.io/e2e-test-images/busybox:1.29-2"
	d.Busybox(pushed)
	d.Must("push", pushed)
	d.Must("rmi", pushed)

	out := d.Must("pull", "registry.k8s.io/e2e-test-images/busybox:1.29-2")
	if !strings.Contains(out, "Downloaded newer image for registry.k8s.io/e2e-test-images/busybox:1.29-2") {
		t.Errorf("pull through the mirror: %s", out)
	}
	if got := d.Must("inspect", "--format", "{{index .RepoDigests 0}}", "registry.k8s.io/e2e-test-images/busybox:1.29-2"); !strings.HasPrefix(got, "registry.k8s.io/e2e-test-images/busybox@sha256:") {
		t.Errorf("RepoDigests: %s", got)
	}
	// Not on any mirror, and the registry itself is unreachable: the pull fails, naming it.
	if _, stderr, code := d.Docker("pull", "registry.k8s.io/pause:3.9"); code == 0 || !strings.Contains(stderr, "registry.k8s.io") {
		t.Errorf("pull of a missing image: exit %d, %s", code, stderr)
	}
}

// serveMirror runs berth's registry at addr in berthd's network namespace.
func serveMirror(t *testing.T, d *berthtest.Daemon, addr string) {
	t.Helper()
	cmd := d.HostCmd(context.Background(), berthBinary(t), "registry", "serve", "--addr", addr, "--root", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() }) // our own child, by PID
	for i := 0; ; i++ {
		if _, code := d.Host(2*time.Second, "curl", "-sf", "http://"+addr+"/v2/"); code == 0 {
			return
		}
		if i > 100 {
			t.Fatal("berth registry serve did not start")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
