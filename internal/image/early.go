package image

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"berth/internal/archive"
	"berth/internal/content"
	"berth/internal/errdefs"
	"berth/internal/snapshot"

	"github.com/opencontainers/go-digest"
)

// early unpacks layer blobs while they arrive, before the operation knows
// which blobs are layers of which image: a load learns that from
// manifest.json or index.json, which come last in docker's archives, and a
// pull unpacks each layer as it downloads. Every entry of a loaded archive
// that looks like a tar stream is stored and unpacked at once, on a
// goroutine of its own (stream); op.unpack takes the results over (take)
// and close drops the rest.
type early struct {
	s      *Store
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	// results are the unpacked blobs by digest, for take.
	results map[digest.Digest]*earlyResult
	// all are the results made, taken or not, for close.
	all []*earlyResult
	// streams are the archive entries being stored and unpacked, in
	// archive order, until finish names their blobs.
	streams []*stream
	// present holds the diff IDs of the layers already unpacked: an
	// uncompressed blob with one of them as digest is not unpacked again.
	present map[digest.Digest]bool
	// free are the chunks that archive entries are read into; at most
	// maxChunks exist (made) at a time, so reading the archive waits when
	// unpacking is that far behind.
	free chan *chunk
	made int
	// slots bounds the streams alive at once (each holds a staging
	// directory, two goroutines and an open blob).
	slots chan struct{}
}

const (
	chunkSize = 1 << 20
	maxChunks = 128
	// writeBatch is how many chunks a blob write takes at most.
	writeBatch = 8
	// directMin is the size from which blobs are written past the page
	// cache (content.Writer.Direct).
	directMin = 4 << 20
	// maxStreams is how many archive entries are stored and unpacked at
	// once; the archive reader waits for one to end before it starts
	// another.
	maxStreams = 8
)

type earlyResult struct {
	done    chan struct{}
	staging *snapshot.Staging
	stats   archive.UnpackStats
	err     error
	taken   bool
	// unstage, when set, ends the staging's role as the tree of a split
	// blob (Store.stageTree).
	unstage func()
}

func newEarly(ctx context.Context, s *Store) *early {
	e := &early{s: s, results: map[digest.Digest]*earlyResult{}, present: map[digest.Digest]bool{}, free: make(chan *chunk, maxChunks), slots: make(chan struct{}, maxStreams)}
	e.ctx, e.cancel = context.WithCancel(ctx)
	if ls, err := s.Snaps.Layers(); err == nil {
		for _, l := range ls {
			e.present[l.DiffID] = true
		}
	}
	return e
}

// looksLikeLayer tells a tar stream (possibly compressed) from a JSON
// document or anything else by its first bytes.
func looksLikeLayer(head []byte) bool {
	if archive.DetectCompression(head) != archive.Uncompressed {
		return true
	}
	return len(head) >= 262 && bytes.Equal(head[257:262], []byte("ustar"))
}

// add makes r the early unpacking of blob d, for take.
func (e *early) add(d digest.Digest, r *earlyResult) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, r)
	if _, dup := e.results[d]; !dup {
		e.results[d] = r
	}
}

// chunk is a piece of an archive entry, read once and used by two
// goroutines (the blob writer and the unpacking), released to the pool when
// both are done with it.
type chunk struct {
	b    []byte // the data read
	refs atomic.Int32
}

// chunk returns a free chunk to read into (c.b has chunkSize bytes),
// waiting for one when maxChunks are in use.
func (e *early) chunk(ctx context.Context) (*chunk, error) {
	select {
	case c := <-e.free:
		return c, nil
	default:
	}
	e.mu.Lock()
	if e.made < maxChunks {
		e.made++
		e.mu.Unlock()
		return &chunk{b: make([]byte, chunkSize)}, nil
	}
	e.mu.Unlock()
	select {
	case c := <-e.free:
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// release drops one use of a chunk; the last returns it to the pool.
func (e *early) release(c *chunk) {
	if c.refs.Add(-1) <= 0 {
		c.b = c.b[:cap(c.b)]
		e.free <- c
	}
}

// stream is one archive entry stored as a blob and unpacked at the same
// time: the goroutine reading the archive queues the entry's chunks twice,
// to a goroutine that hashes them and writes the blob and to one that
// unpacks them.
type stream struct {
	name string
	// q is for the unpacking, bq for the blob; both are closed at the
	// entry's end, after qerr says why it ended early.
	q, bq chan *chunk
	qerr  error
	done  chan struct{}
	// blob and err are the stored blob, or why storing it failed; set
	// before done is closed.
	blob   digest.Digest
	err    error
	result *earlyResult
}

// stream starts storing and unpacking the archive entry name, of size
// bytes, whose first chunk is first; expected, when known, is its digest.
// The caller queues the rest (queue) and ends with end.
func (o *op) stream(ctx context.Context, name string, expected digest.Digest, size int64, first *chunk) (*stream, error) {
	e := o.early
	select {
	case e.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	w, err := o.s.Content.Writer(ctx)
	if err != nil {
		<-e.slots
		return nil, err
	}
	staging, err := o.s.Snaps.NewLayer(ctx)
	if err != nil {
		<-e.slots
		w.Close()
		return nil, err
	}
	st := &stream{name: name, q: make(chan *chunk, maxChunks+1), bq: make(chan *chunk, maxChunks+1), done: make(chan struct{}),
		result: &earlyResult{done: make(chan struct{}), staging: staging}}
	// An uncompressed layer is kept as its split when it can be: its blob
	// is spooled meanwhile, and committed only when it cannot.
	split := archive.DetectCompression(first.b) == archive.Uncompressed && splittable(expected)
	st.queue(first)
	e.mu.Lock()
	e.streams = append(e.streams, st)
	e.all = append(e.all, st.result)
	e.mu.Unlock()
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer func() { <-e.slots }()
		defer close(st.done)
		defer w.Close()
		r := st.result
		stored := make(chan struct{})
		go func() {
			defer close(stored)
			st.err = o.storeStream(e, st, w, size, split)
		}()
		f := &chunkReader{e: e, src: st.queued}
		// The blob's sha256 is the diff ID of an uncompressed layer; a blob
		// named by another algorithm has the unpacking hash it.
		r.stats, r.err = archive.Unpack(e.ctx, f, staging.Dir, archive.UnpackOptions{Prehashed: splittable(expected), InMemory: true, Split: split})
		// A failed unpack (of something that is not a layer after all,
		// perhaps) leaves chunks the blob still takes.
		f.drain()
		<-stored
		if st.err == nil {
			switch {
			case r.err == nil && r.stats.Split != nil && w.Size() != size:
				st.err = errdefs.Corrupt("content %s: got %d bytes, expected %d", expected, w.Size(), size)
			case r.err == nil && r.stats.Split != nil:
				r.stats.DiffID = w.Digest()
				st.blob, st.err = o.putSplit(ctx, expected, size, r)
			default:
				st.blob, st.err = o.commitStream(w, expected, size)
			}
		}
		if r.err == nil && r.stats.DiffID == "" && st.err == nil {
			// Uncompressed: the blob is the tar stream.
			r.stats.DiffID = st.blob
		}
		close(r.done)
	}()
	return st, nil
}

// storeStream writes the chunks of st.bq to the blob. With spool, the
// blob will likely be dropped (the layer keeps it as its split): it is
// written to the page cache and not written back early; otherwise large
// blobs are written past the page cache (content.Writer.Direct).
func (o *op) storeStream(e *early, st *stream, w *content.Writer, size int64, spool bool) error {
	if spool {
		w.Spool()
	} else if size >= directMin {
		w.Direct()
	}
	var err error
	var batch []*chunk
	var bufs [][]byte
	flush := func() {
		if len(batch) == 0 {
			return
		}
		cs := batch
		release := func() {
			for _, c := range cs {
				e.release(c)
			}
		}
		if err == nil {
			err = w.WriteVec(bufs, release)
		} else {
			release()
		}
		batch, bufs = nil, nil
	}
	for c := range st.bq {
		batch, bufs = append(batch, c), append(bufs, c.b)
		if len(batch) == writeBatch || len(st.bq) == 0 && len(batch) >= 2 {
			flush()
		}
	}
	flush()
	if err != nil {
		return err
	}
	return st.qerr
}

// commitStream commits a blob written while it was unpacked: one that is
// stored already under its digest (and not named by the archive) is
// dropped.
func (o *op) commitStream(w *content.Writer, expected digest.Digest, size int64) (digest.Digest, error) {
	d := w.Digest()
	if expected == "" && o.s.Content.Exists(d) {
		return d, nil
	}
	info, err := w.Commit(expected, size)
	if err != nil {
		return "", err
	}
	o.ingested(info.Digest, true)
	return info.Digest, nil
}

// queue hands a chunk to both of the stream's goroutines.
func (st *stream) queue(c *chunk) {
	c.refs.Store(2)
	st.q <- c
	st.bq <- c
}

// end closes the entry's queues; err says why it ended early (nil at its
// end).
func (st *stream) end(err error) {
	st.qerr = err
	close(st.q)
	close(st.bq)
}

// finish waits for every stream and records the blobs they stored under
// their archive names, and their unpacking for take; the first failure to
// store a blob is returned.
func (e *early) finish(in *inArchive) error {
	e.wg.Wait()
	var first error
	for _, st := range e.streams {
		if st.err != nil {
			if first == nil && !errors.Is(st.err, errLayerSkipped) {
				first = archiveEntryError(st.name, st.err)
			}
			continue
		}
		in.blobs[st.name] = st.blob
		e.mu.Lock()
		if _, dup := e.results[st.blob]; !dup && !e.present[st.result.stats.DiffID] {
			e.results[st.blob] = st.result
		}
		e.mu.Unlock()
	}
	e.streams = nil
	return first
}

// chunkReader reads the chunks that src hands out, one after the other,
// releasing each once it moves on: how an unpacking reads a layer held
// in chunks.
type chunkReader struct {
	e *early
	// src returns the next chunk, io.EOF after the last.
	src func() (*chunk, error)
	// c is the chunk being read, cur its unread rest.
	c   *chunk
	cur []byte
	err error
}

func (f *chunkReader) Read(p []byte) (int, error) {
	for len(f.cur) == 0 {
		if err := f.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, f.cur)
	f.cur = f.cur[n:]
	return n, nil
}

// next takes the next chunk, releasing the last one.
func (f *chunkReader) next() error {
	if f.c != nil {
		f.e.release(f.c)
		f.c, f.cur = nil, nil
	}
	if f.err != nil {
		return f.err
	}
	c, err := f.src()
	if err != nil {
		f.err = err
		return err
	}
	f.c, f.cur = c, c.b
	return nil
}

// drain takes (and releases) every chunk src has left, so that whoever
// hands them out never waits: the rest of a stream's queue, or the rest of
// a layer to store. It returns why the chunks ended early.
func (f *chunkReader) drain() error {
	for {
		if err := f.next(); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

// queued is a chunkReader source: a stream's queue for its unpacking.
func (st *stream) queued() (*chunk, error) {
	c, ok := <-st.q
	if !ok {
		if st.qerr != nil {
			return nil, st.qerr
		}
		return nil, io.EOF
	}
	return c, nil
}

// take hands over the early unpacking of blob d, waiting for it to finish;
// nil when there is none.
func (e *early) take(d digest.Digest) *earlyResult {
	if e == nil {
		return nil
	}
	e.mu.Lock()
	r := e.results[d]
	delete(e.results, d)
	if r != nil {
		r.taken = true
	}
	e.mu.Unlock()
	if r != nil {
		<-r.done
	}
	return r
}

// close stops what is still running and removes every result nobody took.
func (e *early) close() {
	if e == nil {
		return
	}
	e.cancel()
	e.wg.Wait()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.all {
		if r.unstage != nil {
			r.unstage()
		}
		if !r.taken && r.staging != nil {
			r.staging.Abort()
		}
	}
	e.results, e.all = nil, nil
}
