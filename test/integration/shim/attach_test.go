package shim_test

import (
	"bufio"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"berth/test/bundle"
)

func closeWrite(t testing.TB, c net.Conn) {
	t.Helper()
	if err := c.(*net.UnixConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
}

// readToEOF reads the rest of an attach stream as frames, failing on anything else.
func readToEOF(t testing.TB, c net.Conn) []frame {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(timeout))
	var out []frame
	for {
		fr, err := readFrame(c)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("attach stream: %v after %d frames", err, len(out))
		}
		out = append(out, fr)
	}
}

// TestAttachStdin: bytes from an attached client reach `cat`, whose echo comes back framed on
// stdout to every attached client; without --stdin-once the container's stdin stays open when a
// client closes its side.
func TestAttachStdin(t *testing.T) {
	f := newFixture(t, []bundle.Option{bundle.WithArgs("cat")}, withStdin(false))
	f.start()
	a, err := f.c.Attach(ctx(t), true, true, true)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	if got := readFramesUntil(t, a, 1, "hello\n"); got != "hello\n" {
		t.Errorf("stdout %q, want hello", got)
	}
	closeWrite(t, a) // stdin stays open for others
	b, err := f.c.Attach(ctx(t), true, true, false)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Write([]byte("again\n")); err != nil {
		t.Fatal(err)
	}
	readFramesUntil(t, b, 1, "again\n")
	readFramesUntil(t, a, 1, "again\n") // the first client still receives output
	if err := f.c.Kill(ctx(t), 9, false); err != nil {
		t.Fatal(err)
	}
	if e := f.wait(); e.Code != 137 {
		t.Errorf("exit %+v, want 137", e)
	}
	// both connections end once the output has
	readToEOF(t, a)
	readToEOF(t, b)
	out := messages(readLog(t, f.cfg.LogPath), "stdout")
	if strings.Join(out, "") != "hello\nagain\n" {
		t.Errorf("log %q", out)
	}
}

// TestAttachStdinOnce: attached before start (docker run -a stdin -i), the client's close of its
// write side closes the container's stdin: cat reads EOF and exits 0; the client then reads the
// rest of the output and EOF.
func TestAttachStdinOnce(t *testing.T) {
	f := newFixture(t, []bundle.Option{bundle.WithArgs("sh", "-c", "cat; echo bye >&2")}, withStdin(true))
	a, err := f.c.Attach(ctx(t), true, true, true)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Write([]byte("one\n")); err != nil { // sent before start: waits for stdin
		t.Fatal(err)
	}
	f.start()
	readFramesUntil(t, a, 1, "one\n")
	if _, err := a.Write([]byte("two\n")); err != nil {
		t.Fatal(err)
	}
	closeWrite(t, a)
	var stdout, stderr string
	for _, fr := range readToEOF(t, a) {
		if fr.stream == 1 {
			stdout += fr.data
		} else {
			stderr += fr.data
		}
	}
	if stdout != "two\n" || stderr != "bye\n" {
		t.Errorf("after close: stdout %q stderr %q, want two and bye", stdout, stderr)
	}
	if e := f.wait(); e.Code != 0 {
		t.Errorf("exit %+v, want 0 (cat saw EOF)", e)
	}
}

// TestAttachStreams: a client gets only the streams it asked for.
func TestAttachStreams(t *testing.T) {
	f := newFixture(t, []bundle.Option{bundle.WithArgs("sh", "-c", "read x; echo out; echo err >&2")}, withStdin(false))
	f.start()
	errOnly, err := f.c.Attach(ctx(t), false, false, true)
	if err != nil {
		t.Fatal(err)
	}
	defer errOnly.Close()
	in, err := f.c.Attach(ctx(t), true, false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	in.Write([]byte("go\n"))
	frames := readToEOF(t, errOnly)
	if len(frames) != 1 || frames[0] != (frame{2, "err\n"}) {
		t.Errorf("stderr-only client got %v", frames)
	}
	if e := f.wait(); e.Code != 0 {
		t.Errorf("exit %+v", e)
	}
	// a stdin-only connection gets no output and is closed at the end as well
	in.SetReadDeadline(time.Now().Add(timeout))
	if n, err := in.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("stdin-only connection: read %d, %v; want EOF", n, err)
	}
}

// TestAttachDeadClient: a client that stops reading is dropped after a bounded stall; the
// container and the other clients go on and nothing is lost for them.
func TestAttachDeadClient(t *testing.T) {
	const size = 4 << 20
	f := newFixture(t, []bundle.Option{bundle.WithArgs("sh", "-c", "read x; head -c 4194304 /dev/zero; echo done >&2")},
		withStdin(false), withoutLog())
	f.start()
	dead, err := f.c.Attach(ctx(t), false, true, true) // never read
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	good, err := f.c.Attach(ctx(t), true, true, true)
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	var wg sync.WaitGroup
	var n int
	var stderr string
	wg.Add(1)
	go func() {
		defer wg.Done()
		good.SetReadDeadline(time.Now().Add(timeout))
		for {
			fr, err := readFrame(good)
			if err != nil {
				return
			}
			if fr.stream == 1 {
				n += len(fr.data)
			} else {
				stderr += fr.data
			}
		}
	}()
	good.Write([]byte("go\n"))
	if e := f.wait(); e.Code != 0 {
		t.Errorf("exit %+v", e)
	}
	wg.Wait()
	if n != size || stderr != "done\n" {
		t.Errorf("reading client got %d bytes of stdout and %q, want %d and done", n, stderr, size)
	}
	// the dead client got a prefix of the output, then was cut off
	got, _ := io.ReadAll(dead)
	if len(got) >= size {
		t.Errorf("the client that did not read received everything (%d bytes)?", len(got))
	}
}

// TestAttachTTY: a terminal's output is raw bytes, input reaches the foreground process (echoed
// by the terminal), resize sets the size `stty size` reports, and the log is stream stdout split
// at \n.
func TestAttachTTY(t *testing.T) {
	f := newFixture(t, []bundle.Option{bundle.WithArgs("sh", "-c", "read x; stty size; read y; stty size; echo bye")},
		withTTY(), withStdin(false))
	a, err := f.c.Attach(ctx(t), true, true, true)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	f.start()
	if err := f.c.Resize(ctx(t), 30, 100); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(a)
	a.Write([]byte("go\n"))
	readRawUntil(t, r, a, "30 100\r\n")
	if err := f.c.Resize(ctx(t), 40, 120); err != nil {
		t.Fatal(err)
	}
	a.Write([]byte("go\n"))
	out := readRawUntil(t, r, a, "40 120\r\n")
	rest, _ := io.ReadAll(r) // to the end: the shim closes the connection after the last byte
	if e := f.wait(); e.Code != 0 {
		t.Errorf("exit %+v", e)
	}
	if out = out[strings.Index(out, "40 120\r\n"):] + string(rest); out != "40 120\r\nbye\r\n" {
		t.Errorf("output after the second resize %q, want the size and bye", out)
	}
	entries := readLog(t, f.cfg.LogPath)
	if errs := messages(entries, "stderr"); len(errs) > 0 {
		t.Errorf("TTY log has stderr messages %q", errs)
	}
	logged := messages(entries, "stdout")
	want := []string{"go\r\n", "30 100\r\n", "go\r\n", "40 120\r\n", "bye\r\n"}
	if strings.Join(logged, "|") != strings.Join(want, "|") {
		t.Errorf("TTY log %q, want %q", logged, want)
	}
}
