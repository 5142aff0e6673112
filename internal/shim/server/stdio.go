package server

import (
	"os"
	"sync"
	"time"

	"berth/internal/shim/wire"
)

// readSize is the most one read of a container's output takes (plus an 8-byte frame header in
// front of it in the same buffer).
const readSize = 8 * 1024

// Stream numbers, as in Docker's stdcopy frame header.
const (
	streamStdout = 1
	streamStderr = 2
)

// client is an attached connection that receives output.
type client struct {
	f         *os.File
	out, err  bool
	closeOnce sync.Once
}

func (c *client) close() { c.closeOnce.Do(func() { c.f.Close() }) }

func (c *client) wants(kind byte) bool {
	if kind == streamStderr {
		return c.err
	}
	return c.out
}

// startOutput starts copying the container's output (s.outputs: stdout and stderr pipes, or the
// pty master) to the log and to attached clients. Called with s.mu held.
func (s *shim) startOutput() {
	s.cmu.Lock()
	s.outputsOpen = len(s.outputs)
	s.cmu.Unlock()
	names := [...]string{"stdout", "stderr"}
	for i, f := range s.outputs {
		st := &stream{s: s, f: f, kind: byte(i + 1), buf: make([]byte, 8+readSize)}
		if s.jlog != nil {
			st.split = &lineSplitter{stream: names[i], log: s.jlog, now: time.Now}
		}
		go st.run()
	}
}

// stream copies one output of the container.
type stream struct {
	s     *shim
	f     *os.File
	kind  byte
	split *lineSplitter
	buf   []byte // [8-byte frame header][data]
}

func (st *stream) run() {
	defer st.s.outputClosed()
	for {
		n, err := st.f.Read(st.buf[8:])
		if n > 0 {
			if st.split != nil {
				st.split.feed(st.buf[8 : 8+n])
			}
			st.s.broadcast(st.kind, st.buf[:8+n])
		}
		if err != nil { // EOF, EIO from a pty master whose other side is closed, or closed by finish
			if st.split != nil {
				st.split.flush()
			}
			return
		}
	}
}

// broadcast sends a chunk of output to every client that wants it: frame is the chunk behind 8
// free bytes, where the stdcopy header goes (a TTY's output is sent raw). A client whose write
// fails or takes longer than clientWriteTimeout is dropped.
func (s *shim) broadcast(kind byte, frame []byte) {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	if len(s.clients) == 0 {
		return
	}
	payload := frame
	if s.cfg.TTY {
		payload = frame[8:]
	} else {
		n := len(frame) - 8
		frame[0], frame[1], frame[2], frame[3] = kind, 0, 0, 0
		frame[4], frame[5], frame[6], frame[7] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	}
	kept := s.clients[:0]
	for _, c := range s.clients {
		if !c.wants(kind) {
			kept = append(kept, c)
			continue
		}
		c.f.SetWriteDeadline(time.Now().Add(clientWriteTimeout))
		if _, err := c.f.Write(payload); err != nil {
			c.close()
			continue
		}
		kept = append(kept, c)
	}
	for i := len(kept); i < len(s.clients); i++ {
		s.clients[i] = nil
	}
	s.clients = kept
}

// outputClosed is called when one output stream ended; the last one ends the output.
func (s *shim) outputClosed() {
	s.cmu.Lock()
	s.outputsOpen--
	last := s.outputsOpen == 0
	s.cmu.Unlock()
	if last {
		s.endOutput()
	}
}

// endOutput closes every attached client: there will be no more output.
func (s *shim) endOutput() {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	if s.outputEnded {
		return
	}
	s.outputEnded = true
	for _, c := range s.clients {
		c.close()
	}
	s.clients = nil
	close(s.outputsDone)
}

// handleAttach answers "attach": "ok", then output frames until the output ends; bytes the
// client sends go to the container's stdin. It reports whether the connection now belongs to the
// client list (closed when the output ends or a write to it fails).
func (s *shim) handleAttach(c *os.File, in, out, errs bool, rest []byte) (kept bool) {
	s.mu.Lock()
	gone, msg := s.state == stGone, s.failMsg
	s.mu.Unlock()
	if gone {
		reply(c, wire.ReplyError+" "+msg)
		return false
	}
	if s.cfg.TTY {
		errs = false // a terminal has one output
	}
	cl := &client{f: c, out: out, err: errs}
	s.cmu.Lock()
	if s.outputEnded {
		s.cmu.Unlock()
		reply(c, wire.ReplyOK)
		return false
	}
	// The reply goes out before the first frame: both are written under cmu. Every attached
	// connection is listed, even one that takes no output: all are closed when the output ends.
	reply(c, wire.ReplyOK)
	s.clients = append(s.clients, cl)
	s.cmu.Unlock()
	if in && s.cfg.Stdin {
		s.copyStdin(cl, rest)
	}
	return true
}

// copyStdin copies what the client sends to the container's stdin until the client closes its
// side; with --stdin-once the first such close closes the container's stdin (a pipe: the
// container reads EOF; a terminal cannot be half-closed, so then input merely stops).
func (s *shim) copyStdin(cl *client, rest []byte) {
	// Attached before start (docker run -a stdin): wait for the container's stdin.
	select {
	case <-s.started:
	case <-s.done:
	}
	s.mu.Lock()
	w := s.stdin
	running := s.state == stRunning
	s.mu.Unlock()
	if w == nil || !running {
		return
	}
	ok := true
	if len(rest) > 0 {
		_, err := w.Write(rest)
		ok = err == nil
	}
	if ok {
		buf := make([]byte, 4096)
		for {
			n, err := cl.f.Read(buf)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
	}
	if s.cfg.StdinOnce {
		s.stdinOnce.Do(func() {
			if !s.cfg.TTY {
				w.Close()
			}
		})
	}
}
