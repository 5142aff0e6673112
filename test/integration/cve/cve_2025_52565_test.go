package cve_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"berth/test/bundle"
)

// CVE-2025-52565: runc bind-mounted the container's pty onto /dev/console by path. With /dev not
// a fresh tmpfs the image controls /dev/console: a symlink there (or a racing swap) redirected the
// bind, e.g. onto /proc/sysrq-trigger, or bound a protected file where the container could write
// it. berth creates /dev/console without following symlinks, refuses a symlink there, and binds
// the pty through its fd. The test never writes to the console or to /proc/sysrq-trigger.
func TestCVE_2025_52565_DevConsoleSymlink(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(t *testing.T, console string)
		link  bool
	}{
		{"symlink-sysrq", func(t *testing.T, p string) { symlink(t, "/proc/sysrq-trigger", p) }, true},
		{"symlink-sysrq-relative", func(t *testing.T, p string) { symlink(t, "../proc/sysrq-trigger", p) }, true},
		{"symlink-core-pattern", func(t *testing.T, p string) { symlink(t, "/proc/sys/kernel/core_pattern", p) }, true},
		{"symlink-dangling", func(t *testing.T, p string) { symlink(t, "/nonexistent/console", p) }, true},
		{"regular-file", func(t *testing.T, p string) { writeFile(t, p, "") }, false},
		{"missing", func(t *testing.T, p string) {}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRT(t)
			b := newBundle(t, withoutDevTmpfs(), bundle.WithTerminal(true), bundle.WithArgs("sleep", "3600"))
			console := filepath.Join(b.Rootfs, "dev", "console")
			c.setup(t, console)
			linkBefore, _ := os.Readlink(console)
			sock := consoleSocket(t)
			id := containerID("cve-2025-52565")
			r.prepare(b, id)
			hostBefore := mountsUnder(t, "/proc")
			res := r.run("run", "-d", "--console-socket", sock, "--bundle", b.Dir, id)
			if d := diffMounts(hostBefore, mountsUnder(t, "/proc")); d != "" {
				t.Errorf("the host's /proc mounts changed: %s", d)
			}
			if c.link {
				if l, err := os.Readlink(console); err != nil || l != linkBefore {
					t.Errorf("rootfs/dev/console was changed: %q -> %q (%v)", linkBefore, l, err)
				}
			}
			if res.Err != nil {
				if !c.link {
					t.Fatalf("a terminal container with a non-symlink /dev/console failed: %v", res)
				}
				// (whether the error is clear is TestCVE_2019_16884's business)
				t.Logf("refused: %s", strings.TrimSpace(res.Stderr))
				return
			}
			// It runs: look at the container from inside (no terminal for this process).
			out := r.run("exec", id, "sh", "-c", "exec 2>&1; stat -c 'CONSOLE %F %t' /dev/console; stat -c 'SYSRQ %F %t' /proc/sysrq-trigger; stat -c 'CORE %F %t' /proc/sys/kernel/core_pattern; grep -E ' /proc/sysrq-trigger | /proc/sys/kernel/core_pattern | /dev/console ' /proc/self/mountinfo; exit 0")
			if out.Err != nil {
				t.Fatalf("exec: %v", out)
			}
			t.Logf("container view:\n%s", out.Stdout)
			if _, err := os.Stat("/proc/sysrq-trigger"); err == nil {
				if !strings.Contains(out.Stdout, "SYSRQ regular empty file 0\n") {
					t.Errorf("/proc/sysrq-trigger in the container is not procfs's file: %q", lookupLines(out.Stdout, "SYSRQ"))
				}
			} else if strings.Contains(out.Stdout, "SYSRQ ") {
				// no CONFIG_MAGIC_SYSRQ: there is nothing at /proc/sysrq-trigger, unless a mount
				t.Errorf("/proc/sysrq-trigger exists in the container but not on the host: %q", lookupLines(out.Stdout, "SYSRQ"))
			}
			if !strings.Contains(out.Stdout, "CORE regular empty file 0\n") {
				t.Errorf("/proc/sys/kernel/core_pattern in the container is not procfs's file: %q", lookupLines(out.Stdout, "CORE"))
			}
			for _, l := range lookupLines(out.Stdout, " - ") {
				if (strings.Contains(l, " /proc/sysrq-trigger ") || strings.Contains(l, " /proc/sys/kernel/core_pattern ")) && !strings.Contains(l, " - proc ") {
					t.Errorf("something other than procfs is mounted on a protected /proc file: %s", l)
				}
			}
			if c.link {
				// the symlink was not followed: the pty is not behind it, and it is still a symlink
				if !strings.Contains(out.Stdout, "CONSOLE symbolic link") {
					t.Errorf("/dev/console is no longer the image's symlink: %q", lookupLines(out.Stdout, "CONSOLE"))
				}
			} else if !strings.Contains(out.Stdout, "CONSOLE character special file 88\n") {
				// pty slaves are character devices of major 136 (0x88)
				t.Errorf("/dev/console is not the container's pty: %q", lookupLines(out.Stdout, "CONSOLE"))
			}
		})
	}
}

// consoleSocket listens on a unix socket for the pty master the runtime sends (and keeps it
// open until the test ends).
func consoleSocket(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "berth-cve-console-")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "console.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var fds []int
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := l.AcceptUnix()
			if err != nil {
				return
			}
			conn.SetDeadline(time.Now().Add(30 * time.Second))
			buf := make([]byte, 256)
			oob := make([]byte, unix.CmsgSpace(4*4))
			_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
			if err == nil {
				if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
					for _, m := range msgs {
						if got, err := unix.ParseUnixRights(&m); err == nil {
							mu.Lock()
							fds = append(fds, got...)
							mu.Unlock()
						}
					}
				}
			}
			conn.Close()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		for _, fd := range fds {
			unix.Close(fd)
		}
		mu.Unlock()
		os.RemoveAll(dir)
	})
	return p
}
