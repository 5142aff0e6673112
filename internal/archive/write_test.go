package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Unpack -> WriteTree/WriteDiff -> Unpack gives the same tree, and writing
// it again gives the same bytes.
func TestRoundTrip(t *testing.T) {
	a := t.TempDir()
	mustUnpack(t, metadataArchive(t), a, WhiteoutOverlay)
	want := snapshot(t, a, true)

	tree := writeTar(t, WriteTree, a)
	if again := writeTar(t, WriteTree, a); !bytes.Equal(tree, again) {
		t.Error("WriteTree twice on the same tree gave different bytes")
	}
	checkHeaders(t, tree)
	b := t.TempDir()
	mustUnpack(t, tree, b, WhiteoutOverlay)
	compareSnapshots(t, "Unpack(WriteTree)", snapshot(t, b, true), want)
	if again := writeTar(t, WriteTree, b); !bytes.Equal(tree, again) {
		t.Error("WriteTree of the unpacked copy differs from the original's")
	}

	diff := writeTar(t, WriteDiff, a)
	c := t.TempDir()
	mustUnpack(t, diff, c, WhiteoutOverlay)
	compareSnapshots(t, "Unpack(WriteDiff)", snapshot(t, c, true), want)
}

// checkHeaders checks the conventions of written tars.
func checkHeaders(t *testing.T, data []byte) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(data))
	var names []string
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, hdr.Name)
		if hdr.Uname != "" || hdr.Gname != "" || !hdr.AccessTime.IsZero() || !hdr.ChangeTime.IsZero() {
			t.Errorf("%s: uname %q gname %q atime %v ctime %v", hdr.Name, hdr.Uname, hdr.Gname, hdr.AccessTime, hdr.ChangeTime)
		}
		if hdr.Name == "d/h" && (hdr.Typeflag != tar.TypeLink || hdr.Linkname != "d/f") {
			t.Errorf("d/h: type %c link %q, want a hard link to d/f", hdr.Typeflag, hdr.Linkname)
		}
		if hdr.Name == "d/f" && !hdr.ModTime.Equal(time.Unix(1600000000, 987654321)) {
			t.Errorf("d/f mtime %v", hdr.ModTime)
		}
	}
	want := []string{"d/", "d/abs", "d/f", "d/h", "d/loop9", "d/null", "d/p", "d/s", "e/", "e/f/", "e/f/g/", "tmp/", "tmp/x"}
	if !slices.Equal(names, want) {
		t.Errorf("entries %q, want %q", names, want)
	}
}

func TestWriteDiff(t *testing.T) {
	upper := t.TempDir()
	at := func(p string) string { return filepath.Join(upper, p) }
	for _, d := range []string{"opq", "plain"} {
		if err := os.Mkdir(at(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"a", "opq/x", "plain/y"} {
		if err := os.WriteFile(at(f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Overlay shares one whiteout inode between whiteouts.
	if err := unix.Mknod(at("gone"), unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(at("gone"), at("gone2")); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{overlayOpaqueXattr: "y", "trusted.overlay.origin": "junk", "user.kept": "1"} {
		if err := unix.Lsetxattr(at("opq"), k, []byte(v), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Lsetxattr(at("plain"), overlayOpaqueXattr, []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: at("sock"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.SetUnlinkOnClose(false)
	for _, p := range []string{"", "opq", "plain", "a", "opq/x", "plain/y"} {
		ts := []unix.Timespec{{Sec: 1, Nsec: 2}, {Sec: 1700000000, Nsec: 3}}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, at(p), ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatal(err)
		}
	}

	diff := writeTar(t, WriteDiff, upper)
	if again := writeTar(t, WriteDiff, upper); !bytes.Equal(diff, again) {
		t.Error("WriteDiff twice on the same tree gave different bytes")
	}
	want := []string{"0 a", "0 .wh.gone", "0 .wh.gone2", "5 opq/", "0 opq/.wh..wh..opq", "0 opq/x", "5 plain/", "0 plain/y"}
	if got := tarNames(t, diff); !slices.Equal(got, want) {
		t.Errorf("WriteDiff entries %q, want %q", got, want)
	}
	tr := tar.NewReader(bytes.NewReader(diff))
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		for k := range hdr.PAXRecords {
			if strings.HasPrefix(k, xattrPAXPrefix+overlayXattrPrefix) {
				t.Errorf("%s carries %s", hdr.Name, k)
			}
		}
		if hdr.Name == "opq/" && hdr.PAXRecords[xattrPAXPrefix+"user.kept"] != "1" {
			t.Errorf("opq/ lost user.kept: %v", hdr.PAXRecords)
		}
	}

	// Unpacked in overlay form, the diff reads back as the same diff.
	layer := t.TempDir()
	mustUnpack(t, diff, layer, WhiteoutOverlay)
	if got := listXattrs(t, filepath.Join(layer, "opq")); !slices.Equal(got, []string{"trusted.overlay.opaque=y", "user.kept=1"}) {
		t.Errorf("opq xattrs %q", got)
	}
	if again := writeTar(t, WriteDiff, layer); !bytes.Equal(diff, again) {
		t.Errorf("WriteDiff of the unpacked layer differs:\n%q\n%q", tarNames(t, again), want)
	}
	// WriteTree does not translate whiteouts.
	if got := tarNames(t, writeTar(t, WriteTree, upper)); !slices.Contains(got, "3 gone") || !slices.Contains(got, "1 gone2 -> gone") {
		t.Errorf("WriteTree entries %q", got)
	}
}

func TestWriteDiffRefusesRedirect(t *testing.T) {
	upper := t.TempDir()
	if err := os.Mkdir(filepath.Join(upper, "moved"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(filepath.Join(upper, "moved"), overlayRedirectXattr, []byte("/orig"), 0); err != nil {
		t.Fatal(err)
	}
	if err := WriteDiff(context.Background(), &bytes.Buffer{}, upper); !errors.Is(err, errOverlayFeature) {
		t.Errorf("WriteDiff: %v, want a refusal of redirect_dir", err)
	}
}

func TestWriteTreeCanceled(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a"), nil, 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := WriteTree(ctx, &bytes.Buffer{}, dir); !errors.Is(err, context.Canceled) {
		t.Errorf("WriteTree: %v, want context.Canceled", err)
	}
}

// A real overlay mount: what the kernel leaves in the upper directory,
// written by WriteDiff and unpacked as a layer above the lower one, shows
// the same merged tree; applied onto a copy of the lower tree it gives
// that tree too.
func TestWriteDiffOverlayMount(t *testing.T) {
	base := t.TempDir()
	lower, upper, work, merged := filepath.Join(base, "lower"), filepath.Join(base, "upper"), filepath.Join(base, "work"), filepath.Join(base, "merged")
	for _, d := range []string{lower, upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mustUnpack(t, mkTar(t,
		reg("a", "a"), reg("b", "b"), dirent("d/", 0o755), reg("d/x", "x"), reg("d/y", "y"),
		dirent("k/", 0o755), reg("k/old", "old"),
	), lower, WhiteoutOverlay)

	mount := func(lowerdirs string) func() {
		opts := "lowerdir=" + lowerdirs + ",upperdir=" + upper + ",workdir=" + work
		if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
			t.Skipf("mount overlay: %v", err)
		}
		done := false
		unmount := func() {
			if !done {
				done = true
				if err := unix.Unmount(merged, unix.MNT_DETACH); err != nil {
					t.Errorf("unmount %s: %v", merged, err)
				}
			}
		}
		t.Cleanup(unmount)
		return unmount
	}
	unmount := mount(lower)
	at := func(p string) string { return filepath.Join(merged, p) }
	steps := []error{
		os.Remove(at("a")),
		os.RemoveAll(at("d")),
		os.Mkdir(at("d"), 0o700),
		os.WriteFile(at("d/z"), []byte("z"), 0o600),
		os.WriteFile(at("b"), []byte("changed"), 0o644),
		os.WriteFile(at("c"), []byte("c"), 0o644),
		os.Remove(at("k/old")),
		os.WriteFile(at("k/new"), []byte("new"), 0o644),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	want := snapshot(t, merged, false)
	unmount()

	diff := writeTar(t, WriteDiff, upper)
	got := tarNames(t, diff)
	for _, w := range []string{"0 .wh.a", "0 b", "0 c", "5 d/", "0 d/.wh..wh..opq", "0 d/z", "5 k/", "0 k/.wh.old", "0 k/new"} {
		if !slices.Contains(got, w) {
			t.Errorf("diff lacks %q: %q", w, got)
		}
	}

	// As a layer over the lower one, in a fresh upper.
	layer := filepath.Join(base, "layer")
	if err := os.Mkdir(layer, 0o755); err != nil {
		t.Fatal(err)
	}
	mustUnpack(t, diff, layer, WhiteoutOverlay)
	for _, d := range []string{upper, work} {
		if err := os.RemoveAll(d); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	unmount = mount(layer + ":" + lower)
	compareSnapshots(t, "overlay of the unpacked diff", snapshot(t, merged, false), want)
	unmount()

	// Applied onto a copy of the lower tree.
	applied := filepath.Join(base, "applied")
	if err := os.Mkdir(applied, 0o755); err != nil {
		t.Fatal(err)
	}
	mustUnpack(t, writeTar(t, WriteTree, lower), applied, WhiteoutApply)
	mustUnpack(t, diff, applied, WhiteoutApply)
	compareSnapshots(t, "diff applied to the lower tree", snapshot(t, applied, false), want)
}
