// Package imagestore_test holds the image store's integration tests: layer
// sharing, broken input, interrupted imports and loads (kill -9), run as
// root against the real kernel's overlayfs. Interop with docker, podman and
// skopeo is in test/integration/images.
package imagestore_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"berth/internal/image"
	"berth/test/bundle"
	"berth/test/imagetest"
)

var runtimeBin string

// childEnv makes the test binary act as a process that imports or loads
// into a store (for the kill -9 tests): "load|import:<root>:<file>".
const childEnv = "BERTH_IMAGESTORE_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(child(spec))
	}
	if os.Getuid() != 0 {
		fmt.Fprintln(os.Stderr, "imagestore tests need root")
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "berth-imagestore-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	runtimeBin = filepath.Join(dir, "berth-runtime")
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = "/usr/local/go/bin/go"
	}
	cmd := exec.Command(gobin, "build", "-o", runtimeBin, "berth/cmd/berth-runtime")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build berth-runtime: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	bundle.RemoveCgroupParent()
	os.Exit(code)
}

func child(spec string) int {
	parts := strings.SplitN(spec, ":", 3)
	s, err := image.Open(parts[1], image.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Close()
	f, err := os.Open(parts[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer f.Close()
	ctx := context.Background()
	switch parts[0] {
	case "load":
		_, err = s.Load(ctx, f)
	case "load-stream":
		_, err = s.Load(ctx, struct{ io.Reader }{f})
	case "import":
		_, err = s.Import(ctx, f, image.ImportOptions{Ref: "killed:1"})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// openStore opens a store in a fresh directory, closed at cleanup.
func openStore(t *testing.T, root string) *image.Store {
	t.Helper()
	noLeftoverMounts(t)
	s, err := image.Open(root, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// check fails the test when the store is inconsistent.
func check(t *testing.T, s *image.Store) {
	t.Helper()
	ps, err := s.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		t.Errorf("store check: %s", p.What)
	}
}

// busyboxTar makes the rootfs tarball used as a base image, returning the
// tarball path and the rootfs directory.
func busyboxTar(t *testing.T) (string, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "rootfs")
	os.Mkdir(dir, 0o755)
	imagetest.BusyboxRootfs(t, dir)
	tarball := filepath.Join(t.TempDir(), "rootfs.tar")
	imagetest.TarDir(t, dir, tarball)
	return tarball, dir
}

func importFile(t *testing.T, s *image.Store, tarball, ref string, changes ...string) *image.Image {
	t.Helper()
	f, err := os.Open(tarball)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	im, err := s.Import(context.Background(), f, image.ImportOptions{Ref: ref, Changes: changes})
	if err != nil {
		t.Fatal(err)
	}
	return im
}

func save(t *testing.T, s *image.Store, names ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := s.Save(context.Background(), &buf, names); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// flush makes the layers the store committed durable now, so that the
// store's files stay as they are until the next change.
func flush(t *testing.T, s *image.Store) {
	t.Helper()
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
}

// storeFiles lists every file under root with its size (the store's state
// on disk, to compare before and after a failed operation).
func storeFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		if info.IsDir() {
			out = append(out, rel+"/")
		} else {
			out = append(out, fmt.Sprintf("%s %d", rel, info.Size()))
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// exportManifest is the TreeManifest of an image's merged rootfs.
func exportManifest(t *testing.T, s *image.Store, name string) []string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "export.tar")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ExportImage(context.Background(), f, name); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return imagetest.TarManifest(t, out)
}

// noLeftoverMounts fails the test if, after everything else it cleans up,
// something is still mounted under its temporary directories.
func noLeftoverMounts(t *testing.T) {
	top := filepath.Dir(t.TempDir())
	t.Cleanup(func() {
		if m := mountsUnder(top); len(m) > 0 {
			t.Errorf("mounts left behind: %v", m)
		}
	})
}

// mountsUnder returns the mount points under dir still mounted.
func mountsUnder(dir string) []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && strings.HasPrefix(bundle.UnescapeMountinfo(f[4]), dir) {
			out = append(out, f[4])
		}
	}
	return out
}

// diff shows what is only in want (-) and only in got (+).
func diff(want, got []string) string {
	a, b := bundle.DiffLines(want, got)
	var sb strings.Builder
	for _, l := range a {
		sb.WriteString("- " + l + "\n")
	}
	for _, l := range b {
		sb.WriteString("+ " + l + "\n")
	}
	return sb.String()
}
