package containerfs

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"

	"github.com/moby/moby/api/types/container"
	"golang.org/x/sys/unix"
)

// Changes returns a container's changes to its image, as docker diff,
// from the overlay upper directory of its root file system and the layer
// directories below it (top-most first, as overlayfs' lowerdir):
//
//   - a 0/0 character device (a whiteout) is a Deleted path;
//   - a file of the upper directory that the image has (in the lower
//     layers as overlayfs merges them: whiteouts and opaque directories
//     of the lower layers count) is Modified, one it does not have is
//     Added;
//   - an opaque directory (trusted.overlay.opaque=y: removed and made
//     again) hides what the image had in it: those paths are Deleted;
//   - a directory the image has is Modified if its mode, size or mtime
//     differ, or if anything under it changed; the root is not reported.
//
// Paths are absolute container paths, in walk order (each directory's
// names sorted, a directory before what is in it).
func Changes(upperDir string, lowerDirs []string) ([]container.FilesystemChange, error) {
	fd, err := unix.Open(upperDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("changes: %w", &os.PathError{Op: "open", Path: upperDir, Err: err})
	}
	defer unix.Close(fd)
	d := &differ{upper: upperDir, lowers: lowerDirs, visible: make(map[string][]int)}
	all := make([]int, len(lowerDirs))
	for i := range all {
		all[i] = i
	}
	d.visible[""] = d.descend(all, "")
	out, err := d.dir(fd, "", false)
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []container.FilesystemChange{}
	}
	return out, nil
}

type differ struct {
	upper  string
	lowers []string
	// visible[p]: the lower layers, top-most first, whose directory p is
	// part of the merged lower view (none hides it above).
	visible map[string][]int
}

// lowerStat is a path's file in the merged lower layers.
type lowerStat struct {
	st     unix.Stat_t
	exists bool
}

// lookup finds the directory entry name of the lower directory dir in the
// merged lower view.
func (d *differ) lookup(dir, name string) (lowerStat, error) {
	for _, i := range d.visibleDir(dir) {
		var st unix.Stat_t
		err := unix.Lstat(filepath.Join(d.lowers[i], dir, name), &st)
		if err == unix.ENOENT || err == unix.ENOTDIR {
			continue
		}
		if err != nil {
			return lowerStat{}, &os.PathError{Op: "lstat", Path: filepath.Join(d.lowers[i], dir, name), Err: err}
		}
		if isWhiteout(&st) {
			return lowerStat{}, nil
		}
		return lowerStat{st: st, exists: true}, nil
	}
	return lowerStat{}, nil
}

// visibleDir returns the layers whose directory p (relative, "" for the
// root) is merged into the lower view, computing it from its parent's.
func (d *differ) visibleDir(p string) []int {
	if v, ok := d.visible[p]; ok {
		return v
	}
	parent := path.Dir(p)
	if parent == "." {
		parent = ""
	}
	v := d.descend(d.visibleDir(parent), p)
	d.visible[p] = v
	return v
}

// descend returns, of the layers from, those where p is a directory and
// merged: the walk down stops at a whiteout, a non-directory, or below an
// opaque directory.
func (d *differ) descend(from []int, p string) []int {
	var out []int
	for _, i := range from {
		full := filepath.Join(d.lowers[i], p)
		var st unix.Stat_t
		err := unix.Lstat(full, &st)
		if err != nil {
			continue // missing here: lower layers may have it
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			break // a whiteout or a file hides the layers below
		}
		out = append(out, i)
		if p != "" && isOpaque(full) {
			break
		}
	}
	return out
}

// lowerNames lists the directory p of the merged lower view.
func (d *differ) lowerNames(p string) ([]string, error) {
	seen := make(map[string]bool) // name -> visible (false: whited out above)
	var names []string
	for _, i := range d.visibleDir(p) {
		dir := filepath.Join(d.lowers[i], p)
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("changes: %w", err)
		}
		for _, e := range ents {
			n := e.Name()
			if _, done := seen[n]; done {
				continue
			}
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(dir, n), &st); err != nil {
				continue
			}
			seen[n] = !isWhiteout(&st)
			if seen[n] {
				names = append(names, n)
			}
		}
	}
	slices.Sort(names)
	return names, nil
}

// dir returns the changes under the upper directory open at fd (the
// container path "/"+rel). hidden: the lower content of this directory is
// hidden (it, or a directory above, is opaque).
func (d *differ) dir(fd int, rel string, hidden bool) ([]container.FilesystemChange, error) {
	names, err := readNames(fd)
	if err != nil {
		return nil, fmt.Errorf("changes: %s: %w", filepath.Join(d.upper, rel), err)
	}
	slices.Sort(names)
	var out []container.FilesystemChange
	var gone map[string]bool
	if hidden {
		// What the image had here and the upper directory does not have
		// is gone.
		lower, err := d.lowerNames(rel)
		if err != nil {
			return nil, err
		}
		gone = make(map[string]bool)
		for _, n := range lower {
			if _, found := slices.BinarySearch(names, n); !found {
				gone[n] = true
			}
		}
		for n := range gone {
			names = append(names, n)
		}
		slices.Sort(names)
	}
	for _, name := range names {
		p := path.Join(rel, name)
		if gone[name] {
			out = append(out, change("/"+p, container.ChangeDelete))
			continue
		}
		var st unix.Stat_t
		err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.ENOENT {
			continue // removed since listed
		}
		if err != nil {
			return nil, fmt.Errorf("changes: %w", &os.PathError{Op: "lstat", Path: filepath.Join(d.upper, p), Err: err})
		}
		if isWhiteout(&st) {
			out = append(out, change("/"+p, container.ChangeDelete))
			continue
		}
		low, err := d.lookup(rel, name)
		if err != nil {
			return nil, fmt.Errorf("changes: %w", err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			kind := container.ChangeAdd
			if low.exists {
				kind = container.ChangeModify
			}
			out = append(out, change("/"+p, kind))
			continue
		}
		sub, err := d.subdir(fd, name, p, &st, low, hidden)
		if err != nil {
			return nil, err
		}
		out = append(out, sub...)
	}
	return out, nil
}

// subdir returns the changes of the upper directory name (path p) and
// under it.
func (d *differ) subdir(pfd int, name, p string, st *unix.Stat_t, low lowerStat, hidden bool) ([]container.FilesystemChange, error) {
	cfd, err := unix.Openat(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("changes: %w", &os.PathError{Op: "open", Path: filepath.Join(d.upper, p), Err: err})
	}
	defer unix.Close(cfd)
	lowerDir := low.exists && low.st.Mode&unix.S_IFMT == unix.S_IFDIR
	opaque := isOpaque(procPath(cfd, "."))
	// The image's content of p shows through unless p or a directory
	// above it is opaque.
	sub, err := d.dir(cfd, p, lowerDir && (hidden || opaque))
	if err != nil {
		return nil, err
	}
	var self []container.FilesystemChange
	switch {
	case !low.exists:
		self = []container.FilesystemChange{change("/"+p, container.ChangeAdd)}
	case !lowerDir || opaque || len(sub) > 0 || !sameDir(st, &low.st):
		self = []container.FilesystemChange{change("/"+p, container.ChangeModify)}
	}
	return append(self, sub...), nil
}

// sameDir reports whether an upper directory looks like its lower one
// (mode, size and mtime, as dockerd compares them).
func sameDir(a, b *unix.Stat_t) bool {
	if a.Mode != b.Mode || a.Size != b.Size || a.Mtim.Sec != b.Mtim.Sec {
		return false
	}
	// A file system without sub-second times matches any nanoseconds.
	return a.Mtim.Nsec == b.Mtim.Nsec || a.Mtim.Nsec == 0 || b.Mtim.Nsec == 0
}

func change(p string, kind container.ChangeType) container.FilesystemChange {
	return container.FilesystemChange{Path: p, Kind: kind}
}

// isWhiteout: overlayfs' whiteout, a 0/0 character device.
func isWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

// isOpaque: an overlayfs opaque directory (trusted.overlay.opaque=y, or
// user.overlay.opaque=y on a userxattr mount).
func isOpaque(p string) bool {
	b := make([]byte, 2)
	for _, key := range []string{"trusted.overlay.opaque", "user.overlay.opaque"} {
		if n, err := unix.Lgetxattr(p, key, b); err == nil && n == 1 && b[0] == 'y' {
			return true
		}
	}
	return false
}
