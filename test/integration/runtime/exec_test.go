package runtime_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth/test/bundle"
)

func TestExec(t *testing.T) {
	e := newEnv(t)
	c := e.ctr(bundle.WithArgs("sleep", "1000"), bundle.WithEnv("FROM_SPEC=spec"))
	initPid := c.startDetached()
	exec := func(args ...string) result {
		t.Helper()
		return e.berth(append([]string{"exec"}, args...)...)
	}

	t.Run("output", func(t *testing.T) {
		r := ok(t, exec(c.id, "sh", "-c", "echo hi; echo oops >&2"))
		if r.Stdout != "hi\n" || !strings.Contains(r.Stderr, "oops") {
			t.Errorf("exec output: %s", r)
		}
	})
	t.Run("exit-code", func(t *testing.T) {
		if r := exec(c.id, "sh", "-c", "exit 3"); r.Code != 3 {
			t.Errorf("exit code %d, want 3: %s", r.Code, r)
		}
	})
	t.Run("same-namespaces", func(t *testing.T) {
		r := ok(t, exec(c.id, "sh", "-c", "hostname; cat /proc/1/cmdline | tr '\\0' ' '"))
		if r.Stdout != "runc\nsleep 1000 " {
			t.Errorf("exec does not see the container's uts/pid namespaces: %q", r.Stdout)
		}
		for _, ns := range []string{"pid", "net", "mnt", "uts", "ipc"} {
			want, _ := os.Readlink(filepath.Join("/proc", strconv.Itoa(initPid), "ns", ns))
			r := ok(t, exec(c.id, "readlink", "/proc/self/ns/"+ns))
			if strings.TrimSpace(r.Stdout) != want {
				t.Errorf("exec's %s namespace %q, init's %q", ns, strings.TrimSpace(r.Stdout), want)
			}
		}
	})
	t.Run("cgroup", func(t *testing.T) {
		// the exec'd process joins the init's cgroups
		r := ok(t, exec(c.id, "cat", "/proc/self/cgroup"))
		for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
			f := strings.SplitN(line, ":", 3)
			if len(f) == 3 && (f[1] == "memory" || f[1] == "pids" || f[1] == "freezer") && !strings.HasSuffix(f[2], "/"+c.b.Spec.Linux.CgroupsPath) {
				t.Errorf("exec'd process not in the container's %s cgroup: %q", f[1], line)
			}
		}
	})
	t.Run("env", func(t *testing.T) {
		r := ok(t, exec("--env", "FOO=bar baz", "--env", "FROM_SPEC=override", c.id, "sh", "-c", `echo "$FOO|$FROM_SPEC|$PATH"`))
		if r.Stdout != "bar baz|override|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n" {
			t.Errorf("exec --env: %q", r.Stdout)
		}
		r = ok(t, exec(c.id, "sh", "-c", `echo "$FROM_SPEC"`))
		if r.Stdout != "spec\n" {
			t.Errorf("exec does not inherit process.env: %q", r.Stdout)
		}
	})
	t.Run("cwd", func(t *testing.T) {
		r := ok(t, exec("--cwd", "/etc", c.id, "pwd"))
		if r.Stdout != "/etc\n" {
			t.Errorf("exec --cwd: %q", r.Stdout)
		}
	})
	t.Run("user", func(t *testing.T) {
		r := ok(t, exec("--user", "1000:1000", c.id, "sh", "-c", "id -u; id -g; id -G"))
		if r.Stdout != "1000\n1000\n1000\n" {
			t.Errorf("exec --user 1000:1000: %q", r.Stdout)
		}
		r = ok(t, exec("--user", "1000:1000", "--additional-gids", "10", "--additional-gids", "20", c.id, "id", "-G"))
		if r.Stdout != "1000 10 20\n" {
			t.Errorf("exec --additional-gids: %q", r.Stdout)
		}
		// a non-root user has no capabilities
		r = ok(t, exec("--user", "1000", c.id, "cat", "/proc/self/status"))
		if eff := hexField(t, r.Stdout, "CapEff"); eff != 0 {
			t.Errorf("uid 1000 has CapEff %x", eff)
		}
	})
	t.Run("cap", func(t *testing.T) {
		r := ok(t, exec(c.id, "cat", "/proc/self/status"))
		if eff := hexField(t, r.Stdout, "CapEff"); eff&(1<<21) != 0 {
			t.Fatalf("CAP_SYS_ADMIN effective without --cap: %x", eff)
		}
		r = ok(t, exec("--cap", "CAP_SYS_ADMIN", c.id, "cat", "/proc/self/status"))
		const sysAdmin = 1 << 21
		if eff := hexField(t, r.Stdout, "CapEff"); eff&sysAdmin == 0 {
			t.Errorf("exec --cap CAP_SYS_ADMIN: CapEff %x lacks bit 21", eff)
		}
		if bnd := hexField(t, r.Stdout, "CapBnd"); bnd&sysAdmin == 0 {
			t.Errorf("exec --cap CAP_SYS_ADMIN: CapBnd %x lacks bit 21", bnd)
		}
		if inh := hexField(t, r.Stdout, "CapInh"); inh != 0 {
			t.Errorf("exec --cap CAP_SYS_ADMIN: CapInh %x, want 0 (CVE-2022-29162)", inh)
		}
		if amb := hexField(t, r.Stdout, "CapAmb"); amb&sysAdmin != 0 {
			t.Errorf("exec --cap CAP_SYS_ADMIN: ambient %x has it", amb)
		}
		fails(t, exec("--cap", "CAP_NOT_A_CAP", c.id, "true"), "CAP_NOT_A_CAP")
	})
	t.Run("process-file", func(t *testing.T) {
		p := specs.Process{
			Args: []string{"sh", "-c", `echo "fromfile $X $(pwd) $(id -u)"`},
			Env:  []string{"PATH=/bin", "X=1"},
			Cwd:  "/tmp",
			User: specs.User{UID: 65534, GID: 65534},
		}
		path := filepath.Join(t.TempDir(), "process.json")
		writeJSON(t, path, p)
		r := ok(t, exec("--process", path, c.id))
		if r.Stdout != "fromfile 1 /tmp 65534\n" {
			t.Errorf("exec --process: %q", r.Stdout)
		}
		// and from stdin
		data, _ := os.ReadFile(path)
		r = ok(t, e.berthWith([]cmdOpt{withStdin(strings.NewReader(string(data)))}, "exec", "-p", "-", c.id))
		if r.Stdout != "fromfile 1 /tmp 65534\n" {
			t.Errorf("exec --process -: %q", r.Stdout)
		}
		bad := filepath.Join(t.TempDir(), "bad.json")
		os.WriteFile(bad, []byte(`{"args": "sh", "cwd": "/"}`), 0o644)
		fails(t, exec("--process", bad, c.id), "process")
	})
	t.Run("detach-pid-file", func(t *testing.T) {
		pidFile := filepath.Join(t.TempDir(), "exec.pid")
		start := time.Now()
		ok(t, exec("-d", "--pid-file", pidFile, c.id, "sleep", "999"))
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("exec -d took %v", d)
		}
		pid := readPidFile(t, pidFile)
		cmdline, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
		if string(cmdline) != "sleep\x00999\x00" {
			t.Errorf("pid file %d is not the exec'd process: cmdline %q", pid, cmdline)
		}
		// it is a container process
		r := ok(t, c.do("ps", "--format", "json"))
		if !strings.Contains(r.Stdout, strconv.Itoa(pid)) {
			t.Errorf("ps %s lacks exec'd pid %d", r.Stdout, pid)
		}
	})
	t.Run("not-found", func(t *testing.T) {
		fails(t, exec(c.id, "no-such-command"), "no-such-command")
		fails(t, exec("no-such-container", "true"), "no-such-container")
		fails(t, exec(c.id), "command")
	})
}

func TestExecStopped(t *testing.T) {
	e := newEnv(t)
	c := e.ctr(bundle.WithArgs("true"))
	c.startDetached()
	c.waitStatus("stopped")
	fails(t, e.berth("exec", c.id, "true"), "stopped")
}

func TestExecCreated(t *testing.T) {
	// runc allows exec into a created container (the init waits on the exec fifo)
	e := newEnv(t)
	c := e.ctr(bundle.WithArgs("sleep", "1000"))
	ok(t, c.create())
	r := e.berth("exec", c.id, "echo", "in-created")
	if r.Code != 0 || r.Stdout != "in-created\n" {
		t.Errorf("exec in a created container: %s", r)
	}
	if st := c.state(); st.Status != "created" {
		t.Errorf("exec changed the status to %q", st.Status)
	}
}

func TestExecTTY(t *testing.T) {
	e := newEnv(t)
	c := e.ctr(bundle.WithArgs("sleep", "1000"))
	c.startDetached()
	cs := newConsoleSocket(t)
	cmd := e.command("exec", "--tty", "--console-socket", cs.path, c.id, "sh", "-c", "tty; test -t 0 && test -t 1 && echo isatty; echo tty-ok")
	done := make(chan result, 1)
	go func() { done <- runCmd(t, cmd) }()
	master := cs.receive(t)
	out, err := readPty(master, 20*time.Second)
	if err != nil {
		t.Errorf("read pty: %v (got %q)", err, out)
	}
	r := <-done
	if r.Code != 0 {
		t.Errorf("exec --tty: %s", r)
	}
	out = strings.ReplaceAll(out, "\r\n", "\n")
	if !strings.Contains(out, "/dev/pts/") || !strings.Contains(out, "isatty\n") || !strings.Contains(out, "tty-ok\n") {
		t.Errorf("pty output %q", out)
	}

	// detached with a console socket
	cs2 := newConsoleSocket(t)
	ok(t, e.berth("exec", "-t", "-d", "--console-socket", cs2.path, c.id, "sh", "-c", "echo detached-tty"))
	out, err = readPty(cs2.receive(t), 20*time.Second)
	if err != nil || !strings.Contains(out, "detached-tty") {
		t.Errorf("exec -t -d: %q %v", out, err)
	}
	// -t -d without a console socket is refused
	fails(t, e.berth("exec", "-t", "-d", c.id, "true"), "console-socket")
}
