// Package volume_test holds the root-only tests of the local volume
// driver (internal/volume): volumes with mount options (tmpfs, bind,
// read-only bind) mounted with reference counts, taken over by a new store
// after a daemon restart, removed without touching a bind-mounted device's
// data, and filled by CopyUp while a container holds them. Every test
// checks that it leaves no mount behind.
package volume_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"berth/internal/errdefs"
	"berth/internal/volume"

	apivolume "github.com/moby/moby/api/types/volume"
	"golang.org/x/sys/unix"
)

var ctx = context.Background()

func TestMain(m *testing.M) {
	if os.Getuid() != 0 {
		fmt.Fprintln(os.Stderr, "volume integration tests need root")
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// mountsUnder returns the mount points at or under dir, one per mount.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open("/proc/thread-self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		mp := strings.ReplaceAll(fields[4], `\040`, " ")
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out
}

// newStore opens a store in a temporary directory, and checks at the end
// that nothing stays mounted there (unmounting what did, so the directory
// can go).
func newStore(t *testing.T) (*volume.Store, string) {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "volumes")
	t.Cleanup(func() {
		left := mountsUnder(t, dir)
		for i := len(left) - 1; i >= 0; i-- {
			unix.Unmount(left[i], unix.MNT_DETACH)
		}
		if len(left) > 0 {
			t.Errorf("mounts left behind: %v", left)
		}
	})
	s, err := volume.New(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, root
}

func create(t *testing.T, s *volume.Store, name string, opts map[string]string) apivolume.Volume {
	t.Helper()
	v, err := s.Create(ctx, apivolume.CreateRequest{Name: name, DriverOpts: opts})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func isTmpfs(t *testing.T, p string) bool {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Type == unix.TMPFS_MAGIC
}

func TestTmpfsVolumeRefcounted(t *testing.T) {
	s, _ := newStore(t)
	v := create(t, s, "scratch", map[string]string{"type": "tmpfs", "device": "tmpfs", "o": "size=1m,uid=1000,mode=0750"})
	if isTmpfs(t, v.Mountpoint) {
		t.Fatal("mounted before use")
	}
	for _, ref := range []string{"c1", "c2", "c1"} {
		p, err := s.Mount(ctx, "scratch", ref)
		if err != nil || p != v.Mountpoint {
			t.Fatalf("Mount(%s) = %q, %v", ref, p, err)
		}
	}
	if n := len(mountsUnder(t, v.Mountpoint)); n != 1 || !isTmpfs(t, v.Mountpoint) {
		t.Fatalf("%d mounts on the volume", n)
	}
	fi, err := os.Stat(v.Mountpoint)
	if err != nil || fi.Mode().Perm() != 0o750 || fi.Sys().(*syscall.Stat_t).Uid != 1000 {
		t.Fatalf("tmpfs options not applied: %v %v", fi.Mode(), err)
	}
	if err := os.WriteFile(filepath.Join(v.Mountpoint, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, "scratch", true); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("Remove while mounted = %v", err)
	}
	if err := s.Unmount(ctx, "scratch", "c1"); err != nil {
		t.Fatal(err)
	}
	if !isTmpfs(t, v.Mountpoint) {
		t.Fatal("unmounted while c2 holds it")
	}
	if err := s.Unmount(ctx, "scratch", "c2"); err != nil {
		t.Fatal(err)
	}
	if isTmpfs(t, v.Mountpoint) || len(mountsUnder(t, v.Mountpoint)) != 0 {
		t.Fatal("still mounted after the last Unmount")
	}
	if _, err := os.Stat(filepath.Join(v.Mountpoint, "f")); err == nil {
		t.Fatal("tmpfs content outlived the mount")
	}
	if err := s.Remove(ctx, "scratch", false); err != nil {
		t.Fatal(err)
	}
}

func TestBindVolume(t *testing.T) {
	s, root := newStore(t)
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "precious"), []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	create(t, s, "bound", map[string]string{"type": "none", "device": host, "o": "bind"})
	p, err := s.Mount(ctx, "bound", "c1")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(p, "precious")); err != nil || string(b) != "keep me" {
		t.Fatalf("through the volume: %q, %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(p, "new"), []byte("n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ro := create(t, s, "bound-ro", map[string]string{"type": "none", "device": host, "o": "bind,ro"})
	if _, err := s.Mount(ctx, "bound-ro", "c1"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ro.Mountpoint, "x"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Fatalf("write to a read-only bind volume: %v", err)
	}
	for _, n := range []string{"bound", "bound-ro"} {
		if err := s.Unmount(ctx, n, "c1"); err != nil {
			t.Fatal(err)
		}
		if err := s.Remove(ctx, n, false); err != nil {
			t.Fatal(err)
		}
	}
	// Removing the volumes removed their directories, not the device's data.
	for _, f := range []string{"precious", "new"} {
		if _, err := os.Stat(filepath.Join(host, f)); err != nil {
			t.Fatalf("bind source lost %s: %v", f, err)
		}
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Fatalf("left in the store: %v", ents)
	}
}

func TestRestartTakesOverMounts(t *testing.T) {
	s, root := newStore(t)
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "data"), []byte("d"), 0o644); err != nil {
		t.Fatal(err)
	}
	tv := create(t, s, "tmp", map[string]string{"type": "tmpfs", "device": "tmpfs"})
	create(t, s, "bind", map[string]string{"type": "none", "device": host, "o": "bind"})
	for _, n := range []string{"tmp", "bind"} {
		if _, err := s.Mount(ctx, n, "c1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(tv.Mountpoint, "state"), []byte("s"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The daemon restarts; the container c1 kept running.
	s2, err := volume.New(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Mount(ctx, "tmp", "c1"); err != nil {
		t.Fatal(err)
	}
	if n := len(mountsUnder(t, tv.Mountpoint)); n != 1 {
		t.Fatalf("%d mounts after taking over", n)
	}
	if _, err := os.Stat(filepath.Join(tv.Mountpoint, "state")); err != nil {
		t.Fatalf("tmpfs content lost in the take-over: %v", err)
	}
	if err := s2.Unmount(ctx, "tmp", "c1"); err != nil {
		t.Fatal(err)
	}
	if len(mountsUnder(t, tv.Mountpoint)) != 0 {
		t.Fatal("still mounted")
	}
	// A taken-over mount that went away meanwhile is mounted again.
	if _, err := s2.Mount(ctx, "tmp", "c1"); err != nil {
		t.Fatal(err)
	}
	s3, err := volume.New(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Unmount(tv.Mountpoint, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s3.Mount(ctx, "tmp", "c2"); err != nil || !isTmpfs(t, tv.Mountpoint) {
		t.Fatalf("Mount after an outside unmount: %v", err)
	}
	if err := s3.Unmount(ctx, "tmp", "c2"); err != nil || len(mountsUnder(t, tv.Mountpoint)) != 0 {
		t.Fatalf("Unmount: %v", err)
	}
	// A volume nobody re-mounted is unmounted by its removal, and the bind
	// source's data stays.
	if err := s2.Remove(ctx, "bind", false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(host, "data")); err != nil {
		t.Fatalf("bind source lost its data: %v", err)
	}
}

func TestMountErrors(t *testing.T) {
	s, _ := newStore(t)
	create(t, s, "bad", map[string]string{"type": "nosuchfs", "device": "x", "o": "user=me,password=hunter2"})
	_, err := s.Mount(ctx, "bad", "c1")
	if err == nil || !strings.Contains(err.Error(), "failed to mount local volume") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("Mount = %v", err)
	}
	// Not held after a failure: it can be removed.
	if err := s.Remove(ctx, "bad", false); err != nil {
		t.Fatal(err)
	}
}

func TestCopyUpWhileHeld(t *testing.T) {
	s, _ := newStore(t)
	rootfs := t.TempDir()
	if err := os.MkdirAll(filepath.Join(rootfs, "srv/www"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "srv/www/index.html"), []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(rootfs, "srv/www"), 33, 33); err != nil {
		t.Fatal(err)
	}
	v := create(t, s, "www", map[string]string{"type": "tmpfs", "device": "tmpfs"})
	// The container mounts the volume, then the image's content is copied.
	if _, err := s.Mount(ctx, "www", "c1"); err != nil {
		t.Fatal(err)
	}
	if err := s.CopyUp("www", rootfs, "/srv/www"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(v.Mountpoint, "index.html")); err != nil || string(b) != "hi" {
		t.Fatalf("copied content: %q, %v", b, err)
	}
	var st unix.Stat_t
	if err := unix.Stat(v.Mountpoint, &st); err != nil || st.Uid != 33 {
		t.Fatalf("volume root owner %d, %v", st.Uid, err)
	}
	if err := s.Unmount(ctx, "www", "c1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, "www", false); err != nil {
		t.Fatal(err)
	}
}
