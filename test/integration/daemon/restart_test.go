package daemon_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth/test/berthtest"
)

// TestRestartHealthAutoRemove: restart policies reaching their states (on-failure:N's
// count, always, unless-stopped after docker stop, across a berthd restart), health checks
// reaching healthy and unhealthy with their events, and auto-remove.
func TestRestartHealthAutoRemove(t *testing.T) {
	t.Parallel()
	d := newDaemon(t, berthtest.Options{})

	t.Run("OnFailure", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("of", "of0")
		since := now()
		c.must("run", "-d", "--name", "of", "--restart", "on-failure:2", image, "sh", "-c", "exit 3")
		// It ends exited once the retries are spent: 1 run + 2 restarts.
		c.waitFor("on-failure:2 to give up", func() bool {
			out, _ := c.quiet("inspect", "-f", "{{.State.Status}} {{.RestartCount}}", "of")
			return out == "exited 2"
		})
		want(t, "exit code", c.inspect("of", "{{.State.ExitCode}}"), "3")
		got := fields(c.must("events", "--since", since, "--until", now(), "--filter", "container=of", "--filter", "event=die", "--filter", "event=restart", "--format", "{{.Action}}"))
		want(t, "die and restart events", strings.Join(got, ","), "die,restart,die,restart,die")
		// A clean exit is not restarted.
		c.must("run", "-d", "--name", "of0", "--restart", "on-failure", image, "true")
		c.must("wait", "of0")
		time.Sleep(300 * time.Millisecond)
		want(t, "on-failure after exit 0", c.inspect("of0", "{{.State.Status}} {{.RestartCount}}"), "exited 0")
		// docker start resets the count.
		c.must("start", "of")
		c.waitFor("on-failure:2 to give up again", func() bool {
			out, _ := c.quiet("inspect", "-f", "{{.State.Status}} {{.RestartCount}}", "of")
			return out == "exited 2"
		})
	})

	t.Run("Always", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("al")
		c.must("run", "-d", "--name", "al", "--restart", "always", image, "sh", "-c", "sleep 0.1; exit 0")
		c.waitFor("two restarts", func() bool {
			out, _ := c.quiet("inspect", "-f", "{{.RestartCount}}", "al")
			return out != "" && out != "0" && out != "1"
		})
		// docker stop ends it for good (until a start or a daemon restart).
		c.must("stop", "al")
		want(t, "status after stop", c.status("al"), "exited")
		count := c.inspect("al", "{{.RestartCount}}")
		time.Sleep(500 * time.Millisecond)
		want(t, "status a while after stop", c.status("al")+" "+c.inspect("al", "{{.RestartCount}}"), "exited "+count)
		// A kill is a stop too.
		c.must("start", "al")
		c.must("kill", "al")
		time.Sleep(500 * time.Millisecond)
		want(t, "status a while after kill", c.status("al"), "exited")
		contains(t, "ps --filter restart", c.must("ps", "-a", "--filter", "name=al", "--format", "{{.Status}}"), "Exited")
	})

	t.Run("UnlessStopped", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("us")
		c.must("run", "-d", "--name", "us", "--restart", "unless-stopped", image, "sleep", "100000")
		// A crash (a SIGKILL from outside: not docker kill, which is a stop) restarts it.
		pid := c.inspect("us", "{{.State.Pid}}")
		if err := syscall.Kill(atoi(t, pid), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		c.waitFor("the restart after a crash", func() bool {
			out, _ := c.quiet("inspect", "-f", "{{.State.Status}} {{.RestartCount}}", "us")
			return out == "running 1"
		})
		if c.inspect("us", "{{.State.Pid}}") == pid {
			t.Errorf("the pid did not change with the restart")
		}
		c.must("stop", "-t", "1", "us")
		time.Sleep(500 * time.Millisecond)
		want(t, "status a while after docker stop", c.status("us"), "exited")
		c.must("restart", "us")
		want(t, "status after docker restart", c.status("us"), "running")
		want(t, "RestartCount after docker restart", c.inspect("us", "{{.RestartCount}}"), "0")
	})

	t.Run("DaemonRestart", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("dr-always", "dr-unless", "dr-running", "dr-no")
		c.must("run", "-d", "--name", "dr-always", "--restart", "always", image, "sleep", "100000")
		c.must("run", "-d", "--name", "dr-unless", "--restart", "unless-stopped", image, "sleep", "100000")
		c.must("run", "-d", "--name", "dr-running", "--restart", "unless-stopped", image, "sh", "-c", `trap "exit 0" TERM; while true; do sleep 0.05; done`)
		c.waitLooping("dr-running")
		c.must("run", "-d", "--name", "dr-no", image, "sleep", "100000")
		c.must("stop", "-t", "1", "dr-always", "dr-unless")
		c.must("stop", "-t", "1", "dr-no")
		runningPid := c.inspect("dr-running", "{{.State.Pid}}")
		// SIGKILL berthd: containers keep running under their shims; it comes back to them.
		c.d.Kill9()
		c.d.Restart()
		want(t, "always, stopped by hand, after a daemon restart", c.status("dr-always"), "running")
		want(t, "unless-stopped, stopped by hand, after a daemon restart", c.status("dr-unless"), "exited")
		want(t, "no restart policy", c.status("dr-no"), "exited")
		want(t, "a running container after a daemon restart", c.status("dr-running")+" "+c.inspect("dr-running", "{{.State.Pid}}"), "running "+runningPid)
		c.must("exec", "dr-running", "true")
		c.must("stop", "dr-running")
		want(t, "its exit code, seen by the new daemon", c.inspect("dr-running", "{{.State.ExitCode}}"), "0")
		// An exit while berthd is down is found when it comes back.
		c.must("start", "dr-running")
		c.must("run", "-d", "--name", "dr-exit", image, "sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.02; done; exit 7")
		c.rmOnCleanup("dr-exit")
		merged := c.inspect("dr-exit", "{{.GraphDriver.Data.MergedDir}}")
		exitPid := c.inspect("dr-exit", "{{.State.Pid}}")
		c.d.StopDaemon()
		// berthd is down: the container is told to exit through its rootfs, from the host.
		writeFile(t, merged+"/tmp/go", "")
		c.waitFor("the container's exit while berthd is down", func() bool {
			_, err := os.Stat("/proc/" + exitPid)
			return err != nil
		})
		c.d.Restart()
		want(t, "an exit while berthd was down", c.must("wait", "dr-exit"), "7")
		want(t, "its state", c.status("dr-exit"), "exited")
	})

	t.Run("InterruptedRemoval", func(t *testing.T) {
		// berthd killed in the middle of a removal (its marker written, the record not yet
		// gone): the next start finishes it, anonymous volumes too for rm -v.
		c := d.on(t)
		c.rmOnCleanup("half-removed")
		id := c.must("run", "-d", "--name", "half-removed", "-v", "/anon", image, "sleep", "100000")
		vol := c.inspect("half-removed", "{{(index .Mounts 0).Name}}")
		c.must("stop", "-t", "0", "half-removed")
		c.d.Kill9()
		writeFile(t, filepath.Join(c.d.DataRoot, "containers", id, "removing"), "volumes")
		c.d.Restart()
		c.waitFor("the removal to be finished", func() bool {
			out, _, _ := c.run("ps", "-aq", "--filter", "name=half-removed")
			return out == ""
		})
		if _, err := os.Stat(filepath.Join(c.d.DataRoot, "containers", id)); !os.IsNotExist(err) {
			t.Errorf("the container's directory after the finished removal: %v", err)
		}
		if out, _, code := c.run("volume", "inspect", vol); code == 0 {
			t.Errorf("the anonymous volume survived rm -v's finished removal: %s", out)
		}
	})

	t.Run("Health", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("hh", "hu")
		since := now()
		// Failures in the start period do not count: hh is never unhealthy. It turns healthy
		// when the test makes /tmp/ok.
		c.must("run", "-d", "--name", "hh", "--health-cmd", "test -e /tmp/ok && echo fine", "--health-interval", "200ms", "--health-retries", "2", "--health-start-period", "60s", image,
			"sleep", "100000")
		c.must("run", "-d", "--name", "hu", "--health-cmd", "echo bad; exit 1", "--health-interval", "200ms", "--health-retries", "2", image, "sleep", "100000")
		want(t, "health right after start", c.inspect("hh", "{{.State.Health.Status}}"), "starting")
		contains(t, "ps while starting", c.must("ps", "--filter", "name=hh", "--format", "{{.Status}}"), "(health: starting)")
		c.must("exec", "hh", "touch", "/tmp/ok")
		c.waitFor("hh healthy", func() bool {
			out, _ := c.quiet("inspect", "-f", "{{.State.Health.Status}}", "hh")
			return out == "healthy"
		})
		c.waitFor("hu unhealthy", func() bool {
			out, _ := c.quiet("inspect", "-f", "{{.State.Health.Status}}", "hu")
			return out == "unhealthy"
		})
		want(t, "hh's last probe", lastProbe(c, "hh"), "0 fine")
		want(t, "hu's last probe", lastProbe(c, "hu"), "1 bad")
		if streak := atoi(t, c.inspect("hu", "{{.State.Health.FailingStreak}}")); streak < 2 {
			t.Errorf("hu's FailingStreak = %d, want at least the retries (2)", streak)
		}
		want(t, "ps --filter health=healthy", strings.Join(c.ps("--filter", "health=healthy", "--format", "{{.Names}}"), ","), "hh")
		want(t, "ps --filter health=unhealthy", strings.Join(c.ps("--filter", "health=unhealthy", "--format", "{{.Names}}"), ","), "hu")
		contains(t, "ps Status", c.must("ps", "--filter", "name=hu", "--format", "{{.Status}}"), "(unhealthy)")
		got := fields(c.must("events", "--since", since, "--until", now(), "--filter", "event=health_status", "--format", "{{.Actor.Attributes.name}} {{.Action}}"))
		slices.Sort(got)
		want(t, "health events", strings.Join(got, ", "), "hh health_status: healthy, hu health_status: unhealthy")
		// The checks stop with the container, and start again with it.
		c.must("exec", "hh", "rm", "/tmp/ok")
		c.must("stop", "-t", "0", "hh")
		c.must("start", "hh")
		want(t, "health after a restart", c.inspect("hh", "{{.State.Health.Status}}"), "starting")
		c.must("exec", "hh", "touch", "/tmp/ok")
		c.waitFor("hh healthy again", func() bool {
			out, _ := c.quiet("inspect", "-f", "{{.State.Health.Status}}", "hh")
			return out == "healthy"
		})
		// A check that hangs fails by its timeout.
		c.rmOnCleanup("ht")
		c.must("run", "-d", "--name", "ht", "--health-cmd", "sleep 100", "--health-interval", "200ms", "--health-timeout", "200ms", "--health-retries", "1", image, "sleep", "100000")
		c.waitFor("ht unhealthy by timeout", func() bool {
			out, _ := c.quiet("inspect", "-f", "{{.State.Health.Status}}", "ht")
			return out == "unhealthy"
		})
	})

	t.Run("AutoRemove", func(t *testing.T) {
		c := d.on(t)
		out, _, code := c.run("run", "--rm", "--name", "ar1", image, "sh", "-c", "echo bye; exit 4")
		want(t, "run --rm's exit code", code, 4)
		want(t, "run --rm's output", out, "bye\n")
		c.fails(1, "No such container", "container", "inspect", "ar1")
		want(t, "AutoRemove in inspect", func() string {
			c.must("run", "-d", "--rm", "--name", "ar2", image, "sleep", "100000")
			return c.inspect("ar2", "{{.HostConfig.AutoRemove}}")
		}(), "true")
		c.must("stop", "-t", "0", "ar2")
		c.waitFor("ar2's removal", func() bool { _, code := c.quiet("container", "inspect", "ar2"); return code != 0 })
		// A container that cannot start is removed too.
		if _, errOut, code := c.run("run", "--rm", "--name", "ar3", image, "nosuchcommand"); code != 127 {
			t.Errorf("docker run --rm of a missing command: exit %d (%q), want 127 and a start error%s", code, errOut, missingCommandBug)
		}
		c.waitFor("ar3's removal", func() bool { _, code := c.quiet("container", "inspect", "ar3"); return code != 0 })
		c.fails(125, "", "run", "--rm", "--name", "ar4", "-u", "nosuchuser", image, "true")
		c.waitFor("ar4's removal", func() bool { _, code := c.quiet("container", "inspect", "ar4"); return code != 0 })
		c.fails(125, "conflicting options", "run", "--rm", "--restart", "always", image, "true")
	})
}

// lastProbe is the exit code and output of a container's last health probe.
func lastProbe(c *cli, name string) string {
	c.t.Helper()
	var log []struct {
		ExitCode int
		Output   string
	}
	if err := json.Unmarshal([]byte(c.inspect(name, "{{json .State.Health.Log}}")), &log); err != nil || len(log) == 0 {
		c.t.Fatalf("%s's health log: %v (%d entries)", name, err, len(log))
	}
	last := log[len(log)-1]
	return strconv.Itoa(last.ExitCode) + " " + strings.TrimSpace(last.Output)
}
