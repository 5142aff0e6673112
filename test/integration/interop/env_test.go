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
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"berth/test/engine"
)

var seq atomic.Int64

// newCgroupParent returns a fresh cgroup path under our own cgroups for one engine, and
// registers the removal of everything the engine and the runtime leave under it (and of the
// intermediate directories that did not exist before) at the end of the test.
func newCgroupParent(t *testing.T) string {
	t.Helper()
	cg, err := engine.NewCgroupParent(fmt.Sprintf("berth-interop-%d-%d", os.Getpid(), seq.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, p := range cg.Remove() {
			t.Error(p)
		}
	})
	return cg.Path
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
	master, slave, err := engine.OpenPTY(24, 80)
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
