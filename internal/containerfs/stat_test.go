package containerfs

import (
	"io/fs"
	"strings"
	"testing"

	"berth/internal/errdefs"
)

func TestPreserveTrailing(t *testing.T) {
	for in, want := range map[string]string{
		"":          "/.", // as moby's PreserveTrailingDotOrSeparator
		"/":         "/",
		".":         "/.",
		"/.":        "/.",
		"foo":       "/foo",
		"foo/":      "/foo/",
		"/foo/.":    "/foo/.",
		"foo/./":    "/foo/./",
		"/foo//bar": "/foo/bar",
		"a/../b/":   "/b/",
		"a/..":      "/",
		"/a/b/..":   "/a",
		"../../x":   "/x",
		"/x/./.":    "/x/.",
	} {
		if got := absPath(in); got != want {
			t.Errorf("absPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStatPathRules(t *testing.T) {
	rootfs, _ := testRoot(t)
	v := View{Container: "c1", Root: rootfs}
	for _, tc := range []struct {
		path, name string
		mode       fs.FileMode // type bits only
		link       string
		size       int64
	}{
		{"/etc/hostname", "hostname", 0, "", 4},
		{"etc/hostname", "hostname", 0, "", 4},
		{"/etc//./hostname", "hostname", 0, "", 4},
		{"/lnk-file", "lnk-file", fs.ModeSymlink, "/etc/hostname", 13},
		{"/lnk-abs", "lnk-abs", fs.ModeSymlink, "/etc", 4},
		{"/lnk-rel", "lnk-rel", fs.ModeSymlink, "/etc", 3},
		{"/lnk-abs/", "lnk-abs", fs.ModeDir, "", -1},
		{"/lnk-abs/.", ".", fs.ModeDir, "", -1},
		{"/lnk-abs/hostname", "hostname", 0, "", 4},
		{"/lnk-rel/../lnk-abs/hostname", "hostname", 0, "", 4},
		{"/escape/etc/hostname", "hostname", 0, "", 4},
		{"/escape-abs/etc/hostname", "hostname", 0, "", 4},
		{"/escape", "escape", fs.ModeSymlink, "/", 14},
		{"/dangling", "dangling", fs.ModeSymlink, "/nonexistent/x", 14},
		{"/var/run/x", "x", 0, "", 3},
		{"/var/run", "run", fs.ModeSymlink, "/run", 4},
		{"/dir/out", "out", fs.ModeSymlink, "/secret", 15},
		{"/", "/", fs.ModeDir, "", -1},
		{"", ".", fs.ModeDir, "", -1},
		{"/dir/fifo", "fifo", fs.ModeNamedPipe, "", 0},
	} {
		st, err := Stat(v, tc.path)
		if err != nil {
			t.Errorf("Stat(%q): %v", tc.path, err)
			continue
		}
		if st.Name != tc.name || st.Mode.Type() != tc.mode || st.LinkTarget != tc.link || tc.size >= 0 && st.Size != tc.size {
			t.Errorf("Stat(%q) = %+v, want name %q type %v link %q size %d", tc.path, st, tc.name, tc.mode, tc.link, tc.size)
		}
	}
	st, err := Stat(v, "/dir/a")
	if err != nil || st.Mode != fs.ModeSetuid|0o751 || !st.Mtime.Equal(mtime) {
		t.Errorf("Stat(/dir/a) = %+v, %v", st, err)
	}
	// Missing files, and escapes that would reach <tmp>/secret.
	for _, p := range []string{"/nonexistent", "/escape/secret", "/../secret", "../../secret", "/escape-abs/../secret", "/dir/out/", "/dangling/"} {
		_, err := Stat(v, p)
		if !isKind(err, errdefs.ErrNotFound) || err.Error() != "Could not find the file "+p+" in container c1" {
			t.Errorf("Stat(%q) = %v", p, err)
		}
	}
	// Not a directory, symbolic link loops: errors, not "not found".
	for _, p := range []string{"/etc/hostname/", "/etc/hostname/.", "/loop1/", "/loop1"} {
		if _, err := Stat(v, p); err == nil || isKind(err, errdefs.ErrNotFound) {
			t.Errorf("Stat(%q) = %v", p, err)
		}
	}
	if _, err := Stat(View{Root: rootfs + "/nonexistent"}, "/"); err == nil {
		t.Error("Stat in a missing root succeeded")
	}
	if _, err := Stat(View{}, "/"); err == nil || !strings.Contains(err.Error(), "not mounted") {
		t.Errorf("Stat without a root = %v", err)
	}
}
