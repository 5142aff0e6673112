package images_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"berth/internal/image"
	"berth/test/bundle"
	"berth/test/engine"
	"berth/test/imagetest"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// packages names the Debian package of each tool the tests run.
var packages = map[string]string{
	"podman": "podman", "dockerd": "docker.io", "docker": "docker.io", "containerd": "containerd",
	"skopeo": "skopeo", "umoci": "umoci", "tar": "tar", "busybox": "busybox-static",
}

// requireTools skips the test when not root and fails it when a tool is missing.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	if notRoot != "" {
		t.Skip(notRoot)
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed: apt-get install %s (hack/install-deps.sh): %v", tool, packages[tool], err)
		}
	}
}

// requireToolsOrPackage fails the test unless tool is in PATH, naming its Debian package.
func requireToolsOrPackage(t *testing.T, tool, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Fatalf("%s is needed: apt-get install %s: %v", tool, pkg, err)
	}
}

// workDir makes the test's private directory. At the end of the test, after the engines'
// teardowns (registered later, so run earlier), it fails the test if a mount or a process
// under the directory is left, then unmounts, kills (by PID: they are this test's) and
// removes what is there.
func workDir(t *testing.T) string {
	t.Helper()
	// Short: a dockerd socket path under it must fit in 108 bytes, a podman run root in 50.
	dir, err := os.MkdirTemp("", "bi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, pid := range engine.ProcessesUsing(dir) {
			t.Errorf("process %d left running: %s: killing it", pid, engine.Cmdline(pid))
			unix.Kill(pid, unix.SIGKILL)
		}
		left, err := engine.MountsUnder(dir)
		if err != nil {
			t.Error(err)
		}
		if len(left) > 0 {
			t.Errorf("mounts left under %s: %q", dir, left)
			if _, stuck := engine.UnmountUnder(dir); len(stuck) > 0 {
				t.Errorf("cannot unmount %q", stuck)
			}
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
	})
	return dir
}

// run runs a tool in dir with env, logs the command, its time and output, and fails the test
// unless it exits 0. It returns the standard output.
func run(t *testing.T, env []string, dir, name string, args ...string) string {
	t.Helper()
	out, err := runErr(t, env, dir, name, nil, args...)
	if err != nil {
		t.Fatalf("%s %s: %v", filepath.Base(name), strings.Join(args, " "), err)
	}
	return out
}

// runErr is run that returns the error (with the standard error) instead of failing. The
// hidden arguments come first and are left out of the log (podman's private-store flags).
func runErr(t *testing.T, env []string, dir, name string, hidden []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, append(append([]string{}, hidden...), args...)...)
	cmd.Env, cmd.Dir = env, dir
	cmd.WaitDelay = 5 * time.Second
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	start := time.Now()
	err := cmd.Run()
	t.Logf("$ %s %s  [%v]%s%s", filepath.Base(name), strings.Join(args, " "), time.Since(start).Round(time.Millisecond),
		engine.Indent("stdout", so.String(), 3000), engine.Indent("stderr", se.String(), 3000))
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out: %w", ctx.Err())
	}
	if err != nil {
		return so.String(), fmt.Errorf("%w\n%s", err, se.String())
	}
	return so.String(), nil
}

// Changes are the `--change` instructions every image here is made with, and wantConfig the
// config they give.
var changes = []string{`CMD ["/bin/sh","-c","echo hi"]`, "ENV A=1 B=two", "WORKDIR /data", "EXPOSE 8080", "USER nobody", "LABEL x=y"}

var wantConfig = imageConfig{
	Cmd:          []string{"/bin/sh", "-c", "echo hi"},
	Env:          []string{"A=1", "B=two"},
	WorkingDir:   "/data",
	User:         "nobody",
	ExposedPorts: []string{"8080/tcp"},
	Labels:       map[string]string{"x": "y"},
}

// imageConfig is the part of an image config that the round trips must keep.
type imageConfig struct {
	Cmd, Entrypoint, Env []string
	WorkingDir, User     string
	ExposedPorts         []string
	Labels               map[string]string
}

func configOf(c ocispec.ImageConfig) imageConfig {
	ic := imageConfig{Cmd: c.Cmd, Entrypoint: c.Entrypoint, Env: c.Env, WorkingDir: c.WorkingDir, User: c.User, Labels: c.Labels}
	for p := range c.ExposedPorts {
		ic.ExposedPorts = append(ic.ExposedPorts, p)
	}
	sort.Strings(ic.ExposedPorts)
	return ic
}

func checkConfig(t *testing.T, what string, got ocispec.ImageConfig, want imageConfig) {
	t.Helper()
	if g := configOf(got); !reflect.DeepEqual(g, want) {
		t.Errorf("%s: config\n got %+v\nwant %+v", what, g, want)
	}
}

// tree is a root filesystem as the tests compare it.
type tree struct {
	manifest []string // imagetest.TreeManifest
	links    []string // imagetest.HardLinks
}

func treeOf(t *testing.T, root string) tree {
	t.Helper()
	return tree{manifest: imagetest.TreeManifest(t, root), links: imagetest.HardLinks(t, root)}
}

// tarTree is the tree of a tarball, extracted with GNU tar.
func tarTree(t *testing.T, tarball string) tree {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf", tarball, "-C", dir)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tar -x %s: %v\n%s", tarball, err, b)
	}
	return treeOf(t, dir)
}

// withoutRoot drops the line of the root directory itself.
func (tr tree) withoutRoot() tree {
	var m []string
	for _, l := range tr.manifest {
		if !strings.HasPrefix(l, ". ") {
			m = append(m, l)
		}
	}
	return tree{manifest: m, links: tr.links}
}

func checkTree(t *testing.T, what string, got, want tree) {
	t.Helper()
	if onlyGot, onlyWant := bundle.DiffLines(got.manifest, want.manifest); len(onlyGot)+len(onlyWant) > 0 {
		t.Errorf("%s: root filesystem differs (%d paths, want %d)\n only here: %q\n missing:   %q",
			what, len(got.manifest), len(want.manifest), onlyGot, onlyWant)
	}
	if !reflect.DeepEqual(got.links, want.links) {
		t.Errorf("%s: hard links %q, want %q", what, got.links, want.links)
	}
	if len(want.manifest) < 10 {
		t.Errorf("%s: the expected tree has only %d paths: %q", what, len(want.manifest), want.manifest)
	}
}

// sourceRootfs makes the busybox root filesystem the images here are made of, and its tarball.
func sourceRootfs(t *testing.T, work string) (dir, tarball string, want tree) {
	t.Helper()
	dir = filepath.Join(work, "rootfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	imagetest.BusyboxRootfs(t, dir)
	// BusyboxRootfs's os.Chmod(tmp, 0o1777) loses the sticky bit (os.FileMode spells it
	// os.ModeSticky): set it here, so that the trees compared have a sticky directory.
	if err := unix.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	addTarEdges(t, dir)
	tarball = filepath.Join(work, "rootfs.tar")
	imagetest.TarDir(t, dir, tarball)
	want = treeOf(t, dir)
	if len(want.links) == 0 {
		t.Fatalf("the source rootfs has no hard link: %q", want.manifest)
	}
	return dir, tarball, want
}

// addTarEdges adds what tar formats make hard beyond BusyboxRootfs: a path and a symlink
// target longer than 100 bytes (PAX or GNU long names), a name with a space and non-ASCII
// bytes, an absolute symlink, a symlink with an owner of its own, a setgid directory, an
// empty file with mode 0.
func addTarEdges(t *testing.T, dir string) {
	t.Helper()
	long := filepath.Join("data", strings.Repeat("d", 60), strings.Repeat("e", 60))
	steps := []func() error{
		func() error { return os.MkdirAll(filepath.Join(dir, long), 0o755) },
		func() error {
			return os.WriteFile(filepath.Join(dir, long, "file name \u00fc.txt"), []byte("long\n"), 0o644)
		},
		func() error { return os.Symlink("/"+long+"/file name \u00fc.txt", filepath.Join(dir, "data/longlink")) },
		func() error { return os.Symlink("/etc/passwd", filepath.Join(dir, "data/abs")) },
		func() error { return os.Symlink("owned", filepath.Join(dir, "data/link-owned")) },
		func() error { return unix.Lchown(filepath.Join(dir, "data/link-owned"), 65534, 65534) },
		func() error { return os.Mkdir(filepath.Join(dir, "data/sgid"), 0o755) },
		func() error { return unix.Chmod(filepath.Join(dir, "data/sgid"), 0o2775) },
		func() error { return os.WriteFile(filepath.Join(dir, "data/sgid/empty"), nil, 0o600) },
		func() error { return unix.Chmod(filepath.Join(dir, "data/sgid/empty"), 0) },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("source rootfs, step %d: %v", i, err)
		}
	}
}

// store is a berth image store for one test.
type store struct {
	*image.Store
	t *testing.T
}

// openStore opens a berth store under dir; at the end of the test it checks the store and
// closes it.
func openStore(t *testing.T, dir string) *store {
	t.Helper()
	s, err := image.Open(dir, image.Options{})
	if err != nil {
		t.Fatalf("open berth store: %v", err)
	}
	t.Cleanup(func() {
		problems, err := s.Check(context.Background())
		if err != nil {
			t.Errorf("berth store %s: check: %v", dir, err)
		}
		for _, p := range problems {
			t.Errorf("berth store %s: %s", dir, p.What)
		}
		if err := s.Close(); err != nil {
			t.Errorf("close berth store: %v", err)
		}
	})
	return &store{Store: s, t: t}
}

// importTar is berth's `import` of a rootfs tarball with the package's changes.
func (s *store) importTar(tarball, ref string) *image.Image {
	s.t.Helper()
	f, err := os.Open(tarball)
	if err != nil {
		s.t.Fatal(err)
	}
	defer f.Close()
	im, err := s.Import(context.Background(), f, image.ImportOptions{Ref: ref, Changes: changes})
	if err != nil {
		s.t.Fatalf("berth import %s: %v", ref, err)
	}
	return im
}

// save writes names to the file out with berth's save.
func (s *store) save(out string, names ...string) {
	s.t.Helper()
	f, err := os.Create(out)
	if err != nil {
		s.t.Fatal(err)
	}
	defer f.Close()
	start := time.Now()
	if err := s.Save(context.Background(), f, names); err != nil {
		s.t.Fatalf("berth save %q: %v", names, err)
	}
	if err := f.Close(); err != nil {
		s.t.Fatal(err)
	}
	s.t.Logf("berth save %q -> %s [%v]", names, filepath.Base(out), time.Since(start).Round(time.Millisecond))
}

// load loads the archive file in with berth's load and returns what it reported.
func (s *store) load(in string) []image.Loaded {
	s.t.Helper()
	loaded, err := s.loadErr(in)
	if err != nil {
		s.t.Fatalf("berth load %s: %v", filepath.Base(in), err)
	}
	return loaded
}

func (s *store) loadErr(in string) ([]image.Loaded, error) {
	s.t.Helper()
	f, err := os.Open(in)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	start := time.Now()
	loaded, err := s.Load(context.Background(), f)
	var refs []string
	for _, l := range loaded {
		refs = append(refs, l.Ref+"="+l.Image.ID.Encoded()[:12])
	}
	s.t.Logf("berth load %s -> %q, %v [%v]", filepath.Base(in), refs, err, time.Since(start).Round(time.Millisecond))
	return loaded, err
}

// tree is the root filesystem of image name as berth's ExportImage writes it.
func (s *store) tree(name string) tree {
	s.t.Helper()
	out := filepath.Join(s.t.TempDir(), "export.tar")
	f, err := os.Create(out)
	if err != nil {
		s.t.Fatal(err)
	}
	defer f.Close()
	if err := s.ExportImage(context.Background(), f, name); err != nil {
		s.t.Fatalf("berth export image %s: %v", name, err)
	}
	if err := f.Close(); err != nil {
		s.t.Fatal(err)
	}
	return tarTree(s.t, out)
}

// resolve finds an image in the store by name.
func (s *store) resolve(name string) *image.Image {
	s.t.Helper()
	im, err := s.Resolve(name)
	if err != nil {
		s.t.Fatalf("berth resolve %s: %v", name, err)
	}
	return im
}

// loadedRefs is the sorted list of references a load reported.
func loadedRefs(loaded []image.Loaded) []string {
	var refs []string
	for _, l := range loaded {
		refs = append(refs, l.Ref)
	}
	sort.Strings(refs)
	return refs
}

// wantRefs fails the test unless got (sorted) is want (sorted).
func wantRefs(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	g := append([]string(nil), got...)
	w := append([]string(nil), want...)
	sort.Strings(g)
	sort.Strings(w)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s: references %q, want %q", what, g, w)
	}
}
