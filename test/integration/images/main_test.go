// Package images_test proves that berth's images travel to and from the real tools
// (acceptance 1 of the images issue): an image saved by berth is loaded by podman and by
// Debian's dockerd and read by skopeo (as docker-archive: and as oci-archive:), and the
// archives that podman save, docker save (the old format of docker 20.10) and skopeo copy
// write load into berth. Each direction compares the root filesystem with the tree the image
// was made from (imagetest.TreeManifest: paths, types, modes, owners, sizes, content hashes,
// user xattrs; and imagetest.HardLinks), and the config (Cmd, Entrypoint, Env, WorkingDir,
// User, ExposedPorts, Labels).
//
// Every test works in one private directory: its own berth store, podman store
// (--root/--runroot/--tmpdir, private containers.conf and storage.conf) and dockerd
// (--data-root/--exec-root/socket/pidfile, no bridge, no iptables). No container runs. At
// its end a test stops the dockerd it started (by its PID), resets its podman store, runs
// berth's store Check, and fails if a mount or a process under its directory is left.
//
// The engines write a few fixed host paths even with private roots (/etc/docker/key.json,
// /run/docker, the blob info cache of containers/image in /var/lib/containers/cache): those
// that did not exist before the run are removed after it. Runs of this package and of
// test/integration/interop, which drive the same engines, are serialized by a host-wide lock.
//
// The tests need root and podman, docker.io, skopeo, umoci, busybox-static, GNU tar, and
// bzip2, xz-utils and zstd for the compressed archives (hack/install-deps.sh installs them);
// a missing tool fails the test with the package to install.
package images_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// hostLock is the lock that test/integration/interop takes too (see its lockHost): the
// engines share fixed host paths, and each run's restoreHostPaths must see the state from
// before any run.
const hostLock = "/run/lock/berth-interop.lock"

// notRoot, when set, is why every test skips.
var notRoot string

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		notRoot = "the image round-trip tests need root (rootful podman and dockerd, overlay mounts)"
		os.Exit(m.Run())
	}
	unlock, err := lockHost()
	if err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
	before := snapshotHostPaths()
	code := m.Run()
	restoreHostPaths(before)
	unlock()
	os.Exit(code)
}

func lockHost() (func(), error) {
	f, err := os.OpenFile(hostLock, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if err == unix.EWOULDBLOCK {
		fmt.Fprintln(os.Stderr, "images: waiting for another run of the engine tests to finish")
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", hostLock, err)
	}
	return func() { f.Close() }, nil
}

// hostPaths are the fixed host locations that dockerd, podman and skopeo write to even with
// private roots, parents first. Those that did not exist before the run are removed after it
// (files always; directories only when empty).
var hostPaths = []string{
	"/etc/docker", "/etc/docker/key.json",
	"/run/docker", "/run/docker/plugins",
	"/run/containerd", "/run/containerd/s",
	"/run/containers", "/run/containers/networks",
	"/var/lib/containers", "/var/lib/containers/cache", "/var/lib/containers/cache/blob-info-cache-v1.boltdb",
}

func snapshotHostPaths() map[string]bool {
	m := map[string]bool{}
	for _, p := range hostPaths {
		_, err := os.Lstat(p)
		m[p] = err == nil
	}
	return m
}

func restoreHostPaths(before map[string]bool) {
	for i := len(hostPaths) - 1; i >= 0; i-- {
		p := hostPaths[i]
		if before[p] {
			continue
		}
		fi, err := os.Lstat(p)
		if err != nil {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) && fi.IsDir() {
			fmt.Fprintf(os.Stderr, "images: left %s (not empty)\n", p)
		}
	}
}
