// Package registryclient_test proves berth's registry client against a real registry:
// Debian's docker-registry 2.8 (the distribution project's server) runs by PID in a
// private berthd's network namespace on 127.0.0.1:5000 with a temporary root; skopeo
// pushes an image that berth saved into it, and the stock docker CLI pulls it back
// through berthd (progress, RepoDigests, up to date on the second pull, a missing tag),
// runs it, and builds FROM it.
//
// Needs root, the docker CLI, skopeo and docker-registry (apt-get install
// docker-registry); without docker-registry the test skips.
package registryclient_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth/test/berthtest"
)

const registryBin = "/usr/bin/docker-registry"

// startRegistry runs docker-registry in d's network namespace and returns its address.
func startRegistry(t *testing.T, d *berthtest.Daemon) string {
	t.Helper()
	if _, err := os.Stat(registryBin); err != nil {
		t.Skip("docker-registry is not installed (apt-get install docker-registry)")
	}
	dir, err := os.MkdirTemp("/var/tmp", "berth-regc-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	addr := "127.0.0.1:5000"
	cfg := filepath.Join(dir, "config.yml")
	conf := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", filepath.Join(dir, "root"), addr)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := d.HostCmd(context.Background(), registryBin, "serve", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill() // our own child, by PID
		<-done
		logf.Close()
	})
	for i := 0; ; i++ {
		if out, code := d.Host(2*time.Second, "curl", "-sf", "http://"+addr+"/v2/"); code == 0 {
			_ = out
			return addr
		}
		if i > 100 {
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("docker-registry did not start:\n%s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestPullFromDistributionRegistry(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Fatal("skopeo is not installed (apt-get install skopeo)")
	}
	d := berthtest.Start(t, berthtest.Options{})
	addr := startRegistry(t, d)

	// Push an image berth made into the registry with skopeo.
	d.Busybox("regc/bb:v1")
	archive := filepath.Join(d.Dir, "bb.tar")
	d.Must("save", "-o", archive, "regc/bb:v1")
	remote := addr + "/test/bb:v1"
	if out, code := d.Host(2*time.Minute, "skopeo", "copy", "--dest-tls-verify=false", "docker-archive:"+archive, "docker://"+remote); code != 0 {
		t.Fatalf("skopeo copy: exit %d\n%s", code, out)
	}
	d.Must("rmi", "regc/bb:v1")

	out, errOut, code := d.Docker("pull", remote)
	if code != 0 {
		t.Fatalf("docker pull: exit %d: %s\n%s\n%s", code, out, errOut, d.LogTail(20))
	}
	for _, want := range []string{"Pulling from test/bb", "Pull complete", "Digest: sha256:", "Status: Downloaded newer image for " + remote} {
		if !strings.Contains(out, want) {
			t.Errorf("docker pull output lacks %q:\n%s", want, out)
		}
	}
	if got := d.Must("inspect", "--format", "{{index .RepoDigests 0}}", remote); !strings.HasPrefix(got, addr+"/test/bb@sha256:") {
		t.Errorf("RepoDigests: %s", got)
	}
	if got := d.Must("run", "--rm", remote, "echo", "pulled and ran"); got != "pulled and ran" {
		t.Errorf("run: %q", got)
	}

	out, errOut, code = d.Docker("pull", remote)
	if code != 0 || !strings.Contains(out, "Image is up to date for "+remote) {
		t.Errorf("second pull: exit %d: %s %s", code, out, errOut)
	}

	_, errOut, code = d.Docker("pull", addr+"/test/bb:missing")
	if code == 0 || !strings.Contains(errOut, "manifest unknown") {
		t.Errorf("missing tag: exit %d: %s", code, errOut)
	}
	_, errOut, code = d.Docker("pull", addr+"/test/nothing")
	if code == 0 || !(strings.Contains(errOut, "not found") || strings.Contains(errOut, "unknown")) {
		t.Errorf("missing repository: exit %d: %s", code, errOut)
	}

	// A build FROM an image that is not here pulls it (its layer blob is still stored
	// until the next garbage collection: "Already exists").
	d.Must("rmi", remote)
	ctxDir := filepath.Join(d.Dir, "ctx")
	os.MkdirAll(ctxDir, 0o755)
	os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM "+remote+"\nRUN echo built > /built\n"), 0o644)
	out, errOut, code = d.Docker("build", "-t", "regc/built", ctxDir)
	if code != 0 || !strings.Contains(out, "Pulling "+remote) || !strings.Contains(out, "Digest: sha256:") {
		t.Fatalf("build FROM a registry image: exit %d: %s\n%s", code, out, errOut)
	}
	if got := d.Must("run", "--rm", "regc/built", "cat", "/built"); got != "built" {
		t.Errorf("built image: %q", got)
	}
}
