package interop_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
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
	"berth/test/engine"
)

// cgroupHierarchy is one mounted cgroup hierarchy: where it is mounted, which cgroup path the
// mount shows at its mountpoint, and the test process's own cgroup path in it.
type cgroupHierarchy struct {
	mountpoint string
	root       string // the cgroup path at the mountpoint (mountinfo field 4)
	own        string // our cgroup path (/proc/self/cgroup)
}

// dir is the directory of cgroup path p in this hierarchy.
func (h cgroupHierarchy) dir(p string) string {
	rel := strings.TrimPrefix(p, h.root)
	return filepath.Join(h.mountpoint, rel)
}

func cgroupHierarchies() ([]cgroupHierarchy, error) {
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	type mnt struct{ root, point, fstype, super string }
	var mounts []mnt
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(mi), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		a, b := strings.Fields(pre), strings.Fields(post)
		if len(a) < 5 || len(b) < 3 || (b[0] != "cgroup" && b[0] != "cgroup2") {
			continue
		}
		mounts = append(mounts, mnt{root: bundle.UnescapeMountinfo(a[3]), point: bundle.UnescapeMountinfo(a[4]), fstype: b[0], super: b[2]})
	}
	var res []cgroupHierarchy
	for _, line := range strings.Split(strings.TrimSpace(string(self)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, m := range mounts {
			if parts[1] == "" {
				if m.fstype != "cgroup2" {
					continue
				}
			} else if m.fstype != "cgroup" || !hasAllOpts(m.super, parts[1]) {
				continue
			}
			if !isUnder(parts[2], m.root) {
				continue
			}
			res = append(res, cgroupHierarchy{mountpoint: m.point, root: m.root, own: parts[2]})
			break
		}
	}
	return res, nil
}

func hasAllOpts(super, ctrls string) bool {
	opts := map[string]bool{}
	for _, o := range strings.Split(super, ",") {
		opts[o] = true
	}
	for _, c := range strings.Split(ctrls, ",") {
		if !opts[c] {
			return false
		}
	}
	return true
}

// isUnder reports whether cgroup path p is anc or below it.
func isUnder(p, anc string) bool {
	return anc == "/" || p == anc || strings.HasPrefix(p, anc+"/")
}

// findCgroupBase picks the deepest of our own cgroups; a cgroup parent under it is nested under
// our cgroup in every hierarchy only if all our cgroups lie on one path.
func findCgroupBase() (base, skip string) {
	hs, err := cgroupHierarchies()
	if err != nil {
		return "", "cgroups: " + err.Error()
	}
	if len(hs) == 0 {
		return "", "no cgroup hierarchy mounted"
	}
	for _, h := range hs {
		if len(h.own) > len(base) {
			base = h.own
		}
	}
	for _, h := range hs {
		if !isUnder(base, h.own) {
			return "", fmt.Sprintf("our cgroups are not nested in each other (%s vs %s): cannot choose a cgroup parent under all of them", h.own, base)
		}
	}
	return base, ""
}

var seq atomic.Int64

// newCgroupParent returns a fresh cgroup path under our own cgroups for one engine, and
// registers the removal of everything the engine and the runtime leave under it (and of the
// intermediate directories that did not exist before) at the end of the test.
func newCgroupParent(t *testing.T) string {
	t.Helper()
	p := fmt.Sprintf("%s/berth-interop-%d-%d", strings.TrimSuffix(cgroupBase, "/"), os.Getpid(), seq.Add(1))
	hs, err := cgroupHierarchies()
	if err != nil {
		t.Fatal(err)
	}
	var created []string // directories that do not exist yet, deepest last
	for _, h := range hs {
		for d := h.dir(p); d != h.dir(h.own) && strings.HasPrefix(d, h.mountpoint+"/"); d = filepath.Dir(d) {
			if _, err := os.Stat(d); err == nil {
				break
			}
			created = append(created, d)
		}
	}
	t.Cleanup(func() {
		for _, h := range hs {
			removeCgroupTree(t, h.dir(p))
		}
		sort.Slice(created, func(i, j int) bool { return len(created[i]) > len(created[j]) })
		for _, d := range created {
			// Another user may have made cgroups in a shared ancestor meanwhile: then it stays.
			if err := unix.Rmdir(d); err != nil && err != unix.ENOENT && err != unix.EBUSY && err != unix.ENOTEMPTY {
				t.Errorf("remove cgroup %s: %v", d, err)
			}
		}
	})
	return p
}

// removeCgroupTree removes dir and its sub-cgroups. A process still inside is a leak: it is
// reported, killed (it is one of this test's containers) and the cgroup removed.
func removeCgroupTree(t *testing.T, dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() {
			removeCgroupTree(t, filepath.Join(dir, e.Name()))
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := unix.Rmdir(dir)
		if err == nil || err == unix.ENOENT {
			return
		}
		if err != unix.EBUSY || time.Now().After(deadline) {
			t.Errorf("remove cgroup %s: %v", dir, err)
			return
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs")); len(bytes.TrimSpace(b)) > 0 {
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
					t.Errorf("process %d (%s) left in cgroup %s: killing it", pid, engine.Cmdline(pid), dir)
					unix.Kill(pid, unix.SIGKILL)
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// killProcessesUsing waits for the processes under dir (the containerd, shims, conmons and
// cleanup commands our own engine started with paths in our temporary directory) to exit,
// and kills those still there after 15 seconds.
func killProcessesUsing(t *testing.T, dir string) {
	for _, pid := range engine.AwaitProcessesGone(dir, 15*time.Second) {
		t.Logf("killing leftover process %d: %s", pid, engine.Cmdline(pid))
		unix.Kill(pid, unix.SIGKILL)
	}
}

// tempDir makes a short private directory (socket paths must fit in 108 bytes) that is
// removed, after its mounts, at the end of the test.
func tempDir(t *testing.T, prefix string) string {
	t.Helper()
	d, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, left := engine.UnmountUnder(d); len(left) > 0 {
			t.Errorf("cannot unmount %q", left)
		}
		if err := os.RemoveAll(d); err != nil {
			t.Errorf("remove %s: %v", d, err)
		}
	})
	return d
}

// result is one finished command.
type result struct {
	stdout, stderr string
	code           int // exit code; -1 when it did not run or was killed by the timeout
	err            error
}

func (r result) String() string {
	return fmt.Sprintf("exit %d (err %v)\nstdout: %q\nstderr: %q", r.code, r.err, r.stdout, r.stderr)
}

// runCmdShown runs name with args and env in directory dir (when set), with a timeout, and
// logs it as shown.
func runCmdShown(t *testing.T, shown, dir string, timeout time.Duration, env []string, stdin io.Reader, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdin = stdin
	cmd.WaitDelay = 5 * time.Second
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: so.String(), stderr: se.String(), code: -1, err: err}
	if cmd.ProcessState != nil && (err == nil || errors.As(err, new(*exec.ExitError))) {
		r.code = cmd.ProcessState.ExitCode()
		r.err = nil
	}
	if ctx.Err() != nil {
		r.err = fmt.Errorf("timed out after %v", timeout)
		r.code = -1
	}
	t.Logf("$ %s  [%v] -> exit %d%s%s", shown, time.Since(start).Round(time.Millisecond), r.code,
		engine.Indent("stdout", r.stdout, 4000), engine.Indent("stderr", r.stderr, 4000))
	return r
}

// ptyRun runs a command with a new pseudo-terminal as its controlling terminal and stdio. When
// input is set it is typed once the output contains waitFor. It returns everything the
// terminal showed and the exit code. It runs in directory dir when set.
func ptyRun(t *testing.T, dir string, timeout time.Duration, env []string, waitFor, input, name string, args ...string) result {
	t.Helper()
	master, slave, err := openPTY()
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	defer master.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	if err := cmd.Start(); err != nil {
		slave.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	slave.Close()
	var out safeBuffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		typed := input == ""
		for {
			n, err := master.Read(buf)
			out.Write(buf[:n])
			if !typed && strings.Contains(out.String(), waitFor) {
				typed = true
				master.Write([]byte(input))
			}
			if err != nil {
				return // EIO once every slave fd is closed
			}
		}
	}()
	err = cmd.Wait()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	r := result{stdout: out.String(), code: -1, err: err}
	if cmd.ProcessState != nil && (err == nil || errors.As(err, new(*exec.ExitError))) {
		r.code = cmd.ProcessState.ExitCode()
		r.err = nil
	}
	if ctx.Err() != nil {
		r.err = fmt.Errorf("timed out after %v", timeout)
		r.code = -1
	}
	t.Logf("$ [pty] %s %s  [%v] -> exit %d%s", filepath.Base(name), strings.Join(args, " "), time.Since(start).Round(time.Millisecond), r.code, engine.Indent("terminal", r.stdout, 4000))
	return r
}

func openPTY() (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("unlockpt: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("ptsname: %w", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 80})
	return m, s, nil
}

type safeBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *safeBuffer) Write(p []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
}

func (b *safeBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// firstLine returns the first line of s, trimmed.
func firstLine(s string) string {
	sc := bufio.NewScanner(strings.NewReader(s))
	if sc.Scan() {
		return strings.TrimSpace(sc.Text())
	}
	return ""
}

// concurrently runs f per times in each of workers goroutines and returns the failed results.
// Meanwhile it keeps the CPUs busy, which widens scheduling gaps the way a loaded host does.
func concurrently(t *testing.T, workers, per int, f func(w, i int) result) []result {
	stop := make(chan struct{})
	defer close(stop)
	for i := 0; i < 2*goruntime.NumCPU(); i++ {
		go func() {
			for n := 0; ; n++ {
				if n%1000 == 0 {
					select {
					case <-stop:
						return
					default:
					}
				}
			}
		}()
	}
	var mu sync.Mutex
	var failed []result
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				if r := f(w, i); r.code != 0 {
					mu.Lock()
					failed = append(failed, r)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return failed
}
