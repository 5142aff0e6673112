// Package shim_test holds user-level integration tests of berth-shim, its client
// (berth/internal/shim) and berth-init: each test spawns a shim as berthd would, with a busybox
// bundle from berth/test/bundle and the berth-runtime binary, and checks what a user of
// `docker run/logs/attach/wait/kill` would see: json-file logs, attach streams, exit codes and
// records, and that nothing is left behind (runtime state, cgroups, processes).
//
// The tests need root. The test process is a child subreaper, so that a shim whose spawner died
// is reparented to it (and reaped by the test that made it).
package shim_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"berth/internal/shim"
	"berth/test/bundle"
)

var (
	binDir     string // berth-runtime, berth-shim, berth-init, built by TestMain
	skipReason string
	setupErr   error
)

// timeout bounds every wait of a test for something a healthy shim does promptly.
const timeout = 60 * time.Second

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(spawnHelper())
	}
	code := testMain(m)
	bundle.RemoveCgroupParent()
	os.Exit(code)
}

func testMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		skipReason = "berth-shim integration tests need root"
		return m.Run()
	}
	base := os.Getenv("TMPDIR")
	if base == "" {
		base = "/var/tmp" // /tmp is slow for bundles on our VMs
	}
	tmp, err := os.MkdirTemp(base, "berth-shim-test.")
	if err != nil {
		setupErr = err
		return m.Run()
	}
	defer os.RemoveAll(tmp)
	os.Setenv("TMPDIR", tmp)
	bb := os.Getenv(bundle.BusyboxEnv)
	if bb == "" {
		bb = "/bin/busybox"
	}
	if _, err := os.Stat(bb); err != nil {
		skipReason = fmt.Sprintf("no static busybox (%v)", err)
		return m.Run()
	}
	binDir = filepath.Join(tmp, "bin")
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = "/usr/local/go/bin/go"
	}
	// Built as `make build` ships them (static, stripped): the memory test measures the real
	// thing.
	build := exec.Command(goTool, "build", "-trimpath", "-ldflags", "-s -w", "-o", binDir+"/",
		"berth/cmd/berth-runtime", "berth/cmd/berth-shim", "berth/cmd/berth-init")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		setupErr = fmt.Errorf("go build: %v\n%s", err, out)
		return m.Run()
	}
	if os.Getenv("BERTH_SHIM_RACE") != "" {
		// the shim with the race detector (it needs cgo), to check its concurrency under the
		// same scenarios; its memory is then no longer what ships
		race := exec.Command(goTool, "build", "-race", "-o", binDir+"/", "berth/cmd/berth-shim")
		race.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := race.CombinedOutput(); err != nil {
			setupErr = fmt.Errorf("go build -race: %v\n%s", err, out)
			return m.Run()
		}
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		setupErr = err
		return m.Run()
	}
	return m.Run()
}

func requireSetup(t testing.TB) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if setupErr != nil {
		t.Fatal(setupErr)
	}
}

func newID() string {
	var b [32]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ctx returns a context bounded by timeout, cancelled at the end of the test.
func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return c
}

// fixture is one container and its shim.
type fixture struct {
	t      *testing.T
	b      *bundle.Bundle
	cfg    shim.Config
	c      *shim.Client
	cmd    *exec.Cmd
	waited chan error // cmd.Wait's result
}

type fixOpt func(*shim.Config)

func withLog(maxSize int64, maxFile int) fixOpt {
	return func(c *shim.Config) { c.LogMaxSize, c.LogMaxFile = maxSize, maxFile }
}
func withoutLog() fixOpt         { return func(c *shim.Config) { c.LogPath = "" } }
func withStdin(once bool) fixOpt { return func(c *shim.Config) { c.Stdin, c.StdinOnce = true, once } }
func withTTY() fixOpt            { return func(c *shim.Config) { c.TTY = true } }
func withDir(dir string) fixOpt  { return func(c *shim.Config) { c.Dir = dir } }

// newFixture makes a bundle (opts; terminal off unless withTTY) and a shim for it, spawned and
// ready but not started. Cleanup checks that the shim is gone (stopping the container first if
// needed) and that it left nothing behind.
func newFixture(t *testing.T, bopts []bundle.Option, opts ...fixOpt) *fixture {
	t.Helper()
	f := prepare(t, bopts, opts...)
	f.spawn()
	return f
}

func prepare(t *testing.T, bopts []bundle.Option, opts ...fixOpt) *fixture {
	t.Helper()
	requireSetup(t)
	id := newID()
	cfg := shim.Config{
		Binary:      filepath.Join(binDir, "berth-shim"),
		ID:          id,
		Runtime:     filepath.Join(binDir, "berth-runtime"),
		RuntimeRoot: filepath.Join(t.TempDir(), "runtime"),
		LogMaxFile:  1,
	}
	dir := t.TempDir()
	cfg.Dir = filepath.Join(dir, "shim")
	cfg.LogPath = filepath.Join(dir, id+"-json.log")
	for _, o := range opts {
		o(&cfg)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	b := bundle.ForTest(t, append([]bundle.Option{bundle.WithID(id), bundle.WithTerminal(cfg.TTY)}, bopts...)...)
	cfg.Bundle = b.Dir
	f := &fixture{t: t, b: b, cfg: cfg}
	t.Cleanup(f.cleanup)
	return f
}

func (f *fixture) spawn() {
	f.t.Helper()
	c, cmd, err := shim.Spawn(ctx(f.t), f.cfg)
	if err != nil {
		f.t.Fatalf("spawn: %v", err)
	}
	f.c, f.cmd = c, cmd
	f.waited = make(chan error, 1)
	go func() { f.waited <- cmd.Wait() }()
}

// start starts the container and returns its init's pid.
func (f *fixture) start() int {
	f.t.Helper()
	pid, err := f.c.Start(ctx(f.t))
	if err != nil {
		f.t.Fatalf("start: %v", err)
	}
	return pid
}

// wait waits for the container's exit through the shim.
func (f *fixture) wait() shim.Exit {
	f.t.Helper()
	e, err := f.c.Wait(ctx(f.t))
	if err != nil {
		f.t.Fatalf("wait: %v", err)
	}
	return e
}

// shimExit waits for the shim process to exit and returns its wait error.
func (f *fixture) shimExit() error {
	f.t.Helper()
	select {
	case err := <-f.waited:
		f.waited <- err
		return err
	case <-time.After(timeout):
		f.t.Fatalf("shim %d did not exit", f.cmd.Process.Pid)
		return nil
	}
}

func (f *fixture) cleanup() {
	t := f.t
	if f.cmd != nil {
		select {
		case <-f.waited:
		default:
			// still running: stop the container (or the unstarted shim), let the shim finish
			c, cancel := context.WithTimeout(context.Background(), timeout)
			st, err := f.c.State(c)
			if err == nil && st.Status == shim.StatusCreated {
				f.c.Shutdown(c)
			} else if err == nil && st.Status == shim.StatusRunning {
				f.c.Kill(c, syscall.SIGKILL, true)
			}
			cancel()
			select {
			case <-f.waited:
			case <-time.After(timeout):
				t.Errorf("cleanup: shim %d did not exit; killing it", f.cmd.Process.Pid)
				f.cmd.Process.Kill()
				<-f.waited
			}
		}
	}
	// a shim that crashed or (built with -race) raced says so in its log
	if log, err := os.ReadFile(filepath.Join(f.cfg.Dir, "shim.log")); err == nil {
		for _, bad := range []string{"DATA RACE", "panic:", "fatal error:"} {
			if strings.Contains(string(log), bad) {
				t.Errorf("shim.log:\n%s", log)
				break
			}
		}
	}
	// no runtime state
	if _, err := os.Stat(filepath.Join(f.cfg.RuntimeRoot, f.cfg.ID)); err == nil {
		t.Errorf("cleanup: runtime state of %s left in %s", f.cfg.ID, f.cfg.RuntimeRoot)
		exec.Command(filepath.Join(binDir, "berth-runtime"), "--root", f.cfg.RuntimeRoot, "delete", "--force", f.cfg.ID).Run()
	}
	// no processes of the container
	if left := containerProcs(f.b); len(left) > 0 {
		t.Errorf("cleanup: processes of container %s left: %v", f.cfg.ID, left)
		for _, p := range left {
			syscall.Kill(p, syscall.SIGKILL)
		}
	}
	// no cgroups
	if dirs, _ := f.b.CgroupDirs(); len(dirs) > 0 {
		time.Sleep(100 * time.Millisecond) // an exiting task leaving its cgroup
		if dirs, _ = f.b.CgroupDirs(); len(dirs) > 0 {
			t.Errorf("cleanup: cgroups of container %s left: %v", f.cfg.ID, dirs)
		}
	}
}

// containerProcs lists live processes running the bundle's busybox or in its cgroups.
func containerProcs(b *bundle.Bundle) []int {
	var bb unix.Stat_t
	haveBB := unix.Stat(filepath.Join(b.Rootfs, "bin", "busybox"), &bb) == nil
	suffix := "/" + b.Spec.Linux.CgroupsPath
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if st, _ := procState(pid); st == 'Z' || st == 0 {
			continue
		}
		var s unix.Stat_t
		if haveBB && unix.Stat(fmt.Sprintf("/proc/%d/exe", pid), &s) == nil && s.Dev == bb.Dev && s.Ino == bb.Ino {
			out = append(out, pid)
			continue
		}
		cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		for _, l := range strings.Split(string(cg), "\n") {
			if strings.HasSuffix(l, suffix) || strings.Contains(l, suffix+"/") {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

// procState returns the state letter and parent pid of a process (0 if it does not exist).
func procState(pid int) (state byte, ppid int) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0
	}
	s := string(data)
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return 0, 0
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 2 {
		return 0, 0
	}
	ppid, _ = strconv.Atoi(f[1])
	return f[0][0], ppid
}

// ---- logs ----

// logEntry is one json-file line, raw and decoded.
type logEntry struct {
	Raw    string
	Log    string
	Stream string
	Time   string
}

// readLog parses a json-file log, checking that every line has Docker's exact shape.
func readLog(t testing.TB, path string) []logEntry {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("log: %v", err)
	}
	return parseLog(t, data)
}

func parseLog(t testing.TB, data []byte) []logEntry {
	t.Helper()
	var out []logEntry
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Errorf("log does not end with a newline: ...%q", tailOf(data, 80))
	}
	for _, line := range strings.SplitAfter(string(data), "\n") {
		if line == "" {
			continue
		}
		out = append(out, parseEntry(t, strings.TrimSuffix(line, "\n")))
	}
	return out
}

func tailOf(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// parseEntry checks `{"log":"...","stream":"stdout|stderr","time":"<RFC3339Nano UTC>"}`.
func parseEntry(t testing.TB, line string) logEntry {
	t.Helper()
	e := logEntry{Raw: line}
	rest, ok := strings.CutPrefix(line, `{"log":"`)
	if !ok {
		t.Fatalf("log line does not start with {\"log\":\" : %q", line)
	}
	i := strings.LastIndex(rest, `","stream":"`)
	if i < 0 {
		t.Fatalf("log line without stream: %q", line)
	}
	if err := jsonUnquote(`"`+rest[:i]+`"`, &e.Log); err != nil {
		t.Fatalf("log text of %q: %v", line, err)
	}
	rest = rest[i+len(`","stream":"`):]
	e.Stream, rest, ok = strings.Cut(rest, `","time":"`)
	if !ok || (e.Stream != "stdout" && e.Stream != "stderr") {
		t.Fatalf("log line stream: %q", line)
	}
	e.Time, ok = strings.CutSuffix(rest, `"}`)
	if !ok {
		t.Fatalf("log line end: %q", line)
	}
	ts, err := time.Parse(time.RFC3339Nano, e.Time)
	if err != nil || ts.UTC().Format(time.RFC3339Nano) != e.Time {
		t.Fatalf("log time %q is not RFC3339Nano UTC (%v)", e.Time, err)
	}
	return e
}

// messages returns the log texts of one stream.
func messages(entries []logEntry, stream string) []string {
	var out []string
	for _, e := range entries {
		if e.Stream == stream {
			out = append(out, e.Log)
		}
	}
	return out
}

// ---- attach ----

// frame is one stdcopy frame.
type frame struct {
	stream byte
	data   string
}

func readFrame(r io.Reader) (frame, error) {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return frame{}, err
	}
	if h[1] != 0 || h[2] != 0 || h[3] != 0 || (h[0] != 1 && h[0] != 2) {
		return frame{}, fmt.Errorf("bad frame header %v", h)
	}
	data := make([]byte, binary.BigEndian.Uint32(h[4:]))
	if _, err := io.ReadFull(r, data); err != nil {
		return frame{}, err
	}
	return frame{h[0], string(data)}, nil
}

// readFramesUntil reads frames until the data of stream contains want.
func readFramesUntil(t testing.TB, conn net.Conn, stream byte, want string) string {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(timeout))
	defer conn.SetReadDeadline(time.Time{})
	var got strings.Builder
	for !strings.Contains(got.String(), want) {
		fr, err := readFrame(conn)
		if err != nil {
			t.Fatalf("attach: reading frames for %q: %v (got %q)", want, err, got.String())
		}
		if fr.stream == stream {
			got.WriteString(fr.data)
		}
	}
	return got.String()
}

// readRawUntil reads a TTY attach stream until it contains want.
func readRawUntil(t testing.TB, r *bufio.Reader, conn net.Conn, want string) string {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(timeout))
	defer conn.SetReadDeadline(time.Time{})
	var got bytes.Buffer
	buf := make([]byte, 4096)
	for !strings.Contains(got.String(), want) {
		n, err := r.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			t.Fatalf("attach: reading for %q: %v (got %q)", want, err, got.String())
		}
	}
	return got.String()
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func jsonUnquote(s string, out *string) error { return json.Unmarshal([]byte(s), out) }

func itoa(n int) string { return strconv.Itoa(n) }

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
