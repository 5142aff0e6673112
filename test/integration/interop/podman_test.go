package interop_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"berth/test/engine"
)

const podmanImage = "localhost/berth-interop:latest"

// hog allocates ~100 MB in a shell variable (more than the 32 MB limits below).
const hog = `x=$(head -c 100000000 /dev/zero | tr "\0" a); echo survived ${#x}`

// podman is a private podman installation (engine.Podman) with berth-runtime as its
// runtime, its events in a file, and a cgroup parent under ours. Its commands run in its
// directory: conmon 2.1.6 writes an "oom" file into its working directory when the
// container's cgroup has an OOM kill.
type podman struct {
	*engine.Podman
	t        *testing.T
	cgParent string
}

func newPodman(t *testing.T) *podman {
	t.Helper()
	skipUnlessReady(t, "podman", "conmon")
	since := runtimeLogSize()
	t.Cleanup(func() { dumpRuntimeLog(t, since) })
	cg := newCgroupParent(t)
	ep, err := engine.NewPodman(engine.PodmanOptions{
		Dir:     tempDir(t, "bp"),
		Events:  true,
		Runtime: runtimePath,
		Ulimits: []string{"nofile=20000:20000", "nproc=32768:32768"},
	})
	if err != nil {
		t.Fatal(err)
	}
	p := &podman{Podman: ep, t: t, cgParent: cg}
	t.Cleanup(p.teardown)
	if r := p.cmd("import", rootfsTar, podmanImage); r.code != 0 {
		t.Fatalf("podman import: %v", r)
	}
	return p
}

// cmd runs podman with the private global flags.
func (p *podman) cmd(args ...string) result {
	p.t.Helper()
	return runCmdShown(p.t, "podman "+strings.Join(args, " "), p.Dir, 120*time.Second, p.Env, nil, "podman", p.Args(args...)...)
}

// cmdIn runs podman with stdin.
func (p *podman) cmdIn(stdin string, args ...string) result {
	p.t.Helper()
	return runCmdShown(p.t, "podman "+strings.Join(args, " "), p.Dir, 120*time.Second, p.Env, strings.NewReader(stdin), "podman", p.Args(args...)...)
}

// ok runs podman and fails the test unless it exits 0; it returns stdout.
func (p *podman) ok(args ...string) string {
	p.t.Helper()
	r := p.cmd(args...)
	if r.code != 0 {
		p.t.Fatalf("podman %s: %v", strings.Join(args, " "), r)
	}
	return r.stdout
}

// runFlags are the flags every container gets: no network, our cgroup parent, and the rlimits
// this machine can grant (no CAP_SYS_RESOURCE).
func (p *podman) runFlags() []string {
	return []string{"--network", "none", "--cgroup-parent", p.cgParent,
		"--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"}
}

// run is `podman run <runFlags> <flags...> image cmd...`; flags end at the image.
func (p *podman) run(flags []string, cmd ...string) result {
	p.t.Helper()
	args := append([]string{"run"}, p.runFlags()...)
	args = append(append(args, flags...), podmanImage)
	return p.cmd(append(args, cmd...)...)
}

func (p *podman) inspect(id, format string) string {
	p.t.Helper()
	return strings.TrimSpace(p.ok("inspect", "--format", format, id))
}

func (p *podman) teardown() {
	r := p.cmd("rm", "--all", "--force", "--time", "0")
	if r.code != 0 {
		p.t.Errorf("podman rm --all: %v", r)
	}
	killProcessesUsing(p.t, p.Dir)
	if p.t.Failed() {
		if b, err := os.ReadFile(p.EventsLog); err == nil && len(b) > 0 {
			p.t.Logf("podman events:\n%s", engine.Tail(string(b), 6000))
		}
	}
}

func wantCode(t *testing.T, what string, r result, code int) bool {
	t.Helper()
	if r.code != code {
		t.Errorf("%s: want exit code %d, got %v", what, code, r)
		return false
	}
	return true
}

// TestPodmanRunRm: podman run --rm prints the container's output and returns its exit code,
// and removes the container.
func TestPodmanRunRm(t *testing.T) {
	p := newPodman(t)
	r := p.run([]string{"--rm"}, "echo", "hello from berth")
	if wantCode(t, "podman run --rm echo", r, 0) && r.stdout != "hello from berth\n" {
		t.Errorf("podman run --rm echo: stdout %q, want %q", r.stdout, "hello from berth\n")
	}
	r = p.run([]string{"--rm"}, "sh", "-c", "echo out; echo err >&2; exit 42")
	if wantCode(t, "podman run --rm exit 42", r, 42) {
		if r.stdout != "out\n" || !strings.Contains(r.stderr, "err") {
			t.Errorf("podman run --rm: stdout %q stderr %q, want out / err", r.stdout, r.stderr)
		}
	}
	r = p.cmdIn("line through stdin\n", append(append([]string{"run", "--rm", "-i"}, p.runFlags()...), podmanImage, "cat")...)
	if wantCode(t, "podman run --rm -i cat", r, 0) && r.stdout != "line through stdin\n" {
		t.Errorf("podman run -i cat: stdout %q", r.stdout)
	}
	if left := strings.TrimSpace(p.ok("ps", "--all", "--quiet")); left != "" {
		t.Errorf("containers left after run --rm: %s", left)
	}
}

// TestPodmanDetachExecStopRm: run -d, exec (output, stdin, exit code, user), stop (the
// container's SIGTERM handler runs), rm.
func TestPodmanDetachExecStopRm(t *testing.T) {
	p := newPodman(t)
	r := p.run([]string{"-d", "--name", "web"}, "sh", "-c", `trap "echo got TERM; exit 7" TERM; echo started; while :; do sleep 0.1; done`)
	if !wantCode(t, "podman run -d", r, 0) {
		t.FailNow()
	}
	id := firstLine(r.stdout)
	if got := p.inspect(id, "{{.State.Status}}"); got != "running" {
		t.Fatalf("after run -d: status %q, want running", got)
	}
	if got := p.inspect(id, "{{.OCIRuntime}}"); got != runtimePath && filepath.Base(got) != filepath.Base(runtimePath) {
		t.Errorf("OCIRuntime %q, want %q", got, runtimePath)
	}
	r = p.cmd("exec", id, "sh", "-c", "echo exec-out; echo exec-err >&2; exit 3")
	if wantCode(t, "podman exec exit 3", r, 3) && (r.stdout != "exec-out\n" || !strings.Contains(r.stderr, "exec-err")) {
		t.Errorf("podman exec: stdout %q stderr %q", r.stdout, r.stderr)
	}
	r = p.cmdIn("piped into exec\n", "exec", "-i", id, "cat")
	if wantCode(t, "podman exec -i cat", r, 0) && r.stdout != "piped into exec\n" {
		t.Errorf("podman exec -i cat: stdout %q", r.stdout)
	}
	r = p.cmd("exec", "--user", "1000:1000", "--workdir", "/tmp", "--env", "X=y", id, "sh", "-c", `echo "$(id -u):$(id -g) $(pwd) $X"`)
	if wantCode(t, "podman exec --user", r, 0) && r.stdout != "1000:1000 /tmp y\n" {
		t.Errorf("podman exec --user 1000:1000 --workdir /tmp: stdout %q", r.stdout)
	}
	r = p.cmd("exec", id, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '")
	if wantCode(t, "podman exec cat /proc/1/cmdline", r, 0) && !strings.Contains(r.stdout, "trap") {
		t.Errorf("pid 1 in the exec's pid namespace is %q, want the container's init", r.stdout)
	}
	start := time.Now()
	wantCode(t, "podman stop", p.cmd("stop", "--time", "20", id), 0)
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("podman stop took %v: SIGTERM did not reach the container's handler", d)
	}
	if st, code := p.inspect(id, "{{.State.Status}}"), p.inspect(id, "{{.State.ExitCode}}"); st != "exited" || code != "7" {
		t.Errorf("after stop: status %q exit code %s, want exited 7 (the TERM trap's exit)", st, code)
	}
	if logs := p.ok("logs", id); !strings.Contains(logs, "started") || !strings.Contains(logs, "got TERM") {
		t.Errorf("podman logs: %q, want started and got TERM", logs)
	}
	wantCode(t, "podman rm", p.cmd("rm", id), 0)
	if left := strings.TrimSpace(p.ok("ps", "--all", "--quiet")); left != "" {
		t.Errorf("containers left after rm: %s", left)
	}
	if runtimeStateRoot != "" {
		if _, err := os.Stat(filepath.Join(runtimeStateRoot, id)); err == nil {
			t.Errorf("runtime state %s left after rm (runtime delete did not remove it)", filepath.Join(runtimeStateRoot, id))
		}
	}
}

// TestPodmanMemoryLimitOOM: --memory 32m kills a process that allocates ~100 MB (the same
// process survives without the limit).
func TestPodmanMemoryLimitOOM(t *testing.T) {
	p := newPodman(t)
	r := p.run([]string{"--rm"}, "sh", "-c", hog)
	if !wantCode(t, "control: the allocation without a limit", r, 0) || !strings.Contains(r.stdout, "survived 100000000") {
		t.Fatalf("control run without --memory did not survive the allocation: %v", r)
	}
	r = p.run([]string{"--name", "oom", "--memory", "32m"}, "sh", "-c",
		"cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; "+hog)
	if r.code != 137 || strings.Contains(r.stdout, "survived") {
		t.Errorf("podman run --memory 32m with a 100 MB allocation: want exit 137 (SIGKILL by the OOM killer), got %v", r)
	}
	if lim := firstLine(r.stdout); lim != "33554432" {
		t.Errorf("memory limit seen in the container: %q, want 33554432", lim)
	}
	if got := p.inspect("oom", "{{.State.ExitCode}}"); got != "137" {
		t.Errorf("inspect ExitCode %s, want 137", got)
	}
	// On cgroup v1 conmon 2.1.6 writes its OOM marker into its working directory, where podman
	// 4.3 does not look: OOMKilled stays false even with runc. Logged, not asserted.
	t.Logf("podman inspect OOMKilled: %s", p.inspect("oom", "{{.State.OOMKilled}}"))

	// An over-allocating process in a running container (here an exec) is killed; the
	// container survives and its cgroup counts the OOM kill.
	r = p.run([]string{"-d", "--name", "limited", "--memory", "32m"}, "sleep", "600")
	if !wantCode(t, "podman run -d --memory 32m", r, 0) {
		return
	}
	// The exec's processes ask to be the OOM killer's first choice (raising oom_score_adj needs
	// no privilege). Without it a loaded host could kill the container's init: once the shell
	// holding the allocation is killed, its head and tr keep writing into its pipe before it has
	// released its memory, which is still charged to the cgroup, and the second OOM kill that
	// this causes chooses among the processes left, all of about the same size as sleep.
	r = p.cmd("exec", "limited", "sh", "-c", "echo 1000 > /proc/self/oom_score_adj && "+hog)
	if r.code != 137 || strings.Contains(r.stdout, "survived") {
		t.Errorf("podman exec of a 100 MB allocation under --memory 32m: want exit 137, got %v", r)
	}
	r = p.cmd("exec", "limited", "sh", "-c", "cat /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null || cat /sys/fs/cgroup/memory.events")
	if n := oomKills(r.stdout); n < 1 {
		t.Errorf("the container's memory cgroup counts %d OOM kills, want >= 1: %v", n, r)
	}
	if got := p.inspect("limited", "{{.State.Status}}"); got != "running" {
		t.Errorf("container status after its exec was OOM-killed: %q, want running", got)
	}
}

// oomKills reads the oom_kill count of memory.oom_control (v1) or memory.events (v2).
func oomKills(s string) int {
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "oom_kill" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return -1
}

// TestPodmanTerminal: run -t, run -it (typed input) and exec -t give the process a terminal
// (podman passes --console-socket; conmon receives the pty master).
func TestPodmanTerminal(t *testing.T) {
	p := newPodman(t)
	args := p.Args(append(append([]string{"run", "--rm", "-t"}, p.runFlags()...), podmanImage, "sh", "-c", `tty; [ -t 0 ] && [ -t 1 ] && echo both-ttys; exit 5`)...)
	r := ptyRun(t, p.Dir, 120*time.Second, p.Env, "", "", "podman", args...)
	if wantCode(t, "podman run -t", r, 5) && (!strings.Contains(r.stdout, "/dev/pts/") || !strings.Contains(r.stdout, "both-ttys")) {
		t.Errorf("podman run -t: terminal showed %q, want a /dev/pts tty on stdin and stdout", r.stdout)
	}
	args = p.Args(append(append([]string{"run", "--rm", "-it"}, p.runFlags()...), podmanImage, "sh")...)
	r = ptyRun(t, p.Dir, 120*time.Second, p.Env, "# ", "echo typed-$((6*7)); exit 4\n", "podman", args...)
	if wantCode(t, "podman run -it", r, 4) && !strings.Contains(r.stdout, "typed-42") {
		t.Errorf("podman run -it: terminal showed %q, want typed-42", r.stdout)
	}
	r = p.run([]string{"-d", "--name", "term"}, "sleep", "600")
	if !wantCode(t, "podman run -d", r, 0) {
		return
	}
	r = ptyRun(t, p.Dir, 120*time.Second, p.Env, "", "", "podman", p.Args("exec", "-t", "term", "sh", "-c", "tty; exit 6")...)
	if wantCode(t, "podman exec -t", r, 6) && !strings.Contains(r.stdout, "/dev/pts/") {
		t.Errorf("podman exec -t: terminal showed %q, want a /dev/pts tty", r.stdout)
	}
}

// TestPodmanUserNamespace: --uidmap/--gidmap make a user namespace; root in the container is
// uid 100000 outside and can create files in its rootfs and /dev.
func TestPodmanUserNamespace(t *testing.T) {
	p := newPodman(t)
	r := p.run([]string{"--rm", "--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536"}, "sh", "-c",
		`cat /proc/self/uid_map; echo "id $(id -u):$(id -g)"; touch /tmp/f && ls -n /tmp/f`)
	if !wantCode(t, "podman run --uidmap", r, 0) {
		return
	}
	if f := strings.Fields(firstLine(r.stdout)); len(f) != 3 || f[0] != "0" || f[1] != "100000" || f[2] != "65536" {
		t.Errorf("uid_map %q, want 0 100000 65536", firstLine(r.stdout))
	}
	if !strings.Contains(r.stdout, "id 0:0") {
		t.Errorf("want root in the container: %q", r.stdout)
	}
}

// TestPodmanShortLivedConcurrent: many short containers at once (the runtime's start must not
// fail when the container's process exits right after it is released).
func TestPodmanShortLivedConcurrent(t *testing.T) {
	p := newPodman(t)
	failures := concurrently(t, 3, 8, func(w, i int) result {
		return p.cmd(append(append([]string{"run", "--rm"}, p.runFlags()...), podmanImage, "true")...)
	})
	if len(failures) > 0 {
		t.Errorf("%d of 24 concurrent `podman run --rm ... true` failed; first: %v", len(failures), failures[0])
	}
}
