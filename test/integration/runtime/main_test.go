// Package runtime_test holds user-level integration tests of berth-runtime: like runc's bats
// tests they drive the built binary as a subprocess against busybox bundles made by
// berth/test/bundle, and check the results from the host and from inside the containers.
//
// The tests need root. They run one at a time (they compare host-wide state such as
// /proc/self/mountinfo before and after). The test process makes itself a child subreaper, so
// that the init of a detached container (and anything else the runtime leaves behind) becomes
// its child: leftover processes are then found by parent pid, as a containerd shim would.
package runtime_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"berth/test/bundle"
)

var (
	// berthBin is the berth-runtime binary built by TestMain.
	berthBin string
	// skipReason, when set, skips every test (not root, no static busybox).
	skipReason string
	// setupErr fails every test (the binary did not build).
	setupErr error
	selfPid  = os.Getpid()
	// testTmp is the private TMPDIR of this test binary.
	testTmp string
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
		skipReason = "berth-runtime integration tests need root: run `go test` as root (e.g. via hack/test.sh)"
		return m.Run()
	}
	// Everything the tests make on disk goes below a private TMPDIR (so that host mounts of
	// ours can be told from those of other users of the machine). /tmp is slow for the
	// bundles' ~300 symlinks on our VMs (see hack/test.sh): default to /var/tmp.
	base := os.Getenv("TMPDIR")
	if base == "" {
		base = "/var/tmp"
	}
	tmp, err := os.MkdirTemp(base, "berth-rt-test.")
	if err != nil {
		setupErr = err
		return m.Run()
	}
	os.Setenv("TMPDIR", tmp)
	defer os.RemoveAll(tmp)
	testTmp = tmp
	bb := os.Getenv(bundle.BusyboxEnv)
	if bb == "" {
		bb = "/bin/busybox"
	}
	if _, err := os.Stat(bb); err != nil {
		skipReason = fmt.Sprintf("no static busybox (%v): install busybox-static or set $%s", err, bundle.BusyboxEnv)
		return m.Run()
	}
	// Before the reaper starts (see runTests): bundles run `busybox --list` once.
	if err := bundle.Prepare(bb); err != nil {
		setupErr = err
	}
	// $BERTH_RUNTIME_BIN runs the tests against another binary (e.g. runc, to check the
	// tests themselves) instead of building berth-runtime.
	if bin := os.Getenv("BERTH_RUNTIME_BIN"); bin != "" {
		if berthBin, err = exec.LookPath(bin); err != nil {
			setupErr = fmt.Errorf("$BERTH_RUNTIME_BIN: %w", err)
		}
		return runTests(m)
	}
	binDir, err := os.MkdirTemp("", "berth-runtime-bin.")
	if err != nil {
		setupErr = err
		return m.Run()
	}
	defer os.RemoveAll(binDir)
	berthBin = filepath.Join(binDir, "berth-runtime")
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = "/usr/local/go/bin/go"
	}
	build := exec.Command(goTool, "build", "-o", berthBin, "berth/cmd/berth-runtime")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // static, as `make build` ships it
	if out, err := build.CombinedOutput(); err != nil {
		setupErr = fmt.Errorf("go build berth/cmd/berth-runtime: %v\n%s", err, out)
		return m.Run()
	}
	return runTests(m)
}

func runTests(m *testing.M) int {
	// Orphans of the runtime (detached container inits, exec -d processes, anything leaked)
	// become our children.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		setupErr = fmt.Errorf("PR_SET_CHILD_SUBREAPER: %w", err)
	}
	// Reap them as they exit, as a shim would: the init of a pid namespace cannot finish
	// exiting while a process of its namespace whose parent is outside (an exec'd process) is
	// an unreaped zombie.
	go reaper()
	code := m.Run()
	reapOrphans()
	return code
}

// requireSetup skips or fails the test if TestMain could not prepare the binary.
func requireSetup(t testing.TB) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if setupErr != nil {
		t.Fatal(setupErr)
	}
}

// ---- processes we start, and orphans we inherit ----

var (
	trackMu sync.Mutex
	tracked = map[int]bool{} // pids of commands started through exec.Cmd, until waited for
)

func startTracked(cmd *exec.Cmd) error {
	trackMu.Lock()
	defer trackMu.Unlock()
	if err := cmd.Start(); err != nil {
		return err
	}
	tracked[cmd.Process.Pid] = true
	return nil
}

func waitTracked(cmd *exec.Cmd) error {
	err := cmd.Wait()
	trackMu.Lock()
	delete(tracked, cmd.Process.Pid)
	trackMu.Unlock()
	return err
}

// combinedOutput is cmd.CombinedOutput for helper commands (ip, ...): tracked, so that the
// orphan reaper does not reap them before cmd.Wait does.
func combinedOutput(cmd *exec.Cmd) ([]byte, error) {
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	if err := startTracked(cmd); err != nil {
		return nil, err
	}
	err := waitTracked(cmd)
	return b.Bytes(), err
}

// procInfo is what /proc/<pid>/stat says about a process.
type procInfo struct {
	pid, ppid int
	state     byte
	comm      string
}

func readProc(pid int) (procInfo, bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procInfo{}, false
	}
	s := string(data)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < 0 {
		return procInfo{}, false
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 2 {
		return procInfo{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	return procInfo{pid: pid, ppid: ppid, state: f[0][0], comm: s[open+1 : end]}, true
}

func allPids() []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, n)
		}
	}
	return pids
}

// reapOrphans waits for every zombie child of ours that no exec.Cmd is waiting for.
func reapOrphans() {
	trackMu.Lock()
	defer trackMu.Unlock()
	for _, pid := range allPids() {
		p, ok := readProc(pid)
		if !ok || p.ppid != selfPid || tracked[pid] || p.state != 'Z' {
			continue
		}
		var ws unix.WaitStatus
		unix.Wait4(pid, &ws, unix.WNOHANG, nil)
	}
}

func reaper() {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, unix.SIGCHLD)
	tick := time.NewTicker(100 * time.Millisecond)
	for {
		select {
		case <-sigs:
		case <-tick.C:
		}
		reapOrphans()
	}
}

// orphans lists live (non-zombie) children of ours that we did not start ourselves: processes
// the runtime left behind (container inits, exec'd processes, hooks...).
func orphans() []procInfo {
	reapOrphans()
	trackMu.Lock()
	defer trackMu.Unlock()
	var out []procInfo
	for _, pid := range allPids() {
		p, ok := readProc(pid)
		if ok && p.ppid == selfPid && !tracked[pid] && p.state != 'Z' {
			out = append(out, p)
		}
	}
	return out
}

// waitPidExit waits until pid (a child of ours or not) has exited, reaping it if it is our
// orphan. It reports false on timeout.
func waitPidExit(pid int, timeout time.Duration) bool {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return true // gone already
	}
	defer unix.Close(fd)
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, int(left/time.Millisecond)+1)
		if err == unix.EINTR {
			continue
		}
		if n > 0 {
			break
		}
	}
	reapOrphans()
	return true
}

// ---- running berth-runtime ----

// result is the outcome of one berth-runtime command.
type result struct {
	Args   []string
	Stdout string
	Stderr string
	Code   int // exit code; -1 if killed by a signal or not started
}

func (r result) String() string {
	return fmt.Sprintf("`berth-runtime %s` exit %d\nstdout: %q\nstderr: %q", strings.Join(r.Args, " "), r.Code, r.Stdout, r.Stderr)
}

// env is one runtime root (--root) used by one test.
type env struct {
	t    testing.TB
	root string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	requireSetup(t)
	return &env{t: t, root: filepath.Join(t.TempDir(), "state")}
}

// cmdOpt adjusts a berth-runtime command before it runs.
type cmdOpt func(*exec.Cmd)

func inDir(dir string) cmdOpt              { return func(c *exec.Cmd) { c.Dir = dir } }
func withStdin(r io.Reader) cmdOpt         { return func(c *exec.Cmd) { c.Stdin = r } }
func withExtraFiles(fs ...*os.File) cmdOpt { return func(c *exec.Cmd) { c.ExtraFiles = fs } }
func withStdout(w io.Writer) cmdOpt        { return func(c *exec.Cmd) { c.Stdout = w } }
func globalFlags(flags ...string) cmdOpt {
	return func(c *exec.Cmd) { c.Args = slices.Insert(c.Args, 1, flags...) }
}

// command is berth-runtime --root <root> args... (not started).
func (e *env) command(args ...string) *exec.Cmd {
	return exec.Command(berthBin, append([]string{"--root", e.root}, args...)...)
}

// berth runs berth-runtime --root <root> args... and returns its result. Stdout and stderr go
// to files, never pipes, so a container that inherits them cannot make the call hang.
func (e *env) berth(args ...string) result { return e.berthWith(nil, args...) }

func (e *env) berthWith(opts []cmdOpt, args ...string) result {
	e.t.Helper()
	cmd := e.command(args...)
	for _, o := range opts {
		o(cmd)
	}
	return runCmd(e.t, cmd)
}

func runCmd(t testing.TB, cmd *exec.Cmd) result {
	t.Helper()
	res := result{Args: cmd.Args[1:], Code: -1}
	// unlinked temporary files: a container may keep writing to them
	outF, err := os.CreateTemp("", "berth-stdout-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(outF.Name())
	defer outF.Close()
	errF, err := os.CreateTemp("", "berth-stderr-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(errF.Name())
	defer errF.Close()
	if cmd.Stdout == nil {
		cmd.Stdout = outF
	}
	cmd.Stderr = errF
	if err := startTracked(cmd); err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	var timedOut atomic.Bool
	timer := time.AfterFunc(cmdTimeout, func() { timedOut.Store(true); cmd.Process.Kill() })
	err = waitTracked(cmd)
	timer.Stop()
	if cmd.ProcessState != nil {
		res.Code = cmd.ProcessState.ExitCode()
	}
	out, _ := os.ReadFile(outF.Name())
	errOut, _ := os.ReadFile(errF.Name())
	res.Stdout, res.Stderr = string(out), string(errOut)
	if timedOut.Load() {
		t.Errorf("timed out after %v (killed): %s", cmdTimeout, res)
	} else if err != nil && !errors.As(err, new(*exec.ExitError)) {
		t.Errorf("%v: %v", cmd.Args, err)
	}
	return res
}

// runInBackground runs cmd as runCmd does, on another goroutine. The function it returns waits
// for the result; if none comes within timeout the test fails with the message given.
func runInBackground(t testing.TB, cmd *exec.Cmd) (wait func(timeout time.Duration, fatal string) result) {
	done := make(chan result, 1)
	go func() { done <- runCmd(t, cmd) }()
	return func(timeout time.Duration, fatal string) result {
		t.Helper()
		select {
		case r := <-done:
			return r
		case <-time.After(timeout):
			t.Fatal(fatal)
			return result{}
		}
	}
}

// ok fails the test unless r succeeded.
func ok(t testing.TB, r result) result {
	t.Helper()
	if r.Code != 0 {
		t.Fatalf("unexpected failure: %s", r)
	}
	return r
}

// fails fails the test unless r failed with stderr containing every want.
func fails(t testing.TB, r result, want ...string) {
	t.Helper()
	if r.Code == 0 {
		t.Errorf("unexpected success (want an error containing %q): %s", want, r)
		return
	}
	for _, w := range want {
		if !strings.Contains(r.Stderr, w) {
			t.Errorf("error message lacks %q: %s", w, r)
		}
	}
}

// ---- containers ----

// ctr is a bundle plus the container id used for it (the bundle's random ID).
type ctr struct {
	e  *env
	t  testing.TB
	b  *bundle.Bundle
	id string
}

// ctr makes a bundle (process.terminal off unless opts say otherwise) and registers a cleanup
// that force-deletes the container and reports (then removes) anything left behind.
func (e *env) ctr(opts ...bundle.Option) *ctr {
	e.t.Helper()
	b := bundle.ForTest(e.t, append([]bundle.Option{bundle.WithTerminal(false)}, opts...)...)
	c := &ctr{e: e, t: e.t, b: b, id: b.ID}
	e.t.Cleanup(c.cleanup)
	return c
}

func (c *ctr) cleanup() {
	t := c.t
	r := c.e.berth("delete", "--force", c.id)
	if r.Code != 0 && !strings.Contains(r.Stderr, "does not exist") && !strings.Contains(r.Stderr, "invalid container id") {
		t.Errorf("cleanup: %s", r)
	}
	if left := c.procs(); len(left) > 0 {
		t.Errorf("cleanup: processes of container %s still alive after delete --force: %v", c.id, left)
		for _, p := range left {
			unix.Kill(p.pid, unix.SIGKILL)
			waitPidExit(p.pid, 5*time.Second)
		}
	}
	reapOrphans()
	if dirs, _ := c.b.CgroupDirs(); len(dirs) > 0 {
		// give an exiting task a moment to leave the cgroup before calling it a leak
		time.Sleep(100 * time.Millisecond)
		if dirs, _ = c.b.CgroupDirs(); len(dirs) > 0 {
			t.Errorf("cleanup: cgroups of container %s left after delete --force: %v", c.id, dirs)
		}
	}
}

// save rewrites config.json after b.Spec was changed.
func (c *ctr) save() {
	c.t.Helper()
	if err := c.b.Save(); err != nil {
		c.t.Fatal(err)
	}
}

// procs lists live processes that belong to this container: running the bundle's busybox, or
// in one of its cgroups.
func (c *ctr) procs() []procInfo {
	var bbStat unix.Stat_t
	haveBB := unix.Stat(filepath.Join(c.b.Rootfs, "bin", "busybox"), &bbStat) == nil
	cgSuffix := "/" + c.b.Spec.Linux.CgroupsPath
	var out []procInfo
	for _, pid := range allPids() {
		p, ok := readProc(pid)
		if !ok || p.state == 'Z' || pid == selfPid {
			continue
		}
		var st unix.Stat_t
		if haveBB && unix.Stat(fmt.Sprintf("/proc/%d/exe", pid), &st) == nil && st.Dev == bbStat.Dev && st.Ino == bbStat.Ino {
			out = append(out, p)
			continue
		}
		if c.b.Spec.Linux.CgroupsPath == "" {
			continue
		}
		cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		for _, line := range strings.Split(string(cg), "\n") {
			if strings.HasSuffix(line, cgSuffix) || strings.Contains(line, cgSuffix+"/") {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// create runs `create --bundle <dir> [flags] <id>`.
func (c *ctr) create(flags ...string) result {
	c.t.Helper()
	return c.e.berth(append(append([]string{"create", "--bundle", c.b.Dir}, flags...), c.id)...)
}

// run runs `run --bundle <dir> [flags] <id>` (foreground unless flags has -d).
func (c *ctr) run(flags ...string) result {
	c.t.Helper()
	return c.e.berth(append(append([]string{"run", "--bundle", c.b.Dir}, flags...), c.id)...)
}

// do runs `<sub> [flags] <id>`.
func (c *ctr) do(sub string, flags ...string) result {
	c.t.Helper()
	return c.e.berth(append(append([]string{sub}, flags...), c.id)...)
}

// startDetached creates and starts the container and returns its init's pid.
func (c *ctr) startDetached() int {
	c.t.Helper()
	pidFile := filepath.Join(c.t.TempDir(), "pid")
	ok(c.t, c.create("--pid-file", pidFile))
	ok(c.t, c.do("start"))
	return readPidFile(c.t, pidFile)
}

func readPidFile(t testing.TB, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		t.Fatalf("pid file %s holds %q", path, data)
	}
	return pid
}

// state is the JSON of `berth-runtime state` (runtime-spec state plus runc's extra fields).
type state struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Status      string            `json:"status"`
	Pid         int               `json:"pid"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Owner       string            `json:"owner"`
	Annotations map[string]string `json:"annotations"`
}

func (c *ctr) state() state {
	c.t.Helper()
	r := ok(c.t, c.do("state"))
	var st state
	if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil {
		c.t.Fatalf("state JSON: %v\n%s", err, r.Stdout)
	}
	return st
}

// waitStatus polls `state` until the container has the given status.
func (c *ctr) waitStatus(want string) state {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := c.state()
		if st.Status == want {
			return st
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("container %s: status %q, want %q", c.id, st.Status, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ---- host state ----

// mountinfo returns the lines of /proc/self/mountinfo that this package's containers could
// have caused, sorted: mounts whose mount point, root or source lies below our private TMPDIR
// (bundles, rootfs, --root), and mounts on the paths a container's setup mounts on (/, /proc,
// /sys, /dev and below, /run/netns). Other users of the machine (e.g. a Docker daemon
// mounting overlays under /tmp) change the rest concurrently.
func mountinfo(t testing.TB) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if mountRelevant(l) {
			lines = append(lines, l)
		}
	}
	sort.Strings(lines)
	return lines
}

func mountRelevant(line string) bool {
	pre, post, _ := strings.Cut(line, " - ")
	f, g := strings.Fields(pre), strings.Fields(post)
	if len(f) < 5 {
		return true
	}
	root, point := f[3], f[4]
	if testTmp != "" && (strings.HasPrefix(point, testTmp) || strings.HasPrefix(root, testTmp) || len(g) > 1 && strings.HasPrefix(g[1], testTmp)) {
		return true
	}
	if point == "/" || point == "/run/netns" || strings.HasPrefix(point, "/run/netns/berth-") {
		return true
	}
	for _, p := range []string{"/proc", "/sys", "/dev"} {
		if point == p || strings.HasPrefix(point, p+"/") {
			return true
		}
	}
	return false
}

// cgroupFile reads file in the container's cgroup of the hierarchy that has controller.
func (c *ctr) cgroupFile(controller, file string) string {
	c.t.Helper()
	ms, err := bundle.CgroupMounts()
	if err != nil {
		c.t.Fatal(err)
	}
	for _, m := range ms {
		if m.Version == 1 && slices.Contains(strings.Split(m.Controllers, ","), controller) {
			data, err := os.ReadFile(filepath.Join(m.Own, c.b.Spec.Linux.CgroupsPath, file))
			if err != nil {
				c.t.Fatalf("cgroup file: %v", err)
			}
			return strings.TrimSpace(string(data))
		}
	}
	c.t.Skipf("no cgroup v1 %s hierarchy", controller)
	return ""
}

func fdCount(t testing.TB) int {
	t.Helper()
	// the orphan reaper scans /proc holding trackMu: keep its transient fds out of the count
	trackMu.Lock()
	defer trackMu.Unlock()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func dirEntries(dir string) []string {
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// statusField returns a field of /proc/<pid>/status-formatted text ("CapEff" -> "0000...").
func statusField(text, name string) string {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && k == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func hexField(t testing.TB, text, name string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(statusField(text, name), 16, 64)
	if err != nil {
		t.Fatalf("%s in %q: %v", name, text, err)
	}
	return v
}

// ---- console socket ----

// consoleSocket is a --console-socket receiver: it accepts one connection and takes the pty
// master fd sent with SCM_RIGHTS.
type consoleSocket struct {
	path   string
	l      *net.UnixListener
	master chan *os.File
	errc   chan error
}

func newConsoleSocket(t testing.TB) *consoleSocket {
	t.Helper()
	// t.TempDir() can exceed the 108 bytes of a unix socket path with long test names.
	dir, err := os.MkdirTemp("", "cs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "console.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	cs := &consoleSocket{path: path, l: l, master: make(chan *os.File, 1), errc: make(chan error, 1)}
	t.Cleanup(func() { l.Close() })
	go cs.accept()
	return cs
}

func (cs *consoleSocket) accept() {
	conn, err := cs.l.AcceptUnix()
	if err != nil {
		cs.errc <- err
		return
	}
	defer conn.Close()
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4*4))
	_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob) // sets MSG_CMSG_CLOEXEC
	if err != nil {
		cs.errc <- fmt.Errorf("console socket: %w", err)
		return
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) == 0 {
		cs.errc <- fmt.Errorf("console socket: no control message (%v)", err)
		return
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) == 0 {
		cs.errc <- fmt.Errorf("console socket: no fd (%v)", err)
		return
	}
	for _, fd := range fds[1:] {
		unix.Close(fd)
	}
	// Non-blocking, so that the file uses the poller and read deadlines work.
	unix.SetNonblock(fds[0], true)
	cs.master <- os.NewFile(uintptr(fds[0]), "pty-master")
}

// receive waits for the pty master.
func (cs *consoleSocket) receive(t testing.TB) *os.File {
	t.Helper()
	select {
	case f := <-cs.master:
		t.Cleanup(func() { f.Close() })
		return f
	case err := <-cs.errc:
		t.Fatal(err)
	case <-time.After(20 * time.Second):
		t.Fatal("no pty master received on the console socket")
	}
	return nil
}

// readPty reads from a pty master until the other side is closed (EIO) or timeout.
func readPty(f *os.File, timeout time.Duration) (string, error) {
	f.SetReadDeadline(time.Now().Add(timeout))
	var out bytes.Buffer
	buf := make([]byte, 4096)
	for {
		n, err := f.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			if errors.Is(err, syscall.EIO) || errors.Is(err, io.EOF) {
				return out.String(), nil
			}
			return out.String(), err
		}
	}
}

// ---- misc ----

func writeJSON(t testing.TB, path string, v any) {
	t.Helper()
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
