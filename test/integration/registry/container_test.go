package registry_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth/test/berthtest"
)

// TestRunAsContainer builds examples/registry (the static berth binary on scratch) with
// the docker CLI through berthd, runs it with a published port and a volume, pushes an
// image into it and pulls it back, then restarts the container and finds the image kept
// in the volume.
func TestRunAsContainer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	d := berthtest.Start(t, berthtest.Options{})
	ctxDir := filepath.Join(d.Dir, "registry-image")
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(berthBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "berth"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	d.Must("build", "-q", "-t", "berth-registry", "-f", filepath.Join(repoRoot(t), "examples/registry/Dockerfile"), ctxDir)
	d.Must("run", "-d", "--name", "registry", "-p", "127.0.0.1:5005:5000", "-v", "regdata:/var/lib/registry", "berth-registry")
	ready := func() {
		t.Helper()
		for i := 0; ; i++ {
			if _, code := d.Host(2*time.Second, "curl", "-sf", "http://127.0.0.1:5005/v2/"); code == 0 {
				return
			}
			if i > 100 {
				_, logs, _ := d.Docker("logs", "registry")
				t.Fatalf("the registry container does not answer:\n%s", logs)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	ready()

	d.Busybox("127.0.0.1:5005/demo/bb:v1")
	out := d.Must("push", "127.0.0.1:5005/demo/bb:v1")
	if !strings.Contains(out, "v1: digest: sha256:") {
		t.Fatalf("push: %s", out)
	}
	d.Must("rmi", "127.0.0.1:5005/demo/bb:v1")
	d.Must("restart", "registry")
	ready()
	d.Must("pull", "127.0.0.1:5005/demo/bb:v1")
	if got := d.Must("run", "--rm", "127.0.0.1:5005/demo/bb:v1", "echo", "served by a container"); got != "served by a container" {
		t.Errorf("run: %q", got)
	}
	// The server logs to stderr, which docker logs writes to its own stderr.
	if _, logs, _ := d.Docker("logs", "registry"); !strings.Contains(logs, "path=/v2/demo/bb/manifests/v1 status=201") {
		t.Errorf("the access log lacks the manifest PUT:\n%s", logs)
	}
	d.Must("rm", "-f", "registry")
	d.Must("volume", "rm", "regdata")
}
