package cpath

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// TarSource writes a tar of the local source src (as SourceInfo described it) to a pipe:
// entries named after the source's base (or its RebaseName), a directory with everything
// under it ("dir/." gives "./" and "./name" entries). Owners are numeric, times to the
// second, hard links kept.
func TarSource(src CopyInfo) (io.ReadCloser, error) {
	if _, err := os.Lstat(src.Path); err != nil {
		return nil, err
	}
	dir, base := SplitPathDirEntry(src.Path)
	r, w := io.Pipe()
	go func() {
		tw := tar.NewWriter(w)
		err := writeTree(tw, dir, base, src.RebaseName)
		if cerr := tw.Close(); err == nil {
			err = cerr
		}
		w.CloseWithError(err)
	}()
	return r, nil
}

// writeTree walks dir/base and writes its entries.
func writeTree(tw *tar.Writer, dir, base, rebase string) error {
	root := dir + string(filepath.Separator) + base
	links := map[[2]uint64]string{}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if base == "." && rel != "." {
			rel = "./" + rel
		}
		if rebase != "" {
			rel = strings.Replace(rel, base, rebase, 1)
		}
		return addFile(tw, p, filepath.ToSlash(rel), links)
	})
}

func addFile(tw *tar.Writer, p, name string, links map[[2]uint64]string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket != 0 {
		return nil // sockets do not travel
	}
	var target string
	if fi.Mode()&os.ModeSymlink != 0 {
		if target, err = os.Readlink(p); err != nil {
			return err
		}
	}
	hdr, err := tar.FileInfoHeader(fi, target)
	if err != nil {
		return fmt.Errorf("tar header of %s: %w", p, err)
	}
	hdr.Name = name
	if fi.IsDir() && !strings.HasSuffix(hdr.Name, "/") {
		hdr.Name += "/"
	}
	hdr.Format = tar.FormatPAX
	hdr.ModTime = hdr.ModTime.Truncate(time.Second)
	hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
	hdr.Uname, hdr.Gname = "", ""
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
		if fi.Mode().IsRegular() && st.Nlink > 1 {
			id := [2]uint64{uint64(st.Dev), st.Ino}
			if first, ok := links[id]; ok {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
			} else {
				links[id] = name
			}
		}
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if hdr.Typeflag != tar.TypeReg || hdr.Size == 0 {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(tw, f)
	return err
}

// Extract unpacks the tar stream r into the existing directory dst, as docker's cp does
// on the client: files are owned by the user running berth (no chown), a directory is
// never replaced by a non-directory nor the reverse, and nothing is written outside dst
// (parent directories are resolved inside dst, links may not point out of it).
func Extract(r io.Reader, dst string) error {
	dst = filepath.Clean(dst)
	tr := tar.NewReader(r)
	type dirTime struct {
		path string
		t    time.Time
	}
	var dirs []dirTime
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		name := path.Clean(hdr.Name)
		if name == ".." || strings.HasPrefix(name, "../") || strings.HasPrefix(name, "/../") {
			return fmt.Errorf("%q is outside of %q", hdr.Name, dst)
		}
		parent, err := securejoin.SecureJoin(dst, path.Dir(name))
		if err != nil {
			return err
		}
		target := filepath.Join(parent, path.Base(name))
		if name == "." || name == "/" {
			target = dst
		}
		if hdr.Typeflag != tar.TypeDir {
			if err := os.MkdirAll(parent, 0o755); err != nil {
				return err
			}
		}
		if fi, err := os.Lstat(target); err == nil {
			switch {
			case fi.IsDir() && hdr.Typeflag != tar.TypeDir:
				return fmt.Errorf("cannot overwrite directory %q with non-directory %q", target, dst)
			case !fi.IsDir() && hdr.Typeflag == tar.TypeDir:
				return fmt.Errorf("cannot overwrite non-directory %q with directory %q", target, dst)
			case fi.IsDir() && name == ".":
				continue
			case !fi.IsDir():
				if err := os.Remove(target); err != nil {
					return err
				}
			}
		}
		if err := create(target, dst, hdr, tr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeDir {
			dirs = append(dirs, dirTime{target, hdr.ModTime})
		}
	}
	// Directory times last: their content changed them.
	for _, d := range dirs {
		_ = os.Chtimes(d.path, d.t, d.t)
	}
	return nil
}

func create(target, root string, hdr *tar.Header, r io.Reader) error {
	mode := os.FileMode(hdr.Mode & 0o777)
	switch hdr.Typeflag {
	case tar.TypeDir:
		if _, err := os.Lstat(target); errors.Is(err, fs.ErrNotExist) {
			if err := os.Mkdir(target, mode); err != nil {
				return err
			}
		}
	case tar.TypeReg, '\x00': // '\x00' is the old TypeRegA
		f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, r); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	case tar.TypeSymlink:
		// A link may not lead out of the destination, as docker checks.
		t := filepath.Join(filepath.Dir(target), hdr.Linkname)
		if filepath.IsAbs(hdr.Linkname) {
			t = filepath.Join(root, hdr.Linkname)
		}
		if !within(root, t) {
			return fmt.Errorf("invalid symlink %q -> %q", target, hdr.Linkname)
		}
		return os.Symlink(hdr.Linkname, target)
	case tar.TypeLink:
		src, err := securejoin.SecureJoin(root, hdr.Linkname)
		if err != nil {
			return err
		}
		if err := os.Link(src, target); err != nil {
			return err
		}
		return nil
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		m := uint32(mode)
		switch hdr.Typeflag {
		case tar.TypeChar:
			m |= unix.S_IFCHR
		case tar.TypeBlock:
			m |= unix.S_IFBLK
		default:
			m |= unix.S_IFIFO
		}
		if err := unix.Mknod(target, m, int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unhandled tar header type %d for %s", hdr.Typeflag, hdr.Name)
	}
	// Modes with setuid, setgid and sticky bits, then the times.
	if err := os.Chmod(target, tarMode(hdr)); err != nil {
		return err
	}
	return os.Chtimes(target, hdr.ModTime, hdr.ModTime)
}

func tarMode(hdr *tar.Header) os.FileMode {
	m := os.FileMode(hdr.Mode & 0o777)
	if hdr.Mode&04000 != 0 {
		m |= os.ModeSetuid
	}
	if hdr.Mode&02000 != 0 {
		m |= os.ModeSetgid
	}
	if hdr.Mode&01000 != 0 {
		m |= os.ModeSticky
	}
	return m
}

func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// CopyTo extracts the archive content of the source src into the local destination dst
// following docker's rules.
func CopyTo(content io.Reader, src CopyInfo, dst string) error {
	dstInfo, err := DestinationInfo(dst)
	if err != nil {
		return err
	}
	dir, archive, err := PrepareArchiveCopy(content, src, dstInfo)
	if err != nil {
		return err
	}
	defer archive.Close()
	return Extract(archive, dir)
}
