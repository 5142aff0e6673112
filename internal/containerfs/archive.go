package containerfs

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"golang.org/x/sys/unix"
)

// Archive returns a tar of the file or directory at path in the
// container, and its Stat, as GET /containers/{id}/archive:
//
//   - the top entry is named after the path's last component: "/etc"
//     gives "etc/", "etc/passwd", ...; a path ending in "/." gives the
//     contents as "./", "./passwd", ... (docker cp's "copy the contents");
//     the root "/" gives "/", "/bin", ...;
//   - a symbolic link at the end of the path is archived as the link,
//     unless the path ends with "/" (then its target directory is, under
//     the link's name);
//   - owners (numeric), modes, mtimes (to the second), extended
//     attributes (but trusted.overlay.*), hard links, symbolic links,
//     devices and FIFOs are kept; sockets are left out; mounts inside a
//     directory are archived as the container sees them.
//
// Errors about the path come before any byte; the tar is written as it is
// read. The caller must Close the reader (which ends the view).
func Archive(v View, p string) (io.ReadCloser, container.PathStat, error) {
	f, err := open(v)
	if err != nil {
		return nil, container.PathStat{}, err
	}
	st, fd, err := f.stat(p)
	if err != nil {
		f.close()
		return nil, container.PathStat{}, v.pathErr(p, err)
	}
	abs := absPath(p)
	pr, pw := io.Pipe()
	go func() {
		err := f.writeArchive(pw, abs, fd, st)
		unix.Close(fd)
		f.close()
		pw.CloseWithError(err)
	}()
	return pr, st, nil
}

// writeArchive writes the tar of abs, open (O_PATH) at fd.
func (f *fsys) writeArchive(w io.Writer, abs string, fd int, st container.PathStat) error {
	t := &tarWriter{tw: tar.NewWriter(w), links: make(map[[2]uint64]string), buf: make([]byte, 256<<10), xbuf: make([]byte, 4096)}
	var err error
	if st.Mode.IsDir() {
		// Entries are named after the path's base: "/" for the root
		// (whose entries are then "/bin", ...), as dockerd's rebase.
		name := path.Base(abs)
		if name == "/" {
			name = ""
		}
		var dfd int
		dfd, err = unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("archive %s: %w", abs, os.NewSyscallError("openat", err))
		}
		var dst unix.Stat_t
		if err = unix.Fstat(dfd, &dst); err == nil {
			err = t.dir(dfd, &dst, name)
		}
		unix.Close(dfd)
	} else {
		// The entry itself, by name in its directory.
		dir, base := path.Split(abs)
		var pfd int
		pfd, err = openInRoot(f.rootfd, relPath(dir), unix.O_RDONLY|unix.O_DIRECTORY)
		if err != nil {
			return fmt.Errorf("archive %s: %w", abs, os.NewSyscallError("openat2", err))
		}
		err = t.entry(pfd, base, base)
		unix.Close(pfd)
	}
	if err != nil {
		return fmt.Errorf("archive %s: %w", abs, err)
	}
	return t.tw.Close()
}

// tarWriter writes a tree from descriptors, never following a symbolic
// link.
type tarWriter struct {
	tw    *tar.Writer
	links map[[2]uint64]string // inode -> first entry name (hard links)
	buf   []byte
	xbuf  []byte
}

// entry writes name in the directory dirfd as the tar entry tname.
func (t *tarWriter) entry(dirfd int, name, tname string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return nil // removed since listed
		}
		return fmt.Errorf("%s: %w", tname, os.NewSyscallError("fstatat", err))
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		fd, err := openSame(dirfd, name, unix.O_DIRECTORY, &st)
		if err != nil {
			return fmt.Errorf("%s: %w", tname, err)
		}
		defer unix.Close(fd)
		return t.dir(fd, &st, tname)
	case unix.S_IFREG:
		return t.file(dirfd, name, tname, &st)
	case unix.S_IFSOCK:
		return nil // tar has no sockets
	}
	hdr := header(&st, tname)
	if t.linked(&st, hdr) {
		return t.write(hdr)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		target, err := readlinkat(dirfd, name)
		if err != nil {
			return fmt.Errorf("%s: %w", tname, err)
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	}
	if err := t.xattrs(-1, procPath(dirfd, name), hdr); err != nil {
		return fmt.Errorf("%s: %w", tname, err)
	}
	return t.write(hdr)
}

// dir writes the directory open at fd as tname, then its entries in name
// order.
func (t *tarWriter) dir(fd int, st *unix.Stat_t, tname string) error {
	hdr := header(st, tname+"/")
	hdr.Typeflag = tar.TypeDir
	if err := t.xattrs(fd, "", hdr); err != nil {
		return fmt.Errorf("%s: %w", tname, err)
	}
	if err := t.write(hdr); err != nil {
		return err
	}
	names, err := readNames(fd)
	if err != nil {
		return fmt.Errorf("%s: %w", tname, err)
	}
	slices.Sort(names)
	for _, n := range names {
		if err := t.entry(fd, n, tname+"/"+n); err != nil {
			return err
		}
	}
	return nil
}

func (t *tarWriter) file(dirfd int, name, tname string, seen *unix.Stat_t) error {
	hdr := header(seen, tname)
	if t.linked(seen, hdr) {
		return t.write(hdr)
	}
	fd, err := openSame(dirfd, name, 0, seen)
	if err != nil {
		return fmt.Errorf("%s: %w", tname, err)
	}
	defer unix.Close(fd)
	hdr.Typeflag, hdr.Size = tar.TypeReg, seen.Size
	if err := t.xattrs(fd, "", hdr); err != nil {
		return fmt.Errorf("%s: %w", tname, err)
	}
	if err := t.write(hdr); err != nil {
		return err
	}
	// A file that grows while written is cut at its size when listed; one
	// that shrinks is padded with zeros: the stream stays a valid tar.
	n, err := io.CopyBuffer(t.tw, io.LimitReader(fdReader(fd), seen.Size), t.buf)
	if err != nil {
		return fmt.Errorf("%s: %w", tname, err)
	}
	for n < seen.Size {
		k := min(int64(len(t.buf)), seen.Size-n)
		clear(t.buf[:k])
		if _, err := t.tw.Write(t.buf[:k]); err != nil {
			return err
		}
		n += k
	}
	return nil
}

// openSame opens name in dirfd without following a symbolic link and
// checks that it is the file seen before.
func openSame(dirfd int, name string, flags int, seen *unix.Stat_t) (int, error) {
	// O_NONBLOCK: a FIFO swapped in must not hang the walk.
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|flags, 0)
	if err != nil {
		return -1, os.NewSyscallError("openat", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("fstat", err)
	}
	if st.Ino != seen.Ino || st.Dev != seen.Dev {
		unix.Close(fd)
		return -1, errors.New("file replaced while being archived")
	}
	return fd, nil
}

// linked makes hdr a hard link to the first entry of its inode, if one
// was written, and otherwise remembers it.
func (t *tarWriter) linked(st *unix.Stat_t, hdr *tar.Header) bool {
	if st.Nlink < 2 {
		return false
	}
	id := [2]uint64{uint64(st.Dev), st.Ino}
	if first, ok := t.links[id]; ok {
		hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
		return true
	}
	t.links[id] = hdr.Name
	return false
}

// xattrs adds the extended attributes of a file (fd, or path without
// following its last component) to hdr as SCHILY.xattr records, but
// trusted.overlay.* ones.
func (t *tarWriter) xattrs(fd int, p string, hdr *tar.Header) error {
	list, err := t.xattr(func(b []byte) (int, error) {
		if p == "" {
			return unix.Flistxattr(fd, b)
		}
		return unix.Llistxattr(p, b)
	})
	if err != nil || len(list) == 0 {
		return err
	}
	for _, key := range strings.Split(strings.TrimSuffix(string(list), "\x00"), "\x00") {
		if strings.HasPrefix(key, "trusted.overlay.") {
			continue
		}
		val, err := t.xattr(func(b []byte) (int, error) {
			if p == "" {
				return unix.Fgetxattr(fd, key, b)
			}
			return unix.Lgetxattr(p, key, b)
		})
		if err == unix.ENODATA {
			continue
		}
		if err != nil {
			return fmt.Errorf("xattr %s: %w", key, err)
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = make(map[string]string)
		}
		hdr.PAXRecords["SCHILY.xattr."+key] = string(val)
	}
	return nil
}

func (t *tarWriter) xattr(call func([]byte) (int, error)) ([]byte, error) {
	for {
		n, err := call(t.xbuf)
		switch err {
		case nil:
			return t.xbuf[:n], nil
		case unix.ERANGE:
			if n, err = call(nil); err != nil {
				return nil, os.NewSyscallError("xattr", err)
			}
			t.xbuf = make([]byte, 2*n)
		case unix.ENOTSUP:
			return nil, nil
		case unix.ENODATA:
			return nil, err
		default:
			return nil, os.NewSyscallError("xattr", err)
		}
	}
}

func (t *tarWriter) write(hdr *tar.Header) error {
	if err := t.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%s: %w", hdr.Name, err)
	}
	return nil
}

// header starts an entry's header from its stat: numeric owners, the
// mtime to the second (as dockerd), PAX.
func header(st *unix.Stat_t, name string) *tar.Header {
	return &tar.Header{
		Name:    name,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: time.Unix(st.Mtim.Sec, 0),
		Format:  tar.FormatPAX,
	}
}

// readNames lists a directory open at fd, without "." and "..".
func readNames(fd int) ([]string, error) {
	if _, err := unix.Seek(fd, 0, io.SeekStart); err != nil {
		return nil, os.NewSyscallError("lseek", err)
	}
	buf := make([]byte, 32<<10)
	var names []string
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, os.NewSyscallError("getdents", err)
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

// fdReader reads from a descriptor it does not own.
type fdReader int

func (r fdReader) Read(b []byte) (int, error) {
	for {
		n, err := unix.Read(int(r), b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, os.NewSyscallError("read", err)
		}
		if n == 0 && len(b) > 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

// procPath names name in the directory dirfd through /proc; the l* calls
// do not follow its last component.
func procPath(dirfd int, name string) string { return fdPath(dirfd) + "/" + name }
