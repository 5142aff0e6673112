package main

// The file system the tools write to. By default (-fs loop) it is a fresh
// ext4 made with mkfs' defaults (so with a journal) in a sparse file in the
// work directory, on the same disk, loop-mounted (direct I/O, so the data
// is not cached twice) in the bench's private mount namespace. The
// alternative, -fs host, writes straight into the work directory.
//
// Why not the host file system by default: on an ext4 without a journal
// (this machine's root, for one) every inode allocation skips the inodes
// freed in the last 60-360 s, reading each one's inode table block to check
// (ext4 find_inode_bit -> recently_deleted). A benchmark that removes a
// store of ~17,000 files between runs, on a disk where others remove files
// too, then measures mostly that scan, and which tool ran right after a
// large rm -rf: `tar -x` of this image takes 12-22 s there and 1.6 s on a
// fresh journaled ext4 on the same disk.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"berth/test/bundle"
)

type benchFS struct {
	dir   string // where the tools write
	image string // the loop file ("" for -fs host)
	desc  string
}

func setupFS(work, kind, size string) (*benchFS, error) {
	switch kind {
	case "host":
		return &benchFS{dir: work, desc: fmt.Sprintf("the host's file system at %s (%s)", work, fsType(work))}, nil
	case "loop":
	default:
		return nil, fmt.Errorf("-fs %q: want loop or host", kind)
	}
	f := &benchFS{dir: filepath.Join(work, "fs"), image: filepath.Join(work, "fs.img")}
	if err := os.Mkdir(f.dir, 0o755); err != nil {
		return nil, err
	}
	out, err := exec.Command("truncate", "-s", size, f.image).CombinedOutput()
	if err == nil {
		// Inode tables and journal written now, not by ext4lazyinit while
		// the tools run.
		out, err = exec.Command("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", f.image).CombinedOutput()
	}
	if err != nil {
		return nil, fmt.Errorf("make %s: %v: %s", f.image, err, strings.TrimSpace(string(out)))
	}
	dev, err := exec.Command("losetup", "--find", "--show", "--direct-io=on", f.image).Output()
	if err != nil {
		return nil, fmt.Errorf("losetup %s: %v", f.image, err)
	}
	loop := strings.TrimSpace(string(dev))
	err = unix.Mount(loop, f.dir, "ext4", 0, "")
	// Detach now: with the mount holding it, the loop device goes away
	// (autoclear) when the mount does, at the latest with this namespace.
	if out, derr := exec.Command("losetup", "--detach", loop).CombinedOutput(); derr != nil && err == nil {
		err = fmt.Errorf("losetup --detach %s: %v: %s", loop, derr, out)
	}
	if err != nil {
		return nil, fmt.Errorf("mount %s on %s: %w", loop, f.dir, err)
	}
	f.desc = fmt.Sprintf("a fresh ext4 (mkfs.ext4 defaults, journal) of %s in %s, loop-mounted with direct I/O (-fs loop)", size, f.image)
	return f, nil
}

// teardown unmounts the loop file system and checks that its loop device
// is gone; it returns the number of leftovers.
func (f *benchFS) teardown() int {
	if f.image == "" {
		return 0
	}
	n := 0
	if err := unix.Unmount(f.dir, 0); err != nil {
		logf("unmount %s: %v; detaching it", f.dir, err)
		unix.Unmount(f.dir, unix.MNT_DETACH)
		n++
	}
	out, _ := exec.Command("losetup", "--associated", f.image).Output()
	if s := strings.TrimSpace(string(out)); s != "" {
		logf("LEFTOVER: loop device: %s", s)
		n++
	}
	return n
}

// fsType is the type of the file system holding path, from mountinfo.
func fsType(path string) string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "?"
	}
	best, typ := "", "?"
	for _, l := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(l, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 1 {
			continue
		}
		mp := bundle.UnescapeMountinfo(f[4])
		if (path == mp || strings.HasPrefix(path, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(best) {
			best, typ = mp, g[0]
		}
	}
	if typ == "ext4" {
		if b, err := os.ReadFile("/sys/fs/ext4/" + ext4Dev(path) + "/journal_task"); err == nil && strings.TrimSpace(string(b)) == "<none>" {
			return "ext4 without a journal"
		}
	}
	return typ
}

// ext4Dev is the device name (vda) of the ext4 file system holding path.
func ext4Dev(path string) string {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		return ""
	}
	link, err := os.Readlink(fmt.Sprintf("/sys/dev/block/%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev)))
	if err != nil {
		return ""
	}
	return filepath.Base(link)
}
