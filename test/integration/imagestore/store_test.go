package imagestore_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"berth/internal/content"
	"berth/internal/errdefs"
	"berth/internal/image"
	"berth/internal/snapshot"
	"berth/test/bundle"
	"berth/test/imagetest"
)

// An imported image keeps its tree and config through export, save and load.
func TestImportSaveLoadKeepsTreeAndConfig(t *testing.T) {
	ctx := context.Background()
	tarball, rootfs := busyboxTar(t)
	want := imagetest.TreeManifest(t, rootfs)
	s := openStore(t, t.TempDir())
	im := importFile(t, s, tarball, "berth-test/bb:1", `CMD ["/bin/sh", "-c", "echo hi"]`, "ENV A=1 B=two", "WORKDIR /data", "EXPOSE 8080", "USER nobody", "LABEL x=y")
	if got := exportManifest(t, s, "berth-test/bb:1"); !slices.Equal(got, want) {
		t.Fatalf("exported tree differs from the source:\n%s", diff(want, got))
	}
	c := im.Config.Config
	if !slices.Equal(c.Cmd, []string{"/bin/sh", "-c", "echo hi"}) || !slices.Equal(c.Env, []string{"A=1", "B=two"}) ||
		c.WorkingDir != "/data" || c.User != "nobody" || c.Labels["x"] != "y" {
		t.Fatalf("config lost changes: %+v", c)
	}
	if _, ok := c.ExposedPorts["8080/tcp"]; !ok {
		t.Fatalf("EXPOSE lost: %v", c.ExposedPorts)
	}
	archive := save(t, s, "berth-test/bb")

	s2 := openStore(t, t.TempDir())
	loaded, err := s2.Load(ctx, bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded) != 1 || loaded[0].Ref != "berth-test/bb:1" || loaded[0].Image.ID != im.ID || loaded[0].Image.Target.Digest != im.Target.Digest {
		t.Fatalf("loaded %+v, want berth-test/bb:1 %s (manifest %s)", loaded, im.ID, im.Target.Digest)
	}
	if got := exportManifest(t, s2, "berth-test/bb:1"); !slices.Equal(got, want) {
		t.Fatalf("tree after save/load differs:\n%s", diff(want, got))
	}
	// Saving again gives the same bytes (deterministic archives).
	if again := save(t, s2, "berth-test/bb:1"); !bytes.Equal(again, archive) {
		t.Error("save after load is not byte-identical")
	}
	check(t, s)
	check(t, s2)
}

// Acceptance 2: two images sharing a base layer store it once and unpack it
// once; removing one keeps the other runnable.
func TestSharedBaseLayerOnceAndRemoveKeepsOther(t *testing.T) {
	ctx := context.Background()
	tarball, _ := busyboxTar(t)
	src := openStore(t, t.TempDir())
	base := importFile(t, src, tarball, "berth-test/base:1")
	// A second image on the same base: a container's change, committed.
	if _, err := src.Snaps.Prepare(ctx, "c1", base.TopLayer()); err != nil {
		t.Fatal(err)
	}
	up, _ := src.Snaps.UpperDir("c1")
	os.WriteFile(filepath.Join(up, "hello"), []byte("from the top layer\n"), 0o644)
	top, err := src.Commit(ctx, image.CommitOptions{Snapshot: "c1", Image: base.ID, Ref: "berth-test/top:1", Author: "tester", Message: "add hello",
		Changes: []string{`CMD ["cat", "/hello"]`}})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Snaps.Remove("c1"); err != nil {
		t.Fatal(err)
	}
	if len(top.ChainIDs) != 2 || top.ChainIDs[0] != base.ChainIDs[0] || top.Parent != base.ID {
		t.Fatalf("commit: chain %v parent %s", top.ChainIDs, top.Parent)
	}
	h, err := src.History("berth-test/top:1")
	if err != nil || len(h) != 2 || h[0].Comment != "add hello" || h[0].ID != top.ID {
		t.Fatalf("history %+v %v", h, err)
	}
	archA, archB := save(t, src, "berth-test/base:1"), save(t, src, "berth-test/top:1")

	root := t.TempDir()
	s := openStore(t, root)
	if _, err := s.Load(ctx, bytes.NewReader(archA)); err != nil {
		t.Fatal(err)
	}
	baseFS, _ := s.Snaps.LayerFS(base.ChainIDs[0])
	var before syscall.Stat_t
	syscall.Stat(filepath.Join(baseFS, "bin/busybox"), &before)
	sizeA := du(t, root)
	if _, err := s.Load(ctx, bytes.NewReader(archB)); err != nil {
		t.Fatal(err)
	}
	var after syscall.Stat_t
	syscall.Stat(filepath.Join(baseFS, "bin/busybox"), &after)
	if before.Ino != after.Ino || before.Ctim != after.Ctim {
		t.Error("the shared base layer was unpacked again")
	}
	layers, _ := s.Snaps.Layers()
	if len(layers) != 2 {
		t.Fatalf("%d layers on disk, want 2 (base once + top)", len(layers))
	}
	// The second load adds only the top layer (its blob and its files) and
	// two small documents, not the base again.
	topLayer, _ := s.Snaps.Layer(top.ChainIDs[1])
	grown := du(t, root) - sizeA
	baseLayer, _ := s.Snaps.Layer(base.ChainIDs[0])
	if grown >= baseLayer.Size {
		t.Errorf("second load grew the store by %d bytes, the base layer alone is %d", grown, baseLayer.Size)
	}
	u, err := s.DiskUsage()
	if err != nil {
		t.Fatal(err)
	}
	if u.LayersSize != baseLayer.Size+topLayer.Size {
		t.Errorf("layers size %d, want %d + %d", u.LayersSize, baseLayer.Size, topLayer.Size)
	}
	for _, iu := range u.Images {
		if iu.SharedSize != baseLayer.Size {
			t.Errorf("image %s shared size %d, want %d", iu.ID, iu.SharedSize, baseLayer.Size)
		}
	}

	// Remove the base image: the top one still runs.
	if _, err := s.Remove(ctx, "berth-test/base:1", image.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve("berth-test/base:1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("base still resolves: %v", err)
	}
	if out := runImage(t, s, "berth-test/top:1"); out != "from the top layer\n" {
		t.Fatalf("top image output %q", out)
	}
	check(t, s)
	check(t, src)
}

// runImage runs an image's Cmd in a berth-runtime container on a snapshot
// of it and returns the output; the snapshot and its lease are removed.
func runImage(t *testing.T, s *image.Store, name string) string {
	t.Helper()
	ctx := context.Background()
	im, err := s.Resolve(name)
	if err != nil {
		t.Fatal(err)
	}
	b := bundle.ForTest(t, bundle.WithTerminal(false), bundle.WithArgs(append(im.Config.Config.Entrypoint, im.Config.Config.Cmd...)...))
	key := "run-" + b.ID
	if err := s.AddLease(image.Lease{ID: key, Image: im.ID, Snapshot: key}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Snaps.Prepare(ctx, key, im.TopLayer()); err != nil {
		t.Fatal(err)
	}
	// The image is in use now: removing it needs force.
	if _, err := s.Remove(ctx, im.ID.String(), image.RemoveOptions{}); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("removing an image in use: %v, want a conflict", err)
	}
	if err := s.Snaps.Mount(key, b.Rootfs); err != nil {
		t.Fatal(err)
	}
	defer func() {
		snapshot.Unmount(b.Rootfs)
		s.RemoveLease(key)
		s.Snaps.Remove(key)
	}()
	var out, errb bytes.Buffer
	cmd := exec.Command(runtimeBin, "--root", filepath.Join(t.TempDir(), "state"), "run", "--bundle", b.Dir, b.ID)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("run %s: %v\n%s", name, err, errb.String())
	}
	return out.String()
}

// du is the number of bytes allocated under root.
func du(t *testing.T, root string) int64 {
	t.Helper()
	var n int64
	seen := map[uint64]bool{}
	filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil || !info.Mode().IsRegular() {
			return nil
		}
		st := info.Sys().(*syscall.Stat_t)
		if !seen[st.Ino] {
			seen[st.Ino] = true
			n += st.Size
		}
		return nil
	})
	return n
}

func TestTagUntagRemoveListPrune(t *testing.T) {
	ctx := context.Background()
	tarball, _ := busyboxTar(t)
	s := openStore(t, t.TempDir())
	im := importFile(t, s, tarball, "berth-test/a:1", "LABEL tier=base")
	if err := s.Tag("berth-test/a:1", "localhost:5000/x/y:2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Tag("berth-test/a:1", "busybox@sha256:"+strings.Repeat("a", 64)); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("tag with digest: %v", err)
	}
	for _, name := range []string{"docker.io/berth-test/a:1", "localhost:5000/x/y:2", im.ID.String(), im.ID.Encoded()[:10],
		"localhost:5000/x/y@" + im.Target.Digest.String()} {
		got, err := s.Resolve(name)
		if err != nil || got.ID != im.ID {
			t.Errorf("resolve %q: %v", name, err)
		}
	}
	if _, err := s.Resolve("nope:1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("resolve missing: %v", err)
	}
	// Removing by ID with two names needs force; by one name only untags.
	if _, err := s.Remove(ctx, im.ID.String(), image.RemoveOptions{}); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("remove by ID with two tags: %v", err)
	}
	d, err := s.Remove(ctx, "localhost:5000/x/y:2", image.RemoveOptions{})
	if err != nil || len(d) != 1 || d[0].Untagged != "localhost:5000/x/y:2" {
		t.Fatalf("untag by rmi: %+v %v", d, err)
	}
	yes, no := true, false
	for _, c := range []struct {
		f    image.Filters
		want int
	}{
		{image.Filters{}, 1}, {image.Filters{Dangling: &yes}, 0}, {image.Filters{Dangling: &no}, 1},
		{image.Filters{Labels: []string{"tier=base"}}, 1}, {image.Filters{Labels: []string{"tier=top"}}, 0},
		{image.Filters{References: []string{"berth-test/*"}}, 1}, {image.Filters{References: []string{"other"}}, 0},
	} {
		got, err := s.Select(c.f)
		if err != nil || len(got) != c.want {
			t.Errorf("select %+v: %d images (%v), want %d", c.f, len(got), err, c.want)
		}
	}
	// Importing again under the same tag leaves the old image dangling.
	im2 := importFile(t, s, tarball, "berth-test/a:1", "LABEL tier=second")
	if im2.ID == im.ID {
		t.Fatal("second import has the same ID")
	}
	dangling, _ := s.Select(image.Filters{Dangling: &yes})
	if len(dangling) != 1 || dangling[0].ID != im.ID {
		t.Fatalf("dangling %v", dangling)
	}
	res, err := s.Prune(ctx, false, nil)
	if err != nil || len(res.Deleted) != 1 || res.Deleted[0].Deleted != im.ID.String() {
		t.Fatalf("prune: %+v %v", res, err)
	}
	// The layer is shared with im2 (same tarball): nothing but documents freed.
	if left, _ := s.List(); len(left) != 1 {
		t.Fatalf("%d images after prune", len(left))
	}
	if _, err := s.Remove(ctx, "berth-test/a:1", image.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	var blobs int
	s.Content.Walk(func(i content.Info) error { blobs++; return nil })
	layers, _ := s.Snaps.Layers()
	if blobs != 0 || len(layers) != 0 {
		t.Fatalf("after removing every image: %d blobs, %d layers left", blobs, len(layers))
	}
	check(t, s)
}
