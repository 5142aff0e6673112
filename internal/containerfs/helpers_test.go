package containerfs

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var mtime = time.Date(2021, 3, 4, 5, 6, 7, 890000000, time.UTC)

// testRoot makes a container root file system next to a "secret" file
// that no path of the container may reach:
//
//	<tmp>/secret
//	<tmp>/rootfs/etc/{hostname,passwd,group}
//	<tmp>/rootfs/dir/{a (hard-linked as sub/a-link), sub/b, fifo, link -> a, out -> ../../../secret}
//	<tmp>/rootfs/lnk-abs -> /etc, lnk-rel -> etc, lnk-file -> /etc/hostname
//	<tmp>/rootfs/escape -> ../../../../.., escape-abs -> /, dangling -> /nonexistent/x
//	<tmp>/rootfs/loop1 <-> loop2, var/run -> /run, run/x
func testRoot(t *testing.T) (rootfs, outside string) {
	t.Helper()
	tmp := t.TempDir()
	outside = filepath.Join(tmp, "secret")
	must(t, os.WriteFile(outside, []byte("host secret"), 0o600))
	rootfs = filepath.Join(tmp, "rootfs")
	files := map[string]string{
		"etc/hostname": "ctr\n",
		"etc/passwd":   "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
		"etc/group":    "root:x:0:\nstaff:x:50:\napp:x:1001:\n",
		"dir/a":        "aaa",
		"dir/sub/b":    "bbbb",
		"run/x":        "run",
	}
	for p, c := range files {
		must(t, os.MkdirAll(filepath.Join(rootfs, filepath.Dir(p)), 0o755))
		must(t, os.WriteFile(filepath.Join(rootfs, p), []byte(c), 0o644))
	}
	must(t, os.MkdirAll(filepath.Join(rootfs, "var"), 0o755))
	must(t, os.Mkdir(filepath.Join(rootfs, "data"), 0o755))
	must(t, os.Link(filepath.Join(rootfs, "dir/a"), filepath.Join(rootfs, "dir/sub/a-link")))
	must(t, unix.Mkfifo(filepath.Join(rootfs, "dir/fifo"), 0o640))
	for link, target := range map[string]string{
		"dir/link": "a", "dir/out": "../../../secret",
		"lnk-abs": "/etc", "lnk-rel": "etc", "lnk-file": "/etc/hostname",
		"escape": "../../../../..", "escape-abs": "/", "dangling": "/nonexistent/x",
		"loop1": "loop2", "loop2": "loop1", "var/run": "/run",
	} {
		must(t, os.Symlink(target, filepath.Join(rootfs, link)))
	}
	if os.Getuid() == 0 {
		must(t, os.Lchown(filepath.Join(rootfs, "dir/a"), 1000, 1001))
		must(t, os.Lchown(filepath.Join(rootfs, "dir/link"), 7, 8))
	}
	must(t, unix.Chmod(filepath.Join(rootfs, "dir/a"), 0o4751)) // after chown, which clears setuid
	must(t, unix.Setxattr(filepath.Join(rootfs, "dir/sub/b"), "user.test", []byte("xv"), 0))
	for _, p := range []string{"dir/a", "dir/sub/b", "dir/sub", "dir", "etc/hostname"} {
		must(t, os.Chtimes(filepath.Join(rootfs, p), mtime, mtime))
	}
	return rootfs, outside
}

// entry is a tar entry, summarised.
type entry struct {
	name, link string
	typ        byte
	mode       int64
	uid, gid   int
	mtime      time.Time
	body       string
	xattrs     map[string]string
}

func (e entry) String() string {
	s := fmt.Sprintf("%s %c %o %d:%d", e.name, e.typ, e.mode, e.uid, e.gid)
	if e.link != "" {
		s += " -> " + e.link
	}
	if e.body != "" {
		s += fmt.Sprintf(" %q", e.body)
	}
	return s
}

func readTar(t *testing.T, r io.Reader) []entry {
	t.Helper()
	var out []entry
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("reading the archive: %v", err)
		}
		b, err := io.ReadAll(tr)
		must(t, err)
		e := entry{name: hdr.Name, link: hdr.Linkname, typ: hdr.Typeflag, mode: hdr.Mode,
			uid: hdr.Uid, gid: hdr.Gid, mtime: hdr.ModTime, body: string(b)}
		for k, v := range hdr.PAXRecords {
			if x, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				if e.xattrs == nil {
					e.xattrs = map[string]string{}
				}
				e.xattrs[x] = v
			}
		}
		out = append(out, e)
	}
}

func names(es []entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.name)
	}
	return out
}

// tarEntry describes an entry to write in a test archive.
type tarEntry struct {
	name, link, body string
	typ              byte
	uid, gid         int
	mode             int64
}

func makeTar(t *testing.T, entries ...tarEntry) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		mode := e.mode
		if mode == 0 {
			mode = 0o644
			if e.typ == tar.TypeDir {
				mode = 0o755
			}
		}
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: mode,
			Uid: e.uid, Gid: e.gid, Size: int64(len(e.body)), ModTime: mtime, Format: tar.FormatPAX}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		must(t, tw.WriteHeader(hdr))
		if hdr.Size > 0 {
			_, err := tw.Write([]byte(e.body))
			must(t, err)
		}
	}
	must(t, tw.Close())
	return &buf
}

// tree lists the files under dir with type, mode, owner and content.
func tree(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		var st unix.Stat_t
		must(t, unix.Lstat(p, &st))
		line := fmt.Sprintf("%s %o %d:%d", rel, st.Mode, st.Uid, st.Gid)
		switch {
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			line += fmt.Sprintf(" %q", b)
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			line += " -> " + l
		}
		lines = append(lines, line)
		return nil
	})
	must(t, err)
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func isKind(err, kind error) bool { return errors.Is(err, kind) }

func isRoot() bool { return os.Getuid() == 0 }
func myUID() int   { return os.Getuid() }
func myGID() int   { return os.Getgid() }
