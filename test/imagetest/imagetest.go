// Package imagetest builds the images that berth's image tests use (from
// the host's busybox-static, no registry needed) and compares root
// filesystems: a manifest of every path with its type, mode, owner, size,
// link target and content hash, so that two trees made by different tools
// can be checked for equality.
package imagetest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Busybox is the host's busybox-static binary.
func Busybox(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatalf("busybox-static is needed (apt-get install busybox-static): %v", err)
	}
	return p
}

// Entry is one file for RootfsTar.
type Entry struct {
	Name     string
	Type     byte // tar.TypeReg (default), TypeDir, TypeSymlink, TypeLink, TypeChar, TypeFifo
	Mode     int64
	UID, GID int
	Data     string
	Linkname string
	Xattrs   map[string]string
	Major    int64
	Minor    int64
}

// Tar builds a tar of entries (PAX, fixed times).
func Tar(t testing.TB, entries []Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mt := time.Unix(1700000000, 0)
	for _, e := range entries {
		h := &tar.Header{Name: e.Name, Typeflag: e.Type, Mode: e.Mode, Uid: e.UID, Gid: e.GID, Linkname: e.Linkname,
			ModTime: mt, Format: tar.FormatPAX, Devmajor: e.Major, Devminor: e.Minor}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.Data))
		}
		for k, v := range e.Xattrs {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(e.Data))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// BusyboxRootfs writes a small root filesystem into dir: busybox with its
// applet links, /etc/passwd and group, and files that exercise what a
// layer must keep (a setuid binary, a hard link, an owned file, an xattr,
// a fifo, a character device, an empty directory with odd mode).
func BusyboxRootfs(t testing.TB, dir string) {
	t.Helper()
	bb := Busybox(t)
	run := func(name string, args ...string) {
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	for _, d := range []string{"bin", "etc", "tmp", "var/empty", "data"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	run("cp", bb, filepath.Join(dir, "bin/busybox"))
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range strings.Fields(string(out)) {
		if a != "busybox" {
			os.Symlink("busybox", filepath.Join(dir, "bin", a))
		}
	}
	os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "etc/group"), []byte("root:x:0:\nnogroup:x:65534:\n"), 0o644)
	os.Chmod(filepath.Join(dir, "tmp"), os.ModeSticky|0o777)
	os.Chmod(filepath.Join(dir, "var/empty"), 0o711)
	os.WriteFile(filepath.Join(dir, "data/owned"), []byte("owned by nobody\n"), 0o640)
	os.Chown(filepath.Join(dir, "data/owned"), 65534, 65534)
	os.WriteFile(filepath.Join(dir, "data/suid"), []byte("#!/bin/sh\n"), 0o755)
	os.Chmod(filepath.Join(dir, "data/suid"), fs.ModeSetuid|0o755)
	os.Link(filepath.Join(dir, "data/owned"), filepath.Join(dir, "data/hardlink"))
	os.WriteFile(filepath.Join(dir, "data/xattr"), []byte("x"), 0o644)
	syscall.Setxattr(filepath.Join(dir, "data/xattr"), "user.berth", []byte("kept"), 0)
	syscall.Mkfifo(filepath.Join(dir, "data/fifo"), 0o600)
	syscall.Mknod(filepath.Join(dir, "data/null"), syscall.S_IFCHR|0o666, int(1<<8|3))
	os.WriteFile(filepath.Join(dir, "data/big"), bytes.Repeat([]byte("berth"), 200000), 0o644)
}

// TarDir makes a tar of dir with GNU tar (the way a user makes a rootfs
// tarball), keeping xattrs.
func TarDir(t testing.TB, dir, out string) {
	t.Helper()
	cmd := exec.Command("tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-C", dir, "-cf", out, ".")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, b)
	}
}

// TreeManifest lists every path under root (sorted) with its type,
// permissions, owner, size, link target, content hash and user xattrs.
// Directory sizes and times are left out (they differ between filesystems
// and tools); hard links show as their content, like any file.
func TreeManifest(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		line := fmt.Sprintf("%s %o %d:%d", rel, st.Mode, st.Uid, st.Gid)
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFREG:
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			io.Copy(h, f)
			f.Close()
			line += fmt.Sprintf(" size=%d sha256=%s", st.Size, hex.EncodeToString(h.Sum(nil))[:16])
		case syscall.S_IFLNK:
			l, _ := os.Readlink(p)
			line += " -> " + l
		case syscall.S_IFCHR, syscall.S_IFBLK:
			line += fmt.Sprintf(" dev=%d", st.Rdev)
		}
		if x := userXattrs(p); x != "" {
			line += " " + x
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatalf("manifest of %s: %v", root, err)
	}
	sort.Strings(out)
	return out
}

func userXattrs(p string) string {
	buf := make([]byte, 4096)
	n, err := syscall.Listxattr(p, buf)
	if err != nil || n <= 0 {
		return ""
	}
	var parts []string
	for _, k := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if !strings.HasPrefix(k, "user.") {
			continue
		}
		v := make([]byte, 4096)
		m, err := syscall.Getxattr(p, k, v)
		if err == nil {
			parts = append(parts, k+"="+string(v[:m]))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// TarManifest unpacks a tar file with GNU tar into a fresh directory under
// t.TempDir() and returns its TreeManifest.
func TarManifest(t testing.TB, tarball string) []string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf", tarball, "-C", dir)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tar -x: %v\n%s", err, b)
	}
	return TreeManifest(t, dir)
}

// HardLinks lists the regular files under root that share an inode, one
// line per group of paths ("data/hardlink = data/owned"), sorted.
// TreeManifest shows a hard link only as a copy of its content; comparing
// HardLinks as well proves the link itself survived.
func HardLinks(t testing.TB, root string) []string {
	t.Helper()
	groups := map[[2]uint64][]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		if st.Nlink > 1 {
			rel, _ := filepath.Rel(root, p)
			k := [2]uint64{st.Dev, st.Ino}
			groups[k] = append(groups[k], rel)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("hard links of %s: %v", root, err)
	}
	var out []string
	for _, g := range groups {
		if len(g) > 1 {
			sort.Strings(g)
			out = append(out, strings.Join(g, " = "))
		}
	}
	sort.Strings(out)
	return out
}
