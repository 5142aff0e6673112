package cpath

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

func TestSplitArg(t *testing.T) {
	for arg, want := range map[string][2]string{
		"ctr:/path":        {"ctr", "/path"},
		"ctr:rel":          {"ctr", "rel"},
		"/abs:with:colons": {"", "/abs:with:colons"},
		"./file:name.txt":  {"", "./file:name.txt"},
		"local":            {"", "local"},
		"../x:y":           {"", "../x:y"},
		"-":                {"", "-"},
		"c:":               {"c", ""},
	} {
		c, p := SplitArg(arg)
		if c != want[0] || p != want[1] {
			t.Errorf("SplitArg(%q) = %q, %q; want %q", arg, c, p, want)
		}
	}
}

func TestPathRules(t *testing.T) {
	for _, c := range []struct{ in, dir, base string }{
		{"/a/b", "/a", "b"}, {"/a/b/", "/a", "b"}, {"/a/b/.", "/a/b", "."}, {"/", "/", "/"}, {"b", ".", "b"},
	} {
		if d, b := SplitPathDirEntry(c.in); d != c.dir || b != c.base {
			t.Errorf("SplitPathDirEntry(%q) = %q, %q; want %q, %q", c.in, d, b, c.dir, c.base)
		}
	}
	for _, c := range []struct{ cleaned, orig, want string }{
		{"/a/b", "/a/b/", "/a/b/"}, {"/a/b", "/a/b/.", "/a/b/."}, {"/a/b", "/a/b", "/a/b"}, {"/a/b", "a/b/./", "/a/b/./"},
	} {
		if got := PreserveTrailingDotOrSeparator(c.cleaned, c.orig); got != c.want {
			t.Errorf("PreserveTrailingDotOrSeparator(%q, %q) = %q, want %q", c.cleaned, c.orig, got, c.want)
		}
	}
	for _, c := range []struct{ path, resolved, wantPath, wantRebase string }{
		{"/a/link", "/a/target", "/a/target", "link"},
		{"/a/link/", "/a/target", "/a/target/", "link"},
		{"/a/link/.", "/a/target", "/a/target/.", ""},
		{"/a/same", "/b/same", "/b/same", ""},
	} {
		p, r := RebaseName(c.path, c.resolved)
		if p != c.wantPath || r != c.wantRebase {
			t.Errorf("RebaseName(%q, %q) = %q, %q; want %q, %q", c.path, c.resolved, p, r, c.wantPath, c.wantRebase)
		}
	}
	if !AssertsDirectory("/x/") || !AssertsDirectory("/x/.") || AssertsDirectory("/x") {
		t.Errorf("AssertsDirectory")
	}
}

// tarOf makes a tar of (name, content) pairs; names ending in "/" are directories.
func tarOf(t *testing.T, entries ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := 0; i < len(entries); i += 2 {
		name, content := entries[i], entries[i+1]
		h := &tar.Header{Name: name, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(content))}
		if strings.HasSuffix(name, "/") {
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(content))
	}
	tw.Close()
	return buf.Bytes()
}

func names(t *testing.T, r io.Reader) []string {
	t.Helper()
	var out []string
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, h.Name)
	}
}

// TestPrepareArchiveCopy: where the archive goes and how its entries are renamed, for
// every combination docker's cp distinguishes.
func TestPrepareArchiveCopy(t *testing.T) {
	fileArchive := func() io.Reader { return bytes.NewReader(tarOf(t, "a.txt", "x")) }
	dirArchive := func() io.Reader { return bytes.NewReader(tarOf(t, "src/", "", "src/f", "y")) }
	for _, c := range []struct {
		what      string
		archive   func() io.Reader
		src, dst  CopyInfo
		wantDir   string
		wantNames []string
		wantErr   error
	}{
		{"file into an existing dir", fileArchive, CopyInfo{Path: "/h/a.txt", Exists: true}, CopyInfo{Path: "/c/dir", Exists: true, IsDir: true}, "/c/dir", []string{"a.txt"}, nil},
		{"file over an existing file", fileArchive, CopyInfo{Path: "/h/a.txt", Exists: true}, CopyInfo{Path: "/c/b.txt", Exists: true}, "/c", []string{"b.txt"}, nil},
		{"file to a new name", fileArchive, CopyInfo{Path: "/h/a.txt", Exists: true}, CopyInfo{Path: "/c/new"}, "/c", []string{"new"}, nil},
		{"file to a missing dir", fileArchive, CopyInfo{Path: "/h/a.txt", Exists: true}, CopyInfo{Path: "/c/new/"}, "", nil, ErrDirNotExists},
		{"dir over a file", dirArchive, CopyInfo{Path: "/h/src", Exists: true, IsDir: true}, CopyInfo{Path: "/c/file", Exists: true}, "", nil, ErrCannotCopyDir},
		{"dir to a new name", dirArchive, CopyInfo{Path: "/h/src", Exists: true, IsDir: true}, CopyInfo{Path: "/c/dst"}, "/c", []string{"dst/", "dst/f"}, nil},
		{"dir into an existing dir", dirArchive, CopyInfo{Path: "/h/src", Exists: true, IsDir: true}, CopyInfo{Path: "/c/d", Exists: true, IsDir: true}, "/c/d", []string{"src/", "src/f"}, nil},
		{"followed link renamed", fileArchive, CopyInfo{Path: "/h/a.txt", Exists: true, RebaseName: "a.txt"}, CopyInfo{Path: "/c/n"}, "/c", []string{"n"}, nil},
	} {
		dir, rc, err := PrepareArchiveCopy(c.archive(), c.src, c.dst)
		if !errors.Is(err, c.wantErr) {
			t.Errorf("%s: error %v, want %v", c.what, err, c.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		got := names(t, rc)
		rc.Close()
		if dir != c.wantDir || !reflect.DeepEqual(got, c.wantNames) {
			t.Errorf("%s: extract %q into %q, want %q into %q", c.what, got, dir, c.wantNames, c.wantDir)
		}
	}
}

// tree lists the files under dir with their contents ("name=content", directories "name/",
// links "name->target").
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out = append(out, rel+"->"+l)
		case fi.IsDir():
			out = append(out, rel+"/")
		default:
			b, _ := os.ReadFile(p)
			out = append(out, rel+"="+string(b))
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// TestLocalRoundTrip: a local source archived by TarSource and extracted by CopyTo gives
// docker's cp results.
func TestLocalRoundTrip(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "dir", "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "dir", "a.txt"), []byte("a"), 0o644)
	os.WriteFile(filepath.Join(src, "dir", "sub", "b.txt"), []byte("b"), 0o600)
	os.Symlink("a.txt", filepath.Join(src, "dir", "link"))
	os.Link(filepath.Join(src, "dir", "a.txt"), filepath.Join(src, "dir", "hard"))
	os.Symlink("dir", filepath.Join(src, "dirlink"))

	copyTo := func(srcPath string, follow bool, dst string) error {
		t.Helper()
		info, err := SourceInfo(srcPath, follow)
		if err != nil {
			return err
		}
		rc, err := TarSource(info)
		if err != nil {
			return err
		}
		defer rc.Close()
		return CopyTo(rc, info, dst)
	}
	for _, c := range []struct {
		what, src string
		follow    bool
		dst       string // relative to a fresh destination directory
		pre       func(dst string)
		want      []string
	}{
		{"dir into an existing dir", "dir", false, "out/", func(d string) { os.Mkdir(filepath.Join(d, "out"), 0o755) },
			[]string{"out/", "out/dir/", "out/dir/a.txt=a", "out/dir/hard=a", "out/dir/link->a.txt", "out/dir/sub/", "out/dir/sub/b.txt=b"}},
		{"dir to a new name", "dir", false, "copy", nil,
			[]string{"copy/", "copy/a.txt=a", "copy/hard=a", "copy/link->a.txt", "copy/sub/", "copy/sub/b.txt=b"}},
		{"dir/. into an existing dir", "dir/.", false, "out", func(d string) { os.Mkdir(filepath.Join(d, "out"), 0o755) },
			[]string{"out/", "out/a.txt=a", "out/hard=a", "out/link->a.txt", "out/sub/", "out/sub/b.txt=b"}},
		{"file to a new name", "dir/a.txt", false, "renamed", nil, []string{"renamed=a"}},
		{"file over a file", "dir/a.txt", false, "old", func(d string) { os.WriteFile(filepath.Join(d, "old"), []byte("old"), 0o644) }, []string{"old=a"}},
		{"link not followed", "dir/link", false, "l", nil, []string{"l->a.txt"}},
		{"link followed", "dir/link", true, "l", nil, []string{"l=a"}},
		{"dir link followed with trailing slash", "dirlink/", false, "x", nil,
			[]string{"x/", "x/a.txt=a", "x/hard=a", "x/link->a.txt", "x/sub/", "x/sub/b.txt=b"}},
	} {
		dst := t.TempDir()
		if c.pre != nil {
			c.pre(dst)
		}
		err := copyTo(PreserveTrailingDotOrSeparator(filepath.Join(src, c.src), c.src), c.follow, PreserveTrailingDotOrSeparator(filepath.Join(dst, c.dst), c.dst))
		if err != nil {
			t.Errorf("%s: %v", c.what, err)
			continue
		}
		if got := tree(t, dst); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %q\nwant %q", c.what, got, c.want)
		}
	}
	// A file cannot replace a directory, nor go into a directory that does not exist.
	dst := t.TempDir()
	os.MkdirAll(filepath.Join(dst, "a.txt"), 0o755)
	if err := copyTo(filepath.Join(src, "dir", "a.txt"), false, dst); err == nil || !strings.Contains(err.Error(), "cannot overwrite directory") {
		t.Errorf("file over a directory: %v", err)
	}
	if err := copyTo(filepath.Join(src, "dir", "a.txt"), false, filepath.Join(dst, "missing")+"/"); !errors.Is(err, ErrDirNotExists) {
		t.Errorf("file to a missing dir: %v", err)
	}
}

// TestExtractStaysInside: archive entries cannot write outside the destination.
func TestExtractStaysInside(t *testing.T) {
	outside := t.TempDir()
	dst := t.TempDir()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "escape", Typeflag: tar.TypeSymlink, Linkname: outside, Mode: 0o777})
	tw.WriteHeader(&tar.Header{Name: "escape/pwned", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644})
	tw.Write([]byte("x"))
	tw.Close()
	err := Extract(bytes.NewReader(buf.Bytes()), dst)
	if _, serr := os.Stat(filepath.Join(outside, "pwned")); serr == nil {
		t.Fatalf("a file was written outside the destination (err %v)", err)
	}
	buf.Reset()
	tw = tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "../up", Typeflag: tar.TypeReg, Mode: 0o644})
	tw.Close()
	if err := Extract(bytes.NewReader(buf.Bytes()), dst); err == nil {
		t.Errorf("an entry with ../: no error")
	}
}

func TestValidateOutputPath(t *testing.T) {
	dir := t.TempDir()
	if err := ValidateOutputPath(filepath.Join(dir, "missing", "f")); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing parent: %v", err)
	}
	if err := ValidateOutputPath(filepath.Join(dir, "f")); err != nil {
		t.Errorf("new file: %v", err)
	}
	if err := ValidateOutputPath("/dev/null"); err == nil || !strings.Contains(err.Error(), "got a device") {
		t.Errorf("a device: %v", err)
	}
}
