package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// readPath is how Unpack reads a stream: through its read-ahead, from
// memory (InMemory), or from the memory it is (Memory).
type readPath int

const (
	viaReadAhead readPath = iota
	viaInMemory
	viaMemory
)

var readPaths = []readPath{viaReadAhead, viaInMemory, viaMemory}

func (p readPath) String() string {
	return [...]string{"read-ahead", "InMemory", "Memory"}[p]
}

// unpackVia unpacks data into dir as p says.
func unpackVia(p readPath, data []byte, dir string, opts UnpackOptions) (UnpackStats, error) {
	var r io.Reader = bytes.NewReader(data)
	if p == viaMemory {
		r = Memory(data)
	}
	opts.InMemory = p == viaInMemory
	return Unpack(context.Background(), r, dir, opts)
}

// splitUnpack unpacks data with a split, as p says.
func splitUnpack(t *testing.T, data []byte, dir string, p readPath) UnpackStats {
	t.Helper()
	st, err := unpackVia(p, data, dir, UnpackOptions{Split: true})
	if err != nil {
		t.Fatalf("Unpack %s: %v", p, err)
	}
	return st
}

func rebuild(t *testing.T, split []byte, dir string) ([]byte, error) {
	t.Helper()
	rc, err := Rebuild(bytes.NewReader(split), dir)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// splitArchive has every kind of entry Unpack keeps, names long enough for
// PAX and GNU headers, file sizes around the block size, whiteouts, files
// reached through a symbolic link, and bytes after the end of the archive.
func splitArchive(t *testing.T) []byte {
	long := strings.Repeat("n", 150)
	gnu := reg("d/"+long+"-gnu", "gnu long name")
	gnu.hdr.Format = tar.FormatGNU
	ustar := reg("u", "ustar")
	ustar.hdr.Format = tar.FormatUSTAR
	data := mkTar(t,
		dirent("./", 0o755),
		dirent("d/", 0o750),
		reg("d/empty", ""),
		reg("d/one", "x"),
		reg("d/511", strings.Repeat("a", 511)),
		reg("d/512", strings.Repeat("b", 512)),
		reg("d/513", strings.Repeat("c", 513)),
		reg("d/big", strings.Repeat("0123456789abcdef", 1<<16+3)),
		reg("d/"+long, "pax long name"),
		gnu,
		ustar,
		hardlink("d/h", "d/one"),
		symlink("l", "d"),
		reg("l/through", "written through a symbolic link"),
		symlink("abs", "/d"),
		reg("abs/x", "through an absolute one"),
		ent{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "d/p", Mode: 0o600}},
		ent{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "d/null", Mode: 0o666, Devmajor: 1, Devminor: 3}},
		reg("w/.wh.gone", ""),
		reg("o/.wh..wh..opq", ""),
		reg("o/kept", "k"),
		reg(".wh..wh.plnk/1", "aufs metadata, skipped"),
		reg("w/.wh.data", "a whiteout with data, skipped"),
	)
	// Junk after the end marker: part of the stream (and its digest).
	return append(data, bytes.Repeat([]byte{0}, 10240)...)
}

func TestSplitRebuild(t *testing.T) {
	data := splitArchive(t)
	for _, p := range readPaths {
		dir := t.TempDir()
		st := splitUnpack(t, data, dir, p)
		if st.Split == nil {
			t.Fatalf("%s: no split", p)
		}
		if len(st.Split) > len(data)/4 {
			t.Errorf("split of %d bytes for a %d-byte stream", len(st.Split), len(data))
		}
		got, err := rebuild(t, st.Split, dir)
		if err != nil {
			t.Fatalf("%s: Rebuild: %v", p, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("%s: rebuilt %d bytes, not the %d of the stream", p, len(got), len(data))
		}
	}
}

// TestSplitRefused: where the tree cannot give the stream back, there is
// no split.
func TestSplitRefused(t *testing.T) {
	for name, data := range map[string][]byte{
		"file replaced":        mkTar(t, reg("a", "first"), reg("a", "second")),
		"file replaced by dir": mkTar(t, reg("a", "first"), dirent("a/", 0o755)),
		"dir replaced":         mkTar(t, reg("a/b", "in a"), reg("a", "file now")),
		"whiteout over a file": mkTar(t, reg("a", "first"), reg(".wh.a", "")),
		"hard link over":       mkTar(t, reg("a", "a"), reg("b", "b"), hardlink("b", "a")),
		"gzip":                 compress(t, mkTar(t, reg("a", "a")), Gzip),
		"too much to keep":     mkTar(t, reg("a", "a"), reg(".wh.big", strings.Repeat("x", maxSplit+1))),
	} {
		for _, p := range readPaths {
			st := splitUnpack(t, data, t.TempDir(), p)
			if st.Split != nil {
				t.Errorf("%s, %s: a split", name, p)
			}
		}
	}
	// A directory entry again keeps the directory and its files.
	for _, p := range readPaths {
		st := splitUnpack(t, mkTar(t, dirent("a/", 0o755), reg("a/b", "b"), dirent("a/", 0o700)), t.TempDir(), p)
		if st.Split == nil {
			t.Errorf("%s: a directory named twice: no split", p)
		}
	}
	if st, _ := Unpack(context.Background(), bytes.NewReader(mkTar(t, reg("a", "a"))), t.TempDir(), UnpackOptions{Split: true, Whiteouts: WhiteoutApply}); st.Split != nil {
		t.Error("WhiteoutApply: a split")
	}
}

func TestSplitSparseRefused(t *testing.T) {
	if !Sparse(&tar.Header{Typeflag: tar.TypeGNUSparse}) || !Sparse(&tar.Header{Typeflag: tar.TypeReg, PAXRecords: map[string]string{"GNU.sparse.map": "0,1"}}) {
		t.Error("sparse headers not seen")
	}
	if Sparse(&tar.Header{Typeflag: tar.TypeReg, PAXRecords: map[string]string{"SCHILY.xattr.user.a": "b"}}) {
		t.Error("a plain file seen as sparse")
	}
	// A PAX 0.1 sparse file, as GNU tar writes it (Go's writer does not):
	// the tar reader expands it, so the stream holds less than the file.
	pax := paxRecord("GNU.sparse.size", "4099") + paxRecord("GNU.sparse.numblocks", "1") + paxRecord("GNU.sparse.map", "4096,3")
	var buf bytes.Buffer
	buf.Write(rawHeader("PaxHeaders/s", tar.TypeXHeader, len(pax)))
	buf.Write(padBlock([]byte(pax)))
	buf.Write(rawHeader("s", tar.TypeReg, 3))
	buf.Write(padBlock([]byte("end")))
	buf.Write(make([]byte, 1024))
	for _, p := range readPaths {
		dir := t.TempDir()
		st := splitUnpack(t, buf.Bytes(), dir, p)
		if b, err := os.ReadFile(filepath.Join(dir, "s")); err != nil || len(b) != 4099 || string(b[4096:]) != "end" {
			t.Fatalf("%s: sparse file not expanded: %d bytes, %v", p, len(b), err)
		}
		if st.Split != nil {
			t.Errorf("%s: a sparse file: a split", p)
		}
	}
}

// TestSplitTreeChanged: Rebuild names what no longer matches.
func TestSplitTreeChanged(t *testing.T) {
	data := mkTar(t, reg("a", "aaaa"), reg("b", "bbbb"), symlink("c", "a"))
	for name, change := range map[string]func(dir string) error{
		"missing": func(dir string) error { return os.Remove(filepath.Join(dir, "b")) },
		"shorter": func(dir string) error { return os.WriteFile(filepath.Join(dir, "a"), []byte("aa"), 0o644) },
		"longer":  func(dir string) error { return os.WriteFile(filepath.Join(dir, "b"), []byte("bbbbb"), 0o644) },
		"symlink": func(dir string) error {
			os.Remove(filepath.Join(dir, "a"))
			return os.Symlink("b", filepath.Join(dir, "a"))
		},
		"fifo": func(dir string) error {
			os.Remove(filepath.Join(dir, "a"))
			return unix.Mkfifo(filepath.Join(dir, "a"), 0o644)
		},
		"not file": func(dir string) error {
			os.Remove(filepath.Join(dir, "a"))
			return os.Mkdir(filepath.Join(dir, "a"), 0o755)
		},
	} {
		for _, p := range readPaths {
			dir := t.TempDir()
			st := splitUnpack(t, data, dir, p)
			if err := change(dir); err != nil {
				t.Fatal(err)
			}
			if _, err := rebuild(t, st.Split, dir); !errors.Is(err, ErrSplitMismatch) {
				t.Errorf("%s, %s: Rebuild: %v, want ErrSplitMismatch", name, p, err)
			}
		}
	}
	if _, err := rebuild(t, []byte("not a split"), t.TempDir()); err == nil {
		t.Error("garbage taken as a split")
	}
}

// rawHeader is a ustar header block, for entries Go's tar writer does not
// write.
func rawHeader(name string, typ byte, size int) []byte {
	b := make([]byte, 512)
	copy(b, name)
	copy(b[100:], "0000644\x00")
	copy(b[108:], "0000000\x00")
	copy(b[116:], "0000000\x00")
	copy(b[124:], fmt.Sprintf("%011o\x00", size))
	copy(b[136:], "00000000000\x00")
	b[156] = typ
	copy(b[257:], "ustar\x0000")
	copy(b[148:], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

// paxRecord is one record of a PAX extended header.
func paxRecord(k, v string) string {
	rest := " " + k + "=" + v + "\n"
	n := len(rest) + 1
	for len(strconv.Itoa(n))+len(rest) != n {
		n++
	}
	return strconv.Itoa(n) + rest
}

// padBlock pads b to a whole number of tar blocks.
func padBlock(b []byte) []byte {
	return append(b, make([]byte, (512-len(b)%512)%512)...)
}
