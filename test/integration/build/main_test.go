// Package build_test proves berth's Dockerfile builder (POST /build, internal/build) with the
// stock docker 28 CLI as the client, always in classic-builder mode (DOCKER_BUILDKIT=0, which
// sends the context to POST /build): issue 7's acceptance.
//
//   - TestMultiStage: a multi-stage Dockerfile compiles a static C program in a toolchain
//     stage (busybox plus the host's gcc, made locally) and copies it into a busybox and a
//     scratch stage; both images run it. A rebuild with no change is all cache hits; a
//     change to one copied file reruns only the steps from that COPY on.
//   - TestInstructions: every instruction's effect on the image config (docker image inspect)
//     or its filesystem (docker run ... cat).
//   - TestOptions: the build's own options (-f, -t, --label, --iidfile, -q, --target,
//     --no-cache, --network none, a Dockerfile on stdin), .dockerignore, and what a
//     successful build leaves (no container; on berth, no intermediate image).
//   - TestBadInput: a typo, a failing RUN, a missing or escaping COPY source, a COPY of a
//     symlink that points out of the context (followed inside the context only): the build
//     fails, the error names the Dockerfile line, and nothing is left behind (no container,
//     no image); a failing RUN's exit code is docker build's. Symlinks inside a copied
//     directory are copied as links, and no host file they name ends up in the image.
//
// Each top-level test has its own private daemon with a busybox image (CMD ["sh"], imported
// from the host's busybox-static), and runs its subtests in order against it; every subtest
// removes the containers and images it made. The top-level tests run in parallel.
//
// The daemon is a berthd (test/berthtest: own data root, exec root, socket and network
// namespace, leak checks at the end). With BERTH_BUILD_TEST_DOCKERD=1 it is a private Debian
// dockerd 20.10 (test/engine: no bridge, no iptables, containers under a cgroup parent nested
// in the test process's own cgroup) instead, to check the tests' expectations against
// Docker's own classic builder; what berth deliberately does differently (it removes a failed
// RUN's container, does not list per-step images in `images -a`, names the Dockerfile line in
// every error, and skips the stages the target does not need) is then not asserted, each
// place says so, and COPY --chmod, which dockerd 20.10's classic builder refuses, is skipped.
// Runs with dockerd take test/engine's host-wide lock and remove the fixed host paths dockerd
// wrote.
//
// The tests need root, the docker CLI, busybox-static, build-essential (TestMultiStage's
// toolchain image, imagetest.ToolchainTar) and, for BERTH_BUILD_TEST_DOCKERD=1, docker.io.
package build_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"berth/test/berthtest"
	"berth/test/engine"
)

// base is the busybox image (CMD ["sh"]) every daemon has.
const base = "busybox"

var (
	// skipAll, when set, is why every test skips.
	skipAll string
	// onDockerd: BERTH_BUILD_TEST_DOCKERD=1, the tests run against a private dockerd.
	onDockerd = os.Getenv("BERTH_BUILD_TEST_DOCKERD") == "1"
	// daemons numbers the private dockerds (their directories and cgroup parents).
	daemons atomic.Int32
)

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		skipAll = "the build tests need root (they run a private berthd or dockerd)"
		os.Exit(m.Run())
	}
	if !onDockerd {
		os.Exit(m.Run())
	}
	// dockerd writes fixed host paths even with private roots; runs of the engine tests
	// (interop, images, cli, this package) are serialized and each removes what it added.
	unlock, err := engine.LockHost(func() {
		fmt.Fprintln(os.Stderr, "build: waiting for another run of the engine tests to finish")
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
	before := engine.SnapshotHostPaths()
	code := m.Run()
	for _, err := range before.Restore() {
		fmt.Fprintf(os.Stderr, "build: left %v\n", err)
		code = 1
	}
	unlock()
	os.Exit(code)
}

// daemon is the engine under test, driven by the docker CLI with DOCKER_BUILDKIT=0.
type daemon struct {
	// name is "berthd" or "dockerd".
	name string
	cli  string
	env  []string
	// logTail is the end of the daemon's log, for failure messages.
	logTail func() string
}

// result is what one docker command did.
type result struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("docker %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// newDaemon starts the top-level test's private daemon with the busybox image; its cleanup
// stops it and checks that nothing is left.
func newDaemon(t *testing.T) *daemon {
	t.Helper()
	if skipAll != "" {
		t.Skip(skipAll)
	}
	if _, err := exec.LookPath("busybox"); err != nil {
		t.Fatalf("busybox is needed: apt-get install busybox-static: %v", err)
	}
	var d *daemon
	if onDockerd {
		d = startDockerd(t)
	} else {
		bd := berthtest.Start(t, berthtest.Options{})
		d = &daemon{
			name:    "berthd",
			cli:     bd.DockerCLI,
			env:     append(slices.Clone(bd.Env), "DOCKER_BUILDKIT=0"),
			logTail: func() string { return "berthd log:\n" + bd.LogTail(30) },
		}
	}
	d.importTar(t, berthtest.BusyboxTar(t), base, `CMD ["sh"]`)
	return d
}

// startDockerd starts a private dockerd (test/engine) for one top-level test, driven by the
// same docker 28 CLI as berthd; its cleanup removes what is left, stops it by its PID and
// fails on processes, mounts or cgroups left behind.
func startDockerd(t *testing.T) *daemon {
	t.Helper()
	for _, tool := range []string{"dockerd", "containerd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed for BERTH_BUILD_TEST_DOCKERD=1: apt-get install docker.io: %v", tool, err)
		}
	}
	cli := berthtest.Docker(t)
	n := daemons.Add(1)
	cgp, err := engine.NewCgroupParent(fmt.Sprintf("berth-build-%d-%d", os.Getpid(), n))
	if err != nil {
		t.Fatal(err)
	}
	// Short: the socket path under it must fit in a unix socket address.
	dir, err := os.MkdirTemp("/var/tmp", "bbd")
	if err != nil {
		t.Fatal(err)
	}
	ed, err := engine.StartDockerd(engine.DockerdOptions{Dir: dir, Docker: cli, StorageDriver: "overlay2", CgroupParent: cgp.Path})
	if err != nil {
		cgp.Remove()
		os.RemoveAll(dir)
		t.Fatalf("dockerd: %v", err)
	}
	d := &daemon{
		name:    "dockerd",
		cli:     cli,
		env:     append(slices.Clone(ed.Env), "DOCKER_BUILDKIT=0"),
		logTail: func() string { return ed.LogTail(3000) },
	}
	t.Cleanup(func() {
		if ids := strings.Fields(d.quiet("ps", "-aq", "--no-trunc")); len(ids) > 0 {
			t.Errorf("LEAK: containers left in dockerd: %q", ids)
			d.quiet(append([]string{"rm", "-f", "-v"}, ids...)...)
		}
		if ed.Stop(40 * time.Second) {
			t.Errorf("dockerd (pid %d) did not exit 40 s after SIGTERM: killed it", ed.PID())
		}
		for _, pid := range engine.AwaitProcessesGone(dir, 15*time.Second) {
			t.Errorf("LEAK: process %d (%s) still uses %s: killed it", pid, engine.Cmdline(pid), dir)
			unix.Kill(pid, unix.SIGKILL)
		}
		if left, _ := engine.MountsUnder(dir); len(left) > 0 {
			t.Errorf("LEAK: mounts left under %s: %q", dir, left)
		}
		if _, err := ed.Remove(); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
		for _, p := range cgp.Remove() {
			t.Errorf("LEAK: %s", p)
		}
	})
	v, err := ed.WaitReady(context.Background(), 60*time.Second, "version", "--format", "{{.Server.Version}}")
	if err != nil {
		t.Fatalf("dockerd: %v\n%s", err, ed.LogTail(4000))
	}
	t.Logf("dockerd %s ready", strings.TrimSpace(v))
	return d
}

// exec runs the docker CLI with stdin (nil: none).
func (d *daemon) exec(stdin []byte, args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.cli, args...)
	cmd.Env = d.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	r := result{args: args, code: 0}
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			r.code = ee.ExitCode()
		} else {
			r.code = -1
			errb.WriteString(err.Error())
		}
	}
	r.stdout, r.stderr = out.String(), errb.String()
	return r
}

// quiet runs docker and returns stdout, whatever the exit code (for cleanups).
func (d *daemon) quiet(args ...string) string {
	return d.exec(nil, args...).stdout
}

// run runs docker and logs the command.
func (d *daemon) run(t testing.TB, args ...string) result {
	t.Helper()
	r := d.exec(nil, args...)
	t.Logf("$ docker %s -> %d", strings.Join(args, " "), r.code)
	return r
}

// must runs docker, fails the test unless it exits 0, and returns stdout trimmed.
func (d *daemon) must(t testing.TB, args ...string) string {
	t.Helper()
	r := d.run(t, args...)
	if r.code != 0 {
		t.Fatalf("%v\n%s", r, d.logTail())
	}
	return strings.TrimSpace(r.stdout)
}

// importTar imports a root filesystem tarball as image name with one --change.
func (d *daemon) importTar(t testing.TB, tarball []byte, name, change string) {
	t.Helper()
	r := d.exec(tarball, "import", "--change", change, "-", name)
	if r.code != 0 {
		t.Fatalf("%v\n%s", r, d.logTail())
	}
}

// build runs `docker build args... ctx` (ctx may be "-" with stdin).
func (d *daemon) build(t testing.TB, stdin []byte, ctx string, args ...string) result {
	t.Helper()
	args = append(append([]string{"build"}, args...), ctx)
	r := d.exec(stdin, args...)
	t.Logf("$ docker %s -> %d", strings.Join(args, " "), r.code)
	return r
}

// mustBuild builds and fails the test unless the build succeeds; it returns the build's
// standard output.
func (d *daemon) mustBuild(t testing.TB, ctx string, args ...string) string {
	t.Helper()
	r := d.build(t, nil, ctx, args...)
	if r.code != 0 {
		t.Fatalf("%v\n%s", r, d.logTail())
	}
	return r.stdout
}

// failBuild builds and expects the build to fail.
func (d *daemon) failBuild(t testing.TB, stdin []byte, ctx string, args ...string) result {
	t.Helper()
	r := d.build(t, stdin, ctx, args...)
	if r.code == 0 {
		t.Fatalf("the build succeeded, want a failure\n%v", r)
	}
	t.Logf("the build failed as it should:\n%s", strings.TrimSpace(r.stderr))
	return r
}

// inspect is one --format of `docker image inspect`.
func (d *daemon) inspect(t testing.TB, image, format string) string {
	t.Helper()
	return d.must(t, "image", "inspect", "--format", format, image)
}

// runIn runs a command in a new container of image (no network) and returns its output.
func (d *daemon) runIn(t testing.TB, image string, cmd ...string) string {
	t.Helper()
	return d.must(t, append([]string{"run", "--rm", "--network", "none", image}, cmd...)...)
}

// cat is the content of a file in the image (trimmed).
func (d *daemon) cat(t testing.TB, image, path string) string {
	t.Helper()
	return d.runIn(t, image, "cat", path)
}

// fileOf is the content of a file in an image that may have no shell (a scratch image): it
// creates a container without starting it and copies the file out (`docker cp`, a tar).
func (d *daemon) fileOf(t testing.TB, image, path string) string {
	t.Helper()
	id := d.must(t, "create", "--network", "none", image, "/nonexistent")
	defer d.must(t, "rm", id)
	r := d.run(t, "cp", id+":"+path, "-")
	if r.code != 0 {
		t.Fatalf("%v", r)
	}
	files := untar(t, []byte(r.stdout))
	if len(files) != 1 {
		t.Fatalf("docker cp %s: %d files in the tar, want 1", path, len(files))
	}
	for _, v := range files {
		return v
	}
	return ""
}

// state is what the daemon has: containers, images (all, with intermediates) and tags
// (repository:tag, without the untagged images).
type state struct {
	containers, images, tags []string
}

func (d *daemon) state(t testing.TB) state {
	t.Helper()
	list := func(args ...string) []string {
		r := d.exec(nil, args...)
		if r.code != 0 {
			t.Fatalf("%v\n%s", r, d.logTail())
		}
		return sortedFields(r.stdout)
	}
	return state{
		containers: list("ps", "-aq", "--no-trunc"),
		images:     list("images", "-aq", "--no-trunc"),
		tags:       slices.DeleteFunc(list("images", "--format", "{{.Repository}}:{{.Tag}}"), func(s string) bool { return s == "<none>:<none>" }),
	}
}

func sortedFields(s string) []string {
	f := strings.Fields(s)
	slices.Sort(f)
	return slices.Compact(f)
}

// added is what is in b and not in a.
func added(a, b []string) []string {
	var out []string
	for _, x := range b {
		if !slices.Contains(a, x) {
			out = append(out, x)
		}
	}
	return out
}

// clean makes the subtest remove, when it ends, the containers, images and tags it made.
func (d *daemon) clean(t *testing.T) {
	t.Helper()
	before := d.state(t)
	t.Cleanup(func() {
		after := d.state(t)
		if ids := added(before.containers, after.containers); len(ids) > 0 {
			d.quiet(append([]string{"rm", "-f", "-v"}, ids...)...)
		}
		if tags := added(before.tags, after.tags); len(tags) > 0 {
			d.quiet(append([]string{"rmi", "-f"}, tags...)...)
		}
		// Children first: an image with children is not removed (dockerd's intermediate
		// images are parents of the later steps); a few passes remove the chain.
		for pass := 0; pass < 20; pass++ {
			ids := added(before.images, d.state(t).images)
			if len(ids) == 0 {
				return
			}
			d.quiet(append([]string{"rmi", "-f"}, ids...)...)
		}
		t.Errorf("images left after the test: %q", added(before.images, d.state(t).images))
	})
}

// nothingNew fails the test when the daemon has containers or images (with intermediates)
// that were not there before.
func (d *daemon) nothingNew(t testing.TB, before state, containers, images bool) {
	t.Helper()
	after := d.state(t)
	if c := added(before.containers, after.containers); containers && len(c) > 0 {
		t.Errorf("containers left after the failed build (docker ps -a): %q", c)
	}
	if i := added(before.images, after.images); images && len(i) > 0 {
		t.Errorf("images left after the failed build (docker images -a): %q", i)
	}
	if tg := added(before.tags, after.tags); len(tg) > 0 {
		t.Errorf("tags left after the failed build: %q", tg)
	}
}

// writeContext makes a build context directory with files (path: content; a path ending in
// "/" is a directory), in the test's temporary directory.
func writeContext(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ctx")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// dockerfile is a context with only a Dockerfile.
func dockerfile(t testing.TB, text string) string {
	t.Helper()
	return writeContext(t, map[string]string{"Dockerfile": text})
}

// equal fails the test when got is not want.
func equal(t testing.TB, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s: got %q, want %q", what, got, want)
	}
}

// lineRef reports whether an error message names Dockerfile line n ("Dockerfile:3",
// "line 3", ...).
func lineRef(msg string, n int) bool {
	return regexp.MustCompile(fmt.Sprintf(`(:|line )%d\b`, n)).MatchString(msg)
}

// untar is the regular files of a tarball: name -> content.
func untar(t testing.TB, b []byte) map[string]string {
	t.Helper()
	files := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatalf("read the tar: %v", err)
		}
		if h.Typeflag == tar.TypeReg {
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = string(data)
		}
	}
}

// step is one step of a classic build's output: "Step 3/9 : COPY a /b" and what follows.
type step struct {
	instruction string
	output      string
}

// cached reports whether the step was a cache hit.
func (s step) cached() bool { return strings.Contains(s.output, " ---> Using cache") }

var stepLine = regexp.MustCompile(`(?m)^Step \d+/\d+ : (.*)$`)

// steps splits a classic build's output into its steps.
func steps(out string) []step {
	var ss []step
	idx := stepLine.FindAllStringSubmatchIndex(out, -1)
	for i, m := range idx {
		end := len(out)
		if i+1 < len(idx) {
			end = idx[i+1][0]
		}
		ss = append(ss, step{instruction: out[m[2]:m[3]], output: out[m[1]:end]})
	}
	return ss
}
