package daemon_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"berth/test/berthtest"
)

// looper exits with 42 on SIGTERM and 43 on SIGUSR1, and otherwise runs until killed.
const looper = `trap "exit 42" TERM; trap "exit 43" USR1; while true; do sleep 0.05; done`

// TestLifecycle: create, start, stop, kill, restart, pause, unpause, wait, rm, rename and
// update, with what inspect and ps show at each step.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	d := newDaemon(t, berthtest.Options{})

	t.Run("CreateStart", func(t *testing.T) {
		c := d.on(t)
		id := c.must("create", "--name", "cs", image, "sh", "-c", looper)
		c.rmOnCleanup("cs")
		want(t, "create's output", len(id), 64)
		want(t, "status after create", c.status("cs"), "created")
		want(t, "pid after create", c.inspect("cs", "{{.State.Pid}}"), "0")
		want(t, "StartedAt after create", c.inspect("cs", "{{.State.StartedAt}}"), "0001-01-01T00:00:00Z")
		want(t, "ps without -a", len(c.ps("-q", "--filter", "name=cs")), 0)
		want(t, "ps -a", strings.Join(c.ps("-a", "-q", "--filter", "name=cs"), ","), id[:12])
		want(t, "start's output", c.must("start", "cs"), "cs")
		want(t, "status after start", c.status("cs"), "running")
		pid := atoi(t, c.inspect("cs", "{{.State.Pid}}"))
		if pid <= 0 {
			t.Fatalf("State.Pid = %d after start", pid)
		}
		cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if err != nil {
			t.Fatalf("the container's process %d: %v", pid, err)
		}
		contains(t, "the container's process", string(cmdline), "sh")
		want(t, "ps", strings.Join(c.ps("-q", "--filter", "name=cs"), ","), id[:12])
		// Starting a running container is not an error (304).
		c.must("start", "cs")
	})

	t.Run("StopKill", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("sk")
		c.must("run", "-d", "--name", "sk", image, "sh", "-c", looper)
		c.waitLooping("sk")
		want(t, "stop's output", c.must("stop", "sk"), "sk")
		want(t, "status after stop", c.status("sk"), "exited")
		want(t, "exit code after stop (SIGTERM trapped)", c.inspect("sk", "{{.State.ExitCode}}"), "42")
		want(t, "pid after stop", c.inspect("sk", "{{.State.Pid}}"), "0")
		// Stopping a stopped container is not an error.
		c.must("stop", "sk")

		c.must("start", "sk")
		c.waitLooping("sk")
		want(t, "kill -s USR1", c.must("kill", "-s", "USR1", "sk"), "sk")
		want(t, "wait after kill -s USR1", c.must("wait", "sk"), "43")
		c.must("start", "sk")
		c.must("kill", "sk")
		want(t, "wait after kill", c.must("wait", "sk"), "137")
		want(t, "exit code after kill", c.inspect("sk", "{{.State.ExitCode}}"), "137")
		c.fails(1, "is not running", "kill", "sk")
		// docker stop -s and -t: SIGKILL at once.
		c.must("start", "sk")
		c.must("stop", "-s", "KILL", "sk")
		want(t, "exit code after stop -s KILL", c.inspect("sk", "{{.State.ExitCode}}"), "137")
	})

	t.Run("Restart", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("rs")
		c.must("run", "-d", "--name", "rs", image, "sh", "-c", looper)
		c.waitLooping("rs")
		pid1, started1 := c.inspect("rs", "{{.State.Pid}}"), c.inspect("rs", "{{.State.StartedAt}}")
		want(t, "restart's output", c.must("restart", "-t", "5", "rs"), "rs")
		want(t, "status after restart", c.status("rs"), "running")
		if pid2 := c.inspect("rs", "{{.State.Pid}}"); pid2 == pid1 || pid2 == "0" {
			t.Errorf("pid after restart = %s (before: %s)", pid2, pid1)
		}
		if started2 := c.inspect("rs", "{{.State.StartedAt}}"); started2 == started1 {
			t.Errorf("StartedAt did not change with restart: %s", started2)
		}
		want(t, "RestartCount after a manual restart", c.inspect("rs", "{{.RestartCount}}"), "0")
		// A stopped container is started by restart.
		c.waitLooping("rs")
		c.must("stop", "rs")
		c.must("restart", "rs")
		want(t, "status after restart of a stopped container", c.status("rs"), "running")
	})

	t.Run("PauseUnpause", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("pu")
		c.must("run", "-d", "--name", "pu", image, "sh", "-c", looper)
		c.waitLooping("pu")
		want(t, "pause's output", c.must("pause", "pu"), "pu")
		want(t, "status", c.status("pu"), "paused")
		want(t, "State.Paused", c.inspect("pu", "{{.State.Paused}} {{.State.Running}}"), "true true")
		want(t, "ps --filter status=paused", len(c.ps("-q", "--filter", "status=paused", "--filter", "name=pu")), 1)
		contains(t, "ps status column", c.must("ps", "--filter", "name=pu", "--format", "{{.Status}}"), "(Paused)")
		pid := atoi(t, c.inspect("pu", "{{.State.Pid}}"))
		want(t, "freezer state on the host", hostCgroupFile(t, pid, "freezer", "freezer.state"), "FROZEN")
		c.fails(1, "is paused", "exec", "pu", "true")
		c.fails(1, "already paused", "pause", "pu")
		c.fails(1, "is paused", "rm", "pu")
		want(t, "unpause's output", c.must("unpause", "pu"), "pu")
		want(t, "status after unpause", c.status("pu"), "running")
		want(t, "freezer state after unpause", hostCgroupFile(t, pid, "freezer", "freezer.state"), "THAWED")
		c.fails(1, "is not paused", "unpause", "pu")
		c.must("exec", "pu", "true")
		// A paused container can be stopped.
		c.must("pause", "pu")
		c.must("stop", "pu")
		want(t, "status after stop of a paused container", c.status("pu"), "exited")
		c.fails(1, "is not running", "pause", "pu")
	})

	t.Run("Wait", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("w1", "w2", "w3", "w4")
		c.must("run", "-d", "--name", "w1", image, "sh", "-c", "sleep 0.2; exit 4")
		c.must("run", "-d", "--name", "w2", image, "sh", "-c", "sleep 0.3; exit 5")
		want(t, "wait w1 w2", strings.Join(fields(c.must("wait", "w1", "w2")), ","), "4,5")
		// An exited container's wait answers at once with its code.
		want(t, "wait of an exited container", c.must("wait", "w1"), "4")
		// not-running (docker wait's condition) is met by a created container at once.
		c.must("create", "--name", "w3", image, "sh", "-c", "exit 6")
		want(t, "wait of a created container", c.must("wait", "w3"), "0")
		c.fails(1, "No such container", "wait", "nosuch")

		// next-exit waits for the next start's exit; removed for the removal.
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		defer cancel()
		resp, err := c.api(ctx, "POST", "/containers/w3/wait?condition=next-exit", nil)
		if err != nil {
			t.Fatal(err)
		}
		c.must("start", "w3")
		want(t, "next-exit", waitCode(t, resp), 6)
		resp, err = c.api(ctx, "POST", "/containers/w3/wait?condition=removed", nil)
		if err != nil {
			t.Fatal(err)
		}
		c.must("rm", "w3")
		want(t, "removed", waitCode(t, resp), 6)
		c.must("create", "--name", "w4", image, "true")
		var e struct{ Message string }
		c.apiJSON("POST", "/containers/w4/wait?condition=bogus", nil, http.StatusBadRequest, &e)
		contains(t, "bad condition", e.Message, "condition")
	})

	t.Run("Remove", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("rm1", "rm2")
		c.must("run", "-d", "--name", "rm1", image, "sh", "-c", looper)
		c.fails(1, "container is running: stop the container before removing or force remove", "rm", "rm1")
		want(t, "status after a refused rm", c.status("rm1"), "running")
		pid := c.inspect("rm1", "{{.State.Pid}}")
		want(t, "rm -f's output", c.must("rm", "-f", "rm1"), "rm1")
		c.fails(1, "No such container: rm1", "container", "inspect", "rm1")
		if _, err := os.Stat("/proc/" + pid); err == nil {
			if b, _ := os.ReadFile("/proc/" + pid + "/stat"); !strings.Contains(string(b), ") Z") {
				t.Errorf("the container's process %s survived rm -f", pid)
			}
		}
		c.must("create", "--name", "rm2", image, "true")
		c.must("rm", "rm2")
		c.fails(1, "No such container: rm2", "rm", "rm2")
		// The name is free again.
		c.must("create", "--name", "rm2", image, "true")
	})

	t.Run("Rename", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("rn1", "rn2", "rn3")
		id := c.must("run", "-d", "--name", "rn1", image, "sh", "-c", looper)
		c.waitLooping("rn1")
		c.must("rename", "rn1", "rn2")
		want(t, "name after rename", c.inspect(id, "{{.Name}}"), "/rn2")
		c.fails(1, "No such container: rn1", "container", "inspect", "rn1")
		want(t, "ps name", c.must("ps", "--filter", "id="+id, "--format", "{{.Names}}"), "rn2")
		c.must("create", "--name", "rn3", image, "true")
		c.fails(1, `Conflict. The container name "/rn3" is already in use`, "rename", "rn2", "rn3")
		want(t, "name after a refused rename", c.inspect(id, "{{.Name}}"), "/rn2")
		c.must("exec", "rn2", "true")
		c.must("stop", "rn2")
		c.must("start", "rn2")
	})

	t.Run("Update", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("up", "uprm")
		c.must("run", "-d", "--name", "up", "--memory", "32m", image, "sh", "-c", looper)
		c.waitLooping("up")
		pid := atoi(t, c.inspect("up", "{{.State.Pid}}"))
		want(t, "memory limit before update", hostCgroupFile(t, pid, "memory", "memory.limit_in_bytes"), strconv.Itoa(32<<20))
		want(t, "update's output", c.must("update", "--memory", "64m", "--memory-swap", "128m", "--cpus", "0.5", "--cpu-shares", "512", "--pids-limit", "50", "--restart", "on-failure:3", "up"), "up")
		want(t, "HostConfig after update",
			c.inspect("up", "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.NanoCpus}} {{.HostConfig.CpuShares}} {{.HostConfig.PidsLimit}} {{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}"),
			strconv.Itoa(64<<20)+" "+strconv.Itoa(128<<20)+" 500000000 512 50 on-failure:3")
		want(t, "memory limit", hostCgroupFile(t, pid, "memory", "memory.limit_in_bytes"), strconv.Itoa(64<<20))
		want(t, "cpu quota", hostCgroupFile(t, pid, "cpu", "cpu.cfs_quota_us"), "50000")
		want(t, "cpu shares", hostCgroupFile(t, pid, "cpu", "cpu.shares"), "512")
		want(t, "pids limit", hostCgroupFile(t, pid, "pids", "pids.max"), "50")
		// Limits that make no sense are refused and change nothing.
		c.fails(1, "Minimum memory limit allowed is 6MB", "update", "--memory", "1k", "up")
		want(t, "memory after a refused update", c.inspect("up", "{{.HostConfig.Memory}}"), strconv.Itoa(64<<20))
		// A stopped container's update is kept for its next start.
		c.must("stop", "up")
		c.must("update", "--memory", "48m", "up")
		c.must("start", "up")
		pid = atoi(t, c.inspect("up", "{{.State.Pid}}"))
		want(t, "memory limit after a stopped update", hostCgroupFile(t, pid, "memory", "memory.limit_in_bytes"), strconv.Itoa(48<<20))
		c.must("run", "-d", "--rm", "--name", "uprm", image, "sh", "-c", looper)
		c.fails(1, "AutoRemove", "update", "--restart", "always", "uprm")
	})
}

// waitCode reads a wait response's status code.
func waitCode(t *testing.T, resp *http.Response) int {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("wait: status %d: %s", resp.StatusCode, b)
	}
	var r struct{ StatusCode int }
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("wait: %v: %s", err, b)
	}
	return r.StatusCode
}
