package durability_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"berth/test/engine"
)

// loggers is how many logging containers outlive berthd.
const loggers = 20

// loggerScript prints 1, 2, 3, ... one number every ~100 ms, and exits 0 on SIGTERM.
const loggerScript = `trap 'exit 0' TERM; i=0; while :; do i=$((i+1)); echo $i; sleep 0.1; done`

// TestKill9ContainersOutliveBerthd is acceptance 3 of issue 5: containers outlive a berthd
// killed with SIGKILL, keep running and logging under their shims while it is down, and a
// restarted berthd takes them back: ps, logs -f with no line lost, stop, rm; exits that
// happened while it was down are recorded with their codes, and a --restart always container
// that kept running is left as it was.
func TestKill9ContainersOutliveBerthd(t *testing.T) {
	d, img := start(t)

	// Twenty loggers, each followed by a docker logs -f.
	names := make([]string, loggers)
	ids := map[string]string{}
	pids := map[string]int{}
	logPaths := map[string]string{}
	for i := range names {
		names[i] = fmt.Sprintf("logger-%02d", i)
		ids[names[i]] = d.Must("run", "-d", "--name", names[i], img, "sh", "-c", loggerScript)
	}
	inspect := func(name, format string) string { return d.Must("inspect", "-f", format, name) }
	for _, n := range names {
		pids[n], _ = strconv.Atoi(inspect(n, "{{.State.Pid}}"))
		logPaths[n] = inspect(n, "{{.LogPath}}")
		if pids[n] <= 0 || logPaths[n] == "" {
			t.Fatalf("%s: inspect gives pid %d, log path %q", n, pids[n], logPaths[n])
		}
	}
	before := map[string]*stream{}
	for _, n := range names {
		before[n] = follow(t, d, "logs", "-f", n)
	}
	for _, n := range names {
		waitFor(t, n+": docker logs -f shows lines", func() (bool, string) {
			got := before[n].Lines()
			return len(got) >= 5, fmt.Sprintf("%d lines, stderr %q", len(got), before[n].Stderr())
		})
	}

	// A container that will exit with 7 while berthd is down (when the test creates its
	// trigger file), one that will be killed from outside, one that restarts always.
	trigger := t.TempDir()
	exit7 := d.Must("run", "-d", "--name", "exit7", "-v", trigger+":/trigger", img, "sh", "-c",
		"while [ ! -e /trigger/go ]; do sleep 0.1; done; exit 7")
	killed := d.Must("run", "-d", "--name", "killed", img, "sleep", "100000")
	killedPid, _ := strconv.Atoi(inspect("killed", "{{.State.Pid}}"))
	d.Must("run", "-d", "--name", "always", "--restart", "always", img, "sleep", "100000")
	alwaysPid := inspect("always", "{{.State.Pid}}")
	alwaysStarted := inspect("always", "{{.State.StartedAt}}")
	if killedPid <= 0 {
		t.Fatalf("killed: pid %d", killedPid)
	}

	d.Kill9()
	t.Logf("berthd killed with SIGKILL")

	// The streams of the old berthd break.
	for _, n := range names {
		waitFor(t, n+": docker logs -f ends when berthd dies", func() (bool, string) {
			return before[n].exited(), fmt.Sprintf("%d lines so far", len(before[n].Lines()))
		})
		if err := checkSequence(before[n].Lines()); err != nil {
			t.Fatalf("%s: docker logs -f before the kill: %v", n, err)
		}
	}

	// While berthd is down: the shims and the containers live, and the logs grow.
	sizes := map[string]int64{}
	for _, n := range names {
		sizes[n] = fileSize(logPaths[n])
		if shims := engine.ProcessesUsing(shimDir(d, ids[n])); len(shims) == 0 {
			t.Errorf("%s: no shim process while berthd is down", n)
		}
		if !processAlive(pids[n]) {
			t.Errorf("%s: its init (pid %d) is gone while berthd is down", n, pids[n])
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	for _, n := range names {
		waitFor(t, n+": its log grows while berthd is down", func() (bool, string) {
			s := fileSize(logPaths[n])
			return s > sizes[n], fmt.Sprintf("size %d, was %d", s, sizes[n])
		})
	}
	if err := os.WriteFile(filepath.Join(trigger, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(killedPid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill the container's init %d: %v", killedPid, err)
	}
	for _, id := range []string{exit7, killed} {
		waitFor(t, "the shim of "+id[:12]+" records its exit while berthd is down", func() (bool, string) {
			_, err := os.Stat(filepath.Join(shimDir(d, id), "exit"))
			return err == nil, fmt.Sprint(err)
		})
	}

	d.Restart()
	t.Logf("berthd restarted")

	// All twenty, and the --restart always one, are running.
	running := map[string]bool{}
	for _, l := range strings.Split(d.Must("ps", "--format", "{{.Names}} {{.State}}"), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[1] == "running" {
			running[f[0]] = true
		}
	}
	for _, n := range append(append([]string(nil), names...), "always") {
		if !running[n] {
			t.Errorf("docker ps after the restart: %s is not listed as running", n)
		}
	}
	if got := inspect("always", "{{.State.Pid}} {{.State.StartedAt}} {{.RestartCount}}"); got != alwaysPid+" "+alwaysStarted+" 0" {
		t.Errorf("always: pid, start and restart count %q after the restart, want %q (the same container process, never restarted)", got, alwaysPid+" "+alwaysStarted+" 0")
	}
	for _, c := range []struct{ name, id, code string }{{"exit7", exit7, "7"}, {"killed", killed, "137"}} {
		if got := inspect(c.name, "{{.State.Status}} {{.State.ExitCode}}"); got != "exited "+c.code {
			t.Errorf("%s: state %q after the restart, want %q", c.name, got, "exited "+c.code)
		}
		if st := d.Must("ps", "-a", "--filter", "id="+c.id, "--format", "{{.Status}}"); !strings.HasPrefix(st, "Exited ("+c.code+")") {
			t.Errorf("%s: docker ps -a shows %q, want Exited (%s) ...", c.name, st, c.code)
		}
		if code := d.Must("wait", c.name); code != c.code {
			t.Errorf("%s: docker wait gives %q, want %s", c.name, code, c.code)
		}
	}

	// New docker logs -f streams show every line from the first, those read before included,
	// and keep following.
	after := map[string]*stream{}
	for _, n := range names {
		after[n] = follow(t, d, "logs", "-f", n)
	}
	for _, n := range names {
		target := len(before[n].Lines()) + 5
		if s := fileSize(logPaths[n]); s > 0 {
			// Lines written after the restart, too: past what the file held at this point.
			b, _ := os.ReadFile(logPaths[n])
			target = strings.Count(string(b), "\n") + 5
		}
		waitFor(t, n+": docker logs -f after the restart follows new lines", func() (bool, string) {
			return after[n].lastNumber() >= target || after[n].exited(), fmt.Sprintf("last line %d, want %d; stderr %q", after[n].lastNumber(), target, after[n].Stderr())
		})
	}
	d.Must(append([]string{"stop"}, names...)...)
	for _, n := range names {
		waitFor(t, n+": docker logs -f ends after docker stop", func() (bool, string) {
			return after[n].exited(), fmt.Sprintf("last line %d", after[n].lastNumber())
		})
		if after[n].err != nil {
			t.Errorf("%s: docker logs -f after the restart: %v: %s", n, after[n].err, after[n].Stderr())
		}
		got, old := after[n].Lines(), before[n].Lines()
		if err := checkSequence(got); err != nil {
			t.Errorf("%s: docker logs -f after the restart: %v", n, err)
			continue
		}
		if len(got) < len(old) {
			t.Errorf("%s: %d lines after the restart, fewer than the %d read before", n, len(got), len(old))
			continue
		}
		all := strings.Fields(d.Must("logs", n))
		if len(all) != len(got) {
			t.Errorf("%s: docker logs -f ended at line %d, but the log has %d lines", n, len(got), len(all))
		}
		if st := inspect(n, "{{.State.Status}} {{.State.ExitCode}}"); st != "exited 0" {
			t.Errorf("%s: after docker stop: %q, want exited 0", n, st)
		}
	}
	d.Must("stop", "always")
	d.Must(append([]string{"rm"}, append(names, "always", "exit7", "killed")...)...)
	if left := d.Must("ps", "-aq"); left != "" {
		t.Errorf("docker ps -a after docker rm: %q", left)
	}
}
