package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"berth/internal/pagewrite"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// TestUnpackMemory: a Memory stream unpacks to the same tree, with the
// same stats and diff ID, as the same bytes read through a reader.
func TestUnpackMemory(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 3*pagewrite.Max/16+5) // several pieces
	archives := map[string][]byte{
		"kinds":    splitArchive(t),
		"metadata": metadataArchive(t),
		"big file": mkTar(t, reg("a", "a"), reg("big", big), reg("z", "after")),
		"replaced": mkTar(t, reg("a", "first"), reg("a", "second")),
		"gzip":     compress(t, mkTar(t, reg("a", "a"), reg("big", big)), Gzip),
		"empty":    nil,
	}
	for name, data := range archives {
		want := t.TempDir()
		wst, err := unpackVia(viaReadAhead, data, want, UnpackOptions{})
		if err != nil {
			t.Fatalf("%s: Unpack: %v", name, err)
		}
		got := t.TempDir()
		st, err := unpackVia(viaMemory, data, got, UnpackOptions{})
		if err != nil {
			t.Fatalf("%s: Unpack of Memory: %v", name, err)
		}
		if st.DiffID != wst.DiffID || st.Bytes != wst.Bytes || st.Entries != wst.Entries || st.Compression != wst.Compression {
			t.Errorf("%s: Memory gave %+v, a reader %+v", name, st, wst)
		}
		if name != "gzip" && st.DiffID != digest.FromBytes(data) {
			t.Errorf("%s: diff ID %s, not the stream's digest", name, st.DiffID)
		}
		// Directories the archive does not name get the time of the
		// unpacking: the times of the others are compared below.
		compareSnapshots(t, name, snapshot(t, got, false), snapshot(t, want, false))
		if name == "metadata" {
			for _, f := range []string{"d/f", "d/s", "d/p", "d"} {
				if g, w := lstat(t, filepath.Join(got, f)).Mtim, lstat(t, filepath.Join(want, f)).Mtim; g != w {
					t.Errorf("metadata: %s has mtime %v, want %v", f, g, w)
				}
			}
		}
	}
	// A digest given is taken as the diff ID: the stream is not hashed.
	d := digest.FromString("given")
	st, err := unpackVia(viaMemory, archives["big file"], t.TempDir(), UnpackOptions{Digest: d})
	if err != nil || st.DiffID != d {
		t.Errorf("with a digest: %v, %v", st.DiffID, err)
	}
}

// TestUnpackMemoryFault: a mapped archive cut short under the unpacking
// fails it with ErrMemoryFault (SIGBUS is caught), or with a write error
// where the kernel copies from the lost pages; the process lives on.
func TestUnpackMemoryFault(t *testing.T) {
	data := mkTar(t, reg("a", "a"), reg("big", strings.Repeat("b", 256<<10)), reg("z", "z"))
	for _, tc := range []struct {
		name   string
		cut    int
		wantIs error
	}{
		{"cut to nothing", 0, ErrMemoryFault},
		{"cut in a file", 8192, nil},
	} {
		f, m := mappedFile(t, data)
		if err := f.Truncate(int64(tc.cut)); err != nil {
			t.Fatal(err)
		}
		_, err := unpackVia(viaMemory, m, t.TempDir(), UnpackOptions{Split: true})
		if err == nil || (tc.wantIs != nil && !errors.Is(err, tc.wantIs)) {
			t.Errorf("%s: Unpack: %v, want an error (%v)", tc.name, err, tc.wantIs)
		}
	}
	// Outside an Unpack of Memory, a fault is not caught.
	if debugPanicOnFault() {
		t.Error("Unpack left SetPanicOnFault on")
	}
}

func TestMemorySeek(t *testing.T) {
	m := Memory([]byte("0123456789")).(*memStream)
	m.h = digest.SHA256.Hash()
	buf := make([]byte, 3)
	if n, err := m.Read(buf); n != 3 || err != nil {
		t.Fatalf("Read = %d, %v", n, err)
	}
	if pos, err := m.Seek(4, 1); pos != 7 || err != nil {
		t.Fatalf("Seek = %d, %v", pos, err)
	}
	if pos, err := m.Seek(20, 1); pos != 27 || err != nil {
		t.Fatalf("Seek past the end = %d, %v", pos, err)
	}
	if n, err := m.Read(buf); n != 0 || err == nil {
		t.Errorf("Read past the end = %d, %v", n, err)
	}
	// What was skipped is hashed all the same, once.
	if got, want := digest.NewDigest(digest.SHA256, m.h), digest.FromString("0123456789"); got != want {
		t.Errorf("hashed %s, want %s", got, want)
	}
	if _, err := m.Seek(-1, 0); err == nil {
		t.Error("a negative position taken")
	}
	if m.content(1) {
		t.Error("content past the end")
	}
	// A seek that would overflow lands past any end.
	if pos, err := m.Seek(math.MaxInt64, io.SeekCurrent); pos != math.MaxInt64 || err != nil {
		t.Errorf("Seek(MaxInt64) = %d, %v", pos, err)
	}
	if n, err := m.Read(buf); n != 0 || err != io.EOF {
		t.Errorf("Read after it = %d, %v", n, err)
	}
}

// TestUnpackMemoryHugeSize: an entry whose size passes any stream (base-256
// header) is a truncated stream on every path.
func TestUnpackMemoryHugeSize(t *testing.T) {
	h := rawHeader(".wh.x", tar.TypeReg, 0)
	copy(h[124:136], []byte{0x80, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(h[148:], "        ")
	sum := 0
	for _, c := range h {
		sum += int(c)
	}
	copy(h[148:], fmt.Sprintf("%06o\x00 ", sum))
	data := append(mkTar(t, reg("a", "a"))[:1024], h...)
	data = append(data, make([]byte, 2048)...)
	for _, p := range readPaths {
		if _, err := unpackVia(p, data, t.TempDir(), UnpackOptions{}); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s: %v, want unexpected EOF", p, err)
		}
	}
}

// TestUnpackMemoryReadFirst: a Memory stream read in part before Unpack is
// unpacked from where it is: what was read is neither hashed nor kept.
func TestUnpackMemoryReadFirst(t *testing.T) {
	layer := mkTar(t, reg("a", "a"), reg("b", "b"))
	r := Memory(append([]byte("header of something else\n"), layer...))
	if _, err := io.ReadFull(r, make([]byte, len("header of something else\n"))); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st, err := Unpack(context.Background(), r, dir, UnpackOptions{Split: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.DiffID != digest.FromBytes(layer) {
		t.Errorf("diff ID %s, not the layer's %s", st.DiffID, digest.FromBytes(layer))
	}
	if got, err := rebuild(t, st.Split, dir); err != nil || !bytes.Equal(got, layer) {
		t.Errorf("rebuilt %d bytes (%v), want the layer's %d", len(got), err, len(layer))
	}
}

// TestUnpackMemoryChanging: a mapped archive written to while it is
// unpacked gives a tree and a split that are the stream its diff ID is the
// digest of: every byte is read from the mapping once, and that copy is
// hashed, written and kept. (Reading the mapping again to hash, after the
// write read it, gave trees that did not match their digest.)
func TestUnpackMemoryChanging(t *testing.T) {
	data := mkTar(t, reg("a", "a"), reg("big", strings.Repeat("A", 16<<20)), reg(".wh.w", strings.Repeat("W", 4096)), reg("z", "z"))
	f, m := mappedFile(t, data)
	unpacked := 0
	for round := range 5 {
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			// Flip a byte in every piece of the content, the whiteout's
			// data and the headers, over and over.
			defer close(done)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				for off := int64(0); off < int64(len(data)); off += 64 << 10 {
					f.WriteAt([]byte{byte('A' + i%2)}, off+700)
				}
			}
		}()
		dir := t.TempDir()
		st, err := unpackVia(viaMemory, m, dir, UnpackOptions{Split: true})
		close(stop)
		<-done
		if err != nil {
			continue // a header changed into nonsense: refused, fine
		}
		unpacked++
		if st.Split == nil {
			t.Fatalf("round %d: no split", round)
		}
		got, err := rebuild(t, st.Split, dir)
		if err != nil {
			t.Fatalf("round %d: Rebuild: %v", round, err)
		}
		if d := digest.FromBytes(got); d != st.DiffID {
			t.Errorf("round %d: the tree and split give %s, the unpacking hashed %s", round, d, st.DiffID)
		}
		if _, err := f.WriteAt(data, 0); err != nil {
			t.Fatal(err)
		}
	}
	if unpacked == 0 {
		t.Error("no round unpacked")
	}
}

// TestUnpackMemoryFaultCompressed: a compressed Memory stream is read on
// the caller's goroutine, where a fault is caught too.
func TestUnpackMemoryFaultCompressed(t *testing.T) {
	big := make([]byte, 4<<20)
	for i := range big {
		big[i] = byte(i * 7919 >> 3)
	}
	data := compress(t, mkTar(t, reg("big", string(big))), Gzip)
	f, m := mappedFile(t, data)
	if err := f.Truncate(int64(len(data) / 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := unpackVia(viaMemory, m, t.TempDir(), UnpackOptions{}); !errors.Is(err, ErrMemoryFault) {
		t.Errorf("Unpack: %v, want ErrMemoryFault", err)
	}
}

// debugPanicOnFault is the goroutine's SetPanicOnFault setting.
func debugPanicOnFault() bool {
	old := debug.SetPanicOnFault(false)
	debug.SetPanicOnFault(old)
	return old
}

// mappedFile writes data to a file and maps it; both are closed when the
// test ends.
func mappedFile(t *testing.T, data []byte) (*os.File, []byte) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "archive")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	m, err := unix.Mmap(int(f.Fd()), 0, len(data), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(m) })
	return f, m
}
