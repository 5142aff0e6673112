package network

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"berth/internal/errdefs"
)

// NewNetNS creates a network namespace that outlives any process in it, as
// `ip netns add` does: a locked OS thread unshares CLONE_NEWNET, the new
// namespace is bind-mounted on path (a new file; its directory must exist),
// and the thread returns to its original namespace. An existing path is a
// conflict.
func NewNetNS(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return errdefs.Conflict("netns %s already exists", path)
		}
		return fmt.Errorf("netns %s: %w", path, err)
	}
	f.Close()

	errc := make(chan error, 1)
	go func() {
		// The thread is unlocked only once it is back in its original
		// namespace; if it cannot get back, the goroutine ends locked and
		// the runtime throws the thread away.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		src := "/proc/self/task/" + strconv.Itoa(unix.Gettid()) + "/ns/net"
		merr := unix.Mount(src, path, "none", unix.MS_BIND, "")
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(merr, fmt.Errorf("return to original netns: %w", err))
			return
		}
		runtime.UnlockOSThread()
		if merr != nil {
			merr = fmt.Errorf("bind mount: %w", merr)
		}
		errc <- merr
	}()
	if err := <-errc; err != nil {
		unix.Unmount(path, unix.MNT_DETACH)
		os.Remove(path)
		return fmt.Errorf("netns %s: %w", path, err)
	}
	return nil
}

// RemoveNetNS unmounts and removes a namespace made by NewNetNS. The
// namespace itself goes when nothing else holds it. A missing path is not
// an error.
func RemoveNetNS(path string) error {
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("netns %s: unmount: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("netns %s: %w", path, err)
	}
	return nil
}

// openNS opens the namespace at path, or the calling process's own (that
// of its main thread, not of whichever thread runs the call) when path is
// empty.
func openNS(path string) (netns.NsHandle, error) {
	if path == "" {
		path = "/proc/" + strconv.Itoa(os.Getpid()) + "/ns/net"
	}
	h, err := netns.GetFromPath(filepath.Clean(path))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return netns.None(), errdefs.NotFound("netns %s does not exist", path)
		}
		return netns.None(), fmt.Errorf("netns %s: %w", path, err)
	}
	return h, nil
}

// RunInNetNS runs fn on an OS thread that is in the network namespace at
// path: the sockets fn makes belong to that namespace for good, whichever
// thread uses them later.
func RunInNetNS(path string, fn func() error) error {
	target, err := openNS(path)
	if err != nil {
		return err
	}
	defer target.Close()
	return RunIn(target, fn)
}

// RunIn runs fn on an OS thread that is in the network namespace target.
// The thread is unlocked only once it is back in its original namespace;
// if it cannot get back, the goroutine ends locked and the runtime throws
// the thread away. fn's error comes first; a failed return is joined to it.
func RunIn(target netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns: %w", err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("return to original netns: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// LoopbackUp sets the loopback link of the network namespace at path up, as Docker's
// containers without networks have it (a new namespace's lo is down).
func LoopbackUp(path string) error {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("netns %s: %w", path, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", path, err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("lo in %s: %w", path, err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("lo in %s: up: %w", path, err)
	}
	return nil
}
