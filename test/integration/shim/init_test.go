package shim_test

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"berth/test/bundle"
)

// withInit makes a fixture whose container runs /sbin/berth-init -- args..., as `docker run
// --init` does.
func withInit(t *testing.T, args []string, opts ...fixOpt) *fixture {
	t.Helper()
	f := prepare(t, []bundle.Option{bundle.WithArgs(append([]string{"/sbin/berth-init", "--"}, args...)...)}, opts...)
	data, err := os.ReadFile(filepath.Join(binDir, "berth-init"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(f.b.Rootfs, "sbin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.b.Rootfs, "sbin", "berth-init"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	f.spawn()
	return f
}

// children lists the pids whose parent is pid and whose command line is cmdline (NUL-separated
// arguments joined with spaces).
func children(pid int, cmdline string) []int {
	var out []int
	for _, p := range allPids() {
		if _, ppid := procState(p); ppid != pid {
			continue
		}
		data, _ := os.ReadFile("/proc/" + itoa(p) + "/cmdline")
		if strings.Join(strings.Split(strings.TrimSuffix(string(data), "\x00"), "\x00"), " ") == cmdline {
			out = append(out, p)
		}
	}
	return out
}

// TestInitReapsOrphans: orphans reparented to berth-init (PID 1) are reaped when they exit;
// SIGTERM sent to it reaches the command, whose death by that signal is its exit code.
func TestInitReapsOrphans(t *testing.T) {
	f := withInit(t, []string{"sh", "-c", "(sleep 2 &); (sleep 2 &); exec sleep 1000"})
	initPid := f.start()
	var orphans []int
	waitFor(t, "two orphaned sleeps reparented to berth-init", func() bool {
		orphans = children(initPid, "sleep 2")
		return len(orphans) == 2
	})
	for _, p := range orphans {
		waitFor(t, "orphan "+itoa(p)+" reaped (not a zombie)", func() bool {
			_, err := os.Stat("/proc/" + itoa(p))
			return err != nil
		})
	}
	if len(children(initPid, "sleep 1000")) != 1 {
		t.Errorf("the command is not berth-init's child")
	}
	if err := f.c.Kill(ctx(t), syscall.SIGTERM, false); err != nil {
		t.Fatal(err)
	}
	if e := f.wait(); e.Code != 128+int(syscall.SIGTERM) {
		t.Errorf("exit %+v, want 143 (the command killed by the forwarded SIGTERM)", e)
	}
}

// TestInitForwardsSignals: a signal handler of the command runs and its exit code comes back;
// so do plain exit codes, deaths by signal and a missing command.
func TestInitForwardsSignals(t *testing.T) {
	t.Run("sigterm-trap", func(t *testing.T) {
		f := withInit(t, []string{"sh", "-c", `trap "echo got-usr1" USR1; trap "echo got-term; exit 42" TERM; echo ready; while :; do sleep 0.05; done`})
		f.start()
		logHas := func(want string) func() bool {
			return func() bool {
				return strings.Contains(strings.Join(messages(readLog(t, f.cfg.LogPath), "stdout"), ""), want)
			}
		}
		waitFor(t, "ready in the log", logHas("ready\n"))
		if err := f.c.Kill(ctx(t), syscall.SIGUSR1, false); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the USR1 trap's output", logHas("got-usr1\n"))
		if err := f.c.Kill(ctx(t), syscall.SIGTERM, false); err != nil {
			t.Fatal(err)
		}
		if e := f.wait(); e.Code != 42 {
			t.Errorf("exit %+v, want 42 from the trap", e)
		}
		if out := messages(readLog(t, f.cfg.LogPath), "stdout"); strings.Join(out, "") != "ready\ngot-usr1\ngot-term\n" {
			t.Errorf("output %q", out)
		}
	})
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"exit-code", []string{"sh", "-c", "exit 5"}, 5},
		{"killed", []string{"sh", "-c", "kill -9 $$"}, 137},
		{"missing-command", []string{"/no-such-command"}, 127},
		{"path-lookup", []string{"true"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := withInit(t, tc.args)
			f.start()
			if e := f.wait(); e.Code != tc.want {
				t.Errorf("exit %+v, want %d", e, tc.want)
			}
		})
	}
}

// TestInitTTYForeground: with a terminal the command's process group is the foreground one:
// it can read the terminal (a background group would be stopped by SIGTTIN).
func TestInitTTYForeground(t *testing.T) {
	f := withInit(t, []string{"sh", "-c", "read x; echo got-$x"}, withTTY(), withStdin(false))
	a, err := f.c.Attach(ctx(t), true, true, false)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	f.start()
	a.Write([]byte("hi\n"))
	readRawUntil(t, bufio.NewReader(a), a, "got-hi")
	rest, _ := io.ReadAll(a)
	if e := f.wait(); e.Code != 0 {
		t.Errorf("exit %+v (rest of output %q)", e, rest)
	}
}
