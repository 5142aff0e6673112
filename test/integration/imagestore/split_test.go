package imagestore_test

import (
	"archive/tar"
	"bytes"
	"context"
	_ "crypto/sha512" // digest.SHA512
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"berth/internal/errdefs"
	"berth/internal/image"
	"berth/test/imagetest"

	"github.com/opencontainers/go-digest"
)

// A load keeps each uncompressed layer blob as the layer's split: the
// layer is written once, and the blob is rebuilt from its files, byte for
// byte, when it is read (save, system check). A streamed load spools the
// blob meanwhile and drops it; a layer that cannot give its stream back
// keeps a plain blob.
func TestLoadedLayersKeepTheirBlobsAsSplits(t *testing.T) {
	ctx := context.Background()
	base := imagetest.Tar(t, []imagetest.Entry{
		{Name: "etc", Type: tar.TypeDir, Mode: 0o755},
		{Name: "etc/os", Data: "base"},
		{Name: "bin", Type: tar.TypeDir, Mode: 0o755},
		{Name: "bin/tool", Data: strings.Repeat("tool ", 100000), Mode: 0o4755},
		{Name: "bin/alias", Type: tar.TypeLink, Linkname: "bin/tool"},
		{Name: "bin/sh", Type: tar.TypeSymlink, Linkname: "tool"},
	})
	top := imagetest.Tar(t, []imagetest.Entry{{Name: "etc/.wh.os", Data: ""}, {Name: "app", Type: tar.TypeDir, Mode: 0o755}, {Name: "app/main", Data: "main"}})
	archive := makeArchive(t, "berth-test/split:1", [][]byte{base, top}, nil)
	layers := []digest.Digest{digest.FromBytes(base), digest.FromBytes(top)}

	root := filepath.Join(t.TempDir(), "store")
	s, err := image.Open(root, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Load(ctx, bytes.NewReader(archive)); err != nil {
		t.Fatal(err)
	}
	want := exportManifest(t, s, "berth-test/split:1")
	for _, d := range layers {
		info, err := s.Content.Info(d)
		if err != nil || !info.Split || info.Stored*4 > info.Size {
			t.Errorf("layer blob %s: %+v %v, want a split a fraction of its size", d, info, err)
		}
		if _, err := os.Stat(filepath.Join(root, "content", "blobs", "sha256", d.Encoded())); err == nil {
			t.Errorf("layer blob %s stored plain as well", d)
		}
	}
	check(t, s)

	// Saved, the blobs are the bytes the archive had: the saved archive
	// names them by digest, and loads into another store with the same
	// tree.
	var saved bytes.Buffer
	if err := s.Save(ctx, &saved, []string{"berth-test/split:1"}); err != nil {
		t.Fatal(err)
	}
	for _, d := range layers {
		if got := savedBlob(t, saved.Bytes(), d); digest.FromBytes(got) != d {
			t.Errorf("saved layer %s has digest %s", d, digest.FromBytes(got))
		}
	}
	other, err := image.Open(filepath.Join(t.TempDir(), "other"), image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	// Streamed.
	if _, err := other.Load(ctx, struct{ io.Reader }{bytes.NewReader(saved.Bytes())}); err != nil {
		t.Fatal(err)
	}
	if got := exportManifest(t, other, "berth-test/split:1"); !slices.Equal(got, want) {
		t.Fatalf("saved and loaded again:\n%s", diff(want, got))
	}
	for _, d := range layers {
		if info, err := other.Content.Info(d); err != nil || !info.Split {
			t.Errorf("streamed load: layer blob %s: %+v %v, want a split", d, info, err)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(other.Root(), "content", "ingest")); len(ents) != 0 {
		t.Errorf("streamed load left %d spooled blobs", len(ents))
	}
	// From a file, which the load maps and unpacks in place.
	mapped, err := image.Open(filepath.Join(t.TempDir(), "mapped"), image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer mapped.Close()
	if _, err := mapped.Load(ctx, openArchive(t, saved.Bytes())); err != nil {
		t.Fatal(err)
	}
	if got := exportManifest(t, mapped, "berth-test/split:1"); !slices.Equal(got, want) {
		t.Fatalf("saved and loaded again from a file:\n%s", diff(want, got))
	}
	for _, d := range layers {
		if info, err := mapped.Content.Info(d); err != nil || !info.Split {
			t.Errorf("load from a file: layer blob %s: %+v %v, want a split", d, info, err)
		}
	}
	check(t, mapped)
	// A layer with an entry that replaces another cannot give its stream
	// back: its blob is stored plain, both ways.
	dup := imagetest.Tar(t, []imagetest.Entry{{Name: "f", Data: "first"}, {Name: "f", Data: "second"}})
	for _, how := range loadWays {
		st, err := image.Open(filepath.Join(t.TempDir(), how.name), image.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Load(ctx, how.reader(t, makeArchive(t, "berth-test/dup:1", [][]byte{dup}, nil))); err != nil {
			t.Fatal(err)
		}
		if info, err := st.Content.Info(digest.FromBytes(dup)); err != nil || info.Split {
			t.Errorf("%s: layer with a replaced entry: blob %+v %v, want it plain", how.name, info, err)
		}
		check(t, st)
		st.Close()
	}

	// A layer's file changed behind the store's back: the blob is not
	// given out with other bytes, and the check names it.
	l, err := s.Snaps.LayerFS(layers[0])
	if err != nil {
		t.Fatal(err)
	}
	tool := filepath.Join(l, "bin", "tool")
	orig, err := os.ReadFile(tool)
	if err != nil {
		t.Fatal(err)
	}
	changed := bytes.Clone(orig)
	changed[1000] = 'X'
	if err := os.WriteFile(tool, changed, 0o4755); err != nil {
		t.Fatal(err)
	}
	err = s.Save(ctx, io.Discard, []string{"berth-test/split:1"})
	if !errors.Is(err, errdefs.ErrCorrupt) || !strings.Contains(err.Error(), layers[0].String()) {
		t.Errorf("save with a layer file changed: %v, want a corrupt error naming blob %s", err, layers[0])
	}
	ps, err := s.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || !strings.Contains(ps[0].What, layers[0].String()) {
		t.Errorf("check with a layer file changed: %+v, want the blob %s named", ps, layers[0])
	}
	if err := os.WriteFile(tool, orig, 0o4755); err != nil {
		t.Fatal(err)
	}
	check(t, s)

	// Removing the image removes the splits with the layers.
	if _, err := s.Remove(ctx, "berth-test/split:1", image.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"content/split/sha256", "content/blobs/sha256", "snapshots/layers"} {
		if ents, _ := os.ReadDir(filepath.Join(root, dir)); len(ents) != 0 {
			t.Errorf("%s holds %d entries after the image was removed", dir, len(ents))
		}
	}
	check(t, s)
}

// savedBlob returns the blob d of a docker save archive.
func savedBlob(t *testing.T, archive []byte, d digest.Digest) []byte {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("blob %s not in the saved archive: %v", d, err)
		}
		if h.Name == "blobs/sha256/"+d.Encoded() {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
}

// A layer blob named by sha512 in the archive: its diff ID (sha256) is
// hashed by the unpacking, and the blob is stored plain.
func TestLoadLayerNamedBySHA512(t *testing.T) {
	layer := imagetest.Tar(t, []imagetest.Entry{{Name: "a", Data: "a"}})
	d, d512 := digest.FromBytes(layer), digest.SHA512.FromBytes(layer)
	archive := makeArchive(t, "berth-test/sha512:1", [][]byte{layer}, func(files []archiveFile) []archiveFile {
		for i := range files {
			files[i].name = strings.Replace(files[i].name, "blobs/sha256/"+d.Encoded(), "blobs/sha512/"+d512.Encoded(), 1)
			files[i].data = bytes.Replace(files[i].data, []byte("blobs/sha256/"+d.Encoded()), []byte("blobs/sha512/"+d512.Encoded()), 1)
		}
		return files
	})
	for _, how := range loadWays {
		s, err := image.Open(filepath.Join(t.TempDir(), "store"), image.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Load(context.Background(), how.reader(t, archive)); err != nil {
			t.Errorf("%s: %v", how.name, err)
		} else if info, err := s.Content.Info(d512); err != nil || info.Split {
			t.Errorf("%s: blob %s: %+v %v, want it plain", how.name, d512, info, err)
		}
		check(t, s)
		s.Close()
	}
}
