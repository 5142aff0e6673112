package buildctx

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

func TestReadIgnore(t *testing.T) {
	in := "# comment\n\n  *.log  \n!keep.log\n/abs/path\n./rel/../dir/\n!  spaced\n"
	got, err := ReadIgnore(strings.NewReader(in))
	want := []string{"*.log", "!keep.log", "abs/path", "dir", "!spaced"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ReadIgnore: %q %v, want %q", got, err, want)
	}
}

// TestMatches: docker's .dockerignore semantics (patternmatcher): Go's filepath.Match
// syntax, "**" across directories, a match of a parent directory, the last pattern wins.
func TestMatches(t *testing.T) {
	for _, c := range []struct {
		patterns []string
		file     string
		want     bool
	}{
		{[]string{"*.go"}, "a.go", true},
		{[]string{"*.go"}, "dir/a.go", false},
		{[]string{"**/*.go"}, "dir/sub/a.go", true},
		{[]string{"**/*.go"}, "a.go", true},
		{[]string{"dir"}, "dir/sub/file", true},
		{[]string{"dir/**"}, "dir/sub/file", true},
		{[]string{"dir/**"}, "dir", false},
		{[]string{"**"}, "anything/at/all", true},
		{[]string{"a?c"}, "abc", true},
		{[]string{"a?c"}, "a/c", false},
		{[]string{"[a-c]x"}, "bx", true},
		{[]string{"[a-c]x"}, "dx", false},
		{[]string{"docs", "!docs/README.md"}, "docs/README.md", false},
		{[]string{"docs", "!docs/README.md"}, "docs/other.md", true},
		{[]string{"*.md", "!README.md", "README.md"}, "README.md", true},
		{[]string{"a.b+c(d)"}, "a.b+c(d)", true},
		{[]string{"a.b"}, "axb", false},
		{[]string{`\*`}, "*", true},
		{[]string{`\*`}, "x", false},
		{[]string{"**/tmp/**"}, "x/tmp/y", true},
		{[]string{"**/tmp/**"}, "tmp/y", true},
	} {
		m, err := NewMatcher(c.patterns)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Matches(c.file); got != c.want {
			t.Errorf("%q matches %q: %v, want %v", c.patterns, c.file, got, c.want)
		}
	}
	if _, err := NewMatcher([]string{"!"}); err == nil {
		t.Errorf("a lone !: no error")
	}
}

func contextEntries(t *testing.T, r io.Reader) []string {
	t.Helper()
	var out []string
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s owned by %d:%d, want 0:0", h.Name, h.Uid, h.Gid)
		}
		out = append(out, h.Name)
	}
	sort.Strings(out)
	return out
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTarContext: the context tar leaves out what .dockerignore excludes, keeps the
// exceptions (even inside excluded directories) and always keeps the build files.
func TestTarContext(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": "FROM x\n", ".dockerignore": "*.log\ndocs\n!docs/keep.md\nDockerfile\n.dockerignore\nnode_modules\n",
		"a.log": "", "src/main.go": "", "src/x.log": "", "docs/keep.md": "", "docs/drop.md": "", "node_modules/m/i.js": "",
	})
	excludes, err := ReadDockerignore(dir)
	if err != nil {
		t.Fatal(err)
	}
	excludes, err = KeepBuildFiles(excludes, "Dockerfile", false)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Tar(dir, Options{Excludes: excludes})
	if err != nil {
		t.Fatal(err)
	}
	got := contextEntries(t, c)
	c.Close()
	want := []string{".dockerignore", "Dockerfile", "docs/keep.md", "src/", "src/main.go", "src/x.log"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("context:\n got %q\nwant %q", got, want)
	}
}

// TestOutsideDockerfile: a Dockerfile from outside the context goes in under a random
// name, which the context's .dockerignore then lists.
func TestOutsideDockerfile(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"ctx/a": "a", "ctx/.dockerignore": "b\n", "Dockerfile.other": "FROM y\n"})
	ctxDir, rel, err := LocalDir(filepath.Join(dir, "ctx"), filepath.Join(dir, "Dockerfile.other"))
	if err != nil {
		t.Fatal(err)
	}
	if rel != "../Dockerfile.other" {
		t.Errorf("relative Dockerfile %q", rel)
	}
	c, err := Tar(ctxDir, Options{Dockerfile: []byte("FROM y\n")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tr := tar.NewReader(c)
	found := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		found[h.Name] = string(b)
	}
	if !strings.HasPrefix(c.DockerfileName, ".dockerfile.") || found[c.DockerfileName] != "FROM y\n" {
		t.Errorf("the Dockerfile is not in the context as %q: %q", c.DockerfileName, found)
	}
	if ig := found[".dockerignore"]; !strings.Contains(ig, "b\n") || !strings.Contains(ig, c.DockerfileName) {
		t.Errorf(".dockerignore %q", ig)
	}
}

func TestLocalDirDockerfile(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"dockerfile": "FROM x\n"})
	if _, rel, err := LocalDir(dir, ""); err != nil || rel != "dockerfile" {
		t.Errorf("a lower-case dockerfile: %q %v", rel, err)
	}
	if _, _, err := LocalDir(t.TempDir(), ""); err == nil || !strings.Contains(err.Error(), "Cannot locate Dockerfile") {
		t.Errorf("no Dockerfile: %v", err)
	}
	if _, _, err := LocalDir(filepath.Join(dir, "dockerfile"), ""); err == nil || !strings.Contains(err.Error(), "context must be a directory") {
		t.Errorf("a file as context: %v", err)
	}
}

func TestFromReader(t *testing.T) {
	rc, name, err := FromReader(strings.NewReader("FROM x\nRUN true\n"), "")
	if err != nil || name != "Dockerfile" {
		t.Fatalf("a Dockerfile on stdin: %q %v", name, err)
	}
	if got := contextEntries(t, rc); !reflect.DeepEqual(got, []string{"Dockerfile"}) {
		t.Errorf("a Dockerfile on stdin: context %q", got)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "Custom", Typeflag: tar.TypeReg, Size: 7, Mode: 0o644})
	tw.Write([]byte("FROM x\n"))
	tw.Close()
	rc, name, err = FromReader(bytes.NewReader(buf.Bytes()), "Custom")
	if err != nil || name != "Custom" {
		t.Fatalf("a tar on stdin: %q %v", name, err)
	}
	if got, _ := io.ReadAll(rc); !bytes.Equal(got, buf.Bytes()) {
		t.Errorf("a tar on stdin is not passed as it is")
	}
	if _, _, err := FromReader(strings.NewReader("FROM x\n"), "-"); err == nil {
		t.Errorf("a Dockerfile on stdin with -f -: no error")
	}
}
