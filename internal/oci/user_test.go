package oci

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"berth/internal/errdefs"
)

const testPasswd = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
# a comment
app:x:1000:1000:App:/home/app:/bin/sh
nohome:x:1001:1001:::/bin/sh
broken:x:abc:1:::
`

const testGroup = `root:x:0:root
daemon:x:1:
audio:x:29:app,other
video:x:44:
staff:x:50:other, app
app:x:1000:
`

func TestResolve(t *testing.T) {
	db := &UserDB{Passwd: []byte(testPasswd), Group: []byte(testGroup)}
	tests := []struct {
		user     string
		groupAdd []string
		uid, gid uint32
		gids     []uint32
		home     string
		err      string
	}{
		{user: "", uid: 0, gid: 0, gids: []uint32{0}, home: "/root"},
		{user: "root", uid: 0, gid: 0, gids: []uint32{0}, home: "/root"},
		{user: "app", uid: 1000, gid: 1000, gids: []uint32{1000, 29, 50}, home: "/home/app"},
		{user: "1000", uid: 1000, gid: 1000, gids: []uint32{1000, 29, 50}, home: "/home/app"},
		{user: "app:video", uid: 1000, gid: 44, gids: []uint32{44}, home: "/home/app"},
		{user: "app:44", uid: 1000, gid: 44, gids: []uint32{44}, home: "/home/app"},
		{user: "app:4242", uid: 1000, gid: 4242, gids: []uint32{4242}, home: "/home/app"},
		{user: "1234", uid: 1234, gid: 0, gids: []uint32{0}, home: "/"},
		{user: "1234:5678", uid: 1234, gid: 5678, gids: []uint32{5678}, home: "/"},
		{user: "nohome", uid: 1001, gid: 1001, gids: []uint32{1001}, home: "/"},
		{user: "app", groupAdd: []string{"video", "7", "audio"}, uid: 1000, gid: 1000, gids: []uint32{1000, 29, 50, 44, 7}, home: "/home/app"},
		{user: "daemon", groupAdd: []string{"0"}, uid: 1, gid: 1, gids: []uint32{1, 0}, home: "/usr/sbin"},
		{user: "nobody", err: "unable to find user nobody: no matching entries in passwd file"},
		{user: "app:nogroup", err: "unable to find group nogroup: no matching entries in group file"},
		{user: "app", groupAdd: []string{"nogroup"}, err: "Unable to find group nogroup: no matching entries in group file"},
		{user: "-5", err: "unable to find user -5"},
		{user: "99999999999", err: "unable to find user 99999999999"},
	}
	for _, tt := range tests {
		t.Run(tt.user+"+"+strings.Join(tt.groupAdd, ","), func(t *testing.T) {
			got, err := db.Resolve(tt.user, tt.groupAdd)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, errdefs.ErrInvalid) {
					t.Fatalf("error %v, want %q (invalid)", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.User.UID != tt.uid || got.User.GID != tt.gid || !reflect.DeepEqual(got.User.AdditionalGids, tt.gids) || got.Home != tt.home {
				t.Errorf("got %+v home %q; want uid %d gid %d gids %v home %q", got.User, got.Home, tt.uid, tt.gid, tt.gids, tt.home)
			}
		})
	}
}

func TestResolveWithoutFiles(t *testing.T) {
	db := &UserDB{}
	got, err := db.Resolve("42:43", []string{"44"})
	if err != nil || got.User.UID != 42 || got.User.GID != 43 || !reflect.DeepEqual(got.User.AdditionalGids, []uint32{43, 44}) {
		t.Errorf("got %+v %v", got, err)
	}
	if _, err := db.Resolve("app", nil); err == nil || !strings.Contains(err.Error(), "unable to find user app: no matching entries in passwd file") {
		t.Errorf("named user without passwd: %v", err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestResolveUserStaysInRootfs(t *testing.T) {
	dir := t.TempDir()
	host := filepath.Join(dir, "host")
	rootfs := filepath.Join(dir, "rootfs")
	writeFile(t, filepath.Join(host, "passwd"), "evil:x:0:0::/:/bin/sh\n")
	writeFile(t, filepath.Join(rootfs, "inside", "passwd"), "good:x:7:7::/good:/bin/sh\n")
	if err := os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	// An absolute symlink and a ../ one: both must resolve inside the rootfs.
	if err := os.Symlink("/inside/passwd", filepath.Join(rootfs, "etc", "passwd")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../../../host/passwd", filepath.Join(rootfs, "etc", "group")); err != nil {
		t.Fatal(err)
	}
	got, err := ResolveUser(rootfs, "good", nil)
	if err != nil || got.User.UID != 7 || got.Home != "/good" {
		t.Fatalf("good: %+v %v", got, err)
	}
	if _, err := ResolveUser(rootfs, "evil", nil); err == nil {
		t.Fatal("a symlink led out of the rootfs to the host's passwd")
	}
	// the group symlink points to a missing file inside the rootfs: no group file
	if got, err := ResolveUser(rootfs, "good:12", nil); err != nil || got.User.GID != 12 {
		t.Errorf("good:12: %+v %v", got, err)
	}
}

func TestResolveUserRefusesFIFO(t *testing.T) {
	rootfs := t.TempDir()
	if err := os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(rootfs, "etc", "passwd"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ResolveUser(rootfs, "app", nil)
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("FIFO passwd: %v", err)
	}
}

func TestCreateWorkingDir(t *testing.T) {
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	outside := filepath.Join(dir, "outside")
	for _, d := range []string{rootfs, outside, filepath.Join(rootfs, "srv"), filepath.Join(rootfs, "outside")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(rootfs, "file"), "x")
	if err := os.Symlink("../../outside", filepath.Join(rootfs, "escape")); err != nil {
		t.Fatal(err)
	}
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	if os.Geteuid() == 0 {
		uid, gid = 4321, 4322
	}
	if err := CreateWorkingDir(rootfs, "/srv/app/data", uid, gid); err != nil {
		t.Fatal(err)
	}
	for p, own := range map[string]bool{"srv": false, "srv/app": true, "srv/app/data": true} {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(rootfs, p), &st); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if own && (st.Uid != uid || st.Gid != gid) {
			t.Errorf("%s owned by %d:%d, want %d:%d", p, st.Uid, st.Gid, uid, gid)
		}
		if !own && os.Geteuid() == 0 && st.Uid == uid {
			t.Errorf("existing %s was chowned", p)
		}
	}
	// existing: nothing to do
	if err := CreateWorkingDir(rootfs, "/srv/app/data/", uid, gid); err != nil {
		t.Errorf("existing dir: %v", err)
	}
	// a symlink is followed inside the rootfs: /escape -> /outside (in the rootfs)
	if err := CreateWorkingDir(rootfs, "/escape/w", uid, gid); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(rootfs, "outside", "w")); err != nil {
		t.Errorf("symlinked workdir not made inside the rootfs: %v", err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("workdir made outside the rootfs: %v", ents)
	}
	// a dangling symlink is not followed out either
	if err := os.Symlink("/nowhere", filepath.Join(rootfs, "dangling")); err != nil {
		t.Fatal(err)
	}
	if err := CreateWorkingDir(rootfs, "/dangling/w", uid, gid); err == nil {
		t.Error("workdir made through a dangling symlink")
	}
	err := CreateWorkingDir(rootfs, "/file/sub", uid, gid)
	if err == nil || err.Error() != "Cannot mkdir: /file/sub is not a directory" || !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("file in path: %v", err)
	}
	if err := CreateWorkingDir(rootfs, "rel", uid, gid); err == nil {
		t.Error("relative workdir accepted")
	}
}
