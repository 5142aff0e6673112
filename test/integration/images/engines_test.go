package images_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
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

// podman is a private podman installation: its own store, run root, temporary directory,
// network configuration and containers.conf/storage.conf (so the host's do not matter).
type podman struct {
	t      *testing.T
	dir    string
	env    []string
	global []string
}

// newPodman makes a podman in work/name (keep name short: see the run root below).
func newPodman(t *testing.T, work, name string) *podman {
	t.Helper()
	requireTools(t, "podman")
	dir := filepath.Join(work, name)
	// podman refuses a run root longer than 50 bytes (its conmon socket paths must fit).
	if rr := filepath.Join(dir, "run"); len(rr) > 50 {
		t.Fatalf("podman run root %s is %d bytes, podman takes at most 50: use a shorter TMPDIR", rr, len(rr))
	}
	for _, d := range []string{"root", "run", "tmp", "networks", "config"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	conf := fmt.Sprintf("[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"none\"\nimage_copy_tmp_dir = \"%[1]s/tmp\"\n"+
		"[network]\nnetwork_config_dir = \"%[1]s/networks\"\n", dir)
	storage := fmt.Sprintf("[storage]\ndriver = \"overlay\"\ngraphroot = \"%[1]s/root\"\nrunroot = \"%[1]s/run\"\n", dir)
	if err := os.WriteFile(filepath.Join(dir, "containers.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "storage.conf"), []byte(storage), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &podman{
		t:   t,
		dir: dir,
		env: baseEnv("CONTAINERS_CONF="+filepath.Join(dir, "containers.conf"),
			"CONTAINERS_STORAGE_CONF="+filepath.Join(dir, "storage.conf"),
			"XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "TMPDIR="+filepath.Join(dir, "tmp")),
		global: []string{
			"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"),
			"--tmpdir", filepath.Join(dir, "tmp"), "--network-config-dir", filepath.Join(dir, "networks"),
			"--events-backend", "none", "--cgroup-manager", "cgroupfs", "--storage-driver", "overlay",
		},
	}
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
	return runErr(p.t, p.env, p.dir, "podman", p.global, args...)
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
	if dir == "" || !strings.HasPrefix(dir, p.dir+"/") {
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

// dockerd is a private dockerd (and the containerd it starts): its own data root, exec root,
// socket, pid file and daemon.json; overlay2; no bridge, no iptables. No container runs.
type dockerd struct {
	t       *testing.T
	dir     string
	cli     string // the docker.io package's CLI
	env     []string
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
}

func newDockerd(t *testing.T, work string) *dockerd {
	t.Helper()
	requireTools(t, "dockerd", "docker", "containerd")
	dir := filepath.Join(work, "docker")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "docker.sock")
	if len(sock) >= 108 {
		t.Fatalf("dockerd socket path %s is %d bytes, more than a unix socket takes: use a shorter TMPDIR", sock, len(sock))
	}
	if err := os.WriteFile(filepath.Join(dir, "daemon.json"), daemonJSON(dir), 0o644); err != nil {
		t.Fatal(err)
	}
	d := &dockerd{t: t, dir: dir, logPath: filepath.Join(dir, "dockerd.log"), exited: make(chan struct{})}
	// The docker.io package's CLI, which matches its daemon; another docker in PATH may be
	// far newer.
	d.cli = "/usr/bin/docker"
	if _, err := os.Stat(d.cli); err != nil {
		d.cli = "docker"
	}
	logf, err := os.Create(d.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	d.cmd = exec.Command("dockerd",
		"--config-file", filepath.Join(dir, "daemon.json"),
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--host", "unix://"+sock,
		"--pidfile", filepath.Join(dir, "docker.pid"),
		"--storage-driver", "overlay2",
		"--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false",
		"--exec-opt", "native.cgroupdriver=cgroupfs")
	d.cmd.Env = baseEnv()
	d.cmd.Dir = dir
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	// If the test binary dies, dockerd shuts down (and stops its containerd).
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start dockerd: %v", err)
	}
	go func() { d.cmd.Wait(); close(d.exited) }()
	d.env = baseEnv("DOCKER_HOST=unix://"+sock, "DOCKER_CONFIG="+filepath.Join(dir, "cli"))
	t.Cleanup(d.teardown)
	if err := d.waitReady(60 * time.Second); err != nil {
		t.Fatalf("dockerd: %v\n%s", err, d.logTail())
	}
	return d
}

func (d *dockerd) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-d.exited:
			return fmt.Errorf("dockerd exited: %v", d.cmd.ProcessState)
		default:
		}
		cmd := exec.Command(d.cli, "version", "--format", "{{.Server.Version}}")
		cmd.Env = d.env
		out, err := cmd.CombinedOutput()
		if err == nil {
			d.t.Logf("dockerd %s ready (CLI %s)", strings.TrimSpace(string(out)), d.cli)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %v %s", timeout, err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (d *dockerd) logTail() string {
	b, _ := os.ReadFile(d.logPath)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return "dockerd log:\n" + string(b)
}

// do runs the docker CLI against this daemon and fails the test unless it exits 0.
func (d *dockerd) do(args ...string) string {
	d.t.Helper()
	return run(d.t, d.env, d.dir, d.cli, args...)
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
		if !strings.HasPrefix(l, d.dir+"/") {
			d.t.Fatalf("docker image %s: layer directory %q is not in the test's data root", ref, l)
		}
	}
	if len(layers) != len(im.RootFS.Layers) {
		d.t.Fatalf("docker image %s: %d layer directories for %d layers", ref, len(layers), len(im.RootFS.Layers))
	}
	if len(layers) == 1 {
		return treeOf(d.t, layers[0])
	}
	mnt, err := os.MkdirTemp(d.dir, "view-")
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
// and unmounts its data root) and waits for it.
func (d *dockerd) teardown() {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(40 * time.Second):
		d.t.Errorf("dockerd (pid %d) did not exit 40s after SIGTERM: killing it", d.cmd.Process.Pid)
		d.cmd.Process.Kill()
		<-d.exited
	}
	// containerd, which dockerd started, may take a moment longer to go.
	for deadline := time.Now().Add(15 * time.Second); len(processesUsing(d.dir)) > 0 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	if d.t.Failed() {
		d.t.Log(d.logTail())
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
	return run(t, baseEnv("TMPDIR="+tmp), work, "skopeo", append([]string{"--insecure-policy"}, args...)...)
}

// daemonJSON keeps dockerd's identity key (by default /etc/docker/key.json)
// in dir: other tests (CVE-2019-19921) watch the host's /etc.
func daemonJSON(dir string) []byte {
	b, _ := json.Marshal(map[string]string{"deprecated-key-path": filepath.Join(dir, "key.json")})
	return b
}
