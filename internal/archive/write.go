package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Overlay features whose upper directories do not read as a diff.
const (
	overlayRedirectXattr = "trusted.overlay.redirect"
	overlayMetacopyXattr = "trusted.overlay.metacopy"
)

var errOverlayFeature = errors.New("upper directory uses overlay redirect_dir or metacopy; it cannot be written as a layer")

// WriteDiff writes the overlay upper directory upper as an uncompressed OCI
// layer tar to w: 0/0 character devices become ".wh.<name>" entries, and a
// directory with trusted.overlay.opaque=y gets a ".wh..wh..opq" entry right
// after its own. Otherwise it writes like WriteTree. The overlay must not
// use redirect_dir or metacopy.
func WriteDiff(ctx context.Context, w io.Writer, upper string) error {
	return writeTree(ctx, w, upper, true)
}

// WriteTree writes the tree under root (not root itself) as an
// uncompressed tar to w, without whiteout translation.
//
// The output is deterministic: the same tree gives the same bytes. Entries
// come depth first, each directory's names sorted; the format is PAX, with
// numeric owners only, mtimes to the nanosecond and no atime or ctime; hard
// links (same inode) are TypeLink entries to the first path written;
// extended attributes are SCHILY.xattr.* records, except trusted.overlay.*.
// Sockets are left out. Files are opened without following symbolic links,
// relative to descriptors of their directories.
func WriteTree(ctx context.Context, w io.Writer, root string) error {
	return writeTree(ctx, w, root, false)
}

func writeTree(ctx context.Context, w io.Writer, root string, diff bool) error {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(fd)
	bufp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bufp)
	t := &treeWriter{
		ctx:   ctx,
		tw:    tar.NewWriter(w),
		root:  root,
		diff:  diff,
		links: make(map[fileID]string),
		buf:   *bufp,
		xbuf:  make([]byte, 4096),
	}
	if err := t.walk(fd, ""); err != nil {
		return err
	}
	return t.tw.Close()
}

type fileID struct{ dev, ino uint64 }

// treeWriter walks a tree for WriteTree and WriteDiff.
type treeWriter struct {
	ctx   context.Context
	tw    *tar.Writer
	root  string
	diff  bool
	links map[fileID]string // first path of each inode with more than one link
	buf   []byte            // file contents
	dents []byte            // getdents
	xbuf  []byte            // xattr names and values
}

// walk writes the entries of the directory dirfd, whose path in the tar is
// prefix ("" or ending in "/").
func (t *treeWriter) walk(dirfd int, prefix string) error {
	var names []string
	var err error
	names, t.dents, err = readNames(dirfd, t.dents, nil)
	if err != nil {
		return t.pathErr(prefix, err)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := t.ctx.Err(); err != nil {
			return err
		}
		if err := t.entry(dirfd, prefix, name); err != nil {
			return err
		}
	}
	return nil
}

func (t *treeWriter) entry(dirfd int, prefix, name string) error {
	p := prefix + name
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return nil // removed since listed
		}
		return t.pathErr(p, os.NewSyscallError("fstatat", err))
	}
	typ := st.Mode & unix.S_IFMT
	switch {
	case typ == unix.S_IFDIR:
		return t.dir(dirfd, name, p, &st)
	case typ == unix.S_IFSOCK:
		return nil // tar has no sockets
	case t.diff && typ == unix.S_IFCHR && st.Rdev == 0:
		hdr := header(&st, prefix+whiteoutPrefix+name)
		hdr.Typeflag = tar.TypeReg
		return t.writeHeader(hdr)
	}
	hdr := header(&st, p)
	if t.linked(&st, hdr) {
		return t.writeHeader(hdr)
	}
	switch typ {
	case unix.S_IFREG:
		return t.file(dirfd, name, p, &st)
	case unix.S_IFLNK:
		hdr.Typeflag = tar.TypeSymlink
		target, err := t.readlink(dirfd, name)
		if err != nil {
			return t.pathErr(p, err)
		}
		hdr.Linkname = target
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if typ == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	}
	if err := t.xattrs(-1, procPath(dirfd, name), hdr); err != nil {
		return t.pathErr(p, err)
	}
	return t.writeHeader(hdr)
}

func (t *treeWriter) dir(dirfd int, name, p string, seen *unix.Stat_t) error {
	fd, st, err := t.open(dirfd, name, unix.O_DIRECTORY, seen)
	if err != nil {
		return t.pathErr(p, err)
	}
	defer unix.Close(fd)
	hdr := header(st, p+"/")
	hdr.Typeflag = tar.TypeDir
	if err := t.xattrs(fd, "", hdr); err != nil {
		return t.pathErr(p, err)
	}
	opaque := t.diff && hdr.PAXRecords[xattrPAXPrefix+overlayOpaqueXattr] == "y"
	delete(hdr.PAXRecords, xattrPAXPrefix+overlayOpaqueXattr)
	if err := t.writeHeader(hdr); err != nil {
		return err
	}
	if opaque {
		wh := header(st, p+"/"+whiteoutOpaque)
		wh.Typeflag = tar.TypeReg
		if err := t.writeHeader(wh); err != nil {
			return err
		}
	}
	return t.walk(fd, p+"/")
}

func (t *treeWriter) file(dirfd int, name, p string, seen *unix.Stat_t) error {
	fd, st, err := t.open(dirfd, name, 0, seen)
	if err != nil {
		return t.pathErr(p, err)
	}
	defer unix.Close(fd)
	hdr := header(st, p)
	hdr.Typeflag = tar.TypeReg
	hdr.Size = st.Size
	if err := t.xattrs(fd, "", hdr); err != nil {
		return t.pathErr(p, err)
	}
	if err := t.writeHeader(hdr); err != nil {
		return err
	}
	n, err := io.CopyBuffer(t.tw, io.LimitReader(fdReader(fd), st.Size), t.buf)
	if err == nil && n != st.Size {
		err = fmt.Errorf("file shrank from %d to %d bytes while being written", st.Size, n)
	}
	if err != nil {
		return t.pathErr(p, err)
	}
	return nil
}

// open opens name in dirfd, not following a symbolic link, and checks that
// it is still the file seen by name before.
func (t *treeWriter) open(dirfd int, name string, flags int, seen *unix.Stat_t) (int, *unix.Stat_t, error) {
	// O_NONBLOCK: a FIFO swapped in must not hang the walk.
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|flags, 0)
	if err != nil {
		return -1, nil, os.NewSyscallError("openat", err)
	}
	st := new(unix.Stat_t)
	if err := unix.Fstat(fd, st); err != nil {
		unix.Close(fd)
		return -1, nil, os.NewSyscallError("fstat", err)
	}
	if st.Mode&unix.S_IFMT != seen.Mode&unix.S_IFMT || st.Ino != seen.Ino || st.Dev != seen.Dev {
		unix.Close(fd)
		return -1, nil, errors.New("file replaced while being written")
	}
	return fd, st, nil
}

// linked makes hdr a hard link if its inode was written before, and
// otherwise remembers the inode if it has other links.
func (t *treeWriter) linked(st *unix.Stat_t, hdr *tar.Header) bool {
	if st.Nlink < 2 {
		return false
	}
	id := fileID{dev: st.Dev, ino: st.Ino}
	if first, ok := t.links[id]; ok {
		hdr.Typeflag = tar.TypeLink
		hdr.Linkname = first
		return true
	}
	t.links[id] = hdr.Name
	return false
}

func (t *treeWriter) readlink(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		if len(t.xbuf) < size {
			t.xbuf = make([]byte, size)
		}
		n, err := unix.Readlinkat(dirfd, name, t.xbuf[:size])
		if err != nil {
			return "", os.NewSyscallError("readlinkat", err)
		}
		if n < size {
			return string(t.xbuf[:n]), nil
		}
	}
}

// xattrs adds the extended attributes of a file to hdr, read through fd
// or, if path is not "", through path without following its last
// component. trusted.overlay.* attributes are kept for dir to look at
// only; the redirect_dir and metacopy ones are refused in a diff.
func (t *treeWriter) xattrs(fd int, path string, hdr *tar.Header) error {
	list, err := t.xattrCall(func(b []byte) (int, error) {
		if path == "" {
			return unix.Flistxattr(fd, b)
		}
		return unix.Llistxattr(path, b)
	})
	if err != nil || len(list) == 0 {
		return err
	}
	keys := strings.Split(strings.TrimSuffix(string(list), "\x00"), "\x00")
	for _, key := range keys {
		if t.diff && (key == overlayRedirectXattr || key == overlayMetacopyXattr) {
			return errOverlayFeature
		}
		if strings.HasPrefix(key, overlayXattrPrefix) && (hdr.Typeflag != tar.TypeDir || key != overlayOpaqueXattr) {
			continue
		}
		val, err := t.xattrCall(func(b []byte) (int, error) {
			if path == "" {
				return unix.Fgetxattr(fd, key, b)
			}
			return unix.Lgetxattr(path, key, b)
		})
		if err == unix.ENODATA {
			continue // removed since listed
		}
		if err != nil {
			return fmt.Errorf("xattr %s: %w", key, err)
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = make(map[string]string)
		}
		hdr.PAXRecords[xattrPAXPrefix+key] = string(val)
	}
	return nil
}

// xattrCall runs a listxattr or getxattr call into the treeWriter's buffer,
// growing it as needed. A file system without xattrs has none.
func (t *treeWriter) xattrCall(call func([]byte) (int, error)) ([]byte, error) {
	for {
		n, err := call(t.xbuf)
		if err == unix.ERANGE {
			if n, err = call(nil); err != nil {
				return nil, os.NewSyscallError("xattr", err)
			}
			t.xbuf = make([]byte, 2*n)
			continue
		}
		if err != nil && isNotSupported(err) {
			return nil, nil
		}
		if err == unix.ENODATA {
			return nil, err
		}
		if err != nil {
			return nil, os.NewSyscallError("xattr", err)
		}
		return t.xbuf[:n], nil
	}
}

func (t *treeWriter) writeHeader(hdr *tar.Header) error {
	if err := t.tw.WriteHeader(hdr); err != nil {
		return t.pathErr(hdr.Name, err)
	}
	return nil
}

func (t *treeWriter) pathErr(p string, err error) error {
	return &os.PathError{Op: "archive", Path: filepath.Join(t.root, p), Err: err}
}

// header starts the tar header of a file from its stat.
func header(st *unix.Stat_t, name string) *tar.Header {
	return &tar.Header{
		Name:    name,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
		Format:  tar.FormatPAX,
	}
}
