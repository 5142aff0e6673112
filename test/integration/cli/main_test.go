// Package cli_test proves the berth CLI against a real Engine API daemon: it builds
// bin/berth (cmd/berth) and drives it as a user would, comparing output and exit codes with
// what docker's CLI gives (foreground run and its exit code, run -d with logs, stop and rm,
// ps tables and templates, exec, inspect -f, images/tag/rmi, save/load, volumes, cp both
// ways, build, and run -it through a pseudo-terminal).
//
// The daemon is berthd: each test starts its own private one (berthd, through
// test/berthtest: its own data root, exec root and socket, its containers' cgroups under
// the run's parent, a leak check at the end of the test) and gets a busybox image made from
// the host's busybox-static (`berth import`). What berthd does not serve yet, build and user
// networks, is tested against a private dockerd (Debian's docker.io 20.10, API 1.41, set up
// by test/engine with a cgroup parent nested under the test process's own cgroups), started
// by the first test that needs it and shared: each test leaves it as it found it (its
// cleanup removes the containers, images, volumes and networks it made and fails when any is
// left). TestMain then stops dockerd by its PID, fails on processes, mounts or cgroups left
// behind, and removes the fixed host paths dockerd wrote that did not exist before. Runs of
// the engine tests are serialized by test/engine's host-wide lock.
//
// The tests need root, the docker CLI (berthtest drives berthd's start and cleanup with
// it), dockerd/containerd (docker.io), busybox-static and GNU tar; they skip when not root.
// BERTH_CLI names a prebuilt berth binary to test instead of building; BERTH_CLI_TEST_HOST
// names a running daemon to test against instead of private berthds (shared by the tests,
// which leave it as they found it).
package cli_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"berth/test/engine"
)

var (
	// skipAll, when set, is why every test skips.
	skipAll string
	// berthBin is the berth binary under test.
	berthBin string
	// work is the package's private directory.
	work string
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		skipAll = "the CLI tests need root (they run private berthds and a dockerd)"
		return m.Run()
	}
	var err error
	// Short: the dockerd socket path under it must fit in a unix socket address.
	if work, err = os.MkdirTemp("", "bcli"); err != nil {
		fmt.Fprintln(os.Stderr, "cli:", err)
		return 1
	}
	defer os.RemoveAll(work)
	if berthBin, err = buildBerth(work); err != nil {
		fmt.Fprintln(os.Stderr, "cli: build berth:", err)
		return 1
	}
	unlock, err := engine.LockHost(func() {
		fmt.Fprintln(os.Stderr, "cli: waiting for another run of the engine tests to finish")
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "cli:", err)
		return 1
	}
	defer unlock()
	before := engine.SnapshotHostPaths()
	code := m.Run()
	if problems := stopDaemons(); len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, "cli: cleanup:", p)
		}
		code = 1
	}
	for _, err := range before.Restore() {
		fmt.Fprintf(os.Stderr, "cli: left %v\n", err)
		code = 1
	}
	return code
}

// buildBerth builds ./cmd/berth into dir, or returns $BERTH_CLI.
func buildBerth(dir string) (string, error) {
	if p := os.Getenv("BERTH_CLI"); p != "" {
		return filepath.Abs(p)
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	out := filepath.Join(dir, "berth")
	cmd := exec.Command(goBin, "build", "-o", out, "./cmd/berth")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/berth: %v\n%s", err, b)
	}
	return out, nil
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

// requireTools skips the test when not root and fails it when a tool is missing.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	if skipAll != "" {
		t.Skip(skipAll)
	}
	packages := map[string]string{"dockerd": "docker.io", "containerd": "containerd", "busybox": "busybox-static", "tar": "tar"}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed: apt-get install %s: %v", tool, packages[tool], err)
		}
	}
}
