package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"berth/test/berthtest"
	"berth/test/engine"
)

// baseImage is the busybox image every test may use; a shared daemon's reset keeps it.
const baseImage = "busybox:berth-cli"

// testDaemon is a daemon the tests drive, as berth sees it.
type testDaemon struct {
	// Host is its address, for -H and BERTH_HOST.
	Host string
	// Env is the environment berth runs in against it.
	Env []string
	// baseID is the ID of baseImage.
	baseID string
	// stop stops a shared daemon and returns what was left behind.
	stop func() []string
	// bd is the private berthd (nil for a shared daemon): its network namespace is the host
	// its published ports are on.
	bd *berthtest.Daemon
}

// newTestDaemon is the daemon at host, as berth sees it.
func newTestDaemon(host string) *testDaemon {
	return &testDaemon{
		Host: host,
		Env:  engine.BaseEnv("BERTH_HOST="+host, "BERTH_CONFIG="+filepath.Join(work, "config")),
	}
}

// berthd is a private berthd for one test (test/berthtest: its own data root, exec root and
// socket, its containers' cgroups under the run's parent) with baseImage in it. At the end
// of the test berthtest's cleanup removes the containers and volumes left, stops it and
// fails the test on anything left behind. With $BERTH_CLI_TEST_HOST, the daemon there
// instead, shared by the tests, which remove what they made.
func berthd(t *testing.T) *testDaemon {
	t.Helper()
	requireTools(t, "busybox", "tar")
	if host := os.Getenv("BERTH_CLI_TEST_HOST"); host != "" {
		return hostDaemon.get(t, func() (*testDaemon, error) { return useDaemon(t, host) })
	}
	bd := berthtest.Start(t, berthtest.Options{})
	d := newTestDaemon("unix://" + bd.Socket)
	d.bd = bd
	if err := d.importBase(t); err != nil {
		t.Fatalf("%v\nberthd log:\n%s", err, bd.LogTail(20))
	}
	return d
}

// dockerd is the package's private dockerd, for what berthd does not serve yet (build and
// user networks: those tests check berth's client side), started by the first test that
// needs it and stopped by TestMain. At the end of each test it removes what the test made.
func dockerd(t *testing.T) *testDaemon {
	t.Helper()
	requireTools(t, "dockerd", "containerd", "busybox", "tar")
	return privateDockerd.get(t, func() (*testDaemon, error) { return startDockerd(t) })
}

// sharedDaemon is a daemon that several tests drive in turn.
type sharedDaemon struct {
	once sync.Once
	d    *testDaemon
	err  error
}

var (
	privateDockerd sharedDaemon
	hostDaemon     sharedDaemon
)

// get starts the daemon on first use and resets it at the end of the test.
func (s *sharedDaemon) get(t *testing.T, start func() (*testDaemon, error)) *testDaemon {
	t.Helper()
	s.once.Do(func() { s.d, s.err = start() })
	if s.err != nil {
		t.Fatalf("daemon: %v", s.err)
	}
	if s.d == nil {
		t.Fatal("daemon: it did not start (see the first test's log)")
	}
	t.Cleanup(func() { s.d.reset(t) })
	return s.d
}

// stopDaemons stops the shared daemons that were started and lists what was left.
func stopDaemons() []string {
	var problems []string
	for _, s := range []*sharedDaemon{&privateDockerd, &hostDaemon} {
		if s.d != nil && s.d.stop != nil {
			problems = append(problems, s.d.stop()...)
		}
	}
	return problems
}

// startDockerd starts a private dockerd (test/engine) in the package's directory.
func startDockerd(t *testing.T) (*testDaemon, error) {
	cgp, err := engine.NewCgroupParent(fmt.Sprintf("berth-cli-%d", os.Getpid()))
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(work, "d")
	// WaitReady runs the CLI it is given: berth itself, with DOCKER_HOST set by engine.
	ed, err := engine.StartDockerd(engine.DockerdOptions{Dir: dir, Docker: berthBin, StorageDriver: "overlay2", CgroupParent: cgp.Path})
	if err != nil {
		cgp.Remove()
		return nil, fmt.Errorf("dockerd: %w", err)
	}
	d := newTestDaemon("unix://" + ed.Socket)
	d.stop = func() []string {
		var problems []string
		if out, err := d.quiet("ps", "-aq"); err == nil && strings.TrimSpace(out) != "" {
			problems = append(problems, "containers left: "+strings.Join(strings.Fields(out), " "))
			d.quiet(append([]string{"rm", "-f", "-v"}, strings.Fields(out)...)...)
		}
		if ed.Stop(40 * time.Second) {
			problems = append(problems, fmt.Sprintf("dockerd (pid %d) did not exit 40s after SIGTERM: killed it", ed.PID()))
		}
		for _, pid := range engine.AwaitProcessesGone(dir, 15*time.Second) {
			problems = append(problems, fmt.Sprintf("process %d left: %s: killed it", pid, engine.Cmdline(pid)))
			unix.Kill(pid, unix.SIGKILL)
		}
		if left, _ := engine.MountsUnder(dir); len(left) > 0 {
			problems = append(problems, fmt.Sprintf("mounts left: %q", left))
		}
		if _, err := ed.Remove(); err != nil {
			problems = append(problems, fmt.Sprintf("remove %s: %v", dir, err))
		}
		return append(problems, cgp.Remove()...)
	}
	if v, err := ed.WaitReady(context.Background(), 60*time.Second, "version", "--format", "{{.Server.Version}}"); err != nil {
		problems := d.stop()
		return nil, fmt.Errorf("not ready: %v %q\n%s", err, problems, ed.LogTail(4000))
	} else {
		t.Logf("dockerd %s ready on %s", strings.TrimSpace(v), d.Host)
	}
	if err := d.importBase(t); err != nil {
		d.stop()
		return nil, err
	}
	return d, nil
}

// useDaemon drives an already running daemon at host.
func useDaemon(t *testing.T, host string) (*testDaemon, error) {
	d := newTestDaemon(host)
	if err := d.importBase(t); err != nil {
		return nil, err
	}
	d.stop = func() []string {
		if _, err := d.quiet("rmi", baseImage); err != nil {
			return []string{fmt.Sprintf("remove %s: %v", baseImage, err)}
		}
		return nil
	}
	return d, nil
}

// importBase makes baseImage from the host's busybox (`berth import -`).
func (d *testDaemon) importBase(t *testing.T) error {
	r := d.berthIn(t, bytes.NewReader(berthtest.BusyboxTar(t)), "import", "-", baseImage)
	if r.code != 0 {
		return fmt.Errorf("berth import: %v", r)
	}
	d.baseID = strings.TrimSpace(r.stdout)
	return nil
}

// reset removes the containers, images (but baseImage), volumes and networks a test made,
// and fails the test when any is left.
func (d *testDaemon) reset(t *testing.T) {
	t.Helper()
	list := func(args ...string) []string {
		out, err := d.quiet(args...)
		if err != nil {
			t.Errorf("berth %s: %v", strings.Join(args, " "), err)
		}
		return strings.Fields(out)
	}
	if ids := list("ps", "-aq", "--no-trunc"); len(ids) > 0 {
		d.quiet(append([]string{"rm", "-f", "-v"}, ids...)...)
	}
	var imgs []string
	for _, id := range list("images", "-aq", "--no-trunc") {
		if id != d.baseID {
			imgs = append(imgs, id)
		}
	}
	if len(imgs) > 0 {
		d.quiet(append([]string{"rmi", "-f"}, imgs...)...)
	}
	// Other tags of the base image.
	for _, ref := range list("images", "--format", "{{.Repository}}:{{.Tag}}") {
		if ref != baseImage && ref != "<none>:<none>" {
			d.quiet("rmi", ref)
		}
	}
	if vols := list("volume", "ls", "-q"); len(vols) > 0 {
		d.quiet(append([]string{"volume", "rm", "-f"}, vols...)...)
	}
	d.quiet("network", "prune", "-f")

	if left := list("ps", "-aq"); len(left) > 0 {
		t.Errorf("containers left after the test: %q", left)
	}
	if left := list("images", "--format", "{{.Repository}}:{{.Tag}}"); len(left) != 1 || left[0] != baseImage {
		t.Errorf("images after the test: %q, want only %s", left, baseImage)
	}
	if left := list("volume", "ls", "-q"); len(left) > 0 {
		t.Errorf("volumes left after the test: %q", left)
	}
}
