package containerfs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"golang.org/x/sys/unix"
)

// layer makes a directory tree from specs: "path/" a directory, "path" a
// file, "path=wh" a whiteout, "path/=opq" an opaque directory.
func layer(t *testing.T, dir string, specs ...string) {
	t.Helper()
	for _, s := range specs {
		p, kind, _ := strings.Cut(s, "=")
		full := filepath.Join(dir, p)
		must(t, os.MkdirAll(filepath.Dir(full), 0o755))
		switch {
		case kind == "wh":
			must(t, unix.Mknod(full, unix.S_IFCHR, 0))
		case kind == "opq":
			must(t, os.MkdirAll(full, 0o755))
			must(t, unix.Setxattr(full, "trusted.overlay.opaque", []byte("y"), 0))
		case strings.HasSuffix(p, "/"):
			must(t, os.MkdirAll(full, 0o755))
		default:
			must(t, os.WriteFile(full, []byte(p), 0o644))
		}
	}
}

// sameTimes gives the directories of upper the mode and times of the
// same directory in the merged lowers (a copy-up with nothing changed).
func sameTimes(t *testing.T, upper string, lowers []string, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		for _, l := range lowers {
			fi, err := os.Stat(filepath.Join(l, d))
			if err != nil {
				continue
			}
			must(t, os.Chmod(filepath.Join(upper, d), fi.Mode().Perm()))
			must(t, os.Chtimes(filepath.Join(upper, d), fi.ModTime(), fi.ModTime()))
			break
		}
	}
}

func diffString(cs []container.FilesystemChange) string {
	var lines []string
	for _, c := range cs {
		lines = append(lines, c.Kind.String()+" "+c.Path)
	}
	return strings.Join(lines, "\n")
}

func TestChanges(t *testing.T) {
	requireRoot(t)
	tmp := t.TempDir()
	bottom, top, upper := filepath.Join(tmp, "l1"), filepath.Join(tmp, "l0"), filepath.Join(tmp, "upper")
	layer(t, bottom, "etc/passwd", "etc/group", "usr/bin/tool", "var/lib/x/a", "var/lib/x/b", "var/lib/x/sub/c",
		"opt/old/f", "home/", "srv/keep", "lib/gone")
	layer(t, top, "etc/passwd", "usr/bin/tool2", "opt/old=wh", "lib/=opq", "lib/new")
	lowers := []string{top, bottom}
	layer(t, upper,
		"etc/passwd", "etc/newfile", // modified, added
		"usr/bin/tool=wh",               // deleted
		"var/lib/x/=opq", "var/lib/x/c", // rm -rf x && mkdir x && touch x/c
		"opt/old/n",        // old was removed in the image: a new directory
		"home/",            // copied up, unchanged
		"tmp/new",          // new directory and file
		"lib/gone",         // the image's top layer made lib opaque: gone is new
		"usr/bin/tool2=wh", // deleted
		"srv/",             // copied up, unchanged
		"nothere=wh",       // a whiteout of nothing the image has
		"etc/group/",       // a file replaced by a directory
	)
	sameTimes(t, upper, lowers, "etc", "usr", "usr/bin", "var", "var/lib", "opt", "home", "srv", "lib")
	got, err := Changes(upper, lowers)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"C /etc", "C /etc/group", "A /etc/newfile", "C /etc/passwd",
		"C /lib", "A /lib/gone",
		"D /nothere",
		"C /opt", "A /opt/old", "A /opt/old/n",
		"A /tmp", "A /tmp/new",
		"C /usr", "C /usr/bin", "D /usr/bin/tool", "D /usr/bin/tool2",
		"C /var", "C /var/lib", "C /var/lib/x", "D /var/lib/x/a", "D /var/lib/x/b", "A /var/lib/x/c", "D /var/lib/x/sub",
	}, "\n")
	if diffString(got) != want {
		t.Fatalf("changes:\n%s\nwant\n%s", diffString(got), want)
	}
	// A directory whose own metadata changed is modified by itself.
	must(t, os.Chmod(filepath.Join(upper, "home"), 0o700))
	got, _ = Changes(upper, lowers)
	if !strings.Contains(diffString(got), "C /home\n") {
		t.Errorf("chmod'ed /home not reported:\n%s", diffString(got))
	}
	// Without lower layers everything is added.
	got, err = Changes(filepath.Join(upper, "tmp"), nil)
	if err != nil || diffString(got) != "A /new" {
		t.Errorf("no lowers: %s, %v", diffString(got), err)
	}
	// An empty upper directory has no changes (an empty list, not null).
	empty := filepath.Join(tmp, "empty")
	must(t, os.Mkdir(empty, 0o755))
	got, err = Changes(empty, lowers)
	if err != nil || got == nil || len(got) != 0 {
		t.Errorf("empty upper: %v, %v", got, err)
	}
	if _, err := Changes(filepath.Join(tmp, "nonexistent"), lowers); err == nil {
		t.Error("missing upper directory accepted")
	}
}

func TestSameDir(t *testing.T) {
	a := unix.Stat_t{Mode: unix.S_IFDIR | 0o755, Size: 4096, Mtim: unix.NsecToTimespec(time.Second.Nanoseconds()*5 + 7)}
	for i, tc := range []struct {
		mod  func(*unix.Stat_t)
		same bool
	}{
		{func(*unix.Stat_t) {}, true},
		{func(s *unix.Stat_t) { s.Mtim.Nsec = 0 }, true},
		{func(s *unix.Stat_t) { s.Mtim.Nsec = 8 }, false},
		{func(s *unix.Stat_t) { s.Mtim.Sec = 6 }, false},
		{func(s *unix.Stat_t) { s.Mode = unix.S_IFDIR | 0o700 }, false},
		{func(s *unix.Stat_t) { s.Size = 8192 }, false},
	} {
		b := a
		tc.mod(&b)
		if sameDir(&a, &b) != tc.same {
			t.Errorf("case %d: sameDir = %v", i, !tc.same)
		}
	}
}

// TestChangesRealOverlay makes the changes through a real overlay mount
// and reads them back from its upper directory.
func TestChangesRealOverlay(t *testing.T) {
	requireRoot(t)
	tmp := t.TempDir()
	bottom, top := filepath.Join(tmp, "l1"), filepath.Join(tmp, "l0")
	upper, work, merged := filepath.Join(tmp, "upper"), filepath.Join(tmp, "work"), filepath.Join(tmp, "merged")
	layer(t, bottom, "etc/passwd", "usr/bin/tool", "var/lib/x/a", "var/lib/x/b", "var/lib/x/sub/c", "home/")
	layer(t, top, "etc/group", "usr/bin/other")
	for _, d := range []string{upper, work, merged} {
		must(t, os.Mkdir(d, 0o755))
	}
	opts := fmt.Sprintf("lowerdir=%s:%s,upperdir=%s,workdir=%s", top, bottom, upper, work)
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		t.Skipf("no overlayfs here: %v", err)
	}
	mounted := true
	unmount := func() {
		if mounted {
			must(t, unix.Unmount(merged, 0))
			mounted = false
		}
	}
	t.Cleanup(unmount)
	m := func(p string) string { return filepath.Join(merged, p) }
	must(t, os.WriteFile(m("etc/passwd"), []byte("changed"), 0o644))
	must(t, os.WriteFile(m("etc/newfile"), nil, 0o644))
	must(t, os.Remove(m("usr/bin/tool")))
	must(t, os.RemoveAll(m("var/lib/x")))
	must(t, os.Mkdir(m("var/lib/x"), 0o755))
	must(t, os.WriteFile(m("var/lib/x/c"), nil, 0o644))
	must(t, os.MkdirAll(m("tmp2"), 0o755))
	must(t, os.WriteFile(m("tmp2/f"), nil, 0o644))
	if _, err := os.ReadDir(m("home")); err != nil {
		t.Fatal(err)
	}
	unmount()
	got, err := Changes(upper, []string{top, bottom})
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"C /etc", "A /etc/newfile", "C /etc/passwd",
		"A /tmp2", "A /tmp2/f",
		"C /usr", "C /usr/bin", "D /usr/bin/tool",
		"C /var", "C /var/lib", "C /var/lib/x", "D /var/lib/x/a", "D /var/lib/x/b", "A /var/lib/x/c", "D /var/lib/x/sub",
	}, "\n")
	if diffString(got) != want {
		t.Fatalf("changes:\n%s\nwant\n%s", diffString(got), want)
	}
}
