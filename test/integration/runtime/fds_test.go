package runtime_test

import (
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"berth/test/bundle"
)

// pipeTo runs fn with the write end of a pipe and returns what was written to it.
func pipeTo(t *testing.T, fn func(w *os.File)) string {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	fn(pw)
	pw.Close()
	data, _ := io.ReadAll(pr)
	return string(data)
}

func TestListenFDs(t *testing.T) {
	e := newEnv(t)
	c := e.ctr(bundle.WithArgs("sh", "-c", `echo "LISTEN_FDS=$LISTEN_FDS LISTEN_PID=$LISTEN_PID"; echo via-fd3 >&3`))
	var r result
	got := pipeTo(t, func(w *os.File) {
		// as systemd does: LISTEN_PID is the runtime's own pid
		cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$@"`, "sh", berthBin, "--root", e.root, "run", "--bundle", c.b.Dir, c.id)
		cmd.ExtraFiles = []*os.File{w}
		cmd.Env = append(os.Environ(), "LISTEN_FDS=1")
		r = runCmd(t, cmd)
	})
	wantOut(t, r, "LISTEN_FDS=1 LISTEN_PID=1\n")
	if got != "via-fd3\n" {
		t.Errorf("fd 3 of the container is not the runtime's fd 3: read %q", got)
	}
}

func TestPreserveFDs(t *testing.T) {
	e := newEnv(t)
	t.Run("run", func(t *testing.T) {
		c := e.ctr(bundle.WithArgs("sh", "-c", `echo to-fd3 >&3; echo to-fd4 >&4 || echo fd4-closed`))
		var r result
		got := pipeTo(t, func(w3 *os.File) {
			got4 := pipeTo(t, func(w4 *os.File) {
				r = c.e.berthWith([]cmdOpt{withExtraFiles(w3, w4)}, "run", "--preserve-fds", "1", "--bundle", c.b.Dir, c.id)
			})
			if got4 != "" {
				t.Errorf("fd 4 leaked into the container with --preserve-fds 1: %q", got4)
			}
		})
		if r.Code != 0 || !strings.Contains(r.Stdout, "fd4-closed") || got != "to-fd3\n" {
			t.Errorf("--preserve-fds 1: pipe got %q: %s", got, r)
		}
	})
	t.Run("create", func(t *testing.T) {
		c := e.ctr(bundle.WithArgs("sh", "-c", `echo created-fd3 >&3`))
		got := pipeTo(t, func(w *os.File) {
			ok(t, c.e.berthWith([]cmdOpt{withExtraFiles(w)}, "create", "--preserve-fds", "1", "--bundle", c.b.Dir, c.id))
			ok(t, c.do("start"))
			c.waitStatus("stopped")
		})
		if got != "created-fd3\n" {
			t.Errorf("create --preserve-fds 1: pipe got %q", got)
		}
	})
	t.Run("exec", func(t *testing.T) {
		c := e.ctr(bundle.WithArgs("sleep", "1000"))
		c.startDetached()
		var r result
		got := pipeTo(t, func(w *os.File) {
			r = c.e.berthWith([]cmdOpt{withExtraFiles(w)}, "exec", "--preserve-fds", "1", c.id, "sh", "-c", "echo exec-fd3 >&3")
		})
		if r.Code != 0 || got != "exec-fd3\n" {
			t.Errorf("exec --preserve-fds 1: pipe got %q: %s", got, r)
		}
	})
}
