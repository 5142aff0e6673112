package containerfs

import (
	"archive/tar"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"berth/internal/errdefs"
)

// checkNamespacesEnd waits for the threads of closed views to end: every
// thread of the process back in the test's mount namespace. (A bound on
// the wait only catches a leak: nothing here is about speed.)
func checkNamespacesEnd(t *testing.T) {
	t.Helper()
	own, err := os.Readlink("/proc/thread-self/ns/mnt")
	must(t, err)
	for i := 0; ; i++ {
		others := 0
		tasks, _ := os.ReadDir("/proc/self/task")
		for _, task := range tasks {
			if ns, err := os.Readlink("/proc/self/task/" + task.Name() + "/ns/mnt"); err == nil && ns != own {
				others++
			}
		}
		if others == 0 {
			return
		}
		if i == 2000 {
			t.Fatalf("%d threads still in another mount namespace", others)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// hostMounts counts the host's mount table entries under dir: a view's
// mounts must never appear there. (The calling thread's: /proc/self is the
// main thread's, which a view must not have used either.)
func hostMounts(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	for _, f := range []string{"/proc/thread-self/mountinfo", "/proc/self/mountinfo"} {
		n += countMounts(t, f, dir)
	}
	return n
}

func countMounts(t *testing.T, file, dir string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	must(t, err)
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir) {
			n++
		}
	}
	return n
}

// mountedView is testRoot with a volume at /data, a read-only one at
// /var/run/ro (through the /var/run -> /run link: it lands on /run/ro),
// one at /new/mp (missing in the image), and a file mount on /etc/hosts.
func mountedView(t *testing.T) (View, map[string]string) {
	t.Helper()
	requireRoot(t)
	rootfs, _ := testRoot(t)
	src := map[string]string{"vol": t.TempDir(), "ro": t.TempDir(), "new": t.TempDir()}
	must(t, os.WriteFile(filepath.Join(src["vol"], "in-volume"), []byte("v"), 0o644))
	must(t, os.WriteFile(filepath.Join(src["ro"], "ro-file"), []byte("r"), 0o644))
	must(t, os.Mkdir(filepath.Join(src["new"], "sub"), 0o755))
	hosts := filepath.Join(t.TempDir(), "hosts")
	must(t, os.WriteFile(hosts, []byte("127.0.0.1 localhost\n"), 0o644))
	src["hosts"] = hosts
	t.Cleanup(func() {
		if n := hostMounts(t, filepath.Dir(rootfs)); n != 0 {
			t.Errorf("%d mounts visible on the host", n)
		}
		checkNamespacesEnd(t)
	})
	return View{Container: "c1", Root: rootfs, Mounts: []Mount{
		{Destination: "/var/run/ro", Source: src["ro"], ReadOnly: true},
		{Destination: "/data", Source: src["vol"]},
		{Destination: "/new/mp", Source: src["new"]},
		{Destination: "/etc/hosts", Source: hosts, ReadOnly: true},
	}}, src
}

func TestMountsStatArchive(t *testing.T) {
	v, _ := mountedView(t)
	for p, name := range map[string]string{
		"/data/in-volume": "in-volume", "/run/ro/ro-file": "ro-file", "/var/run/ro/ro-file": "ro-file",
		"/new/mp/sub": "sub", "/etc/hosts": "hosts", "/lnk-abs/hosts": "hosts",
	} {
		st, err := Stat(v, p)
		if err != nil || st.Name != name {
			t.Errorf("Stat(%q) = %+v, %v", p, st, err)
		}
	}
	// The rootfs' own /data is empty: Stat sees the volume.
	if _, err := Stat(v, "/data/nothing"); !isKind(err, errdefs.ErrNotFound) {
		t.Errorf("Stat(/data/nothing) = %v", err)
	}
	got := names(archiveOf(t, v, "/"))
	for _, want := range []string{"/data/in-volume", "/run/ro/ro-file", "/new/mp/sub/", "/etc/hosts"} {
		if !slices.Contains(got, want) {
			t.Errorf("Archive(/) lacks %s: %v", want, got)
		}
	}
	es := archiveOf(t, v, "/etc/hosts")
	if len(es) != 1 || es[0].name != "hosts" || es[0].body != "127.0.0.1 localhost\n" {
		t.Errorf("Archive(/etc/hosts) = %v", es)
	}
	if got := names(archiveOf(t, v, "/data/.")); strings.Join(got, " ") != "./ ./in-volume" {
		t.Errorf("Archive(/data/.) = %v", got)
	}
}

func TestMountsExtract(t *testing.T) {
	v, src := mountedView(t)
	rootfs := v.Root
	// Into a volume: the data lands in its source.
	must(t, Extract(v, "/data", makeTar(t, tarEntry{name: "x", typ: tar.TypeReg, body: "x"}), false, false))
	if _, err := os.Stat(filepath.Join(src["vol"], "x")); err != nil {
		t.Errorf("not in the volume: %v", err)
	}
	// From the root, through a mount below the destination.
	must(t, Extract(v, "/", makeTar(t, tarEntry{name: "data/y", typ: tar.TypeReg, body: "y"}, tarEntry{name: "new/mp/z", typ: tar.TypeReg, body: "z"}), false, false))
	for _, p := range []string{filepath.Join(src["vol"], "y"), filepath.Join(src["new"], "z")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("not in the volume: %v", err)
		}
	}
	for _, p := range []string{"data/x", "data/y", "new/mp/z"} {
		if _, err := os.Lstat(filepath.Join(rootfs, p)); err == nil {
			t.Errorf("%s written under the mount point", p)
		}
	}
	// Read-only mounts refuse, by either path, and below the destination.
	for _, dst := range []string{"/run/ro", "/var/run/ro"} {
		err := Extract(v, dst, makeTar(t, tarEntry{name: "w", typ: tar.TypeReg}), false, false)
		if !isKind(err, errdefs.ErrInvalid) || err.Error() != "mounted volume is marked read-only" {
			t.Errorf("Extract to %s = %v", dst, err)
		}
	}
	if err := Extract(v, "/run", makeTar(t, tarEntry{name: "ro/w", typ: tar.TypeReg}), false, false); err == nil {
		t.Error("wrote into a read-only mount below the destination")
	}
	if _, err := os.Lstat(filepath.Join(src["ro"], "w")); err == nil {
		t.Error("read-only volume written")
	}
	// A read-only root still takes writes into a writable volume.
	ro := v
	ro.ReadOnlyRoot = true
	if err := Extract(ro, "/data", makeTar(t, tarEntry{name: "z", typ: tar.TypeReg}), false, false); err != nil {
		t.Errorf("volume of a read-only root: %v", err)
	}
	if err := Extract(ro, "/etc", makeTar(t, tarEntry{name: "z", typ: tar.TypeReg}), false, false); !isKind(err, errdefs.ErrInvalid) {
		t.Errorf("read-only root: %v", err)
	}
	// The mount point the view made in the image stays (as dockerd's).
	if fi, err := os.Lstat(filepath.Join(rootfs, "new/mp")); err != nil || !fi.IsDir() {
		t.Errorf("mount point: %v", err)
	}
}

func TestMountErrors(t *testing.T) {
	requireRoot(t)
	rootfs, _ := testRoot(t)
	for _, m := range []Mount{
		{Destination: "/x", Source: filepath.Join(rootfs, "nonexistent")},
		{Destination: "/etc/hostname", Source: t.TempDir()}, // a directory on a file
	} {
		if _, err := Stat(View{Root: rootfs, Mounts: []Mount{m}}, "/"); err == nil {
			t.Errorf("mount %+v accepted", m)
		}
	}
	if n := hostMounts(t, filepath.Dir(rootfs)); n != 0 {
		t.Errorf("%d mounts visible on the host", n)
	}
}
