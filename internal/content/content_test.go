package content

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth/internal/errdefs"

	"github.com/opencontainers/go-digest"
)

func TestIngestVerifyAndAtomicity(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := "hello layer"
	want := digest.FromString(data)

	// A wrong digest is refused and nothing becomes visible.
	_, err = s.Ingest(ctx, strings.NewReader(data), digest.FromString("other"), -1)
	if !errors.Is(err, errdefs.ErrCorrupt) {
		t.Fatalf("wrong digest: %v", err)
	}
	if s.Exists(want) {
		t.Fatal("blob visible after a failed commit")
	}
	// A wrong size too.
	if _, err = s.Ingest(ctx, strings.NewReader(data), want, 3); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Fatalf("wrong size: %v", err)
	}
	// An unfinished writer is invisible and leaves nothing after Close.
	w, err := s.Writer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(data))
	if s.Exists(want) {
		t.Fatal("blob visible before commit")
	}
	w.Close()
	if n, _ := s.IngestCount(); n != 0 {
		t.Fatalf("%d ingest files left", n)
	}

	info, err := s.Ingest(ctx, strings.NewReader(data), want, int64(len(data)))
	if err != nil || info.Digest != want || info.Size != int64(len(data)) {
		t.Fatalf("ingest: %v %+v", err, info)
	}
	if err := s.Verify(want); err != nil {
		t.Fatal(err)
	}
	// Ingesting again keeps one copy.
	if _, err := s.IngestBytes(ctx, []byte(data)); err != nil {
		t.Fatal(err)
	}
	var n int
	s.Walk(func(i Info) error { n++; return nil })
	if n != 1 {
		t.Fatalf("%d blobs, want 1", n)
	}

	// Corruption on disk is detected.
	p, _ := s.Path(want)
	os.WriteFile(p, []byte("tampered"), 0o600)
	if err := s.Verify(want); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Fatalf("verify tampered: %v", err)
	}
	if _, err := s.Info(digest.FromString("missing")); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
}

func TestOpenClearsInterruptedIngest(t *testing.T) {
	root := t.TempDir()
	if _, err := Open(root); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "ingest", "partial"), []byte("x"), 0o600)
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := s.IngestCount(); n != 0 {
		t.Fatalf("ingest not cleared: %d", n)
	}
}
