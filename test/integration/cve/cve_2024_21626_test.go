package cve_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"berth/test/bundle"
)

// CVE-2024-21626: runc leaked an fd of a host directory (/sys/fs/cgroup) into the container's
// init and exec'd processes; a working directory of /proc/self/fd/N then started the process
// with its cwd on the host, and ".." walked to the host's root. berth's child holds host fds
// (/proc, the state directory, the rootfs) until it execs, so the cwd is checked with getcwd after
// chdir, and every fd above 2 is close-on-exec.

// escapeScript prints what a process sees through its cwd: a host marker file reached by
// walking up with "..", and getcwd's view.
func escapeScript(marker string) string {
	up := strings.Repeat("../", 24)
	return fmt.Sprintf("echo STARTED; cat %s 2>/dev/null; ls -a .. ../.. 2>&1 | head -40; pwd -P; ls /proc/self/fd; exit 0", filepath.Join(up, marker))
}

func checkNoEscape(t *testing.T, what string, res result, marker, content string) {
	t.Helper()
	if strings.Contains(res.Stdout, content) {
		t.Errorf("%s: the process read the host file %s through its working directory:\n%s", what, marker, res.Stdout)
	}
	if strings.Contains(res.Stdout, "(unreachable)") {
		t.Errorf("%s: the process's working directory is outside its root:\n%s", what, res.Stdout)
	}
	if strings.Contains(res.Stdout, filepath.Base(filepath.Dir(marker))) {
		t.Errorf("%s: the process can list the host directory of %s:\n%s", what, marker, res.Stdout)
	}
}

// tryLeakedFDCwds starts a process (start(cwd) runs escapeScript(marker)) with each of
// /proc/self/fd/3..20 as its working directory, and checks every one that started.
func tryLeakedFDCwds(t *testing.T, what, started string, marker, content string, start func(cwd string) result) {
	t.Helper()
	n := 0
	for fd := 3; fd <= 20; fd++ {
		cwd := fmt.Sprintf("/proc/self/fd/%d", fd)
		res := start(cwd)
		if res.Err != nil || !strings.Contains(res.Stdout, "STARTED") {
			t.Logf("cwd %s refused: %s", cwd, strings.TrimSpace(res.Stderr))
			continue
		}
		n++
		checkNoEscape(t, what+" "+cwd, res, marker, content)
	}
	t.Logf("%d of 18 %s started", n, started)
}

func TestCVE_2024_21626_RunCwdLeakedFD(t *testing.T) {
	r := newRT(t)
	marker, content := hostMarker(t)
	b := newBundle(t, bundle.WithArgs("sh", "-c", escapeScript(marker)))
	tryLeakedFDCwds(t, "run with cwd", "containers", marker, content, func(cwd string) result {
		b.Spec.Process.Cwd = cwd
		return r.runBundle(b, containerID("cve-2024-21626-run"))
	})
}

func TestCVE_2024_21626_ExecCwdLeakedFD(t *testing.T) {
	r := newRT(t)
	marker, content := hostMarker(t)
	b := newBundle(t, bundle.WithArgs("sleep", "3600"))
	id := containerID("cve-2024-21626-exec")
	r.start(b, id)
	tryLeakedFDCwds(t, "exec --cwd", "exec'd processes", marker, content, func(cwd string) result {
		return r.run("exec", "--cwd", cwd, id, "sh", "-c", escapeScript(marker))
	})
}

// The fds above are not directories in an exec'd process; a caller-passed directory
// (--preserve-fds) stands in for a leaked one: a working directory through it must be refused.
func TestCVE_2024_21626_PreservedDirFD(t *testing.T) {
	r := newRT(t)
	marker, content := hostMarker(t)
	dir, err := os.Open(filepath.Dir(marker))
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	extra := []*os.File{dir} // fd 3 in the runtime, preserved into the container
	b := newBundle(t, bundle.WithArgs("sh", "-c", escapeScript(marker)))
	b.Spec.Process.Cwd = "/proc/self/fd/3"
	id := containerID("cve-2024-21626-preserve")
	r.prepare(b, id)
	res := r.runExtra(extra, "run", "--preserve-fds", "1", "--bundle", b.Dir, id)
	if res.Err == nil && strings.Contains(res.Stdout, "STARTED") {
		checkNoEscape(t, "run --preserve-fds 1 with cwd /proc/self/fd/3", res, marker, content)
	} else {
		t.Logf("run refused: %s", strings.TrimSpace(res.Stderr))
	}

	b2 := newBundle(t, bundle.WithArgs("sleep", "3600"))
	id2 := containerID("cve-2024-21626-preserve")
	r.start(b2, id2)
	res = r.runExtra(extra, "exec", "--preserve-fds", "1", "--cwd", "/proc/self/fd/3", id2, "sh", "-c", escapeScript(marker))
	if res.Err == nil && strings.Contains(res.Stdout, "STARTED") {
		checkNoEscape(t, "exec --preserve-fds 1 --cwd /proc/self/fd/3", res, marker, content)
	} else {
		t.Logf("exec refused: %s", strings.TrimSpace(res.Stderr))
	}
}

// No fd other than stdio reaches a container process: the init (run and create+start) and an
// exec'd process, looked at from the host.
func TestCVE_2024_21626_NoLeakedFDs(t *testing.T) {
	r := newRT(t)
	b := newBundle(t, bundle.WithArgs("sleep", "3600"))
	id := containerID("cve-2024-21626-fds")
	initPid := r.start(b, id)
	want := []int{0, 1, 2}
	if got := openFDs(t, initPid); !slices.Equal(got, want) {
		t.Errorf("init (run -d) has fds %v, want %v: %s", got, want, fdTargets(initPid))
	}
	pid := r.execDetached(id, "sleep", "3600")
	if got := openFDs(t, pid); !slices.Equal(got, want) {
		t.Errorf("exec'd process has fds %v, want %v: %s", got, want, fdTargets(pid))
	}
	// create + start
	b2 := newBundle(t, bundle.WithArgs("sleep", "3600"))
	id2 := containerID("cve-2024-21626-fds")
	r.prepare(b2, id2)
	pidFile := filepath.Join(b2.Dir, "pid")
	if res := r.run("create", "--pid-file", pidFile, "--bundle", b2.Dir, id2); res.Err != nil {
		t.Fatalf("create: %v", res)
	}
	if res := r.run("start", id2); res.Err != nil {
		t.Fatalf("start: %v", res)
	}
	pid2 := readPid(t, pidFile)
	waitExec(t, pid2)
	if got := openFDs(t, pid2); !slices.Equal(got, want) {
		t.Errorf("init (create+start) has fds %v, want %v: %s", got, want, fdTargets(pid2))
	}
	// and from inside: the shell's own fds
	res := r.run("exec", id, "sh", "-c", "ls /proc/$$/fd; true")
	if res.Err != nil {
		t.Fatalf("exec: %v", res)
	}
	if got := strings.Fields(res.Stdout); !slices.Equal(got, []string{"0", "1", "2"}) {
		t.Errorf("a shell exec'd in the container sees its fds %v, want [0 1 2]", got)
	}
}
