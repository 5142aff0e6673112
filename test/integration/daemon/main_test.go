// Package daemon_test drives berthd with the stock docker CLI (docker 28) as a user would:
// every verb with its common flags, the states containers reach (restart policies, health
// checks, OOM kills, limits that bite), and bad input (name conflicts, missing images,
// invalid flag values, a full disk), with the exit codes and messages the CLI prints.
//
// Each top-level test is one area with its own private berthd (test/berthtest: own data
// root, exec root and socket, leak checks at the end) and a busybox image; its subtests run
// in order against that daemon and remove what they make. The top-level tests run in
// parallel with each other. They need root and the docker CLI; they skip without root.
package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"berth/test/berthtest"
	"berth/test/engine"
)

// image is the busybox image (CMD ["sh"]) every daemon gets.
const image = "busybox"

// patience bounds every wait for a state: long enough never to be the reason a correct
// daemon fails on a loaded machine, and it is never what a test asserts.
const patience = 60 * time.Second

// cli is the docker CLI against one berthd, failing one test.
type cli struct {
	t testing.TB
	d *berthtest.Daemon
}

// newDaemon starts a private berthd with the busybox image, for one area's subtests.
func newDaemon(t *testing.T, o berthtest.Options) *cli {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("berthd needs root")
	}
	d := berthtest.Start(t, o)
	d.Busybox(image)
	return &cli{t: t, d: d}
}

// on is the same daemon failing another (sub)test.
func (c *cli) on(t testing.TB) *cli { return &cli{t: t, d: c.d} }

// run runs docker: stdout, stderr and the exit code.
func (c *cli) run(args ...string) (string, string, int) {
	c.t.Helper()
	out, errOut, code := c.d.Docker(args...)
	c.t.Logf("$ docker %s -> %d", strings.Join(args, " "), code)
	return out, errOut, code
}

// runIn runs docker with stdin.
func (c *cli) runIn(stdin string, args ...string) (string, string, int) {
	c.t.Helper()
	out, errOut, code := c.d.DockerIn([]byte(stdin), args...)
	shown := stdin
	if len(shown) > 80 {
		shown = shown[:80] + fmt.Sprintf("... (%d bytes)", len(stdin))
	}
	c.t.Logf("$ docker %s <<< %q -> %d", strings.Join(args, " "), shown, code)
	return out, errOut, code
}

// must runs docker, fails the test unless it exits 0, and returns stdout trimmed.
func (c *cli) must(args ...string) string {
	c.t.Helper()
	out, errOut, code := c.run(args...)
	if code != 0 {
		c.t.Fatalf("docker %s: exit %d\nstdout: %s\nstderr: %s\nberthd log:\n%s", strings.Join(args, " "), code, out, errOut, c.d.LogTail(20))
	}
	return strings.TrimSpace(out)
}

// fails runs docker, wants exit code code and stderr containing msg; it returns stderr.
func (c *cli) fails(code int, msg string, args ...string) string {
	c.t.Helper()
	out, errOut, got := c.run(args...)
	if got != code || !strings.Contains(errOut, msg) {
		c.t.Errorf("docker %s: exit %d, stderr %q (stdout %q); want exit %d and %q in stderr", strings.Join(args, " "), got, errOut, out, code, msg)
	}
	return errOut
}

// inspect is docker inspect -f format ref.
func (c *cli) inspect(ref, format string) string {
	c.t.Helper()
	return c.must("inspect", "-f", format, ref)
}

// status is the container's State.Status ("" when it cannot be inspected), quietly: it is
// what polls call.
func (c *cli) status(ref string) string {
	out, _, _ := c.d.Docker("inspect", "-f", "{{.State.Status}}", ref)
	return strings.TrimSpace(out)
}

// quiet runs docker without logging the command (for polls): stdout trimmed, and the code.
func (c *cli) quiet(args ...string) (string, int) {
	out, _, code := c.d.Docker(args...)
	return strings.TrimSpace(out), code
}

// poll polls cond until it holds (true) or patience runs out (false).
func poll(cond func() bool) bool {
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// waitFor polls cond until it holds; what names it in the failure.
func (c *cli) waitFor(what string, cond func() bool) {
	c.t.Helper()
	if !poll(cond) {
		c.t.Fatalf("gave up waiting for %s\nberthd log:\n%s", what, c.d.LogTail(30))
	}
}

// waitStatus waits until the container's State.Status is status.
func (c *cli) waitStatus(ref, status string) {
	c.t.Helper()
	last := ""
	if !poll(func() bool { last = c.status(ref); return last == status }) {
		c.t.Fatalf("gave up waiting for %s to be %s: it is %s\nberthd log:\n%s", ref, status, last, c.d.LogTail(30))
	}
}

// waitLooping waits until a container running a shell loop (with its traps set first) shows
// a sleep in docker top: its signal handlers are in place from then on.
func (c *cli) waitLooping(ref string) {
	c.t.Helper()
	c.waitFor(ref+"'s loop", func() bool {
		out, _ := c.quiet("top", ref)
		return strings.Contains(out, "sleep")
	})
}

// rmOnCleanup removes containers (and their anonymous volumes) when the test ends.
func (c *cli) rmOnCleanup(refs ...string) {
	c.t.Cleanup(func() {
		c.d.Docker(append([]string{"rm", "-f", "-v"}, refs...)...)
	})
}

// ps is docker ps with args, one line per container.
func (c *cli) ps(args ...string) []string {
	c.t.Helper()
	return fields(c.must(append([]string{"ps"}, args...)...))
}

// now is the time for --since and --until, to the nanosecond (a duration like 0s would
// be rounded down to the second by the CLI).
func now() string { return time.Now().UTC().Format(time.RFC3339Nano) }

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// fields splits output into its non-empty lines, trimmed.
func fields(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// api calls the Engine API on the daemon's socket (for what the CLI does not expose).
func (c *cli) api(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://berthd/v1.50"+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", c.d.Socket)
		},
	}}
	return client.Do(req)
}

// apiJSON calls the API and decodes a JSON answer into v, wanting status want.
func (c *cli) apiJSON(method, path string, body any, want int, v any) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	resp, err := c.api(ctx, method, path, body)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			c.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

// workDir is a private host directory under /var/tmp, removed at the end of the test.
func workDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("/var/tmp", "bdt-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func atoi(t testing.TB, s string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

// want fails the test when got != want.
func want[T comparable](t testing.TB, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// contains fails the test unless s contains sub.
func contains(t testing.TB, what, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Errorf("%s = %q, want it to contain %q", what, s, sub)
	}
}

// terminal is a docker CLI process on a pseudo-terminal (run -it, exec -it, attach).
type terminal struct {
	t      testing.TB
	master *os.File
	cmd    *exec.Cmd
	cancel context.CancelFunc
	mu     sync.Mutex
	out    bytes.Buffer
	// readDone is closed when the terminal's output ends (every holder of its other end
	// closed it).
	readDone chan struct{}
	waitErr  error
	waited   chan struct{}
}

// startTerminal starts docker args on a new pseudo-terminal of rows x cols.
func (c *cli) startTerminal(rows, cols uint16, args ...string) *terminal {
	c.t.Helper()
	master, slave, err := engine.OpenPTY(rows, cols)
	if err != nil {
		c.t.Fatalf("open a pseudo-terminal: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*patience)
	cmd := c.d.Cmd(ctx, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		cancel()
		master.Close()
		slave.Close()
		c.t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	slave.Close()
	c.t.Logf("$ [pty %dx%d] docker %s", rows, cols, strings.Join(args, " "))
	tm := &terminal{t: c.t, master: master, cmd: cmd, cancel: cancel, readDone: make(chan struct{}), waited: make(chan struct{})}
	go func() {
		defer close(tm.readDone)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			if n > 0 {
				tm.mu.Lock()
				tm.out.Write(buf[:n])
				tm.mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		tm.waitErr = cmd.Wait()
		close(tm.waited)
	}()
	c.t.Cleanup(func() {
		cancel()
		<-tm.waited
		master.Close()
	})
	return tm
}

// output is what the terminal showed so far.
func (tm *terminal) output() string {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return tm.out.String()
}

// expect waits until the terminal has shown s.
func (tm *terminal) expect(s string) {
	tm.t.Helper()
	deadline := time.Now().Add(patience)
	for !strings.Contains(tm.output(), s) {
		select {
		case <-tm.waited:
			// Let the reader drain what is left before deciding.
			time.Sleep(100 * time.Millisecond)
			if strings.Contains(tm.output(), s) {
				return
			}
			tm.t.Fatalf("docker exited (%v) before the terminal showed %q; it showed:\n%q", tm.waitErr, s, tm.output())
		default:
		}
		if time.Now().After(deadline) {
			tm.t.Fatalf("the terminal did not show %q; it showed:\n%q", s, tm.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// send types s.
func (tm *terminal) send(s string) {
	tm.t.Helper()
	if _, err := tm.master.Write([]byte(s)); err != nil {
		tm.t.Fatalf("write to the terminal: %v", err)
	}
}

// resize changes the terminal's size (the kernel sends SIGWINCH to docker).
func (tm *terminal) resize(rows, cols uint16) {
	tm.t.Helper()
	if err := unix.IoctlSetWinsize(int(tm.master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		tm.t.Fatalf("resize the terminal: %v", err)
	}
}

// exitCode waits for docker to exit and returns its exit code.
func (tm *terminal) exitCode() int {
	tm.t.Helper()
	select {
	case <-tm.waited:
	case <-time.After(patience):
		tm.t.Fatalf("docker did not exit; the terminal showed:\n%q", tm.output())
	}
	if tm.cmd.ProcessState == nil {
		tm.t.Fatalf("docker: %v", tm.waitErr)
	}
	return tm.cmd.ProcessState.ExitCode()
}

// hostCapBnd is the test process's capability bounding set as /proc/*/status shows it
// (what --privileged gives a container).
func hostCapBnd(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapBnd:\t"); ok {
			return v
		}
	}
	t.Fatal("no CapBnd in /proc/self/status")
	return ""
}

// hostCgroupFile reads a cgroup v1 file of a container's init process from the host.
func hostCgroupFile(t testing.TB, pid int, controller, file string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, ctl := range strings.Split(parts[1], ",") {
			if ctl == controller {
				mounts, _ := filepath.Glob("/sys/fs/cgroup/*" + controller + "*")
				for _, m := range mounts {
					if v, err := os.ReadFile(filepath.Join(m, parts[2], file)); err == nil {
						return strings.TrimSpace(string(v))
					}
				}
			}
		}
	}
	t.Fatalf("no %s/%s for pid %d", controller, file, pid)
	return ""
}
