package image

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"berth/internal/archive"
	"berth/test/imagetest"

	"github.com/opencontainers/go-digest"
)

// keepSplits makes a split blob plain before the last layer holding its
// files goes, when something still needs the blob; not otherwise.
func TestKeepSplits(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("unpacking layers keeps owners: needs root")
	}
	ctx := context.Background()
	s, err := Open(filepath.Join(t.TempDir(), "store"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	layer := imagetest.Tar(t, []imagetest.Entry{{Name: "a", Data: "alpha"}, {Name: "d/b", Data: "beta"}})
	im, err := s.Import(ctx, bytes.NewReader(layer), ImportOptions{Ref: "berth-test/keep:1"})
	if err != nil {
		t.Fatal(err)
	}
	d := digest.FromBytes(layer)
	// The imported blob made a split, as a load would have kept it.
	st, err := archive.Unpack(ctx, bytes.NewReader(layer), t.TempDir(), archive.UnpackOptions{Split: true})
	if err != nil || st.Split == nil {
		t.Fatalf("split: %v", err)
	}
	if err := s.Content.Delete(d); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Content.PutSplit(ctx, d, int64(len(layer)), st.Split); err != nil {
		t.Fatal(err)
	}
	if info, err := s.Content.Info(d); err != nil || !info.Split {
		t.Fatalf("blob %s: %+v %v, want it split", d, info, err)
	}
	ls, err := s.Snaps.Layers()
	if err != nil || len(ls) != 1 {
		t.Fatalf("layers %v %v", ls, err)
	}
	gone := map[digest.Digest]bool{im.TopLayer(): true}
	// Not needed: left split (the collector removes it with the layer).
	if err := s.keepSplits(ctx, map[digest.Digest]bool{}, ls, gone); err != nil {
		t.Fatal(err)
	}
	if info, _ := s.Content.Info(d); !info.Split {
		t.Fatal("a split blob nothing needs was made plain")
	}
	if err := s.keepSplits(ctx, map[digest.Digest]bool{d: true}, ls, gone); err != nil {
		t.Fatal(err)
	}
	if err := s.Snaps.RemoveLayer(im.TopLayer()); err != nil {
		t.Fatal(err)
	}
	info, err := s.Content.Info(d)
	if err != nil || info.Split {
		t.Fatalf("after its layer went: %+v %v, want a plain blob", info, err)
	}
	b, err := s.Content.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got, err := io.ReadAll(b); err != nil || !bytes.Equal(got, layer) {
		t.Fatalf("plain blob: %d bytes, %v", len(got), err)
	}
}
