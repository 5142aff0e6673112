package registryinterop_test

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"berth/test/berthtest"
	"berth/test/engine"
)

// skopeo runs skopeo in d's network namespace and fails the test unless it exits 0.
func skopeo(t *testing.T, d *berthtest.Daemon, args ...string) string {
	t.Helper()
	out, code := d.Host(2*time.Minute, "skopeo", args...)
	if code != 0 {
		t.Fatalf("skopeo %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// skopeoInspect is what `skopeo inspect` says of an image in a registry.
type skopeoInspect struct {
	Digest string
	Layers []string
}

// ociManifest is the part of an image manifest the tests compare.
type ociManifest struct {
	MediaType string
	Config    struct{ Digest string }
	Layers    []struct{ Digest string }
}

func (m ociManifest) layers() []string {
	var out []string
	for _, l := range m.Layers {
		out = append(out, l.Digest)
	}
	return out
}

func sha256Digest(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:])
}

// TestSkopeo: skopeo copies into berth's server and out of it, and the digests agree with
// what the server and berthd report.
func TestSkopeo(t *testing.T) {
	requireTools(t, "skopeo")
	d := berthtest.Start(t, berthtest.Options{})
	s := startServer(t, d, 5002, "")
	importImage(t, d, "sk/src:v1", tarFile{Name: "skopeo-marker", Data: []byte("copied by skopeo\n")})
	src := inspectImage(t, d, "sk/src:v1")
	archive := filepath.Join(d.Dir, "src.tar")
	d.Must("save", "-o", archive, "sk/src:v1")

	// docker-archive (berth's save) -> berth's server.
	remote := s.Addr + "/sk/bb:v1"
	skopeo(t, d, "copy", "--dest-tls-verify=false", "docker-archive:"+archive, "docker://"+remote)
	os.Remove(archive)
	var si skopeoInspect
	if err := json.Unmarshal([]byte(skopeo(t, d, "inspect", "--tls-verify=false", "docker://"+remote)), &si); err != nil {
		t.Fatal(err)
	}
	if got := s.ManifestDigest("sk/bb", "v1"); si.Digest == "" || got != si.Digest {
		t.Errorf("skopeo inspect says %s, the server %s", si.Digest, got)
	}
	raw := skopeo(t, d, "inspect", "--raw", "--tls-verify=false", "docker://"+remote)
	if sha256Digest([]byte(raw)) != si.Digest {
		t.Errorf("the raw manifest has digest %s, skopeo inspect says %s", sha256Digest([]byte(raw)), si.Digest)
	}
	var m ociManifest
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatal(err)
	}
	if m.Config.Digest != src.ID || !slices.Equal(m.layers(), si.Layers) {
		t.Errorf("the server's manifest: config %s (berth's image is %s), layers %v (skopeo: %v)", m.Config.Digest, src.ID, m.layers(), si.Layers)
	}

	// berth's server -> dir: the same manifest bytes, the blobs as the server has them.
	dir := filepath.Join(d.Dir, "skopeo-dir")
	skopeo(t, d, "copy", "--src-tls-verify=false", "docker://"+remote, "dir:"+dir)
	mb, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if sha256Digest(mb) != si.Digest {
		t.Errorf("dir: manifest.json has digest %s, the server %s", sha256Digest(mb), si.Digest)
	}
	for _, b := range append([]string{m.Config.Digest}, m.layers()...) {
		data, err := os.ReadFile(filepath.Join(dir, strings.TrimPrefix(b, "sha256:")))
		if err != nil || sha256Digest(data) != b {
			t.Errorf("dir: blob %s: %v (digest %s)", b, err, sha256Digest(data))
		}
	}
	os.RemoveAll(dir)

	// berth's server -> oci-archive: converted to OCI, same config and layer blobs.
	oci := filepath.Join(d.Dir, "skopeo.oci.tar")
	skopeo(t, d, "copy", "--src-tls-verify=false", "docker://"+remote, "oci-archive:"+oci)
	om := ociArchiveManifest(t, oci)
	os.Remove(oci)
	if om.MediaType != "application/vnd.oci.image.manifest.v1+json" || om.Config.Digest != m.Config.Digest || !slices.Equal(om.layers(), m.layers()) {
		t.Errorf("oci-archive: manifest %s config %s layers %v; the server's: config %s layers %v", om.MediaType, om.Config.Digest, om.layers(), m.Config.Digest, m.layers())
	}

	// berthd pulls what skopeo pushed: the same image, at skopeo's digest.
	out, errOut, code := d.Docker("pull", remote)
	if code != 0 || !strings.Contains(out, "Digest: "+si.Digest) {
		t.Fatalf("docker pull %s: exit %d, want digest %s:\n%s\n%s", remote, code, si.Digest, out, errOut)
	}
	got := inspectImage(t, d, remote)
	if got.ID != src.ID || !slices.Contains(got.RepoDigests, s.Addr+"/sk/bb@"+si.Digest) {
		t.Errorf("pulled %s RepoDigests %v; want %s and %s/sk/bb@%s", got.ID, got.RepoDigests, src.ID, s.Addr, si.Digest)
	}
	if out := d.Must("run", "--rm", remote, "cat", "/skopeo-marker"); out != "copied by skopeo" {
		t.Errorf("run the pulled image: %q", out)
	}

	// skopeo reads what berthd pushed, and copies it within berth's server.
	pushedRef := s.Addr + "/sk/pushed:v1"
	d.Must("tag", "sk/src:v1", pushedRef)
	dgst := pushed(push(t, d, pushedRef), "v1")
	var pi skopeoInspect
	if err := json.Unmarshal([]byte(skopeo(t, d, "inspect", "--tls-verify=false", "docker://"+pushedRef)), &pi); err != nil {
		t.Fatal(err)
	}
	if pi.Digest != dgst {
		t.Errorf("skopeo inspect of what berthd pushed: %s, docker push said %s", pi.Digest, dgst)
	}
	var cfg struct {
		Config struct{ Cmd []string }
	}
	if err := json.Unmarshal([]byte(skopeo(t, d, "inspect", "--config", "--tls-verify=false", "docker://"+pushedRef)), &cfg); err != nil || !slices.Equal(cfg.Config.Cmd, []string{"sh"}) {
		t.Errorf("skopeo inspect --config: Cmd %v (%v), want [sh]", cfg.Config.Cmd, err)
	}
	copied := s.Addr + "/sk/copied:v1"
	skopeo(t, d, "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "docker://"+pushedRef, "docker://"+copied)
	if got := s.ManifestDigest("sk/copied", "v1"); got != dgst {
		t.Errorf("skopeo copy within berth's server: %s, want %s", got, dgst)
	}
	d.Must("rmi", "sk/src:v1", pushedRef, remote)
}

// ociArchiveManifest reads the (only) image manifest of an OCI archive.
func ociArchiveManifest(t *testing.T, path string) ociManifest {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		if name == "index.json" || (strings.HasPrefix(name, "blobs/") && h.Size < 1<<20) {
			b, _ := io.ReadAll(tr)
			files[name] = b
		}
	}
	var idx struct{ Manifests []struct{ Digest string } }
	if err := json.Unmarshal(files["index.json"], &idx); err != nil || len(idx.Manifests) != 1 {
		t.Fatalf("oci-archive index.json: %v %s", err, files["index.json"])
	}
	var m ociManifest
	if err := json.Unmarshal(files["blobs/sha256/"+strings.TrimPrefix(idx.Manifests[0].Digest, "sha256:")], &m); err != nil {
		t.Fatalf("oci-archive manifest: %v", err)
	}
	return m
}

// podman is a private podman (test/engine) that reaches the registry in d's network
// namespace.
type podman struct {
	*engine.Podman
	t *testing.T
	d *berthtest.Daemon
}

// run runs podman with its private flags in d's network namespace.
func (p *podman) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := p.d.HostCmd(ctx, "podman", p.Args(args...)...)
	cmd.Env = p.Env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (p *podman) must(args ...string) string {
	p.t.Helper()
	out, err := p.run(args...)
	if err != nil {
		p.t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

// TestPodmanPull: podman pulls from berth's server what docker pushed through berthd.
func TestPodmanPull(t *testing.T) {
	requireTools(t, "podman")
	d := berthtest.Start(t, berthtest.Options{})
	s := startServer(t, d, 5003, "")
	ref := s.Addr + "/pm/app:v1"
	importImage(t, d, ref, tarFile{Name: "podman-marker", Data: []byte("pulled by podman\n")})
	src := inspectImage(t, d, ref)
	dgst := pushed(push(t, d, ref), "v1")
	if dgst == "" {
		t.Fatal("docker push reported no digest")
	}

	ep, err := engine.NewPodman(engine.PodmanOptions{Dir: filepath.Join(d.Dir, "pm")})
	if err != nil {
		t.Fatal(err)
	}
	p := &podman{Podman: ep, t: t, d: d}
	t.Cleanup(func() {
		if out, err := p.run("image", "unmount", "--all"); err != nil {
			t.Errorf("podman image unmount --all: %v\n%s", err, out)
		}
		if out, err := p.run("system", "reset", "--force"); err != nil {
			t.Errorf("podman system reset: %v\n%s", err, out)
		}
		if n, left := engine.UnmountUnder(ep.Dir); n > 0 || len(left) > 0 {
			t.Errorf("LEAK: podman left %d mounts under %s (%v still mounted)", n, ep.Dir, left)
		}
		os.RemoveAll(ep.Dir)
	})
	p.must("pull", "--tls-verify=false", ref)
	var ims []struct {
		ID          string `json:"Id"`
		Digest      string
		RepoDigests []string
		Config      struct{ Cmd []string }
	}
	if err := json.Unmarshal([]byte(p.must("image", "inspect", ref)), &ims); err != nil || len(ims) != 1 {
		t.Fatalf("podman image inspect: %v (%d images)", err, len(ims))
	}
	im := ims[0]
	if "sha256:"+im.ID != src.ID {
		t.Errorf("podman's image ID %s, berth's %s", im.ID, src.ID)
	}
	if im.Digest != dgst || !slices.Contains(im.RepoDigests, s.Addr+"/pm/app@"+dgst) {
		t.Errorf("podman: Digest %s RepoDigests %v, want %s", im.Digest, im.RepoDigests, dgst)
	}
	if !slices.Equal(im.Config.Cmd, []string{"sh"}) {
		t.Errorf("podman: Cmd %v, want [sh]", im.Config.Cmd)
	}
	mnt := p.must("image", "mount", ref)
	b, err := os.ReadFile(filepath.Join(mnt, "podman-marker"))
	p.must("image", "unmount", ref)
	if err != nil || string(b) != "pulled by podman\n" {
		t.Errorf("podman image mount: /podman-marker %q (%v)", b, err)
	}
	d.Must("rmi", ref)
}
