package cve_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"berth/test/bundle"
)

// CVE-2025-52881: runc wrote sysctls (and LSM labels) by path under the container's /proc, so a
// /proc prepared by the image, over-mounted, or reached through a shared mount could redirect
// the write to another file, e.g. a host-wide sysctl. berth writes sysctls through a verified
// fd of the host's procfs with RESOLVE_BENEATH|NO_SYMLINKS|NO_XDEV, before any container mount.
// Whatever the setup, the value must land in the container's network namespace only, never in
// the host's sysctl or wherever an over-mount points.

const ipForward = "/proc/sys/net/ipv4/ip_forward"

func TestCVE_2025_52881_SysctlRedirect(t *testing.T) {
	need(t)
	hostBefore := readTrim(t, ipForward)
	want := "1"
	if hostBefore == "1" {
		want = "0"
	}
	script := "echo STARTED; echo \"IPFWD $(cat " + ipForward + ")\""
	newSysctlBundle := func(t *testing.T) *bundle.Bundle {
		return newBundle(t, bundle.WithArgs("sh", "-c", script), bundle.WithSpec(func(s *specs.Spec) {
			s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": want}
		}))
	}
	checkHost := func(t *testing.T) {
		t.Helper()
		if got := readTrim(t, ipForward); got != hostBefore {
			t.Fatalf("the host's %s changed: %s -> %s", ipForward, hostBefore, got)
		}
	}
	checkContainer := func(t *testing.T, res result) {
		t.Helper()
		if !strings.Contains(res.Stdout, "IPFWD "+want+"\n") {
			t.Errorf("the container's ip_forward is not %s: %v", want, res)
		}
	}

	t.Run("plain", func(t *testing.T) {
		r := newRT(t)
		b := newSysctlBundle(t)
		res := r.runBundle(b, containerID("cve-2025-52881"))
		checkHost(t)
		if res.Err != nil {
			t.Fatalf("run: %v", res)
		}
		checkContainer(t, res)
	})

	// The image's own /proc holds a fake sysctl tree: it must be neither written nor read.
	t.Run("fake-proc-in-rootfs", func(t *testing.T) {
		r := newRT(t)
		b := newSysctlBundle(t)
		fake := filepath.Join(b.Rootfs, ipForward)
		writeFile(t, fake, "fake\n")
		res := r.runBundle(b, containerID("cve-2025-52881"))
		checkHost(t)
		if got := readTrim(t, fake); got != "fake" {
			t.Errorf("the rootfs's fake %s was written: %q", ipForward, got)
		}
		if res.Err != nil {
			t.Fatalf("run: %v", res)
		}
		checkContainer(t, res)
	})

	// rootfs/proc is a shared mount whose peer is a host directory: nothing the runtime mounts
	// there may propagate to the host.
	t.Run("shared-proc-mount", func(t *testing.T) {
		r := newRT(t)
		b := newSysctlBundle(t)
		peer := t.TempDir()
		proc := filepath.Join(b.Rootfs, "proc")
		mountT(t, peer, peer, "", unix.MS_BIND)
		mountT(t, "", peer, "", unix.MS_SHARED)
		mountT(t, peer, proc, "", unix.MS_BIND)
		writeFile(t, filepath.Join(peer, "sys/net/ipv4/ip_forward"), "fake\n")
		before := mountsUnder(t, peer)
		res := r.runBundle(b, containerID("cve-2025-52881"))
		checkHost(t)
		if d := diffMounts(before, mountsUnder(t, peer)); d != "" {
			t.Errorf("mounts propagated to the host through the shared /proc: %s", d)
		}
		if got := readTrim(t, filepath.Join(peer, "sys/net/ipv4/ip_forward")); got != "fake" {
			t.Errorf("the shared /proc's fake ip_forward was written: %q", got)
		}
		if res.Err != nil {
			t.Fatalf("run: %v", res)
		}
		checkContainer(t, res)
	})

	// In the runtime's own mount namespace something is mounted over the sysctl tree (here a
	// directory holding a harmless regular file; in the attack, another sysctl): the write must
	// not follow the over-mount. (The mount is over /proc/sys: a mount on a file inside
	// /proc/sys/net would not even be seen from the container's network namespace, whose
	// dentries are its own.)
	for _, over := range []string{"/proc/sys", "/proc/sys/net/ipv4/ip_forward"} {
		t.Run("host-proc-overmounted"+strings.ReplaceAll(over, "/", "-"), func(t *testing.T) {
			r := newRT(t)
			b := newSysctlBundle(t)
			if err := b.Save(); err != nil {
				t.Fatal(err)
			}
			src := t.TempDir()
			redirect := filepath.Join(src, "net/ipv4/ip_forward")
			writeFile(t, redirect, "redirect-target\n")
			if over == ipForward {
				src = redirect
			}
			id := containerID("cve-2025-52881")
			r.cleanup(id)
			res := runInMountNS(t, `mount --bind "$1" "$2" && exec "$3" --root "$4" run --bundle "$5" "$6"`,
				src, over, runtimeBin, r.root, b.Dir, id)
			checkHost(t)
			if got := readTrim(t, redirect); got != "redirect-target" {
				t.Errorf("the sysctl write followed the mount over %s: the redirect target now holds %q", over, got)
			}
			if res.Err != nil {
				t.Logf("refused: %s", strings.TrimSpace(res.Stderr))
				return
			}
			checkContainer(t, res)
		})
	}
}

func readTrim(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

// mountT mounts and unmounts (lazily) at the end of the test.
func mountT(t *testing.T, src, dst, fstype string, flags uintptr) {
	t.Helper()
	if err := unix.Mount(src, dst, fstype, flags, ""); err != nil {
		t.Fatalf("mount %s on %s: %v", src, dst, err)
	}
	if flags&unix.MS_BIND != 0 {
		t.Cleanup(func() {
			if err := unix.Unmount(dst, unix.MNT_DETACH); err != nil {
				t.Errorf("umount %s: %v", dst, err)
			}
		})
	}
}

// runInMountNS runs a shell script in a new private mount namespace (it ends with the
// namespace).
func runInMountNS(t *testing.T, script string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	errf, err := os.Create(filepath.Join(dir, "err"))
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	cmd := exec.CommandContext(ctx, "/bin/sh", append([]string{"-c", script, "sh"}, args...)...)
	cmd.Stdout, cmd.Stderr = out, errf
	cmd.WaitDelay = 5 * time.Second
	// Go makes / recursively private in the new namespace
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	res := result{Err: cmd.Run()}
	o, _ := os.ReadFile(out.Name())
	e, _ := os.ReadFile(errf.Name())
	res.Stdout, res.Stderr = string(o), string(e)
	return res
}
