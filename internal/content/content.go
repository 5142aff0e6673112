// Package content owns berth's content-addressed blob store: manifests,
// configs and layer tarballs stored by digest under <root>/blobs/<alg>/<hex>,
// and uncompressed layer blobs kept as the split of their unpacked layer
// under <root>/split/<alg>/<hex> (split.go).
//
// A blob is written to <root>/ingest, verified against its expected digest
// and size, fsynced and renamed into place, so a blob is never visible before
// it is complete and a crash leaves at worst a file in ingest/ (removed when
// the store is opened again). The store knows nothing of images: which blobs
// are referenced, and so which may be deleted, is decided by its callers
// (internal/image's garbage collector).
package content

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"unsafe"

	"berth/internal/errdefs"
	"berth/internal/pagewrite"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// Store is a directory of blobs named by digest. It is safe for concurrent
// use by the goroutines of one process; internal/image makes sure one
// process owns a store at a time.
type Store struct {
	root  string
	trees Trees
}

// Info describes a stored blob.
type Info struct {
	Digest digest.Digest
	Size   int64
	// Split says the blob is kept as a split (see PutSplit); Stored is
	// the size of what is kept on disk for it.
	Split  bool
	Stored int64
}

// Open opens (creating if needed) the store at root and removes leftovers of
// interrupted writes. The caller must be the only process using root.
func Open(root string) (*Store, error) {
	for _, d := range []string{"blobs/sha256", "split/sha256", "ingest"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, fmt.Errorf("content store: %w", err)
		}
	}
	s := &Store{root: root}
	if err := s.clearIngest(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) clearIngest() error {
	ents, err := os.ReadDir(filepath.Join(s.root, "ingest"))
	if err != nil {
		return fmt.Errorf("content store: %w", err)
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(s.root, "ingest", e.Name())); err != nil {
			return fmt.Errorf("content store: remove interrupted ingest: %w", err)
		}
	}
	return nil
}

// Root is the store's directory.
func (s *Store) Root() string { return s.root }

// Path is where the blob dgst lives (whether or not it exists).
func (s *Store) Path(dgst digest.Digest) (string, error) {
	if err := dgst.Validate(); err != nil {
		return "", errdefs.InvalidWrap(err, "digest %q", string(dgst))
	}
	return filepath.Join(s.root, "blobs", string(dgst.Algorithm()), dgst.Encoded()), nil
}

// Info returns the blob's size, or an ErrNotFound error: also for a split
// blob with no tree to rebuild it from.
func (s *Store) Info(dgst digest.Digest) (Info, error) {
	p, err := s.Path(dgst)
	if err != nil {
		return Info{}, err
	}
	st, err := os.Stat(p)
	if err == nil {
		return Info{Digest: dgst, Size: st.Size(), Stored: st.Size()}, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return Info{}, fmt.Errorf("content %s: %w", dgst, err)
	}
	info, ok, err := s.splitInfo(dgst)
	if err != nil {
		return Info{}, err
	}
	if !ok || s.tree(dgst, false) == "" {
		return Info{}, errdefs.NotFound("content %s", dgst)
	}
	return info, nil
}

// Exists reports whether the blob is stored.
func (s *Store) Exists(dgst digest.Digest) bool {
	_, err := s.Info(dgst)
	return err == nil
}

// Open opens a stored blob for reading.
func (s *Store) Open(dgst digest.Digest) (Blob, error) {
	p, err := s.Path(dgst)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err == nil {
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("content %s: %w", dgst, err)
		}
		return &fileBlob{File: f, size: st.Size()}, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return s.openSplit(dgst)
}

// ReadAll reads a small blob (a manifest, an index, a config), refusing one
// larger than max bytes.
func (s *Store) ReadAll(dgst digest.Digest, max int64) ([]byte, error) {
	f, err := s.Open(dgst)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read content %s: %w", dgst, err)
	}
	if int64(len(b)) > max {
		return nil, errdefs.Invalid("content %s is larger than %d bytes", dgst, max)
	}
	return b, nil
}

// Delete removes a blob, plain or split; a missing blob is not an error.
func (s *Store) Delete(dgst digest.Digest) error {
	p, err := s.Path(dgst)
	if err != nil {
		return err
	}
	sp, _ := s.splitPath(dgst)
	for _, p := range []string{p, sp} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete content %s: %w", dgst, err)
		}
	}
	return nil
}

// Walk calls fn for every stored blob: plain ones, then split ones (also
// those with no tree left, for the collector to remove).
func (s *Store) Walk(fn func(Info) error) error {
	plain := map[digest.Digest]bool{}
	for _, kind := range []string{"blobs", "split"} {
		algs, err := os.ReadDir(filepath.Join(s.root, kind))
		if err != nil {
			return fmt.Errorf("content store: %w", err)
		}
		for _, a := range algs {
			ents, err := os.ReadDir(filepath.Join(s.root, kind, a.Name()))
			if err != nil {
				return fmt.Errorf("content store: %w", err)
			}
			for _, e := range ents {
				d := digest.NewDigestFromEncoded(digest.Algorithm(a.Name()), e.Name())
				var info Info
				if kind == "blobs" {
					fi, err := e.Info()
					if err != nil {
						continue // removed meanwhile
					}
					plain[d] = true
					info = Info{Digest: d, Size: fi.Size(), Stored: fi.Size()}
				} else {
					if plain[d] {
						continue // made plain; the split goes with the next Delete
					}
					i, ok, err := s.splitInfo(d)
					if err != nil || !ok {
						info = Info{Digest: d, Split: true} // unreadable: for the collector all the same
					} else {
						info = i
					}
				}
				if err := fn(info); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Verify re-reads a blob and checks it against its digest.
func (s *Store) Verify(dgst digest.Digest) error {
	f, err := s.Open(dgst)
	if err != nil {
		return err
	}
	defer f.Close()
	v := dgst.Verifier()
	if _, err := io.Copy(v, f); err != nil {
		return fmt.Errorf("verify content %s: %w", dgst, err)
	}
	if !v.Verified() {
		return errdefs.Corrupt("content %s does not match its digest", dgst)
	}
	return nil
}

// Writer writes one blob. Write to it, then Commit; Close without Commit
// discards what was written.
type Writer struct {
	s    *Store
	f    *os.File
	h    hash.Hash
	size int64
	// queued is how much of the file has been handed to writeback.
	queued int64
	// direct, when set, is the file opened once more with O_DIRECT, for
	// the aligned parts of large writes (Direct).
	direct *os.File
	// directOff says O_DIRECT writes failed with EINVAL: the file system
	// takes them no more.
	directOff atomic.Bool
	// aq queues WriteVec's direct writes to writeBehind, which closes
	// aexit when done; aerr is its first failure.
	aq    chan pendingWrite
	aexit chan struct{}
	amu   sync.Mutex
	aerr  error
	done  bool
	// spool: see Spool.
	spool bool
}

// writebackStep is how much a Writer lets become dirty before it starts
// writing it back, so that Commit's fsync finds little left to do.
const writebackStep = 8 << 20

// Writer starts a new blob in ingest/.
func (s *Store) Writer(ctx context.Context) (*Writer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := s.ingestFile()
	if err != nil {
		return nil, err
	}
	return &Writer{s: s, f: f, h: digest.SHA256.Hash()}, nil
}

// ingestFile creates a new file in ingest/ (removed at the next Open if
// it is left there).
func (s *Store) ingestFile() (*os.File, error) {
	var rnd [12]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(s.root, "ingest", hex.EncodeToString(rnd[:])), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("content store: %w", err)
	}
	return f, nil
}

// Direct has WriteVec write runs of aligned buffers past the page cache
// (O_DIRECT), which saves copying them and writing them back later: for
// large blobs whose data the caller has in memory once anyway. Where the
// file system refuses O_DIRECT, writes stay buffered; Write is always
// buffered.
func (w *Writer) Direct() {
	if w.direct != nil {
		return
	}
	f, err := os.OpenFile(w.f.Name(), os.O_WRONLY|unix.O_DIRECT, 0)
	if err == nil {
		w.direct = f
	}
}

// Spool says the blob will likely be dropped (Close) rather than committed:
// what is written stays in the page cache, with no early writeback, so a
// blob dropped soon never reaches the disk. Commit still makes it durable.
func (w *Writer) Spool() { w.spool = true }

// directAlign is the alignment O_DIRECT needs of offsets, lengths and
// buffers (the largest logical block size in use).
const directAlign = 4096

func (w *Writer) Write(p []byte) (int, error) {
	if w.aq != nil {
		// Writes are at the end: after those WriteVec left pending.
		if err := w.waitAsync(); err != nil {
			return 0, err
		}
	}
	n, err := pagewrite.WriteAt(w.f, p, w.size)
	w.h.Write(p[:n])
	w.size += int64(n)
	if err != nil {
		return n, fmt.Errorf("write content: %w", err)
	}
	if !w.spool && w.size-w.queued >= writebackStep {
		// Start writing back what is written (asynchronously; errors
		// show at Commit's fsync).
		unix.SyncFileRange(int(w.f.Fd()), w.queued, w.size-w.queued, unix.SYNC_FILE_RANGE_WRITE)
		w.queued = w.size
	}
	return n, nil
}

// WriteVec writes bufs in order, as Write does each. With Direct, a leading
// run of aligned buffers is hashed at once and goes to the disk in one
// request on the writer's own goroutine, while the caller goes on; the
// rest is written by Write, after that run. done is called once the
// buffers are no longer used. A failure of a write behind is returned by
// a later call, Commit or Close.
func (w *Writer) WriteVec(bufs [][]byte, done func()) error {
	if err := w.asyncErr(); err != nil {
		done()
		return err
	}
	run := 0
	if w.direct != nil && !w.directOff.Load() && w.size%directAlign == 0 {
		for run < len(bufs) && aligned(bufs[run]) {
			run++
		}
	}
	if run < len(bufs) {
		// An unaligned rest, written (buffered, by Write) once the run
		// before it is: done is for the whole.
		defer done()
		done = func() {}
	}
	if run > 0 {
		if w.aq == nil {
			w.aq, w.aexit = make(chan pendingWrite, maxPending), make(chan struct{})
			go w.writeBehind()
		}
		off := w.size
		for _, b := range bufs[:run] {
			w.h.Write(b)
			w.size += int64(len(b))
		}
		w.aq <- pendingWrite{bufs: bufs[:run], off: off, done: done}
	}
	for _, b := range bufs[run:] {
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// pendingWrite is a run of aligned buffers for writeBehind.
type pendingWrite struct {
	bufs [][]byte
	off  int64
	done func()
}

const (
	// maxPending is how many WriteVec calls may wait for writeBehind.
	maxPending = 64
	// writeBehind stops joining the runs that wait once a request has
	// maxRun bytes or maxRunBufs buffers (it may pass them by one run;
	// IOV_MAX is 1024).
	maxRun     = 8 << 20
	maxRunBufs = 64
)

// writeBehind writes what WriteVec queued, in order, with O_DIRECT (or
// buffered where the file system refuses it), joining the runs that
// wait into one request.
func (w *Writer) writeBehind() {
	defer close(w.aexit)
	var bufs [][]byte
	var dones []func()
	for p := range w.aq {
		bufs, dones = append(bufs[:0], p.bufs...), append(dones[:0], p.done)
		off, n := p.off, vecLen(p.bufs)
	join:
		for n < maxRun && len(bufs) < maxRunBufs {
			select {
			case q, ok := <-w.aq:
				if !ok {
					break join
				}
				// Runs are queued in file order, each after the last.
				bufs, dones = append(bufs, q.bufs...), append(dones, q.done)
				n += vecLen(q.bufs)
			default:
				break join
			}
		}
		if w.asyncErr() == nil {
			if err := w.writeRun(bufs, off); err != nil {
				w.amu.Lock()
				w.aerr = fmt.Errorf("write content: %w", err)
				w.amu.Unlock()
			}
		}
		for _, d := range dones {
			d()
		}
	}
}

func (w *Writer) writeRun(bufs [][]byte, off int64) error {
	if w.direct != nil && !w.directOff.Load() {
		n, err := unix.Pwritev(int(w.direct.Fd()), bufs, off)
		if !errors.Is(err, unix.EINVAL) || n > 0 {
			if err == nil && n != vecLen(bufs) {
				err = io.ErrShortWrite
			}
			return err
		}
		// O_DIRECT is not for this file system after all: buffered, from
		// now on.
		w.directOff.Store(true)
	}
	for _, b := range bufs {
		if _, err := pagewrite.WriteAt(w.f, b, off); err != nil {
			return err
		}
		off += int64(len(b))
	}
	return nil
}

func vecLen(bufs [][]byte) int {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	return n
}

func (w *Writer) asyncErr() error {
	w.amu.Lock()
	defer w.amu.Unlock()
	return w.aerr
}

// waitAsync waits for the writes WriteVec left pending.
func (w *Writer) waitAsync() error {
	if w.aq != nil {
		close(w.aq)
		<-w.aexit
		w.aq = nil
	}
	return w.asyncErr()
}

// aligned says whether O_DIRECT can write b whole.
func aligned(b []byte) bool {
	return len(b) > 0 && len(b)%directAlign == 0 && uintptr(unsafe.Pointer(&b[0]))%directAlign == 0
}

// ReadFrom copies r into the blob with a large buffer.
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	buf := make([]byte, 1<<20)
	var total int64
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return total, werr
			}
			total += int64(n)
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// Digest is the sha256 digest of what was written so far.
func (w *Writer) Digest() digest.Digest { return digest.NewDigest(digest.SHA256, w.h) }

// Size is the number of bytes written so far.
func (w *Writer) Size() int64 { return w.size }

// Commit verifies what was written against expected (when not empty) and
// size (when >= 0), makes it durable and moves it into place. Committing a
// blob that is already stored keeps the stored one. The Writer is closed.
func (w *Writer) Commit(expected digest.Digest, size int64) (Info, error) {
	if w.done {
		return Info{}, errors.New("content writer already closed")
	}
	defer w.Close()
	if err := w.waitAsync(); err != nil {
		return Info{}, err
	}
	got := w.Digest()
	if size >= 0 && w.size != size {
		return Info{}, errdefs.Corrupt("content %s: got %d bytes, expected %d", expected, w.size, size)
	}
	if expected != "" {
		if expected.Algorithm() != digest.SHA256 {
			// Re-hash with the expected algorithm (sha512 blobs are rare).
			if !expected.Algorithm().Available() {
				return Info{}, errdefs.Invalid("content %s: unsupported digest algorithm", expected)
			}
			v, err := rehash(w.f.Name(), expected.Algorithm())
			if err != nil {
				return Info{}, err
			}
			got = v
		}
		if got != expected {
			return Info{}, errdefs.Corrupt("content %s: data has digest %s", expected, got)
		}
	}
	p, err := w.s.Path(got)
	if err != nil {
		return Info{}, err
	}
	w.closeDirect()
	if err := w.f.Sync(); err != nil {
		return Info{}, fmt.Errorf("content %s: sync: %w", got, err)
	}
	if err := w.f.Close(); err != nil {
		return Info{}, fmt.Errorf("content %s: %w", got, err)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return Info{}, fmt.Errorf("content %s: %w", got, err)
	}
	if err := os.Rename(w.f.Name(), p); err != nil {
		return Info{}, fmt.Errorf("content %s: %w", got, err)
	}
	w.done = true
	return Info{Digest: got, Size: w.size}, nil
}

func rehash(path string, alg digest.Algorithm) (digest.Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return alg.FromReader(f)
}

// Close discards an uncommitted blob.
func (w *Writer) Close() error {
	if w.done {
		return nil
	}
	w.done = true
	w.waitAsync()
	w.closeDirect()
	w.f.Close()
	return os.Remove(w.f.Name())
}

func (w *Writer) closeDirect() {
	if w.direct != nil {
		w.direct.Close()
		w.direct = nil
	}
}

// Sync makes renames into blobs/ and split/ durable (an fsync of each
// directory, for callers that commit many blobs and then record them
// elsewhere).
func (s *Store) Sync() error {
	for _, kind := range []string{"blobs", "split"} {
		d, err := os.Open(filepath.Join(s.root, kind, "sha256"))
		if err != nil {
			return err
		}
		err = unix.Fsync(int(d.Fd()))
		d.Close()
		if err != nil {
			return fmt.Errorf("content store: sync: %w", err)
		}
	}
	return nil
}

// Ingest copies r into the store and commits it, verifying expected/size as
// Commit does.
func (s *Store) Ingest(ctx context.Context, r io.Reader, expected digest.Digest, size int64) (Info, error) {
	w, err := s.Writer(ctx)
	if err != nil {
		return Info{}, err
	}
	defer w.Close()
	if _, err := w.ReadFrom(r); err != nil {
		return Info{}, err
	}
	return w.Commit(expected, size)
}

// IngestBytes stores b (a small document) unless it is stored already.
func (s *Store) IngestBytes(ctx context.Context, b []byte) (Info, error) {
	dgst := digest.FromBytes(b)
	if s.Exists(dgst) {
		return Info{Digest: dgst, Size: int64(len(b))}, nil
	}
	return s.Ingest(ctx, bytes.NewReader(b), dgst, int64(len(b)))
}

// IngestCount is the number of unfinished writes.
func (s *Store) IngestCount() (n int, err error) {
	ents, err := os.ReadDir(filepath.Join(s.root, "ingest"))
	return len(ents), err
}
