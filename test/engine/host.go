// Package engine starts private instances of the container engines berth is tested and
// measured against, Debian's dockerd (with the containerd it starts) and podman, and guards
// what they share on the host. test/integration/interop, test/integration/images and
// test/bench/images use it.
//
// It owns:
//   - the host-wide lock (LockHost) that serializes the runs that start these engines;
//   - the fixed host paths the engines write even with private roots (HostPaths), with a
//     snapshot of them and the removal of what a run added (SnapshotHostPaths, Restore);
//   - a private dockerd (StartDockerd): its own directory, data root, exec root, socket, pid
//     file and daemon.json, no bridge and no iptables, the cgroupfs driver; its readiness,
//     its stop by the PID it started and the removal of its directory;
//   - a private podman (NewPodman): its own store, run root, temporary directory, network
//     configuration, containers.conf and storage.conf, and the global flags that use them;
//     and the reset of its store;
//   - finding what an engine left under its directory: mounts and processes.
//
// It must not know what its callers run in the engines, nor how they report: it takes no
// testing.T, logs nothing and returns errors; each caller keeps its own checks, its own
// command runner and its own use of the engines.
package engine

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// LockPath is the host-wide lock of the runs that start engines.
const LockPath = "/run/lock/berth-interop.lock"

// LockHost takes the host-wide lock, waiting while another run holds it; waiting, when not
// nil, is called once before it waits. The engines share fixed host paths, and each run's
// Restore must see the state from before any run. unlock releases the lock (the exit of the
// process does as well).
func LockHost(waiting func()) (unlock func(), err error) {
	f, err := os.OpenFile(LockPath, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if err == unix.EWOULDBLOCK {
		if waiting != nil {
			waiting()
		}
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", LockPath, err)
	}
	return func() { f.Close() }, nil
}

// HostPaths are the fixed host locations that dockerd, containerd, its shims, podman and
// skopeo write to even with private roots (the trust key of dockerd 20.10 without
// daemon.json's key path, the blob info cache of containers/image, run directories), parents
// first.
var HostPaths = []string{
	"/etc/docker", "/etc/docker/key.json",
	"/run/docker", "/run/docker/plugins",
	"/run/containerd", "/run/containerd/s",
	"/run/containers", "/run/containers/networks",
	"/var/lib/containers", "/var/lib/containers/cache", "/var/lib/containers/cache/blob-info-cache-v1.boltdb",
}

// HostSnapshot records which of HostPaths existed.
type HostSnapshot map[string]bool

// SnapshotHostPaths records which of HostPaths exist now.
func SnapshotHostPaths() HostSnapshot {
	s := HostSnapshot{}
	for _, p := range HostPaths {
		_, err := os.Lstat(p)
		s[p] = err == nil
	}
	return s
}

// Restore removes the HostPaths that did not exist at the snapshot, deepest first: files
// always, directories only when empty. It returns an error for each path it could not
// remove (a directory someone else has written into meanwhile stays).
func (s HostSnapshot) Restore() []error {
	var errs []error
	for i := len(HostPaths) - 1; i >= 0; i-- {
		p := HostPaths[i]
		if s[p] {
			continue
		}
		if _, err := os.Lstat(p); err != nil {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errs
}
