package containerfs

import (
	"archive/tar"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"berth/internal/errdefs"
)

func archiveOf(t *testing.T, v View, p string) []entry {
	t.Helper()
	rc, _, err := Archive(v, p)
	if err != nil {
		t.Fatalf("Archive(%q): %v", p, err)
	}
	defer rc.Close()
	return readTar(t, rc)
}

func TestArchiveNames(t *testing.T) {
	rootfs, _ := testRoot(t)
	v := View{Container: "c1", Root: rootfs}
	dirNames := func(top string) string {
		return fmt.Sprint([]string{top + "/", top + "/a", top + "/fifo", top + "/link", top + "/out",
			top + "/sub/", top + "/sub/a-link", top + "/sub/b"})
	}
	etcNames := func(top string) string {
		return fmt.Sprint([]string{top + "/", top + "/group", top + "/hostname", top + "/passwd"})
	}
	for _, tc := range []struct{ path, want string }{
		{"/dir", dirNames("dir")},
		{"dir", dirNames("dir")},
		{"/dir/", dirNames("dir")},
		{"/dir/.", dirNames(".")},
		{"/dir/sub/..", dirNames("dir")},
		{"/etc/hostname", "[hostname]"},
		{"/lnk-file", "[lnk-file]"},
		{"/lnk-abs", "[lnk-abs]"},
		{"/lnk-abs/", etcNames("lnk-abs")},
		{"/lnk-abs/.", etcNames(".")},
		{"/lnk-rel/", etcNames("lnk-rel")},
		{"/escape/etc/", etcNames("etc")},
		{"/var/run/", "[run/ run/x]"},
		{"/dir/out", "[out]"},
	} {
		got := fmt.Sprint(names(archiveOf(t, v, tc.path)))
		if got != tc.want {
			t.Errorf("Archive(%q) = %s, want %s", tc.path, got, tc.want)
		}
	}
	// The root: "/" then "/bin", ... (dockerd's rebase of the root).
	got := names(archiveOf(t, v, "/"))
	if got[0] != "/" || !slices.Contains(got, "/etc/") || !slices.Contains(got, "/etc/hostname") || !slices.Contains(got, "/dir/sub/b") {
		t.Errorf("Archive(/) = %v", got)
	}
	for _, n := range got {
		if strings.Contains(n, "secret") {
			t.Errorf("Archive(/) has %q", n)
		}
	}
	// Escaping symbolic links resolve to the root, never to <tmp>.
	for _, p := range []string{"/escape/", "/escape-abs/", "/escape/.."} {
		got := names(archiveOf(t, v, p))
		if !slices.Contains(got, strings.TrimSuffix(strings.TrimPrefix(p, "/"), "/")+"/etc/passwd") && !slices.Contains(got, "/etc/passwd") {
			t.Errorf("Archive(%q) = %v", p, got)
		}
		for _, n := range got {
			if strings.Contains(n, "secret") || strings.Contains(n, "rootfs") {
				t.Errorf("Archive(%q) has %q", p, n)
			}
		}
	}
	for _, p := range []string{"/nonexistent", "/escape/secret", "/dangling/", "/dir/out/"} {
		if _, _, err := Archive(v, p); !isKind(err, errdefs.ErrNotFound) || err.Error() != "Could not find the file "+p+" in container c1" {
			t.Errorf("Archive(%q) = %v", p, err)
		}
	}
	if _, _, err := Archive(v, "/etc/hostname/"); err == nil || isKind(err, errdefs.ErrNotFound) {
		t.Errorf("Archive(/etc/hostname/) = %v", err)
	}
}

func TestArchiveContent(t *testing.T) {
	rootfs, _ := testRoot(t)
	v := View{Container: "c1", Root: rootfs}
	rc, st, err := Archive(v, "/dir")
	if err != nil {
		t.Fatal(err)
	}
	if st.Name != "dir" || !st.Mode.IsDir() {
		t.Fatalf("stat %+v", st)
	}
	es := readTar(t, rc)
	rc.Close()
	got := map[string]entry{}
	for _, e := range es {
		got[e.name] = e
	}
	want := map[string]string{
		"dir/a":          fmt.Sprintf("dir/a 0 4751 %s \"aaa\"", owner(1000, 1001)),
		"dir/sub/a-link": fmt.Sprintf("dir/sub/a-link 1 4751 %s -> dir/a", owner(1000, 1001)),
		"dir/sub/b":      fmt.Sprintf("dir/sub/b 0 644 %s \"bbbb\"", owner(0, 0)),
		"dir/link":       fmt.Sprintf("dir/link 2 777 %s -> a", owner(7, 8)),
		"dir/out":        fmt.Sprintf("dir/out 2 777 %s -> ../../../secret", owner(0, 0)),
		"dir/fifo":       fmt.Sprintf("dir/fifo 6 640 %s", owner(0, 0)),
		"dir/":           fmt.Sprintf("dir/ 5 755 %s", owner(0, 0)),
	}
	for n, w := range want {
		if g := got[n].String(); g != w {
			t.Errorf("entry %s = %s, want %s", n, g, w)
		}
	}
	if x := got["dir/sub/b"].xattrs["user.test"]; x != "xv" {
		t.Errorf("xattr user.test = %q", x)
	}
	if m := got["dir/a"].mtime; !m.Equal(mtime.Truncate(time.Second)) {
		t.Errorf("mtime %v", m)
	}
	// Closing early ends the writer.
	rc, _, err = Archive(v, "/")
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(rc)
	if _, err := tr.Next(); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if _, err := io.ReadAll(rc); err == nil {
		t.Fatal("read after Close succeeded")
	}
}

// owner is the owner an entry of testRoot has: what it was given as root,
// the caller's otherwise.
func owner(uid, gid int) string {
	if !isRoot() {
		return fmt.Sprintf("%d:%d", myUID(), myGID())
	}
	return fmt.Sprintf("%d:%d", uid, gid)
}
