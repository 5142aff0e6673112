package archive

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// A split is an uncompressed layer's tar stream taken apart: the bytes that
// are not the content of regular files (headers, padding, the end of the
// archive and whatever follows it), kept as they were, and for the content
// of each regular file, the path of the file Unpack wrote it to. With the
// unpacked tree, Rebuild gives the stream back byte for byte, as docker's
// tar-split does; a store that keeps the tree needs no second copy of the
// layer's blob.
//
// Unpack records a split (UnpackOptions.Split) only where the tree holds
// every file's content as the stream had it: not when an entry replaced an
// earlier one (the earlier content is gone), not for sparse files (their
// stream holds the data without the holes), not for a compressed stream
// (its bytes cannot be made again from the tar).
//
// The encoding is zstd-compressed records, after splitMagic:
//
//	'R' uvarint(n) n bytes              bytes of the stream, as they were
//	'F' uvarint(n) n bytes uvarint(m)   m bytes of content, from the file at the path
//	'E'                                 the end
const splitMagic = "berth-split\x01"

const (
	recRaw  = 'R'
	recFile = 'F'
	recEnd  = 'E'
)

// splitRecorder sits between the stream and the tar reader and keeps what
// the tar reader reads outside of files' content. A Memory stream hands it
// what it consumes instead (r is nil then).
type splitRecorder struct {
	r      io.Reader
	raw    []byte // bytes read since the last record
	out    bytes.Buffer
	data   bool // the unpacker is reading a file's content
	broken bool // the stream cannot be rebuilt from the tree
}

func newSplitRecorder(r io.Reader) *splitRecorder {
	s := &splitRecorder{r: r}
	s.out.WriteString(splitMagic)
	return s
}

// maxSplit bounds what a split keeps in memory: past it (gigabytes of
// whiteout content or of bytes after the archive's end), the layer keeps a
// plain blob instead.
const maxSplit = 64 << 20

func (s *splitRecorder) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if !s.data {
		s.addRaw(p[:n])
	}
	return n, err
}

// addRaw keeps b, bytes of the stream outside of files' content.
func (s *splitRecorder) addRaw(b []byte) {
	if s.broken {
		return
	}
	if len(s.raw)+s.out.Len()+len(b) > maxSplit {
		s.broken = true
		s.raw, s.out = nil, bytes.Buffer{}
		return
	}
	s.raw = append(s.raw, b...)
}

// flushRaw ends the run of bytes read so far as a record.
func (s *splitRecorder) flushRaw() {
	if len(s.raw) == 0 {
		return
	}
	s.out.WriteByte(recRaw)
	s.out.Write(binary.AppendUvarint(nil, uint64(len(s.raw))))
	s.out.Write(s.raw)
	s.raw = s.raw[:0]
}

// file notes that the next size bytes read are the content of the file at
// name, and has them read past the record (until endFile).
func (s *splitRecorder) file(name string, size int64) {
	if s.broken {
		return
	}
	s.flushRaw()
	var b []byte
	b = append(b, recFile)
	b = binary.AppendUvarint(b, uint64(len(name)))
	b = append(b, name...)
	b = binary.AppendUvarint(b, uint64(size))
	s.out.Write(b)
	s.data = true
}

func (s *splitRecorder) endFile() { s.data = false }

// finish returns the encoded split, nil when the stream cannot be rebuilt.
func (s *splitRecorder) finish() []byte {
	if s.broken {
		return nil
	}
	s.flushRaw()
	s.out.WriteByte(recEnd)
	return splitEncoder().EncodeAll(s.out.Bytes(), nil)
}

var (
	splitEnc     *zstd.Encoder
	splitEncOnce sync.Once
)

func splitEncoder() *zstd.Encoder {
	splitEncOnce.Do(func() {
		// EncodeAll may be called from many goroutines at once.
		splitEnc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	})
	return splitEnc
}

// Sparse says whether hdr is a sparse file, in GNU or PAX form: its data
// in the stream is not its content (the tar reader expands it).
func Sparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// ErrSplitMismatch says a tree no longer holds what its split names: a file
// is missing, of another kind, or of another size.
var ErrSplitMismatch = errors.New("the unpacked tree does not match its split")

// Rebuild returns the tar stream that split (as UnpackStats.Split gave it)
// and the tree dir were taken from. Files are opened inside dir as Unpack
// made them (symbolic links resolved as if dir were the root, none followed
// in the last component). The caller verifies the stream against its
// digest: Rebuild checks only that each file has the size the split says.
func Rebuild(split io.Reader, dir string) (io.ReadCloser, error) {
	zr, err := zstd.NewReader(split, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
	if err != nil {
		return nil, fmt.Errorf("layer split: %w", err)
	}
	br := bufio.NewReader(zr)
	magic := make([]byte, len(splitMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != splitMagic {
		zr.Close()
		return nil, fmt.Errorf("layer split: not a split (%v)", err)
	}
	rootfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		zr.Close()
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return &rebuilder{zr: zr, br: br, rootfd: rootfd, fd: -1}, nil
}

// rebuilder reads the records of a split one at a time.
type rebuilder struct {
	zr     *zstd.Decoder
	br     *bufio.Reader
	rootfd int
	// raw is how much of a raw record is left to read from br; fd, name
	// and left are the file whose content is being read.
	raw  uint64
	fd   int
	name string
	left int64
	err  error
}

func (r *rebuilder) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, r.err
	}
	for r.err == nil {
		switch {
		case r.raw > 0:
			if uint64(len(p)) > r.raw {
				p = p[:r.raw]
			}
			n, err := r.br.Read(p)
			r.raw -= uint64(n)
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			if err != nil {
				r.err = fmt.Errorf("layer split: %w", err)
			}
			return n, r.err
		case r.fd >= 0:
			if r.left == 0 {
				unix.Close(r.fd)
				r.fd = -1
				continue
			}
			if int64(len(p)) > r.left {
				p = p[:r.left]
			}
			n, err := unix.Read(r.fd, p)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				r.err = &os.PathError{Op: "read", Path: r.name, Err: err}
				return 0, r.err
			}
			if n == 0 {
				r.err = fmt.Errorf("%w: %s is shorter than its entry", ErrSplitMismatch, r.name)
				return 0, r.err
			}
			r.left -= int64(n)
			return n, nil
		default:
			r.err = r.next()
		}
	}
	return 0, r.err
}

// next reads the next record; io.EOF at the end one.
func (r *rebuilder) next() error {
	kind, err := r.br.ReadByte()
	if err != nil {
		return fmt.Errorf("layer split: %w", noEOF(err))
	}
	switch kind {
	case recEnd:
		return io.EOF
	case recRaw:
		n, err := binary.ReadUvarint(r.br)
		if err != nil {
			return fmt.Errorf("layer split: %w", noEOF(err))
		}
		r.raw = n
		return nil
	case recFile:
		n, err := binary.ReadUvarint(r.br)
		if err != nil || n > maxPathLen {
			return fmt.Errorf("layer split: bad file record (%v)", noEOF(err))
		}
		name := make([]byte, n)
		if _, err := io.ReadFull(r.br, name); err != nil {
			return fmt.Errorf("layer split: %w", noEOF(err))
		}
		size, err := binary.ReadUvarint(r.br)
		if err != nil || size > 1<<62 {
			return fmt.Errorf("layer split: bad file record (%v)", noEOF(err))
		}
		r.name = string(name)
		// O_NONBLOCK: a FIFO put in its place (a tree changed) must not block the open.
		fd, err := resolveInRoot(r.rootfd, r.name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrSplitMismatch, r.name, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			unix.Close(fd)
			return fmt.Errorf("%w: %s is not a regular file", ErrSplitMismatch, r.name)
		}
		if st.Size != int64(size) {
			unix.Close(fd)
			return fmt.Errorf("%w: %s has %d bytes, its entry %d", ErrSplitMismatch, r.name, st.Size, size)
		}
		unix.Fadvise(fd, 0, 0, unix.FADV_SEQUENTIAL)
		r.fd, r.left = fd, int64(size)
		return nil
	default:
		return fmt.Errorf("layer split: unknown record %q", kind)
	}
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (r *rebuilder) Close() error {
	if r.fd >= 0 {
		unix.Close(r.fd)
		r.fd = -1
	}
	if r.rootfd >= 0 {
		unix.Close(r.rootfd)
		r.rootfd = -1
	}
	r.zr.Close()
	if r.err == nil {
		r.err = os.ErrClosed
	}
	return nil
}
