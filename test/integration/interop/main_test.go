// Package interop_test runs berth-runtime under real container engines: podman (through
// conmon, `--runtime <path>`) and Debian's dockerd (through containerd and
// containerd-shim-runc-v2, `--add-runtime berth=<path>`). It is issue acceptance 2.
//
// Every test has its own podman store or its own dockerd (with the containerd it starts) in a
// temporary directory, its own cgroup parent nested under the test process's own cgroups, no
// network (`--network none`, dockerd without bridge and iptables), and it removes the
// processes, mounts, cgroups and directories it made. Images are made locally from
// busybox-static (`podman import` / `docker import` of a tarball): no registry is needed.
//
// TestMain builds bin/berth-runtime into a temporary directory. Environment:
//
//	BERTH_INTEROP_RUNTIME=/usr/sbin/runc  test another runtime instead (sanity of the harness)
//	BERTH_INTEROP_TRACE=1                 run the runtime through a wrapper that logs every
//	                                      invocation's argv (printed when a test fails)
//
// The tests need root; they skip with a message when not root or when a tool is missing.
package interop_test

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"berth/test/engine"
)

var (
	// skipAll, when set, is why every test skips (not root, no runtime).
	skipAll string
	// runtimePath is the OCI runtime under test (the built berth-runtime by default).
	runtimePath string
	// runtimeLog, with BERTH_INTEROP_TRACE, is where the wrapper logs each invocation.
	runtimeLog string
	// runtimeStateRoot is the runtime's default --root (podman passes none), when known.
	runtimeStateRoot string
	// rootfsTar is a busybox root filesystem, for `podman import` / `docker import`.
	rootfsTar string
	// cgroupSkip, when set, is why tests that need a cgroup parent skip.
	cgroupSkip string
	// unlockHost releases the host-wide lock of the engine runs (engine.LockHost).
	unlockHost func()
	// hostSnapshot records which of the host paths the engines write to existed before.
	hostSnapshot engine.HostSnapshot
)

func TestMain(m *testing.M) {
	work, err := os.MkdirTemp("", "berth-interop-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(work)
		if err := setup(work); err != nil {
			fmt.Fprintln(os.Stderr, "interop: setup:", err)
			return 1
		}
		if hostSnapshot != nil {
			defer func() {
				for _, err := range hostSnapshot.Restore() {
					fmt.Fprintf(os.Stderr, "interop: left %v\n", err)
				}
				unlockHost()
			}()
		}
		return m.Run()
	}()
	os.Exit(code)
}

func setup(work string) error {
	if os.Geteuid() != 0 {
		skipAll = "interop tests need root (podman and dockerd run rootful here)"
		return nil
	}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		skipAll = "busybox not found (apt-get install busybox-static)"
		return nil
	}
	if err := checkStatic(busybox); err != nil {
		skipAll = err.Error() + " (apt-get install busybox-static)"
		return nil
	}
	if p := os.Getenv("BERTH_INTEROP_RUNTIME"); p != "" {
		if runtimePath, err = exec.LookPath(p); err != nil {
			return fmt.Errorf("BERTH_INTEROP_RUNTIME: %w", err)
		}
		if runtimePath, err = filepath.Abs(runtimePath); err != nil {
			return err
		}
	} else if runtimePath, err = buildRuntime(work); err != nil {
		return err
	}
	switch filepath.Base(runtimePath) {
	case "berth-runtime":
		runtimeStateRoot = "/run/berth-runtime"
	case "runc":
		runtimeStateRoot = "/run/runc"
	}
	if os.Getenv("BERTH_INTEROP_TRACE") != "" {
		runtimeLog = filepath.Join(work, "runtime-argv.log")
		wrapper := filepath.Join(work, "runtime-wrapper")
		script := fmt.Sprintf("#!/bin/sh\n{ printf '%%s pid %%s:' \"$(date +%%T.%%N)\" \"$$\"; printf ' %%s' \"$@\"; echo; } >> '%s'\nexec '%s' \"$@\"\n", runtimeLog, runtimePath)
		if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
			return err
		}
		runtimePath = wrapper
	}
	rootfsTar = filepath.Join(work, "rootfs.tar")
	if err := writeRootfsTar(rootfsTar, busybox); err != nil {
		return fmt.Errorf("rootfs tarball: %w", err)
	}
	if _, err := engine.CgroupBase(); err != nil {
		cgroupSkip = "cgroups: " + err.Error()
	}
	// The engines share fixed host paths with other runs that start them, and each run's
	// Restore must see the state from before any run.
	if unlockHost, err = engine.LockHost(func() {
		fmt.Fprintln(os.Stderr, "interop: waiting for another run of the engine tests to finish")
	}); err != nil {
		return err
	}
	hostSnapshot = engine.SnapshotHostPaths()
	return nil
}

// buildRuntime builds ./cmd/berth-runtime of the module that contains this package.
func buildRuntime(work string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	out := filepath.Join(work, "bin")
	cmd := exec.Command(goBin, "build", "-o", out+"/", "./cmd/berth-runtime")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/berth-runtime: %v\n%s", err, b)
	}
	return filepath.Join(out, "berth-runtime"), nil
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the test directory")
		}
		dir = parent
	}
}

func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked", path)
		}
	}
	return nil
}

// writeRootfsTar writes a root filesystem with busybox and its applet links, plus the files
// the engines expect (/etc/passwd, /etc/group, mount points).
func writeRootfsTar(dst, busybox string) error {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return err
	}
	list, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return fmt.Errorf("busybox --list: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data))}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, d := range []string{"bin", "dev", "etc", "proc", "sys", "root", "run", "var"} {
		if err := dir(d, 0o755); err != nil {
			return err
		}
	}
	if err := dir("tmp", 0o1777); err != nil {
		return err
	}
	if err := file("bin/busybox", 0o755, bin); err != nil {
		return err
	}
	applets := strings.Fields(string(list))
	sort.Strings(applets)
	for _, a := range applets {
		if a == "busybox" || strings.Contains(a, "/") {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777}); err != nil {
			return err
		}
	}
	if err := file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")); err != nil {
		return err
	}
	if err := file("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n")); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return os.WriteFile(dst, buf.Bytes(), 0o644)
}

// skipUnlessReady skips the test when the environment cannot run it.
func skipUnlessReady(t *testing.T, tools ...string) {
	t.Helper()
	if skipAll != "" {
		t.Skip(skipAll)
	}
	if cgroupSkip != "" {
		t.Skip(cgroupSkip)
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found in PATH: %v", tool, err)
		}
	}
}

// dumpRuntimeLog prints the runtime invocations (BERTH_INTEROP_TRACE) when t failed.
func dumpRuntimeLog(t *testing.T, since int64) {
	if runtimeLog == "" || !t.Failed() {
		return
	}
	b, err := os.ReadFile(runtimeLog)
	if err != nil || int64(len(b)) < since {
		return
	}
	t.Logf("runtime invocations:\n%s", b[since:])
}

func runtimeLogSize() int64 {
	if runtimeLog == "" {
		return 0
	}
	fi, err := os.Stat(runtimeLog)
	if err != nil {
		return 0
	}
	return fi.Size()
}
