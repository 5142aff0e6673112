package cve_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth/test/bundle"
)

// CVE-2025-31133: runc masked files by bind-mounting the container's /dev/null over them. With
// /dev not a fresh tmpfs, the image controls /dev/null: as a symlink to
// /proc/sys/kernel/core_pattern it turned a masked file into a writable core_pattern (a host
// escape through a core dump helper); deleted, it made runc skip the masking. berth binds the
// host's /dev/null, checked to be the 1:3 character device.
func TestCVE_2025_31133_MaskedPathsDevNullSwap(t *testing.T) {
	masked := existingMaskedFiles(t)
	corePattern, err := os.ReadFile("/proc/sys/kernel/core_pattern")
	if err != nil {
		t.Fatal(err)
	}
	// Stat each masked file and count its bytes; then try to rewrite core_pattern with its own
	// value (harmless whatever happens). Nothing else is written: not to the masked files, not
	// to /dev/null (the rootfs's may point at /proc/sysrq-trigger).
	var sb strings.Builder
	sb.WriteString("exec 2>&1\necho STARTED\n")
	for _, f := range masked {
		fmt.Fprintf(&sb, "echo \"MASK %s $(stat -c '%%F %%t:%%T' %s) $(cat %s | wc -c)\"\n", f, f, f)
	}
	sb.WriteString("cat /proc/sys/kernel/core_pattern > /tmp/cp\n")
	sb.WriteString("if cat /tmp/cp > /proc/sys/kernel/core_pattern; then echo CORE_PATTERN_WRITABLE; fi\n")
	sb.WriteString("stat -c 'DEVNULL %F' /dev/null\nexit 0\n")
	script := sb.String()

	for _, c := range []struct {
		name  string
		setup func(t *testing.T, devNull string)
	}{
		{"symlink-core-pattern", func(t *testing.T, p string) { symlink(t, "/proc/sys/kernel/core_pattern", p) }},
		{"symlink-relative", func(t *testing.T, p string) { symlink(t, "../proc/sys/kernel/core_pattern", p) }},
		{"symlink-sysrq", func(t *testing.T, p string) { symlink(t, "/proc/sysrq-trigger", p) }},
		{"regular-file", func(t *testing.T, p string) { writeFile(t, p, "not the null device\n") }},
		{"missing", func(t *testing.T, p string) {}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRT(t)
			b := newBundle(t, withoutDevTmpfs(), bundle.WithArgs("sh", "-c", script))
			c.setup(t, filepath.Join(b.Rootfs, "dev", "null"))
			res := r.runBundle(b, containerID("cve-2025-31133"))
			if after, _ := os.ReadFile("/proc/sys/kernel/core_pattern"); string(after) != string(corePattern) {
				t.Fatalf("the host's core_pattern changed: %q -> %q", corePattern, after)
			}
			if res.Err != nil || !strings.Contains(res.Stdout, "STARTED") {
				t.Fatalf("the container did not run (the host's /dev/null must be used, whatever the rootfs's is): %v", res)
			}
			for _, f := range masked {
				want := fmt.Sprintf("MASK %s character special file 1:3 0", f)
				if !strings.Contains(res.Stdout, want+"\n") {
					t.Errorf("%s is not masked with the null device: got %q, want %q", f, lookupLines(res.Stdout, "MASK "+f+" "), want)
				}
			}
			if strings.Contains(res.Stdout, "CORE_PATTERN_WRITABLE") {
				t.Errorf("/proc/sys/kernel/core_pattern is writable in the container")
			}
			t.Logf("%s", strings.Join(lookupLines(res.Stdout, "DEVNULL"), ""))
		})
	}
}

// existingMaskedFiles returns the default spec's masked paths that are files on this kernel.
func existingMaskedFiles(t *testing.T) []string {
	t.Helper()
	var res []string
	for _, p := range bundle.DefaultSpec().Linux.MaskedPaths {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && strings.HasPrefix(p, "/proc/") {
			res = append(res, p)
		}
	}
	if len(res) == 0 {
		t.Skip("none of the default masked /proc files exists on this kernel")
	}
	return res
}

func symlink(t *testing.T, target, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
