package build

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"

	"berth/internal/cli/buildctx"
)

func TestExposedPorts(t *testing.T) {
	for in, want := range map[string][]string{
		"80":          {"80/tcp"},
		"53/udp":      {"53/udp"},
		"8000-8002":   {"8000/tcp", "8001/tcp", "8002/tcp"},
		"9000/SCTP":   {"9000/sctp"},
		"0":           nil,
		"70000":       nil,
		"80/icmp":     nil,
		"8002-8000":   nil,
		"eighty":      nil,
		"80-eighty/u": nil,
	} {
		got, err := exposedPorts(in)
		if want == nil {
			if err == nil {
				t.Errorf("exposedPorts(%q) = %v, want an error", in, got)
			}
			continue
		}
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("exposedPorts(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}

func TestHeredocScript(t *testing.T) {
	files := []instructions.ShellInlineFile{{Name: "EOF", Data: "echo a\necho b\n"}}
	if got := heredocScript("<<EOF", files); got != "echo a\necho b\n" {
		t.Errorf("a RUN that is only a here-document runs its content, got %q", got)
	}
	if got := heredocScript(`<<"EOF"`, files); got != "echo a\necho b\n" {
		t.Errorf("quoted marker: got %q", got)
	}
	want := "cat <<EOF > /x\necho a\necho b\nEOF"
	if got := heredocScript("cat <<EOF > /x", files); got != want {
		t.Errorf("a command with a here-document: got %q, want %q", got, want)
	}
}

func TestChainKey(t *testing.T) {
	a := chainKey("", "RUN", "x")
	if a != chainKey("", "RUN", "x") {
		t.Fatal("the key of the same step differs")
	}
	for _, other := range [][]string{{"RUN", "y"}, {"RUNx", ""}, {"RUN", "x", ""}} {
		if chainKey("", other...) == a {
			t.Errorf("%q has the key of [RUN x]", other)
		}
	}
	if chainKey(a, "RUN", "x") == a {
		t.Error("a step's key does not depend on its parent")
	}
}

func strp(s string) *string { return &s }

func newTestBuild(args map[string]*string) *build {
	return &build{o: Options{BuildArgs: args}, usedArgs: map[string]bool{}, lex: shell.NewLex('\\'), out: &bytes.Buffer{}}
}

// TestArgs pins Docker's ARG rules: --build-arg beats a default; an ARG in a stage without
// a default takes the global value; ENV beats ARG; proxy args reach RUN without being
// declared but stay out of the cache key; unused build args are reported.
func TestArgs(t *testing.T) {
	b := newTestBuild(map[string]*string{"V": strp("cli"), "HTTP_PROXY": strp("http://p"), "UNUSED": strp("x")})
	res, err := parser.Parse(strings.NewReader("ARG V=def\nARG G=global\nFROM x\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, meta, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.globalArgs(meta); err != nil {
		t.Fatal(err)
	}
	if v, err := b.expandMeta("${V}-${G}-${TARGETOS}"); err != nil || v != "cli-global-linux" {
		t.Errorf("FROM sees %q, %v", v, err)
	}
	args := []kv{b.declareArg("G", nil), b.declareArg("V", strp("stage")), b.declareArg("E", strp("e")), b.declareArg("N", nil)}
	if *args[0].v != "global" || *args[1].v != "cli" || args[3].v != nil {
		t.Errorf("declared args: %+v", args)
	}
	all, keyed := b.argEnv(args, []string{"E=from-env"})
	if !slices.Equal(keyed, []string{"G=global", "V=cli"}) {
		t.Errorf("keyed args %q", keyed)
	}
	if !slices.Contains(all, "HTTP_PROXY=http://p") || slices.Contains(keyed, "HTTP_PROXY=http://p") {
		t.Errorf("proxy arg: all %q, keyed %q", all, keyed)
	}
	b.warnUnusedArgs()
	if out := b.out.(*bytes.Buffer).String(); !strings.Contains(out, "[UNUSED]") || strings.Contains(out, "HTTP_PROXY") {
		t.Errorf("unused args warning: %q", out)
	}
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(data, "->") {
			if err := os.Symlink(strings.TrimPrefix(data, "->"), p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestResolve pins how COPY finds its sources: paths stay in the context (symlinks are
// followed inside it), globs match one level, .dockerignore hides files, "../" is refused.
func TestResolve(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"a.txt": "a", "b.txt": "b", "sub/c.txt": "c", "secret.key": "s",
		"out": "->/etc/passwd", "in": "->sub/c.txt", "dotdot": "->../../../etc",
	})
	m, err := buildctx.NewMatcher([]string{"*.key"})
	if err != nil {
		t.Fatal(err)
	}
	r := &sourceRoot{dir: dir, ignore: m}
	rel := func(ps []string) []string {
		var out []string
		for _, p := range ps {
			x, _ := filepath.Rel(dir, p)
			out = append(out, x)
		}
		return out
	}
	if got, err := r.resolve("*.txt"); err != nil || !slices.Equal(rel(got), []string{"a.txt", "b.txt"}) {
		t.Errorf("*.txt: %v %v", rel(got), err)
	}
	if got, err := r.resolve("/sub/c.txt"); err != nil || !slices.Equal(rel(got), []string{"sub/c.txt"}) {
		t.Errorf("/sub/c.txt: %v %v", rel(got), err)
	}
	if got, err := r.resolve("in"); err != nil || !slices.Equal(rel(got), []string{"sub/c.txt"}) {
		t.Errorf("a symlink inside the context: %v %v", rel(got), err)
	}
	for _, bad := range []string{"secret.key", "*.key", "nothere", "out", "dotdot/passwd"} {
		if got, err := r.resolve(bad); err == nil {
			t.Errorf("%s resolved to %v", bad, rel(got))
		} else if !strings.Contains(err.Error(), "not found") {
			t.Errorf("%s: %v", bad, err)
		}
	}
	if _, err := r.resolve("../x"); err == nil || !strings.Contains(err.Error(), "outside the build context") {
		t.Errorf("../x: %v", err)
	}
	es, err := r.walk(filepath.Join(dir, "sub"), "dst", nil)
	if err != nil || len(es) != 2 || es[0].name != "dst" || es[1].name != "dst/c.txt" {
		t.Errorf("walk: %+v %v", es, err)
	}
}

func TestIsArchiveFile(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "f", Mode: 0o644, Size: 1})
	tw.Write([]byte("x"))
	tw.Close()
	zw.Close()
	writeFiles(t, dir, map[string]string{"t.tgz": buf.String(), "plain.txt": strings.Repeat("text ", 200)})
	if !isArchiveFile(filepath.Join(dir, "t.tgz")) {
		t.Error("a .tgz is not seen as an archive")
	}
	if isArchiveFile(filepath.Join(dir, "plain.txt")) {
		t.Error("a text file is seen as an archive")
	}
}

func TestLookupID(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"etc/passwd": "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
		"etc/group":  "root:x:0:\nstaff:x:50:\n",
	})
	for in, want := range map[string][2]int{"app": {1000, 1001}, "app:staff": {1000, 50}, "1000:0": {1000, 0}, "42": {42, 42}, "42:7": {42, 7}} {
		u, g, err := resolveChown(dir, in)
		if err != nil || u != want[0] || g != want[1] {
			t.Errorf("--chown=%s: %d:%d %v, want %v", in, u, g, err, want)
		}
	}
	if _, _, err := resolveChown(dir, "nobody"); err == nil {
		t.Error("an unknown user name was accepted")
	}
}
