package archive

import (
	"errors"
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
		p := filepath.Join(t.TempDir(), "archive.tar")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		m, err := unix.Mmap(int(f.Fd()), 0, len(data), unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(int64(tc.cut)); err != nil {
			t.Fatal(err)
		}
		_, err = unpackVia(viaMemory, m, t.TempDir(), UnpackOptions{Split: true})
		if err == nil || (tc.wantIs != nil && !errors.Is(err, tc.wantIs)) {
			t.Errorf("%s: Unpack: %v, want an error (%v)", tc.name, err, tc.wantIs)
		}
		unix.Munmap(m)
		f.Close()
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
	if _, ok := m.content(1); ok {
		t.Error("content past the end")
	}
}

// debugPanicOnFault is the goroutine's SetPanicOnFault setting.
func debugPanicOnFault() bool {
	old := debug.SetPanicOnFault(false)
	debug.SetPanicOnFault(old)
	return old
}
