package server

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"
)

// MaxLogLine is the longest message of a log: like dockerd's log copier (and containerd's CRI
// default), a longer line is logged as 16 KiB pieces (partial messages).
const MaxLogLine = 16 * 1024

// LogMode is the mode of json-file logs (Docker's).
const LogMode = 0o640

// Log formats (--log-format).
const (
	// FormatJSON is Docker's json-file format, one line per message:
	//
	//	{"log":"<text>","stream":"stdout","time":"<RFC3339Nano UTC>"}\n
	FormatJSON = "json-file"
	// FormatCRI is the CRI's format (kubelet reads it), one line per message:
	//
	//	<RFC3339Nano UTC> <stream> <F|P> <text without its newline>\n
	//
	// P marks a piece of a line longer than MaxLogLine, F the end of a line (or of the stream).
	FormatCRI = "cri"
)

// logFile writes a container's log in one of the formats, each message with one write(2),
// and rotates before a write would make the file larger than maxSize (kubelet rotates CRI
// logs itself: it renames the file and asks for a reopen). It is shared by the output
// streams of a container.
type logFile struct {
	mu      sync.Mutex
	path    string
	cri     bool // FormatCRI
	f       *os.File
	size    int64
	maxSize int64 // 0: unlimited
	maxFile int   // files kept, counting path itself (≥ 1)
	buf     []byte
	report  func(string) // rotation and write failures, to shim.log
	failed  bool         // a failure was reported (reported once until a write succeeds)
}

func openLogFile(path, format string, maxSize int64, maxFile int, report func(string)) (*logFile, error) {
	if maxFile < 1 {
		maxFile = 1
	}
	l := &logFile{path: path, cri: format == FormatCRI, maxSize: maxSize, maxFile: maxFile, report: report, buf: make([]byte, 0, 512)}
	f, err := createLogFile(path, false)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	l.f, l.size = f, st.Size()
	return l, nil
}

// createLogFile opens (or, with trunc, recreates) a log file for appending, mode 0640 whatever
// the umask.
func createLogFile(path string, trunc bool) (*os.File, error) {
	flags := os.O_WRONLY | os.O_APPEND | os.O_CREATE | syscall.O_CLOEXEC
	if trunc {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, LogMode)
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(LogMode); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// write logs one message: line is the text (with its trailing newline if it had one), t the
// message's time; eof says that the stream ended after it (the end of a CRI line).
func (l *logFile) write(stream string, line []byte, t time.Time, eof bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buf[:0]
	if l.cri {
		b = t.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, ' ')
		b = append(b, stream...)
		tag := " P "
		if n := len(line); n > 0 && line[n-1] == '\n' {
			line, tag = line[:n-1], " F "
		} else if eof {
			tag = " F "
		}
		b = append(b, tag...)
		b = append(b, line...)
		b = append(b, '\n')
	} else {
		b = append(b, `{"log":`...)
		b = appendJSONString(b, line)
		b = append(b, `,"stream":"`...)
		b = append(b, stream...)
		b = append(b, `","time":"`...)
		b = t.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, "\"}\n"...)
	}
	l.buf = b
	if l.f == nil { // a rotation failed: try again to open the log, without rotating again
		f, err := createLogFile(l.path, false)
		if err != nil {
			l.fail("open " + l.path + ": " + err.Error())
			return
		}
		l.f, l.size = f, 0
		if st, err := f.Stat(); err == nil {
			l.size = st.Size()
		}
	}
	if l.maxSize > 0 && l.size > 0 && l.size+int64(len(b)) > l.maxSize {
		if err := l.rotate(); err != nil {
			l.fail("rotate " + l.path + ": " + err.Error())
			if l.f == nil {
				return
			}
		}
	}
	n, err := l.f.Write(b)
	l.size += int64(n)
	if err != nil {
		l.fail("write " + l.path + ": " + err.Error())
		return
	}
	l.failed = false
}

func (l *logFile) fail(msg string) {
	if !l.failed && l.report != nil {
		l.report(msg)
	}
	l.failed = true
}

// rotate moves path to path.1 (path.N-2 to path.N-1 first, ..., dropping the oldest), or
// removes it when only one file is kept, and starts a new, empty path. A reader that follows the
// log notices the new inode (and the old one's link count dropping to 0).
func (l *logFile) rotate() error {
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	if l.maxFile <= 1 {
		// Replace path by a new, empty file in one rename: the new inode is made while the
		// old one exists, so their numbers differ (a freed inode number is reused at once).
		f, err := createLogFile(l.path+".tmp", true)
		if err != nil {
			return err
		}
		if err := os.Rename(l.path+".tmp", l.path); err != nil {
			f.Close()
			os.Remove(l.path + ".tmp")
			return err
		}
		l.f, l.size = f, 0
		return nil
	}
	for i := l.maxFile - 1; i > 1; i-- {
		err := os.Rename(l.path+"."+strconv.Itoa(i-1), l.path+"."+strconv.Itoa(i))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := os.Rename(l.path, l.path+".1"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	f, err := createLogFile(l.path, true)
	if err != nil {
		return err
	}
	l.f, l.size = f, 0
	return nil
}

// reopen closes the log and opens path anew (kubelet renamed the file to rotate it).
func (l *logFile) reopen() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	f, err := createLogFile(l.path, false)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	l.f, l.size, l.failed = f, st.Size(), false
	return nil
}

func (l *logFile) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

// appendJSONString appends s as a JSON string exactly as dockerd's json-file driver encodes it
// (jsonlog.ffjsonWriteJSONBytesAsString): \" \\ \n \r, \u00XX for other control characters and
// for < > &, \ufffd for each invalid UTF-8 byte, \u2028 and \u2029 escaped.
func appendJSONString(b, s []byte) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if 0x20 <= c && c != '\\' && c != '"' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// lineSplitter cuts a stream into log messages as dockerd's log copier does: one per line
// (ending with its newline), a line longer than MaxLogLine in MaxLogLine pieces without newline
// (partial messages, which share the time of the first piece), and what is left at the end of
// the stream as a partial message.
type lineSplitter struct {
	stream  string
	log     *logFile
	pend    []byte // the start of a line that did not end in the data seen so far
	partial bool   // pieces of the current line were logged already
	ts      time.Time
	now     func() time.Time
}

func (ls *lineSplitter) emit(line []byte, last, eof bool) {
	var t time.Time
	if ls.partial {
		t = ls.ts
	} else {
		t = ls.now()
	}
	if !last && !ls.partial {
		ls.partial, ls.ts = true, t
	}
	ls.log.write(ls.stream, line, t, eof)
	if last {
		ls.partial = false
	}
}

// feed logs the complete messages in data and keeps the rest.
func (ls *lineSplitter) feed(data []byte) {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		seg := data
		if i >= 0 {
			seg = data[:i]
		}
		// full pieces of an over-long line
		for len(ls.pend)+len(seg) >= MaxLogLine {
			take := MaxLogLine - len(ls.pend)
			if len(ls.pend) == 0 {
				ls.emit(seg[:take], false, false)
			} else {
				ls.pend = append(ls.pend, seg[:take]...)
				ls.emit(ls.pend, false, false)
				ls.pend = ls.pend[:0]
			}
			seg = seg[take:]
		}
		if i < 0 {
			ls.pend = append(ls.pend, seg...)
			return
		}
		if len(ls.pend) == 0 {
			ls.emit(data[i-len(seg):i+1], true, false)
		} else {
			ls.pend = append(append(ls.pend, seg...), '\n')
			ls.emit(ls.pend, true, false)
			ls.pend = ls.pend[:0]
		}
		data = data[i+1:]
	}
}

// flush logs what is left at the end of the stream, as a partial message (json-file) or the
// end of a line (CRI).
func (ls *lineSplitter) flush() {
	if len(ls.pend) > 0 {
		ls.emit(ls.pend, false, true)
		ls.pend = ls.pend[:0]
	}
}
