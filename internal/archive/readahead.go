package archive

import (
	"io"
)

const (
	aheadChunk  = 256 << 10
	aheadChunks = 4
)

// readAhead reads a stream on its own goroutine, decompressing and hashing
// it a few chunks ahead of the consumer, so that this work overlaps with
// the file system work of extraction.
type readAhead struct {
	full   chan []byte // chunks read, in order; closed at the end
	free   chan []byte // chunks to read into
	stop   chan struct{}
	exited chan struct{}
	chunk  []byte // the chunk being consumed, returned to free once done
	cur    []byte // its unread rest
	err    error  // why the stream ended; read once full is closed
}

// newReadAhead starts reading src, writing everything read to h. Close
// must be called: it stops the reader and waits for it, so src and h are
// no longer used once it returns.
func newReadAhead(src io.Reader, h io.Writer) *readAhead {
	r := &readAhead{
		full:   make(chan []byte, aheadChunks),
		free:   make(chan []byte, aheadChunks),
		stop:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	for range aheadChunks {
		r.free <- make([]byte, aheadChunk)
	}
	go r.fill(src, h)
	return r
}

func (r *readAhead) fill(src io.Reader, h io.Writer) {
	defer close(r.exited)
	defer close(r.full)
	for {
		var chunk []byte
		select {
		case chunk = <-r.free:
		case <-r.stop:
			return
		}
		n := 0
		var err error
		for n < len(chunk) && err == nil {
			var m int
			m, err = src.Read(chunk[n:])
			n += m
		}
		if n > 0 {
			h.Write(chunk[:n])
			select {
			case r.full <- chunk[:n]:
			case <-r.stop:
				return
			}
		}
		if err != nil {
			r.err = err
			return
		}
	}
}

func (r *readAhead) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.chunk != nil {
			r.free <- r.chunk[:cap(r.chunk)]
			r.chunk = nil
		}
		chunk, ok := <-r.full
		if !ok {
			return 0, r.err
		}
		r.chunk, r.cur = chunk, chunk
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// Close stops the reader goroutine and waits for it to be done with the
// source, which may take until a Read of the source in progress returns.
func (r *readAhead) Close() error {
	close(r.stop)
	<-r.exited
	return nil
}
