package logs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"syscall"
	"time"
)

// Options choose the messages Read gives.
type Options struct {
	// Tail is how many of the last messages already written to give
	// (counting both streams and partial pieces, as dockerd does), -1 for
	// all of them, 0 for none (only what follows, when following).
	Tail int
	// Since and Until, when set, keep messages whose time is not before
	// Since and not after Until. The first message after Until ends the
	// reading, following too; so does the clock passing Until.
	Since, Until time.Time
	// Follow keeps reading what is written after the end, across
	// rotations and until ctx ends, Done is closed or Until passes.
	Follow bool
	// Stdout and Stderr choose the streams; with neither, both are read.
	// (The streams are filtered after Tail counts, as in dockerd.)
	Stdout, Stderr bool
	// Done, closed when the writer has finished (the container exited and
	// its output was drained), makes a follower read to the end and stop.
	Done <-chan struct{}
}

// readChunk is the size of reads, forward and backward.
const readChunk = 64 << 10

// snapshotTries bounds the attempts at opening a consistent set of files
// while the writer rotates them.
const snapshotTries = 20

// Read gives the messages of the json-file log at path to emit, oldest
// first. maxFiles is the writer's max-file (files kept, path included):
// path.maxFiles-1 ... path.1 are read before path. A missing path is an
// empty log (the writer may not have created it yet: a follower waits for
// it); the directory of path must exist.
//
// Lines that are not complete records are never given: the last line of
// the file being written is read once its write is complete, and
// undecodable lines (a crash, or another program writing) are skipped.
//
// Read returns nil at the end (or when following stops because Done was
// closed or Until passed), ctx.Err() when ctx ends first, and emit's error
// as soon as emit returns one.
func Read(ctx context.Context, path string, maxFiles int, opts Options, emit func(Message) error) error {
	if maxFiles < 1 {
		maxFiles = 1
	}
	if !opts.Stdout && !opts.Stderr {
		opts.Stdout, opts.Stderr = true, true
	}
	r := &reader{path: path, maxFiles: maxFiles, opts: opts, emit: emit, buf: make([]byte, readChunk)}
	var w *watcher
	if opts.Follow {
		// Watch first: nothing written after the snapshot goes unnoticed.
		var err error
		if w, err = newWatcher(path); err != nil {
			return err
		}
		defer w.close()
	}
	files, err := r.snapshot()
	if err != nil {
		return err
	}
	defer func() {
		for _, f := range files {
			f.close()
		}
	}()
	idx, off := r.start(files)
	for i := idx; i < len(files); i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		lf := files[i]
		lf.off = 0
		if i == idx {
			lf.off = off
		}
		limit := lf.end
		if opts.Follow && lf.live {
			limit = -1
		}
		stop, err := r.drain(ctx, lf, limit)
		if err != nil || stop {
			return err
		}
	}
	if !opts.Follow {
		return nil
	}
	// Follow from the newest file: the live one, or the newest rotated one
	// if the writer is between a rotation and the new file (what comes
	// after it is then found by its successor).
	var cur *logFile
	if n := len(files); n > 0 {
		cur = files[n-1]
		files = files[:n-1] // cur is closed by follow
	}
	return r.follow(ctx, w, cur)
}

type reader struct {
	path     string
	maxFiles int
	opts     Options
	emit     func(Message) error
	buf      []byte
}

// logFile is one open file of the log.
type logFile struct {
	f        *os.File
	dev, ino uint64
	live     bool  // opened by the name path (not a rotated name)
	off      int64 // next byte to read
	end      int64 // the end of its last complete line when opened
	pend     []byte
}

func (lf *logFile) close() {
	if lf != nil && lf.f != nil {
		lf.f.Close()
		lf.f = nil
	}
}

// name is the file name of generation k: path for 0, path.k after.
func (r *reader) name(k int) string {
	if k == 0 {
		return r.path
	}
	return r.path + "." + strconv.Itoa(k)
}

// fileID is a file's identity, or zero for a missing name.
type fileID struct{ dev, ino uint64 }

func statID(name string) (fileID, error) {
	var st syscall.Stat_t
	err := syscall.Stat(name, &st)
	if errors.Is(err, syscall.ENOENT) {
		return fileID{}, nil
	}
	if err != nil {
		return fileID{}, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	return fileID{uint64(st.Dev), st.Ino}, nil
}

func openLog(name string, live bool) (*logFile, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	sys := st.Sys().(*syscall.Stat_t)
	return &logFile{f: f, dev: uint64(sys.Dev), ino: sys.Ino, live: live}, nil
}

// snapshot opens the files of the log, oldest first, as they were at one
// moment: it opens every name, then checks that no name changed meanwhile
// (a rotation renames all of them and makes a new path), and starts again
// if one did.
func (r *reader) snapshot() ([]*logFile, error) {
	for try := 0; ; try++ {
		files, ids, err := r.openAll()
		if err != nil {
			return nil, err
		}
		same := true
		for k := r.maxFiles - 1; k >= 0 && same; k-- {
			id, err := statID(r.name(k))
			if err != nil {
				closeAll(files)
				return nil, err
			}
			same = id == ids[k]
		}
		if !same && try < snapshotTries {
			closeAll(files)
			time.Sleep(time.Duration(try+1) * time.Millisecond)
			continue
		}
		for _, lf := range files {
			st, err := lf.f.Stat()
			if err != nil {
				closeAll(files)
				return nil, err
			}
			if lf.end, err = lastLineEnd(lf.f, st.Size(), r.buf); err != nil {
				closeAll(files)
				return nil, err
			}
		}
		return files, nil
	}
}

// openAll opens the names of the log that exist, oldest first, and
// returns the identity each name had (zero for missing ones).
func (r *reader) openAll() ([]*logFile, []fileID, error) {
	ids := make([]fileID, r.maxFiles)
	var files []*logFile
	for k := r.maxFiles - 1; k >= 0; k-- {
		lf, err := openLog(r.name(k), k == 0)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			closeAll(files)
			return nil, nil, err
		}
		ids[k] = fileID{lf.dev, lf.ino}
		files = append(files, lf)
	}
	return files, ids, nil
}

func closeAll(files []*logFile) {
	for _, lf := range files {
		lf.close()
	}
}

// lastLineEnd returns the offset just after the last newline in the first
// size bytes of f (0 if there is none).
func lastLineEnd(f *os.File, size int64, buf []byte) (int64, error) {
	for end := size; end > 0; {
		n := min(int64(len(buf)), end)
		b := buf[:n]
		if _, err := f.ReadAt(b, end-n); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
			return end - n + int64(i) + 1, nil
		}
		end -= n
	}
	return 0, nil
}

// start returns where reading begins: the index of a file and an offset
// in it, from Tail.
func (r *reader) start(files []*logFile) (int, int64) {
	switch {
	case len(files) == 0 || r.opts.Tail < 0:
		return 0, 0
	case r.opts.Tail == 0:
		last := len(files) - 1
		return last, files[last].end
	}
	need := r.opts.Tail
	idx, off := len(files)-1, files[len(files)-1].end
	for i := len(files) - 1; i >= 0 && need > 0; i-- {
		start, found, err := scanBack(files[i].f, files[i].end, need, r.buf)
		if err != nil {
			// Unreadable backwards: fall back to reading this file whole.
			start, found = 0, need
		}
		need -= found
		idx, off = i, start
	}
	return idx, off
}

// scanBack finds the start of the need-th last line of the first end
// bytes of f, end being 0 or just after a newline. It returns that offset
// and need, or 0 and the number of lines there are if there are fewer.
func scanBack(f *os.File, end int64, need int, buf []byte) (int64, int, error) {
	if end == 0 {
		return 0, 0, nil
	}
	found := 0
	pos := end - 1 // the last line's own newline is not a line start
	for pos > 0 {
		n := min(int64(len(buf)), pos)
		b := buf[:n]
		if _, err := f.ReadAt(b, pos-n); err != nil {
			return 0, 0, err
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] == '\n' {
				found++
				if found == need {
					return pos - n + int64(i) + 1, need, nil
				}
			}
		}
		pos -= n
	}
	return 0, found + 1, nil
}

// drain reads lf from lf.off up to limit (-1: to its current end) and
// gives its complete lines. stop reports that Until was passed.
func (r *reader) drain(ctx context.Context, lf *logFile, limit int64) (stop bool, err error) {
	for {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		b := r.buf
		if limit >= 0 {
			if lf.off >= limit {
				return false, nil
			}
			if rem := limit - lf.off; rem < int64(len(b)) {
				b = b[:rem]
			}
		}
		n, err := lf.f.ReadAt(b, lf.off)
		if n > 0 {
			lf.off += int64(n)
			if stop, ferr := r.feed(lf, b[:n]); stop || ferr != nil {
				return stop, ferr
			}
		}
		if err == io.EOF || n == 0 {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("read %s: %w", lf.f.Name(), err)
		}
	}
}

// feed splits data read from lf into lines, gives the complete ones and
// keeps the rest for the next read.
func (r *reader) feed(lf *logFile, data []byte) (bool, error) {
	if len(lf.pend) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			lf.pend = append(lf.pend, data...)
			return false, nil
		}
		line := append(lf.pend, data[:i]...)
		lf.pend = lf.pend[:0]
		if stop, err := r.line(line); stop || err != nil {
			return stop, err
		}
		data = data[i+1:]
	}
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			lf.pend = append(lf.pend[:0], data...)
			return false, nil
		}
		if stop, err := r.line(data[:i]); stop || err != nil {
			return stop, err
		}
		data = data[i+1:]
	}
	return false, nil
}

// line decodes a complete line and gives it if the options keep it.
func (r *reader) line(b []byte) (stop bool, err error) {
	if len(b) == 0 {
		return false, nil
	}
	m, err := decode(b)
	if err != nil {
		return false, nil // not a record: skipped
	}
	o := &r.opts
	if !o.Until.IsZero() && m.Time.After(o.Until) {
		return true, nil
	}
	if !o.Since.IsZero() && m.Time.Before(o.Since) {
		return false, nil
	}
	if (m.Stream == "stdout" && !o.Stdout) || (m.Stream == "stderr" && !o.Stderr) {
		return false, nil
	}
	return false, r.emit(m)
}

// follow reads what is written from cur on (the newest file, read up to
// its end; nil if the log has no file yet), across rotations, until ctx
// ends, Done is closed or Until passes.
func (r *reader) follow(ctx context.Context, w *watcher, cur *logFile) error {
	defer func() { cur.close() }()
	var until <-chan time.Time
	if !r.opts.Until.IsZero() {
		t := time.NewTimer(time.Until(r.opts.Until))
		defer t.Stop()
		until = t.C
	}
	done := r.opts.Done
	last := false
	for {
		var stop bool
		var err error
		cur, stop, err = r.catchUp(ctx, cur)
		if err != nil || stop || last {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-w.errc:
			return err
		case <-w.wake:
		case <-done:
			last = true // one more pass reads what the writer left
		case <-until:
			last = true
		}
	}
}

// catchUp reads the log to its current end: cur to its end and, if the
// writer rotated it away, the files that came after it. It returns the
// live file, or the last file read if its successor (path) does not exist
// at the moment, or nil if the log has no file yet.
func (r *reader) catchUp(ctx context.Context, cur *logFile) (*logFile, bool, error) {
	for {
		if cur == nil {
			lf, err := r.oldest()
			if err != nil || lf == nil {
				return nil, false, err
			}
			cur = lf
		}
		if stop, err := r.drain(ctx, cur, -1); err != nil || stop {
			return cur, stop, err
		}
		id, err := statID(r.path)
		if err != nil {
			return cur, false, err
		}
		if id == (fileID{cur.dev, cur.ino}) {
			return cur, false, nil
		}
		// Rotated away or removed: the writer is done with it. Read what
		// it wrote before; a torn last line can no longer complete.
		if stop, err := r.drain(ctx, cur, -1); err != nil || stop {
			return cur, stop, err
		}
		next, err := r.successor(cur)
		if err != nil || next == nil {
			// Keep cur: its successor is looked for again next time.
			return cur, false, err
		}
		cur.close()
		cur = next
	}
}

// oldest opens the oldest file of a log that had none when the reader
// began (everything in it is new to the reader): the writer may have
// rotated already. It returns nil if the log still has no file.
func (r *reader) oldest() (*logFile, error) {
	for try := 0; ; try++ {
		k := r.maxFiles - 1
		for ; k > 0; k-- {
			if id, err := statID(r.name(k)); err != nil {
				return nil, err
			} else if id != (fileID{}) {
				break
			}
		}
		lf, err := openLog(r.name(k), k == 0)
		if errors.Is(err, fs.ErrNotExist) {
			if k == 0 {
				return nil, nil
			}
			continue // rotated meanwhile
		}
		if err != nil {
			return nil, err
		}
		// A rotation between the look and the open moves the oldest file
		// past k: check that nothing is older than what was opened.
		older, err := statID(r.name(k + 1))
		if err != nil {
			lf.close()
			return nil, err
		}
		if k+1 >= r.maxFiles || older == (fileID{}) || try >= snapshotTries {
			return lf, nil
		}
		lf.close()
		time.Sleep(time.Duration(try+1) * time.Millisecond)
	}
}

// successor opens the file written after old (rotated away): the name one
// generation newer than the one old has now, or path if old is gone. It
// returns nil if that is path and path does not exist yet.
func (r *reader) successor(old *logFile) (*logFile, error) {
	oldID := fileID{old.dev, old.ino}
	for try := 0; ; try++ {
		k, err := r.generationOf(oldID)
		if err != nil {
			return nil, err
		}
		next := max(k-1, 0)
		if try >= snapshotTries {
			next = 0 // the names keep changing: catch up with the newest
		}
		lf, err := openLog(r.name(next), next == 0)
		if errors.Is(err, fs.ErrNotExist) {
			if next == 0 {
				return nil, nil
			}
			time.Sleep(time.Duration(try+1) * time.Millisecond)
			continue // rotated again meanwhile
		}
		if err != nil {
			return nil, err
		}
		// A rotation between finding the name and opening it would have
		// opened a newer file: check that old is still where it was.
		k2, err := r.generationOf(oldID)
		if err != nil {
			lf.close()
			return nil, err
		}
		if k2 == k || try >= snapshotTries {
			return lf, nil
		}
		lf.close()
		// A rotation renames every file one by one: let it finish.
		time.Sleep(time.Duration(try+1) * time.Millisecond)
	}
}

// generationOf returns k if path.k is the file id, 0 if no rotated name is.
func (r *reader) generationOf(id fileID) (int, error) {
	for k := 1; k < r.maxFiles; k++ {
		got, err := statID(r.name(k))
		if err != nil {
			return 0, err
		}
		if got == id {
			return k, nil
		}
	}
	return 0, nil
}
