package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// An ent is one entry of a test archive.
type ent struct {
	hdr  tar.Header
	body string
}

var testTime = time.Unix(1700000000, 123456789)

func reg(name, body string) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644}, body: body}
}

func dirent(name string, mode int64) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode}}
}

func symlink(name, target string) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
}

func hardlink(name, target string) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target}}
}

// mkTar builds an uncompressed archive of ents.
func mkTar(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := e.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if h.ModTime.IsZero() {
			h.ModTime = testTime
		}
		if h.Format == tar.FormatUnknown {
			h.Format = tar.FormatPAX
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("write header %q: %v", h.Name, err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sandbox is a parent directory holding the extraction directory "root"
// and a directory "outside" with a file "secret" that no archive may
// touch.
type sandbox struct {
	parent, root, outside, secret string
}

func newSandbox(t testing.TB) *sandbox {
	t.Helper()
	parent := t.TempDir()
	s := &sandbox{
		parent:  parent,
		root:    filepath.Join(parent, "root"),
		outside: filepath.Join(parent, "outside"),
		secret:  filepath.Join(parent, "outside", "secret"),
	}
	for _, d := range []string{s.root, s.outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(s.secret, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// checkConfined fails the test if anything changed outside the extraction
// directory.
func (s *sandbox) checkConfined(t testing.TB) {
	t.Helper()
	names := func(dir string) []string {
		des, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var n []string
		for _, de := range des {
			n = append(n, de.Name())
		}
		return n
	}
	if got := names(s.parent); !slices.Equal(got, []string{"outside", "root"}) {
		t.Errorf("parent directory holds %q, want only outside and root", got)
	}
	if got := names(s.outside); !slices.Equal(got, []string{"secret"}) {
		t.Errorf("outside directory holds %q, want only secret", got)
	}
	var st unix.Stat_t
	if err := unix.Lstat(s.outside, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o7777 != 0o755 || st.Uid != 0 {
		t.Errorf("outside directory mode %o owner %d changed", st.Mode&0o7777, st.Uid)
	}
	if err := unix.Lstat(s.secret, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o7777 != 0o600 || st.Nlink != 1 || st.Uid != 0 || st.Size != int64(len("secret")) {
		t.Errorf("secret changed: mode %o nlink %d uid %d size %d", st.Mode&0o7777, st.Nlink, st.Uid, st.Size)
	}
	if b, _ := os.ReadFile(s.secret); string(b) != "secret" {
		t.Errorf("secret content changed to %q", b)
	}
	if n, _ := unix.Llistxattr(s.outside, nil); n != 0 {
		t.Errorf("outside directory got xattrs")
	}
}

func unpack(t testing.TB, data []byte, dir string, mode WhiteoutMode) (UnpackStats, error) {
	t.Helper()
	return unpackVia(viaReadAhead, data, dir, UnpackOptions{Whiteouts: mode})
}

func mustUnpack(t testing.TB, data []byte, dir string, mode WhiteoutMode) UnpackStats {
	t.Helper()
	st, err := unpack(t, data, dir, mode)
	if err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	return st
}

func writeTar(t testing.TB, write func(context.Context, io.Writer, string) error, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := write(context.Background(), &buf, dir); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// snapshot describes every file under root (not root itself): type, mode,
// owner, mtime, link count, content, link target, device and xattrs; hard
// links name the first path of their inode.
func snapshot(t testing.TB, root string, withTimes bool) map[string]string {
	t.Helper()
	m := make(map[string]string)
	inodes := make(map[uint64]string)
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		var b strings.Builder
		fmt.Fprintf(&b, "mode=%o uid=%d gid=%d", st.Mode, st.Uid, st.Gid)
		if withTimes {
			fmt.Fprintf(&b, " mtime=%d.%09d", st.Mtim.Sec, st.Mtim.Nsec)
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " sha256=%x", sha256.Sum256(data))
		case unix.S_IFLNK:
			target, _ := os.Readlink(p)
			fmt.Fprintf(&b, " target=%s", target)
		case unix.S_IFCHR, unix.S_IFBLK:
			fmt.Fprintf(&b, " rdev=%d,%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR && st.Nlink > 1 {
			if first, ok := inodes[st.Ino]; ok {
				fmt.Fprintf(&b, " link=%s", first)
			} else {
				inodes[st.Ino] = rel
			}
		}
		for _, kv := range listXattrs(t, p) {
			fmt.Fprintf(&b, " xattr:%s", kv)
		}
		m[rel] = b.String()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func listXattrs(t testing.TB, p string) []string {
	t.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		return nil
	}
	var kv []string
	for _, k := range strings.Split(strings.TrimSuffix(string(buf[:n]), "\x00"), "\x00") {
		if k == "" {
			continue
		}
		vb := make([]byte, 64<<10)
		vn, err := unix.Lgetxattr(p, k, vb)
		if err != nil {
			t.Fatalf("getxattr %s %s: %v", p, k, err)
		}
		kv = append(kv, k+"="+string(vb[:vn]))
	}
	slices.Sort(kv)
	return kv
}

func compareSnapshots(t testing.TB, what string, got, want map[string]string) {
	t.Helper()
	for k, w := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("%s: %s missing (want %s)", what, k, w)
		} else if g != w {
			t.Errorf("%s: %s\n got %s\nwant %s", what, k, g, w)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: unexpected %s (%s)", what, k, g)
		}
	}
}

// tarNames lists the entries of an uncompressed archive as "type name" or
// "type name -> link".
func tarNames(t testing.TB, data []byte) []string {
	t.Helper()
	var out []string
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		s := fmt.Sprintf("%c %s", hdr.Typeflag, hdr.Name)
		if hdr.Linkname != "" {
			s += " -> " + hdr.Linkname
		}
		out = append(out, s)
	}
}

func lstat(t testing.TB, p string) *unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func compress(t testing.TB, data []byte, c Compression) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := CompressStream(&buf, c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
