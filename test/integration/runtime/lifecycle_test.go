package runtime_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"berth/test/bundle"
)

// trapTerm is an init that exits 0 on SIGTERM: a pid namespace's init ignores signals it has
// no handler for.
var trapTerm = []string{"sh", "-c", `trap "exit 0" TERM; echo ready; sleep 1000 & wait`}

// waitForOutput waits until the file f (a container's stdout) contains want.
func waitForOutput(t *testing.T, f *os.File, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, _ := os.ReadFile(f.Name())
		if strings.Contains(string(data), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("container never printed %q (got %q)", want, data)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLifecycle(t *testing.T) {
	requireSetup(t)
	for _, sig := range []string{"TERM", "SIGKILL", "9", "KILL"} {
		t.Run("kill-"+sig, func(t *testing.T) {
			e := newEnv(t)
			c := e.ctr(bundle.WithArgs(trapTerm...),
				bundle.WithSpec(func(s *specs.Spec) { s.Annotations = map[string]string{"org.berth.test": "lifecycle"} }))
			pidFile := filepath.Join(t.TempDir(), "init.pid")
			out, err := os.Create(filepath.Join(t.TempDir(), "stdout"))
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			ok(t, e.berthWith([]cmdOpt{withStdout(out)}, "create", "--bundle", c.b.Dir, "--pid-file", pidFile, c.id))
			pid := readPidFile(t, pidFile)

			st := c.state()
			if st.Status != "created" || st.Pid != pid || st.ID != c.id || st.Bundle != c.b.Dir {
				t.Errorf("state after create: %+v (pid file %d, bundle %s)", st, pid, c.b.Dir)
			}
			if st.OCIVersion == "" || st.Created.IsZero() || time.Since(st.Created) > time.Minute {
				t.Errorf("state after create: ociVersion %q created %v", st.OCIVersion, st.Created)
			}
			if st.Annotations["org.berth.test"] != "lifecycle" {
				t.Errorf("state after create: annotations %v, want the spec's", st.Annotations)
			}
			if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
				t.Errorf("init pid %d: %v", pid, err)
			}

			ok(t, c.do("start"))
			if st := c.state(); st.Status != "running" || st.Pid != pid {
				t.Errorf("state after start: %+v", st)
			}

			// the shell ignores TERM (as a pid namespace's init) until its trap is set
			waitForOutput(t, out, "ready")
			ok(t, c.e.berth("kill", c.id, sig))
			c.waitStatus("stopped")
			if !waitPidExit(pid, 5*time.Second) {
				t.Errorf("init %d still alive", pid)
			}
			// kill of a stopped container is an error
			fails(t, c.e.berth("kill", c.id, "KILL"), "not running")

			ok(t, c.do("delete"))
			fails(t, c.do("state"), "does not exist")
			if names := dirEntries(e.root); len(names) != 0 {
				t.Errorf("--root holds %v after delete", names)
			}
			if dirs, _ := c.b.CgroupDirs(); len(dirs) != 0 {
				t.Errorf("cgroups left after delete: %v", dirs)
			}
		})
	}
}

func TestKillBadSignal(t *testing.T) {
	e := newEnv(t)
	c := e.ctr(bundle.WithArgs("sleep", "1000"))
	c.startDetached()
	fails(t, e.berth("kill", c.id, "NOSUCHSIG"), "NOSUCHSIG")
	fails(t, e.berth("kill", c.id, "999"), "999")
	if st := c.state(); st.Status != "running" {
		t.Errorf("status %q after bad kill", st.Status)
	}
}

func TestRunExitStatus(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name string
		args []string
		opts []bundle.Option
		code int
	}{
		{"exit0", []string{"true"}, nil, 0},
		{"exit7", []string{"sh", "-c", "exit 7"}, nil, 7},
		{"exit255", []string{"sh", "-c", "exit 255"}, nil, 255},
		// without a pid namespace the shell may kill itself
		{"SIGKILL", []string{"sh", "-c", "kill -KILL $$"}, []bundle.Option{bundle.WithoutNamespace(specs.PIDNamespace)}, 128 + 9},
		{"SIGUSR1", []string{"sh", "-c", "kill -USR1 $$"}, []bundle.Option{bundle.WithoutNamespace(specs.PIDNamespace)}, 128 + 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := e.ctr(append(tc.opts, bundle.WithArgs(tc.args...))...)
			r := c.run()
			if r.Code != tc.code {
				t.Errorf("exit code %d, want %d: %s", r.Code, tc.code, r)
			}
			// run deletes the container once it exited
			fails(t, c.do("state"), "does not exist")
		})
	}
	t.Run("stdout", func(t *testing.T) {
		c := e.ctr(bundle.WithArgs("sh", "-c", "echo out; echo err >&2"))
		r := ok(t, c.run())
		if r.Stdout != "out\n" || !strings.Contains(r.Stderr, "err\n") {
			t.Errorf("stdio not passed through: %s", r)
		}
	})
	t.Run("killed-from-outside", func(t *testing.T) {
		c := e.ctr(bundle.WithArgs("sleep", "1000"))
		wait := runInBackground(t, e.command("run", "--bundle", c.b.Dir, c.id))
		deadline := time.Now().Add(10 * time.Second)
		for {
			if r := e.berth("state", c.id); r.Code == 0 && strings.Contains(r.Stdout, `"running"`) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("run never reached running")
			}
			time.Sleep(20 * time.Millisecond)
		}
		ok(t, e.berth("kill", c.id, "KILL"))
		if r := wait(20*time.Second, "run did not return after its container was killed"); r.Code != 137 {
			t.Errorf("run of a container killed with SIGKILL: exit %d, want 137: %s", r.Code, r)
		}
	})
}

func TestRunDetached(t *testing.T) {
	e := newEnv(t)
	c := e.ctr(bundle.WithArgs("sleep", "1000"))
	pidFile := filepath.Join(t.TempDir(), "pid")
	start := time.Now()
	ok(t, c.run("-d", "--pid-file", pidFile))
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("run -d took %v", d)
	}
	pid := readPidFile(t, pidFile)
	if st := c.state(); st.Status != "running" || st.Pid != pid {
		t.Errorf("state after run -d: %+v, pid file %d", st, pid)
	}
	fails(t, c.do("delete"), "running")
	ok(t, c.do("delete", "--force"))
	if !waitPidExit(pid, 5*time.Second) {
		t.Errorf("init %d alive after delete --force", pid)
	}
	fails(t, c.do("state"), "does not exist")
}

func TestList(t *testing.T) {
	e := newEnv(t)
	// no container yet (the root does not even exist)
	r := ok(t, e.berth("list", "--format", "json"))
	if strings.TrimSpace(r.Stdout) != "[]" {
		t.Errorf("list of an empty root: %q, want []", r.Stdout)
	}
	created := e.ctr(bundle.WithArgs("sleep", "1000"))
	ok(t, created.create())
	running := e.ctr(bundle.WithArgs("sleep", "1000"))
	running.startDetached()

	r = ok(t, e.berth("list"))
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[0], "STATUS") {
		t.Errorf("list table: %q", r.Stdout)
	}
	for _, want := range [][2]string{{created.id, "created"}, {running.id, "running"}} {
		found := false
		for _, l := range lines[1:] {
			f := strings.Fields(l)
			if len(f) >= 3 && f[0] == want[0] && f[2] == want[1] {
				found = true
			}
		}
		if !found {
			t.Errorf("list table lacks %s %s:\n%s", want[0], want[1], r.Stdout)
		}
	}

	r = ok(t, e.berth("list", "--format", "json"))
	var states []state
	if err := json.Unmarshal([]byte(r.Stdout), &states); err != nil {
		t.Fatalf("list json: %v\n%s", err, r.Stdout)
	}
	got := map[string]string{}
	for _, s := range states {
		got[s.ID] = s.Status
		if s.Pid <= 0 || s.Bundle == "" {
			t.Errorf("list json entry %+v", s)
		}
	}
	if len(got) != 2 || got[created.id] != "created" || got[running.id] != "running" {
		t.Errorf("list json: %v", got)
	}

	r = ok(t, e.berth("list", "-q"))
	ids := strings.Fields(r.Stdout)
	slices.Sort(ids)
	want := []string{created.id, running.id}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("list -q: %q, want %q", r.Stdout, want)
	}
}

func TestPs(t *testing.T) {
	e := newEnv(t)
	c := e.ctr(bundle.WithArgs("sh", "-c", "sleep 1000 & wait"))
	pid := c.startDetached()
	var pids []int
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := ok(t, c.do("ps", "--format", "json"))
		pids = nil
		if err := json.Unmarshal([]byte(r.Stdout), &pids); err != nil {
			t.Fatalf("ps json: %v\n%s", err, r.Stdout)
		}
		if len(pids) == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(pids) != 2 || !slices.Contains(pids, pid) {
		t.Errorf("ps --format json: %v, want the init %d and its sleep", pids, pid)
	}
	r := ok(t, c.do("ps"))
	if !strings.Contains(r.Stdout, "PID") || !strings.Contains(r.Stdout, strconv.Itoa(pid)) {
		t.Errorf("ps table:\n%s", r.Stdout)
	}
}

func TestPauseResume(t *testing.T) {
	e := newEnv(t)
	c := e.ctr(bundle.WithArgs("sleep", "1000"))
	pid := c.startDetached()
	ok(t, c.do("pause"))
	if st := c.state(); st.Status != "paused" || st.Pid != pid {
		t.Errorf("state after pause: %+v", st)
	}
	if f := c.cgroupFile("freezer", "freezer.state"); f != "FROZEN" {
		t.Errorf("freezer.state %q after pause", f)
	}
	fails(t, c.do("pause"), "not running")
	fails(t, e.berth("exec", c.id, "true"), "paused")
	ok(t, c.do("resume"))
	if st := c.state(); st.Status != "running" {
		t.Errorf("state after resume: %+v", st)
	}
	if f := c.cgroupFile("freezer", "freezer.state"); f != "THAWED" {
		t.Errorf("freezer.state %q after resume", f)
	}
	fails(t, c.do("resume"), "not paused")
	// a paused container can be force-deleted
	ok(t, c.do("pause"))
	ok(t, c.do("delete", "--force"))
	if !waitPidExit(pid, 5*time.Second) {
		t.Errorf("paused init %d survived delete --force", pid)
	}
}

func TestUpdate(t *testing.T) {
	e := newEnv(t)
	c := e.ctr(bundle.WithArgs("sleep", "1000"))
	c.startDetached()

	ok(t, c.do("update", "--memory", "104857600"))
	if v := c.cgroupFile("memory", "memory.limit_in_bytes"); v != "104857600" {
		t.Errorf("memory.limit_in_bytes %s after update --memory 104857600", v)
	}
	ok(t, c.do("update", "--pids-limit", "42"))
	if v := c.cgroupFile("pids", "pids.max"); v != "42" {
		t.Errorf("pids.max %s after update --pids-limit 42", v)
	}
	if v := c.cgroupFile("memory", "memory.limit_in_bytes"); v != "104857600" {
		t.Errorf("update --pids-limit changed memory.limit_in_bytes to %s", v)
	}
	res := `{"memory": {"limit": 209715200}, "pids": {"limit": 77}, "cpu": {"shares": 512}}`
	ok(t, c.e.berthWith([]cmdOpt{withStdin(strings.NewReader(res))}, "update", "-r", "-", c.id))
	if v := c.cgroupFile("memory", "memory.limit_in_bytes"); v != "209715200" {
		t.Errorf("memory.limit_in_bytes %s after update -r -", v)
	}
	if v := c.cgroupFile("pids", "pids.max"); v != "77" {
		t.Errorf("pids.max %s after update -r -", v)
	}
	if v := c.cgroupFile("cpu", "cpu.shares"); v != "512" {
		t.Errorf("cpu.shares %s after update -r -", v)
	}
	fails(t, c.e.berthWith([]cmdOpt{withStdin(strings.NewReader("{not json"))}, "update", "-r", "-", c.id), "resources")
	// the limit is enforced: 77 pids
	r := e.berth("exec", c.id, "sh", "-c", "for i in $(seq 100); do sleep 5 & done; wait")
	if !strings.Contains(r.Stderr, "fork") {
		t.Errorf("pids limit 77 not hit by 100 background sleeps: %s", r)
	}
}

func TestEventsStats(t *testing.T) {
	e := newEnv(t)
	c := e.ctr(bundle.WithArgs("sh", "-c", "sleep 1000 & wait"))
	c.startDetached()
	r := ok(t, c.do("events", "--stats"))
	var ev struct {
		Type string                     `json:"type"`
		ID   string                     `json:"id"`
		Data map[string]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &ev); err != nil {
		t.Fatalf("events --stats: %v\n%s", err, r.Stdout)
	}
	if ev.Type != "stats" || ev.ID != c.id {
		t.Errorf("events --stats: type %q id %q", ev.Type, ev.ID)
	}
	for _, k := range []string{"cpu", "memory", "pids"} {
		if _, ok := ev.Data[k]; !ok {
			t.Errorf("events --stats data lacks %q: %s", k, r.Stdout)
		}
	}
	var data struct {
		CPU struct {
			Usage struct {
				Total uint64 `json:"total"`
			} `json:"usage"`
		} `json:"cpu"`
		Memory struct {
			Usage struct {
				Usage uint64 `json:"usage"`
			} `json:"usage"`
		} `json:"memory"`
		Pids struct {
			Current uint64 `json:"current"`
		} `json:"pids"`
	}
	raw, _ := json.Marshal(ev.Data)
	json.Unmarshal(raw, &data)
	if data.Pids.Current != 2 {
		t.Errorf("pids.current %d, want 2 (sh and sleep)", data.Pids.Current)
	}
	if data.CPU.Usage.Total == 0 || data.Memory.Usage.Usage == 0 {
		t.Errorf("cpu usage %d, memory usage %d: want both > 0", data.CPU.Usage.Total, data.Memory.Usage.Usage)
	}
	// stats of a stopped container are an error
	ok(t, e.berth("kill", c.id, "KILL"))
	c.waitStatus("stopped")
	fails(t, c.do("events", "--stats"), "stopped")
}

func TestFeatures(t *testing.T) {
	e := newEnv(t)
	r := ok(t, e.berth("features"))
	var f struct {
		OCIVersionMin string   `json:"ociVersionMin"`
		OCIVersionMax string   `json:"ociVersionMax"`
		Hooks         []string `json:"hooks"`
		MountOptions  []string `json:"mountOptions"`
		Linux         struct {
			Namespaces   []string `json:"namespaces"`
			Capabilities []string `json:"capabilities"`
			Seccomp      *struct {
				Enabled *bool    `json:"enabled"`
				Actions []string `json:"actions"`
			} `json:"seccomp"`
		} `json:"linux"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &f); err != nil {
		t.Fatalf("features: %v\n%s", err, r.Stdout)
	}
	if f.OCIVersionMin == "" || f.OCIVersionMax == "" {
		t.Errorf("features: ociVersionMin %q ociVersionMax %q", f.OCIVersionMin, f.OCIVersionMax)
	}
	for _, h := range []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"} {
		if !slices.Contains(f.Hooks, h) {
			t.Errorf("features hooks lack %s: %v", h, f.Hooks)
		}
	}
	for _, ns := range []string{"pid", "network", "mount", "ipc", "uts", "user", "cgroup"} {
		if !slices.Contains(f.Linux.Namespaces, ns) {
			t.Errorf("features namespaces lack %s: %v", ns, f.Linux.Namespaces)
		}
	}
	for _, o := range []string{"ro", "rbind", "nosuid"} {
		if !slices.Contains(f.MountOptions, o) {
			t.Errorf("features mountOptions lack %s", o)
		}
	}
	if !slices.Contains(f.Linux.Capabilities, "CAP_SYS_ADMIN") {
		t.Errorf("features capabilities lack CAP_SYS_ADMIN")
	}
	if f.Linux.Seccomp == nil || f.Linux.Seccomp.Enabled == nil || !*f.Linux.Seccomp.Enabled || !slices.Contains(f.Linux.Seccomp.Actions, "SCMP_ACT_ERRNO") {
		t.Errorf("features seccomp: %+v", f.Linux.Seccomp)
	}
}

func TestSpec(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	ok(t, e.berthWith([]cmdOpt{inDir(dir)}, "spec"))
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatalf("config.json from spec: %v", err)
	}
	if s.Version == "" || s.Root == nil || s.Root.Path != "rootfs" || s.Process == nil || len(s.Process.Args) == 0 || s.Linux == nil || len(s.Linux.Namespaces) == 0 {
		t.Errorf("spec wrote an incomplete config: %s", data)
	}
	// does not overwrite
	fails(t, e.berthWith([]cmdOpt{inDir(dir)}, "spec"), "exists")
	// --bundle
	other := t.TempDir()
	ok(t, e.berth("spec", "--bundle", other))
	if _, err := os.Stat(filepath.Join(other, "config.json")); err != nil {
		t.Errorf("spec --bundle: %v", err)
	}
	// the written config runs with a busybox rootfs
	c := e.ctr()
	os.Remove(c.b.ConfigPath())
	ok(t, e.berth("spec", "--bundle", c.b.Dir))
	var gen specs.Spec
	raw, _ := os.ReadFile(c.b.ConfigPath())
	json.Unmarshal(raw, &gen)
	gen.Process.Terminal = false
	gen.Process.Args = []string{"sh", "-c", "echo from-spec"}
	gen.Linux.CgroupsPath = c.b.Spec.Linux.CgroupsPath
	c.b.Spec = &gen
	c.save()
	if r := ok(t, c.run()); r.Stdout != "from-spec\n" {
		t.Errorf("container from `spec` config: %s", r)
	}
}

func TestLogJSON(t *testing.T) {
	e := newEnv(t)
	logPath := filepath.Join(t.TempDir(), "log.json")
	r := e.berthWith([]cmdOpt{globalFlags("--log", logPath, "--log-format", "json")}, "state", "no-such-container")
	if r.Code == 0 {
		t.Fatalf("state of a missing container succeeded: %s", r)
	}
	// a failing create, too
	c := e.ctr(bundle.WithArgs("/no/such/binary"))
	r2 := e.berthWith([]cmdOpt{globalFlags("--log", logPath, "--log-format", "json")}, "create", "--bundle", c.b.Dir, c.id)
	if r2.Code == 0 {
		t.Fatalf("create of a missing binary succeeded: %s", r2)
	}
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatalf("log file: %v", err)
	}
	var errs []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Errorf("log line is not JSON: %q: %v", line, err)
			continue
		}
		if _, ok := entry["time"]; !ok {
			t.Errorf("log line without time: %q", line)
		}
		if entry["level"] == "error" {
			msg, _ := entry["msg"].(string)
			errs = append(errs, msg)
		}
	}
	if len(errs) != 2 || !strings.Contains(errs[0], "no-such-container") || !strings.Contains(errs[1], "/no/such/binary") {
		t.Errorf("want 2 error entries naming the container and the binary, got %q\nlog:\n%s", errs, data)
	}
	// bad --log-format
	fails(t, e.berthWith([]cmdOpt{globalFlags("--log-format", "xml")}, "list"), "xml")
}

// TestStartShortLived starts containers whose process exits at once while their parent (we,
// the subreaper, as a containerd shim would) reaps them immediately. `start` must not fail
// because the process is already gone when it returns. The runtime runs at low priority on
// the init's CPU so that the woken init tends to run (and exit) before `start` goes on.
func TestStartShortLived(t *testing.T) {
	e := newEnv(t)
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		t.Skip("no taskset")
	}
	c := e.ctr(bundle.WithArgs("/bin/true"))
	pidFile := filepath.Join(t.TempDir(), "pid")
	var failures []string
	const n = 50
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("%s-%d", c.id, i)
		create := exec.Command(taskset, "-c", "0", berthBin, "--root", e.root, "create", "--bundle", c.b.Dir, "--pid-file", pidFile, id)
		ok(t, runCmd(t, create))
		pid := readPidFile(t, pidFile)
		reaped := make(chan struct{})
		go func() {
			var ws unix.WaitStatus
			unix.Wait4(pid, &ws, 0, nil)
			close(reaped)
		}()
		start := exec.Command(taskset, "-c", "0", "nice", "-n", "19", berthBin, "--root", e.root, "start", id)
		if r := runCmd(t, start); r.Code != 0 {
			failures = append(failures, strings.TrimSpace(r.Stderr))
		}
		select {
		case <-reaped:
		case <-time.After(10 * time.Second):
			t.Fatalf("container %s (pid %d) did not exit", id, pid)
		}
		ok(t, e.berth("delete", "--force", id))
	}
	if len(failures) > 0 {
		t.Errorf("%d of %d starts of a short-lived container failed, e.g. %q", len(failures), n, failures[0])
	}
}

func TestRunForwardsSignals(t *testing.T) {
	e := newEnv(t)
	c := e.ctr(bundle.WithArgs("sh", "-c", `trap "exit 42" TERM; echo ready; sleep 1000 & wait`))
	cmd := e.command("run", "--bundle", c.b.Dir, c.id)
	out, err := os.Create(filepath.Join(t.TempDir(), "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout = out
	if err := startTracked(cmd); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- waitTracked(cmd) }()
	t.Cleanup(func() { cmd.Process.Kill() })
	waitForOutput(t, out, "ready") // the trap is set
	cmd.Process.Signal(unix.SIGTERM)
	select {
	case <-done:
		if code := cmd.ProcessState.ExitCode(); code != 42 {
			t.Errorf("run after SIGTERM: exit %d, want 42 (the container's trap)", code)
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("SIGTERM to `run` was not forwarded to the container")
	}
}

func TestCreatedContainer(t *testing.T) {
	e := newEnv(t)
	t.Run("kill", func(t *testing.T) {
		c := e.ctr(bundle.WithArgs("sleep", "1000"))
		pidFile := filepath.Join(t.TempDir(), "pid")
		ok(t, c.create("--pid-file", pidFile))
		pid := readPidFile(t, pidFile)
		ok(t, e.berth("kill", c.id, "KILL"))
		c.waitStatus("stopped")
		if !waitPidExit(pid, 5*time.Second) {
			t.Errorf("init %d alive", pid)
		}
		ok(t, c.do("delete"))
	})
	t.Run("delete", func(t *testing.T) {
		// a created container may be deleted without --force (runc)
		c := e.ctr(bundle.WithArgs("sleep", "1000"))
		pidFile := filepath.Join(t.TempDir(), "pid")
		ok(t, c.create("--pid-file", pidFile))
		pid := readPidFile(t, pidFile)
		ok(t, c.do("delete"))
		if !waitPidExit(pid, 5*time.Second) {
			t.Errorf("init %d of a deleted created container still alive", pid)
		}
		if dirs, _ := c.b.CgroupDirs(); len(dirs) > 0 {
			t.Errorf("cgroups left: %v", dirs)
		}
		fails(t, c.do("state"), "does not exist")
	})
	t.Run("ps", func(t *testing.T) {
		c := e.ctr(bundle.WithArgs("sleep", "1000"))
		pidFile := filepath.Join(t.TempDir(), "pid")
		ok(t, c.create("--pid-file", pidFile))
		pid := readPidFile(t, pidFile)
		r := ok(t, c.do("ps", "--format", "json"))
		if strings.Join(strings.Fields(r.Stdout), "") != fmt.Sprintf("[%d]", pid) {
			t.Errorf("ps of a created container: %s, want [%d]", r.Stdout, pid)
		}
	})
}

func TestKillAll(t *testing.T) {
	// without a pid namespace, killing the init leaves its children: kill --all gets them
	e := newEnv(t)
	c := e.ctr(bundle.WithoutNamespace(specs.PIDNamespace), bundle.WithArgs("sh", "-c", "sleep 1000 & sleep 1000 & wait"))
	c.startDetached()
	deadline := time.Now().Add(5 * time.Second)
	for len(c.procs()) < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(c.procs()); n != 3 {
		t.Fatalf("container has %d processes, want 3", n)
	}
	ok(t, e.berth("kill", "--all", c.id, "KILL"))
	c.waitStatus("stopped")
	deadline = time.Now().Add(5 * time.Second)
	for len(c.procs()) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if p := c.procs(); len(p) > 0 {
		t.Errorf("kill --all KILL left %v", p)
	}
	ok(t, c.do("delete"))
}

func TestConcurrentContainers(t *testing.T) {
	// several runtimes at once on one --root
	e := newEnv(t)
	const workers, each = 6, 5
	bundles := make([]*ctr, workers)
	for i := range bundles {
		bundles[i] = e.ctr(bundle.WithArgs("sh", "-c", "echo hi"))
	}
	done := make(chan string, workers)
	for w := 0; w < workers; w++ {
		go func(c *ctr) {
			for i := 0; i < each; i++ {
				id := fmt.Sprintf("%s-%d", c.id, i)
				if r := e.berth("run", "--bundle", c.b.Dir, id); r.Code != 0 || r.Stdout != "hi\n" {
					done <- fmt.Sprintf("run %s: %s", id, r)
					return
				}
			}
			done <- ""
		}(bundles[w])
	}
	for w := 0; w < workers; w++ {
		if msg := <-done; msg != "" {
			t.Error(msg)
		}
	}
	if names := dirEntries(e.root); len(names) > 0 {
		t.Errorf("--root not empty: %v", names)
	}
}
