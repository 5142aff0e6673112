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
// (--data-root/--exec-root/socket/pidfile, no bridge, no iptables), both set up by
// test/engine. No container runs. At
// its end a test stops the dockerd it started (by its PID), resets its podman store, runs
// berth's store Check, and fails if a mount or a process under its directory is left.
//
// The engines write a few fixed host paths even with private roots (/etc/docker/key.json,
// /run/docker, the blob info cache of containers/image in /var/lib/containers/cache): those
// that did not exist before the run are removed after it. Runs of this package, of
// test/integration/interop and of test/bench/images, which drive the same engines, are
// serialized by a host-wide lock (test/engine has both).
//
// The tests need root and podman, docker.io, skopeo, umoci, busybox-static, GNU tar, and
// bzip2, xz-utils and zstd for the compressed archives (hack/install-deps.sh installs them);
// a missing tool fails the test with the package to install.
package images_test

import (
	"fmt"
	"os"
	"testing"

	"berth/test/engine"
)

// notRoot, when set, is why every test skips.
var notRoot string

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		notRoot = "the image round-trip tests need root (rootful podman and dockerd, overlay mounts)"
		os.Exit(m.Run())
	}
	unlock, err := engine.LockHost(func() {
		fmt.Fprintln(os.Stderr, "images: waiting for another run of the engine tests to finish")
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
	before := engine.SnapshotHostPaths()
	code := m.Run()
	for _, err := range before.Restore() {
		fmt.Fprintf(os.Stderr, "images: left %v\n", err)
	}
	unlock()
	os.Exit(code)
}
