package daemon_test

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"berth/test/berthtest"
)

// TestExecTopStats: docker exec (-i, -t, -e, -u, -w, -d, exit codes, exec inspect, resize),
// docker top and docker stats (one sample and a stream).
func TestExecTopStats(t *testing.T) {
	t.Parallel()
	d := newDaemon(t, berthtest.Options{})
	d.must("run", "-d", "--name", "ex", "-e", "FROM_RUN=run", "-w", "/", image, "sleep", "100000")

	t.Run("ExitCodes", func(t *testing.T) {
		c := d.on(t)
		out, _, code := c.run("exec", "ex", "sh", "-c", "echo out; echo err >&2; exit 3")
		want(t, "exec's exit code", code, 3)
		want(t, "exec's stdout", out, "out\n")
		_, errOut, _ := c.run("exec", "ex", "sh", "-c", "echo err >&2")
		want(t, "exec's stderr", errOut, "err\n")
		// dockerd's codes for a command that cannot start: 127 missing, 126 not executable.
		if _, errOut, code := c.run("exec", "ex", "nosuchcmd"); code != 127 || !strings.Contains(errOut, "nosuchcmd") {
			t.Errorf("docker exec of a missing command: exit %d (%q), want 127 and the error%s", code, errOut, missingCommandBug)
		}
		c.fails(126, "permission denied", "exec", "ex", "/etc/passwd")
		c.fails(1, "No such container: nosuch", "exec", "nosuch", "true")
		// Killed by a signal: 128+n.
		_, _, code = c.run("exec", "ex", "sh", "-c", "kill -9 $$")
		want(t, "exec killed by SIGKILL", code, 137)
	})

	t.Run("EnvUserWorkdir", func(t *testing.T) {
		c := d.on(t)
		want(t, "defaults", c.must("exec", "ex", "sh", "-c", "echo $FROM_RUN $(id -u) $(pwd)"), "run 0 /")
		want(t, "-e -u -w", c.must("exec", "-e", "A=1", "-e", "FROM_RUN=exec", "-u", "nobody", "-w", "/tmp", "ex", "sh", "-c", "echo $A $FROM_RUN $(id -un) $(pwd)"), "1 exec nobody /tmp")
		want(t, "-u uid:gid", c.must("exec", "-u", "1234:5678", "ex", "id"), "uid=1234 gid=5678 groups=5678")
		// As dockerd, the error comes in the output stream (stdout).
		out, _, code := c.run("exec", "-u", "nosuchuser", "ex", "true")
		want(t, "exec -u nosuchuser's exit code", code, 126)
		contains(t, "exec -u nosuchuser's output", out, "unable to find user nosuchuser")
		// --privileged: every capability the host has.
		all := "CapEff:\t" + hostCapBnd(t)
		want(t, "--privileged", c.must("exec", "--privileged", "ex", "sh", "-c", "grep CapEff /proc/self/status"), all)
		if eff := c.must("exec", "ex", "sh", "-c", "grep CapEff /proc/self/status"); eff == all {
			t.Errorf("exec without --privileged has every capability: %s", eff)
		}
	})

	t.Run("StdinAndDetach", func(t *testing.T) {
		c := d.on(t)
		out, _, code := c.runIn("hello\nworld\n", "exec", "-i", "ex", "sh", "-c", "cat; exit 4")
		want(t, "exec -i's exit code", code, 4)
		want(t, "exec -i's output", out, "hello\nworld\n")
		out, _, _ = c.runIn("ignored", "exec", "ex", "sh", "-c", "cat; echo end")
		want(t, "exec without -i", out, "end\n")
		want(t, "exec -d's output", c.must("exec", "-d", "ex", "sh", "-c", "sleep 0.2; echo done > /tmp/detached"), "")
		c.waitFor("the detached exec's file", func() bool {
			out, _ := c.quiet("exec", "ex", "cat", "/tmp/detached")
			return out == "done"
		})
	})

	t.Run("TTY", func(t *testing.T) {
		c := d.on(t)
		tm := c.startTerminal(33, 111, "exec", "-it", "ex", "sh")
		tm.expect("/ #")
		tm.send("tty; stty size; echo $TERM\r")
		tm.expect("/dev/pts/")
		tm.expect("33 111")
		tm.expect("xterm")
		// docker exec's resize on SIGWINCH.
		tm.resize(50, 132)
		c.waitFor("the exec's resize", func() bool {
			tm.send("stty size\r")
			time.Sleep(100 * time.Millisecond)
			return strings.Contains(tm.output(), "50 132")
		})
		tm.send("exit 6\r")
		want(t, "exec -it's exit code", tm.exitCode(), 6)
		// -t without -i: output through a terminal, \r\n line ends.
		out := c.must("exec", "-t", "ex", "sh", "-c", "echo a; echo b >&2")
		want(t, "exec -t's output", out, "a\r\nb")
	})

	t.Run("Inspect", func(t *testing.T) {
		c := d.on(t)
		var created struct{ Id string }
		c.apiJSON("POST", "/containers/ex/exec", map[string]any{"Cmd": []string{"sh", "-c", "sleep 0.3; exit 5"}, "User": "nobody", "Env": []string{"X=1"}}, http.StatusCreated, &created)
		type execInfo struct {
			ID, ContainerID string
			Running         bool
			ExitCode        *int
			Pid             int
			ProcessConfig   struct {
				Entrypoint string
				Arguments  []string
				User       string
				Tty        bool
			}
		}
		var info execInfo
		c.apiJSON("GET", "/exec/"+created.Id+"/json", nil, http.StatusOK, &info)
		if info.Running || info.ExitCode != nil {
			t.Errorf("exec inspect before start: running %v, exit code %v", info.Running, info.ExitCode)
		}
		want(t, "ProcessConfig", info.ProcessConfig.Entrypoint+" "+strings.Join(info.ProcessConfig.Arguments, " ")+" "+info.ProcessConfig.User, "sh -c sleep 0.3; exit 5 nobody")
		if !strings.HasPrefix(c.inspect("ex", "{{.ID}}"), info.ContainerID) || info.ContainerID == "" {
			t.Errorf("ContainerID = %q", info.ContainerID)
		}
		contains(t, "the container's ExecIDs", c.inspect("ex", "{{json .ExecIDs}}"), created.Id)
		c.apiJSON("POST", "/exec/"+created.Id+"/start", map[string]any{"Detach": true}, http.StatusOK, nil)
		c.waitFor("the exec to end", func() bool {
			c.apiJSON("GET", "/exec/"+created.Id+"/json", nil, http.StatusOK, &info)
			return !info.Running && info.ExitCode != nil
		})
		want(t, "exec inspect's exit code", *info.ExitCode, 5)
		// An exec runs once.
		var e struct{ Message string }
		c.apiJSON("POST", "/exec/"+created.Id+"/start", map[string]any{"Detach": true}, http.StatusConflict, &e)
		c.apiJSON("GET", "/exec/nosuch/json", nil, http.StatusNotFound, &e)
		contains(t, "missing exec", e.Message, "No such exec instance")
	})

	t.Run("NotRunning", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("exstopped")
		c.must("create", "--name", "exstopped", image, "true")
		c.fails(1, "is not running", "exec", "exstopped", "true")
		c.must("start", "exstopped")
		c.must("wait", "exstopped")
		c.fails(1, "is not running", "exec", "exstopped", "true")
		c.fails(1, "is not running", "top", "exstopped")
	})

	t.Run("Top", func(t *testing.T) {
		c := d.on(t)
		out := c.must("top", "ex")
		lines := fields(out)
		if len(lines) < 2 || !strings.Contains(lines[0], "PID") || !strings.Contains(lines[0], "CMD") {
			t.Fatalf("docker top:\n%s", out)
		}
		contains(t, "docker top", out, "sleep 100000")
		pid := c.inspect("ex", "{{.State.Pid}}")
		contains(t, "docker top", out, " "+pid+" ")
		// A process started by exec shows up; ps options go to ps.
		c.must("exec", "-d", "ex", "sleep", "4242")
		c.waitFor("the exec'd process in top", func() bool {
			out, _ := c.quiet("top", "ex", "-o", "pid,args")
			return strings.Contains(out, "sleep 4242")
		})
		out = c.must("top", "ex", "-o", "pid,args")
		want(t, "top -o pid,args's titles", strings.Join(strings.Fields(fields(out)[0]), " "), "PID COMMAND")
		if strings.Contains(out, "dockerd") || strings.Contains(out, "berthd") || strings.Contains(out, "berth-shim") {
			t.Errorf("docker top shows processes outside the container:\n%s", out)
		}
	})

	t.Run("Stats", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("stm")
		c.must("run", "-d", "--name", "stm", "--memory", "64m", "--pids-limit", "20", image, "sh", "-c", "sleep 100000 & sleep 100000 & wait")
		out := c.must("stats", "--no-stream", "--format", "{{.Name}}|{{.MemUsage}}|{{.PIDs}}|{{.CPUPerc}}", "stm")
		f := strings.Split(out, "|")
		if len(f) != 4 || f[0] != "stm" || !strings.HasSuffix(f[1], "/ 64MiB") || !strings.HasSuffix(f[3], "%") {
			t.Fatalf("stats --no-stream = %q, want stm|<usage> / 64MiB|<pids>|<cpu>%%", out)
		}
		c.waitFor("three processes in stats", func() bool {
			out, _ := c.quiet("stats", "--no-stream", "--format", "{{.PIDs}}", "stm")
			return out == "3"
		})
		// Several containers, and --no-trunc's IDs.
		out = c.must("stats", "--no-stream", "--no-trunc", "--format", "{{.ID}} {{.Name}}", "stm", "ex")
		want(t, "stats of two containers", len(fields(out)), 2)
		contains(t, "stats --no-trunc", out, c.inspect("stm", "{{.ID}}"))

		// A stream: a sample a second, until the client goes.
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		defer cancel()
		cmd := c.d.Cmd(ctx, "stats", "--format", "sample {{.Name}} {{.PIDs}}", "stm")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		samples := 0
		for samples < 2 && sc.Scan() {
			// The CLI redraws with escape sequences; count the sample lines.
			samples += strings.Count(sc.Text(), "sample stm 3")
		}
		cancel()
		cmd.Wait()
		if samples < 2 {
			t.Errorf("the stats stream gave %d samples, want 2", samples)
		}
		// Stats of a stopped container: zeros, no error.
		c.must("stop", "-t", "0", "stm")
		out = c.must("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "stm")
		want(t, "stats of a stopped container", out, "stm 0")
		c.fails(1, "No such container", "stats", "--no-stream", "nosuch")
	})
}
