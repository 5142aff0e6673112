// Package oci_test runs the specs internal/oci generates for Docker containers with
// berth-runtime, on busybox bundles made by berth/test/bundle, and checks from inside each
// container what Docker promises: capabilities, seccomp, no_new_privs, masked and read-only
// paths, a read-only rootfs, tmpfs mounts, users and groups from the image, cgroup limits,
// /dev/shm, --init as PID 1.
//
// The tests need root and a static busybox; without them they skip. TestMain builds
// ./cmd/berth-runtime (static, as `make build` ships it) unless $BERTH_RUNTIME_BIN names a
// binary. Every container is deleted and its cgroups checked for at the end of its test.
package oci_test

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"berth/internal/oci"
	"berth/test/bundle"
)

var (
	runtimeBin string // berth-runtime under test
	skipReason string
	setupErr   error
	stateRoot  string // --root of every command
)

// cmdTimeout bounds every berth-runtime invocation.
const cmdTimeout = 60 * time.Second

func TestMain(m *testing.M) {
	code := testMain(m)
	bundle.RemoveCgroupParent()
	os.Exit(code)
}

func testMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		skipReason = "needs root (run via hack/test.sh)"
		return m.Run()
	}
	bb := os.Getenv(bundle.BusyboxEnv)
	if bb == "" {
		bb = "/bin/busybox"
	}
	if _, err := os.Stat(bb); err != nil {
		skipReason = fmt.Sprintf("no static busybox (%v)", err)
		return m.Run()
	}
	// /tmp is slow on our VMs for the bundles' symlinks: default to /var/tmp.
	base := os.Getenv("TMPDIR")
	if base == "" {
		base = "/var/tmp"
	}
	tmp, err := os.MkdirTemp(base, "berth-oci-test.")
	if err != nil {
		setupErr = err
		return m.Run()
	}
	defer os.RemoveAll(tmp)
	os.Setenv("TMPDIR", tmp)
	stateRoot = filepath.Join(tmp, "state")
	if bin := os.Getenv("BERTH_RUNTIME_BIN"); bin != "" {
		runtimeBin, setupErr = exec.LookPath(bin)
		return m.Run()
	}
	runtimeBin = filepath.Join(tmp, "berth-runtime")
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = "/usr/local/go/bin/go"
	}
	build := exec.Command(goTool, "build", "-o", runtimeBin, "berth/cmd/berth-runtime")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		setupErr = fmt.Errorf("go build berth/cmd/berth-runtime: %v\n%s", err, out)
	}
	return m.Run()
}

func requireSetup(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if setupErr != nil {
		t.Fatal(setupErr)
	}
}

// result is the outcome of one container run.
type result struct {
	Stdout, Stderr string
	Code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %q\nstderr: %q", r.Code, r.Stdout, r.Stderr)
}

// berth runs berth-runtime --root <stateRoot> args... with stdout and stderr in files (a
// container inheriting them cannot make the call hang).
func berth(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(runtimeBin, append([]string{"--root", stateRoot}, args...)...)
	outF, err := os.CreateTemp("", "stdout-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(outF.Name())
	defer outF.Close()
	errF, err := os.CreateTemp("", "stderr-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(errF.Name())
	defer errF.Close()
	cmd.Stdout, cmd.Stderr = outF, errF
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var timedOut atomic.Bool
	timer := time.AfterFunc(cmdTimeout, func() { timedOut.Store(true); cmd.Process.Kill() })
	cmd.Wait()
	timer.Stop()
	out, _ := os.ReadFile(outF.Name())
	errOut, _ := os.ReadFile(errF.Name())
	r := result{Stdout: string(out), Stderr: string(errOut), Code: cmd.ProcessState.ExitCode()}
	if timedOut.Load() {
		t.Fatalf("berth-runtime %s: killed after %v: %s", strings.Join(args, " "), cmdTimeout, r)
	}
	return r
}

// ctr is a Docker container to be: its bundle and the generator's input.
type ctr struct {
	t  *testing.T
	b  *bundle.Bundle
	in oci.Input
}

// newCtr makes a busybox bundle (plus files) and an Input running script with sh -c, with
// Docker's defaults everywhere else. It registers a cleanup that deletes the container and
// checks that its cgroups are gone.
func newCtr(t *testing.T, script string, files ...bundle.Option) *ctr {
	t.Helper()
	requireSetup(t)
	b := bundle.ForTest(t, files...)
	c := &ctr{t: t, b: b, in: oci.Input{
		ID:          b.ID,
		Hostname:    b.ID[:12],
		Config:      &container.Config{Cmd: []string{"sh", "-c", script}, Env: []string{"PATH=/bin"}},
		HostConfig:  &container.HostConfig{},
		Rootfs:      b.Rootfs,
		CgroupsPath: b.Spec.Linux.CgroupsPath,
	}}
	t.Cleanup(c.cleanup)
	return c
}

func (c *ctr) cleanup() {
	r := berth(c.t, "delete", "--force", c.b.ID)
	if r.Code != 0 && !strings.Contains(r.Stderr, "does not exist") {
		c.t.Errorf("delete --force %s: %s", c.b.ID, r)
	}
	dirs, err := c.b.CgroupDirs()
	if err != nil {
		c.t.Errorf("cgroups of %s: %v", c.b.ID, err)
	}
	if len(dirs) > 0 {
		// give an exiting task a moment to leave the cgroup before calling it a leak
		time.Sleep(200 * time.Millisecond)
		if dirs, _ = c.b.CgroupDirs(); len(dirs) > 0 {
			c.t.Errorf("cgroups of container %s left: %v", c.b.ID, dirs)
		}
	}
}

// run generates the spec, writes it to the bundle and runs the container in the foreground.
func (c *ctr) run() result {
	c.t.Helper()
	spec, err := oci.Generate(c.in)
	if err != nil {
		c.t.Fatalf("Generate: %v", err)
	}
	c.b.Spec = spec
	if err := c.b.Save(); err != nil {
		c.t.Fatal(err)
	}
	return berth(c.t, "run", "--bundle", c.b.Dir, c.b.ID)
}

// runOK runs the container and fails the test unless it exits 0.
func (c *ctr) runOK() string {
	c.t.Helper()
	r := c.run()
	if r.Code != 0 {
		c.t.Fatalf("container failed: %s", r)
	}
	return r.Stdout
}

// lines splits output into trimmed lines.
func lines(s string) []string {
	return strings.Split(strings.TrimRight(s, "\n"), "\n")
}

// statusField returns a field of /proc/<pid>/status-formatted text.
func statusField(text, name string) string {
	for _, l := range strings.Split(text, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// initBinary returns a static init to mount at /sbin/docker-init: $BERTH_TEST_INIT, the repo's
// bin/berth-init, the host's docker-init (tini-static), or else (or with
// BERTH_TEST_INIT=stand-in) a shell script stand-in, run by the bundle's busybox sh, that runs
// its command as a child.
func initBinary(t *testing.T) string {
	t.Helper()
	env := os.Getenv("BERTH_TEST_INIT")
	if env != "stand-in" {
		candidates := []string{env, "/usr/bin/docker-init"}
		if wd, err := os.Getwd(); err == nil {
			candidates = slices.Insert(candidates, 1, filepath.Join(wd, "..", "..", "..", "bin", "berth-init"))
		}
		for _, p := range candidates {
			if p == "" || !isStatic(p) {
				continue
			}
			if real, err := filepath.EvalSymlinks(p); err == nil {
				return real
			}
		}
	}
	script := filepath.Join(t.TempDir(), "init.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n[ \"$1\" = -- ] && shift\n\"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return script
}

func isStatic(p string) bool {
	f, err := elf.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return false
		}
	}
	fi, err := os.Stat(p)
	return err == nil && fi.Mode()&0o111 != 0
}
