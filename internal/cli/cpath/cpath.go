// Package cpath owns the client side of `berth cp`: docker's rules for what a copy means
// given the source and destination paths (a trailing "/" or "/." asserts a directory, a
// missing destination takes the source's name or content, a symbolic link is followed or
// not), the rebasing of tar entries those rules need, and the tar streams of the local
// side: archiving a local source and extracting into a local destination.
//
// It never talks to a daemon; the container side is described to it by the caller with
// CopyInfo values built from the daemon's path stat.
package cpath

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Errors of the copy rules, with docker's messages.
var (
	ErrNotDirectory      = errors.New("not a directory")
	ErrDirNotExists      = errors.New("no such directory")
	ErrCannotCopyDir     = errors.New("cannot copy directory")
	ErrInvalidCopySource = errors.New("invalid copy source content")
)

// CopyInfo describes one end of a copy.
type CopyInfo struct {
	Path   string
	Exists bool
	IsDir  bool
	// RebaseName, when set, is the name the source's base takes in the archive (the
	// requested name of a symbolic link that was followed).
	RebaseName string
}

// SplitArg splits a cp argument into container and path: "ctr:/path" names a container
// path; an absolute path, a path without ":" or a relative path starting with "." is local
// (container is "").
func SplitArg(arg string) (container, path string) {
	if filepath.IsAbs(arg) {
		return "", arg
	}
	c, p, ok := strings.Cut(arg, ":")
	if !ok || strings.HasPrefix(c, ".") {
		return "", arg
	}
	return c, p
}

func hasTrailingSeparator(p string) bool {
	return len(p) > 0 && p[len(p)-1] == filepath.Separator
}

func specifiesCurrentDir(p string) bool { return filepath.Base(p) == "." }

// AssertsDirectory reports whether a path says it must be a directory: it ends with a
// separator or with "/.".
func AssertsDirectory(p string) bool { return hasTrailingSeparator(p) || specifiesCurrentDir(p) }

// SplitPathDirEntry splits a path into its parent directory and its base, keeping a
// trailing "." ("/a/b/." gives "/a/b" and ".").
func SplitPathDirEntry(p string) (dir, base string) {
	cleaned := filepath.Clean(p)
	if specifiesCurrentDir(p) {
		cleaned += string(filepath.Separator) + "."
	}
	return filepath.Dir(cleaned), filepath.Base(cleaned)
}

// PreserveTrailingDotOrSeparator gives the cleaned path back the trailing "/." or "/" of
// the original.
func PreserveTrailingDotOrSeparator(cleaned, original string) string {
	if !specifiesCurrentDir(cleaned) && specifiesCurrentDir(original) {
		if !hasTrailingSeparator(cleaned) {
			cleaned += string(filepath.Separator)
		}
		cleaned += "."
	}
	if !hasTrailingSeparator(cleaned) && hasTrailingSeparator(original) {
		cleaned += string(filepath.Separator)
	}
	return cleaned
}

// ResolveLocalPath is the absolute form of a local path, keeping its trailing "/" or "/.".
func ResolveLocalPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	return PreserveTrailingDotOrSeparator(abs, p), nil
}

// RebaseName gives resolved the trailing "/." or "/" of path, and returns the name the
// archive's entries must take when the last component changed (a followed link).
func RebaseName(path, resolved string) (string, string) {
	if specifiesCurrentDir(path) && !specifiesCurrentDir(resolved) {
		resolved += string(filepath.Separator) + "."
	}
	if hasTrailingSeparator(path) && !hasTrailingSeparator(resolved) {
		resolved += string(filepath.Separator)
	}
	var rebase string
	if filepath.Base(path) != filepath.Base(resolved) {
		rebase = filepath.Base(path)
	}
	return resolved, rebase
}

// SourceInfo describes a local copy source: with followLink its symbolic links are all
// resolved; without, only those of its parent directory.
func SourceInfo(path string, followLink bool) (CopyInfo, error) {
	var resolved, rebase string
	if followLink {
		r, err := filepath.EvalSymlinks(path)
		if err != nil {
			return CopyInfo{}, err
		}
		resolved, rebase = RebaseName(path, r)
	} else {
		dir, base := filepath.Split(path)
		rdir, err := filepath.EvalSymlinks(dir)
		if err != nil {
			return CopyInfo{}, err
		}
		resolved = rdir + string(filepath.Separator) + base
		if hasTrailingSeparator(path) && filepath.Base(path) != filepath.Base(resolved) {
			rebase = filepath.Base(path)
		}
	}
	st, err := os.Lstat(resolved)
	if err != nil {
		return CopyInfo{}, err
	}
	return CopyInfo{Path: resolved, Exists: true, IsDir: st.IsDir(), RebaseName: rebase}, nil
}

// DestinationInfo describes a local copy destination: symbolic links at its end are
// followed; it need not exist, but its parent directory must.
func DestinationInfo(path string) (CopyInfo, error) {
	original := path
	st, err := os.Lstat(path)
	if err == nil && st.Mode()&os.ModeSymlink == 0 {
		return CopyInfo{Path: path, Exists: true, IsDir: st.IsDir()}, nil
	}
	for n := 0; err == nil && st.Mode()&os.ModeSymlink != 0; n++ {
		if n > 10 {
			return CopyInfo{}, errors.New("too many symlinks in " + original)
		}
		target, rerr := os.Readlink(path)
		if rerr != nil {
			return CopyInfo{}, rerr
		}
		if !filepath.IsAbs(target) {
			parent, _ := SplitPathDirEntry(path)
			target = filepath.Join(parent, target)
		}
		path = target
		st, err = os.Lstat(path)
	}
	if err != nil {
		if !os.IsNotExist(err) {
			return CopyInfo{}, err
		}
		parent, _ := SplitPathDirEntry(path)
		pst, err := os.Stat(parent)
		if err != nil {
			return CopyInfo{}, err
		}
		if !pst.IsDir() {
			return CopyInfo{}, ErrNotDirectory
		}
		return CopyInfo{Path: path}, nil
	}
	return CopyInfo{Path: path, Exists: true, IsDir: st.IsDir()}, nil
}

// PrepareArchiveCopy decides where the archive of src is extracted for the copy to mean
// what docker's cp means, and renames its entries when needed: into an existing destination
// directory as it is; otherwise into the destination's parent, the source's base renamed
// to the destination's.
func PrepareArchiveCopy(content io.Reader, src, dst CopyInfo) (dir string, rebased io.ReadCloser, err error) {
	dstDir, dstBase := SplitPathDirEntry(dst.Path)
	_, srcBase := SplitPathDirEntry(src.Path)
	if src.RebaseName != "" {
		srcBase = src.RebaseName
	}
	switch {
	case dst.Exists && dst.IsDir:
		return dst.Path, io.NopCloser(content), nil
	case dst.Exists && src.IsDir:
		return "", nil, ErrCannotCopyDir
	case dst.Exists, src.IsDir:
		return dstDir, RebaseArchiveEntries(content, srcBase, dstBase), nil
	case AssertsDirectory(dst.Path):
		return "", nil, ErrDirNotExists
	default:
		return dstDir, RebaseArchiveEntries(content, srcBase, dstBase), nil
	}
}

// RebaseArchiveEntries rewrites the tar stream src, replacing the first oldBase of every
// entry name (and hard link target) with newBase.
func RebaseArchiveEntries(src io.Reader, oldBase, newBase string) io.ReadCloser {
	if oldBase == string(filepath.Separator) {
		oldBase = ""
	}
	r, w := io.Pipe()
	go func() {
		tr := tar.NewReader(src)
		tw := tar.NewWriter(w)
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				w.CloseWithError(tw.Close())
				return
			}
			if err != nil {
				w.CloseWithError(err)
				return
			}
			// The names may grow past what USTAR holds.
			hdr.Format = tar.FormatPAX
			hdr.Name = strings.Replace(hdr.Name, oldBase, newBase, 1)
			if hdr.Typeflag == tar.TypeLink {
				hdr.Linkname = strings.Replace(hdr.Linkname, oldBase, newBase, 1)
			}
			if err := tw.WriteHeader(hdr); err != nil {
				w.CloseWithError(err)
				return
			}
			if _, err := io.Copy(tw, tr); err != nil {
				w.CloseWithError(err)
				return
			}
		}
	}()
	return r
}

// ValidateOutputDir checks that the parent directory of a local destination exists.
func ValidateOutputDir(p string) error {
	dir := filepath.Dir(filepath.Clean(p))
	if dir != "" && dir != "." {
		if _, err := os.Stat(dir); os.IsNotExist(err) {
			return fmt.Errorf("invalid output path: directory %q does not exist", dir)
		}
	}
	return nil
}

// ValidateOutputPath checks a local destination: its parent directory exists, and it is a
// directory or a regular file when it exists.
func ValidateOutputPath(p string) error {
	if err := ValidateOutputDir(p); err != nil {
		return err
	}
	fi, err := os.Stat(p)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().IsDir() || fi.Mode().IsRegular() {
		return nil
	}
	if err := ValidateFileMode(fi.Mode()); err != nil {
		return fmt.Errorf("invalid output path: %q must be a directory or a regular file: %w", p, err)
	}
	return nil
}

// ValidateFileMode refuses devices and irregular files as copy destinations.
func ValidateFileMode(m os.FileMode) error {
	switch {
	case m&os.ModeDevice != 0:
		return errors.New("got a device")
	case m&os.ModeIrregular != 0:
		return errors.New("got an irregular file")
	}
	return nil
}
