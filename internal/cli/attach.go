package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// defaultDetachKeys is ctrl-p, ctrl-q.
var defaultDetachKeys = []byte{16, 17}

// errDetached is the detach key sequence typed on the terminal.
var errDetached = errors.New("read escape sequence")

// ParseDetachKeys parses a --detach-keys value: comma-separated keys, each one character or
// "ctrl-<c>" with c in a-z, @, [, \, ], ^ or _.
func ParseDetachKeys(keys string) ([]byte, error) {
	var codes []byte
	for _, key := range strings.Split(keys, ",") {
		if len(key) == 1 {
			codes = append(codes, key[0])
			continue
		}
		k, ok := strings.CutPrefix(key, "ctrl-")
		if !ok || len(k) != 1 {
			//lint:ignore ST1005 docker's message
			return nil, fmt.Errorf("Unknown character: '%s'", key)
		}
		c := k[0]
		switch {
		case c >= 'a' && c <= 'z':
			codes = append(codes, c-'a'+1)
		case c == '@':
			codes = append(codes, 0)
		case c >= '[' && c <= '_':
			codes = append(codes, c-'['+27)
		default:
			//lint:ignore ST1005 docker's message
			return nil, fmt.Errorf("Unknown character: '%s'", key)
		}
	}
	return codes, nil
}

// escapeProxy passes input through until the detach key sequence, which ends it with
// errDetached. Bytes that start the sequence but do not complete it are passed on.
type escapeProxy struct {
	r        io.Reader
	keys     []byte
	pos      int
	queue    []byte
	err      error
	detached bool
}

func (p *escapeProxy) Read(b []byte) (int, error) {
	for len(p.queue) == 0 && !p.detached && p.err == nil {
		buf := make([]byte, len(b))
		n, err := p.r.Read(buf)
		for _, c := range buf[:n] {
			if p.detached {
				break
			}
			if c == p.keys[p.pos] {
				p.pos++
				if p.pos == len(p.keys) {
					p.detached = true
				}
				continue
			}
			if p.pos > 0 {
				p.queue = append(p.queue, p.keys[:p.pos]...)
				p.pos = 0
				if c == p.keys[0] {
					p.pos = 1
					continue
				}
			}
			p.queue = append(p.queue, c)
		}
		if err != nil {
			if p.pos > 0 && !p.detached {
				p.queue = append(p.queue, p.keys[:p.pos]...)
				p.pos = 0
			}
			p.err = err
		}
	}
	n := copy(b, p.queue)
	p.queue = p.queue[n:]
	if len(p.queue) == 0 {
		if p.detached {
			return n, errDetached
		}
		if p.err != nil {
			return n, p.err
		}
	}
	return n, nil
}

// hijacked streams a hijacked attach (or exec) connection: stdin to the container, its
// output back, in raw terminal mode for a TTY.
type hijacked struct {
	c          *CLI
	in         io.Reader // nil: stdin not attached
	out, errw  io.Writer // nil: not attached
	resp       client.HijackedResponse
	tty        bool
	detachKeys string
}

// stream copies until the output ends, the detach keys are typed (errDetached) or ctx ends.
func (h *hijacked) stream(ctx context.Context) error {
	restore := func() {}
	in := h.in
	if in != nil && h.tty {
		if err := h.c.in.SetRaw(); err != nil {
			return fmt.Errorf("unable to set IO streams as raw terminal: %w", err)
		}
		var once sync.Once
		restore = func() { once.Do(h.c.in.Restore) }
		keys := defaultDetachKeys
		if h.detachKeys != "" {
			if k, err := ParseDetachKeys(h.detachKeys); err == nil {
				keys = k
			} else {
				fmt.Fprintf(h.c.err, "invalid detach escape keys, using default: %v\n", err)
			}
		}
		in = &escapeProxy{r: in, keys: keys}
	}
	defer restore()

	var outDone chan error
	if h.out != nil || h.errw != nil {
		outDone = make(chan error, 1)
		go func() {
			var err error
			if h.tty && h.out != nil {
				_, err = io.Copy(h.out, h.resp.Reader)
				restore()
			} else {
				out, errw := h.out, h.errw
				if out == nil {
					out = io.Discard
				}
				if errw == nil {
					errw = io.Discard
				}
				_, err = stdcopy.StdCopy(out, errw, h.resp.Reader)
			}
			outDone <- err
		}()
	}
	inDone := make(chan struct{})
	detached := make(chan error, 1)
	go func() {
		if in != nil {
			_, err := io.Copy(h.resp.Conn, in)
			restore()
			if errors.Is(err, errDetached) {
				detached <- err
				return
			}
		}
		_ = h.resp.CloseWrite()
		close(inDone)
	}()

	select {
	case err := <-outDone:
		return err
	case <-inDone:
		if outDone != nil {
			select {
			case err := <-outDone:
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	case err := <-detached:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// monitorTTYSize resizes the container's (or exec's) terminal to berth's now and whenever
// SIGWINCH says it changed.
func (c *CLI) monitorTTYSize(ctx context.Context, resize func(h, w uint) error) {
	h, w := c.out.Size()
	if h == 0 && w == 0 {
		return
	}
	// The process may not be ready for its first resize yet: retry a few times.
	go func() {
		for i := 0; i < 10; i++ {
			if resize(h, w) == nil {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(i+1) * 10 * time.Millisecond):
			}
		}
	}()
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGWINCH)
	go func() {
		defer signal.Stop(sigc)
		for {
			select {
			case <-ctx.Done():
				return
			case <-sigc:
				if h, w := c.out.Size(); h != 0 || w != 0 {
					_ = resize(h, w)
				}
			}
		}
	}()
}

// proxySignals forwards the signals berth receives to the container, as docker's
// --sig-proxy does, until the returned stop is called.
func (c *CLI) proxySignals(api *client.Client, id string) (stop func()) {
	sigc := make(chan os.Signal, 128)
	signal.Notify(sigc)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case s := <-sigc:
				sig, ok := s.(syscall.Signal)
				if !ok || sig == syscall.SIGCHLD || sig == syscall.SIGPIPE || sig == syscall.SIGURG || sig == syscall.SIGWINCH {
					continue
				}
				_, _ = api.ContainerKill(context.Background(), id, client.ContainerKillOptions{Signal: strconv.Itoa(int(sig))})
			}
		}
	}()
	return func() {
		signal.Stop(sigc)
		close(done)
	}
}

// waitExitOrRemoved waits for the container's next exit (or its removal, for --rm) and
// sends its exit code; 125 when the wait fails.
func (c *CLI) waitExitOrRemoved(ctx context.Context, api *client.Client, id string, removed bool) <-chan int {
	cond := container.WaitConditionNextExit
	if removed {
		cond = container.WaitConditionRemoved
	}
	res := api.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: cond})
	status := make(chan int, 1)
	go func() {
		select {
		case r := <-res.Result:
			if r.Error != nil {
				fmt.Fprintf(c.err, "error waiting for container: %s\n", r.Error.Message)
				status <- 125
				return
			}
			status <- int(r.StatusCode)
		case err := <-res.Error:
			if ctx.Err() == nil {
				fmt.Fprintf(c.err, "error waiting for container: %v\n", err)
			}
			status <- 125
		}
	}()
	return status
}
