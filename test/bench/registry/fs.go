package main

// The file system an engine and its registry write to. By default (-fs loop) every engine
// gets a fresh ext4 (mkfs.ext4 defaults, so with a journal; inode tables written up front)
// in a sparse file next to its directory, on the same disk, loop-mounted with direct I/O on
// the directory itself, in the bench's private mount namespace: its store, its daemon's
// state and its registry's storage are there. -fs host writes to -workdir's own file system.
//
// Why not the host's by default: see test/bench/images (fs.go). On an ext4 without a journal
// (this machine's root) every inode allocation skips the inodes freed in the last minutes,
// reading each one's inode table block; a pull unpacks ~16,500 files and every iteration
// removes as many, so the pulls would measure that scan rather than the engines.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"berth/test/engine"
)

// benchFS is an engine's file system, mounted on its directory (-fs loop), or nothing to
// undo (-fs host).
type benchFS struct {
	dir   string // the engine's directory: the mount point
	image string // the sparse file ("" for -fs host)
	loop  string // the loop device while it is set up
}

// fsDesc says where the engines wrote, for the report.
func fsDesc() string {
	if *flagFS == "host" {
		return fmt.Sprintf("the host's file system under %s (-fs host)", *flagWorkdir)
	}
	return fmt.Sprintf("a fresh ext4 per engine (mkfs.ext4 defaults, journal) of %s in a sparse file under %s, loop-mounted with direct I/O on the engine's directory (-fs loop)", *flagFSSize, *flagWorkdir)
}

// mountFS makes the engine's file system on dir (which exists and is empty).
func mountFS(dir string) (*benchFS, error) {
	f := &benchFS{dir: dir}
	switch *flagFS {
	case "host":
		return f, nil
	case "loop":
	default:
		return nil, fmt.Errorf("-fs %q: want loop or host", *flagFS)
	}
	f.image = filepath.Join(filepath.Dir(dir), filepath.Base(dir)+".fs.img")
	out, err := exec.Command("truncate", "-s", *flagFSSize, f.image).CombinedOutput()
	if err == nil {
		// Inode tables and journal written now, not by ext4lazyinit during the measurements.
		out, err = exec.Command("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", f.image).CombinedOutput()
	}
	if err != nil {
		os.Remove(f.image)
		return nil, fmt.Errorf("make %s: %v: %s", f.image, err, strings.TrimSpace(string(out)))
	}
	dev, err := exec.Command("losetup", "--find", "--show", "--direct-io=on", f.image).Output()
	if err != nil {
		os.Remove(f.image)
		return nil, fmt.Errorf("losetup %s: %v", f.image, err)
	}
	f.loop = strings.TrimSpace(string(dev))
	err = unix.Mount(f.loop, dir, "ext4", 0, "")
	// Detached now: the mount holds it, and it goes (autoclear) when the mount does, at the
	// latest with this mount namespace.
	if out, derr := exec.Command("losetup", "--detach", f.loop).CombinedOutput(); derr != nil && err == nil {
		err = fmt.Errorf("losetup --detach %s: %v: %s", f.loop, derr, out)
	}
	if err != nil {
		return f, fmt.Errorf("mount %s on %s: %w", f.loop, dir, err)
	}
	return f, nil
}

// unmount unmounts the engine's file system, after the engine's own cleanup: what is still
// mounted below it is a leftover (detached), and so is a loop device still bound to the
// file afterwards. The file is removed. It returns the leftovers.
func (f *benchFS) unmount() int {
	if f == nil || f.image == "" {
		return 0
	}
	n := 0
	points, _ := engine.MountsUnder(f.dir)
	for _, p := range points {
		if p == f.dir {
			continue
		}
		logf("LEFTOVER: mount %s", p)
		unix.Unmount(p, unix.MNT_DETACH)
		n++
	}
	if err := unix.Unmount(f.dir, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		logf("LEFTOVER: unmount %s: %v; detaching it", f.dir, err)
		unix.Unmount(f.dir, unix.MNT_DETACH)
		n++
	}
	// The loop device is cleared when its last user (the mount) goes, not always at once.
	var bound string
	for i := 0; i < 50; i++ {
		out, _ := exec.Command("losetup", "--associated", f.image).Output()
		if bound = strings.TrimSpace(string(out)); bound == "" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if bound != "" {
		logf("LEFTOVER: loop device: %s", bound)
		n++
	}
	if err := os.Remove(f.image); err != nil && !os.IsNotExist(err) {
		logf("LEFTOVER: %v", err)
		n++
	}
	return n
}
