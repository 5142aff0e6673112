package cli_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"berth/test/engine"
)

// result is one finished berth command.
type result struct {
	stdout, stderr string
	code           int // exit code; -1 when it did not run or timed out
	err            error
}

func (r result) String() string {
	return fmt.Sprintf("exit %d (err %v)\nstdout: %q\nstderr: %q", r.code, r.err, r.stdout, r.stderr)
}

// berth runs bin/berth with args against the daemon and logs it.
func (d *testDaemon) berth(t *testing.T, args ...string) result {
	t.Helper()
	return d.berthIn(t, nil, args...)
}

// berthIn is berth with stdin.
func (d *testDaemon) berthIn(t *testing.T, stdin io.Reader, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, berthBin, args...)
	cmd.Env, cmd.Dir, cmd.Stdin = d.Env, work, stdin
	cmd.WaitDelay = 5 * time.Second
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	r := result{stdout: so.String(), stderr: se.String(), code: -1, err: err}
	if cmd.ProcessState != nil && (err == nil || errors.As(err, new(*exec.ExitError))) {
		r.code, r.err = cmd.ProcessState.ExitCode(), nil
	}
	if ctx.Err() != nil {
		r.code, r.err = -1, fmt.Errorf("timed out: %w", ctx.Err())
	}
	t.Logf("$ berth %s  -> exit %d%s%s", strings.Join(args, " "), r.code,
		engine.Indent("stdout", r.stdout, 3000), engine.Indent("stderr", r.stderr, 3000))
	return r
}

// ok runs berth and fails the test unless it exits 0; it returns the standard output.
func (d *testDaemon) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := d.berth(t, args...)
	if r.code != 0 {
		t.Fatalf("berth %s: %v", strings.Join(args, " "), r)
	}
	return r.stdout
}

// quiet runs berth without a test (cleanups) and returns its standard output.
func (d *testDaemon) quiet(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, berthBin, args...)
	cmd.Env, cmd.Dir = d.Env, work
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if err := cmd.Run(); err != nil {
		return so.String(), fmt.Errorf("%w: %s", err, strings.TrimSpace(se.String()))
	}
	return so.String(), nil
}

// wantCode fails the test unless r exited with code.
func wantCode(t *testing.T, what string, r result, code int) bool {
	t.Helper()
	if r.code != code {
		t.Errorf("%s: want exit code %d, got %v", what, code, r)
		return false
	}
	return true
}

// step is one exchange on a terminal: wait until the screen shows waitFor (at once when
// empty), then type input.
type step struct{ waitFor, input string }

// ptyRun runs berth with a new pseudo-terminal as its controlling terminal and its stdio,
// plays the steps, and returns what the terminal showed and the exit code.
func (d *testDaemon) ptyRun(t *testing.T, steps []step, args ...string) result {
	t.Helper()
	master, slave, err := engine.OpenPTY(24, 80)
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	defer master.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, berthBin, args...)
	cmd.Env, cmd.Dir = d.Env, work
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		slave.Close()
		t.Fatalf("start berth: %v", err)
	}
	slave.Close()
	var screen safeBuffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		next := 0
		for next < len(steps) && steps[next].waitFor == "" {
			master.Write([]byte(steps[next].input))
			next++
		}
		for {
			n, err := master.Read(buf)
			screen.Write(buf[:n])
			for next < len(steps) && strings.Contains(screen.String(), steps[next].waitFor) {
				master.Write([]byte(steps[next].input))
				next++
			}
			if err != nil {
				return // EIO once every slave descriptor is closed
			}
		}
	}()
	err = cmd.Wait()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	r := result{stdout: screen.String(), code: -1, err: err}
	if cmd.ProcessState != nil && (err == nil || errors.As(err, new(*exec.ExitError))) {
		r.code, r.err = cmd.ProcessState.ExitCode(), nil
	}
	if ctx.Err() != nil {
		r.code, r.err = -1, fmt.Errorf("timed out: %w", ctx.Err())
	}
	t.Logf("$ [pty] berth %s  -> exit %d%s", strings.Join(args, " "), r.code, engine.Indent("terminal", r.stdout, 4000))
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

// lines splits output into its non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}
