package daemon_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"berth/test/berthtest"
)

// TestCopyExportDiff: docker cp both ways with docker's path rules (files, directories, /.
// contents, into a volume, to and from stdin/stdout), docker export and docker diff.
func TestCopyExportDiff(t *testing.T) {
	t.Parallel()
	d := newDaemon(t, berthtest.Options{})
	d.must("run", "-d", "--name", "cp", "-v", "cpvol:/vol", image, "sleep", "100000")
	host := workDir(t)
	writeFile(t, host+"/src/file", "file\n")
	writeFile(t, host+"/src/dir/a", "a\n")
	writeFile(t, host+"/src/dir/sub/b", "b\n")
	// cat prints a file of the container, or fails the test.
	cat := func(c *cli, path string) string { return c.must("exec", "cp", "cat", path) }
	find := func(c *cli, path string) string {
		found := fields(c.must("exec", "cp", "find", path))
		slices.Sort(found)
		return strings.Join(found, " ")
	}

	t.Run("HostToContainer", func(t *testing.T) {
		c := d.on(t)
		c.must("exec", "cp", "mkdir", "-p", "/h/existing", "/h/existing2")
		c.must("exec", "cp", "touch", "/h/afile")
		// A file into a directory, to a new name, over a file.
		c.must("cp", host+"/src/file", "cp:/h/existing")
		want(t, "file into a directory", cat(c, "/h/existing/file"), "file")
		c.must("cp", host+"/src/file", "cp:/h/renamed")
		want(t, "file to a new name", cat(c, "/h/renamed"), "file")
		c.must("cp", host+"/src/file", "cp:/h/afile")
		want(t, "file over a file", cat(c, "/h/afile"), "file")
		c.fails(1, "", "cp", host+"/src/file", "cp:/h/nosuchdir/")
		c.fails(1, "", "cp", host+"/src/file", "cp:/nosuch/parent/file")
		// A directory into a directory, to a new name, its contents with /.
		c.must("cp", host+"/src/dir", "cp:/h/existing")
		want(t, "directory into a directory", find(c, "/h/existing/dir"), "/h/existing/dir /h/existing/dir/a /h/existing/dir/sub /h/existing/dir/sub/b")
		c.must("cp", host+"/src/dir", "cp:/h/newdir")
		want(t, "directory to a new name", find(c, "/h/newdir"), "/h/newdir /h/newdir/a /h/newdir/sub /h/newdir/sub/b")
		c.must("cp", host+"/src/dir/.", "cp:/h/existing2")
		want(t, "directory contents (/.)", find(c, "/h/existing2"), "/h/existing2 /h/existing2/a /h/existing2/sub /h/existing2/sub/b")
		c.fails(1, "", "cp", host+"/src/dir", "cp:/h/afile")
		// A tar from stdin is extracted into the directory.
		var tb bytes.Buffer
		tw := tar.NewWriter(&tb)
		tw.WriteHeader(&tar.Header{Name: "fromtar", Mode: 0o640, Size: 4, Uid: 1234, Gid: 5678, Typeflag: tar.TypeReg})
		tw.Write([]byte("tar\n"))
		tw.Close()
		_, errOut, code := c.runIn(tb.String(), "cp", "-", "cp:/h/existing")
		want(t, "cp - exit code ("+errOut+")", code, 0)
		want(t, "from a tar on stdin", cat(c, "/h/existing/fromtar"), "tar")
		want(t, "its mode (kept from the tar)", c.must("exec", "cp", "stat", "-c", "%a", "/h/existing/fromtar"), "640")
		// -a keeps the owner.
		if err := os.Chown(host+"/src/file", 4321, 4321); err != nil {
			t.Fatal(err)
		}
		c.must("cp", "-a", host+"/src/file", "cp:/h/owned-a")
		want(t, "owner with -a", c.must("exec", "cp", "stat", "-c", "%u", "/h/owned-a"), "4321")
		// Into a volume: another container sees it.
		c.must("cp", host+"/src/file", "cp:/vol/")
		want(t, "the volume from another container", c.must("run", "--rm", "-v", "cpvol:/v", image, "cat", "/v/file"), "file")
		// Into a stopped container.
		c.rmOnCleanup("cpstopped")
		c.must("create", "--name", "cpstopped", image, "cat", "/file")
		c.must("cp", host+"/src/file", "cpstopped:/")
		c.must("start", "cpstopped")
		want(t, "copied into a created container", c.must("logs", "cpstopped"), "file")
		c.fails(1, "", "cp", host+"/src/file", "nosuch:/")
		c.fails(1, "", "cp", host+"/nosuch", "cp:/")
	})

	t.Run("ContainerToHost", func(t *testing.T) {
		c := d.on(t)
		c.must("exec", "cp", "sh", "-c", "mkdir -p /out/dir/sub && echo x > /out/dir/x && echo y > /out/dir/sub/y && echo f > /out/f && ln -s f /out/link")
		dst := workDir(t)
		c.must("cp", "cp:/out/f", dst+"/f")
		want(t, "file to a new name", readFile(t, dst+"/f"), "f\n")
		os.Mkdir(dst+"/into", 0o755)
		c.must("cp", "cp:/out/f", dst+"/into")
		want(t, "file into a directory", readFile(t, dst+"/into/f"), "f\n")
		c.must("cp", "cp:/out/dir", dst+"/into")
		want(t, "directory into a directory", readFile(t, dst+"/into/dir/sub/y"), "y\n")
		c.must("cp", "cp:/out/dir", dst+"/newdir")
		want(t, "directory to a new name", readFile(t, dst+"/newdir/x"), "x\n")
		os.Mkdir(dst+"/contents", 0o755)
		c.must("cp", "cp:/out/dir/.", dst+"/contents")
		want(t, "directory contents (/.)", readFile(t, dst+"/contents/sub/y"), "y\n")
		if _, err := os.Stat(dst + "/contents/dir"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("/. copied the directory itself, not its contents")
		}
		c.fails(1, "", "cp", "cp:/out/dir", dst+"/f")
		c.fails(1, "Could not find the file /out/nosuch in container cp", "cp", "cp:/out/nosuch", dst)
		// A symlink is copied as a link; -L follows it.
		c.must("cp", "cp:/out/link", dst+"/link")
		if target, err := os.Readlink(dst + "/link"); err != nil || target != "f" {
			t.Errorf("the copied link: %q, %v", target, err)
		}
		c.must("cp", "-L", "cp:/out/link", dst+"/followed")
		want(t, "cp -L", readFile(t, dst+"/followed"), "f\n")
		// To stdout: a tar.
		out, _, code := c.run("cp", "cp:/out/dir", "-")
		want(t, "cp to - exit code", code, 0)
		want(t, "cp to -: the tar", strings.Join(tarNames(t, out), " "), "dir/ dir/sub/ dir/sub/y dir/x")
		// From a volume and from the image's own files.
		c.must("exec", "cp", "sh", "-c", "echo v > /vol/fromvol")
		c.must("cp", "cp:/vol/fromvol", dst+"/fromvol")
		want(t, "from a volume", readFile(t, dst+"/fromvol"), "v\n")
		c.must("cp", "cp:/etc/passwd", dst+"/passwd")
		contains(t, "from the image", readFile(t, dst+"/passwd"), "root:x:0:0")
	})

	t.Run("Export", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("exp")
		c.must("run", "--name", "exp", image, "sh", "-c", "echo exported > /marker; rm /etc/group")
		dst := workDir(t)
		c.must("export", "-o", dst+"/exp.tar", "exp")
		names := tarNames(t, readFile(t, dst+"/exp.tar"))
		for _, n := range []string{"marker", "bin/busybox", "bin/sh", "etc/passwd"} {
			if !slices.Contains(names, n) {
				t.Errorf("the export has no %s", n)
			}
		}
		for _, n := range []string{"etc/group", ".wh.group", "etc/.wh.group"} {
			if slices.Contains(names, n) {
				t.Errorf("the export has %s", n)
			}
		}
		out, _, code := c.run("export", "exp")
		want(t, "export to stdout's exit code", code, 0)
		if !slices.Contains(tarNames(t, out), "marker") {
			t.Errorf("export to stdout has no marker")
		}
		c.fails(1, "No such container", "export", "nosuch")
	})

	t.Run("Diff", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("df")
		c.must("run", "-d", "--name", "df", image, "sleep", "100000")
		want(t, "diff of an unchanged container", c.must("diff", "df"), "")
		c.must("exec", "df", "sh", "-c", "mkdir -p /new/sub && touch /new/sub/f && echo >> /etc/passwd && rm /etc/group && touch /tmp/t")
		changes := fields(c.must("diff", "df"))
		slices.SortFunc(changes, func(a, b string) int { return strings.Compare(a[2:], b[2:]) })
		want(t, "diff", strings.Join(changes, ", "), "C /etc, D /etc/group, C /etc/passwd, A /new, A /new/sub, A /new/sub/f, C /tmp, A /tmp/t")
		c.must("stop", "-t", "0", "df")
		contains(t, "diff of a stopped container", c.must("diff", "df"), "A /new/sub/f")
		c.fails(1, "No such container", "diff", "nosuch")
	})
}

// tarNames lists a tar's entries, sorted.
func tarNames(t testing.TB, data string) []string {
	t.Helper()
	tr := tar.NewReader(strings.NewReader(data))
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read the tar: %v", err)
		}
		names = append(names, strings.TrimPrefix(filepath.Clean(h.Name), "./")+map[bool]string{true: "/"}[h.Typeflag == tar.TypeDir])
	}
	slices.Sort(names)
	return names
}
