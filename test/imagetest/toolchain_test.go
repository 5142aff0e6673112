package imagetest_test

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path"
	"strings"
	"testing"

	"berth/test/berthtest"
	"berth/test/imagetest"
)

// TestToolchainTar checks the toolchain tar without running it: the same bytes each time,
// parents before their entries, /usr/bin/gcc resolving to a program, the interpreter and
// libc.a present, no documents.
func TestToolchainTar(t *testing.T) {
	first := imagetest.ToolchainTar(t)
	var again bytes.Buffer
	if err := imagetest.WriteToolchainTar(&again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, again.Bytes()) {
		t.Fatal("two toolchain tars of the same host differ")
	}
	entries := map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(first))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(h.Name, "/")
		if d := path.Dir(name); d != "." {
			if p, ok := entries[d]; !ok || (p.Typeflag != tar.TypeDir) {
				t.Errorf("%s comes before its directory %s", name, d)
			}
		}
		if h.Typeflag == tar.TypeLink {
			if p, ok := entries[h.Linkname]; !ok || p.Typeflag != tar.TypeReg {
				t.Errorf("hard link %s to %s, not an earlier file", name, h.Linkname)
			}
		}
		if strings.HasPrefix(name, "usr/share/doc") || strings.HasPrefix(name, "usr/share/man") {
			t.Errorf("document %s in the toolchain", name)
		}
		entries[name] = h
	}
	// resolve follows symbolic links in the image (the image's /lib and /lib64 included).
	var resolve func(p string, depth int) *tar.Header
	resolve = func(p string, depth int) *tar.Header {
		if depth > 20 {
			return nil
		}
		dir, base := path.Split(p)
		if dir != "" {
			d := resolve(strings.TrimSuffix(dir, "/"), depth+1)
			if d == nil || d.Typeflag != tar.TypeDir {
				return nil
			}
			p = path.Join(strings.TrimSuffix(d.Name, "/"), base)
		}
		h := entries[p]
		if h == nil || h.Typeflag != tar.TypeSymlink {
			return h
		}
		target := h.Linkname
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(p), target)
		}
		return resolve(strings.TrimPrefix(path.Clean(target), "/"), depth+1)
	}
	_, triplet, err := imagetest.ToolchainPackages()
	if err != nil {
		t.Fatal(err)
	}
	cc1, err := exec.Command("gcc", "-print-prog-name=cc1").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"usr/bin/gcc", "usr/bin/cc", "usr/bin/as", "usr/bin/ld", strings.TrimPrefix(strings.TrimSpace(string(cc1)), "/"),
		"lib64/ld-linux-x86-64.so.2", "lib/" + triplet + "/libc.so.6", "usr/lib/" + triplet + "/libc.a", "usr/include/stdio.h", "bin/sh"} {
		if h := resolve(p, 0); h == nil || h.Typeflag != tar.TypeReg {
			t.Errorf("/%s does not resolve to a file in the toolchain tar", p)
		}
	}
	t.Logf("toolchain tar: %d entries, %d bytes", len(entries), len(first))
}

// TestToolchainBuildsInContainer imports the toolchain tar into a private berthd and compiles
// and runs a static C program in a container of it.
func TestToolchainBuildsInContainer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (a private berthd)")
	}
	tarball := imagetest.ToolchainTar(t)
	d := berthtest.Start(t, berthtest.Options{})
	if out, errOut, code := d.DockerIn(tarball, "import", "-", "toolchain:test"); code != 0 {
		t.Fatalf("docker import: exit %d: %s %s\n%s", code, out, errOut, d.LogTail(20))
	}
	const script = `printf '#include <stdio.h>\n#include <math.h>\nint main(void) { printf("hello %%d\\n", (int)sqrt(49.0)); return 0; }\n' > /hello.c &&
gcc -static -O2 -o /hello /hello.c -lm && /hello && gcc -O2 -o /hello-dyn /hello.c -lm && /hello-dyn`
	out, errOut, code := d.Docker("run", "--rm", "--network", "none", "toolchain:test", "/bin/sh", "-c", script)
	if code != 0 || out != "hello 7\nhello 7\n" {
		t.Fatalf("gcc in a container: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
