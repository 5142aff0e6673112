package archive

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// chmodProc is the fallback for kernels without fchmodat2.
func TestChmodProc(t *testing.T) {
	dir := t.TempDir()
	dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dfd)
	if err := unix.Mknod(filepath.Join(dir, "p"), unix.S_IFIFO|0o600, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("p", filepath.Join(dir, "l")); err != nil {
		t.Fatal(err)
	}
	if err := chmodProc(dfd, "p", 0o4710); err != nil {
		t.Fatal(err)
	}
	if st := lstat(t, filepath.Join(dir, "p")); st.Mode != unix.S_IFIFO|0o4710 {
		t.Errorf("p mode %o", st.Mode)
	}
	if err := chmodProc(dfd, "l", 0o777); err != unix.EOPNOTSUPP {
		t.Errorf("chmodProc on a symlink: %v", err)
	}
	if st := lstat(t, filepath.Join(dir, "p")); st.Mode != unix.S_IFIFO|0o4710 {
		t.Errorf("chmodProc followed the symlink: p mode %o", st.Mode)
	}
	if err := chmodProc(dfd, "", 0o701); err != nil {
		t.Fatal(err)
	}
	if st := lstat(t, dir); st.Mode != unix.S_IFDIR|0o701 {
		t.Errorf("dir mode %o", st.Mode)
	}
}
