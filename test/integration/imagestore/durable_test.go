package imagestore_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"berth/internal/errdefs"
	"berth/internal/image"
	"berth/internal/snapshot"
	"berth/test/imagetest"
)

// layerRecords reads every layer.json of the store at root.
func layerRecords(t *testing.T, root string) map[string]snapshot.Layer {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(root, "snapshots", "layers", "*", "layer.json"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]snapshot.Layer{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var l snapshot.Layer
		if err := json.Unmarshal(b, &l); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out[p] = l
	}
	return out
}

// Layers are committed before their files are synced, marked with the boot
// ID; the marks go once the files are synced (Flush, the background flush,
// or the next Open in the same boot), and a layer marked in an earlier boot
// of the system, whose files may be lost, is unpacked again from its blob
// when the store opens. A loaded layer's blob is its split, rebuilt from
// the layer's own files: when they were lost, the image goes.
func TestLayersUnpackedAgainAfterASystemRestart(t *testing.T) {
	ctx := context.Background()
	if snapshot.BootID() == "" {
		t.Fatal("no boot ID in /proc/sys/kernel/random/boot_id")
	}
	base := imagetest.Tar(t, []imagetest.Entry{{Name: "etc", Type: tar.TypeDir, Mode: 0o755}, {Name: "etc/os", Data: "base"}, {Name: "bin", Type: tar.TypeDir, Mode: 0o755}, {Name: "bin/tool", Data: "a tool", Mode: 0o755}})
	top := imagetest.Tar(t, []imagetest.Entry{{Name: "app", Type: tar.TypeDir, Mode: 0o755}, {Name: "app/main", Data: "the app, version 1"}})
	root := filepath.Join(t.TempDir(), "store")

	s, err := image.Open(root, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, bytes.NewReader(makeArchive(t, "berth-test/durable:1", [][]byte{base, top}, nil))); err != nil {
		t.Fatal(err)
	}
	want := exportManifest(t, s, "berth-test/durable:1")
	// Close does not wait for the background flush: what it left marked
	// is synced by the next Open in this boot.
	s.Close()
	s, err = image.Open(root, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(layerRecords(t, root)); n != 2 {
		t.Fatalf("%d layers, want 2", n)
	}
	noMarks(t, root, "after Open in the same boot")
	s.Close()

	// As if the system had crashed after the load, with the files on
	// disk: the layers' blobs are their splits, rebuilt from the layers
	// themselves and checked against their digests, and the layers are
	// unpacked again from them.
	markEarlierBoot(t, root)
	s, err = image.Open(root, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := exportManifest(t, s, "berth-test/durable:1"); !slices.Equal(got, want) {
		t.Fatalf("tree after the layers were unpacked again:\n%s", diff(want, got))
	}
	noMarks(t, root, "after it was unpacked again")
	check(t, s)
	s.Close()

	// As if the system had crashed after the load, with files lost or cut
	// short: the blobs cannot be rebuilt, so the image is gone (not
	// broken), and loading it again brings it back.
	markEarlierBoot(t, root)
	for p := range layerRecords(t, root) {
		fs := filepath.Join(filepath.Dir(p), "fs")
		for _, f := range []string{"etc/os", "app/main"} {
			if _, err := os.Stat(filepath.Join(fs, f)); err == nil {
				if err := os.Truncate(filepath.Join(fs, f), 0); err != nil {
					t.Fatal(err)
				}
			}
		}
		os.Remove(filepath.Join(fs, "bin", "tool"))
	}
	s, err = image.Open(root, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if im, err := s.Resolve("berth-test/durable:1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("image whose layer files were lost: %v %v", im, err)
	}
	if n := len(layerRecords(t, root)); n != 0 {
		t.Errorf("%d layers left whose files were lost", n)
	}
	check(t, s)
	if n, _ := s.Snaps.TempCount(); n != 0 {
		t.Errorf("%d entries left in the snapshot store's tmp/", n)
	}
	if _, err := s.Load(ctx, bytes.NewReader(makeArchive(t, "berth-test/durable:1", [][]byte{base, top}, nil))); err != nil {
		t.Fatal(err)
	}
	if got := exportManifest(t, s, "berth-test/durable:1"); !slices.Equal(got, want) {
		t.Fatalf("tree loaded again:\n%s", diff(want, got))
	}

	// A load marks its layers until they are flushed.
	other := imagetest.Tar(t, []imagetest.Entry{{Name: "other", Data: "other"}})
	if _, err := s.Load(ctx, bytes.NewReader(makeArchive(t, "berth-test/other:1", [][]byte{other}, nil))); err != nil {
		t.Fatal(err)
	}
	flush(t, s)
	noMarks(t, root, "after Flush")
}

// noMarks checks that no layer of the store at root is marked unsynced.
func noMarks(t *testing.T, root, when string) {
	t.Helper()
	for p, l := range layerRecords(t, root) {
		if l.Unsynced != "" {
			t.Errorf("%s still marked unsynced (%s) %s", p, l.Unsynced, when)
		}
	}
}

// markEarlierBoot marks every layer of the store at root as committed
// unsynced by another boot of the system, as after a crash.
func markEarlierBoot(t *testing.T, root string) {
	t.Helper()
	for p, l := range layerRecords(t, root) {
		l.Unsynced = "an-earlier-boot"
		b, _ := json.Marshal(l)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// A committed layer (whose symbolic links may point anywhere, as the
// container made them) is unpacked again as it was; a layer whose blob is
// gone is removed instead, and the store still opens.
func TestRecoveryOfCommittedLayersAndMissingBlobs(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "store")
	s, err := image.Open(root, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	base := imagetest.Tar(t, []imagetest.Entry{{Name: "etc", Type: tar.TypeDir, Mode: 0o755}, {Name: "etc/os", Data: "base"}})
	loaded, err := s.Load(ctx, bytes.NewReader(makeArchive(t, "berth-test/base:1", [][]byte{base}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Snaps.Prepare(ctx, "ctr", loaded[0].Image.TopLayer()); err != nil {
		t.Fatal(err)
	}
	upper, err := s.Snaps.UpperDir("ctr")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../../../usr/share/zoneinfo/UTC", filepath.Join(upper, "localtime")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(upper, "added"), []byte("added"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(ctx, image.CommitOptions{Snapshot: "ctr", Image: loaded[0].Image.ID, Ref: "berth-test/committed:1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Snaps.Remove("ctr"); err != nil {
		t.Fatal(err)
	}
	want := exportManifest(t, s, "berth-test/committed:1")
	flush(t, s)
	s.Close()

	markEarlierBoot(t, root)
	s, err = image.Open(root, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := exportManifest(t, s, "berth-test/committed:1"); !slices.Equal(got, want) {
		t.Fatalf("committed image after its layers were unpacked again:\n%s", diff(want, got))
	}
	noMarks(t, root, "after its layers were unpacked again")

	// The committed layer's blob lost: that layer goes, the base stays.
	im, err := s.Resolve("berth-test/committed:1")
	if err != nil {
		t.Fatal(err)
	}
	top := im.Manifest.Layers[len(im.Manifest.Layers)-1].Digest
	s.Close()
	if err := os.Remove(filepath.Join(root, "content", "blobs", "sha256", top.Encoded())); err != nil {
		t.Fatal(err)
	}
	markEarlierBoot(t, root)
	s, err = image.Open(root, image.Options{})
	if err != nil {
		t.Fatalf("the store does not open when a layer cannot be unpacked again: %v", err)
	}
	defer s.Close()
	if s.Snaps.HasLayer(im.TopLayer()) {
		t.Error("a layer that could not be unpacked again is still there")
	}
	if !s.Snaps.HasLayer(loaded[0].Image.TopLayer()) {
		t.Error("the base layer, unpacked again, is gone")
	}
	if n, _ := s.Snaps.TempCount(); n != 0 {
		t.Errorf("%d entries left in the snapshot store's tmp/", n)
	}
}
