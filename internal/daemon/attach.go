package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"

	"berth/internal/errdefs"
	"berth/internal/logs"
	"berth/internal/shim"
)

// Conn is a hijacked client connection: reads are the client's stdin, writes go to it.
type Conn interface {
	io.ReadWriteCloser
	CloseWrite() error
}

// AttachOptions are POST /containers/{id}/attach's parameters.
type AttachOptions struct {
	Stdin, Stdout, Stderr bool
	Stream, Logs          bool
	DetachKeys            string
}

// ErrDetached is returned when the client detached with its detach keys.
var ErrDetached = errors.New("detached")

// pendingAttach is an attach stream waiting for its container to start.
type pendingAttach struct {
	opts AttachOptions
	keys []byte
	conn Conn
	tty  bool
	done chan error
	once sync.Once
}

func (a *pendingAttach) finish(err error) { a.once.Do(func() { a.done <- err }) }

// fail ends an attach whose container failed to start: the error is the start's caller's
// (docker run prints it), the attach stream just ends, as dockerd's does.
func (a *pendingAttach) fail(error) { a.finish(nil) }

// connect joins the client to the shim's streams (before the container starts).
func (a *pendingAttach) connect(ctx context.Context, s *shim.Client) {
	sc, err := s.Attach(ctx, a.opts.Stdin, a.opts.Stdout, a.opts.Stderr)
	if err != nil {
		a.finish(err)
		return
	}
	go func() { a.finish(pump(a.conn, sc, a.opts.Stdin, a.keys)) }()
}

// pump copies the container's output to the client and the client's input to the
// container until the output ends (the container exited) or the client detaches.
func pump(client Conn, sc net.Conn, stdin bool, keys []byte) error {
	outDone := make(chan error, 1)
	go func() {
		_, err := io.Copy(client, sc)
		outDone <- err
	}()
	inDone := make(chan error, 1)
	if stdin {
		go func() {
			err := copyDetach(sc, client, keys)
			if err == nil {
				if cw, ok := sc.(interface{ CloseWrite() error }); ok {
					cw.CloseWrite()
				}
			}
			inDone <- err
		}()
	}
	select {
	case <-outDone:
		sc.Close()
		return nil
	case err := <-inDone:
		if errors.Is(err, ErrDetached) {
			sc.Close()
			<-outDone
			return ErrDetached
		}
		// Stdin ended: keep the output flowing until the container is done with it.
		<-outDone
		sc.Close()
		return nil
	}
}

// copyDetach copies src to dst, stopping with ErrDetached when the detach sequence passes.
func copyDetach(dst io.Writer, src io.Reader, keys []byte) error {
	buf := make([]byte, 32<<10)
	matched := 0
	for {
		n, err := src.Read(buf)
		if n > 0 {
			out := make([]byte, 0, n+matched)
			for _, b := range buf[:n] {
				if len(keys) > 0 && b == keys[matched] {
					matched++
					if matched == len(keys) {
						if len(out) > 0 {
							dst.Write(out)
						}
						return ErrDetached
					}
					continue
				}
				if matched > 0 {
					out = append(out, keys[:matched]...)
					matched = 0
					if b == keys[0] {
						matched = 1
						continue
					}
				}
				out = append(out, b)
			}
			if len(out) > 0 {
				if _, werr := dst.Write(out); werr != nil {
					return werr
				}
			}
		}
		if err != nil {
			if matched > 0 {
				// A partial sequence at the end is data.
				dst.Write(keys[:matched])
			}
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

// ParseDetachKeys parses Docker's detach key syntax ("ctrl-p,ctrl-q", "a", "ctrl-@").
func ParseDetachKeys(s string) ([]byte, error) {
	if s == "" {
		return []byte{16, 17}, nil
	}
	var out []byte
	for _, k := range strings.Split(s, ",") {
		switch {
		case len(k) == 1:
			out = append(out, k[0])
		case strings.HasPrefix(k, "ctrl-") && len(k) == 6:
			c := k[5]
			switch {
			case c >= 'a' && c <= 'z':
				out = append(out, c-'a'+1)
			case c == '@':
				out = append(out, 0)
			case c >= '[' && c <= '_':
				out = append(out, c-'['+27)
			default:
				return nil, errdefs.Invalid("Invalid escape keys (%s) provided", s)
			}
		default:
			return nil, errdefs.Invalid("Invalid escape keys (%s) provided", s)
		}
	}
	return out, nil
}

// Attach joins a hijacked client connection to a container's streams. With Logs, the
// logs so far are replayed first; with Stream, the live streams follow (of the next start
// when the container is not running yet). It returns when the streams end.
func (d *Daemon) Attach(ctx context.Context, ref string, opts AttachOptions, conn Conn) error {
	c, err := d.get(ctx, ref)
	if err != nil {
		return err
	}
	keys, err := ParseDetachKeys(opts.DetachKeys)
	if err != nil {
		return err
	}
	c.mu.Lock()
	tty := c.Config.Tty
	if !tty {
		// Detach keys work on a terminal only: a pipe's stdin is data, all of it.
		keys = nil
	}
	if !c.Config.OpenStdin {
		opts.Stdin = false
	}
	logPath, maxFiles := c.LogPath, maxLogFiles(c)
	c.mu.Unlock()
	if opts.Logs && logPath != "" {
		w := logWriter(conn, tty)
		err := logs.Read(ctx, logPath, maxFiles, logs.Options{Tail: -1, Stdout: opts.Stdout, Stderr: opts.Stderr}, func(m logs.Message) error {
			return w(m.Stream, m.Line)
		})
		if err != nil {
			return err
		}
	}
	if !opts.Stream {
		return nil
	}
	a := &pendingAttach{opts: opts, keys: keys, conn: conn, tty: tty, done: make(chan error, 1)}
	c.mu.Lock()
	t := c.run
	switch {
	case t != nil && c.State.Running:
		c.mu.Unlock()
		a.connect(ctx, t.shim)
	case c.State.Running:
		c.mu.Unlock()
		return errdefs.Conflict("container %s is running but its shim is not reachable", ShortID(c.ID))
	case c.State.StartedAt.IsZero() || c.State.Restarting || c.State.Status == container.StateCreated:
		c.attaches = append(c.attaches, a)
		c.mu.Unlock()
	default:
		c.mu.Unlock()
		if opts.Logs {
			return nil
		}
		// docker attach to a stopped container: it waits for the next start.
		c.mu.Lock()
		c.attaches = append(c.attaches, a)
		c.mu.Unlock()
	}
	d.containerEvent(c, events.ActionAttach, nil)
	select {
	case err = <-a.done:
	case <-ctx.Done():
		c.mu.Lock()
		for i, p := range c.attaches {
			if p == a {
				c.attaches = append(c.attaches[:i], c.attaches[i+1:]...)
				break
			}
		}
		c.mu.Unlock()
		err = ctx.Err()
	}
	if errors.Is(err, ErrDetached) {
		d.containerEvent(c, events.ActionDetach, nil)
		return nil
	}
	return err
}

// Resize sets a container's terminal size.
func (d *Daemon) Resize(ctx context.Context, ref string, h, w uint) error {
	c, err := d.get(ctx, ref)
	if err != nil {
		return err
	}
	c.mu.Lock()
	t := c.run
	tty := c.Config.Tty
	c.mu.Unlock()
	if t == nil {
		return errdefs.Conflict("Container %s is not running", ShortID(c.ID))
	}
	if !tty {
		return nil
	}
	if err := t.shim.Resize(ctx, h, w); err != nil {
		return fmt.Errorf("resize: %w", err)
	}
	return nil
}

func maxLogFiles(c *Container) int {
	n := 1
	if v := c.HostConfig.LogConfig.Config["max-file"]; v != "" {
		fmt.Sscanf(v, "%d", &n)
	}
	return n
}

// logWriter writes log lines to a client: stdcopy frames, or raw for a TTY container.
func logWriter(w io.Writer, tty bool) func(stream string, line []byte) error {
	return func(stream string, line []byte) error {
		if tty {
			_, err := w.Write(line)
			return err
		}
		var hdr [8]byte
		hdr[0] = 1
		if stream == "stderr" {
			hdr[0] = 2
		}
		n := len(line)
		hdr[4], hdr[5], hdr[6], hdr[7] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
		if _, err := w.Write(hdr[:]); err != nil {
			return err
		}
		_, err := w.Write(line)
		return err
	}
}
