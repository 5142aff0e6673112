package containerfs

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth/internal/archive"
	"berth/internal/errdefs"

	"golang.org/x/sys/unix"
)

func TestExtract(t *testing.T) {
	requireRoot(t)
	rootfs, _ := testRoot(t)
	v := View{Container: "c1", Root: rootfs}
	must(t, os.Mkdir(filepath.Join(rootfs, "dst"), 0o700))
	tr := makeTar(t,
		tarEntry{name: "./", typ: tar.TypeDir, uid: 1234, gid: 1234, mode: 0o750},
		tarEntry{name: "f", typ: tar.TypeReg, body: "file", uid: 1234, gid: 99},
		tarEntry{name: "/abs", typ: tar.TypeReg, body: "leading slash", uid: 1234},
		tarEntry{name: "d/", typ: tar.TypeDir, uid: 1234},
		tarEntry{name: "d/../d/g", typ: tar.TypeReg, body: "g", uid: 1234},
		tarEntry{name: "d/h", typ: tar.TypeLink, link: "f"},
		tarEntry{name: "d/s", typ: tar.TypeSymlink, link: "/etc/hostname", uid: 1234},
	)
	if err := Extract(v, "/dst", tr, false, false); err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		". 40750 0:0",
		`abs 100644 0:0 "leading slash"`,
		"d 40755 0:0",
		`d/g 100644 0:0 "g"`,
		`d/h 100644 0:0 "file"`,
		"d/s 120777 0:0 -> /etc/hostname",
		`f 100644 0:0 "file"`,
	}, "\n")
	if got := tree(t, filepath.Join(rootfs, "dst")); got != want {
		t.Fatalf("extracted:\n%s\nwant\n%s", got, want)
	}
	// Through a symbolic link to a directory, compressed.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(makeTar(t, tarEntry{name: "new", typ: tar.TypeReg, body: "n"}).Bytes())
	zw.Close()
	if err := Extract(v, "/lnk-abs", &gz, false, false); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(rootfs, "etc/new")); err != nil || string(b) != "n" {
		t.Fatalf("through lnk-abs: %q, %v", b, err)
	}
}

func TestExtractOwners(t *testing.T) {
	requireRoot(t)
	rootfs, _ := testRoot(t)
	for _, tc := range []struct {
		user     string
		copy     bool
		uid, gid uint32
	}{
		{"app", false, 0, 0},
		{"", true, 1234, 99},
		{"app", true, 1000, 1001},
		{"app:staff", true, 1000, 50},
		{"1000", true, 1000, 1001},
		{"4242", true, 4242, 0},
		{"4242:7", true, 4242, 7},
		{"root", true, 0, 0},
	} {
		dir := "/o" + strings.NewReplacer(":", "-").Replace(tc.user) + map[bool]string{true: "c", false: "n"}[tc.copy]
		must(t, os.Mkdir(filepath.Join(rootfs, dir), 0o755))
		tr := makeTar(t, tarEntry{name: "f", typ: tar.TypeReg, body: "x", uid: 1234, gid: 99})
		if err := Extract(View{Root: rootfs, User: tc.user}, dir, tr, false, tc.copy); err != nil {
			t.Fatalf("user %q: %v", tc.user, err)
		}
		var st unix.Stat_t
		must(t, unix.Lstat(filepath.Join(rootfs, dir, "f"), &st))
		if st.Uid != tc.uid || st.Gid != tc.gid {
			t.Errorf("user %q copy %v: owner %d:%d, want %d:%d", tc.user, tc.copy, st.Uid, st.Gid, tc.uid, tc.gid)
		}
	}
	for _, user := range []string{"nobody-here", "app:nogroup"} {
		err := Extract(View{Root: rootfs, User: user}, "/", makeTar(t), false, true)
		if !isKind(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "no matching entries") {
			t.Errorf("user %q: %v", user, err)
		}
	}
}

func TestExtractDestinationErrors(t *testing.T) {
	rootfs, _ := testRoot(t)
	v := View{Container: "c1", Root: rootfs}
	empty := func() *bytes.Buffer { return makeTar(t) }
	for _, dst := range []string{"/nonexistent", "/dangling", "/escape/secret", "/nonexistent/"} {
		err := Extract(v, dst, empty(), false, false)
		if !isKind(err, errdefs.ErrNotFound) || err.Error() != "Could not find the file "+dst+" in container c1" {
			t.Errorf("Extract to %q = %v", dst, err)
		}
	}
	for _, dst := range []string{"/etc/hostname", "/lnk-file", "/dir/fifo"} {
		err := Extract(v, dst, empty(), false, false)
		if !isKind(err, errdefs.ErrInvalid) || err.Error() != "extraction point is not a directory" {
			t.Errorf("Extract to %q = %v", dst, err)
		}
	}
	ro := View{Root: rootfs, ReadOnlyRoot: true}
	err := Extract(ro, "/etc", makeTar(t, tarEntry{name: "x", typ: tar.TypeReg}), false, false)
	if !isKind(err, errdefs.ErrInvalid) || err.Error() != "container rootfs is marked read-only" {
		t.Errorf("read-only root: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(rootfs, "etc/x")); err == nil {
		t.Error("extracted into a read-only root")
	}
}

func TestExtractBreakouts(t *testing.T) {
	requireRoot(t)
	rootfs, outside := testRoot(t)
	tmp := filepath.Dir(rootfs)
	v := View{Container: "c1", Root: rootfs}
	before := tree(t, tmp)
	// Names and hard links that climb out of the destination are refused.
	for _, e := range []tarEntry{
		{name: "../x", typ: tar.TypeReg, body: "x"},
		{name: "a/../../x", typ: tar.TypeReg, body: "x"},
		{name: "/../x", typ: tar.TypeReg, body: "x"},
		{name: "l", typ: tar.TypeLink, link: "../secret"},
		{name: "l", typ: tar.TypeLink, link: "../../../secret"},
	} {
		err := Extract(v, "/dir", makeTar(t, e), false, false)
		if !isKind(err, errdefs.ErrInvalid) || !isKind(err, archive.ErrBreakout) {
			t.Errorf("entry %+v: %v", e, err)
		}
	}
	if got := tree(t, tmp); got != before {
		t.Fatalf("refused archives changed files:\n%s", got)
	}
	// Symbolic links, the container's or the archive's own, resolve inside
	// the container: what goes through them lands in the root, never next
	// to it.
	cases := []struct {
		dst     string
		entries []tarEntry
		landed  string // in rootfs
	}{
		{"/escape", []tarEntry{{name: "secret", typ: tar.TypeReg, body: "pwned"}}, "secret"},
		{"/dir", []tarEntry{
			{name: "evil", typ: tar.TypeSymlink, link: "/"},
			{name: "evil/../../secret2", typ: tar.TypeReg, body: "pwned"},
		}, ""},
		// internal/archive refuses relative links that climb out of the
		// extraction root (the container's root here).
		{"/dir", []tarEntry{
			{name: "up", typ: tar.TypeSymlink, link: "../../../.."},
			{name: "up/secret", typ: tar.TypeReg, body: "pwned"},
		}, ""},
		{"/", []tarEntry{{name: "escape/etc/owned", typ: tar.TypeReg, body: "pwned"}}, "etc/owned"},
	}
	for _, tc := range cases {
		err := Extract(v, tc.dst, makeTar(t, tc.entries...), false, false)
		if tc.landed == "" {
			if err == nil {
				t.Errorf("%s %v: accepted", tc.dst, tc.entries)
			}
		} else if err != nil {
			t.Errorf("%s %v: %v", tc.dst, tc.entries, err)
		} else if _, err := os.Lstat(filepath.Join(rootfs, tc.landed)); err != nil {
			t.Errorf("%s %v: not in the root: %v", tc.dst, tc.entries, err)
		}
	}
	if b, err := os.ReadFile(outside); err != nil || string(b) != "host secret" {
		t.Fatalf("the file outside changed: %q, %v", b, err)
	}
	ents, _ := os.ReadDir(tmp)
	if len(ents) != 2 {
		t.Fatalf("files appeared next to the root: %v", ents)
	}
}

func TestExtractNoOverwriteDirNonDir(t *testing.T) {
	requireRoot(t)
	rootfs, _ := testRoot(t)
	v := View{Root: rootfs}
	file := func(name string) *bytes.Buffer { return makeTar(t, tarEntry{name: name, typ: tar.TypeReg, body: "f"}) }
	dir := func(name string) *bytes.Buffer { return makeTar(t, tarEntry{name: name, typ: tar.TypeDir}) }
	err := Extract(v, "/", file("dir"), true, false)
	if err == nil || !strings.Contains(err.Error(), `cannot overwrite directory "/dir" with non-directory "/"`) {
		t.Errorf("file over a directory: %v", err)
	}
	err = Extract(v, "/etc", dir("hostname/"), true, false)
	if err == nil || !strings.Contains(err.Error(), `cannot overwrite non-directory "/etc/hostname" with directory "/etc"`) {
		t.Errorf("directory over a file: %v", err)
	}
	// Within the archive itself.
	err = Extract(v, "/etc", makeTar(t, tarEntry{name: "n/", typ: tar.TypeDir}, tarEntry{name: "n", typ: tar.TypeReg}), true, false)
	if err == nil || !strings.Contains(err.Error(), "cannot overwrite directory") {
		t.Errorf("file over a directory of the archive: %v", err)
	}
	if fi, err := os.Lstat(filepath.Join(rootfs, "dir")); err != nil || !fi.IsDir() {
		t.Fatalf("/dir replaced: %v %v", fi, err)
	}
	// Same kinds are fine, and without the flag kinds may change.
	if err := Extract(v, "/", dir("dir/"), true, false); err != nil {
		t.Fatal(err)
	}
	if err := Extract(v, "/etc", file("hostname"), true, false); err != nil {
		t.Fatal(err)
	}
	if err := Extract(v, "/", file("dir"), false, false); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(filepath.Join(rootfs, "dir")); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("/dir not replaced: %v %v", fi, err)
	}
}

func TestExtractReplacesSymlink(t *testing.T) {
	requireRoot(t)
	rootfs, outside := testRoot(t)
	// dir/out -> ../../../secret: the file replaces the link, the file
	// outside stays.
	err := Extract(View{Root: rootfs}, "/dir", makeTar(t, tarEntry{name: "out", typ: tar.TypeReg, body: "replaced the link"}), false, false)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(rootfs, "dir/out")); err != nil || string(b) != "replaced the link" {
		t.Fatalf("dir/out: %q, %v", b, err)
	}
	if b, err := os.ReadFile(outside); err != nil || string(b) != "host secret" {
		t.Fatalf("the file outside changed: %q, %v", b, err)
	}
}
