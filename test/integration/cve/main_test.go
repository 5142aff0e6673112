// Package cve_test holds regression tests for runc's container-escape CVEs, run against the
// berth-runtime binary as root. Each CVE has its own file; this one builds the binaries and holds
// the shared helpers.
//
// TestMain builds ./cmd/berth-runtime (or uses $BERTH_RUNTIME, to check a deliberately weakened
// build) and the static attacker helper in testdata/cvehelper. Without root every test skips.
package cve_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"berth/test/bundle"
)

// RuntimeEnv names an environment variable with the berth-runtime binary to test instead of
// building ./cmd/berth-runtime.
const RuntimeEnv = "BERTH_RUNTIME"

var (
	runtimeBin string // the berth-runtime under test
	cleanupBin string // a copy of it made before any test ran, for delete -f
	helperBin  string // static build of testdata/cvehelper
	setupErr   error  // why the binaries are missing (root only)
	isRoot     = os.Geteuid() == 0
)

func TestMain(m *testing.M) {
	code := run(m)
	bundle.RemoveCgroupParent()
	os.Exit(code)
}

func run(m *testing.M) int {
	if !isRoot {
		return m.Run() // every test skips
	}
	dir, err := os.MkdirTemp("", "berth-cve-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	runtimeBin = os.Getenv(RuntimeEnv)
	if runtimeBin == "" {
		// A private copy: the CVE-2019-5736 test must be able to notice (and survive) a
		// container overwriting it.
		runtimeBin = filepath.Join(dir, "berth-runtime")
		// Static, as `make build` ships it.
		if setupErr = goBuild(runtimeBin, "berth/cmd/berth-runtime", "CGO_ENABLED=0"); setupErr != nil {
			return report(setupErr)
		}
	} else if runtimeBin, err = filepath.Abs(runtimeBin); err != nil {
		return report(err)
	}
	// delete -f uses a pristine copy: a failing CVE-2019-5736 test leaves the binary under
	// test overwritten, and its containers must still be removed.
	cleanupBin = filepath.Join(dir, "berth-runtime-cleanup")
	if setupErr = copyBinary(runtimeBin, cleanupBin); setupErr != nil {
		return report(setupErr)
	}
	helperBin = filepath.Join(dir, "cvehelper")
	if setupErr = goBuild(helperBin, "./testdata/cvehelper", "CGO_ENABLED=0"); setupErr != nil {
		return report(setupErr)
	}
	return m.Run()
}

func report(err error) int {
	fmt.Fprintln(os.Stderr, "cve tests:", err)
	return 1
}

func copyBinary(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o755)
}

func goBuild(out, pkg string, env ...string) error {
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = "/usr/local/go/bin/go"
	}
	cmd := exec.Command(gobin, "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), env...)
	if o, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, o)
	}
	return nil
}

// need skips the test unless it runs as root with the binaries built.
func need(t *testing.T) {
	t.Helper()
	if !isRoot {
		t.Skip("needs root")
	}
	if setupErr != nil {
		t.Fatal(setupErr)
	}
}

// rt drives one berth-runtime under a per-test state root.
type rt struct {
	t    *testing.T
	root string
}

func newRT(t *testing.T) *rt {
	t.Helper()
	need(t)
	root, err := os.MkdirTemp("", "berth-cve-state-")
	if err != nil {
		t.Fatal(err)
	}
	r := &rt{t: t, root: root}
	t.Cleanup(func() {
		// Anything still registered is force-deleted by the per-container cleanups, which run
		// before this one (LIFO).
		os.RemoveAll(root)
	})
	return r
}

// result is what one runtime command did.
type result struct {
	Stdout, Stderr string
	Err            error
}

func (r result) String() string {
	return fmt.Sprintf("err=%v stdout=%q stderr=%q", r.Err, r.Stdout, r.Stderr)
}

// run runs berth-runtime --root <root> args... with stdio on files, never pipes (a detached
// container keeps its stdio open and would hang a pipe reader), and a timeout.
func (r *rt) run(args ...string) result {
	r.t.Helper()
	return r.runFull(runtimeBin, nil, nil, args...)
}

// runExtra is run with extra files passed as fds 3, 4, ... (for --preserve-fds).
func (r *rt) runExtra(extra []*os.File, args ...string) result {
	r.t.Helper()
	return r.runFull(runtimeBin, nil, extra, args...)
}

func (r *rt) runBin(bin string, env []string, args ...string) result {
	r.t.Helper()
	return r.runFull(bin, env, nil, args...)
}

func (r *rt) runFull(bin string, env []string, extra []*os.File, args ...string) result {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := os.CreateTemp("", "berth-cve-out-")
	if err != nil {
		r.t.Fatal(err)
	}
	defer os.Remove(out.Name())
	defer out.Close()
	errf, err := os.CreateTemp("", "berth-cve-err-")
	if err != nil {
		r.t.Fatal(err)
	}
	defer os.Remove(errf.Name())
	defer errf.Close()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--root", r.root}, args...)...)
	cmd.Stdout, cmd.Stderr = out, errf
	cmd.Env = append(os.Environ(), env...)
	cmd.ExtraFiles = extra
	cmd.WaitDelay = 5 * time.Second
	res := result{Err: cmd.Run()}
	o, _ := os.ReadFile(out.Name())
	e, _ := os.ReadFile(errf.Name())
	res.Stdout, res.Stderr = string(o), string(e)
	if ctx.Err() != nil {
		res.Err = fmt.Errorf("timed out: %w", ctx.Err())
	}
	return res
}

// cleanup registers delete -f of a container at the end of the test.
func (r *rt) cleanup(id string) {
	r.t.Cleanup(func() {
		if res := r.runBin(cleanupBin, nil, "delete", "-f", id); res.Err != nil && !strings.Contains(res.Stderr, "does not exist") && !strings.Contains(res.Stderr, "not exist") {
			r.t.Logf("delete -f %s: %v", id, res)
		}
	})
}

// prepare saves the bundle's config.json and registers delete -f of container id at the end of
// the test.
func (r *rt) prepare(b *bundle.Bundle, id string) {
	r.t.Helper()
	if err := b.Save(); err != nil {
		r.t.Fatal(err)
	}
	r.cleanup(id)
}

// runBundle runs the bundle's container to completion (foreground) and returns what it printed.
func (r *rt) runBundle(b *bundle.Bundle, id string) result {
	r.t.Helper()
	r.prepare(b, id)
	return r.run("run", "--bundle", b.Dir, id)
}

// start creates and starts a detached container and returns its init's pid.
func (r *rt) start(b *bundle.Bundle, id string) int {
	r.t.Helper()
	r.prepare(b, id)
	pidFile := filepath.Join(b.Dir, id+".pid")
	if res := r.run("run", "-d", "--pid-file", pidFile, "--bundle", b.Dir, id); res.Err != nil {
		r.t.Fatalf("run -d %s: %v", id, res)
	}
	pid := readPid(r.t, pidFile)
	waitExec(r.t, pid)
	return pid
}

// waitExec waits until pid has exec'd its program: "start" returns once the init has been let
// go, possibly before its execve, when it still is a copy of the runtime.
func waitExec(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil {
			t.Fatalf("process %d: %v", pid, err)
		}
		if c := strings.TrimSpace(string(comm)); c != filepath.Base(runtimeBin) && !strings.HasPrefix(filepath.Base(runtimeBin), c) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d did not exec within 10s", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// execDetached runs "exec -d --pid-file F args..." (args: [flags] id command...) and returns the
// new process's pid.
func (r *rt) execDetached(args ...string) int {
	r.t.Helper()
	pidFile := filepath.Join(r.root, fmt.Sprintf("exec-%d.pid", time.Now().UnixNano()))
	full := append([]string{"exec", "-d", "--pid-file", pidFile}, args...)
	if res := r.run(full...); res.Err != nil {
		r.t.Fatalf("exec -d %v: %v", args, res)
	}
	pid := readPid(r.t, pidFile)
	waitExec(r.t, pid)
	return pid
}

func readPid(t *testing.T, file string) int {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatalf("pid file %s: %v", file, err)
	}
	return pid
}

// newBundle makes a busybox bundle with no terminal, a writable rootfs and the given options.
func newBundle(t *testing.T, opts ...bundle.Option) *bundle.Bundle {
	t.Helper()
	base := []bundle.Option{bundle.WithTerminal(false), bundle.WithReadonlyRootfs(false),
		// runc's default spec has ambient capabilities without inheritable ones: a warning
		bundle.WithSpec(func(s *specs.Spec) { s.Process.Capabilities.Ambient = nil })}
	return bundle.ForTest(t, append(base, opts...)...)
}

func randomHex(n int) string {
	buf := make([]byte, n)
	if _, err := rand.Read(buf); err != nil {
		panic(err)
	}
	return hex.EncodeToString(buf)
}

// containerID returns a fresh container id with a readable prefix.
func containerID(prefix string) string { return prefix + "-" + randomHex(6) }

func sha256File(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// hostMarker creates a file outside any rootfs with unguessable content and returns its path and
// content: a container that can read it has escaped.
func hostMarker(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	content := "host-marker-" + randomHex(12)
	p := filepath.Join(dir, "marker")
	if err := os.WriteFile(p, []byte(content+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p, content
}

// mountInfo is one line of /proc/<pid>/mountinfo.
type mountInfo struct {
	Root, Point, FSType, Source string
}

func readMountInfo(t *testing.T, pid string) []mountInfo {
	t.Helper()
	f, err := os.Open("/proc/" + pid + "/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var res []mountInfo
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		a, b := strings.Fields(pre), strings.Fields(post)
		if len(a) < 5 || len(b) < 2 {
			continue
		}
		res = append(res, mountInfo{Root: bundle.UnescapeMountinfo(a[3]), Point: bundle.UnescapeMountinfo(a[4]), FSType: b[0], Source: b[1]})
	}
	return res
}

// mountsUnder returns the mounts of the test's own (host) mount namespace at or below dir.
func mountsUnder(t *testing.T, dir string) []mountInfo {
	t.Helper()
	var res []mountInfo
	for _, m := range readMountInfo(t, "self") {
		if m.Point == dir || strings.HasPrefix(m.Point, dir+"/") {
			res = append(res, m)
		}
	}
	return res
}

// capSet returns a capability set of /proc/<pid>/status ("CapInh", "CapAmb", ...).
func capSet(t *testing.T, pid int, field string) uint64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == field {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatalf("%s: %q: %v", field, v, err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// openFDs lists the fd numbers open in a process (read from the host's /proc).
func openFDs(t *testing.T, pid int) []int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	var fds []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err == nil {
			fds = append(fds, n)
		}
	}
	return fds
}

// fdTargets describes a process's open fds for error messages.
func fdTargets(pid int) string {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	var parts []string
	for _, e := range ents {
		l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		parts = append(parts, e.Name()+"->"+l)
	}
	return strings.Join(parts, " ")
}

// waitFile waits until a file exists and is non-empty, and returns its content.
func waitFile(t *testing.T, p string, timeout time.Duration) []byte {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		data, err := os.ReadFile(p)
		if err == nil && len(data) > 0 {
			return data
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within %v (last error %v)", p, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readJSON waits for a JSON file written by the helper and decodes it.
func readJSON(t *testing.T, p string, v any) {
	t.Helper()
	data := waitFile(t, p, 30*time.Second)
	// the helper writes to a temporary name and renames: the content is complete
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v: %q", p, err, data)
	}
}

// installHelper copies the static attacker helper into the rootfs at /cvehelper.
func installHelper(t *testing.T, b *bundle.Bundle) {
	t.Helper()
	copyFile(t, helperBin, filepath.Join(b.Rootfs, "cvehelper"), 0o755)
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dst, mode); err != nil {
		t.Fatal(err)
	}
}

// withCaps sets the bounding, effective and permitted sets to names, the inheritable set to inh
// and the ambient set to amb.
func withCaps(names, inh, amb []string) bundle.Option {
	return bundle.WithSpec(func(s *specs.Spec) {
		s.Process.Capabilities = &specs.LinuxCapabilities{
			Bounding: names, Effective: names, Permitted: names, Inheritable: inh, Ambient: amb,
		}
	})
}

// withoutDevTmpfs removes the /dev tmpfs: the rootfs's own /dev (under the image's control) is
// used, with devpts, shm and mqueue mounted into it.
func withoutDevTmpfs() bundle.Option { return bundle.WithoutMount("/dev") }

// isErrno reports whether an errno name reported by the helper is one of want.
func isErrno(got string, want ...unix.Errno) bool {
	for _, w := range want {
		if got == unix.ErrnoName(w) {
			return true
		}
	}
	return false
}

// lookupLines returns the lines of s that contain sub.
func lookupLines(s, sub string) []string {
	var res []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			res = append(res, l)
		}
	}
	return res
}
