// Package containerfs owns what the daemon does with a container's file
// system from the outside: docker cp in both directions (Stat, Archive,
// Extract, with dockerd's path rules) and docker diff (Changes, from the
// overlay upper directory).
//
// A container's file system is a View: the host path of its root (the
// mounted overlay) and its mounts (volumes and binds: container
// destination, host source, read-only flag). Container paths are resolved
// as the container would: symbolic links inside the container, absolute
// ones from its root, never out of it (openat2 with RESOLVE_IN_ROOT), and
// through its mounts, which a View with mounts gets in a private mount
// namespace of its own (bind mounts made on a locked thread, gone with it),
// as dockerd does. It never mounts anything the host sees.
//
// The package knows nothing of container records, the API's headers or
// events: the daemon builds the View and maps errors (errdefs kinds) to
// status codes.
package containerfs

import (
	"errors"
	"fmt"
	"os"
	"path"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// View is a container's file system as docker cp sees it.
type View struct {
	// Container names the container in errors ("Could not find the file
	// /x in container <Container>"): the name or ID the client gave.
	Container string
	// Root is the host path of the container's root file system.
	Root string
	// ReadOnlyRoot refuses extraction outside writable mounts
	// (HostConfig.ReadonlyRootfs).
	ReadOnlyRoot bool
	// Mounts are the container's bind mounts and volumes, mounted in the
	// view in order of their destination's depth.
	Mounts []Mount
	// User is the container's configured user (Config.User: name or uid,
	// with an optional :group), whom Extract makes the owner with
	// copyUIDGID.
	User string
}

// Mount is one mount of a View.
type Mount struct {
	Destination string // absolute path in the container
	Source      string // host path: a directory, or a file for a file mount
	ReadOnly    bool
}

// fsys is an open View: a descriptor of the container's root, in a
// private mount namespace with the mounts if the View has any.
type fsys struct {
	rootfd   int
	rootPath string       // the canonical host path of rootfd
	mounts   []mountPoint // canonical destinations
	quit     chan struct{}
}

type mountPoint struct {
	dest     string // canonical container path
	readOnly bool
}

// open opens v. The caller closes the result.
func open(v View) (*fsys, error) {
	if v.Root == "" {
		return nil, errors.New("container root file system is not mounted")
	}
	f := &fsys{rootfd: -1}
	if len(v.Mounts) == 0 {
		fd, err := unix.Open(v.Root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: v.Root, Err: err}
		}
		f.rootfd = fd
	} else if err := f.openNamespace(v); err != nil {
		f.close()
		return nil, err
	}
	p, err := os.Readlink(fdPath(f.rootfd))
	if err != nil {
		f.close()
		return nil, err
	}
	f.rootPath = p
	for i := range f.mounts {
		// openNamespace recorded the descriptors' host paths: make them
		// container paths.
		f.mounts[i].dest = f.containerPath(f.mounts[i].dest)
	}
	return f, nil
}

// openNamespace makes the private mount namespace of v on a thread of its
// own, which stays until close: its mounts go away with it.
func (f *fsys) openNamespace(v View) error {
	mounts := slices.Clone(v.Mounts)
	depth := func(m Mount) int { return strings.Count(path.Clean("/"+m.Destination), "/") }
	slices.SortStableFunc(mounts, func(a, b Mount) int { return depth(a) - depth(b) })
	quit := make(chan struct{})
	f.quit = quit
	ready := make(chan error)
	onThreadOfItsOwn(func() {
		err := f.setUp(v.Root, mounts)
		ready <- err
		if err == nil {
			<-quit
		}
	})
	return <-ready
}

// onThreadOfItsOwn runs fn on a goroutine locked to a thread that ends
// with it, and with the thread whatever fn changed of it (its mount
// namespace). Go cannot end the main thread (it would keep it, namespace
// and all): if the goroutine lands there, it holds the main thread while
// another one, necessarily elsewhere, runs fn.
func onThreadOfItsOwn(fn func()) {
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			done := make(chan struct{})
			onThreadOfItsOwn(func() {
				defer close(done)
				fn()
			})
			<-done
			runtime.UnlockOSThread()
			return
		}
		fn() // never unlocked: the thread exits with the goroutine
	}()
}

// setUp runs on the locked thread: a new mount namespace, propagation to
// the host cut, the root opened and the mounts bound into it.
func (f *fsys) setUp(root string, mounts []Mount) error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("container file system view: %w", os.NewSyscallError("unshare", err))
	}
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("container file system view: %w", os.NewSyscallError("mount", err))
	}
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: root, Err: err}
	}
	f.rootfd = fd
	for _, m := range mounts {
		dest, err := f.bind(m)
		if err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.Source, m.Destination, err)
		}
		f.mounts = append(f.mounts, mountPoint{dest: dest, readOnly: m.ReadOnly})
	}
	return nil
}

// bind mounts m in the namespace, making its destination if missing (as
// dockerd does), and returns the host path it ended up on.
func (f *fsys) bind(m Mount) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(m.Source, &st); err != nil {
		return "", &os.PathError{Op: "stat", Path: m.Source, Err: err}
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	rel := relPath(path.Clean("/" + m.Destination))
	if err := f.makeTarget(rel, isDir); err != nil {
		return "", err
	}
	tfd, err := openInRoot(f.rootfd, rel, unix.O_PATH)
	if err != nil {
		return "", os.NewSyscallError("openat2", err)
	}
	defer unix.Close(tfd)
	var tst unix.Stat_t
	if err := unix.Fstat(tfd, &tst); err != nil {
		return "", os.NewSyscallError("fstat", err)
	}
	if (tst.Mode&unix.S_IFMT == unix.S_IFDIR) != isDir {
		return "", errors.New("not the same kind of file as its source")
	}
	mfd, err := unix.OpenTree(unix.AT_FDCWD, m.Source, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return "", os.NewSyscallError("open_tree", err)
	}
	defer unix.Close(mfd)
	if m.ReadOnly {
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		if err := unix.MountSetattr(mfd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
			return "", os.NewSyscallError("mount_setattr", err)
		}
	}
	if err := unix.MoveMount(mfd, "", tfd, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return "", os.NewSyscallError("move_mount", err)
	}
	return os.Readlink(fdPath(tfd))
}

// makeTarget makes the destination rel of a mount if it does not exist:
// its missing directories, then a directory or an empty file.
func (f *fsys) makeTarget(rel string, isDir bool) error {
	if fd, err := openInRoot(f.rootfd, rel, unix.O_PATH); err == nil {
		unix.Close(fd)
		return nil
	}
	dir, base := path.Split(rel)
	pfd, err := f.mkdirAll(strings.TrimSuffix(dir, "/"))
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	if isDir {
		err = unix.Mkdirat(pfd, base, 0o755)
	} else {
		var fd int
		fd, err = unix.Openat(pfd, base, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o755)
		if err == nil {
			unix.Close(fd)
		}
	}
	if err != nil && err != unix.EEXIST {
		return fmt.Errorf("make mount point: %w", os.NewSyscallError("mkdirat", err))
	}
	return nil
}

// mkdirAll opens the directory rel of the container, making what is
// missing of it (resolving each level inside the root).
func (f *fsys) mkdirAll(rel string) (int, error) {
	fd, err := unix.Openat(f.rootfd, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("openat", err)
	}
	prefix := ""
	for _, elem := range strings.Split(rel, "/") {
		if elem == "" {
			continue
		}
		prefix = path.Join(prefix, elem)
		next, err := openInRoot(f.rootfd, prefix, unix.O_PATH|unix.O_DIRECTORY)
		if err == unix.ENOENT {
			if err = unix.Mkdirat(fd, elem, 0o755); err == nil || err == unix.EEXIST {
				next, err = openInRoot(f.rootfd, prefix, unix.O_PATH|unix.O_DIRECTORY)
			}
		}
		unix.Close(fd)
		if err != nil {
			return -1, fmt.Errorf("make mount point %s: %w", prefix, os.NewSyscallError("mkdirat", err))
		}
		fd = next
	}
	return fd, nil
}

func (f *fsys) close() {
	if f.rootfd >= 0 {
		unix.Close(f.rootfd)
		f.rootfd = -1
	}
	if f.quit != nil {
		close(f.quit)
		f.quit = nil
	}
}

// containerPath turns a host path under the root into a container path.
func (f *fsys) containerPath(host string) string {
	if f.rootPath == "/" {
		return path.Clean(host)
	}
	if host == f.rootPath {
		return "/"
	}
	if rest, ok := strings.CutPrefix(host, f.rootPath+"/"); ok {
		return "/" + rest
	}
	return host // not under the root: cannot happen with RESOLVE_IN_ROOT
}

// canonical returns the container path of the file open at fd.
func (f *fsys) canonical(fd int) (string, error) {
	p, err := os.Readlink(fdPath(fd))
	if err != nil {
		return "", err
	}
	return f.containerPath(p), nil
}

// mountFor returns the mount holding the container path p (the one with
// the longest destination), nil for the root file system.
func (f *fsys) mountFor(p string) *mountPoint {
	var best *mountPoint
	for i := range f.mounts {
		m := &f.mounts[i]
		if p == m.dest || m.dest == "/" || strings.HasPrefix(p, m.dest+"/") {
			if best == nil || len(m.dest) >= len(best.dest) {
				best = m
			}
		}
	}
	return best
}

// openInRoot opens p inside the tree at rootfd: symbolic links, absolute
// or not, and ".." resolve inside it.
func openInRoot(rootfd int, p string, flags int) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	for {
		fd, err := unix.Openat2(rootfd, p, &how)
		if err != unix.EINTR && err != unix.EAGAIN {
			return fd, err
		}
	}
}

// relPath turns an absolute container path into one relative to the root
// ("." for the root), keeping a trailing "/" or "/.".
func relPath(abs string) string {
	rel := strings.TrimLeft(abs, "/")
	if rel == "" {
		return "."
	}
	return rel
}

func fdPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }
