package bundle

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func readSpec(t *testing.T, b *Bundle) *specs.Spec {
	t.Helper()
	data, err := os.ReadFile(b.ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

func TestCreateRootfs(t *testing.T) {
	dir := t.TempDir()
	b, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	if b.Rootfs != filepath.Join(dir, "rootfs") || b.Dir != dir {
		t.Fatalf("paths: %+v", b)
	}
	fi, err := os.Stat(filepath.Join(b.Rootfs, "bin/busybox"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o755 || !fi.Mode().IsRegular() {
		t.Errorf("busybox mode %v", fi.Mode())
	}
	for _, a := range []string{"sh", "true", "httpd", "sleep", "cat", "id"} {
		target, err := os.Readlink(filepath.Join(b.Rootfs, "bin", a))
		if err != nil || target != "busybox" {
			t.Errorf("/bin/%s: %q %v", a, target, err)
		}
	}
	st, err := os.Stat(filepath.Join(b.Rootfs, "tmp"))
	if err != nil || st.Mode()&os.ModeSticky == 0 || st.Mode().Perm() != 0o777 {
		t.Errorf("/tmp: %v %v", st.Mode(), err)
	}
	pw, _ := os.ReadFile(filepath.Join(b.Rootfs, "etc/passwd"))
	gr, _ := os.ReadFile(filepath.Join(b.Rootfs, "etc/group"))
	for _, want := range []string{"root:x:0:0:", "nobody:x:65534:65534:"} {
		if !strings.Contains(string(pw), want) {
			t.Errorf("passwd lacks %q:\n%s", want, pw)
		}
	}
	for _, want := range []string{"root:x:0:", "nobody:x:65534:"} {
		if !strings.Contains(string(gr), want) {
			t.Errorf("group lacks %q:\n%s", want, gr)
		}
	}
	for _, d := range []string{"proc", "sys", "dev", "etc", "root"} {
		if fi, err := os.Stat(filepath.Join(b.Rootfs, d)); err != nil || !fi.IsDir() {
			t.Errorf("/%s: %v", d, err)
		}
	}
}

func TestDefaultConfig(t *testing.T) {
	b, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	got := readSpec(t, b)
	want := DefaultSpec()
	want.Linux.CgroupsPath = CgroupParent() + "/" + b.ID
	if !reflect.DeepEqual(got, want) {
		t.Errorf("config.json differs from DefaultSpec:\n%+v\n%+v", got, want)
	}
	if len(b.ID) != 16 {
		t.Errorf("ID %q", b.ID)
	}
	b2, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if b2.ID == b.ID {
		t.Error("IDs not unique")
	}
}

// TestMatchesRuncSpec compares DefaultSpec with `runc spec` (ociVersion aside).
func TestMatchesRuncSpec(t *testing.T) {
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("runc not installed")
	}
	dir := t.TempDir()
	cmd := exec.Command(runc, "spec")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v\n%s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var runcSpec specs.Spec
	if err := json.Unmarshal(data, &runcSpec); err != nil {
		t.Fatal(err)
	}
	ours := DefaultSpec()
	runcSpec.Version, ours.Version = "", ""
	a, _ := json.MarshalIndent(runcSpec, "", " ")
	b, _ := json.MarshalIndent(ours, "", " ")
	if !bytes.Equal(a, b) {
		// Newer runc releases add masked paths; report, don't hide.
		t.Errorf("DefaultSpec differs from `runc spec`:\nrunc:\n%s\nours:\n%s", a, b)
	}
}

func TestOptions(t *testing.T) {
	b, err := Create(t.TempDir(),
		WithID("fixed-id"),
		WithArgs("/bin/true", "x"),
		WithTerminal(false),
		WithReadonlyRootfs(false),
		WithHostname("h"),
		WithEnv("TERM=dumb", "A=b"),
		WithoutNamespace(specs.NetworkNamespace, specs.IPCNamespace),
		WithNamespace(specs.UserNamespace, ""),
		WithNamespace(specs.UTSNamespace, "/proc/1/ns/uts"),
		WithMounts(specs.Mount{Destination: "/data", Type: "tmpfs", Source: "tmpfs"}),
		WithoutMount("/dev/mqueue"),
		WithFile("etc/motd", "hi\n"),
		WithSpec(func(s *specs.Spec) { s.Process.Cwd = "/tmp" }),
	)
	if err != nil {
		t.Fatal(err)
	}
	s := readSpec(t, b)
	if b.ID != "fixed-id" || s.Linux.CgroupsPath != CgroupParent()+"/fixed-id" {
		t.Errorf("id %q cgroupsPath %q", b.ID, s.Linux.CgroupsPath)
	}
	if !reflect.DeepEqual(s.Process.Args, []string{"/bin/true", "x"}) || s.Process.Terminal || s.Root.Readonly ||
		s.Hostname != "h" || s.Process.Cwd != "/tmp" {
		t.Errorf("process/root: %+v %+v %q", s.Process, s.Root, s.Hostname)
	}
	wantEnv := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=dumb", "A=b"}
	if !reflect.DeepEqual(s.Process.Env, wantEnv) {
		t.Errorf("env %q", s.Process.Env)
	}
	wantNS := []specs.LinuxNamespace{
		{Type: specs.PIDNamespace}, {Type: specs.UTSNamespace, Path: "/proc/1/ns/uts"},
		{Type: specs.MountNamespace}, {Type: specs.UserNamespace},
	}
	if !reflect.DeepEqual(s.Linux.Namespaces, wantNS) {
		t.Errorf("namespaces %+v", s.Linux.Namespaces)
	}
	last := s.Mounts[len(s.Mounts)-1]
	if last.Destination != "/data" || len(s.Mounts) != 7 {
		t.Errorf("mounts %+v", s.Mounts)
	}
	for _, m := range s.Mounts {
		if m.Destination == "/dev/mqueue" {
			t.Error("/dev/mqueue not removed")
		}
	}
	if motd, err := os.ReadFile(filepath.Join(b.Rootfs, "etc/motd")); err != nil || string(motd) != "hi\n" {
		t.Errorf("motd %q %v", motd, err)
	}
	// Save after editing Spec.
	b.Spec.Hostname = "other"
	if err := b.Save(); err != nil {
		t.Fatal(err)
	}
	if readSpec(t, b).Hostname != "other" {
		t.Error("Save did not rewrite config.json")
	}
	// Cgroups path can be cleared.
	b3, err := Create(t.TempDir(), WithCgroupsPath(""))
	if err != nil || b3.Spec.Linux.CgroupsPath != "" {
		t.Errorf("WithCgroupsPath(\"\"): %v %q", err, b3.Spec.Linux.CgroupsPath)
	}
}

func TestCgroupParentEnv(t *testing.T) {
	t.Setenv(CgroupParentEnv, "berth-test-run-42")
	b, err := Create(t.TempDir(), WithID("x"))
	if err != nil {
		t.Fatal(err)
	}
	if b.Spec.Linux.CgroupsPath != "berth-test-run-42/x" {
		t.Errorf("cgroupsPath %q", b.Spec.Linux.CgroupsPath)
	}
	t.Setenv(CgroupParentEnv, "")
	if CgroupParent() != DefaultCgroupParent {
		t.Errorf("CgroupParent() = %q", CgroupParent())
	}
}

func TestDynamicBusyboxRejected(t *testing.T) {
	if _, err := os.Stat("/bin/ls"); err != nil {
		t.Skip("no /bin/ls")
	}
	if err := checkStatic("/bin/ls"); err == nil {
		t.Skip("/bin/ls is static here")
	}
	_, err := Create(t.TempDir(), WithBusybox("/bin/ls"))
	if err == nil || !strings.Contains(err.Error(), "dynamically linked") {
		t.Fatalf("want dynamic-link error, got %v", err)
	}
}

func TestForTest(t *testing.T) {
	b := ForTest(t, WithArgs("/bin/true"))
	if _, err := os.Stat(b.ConfigPath()); err != nil {
		t.Fatal(err)
	}
	dirs, err := b.CgroupDirs()
	if err != nil || len(dirs) != 0 {
		t.Errorf("fresh bundle has cgroups %v %v", dirs, err)
	}
}

func TestCgroupMounts(t *testing.T) {
	ms, err := CgroupMounts()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Skip("no cgroup hierarchy visible")
	}
	for _, m := range ms {
		if !strings.HasPrefix(m.Own, m.Mountpoint) {
			t.Errorf("%+v: own cgroup outside mount", m)
		}
		if _, err := os.Stat(filepath.Join(m.Own, "cgroup.procs")); err != nil {
			t.Errorf("%+v: %v", m, err)
		}
	}
	// The root of every hierarchy exists, so an absolute "/" resolves everywhere.
	dirs, err := CgroupDirs("/")
	if err != nil || len(dirs) != len(ms) {
		t.Errorf("CgroupDirs(/) = %v, %v; mounts %d", dirs, err, len(ms))
	}
}

func TestUnescape(t *testing.T) {
	if got := UnescapeMountinfo(`/a\040b\134c\0`); got != `/a b\c\0` {
		t.Errorf("got %q", got)
	}
}

// TestRunsUnderRunc runs the default bundle with runc, as root only.
func TestRunsUnderRunc(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("runc not installed")
	}
	b := ForTest(t, WithTerminal(false), WithArgs("/bin/sh", "-c", "id -un; cat /etc/hostname 2>/dev/null; hostname"))
	root := t.TempDir()
	cmd := exec.Command(runc, "--root", root, "run", "--bundle", b.Dir, b.ID)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("runc run: %v\n%s", err, out)
	}
	if string(out) != "root\nrunc\n" {
		t.Errorf("output %q", out)
	}
	if dirs, _ := b.CgroupDirs(); len(dirs) != 0 {
		t.Errorf("runc left cgroups %v", dirs)
	}
}

func BenchmarkCreate(b *testing.B) {
	for b.Loop() {
		if _, err := Create(b.TempDir()); err != nil {
			b.Fatal(err)
		}
	}
}
