package shim

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeShim serves dir/sock with canned replies: reply maps a request line to its reply line
// ("" closes without a reply). It listens through /proc/self/fd, so dir may be long.
func fakeShim(t *testing.T, dir string, reply func(req string) string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	l, err := net.Listen("unix", "/proc/self/fd/"+strconv.Itoa(fd)+"/sock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				req, err := bufio.NewReader(c).ReadString('\n')
				if err != nil {
					return
				}
				if r := reply(strings.TrimSuffix(req, "\n")); r != "" {
					c.Write([]byte(r + "\n"))
				}
			}()
		}
	}()
}

func testCtx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestClientRequests(t *testing.T) {
	// longer than sockaddr_un allows: the client goes through /proc/self/fd
	dir := filepath.Join(t.TempDir(), strings.Repeat("x", 100))
	var got []string
	fakeShim(t, dir, func(req string) string {
		got = append(got, req)
		switch req {
		case "start":
			return "ok 1234"
		case "kill 15":
			return "ok"
		case "kill 9 all":
			return "error the container is not running"
		case "resize 24 80":
			return "ok"
		case "state":
			return "running 1234"
		case "wait":
			return "exit 137 1795000000000000000 1"
		case "attach 1 1 0":
			return "ok\n\x01\x00\x00\x00\x00\x00\x00\x02hi"
		}
		return "error unknown request"
	})
	c := Connect(dir)
	ctx := testCtx(t)
	if pid, err := c.Start(ctx); err != nil || pid != 1234 {
		t.Errorf("Start = %d, %v", pid, err)
	}
	if err := c.Kill(ctx, 15, false); err != nil {
		t.Errorf("Kill: %v", err)
	}
	var se *Error
	if err := c.Kill(ctx, 9, true); !errors.As(err, &se) || se.Message != "the container is not running" || se.Request != "kill" {
		t.Errorf("Kill all: %v", err)
	}
	if err := c.Resize(ctx, 24, 80); err != nil {
		t.Errorf("Resize: %v", err)
	}
	if st, err := c.State(ctx); err != nil || st.Status != StatusRunning || st.Pid != 1234 {
		t.Errorf("State = %+v, %v", st, err)
	}
	if e, err := c.Wait(ctx); err != nil || e.Code != 137 || !e.OOMKilled || e.At.Unix() != 1795000000 {
		t.Errorf("Wait = %+v, %v", e, err)
	}
	conn, err := c.Attach(ctx, true, true, false)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	frame := make([]byte, 10)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Read(frame); err != nil || string(frame[8:]) != "hi" {
		t.Errorf("the first frame after the reply: %q, %v", frame, err)
	}
	conn.Close()
	if err := c.Shutdown(ctx); !errors.As(err, &se) {
		t.Errorf("Shutdown: %v", err)
	}
}

func TestClientWithoutShim(t *testing.T) {
	dir := t.TempDir()
	c := Connect(dir)
	ctx := testCtx(t)
	if _, err := c.Wait(ctx); !errors.Is(err, ErrNoShim) {
		t.Errorf("Wait without shim or exit file: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "exit"), []byte("3 1795000000000000000 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if e, err := c.Wait(ctx); err != nil || e.Code != 3 || e.OOMKilled {
		t.Errorf("Wait from the exit file: %+v, %v", e, err)
	}
	if st, err := c.State(ctx); err != nil || st.Status != StatusExited || st.Exit.Code != 3 {
		t.Errorf("State from the exit file: %+v, %v", st, err)
	}
	if err := c.Kill(ctx, 9, false); !errors.Is(err, ErrNoShim) {
		t.Errorf("Kill: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "exit"), []byte("garbage"), 0o644)
	if _, _, err := ReadExit(dir); err == nil {
		t.Errorf("ReadExit accepted garbage")
	}
}

func TestClientShimDiesDuringWait(t *testing.T) {
	dir := t.TempDir()
	fakeShim(t, dir, func(req string) string {
		os.WriteFile(filepath.Join(dir, "exit"), []byte("0 1795000000000000000 0\n"), 0o644)
		return "" // hang up without a reply, as a shim that exits
	})
	if e, err := Connect(dir).Wait(testCtx(t)); err != nil || e.Code != 0 {
		t.Errorf("Wait = %+v, %v; want the exit file's record", e, err)
	}
}

func TestClientContext(t *testing.T) {
	dir := t.TempDir()
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	fakeShim(t, dir, func(req string) string { <-block; return "" })
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := Connect(dir).Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait after cancel: %v", err)
	}
}

func TestConfigArgs(t *testing.T) {
	c := Config{ID: "i", Bundle: "b", Dir: "d", Runtime: "r", RuntimeRoot: "rr", LogPath: "l", LogMaxSize: 10,
		LogMaxFile: 3, TTY: true, Stdin: true, StdinOnce: true, OOMFile: "o"}
	want := "--id i --bundle b --dir d --runtime r --runtime-root rr --log-path l --log-max-size 10 --log-max-file 3 --tty --stdin --stdin-once --oom-file o"
	if got := strings.Join(c.Args(), " "); got != want {
		t.Errorf("Args = %s", got)
	}
}

// TestShimImports keeps berth-shim and berth-init light: their memory is the product.
func TestShimImports(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool")
	}
	for _, cmd := range []string{"berth/cmd/berth-shim", "berth/cmd/berth-init"} {
		out, err := exec.Command(goTool, "list", "-deps", cmd).CombinedOutput()
		if err != nil {
			t.Fatalf("go list: %v\n%s", err, out)
		}
		for _, p := range strings.Fields(string(out)) {
			switch p {
			case "fmt", "net", "encoding/json", "log", "log/slog", "reflect", "flag", "os/exec", "runtime/debug",
				"golang.org/x/sys/unix":
				t.Errorf("%s imports %s", cmd, p)
			}
		}
	}
}
