package interop_test

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"berth/test/engine"
)

const (
	dockerImage = "berth-interop:latest"
	// dockerRuntime is the name berth-runtime is registered under (--add-runtime).
	dockerRuntime = "berth"
)

// dockerd is a private dockerd (engine.Dockerd) with berth-runtime registered, its
// containers in a cgroup parent under ours.
type dockerd struct {
	*engine.Dockerd
	t        *testing.T
	cgParent string
}

func newDockerd(t *testing.T) *dockerd {
	t.Helper()
	skipUnlessReady(t, "dockerd", "docker", "containerd", "containerd-shim-runc-v2")
	since := runtimeLogSize()
	t.Cleanup(func() { dumpRuntimeLog(t, since) })
	cg := newCgroupParent(t)
	ed, err := engine.StartDockerd(engine.DockerdOptions{
		Dir:          tempDir(t, "bd"),
		CgroupParent: cg,
		Runtimes:     []string{dockerRuntime + "=" + runtimePath},
	})
	if err != nil {
		t.Fatalf("dockerd: %v", err)
	}
	d := &dockerd{Dockerd: ed, t: t, cgParent: cg}
	t.Cleanup(d.teardown)
	out, err := d.WaitReady(context.Background(), 60*time.Second, "info", "--format", "{{json .Runtimes}}")
	if err == nil && !strings.Contains(out, `"`+dockerRuntime+`"`) {
		err = fmt.Errorf("runtime %q not registered: %s", dockerRuntime, out)
	}
	if err != nil {
		t.Fatalf("dockerd: %v\n%s", err, d.LogTail(8000))
	}
	if r := d.cli("import", rootfsTar, dockerImage); r.code != 0 {
		t.Fatalf("docker import: %v", r)
	}
	return d
}

// quiet runs the docker CLI without logging (for polling).
func (d *dockerd) quiet(args ...string) (string, error) {
	cmd := exec.Command(d.Docker, args...)
	cmd.Env = d.Env
	cmd.Dir = d.Dir
	b, err := cmd.CombinedOutput()
	return string(b), err
}

// cli runs the docker CLI against this daemon.
func (d *dockerd) cli(args ...string) result {
	d.t.Helper()
	return runCmdShown(d.t, "docker "+strings.Join(args, " "), d.Dir, 120*time.Second, d.Env, nil, d.Docker, args...)
}

func (d *dockerd) cmdIn(stdin string, args ...string) result {
	d.t.Helper()
	return runCmdShown(d.t, "docker "+strings.Join(args, " "), d.Dir, 120*time.Second, d.Env, strings.NewReader(stdin), d.Docker, args...)
}

func (d *dockerd) ok(args ...string) string {
	d.t.Helper()
	r := d.cli(args...)
	if r.code != 0 {
		d.t.Fatalf("docker %s: %v", strings.Join(args, " "), r)
	}
	return r.stdout
}

// runArgs is `run --runtime berth --network none <flags...> image cmd...`.
func (d *dockerd) runArgs(flags []string, cmd ...string) []string {
	args := append([]string{"run", "--runtime", dockerRuntime, "--network", "none"}, flags...)
	return append(append(args, dockerImage), cmd...)
}

func (d *dockerd) run(flags []string, cmd ...string) result {
	d.t.Helper()
	return d.cli(d.runArgs(flags, cmd...)...)
}

func (d *dockerd) inspect(id, format string) string {
	d.t.Helper()
	return strings.TrimSpace(d.ok("inspect", "--format", format, id))
}

// teardown removes the containers, stops dockerd and waits for (or kills) what it started.
// tempDir's cleanup, registered earlier and so run later, unmounts and removes the directory.
func (d *dockerd) teardown() {
	t := d.t
	if out, err := d.quiet("ps", "--all", "--quiet"); err == nil {
		if ids := strings.Fields(out); len(ids) > 0 {
			d.cli(append([]string{"rm", "--force"}, ids...)...)
		}
	}
	if d.Stop(40 * time.Second) {
		t.Errorf("dockerd (pid %d) did not exit 40s after SIGTERM: killed it", d.PID())
	}
	killProcessesUsing(t, d.Dir)
	if t.Failed() {
		t.Log(d.LogTail(8000))
	}
}

// TestDockerRunRm: docker run --rm --runtime berth prints the output, returns the exit code,
// feeds stdin with -i, and removes the container.
func TestDockerRunRm(t *testing.T) {
	d := newDockerd(t)
	r := d.run([]string{"--rm"}, "echo", "hello from berth")
	if wantCode(t, "docker run --rm echo", r, 0) && r.stdout != "hello from berth\n" {
		t.Errorf("docker run --rm echo: stdout %q", r.stdout)
	}
	r = d.run([]string{"--rm"}, "sh", "-c", "echo out; echo err >&2; exit 42")
	if wantCode(t, "docker run --rm exit 42", r, 42) && (r.stdout != "out\n" || !strings.Contains(r.stderr, "err")) {
		t.Errorf("docker run --rm: stdout %q stderr %q", r.stdout, r.stderr)
	}
	r = d.cmdIn("line through stdin\n", d.runArgs([]string{"--rm", "-i"}, "cat")...)
	if wantCode(t, "docker run --rm -i cat", r, 0) && r.stdout != "line through stdin\n" {
		t.Errorf("docker run -i cat: stdout %q", r.stdout)
	}
	if left := strings.TrimSpace(d.ok("ps", "--all", "--quiet")); left != "" {
		t.Errorf("containers left after run --rm: %s", left)
	}
}

// TestDockerDetachExecStopRm: run -d, exec (output, exit code, stdin, user), stop (SIGTERM
// reaches the container's handler), rm.
func TestDockerDetachExecStopRm(t *testing.T) {
	d := newDockerd(t)
	r := d.run([]string{"-d", "--name", "web"}, "sh", "-c", `trap "echo got TERM; exit 7" TERM; echo started; while :; do sleep 0.1; done`)
	if !wantCode(t, "docker run -d", r, 0) {
		t.FailNow()
	}
	id := firstLine(r.stdout)
	if got := d.inspect(id, "{{.State.Status}} {{.HostConfig.Runtime}}"); got != "running "+dockerRuntime {
		t.Fatalf("after run -d: %q, want running %s", got, dockerRuntime)
	}
	r = d.cli("exec", id, "sh", "-c", "echo exec-out; echo exec-err >&2; exit 3")
	if wantCode(t, "docker exec exit 3", r, 3) && (r.stdout != "exec-out\n" || !strings.Contains(r.stderr, "exec-err")) {
		t.Errorf("docker exec: stdout %q stderr %q", r.stdout, r.stderr)
	}
	r = d.cmdIn("piped into exec\n", "exec", "-i", id, "cat")
	if wantCode(t, "docker exec -i cat", r, 0) && r.stdout != "piped into exec\n" {
		t.Errorf("docker exec -i cat: stdout %q", r.stdout)
	}
	r = d.cli("exec", "--user", "1000:1000", "--workdir", "/tmp", "--env", "X=y", id, "sh", "-c", `echo "$(id -u):$(id -g) $(pwd) $X"`)
	if wantCode(t, "docker exec --user", r, 0) && r.stdout != "1000:1000 /tmp y\n" {
		t.Errorf("docker exec --user 1000:1000 --workdir /tmp: stdout %q", r.stdout)
	}
	start := time.Now()
	wantCode(t, "docker stop", d.cli("stop", "--time", "20", id), 0)
	if el := time.Since(start); el > 15*time.Second {
		t.Errorf("docker stop took %v: SIGTERM did not reach the container's handler", el)
	}
	if got := d.inspect(id, "{{.State.Status}} {{.State.ExitCode}}"); got != "exited 7" {
		t.Errorf("after stop: %q, want exited 7 (the TERM trap's exit)", got)
	}
	if logs := d.cli("logs", id); !strings.Contains(logs.stdout, "started") || !strings.Contains(logs.stdout, "got TERM") {
		t.Errorf("docker logs: %q, want started and got TERM", logs.stdout)
	}
	wantCode(t, "docker rm", d.cli("rm", id), 0)
	if left := strings.TrimSpace(d.ok("ps", "--all", "--quiet")); left != "" {
		t.Errorf("containers left after rm: %s", left)
	}
}

// TestDockerMemoryLimitOOM: --memory 32m kills a 100 MB allocation; docker reports OOMKilled.
func TestDockerMemoryLimitOOM(t *testing.T) {
	d := newDockerd(t)
	// The shim watches the cgroup for OOM events only once start has returned: the allocation
	// waits a second so that the event is not missed (with runc as well).
	r := d.run([]string{"--name", "oom", "--memory", "32m"}, "sh", "-c",
		"cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; sleep 1; "+hog)
	if r.code != 137 || strings.Contains(r.stdout, "survived") {
		t.Errorf("docker run --memory 32m with a 100 MB allocation: want exit 137, got %v", r)
	}
	if lim := firstLine(r.stdout); lim != "33554432" {
		t.Errorf("memory limit seen in the container: %q, want 33554432", lim)
	}
	if got := d.inspect("oom", "{{.State.ExitCode}} {{.State.OOMKilled}}"); got != "137 true" {
		t.Errorf("docker inspect: ExitCode OOMKilled = %q, want 137 true", got)
	}
}

// TestDockerTerminal: run -t and exec -t get a terminal (the shim's --console-socket).
func TestDockerTerminal(t *testing.T) {
	d := newDockerd(t)
	r := ptyRun(t, d.Dir, 120*time.Second, d.Env, "", "", d.Docker, d.runArgs([]string{"--rm", "-t"}, "sh", "-c", `tty; [ -t 0 ] && [ -t 1 ] && echo both-ttys; exit 5`)...)
	if wantCode(t, "docker run -t", r, 5) && (!strings.Contains(r.stdout, "/dev/pts/") || !strings.Contains(r.stdout, "both-ttys")) {
		t.Errorf("docker run -t: terminal showed %q", r.stdout)
	}
	r = ptyRun(t, d.Dir, 120*time.Second, d.Env, "# ", "echo typed-$((6*7)); exit 4\n", d.Docker, d.runArgs([]string{"--rm", "-it"}, "sh")...)
	if wantCode(t, "docker run -it", r, 4) && !strings.Contains(r.stdout, "typed-42") {
		t.Errorf("docker run -it: terminal showed %q, want typed-42", r.stdout)
	}
	if r = d.run([]string{"-d", "--name", "term"}, "sleep", "600"); !wantCode(t, "docker run -d", r, 0) {
		return
	}
	r = ptyRun(t, d.Dir, 120*time.Second, d.Env, "", "", d.Docker, "exec", "-t", "term", "sh", "-c", "tty; exit 6")
	if wantCode(t, "docker exec -t", r, 6) && !strings.Contains(r.stdout, "/dev/pts/") {
		t.Errorf("docker exec -t: terminal showed %q", r.stdout)
	}
}

// TestDockerShortLivedConcurrent: many short containers at once. berth-runtime's start must not
// fail when the container's process exits (and the shim reaps it) right after it is released.
func TestDockerShortLivedConcurrent(t *testing.T) {
	d := newDockerd(t)
	const workers, per = 6, 6
	failures := concurrently(t, workers, per, func(w, i int) result {
		return d.cli(d.runArgs([]string{"--rm"}, "true")...)
	})
	if len(failures) > 0 {
		t.Errorf("%d of %d concurrent `docker run --rm --runtime %s ... true` failed; first: %v", len(failures), workers*per, dockerRuntime, failures[0])
	}
}
