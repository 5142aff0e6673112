package cve_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth/test/bundle"
)

// CVE-2019-16884 let a malicious image replace /proc with a symlink so that runc mounted procfs
// elsewhere (and wrote its AppArmor label into a fake /proc). There is no AppArmor here; the
// rule that remains is that a proc (or sysfs) mount whose destination goes through a symlink is
// refused with a clear error, instead of landing where the symlink points.
func TestCVE_2019_16884_ProcMountThroughSymlink(t *testing.T) {
	cases := []struct {
		name, dest, link, target string
	}{
		{"proc-absolute", "/proc", "proc", "/evil"},
		{"proc-relative", "/proc", "proc", "evil"},
		{"proc-dotdot", "/proc", "proc", "../../../evil"},
		{"sys-absolute", "/sys", "sys", "/evil"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRT(t)
			// No masked or read-only paths and no cgroup mount below /sys: their own symlink
			// checks would refuse this rootfs too, and hide a mount that followed the symlink.
			b := newBundle(t, bundle.WithArgs("sh", "-c", "echo STARTED; grep -E ' /evil ' /proc/self/mountinfo"),
				bundle.WithoutMount("/sys/fs/cgroup"),
				bundle.WithSpec(func(s *specs.Spec) { s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = nil, nil }))
			link := filepath.Join(b.Rootfs, c.link)
			if err := os.Remove(link); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(filepath.Join(b.Rootfs, "evil"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(c.target, link); err != nil {
				t.Fatal(err)
			}
			if err := b.Save(); err != nil {
				t.Fatal(err)
			}
			// create and run must both refuse, and say why (a few times: the error path
			// races with the runtime's side of the setup)
			for i := 0; i < 5; i++ {
				id := containerID("cve-2019-16884")
				r.cleanup(id)
				created := r.run("create", "--bundle", b.Dir, id)
				ran := r.runBundle(b, containerID("cve-2019-16884"))
				for _, res := range []result{created, ran} {
					if res.Err == nil || strings.Contains(res.Stdout, "STARTED") {
						t.Fatalf("%s mount through the symlink %s -> %s was not refused: %v", c.dest, c.dest, c.target, res)
					}
				}
				for what, res := range map[string]result{"create": created, "run": ran} {
					msg := res.Stderr
					if !strings.Contains(msg, c.dest) || !(strings.Contains(msg, "symbolic link") || strings.Contains(msg, "symlink")) {
						t.Errorf("%s: the error does not say that %s is a symlink: %q", what, c.dest, msg)
					} else if i == 0 {
						t.Logf("%s refused: %s", what, strings.TrimSpace(msg))
					}
				}
			}
			// nothing was created or mounted at the symlink's target
			if ents, err := os.ReadDir(filepath.Join(b.Rootfs, "evil")); err != nil || len(ents) != 0 {
				t.Errorf("rootfs/evil changed: %v %v", ents, err)
			}
			if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
				t.Errorf("the symlink %s was replaced: %v %v", link, fi, err)
			}
		})
	}
}
