package shim_test

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth/internal/shim"
	"berth/test/bundle"
)

// TestWaitExitCodes: wait returns the init's exit code, 128+signal when killed, whether the
// signal goes to the init or (all) to every process of the container.
func TestWaitExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		kill syscall.Signal
		all  bool
		want int
	}{
		{name: "exit3", args: []string{"sh", "-c", "exit 3"}, want: 3},
		{name: "sigkill", args: []string{"sleep", "1000"}, kill: syscall.SIGKILL, want: 137},
		{name: "sigkill-all", args: []string{"sh", "-c", "sleep 1000 & sleep 1000"}, kill: syscall.SIGKILL, all: true, want: 137},
		{name: "true", args: []string{"true"}, want: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, []bundle.Option{bundle.WithArgs(tc.args...)})
			before := time.Now()
			pid := f.start()
			if tc.kill != 0 {
				st, err := f.c.State(ctx(t))
				if err != nil || st.Status != shim.StatusRunning || st.Pid != pid {
					t.Fatalf("state %+v, %v; want running %d", st, err, pid)
				}
				if err := f.c.Kill(ctx(t), tc.kill, tc.all); err != nil {
					t.Fatal(err)
				}
			}
			e := f.wait()
			if e.Code != tc.want || e.OOMKilled {
				t.Errorf("exit %+v, want code %d", e, tc.want)
			}
			if e.At.Before(before) || e.At.After(time.Now()) {
				t.Errorf("exited at %v, not between start and now", e.At)
			}
			if err := f.shimExit(); err != nil {
				t.Errorf("shim exit: %v", err)
			}
		})
	}
}

// TestExitFile: nobody waits; the shim records the exit in its directory and exits; a client
// that comes later reads it.
func TestExitFile(t *testing.T) {
	f := newFixture(t, []bundle.Option{bundle.WithArgs("sh", "-c", "exit 7")})
	before := time.Now()
	f.start()
	if err := f.shimExit(); err != nil {
		t.Fatalf("shim exit: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(f.cfg.Dir, "exit"))
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(data))
	if len(fields) != 3 || fields[0] != "7" || fields[2] != "0" || !strings.HasSuffix(string(data), "\n") {
		t.Errorf("exit file %q, want \"7 <ns> 0\\n\"", data)
	}
	e, ok, err := shim.ReadExit(f.cfg.Dir)
	if err != nil || !ok || e.Code != 7 || e.At.Before(before) {
		t.Errorf("ReadExit: %+v %v %v", e, ok, err)
	}
	if _, err := os.Stat(filepath.Join(f.cfg.Dir, "sock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after the shim exited: %v", err)
	}
	// a daemon that comes back
	c := shim.Connect(f.cfg.Dir)
	if e2, err := c.Wait(ctx(t)); err != nil || e2 != e {
		t.Errorf("Wait after the shim exited: %+v, %v; want %+v", e2, err, e)
	}
	if st, err := c.State(ctx(t)); err != nil || st.Status != shim.StatusExited || st.Exit != e {
		t.Errorf("State after the shim exited: %+v, %v", st, err)
	}
	if err := c.Kill(ctx(t), syscall.SIGTERM, false); !errors.Is(err, shim.ErrNoShim) {
		t.Errorf("Kill after the shim exited: %v, want ErrNoShim", err)
	}
}

// TestStateAndErrors: created, running, exited; requests that do not fit the state fail with
// the shim's message.
func TestStateAndErrors(t *testing.T) {
	f := newFixture(t, []bundle.Option{bundle.WithArgs("sh", "-c", "read x; exit 4")}, withStdin(false))
	c := ctx(t)
	if st, err := f.c.State(c); err != nil || st.Status != shim.StatusCreated {
		t.Errorf("state before start: %+v, %v", st, err)
	}
	var se *shim.Error
	if err := f.c.Kill(c, syscall.SIGTERM, false); !errors.As(err, &se) || !strings.Contains(se.Message, "not running") {
		t.Errorf("kill before start: %v", err)
	}
	pid := f.start()
	if _, err := f.c.Start(c); !errors.As(err, &se) || !strings.Contains(err.Error(), "started already") {
		t.Errorf("second start: %v", err)
	}
	if err := f.c.Resize(c, 10, 10); !errors.As(err, &se) || !strings.Contains(se.Message, "terminal") {
		t.Errorf("resize without a terminal: %v", err)
	}
	if err := f.c.Shutdown(c); !errors.As(err, &se) {
		t.Errorf("shutdown of a started shim: %v", err)
	}
	if err := f.c.Kill(c, 0, false); err == nil {
		t.Errorf("kill with signal 0 accepted")
	}
	if st, err := f.c.State(c); err != nil || st.Status != shim.StatusRunning || st.Pid != pid {
		t.Errorf("state after start: %+v, %v; want running %d", st, err, pid)
	}
	a, err := f.c.Attach(c, true, false, false)
	if err != nil {
		t.Fatal(err)
	}
	a.Write([]byte("x\n"))
	defer a.Close()
	e := f.wait()
	if e.Code != 4 {
		t.Errorf("exit %+v", e)
	}
	if err := f.shimExit(); err != nil {
		t.Errorf("shim exit: %v", err)
	}
	if st, err := f.c.State(c); err != nil || st.Status != shim.StatusExited || st.Exit != e {
		t.Errorf("state after exit: %+v, %v", st, err)
	}
}

// TestStartFailure: a missing entrypoint fails start with the runtime's message, and the shim
// exits leaving no runtime state, cgroup, process or exit file.
func TestStartFailure(t *testing.T) {
	for _, tty := range []bool{false, true} {
		name := "pipes"
		var opts []fixOpt
		if tty {
			name, opts = "tty", []fixOpt{withTTY()}
		}
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, []bundle.Option{bundle.WithArgs("/no-such-entrypoint", "arg")}, opts...)
			_, err := f.c.Start(ctx(t))
			var se *shim.Error
			if !errors.As(err, &se) || !strings.Contains(se.Message, "/no-such-entrypoint") || !strings.Contains(se.Message, "no such file") {
				t.Fatalf("start: %v; want the runtime's error about /no-such-entrypoint", err)
			}
			if strings.Contains(se.Message, "\n") {
				t.Errorf("message has several lines: %q", se.Message)
			}
			if err := f.shimExit(); err != nil {
				t.Errorf("shim exit: %v", err)
			}
			if _, ok, _ := shim.ReadExit(f.cfg.Dir); ok {
				t.Errorf("exit file written for a container that never ran")
			}
			if _, err := f.c.Wait(ctx(t)); !errors.Is(err, shim.ErrNoShim) {
				t.Errorf("wait after a failed start: %v, want ErrNoShim", err)
			}
			if ents, _ := os.ReadDir(f.cfg.RuntimeRoot); len(ents) > 0 {
				var names []string
				for _, e := range ents {
					names = append(names, e.Name())
				}
				if strings.Contains(strings.Join(names, " "), f.cfg.ID) {
					t.Errorf("runtime state left: %v", names)
				}
			}
			if dirs, _ := f.b.CgroupDirs(); len(dirs) > 0 {
				t.Errorf("cgroups left: %v", dirs)
			}
		})
	}
}

// TestShutdown: a shim whose container was never started exits when told to.
func TestShutdown(t *testing.T) {
	f := newFixture(t, []bundle.Option{bundle.WithArgs("true")})
	// a waiter, connected (and so accepted) before the shutdown request
	waiter, err := net.Dial("unix", filepath.Join(f.cfg.Dir, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer waiter.Close()
	waiter.Write([]byte("wait\n"))
	if err := f.c.Shutdown(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := f.shimExit(); err != nil {
		t.Errorf("shim exit: %v", err)
	}
	waiter.SetReadDeadline(time.Now().Add(timeout))
	if reply, err := io.ReadAll(waiter); !strings.HasPrefix(string(reply), "error ") {
		t.Errorf("a waiter of a shim shut down got %q, %v; want an error line", reply, err)
	}
	if _, err := f.c.State(ctx(t)); !errors.Is(err, shim.ErrNoShim) {
		t.Errorf("state after shutdown: %v, want ErrNoShim", err)
	}
}

// TestSpawnFailure: a shim that cannot set up reports why, and Spawn has reaped it.
func TestSpawnFailure(t *testing.T) {
	f := prepare(t, []bundle.Option{bundle.WithArgs("true")})
	cfg := f.cfg
	cfg.ID = "not-an-id"
	if _, _, err := shim.Spawn(ctx(t), cfg); err == nil || !strings.Contains(err.Error(), "64 hex") {
		t.Errorf("spawn with a bad id: %v", err)
	}
	cfg = f.cfg
	cfg.Dir = filepath.Join(t.TempDir(), "missing")
	if _, _, err := shim.Spawn(ctx(t), cfg); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("spawn without its directory: %v", err)
	}
	cfg = f.cfg
	cfg.LogPath = filepath.Join(t.TempDir(), "missing", "log")
	if _, _, err := shim.Spawn(ctx(t), cfg); err == nil || !strings.Contains(err.Error(), "open log") {
		t.Errorf("spawn with an unwritable log: %v", err)
	}
	cfg = f.cfg
	cfg.Binary = "/bin/false"
	if _, _, err := shim.Spawn(ctx(t), cfg); err == nil || !strings.Contains(err.Error(), "before it was ready") {
		t.Errorf("spawn of a binary that exits: %v", err)
	}
}

// TestLongStateDir: a state directory whose socket path does not fit in sockaddr_un (108 bytes),
// with a terminal (the console socket lives there too).
func TestLongStateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 60), strings.Repeat("e", 60))
	f := newFixture(t, []bundle.Option{bundle.WithArgs("sh", "-c", "echo hi")}, withTTY(), withDir(dir))
	if len(filepath.Join(dir, "sock")) < 108 {
		t.Fatalf("path not long enough: %s", dir)
	}
	f.start()
	if e := f.wait(); e.Code != 0 {
		t.Errorf("exit %+v", e)
	}
	if out := messages(readLog(t, f.cfg.LogPath), "stdout"); len(out) != 1 || out[0] != "hi\r\n" {
		t.Errorf("log %q", out)
	}
}

// TestOnlyStdioFDs: the container's process has fds 0, 1 and 2 and nothing else of the shim's.
func TestOnlyStdioFDs(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []fixOpt
		sep  string
	}{
		{"pipes", nil, "\n"},
		{"pipes-stdin", []fixOpt{withStdin(false)}, "\n"},
		{"tty", []fixOpt{withTTY(), withStdin(false)}, "\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// ls is not the last command: sh would exec it, and its own directory fd would show
			f := newFixture(t, []bundle.Option{bundle.WithArgs("sh", "-c", "ls -1 /proc/$$/fd; true")}, tc.opts...)
			f.start()
			if e := f.wait(); e.Code != 0 {
				t.Errorf("exit %+v", e)
			}
			out := strings.Join(messages(readLog(t, f.cfg.LogPath), "stdout"), "")
			if out != strings.Join([]string{"0", "1", "2", ""}, tc.sep) {
				t.Errorf("fds in the container: %q, want 0 1 2", out)
			}
		})
	}
}

// TestOOMKilled: a container killed by the OOM killer in its memory cgroup exits 137 with the
// OOM flag; one that exits normally has it clear.
func TestOOMKilled(t *testing.T) {
	requireSetup(t)
	ms, err := bundle.CgroupMounts()
	if err != nil {
		t.Fatal(err)
	}
	// the OOM counter: v1 memory.oom_control, or v2 memory.events if the memory controller is
	// available below our cgroup
	var memDir, oomFile string
	for _, m := range ms {
		if m.Version == 1 && strings.Contains(","+m.Controllers+",", ",memory,") {
			memDir, oomFile = m.Own, "memory.oom_control"
			break
		}
		if ctrls, _ := os.ReadFile(filepath.Join(m.Own, "cgroup.controllers")); m.Version == 2 &&
			strings.Contains(" "+strings.TrimSpace(string(ctrls))+" ", " memory ") {
			memDir, oomFile = m.Own, "memory.events"
		}
	}
	if memDir == "" {
		t.Skip("no memory cgroup controller")
	}
	limit := int64(32 << 20)
	for _, tc := range []struct {
		name string
		args []string
		code int
		oom  bool
	}{
		{"oom", []string{"dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"}, 137, true},
		{"no-oom", []string{"sh", "-c", "exit 0"}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := prepare(t, []bundle.Option{bundle.WithArgs(tc.args...), bundle.WithSpec(func(s *specs.Spec) {
				s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &limit}
			})})
			f.cfg.OOMFile = filepath.Join(memDir, f.b.Spec.Linux.CgroupsPath, oomFile)
			f.spawn()
			f.start()
			if e := f.wait(); e.Code != tc.code || e.OOMKilled != tc.oom {
				t.Errorf("exit %+v, want code %d, OOMKilled %v", e, tc.code, tc.oom)
			}
		})
	}
}

// TestStrayHoldsOutput: without a pid namespace, a background process outlives the init and
// keeps its stdout open: the shim stops draining after a bound, records the exit, and the
// runtime delete takes the stray down (the shim reaps it: it was reparented to the shim).
func TestStrayHoldsOutput(t *testing.T) {
	f := newFixture(t, []bundle.Option{
		bundle.WithoutNamespace(specs.PIDNamespace),
		bundle.WithArgs("sh", "-c", "sleep 1000 & echo started; exit 6"),
	})
	f.start()
	if e := f.wait(); e.Code != 6 {
		t.Errorf("exit %+v, want 6", e)
	}
	if err := f.shimExit(); err != nil {
		t.Errorf("shim exit: %v", err)
	}
	if out := messages(readLog(t, f.cfg.LogPath), "stdout"); len(out) != 1 || out[0] != "started\n" {
		t.Errorf("log %q", out)
	}
	log, _ := os.ReadFile(filepath.Join(f.cfg.Dir, "shim.log"))
	if !strings.Contains(string(log), "output still open") {
		t.Errorf("shim.log does not say it stopped draining: %q", log)
	}
}

// TestRuntimeByName: a runtime given by name is looked up in the shim's $PATH.
func TestRuntimeByName(t *testing.T) {
	requireSetup(t)
	t.Setenv("PATH", binDir+":"+os.Getenv("PATH"))
	f := newFixture(t, []bundle.Option{bundle.WithArgs("sh", "-c", "exit 2")}, func(c *shim.Config) { c.Runtime = "berth-runtime" })
	f.start()
	if e := f.wait(); e.Code != 2 {
		t.Errorf("exit %+v", e)
	}
}
