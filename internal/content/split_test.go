package content

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth/internal/archive"
	"berth/internal/errdefs"

	"github.com/opencontainers/go-digest"
)

// splitLayer makes a layer stream, unpacks it into a tree and returns the
// stream and its split.
func splitLayer(t *testing.T, tree string) ([]byte, []byte) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct{ name, body string }{{"a", "alpha"}, {"d/b", strings.Repeat("b", 70000)}, {"d/c", ""}} {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Format: tar.FormatPAX})
		io.WriteString(tw, f.body)
	}
	tw.Close()
	if err := os.MkdirAll(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	st, err := archive.Unpack(context.Background(), bytes.NewReader(buf.Bytes()), tree, archive.UnpackOptions{Split: true})
	if err != nil || st.Split == nil {
		t.Fatalf("unpack: %v (split %d bytes)", err, len(st.Split))
	}
	return buf.Bytes(), st.Split
}

func TestSplitBlob(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := Open(filepath.Join(root, "content"))
	if err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(root, "tree")
	var trees []string
	s.SetTrees(func(digest.Digest, bool) []string { return trees })
	data, split := splitLayer(t, tree)
	d := digest.FromBytes(data)

	created, err := s.PutSplit(ctx, d, int64(len(data)), split)
	if err != nil || !created {
		t.Fatalf("PutSplit: %v %v", created, err)
	}
	// No tree yet: not there.
	if s.Exists(d) {
		t.Fatal("a split blob with no tree exists")
	}
	if _, err := s.Open(d); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("open with no tree: %v", err)
	}
	trees = []string{filepath.Join(root, "gone"), tree}
	info, err := s.Info(d)
	if err != nil || !info.Split || info.Size != int64(len(data)) || info.Stored != int64(len(split)+splitHeader) {
		t.Fatalf("info %+v %v", info, err)
	}
	if created, err := s.PutSplit(ctx, d, int64(len(data)), split); err != nil || created {
		t.Fatalf("PutSplit again: %v %v", created, err)
	}
	b, err := s.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(b)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes (%v), want the %d of the stream", len(got), err, len(data))
	}
	// ReadAt, forwards and backwards, as a push reads.
	for _, off := range []int64{1000, 60000, 5, int64(len(data)) - 100} {
		p := make([]byte, 100)
		if n, err := b.ReadAt(p, off); n != 100 || (err != nil && err != io.EOF) || !bytes.Equal(p, data[off:off+100]) {
			t.Fatalf("ReadAt %d: %d %v", off, n, err)
		}
	}
	if n, err := b.ReadAt(make([]byte, 10), int64(len(data))-5); n != 5 || err != io.EOF {
		t.Fatalf("ReadAt past the end: %d %v", n, err)
	}
	if n, err := b.ReadAt(make([]byte, 10), int64(len(data))+5); n != 0 || err != io.EOF {
		t.Fatalf("ReadAt after the end: %d %v", n, err)
	}
	b.Close()
	// ReadAt leaves Read's offset alone.
	b, _ = s.Open(d)
	head := make([]byte, 100)
	if _, err := b.ReadAt(head, 0); err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(b); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Read after a ReadAt: %d bytes (%v), want the %d of the stream", len(got), err, len(data))
	}
	b.Close()
	if err := s.Verify(d); err != nil {
		t.Fatal(err)
	}
	var walked []Info
	s.Walk(func(i Info) error { walked = append(walked, i); return nil })
	if len(walked) != 1 || walked[0].Digest != d || !walked[0].Split {
		t.Fatalf("walk %+v", walked)
	}

	// A file of the tree changed: an error, never other bytes.
	if err := os.WriteFile(filepath.Join(tree, "a"), []byte("ALPHA"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(d); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Fatalf("verify after a change: %v", err)
	}
	b, _ = s.Open(d)
	if _, err := b.ReadAt(make([]byte, len(data)), 0); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Fatalf("ReadAt of all of it after a change: %v", err)
	}
	b.Close()
	os.Remove(filepath.Join(tree, "d", "c"))
	if err := s.Verify(d); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Fatalf("verify with a file missing: %v", err)
	}
	os.WriteFile(filepath.Join(tree, "a"), []byte("alpha"), 0o644)
	os.WriteFile(filepath.Join(tree, "d", "c"), nil, 0o644)

	// Materialize: a plain blob, which outlives the tree.
	if err := s.Materialize(ctx, d); err != nil {
		t.Fatal(err)
	}
	trees = nil
	if info, err := s.Info(d); err != nil || info.Split || info.Size != int64(len(data)) {
		t.Fatalf("after Materialize: %+v %v", info, err)
	}
	if err := s.Verify(d); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "content", "split", "sha256")); len(ents) != 0 {
		t.Fatalf("split file left after Materialize: %v", ents)
	}
	// Delete takes a split blob with no tree (a collector's sweep).
	if _, err := s.PutSplit(ctx, digest.FromString("x"), 1, split); err != nil {
		t.Fatal(err)
	}
	var n int
	s.Walk(func(i Info) error {
		n++
		return s.Delete(i.Digest)
	})
	if n != 2 {
		t.Fatalf("walked %d blobs, want the plain one and the split one with no tree", n)
	}
	for _, dir := range []string{"blobs/sha256", "split/sha256", "ingest"} {
		if ents, _ := os.ReadDir(filepath.Join(root, "content", dir)); len(ents) != 0 {
			t.Errorf("%s holds %d files after every blob was deleted", dir, len(ents))
		}
	}
}
