package snapshot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"berth/internal/errdefs"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// stage commits a layer holding files (name -> content; "" content makes a
// whiteout) and returns its chain ID.
func stage(t *testing.T, s *Store, parent digest.Digest, files map[string]string) digest.Digest {
	t.Helper()
	st, err := s.NewLayer(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		p := filepath.Join(st.Dir, name)
		if data == "" {
			if err := unix.Mknod(p, unix.S_IFCHR, 0); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	diff := digest.FromString(filepath.Join(string(parent), st.Dir))
	chain := ChainIDs([]digest.Digest{diff})[0]
	if parent != "" {
		chain = digest.FromString(parent.String() + " " + diff.String())
	}
	if err := st.Commit(Layer{ChainID: chain, DiffID: diff, Parent: parent}); err != nil {
		t.Fatal(err)
	}
	return chain
}

func TestChainIDs(t *testing.T) {
	a, b := digest.FromString("a"), digest.FromString("b")
	got := ChainIDs([]digest.Digest{a, b})
	if got[0] != a || got[1] != digest.FromString(a.String()+" "+b.String()) {
		t.Fatalf("chain IDs %v", got)
	}
}

func TestPrepareMountView(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root for overlayfs")
	}
	ctx := context.Background()
	root := t.TempDir()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	base := stage(t, s, "", map[string]string{"a": "base-a", "b": "base-b"})
	top := stage(t, s, base, map[string]string{"b": "", "c": "top-c"})

	if _, err := s.Prepare(ctx, "ctr1", top); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prepare(ctx, "ctr1", top); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("second prepare: %v", err)
	}
	if _, err := s.Prepare(ctx, "../x", top); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("bad key: %v", err)
	}
	if _, err := s.Prepare(ctx, "ctr2", digest.FromString("nope")); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("missing parent: %v", err)
	}
	mnt := filepath.Join(t.TempDir(), "rootfs")
	os.Mkdir(mnt, 0o755)
	if err := s.Mount("ctr1", mnt); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Unmount(mnt) })
	read := func(dir, name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return string(b)
	}
	if read(mnt, "a") != "base-a" || read(mnt, "c") != "top-c" {
		t.Fatalf("merged view wrong: a=%q c=%q", read(mnt, "a"), read(mnt, "c"))
	}
	if _, err := os.Stat(filepath.Join(mnt, "b")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("whiteout not applied: %v", err)
	}
	os.WriteFile(filepath.Join(mnt, "new"), []byte("written"), 0o644)
	up, _ := s.UpperDir("ctr1")
	if read(up, "new") != "written" {
		t.Fatal("write did not reach the upper dir")
	}
	// A read-only view of the running snapshot sees the write.
	view := filepath.Join(t.TempDir(), "view")
	os.Mkdir(view, 0o755)
	if err := s.MountView("ctr1", "", view); err != nil {
		t.Fatal(err)
	}
	if read(view, "new") != "written" || read(view, "a") != "base-a" {
		t.Fatal("view lacks files")
	}
	if err := os.WriteFile(filepath.Join(view, "x"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Fatalf("view writable: %v", err)
	}
	if err := Unmount(view); err != nil {
		t.Fatal(err)
	}
	// A view of one layer alone.
	if err := s.MountView("", base, view); err != nil {
		t.Fatal(err)
	}
	if read(view, "b") != "base-b" {
		t.Fatal("base view lacks b")
	}
	Unmount(view)
	if err := Unmount(mnt); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("ctr1"); err != nil {
		t.Fatal(err)
	}
	if sns, _ := s.Snapshots(); len(sns) != 0 {
		t.Fatalf("snapshots left: %v", sns)
	}
	if n, _ := s.TempCount(); n != 0 {
		t.Fatalf("tmp not empty: %d", n)
	}
	dirs, err := s.LowerDirs(top)
	if err != nil || len(dirs) != 2 {
		t.Fatalf("lower dirs %v %v", dirs, err)
	}
}

func TestCommitTwiceKeepsOne(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l := Layer{ChainID: digest.FromString("x"), DiffID: digest.FromString("x")}
	for i := 0; i < 2; i++ {
		st, err := s.NewLayer(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Commit(l); err != nil {
			t.Fatal(err)
		}
	}
	if ls, _ := s.Layers(); len(ls) != 1 {
		t.Fatalf("layers %v", ls)
	}
	if n, _ := s.TempCount(); n != 0 {
		t.Fatalf("tmp not empty: %d", n)
	}
}

// TestUnlink: an unlinked snapshot is gone from the store at once, its files wait in tmp/
// until the returned removal runs (or the next Open, after a crash); a missing snapshot
// is no error.
func TestUnlink(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prepare(ctx, "ctr1", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prepare(ctx, "ctr2", ""); err != nil {
		t.Fatal(err)
	}
	remove1, err := s.Unlink("ctr1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Snapshot("ctr1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("unlinked snapshot still there: %v", err)
	}
	if n, _ := s.TempCount(); n != 1 {
		t.Fatalf("tmp holds %d, want the unlinked snapshot", n)
	}
	if err := remove1(); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.TempCount(); n != 0 {
		t.Fatalf("tmp holds %d after the removal", n)
	}
	// A crash between the unlink and the removal: Open deletes the leftover.
	if _, err := s.Unlink("ctr2"); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(root); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.TempCount(); n != 0 {
		t.Fatalf("tmp holds %d after Open", n)
	}
	if remove, err := s.Unlink("nope"); err != nil || remove() != nil {
		t.Fatalf("missing snapshot: %v", err)
	}
}
