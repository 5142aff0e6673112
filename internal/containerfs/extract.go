package containerfs

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"

	"berth/internal/archive"
	"berth/internal/errdefs"

	"golang.org/x/sys/unix"
)

// Extract extracts the tar stream r (compressed or not) into the
// directory at dst in the container, as PUT /containers/{id}/archive:
//
//   - dst, all its symbolic links followed inside the container, must be
//     an existing directory: a missing one is errdefs.ErrNotFound ("Could
//     not find the file <dst> in container <name>"), another file
//     errdefs.ErrInvalid "extraction point is not a directory";
//   - it must be writable: in a read-only mount, "mounted volume is marked
//     read-only"; outside the mounts of a container with a read-only root
//     file system, "container rootfs is marked read-only" (both
//     errdefs.ErrInvalid);
//   - entries are placed under dst, resolved as the container would
//     (symbolic links inside it, through its mounts); names climbing out
//     of dst are refused (errdefs.ErrInvalid), and nothing is ever written
//     outside the container (internal/archive's extraction);
//   - owners are root's (0:0); with copyUIDGID they are the container's
//     user's (View.User, looked up in the container's /etc/passwd and
//     /etc/group) or, without one, the archive's own;
//   - with noOverwriteDirNonDir an entry may not replace a directory with
//     something else, or something else with a directory.
func Extract(v View, dst string, r io.Reader, noOverwriteDirNonDir, copyUIDGID bool) error {
	f, err := open(v)
	if err != nil {
		return err
	}
	defer f.close()
	abs := absPath(dst)
	fd, err := openInRoot(f.rootfd, relPath(abs), unix.O_PATH)
	if err != nil {
		return v.pathErr(dst, &os.PathError{Op: "open", Path: abs, Err: err})
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("extract to %s: %w", abs, os.NewSyscallError("fstat", err))
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return errdefs.Invalid("extraction point is not a directory")
	}
	canon, err := f.canonical(fd)
	if err != nil {
		return fmt.Errorf("extract to %s: %w", abs, err)
	}
	if m := f.mountFor(canon); m != nil && m.readOnly {
		return errdefs.Invalid("mounted volume is marked read-only")
	} else if m == nil && v.ReadOnlyRoot {
		return errdefs.Invalid("container rootfs is marked read-only")
	}
	owner := &ids{uid: 0, gid: 0}
	if copyUIDGID {
		if owner, err = f.lookupUser(v.User); err != nil {
			return err
		}
	}
	rw := &rewriter{f: f, prefix: strings.TrimPrefix(canon, "/"), dst: abs, owner: owner,
		noOverwrite: noOverwriteDirNonDir, seen: make(map[string]bool)}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := rw.run(r, pw)
		pw.CloseWithError(err)
		done <- err
	}()
	// The extraction root is the container's root (in the view's
	// namespace): entries, rewritten to paths under dst, resolve as in the
	// container.
	_, err = archive.Unpack(context.Background(), pr, fdPath(f.rootfd), archive.UnpackOptions{Whiteouts: archive.WhiteoutApply})
	pr.CloseWithError(io.ErrClosedPipe) // stops the rewriter if Unpack failed first
	rerr := <-done
	if rerr != nil && !errors.Is(rerr, io.ErrClosedPipe) {
		err = rerr // the rewriter's refusal is the cause
	}
	if err != nil {
		if errors.Is(err, archive.ErrBreakout) {
			return errdefs.InvalidWrap(err, "extract to %s", abs)
		}
		return fmt.Errorf("extract to %s: %w", abs, err)
	}
	return nil
}

// ids are an owner to give every entry; nil keeps the archive's.
type ids struct{ uid, gid int }

// rewriter turns the client's tar into one for the container's root:
// names under dst, owners set, the noOverwriteDirNonDir rule applied.
type rewriter struct {
	f           *fsys
	prefix      string // dst's canonical path, relative to the root ("" for the root)
	dst         string
	owner       *ids
	noOverwrite bool
	seen        map[string]bool // names written by this archive: is a directory
}

func (rw *rewriter) run(r io.Reader, w io.Writer) error {
	rc, _, err := archive.DecompressStream(r)
	if err != nil {
		return err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	tw := tar.NewWriter(w)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil && !(errors.Is(err, tar.ErrInsecurePath) && hdr != nil) {
			return err
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		orig := hdr.Name
		if hdr.Name, err = rw.name(hdr.Name); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeLink {
			if hdr.Linkname, err = rw.name(hdr.Linkname); err != nil {
				return err
			}
		}
		if hdr.Typeflag == tar.TypeGNUSparse {
			hdr.Typeflag = tar.TypeReg // read expanded, written whole
		}
		for k := range hdr.PAXRecords {
			if strings.HasPrefix(k, "GNU.sparse.") {
				delete(hdr.PAXRecords, k)
			}
		}
		if rw.owner != nil {
			hdr.Uid, hdr.Gid = rw.owner.uid, rw.owner.gid
		}
		hdr.Uname, hdr.Gname = "", ""
		if rw.noOverwrite {
			if err := rw.checkOverwrite(hdr, orig); err != nil {
				return err
			}
		}
		hdr.Format = tar.FormatPAX // long rewritten names
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
	return tw.Close()
}

// name places an entry's name under dst: leading slashes are dropped and
// ".." resolved, but a name reaching out of dst is refused (as dockerd).
func (rw *rewriter) name(n string) (string, error) {
	c := path.Clean(strings.TrimLeft(n, "/"))
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("tar entry %q: %w", n, archive.ErrBreakout)
	}
	if c == "." {
		c = ""
	}
	full := path.Join(rw.prefix, c)
	if full == "" {
		full = "."
	}
	return full, nil
}

// checkOverwrite refuses an entry that would replace a directory with a
// non-directory or the reverse: the file there is the one this archive
// made, or else the one in the container.
func (rw *rewriter) checkOverwrite(hdr *tar.Header, orig string) error {
	name := hdr.Name
	isDir := hdr.Typeflag == tar.TypeDir
	defer func() { rw.seen[name] = isDir }()
	base := path.Base(name)
	if name == "." || strings.HasPrefix(base, ".wh.") {
		return nil
	}
	existsDir, exists := rw.seen[name]
	if !exists {
		var err error
		if existsDir, exists, err = rw.existing(name); err != nil {
			return err
		}
	}
	if !exists {
		return nil
	}
	target := path.Join(rw.dst, strings.TrimLeft(orig, "/"))
	switch {
	case existsDir && !isDir:
		return fmt.Errorf("cannot overwrite directory %q with non-directory %q", target, rw.dst)
	case !existsDir && isDir:
		return fmt.Errorf("cannot overwrite non-directory %q with directory %q", target, rw.dst)
	}
	return nil
}

// existing reports whether name (relative to the root) exists in the
// container and is a directory, its last component not followed.
func (rw *rewriter) existing(name string) (isDir, exists bool, err error) {
	dir, base := path.Split(name)
	dfd, err := openInRoot(rw.f.rootfd, relPath(dir), unix.O_PATH|unix.O_DIRECTORY)
	if err == unix.ENOENT || err == unix.ENOTDIR {
		return false, false, nil
	}
	if err != nil {
		return false, false, os.NewSyscallError("openat2", err)
	}
	defer unix.Close(dfd)
	var st unix.Stat_t
	err = unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.ENOENT || err == unix.ENOTDIR {
		return false, false, nil
	}
	if err != nil {
		return false, false, os.NewSyscallError("fstatat", err)
	}
	return st.Mode&unix.S_IFMT == unix.S_IFDIR, true, nil
}

// lookupUser resolves a container user ("name", "uid", with ":group" or
// ":gid") with the container's /etc/passwd and /etc/group; "" keeps the
// archive's owners (nil).
func (f *fsys) lookupUser(user string) (*ids, error) {
	if user == "" {
		return nil, nil
	}
	u, g, hasGroup := strings.Cut(user, ":")
	id := &ids{}
	if n, err := strconv.Atoi(u); err == nil {
		id.uid = n
		if e, ok := f.findEntry("etc/passwd", func(fields []string) bool { return fields[2] == u }); ok && len(e) >= 4 {
			id.gid, _ = strconv.Atoi(e[3])
		}
	} else {
		e, ok := f.findEntry("etc/passwd", func(fields []string) bool { return fields[0] == u })
		if !ok || len(e) < 4 {
			return nil, errdefs.Invalid("unable to find user %s: no matching entries in passwd file", u)
		}
		id.uid, _ = strconv.Atoi(e[2])
		id.gid, _ = strconv.Atoi(e[3])
	}
	if hasGroup {
		if n, err := strconv.Atoi(g); err == nil {
			id.gid = n
		} else {
			e, ok := f.findEntry("etc/group", func(fields []string) bool { return fields[0] == g })
			if !ok || len(e) < 3 {
				return nil, errdefs.Invalid("unable to find group %s: no matching entries in group file", g)
			}
			id.gid, _ = strconv.Atoi(e[2])
		}
	}
	return id, nil
}

// findEntry returns the fields of the first line of a colon-separated
// file of the container (passwd, group) that match says is the one.
func (f *fsys) findEntry(rel string, match func([]string) bool) ([]string, bool) {
	fd, err := openInRoot(f.rootfd, rel, unix.O_RDONLY)
	if err != nil {
		return nil, false
	}
	file := os.NewFile(uintptr(fd), rel)
	defer file.Close()
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, ":")
		if len(fields) >= 3 && match(fields) {
			return fields, true
		}
	}
	return nil, false
}
