package logs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// watcher wakes a follower when anything happens to the log's files: one
// inotify watch on their directory reports writes (IN_MODIFY), new files
// and renames, whichever file they are about.
type watcher struct {
	f    *os.File
	wake chan struct{} // one pending wake-up at most
	errc chan error
	wg   sync.WaitGroup
}

const watchMask = unix.IN_MODIFY | unix.IN_CLOSE_WRITE | unix.IN_CREATE | unix.IN_MOVED_TO |
	unix.IN_MOVED_FROM | unix.IN_DELETE | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF

func newWatcher(path string) (*watcher, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("follow %s: %w", path, os.NewSyscallError("inotify_init1", err))
	}
	if _, err := unix.InotifyAddWatch(fd, dir, watchMask); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("follow %s: watch %s: %w", path, dir, os.NewSyscallError("inotify_add_watch", err))
	}
	// Non-blocking: reads go through the runtime's poller, and Close
	// interrupts a pending one.
	w := &watcher{f: os.NewFile(uintptr(fd), "inotify"), wake: make(chan struct{}, 1), errc: make(chan error, 1)}
	w.wg.Add(1)
	go w.run(base)
	return w, nil
}

func (w *watcher) run(base string) {
	defer w.wg.Done()
	buf := make([]byte, 16<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				w.errc <- fmt.Errorf("follow: read inotify events: %w", err)
			}
			return
		}
		if relevant(buf[:n], base) {
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}
	}
}

// relevant reports whether the events in b concern the log (one of its
// names, the directory itself, or a lost event).
func relevant(b []byte, base string) bool {
	for len(b) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&b[0]))
		size := unix.SizeofInotifyEvent + int(ev.Len)
		if size > len(b) {
			return true
		}
		if ev.Mask&(unix.IN_Q_OVERFLOW|unix.IN_IGNORED|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF) != 0 {
			return true
		}
		name := string(b[unix.SizeofInotifyEvent:size])
		if i := strings.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		if logName(name, base) {
			return true
		}
		b = b[size:]
	}
	return false
}

// logName reports whether name is one of the log's file names: base or
// base.N.
func logName(name, base string) bool {
	rest, ok := strings.CutPrefix(name, base)
	if !ok {
		return false
	}
	if rest == "" {
		return true
	}
	if rest[0] != '.' || len(rest) == 1 {
		return false
	}
	for _, c := range rest[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// close stops the watcher and waits for its goroutine.
func (w *watcher) close() {
	w.f.Close()
	w.wg.Wait()
}
