package archive

import (
	"errors"
	"fmt"
	"hash"
	"io"
	"runtime"
	"runtime/debug"

	"berth/internal/pagewrite"
)

// Memory returns a reader of b for Unpack, which then treats b as the
// stream itself: when it is not compressed, each regular file's content is
// written straight from b, and hashed right after its write has brought it
// into the CPU's cache, rather than copied out first. For a layer in a
// mapped archive (a `docker save` file), that is one copy of every byte
// instead of three, and no read system call.
//
// b may be a mapping of a file. A fault reading it (the file was cut
// short meanwhile: SIGBUS) fails the Unpack with ErrMemoryFault; b must
// stay mapped until Unpack returns.
func Memory(b []byte) io.Reader {
	return &memStream{b: b}
}

// ErrMemoryFault says the memory of a Memory stream could not be read: a
// mapped file was truncated while it was unpacked.
var ErrMemoryFault = errors.New("the stream's memory cannot be read (was the file cut short?)")

// memStream is the stream Memory returns. The tar reader reads headers
// through Read and skips files' content with Seek; everything the stream
// passes, read or skipped, is hashed in order.
type memStream struct {
	b   []byte
	pos int64 // may pass the end, after a Seek
	// h, when set, is given every byte of b in order; b[:hashed] has been.
	h      hash.Hash
	hashed int
}

func (m *memStream) Read(p []byte) (int, error) {
	if m.pos >= int64(len(m.b)) {
		return 0, io.EOF
	}
	n := copy(p, m.b[m.pos:])
	m.pos += int64(n)
	m.hashTo(int(m.pos))
	return n, nil
}

// Seek moves within the stream, as archive/tar does to skip the content of
// entries (relative to the current position, and to ask where it is).
func (m *memStream) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		off += m.pos
	case io.SeekEnd:
		off += int64(len(m.b))
	default:
		return 0, fmt.Errorf("seek: bad whence %d", whence)
	}
	if off < 0 {
		return 0, errors.New("seek: negative position")
	}
	m.pos = off
	// What is skipped forward is hashed all the same.
	m.hashTo(int(min(off, int64(len(m.b)))))
	return off, nil
}

// hashTo hashes b up to end, from where hashing got to.
func (m *memStream) hashTo(end int) {
	if m.h != nil && end > m.hashed {
		m.h.Write(m.b[m.hashed:end])
		m.hashed = end
	}
}

// content returns the next size bytes, the content of the entry the tar
// reader just read the header of (its data follows the header); false if
// the stream ends before.
func (m *memStream) content(size int64) ([]byte, bool) {
	if size < 0 || m.pos > int64(len(m.b)) || size > int64(len(m.b))-m.pos || (m.h != nil && int64(m.hashed) != m.pos) {
		return nil, false
	}
	return m.b[m.pos : m.pos+size], true
}

// writeContent writes data, the stream's next bytes as content returned
// them, to fd, hashing each piece once it is written (the write has
// brought it into the CPU's cache). The tar reader skips them after.
func (m *memStream) writeContent(fd int, data []byte) error {
	for len(data) > 0 {
		piece := data[:min(len(data), pagewrite.Max)]
		if err := pagewrite.Write(fd, piece); err != nil {
			return err
		}
		m.hashTo(m.hashed + len(piece))
		data = data[len(piece):]
	}
	return nil
}

// catchFault has a fault reading mapped memory in this goroutine (see
// debug.SetPanicOnFault) fail with ErrMemoryFault in *err; other panics go
// on. Deferred by Unpack, which runs on its caller's goroutine.
func catchFault(restore bool, err *error) {
	debug.SetPanicOnFault(restore)
	if r := recover(); r != nil {
		if re, ok := r.(runtime.Error); ok {
			if _, fault := re.(interface{ Addr() uintptr }); fault {
				*err = ErrMemoryFault
				return
			}
		}
		panic(r)
	}
}
