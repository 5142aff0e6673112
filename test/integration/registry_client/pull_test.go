// Package registryclient_test proves berth's registry client against a real registry:
// Debian's docker-registry 2.8 (the distribution project's server) runs by PID in a
// private berthd's network namespace on 127.0.0.1:5000 with a temporary root; skopeo
// pushes an image that berth saved into it, and the stock docker CLI pulls it back
// through berthd (progress, RepoDigests, up to date on the second pull, a missing tag),
// runs it, and builds FROM it. The docker CLI also pushes through berthd into it
// (uploads, layers already there, cross-repository mounts, the registry's digest) and
// pulls the pushed image back.
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
	"regexp"
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

// TestPushToDistributionRegistry: the stock docker CLI pushes through berthd to Debian's
// docker-registry 2.8: every layer uploaded, then "Layer already exists", "Mounted from"
// for another repository; the registry reports the digest docker push printed; after rmi
// the image pulls back identical (image ID, layers, config) and runs.
func TestPushToDistributionRegistry(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	d := berthtest.Start(t, berthtest.Options{})
	addr := startRegistry(t, d)
	d.Busybox("busybox")
	ref := addr + "/test/app:v1"
	ctxDir := filepath.Join(d.Dir, "ctx-push")
	os.MkdirAll(ctxDir, 0o755)
	os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM busybox\nENV PUSHED_TO=distribution\nRUN echo pushed-to-distribution > /marker\nCMD [\"cat\", \"/marker\"]\n"), 0o644)
	d.Must("build", "-q", "-t", ref, ctxDir)
	orig := d.Must("inspect", "--format", "{{.Id}} {{.RootFS.Layers}} {{.Config.Env}} {{.Config.Cmd}}", ref)

	digestRE := regexp.MustCompile(`(?m)^v1: digest: (sha256:[0-9a-f]{64}) size: \d+$`)
	push := func(ref string) (string, string) {
		t.Helper()
		out, errOut, code := d.Docker("push", ref)
		if code != 0 {
			t.Fatalf("docker push %s: exit %d\n%s\n%s\nberthd log:\n%s", ref, code, out, errOut, d.LogTail(3000))
		}
		m := digestRE.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("docker push %s: no \"v1: digest: ... size: N\" line:\n%s", ref, out)
		}
		return out, m[1]
	}
	out, dgst := push(ref)
	if !strings.Contains(out, "The push refers to repository ["+addr+"/test/app]") || strings.Count(out, ": Pushed") != 2 {
		t.Errorf("first push: want the repository line and 2 layers Pushed:\n%s", out)
	}
	// The registry's own word for the tag's digest.
	head, code := d.Host(10*time.Second, "curl", "-sfI",
		"-H", "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
		"http://"+addr+"/v2/test/app/manifests/v1")
	if code != 0 || !strings.Contains(strings.ToLower(head), "docker-content-digest: "+dgst) {
		t.Errorf("docker-registry's HEAD of test/app:v1 (exit %d), want digest %s:\n%s", code, dgst, head)
	}
	if got := d.Must("inspect", "--format", "{{json .RepoDigests}}", ref); !strings.Contains(got, `"`+addr+"/test/app@"+dgst+`"`) {
		t.Errorf("RepoDigests %s lack %s/test/app@%s", got, addr, dgst)
	}

	out, again := push(ref)
	if strings.Count(out, ": Layer already exists") != 2 || again != dgst {
		t.Errorf("second push: want 2 layers already there and digest %s:\n%s", dgst, out)
	}
	other := addr + "/test/other:v1"
	d.Must("tag", ref, other)
	out, mounted := push(other)
	if strings.Count(out, ": Mounted from test/app") != 2 || mounted != dgst {
		t.Errorf("push to another repository: want 2 layers \"Mounted from test/app\" and digest %s:\n%s", dgst, out)
	}

	// Gone from berthd (with the build cache that keeps the RUN layer), pulled back.
	d.Must("rmi", ref, other)
	d.Must("builder", "prune", "-a", "-f")
	out, errOut, code := d.Docker("pull", ref)
	if code != 0 || !strings.Contains(out, "Digest: "+dgst) || !strings.Contains(out, ": Pull complete") {
		t.Fatalf("pull back: exit %d, want digest %s and a layer downloaded:\n%s\n%s", code, dgst, out, errOut)
	}
	if got := d.Must("inspect", "--format", "{{.Id}} {{.RootFS.Layers}} {{.Config.Env}} {{.Config.Cmd}}", ref); got != orig {
		t.Errorf("pulled back: %s\npushed:      %s", got, orig)
	}
	if got := d.Must("run", "--rm", ref); got != "pushed-to-distribution" {
		t.Errorf("run the pulled image: %q", got)
	}
	d.Must("rmi", ref)
}
