package content

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"berth/internal/archive"
	"berth/internal/errdefs"

	"github.com/opencontainers/go-digest"
)

// Split blobs.
//
// An uncompressed layer blob whose layer is unpacked may be kept as its
// split instead (archive.Rebuild): the tar stream's headers and padding,
// and the paths of the unpacked files that hold the rest. The store keeps
// the split under <root>/split/<alg>/<hex> (8 bytes of big-endian blob
// size, then the split) and rebuilds the blob from a tree its Trees
// function names: the unpacked layers with the blob as diff ID. That saves
// writing every layer twice, once as a blob and once as files (docker's
// layer store and containers/storage keep their layers the same way).
//
// A split blob exists while a tree for it does. Reading it checks it
// against its digest, so a tree that changed is an error, never wrong
// data. Whoever removes the last tree of a split blob still needed makes
// it a plain blob first (Materialize).

// Trees names the directories a split blob can be rebuilt from, best
// first. With staged, it also names trees not committed yet (layers an
// operation has unpacked, for its own reads): those make Open work, not
// Exists or Info, so another operation does not skip storing a blob whose
// only tree may still be dropped.
type Trees func(d digest.Digest, staged bool) []string

// SetTrees sets the function that finds the trees of split blobs. It is
// called once, before the store is used.
func (s *Store) SetTrees(fn Trees) { s.trees = fn }

// Blob is an open blob: a file, or a split blob rebuilt as it is read.
type Blob interface {
	io.ReadCloser
	io.ReaderAt
	// Size is the blob's size in bytes.
	Size() int64
}

type fileBlob struct {
	*os.File
	size int64
}

func (b *fileBlob) Size() int64 { return b.size }

const splitHeader = 8

func (s *Store) splitPath(dgst digest.Digest) (string, error) {
	if err := dgst.Validate(); err != nil {
		return "", errdefs.InvalidWrap(err, "digest %q", string(dgst))
	}
	return filepath.Join(s.root, "split", string(dgst.Algorithm()), dgst.Encoded()), nil
}

// splitInfo reads the header of a split blob's file; ok is false when
// there is none.
func (s *Store) splitInfo(dgst digest.Digest) (info Info, ok bool, err error) {
	p, err := s.splitPath(dgst)
	if err != nil {
		return Info{}, false, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, false, nil
	} else if err != nil {
		return Info{}, false, fmt.Errorf("content %s: %w", dgst, err)
	}
	defer f.Close()
	return readSplitInfo(f, dgst)
}

func readSplitInfo(f *os.File, dgst digest.Digest) (Info, bool, error) {
	var hdr [splitHeader]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		return Info{}, false, errdefs.Corrupt("content %s: split: %v", dgst, err)
	}
	st, err := f.Stat()
	if err != nil {
		return Info{}, false, fmt.Errorf("content %s: %w", dgst, err)
	}
	return Info{Digest: dgst, Size: int64(binary.BigEndian.Uint64(hdr[:])), Split: true, Stored: st.Size()}, true, nil
}

// tree returns the first existing tree of a split blob, "" if none.
func (s *Store) tree(dgst digest.Digest, staged bool) string {
	if s.trees == nil {
		return ""
	}
	for _, t := range s.trees(dgst, staged) {
		if st, err := os.Stat(t); err == nil && st.IsDir() {
			return t
		}
	}
	return ""
}

// PutSplit keeps blob dgst, of size bytes, as split (archive.Rebuild), to
// be rebuilt from a tree Trees will name (it may name none yet: the blob
// exists once it does). The split is durable when PutSplit returns
// (Sync makes its name so). created says there was no blob dgst before.
func (s *Store) PutSplit(ctx context.Context, dgst digest.Digest, size int64, split []byte) (created bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	p, err := s.splitPath(dgst)
	if err != nil {
		return false, err
	}
	if s.Exists(dgst) {
		return false, nil
	}
	f, err := s.ingestFile()
	if err != nil {
		return false, err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	var hdr [splitHeader]byte
	binary.BigEndian.PutUint64(hdr[:], uint64(size))
	_, err = f.Write(hdr[:])
	if err == nil {
		_, err = f.Write(split)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.MkdirAll(filepath.Dir(p), 0o700)
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		return false, fmt.Errorf("content %s: store split: %w", dgst, err)
	}
	return true, nil
}

// openSplit opens a split blob, rebuilt from its tree as it is read.
func (s *Store) openSplit(dgst digest.Digest) (Blob, error) {
	p, err := s.splitPath(dgst)
	if err != nil {
		return nil, err
	}
	split, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errdefs.NotFound("content %s", dgst)
	} else if err != nil {
		return nil, fmt.Errorf("content %s: %w", dgst, err)
	}
	if len(split) < splitHeader {
		return nil, errdefs.Corrupt("content %s: split of %d bytes", dgst, len(split))
	}
	tree := s.tree(dgst, true)
	if tree == "" {
		return nil, errdefs.NotFound("content %s: no unpacked layer holds its files", dgst)
	}
	b := &splitBlob{d: dgst, size: int64(binary.BigEndian.Uint64(split))}
	b.open = func() (io.ReadCloser, error) { return archive.Rebuild(bytes.NewReader(split[splitHeader:]), tree) }
	return b, nil
}

// Materialize makes a split blob a plain one (before its last tree goes).
// A blob stored plain already is left as it is.
func (s *Store) Materialize(ctx context.Context, dgst digest.Digest) error {
	p, err := s.splitPath(dgst)
	if err != nil {
		return err
	}
	if !fileExists(p) {
		return nil
	}
	if bp, _ := s.Path(dgst); fileExists(bp) {
		return removeFile(p)
	}
	b, err := s.openSplit(dgst)
	if err != nil {
		return err
	}
	defer b.Close()
	if _, err := s.Ingest(ctx, b, dgst, b.Size()); err != nil {
		return fmt.Errorf("content %s: make the split blob plain: %w", dgst, err)
	}
	if err := s.Sync(); err != nil {
		return err
	}
	return removeFile(p)
}

// IsSplit says whether blob dgst is kept as a split, whether or not a tree
// holds its files now.
func (s *Store) IsSplit(dgst digest.Digest) bool {
	p, err := s.splitPath(dgst)
	if err != nil {
		return false
	}
	bp, _ := s.Path(dgst)
	return fileExists(p) && !fileExists(bp)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func removeFile(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("content store: %w", err)
	}
	return nil
}

// splitBlob reads a split blob: a rebuild of the stream, hashed as it is
// read and checked against the digest at its end. ReadAt is fast in order;
// a read before the last one rebuilds the stream from its start. Read
// reads at its own offset, through ReadAt.
type splitBlob struct {
	d    digest.Digest
	size int64
	open func() (io.ReadCloser, error)
	rpos int64 // Read's offset

	mu  sync.Mutex
	rc  io.ReadCloser
	v   digest.Verifier
	pos int64 // the rebuild's offset
	err error // sticky: a failed rebuild or a mismatch
}

func (b *splitBlob) Size() int64 { return b.size }

func (b *splitBlob) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, err := b.ReadAt(p, b.rpos)
	b.rpos += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (b *splitBlob) read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.rc == nil {
		rc, err := b.open()
		if err != nil {
			b.err = b.fail(err)
			return 0, b.err
		}
		b.rc, b.v, b.pos = rc, b.d.Verifier(), 0
	}
	if b.pos >= b.size {
		return 0, b.end()
	}
	if int64(len(p)) > b.size-b.pos {
		p = p[:b.size-b.pos]
	}
	n, err := b.rc.Read(p)
	b.v.Write(p[:n])
	b.pos += int64(n)
	if err == io.EOF {
		err = errdefs.Corrupt("content %s: rebuilt from its layer, it has %d bytes, not %d", b.d, b.pos, b.size)
	}
	if err != nil {
		b.err = b.fail(err)
		return n, b.err
	}
	if b.pos == b.size {
		// Checked with the last bytes, for readers that stop there.
		if err := b.end(); err != io.EOF {
			return n, err
		}
	}
	return n, nil
}

// end checks the rebuilt stream once size bytes are read: io.EOF when it
// ends there and matches the digest.
func (b *splitBlob) end() error {
	if b.err != nil {
		return b.err
	}
	var one [1]byte
	if n, err := b.rc.Read(one[:]); n > 0 || err != io.EOF {
		if err == nil || err == io.EOF {
			err = errdefs.Corrupt("content %s: rebuilt from its layer, it is longer than %d bytes", b.d, b.size)
		}
		b.err = b.fail(err)
		return b.err
	}
	if !b.v.Verified() {
		b.err = errdefs.Corrupt("content %s: rebuilt from its layer, it does not match its digest (the layer's files changed)", b.d)
		return b.err
	}
	return io.EOF
}

func (b *splitBlob) fail(err error) error {
	if errors.Is(err, archive.ErrSplitMismatch) {
		return errdefs.Corrupt("content %s: rebuilt from its layer: %v", b.d, err)
	}
	if errors.Is(err, errdefs.ErrCorrupt) {
		return err
	}
	return fmt.Errorf("content %s: rebuild from its layer: %w", b.d, err)
}

func (b *splitBlob) ReadAt(p []byte, off int64) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if off < 0 {
		return 0, errors.New("content: negative offset")
	}
	if off >= b.size && b.err == nil {
		return 0, io.EOF
	}
	if b.rc != nil && off < b.pos {
		// Backwards: from the start again.
		b.rc.Close()
		b.rc = nil
		b.err = nil
	}
	if b.rc == nil {
		b.pos = 0
	}
	var skip [32 << 10]byte
	for b.err == nil && b.pos < off {
		n := min(int64(len(skip)), off-b.pos)
		if _, err := b.read(skip[:n]); err != nil && err != io.EOF {
			return 0, err
		}
		if b.pos >= b.size {
			break
		}
	}
	if off >= b.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) {
		m, err := b.read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (b *splitBlob) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.rc != nil {
		b.rc.Close()
		b.rc = nil
	}
	if b.err == nil {
		b.err = os.ErrClosed
	}
	return nil
}
