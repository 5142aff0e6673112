package cli

import (
	"io"
	"os"

	"golang.org/x/term"
)

// InStream is berth's standard input: the reader and, when it is a file, its descriptor and
// whether it is a terminal.
type InStream struct {
	io.ReadCloser
	fd     int
	isTerm bool
	state  *term.State
}

// NewInStream wraps r.
func NewInStream(r io.ReadCloser) *InStream {
	s := &InStream{ReadCloser: r}
	s.fd, s.isTerm = terminalFd(r)
	return s
}

// terminalFd is the descriptor of a stream that is a file (-1 otherwise), and whether it is
// a terminal.
func terminalFd(stream any) (int, bool) {
	f, ok := stream.(*os.File)
	if !ok {
		return -1, false
	}
	fd := int(f.Fd())
	return fd, term.IsTerminal(fd)
}

// IsTerminal reports whether the input is a terminal.
func (s *InStream) IsTerminal() bool { return s.isTerm }

// SetRaw puts the terminal in raw mode (nothing when it is not a terminal).
func (s *InStream) SetRaw() error {
	if !s.isTerm || s.state != nil {
		return nil
	}
	st, err := term.MakeRaw(s.fd)
	if err != nil {
		return err
	}
	s.state = st
	return nil
}

// Restore undoes SetRaw.
func (s *InStream) Restore() {
	if s.state != nil {
		_ = term.Restore(s.fd, s.state)
		s.state = nil
	}
}

// OutStream is berth's standard output, with the same knowledge as InStream.
type OutStream struct {
	io.Writer
	fd     int
	isTerm bool
}

// NewOutStream wraps w.
func NewOutStream(w io.Writer) *OutStream {
	s := &OutStream{Writer: w}
	s.fd, s.isTerm = terminalFd(w)
	return s
}

// IsTerminal reports whether the output is a terminal.
func (s *OutStream) IsTerminal() bool { return s.isTerm }

// Size is the terminal's height and width (0, 0 when it is not a terminal).
func (s *OutStream) Size() (height, width uint) {
	if !s.isTerm {
		return 0, 0
	}
	w, h, err := term.GetSize(s.fd)
	if err != nil {
		return 0, 0
	}
	return uint(h), uint(w)
}

// Width is the terminal's width (0 when unknown).
func (s *OutStream) Width() int {
	_, w := s.Size()
	return int(w)
}
