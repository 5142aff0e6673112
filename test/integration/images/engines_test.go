package images_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"berth/test/engine"
)

// engineImage is what `podman image inspect` and `docker image inspect` say of an image.
type engineImage struct {
	ID          string `json:"Id"`
	RepoTags    []string
	Config      ocispec.ImageConfig
	RootFS      struct{ Layers []string }
	GraphDriver struct {
		Name string
		Data map[string]string
	}
}

// id is the image ID without "sha256:" (podman shows it bare, docker with the prefix).
func (im engineImage) id() string { return strings.TrimPrefix(im.ID, "sha256:") }

func parseInspect(t *testing.T, tool, out string) engineImage {
	t.Helper()
	var ims []engineImage
	if err := json.Unmarshal([]byte(out), &ims); err != nil || len(ims) != 1 {
		t.Fatalf("%s image inspect: %v (%d images)\n%s", tool, err, len(ims), out)
	}
	return ims[0]
}

// podman is a private podman installation (engine.Podman) without events.
type podman struct {
	*engine.Podman
	t *testing.T
}

// newPodman makes a podman in work/name (keep name short: podman takes a run root of at most
// 50 bytes).
func newPodman(t *testing.T, work, name string) *podman {
	t.Helper()
	requireTools(t, "podman")
	ep, err := engine.NewPodman(engine.PodmanOptions{Dir: filepath.Join(work, name)})
	if err != nil {
		t.Fatal(err)
	}
	p := &podman{Podman: ep, t: t}
	t.Cleanup(p.teardown)
	return p
}

// do runs podman with the private flags and fails the test unless it exits 0.
func (p *podman) do(args ...string) string {
	p.t.Helper()
	out, err := p.try(args...)
	if err != nil {
		p.t.Fatalf("podman %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// try runs podman with the private flags and returns the error.
func (p *podman) try(args ...string) (string, error) {
	p.t.Helper()
	return runErr(p.t, p.Env, p.Dir, "podman", p.Flags, args...)
}

func (p *podman) inspect(ref string) engineImage {
	p.t.Helper()
	return parseInspect(p.t, "podman", p.do("image", "inspect", ref))
}

// tags lists the image names podman has ("repo:tag").
func (p *podman) tags() []string {
	p.t.Helper()
	return strings.Fields(p.do("images", "--noheading", "--format", "{{.Repository}}:{{.Tag}}"))
}

// tree is the root filesystem of image ref as podman mounts it (`podman image mount`: an
// overlay of the layers in podman's store).
func (p *podman) tree(ref string) tree {
	p.t.Helper()
	dir := strings.TrimSpace(p.do("image", "mount", ref))
	if dir == "" || !strings.HasPrefix(dir, p.Dir+"/") {
		p.t.Fatalf("podman image mount %s: mount point %q is not in the test's podman store", ref, dir)
	}
	defer p.do("image", "unmount", ref)
	return treeOf(p.t, dir)
}

// teardown removes everything podman made: `system reset` removes the images and the store
// and unmounts it (with its private flags it touches only this podman's directories).
func (p *podman) teardown() {
	if _, err := p.try("image", "unmount", "--all"); err != nil {
		p.t.Errorf("podman image unmount --all: %v", err)
	}
	if _, err := p.try("system", "reset", "--force"); err != nil {
		p.t.Errorf("podman system reset: %v", err)
	}
}

// dockerd is a private dockerd (engine.Dockerd) with overlay2, driven by the docker.io
// package's CLI. No container runs.
type dockerd struct {
	*engine.Dockerd
	t *testing.T
}

func newDockerd(t *testing.T, work string) *dockerd {
	t.Helper()
	requireTools(t, "dockerd", "docker", "containerd")
	// The docker.io package's CLI, which matches its daemon; another docker in PATH may be
	// far newer.
	cli := "/usr/bin/docker"
	if _, err := os.Stat(cli); err != nil {
		cli = "docker"
	}
	ed, err := engine.StartDockerd(engine.DockerdOptions{Dir: filepath.Join(work, "docker"), Docker: cli, StorageDriver: "overlay2"})
	if err != nil {
		t.Fatalf("dockerd: %v", err)
	}
	d := &dockerd{Dockerd: ed, t: t}
	t.Cleanup(d.teardown)
	v, err := d.WaitReady(context.Background(), 60*time.Second, "version", "--format", "{{.Server.Version}}")
	if err != nil {
		t.Fatalf("dockerd: %v\n%s", err, d.LogTail(6000))
	}
	t.Logf("dockerd %s ready (CLI %s)", strings.TrimSpace(v), d.Docker)
	return d
}

// do runs the docker CLI against this daemon and fails the test unless it exits 0.
func (d *dockerd) do(args ...string) string {
	d.t.Helper()
	return run(d.t, d.Env, d.Dir, d.Docker, args...)
}

func (d *dockerd) inspect(ref string) engineImage {
	d.t.Helper()
	return parseInspect(d.t, "docker", d.do("image", "inspect", ref))
}

// tags lists the image names docker has ("repo:tag").
func (d *dockerd) tags() []string {
	d.t.Helper()
	return strings.Fields(d.do("images", "--format", "{{.Repository}}:{{.Tag}}"))
}

// tree is the root filesystem of image ref as dockerd stored it: its overlay2 layer
// directories, read directly (one layer) or through a read-only overlay mount of them.
func (d *dockerd) tree(ref string) tree {
	d.t.Helper()
	im := d.inspect(ref)
	if im.GraphDriver.Name != "overlay2" {
		d.t.Fatalf("docker image %s: graph driver %q, want overlay2", ref, im.GraphDriver.Name)
	}
	layers := []string{im.GraphDriver.Data["UpperDir"]}
	if l := im.GraphDriver.Data["LowerDir"]; l != "" {
		layers = append(layers, strings.Split(l, ":")...)
	}
	for _, l := range layers {
		if !strings.HasPrefix(l, d.Dir+"/") {
			d.t.Fatalf("docker image %s: layer directory %q is not in the test's data root", ref, l)
		}
	}
	if len(layers) != len(im.RootFS.Layers) {
		d.t.Fatalf("docker image %s: %d layer directories for %d layers", ref, len(layers), len(im.RootFS.Layers))
	}
	if len(layers) == 1 {
		return treeOf(d.t, layers[0])
	}
	mnt, err := os.MkdirTemp(d.Dir, "view-")
	if err != nil {
		d.t.Fatal(err)
	}
	defer os.Remove(mnt)
	if err := unix.Mount("overlay", mnt, "overlay", unix.MS_RDONLY, "lowerdir="+strings.Join(layers, ":")); err != nil {
		d.t.Fatalf("mount a read-only overlay of docker's layers of %s: %v", ref, err)
	}
	defer func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			d.t.Errorf("unmount %s: %v", mnt, err)
		}
	}()
	return treeOf(d.t, mnt)
}

// teardown stops the dockerd this test started (SIGTERM to its PID; it stops its containerd
// and unmounts its data root) and waits for it and for its containerd, which may take a
// moment longer to go. workDir's cleanup then checks that nothing is left.
func (d *dockerd) teardown() {
	if d.Stop(40 * time.Second) {
		d.t.Errorf("dockerd (pid %d) did not exit 40s after SIGTERM: killed it", d.PID())
	}
	engine.AwaitProcessesGone(d.Dir, 15*time.Second)
	if d.t.Failed() {
		d.t.Log(d.LogTail(6000))
	}
}

// skopeo runs skopeo (with its temporary files in the test's directory) and fails the test
// unless it exits 0. The policy is not the host's: these copies are between local files.
func skopeo(t *testing.T, work string, args ...string) string {
	t.Helper()
	requireTools(t, "skopeo")
	tmp := filepath.Join(work, "skopeo-tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	return run(t, engine.BaseEnv("TMPDIR="+tmp), work, "skopeo", append([]string{"--insecure-policy"}, args...)...)
}
