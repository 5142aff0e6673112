package cve_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth/test/bundle"
)

// CVE-2019-19921 and CVE-2023-27561: a bind mount whose destination in the rootfs is a symlink
// (made by the image, or by another container through a shared volume) must not be able to
// cover /proc: runc checked the /proc rule on the spec's destination only, then followed the
// symlink. berth refuses mounts over /proc except for a few files; that rule must hold for the
// destination the mount really lands on. Symlinks pointing out of the rootfs must resolve inside
// it (never onto a host path).

func TestCVE_2019_19921_BindThroughSymlinkIntoProc(t *testing.T) {
	for _, c := range []struct{ name, target string }{
		{"abs-proc-self-attr", "/proc/self/attr"},
		{"rel-proc", "../proc"},
		{"abs-proc-sys", "/proc/sys"},
		{"abs-proc-sys-kernel", "/proc/sys/kernel"},
		{"rel-proc-self", "../proc/self"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRT(t)
			src, marker := markerDir(t)
			b := newBundle(t, bundle.WithMounts(specs.Mount{Destination: "/mnt/x", Type: "bind", Source: src, Options: []string{"rbind", "rw"}}),
				bundle.WithArgs("sh", "-c", "echo STARTED; cat /proc/self/mountinfo; ls -la /mnt/ /proc/self/attr/ /proc/sys/kernel/ | head -50; cat /proc/1/attr/marker /proc/sys/marker /proc/sys/kernel/marker /proc/marker /proc/self/marker 2>&1; exit 0"))
			mkSymlink(t, b, "mnt/x", c.target)
			hostBefore := mountsUnder(t, "/proc")
			res := r.runBundle(b, containerID("cve-2019-19921"))
			if d := diffMounts(hostBefore, mountsUnder(t, "/proc")); d != "" {
				t.Errorf("the host's /proc mounts changed: %s", d)
			}
			if res.Err != nil {
				t.Logf("refused: %s", strings.TrimSpace(res.Stderr))
				return
			}
			// It ran: the bind must not cover anything in the container's procfs.
			for _, l := range lookupLines(res.Stdout, " - ") {
				f := strings.Fields(l)
				if len(f) > 4 && (f[4] == "/proc" || strings.HasPrefix(f[4], "/proc/")) && strings.Contains(l, " - ") {
					fstype := strings.Fields(strings.SplitN(l, " - ", 2)[1])[0]
					if fstype != "proc" && fstype != "tmpfs" && !strings.Contains(l, " /dev/null ") && !isMaskOrRO(f[4]) {
						t.Errorf("a %s mount covers %s in the container (bind of %s through /mnt/x -> %s): %s", fstype, f[4], src, c.target, l)
					}
				}
			}
			if strings.Contains(res.Stdout, marker) {
				t.Errorf("the bind through /mnt/x -> %s landed in the container's /proc (the marker is readable there):\n%s", c.target, res.Stdout)
			}
		})
	}
}

func TestCVE_2019_19921_SymlinkOutOfRootfs(t *testing.T) {
	for _, c := range []struct{ name, target, inRoot string }{
		{"abs-etc", "/etc", "/etc"},
		{"dotdot", "../../../../..", ""}, // clamped to the rootfs's root: covered, not visible
		{"dotdot-etc", "../../../../../etc", "/etc"},
		{"abs-host-dir", "", ""}, // target: a host directory by its absolute host path
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRT(t)
			src, marker := markerDir(t)
			hostDir := t.TempDir() // a host directory outside the rootfs
			target, inRoot := c.target, c.inRoot
			if target == "" {
				target, inRoot = hostDir, hostDir
			}
			check := inRoot
			if inRoot == "" {
				inRoot = "/"
			}
			b := newBundle(t, bundle.WithMounts(specs.Mount{Destination: "/mnt/x", Type: "bind", Source: src, Options: []string{"rbind", "rw"}}),
				bundle.WithArgs("sh", "-c", "echo STARTED; cat "+filepath.Join(inRoot, "marker")+"; touch "+filepath.Join(inRoot, "written-by-container")+"; exit 0"))
			if c.target == "" {
				// the symlink's target exists inside the rootfs too, so the mount can land there
				if err := os.MkdirAll(filepath.Join(b.Rootfs, hostDir), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			mkSymlink(t, b, "mnt/x", target)
			etcBefore := listDir(t, "/etc")
			// (only mounts that could be ours: other processes on the host mount things too)
			relevant := func() []mountInfo {
				var res []mountInfo
				for _, m := range readMountInfo(t, "self") {
					for _, p := range []string{"/etc", hostDir, b.Dir, src} {
						if m.Point == p || strings.HasPrefix(m.Point, p+"/") || strings.HasPrefix(m.Root, src) {
							res = append(res, m)
							break
						}
					}
				}
				return res
			}
			hostBefore := relevant()
			res := r.runBundle(b, containerID("cve-2019-19921-out"))
			if d := diffMounts(hostBefore, relevant()); d != "" {
				t.Errorf("the host's mounts changed: %s", d)
			}
			if _, err := os.Stat("/etc/marker"); err == nil {
				t.Errorf("the bind landed on the host's /etc")
			}
			if got := listDir(t, "/etc"); got != etcBefore {
				t.Errorf("the host's /etc changed")
			}
			if ents := listDir(t, hostDir); ents != "" {
				t.Errorf("the host directory %s changed: %s", hostDir, ents)
			}
			if res.Err != nil {
				t.Logf("refused: %v", res)
				return
			}
			// it ran: the bind landed where the symlink resolves inside the rootfs
			if check == "" {
				return
			}
			if !strings.Contains(res.Stdout, marker) {
				t.Errorf("the bind through /mnt/x -> %s is not at %s in the container: %v", target, inRoot, res)
			}
			if _, err := os.Stat(filepath.Join(src, "written-by-container")); err != nil {
				t.Errorf("the container's write through %s did not reach the bind source: %v", inRoot, err)
			}
		})
	}
}

// markerDir makes a host directory to bind-mount, holding a file "marker" with unique content.
func markerDir(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	marker := "bind-marker-" + randomHex(8)
	if err := os.WriteFile(filepath.Join(dir, "marker"), []byte(marker+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, marker
}

// mkSymlink makes rootfs/rel a symlink to target (parents created).
func mkSymlink(t *testing.T, b *bundle.Bundle, rel, target string) {
	t.Helper()
	p := filepath.Join(b.Rootfs, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

func listDir(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return strings.Join(names, " ")
}

// diffMounts describes mounts present in after but not in before.
func diffMounts(before, after []mountInfo) string {
	seen := map[mountInfo]int{}
	for _, m := range before {
		seen[m]++
	}
	var added []string
	for _, m := range after {
		if seen[m] > 0 {
			seen[m]--
			continue
		}
		added = append(added, m.Point+" ("+m.FSType+" "+m.Root+")")
	}
	return strings.Join(added, ", ")
}

// isMaskOrRO reports whether p is one of the default spec's masked or read-only paths (bind
// mounts of /dev/null or of /proc itself, which are expected over /proc).
func isMaskOrRO(p string) bool {
	s := bundle.DefaultSpec()
	for _, m := range append(s.Linux.MaskedPaths, s.Linux.ReadonlyPaths...) {
		if m == p {
			return true
		}
	}
	return false
}
