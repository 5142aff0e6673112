package daemon_test

import (
	"bufio"
	"context"
	"strings"
	"testing"
	"time"

	"berth/test/berthtest"
)

// TestLogsAndAttach: docker logs (streams kept apart, --tail, --since, --until, -t, -f, a
// TTY's raw output), docker attach (stdin through a pipe, detach keys on a terminal),
// docker run -i and -it.
func TestLogsAndAttach(t *testing.T) {
	t.Parallel()
	d := newDaemon(t, berthtest.Options{})

	t.Run("Streams", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("lg")
		c.must("run", "-d", "--name", "lg", image, "sh", "-c", "echo out1; echo err1 >&2; echo out2; echo err2 >&2")
		want(t, "wait", c.must("wait", "lg"), "0")
		out, errOut, code := c.run("logs", "lg")
		want(t, "logs' exit code", code, 0)
		want(t, "logs' stdout", out, "out1\nout2\n")
		want(t, "logs' stderr", errOut, "err1\nerr2\n")
		c.fails(1, "No such container: nosuch", "logs", "nosuch")
	})

	t.Run("TailSinceUntilTimestamps", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("lt")
		c.must("run", "-d", "--name", "lt", image, "sh", "-c", "for i in 1 2 3 4 5; do echo line$i; sleep 0.02; done")
		c.must("wait", "lt")
		want(t, "--tail 2", c.must("logs", "--tail", "2", "lt"), "line4\nline5")
		want(t, "--tail 0", c.must("logs", "--tail", "0", "lt"), "")
		want(t, "--tail all", c.must("logs", "--tail", "all", "lt"), "line1\nline2\nline3\nline4\nline5")
		want(t, "-n 1", c.must("logs", "-n", "1", "lt"), "line5")

		var stamps []time.Time
		for i, l := range fields(c.must("logs", "-t", "lt")) {
			ts, text, ok := strings.Cut(l, " ")
			tm, err := time.Parse(time.RFC3339Nano, ts)
			if !ok || err != nil || text != "line"+string(rune('1'+i)) {
				t.Fatalf("logs -t line %q: want an RFC 3339 time and line%d (%v)", l, i+1, err)
			}
			stamps = append(stamps, tm)
		}
		if len(stamps) != 5 {
			t.Fatalf("logs -t gave %d lines, want 5", len(stamps))
		}
		for i := 1; i < 5; i++ {
			if !stamps[i].After(stamps[i-1]) {
				t.Errorf("logs -t: line %d's time %v is not after line %d's %v", i+1, stamps[i], i, stamps[i-1])
			}
		}
		mid := stamps[1].Add(stamps[2].Sub(stamps[1]) / 2).Format(time.RFC3339Nano)
		want(t, "--since between line2 and line3", c.must("logs", "--since", mid, "lt"), "line3\nline4\nline5")
		want(t, "--until between line2 and line3", c.must("logs", "--until", mid, "lt"), "line1\nline2")
		mid4 := stamps[3].Add(stamps[4].Sub(stamps[3]) / 2).Format(time.RFC3339Nano)
		want(t, "--since and --until", c.must("logs", "--since", mid, "--until", mid4, "lt"), "line3\nline4")
		want(t, "--since with --tail", c.must("logs", "--since", mid, "--tail", "1", "lt"), "line5")
		want(t, "--since in the future", c.must("logs", "--since", time.Now().Add(time.Hour).Format(time.RFC3339), "lt"), "")
		want(t, "--since as a Unix time", c.must("logs", "--since", "1", "--tail", "1", "lt"), "line5")
		c.fails(1, "", "logs", "--since", "not-a-time", "lt")
	})

	t.Run("Follow", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("lf")
		c.must("run", "-d", "--name", "lf", image, "sh", "-c", "echo first; while [ ! -e /tmp/go ]; do sleep 0.02; done; echo second >&2; sleep 0.1; echo third")
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		defer cancel()
		cmd := c.d.Cmd(ctx, "logs", "-f", "lf")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var errb strings.Builder
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		if !sc.Scan() || sc.Text() != "first" {
			t.Fatalf("logs -f: first line %q, want first", sc.Text())
		}
		// The container is still waiting: the follower has nothing more yet.
		want(t, "status while following", c.status("lf"), "running")
		c.must("exec", "lf", "touch", "/tmp/go")
		if !sc.Scan() || sc.Text() != "third" {
			t.Fatalf("logs -f: next line %q, want third", sc.Text())
		}
		if sc.Scan() {
			t.Errorf("logs -f: unexpected line %q", sc.Text())
		}
		// It ends with the container.
		if err := cmd.Wait(); err != nil {
			t.Errorf("logs -f: %v", err)
		}
		want(t, "logs -f's stderr", errb.String(), "second\n")
		// Following a stopped container prints what there is and ends.
		want(t, "logs -f of an exited container", c.must("logs", "-f", "--tail", "1", "lf"), "third")
	})

	t.Run("TTY", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("ltty")
		out, errOut, code := c.run("run", "-t", "--name", "ltty", image, "sh", "-c", "echo out; echo err >&2; printf 'a\\tb\\n'")
		want(t, "run -t's exit code", code, 0)
		// A TTY merges the streams and its line discipline turns \n into \r\n.
		want(t, "run -t's stdout", out, "out\r\nerr\r\na\tb\r\n")
		want(t, "run -t's stderr", errOut, "")
		out, errOut, _ = c.run("logs", "ltty")
		want(t, "logs of a TTY container (raw)", out, "out\r\nerr\r\na\tb\r\n")
		want(t, "logs of a TTY container: stderr", errOut, "")
		want(t, "Config.Tty", c.inspect("ltty", "{{.Config.Tty}}"), "true")
	})

	t.Run("RunInteractive", func(t *testing.T) {
		c := d.on(t)
		out, _, code := c.runIn("a\nb\n", "run", "--rm", "-i", image, "sh", "-c", "cat; echo done")
		want(t, "run -i's exit code", code, 0)
		want(t, "run -i's output", out, "a\nb\ndone\n")
		out, _, code = c.runIn("x\n", "run", "--rm", "-i", image, "sh", "-c", "read l; echo got-$l; exit 7")
		want(t, "run -i's exit code", code, 7)
		want(t, "run -i's output", out, "got-x\n")
		// Without -i, the container's stdin is empty.
		out, _, _ = c.runIn("ignored\n", "run", "--rm", image, "sh", "-c", "cat; echo end")
		want(t, "run without -i", out, "end\n")
	})

	t.Run("AttachPipe", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("ap")
		c.must("run", "-d", "-i", "--name", "ap", image, "sh", "-c", "read l; echo got-$l; echo to-err >&2; exit 3")
		out, errOut, code := c.runIn("x\n", "attach", "ap")
		want(t, "attach's exit code (the container's)", code, 3)
		want(t, "attach's stdout", out, "got-x\n")
		want(t, "attach's stderr", errOut, "to-err\n")
		want(t, "status after attach", c.status("ap"), "exited")
		c.fails(1, "cannot attach to a stopped container", "attach", "ap")
		// --no-stdin: output only.
		c.rmOnCleanup("ap2")
		c.must("run", "-d", "-i", "--name", "ap2", image, "sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.02; done; echo late")
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		defer cancel()
		cmd := c.d.Cmd(ctx, "attach", "--no-stdin", "ap2")
		var outb strings.Builder
		cmd.Stdout = &outb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// The attach is registered once its event is out.
		c.waitFor("the attach event", func() bool {
			out, _ := c.quiet("events", "--since", "0", "--until", now(), "--filter", "container=ap2", "--filter", "event=attach", "--format", "{{.Action}}")
			return out != ""
		})
		c.must("exec", "ap2", "touch", "/tmp/go")
		if err := cmd.Wait(); err != nil {
			t.Errorf("attach --no-stdin: %v", err)
		}
		want(t, "attach --no-stdin's output", outb.String(), "late\n")
	})

	t.Run("AttachDetachKeys", func(t *testing.T) {
		c := d.on(t)
		c.rmOnCleanup("dk")
		c.must("run", "-d", "-i", "-t", "--name", "dk", image, "sh")
		tm := c.startTerminal(24, 80, "attach", "dk")
		tm.send("\r")
		tm.expect("/ #")
		tm.send("echo hi-$((40+2))\r")
		tm.expect("hi-42")
		// ctrl-p ctrl-q detaches: docker ends, the container keeps running.
		tm.send("\x10\x11")
		tm.expect("read escape sequence")
		tm.exitCode()
		want(t, "status after detaching", c.status("dk"), "running")
		// Custom keys, and the container's shell remembers what came before.
		tm = c.startTerminal(24, 80, "attach", "--detach-keys", "ctrl-x,x", "dk")
		tm.send("echo again-$((1+1))\r")
		tm.expect("again-2")
		tm.send("\x18x")
		tm.expect("read escape sequence")
		tm.exitCode()
		want(t, "status after detaching again", c.status("dk"), "running")
		// Leaving the shell ends the container and the attach with its code.
		tm = c.startTerminal(24, 80, "attach", "dk")
		tm.send("exit 5\r")
		want(t, "attach's exit code when the shell exits", tm.exitCode(), 5)
		c.waitStatus("dk", "exited")
		want(t, "exit code", c.inspect("dk", "{{.State.ExitCode}}"), "5")
	})

	t.Run("RunIt", func(t *testing.T) {
		c := d.on(t)
		tm := c.startTerminal(33, 111, "run", "--rm", "-it", image, "sh")
		tm.expect("/ #")
		tm.send("stty size; tty\r")
		tm.expect("33 111")
		tm.expect("/dev/pts/0")
		// The terminal's size follows the client's (docker's resize on SIGWINCH).
		tm.resize(40, 120)
		c.waitFor("the resize", func() bool {
			tm.send("stty size\r")
			time.Sleep(100 * time.Millisecond)
			return strings.Contains(tm.output(), "40 120")
		})
		tm.send("exit 9\r")
		want(t, "run -it's exit code", tm.exitCode(), 9)
		// -d -it then detach keys right away on docker run: it detaches and leaves it running.
		c.rmOnCleanup("rit")
		tm = c.startTerminal(24, 80, "run", "-it", "--name", "rit", image, "sh")
		tm.expect("/ #")
		tm.send("\x10\x11")
		tm.exitCode()
		want(t, "status after detaching from run -it", c.status("rit"), "running")
	})
}
