package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
)

// fakeDaemon serves the Engine API on a unix socket with handler, announcing apiVersion,
// and records the paths requested.
func fakeDaemon(t *testing.T, apiVersion string, handler http.HandlerFunc) (host string, paths func() []string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "bcli")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "api.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		mu.Unlock()
		w.Header().Set("Api-Version", apiVersion)
		w.Header().Set("Ostype", "linux")
		if r.URL.Path == "/_ping" {
			w.Write([]byte("OK"))
			return
		}
		handler(w, r)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "unix://" + sock, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

// berth runs Main with args and no stdin.
func berth(t *testing.T, host string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	t.Setenv("BERTH_HOST", host)
	t.Setenv("DOCKER_HOST", "")
	t.Setenv("DOCKER_API_VERSION", "")
	var out, errb bytes.Buffer
	code = Main(args, io.NopCloser(strings.NewReader("")), &out, &errb)
	return out.String(), errb.String(), code
}

// containerList is a container list with one container, made two hours ago.
func containerList() string {
	return fmt.Sprintf(`[{"Id":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","Names":["/web"],"Image":"busybox","Command":"sleep 300","Created":%d,"State":"running","Status":"Up 2 minutes","Ports":[{"PrivatePort":80,"Type":"tcp"}]}]`,
		time.Now().Add(-2*time.Hour).Unix())
}

// TestVersionNegotiation: berth speaks the daemon's API version: the highest it knows when
// the daemon is newer, the daemon's own when older, also below what the client library
// negotiates (dockerd 20.10 speaks 1.41).
func TestVersionNegotiation(t *testing.T) {
	for _, c := range []struct{ daemon, want string }{
		{"1.41", "/v1.41/containers/json"},
		{"1.45", "/v1.45/containers/json"},
		{"1.52", "/v1.52/containers/json"},
		{"1.99", "/v" + client.MaxAPIVersion + "/containers/json"},
	} {
		host, paths := fakeDaemon(t, c.daemon, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(containerList()))
		})
		out, errs, code := berth(t, host, "ps")
		if code != 0 {
			t.Errorf("daemon %s: exit %d: %s", c.daemon, code, errs)
			continue
		}
		got := paths()
		if len(got) < 2 || got[len(got)-1] != "GET "+c.want {
			t.Errorf("daemon %s: requests %q, want GET %s", c.daemon, got, c.want)
		}
		want := "CONTAINER ID   IMAGE     COMMAND       CREATED       STATUS         PORTS     NAMES\n" +
			"0123456789ab   busybox   \"sleep 300\"   2 hours ago   Up 2 minutes   80/tcp    web\n"
		if out != want {
			t.Errorf("daemon %s: ps printed %q", c.daemon, out)
		}
	}
}

// TestDaemonErrors: the daemon's errors print as docker prints them.
func TestDaemonErrors(t *testing.T) {
	host, _ := fakeDaemon(t, "1.52", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"message":"No such container: nope"}`))
	})
	_, errs, code := berth(t, host, "stop", "nope")
	if code != 1 || errs != "Error response from daemon: No such container: nope\n" {
		t.Errorf("stop: exit %d stderr %q", code, errs)
	}
	out, errs, code := berth(t, host, "inspect", "nope")
	if code != 1 || out != "[]\n" || errs != "Error: No such object: nope\n" {
		t.Errorf("inspect: exit %d stdout %q stderr %q", code, out, errs)
	}
	_, errs, code = berth(t, host, "run", "--pull", "never", "--network", "none", "busybox", "true")
	if code != 125 || !strings.HasPrefix(errs, "berth: Error response from daemon: No such container: nope") {
		t.Errorf("run: exit %d stderr %q", code, errs)
	}
}

// TestUsageErrors: usage errors and an absent daemon give docker's messages and codes.
func TestUsageErrors(t *testing.T) {
	host := "unix:///nonexistent/berth.sock"
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"run"}, 1, "berth: 'berth run' requires at least 1 argument\n\nUsage:  berth run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nSee 'berth run --help' for more information\n"},
		{[]string{"ps", "--bogus"}, 125, "unknown flag: --bogus\n\nUsage:  berth ps [OPTIONS]\n\nRun 'berth ps --help' for more information\n"},
		{[]string{"stop", "-t", "x", "c"}, 125, `invalid argument "x" for "-t, --timeout" flag`},
		{[]string{"frob"}, 1, "berth: unknown command: berth frob\n\nRun 'berth --help' for more information\n"},
		{[]string{"volume", "frob"}, 1, "berth: unknown command: berth volume frob\n"},
		{[]string{"ps"}, 1, "Cannot connect to the berth daemon at unix:///nonexistent/berth.sock. Is berthd running?\n"},
		{[]string{"run", "busybox"}, 125, "berth: Cannot connect to the berth daemon at unix:///nonexistent/berth.sock. Is berthd running?\n\nRun 'berth run --help' for more information\n"},
		{[]string{"run", "--pull", "sometimes", "busybox"}, 125, `berth: invalid pull option: 'sometimes': must be one of "always", "missing" or "never"`},
		{[]string{"inspect", "--type", "bogus", "x"}, 1, `unknown type: "bogus"`},
		{[]string{"cp", "a", "b"}, 1, "must specify at least one container source\n"},
		{[]string{"cp", "a:/x", "b:/y"}, 1, "copying between containers is not supported\n"},
		{[]string{"run", "-d", "-a", "stdout", "busybox"}, 1, "conflicting options: cannot specify both --attach and --detach\n"},
	} {
		_, errs, code := berth(t, host, c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("berth %q: exit %d stderr %q, want exit %d and %q", c.args, code, errs, c.code, c.want)
		}
	}
	out, _, code := berth(t, host, "volume")
	if code != 0 || !strings.HasPrefix(out, "Usage:  berth volume COMMAND\n\nManage volumes\n") {
		t.Errorf("volume without a subcommand: exit %d %q", code, out)
	}
	out, _, code = berth(t, host, "--version")
	if code != 0 || out != "berth version "+Version+"\n" {
		t.Errorf("--version: exit %d %q", code, out)
	}
}

// TestHost: -H, then BERTH_HOST, then DOCKER_HOST, then the default socket.
func TestHost(t *testing.T) {
	t.Setenv("BERTH_HOST", "")
	t.Setenv("DOCKER_HOST", "")
	if got := Host(""); got != DefaultHost {
		t.Errorf("default: %q", got)
	}
	t.Setenv("DOCKER_HOST", "tcp://docker:2375")
	if got := Host(""); got != "tcp://docker:2375" {
		t.Errorf("DOCKER_HOST: %q", got)
	}
	t.Setenv("BERTH_HOST", "unix:///berth.sock")
	if got := Host(""); got != "unix:///berth.sock" {
		t.Errorf("BERTH_HOST over DOCKER_HOST: %q", got)
	}
	if got := Host("unix:///flag.sock"); got != "unix:///flag.sock" {
		t.Errorf("-H over both: %q", got)
	}
	if got := Host("/bare/path.sock"); got != "unix:///bare/path.sock" {
		t.Errorf("a bare path: %q", got)
	}
}

func TestParseDetachKeys(t *testing.T) {
	for in, want := range map[string][]byte{
		"ctrl-p,ctrl-q": {16, 17}, "a,b": {'a', 'b'}, "ctrl-@": {0}, "ctrl-[,ctrl-_": {27, 31}, "ctrl-a,x": {1, 'x'},
	} {
		got, err := ParseDetachKeys(in)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%q: %v %v, want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"ctrl-", "ctrl-1", "shift-a", "ab"} {
		if _, err := ParseDetachKeys(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestEscapeProxy: input passes through until the detach keys; a partial sequence is
// passed on.
func TestEscapeProxy(t *testing.T) {
	for _, c := range []struct {
		in, want string
		detached bool
	}{
		{"hello\x10world", "hello\x10world", false},
		{"abc\x10\x11def", "abc", true},
		{"\x10\x10\x11", "\x10", true},
		{"x\x10", "x\x10", false},
	} {
		var out bytes.Buffer
		_, err := io.Copy(&out, &escapeProxy{r: strings.NewReader(c.in), keys: defaultDetachKeys})
		if out.String() != c.want || errors.Is(err, errDetached) != c.detached {
			t.Errorf("%q: passed %q, err %v; want %q, detached %v", c.in, out.String(), err, c.want, c.detached)
		}
	}
}

// TestHijackedStream: a hijacked connection's multiplexed output goes to stdout and
// stderr; stdin goes to the connection and ends with a half-close; in a TTY the detach keys
// end the session.
func TestHijackedStream(t *testing.T) {
	c := &CLI{in: NewInStream(io.NopCloser(strings.NewReader(""))), out: NewOutStream(io.Discard), err: io.Discard}
	srv, cl := net.Pipe()
	go func() {
		srv.Write(frame(stdcopy.Stdout, "to stdout\n"))
		srv.Write(frame(stdcopy.Stderr, "to stderr\n"))
		srv.Close()
	}()
	var out, errw bytes.Buffer
	h := &hijacked{c: c, out: &out, errw: &errw, resp: client.NewHijackedResponse(cl, "")}
	if err := h.stream(t.Context()); err != nil {
		t.Fatal(err)
	}
	if out.String() != "to stdout\n" || errw.String() != "to stderr\n" {
		t.Errorf("stdout %q stderr %q", out.String(), errw.String())
	}

	srv, cl = net.Pipe()
	got := make(chan string, 1)
	go func() {
		b := make([]byte, 64)
		n, _ := io.ReadAtLeast(srv, b, 3)
		got <- string(b[:n])
		// The container's side stays open until the client detaches: an output EOF first
		// would end the session before the detach keys are read.
		io.Copy(io.Discard, srv)
		srv.Close()
	}()
	h = &hijacked{c: c, in: strings.NewReader("abc\x10\x11def"), out: &out, resp: client.NewHijackedResponse(cl, ""), tty: true}
	if err := h.stream(t.Context()); !errors.Is(err, errDetached) {
		t.Errorf("detach keys: %v", err)
	}
	if s := <-got; s != "abc" {
		t.Errorf("the container got %q before the detach keys", s)
	}
}

// frame is one frame of the multiplexed stream of a container without a TTY.
func frame(stream stdcopy.StdType, data string) []byte {
	n := len(data)
	return append([]byte{byte(stream), 0, 0, 0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, data...)
}

func TestStartErrorCode(t *testing.T) {
	for msg, want := range map[string]int{
		`Error response from daemon: failed to create task: exec: "nope": executable file not found in $PATH`: 127,
		"Error response from daemon: open /x: no such file or directory":                                      127,
		"Error response from daemon: exec /etc: permission denied":                                            126,
		"Error response from daemon: something else":                                                          125,
	} {
		if got := startErrorCode(errors.New(msg)); got != want {
			t.Errorf("%q: %d, want %d", msg, got, want)
		}
	}
}

// TestRunStartErrorOrder: when a --rm container fails to start, the daemon's error is
// printed after what the wait for its removal says, however late that comes (as docker).
func TestRunStartErrorOrder(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	host, _ := fakeDaemon(t, "1.52", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/containers/create"):
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, `{"Id":%q}`, id)
		case strings.HasSuffix(r.URL.Path, "/wait"):
			// A daemon answers at once and says the removal when it is done: late.
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond)
			w.Write([]byte(`{"StatusCode":127,"Error":{"Message":"exec /nope: no such file or directory"}}`))
		case strings.HasSuffix(r.URL.Path, "/start"):
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"message":"exec /nope: no such file or directory"}`))
		default:
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"message":"unexpected"}`))
		}
	})
	_, errs, code := berth(t, host, "run", "-d", "--rm", "--network", "none", "busybox", "/nope")
	want := "error waiting for container: exec /nope: no such file or directory\n" +
		"berth: Error response from daemon: exec /nope: no such file or directory\n"
	if code != 127 || !strings.HasPrefix(errs, want) {
		t.Errorf("run of a missing command: exit %d, stderr %q, want 127 and %q first", code, errs, want)
	}
}

// TestNamespaceFlag: `berth ps --namespace k8s` and `berth --namespace k8s ...` send the
// daemon namespace in X-Berth-Namespace; without the flag no header is sent.
func TestNamespaceFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"ps", "--namespace", "k8s"}, "k8s"},
		{[]string{"--namespace", "k8s", "ps", "-a"}, "k8s"},
		{[]string{"ps"}, ""},
	} {
		var got []string
		host, _ := fakeDaemon(t, "1.52", func(w http.ResponseWriter, r *http.Request) {
			got = append(got, r.Header.Get(NamespaceHeader))
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte("[]"))
		})
		if _, errs, code := berth(t, host, c.args...); code != 0 {
			t.Errorf("%q: exit %d: %s", c.args, code, errs)
			continue
		}
		if len(got) == 0 || got[len(got)-1] != c.want {
			t.Errorf("%q: namespace headers %q, want %q", c.args, got, c.want)
		}
	}
}
