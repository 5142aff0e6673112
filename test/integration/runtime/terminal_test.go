package runtime_test

import (
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth/test/bundle"
)

const ttyScript = "tty; test -t 0 && test -t 1 && test -t 2 && echo isatty; stty size; echo done"

func TestTerminalCreate(t *testing.T) {
	e := newEnv(t)
	c := e.ctr(bundle.WithTerminal(true), bundle.WithArgs("sh", "-c", ttyScript), bundle.WithSpec(func(s *specs.Spec) {
		s.Process.ConsoleSize = &specs.Box{Height: 33, Width: 99}
	}))
	cs := newConsoleSocket(t)
	ok(t, c.create("--console-socket", cs.path))
	master := cs.receive(t)
	if st := c.state(); st.Status != "created" {
		t.Errorf("status %q after create", st.Status)
	}
	ok(t, c.do("start"))
	out, err := readPty(master, 20*time.Second)
	if err != nil {
		t.Errorf("read pty: %v", err)
	}
	out = strings.ReplaceAll(out, "\r\n", "\n")
	// runc binds the pty peer onto /dev/console
	if !strings.Contains(out, "/dev/console\n") && !strings.Contains(out, "/dev/pts/0\n") {
		t.Errorf("tty name not /dev/console or /dev/pts/0: %q", out)
	}
	if !strings.Contains(out, "isatty\n33 99\ndone\n") {
		t.Errorf("pty output %q, want isatty, size 33 99 and done", out)
	}
	c.waitStatus("stopped")
}

func TestTerminalRunConsoleSocket(t *testing.T) {
	e := newEnv(t)
	c := e.ctr(bundle.WithTerminal(true), bundle.WithArgs("sh", "-c", "read line; echo got:$line; exit 5"))
	cs := newConsoleSocket(t)
	wait := runInBackground(t, e.command("run", "--bundle", c.b.Dir, "--console-socket", cs.path, c.id))
	master := cs.receive(t)
	if _, err := master.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	out, err := readPty(master, 20*time.Second)
	if err != nil {
		t.Errorf("read pty: %v", err)
	}
	if !strings.Contains(out, "got:hello") {
		t.Errorf("pty output %q", out)
	}
	if r := wait(20*time.Second, "run did not return"); r.Code != 5 {
		t.Errorf("run with a terminal: exit %d, want 5: %s", r.Code, r)
	}
}

func TestTerminalMisuse(t *testing.T) {
	e := newEnv(t)
	c := e.ctr(bundle.WithTerminal(true))
	fails(t, c.create(), "console-socket")
	fails(t, c.do("state"), "does not exist")
	c2 := e.ctr(bundle.WithTerminal(false))
	cs := newConsoleSocket(t)
	fails(t, c2.create("--console-socket", cs.path), "terminal")
	// a console socket nobody listens on
	c3 := e.ctr(bundle.WithTerminal(true))
	r := c3.create("--console-socket", "/nonexistent/console.sock")
	fails(t, r, "/nonexistent/console.sock")
	fails(t, c3.do("state"), "does not exist")
}

func TestTerminalRunForeground(t *testing.T) {
	// without a console socket, `run` copies between its own stdio and the pty; all the
	// output must be there when it returns
	e := newEnv(t)
	for i := 0; i < 5; i++ {
		c := e.ctr(bundle.WithTerminal(true), bundle.WithArgs("sh", "-c", "test -t 1 && echo tty-yes; seq 1 2000 | tail -n 1; exit 3"))
		r := c.run()
		out := strings.ReplaceAll(r.Stdout, "\r\n", "\n")
		if r.Code != 3 || out != "tty-yes\n2000\n" {
			t.Fatalf("run with a terminal (attempt %d): output %q, want \"tty-yes\\n2000\\n\" and exit 3: %s", i, out, r)
		}
	}
}
