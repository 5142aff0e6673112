package imagestore_test

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"berth/internal/image"
	"berth/internal/snapshot"
	"berth/test/imagetest"
)

// A container's deletions become whiteouts in the committed layer (.wh.
// files and an opaque directory in the saved tar), and the new image's tree
// is the container's tree; export of the container shows the same tree.
func TestCommitDeletionsAsWhiteouts(t *testing.T) {
	ctx := context.Background()
	tarball, _ := busyboxTar(t)
	s := openStore(t, t.TempDir())
	base := importFile(t, s, tarball, "berth-test/base:1")
	if err := s.AddLease(image.Lease{ID: "ctr", Image: base.ID, Snapshot: "ctr"}); err != nil {
		t.Fatal(err)
	}
	defer s.RemoveLease("ctr")
	if _, err := s.Snaps.Prepare(ctx, "ctr", base.TopLayer()); err != nil {
		t.Fatal(err)
	}
	defer s.Snaps.Remove("ctr")
	mnt := filepath.Join(t.TempDir(), "rootfs")
	os.Mkdir(mnt, 0o755)
	if err := s.Snaps.Mount("ctr", mnt); err != nil {
		t.Fatal(err)
	}
	defer snapshot.Unmount(mnt)
	// Delete a file, replace a directory (opaque), add a file.
	if err := os.Remove(filepath.Join(mnt, "data/owned")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(mnt, "var")); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(mnt, "var/new"), 0o755)
	os.WriteFile(filepath.Join(mnt, "added"), []byte("added\n"), 0o600)

	// GC must keep the leased snapshot and the image under it.
	if _, err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Snaps.Snapshot("ctr"); err != nil {
		t.Fatalf("GC removed a leased snapshot: %v", err)
	}

	var exported bytes.Buffer
	if err := s.Export(ctx, &exported, "ctr"); err != nil {
		t.Fatal(err)
	}
	im, err := s.Commit(ctx, image.CommitOptions{Snapshot: "ctr", Image: base.ID, Ref: "berth-test/committed:1", Author: "me", Message: "deletions"})
	if err != nil {
		t.Fatal(err)
	}
	if im.Config.Author != "me" || len(im.ChainIDs) != 2 {
		t.Fatalf("commit: author %q, %d layers", im.Config.Author, len(im.ChainIDs))
	}
	exportFile := filepath.Join(t.TempDir(), "ctr.tar")
	os.WriteFile(exportFile, exported.Bytes(), 0o600)
	want := tarManifestFile(t, exportFile)
	if got := exportManifest(t, s, "berth-test/committed:1"); !slices.Equal(got, want) {
		t.Fatalf("committed image differs from the container's tree:\n%s", diff(want, got))
	}
	for _, l := range want {
		if strings.HasPrefix(l, "data/owned ") || strings.HasPrefix(l, "var/empty ") {
			t.Errorf("deleted path still there: %s", l)
		}
	}

	// The saved top layer carries the whiteouts in their tar form.
	var saved bytes.Buffer
	if err := s.Save(ctx, &saved, []string{"berth-test/committed:1"}); err != nil {
		t.Fatal(err)
	}
	top := layerEntries(t, saved.Bytes(), im.Manifest.Layers[1].Digest.Encoded())
	for _, w := range []string{"data/.wh.owned", "var/.wh..wh..opq", "added"} {
		if !slices.Contains(top, w) {
			t.Errorf("top layer lacks %s: %v", w, top)
		}
	}
	check(t, s)
}

func tarManifestFile(t *testing.T, p string) []string {
	t.Helper()
	return imagetest.TarManifest(t, p)
}

// layerEntries lists the entry names of the layer blob hex in a saved archive.
func layerEntries(t *testing.T, archive []byte, hex string) []string {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("layer %s not in the archive: %v", hex, err)
		}
		if h.Name != "blobs/sha256/"+hex {
			continue
		}
		var names []string
		lr := tar.NewReader(tr)
		for {
			lh, err := lr.Next()
			if err == io.EOF {
				return names
			}
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, strings.TrimPrefix(strings.TrimSuffix(lh.Name, "/"), "./"))
		}
	}
}
