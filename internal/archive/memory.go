package archive

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"runtime"
	"runtime/debug"
	"unsafe"

	"berth/internal/pagewrite"
)

// Memory returns a reader of b for Unpack, which then treats b as the
// stream itself: when it is not compressed, the tar reader reads the
// headers from b and skips files' content, and each regular file's content
// is copied out of b once, a piece at a time, hashed and written from that
// copy while it is in the CPU's cache. For a layer in a mapped archive (a
// `docker save` file) that is two copies of every byte (out of the
// mapping, into the page cache) and no read system call, where reading it
// through a reader takes three.
//
// b may be a mapping of a file. Every byte is read from b once, and what
// is hashed, written and kept in the split is that one copy, so a file
// changed while it is unpacked cannot give a tree that differs from the
// digest computed. A fault reading b (the file was cut short meanwhile:
// SIGBUS) fails the Unpack with ErrMemoryFault; b must stay mapped until
// Unpack returns.
func Memory(b []byte) io.Reader {
	return &memStream{b: b}
}

// ErrMemoryFault says the memory of a Memory stream could not be read: a
// mapped file was truncated while it was unpacked.
var ErrMemoryFault = errors.New("the stream's memory cannot be read (was the file cut short?)")

// memStream is the stream Memory returns. The tar reader reads headers
// through Read and skips files' content with Seek. Each byte of the stream
// is consumed once, in order, from a copy out of b (the reader's buffer,
// or buf): hashed, and kept in the split unless it is a file's content.
type memStream struct {
	b   []byte
	pos int64 // may pass the end, after a Seek
	// b[:consumed] has been consumed.
	consumed int
	// h, when set, is given every consumed byte; split, when set, every
	// consumed byte outside of files' content.
	h     hash.Hash
	split *splitRecorder
	// buf holds what is copied out of b to be consumed other than by Read.
	buf []byte
	// ctx is checked between the pieces of a file's content.
	ctx context.Context
}

func (m *memStream) Read(p []byte) (int, error) {
	if m.pos >= int64(len(m.b)) {
		return 0, io.EOF
	}
	start := int(m.pos)
	n := copy(p, m.b[start:])
	m.pos += int64(n)
	// What is read again (the last byte of a file's content, which the
	// tar reader reads after skipping the rest) was consumed already.
	if end := start + n; end > m.consumed {
		m.consume(p[max(m.consumed-start, 0):n])
		m.consumed = end
	}
	return n, nil
}

// consume hashes b, the next bytes of the stream as copied out of the
// memory, and keeps them in the split unless they are a file's content.
func (m *memStream) consume(b []byte) {
	if m.h != nil {
		m.h.Write(b)
	}
	if m.split != nil && !m.split.data {
		m.split.addRaw(b)
	}
}

// Seek moves within the stream, as archive/tar does to skip the content of
// entries (relative to the current position, and to ask where it is). What
// it skips forward is consumed all the same.
func (m *memStream) Seek(off int64, whence int) (int64, error) {
	var base int64
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		base = m.pos
	case io.SeekEnd:
		base = int64(len(m.b))
	default:
		return 0, fmt.Errorf("seek: bad whence %d", whence)
	}
	if off > 0 && base > math.MaxInt64-off {
		// Past any end: the read after it finds the stream short.
		off = math.MaxInt64
	} else {
		off += base
	}
	if off < 0 {
		return 0, errors.New("seek: negative position")
	}
	m.pos = off
	for end := int(min(off, int64(len(m.b)))); m.consumed < end; {
		piece := m.copyOut(m.consumed, end)
		m.consume(piece)
		m.consumed += len(piece)
	}
	return off, nil
}

// copyOut copies b[from:to] out of the memory into buf, as much as buf
// holds.
func (m *memStream) copyOut(from, to int) []byte {
	if m.buf == nil {
		m.buf = make([]byte, pagewrite.Max)
	}
	return m.buf[:copy(m.buf, m.b[from:to])]
}

// content says whether the next size bytes, the content of the entry the
// tar reader just read the header of (its data follows the header), can be
// written by writeContent: they are all in the memory and none consumed.
func (m *memStream) content(size int64) bool {
	return size >= 0 && m.pos == int64(m.consumed) && size <= int64(len(m.b))-m.pos
}

// writeContent consumes the next size bytes (content said they can be) as
// a file's content: it copies them out of the memory a piece at a time,
// hashes each piece and writes it to fd. The tar reader skips them after.
func (m *memStream) writeContent(fd int, size int64) error {
	for end := m.consumed + int(size); m.consumed < end; {
		if err := m.ctx.Err(); err != nil {
			return err
		}
		piece := m.copyOut(m.consumed, end)
		if m.h != nil {
			m.h.Write(piece)
		}
		if err := pagewrite.Write(fd, piece); err != nil {
			return err
		}
		m.consumed += len(piece)
	}
	return nil
}

// catchFault has a fault reading m's memory in this goroutine (see
// debug.SetPanicOnFault) fail with ErrMemoryFault in *err; other panics
// go on. Deferred by Unpack, which reads m on its caller's goroutine.
func catchFault(m *memStream, restore bool, err *error) {
	debug.SetPanicOnFault(restore)
	r := recover()
	if r == nil {
		return
	}
	if re, ok := r.(runtime.Error); ok {
		if f, ok := re.(interface{ Addr() uintptr }); ok && len(m.b) > 0 {
			start := uintptr(unsafe.Pointer(unsafe.SliceData(m.b)))
			if a := f.Addr(); a >= start && a-start < uintptr(len(m.b)) {
				*err = ErrMemoryFault
				return
			}
		}
	}
	panic(r)
}
