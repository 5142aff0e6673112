package image

import (
	"archive/tar"
	"cmp"
	"context"
	"errors"
	"io"
	"os"
	"runtime"
	"slices"
	"sync/atomic"

	"berth/internal/archive"
	"berth/internal/content"
	"berth/internal/errdefs"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// randomAccess is an archive a load can read at any offset: a regular file,
// or one held in memory.
type randomAccess interface {
	io.ReaderAt
	io.Seeker
}

// layerAt is an entry of a random-access archive that looks like a layer,
// stored and unpacked after the archive's headers are read.
type layerAt struct {
	name     string
	st       *stream
	expected digest.Digest
	off      int64
	size     int64
	// compressed says the layer's data is compressed: its blob is
	// stored as it is read; an uncompressed one is kept as a split.
	compressed bool
	// mem is the layer's data in the mapped archive, when it is mapped;
	// pages, the whole pages it is on.
	mem, pages []byte
}

// readArchiveAt is readArchive for an uncompressed archive it can read at
// any offset. It reads the headers first, skipping the layers' data, and
// then has each of a few workers take a whole layer at a time, the largest
// first: read it, hash it while it is in the CPU's cache, write the blob
// behind (O_DIRECT) and unpack it, all on one goroutine. That reads and
// touches each byte once per CPU, where the streaming load hands every
// chunk from the goroutine reading the archive to others.
//
// ok is false, with the archive at its start again, when it is compressed
// or cannot seek after all (a pipe behind an *os.File): readArchive then
// streams it.
func (o *op) readArchiveAt(ctx context.Context, ra randomAccess) (in *inArchive, ok bool, err error) {
	start, err := ra.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, false, nil
	}
	end, err := ra.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, false, nil
	}
	if _, err := ra.Seek(start, io.SeekStart); err != nil {
		return nil, false, nil
	}
	var head [512]byte
	n, _ := ra.ReadAt(head[:], start)
	if archive.DetectCompression(head[:n]) != archive.Uncompressed {
		return nil, false, nil
	}
	// The tar reader seeks past the data it is not asked for.
	sr := io.NewSectionReader(ra, start, end-start)
	in = &inArchive{blobs: map[string]digest.Digest{}, docs: map[string][]byte{}, links: map[string]string{}}
	var layers []*layerAt
	// Whatever happens, every layer started is waited for (early.finish
	// or early.close), so none is left running.
	tr := tar.NewReader(sr)
	last := ""
	for {
		if err := ctx.Err(); err != nil {
			return nil, true, err
		}
		h, name, err := nextEntry(tr, last)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, true, err
		}
		last = h.Name
		switch h.Typeflag {
		case tar.TypeSymlink, tar.TypeLink:
			in.link(name, h)
		case tar.TypeReg:
			pos, _ := sr.Seek(0, io.SeekCurrent)
			l, err := o.entryAt(ctx, in, name, h, tr, ra, start+pos)
			if err != nil {
				return nil, true, archiveEntryError(h.Name, err)
			}
			if l != nil {
				layers = append(layers, l)
			}
		}
	}
	if last == "" {
		return nil, true, errdefs.Invalid("the archive is empty")
	}
	// The layers are unpacked from the archive mapped into memory where it
	// can be (a regular file): each byte is copied out of the mapping once,
	// with no read system call (archive.Memory). finish waits for every
	// layer before the mapping goes.
	if f, ok := ra.(*os.File); ok {
		if m, err := unix.Mmap(int(f.Fd()), 0, int(end), unix.PROT_READ, unix.MAP_SHARED); err == nil {
			defer unix.Munmap(m)
			page := int64(os.Getpagesize())
			for _, l := range layers {
				l.mem, l.pages = m[l.off:l.off+l.size], m[l.off&^(page-1):l.off+l.size]
			}
		}
	}
	o.storeLayersAt(ctx, ra, layers)
	if err := o.early.finish(in); err != nil {
		return nil, true, err
	}
	return in, true, nil
}

// entryAt reads a regular file of the archive whose data starts at off:
// documents into memory, blobs that are no layer into the store at once;
// a layer is returned for storeLayersAt, its data left for tr to skip.
func (o *op) entryAt(ctx context.Context, in *inArchive, name string, h *tar.Header, tr io.Reader, ra io.ReaderAt, off int64) (*layerAt, error) {
	expected, done, err := o.knownEntry(in, name, h, tr)
	if err != nil || done {
		return nil, err
	}
	var head [512]byte
	want := min(int64(len(head)), h.Size)
	n, err := ra.ReadAt(head[:want], off)
	if int64(n) < want {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	// A sparse entry's data is not its content as stored (the tar reader
	// expands it): read it through tr.
	if looksLikeLayer(head[:n]) && !o.early.present[expected] && !archive.Sparse(h) {
		compressed := archive.DetectCompression(head[:n]) != archive.Uncompressed
		return &layerAt{name: name, expected: expected, off: off, size: h.Size, compressed: compressed}, nil
	}
	return nil, o.storeEntry(ctx, in, name, expected, h.Size, nil, tr)
}

// storeLayersAt stores and unpacks layers, the largest first, on a few
// workers, and has early.finish wait for them.
func (o *op) storeLayersAt(ctx context.Context, ra io.ReaderAt, layers []*layerAt) {
	e := o.early
	// In archive order, for finish to name the first failure.
	for _, l := range layers {
		l.st = &stream{name: l.name, done: make(chan struct{}), result: &earlyResult{done: make(chan struct{})}}
		e.mu.Lock()
		e.streams = append(e.streams, l.st)
		e.all = append(e.all, l.st.result)
		e.mu.Unlock()
	}
	order := slices.Clone(layers)
	slices.SortStableFunc(order, func(a, b *layerAt) int { return cmp.Compare(b.size, a.size) })
	next := make(chan *layerAt, len(order))
	for _, l := range order {
		next <- l
	}
	close(next)
	workers := min(runtime.GOMAXPROCS(0), maxStreams, len(order))
	// After a failure the load fails: the layers not started yet are not.
	var failed atomic.Bool
	e.wg.Add(workers)
	for range workers {
		go func() {
			defer e.wg.Done()
			for l := range next {
				if failed.Load() {
					l.st.err = errLayerSkipped
					close(l.st.result.done)
					close(l.st.done)
					continue
				}
				o.storeLayerAt(ctx, ra, l)
				if l.st.err != nil {
					failed.Store(true)
				}
			}
		}()
	}
}

// errLayerSkipped marks the layers a failed load did not read.
var errLayerSkipped = errors.New("not read: another layer failed")

// storeLayerAt stores the blob of one layer and unpacks it, reading it
// once (from the mapped archive when it is mapped), on one goroutine. An
// uncompressed layer keeps its blob as its split (content.Store.PutSplit),
// so it is written once; where the split cannot be had (an entry replaced
// another; this is no layer after all), the blob is stored from the
// archive, read once more. A compressed layer's blob is written as its
// chunks are read.
func (o *op) storeLayerAt(ctx context.Context, ra io.ReaderAt, l *layerAt) {
	e := o.early
	st, r := l.st, l.st.result
	defer close(st.done)
	defer close(r.done)
	split := !l.compressed && splittable(l.expected)
	sec := &section{e: e, ra: ra, off: l.off, end: l.off + l.size}
	if !split {
		w, err := o.s.Content.Writer(ctx)
		if err != nil {
			st.err, r.err = err, err
			return
		}
		defer w.Close()
		if l.size >= directMin {
			w.Direct()
		}
		sec.w = w
	}
	var err error
	r.staging, err = o.s.Snaps.NewLayer(ctx)
	if err != nil {
		st.err, r.err = err, err
		return
	}
	opts := archive.UnpackOptions{Prehashed: !split && splittable(l.expected), InMemory: true, Split: split}
	if split && l.mem != nil {
		// Unpack copies the layer out of the mapping a piece at a time,
		// and hashes, writes and records that one copy.
		unix.Madvise(l.pages, unix.MADV_WILLNEED)
		r.stats, r.err = archive.Unpack(e.ctx, archive.Memory(l.mem), r.staging.Dir, opts)
		if errors.Is(r.err, archive.ErrMemoryFault) {
			// The archive was cut short: there is nothing to store.
			err = r.err
		}
	} else {
		f := &chunkReader{e: e, src: sec.read}
		// A split layer is hashed by Unpack as it reads, while each chunk
		// is in the CPU's cache (a hashing goroutine beside it was slower).
		r.stats, r.err = archive.Unpack(e.ctx, f, r.staging.Dir, opts)
		// What the unpacking left (all of it, when this is no layer after
		// all) is stored all the same.
		err = f.drain()
	}
	if err == nil && sec.werr != nil {
		err = sec.werr
	}
	switch {
	case err != nil:
	case !split:
		st.blob, err = o.commitStream(sec.w, l.expected, l.size)
	case r.err == nil && r.stats.Split != nil:
		st.blob, err = o.putSplit(ctx, l.expected, l.size, r)
	default:
		st.blob, err = o.storeSection(ctx, ra, l)
	}
	if err != nil {
		st.err = err
		return
	}
	if r.err == nil && r.stats.DiffID == "" {
		// Uncompressed: the blob is the tar stream.
		r.stats.DiffID = st.blob
	}
}

// splittable says whether a blob named by expected (empty: by nothing)
// has a sha256 digest: the diff ID when it is an uncompressed layer, so it
// can be kept as a split, and the unpacking need not hash it again.
func splittable(expected digest.Digest) bool {
	return expected == "" || expected.Algorithm() == digest.SHA256
}

// putSplit keeps the blob of an unpacked layer (size bytes, whose digest,
// its diff ID, is expected when not empty) as its split, the staged layer
// its tree until the load ends.
func (o *op) putSplit(ctx context.Context, expected digest.Digest, size int64, r *earlyResult) (digest.Digest, error) {
	d := r.stats.DiffID
	if expected != "" && d != expected {
		return "", errdefs.Corrupt("content %s: data has digest %s", expected, d)
	}
	r.unstage = o.s.stageTree(d, r.staging.Dir)
	created, err := o.s.Content.PutSplit(ctx, d, size, r.stats.Split)
	if err != nil {
		return "", err
	}
	o.ingested(d, created)
	return d, nil
}

// storeSection stores an archive entry as a blob, read from the archive.
func (o *op) storeSection(ctx context.Context, ra io.ReaderAt, l *layerAt) (digest.Digest, error) {
	w, err := o.s.Content.Writer(ctx)
	if err != nil {
		return "", err
	}
	defer w.Close()
	if _, err := w.ReadFrom(io.NewSectionReader(ra, l.off, l.size)); err != nil {
		return "", err
	}
	return o.commitStream(w, l.expected, l.size)
}

// section is a chunkReader source: the data of one entry of a
// random-access archive, read a chunk at a time. With a blob writer, each
// chunk is queued to it (which hashes it) as soon as it is read, while it
// is in the CPU's cache; without, the unpacking hashes it as it reads.
type section struct {
	e        *early
	ra       io.ReaderAt
	off, end int64
	w        *content.Writer
	// werr is the first failure to write the blob.
	werr error
}

func (s *section) read() (*chunk, error) {
	if s.werr != nil {
		// The blob cannot be stored: no use reading on.
		return nil, s.werr
	}
	if err := s.e.ctx.Err(); err != nil {
		return nil, err
	}
	if s.off >= s.end {
		return nil, io.EOF
	}
	c, err := s.e.chunk(s.e.ctx)
	if err != nil {
		return nil, err
	}
	want := min(int64(len(c.b)), s.end-s.off)
	n, err := s.ra.ReadAt(c.b[:want], s.off)
	if int64(n) < want {
		s.e.release(c)
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	s.off += want
	c.b = c.b[:want]
	if s.w == nil {
		c.refs.Store(1)
		return c, nil
	}
	c.refs.Store(2)
	if s.werr == nil {
		s.werr = s.w.WriteVec([][]byte{c.b}, func() { s.e.release(c) })
	} else {
		s.e.release(c)
	}
	return c, nil
}
