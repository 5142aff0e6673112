// Package shim is berthd's side of berth-shim: it spawns the shim of a container and talks to it
// over the shim's socket with the line protocol of docs/daemon-design.md ("The shim contract").
//
// A Client holds nothing but the shim's directory, so berthd can reconnect to its shims after a
// restart (Connect), and learn how a container ended while nobody listened from the exit file
// the shim leaves behind (ReadExit; Wait and State fall back to it once the shim is gone). The
// shim itself, which must stay small, is internal/shim/server; this package may use net and fmt.
package shim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"berth/internal/shim/wire"
)

// Exit is how a container's init ended: exit code (128+signal if killed), when, and whether the
// kernel's OOM killer acted in its memory cgroup.
type Exit = wire.Exit

// Status is a container's state as its shim sees it.
type Status string

// Statuses.
const (
	StatusCreated Status = wire.StateCreated // not started (or failed to start)
	StatusRunning Status = wire.StateRunning // its init runs (or has exited and the shim is still recording it)
	StatusExited  Status = wire.StateExited  // the exit record is final
)

// State is the reply to a state request.
type State struct {
	Status Status
	Pid    int  // StatusRunning: the init's pid
	Exit   Exit // StatusExited
}

// Error is a request the shim refused or failed; Message is the shim's (for a failed start, the
// runtime's error message).
type Error struct {
	Request string
	Message string
}

func (e *Error) Error() string { return "shim " + e.Request + ": " + e.Message }

// ErrNoShim reports that no shim serves the directory and it holds no exit file: the shim was
// never started there, or died without recording an exit.
var ErrNoShim = errors.New("no shim is serving")

// Client talks to the shim serving one directory. It is safe for concurrent use: each request
// is its own connection.
type Client struct {
	dir string
}

// Connect returns a client of the shim whose state directory is dir. It does not connect yet.
func Connect(dir string) *Client { return &Client{dir: dir} }

// Dir is the shim's state directory.
func (c *Client) Dir() string { return c.dir }

// maxSockPath is the room for a socket path in sockaddr_un (with its terminating NUL).
const maxSockPath = 107

// dial connects to the shim's socket. A path too long for sockaddr_un is reached through
// /proc/self/fd/<fd of the directory>/sock.
func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	path := filepath.Join(c.dir, wire.SocketName)
	if len(path) <= maxSockPath {
		return d.DialContext(ctx, "unix", path)
	}
	fd, err := unix.Open(c.dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "unix", Err: &os.PathError{Op: "open", Path: c.dir, Err: err}}
	}
	defer unix.Close(fd)
	return d.DialContext(ctx, "unix", "/proc/self/fd/"+strconv.Itoa(fd)+"/"+wire.SocketName)
}

// gone reports whether a dial error means that nobody serves the socket any more.
func gone(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)
}

// request sends one request line and returns the connection, with ctx's deadline and
// cancellation applied to it until stop is called.
func (c *Client) request(ctx context.Context, line string) (conn net.Conn, stop func() bool, err error) {
	conn, err = c.dial(ctx)
	if err != nil {
		if gone(err) {
			return nil, nil, fmt.Errorf("shim %s: %w (%v)", c.dir, ErrNoShim, err)
		}
		return nil, nil, fmt.Errorf("shim %s: %w", c.dir, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop = context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	if _, err := io.WriteString(conn, line+"\n"); err != nil {
		stop()
		conn.Close()
		return nil, nil, fmt.Errorf("shim %s: send %q: %w", c.dir, line, err)
	}
	return conn, stop, nil
}

// readLine reads the reply line byte by byte, so that nothing after it (attach output) is
// consumed.
func readLine(r io.Reader) (string, error) {
	var b []byte
	var one [1]byte
	for len(b) < 64*1024 {
		n, err := r.Read(one[:])
		if n == 1 {
			if one[0] == '\n' {
				return string(b), nil
			}
			b = append(b, one[0])
		}
		if err != nil {
			if err == io.EOF && len(b) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return string(b), err
		}
	}
	return string(b), errors.New("reply line too long")
}

// call sends a request and returns the reply after "ok" (or the shim's *Error).
func (c *Client) call(ctx context.Context, req ...string) (string, error) {
	line := strings.Join(req, " ")
	conn, stop, err := c.request(ctx, line)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	defer stop()
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("shim %s: %s: %w", c.dir, req[0], ctx.Err())
		}
		return "", fmt.Errorf("shim %s: %s: no reply: %w", c.dir, req[0], err)
	}
	return parseReply(req[0], strings.TrimSuffix(reply, "\n"))
}

func parseReply(req, reply string) (string, error) {
	word, rest, _ := strings.Cut(reply, " ")
	switch word {
	case wire.ReplyOK:
		return rest, nil
	case wire.ReplyError:
		return "", &Error{Request: req, Message: rest}
	}
	return "", fmt.Errorf("shim %s: unexpected reply %q", req, reply)
}

// Start starts the container and returns its init's pid. If it fails (the runtime's error is
// in the *Error), the shim exits and leaves nothing behind.
func (c *Client) Start(ctx context.Context) (int, error) {
	rest, err := c.call(ctx, wire.ReqStart)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(rest)
	if err != nil {
		return 0, fmt.Errorf("shim start: bad pid %q", rest)
	}
	return pid, nil
}

// Attach connects to the container's stdio. The connection carries the chosen output streams
// (Docker's stdcopy frames: 8-byte header [stream 1|2, 0, 0, 0, big-endian uint32 length] and
// the data; raw bytes for a TTY) until the container's output ends, when the shim closes it.
// What is written to it goes to the container's stdin (if the shim was started with --stdin and
// stdin is set); closing the write side (CloseWrite) ends the input, and with --stdin-once the
// first such close closes the container's stdin. ctx bounds the handshake only.
func (c *Client) Attach(ctx context.Context, stdin, stdout, stderr bool) (net.Conn, error) {
	b := func(v bool) string {
		if v {
			return "1"
		}
		return "0"
	}
	conn, stop, err := c.request(ctx, wire.ReqAttach+" "+b(stdin)+" "+b(stdout)+" "+b(stderr))
	if err != nil {
		return nil, err
	}
	reply, err := readLine(conn)
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err == nil {
		_, err = parseReply(wire.ReqAttach, reply)
	}
	if err != nil {
		conn.Close()
		var se *Error
		if errors.As(err, &se) {
			return nil, err
		}
		return nil, fmt.Errorf("shim %s: attach: %w", c.dir, err)
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

// Wait waits for the container to exit and be recorded. Once the shim is gone it reads the
// exit file instead; ErrNoShim if there is none.
func (c *Client) Wait(ctx context.Context) (Exit, error) {
	conn, stop, err := c.request(ctx, wire.ReqWait)
	if err != nil {
		if errors.Is(err, ErrNoShim) {
			return c.exitFile(err)
		}
		return Exit{}, err
	}
	defer conn.Close()
	defer stop()
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		if ctx.Err() != nil {
			return Exit{}, fmt.Errorf("shim %s: wait: %w", c.dir, ctx.Err())
		}
		// The shim went away without answering: it may have recorded the exit first.
		return c.exitFile(fmt.Errorf("shim %s: wait: %w: %v", c.dir, ErrNoShim, err))
	}
	reply = strings.TrimSuffix(reply, "\n")
	if rec, ok := strings.CutPrefix(reply, wire.ReplyExit+" "); ok {
		e, err := wire.ParseExit(rec)
		if err != nil {
			return Exit{}, fmt.Errorf("shim %s: wait: %w: %q", c.dir, err, reply)
		}
		return e, nil
	}
	_, err = parseReply(wire.ReqWait, reply)
	if err == nil {
		err = fmt.Errorf("shim %s: wait: unexpected reply %q", c.dir, reply)
	}
	return Exit{}, err
}

func (c *Client) exitFile(notFound error) (Exit, error) {
	e, ok, err := ReadExit(c.dir)
	if err != nil {
		return Exit{}, err
	}
	if !ok {
		return Exit{}, notFound
	}
	return e, nil
}

// Kill sends sig to the container's init, or with all to every process of the container
// (runtime kill --all).
func (c *Client) Kill(ctx context.Context, sig syscall.Signal, all bool) error {
	req := []string{wire.ReqKill, strconv.Itoa(int(sig))}
	if all {
		req = append(req, "all")
	}
	_, err := c.call(ctx, req...)
	return err
}

// Resize sets the size of the container's terminal.
func (c *Client) Resize(ctx context.Context, height, width uint) error {
	_, err := c.call(ctx, wire.ReqResize, strconv.FormatUint(uint64(height), 10), strconv.FormatUint(uint64(width), 10))
	return err
}

// ReopenLog makes the shim close the container's log file and open its path anew.
func (c *Client) ReopenLog(ctx context.Context) error {
	_, err := c.call(ctx, wire.ReqReopenLog)
	return err
}

// State asks the shim for the container's state; once the shim is gone, the exit file says.
func (c *Client) State(ctx context.Context) (State, error) {
	conn, stop, err := c.request(ctx, wire.ReqState)
	if err != nil {
		if errors.Is(err, ErrNoShim) {
			e, err := c.exitFile(err)
			if err != nil {
				return State{}, err
			}
			return State{Status: StatusExited, Exit: e}, nil
		}
		return State{}, err
	}
	defer conn.Close()
	defer stop()
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return State{}, fmt.Errorf("shim %s: state: no reply: %w", c.dir, err)
	}
	return parseState(strings.TrimSuffix(reply, "\n"))
}

func parseState(reply string) (State, error) {
	word, rest, _ := strings.Cut(reply, " ")
	switch word {
	case wire.StateCreated:
		return State{Status: StatusCreated}, nil
	case wire.StateRunning:
		pid, err := strconv.Atoi(rest)
		if err != nil {
			return State{}, fmt.Errorf("shim state: bad reply %q", reply)
		}
		return State{Status: StatusRunning, Pid: pid}, nil
	case wire.StateExited:
		e, err := wire.ParseExit(rest)
		if err != nil {
			return State{}, fmt.Errorf("shim state: %w: %q", err, reply)
		}
		return State{Status: StatusExited, Exit: e}, nil
	}
	if _, err := parseReply(wire.ReqState, reply); err != nil {
		return State{}, err
	}
	return State{}, fmt.Errorf("shim state: unexpected reply %q", reply)
}

// Shutdown makes a shim whose container was never started exit (the shim refuses otherwise: it
// exits by itself once its container has).
func (c *Client) Shutdown(ctx context.Context) error {
	_, err := c.call(ctx, wire.ReqShutdown)
	return err
}

// ReadExit reads the exit file a shim left in dir: ok is false if there is none (the container
// has not exited, or its shim died before recording it).
func ReadExit(dir string) (e Exit, ok bool, err error) {
	data, err := os.ReadFile(filepath.Join(dir, wire.ExitName))
	if errors.Is(err, os.ErrNotExist) {
		return Exit{}, false, nil
	}
	if err != nil {
		return Exit{}, false, fmt.Errorf("shim exit file: %w", err)
	}
	e, err = wire.ParseExit(string(data))
	if err != nil {
		return Exit{}, false, fmt.Errorf("shim exit file %s: %w: %q", filepath.Join(dir, wire.ExitName), err, data)
	}
	return e, true, nil
}
