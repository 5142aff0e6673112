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
	cmd := d.HostCmd(context.Background(), berthBinary(t), "registry", "serve", "--addr", mirror, "--root", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() }) // our own child, by PID
	for i := 0; ; i++ {
		if _, code := d.Host(2*time.Second, "curl", "-sf", "http://"+mirror+"/v2/"); code == 0 {
			break
		}
		if i > 100 {
			t.Fatal("berth registry serve did not start")
		}
		time.Sleep(100 * time.Millisecond)
	}
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
