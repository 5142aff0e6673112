package volume

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/volume"
	"golang.org/x/sys/unix"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
}

// describe lists a tree's entries with their type, mode, owner, size,
// mtime, link target, xattrs and, for hard links, a shared inode tag.
func describe(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	inodes := map[uint64]string{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var sst unix.Stat_t
		if err := unix.Lstat(p, &sst); err != nil {
			return err
		}
		line := fmt.Sprintf("%s %o %d:%d", rel, sst.Mode, sst.Uid, sst.Gid)
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			line += fmt.Sprintf(" %q", b)
			if sst.Nlink > 1 {
				if first, ok := inodes[sst.Ino]; ok {
					line += " link=" + first
				} else {
					inodes[sst.Ino] = rel
				}
			}
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			line += " -> " + target
		}
		if fi.Mode()&os.ModeDevice != 0 {
			line += fmt.Sprintf(" dev=%d,%d", unix.Major(sst.Rdev), unix.Minor(sst.Rdev))
		}
		if rel != "." {
			line += fmt.Sprintf(" mtime=%d.%09d", sst.Mtim.Sec, sst.Mtim.Nsec)
		}
		buf := make([]byte, 1024)
		if n, err := unix.Llistxattr(p, buf); err == nil && n > 0 {
			keys := strings.Split(strings.TrimSuffix(string(buf[:n]), "\x00"), "\x00")
			sort.Strings(keys)
			for _, k := range keys {
				v := make([]byte, 256)
				m, _ := unix.Lgetxattr(p, k, v)
				line += fmt.Sprintf(" %s=%q", k, v[:max(m, 0)])
			}
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// imageTree makes a rootfs with content at /var/lib/app.
func imageTree(t *testing.T) (rootfs, app string) {
	t.Helper()
	rootfs = t.TempDir()
	app = filepath.Join(rootfs, "var/lib/app")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(app, "sub/deeper"), 0o755))
	must(os.WriteFile(filepath.Join(app, "conf"), []byte("config"), 0o640))
	must(os.WriteFile(filepath.Join(app, "sub/tool"), []byte("#!/bin/sh"), 0o755))
	must(os.Chmod(filepath.Join(app, "sub/tool"), 0o4755))
	must(os.Link(filepath.Join(app, "conf"), filepath.Join(app, "sub/deeper/conf-link")))
	must(os.Symlink("../conf", filepath.Join(app, "sub/rel")))
	must(os.Symlink("/etc/passwd", filepath.Join(app, "abs")))
	must(unix.Mkfifo(filepath.Join(app, "fifo"), 0o600))
	must(unix.Mknod(filepath.Join(app, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Setxattr(filepath.Join(app, "conf"), "user.note", []byte("hello"), 0))
	must(unix.Setxattr(filepath.Join(app, "sub"), "user.dir", []byte("d"), 0))
	must(os.Chmod(filepath.Join(app, "sub/deeper"), 0o700))
	must(os.Lchown(filepath.Join(app, "conf"), 1000, 1001))
	must(os.Lchown(filepath.Join(app, "abs"), 7, 8))
	must(os.Lchown(filepath.Join(app, "sub"), 33, 33))
	must(os.Lchown(app, 999, 999))
	must(os.Chmod(app, 0o750))
	old := time.Date(2020, 1, 2, 3, 4, 5, 600, time.UTC)
	for _, p := range []string{"conf", "sub/tool", "sub/deeper", "sub", "fifo", "null", "."} {
		must(os.Chtimes(filepath.Join(app, p), old, old))
	}
	ts := []unix.Timespec{unix.NsecToTimespec(old.UnixNano()), unix.NsecToTimespec(old.UnixNano())}
	must(unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(app, "abs"), ts, unix.AT_SYMLINK_NOFOLLOW))
	return rootfs, app
}

func TestCopyUp(t *testing.T) {
	requireRoot(t)
	rootfs, app := imageTree(t)
	dst := t.TempDir()
	if err := CopyUp(rootfs, "/var/lib/app", dst); err != nil {
		t.Fatal(err)
	}
	want, got := describe(t, app), describe(t, dst)
	if got != want {
		t.Fatalf("copy differs:\n%s\nwant\n%s", got, want)
	}
	var st unix.Stat_t
	if err := unix.Stat(dst, &st); err != nil || st.Mtim.Sec != 1577934245 {
		t.Fatalf("root times not copied: %v %v", st.Mtim, err)
	}
	// A second copy into the now non-empty directory does nothing.
	if err := os.WriteFile(filepath.Join(app, "new"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CopyUp(rootfs, "/var/lib/app", dst); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dst, "new")); err == nil {
		t.Fatal("copied into a non-empty volume")
	}
}

func TestCopyUpResolvesInsideRoot(t *testing.T) {
	requireRoot(t)
	rootfs, _ := imageTree(t)
	// /data -> /var/lib/app (absolute): resolved in the rootfs, not on the host.
	if err := os.Symlink("/var/lib/app", filepath.Join(rootfs, "data")); err != nil {
		t.Fatal(err)
	}
	// /escape -> ../../../../.. climbs no higher than the rootfs' root.
	if err := os.Symlink("../../../../../../var/lib/app/sub", filepath.Join(rootfs, "escape")); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := CopyUp(rootfs, "data", dst); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "conf")); err != nil || string(b) != "config" {
		t.Fatalf("through an absolute symlink: %q, %v", b, err)
	}
	dst2 := t.TempDir()
	if err := CopyUp(rootfs, "/escape", dst2); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dst2, "tool")); err != nil {
		t.Fatalf("through a climbing symlink: %v", err)
	}
	// Missing paths and files copy nothing.
	for _, p := range []string{"/nonexistent", "/var/lib/app/conf", "/var/lib/app/abs"} {
		d := t.TempDir()
		if err := CopyUp(rootfs, p, d); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if ents, _ := os.ReadDir(d); len(ents) != 0 {
			t.Fatalf("%s: copied %v", p, ents)
		}
	}
}

func TestStoreCopyUp(t *testing.T) {
	requireRoot(t)
	s, _, _ := newStore(t)
	rootfs, app := imageTree(t)
	v := create(t, s, volume.CreateRequest{Name: "appdata"})
	if err := s.CopyUp("appdata", rootfs, "/var/lib/app"); err != nil {
		t.Fatal(err)
	}
	if got, want := describe(t, v.Mountpoint), describe(t, app); got != want {
		t.Fatalf("copy differs:\n%s\nwant\n%s", got, want)
	}
	// The copy's mount reference is gone.
	if err := s.Remove(ctx, "appdata", false); err != nil {
		t.Fatal(err)
	}
}
