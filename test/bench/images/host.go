package main

import (
	"errors"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// hostLock is the lock test/integration/interop and test/integration/images
// take too: the engines share fixed host paths, and each run's restore must
// see the state from before any run.
const hostLock = "/run/lock/berth-interop.lock"

// lockHost takes hostLock, waiting for an engine test run to finish.
func lockHost() (unlock func(), err error) {
	f, err := os.OpenFile(hostLock, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if err == unix.EWOULDBLOCK {
		logf("waiting for a run of the engine tests to finish (%s)", hostLock)
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// hostPaths are the fixed host locations that dockerd and podman write to
// even with private roots (the trust key of dockerd 20.10, the blob info
// cache of containers/image, ...), parents first: the list of the engine
// tests. Those that did not exist before the run are removed after it
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
		m[p] = exists(p)
	}
	return m
}

// restoreHostPaths removes what the run added to hostPaths and returns the
// number of paths it could not remove.
func restoreHostPaths(before map[string]bool) int {
	n := 0
	for i := len(hostPaths) - 1; i >= 0; i-- {
		p := hostPaths[i]
		if before[p] || !exists(p) {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			logf("LEFTOVER: %s: %v", p, err)
			n++
		}
	}
	return n
}
