package archive

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"runtime/debug"
	"slices"
	"strings"
	"sync"

	"berth/internal/pagewrite"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// Limits on what one entry may ask for, beyond archive/tar's own.
const (
	maxPathLen    = 4096    // entry names and link targets
	maxXattrBytes = 1 << 20 // extended attribute names and values, per entry
)

const (
	copyBufSize        = pagewrite.Max
	xattrPAXPrefix     = "SCHILY.xattr."
	whiteoutPrefix     = ".wh."
	whiteoutMetaPrefix = ".wh..wh."
	whiteoutOpaque     = ".wh..wh..opq"
	overlayXattrPrefix = "trusted.overlay."
	overlayOpaqueXattr = "trusted.overlay.opaque"
	aclDefaultXattr    = "system.posix_acl_default"
)

// WhiteoutMode says what Unpack does with the whiteout entries of a layer.
type WhiteoutMode int

const (
	// WhiteoutOverlay (the zero value) keeps whiteouts in overlayfs form,
	// for a layer directory used as an overlay lower dir: ".wh.<name>"
	// becomes a 0/0 character device <name>; ".wh..wh..opq" sets the xattr
	// trusted.overlay.opaque=y on its directory; other ".wh..wh.*" entries
	// (aufs metadata like .wh..wh.plnk) are skipped.
	WhiteoutOverlay WhiteoutMode = iota
	// WhiteoutApply carries whiteouts out on an existing tree (docker cp,
	// build ADD): ".wh.<name>" removes <name> (recursively); ".wh..wh..opq"
	// removes the directory's existing children that were not written by
	// this same archive.
	WhiteoutApply
)

// UnpackOptions tune Unpack.
type UnpackOptions struct {
	Whiteouts WhiteoutMode
	// Digest, when set, is the verified digest of r as given (a stored
	// blob). If r turns out to be uncompressed that is the diff ID, and
	// Unpack does not hash the stream again.
	Digest digest.Digest
	// Prehashed says the caller hashes r as given itself (a blob stored
	// while it is unpacked): if r turns out to be uncompressed, that digest
	// is the diff ID, so Unpack does not hash the stream and leaves
	// UnpackStats.DiffID empty.
	Prehashed bool
	// InMemory says r hands out data that is read already (a queue of
	// chunks in memory): Unpack reads it on the calling goroutine, with no
	// read-ahead goroutine copying it once more.
	InMemory bool
	// AnySymlinkTarget keeps symbolic links whose relative targets climb out of dir (a
	// build context's, or what a build copies into an image): they are data, and Unpack
	// still resolves every path it writes inside dir. Layers are unpacked without it.
	AnySymlinkTarget bool
	// Split has Unpack record the layer's split (UnpackStats.Split), for
	// Rebuild to give the stream back from dir. Whiteouts must be
	// WhiteoutOverlay.
	Split bool
}

// UnpackStats describe an unpacked stream.
type UnpackStats struct {
	Entries int   // tar entries read, whiteouts and skipped ones included
	Bytes   int64 // sum of the sizes of the regular files written
	// DiffID is the sha256 of the uncompressed tar stream, end-of-archive
	// padding included: the layer's OCI diff_id. Empty when
	// UnpackOptions.Prehashed left it to the caller.
	DiffID digest.Digest
	// Compression is what r was compressed with.
	Compression Compression
	// Split is the encoded split of the stream (UnpackOptions.Split): nil
	// when the tree cannot give the stream back (see Rebuild).
	Split []byte
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// Unpack extracts the tar stream r, compressed with gzip or zstd or not
// compressed at all, into dir, which must exist. It keeps owners, modes,
// times, extended attributes, hard links, symbolic links, devices and
// FIFOs, and translates whiteouts as opts says.
//
// Nothing is ever written outside dir: entries whose names or link
// targets would escape are refused with an *EntryError wrapping
// ErrBreakout, and symbolic links in dir (including those the archive
// itself made) are resolved as if dir were the root. A later entry with
// the name of an earlier one replaces it.
//
// Errors about an entry are *EntryError. On error, dir is left as it is:
// callers unpack into a temporary directory and remove it.
//
// Unpack reads and decompresses r on a goroutine of its own, a little ahead
// of extraction (unless opts.InMemory, or r is a Memory stream, which are
// read on the caller's goroutine); it is done with r when it returns. The
// stream is read to its end, so that UnpackStats.DiffID covers all of it.
func Unpack(ctx context.Context, r io.Reader, dir string, opts UnpackOptions) (_ UnpackStats, err error) {
	// A Memory stream that is not compressed is read from the memory; a
	// compressed one is decompressed on this goroutine, where a fault
	// reading it is caught.
	var mem *memStream
	if m, ok := r.(*memStream); ok {
		defer catchFault(m, debug.SetPanicOnFault(true), &err)
		m.consumed, m.ctx = int(min(m.pos, int64(len(m.b)))), ctx
		if DetectCompression(m.b[m.consumed:min(m.consumed+peekSize, len(m.b))]) == Uncompressed {
			mem = m
		} else {
			opts.InMemory = true
		}
	}
	rc, comp := io.NopCloser(r), Uncompressed
	if mem == nil {
		if rc, comp, err = DecompressStream(r); err != nil {
			return UnpackStats{}, err
		}
	}
	defer rc.Close()
	rootfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return UnpackStats{}, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	bufp := copyBufs.Get().(*[]byte)
	u := &unpacker{opts: opts, rootfd: rootfd, buf: *bufp, made: newMade(rootfd, opts), mem: mem}
	u.rootGid = u.newGid(rootfd)
	defer func() {
		u.parents.clear()
		unix.Close(rootfd)
		copyBufs.Put(bufp)
	}()
	if opts.Whiteouts == WhiteoutApply {
		u.written = make(map[string]struct{})
	}

	u.stats.Compression = comp

	h := sha256.New()
	var hashTo io.Writer = h
	if (opts.Digest != "" || opts.Prehashed) && comp == Uncompressed {
		hashTo = io.Discard
	}
	var stream io.Reader
	switch {
	case mem != nil:
		if hashTo != io.Discard {
			mem.h = h
		}
		// The tar reader seeks past what it skips.
		stream = mem
	case opts.InMemory:
		stream = rc
		if hashTo != io.Discard {
			stream = io.TeeReader(rc, hashTo)
		}
	default:
		ra := newReadAhead(rc, hashTo)
		defer ra.Close() // before rc.Close
		stream = ra
	}
	if opts.Split && comp == Uncompressed && opts.Whiteouts == WhiteoutOverlay {
		if mem != nil {
			u.split = newSplitRecorder(nil)
			mem.split = u.split
		} else {
			u.split = newSplitRecorder(stream)
			stream = u.split
		}
	}
	tr := tar.NewReader(stream)
	last := ""
	for {
		if err := ctx.Err(); err != nil {
			return u.stats, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		// ErrInsecurePath comes with a usable header: our own checks decide.
		if err != nil && !(errors.Is(err, tar.ErrInsecurePath) && hdr != nil) {
			if last == "" {
				return u.stats, fmt.Errorf("reading first tar entry: %w", err)
			}
			return u.stats, fmt.Errorf("after tar entry %q: %w", last, err)
		}
		u.stats.Entries++
		if err := u.entry(hdr, tr); err != nil {
			return u.stats, &EntryError{Name: hdr.Name, Err: err}
		}
		last = hdr.Name
	}
	if err := u.setDirTimes(); err != nil {
		return u.stats, err
	}
	// The digest covers the whole stream, padding after the end marker too.
	if _, err := io.CopyBuffer(io.Discard, stream, u.buf); err != nil {
		return u.stats, fmt.Errorf("reading the end of the tar stream: %w", err)
	}
	u.stats.DiffID = digest.NewDigest(digest.SHA256, h)
	if hashTo == io.Discard {
		u.stats.DiffID = opts.Digest
	}
	if u.split != nil {
		u.stats.Split = u.split.finish()
	}
	return u.stats, nil
}

type unpacker struct {
	opts    UnpackOptions
	rootfd  int // O_PATH descriptor of the extraction directory
	parents parentCache
	// staleParents: an entry replaced a directory or symlink, so cached parents may have
	// been resolved through it; the next lookup clears the cache.
	staleParents bool
	buf          []byte
	// made is what new entries get from their creation; rootGid is the
	// group they get in the root (newGid).
	made    made
	rootGid int
	dirs    []dirTimes
	written map[string]struct{} // paths this archive made; WhiteoutApply only
	stats   UnpackStats
	// split records the layer's split; UnpackOptions.Split only.
	split *splitRecorder
	// mem is the stream when it is an uncompressed Memory stream: files'
	// content is copied out of it by writeContent, not read through the tar
	// reader.
	mem *memStream
}

// dirTimes are the times of a directory entry, set once every entry is in
// place (creating entries in a directory changes its mtime).
type dirTimes struct {
	name  string // the entry's name, for errors
	path  string // cleaned; "" is the root
	times [2]unix.Timespec
}

// entry extracts one tar entry. Its errors are wrapped in an EntryError by
// the caller.
func (u *unpacker) entry(hdr *tar.Header, r io.Reader) error {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil
	case tar.TypeReg, tar.TypeGNUSparse, tar.TypeDir, tar.TypeSymlink, tar.TypeLink,
		tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
	default:
		return fmt.Errorf("%w %q", errUnsupportedType, hdr.Typeflag)
	}
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if err := checkXattrs(hdr); err != nil {
		return err
	}
	if _, ok := hdr.PAXRecords[xattrPAXPrefix+aclDefaultXattr]; ok {
		u.made.ok = false // see newMade
	}
	if u.split != nil && Sparse(hdr) {
		u.split.broken = true
	}
	if name == "" {
		return u.root(hdr)
	}
	dir, base := splitPath(name)
	if strings.HasPrefix(base, whiteoutPrefix) || strings.HasPrefix(name, whiteoutMetaPrefix) {
		return u.whiteout(hdr, name, dir, base)
	}
	var target string
	switch hdr.Typeflag {
	case tar.TypeSymlink:
		if u.opts.AnySymlinkTarget {
			if len(hdr.Linkname) > maxPathLen {
				err = errNameTooLong
			}
		} else {
			err = checkSymlink(name, hdr.Linkname)
		}
	case tar.TypeLink:
		target, err = cleanLinkTarget(hdr.Linkname)
	}
	if err != nil {
		return err
	}

	pfd, err := u.parent(dir, true)
	if err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		err = u.mkdir(pfd, name, base, hdr)
	case tar.TypeReg, tar.TypeGNUSparse:
		err = u.file(pfd, name, base, hdr, r)
	case tar.TypeSymlink:
		err = u.symlink(pfd, base, hdr)
	case tar.TypeLink:
		err = u.hardlink(pfd, name, base, target)
	default:
		err = u.mknod(pfd, base, hdr)
	}
	if err == nil && u.written != nil {
		u.written[name] = struct{}{}
	}
	return err
}

// cleanName turns an entry name into a path relative to the extraction
// directory, "" for the directory itself.
func cleanName(name string) (string, error) {
	if len(name) > maxPathLen {
		return "", errNameTooLong
	}
	if strings.HasPrefix(name, "/") || hasDotDot(name) {
		return "", ErrBreakout
	}
	for strings.HasPrefix(name, "./") {
		name = name[2:]
	}
	name = path.Clean(name)
	if name == "." {
		return "", nil
	}
	return name, nil
}

func hasDotDot(name string) bool {
	for name != "" {
		elem, rest, _ := strings.Cut(name, "/")
		if elem == ".." {
			return true
		}
		name = rest
	}
	return false
}

// splitPath splits a cleaned path into its directory ("" for the root) and
// its last component.
func splitPath(name string) (dir, base string) {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return "", name
	}
	return name[:i], name[i+1:]
}

// checkSymlink refuses relative targets that climb out of the root from
// the link's directory. Absolute targets are resolved inside the container
// root at run time, so they are fine.
func checkSymlink(name, target string) error {
	if len(target) > maxPathLen {
		return errNameTooLong
	}
	if strings.HasPrefix(target, "/") {
		return nil
	}
	if p := path.Join(path.Dir(name), target); p == ".." || strings.HasPrefix(p, "../") {
		return ErrBreakout
	}
	return nil
}

// cleanLinkTarget cleans a hard link target, which is relative to the root
// of the archive.
func cleanLinkTarget(target string) (string, error) {
	if len(target) > maxPathLen {
		return "", errNameTooLong
	}
	if strings.HasPrefix(target, "/") {
		return "", ErrBreakout
	}
	p := path.Clean(target)
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", ErrBreakout
	}
	return p, nil
}

func checkXattrs(hdr *tar.Header) error {
	n := 0
	for k, v := range hdr.PAXRecords {
		if strings.HasPrefix(k, xattrPAXPrefix) {
			n += len(k) - len(xattrPAXPrefix) + len(v)
		}
	}
	if n > maxXattrBytes {
		return errXattrsTooLarge
	}
	return nil
}

// parent returns a descriptor (owned by the cache) of the directory dir,
// resolved inside the root; with create, missing directories are made.
func (u *unpacker) parent(dir string, create bool) (int, error) {
	if u.staleParents {
		u.parents.clear()
		u.staleParents = false
	}
	if dir == "" {
		return u.rootfd, nil
	}
	if fd, ok := u.parents.get(dir); ok {
		return fd, nil
	}
	fd, err := resolveInRoot(u.rootfd, dir, unix.O_PATH|unix.O_DIRECTORY)
	if err == unix.ENOENT && create {
		fd, err = u.mkdirAll(dir)
	} else if err != nil {
		err = os.NewSyscallError("openat2", err)
	}
	if err != nil {
		return -1, fmt.Errorf("parent directory %q: %w", dir, err)
	}
	u.parents.put(dir, fd, u.newGid(fd))
	return fd, nil
}

// newGid returns the group that entries made in the directory fd get: its
// own when it has the set-group-ID bit, the caller's otherwise; -1 if
// unknown.
func (u *unpacker) newGid(fd int) int {
	var st unix.Stat_t
	if !u.made.ok || unix.Fstat(fd, &st) != nil {
		return -1
	}
	if st.Mode&unix.S_ISGID != 0 {
		return int(st.Gid)
	}
	return u.made.gid
}

// parentGid is newGid of pfd, a descriptor parent returned.
func (u *unpacker) parentGid(pfd int) int {
	if pfd == u.rootfd {
		return u.rootGid
	}
	return u.parents.gid(pfd)
}

// mkdirAll makes the missing directories of dir (mode 0755, owned by the
// caller), resolving each one from the root.
func (u *unpacker) mkdirAll(dir string) (int, error) {
	fd := u.rootfd
	for i := 0; ; {
		end := len(dir)
		if j := strings.IndexByte(dir[i:], '/'); j >= 0 {
			end = i + j
		}
		prefix, elem := dir[:end], dir[i:end]
		next, err := resolveInRoot(u.rootfd, prefix, unix.O_PATH|unix.O_DIRECTORY)
		if err == unix.ENOENT {
			// EEXIST: a dangling symbolic link, which the second
			// resolution reports.
			if err = unix.Mkdirat(fd, elem, 0o755); err == nil {
				if u.written != nil {
					u.written[prefix] = struct{}{}
				}
				err = chmodAt(fd, elem, 0o755) // not the umask's choice
			} else if err == unix.EEXIST {
				err = nil
			} else {
				err = os.NewSyscallError("mkdirat", err)
			}
			if err == nil {
				next, err = resolveInRoot(u.rootfd, prefix, unix.O_PATH|unix.O_DIRECTORY)
			}
		}
		if errno, ok := err.(unix.Errno); ok {
			err = os.NewSyscallError("openat2", errno)
		}
		if fd != u.rootfd {
			unix.Close(fd)
		}
		if err != nil {
			return -1, err
		}
		if end == len(dir) {
			return next, nil
		}
		fd, i = next, end+1
	}
}

// create runs mk to make base in the directory pfd. If base exists it is
// replaced: removed (recursively for a directory) and mk runs again; but
// with keepDir an existing directory is kept and mk does not run again.
func (u *unpacker) create(pfd int, base string, keepDir bool, mk func() error) error {
	err := mk()
	if err != unix.EEXIST {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return os.NewSyscallError("fstatat", err)
	}
	// Cached parents may have been resolved through a replaced directory or symlink: the
	// cache is cleared, but only at the next lookup, as the caller still uses pfd (which
	// the cache owns).
	stale := false
	if u.split != nil && !(keepDir && st.Mode&unix.S_IFMT == unix.S_IFDIR) {
		// What the replaced entry held is gone from the tree.
		u.split.broken = true
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if keepDir {
			return nil
		}
		err = removeAllAt(pfd, base)
		stale = true
	case unix.S_IFLNK:
		stale = true
		fallthrough
	default:
		if err = unix.Unlinkat(pfd, base, 0); err != nil {
			err = os.NewSyscallError("unlinkat", err)
		}
	}
	if err == nil {
		err = mk()
	}
	if stale {
		u.staleParents = true
	}
	return err
}

func (u *unpacker) root(hdr *tar.Header) error {
	if hdr.Typeflag != tar.TypeDir {
		return errRootNotDir
	}
	if err := setMetaAt(u.rootfd, "", hdr, true); err != nil {
		return err
	}
	u.rootGid = u.newGid(u.rootfd)
	u.dirs = append(u.dirs, dirTimes{name: hdr.Name, times: timesOf(hdr)})
	return nil
}

func (u *unpacker) mkdir(pfd int, name, base string, hdr *tar.Header) error {
	err := u.create(pfd, base, true, func() error { return unix.Mkdirat(pfd, base, 0o700) })
	if err != nil {
		return os.NewSyscallError("mkdirat", err)
	}
	if err := setMetaAt(pfd, base, hdr, true); err != nil {
		return err
	}
	// A directory kept may be cached as a parent, with the group it
	// passed on before.
	u.parents.forget(name)
	u.dirs = append(u.dirs, dirTimes{name: hdr.Name, path: name, times: timesOf(hdr)})
	return nil
}

func (u *unpacker) file(pfd int, name, base string, hdr *tar.Header, r io.Reader) (err error) {
	fd := -1
	perm, chown, chmod := u.made.file(hdr, u.parentGid(pfd))
	err = u.create(pfd, base, false, func() (err error) {
		fd, err = unix.Openat(pfd, base, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
		return err
	})
	if err != nil {
		return os.NewSyscallError("openat", err)
	}
	// Deferred: a fault reading a Memory stream panics through here.
	defer func() {
		if cerr := unix.Close(fd); err == nil && cerr != nil {
			err = os.NewSyscallError("close", cerr)
		}
		if err == nil {
			u.stats.Bytes += hdr.Size
		}
	}()
	if u.split != nil {
		u.split.file(name, hdr.Size)
	}
	if u.inPlace(hdr) {
		err = u.mem.writeContent(fd, hdr.Size)
	} else {
		err = u.copyData(fd, r, hdr.Size)
	}
	if u.split != nil {
		u.split.endFile()
	}
	if err != nil {
		return err
	}
	return setFileMeta(fd, hdr, chown, chmod)
}

// inPlace says whether the content of a regular file is written from the
// Memory stream it is in; the tar reader skips it after.
func (u *unpacker) inPlace(hdr *tar.Header) bool {
	return u.mem != nil && hdr.Typeflag == tar.TypeReg && !Sparse(hdr) && u.mem.content(hdr.Size)
}

// copyData copies size bytes of the entry's content from r to fd, in
// chunks of the unpacker's buffer.
func (u *unpacker) copyData(fd int, r io.Reader, size int64) error {
	for size > 0 {
		b := u.buf
		if int64(len(b)) > size {
			b = b[:size]
		}
		n, err := io.ReadFull(r, b)
		if n > 0 {
			if err := pagewrite.Write(fd, b[:n]); err != nil {
				return err
			}
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return err
		}
		size -= int64(n)
	}
	return nil
}

func (u *unpacker) symlink(pfd int, base string, hdr *tar.Header) error {
	err := u.create(pfd, base, false, func() error { return unix.Symlinkat(hdr.Linkname, pfd, base) })
	if err != nil {
		return os.NewSyscallError("symlinkat", err)
	}
	if err := setMetaAt(pfd, base, hdr, !u.made.owned(hdr, u.parentGid(pfd))); err != nil {
		return err
	}
	return setTimes(pfd, base, hdr)
}

func (u *unpacker) mknod(pfd int, base string, hdr *tar.Header) error {
	mode := modeOf(hdr) & 0o777
	switch hdr.Typeflag {
	case tar.TypeChar:
		mode |= unix.S_IFCHR
	case tar.TypeBlock:
		mode |= unix.S_IFBLK
	default:
		mode |= unix.S_IFIFO
	}
	dev := int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
	err := u.create(pfd, base, false, func() error { return unix.Mknodat(pfd, base, mode, dev) })
	if err != nil {
		return os.NewSyscallError("mknodat", err)
	}
	if err := setMetaAt(pfd, base, hdr, true); err != nil {
		return err
	}
	return setTimes(pfd, base, hdr)
}

// hardlink links base in pfd to target, resolved inside the root without
// following a symbolic link in its last component. The link shares the
// target's metadata, so the header's is not applied.
func (u *unpacker) hardlink(pfd int, name, base, target string) error {
	if target == name {
		return nil
	}
	tfd, err := resolveInRoot(u.rootfd, target, unix.O_PATH|unix.O_NOFOLLOW)
	if err != nil {
		return fmt.Errorf("link target %q: %w", target, os.NewSyscallError("openat2", err))
	}
	defer unix.Close(tfd)
	err = u.create(pfd, base, false, func() error {
		err := unix.Linkat(tfd, "", pfd, base, unix.AT_EMPTY_PATH)
		if err == unix.ENOENT {
			// AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH.
			err = unix.Linkat(unix.AT_FDCWD, fdPath(tfd), pfd, base, unix.AT_SYMLINK_FOLLOW)
		}
		return err
	})
	if err != nil {
		return os.NewSyscallError("linkat", err)
	}
	return nil
}

func (u *unpacker) whiteout(hdr *tar.Header, name, dir, base string) error {
	if base == whiteoutOpaque {
		return u.opaque(dir)
	}
	if strings.HasPrefix(name, whiteoutMetaPrefix) || strings.HasPrefix(base, whiteoutMetaPrefix) {
		return nil // aufs metadata
	}
	target := base[len(whiteoutPrefix):]
	switch target {
	case "", ".":
		return errBadWhiteout
	case "..":
		return ErrBreakout
	}
	if u.opts.Whiteouts == WhiteoutApply {
		pfd, err := u.parent(dir, false)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return nil // nothing there to remove
		}
		if err != nil {
			return err
		}
		err = removeAllAt(pfd, target)
		u.parents.clear() // it may have been one of them, or led to one
		return err
	}
	pfd, err := u.parent(dir, true)
	if err != nil {
		return err
	}
	err = u.create(pfd, target, false, func() error { return unix.Mknodat(pfd, target, unix.S_IFCHR, 0) })
	if err != nil {
		return os.NewSyscallError("mknodat", err)
	}
	if err := unix.Fchownat(pfd, target, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return os.NewSyscallError("fchownat", err)
	}
	return setTimes(pfd, target, hdr)
}

func (u *unpacker) opaque(dir string) error {
	if u.opts.Whiteouts == WhiteoutApply {
		pfd, err := u.parent(dir, false)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return nil
		}
		if err != nil {
			return err
		}
		err = u.prune(pfd, dir)
		u.parents.clear()
		return err
	}
	pfd, err := u.parent(dir, true)
	if err != nil {
		return err
	}
	if err := unix.Lsetxattr(procPath(pfd, ""), overlayOpaqueXattr, []byte("y"), 0); err != nil {
		return os.NewSyscallError("lsetxattr", err)
	}
	return nil
}

// prune removes what is under the directory dirfd (at path dir) that this
// archive did not write.
func (u *unpacker) prune(dirfd int, dir string) error {
	fd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("openat", err)
	}
	defer unix.Close(fd)
	names, _, err := readNames(fd, nil, nil)
	if err != nil {
		return err
	}
	for _, n := range names {
		p := n
		if dir != "" {
			p = dir + "/" + n
		}
		if _, ok := u.written[p]; !ok {
			if err := removeAllAt(fd, n); err != nil {
				return err
			}
			continue
		}
		sub, err := unix.Openat(fd, n, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == unix.ENOTDIR || err == unix.ELOOP {
			continue
		}
		if err != nil {
			return os.NewSyscallError("openat", err)
		}
		err = u.prune(sub, p)
		unix.Close(sub)
		if err != nil {
			return err
		}
	}
	return nil
}

// setDirTimes sets the times of the directory entries, deepest first.
func (u *unpacker) setDirTimes() error {
	depth := func(p string) int {
		if p == "" {
			return -1
		}
		return strings.Count(p, "/")
	}
	slices.SortStableFunc(u.dirs, func(a, b dirTimes) int { return depth(b.path) - depth(a.path) })
	for i := range u.dirs {
		d := &u.dirs[i]
		fd := u.rootfd
		if d.path != "" {
			var err error
			fd, err = resolveInRoot(u.rootfd, d.path, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW)
			if err == unix.ENOENT || err == unix.ENOTDIR {
				continue // replaced or removed by a later entry
			}
			if err != nil {
				return &EntryError{Name: d.name, Err: os.NewSyscallError("openat2", err)}
			}
		}
		err := unix.UtimesNanoAt(fd, "", d.times[:], unix.AT_EMPTY_PATH)
		if fd != u.rootfd {
			unix.Close(fd)
		}
		if err != nil {
			return &EntryError{Name: d.name, Err: os.NewSyscallError("utimensat", err)}
		}
	}
	return nil
}

// parentCache keeps descriptors of the last few parent directories:
// entries mostly come grouped by directory.
type parentCache struct {
	paths [8]string
	fds   [8]int
	gids  [8]int // unpacker.newGid of each
	used  [8]uint64
	n     int
	clock uint64
}

func (c *parentCache) get(path string) (int, bool) {
	for i := 0; i < c.n; i++ {
		if c.paths[i] == path {
			c.clock++
			c.used[i] = c.clock
			return c.fds[i], true
		}
	}
	return -1, false
}

// gid returns the group that entries made in the cached directory fd get,
// -1 if fd is not cached.
func (c *parentCache) gid(fd int) int {
	for i := 0; i < c.n; i++ {
		if c.fds[i] == fd {
			return c.gids[i]
		}
	}
	return -1
}

// forget closes and drops the entry of path, if cached.
func (c *parentCache) forget(path string) {
	for i := 0; i < c.n; i++ {
		if c.paths[i] == path {
			unix.Close(c.fds[i])
			last := c.n - 1
			c.paths[i], c.fds[i], c.gids[i], c.used[i] = c.paths[last], c.fds[last], c.gids[last], c.used[last]
			c.paths[last] = ""
			c.n--
			return
		}
	}
}

// put adds fd, which the cache then owns, with the group entries made in
// it get, evicting the least recently used entry if full.
func (c *parentCache) put(path string, fd, gid int) {
	i := c.n
	if i == len(c.fds) {
		i = 0
		for j := range c.used {
			if c.used[j] < c.used[i] {
				i = j
			}
		}
		unix.Close(c.fds[i])
	} else {
		c.n++
	}
	c.clock++
	c.paths[i], c.fds[i], c.gids[i], c.used[i] = path, fd, gid, c.clock
}

func (c *parentCache) clear() {
	for i := 0; i < c.n; i++ {
		unix.Close(c.fds[i])
		c.paths[i] = ""
	}
	c.n = 0
}
