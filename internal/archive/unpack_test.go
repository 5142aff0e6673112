package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

func TestUnpackRefusals(t *testing.T) {
	long := strings.Repeat("a/", maxPathLen/2) + "f"
	for _, tc := range []struct {
		name string
		ents func(s *sandbox) []ent
		bad  string // the entry the error must name
		want error
	}{
		{"dotdot", func(*sandbox) []ent { return []ent{reg("../outside/secret", "pwned")} }, "../outside/secret", ErrBreakout},
		{"nested dotdot", func(*sandbox) []ent { return []ent{reg("a/../../evil", "x")} }, "a/../../evil", ErrBreakout},
		{"inner dotdot", func(*sandbox) []ent { return []ent{reg("ok", ""), reg("a/../b", "x")} }, "a/../b", ErrBreakout},
		{"absolute", func(*sandbox) []ent { return []ent{reg("/evil", "x")} }, "/evil", ErrBreakout},
		{"absolute host path", func(s *sandbox) []ent { return []ent{reg(s.secret, "pwned")} }, "", ErrBreakout},
		{"symlink escape", func(*sandbox) []ent { return []ent{symlink("l", "../outside")} }, "l", ErrBreakout},
		{"nested symlink escape", func(*sandbox) []ent {
			return []ent{dirent("a/", 0o755), symlink("a/l", "../../outside/secret")}
		}, "a/l", ErrBreakout},
		{"hard link escape", func(*sandbox) []ent { return []ent{hardlink("h", "../outside/secret")} }, "h", ErrBreakout},
		{"hard link absolute", func(s *sandbox) []ent { return []ent{hardlink("h", s.secret)} }, "h", ErrBreakout},
		{"hard link climbing", func(*sandbox) []ent { return []ent{hardlink("h", "a/../../outside/secret")} }, "h", ErrBreakout},
		{"whiteout dotdot", func(*sandbox) []ent { return []ent{reg("a/.wh...", "")} }, "a/.wh...", ErrBreakout},
		{"long name", func(*sandbox) []ent { return []ent{reg(long, "x")} }, long, errNameTooLong},
		{"long symlink target", func(*sandbox) []ent { return []ent{symlink("l", long)} }, "l", errNameTooLong},
		{"long hard link target", func(*sandbox) []ent { return []ent{hardlink("h", long)} }, "h", errNameTooLong},
		{"unsupported type", func(*sandbox) []ent {
			return []ent{{hdr: tar.Header{Typeflag: 'Z', Name: "z"}}}
		}, "z", errUnsupportedType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t)
			ents := tc.ents(s)
			bad := tc.bad
			if bad == "" {
				bad = ents[len(ents)-1].hdr.Name
			}
			_, err := unpack(t, mkTar(t, ents...), s.root, WhiteoutOverlay)
			var ee *EntryError
			if !errors.As(err, &ee) || !errors.Is(err, tc.want) {
				t.Fatalf("Unpack error %v, want an EntryError wrapping %v", err, tc.want)
			}
			if ee.Name != bad {
				t.Errorf("error names %q, want %q", ee.Name, bad)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", bad)) {
				t.Errorf("error text %q does not name the entry", err)
			}
			s.checkConfined(t)
		})
	}
}

// Symbolic links made by earlier entries must not carry later ones out of
// the extraction directory: each case is either refused or lands inside.
// Where the case names a path, it must land there, as a file of type typ.
func TestUnpackSymlinkTraversal(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ents  func(s *sandbox) []ent
		path  string
		typ   uint32
		nlink uint64
	}{
		{"link to root then write through", func(*sandbox) []ent {
			return []ent{symlink("a", "/"), reg("a/evil", "x")}
		}, "evil", unix.S_IFREG, 1},
		{"link to host dir then write through", func(s *sandbox) []ent {
			return []ent{symlink("a", s.outside), reg("a/secret", "pwned")}
		}, "", 0, 0},
		{"link to /etc then write through", func(*sandbox) []ent {
			return []ent{symlink("a", "/etc"), reg("a/passwd", "root::0:0::/:/bin/sh\n")}
		}, "", 0, 0},
		{"link to /.. then write through", func(*sandbox) []ent {
			return []ent{symlink("a", "/../outside"), reg("a/secret", "pwned")}
		}, "", 0, 0},
		{"deep link chain", func(*sandbox) []ent {
			return []ent{dirent("d/", 0o755), symlink("d/up", "/"), symlink("x", "d/up/d/up"), reg("x/outside/secret", "pwned")}
		}, "outside/secret", unix.S_IFREG, 1},
		{"file over link to host file", func(s *sandbox) []ent {
			return []ent{symlink("l", s.secret), reg("l", "pwned")}
		}, "l", unix.S_IFREG, 1},
		{"dir over link to host dir", func(s *sandbox) []ent {
			return []ent{symlink("d", s.outside), dirent("d/", 0o777)}
		}, "d", unix.S_IFDIR, 2},
		{"fifo over link to host file", func(s *sandbox) []ent {
			return []ent{symlink("l", s.secret), {hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "l", Mode: 0o666}}}
		}, "l", unix.S_IFIFO, 1},
		{"hard link through link", func(s *sandbox) []ent {
			return []ent{symlink("l", "/../outside"), hardlink("h", "l/secret")}
		}, "", 0, 0},
		{"hard link to link to host file", func(s *sandbox) []ent {
			return []ent{symlink("l", s.secret), hardlink("h", "l")}
		}, "h", unix.S_IFLNK, 2},
		{"opaque through link", func(s *sandbox) []ent {
			return []ent{symlink("s", s.outside), reg("s/.wh..wh..opq", "")}
		}, "", 0, 0},
		{"whiteout through link", func(s *sandbox) []ent {
			return []ent{symlink("s", s.outside), reg("s/.wh.secret", "")}
		}, "", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t)
			_, err := unpack(t, mkTar(t, tc.ents(s)...), s.root, WhiteoutOverlay)
			if err != nil {
				var ee *EntryError
				if tc.path != "" || !errors.As(err, &ee) {
					t.Errorf("Unpack: %v", err)
				}
				t.Logf("refused: %v", err)
			}
			if tc.path != "" {
				st := lstat(t, filepath.Join(s.root, tc.path))
				if st.Mode&unix.S_IFMT != tc.typ || st.Nlink != tc.nlink {
					t.Errorf("%s: mode %o nlink %d, want type %o nlink %d", tc.path, st.Mode, st.Nlink, tc.typ, tc.nlink)
				}
			}
			s.checkConfined(t)
		})
	}
}

// WhiteoutApply works on an existing tree, so the links are already there.
func TestUnpackApplyThroughSymlink(t *testing.T) {
	s := newSandbox(t)
	if err := os.Symlink(s.outside, filepath.Join(s.root, "s")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/../outside", filepath.Join(s.root, "r")); err != nil {
		t.Fatal(err)
	}
	data := mkTar(t, reg("s/.wh.secret", ""), reg("r/.wh.secret", ""), reg("s/.wh..wh..opq", ""),
		reg("r/.wh..wh..opq", ""), reg(".wh.s", ""))
	mustUnpack(t, data, s.root, WhiteoutApply)
	s.checkConfined(t)
	if exists(filepath.Join(s.root, "s")) {
		t.Error(".wh.s did not remove the link s")
	}
}

func TestUnpackWhiteoutOverlay(t *testing.T) {
	s := newSandbox(t)
	wh := reg("a/.wh.b", "")
	wh.hdr.Uid, wh.hdr.Gid = 1000, 1000
	data := mkTar(t,
		dirent("a/", 0o755),
		reg("a/.wh..wh..opq", ""),
		wh,
		reg(".wh.c", ""),
		reg("a/x", "x"),
		dirent(".wh..wh.plnk/", 0o700),
		reg(".wh..wh.plnk/123.456", "aufs"),
		reg("a/.wh..wh.aufs", ""),
		reg("nested/dir/.wh.gone", ""),
	)
	st := mustUnpack(t, data, s.root, WhiteoutOverlay)
	if st.Entries != 9 {
		t.Errorf("Entries = %d, want 9", st.Entries)
	}
	want := map[string]string{
		"a":               fmt.Sprintf("mode=%o uid=0 gid=0 xattr:trusted.overlay.opaque=y", unix.S_IFDIR|0o755),
		"a/b":             fmt.Sprintf("mode=%o uid=1000 gid=1000 rdev=0,0", unix.S_IFCHR),
		"a/x":             fmt.Sprintf("mode=%o uid=0 gid=0 sha256=%x", unix.S_IFREG|0o644, sha256.Sum256([]byte("x"))),
		"c":               fmt.Sprintf("mode=%o uid=0 gid=0 rdev=0,0", unix.S_IFCHR),
		"nested":          fmt.Sprintf("mode=%o uid=0 gid=0", unix.S_IFDIR|0o755),
		"nested/dir":      fmt.Sprintf("mode=%o uid=0 gid=0", unix.S_IFDIR|0o755),
		"nested/dir/gone": fmt.Sprintf("mode=%o uid=0 gid=0 rdev=0,0", unix.S_IFCHR),
	}
	compareSnapshots(t, "overlay whiteouts", snapshot(t, s.root, false), want)
	s.checkConfined(t)
}

func TestUnpackWhiteoutApply(t *testing.T) {
	s := newSandbox(t)
	for _, d := range []string{"a/sub", "gonedir/deep", "b"} {
		if err := os.MkdirAll(filepath.Join(s.root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"keep", "a/old", "a/sub/old2", "gone", "gonedir/deep/x", "b/old"} {
		if err := os.WriteFile(filepath.Join(s.root, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data := mkTar(t,
		reg("a/new", "new"),
		reg("a/sub2/y", "y"),
		reg("a/.wh..wh..opq", ""),
		reg(".wh.gone", ""),
		reg(".wh.gonedir", ""),
		reg(".wh.missing", ""),
		reg("missing/.wh.x", ""),
		reg("b/.wh..wh..opq", ""),
		reg("b/new", "new"),
	)
	mustUnpack(t, data, s.root, WhiteoutApply)
	got := snapshot(t, s.root, false)
	var names []string
	for k := range got {
		names = append(names, k)
	}
	want := []string{"a", "a/new", "a/sub2", "a/sub2/y", "b", "b/new", "keep"}
	if !equalSets(names, want) {
		t.Errorf("tree after apply: %q, want %q", names, want)
	}
	s.checkConfined(t)
}

func equalSets(a, b []string) bool {
	m := make(map[string]int)
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}

func TestUnpackReplace(t *testing.T) {
	s := newSandbox(t)
	d := dirent("d/", 0o700)
	d2 := dirent("d/", 0o750)
	d2.hdr.Uid = 7
	data := mkTar(t,
		reg("f", "one"), reg("f", "two"), // file over file
		reg("x", "file"), dirent("x/", 0o755), reg("x/in", "in"), // dir over file
		dirent("y/", 0o755), reg("y/a/b", "deep"), reg("y", "file now"), // file over dir
		reg("z", "z"), symlink("z", "target"), // link over file
		d, reg("d/keep", "k"), d2, // dir over dir keeps children
		symlink("l", "d"), reg("l/through", "t"), dirent("l/", 0o711), reg("l/own", "o"), // dir over a link cached as parent
		hardlink("h", "f"), reg("h", "h"),
	)
	mustUnpack(t, data, s.root, WhiteoutOverlay)
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(s.root, p))
		if err != nil {
			t.Error(err)
		}
		return string(b)
	}
	if got := read("f"); got != "two" {
		t.Errorf("f = %q", got)
	}
	if got := read("x/in"); got != "in" {
		t.Errorf("x/in = %q", got)
	}
	if got := read("y"); got != "file now" {
		t.Errorf("y = %q", got)
	}
	if got, _ := os.Readlink(filepath.Join(s.root, "z")); got != "target" {
		t.Errorf("z -> %q", got)
	}
	if st := lstat(t, filepath.Join(s.root, "d")); st.Mode&0o7777 != 0o750 || st.Uid != 7 {
		t.Errorf("d mode %o uid %d, want 750 and 7", st.Mode&0o7777, st.Uid)
	}
	if got := read("d/keep") + read("d/through"); got != "kt" {
		t.Errorf("d/keep + d/through = %q", got)
	}
	if st := lstat(t, filepath.Join(s.root, "l")); st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Errorf("l is mode %o, want a directory", st.Mode)
	}
	if got := read("l/own"); got != "o" || exists(filepath.Join(s.root, "d/own")) {
		t.Errorf("l/own = %q, or it went into d", got)
	}
	if got := read("f") + read("h"); got != "twoh" {
		t.Errorf("f + h = %q, replacing the link h must not change f", got)
	}
	s.checkConfined(t)
}

// metadataArchive has one of every kind of entry, with owners, modes
// (setuid included), nanosecond mtimes and an xattr.
func metadataArchive(t testing.TB) []byte {
	mt := func(e ent, uid int, mtime time.Time) ent {
		e.hdr.Uid, e.hdr.Gid, e.hdr.ModTime = uid, uid+1, mtime
		return e
	}
	file := mt(reg("d/f", "hello"), 1000, time.Unix(1600000000, 987654321))
	file.hdr.Mode = 0o4755
	file.hdr.PAXRecords = map[string]string{"SCHILY.xattr.user.foo": "bar", "SCHILY.xattr.trusted.t": "v\x00w"}
	dev := ent{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "d/null", Mode: 0o666, Devmajor: 1, Devminor: 3}}
	blk := ent{hdr: tar.Header{Typeflag: tar.TypeBlock, Name: "d/loop9", Mode: 0o660, Devmajor: 7, Devminor: 9}}
	fifo := ent{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "d/p", Mode: 0o620}}
	sticky := dirent("tmp/", 0o1777)
	sticky.hdr.PAXRecords = map[string]string{"SCHILY.xattr.user.dir": "yes"}
	return mkTar(t,
		mt(dirent("d/", 0o2750), 1000, time.Unix(1500000000, 1)),
		file,
		hardlink("d/h", "d/f"),
		mt(symlink("d/s", "f"), 1001, time.Unix(1400000000, 5)),
		mt(symlink("d/abs", "/bin/busybox"), 0, time.Unix(1400000000, 6)),
		mt(dev, 0, time.Unix(1300000000, 0)),
		mt(blk, 6, time.Unix(1300000000, 0)),
		mt(fifo, 5, time.Unix(1200000000, 42)),
		mt(sticky, 0, time.Unix(1100000000, 0)),
		mt(reg("tmp/x", ""), 65534, time.Unix(1000000000, 0)),
		mt(dirent("e/f/g/", 0o700), 3, time.Unix(900000000, 7)),
	)
}

func TestUnpackMetadata(t *testing.T) {
	s := newSandbox(t)
	st := mustUnpack(t, metadataArchive(t), s.root, WhiteoutOverlay)
	if st.Bytes != int64(len("hello")) || st.Entries != 11 {
		t.Errorf("stats %+v, want 5 bytes and 11 entries", st)
	}
	f := lstat(t, filepath.Join(s.root, "d/f"))
	if f.Mode != unix.S_IFREG|0o4755 || f.Uid != 1000 || f.Gid != 1001 || f.Nlink != 2 {
		t.Errorf("d/f mode %o uid %d gid %d nlink %d", f.Mode, f.Uid, f.Gid, f.Nlink)
	}
	if f.Mtim.Sec != 1600000000 || f.Mtim.Nsec != 987654321 {
		t.Errorf("d/f mtime %v", f.Mtim)
	}
	if got := listXattrs(t, filepath.Join(s.root, "d/f")); strings.Join(got, ",") != "trusted.t=v\x00w,user.foo=bar" {
		t.Errorf("d/f xattrs %q", got)
	}
	if h := lstat(t, filepath.Join(s.root, "d/h")); h.Ino != f.Ino {
		t.Error("d/h is not a hard link of d/f")
	}
	d := lstat(t, filepath.Join(s.root, "d"))
	if d.Mode != unix.S_IFDIR|0o2750 || d.Uid != 1000 || d.Mtim.Sec != 1500000000 || d.Mtim.Nsec != 1 {
		t.Errorf("d mode %o uid %d mtime %v", d.Mode, d.Uid, d.Mtim)
	}
	if sl := lstat(t, filepath.Join(s.root, "d/s")); sl.Uid != 1001 || sl.Mtim.Sec != 1400000000 || sl.Mtim.Nsec != 5 {
		t.Errorf("d/s uid %d mtime %v", sl.Uid, sl.Mtim)
	}
	if dev := lstat(t, filepath.Join(s.root, "d/null")); dev.Mode != unix.S_IFCHR|0o666 || dev.Rdev != unix.Mkdev(1, 3) {
		t.Errorf("d/null mode %o rdev %x", dev.Mode, dev.Rdev)
	}
	if p := lstat(t, filepath.Join(s.root, "d/p")); p.Mode != unix.S_IFIFO|0o620 || p.Uid != 5 || p.Mtim.Nsec != 42 {
		t.Errorf("d/p mode %o uid %d mtime %v", p.Mode, p.Uid, p.Mtim)
	}
	if tmp := lstat(t, filepath.Join(s.root, "tmp")); tmp.Mode != unix.S_IFDIR|0o1777 {
		t.Errorf("tmp mode %o", tmp.Mode)
	}
	if e := lstat(t, filepath.Join(s.root, "e")); e.Mode != unix.S_IFDIR|0o755 || e.Uid != 0 {
		t.Errorf("implicit parent e mode %o uid %d, want 755 and root", e.Mode, e.Uid)
	}
	if g := lstat(t, filepath.Join(s.root, "e/f/g")); g.Mtim.Sec != 900000000 || g.Uid != 3 {
		t.Errorf("e/f/g mtime %v uid %d", g.Mtim, g.Uid)
	}
}

// Unpack skips chown and chmod where creation gives a file its owner and
// mode already: never where it does not. A set-group-ID directory passes
// its group on (before and after its own entry), the umask takes bits
// from open's mode, and a default ACL decides the mode of new files.
func TestUnpackCreationDefaults(t *testing.T) {
	old := unix.Umask(0o027)
	defer unix.Umask(old)
	owned := func(e ent, uid, gid int) ent {
		e.hdr.Uid, e.hdr.Gid = uid, gid
		return e
	}
	mode := func(e ent, m int64) ent {
		e.hdr.Mode = m
		return e
	}
	// user::rwx group::--- other::--- : 0750 asked (which the umask
	// leaves), 0700 made.
	acl := string([]byte{2, 0, 0, 0, 1, 0, 7, 0, 0xff, 0xff, 0xff, 0xff, 4, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x20, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	aclDir := dirent("acl/", 0o755)
	aclDir.hdr.PAXRecords = map[string]string{xattrPAXPrefix + aclDefaultXattr: acl}
	sg := owned(dirent("g/", 0o2755), 0, 1234)
	s := newSandbox(t)
	_, err := unpack(t, mkTar(t,
		reg("late/a", "x"), // makes late/ (0755, the caller's group)
		owned(dirent("late/", 0o2755), 0, 1234),
		reg("late/b", "x"),
		sg,
		reg("g/root", "x"),
		owned(reg("g/inherit", "x"), 0, 1234),
		symlink("g/link", "root"),
		mode(reg("m664", "x"), 0o664),
		mode(reg("m600", "x"), 0o600),
		mode(reg("m755", "x"), 0o755),
		owned(reg("other", "x"), 7, 8),
		aclDir,
		mode(reg("acl/f", "x"), 0o750),
	), s.root, WhiteoutOverlay)
	if isNotSupported(err) {
		t.Skipf("no ACLs here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		mode     uint32
		uid, gid uint32
	}{
		{"late/a", unix.S_IFREG | 0o644, 0, 0},
		{"late/b", unix.S_IFREG | 0o644, 0, 0},
		{"g/root", unix.S_IFREG | 0o644, 0, 0},
		{"g/inherit", unix.S_IFREG | 0o644, 0, 1234},
		{"g/link", unix.S_IFLNK | 0o777, 0, 0},
		{"m664", unix.S_IFREG | 0o664, 0, 0},
		{"m600", unix.S_IFREG | 0o600, 0, 0},
		{"m755", unix.S_IFREG | 0o755, 0, 0},
		{"other", unix.S_IFREG | 0o644, 7, 8},
		{"acl/f", unix.S_IFREG | 0o750, 0, 0},
	} {
		st := lstat(t, filepath.Join(s.root, c.name))
		if st.Mode != c.mode || st.Uid != c.uid || st.Gid != c.gid {
			t.Errorf("%s: mode %o owner %d:%d, want %o %d:%d", c.name, st.Mode, st.Uid, st.Gid, c.mode, c.uid, c.gid)
		}
	}

	// A default ACL on the extraction directory itself.
	s = newSandbox(t)
	if err := unix.Setxattr(s.root, aclDefaultXattr, []byte(acl), 0); err != nil {
		t.Fatal(err)
	}
	mustUnpack(t, mkTar(t, mode(reg("f", "x"), 0o750)), s.root, WhiteoutOverlay)
	if st := lstat(t, filepath.Join(s.root, "f")); st.Mode != unix.S_IFREG|0o750 {
		t.Errorf("f in a root with a default ACL: mode %o, want 750", st.Mode)
	}
}

// The root entry sets the extraction directory's own metadata.
func TestUnpackRootEntry(t *testing.T) {
	for _, name := range []string{".", "./", ""} {
		s := newSandbox(t)
		root := dirent(name, 0o711)
		root.hdr.Uid, root.hdr.ModTime = 9, time.Unix(1234, 5)
		mustUnpack(t, mkTar(t, root, reg("./a", "a"), reg("./b/c", "c")), s.root, WhiteoutOverlay)
		st := lstat(t, s.root)
		if st.Mode != unix.S_IFDIR|0o711 || st.Uid != 9 || st.Mtim.Sec != 1234 || st.Mtim.Nsec != 5 {
			t.Errorf("root entry %q: root mode %o uid %d mtime %v", name, st.Mode, st.Uid, st.Mtim)
		}
		if !exists(filepath.Join(s.root, "a")) || !exists(filepath.Join(s.root, "b/c")) {
			t.Errorf("root entry %q: ./a or ./b/c missing", name)
		}
	}
	s := newSandbox(t)
	_, err := unpack(t, mkTar(t, reg(".", "")), s.root, WhiteoutOverlay)
	if !errors.Is(err, errRootNotDir) {
		t.Errorf("regular file as root entry: %v", err)
	}
}

func TestUnpackCompression(t *testing.T) {
	data := metadataArchive(t)
	// GNU tar pads to 10 KiB records: the digest must cover the padding.
	data = append(data, make([]byte, 10240-len(data)%10240)...)
	want := digest.FromBytes(data)
	for _, c := range []Compression{Uncompressed, Gzip, Zstd} {
		t.Run(c.String(), func(t *testing.T) {
			compressed := compress(t, data, c)
			if got := DetectCompression(compressed); got != c {
				t.Errorf("DetectCompression = %v", got)
			}
			rc, got, err := DecompressStream(bytes.NewReader(compressed))
			if err != nil || got != c {
				t.Fatalf("DecompressStream: %v, %v", got, err)
			}
			plain, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(plain, data) {
				t.Fatalf("DecompressStream gave %d bytes (%v), want the %d of the archive", len(plain), err, len(data))
			}
			dir := t.TempDir()
			st := mustUnpack(t, compressed, dir, WhiteoutOverlay)
			if st.DiffID != want {
				t.Errorf("DiffID %s, want %s", st.DiffID, want)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "d/f")); string(b) != "hello" {
				t.Errorf("d/f = %q", b)
			}
			// A stream whose digest is known: the diff ID is that digest
			// when uncompressed (no second hashing), computed otherwise.
			blob := digest.FromBytes(compressed)
			st, err = Unpack(context.Background(), bytes.NewReader(compressed), t.TempDir(), UnpackOptions{Digest: blob})
			if err != nil || st.DiffID != want {
				t.Errorf("with Digest: DiffID %s (%v), want %s", st.DiffID, err, want)
			}
		})
	}
	if DetectCompression(nil) != Uncompressed || DetectCompression([]byte{0x1f}) != Uncompressed {
		t.Error("short heads must be uncompressed")
	}
}

func TestUnpackEmptyAndCorrupt(t *testing.T) {
	st, err := Unpack(context.Background(), bytes.NewReader(nil), t.TempDir(), UnpackOptions{})
	if err != nil || st.DiffID != digest.FromBytes(nil) {
		t.Errorf("empty stream: %+v, %v", st, err)
	}
	b := compress(t, mkTar(t, reg("a", "a")), Gzip)
	b[len(b)-5] ^= 0xff // the gzip trailer's length
	if _, err := Unpack(context.Background(), bytes.NewReader(b), t.TempDir(), UnpackOptions{}); err == nil {
		t.Error("a corrupt gzip trailer went unnoticed")
	}
}

func TestUnpackTruncated(t *testing.T) {
	data := mkTar(t, reg("first", "1"), reg("second", strings.Repeat("2", 3000)), reg("third", "3"))
	for _, tc := range []struct {
		name   string
		wantIn string
	}{
		{"in a header", `after tar entry "first"`},
		{"in file data", `tar entry "second"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range readPaths {
				_, err := unpackVia(p, data[:cutPoint(t, data, tc.name)], t.TempDir(), UnpackOptions{})
				if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), tc.wantIn) {
					t.Errorf("%s: error %v, want unexpected EOF naming %s", p, err, tc.wantIn)
				}
			}
		})
	}
}

// cutPoint finds where to truncate data: inside the header of the second
// entry, or inside its data.
func cutPoint(t *testing.T, data []byte, where string) int {
	// The second entry's data is 3000 '2's; its header ends where they start.
	start := bytes.Index(data, []byte(strings.Repeat("2", 3000)))
	if start < 0 {
		t.Fatal("no data")
	}
	if where == "in file data" {
		return start + 1000
	}
	return start - 100
}

func TestUnpackCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Unpack(ctx, bytes.NewReader(mkTar(t, reg("a", "a"))), t.TempDir(), UnpackOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
}

func TestUnpackENOSPC(t *testing.T) {
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	dir := filepath.Join(mnt, "layer")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := unpack(t, mkTar(t, reg("small", "s"), reg("big", strings.Repeat("x", 4<<20))), dir, WhiteoutOverlay)
	var ee *EntryError
	if !errors.As(err, &ee) || ee.Name != "big" || !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("error %v, want an EntryError for big wrapping ENOSPC", err)
	}
}

func TestCheckXattrs(t *testing.T) {
	hdr := &tar.Header{PAXRecords: map[string]string{
		"SCHILY.xattr.user.a": strings.Repeat("a", maxXattrBytes/2),
		"SCHILY.xattr.user.b": strings.Repeat("b", maxXattrBytes/2),
	}}
	if err := checkXattrs(hdr); !errors.Is(err, errXattrsTooLarge) {
		t.Errorf("checkXattrs: %v", err)
	}
	delete(hdr.PAXRecords, "SCHILY.xattr.user.b")
	if err := checkXattrs(hdr); err != nil {
		t.Errorf("checkXattrs: %v", err)
	}
}

func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{
		".": "", "./": "", "": "", "a": "a", "./a/b/": "a/b", "././a//b/./c": "a/b/c", "a/.": "a",
	} {
		if got, err := cleanName(in); err != nil || got != want {
			t.Errorf("cleanName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"..", "../a", "a/..", "a/../b", "/a", "//a", "./../a"} {
		if _, err := cleanName(in); !errors.Is(err, ErrBreakout) {
			t.Errorf("cleanName(%q): %v, want ErrBreakout", in, err)
		}
	}
}

// Neither success nor failure leaves descriptors or goroutines behind.
func TestUnpackNoLeaks(t *testing.T) {
	count := func() int {
		des, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(des)
	}
	before, goroutines := count(), runtime.NumGoroutine()
	mustUnpack(t, metadataArchive(t), t.TempDir(), WhiteoutOverlay)
	mustUnpack(t, metadataArchive(t), t.TempDir(), WhiteoutApply)
	writeTar(t, WriteDiff, t.TempDir())
	unpack(t, mkTar(t, dirent("a/", 0o755), reg("a/b/c", ""), reg("../x", "")), t.TempDir(), WhiteoutOverlay)
	// A failure while the reader goroutine is blocked on a full pipeline.
	big := mkTar(t, reg("../x", ""), reg("big", strings.Repeat("x", 8<<20)))
	unpack(t, compress(t, big, Zstd), t.TempDir(), WhiteoutOverlay)
	if after := count(); after != before {
		t.Errorf("%d descriptors open before, %d after", before, after)
	}
	if after := runtime.NumGoroutine(); after > goroutines {
		t.Errorf("%d goroutines before, %d after", goroutines, after)
	}
}
