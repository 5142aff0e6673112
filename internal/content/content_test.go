package content

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"berth/internal/errdefs"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
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

// alignedBuf is n bytes of pattern at a page-aligned address (O_DIRECT's
// rule), unmapped at cleanup.
func alignedBuf(t *testing.T, n int, fill byte) []byte {
	t.Helper()
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	for i := range b {
		b[i] = fill + byte(i%251)
	}
	return b
}

func TestDirectWriteVec(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const mb = 1 << 20
	a, b, c := alignedBuf(t, mb, 1), alignedBuf(t, mb, 2), alignedBuf(t, mb, 3)
	tail := []byte("an unaligned tail")
	d := alignedBuf(t, 2*mb, 4)
	var want []byte
	var calls atomic.Int32
	done := func() { calls.Add(1) }

	w, err := s.Writer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w.Direct()
	// Aligned runs go behind, a tail is written buffered after its run,
	// a plain Write in between, then aligned buffers at an unaligned offset
	// (buffered too).
	for _, vec := range [][][]byte{{a, b}, {c, tail}, {d}} {
		if err := w.WriteVec(vec, done); err != nil {
			t.Fatal(err)
		}
		for _, x := range vec {
			want = append(want, x...)
		}
	}
	if _, err := w.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	want = append(want, 'x')
	if err := w.WriteVec([][]byte{a, b}, done); err != nil {
		t.Fatal(err)
	}
	want = append(want, a...)
	want = append(want, b...)
	info, err := w.Commit(digest.FromBytes(want), int64(len(want)))
	if err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 4 {
		t.Errorf("done called %d times, want 4", n)
	}
	got, err := s.ReadAll(info.Digest, int64(len(want)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the blob is not what was written")
	}

	// Many single-buffer runs queued at once are joined into fewer
	// requests (at most maxRunBufs buffers each), in order, each handed
	// back once.
	w, err = s.Writer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w.Direct()
	calls.Store(0)
	want = want[:0]
	small := alignedBuf(t, 2*maxRunBufs*directAlign, 5)
	for i := 0; i < 2*maxRunBufs; i++ {
		piece := small[i*directAlign : (i+1)*directAlign]
		if err := w.WriteVec([][]byte{piece}, done); err != nil {
			t.Fatal(err)
		}
		want = append(want, piece...)
	}
	info, err = w.Commit(digest.FromBytes(want), int64(len(want)))
	if err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 2*maxRunBufs {
		t.Errorf("done called %d times, want %d", n, 2*maxRunBufs)
	}
	if got, err := s.ReadAll(info.Digest, int64(len(want))); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the joined blob is not what was written (%v)", err)
	}

	// Writes left behind by a writer that is closed uncommitted are
	// waited for, their buffers handed back, and nothing is left.
	w, err = s.Writer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w.Direct()
	calls.Store(0)
	if err := w.WriteVec([][]byte{a, b, c}, done); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if n := calls.Load(); n != 1 {
		t.Errorf("done called %d times after Close, want 1", n)
	}
	if n, _ := s.IngestCount(); n != 0 {
		t.Fatalf("%d ingest files left", n)
	}
}
