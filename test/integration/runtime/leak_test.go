package runtime_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"berth/test/bundle"
)

// leakCycles is $BERTH_LEAK_CYCLES (default 1000): the create/start/wait/delete cycles of
// TestLeaks. The run and exec loops do a tenth of that each.
func leakCycles(t *testing.T) int {
	n := 1000
	if v := os.Getenv("BERTH_LEAK_CYCLES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("BERTH_LEAK_CYCLES=%q: want a positive number", v)
		}
	}
	return n
}

// privateCgroupParent returns a fresh "<CgroupParent()>/leak-<rand>" cgroup parent and removes
// its directories (which runtimes leave, as runc does) at cleanup.
func privateCgroupParent(t *testing.T) string {
	var buf [4]byte
	rand.Read(buf[:])
	parent := bundle.CgroupParent() + "/leak-" + hex.EncodeToString(buf[:])
	t.Cleanup(func() {
		// children first (a leftover is reported by the test itself)
		dirs := cgroupSubtree(t, parent)
		top, _ := bundle.CgroupDirs(parent)
		dirs = append(dirs, top...)
		slices.SortFunc(dirs, func(a, b string) int { return len(b) - len(a) })
		for _, d := range dirs {
			if err := os.Remove(d); err != nil {
				t.Logf("remove cgroup %s: %v", d, err)
			}
		}
	})
	return parent
}

// cgroupSubtree lists the directories below cgroupsPath (not cgroupsPath itself).
func cgroupSubtree(t *testing.T, cgroupsPath string) []string {
	dirs, err := bundle.CgroupDirs(cgroupsPath)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range dirs {
		filepath.WalkDir(d, func(p string, de os.DirEntry, err error) error {
			if err == nil && de.IsDir() && p != d {
				out = append(out, p)
			}
			return nil
		})
	}
	return out
}

type leakSnapshot struct {
	mounts  []string
	fds     int
	orphans []procInfo
}

func takeLeakSnapshot(t *testing.T) leakSnapshot {
	reapOrphans()
	return leakSnapshot{mounts: mountinfo(t), fds: fdCount(t), orphans: orphans()}
}

func (before leakSnapshot) check(t *testing.T, e *env, b *bundle.Bundle, parent string) {
	t.Helper()
	// exiting processes may take a moment to leave
	deadline := time.Now().Add(5 * time.Second)
	for {
		after := takeLeakSnapshot(t)
		var problems []string
		if len(after.mounts) != len(before.mounts) {
			removed, added := bundle.DiffLines(before.mounts, after.mounts)
			problems = append(problems, fmt.Sprintf("mountinfo has %d lines, was %d: removed %q added %q", len(after.mounts), len(before.mounts), removed, added))
		}
		if after.fds != before.fds {
			ents, _ := os.ReadDir("/proc/self/fd")
			var links []string
			for _, e := range ents {
				l, _ := os.Readlink("/proc/self/fd/" + e.Name())
				links = append(links, e.Name()+"->"+l)
			}
			problems = append(problems, fmt.Sprintf("test process has %d fds, had %d: %v", after.fds, before.fds, links))
		}
		for _, p := range after.orphans {
			if !slices.ContainsFunc(before.orphans, func(o procInfo) bool { return o.pid == p.pid }) {
				problems = append(problems, fmt.Sprintf("leftover process %+v", p))
			}
		}
		ctrProcs := (&ctr{e: e, t: t, b: b}).procs()
		for _, p := range ctrProcs {
			problems = append(problems, fmt.Sprintf("leftover container process %+v", p))
		}
		if sub := cgroupSubtree(t, parent); len(sub) > 0 {
			problems = append(problems, fmt.Sprintf("leftover cgroups %v", sub))
		}
		if names := dirEntries(e.root); len(names) > 0 {
			problems = append(problems, fmt.Sprintf("--root not empty: %v", names))
		}
		if len(problems) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, p := range problems {
				t.Error(p)
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestLeaks(t *testing.T) {
	e := newEnv(t)
	n := leakCycles(t)
	parent := privateCgroupParent(t)
	b := bundle.ForTest(t, bundle.WithTerminal(false), bundle.WithArgs("/bin/true"), bundle.WithCgroupsPath(parent+"/c"))
	pidFile := filepath.Join(t.TempDir(), "pid")
	var buf [4]byte
	rand.Read(buf[:])
	prefix := "leak-" + hex.EncodeToString(buf[:])

	// failures of single cycles are collected (and reported once, by kind) so that the leak
	// checks still run over the whole loop
	failed := map[string][]int{}
	fail := func(i int, r result) {
		msg := strings.TrimSpace(r.Stderr)
		if len(failed[msg]) == 0 {
			t.Errorf("cycle %d: %s", i, r)
		}
		failed[msg] = append(failed[msg], i)
	}
	cycle := func(i int) {
		id := fmt.Sprintf("%s-%d", prefix, i)
		if r := e.berth("create", "--bundle", b.Dir, "--pid-file", pidFile, id); r.Code != 0 {
			fail(i, r)
			e.berth("delete", "--force", id)
			return
		}
		pid := readPidFile(t, pidFile)
		if r := e.berth("start", id); r.Code != 0 {
			fail(i, r)
		}
		if !waitPidExit(pid, 10*time.Second) {
			t.Errorf("cycle %d: /bin/true (pid %d) did not exit", i, pid)
		}
		if r := e.berth("delete", id); r.Code != 0 {
			fail(i, r)
			e.berth("delete", "--force", id)
		}
	}
	// warm up (lazily made parent cgroups, the test process's own lazily opened fds)
	cycle(-1)
	before := takeLeakSnapshot(t)
	start := time.Now()
	for i := 0; i < n && len(failed) < 10; i++ {
		cycle(i)
	}
	d := time.Since(start)
	t.Logf("%d create/start/wait/delete cycles in %v (%v each)", n, d.Round(time.Millisecond), (d / time.Duration(n)).Round(time.Microsecond))
	for msg, cycles := range failed {
		t.Errorf("%d of %d cycles failed with %q", len(cycles), n+1, msg)
	}
	before.check(t, e, b, parent)

	t.Run("run", func(t *testing.T) {
		m := max(n/10, 1)
		start := time.Now()
		for i := 0; i < m; i++ {
			if r := e.berth("run", "--bundle", b.Dir, fmt.Sprintf("%s-run-%d", prefix, i)); r.Code != 0 {
				t.Fatalf("run %d: %s", i, r)
			}
		}
		t.Logf("%d runs in %v", m, time.Since(start).Round(time.Millisecond))
		before.check(t, e, b, parent)
	})
	t.Run("exec", func(t *testing.T) {
		m := max(n/10, 1)
		c := e.ctr(bundle.WithArgs("sleep", "1000"), bundle.WithCgroupsPath(parent+"/exec"))
		initPid := c.startDetached()
		execBefore := takeLeakSnapshot(t)
		for i := 0; i < m; i++ {
			if r := e.berth("exec", c.id, "true"); r.Code != 0 {
				t.Fatalf("exec %d: %s", i, r)
			}
		}
		r := ok(t, c.do("ps", "--format", "json"))
		if strings.TrimSpace(strings.Join(strings.Fields(r.Stdout), "")) != fmt.Sprintf("[%d]", initPid) {
			t.Errorf("after %d execs the container holds %s, want only its init %d", m, r.Stdout, initPid)
		}
		after := takeLeakSnapshot(t)
		for deadline := time.Now().Add(5 * time.Second); after.fds != execBefore.fds && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond) // a goroutine of ours may hold an fd for a moment
			after = takeLeakSnapshot(t)
		}
		if after.fds != execBefore.fds || len(after.mounts) != len(execBefore.mounts) {
			t.Errorf("exec loop: fds %d -> %d, mounts %d -> %d", execBefore.fds, after.fds, len(execBefore.mounts), len(after.mounts))
		}
		ok(t, c.do("delete", "--force"))
		waitPidExit(initPid, 5*time.Second)
		before.check(t, e, b, parent)
	})
}

var lsLinkLine = regexp.MustCompile(`^l[-rwxsStT]{9} `)

// fdsOf parses `ls -l /proc/self/fd` output into fd -> link target ("" when ls could not
// read it: its own, already closed directory fd).
func fdsOf(out string) map[string]string {
	fds := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if !lsLinkLine.MatchString(line) {
			continue
		}
		left, target, _ := strings.Cut(line, " -> ")
		f := strings.Fields(left)
		fds[f[len(f)-1]] = target
	}
	return fds
}

// checkOnlyStdio fails unless the listing shows fds 0-2 and ls's own directory fd 3.
func checkOnlyStdio(t *testing.T, how, out string) {
	t.Helper()
	fds := fdsOf(out)
	var names []string
	for fd := range fds {
		names = append(names, fd)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"0", "1", "2", "3"}) || (fds["3"] != "" && !strings.HasSuffix(fds["3"], "/fd")) {
		t.Errorf("%s: container process has fds %q, want 0 1 2 and ls's 3 (its /proc/self/fd):\n%s", how, fds, out)
	}
}

func TestNoFDLeakIntoContainer(t *testing.T) {
	e := newEnv(t)
	logFile := filepath.Join(t.TempDir(), "log")
	// extra fds given to the runtime without --preserve-fds must not reach the container
	extra := make([]*os.File, 3)
	for i := range extra {
		f, err := os.Open("/dev/null")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		extra[i] = f
	}
	opts := []cmdOpt{withExtraFiles(extra...), globalFlags("--log", logFile, "--log-format", "json")}

	t.Run("run", func(t *testing.T) {
		c := e.ctr(bundle.WithArgs("ls", "-l", "/proc/self/fd"))
		r := e.berthWith(opts, "run", "--bundle", c.b.Dir, c.id)
		if r.Code != 0 {
			t.Fatal(r)
		}
		checkOnlyStdio(t, "run", r.Stdout)
	})
	t.Run("create-start", func(t *testing.T) {
		c := e.ctr(bundle.WithArgs("ls", "-l", "/proc/self/fd"))
		out, err := os.CreateTemp(t.TempDir(), "out")
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		ok(t, e.berthWith(append(opts, withStdout(out)), "create", "--bundle", c.b.Dir, c.id))
		ok(t, e.berthWith(opts, "start", c.id))
		c.waitStatus("stopped")
		data, _ := os.ReadFile(out.Name())
		checkOnlyStdio(t, "create+start", string(data))
	})
	t.Run("exec", func(t *testing.T) {
		c := e.ctr(bundle.WithArgs("sleep", "1000"))
		c.startDetached()
		r := e.berthWith(opts, "exec", c.id, "ls", "-l", "/proc/self/fd")
		if r.Code != 0 {
			t.Fatal(r)
		}
		checkOnlyStdio(t, "exec", r.Stdout)
		// the init itself holds only 0-2 too
		r = ok(t, e.berth("exec", c.id, "ls", "/proc/1/fd"))
		if got := strings.Fields(r.Stdout); !slices.Equal(got, []string{"0", "1", "2"}) {
			t.Errorf("container init has fds %v, want 0 1 2", got)
		}
	})
	t.Run("exec-tty", func(t *testing.T) {
		c := e.ctr(bundle.WithArgs("sleep", "1000"))
		c.startDetached()
		cs := newConsoleSocket(t)
		ok(t, e.berthWith(opts, "exec", "-t", "-d", "--console-socket", cs.path, c.id, "ls", "-l", "/proc/self/fd"))
		out, _ := readPty(cs.receive(t), 20*time.Second)
		checkOnlyStdio(t, "exec --tty", strings.ReplaceAll(out, "\r\n", "\n"))
	})
}
